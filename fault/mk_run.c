/*
 * mk_run.c - the scenario runner (fault/SCENARIOS.md "meaning" columns are
 * its specification) and `mirrorkit scenario`.
 *
 * Storage and allocation faults and crashes at fault points are libfiu
 * external callbacks: every catalogued point is enabled with one callback
 * for the whole run, which counts the hits of each point and decides, from
 * the armed triggers, whether this hit fails (and how) or kills the role.
 * Protocol events come from the pair's hooks.  Everything random is drawn
 * from PRNGs seeded by the scenario's seed, so a scenario is one fixed run.
 */
#define _POSIX_C_SOURCE 200809L
#include "mk_run.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "mk_cli.h"
#include "mk_dest.h"
#include "mk_err.h"
#include "mk_fiu.h"
#ifdef FIU_ENABLE
#include <fiu-control.h>
#endif
#include "mk_linkfault.h"
#include "mk_map.h"
#include "mk_pair.h"
#include "mk_prng.h"
#include "mk_workload.h"

typedef struct trigger {
    const mk_scenario_step *st; /* a crash, fault or link step */
    int armed;                  /* its step has run */
    int started;                /* its after= event came (or it has none) */
    int done;                   /* fired for good: crash, link, fault used up */
    uint64_t count, failed;     /* hits counted since it started; failures */
} trigger;

typedef struct run {
    const mk_scenario *sc;
    const mk_run_options *o;
    mk_run_result *r;
    mk_pair *p;
    mk_pair_config cfg;
    trigger *tr;
    size_t ntr;
    mk_prng fault_rng, data_rng;
    mk_workload wl;
    int wl_ready;
    uint64_t writes_since_cp, cp_every;
    uint64_t *cp_digest;       /* per mirror-equals expectation; UINT64_MAX: not taken */
    int *cp_digest_set;
    uint8_t *buf;
    size_t buf_cap;
    int digesting;             /* image_digest is reading: not an engine's call */
    char step_error[160];      /* the step the run ended at, for the report */
} run;

/* The run in progress, for libfiu's callback, which has no context. */
static run *g_run;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void trace(run *u, uint64_t a, uint64_t b, uint64_t c)
{
    u->r->trace = mk_hash64(u->r->trace ^ mk_hash64(a * 0x9e3779b97f4a7c15ULL ^ b) ^ c);
}

/* ---- fault points ------------------------------------------------------ */

static int point_matches(const char *pattern, const char *name)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*')
        return strncmp(pattern, name, n - 1) == 0;
    return strcmp(pattern, name) == 0;
}

/* The role whose process a point lives in, or -1 (the link's points live
 * in both). */
static int point_role(const char *name)
{
    if (strncmp(name, "ref/dest/", 9) == 0 || strncmp(name, "ref/alloc/dest/", 15) == 0)
        return MK_ROLE_DEST;
    if (strncmp(name, "ref/source/", 11) == 0 || strncmp(name, "ref/alloc/source/", 17) == 0)
        return MK_ROLE_SOURCE;
    return -1;
}

/* The role every point a pattern covers lives in; -1 if they differ or it
 * covers none, -2 if it covers points of no role. */
static int pattern_role(const char *pattern)
{
    int role = -3;
    for (size_t i = 0; i < mk_fault_npoints; i++) {
        if (!point_matches(pattern, mk_fault_points[i].name))
            continue;
        int r = point_role(mk_fault_points[i].name);
        if (role != -3 && r != role)
            return -1;
        role = r < 0 ? -2 : r;
    }
    return role == -3 ? -1 : role;
}

static int known_point(const char *pattern, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < mk_fault_npoints; i++)
        if (point_matches(pattern, mk_fault_points[i].name))
            return 1;
    return 0;
}

/* Every crash the runner causes - a crash step, a trigger, a torn write,
 * a crash point - goes through here, so the counts and the restart mode
 * are set one way. */
static void kill_role(run *u, int role, int restart_auto, int torn)
{
    mk_pair_set_restart(u->p, role, restart_auto);
    mk_pair_kill(u->p, role, torn);
    u->r->crashes++;
    u->r->restarts += restart_auto != 0;
}

