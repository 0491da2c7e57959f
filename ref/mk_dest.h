/*
 * mk_dest.h - the destination engine (SPEC.md sections 2, 4, 7, 8), sans I/O.
 *
 * The engine consumes the source's bytes (mk_dest_recv), writes its log
 * store and mirror image through the mk_file seam, and leaves the bytes to
 * send back in mk_dest_out(), which the transport drains.  It never touches
 * a socket, a clock or a thread, so a simulator, a fuzzer and a TCP server
 * drive the very same code.  Time comes in as an argument.
 *
 * Errors: a protocol violation ends the session (an ERROR frame is queued,
 * further input is refused until mk_dest_session_end); a storage error is
 * fatal for the engine, which must be reopened (that is the crash/restart
 * path, which recovers from the log).  Both are sticky.
 *
 * Ownership: the engine borrows the two files; close them after
 * mk_dest_free.
 */
#ifndef MK_DEST_H
#define MK_DEST_H

#include <stdint.h>

#include "mk_buf.h"
#include "mk_file.h"
#include "mk_logstore.h"

typedef struct mk_dest mk_dest;

typedef struct mk_dest_config {
    /* Expected volume; zeros mean "adopt the first source's HELLO". */
    uint64_t volume_id, nblocks;
    uint32_t block_size;
    /* The mirror's Merkle tree file (section 9.7), a cache of the image:
     * NULL keeps it in memory, rebuilt from the image when the engine
     * opens an existing log.  Borrowed, like the other files. */
    mk_file *tree;
    /* Protocol events (enum mk_dest_event), reported the moment they
     * happen, for a fault runner that crashes the destination there
     * (fault/SCENARIOS.md 3.3).  NULL: none.  The callback may make every
     * later storage call fail (a crash); the engine then stops as a storage
     * error makes it. */
    void (*event)(void *ctx, int kind, uint64_t n, uint64_t cp);
    void *event_ctx;
} mk_dest_config;

/* The events of mk_dest_config.event: what n and cp are. */
enum mk_dest_event {
    MK_DEV_TRANSFER = 1, /* transfer n appended to the log, not yet acked (4.4) */
    MK_DEV_LOG_ACK,      /* a LOG_ACK covering transfers up to n queued (4.4) */
    MK_DEV_CP_BEGIN,     /* CP_BEGIN of CP cp accepted (7.1) */
    MK_DEV_DATA,         /* the n-th CP_DATA record of CP cp appended (7.2) */
    MK_DEV_REF,          /* the n-th REF of CP cp resolved, or NAKed (7.2) */
    MK_DEV_CP_COMMIT,    /* CP cp's redo record durable, mirror untouched (7.4) */
    MK_DEV_CP_ACK        /* CP_ACK of CP cp queued (7.5) */
};

typedef struct mk_dest_stats {
    uint64_t bytes_in, bytes_out, frames_in;
    uint64_t transfers, log_syncs, cp_data, cp_refs, naks, cps_applied;
    uint64_t redo_cps;  /* CPs re-applied from the redo record on open */
    uint64_t cut_bytes; /* torn tail cut on open */
    uint64_t sessions;
} mk_dest_stats;

/* Opens the log (recovering: torn-tail cut, redo of a committed CP). */
int mk_dest_open(const mk_dest_config *cfg, mk_file *mirror, mk_file *log,
                 mk_dest **out);
void mk_dest_free(mk_dest *d);

/* Feeds bytes from the source.  Returns 0, or the sticky error that ended
 * the session or the engine (an ERROR frame is then in the output). */
int mk_dest_recv(mk_dest *d, const void *buf, size_t n, uint64_t now);
/* Bytes to send to the source; the transport consumes what it sent. */
mk_buf *mk_dest_out(mk_dest *d);
/* The connection is gone: forget partial input, the session and any CP not
 * yet committed, and wait for a new HELLO.  Clears a session error. */
void mk_dest_session_end(mk_dest *d);
/* The sticky error, 0 if none. */
int mk_dest_error(const mk_dest *d);
/* Section 8.4: after the source is lost, replay every durable transfer
 * newer than the last CP onto the mirror, sync it, and retire the log. */
int mk_dest_promote(mk_dest *d);

const mk_dest_stats *mk_dest_get_stats(const mk_dest *d);
void mk_dest_log_info(const mk_dest *d, mk_log_info *info);
/* Volume geometry once known (after a HELLO or from an existing log). */
int mk_dest_ident(const mk_dest *d, mk_log_ident *id);

#endif
