/*
 * mk_pair.h - runs a source and a destination as a pair: a workload of
 * client writes, a schedule of CPs, and after every CP a block-by-block
 * comparison of the source's CP image with the destination's mirror.
 *
 * Transports: "sim" (both engines in this process, a deterministic
 * simulated link that slices the byte streams by the run's seed), "pipe"
 * (the destination in a forked process, a pipe(2) each way),
 * "socketpair" (a forked destination over a Unix socketpair), "tcp" (a
 * forked destination on loopback TCP) and "connect" (an external
 * destination at cfg->connect, e.g. `mirrorkit dest --listen`, resumed
 * after reconnects).
 */
#ifndef MK_PAIR_H
#define MK_PAIR_H

#include <stdint.h>
#include <stdio.h>

#include "mk_check.h"
#include "mk_source.h"

enum { MK_T_SIM, MK_T_PIPE, MK_T_TCP, MK_T_CONNECT, MK_T_SOCKETPAIR };

/* The two roles of a pair (the scenario language's `dest` and `source`). */
enum { MK_ROLE_DEST, MK_ROLE_SOURCE };

/* Hooks for a fault runner (fault/mk_run.c), called in the middle of the
 * run; any of them may call mk_pair_kill.  All optional. */
typedef struct mk_pair_hooks {
    /* A protocol event of the simulated destination (enum mk_dest_event). */
    void (*dest_event)(void *ctx, int kind, uint64_t n, uint64_t cp);
    /* The source accepted client write `wid` (write IDs count from 1). */
    void (*write_event)(void *ctx, uint64_t wid);
    /* CP `cp` started: the source's volume holds its image right now. */
    void (*cp_begin)(void *ctx, uint64_t cp);
    void *ctx;
} mk_pair_hooks;

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
    /* Where the source's volume, its Merkle tree and the verifier's
     * provenance live, as sparse files created afresh (NULL: in memory).
     * With it, memory measures the engines, not the volume's data. */
    const char *store_dir;
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
    /* sim: keep the destination's files (mirror, log, tree) on one crash
     * clock so that mk_pair_crash loses what was not synced, and keep the
     * checksums I3 needs after a recovery. */
    int crashable;
    const mk_pair_hooks *hooks;
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
    int final_checked;         /* the final full check ran and held */
} mk_pair_result;

int mk_transport_parse(const char *s); /* MK_T_* or MK_EINVAL */
const char *mk_transport_name(int t);

/* Fills cfg with the demo's embedded defaults. */
void mk_pair_defaults(mk_pair_config *cfg);

/* Returns 0 if every CP verified; MK_EVERIFY if a comparison failed; or
 * the error that stopped the run.  res is filled in either way. */
int mk_pair_run(const mk_pair_config *cfg, mk_pair_result *res);

int mk_verify_parse(const char *s); /* MK_VERIFY_* or MK_EINVAL */

/*
 * The same run, step by step, for a runner that interleaves faults with the
 * workload (fault/mk_run.c).  mk_pair_run is mk_pair_open, then writes and
 * CPs from the schedule, then mk_pair_finish and mk_pair_close.
 *
 * Ownership: the pair borrows cfg (and its hooks) until mk_pair_close,
 * which frees the pair whatever happened and fills res.
 */
typedef struct mk_pair mk_pair;
struct mk_lf;

/* Opens the pair and establishes the first session.  *out is set even on
 * failure (unless memory ran out), so mk_pair_close can report it. */
int mk_pair_open(const mk_pair_config *cfg, mk_pair **out);
/* One client write; in sync mode it waits for the acknowledgement unless a
 * role goes down meanwhile.  MK_ECLOSED if the source is down. */
int mk_pair_write(mk_pair *p, uint64_t off, const void *data, uint32_t len);
/* Takes the next CP, waits for its CP_ACK and checks the mirror (I1). */
int mk_pair_cp(mk_pair *p);
/* Drains, then checks every block (I1) and that no acked write was lost. */
int mk_pair_finish(mk_pair *p);
/* Ends the run, prints the summary, fills res, frees p; returns the
 * run's error (rc if it was not 0). */
int mk_pair_close(mk_pair *p, int rc, mk_pair_result *res);

/* sim only (MK_EINVAL otherwise).  mk_pair_kill marks a role dead at once:
 * every later storage call of it fails and its unsent output is lost; the
 * driver reaps it when the engine call that is running returns (a crash
 * inside a call, from a hook).  mk_pair_crash kills and reaps now.  A
 * reaped destination loses every write it had not synced.  A role whose
 * restart is automatic (mk_pair_set_restart) is restarted when reaped;
 * else it stays down until mk_pair_restart.  Restarting the destination is
 * its recovery, checked for I3; a restarted source has lost its memory.
 * With torn set, the call that is dying goes ahead: a torn write on a
 * crashable file persists its prefix and runs the crash clock out itself. */
void mk_pair_kill(mk_pair *p, int role, int torn);
int mk_pair_crash(mk_pair *p, int role);
int mk_pair_restart(mk_pair *p, int role);
void mk_pair_set_restart(mk_pair *p, int role, int automatic);
int mk_pair_down(const mk_pair *p, int role);
/* Killed and not yet reaped: the role's process is dying inside a call. */
int mk_pair_dying(const mk_pair *p, int role);
/* 1 while the invariant checker reads the files (its reads are not the
 * engines' calls: a fault runner lets them pass). */
int mk_pair_checking(const mk_pair *p);
/* Section 8.4: the source is lost, the destination becomes a volume;
 * checks I2 on it. */
int mk_pair_promote(mk_pair *p);

mk_source *mk_pair_source(mk_pair *p);       /* NULL while the source is down */
mk_file *mk_pair_store(mk_pair *p);          /* the source's volume */
mk_file *mk_pair_mirror(mk_pair *p);         /* the mirror as the checker reads it */
struct mk_lf *mk_pair_link_faults(mk_pair *p, int dir); /* 0 to dest, 1 back; NULL without link faults */
uint64_t mk_pair_now(const mk_pair *p);
const mk_pair_result *mk_pair_progress(const mk_pair *p);

#endif
