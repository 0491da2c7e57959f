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

#include "mk_source.h"

enum { MK_T_SIM, MK_T_PIPE, MK_T_TCP, MK_T_CONNECT };

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
    /* Script mode (SPEC.md 10.2): instead of the workload and CP schedule,
     * read "write OFFSET HEXDATA" / "cp" / "quit" lines from script and
     * answer "ack N" / "cp-ack K" / "error MK_NAME" on script_out. */
    FILE *script, *script_out;
} mk_pair_config;

typedef struct mk_pair_result {
    uint32_t cps_done, cps_verified;
    uint64_t first_bad_block;  /* first differing block of a failed CP */
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

/* Compares two volumes block by block (XXH3-64 per block); 0 if equal,
 * else MK_EVERIFY with *bad set to the first differing block. */
int mk_compare_volumes(mk_file *a, mk_file *b, uint64_t nblocks, uint32_t bs,
                       uint64_t *bad);

#endif
