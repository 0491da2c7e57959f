/*
 * mk_pair.h - runs a source and a destination as a pair: a workload of
 * client writes, a schedule of CPs, and after every CP a block-by-block
 * comparison of the source's CP image with the destination's mirror.
 *
 * Transports: "sim" (both engines in this process, a deterministic
 * simulated link that slices the byte streams by the run's seed), "pipe"
 * (the destination in a forked process over a socketpair), "tcp" (a forked
 * destination on loopback TCP) and "connect" (an external destination at
 * cfg->connect, e.g. `mirrorkit dest --listen`, resumed after reconnects).
 */
#ifndef MK_PAIR_H
#define MK_PAIR_H

#include <stdint.h>
#include <stdio.h>

#include "mk_check.h"
#include "mk_source.h"

enum { MK_T_SIM, MK_T_PIPE, MK_T_TCP, MK_T_CONNECT };

/* How the mirror is checked after each CP (section 9, I1): the CP's blocks
 * plus a rolling scrub window (default), every block, or not at all.  A
 * run that checks ends with a full comparison either way. */
enum { MK_VERIFY_INCREMENTAL, MK_VERIFY_FULL, MK_VERIFY_OFF };

typedef struct mk_pair_config {
    uint64_t nblocks;
    uint32_t block_size;
    int mode, workload, transport;
    uint32_t cps;
    uint64_t writes_per_cp, seed;
    uint64_t volume_id, source_id;
    const char *record;       /* save the source->destination stream here */
    const char *workdir;      /* pipe/tcp: where the destination's files go */
    const char *connect;      /* connect: the destination's address */
    const char *verify_image; /* connect: the destination's mirror, if local */
    uint32_t reconnect_timeout_s;
    FILE *out;                /* per-CP lines and summary; NULL: silent */
    int verify;               /* MK_VERIFY_* */
    uint64_t scrub_per_cp;    /* blocks of rolling scrub per CP */
    int json;                 /* reports as JSON lines instead of text */
    /* A test aid: after CP corrupt_cp is checked, flip one byte of block
     * corrupt_block in the destination's mirror (0: never). */
    uint64_t corrupt_cp, corrupt_block;
    /* A test aid: per mille chance that a chunk crossing the simulated
     * link gets one bit flipped (0: never). */
    uint32_t link_corrupt;
    /* Link faults for the simulated link: statements of the scenario
     * language's `link` form without the keyword, separated by ';', e.g.
     * "drop prob=1/200; latency ms=3 jitter=1; slicer bytes=7 dir=to-dest". */
    const char *link;
    /* Script mode (SPEC.md 10.2): instead of the workload and CP schedule,
     * read "write OFFSET HEXDATA" / "cp" / "quit" lines from script and
     * answer "ack N" / "cp-ack K" / "error MK_NAME" on script_out. */
    FILE *script, *script_out;
} mk_pair_config;

typedef struct mk_pair_result {
    uint32_t cps_done, cps_verified;
    mk_check_report report;    /* the first violation, if any */
    uint64_t run_ns;           /* wall time of the whole run */
    uint64_t verify_cp_ns;     /* ... spent in the per-CP checks */
    uint64_t verify_final_ns;  /* ... spent in the final full check */
    uint64_t blocks_checked;
    uint64_t bits_flipped, stalls; /* --link-corrupt: what the link did */
    mk_source_stats stats;
    int err;                   /* first error, 0 if none */
    int remote_code;           /* with MK_EREMOTE: the destination's error */
} mk_pair_result;

int mk_transport_parse(const char *s); /* MK_T_* or MK_EINVAL */
const char *mk_transport_name(int t);

/* Fills cfg with the demo's embedded defaults. */
void mk_pair_defaults(mk_pair_config *cfg);

/* Returns 0 if every CP verified; MK_EVERIFY if a comparison failed; or
 * the error that stopped the run.  res is filled in either way. */
int mk_pair_run(const mk_pair_config *cfg, mk_pair_result *res);

int mk_verify_parse(const char *s); /* MK_VERIFY_* or MK_EINVAL */

#endif
