/*
 * mk_linkspec.c - the --link spec: `link` statements of the scenario
 * language (fault/SCENARIOS.md 3.5) separated by ';', set on a link's two
 * fault pipes.  Shared by the pair runner (ref/mk_pair.c) and the TCP fault
 * proxy (fault/mk_proxy.c) so the two accept exactly the same faults with
 * exactly the same messages.
 */
#include "mk_linkfault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_err.h"
#include "mk_scenario.h"

int mk_lf_apply_step(const mk_scenario_step *st, mk_lf *to_dest, mk_lf *to_source)
{
    mk_lf *lf[2] = {to_dest, to_source};
    int rc = 0;
    mk_lf_fault f = {st->link.kind, st->link.ms, st->link.jitter, st->link.kbps,
                     st->link.bytes, st->link.window, st->link.frames,
                     st->link.prob.num, st->link.prob.den};
    if (st->link.after.kind == MK_SCN_EV_BYTES)
        f.bytes = st->link.after.n;
    for (int d = 0; d < 2 && rc == 0; d++)
        if (lf[d] && (st->link.dir == MK_SCN_DIR_BOTH ||
                      st->link.dir == (d ? MK_SCN_DIR_TO_SOURCE : MK_SCN_DIR_TO_DEST)))
            rc = mk_lf_set(lf[d], &f);
    return rc;
}

int mk_lf_parse_spec(const char *spec, mk_lf *to_dest, mk_lf *to_source, char *err,
                     size_t errlen)
{
    mk_lf *lf[2] = {to_dest, to_source};
    size_t n = strlen(spec);
    char *text = malloc(n * 2 + 16), *t = text;
    mk_scenario *sc = NULL;
    mk_scenario_error perr;
    int rc = 0;
    if (errlen)
        err[0] = 0;
    if (!text)
        return MK_ENOMEM;
    /* An empty spec sets no fault: the pipes are there for faults that a
     * scenario adds later. */
    if (strspn(spec, " \t") == n) {
        free(text);
        return 0;
    }
    /* Each ';'-separated part becomes a line "link PART", so the scenario
     * parser - with its file:line:col messages - is the only grammar. */
    t += sprintf(t, "link ");
    for (const char *p = spec; *p; p++)
        t += *p == ';' ? sprintf(t, "\nlink ") : sprintf(t, "%c", *p);
    *t++ = '\n';
    if (mk_scenario_parse("--link", text, (size_t)(t - text), &sc, &perr)) {
        if (errlen)
            mk_scenario_error_format(&perr, err, errlen);
        free(text);
        return MK_EUSAGE;
    }
    for (size_t i = 0; rc == 0 && i < mk_scenario_nsteps(sc); i++) {
        const mk_scenario_step *st = mk_scenario_step_at(sc, i);
        if (st->kind != MK_SCN_LINK)
            continue;
        /* A protocol event (after=CP 3 ...) needs a runner that sees the
         * protocol; a byte count is all a bare link can count. */
        if (st->link.after.kind != MK_SCN_EV_NONE && st->link.after.kind != MK_SCN_EV_BYTES) {
            if (errlen)
                snprintf(err, errlen, "--link: after=EVENT needs a scenario, not --link");
            rc = MK_EUSAGE;
            break;
        }
        rc = mk_lf_apply_step(st, lf[0], lf[1]);
        /* The parser checks the rules mk_lf_set checks; if they ever
         * disagree, say which part was refused rather than fail mutely. */
        if (rc == MK_EINVAL && errlen)
            snprintf(err, errlen, "--link: part %zu has a parameter the link cannot take",
                     i + 1);
    }
    mk_scenario_free(sc);
    free(text);
    return rc == MK_EINVAL ? MK_EUSAGE : rc;
}