static void fire_crash(run *u, trigger *t)
{
    const mk_scenario_step *st = t->st;
    kill_role(u, st->crash.role, st->crash.restart == MK_SCN_RESTART_AUTO, 0);
    t->done = 1;
    trace(u, 1, st->line, st->crash.role);
}

#ifdef FIU_ENABLE
static int point_index(const char *name)
{
    for (size_t i = 0; i < mk_fault_npoints; i++)
        if (strcmp(mk_fault_points[i].name, name) == 0)
            return (int)i;
    return -1;
}

#define FAIL_WITH(kind)                                                        \
    do {                                                                       \
        *failinfo = MK_FAULT_INFO(kind, 0);                                    \
        return 1;                                                              \
    } while (0)

/* libfiu calls this at every hit of every point while a scenario runs. */
static int on_point(const char *name, int *failnum, void **failinfo, unsigned int *flags)
{
    run *u = g_run;
    (void)failnum;
    (void)flags;
    /* The verifier's reads go through the same files; they are not the
     * engines' calls and neither count nor fail. */
    if (!u || !u->p || u->digesting || mk_pair_checking(u->p))
        return 0;
    int pi = point_index(name), role = point_role(name);
    if (pi >= 0 && pi < 64)
        u->r->hits[pi]++;
    u->r->hits_total++;
    /* A dying process makes no call that succeeds.  (Once it is down, the
     * calls on its files are the verifier's and its restart's.) */
    if (role >= 0 && mk_pair_dying(u->p, role))
        FAIL_WITH(MK_FK_EIO);
    if (role == u->o->crash_role)
        u->r->role_hits++;
    if (u->o->crash_at && role == u->o->crash_role && u->r->role_hits == u->o->crash_at) {
        u->r->crashed_at = 1;
        snprintf(u->r->crash_point, sizeof u->r->crash_point, "%s", name);
        kill_role(u, role, 1, 0);
        FAIL_WITH(MK_FK_EIO);
    }
    for (size_t i = 0; i < u->ntr; i++) {
        trigger *t = &u->tr[i];
        const mk_scenario_step *st = t->st;
        if (!t->armed || !t->started || t->done)
            continue;
        if (st->kind == MK_SCN_CRASH && st->crash.trigger == MK_SCN_AT_POINT &&
            point_matches(st->crash.point, name) && ++t->count == st->crash.hit) {
            fire_crash(u, t);
            FAIL_WITH(MK_FK_EIO);
        }
        if (st->kind == MK_SCN_FAULT && point_matches(st->fault.point, name) &&
            ++t->count >= st->fault.hit &&
            mk_prng_chance(&u->fault_rng, st->fault.prob.num, st->fault.prob.den)) {
            if (++t->failed == st->fault.count)
                t->done = 1;
            u->r->faults_fired++;
            trace(u, 2, st->line, t->count);
            /* A torn write is a write a crash cut (ref/mk_fiu.h): on the
             * simulated link's crashable files the process dies in it, and
             * is restarted - recovery must cut the torn tail (7.6). */
            if (st->fault.kind == MK_SCN_F_TORN && role >= 0 &&
                u->cfg.transport == MK_T_SIM) {
                kill_role(u, role, 1, 1);
            }
            FAIL_WITH(st->fault.kind + 1); /* MK_SCN_F_* to MK_FK_* */
        }
    }
    return 0;
}

static void points_enable(int on)
{
    if (on)
        fiu_init(0); /* idempotent */
    for (size_t i = 0; i < mk_fault_npoints; i++) {
        if (on)
            fiu_enable_external(mk_fault_points[i].name, 1, NULL, 0, on_point);
        else
            fiu_disable(mk_fault_points[i].name);
    }
}
#else
static void points_enable(int on) { (void)on; }
#endif

/* ---- protocol events --------------------------------------------------- */

static int event_matches(const mk_scn_event *ev, int kind, uint64_t n, uint64_t cp)
{
    if (ev->kind != kind)
        return 0;
    switch (kind) {
    case MK_SCN_EV_CP_BEGIN: case MK_SCN_EV_CP_COMMIT: case MK_SCN_EV_CP_ACK:
        return cp == ev->n;
    case MK_SCN_EV_REF: case MK_SCN_EV_DATA:
        return n == ev->n && cp == ev->cp;
    case MK_SCN_EV_LOG_ACK: /* an acknowledgement covers every transfer up to n */
        return n >= ev->n;
    default:
        return n == ev->n;
    }
}

