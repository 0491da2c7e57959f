/*
 * mk_run.h - runs a scenario (fault/SCENARIOS.md) on the reference pair:
 * its steps in order, its faults at libfiu points, crashes at a point's
 * Nth hit or at a protocol event, link faults, restarts and promotion,
 * with the invariant checker watching every CP and every recovery, and
 * then its expectations.  `mirrorkit scenario`, `mirrorkit sim` and
 * `mirrorkit crashpoints` are built on it.
 *
 * Fault points need the fault build (FIU_ENABLE): in a normal build a
 * scenario that names one is refused with a message saying so.  One
 * scenario runs at a time in a process (libfiu's external callbacks carry
 * no context); `sim --jobs` forks.
 */
#ifndef MK_RUN_H
#define MK_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "mk_faults.h"
#include "mk_scenario.h"

typedef struct mk_run_options {
    FILE *out;         /* the pair's per-CP lines and summary; NULL: quiet */
    /* Triggers that never fired fail the scenario ("a crash that did not
     * happen tests nothing"); a random configuration (sim) may let them. */
    int unfired_ok;
    /* Crash-point enumeration: crash crash_role at the crash_at-th hit of
     * any of its fault points (0: never), restart it, go on. */
    uint64_t crash_at;
    int crash_role;
} mk_run_options;

typedef struct mk_run_result {
    int pass;                  /* every expectation held */
    int err;                   /* the error the run ended with, 0 if none */
    int remote_code;           /* with MK_EREMOTE: the destination's error */
    int invariant;             /* the first invariant violated, 0 if none */
    uint32_t cps_done, cps_verified;
    uint64_t writes, crashes, restarts, faults_fired;
    uint64_t hits_total;       /* fault-point hits of the whole run */
    uint64_t role_hits;        /* ... of crash_role's points */
    uint64_t hits[64];         /* per catalogued point (mk_fault_points order) */
    int crashed_at;            /* crash_at: 1 if that hit came and crashed */
    char crash_point[64];      /* ... at this point */
    uint64_t trace;            /* a hash of everything the run did (determinism) */
    uint64_t ns;               /* wall time */
    char why[512];             /* the first expectation that failed, or "" */
} mk_run_result;

/* Runs sc.  Returns 0 when the run could be carried out (r->pass says
 * whether its expectations held), or MK_EUSAGE when the scenario cannot
 * run here (r->why says why: an unknown fault point, a crash on a
 * transport other than sim, fault points in a build without them). */
int mk_run_scenario(const mk_scenario *sc, const mk_run_options *o, mk_run_result *r);

/* `mirrorkit scenario FILE...` */
int mk_cmd_scenario(int argc, char **argv);

#endif
