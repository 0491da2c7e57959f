/*
 * mk_run_cli.c - `mirrorkit scenario FILE...`: runs scenario scripts and
 * reports one line each, or TAP (--tap), plus JUnit XML (--junit FILE), and
 * with --coverage which fault points the scenarios hit.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_run.h"

static void scenario_help(FILE *o)
{
    fprintf(o,
            "usage: mirrorkit scenario [--tap] [--junit FILE] [--coverage] [--unfired-ok] [-v]\n"
            "                         FILE...\n"
            "\n"
            "Runs each scenario script (fault/SCENARIOS.md) on the reference pair and\n"
            "checks its expectations.  Prints one line per scenario:\n"
            "  PASS|FAIL  NAME  FILE  (time, CPs verified, how the run ended)  [reason]\n"
            "\n"
            "  --tap          TAP version 13 on stdout instead of the result lines\n"
            "  --junit FILE   also write JUnit XML to FILE\n"
            "  --coverage     after the runs, list how often each catalogued fault point\n"
            "                 was hit; exit 1 if one was never hit\n"
            "  --unfired-ok   a trigger that never fired is not a failure (the scripts\n"
            "                 mirrorkit sim writes out are random runs)\n"
            "  -v, --verbose  the pair's per-CP lines and summary for each scenario\n"
            "\n"
            "Scenarios with 'fault' or 'crash ... at=POINT' need the fault build\n"
            "(make fault-build; build/fault/mirrorkit).\n"
            "Exit: 0 every expectation held, 1 a scenario failed, 2 a file could not be\n"
            "parsed or run (its error names FILE:LINE:COL).\n");
}

typedef struct outcome {
    const char *file;
    char name[128];
    int status; /* 0 pass, 1 fail, 2 error */
    char why[800];
    double ms;
} outcome;

static void ending(const mk_run_result *r, char *buf, size_t n)
{
    int code = r->err == MK_EREMOTE && r->remote_code ? r->remote_code : r->err;
    snprintf(buf, n, "%u/%u CPs verified, %llu crashes, %llu faults, ended %s", r->cps_verified,
             r->cps_done, (unsigned long long)r->crashes, (unsigned long long)r->faults_fired,
             r->err ? mk_errname(code) : "ok");
}

int mk_cmd_scenario(int argc, char **argv)
{
    static const struct option opts[] = {{"tap", no_argument, NULL, 't'},
                                         {"junit", required_argument, NULL, 'j'},
                                         {"coverage", no_argument, NULL, 'c'},
                                         {"unfired-ok", no_argument, NULL, 'u'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int tap = 0, coverage = 0, verbose = 0, unfired_ok = 0, c;
    const char *junit = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case 't': tap = 1; break;
        case 'j': junit = optarg; break;
        case 'c': coverage = 1; break;
        case 'u': unfired_ok = 1; break;
        case 'v': verbose = 1; break;
        case 'h': scenario_help(stdout); return EXIT_OK;
        default:
            return mk_usage_error("scenario", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return mk_usage_error("scenario", "%sno scenario file given", "");
    int n = argc - optind, worst = 0;
    outcome *oc = calloc((size_t)n, sizeof *oc);
    uint64_t hits[64] = {0};
    if (!oc) {
        fprintf(stderr, "mirrorkit scenario: MK_ENOMEM: %s\n", mk_strerror(MK_ENOMEM));
        return EXIT_IO;
    }
    if (tap)
        printf("TAP version 13\n1..%d\n", n);
    for (int i = 0; i < n; i++) {
        outcome *x = &oc[i];
        mk_scenario *sc = NULL;
        mk_scenario_error err;
        mk_run_result r;
        mk_run_options o = {.out = verbose ? stdout : NULL, .unfired_ok = unfired_ok};
        char end[160] = "";
        x->file = argv[optind + i];
        if (mk_scenario_parse_file(x->file, &sc, &err)) {
            x->status = 2;
            mk_scenario_error_format(&err, x->why, sizeof x->why);
            snprintf(x->name, sizeof x->name, "%s", x->file);
        } else {
            snprintf(x->name, sizeof x->name, "%s",
                     mk_scenario_name(sc)[0] ? mk_scenario_name(sc) : x->file);
            fflush(stdout);
            int rc = mk_run_scenario(sc, &o, &r);
            x->ms = (double)r.ns / 1e6;
            if (rc) {
                x->status = 2;
                snprintf(x->why, sizeof x->why, "%s", r.why[0] ? r.why : mk_strerror(rc));
            } else {
                ending(&r, end, sizeof end);
                x->status = r.pass ? 0 : 1;
                snprintf(x->why, sizeof x->why, "%s%s%s", end, r.pass ? "" : ": ",
                         r.pass ? "" : r.why);
                for (size_t k = 0; k < mk_fault_npoints && k < 64; k++)
                    hits[k] += r.hits[k];
            }
            mk_scenario_free(sc);
        }
        if (x->status > worst)
            worst = x->status;
        if (tap) {
            printf("%s %d - %s\n", x->status ? "not ok" : "ok", i + 1, x->name);
            printf("  # %s (%s, %.1f ms)\n", x->why, x->file, x->ms);
        } else {
            printf("%s  %s  %s  (%.1f ms, %s)\n", x->status == 0 ? "PASS" : x->status == 1 ? "FAIL" : "ERROR",
                   x->name, x->file, x->ms, x->why);
        }
        fflush(stdout);
    }
    int passed = 0;
    for (int i = 0; i < n; i++)
        passed += oc[i].status == 0;
    if (!tap)
        printf("scenarios: %d passed, %d failed\n", passed, n - passed);
    if (junit) {
        FILE *f = fopen(junit, "w");
        if (!f) {
            fprintf(stderr, "mirrorkit scenario: MK_EIO: cannot write %s\n", junit);
            free(oc);
            return EXIT_IO;
        }
        double total = 0;
        for (int i = 0; i < n; i++)
            total += oc[i].ms;
        fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<testsuite name=\"mirrorkit-scenarios\" tests=\"%d\" failures=\"%d\" "
                   "errors=\"%d\" time=\"%.3f\">\n",
                n, n - passed, 0, total / 1e3);
        for (int i = 0; i < n; i++) {
            fprintf(f, "  <testcase classname=\"scenario\" name=\"");
            mk_xml_escaped(f, oc[i].name);
            fprintf(f, "\" file=\"");
            mk_xml_escaped(f, oc[i].file);
            fprintf(f, "\" time=\"%.3f\">", oc[i].ms / 1e3);
            if (oc[i].status) {
                fprintf(f, "\n    <%s message=\"", oc[i].status == 1 ? "failure" : "error");
                mk_xml_escaped(f, oc[i].why);
                fprintf(f, "\"/>\n  ");
            }
            fprintf(f, "</testcase>\n");
        }
        fprintf(f, "</testsuite>\n");
        if (fclose(f)) {
            free(oc);
            return EXIT_IO;
        }
    }
    if (coverage) {
        int missed = 0;
        printf("fault-point coverage (hits over these scenarios):\n");
        for (size_t k = 0; k < mk_fault_npoints && k < 64; k++) {
            printf("  %10llu  %s\n", (unsigned long long)hits[k], mk_fault_points[k].name);
            missed += hits[k] == 0;
        }
        printf("coverage: %zu of %zu points hit\n", mk_fault_npoints - (size_t)missed,
               mk_fault_npoints);
        if (missed && worst == 0)
            worst = 1;
    }
    free(oc);
    return worst == 0 ? EXIT_OK : worst == 1 ? EXIT_VERIFY : EXIT_USAGE;
}