static const mk_scn_event *trigger_event(const mk_scenario_step *st)
{
    switch (st->kind) {
    case MK_SCN_CRASH: return st->crash.trigger == MK_SCN_AFTER_EVENT ? &st->crash.after : NULL;
    case MK_SCN_FAULT: return st->fault.after.kind != MK_SCN_EV_NONE ? &st->fault.after : NULL;
    case MK_SCN_LINK:
        return st->link.after.kind != MK_SCN_EV_NONE && st->link.after.kind != MK_SCN_EV_BYTES
                   ? &st->link.after
                   : NULL;
    }
    return NULL;
}

static int apply_link(run *u, trigger *t)
{
    mk_lf *a = mk_pair_link_faults(u->p, 0), *b = mk_pair_link_faults(u->p, 1);
    t->done = 1;
    trace(u, 3, t->st->line, t->st->link.kind);
    return a ? mk_lf_apply_step(t->st, a, b) : MK_EINVAL;
}

static void on_event(run *u, int kind, uint64_t n, uint64_t cp)
{
    trace(u, 4 + (uint64_t)kind, n, cp);
    for (size_t i = 0; i < u->ntr; i++) {
        trigger *t = &u->tr[i];
        const mk_scn_event *ev = trigger_event(t->st);
        if (!t->armed || t->started || t->done || !ev || !event_matches(ev, kind, n, cp))
            continue;
        t->started = 1;
        if (t->st->kind == MK_SCN_CRASH)
            fire_crash(u, t);
        else if (t->st->kind == MK_SCN_LINK)
            apply_link(u, t);
    }
}

static void hook_dest_event(void *ctx, int kind, uint64_t n, uint64_t cp)
{
    static const int map[] = {
        [MK_DEV_TRANSFER] = MK_SCN_EV_TRANSFER, [MK_DEV_LOG_ACK] = MK_SCN_EV_LOG_ACK,
        [MK_DEV_CP_BEGIN] = MK_SCN_EV_CP_BEGIN, [MK_DEV_DATA] = MK_SCN_EV_DATA,
        [MK_DEV_REF] = MK_SCN_EV_REF,           [MK_DEV_CP_COMMIT] = MK_SCN_EV_CP_COMMIT,
        [MK_DEV_CP_ACK] = MK_SCN_EV_CP_ACK};
    if (kind > 0 && kind <= MK_DEV_CP_ACK)
        on_event(ctx, map[kind], n, cp);
}

static void hook_write(void *ctx, uint64_t wid) { on_event(ctx, MK_SCN_EV_WRITE, wid, 0); }

/* A digest of a whole image, block by block, holes reading as zeros. */
static int image_digest(run *u, mk_file *f, uint64_t *out)
{
    uint32_t bs = u->cfg.block_size;
    XXH3_state_t *h = XXH3_createState();
    uint8_t *b = malloc(bs);
    int rc = h && b ? 0 : MK_ENOMEM;
    u->digesting++;
    if (rc == 0)
        XXH3_64bits_reset(h);
    for (uint64_t i = 0; rc == 0 && i < u->cfg.nblocks; i++)
        if ((rc = mk_file_read_block(f, b, bs, i * bs)) == 0)
            XXH3_64bits_update(h, b, bs);
    if (rc == 0)
        *out = XXH3_64bits_digest(h);
    u->digesting--;
    free(b);
    XXH3_freeState(h);
    return rc;
}

static void hook_cp_begin(void *ctx, uint64_t cp)
{
    run *u = ctx;
    trace(u, 5, cp, 0);
    for (size_t i = 0; i < mk_scenario_nexpects(u->sc); i++) {
        const mk_scenario_expect *e = mk_scenario_expect_at(u->sc, i);
        if (e->kind == MK_SCN_EXPECT_MIRROR_EQUALS && e->cp == cp &&
            image_digest(u, mk_pair_store(u->p), &u->cp_digest[i]) == 0)
            u->cp_digest_set[i] = 1;
    }
}

/* ---- steps ------------------------------------------------------------- */

