/*
 * mk_sim.h - the seeded swarm simulator with shrinking (`mirrorkit sim`)
 * and crash-point enumeration (`mirrorkit crashpoints`), on the scenario
 * runner (fault/mk_run.h).
 */
#ifndef MK_SIM_H
#define MK_SIM_H

#include <stdint.h>

typedef struct mk_sim_options {
    uint64_t seeds, from;
    int jobs;            /* worker processes */
    int determinism;     /* run each seed twice, compare the trace hashes */
    int verbose;         /* a line per seed, not only per failure */
    const char *outdir;  /* where failing runs are written as scripts */
} mk_sim_options;

typedef struct mk_sim_stats {
    uint64_t seeds, failed, errors, ns;
} mk_sim_stats;

/* Runs the seeds; failures are printed, written and shrunk.  0 if every
 * seed passed, MK_EVERIFY otherwise. */
int mk_sim_run(const mk_sim_options *o, mk_sim_stats *st);

int mk_cmd_sim(int argc, char **argv);
int mk_cmd_crashpoints(int argc, char **argv);

#endif
