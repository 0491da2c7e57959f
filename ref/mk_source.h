/*
 * mk_source.h - the source engine (SPEC.md sections 2, 4, 5, 6, 7, 8), sans
 * I/O.
 *
 * Client writes go in through mk_source_write (saved to the source's own
 * store through the mk_file seam, logged, and forwarded as data transfers);
 * mk_source_cp starts a consistency point; the destination's bytes go in
 * through mk_source_recv; the bytes to send wait in mk_source_out().  The
 * transport calls mk_source_connect on every new connection.
 *
 * Memory grows with dirty blocks, unacknowledged transfers and the CP in
 * flight, never with volume size (section 6.4).
 *
 * Ownership: the engine borrows the store; close it after mk_source_free.
 */
#ifndef MK_SOURCE_H
#define MK_SOURCE_H

#include <stdint.h>

#include "mk_buf.h"
#include "mk_file.h"

typedef struct mk_source mk_source;

#define MK_DEFAULT_MAX_LAG (8u << 20)

typedef struct mk_source_config {
    uint64_t volume_id, nblocks, source_id;
    uint32_t block_size;
    int mode;              /* MK_MODE_SYNC, MK_MODE_SEMI, MK_MODE_ASYNC */
    uint64_t max_lag;      /* unacknowledged transfer bytes (0: default) */
    /* The Merkle tree of the source's CP image (section 9.7), a sparse
     * cache file, or NULL: then the root in CP_ACK is not checked. */
    mk_file *tree;
} mk_source_config;

/* Section 11: the bandwidth accounting every run reports. */
typedef struct mk_source_stats {
    uint64_t writes, client_bytes;
    uint64_t transfers, log_bytes;        /* LOG frames, whole frame bytes */
    uint64_t cp_data_blocks, cp_data_bytes;
    uint64_t cp_ref_blocks, cp_ref_bytes;
    uint64_t cp_ctl_bytes;                /* CP_BEGIN and CP_COMMIT */
    uint64_t naive_bytes;                 /* dirty blocks x block size */
    uint64_t ref_naive_bytes;             /* REF blocks x block size */
    uint64_t session_bytes;               /* HELLO and ERROR */
    uint64_t naks, resent_transfers, resent_cps, reconnects;
    uint64_t sessions_lost;               /* to damaged bytes (section 8.5) */
    uint64_t cps_started, cps_acked;
    uint64_t lost_transfers;              /* acknowledged, then lost by dest */
    int out_of_sync;                      /* a sync guarantee was broken */
} mk_source_stats;

int mk_source_new(const mk_source_config *cfg, mk_file *store, mk_source **out);
void mk_source_free(mk_source *s);

/* A new connection: queue HELLO; the session resumes on HELLO_ACK. */
int mk_source_connect(mk_source *s, uint64_t now);
/* The connection is gone; writes and CPs are kept for the next session. */
void mk_source_disconnect(mk_source *s);

/* A client write of len bytes at byte offset off.  *wid receives its write
 * ID; it is acknowledged once mk_source_acked() >= *wid (section 5).
 * MK_EAGAIN: the lag bound is reached (wait for acknowledgements);
 * MK_ECPFULL: one CP cannot hold the blocks it would dirty (take a CP);
 * in both cases nothing was done. */
int mk_source_write(mk_source *s, uint64_t off, const void *data, uint32_t len,
                    uint64_t now, uint64_t *wid);
/* Starts CP number mk_source_cp_acked()+1.  MK_EAGAIN while a CP is in
 * flight or, in sync mode, while a transfer it would cover is unacked. */
int mk_source_cp(mk_source *s, uint64_t now);
/* 0, or an error.  When mk_source_error() is then still 0 the session was
 * lost to damaged bytes (mk_source_ready() is 0): reconnect and resume. */
int mk_source_recv(mk_source *s, const void *buf, size_t n, uint64_t now);
mk_buf *mk_source_out(mk_source *s);

uint64_t mk_source_acked(const mk_source *s);     /* highest acked write ID */
uint64_t mk_source_cp_acked(const mk_source *s);  /* last CP acknowledged */
int mk_source_cp_in_flight(const mk_source *s);
int mk_source_ready(const mk_source *s);          /* session established */
uint64_t mk_source_unacked_bytes(const mk_source *s);
uint64_t mk_source_dirty_blocks(const mk_source *s);
int mk_source_error(const mk_source *s);          /* sticky fatal error */
/* The CP in flight, or else the last CP acknowledged, record by record
 * (ascending block order), for the verifier's provenance: what the
 * destination was told to apply.  Valid until the next mk_source_cp. */
typedef struct mk_cp_record {
    uint64_t block, tid; /* tid 0: sent as DATA */
    uint64_t hash;       /* XXH3-64 of the block's CP content */
    uint32_t slot;
    int is_ref;          /* sent as REF (tid, slot) */
    int naked;           /* ... refused by the destination, resent as DATA */
} mk_cp_record;
size_t mk_source_cp_size(const mk_source *s);
int mk_source_cp_record(const mk_source *s, size_t i, mk_cp_record *out);

/* After the source failed with MK_EVERIFY because the mirror's Merkle root
 * differed (section 9.7): the differing blocks the descent found (at most
 * MK_SOURCE_MAX_DIFFS, ascending), the tree nodes it asked for, and
 * whether more blocks may differ. */
#define MK_SOURCE_MAX_DIFFS 16
const uint64_t *mk_source_diff_blocks(const mk_source *s, size_t *n, uint64_t *queries,
                                      int *truncated);

/* After MK_EREMOTE: the destination's error code and message (section 3.6). */
int mk_source_remote_error(const mk_source *s, const char **msg);
const mk_source_stats *mk_source_get_stats(const mk_source *s);

#endif