/* A CP that a crash left with a role down (restart=manual) is not a
 * failed run: the source completes it in the session after the restart,
 * and a later step (restart, promote) says what happens next. */
static int interrupted(run *u, int rc)
{
    if (rc == MK_ECLOSED &&
        (mk_pair_down(u->p, MK_ROLE_DEST) || mk_pair_down(u->p, MK_ROLE_SOURCE)))
        return 0;
    return rc;
}

static int one_write(run *u, uint64_t off, const uint8_t *data, uint32_t len)
{
    int rc = mk_pair_write(u->p, off, data, len);
    u->r->writes++;
    trace(u, 6, off, len);
    if (rc == 0 && u->cp_every && ++u->writes_since_cp >= u->cp_every) {
        u->writes_since_cp = 0;
        rc = interrupted(u, mk_pair_cp(u->p));
    }
    return rc;
}

static int explicit_write(run *u, const mk_scenario_step *st)
{
    uint32_t len = st->write.length;
    if (len > u->buf_cap) {
        uint8_t *b = realloc(u->buf, len);
        if (!b)
            return MK_ENOMEM;
        u->buf = b;
        u->buf_cap = len;
    }
    if (st->write.data == MK_SCN_DATA_FILL) {
        memset(u->buf, (int)st->write.value, len);
    } else if (st->write.data == MK_SCN_DATA_SEED) {
        mk_prng g;
        mk_prng_seed(&g, st->write.value);
        mk_prng_fill(&g, u->buf, len);
    } else {
        mk_prng_fill(&u->data_rng, u->buf, len);
    }
    return one_write(u, st->write.offset, u->buf, len);
}

static int workload_writes(run *u, uint64_t n)
{
    int rc = 0;
    if (!u->wl_ready) {
        if ((rc = mk_workload_init(&u->wl, u->cfg.workload, u->cfg.seed, u->cfg.nblocks,
                                   u->cfg.block_size)))
            return rc;
        u->wl_ready = 1;
    }
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        uint64_t off;
        uint32_t len;
        const uint8_t *data;
        mk_workload_next(&u->wl, &off, &len, &data);
        rc = one_write(u, off, data, len);
    }
    return rc;
}

static trigger *trigger_of(run *u, const mk_scenario_step *st)
{
    for (size_t i = 0; i < u->ntr; i++)
        if (u->tr[i].st == st)
            return &u->tr[i];
    return NULL;
}

static int run_step(run *u, const mk_scenario_step *st)
{
    trigger *t = trigger_of(u, st);
    trace(u, 7, st->kind, st->line);
    switch (st->kind) {
    case MK_SCN_WRITE: return explicit_write(u, st);
    case MK_SCN_WRITES: return workload_writes(u, st->writes.count);
    case MK_SCN_CP:
        u->writes_since_cp = 0;
        return interrupted(u, mk_pair_cp(u->p));
    case MK_SCN_CP_EVERY:
        u->cp_every = st->cp_every.every;
        u->writes_since_cp = 0;
        return 0;
    case MK_SCN_RESTART:
        if (!mk_pair_down(u->p, st->restart.role)) {
            snprintf(u->step_error, sizeof u->step_error, "line %u: restart %s: it is not down",
                     st->line, mk_scn_role_name(st->restart.role));
            return MK_ESTATE;
        }
        u->r->restarts++;
        return mk_pair_restart(u->p, st->restart.role);
    case MK_SCN_PROMOTE: return mk_pair_promote(u->p);
    case MK_SCN_CRASH:
        if (st->crash.trigger == MK_SCN_NOW) {
            if (mk_pair_down(u->p, st->crash.role))
                return MK_ESTATE; /* the parser's rules make this a bug */
            fire_crash(u, t);
            return mk_pair_crash(u->p, st->crash.role); /* reaps the kill now */
        }
        break;
    default: break;
    }
    /* A trigger: armed now, started now or at its event. */
    t->armed = 1;
    t->started = trigger_event(st) == NULL;
    if (st->kind == MK_SCN_LINK && t->started)
        return apply_link(u, t);
    return 0;
}

/* ---- checks before the run --------------------------------------------- */

