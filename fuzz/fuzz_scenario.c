/*
 * fuzz_scenario - the scenario-script parser (fault/SCENARIOS.md) fed any
 * bytes.
 *
 * Oracles beyond "no crash, no sanitizer report": input the parser accepts
 * prints in canonical form, that form parses back to an equal scenario, and
 * printing it again gives the same bytes (SCENARIOS.md section 6); input it
 * refuses gets an MK_EUSAGE error with a position inside the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_err.h"
#include "mk_scenario.h"

static char *print_to_mem(const mk_scenario *sc, size_t *n)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, n);
    if (!f)
        abort();
    if (mk_scenario_print(f, sc))
        abort();
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mk_scenario *sc = NULL, *back = NULL;
    mk_scenario_error err;
    int rc = mk_scenario_parse("fuzz", (const char *)data, size, &sc, &err);
    if (rc) {
        if (sc || (rc != MK_EUSAGE && rc != MK_ENOMEM))
            abort();
        /* A position, when given, lies inside the input (a line past the
         * last one is where something missing at the very end belongs). */
        if (rc == MK_EUSAGE && err.line == 0 && size > 0)
            abort();
        return 0;
    }
    size_t n1, n2;
    char *t1 = print_to_mem(sc, &n1);
    if (mk_scenario_parse("canonical", t1, n1, &back, &err) || !mk_scenario_equal(sc, back))
        abort();
    char *t2 = print_to_mem(back, &n2);
    if (n1 != n2 || memcmp(t1, t2, n1) != 0)
        abort();
    free(t1);
    free(t2);
    mk_scenario_free(back);
    mk_scenario_free(sc);
    return 0;
}