/* col: the offending token's column, or 0 for the statement's keyword. */
static int refuse(run *u, const mk_scenario_step *st, uint32_t col, const char *fmt,
                  const char *arg)
{
    int n = snprintf(u->r->why, sizeof u->r->why, "%s:%u:%u: MK_EUSAGE: ",
                     mk_scenario_file(u->sc), st->line, col ? col : st->col);
    if (n > 0 && (size_t)n < sizeof u->r->why)
        snprintf(u->r->why + n, sizeof u->r->why - (size_t)n, fmt, arg);
    return MK_EUSAGE;
}

static int check_runnable(run *u)
{
    mk_scenario_error err;
    int sim = u->cfg.transport == MK_T_SIM;
    if (mk_scenario_check_points(u->sc, known_point, NULL, &err)) {
        mk_scenario_error_format(&err, u->r->why, sizeof u->r->why);
        return MK_EUSAGE;
    }
    for (size_t i = 0; i < mk_scenario_nsteps(u->sc); i++) {
        const mk_scenario_step *st = mk_scenario_step_at(u->sc, i);
        int at = st->kind == MK_SCN_CRASH && st->crash.trigger == MK_SCN_AT_POINT;
        if ((st->kind == MK_SCN_FAULT || at) && !mk_faults_compiled_in())
            return refuse(u, st, 0, "'%s' needs fault points: run the fault build "
                                 "(make fault-build; build/fault/mirrorkit)",
                          mk_scn_step_name(st->kind));
        if (!sim && (st->kind == MK_SCN_CRASH || st->kind == MK_SCN_RESTART ||
                     st->kind == MK_SCN_PROMOTE || st->kind == MK_SCN_LINK))
            return refuse(u, st, 0, "'%s' needs transport sim (a crash, restart, promotion "
                                 "or link fault of a forked destination is not simulated; "
                                 "see mirrorkit proxy and tests/t_sigkill.sh)",
                          mk_scn_step_name(st->kind));
        if (at) {
            int role = pattern_role(st->crash.point);
            if (role != st->crash.role)
                return refuse(u, st, st->point_col, "crash at '%s': the point is not in that role's process "
                                     "(ref/dest/..., ref/alloc/dest/... are the destination's; "
                                     "ref/source/..., ref/alloc/source/... the source's)",
                              st->crash.point);
        }
        if (st->kind == MK_SCN_FAULT && !sim && pattern_role(st->fault.point) != -2)
            return refuse(u, st, st->point_col, "fault at '%s': on transport pipe or tcp the destination "
                                 "is forked when the pair opens, before any step, so only "
                                 "the link's points can be armed from a step (for the "
                                 "destination's, run `mirrorkit dest` under MK_FIU or "
                                 "fiu-run)",
                          st->fault.point);
        if (st->kind == MK_SCN_FAULT && sim && pattern_role(st->fault.point) == -2)
            return refuse(u, st, st->point_col, "fault at '%s': the simulated link has no sockets; "
                                 "link points need transport pipe or tcp",
                          st->fault.point);
    }
    return 0;
}

/* ---- expectations ------------------------------------------------------ */

static void fail_why(run *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_why(run *u, const char *fmt, ...)
{
    if (!u->r->pass)
        return; /* the first reason is the one reported */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->r->why, sizeof u->r->why, fmt, ap);
    va_end(ap);
    u->r->pass = 0;
}

static void judge(run *u, const mk_pair_result *pr, uint64_t mirror_digest, int have_digest)
{
    mk_run_result *r = u->r;
    int expect_error = 0;
    r->pass = 1;
    for (size_t i = 0; i < mk_scenario_nexpects(u->sc); i++) {
        const mk_scenario_expect *e = mk_scenario_expect_at(u->sc, i);
        int code = r->err == MK_EREMOTE && r->remote_code ? r->remote_code : r->err;
        switch (e->kind) {
        case MK_SCN_EXPECT_VERIFY_EVERY_CP:
            if (pr->report.invariant || r->err == MK_EVERIFY)
                fail_why(u, "line %u: expect verify-every-cp: invariant I%d violated (%s)",
                         e->line, pr->report.invariant,
                         pr->report.what ? pr->report.what : "see the report");
            else if (!r->err && pr->cps_verified < pr->cps_done && !pr->final_checked)
                fail_why(u, "line %u: expect verify-every-cp: %u of %u CPs were acknowledged "
                            "after a crash, past later writes, and the run did not end at a "
                            "CP for the final full check to cover them (end with 'cp')",
                         e->line, pr->cps_done - pr->cps_verified, pr->cps_done);
            break;
        case MK_SCN_EXPECT_NO_ACKED_WRITE_LOST:
            if (pr->report.invariant == 2 || r->err == MK_ELOGLOST || pr->stats.out_of_sync)
                fail_why(u, "line %u: expect no-acked-write-lost: an acknowledged write was lost",
                         e->line);
            break;
        case MK_SCN_EXPECT_MIRROR_EQUALS:
            if (!u->cp_digest_set[i])
                fail_why(u, "line %u: expect mirror-equals cp=%llu: CP %llu was never taken",
                         e->line, (unsigned long long)e->cp, (unsigned long long)e->cp);
            else if (!have_digest || mirror_digest != u->cp_digest[i])
                fail_why(u, "line %u: expect mirror-equals cp=%llu: the mirror differs from "
                            "the CP %llu image",
                         e->line, (unsigned long long)e->cp, (unsigned long long)e->cp);
            break;
        case MK_SCN_EXPECT_ERROR:
            expect_error = 1;
            if (r->err != e->err && code != e->err)
                fail_why(u, "line %u: expect error %s: the run ended with %s", e->line,
                         mk_errname(e->err), r->err ? mk_errname(code) : "no error");
            break;
        case MK_SCN_EXPECT_OUT_OF_SYNC:
            if (!pr->stats.out_of_sync)
                fail_why(u, "line %u: expect out-of-sync: the session was never marked out "
                            "of sync", e->line);
            break;
        case MK_SCN_EXPECT_EXIT:
            if (mk_exit_code(code) != e->exit_code)
                fail_why(u, "line %u: expect exit %d: the run's exit code is %d (%s)", e->line,
                         e->exit_code, mk_exit_code(code), r->err ? mk_errname(code) : "ok");
            break;
        }
    }
    if (!expect_error && r->err) {
        int code = r->err == MK_EREMOTE && r->remote_code ? r->remote_code : r->err;
        fail_why(u, "the run ended with %s: %s%s%s%s", mk_errname(code), mk_strerror(code),
                 pr->report.invariant ? " (an invariant was violated)" : "",
                 u->step_error[0] ? " " : "", u->step_error);
    }
    if (u->o->unfired_ok)
        return;
    for (size_t i = 0; i < u->ntr; i++) {
        const trigger *t = &u->tr[i];
        const mk_scenario_step *st = t->st;
        int fired = st->kind == MK_SCN_FAULT ? t->failed > 0 : t->done;
        if (fired)
            continue;
        char ev[64] = "";
        const mk_scn_event *e = trigger_event(st);
        if (e)
            mk_scn_event_format(e, ev, sizeof ev);
        if (!t->armed)
            fail_why(u, "line %u: '%s' never ran (the run ended before it)", st->line,
                     mk_scn_step_name(st->kind));
        else if (e && !t->started)
            fail_why(u, "line %u: '%s' never fired: event %s did not happen after it was "
                        "armed", st->line, mk_scn_step_name(st->kind), ev);
        else
            fail_why(u, "line %u: '%s' never fired: its point was hit %llu times after it "
                        "was armed", st->line, mk_scn_step_name(st->kind),
                     (unsigned long long)t->count);
    }
}

/* ---- the run ----------------------------------------------------------- */

int mk_run_scenario(const mk_scenario *sc, const mk_run_options *o, mk_run_result *r)
{
    run u = {0};
    mk_pair_result pr;
    mk_pair_hooks hooks = {hook_dest_event, hook_write, hook_cp_begin, &u};
    char workdir[64] = "";
    uint64_t t0 = mono_ns(), mirror_digest = 0;
    int rc, have_digest = 0;
    size_t nexp = mk_scenario_nexpects(sc);
    memset(r, 0, sizeof *r);
    u.sc = sc;
    u.o = o;
    u.r = r;
    mk_pair_defaults(&u.cfg);
    mk_scenario_apply(sc, &u.cfg);
    if ((rc = check_runnable(&u)))
        return rc;
    u.cfg.out = o->out;
    u.cfg.hooks = &hooks;
    if (!mk_scenario_uses_schedule(sc))
        u.cfg.cps = 0; /* the steps take the CPs; reports count them */
    u.cfg.crashable = u.cfg.transport == MK_T_SIM;
    mk_prng_seed(&u.fault_rng, u.cfg.seed ^ 0x6661756c74ULL);
    mk_prng_seed(&u.data_rng, u.cfg.seed ^ 0x64617461ULL);
    u.tr = calloc(mk_scenario_nsteps(sc) + 1, sizeof *u.tr);
    u.cp_digest = calloc(nexp + 1, sizeof *u.cp_digest);
    u.cp_digest_set = calloc(nexp + 1, sizeof *u.cp_digest_set);
    if (!u.tr || !u.cp_digest || !u.cp_digest_set) {
        rc = MK_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < mk_scenario_nsteps(sc); i++) {
        const mk_scenario_step *st = mk_scenario_step_at(sc, i);
        if (st->kind == MK_SCN_CRASH || st->kind == MK_SCN_FAULT || st->kind == MK_SCN_LINK)
            u.tr[u.ntr++].st = st;
        if (st->kind == MK_SCN_LINK)
            u.cfg.link = ""; /* the link's fault pipes, for the faults to come */
    }
    if (u.cfg.transport != MK_T_SIM) {
        const char *tmp = getenv("TMPDIR");
        snprintf(workdir, sizeof workdir, "%s/mk-scn-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(workdir)) {
            rc = MK_EIO;
            goto out;
        }
        u.cfg.workdir = workdir;
    }
    g_run = &u;
    points_enable(1);
    rc = mk_pair_open(&u.cfg, &u.p);
    /* CP 0 is the all-zero volume the pair starts from. */
    for (size_t i = 0; rc == 0 && i < nexp; i++)
        if (mk_scenario_expect_at(sc, i)->kind == MK_SCN_EXPECT_MIRROR_EQUALS &&
            mk_scenario_expect_at(sc, i)->cp == 0 &&
            image_digest(&u, mk_pair_store(u.p), &u.cp_digest[i]) == 0)
            u.cp_digest_set[i] = 1;
    for (size_t i = 0; rc == 0 && i < mk_scenario_nsteps(sc); i++) {
        const mk_scenario_step *st = mk_scenario_step_at(sc, i);
        if ((rc = run_step(&u, st)) && !u.step_error[0])
            snprintf(u.step_error, sizeof u.step_error, "at line %u ('%s')", st->line,
                     mk_scn_step_name(st->kind));
    }
    if (rc == 0 && mk_scenario_uses_schedule(sc))
        for (uint32_t k = 0; rc == 0 && k < u.cfg.cps; k++)
            if ((rc = workload_writes(&u, u.cfg.writes_per_cp)) == 0)
                rc = mk_pair_cp(u.p);
    if (rc == 0)
        rc = mk_pair_finish(u.p);
    if (u.p && mk_pair_mirror(u.p) && image_digest(&u, mk_pair_mirror(u.p), &mirror_digest) == 0)
        have_digest = 1;
    rc = mk_pair_close(u.p, rc, &pr);
    u.p = NULL;
    points_enable(0);
    g_run = NULL;
    r->err = rc;
    r->remote_code = pr.remote_code;
    r->invariant = pr.report.invariant;
    r->cps_done = pr.cps_done;
    r->cps_verified = pr.cps_verified;
    trace(&u, 8, pr.stats.writes, pr.stats.client_bytes);
    trace(&u, 9, pr.stats.log_bytes + pr.stats.cp_data_bytes + pr.stats.cp_ref_bytes,
          pr.stats.naks);
    trace(&u, 10, mirror_digest, (uint64_t)rc);
    judge(&u, &pr, mirror_digest, have_digest);
    rc = 0;
out:
    if (workdir[0]) {
        static const char *const files[] = {"mirror.img", "dest.log", "mirror.mkt"};
        char path[128];
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", workdir, files[i]);
            unlink(path);
        }
        rmdir(workdir);
    }
    if (u.wl_ready)
        mk_workload_free(&u.wl);
    free(u.buf);
    free(u.tr);
    free(u.cp_digest);
    free(u.cp_digest_set);
    r->ns = mono_ns() - t0;
    return rc;
}
