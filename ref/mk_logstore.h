/*
 * mk_logstore.h - the destination's local log store (SPEC.md section 7.3).
 *
 * An append-only file: two header slots (the newer valid one wins, so a
 * header rewrite is atomic without rename), then records framed exactly
 * like protocol frames: TRANSFER (a data transfer as received), CP_DATA (a
 * block sent whole during a CP), CP_COMMIT (the redo record: where every
 * block of the CP lives in this file) and CP_APPLIED (the mirror holds it).
 *
 * The index transfer ID -> file offset is kept in memory and rebuilt by a
 * validating scan on open; a torn or stale tail is cut, never applied.
 * Memory grows with the transfers in the file, not with the volume.
 *
 * Ownership: the store borrows its mk_file; the caller closes the file
 * after mk_logstore_free.
 */
#ifndef MK_LOGSTORE_H
#define MK_LOGSTORE_H

#include <stdint.h>

#include "mk_file.h"
#include "mk_wire.h"

#define MK_LOG_MAGIC 0x474C4B4Du /* bytes "MKLG" */
#define MK_LOG_VERSION 1
#define MK_LOG_SLOT_LEN 128
#define MK_LOG_DATA_START (2 * MK_LOG_SLOT_LEN)

typedef struct mk_logstore mk_logstore;

typedef struct mk_log_ident {
    uint64_t volume_id, nblocks, source_id;
    uint32_t block_size;
} mk_log_ident;

/* What opening found; for reports and for the destination's HELLO_ACK. */
typedef struct mk_log_info {
    int fresh;            /* file was empty: no identity yet */
    uint64_t records;     /* valid records scanned */
    uint64_t cut_bytes;   /* torn/stale tail bytes removed */
    uint64_t last_cp;     /* last committed CP (0: none) */
    uint64_t applied_cp;  /* last CP known applied to the mirror */
    uint64_t covers_tid;  /* transfers <= this are inside last_cp */
    uint64_t durable_tid; /* highest transfer ID in the log */
    uint64_t last_digest; /* CP digest (section 7.5) of last_cp; 0 if none */
    uint64_t size;        /* file size after the scan */
} mk_log_info;

/* One block of a committed CP: where its bytes are in the log file. */
typedef struct mk_redo_entry {
    uint64_t block, off;
} mk_redo_entry;

/* Opens and scans; cuts a torn tail.  MK_EMAGIC / MK_EVERSION when the
 * file is not a log of ours; MK_ECORRUPT when a damaged record has valid
 * newer records after it (damage inside the log, not a torn tail); the
 * specific error (MK_ETID, MK_ECP, MK_ERANGE, ...) when a record that passed
 * its checksum breaks a rule of section 7.6.  On any error the file is left
 * exactly as it was. */
int mk_logstore_open(mk_file *f, mk_logstore **out, mk_log_info *info);
void mk_logstore_free(mk_logstore *ls);
/* Writes the first header of a fresh log and syncs it. */
int mk_logstore_init(mk_logstore *ls, const mk_log_ident *id);
int mk_logstore_ident(const mk_logstore *ls, mk_log_ident *id); /* MK_ESTATE if fresh */
void mk_logstore_info(const mk_logstore *ls, mk_log_info *info);

/* Appends (not yet durable until mk_logstore_sync). */
int mk_logstore_append_transfer(mk_logstore *ls, const mk_log *l);
/* *data_off receives the file offset of the block's bytes. */
int mk_logstore_append_cp_data(mk_logstore *ls, uint64_t cp, uint64_t block,
                               const uint8_t *data, uint64_t *data_off);
/* The redo record; entries sorted by block, each block once, each naming
 * a slot of a transfer or a CP_DATA record of this CP.  digest is the CP
 * digest of section 7.5, kept so a resuming source can check a CP whose
 * CP_ACK it never saw. */
int mk_logstore_append_commit(mk_logstore *ls, uint64_t cp, uint64_t covers_tid,
                              uint64_t digest, const mk_redo_entry *e, uint64_t n);
int mk_logstore_append_applied(mk_logstore *ls, uint64_t cp);
int mk_logstore_sync(mk_logstore *ls);

/* Locates slot `slot` of transfer `tid` (MK_ENOTID, MK_ESLOT): the file
 * offset of its bytes, the volume block it holds and, if hash is not NULL,
 * H of its bytes as they were appended or scanned. */
int mk_logstore_find_slot(const mk_logstore *ls, uint64_t tid, uint32_t slot,
                          uint64_t *data_off, uint64_t *block, uint64_t *hash);
int mk_logstore_read(mk_logstore *ls, uint64_t off, void *buf, uint32_t n);
/* Copies n bytes of the log at off to dst at dst_off (mk_file_copy, with
 * buf as its bounce buffer): how a CP's blocks reach the mirror. */
int mk_logstore_copy_out(mk_logstore *ls, uint64_t off, uint64_t n, mk_file *dst,
                         uint64_t dst_off, void *buf, size_t bufsize);

/* The committed-but-unapplied CP found by the scan, if any: returns 1 and
 * an allocated entry array (caller frees) plus the CP digest recorded with
 * it, or 0 when nothing is pending. */
int mk_logstore_pending_redo(mk_logstore *ls, uint64_t *cp, uint64_t *digest,
                             mk_redo_entry **e, uint64_t *n);

/* One decoded header slot (section 7.3), for tools that show a log. */
typedef struct mk_log_header {
    uint64_t generation, base_cp, base_tid, next_seq, base_digest;
    mk_log_ident id;
} mk_log_header;
/* Decodes and validates one 128-byte slot: MK_EMAGIC, MK_EVERSION,
 * MK_ECHECKSUM, MK_ERESERVED or MK_ECORRUPT when it is not a valid slot. */
int mk_log_header_decode(const uint8_t *slot, mk_log_header *h);

/* Transfers with tid > after, in order, for promotion (section 8.4). */
typedef int (*mk_transfer_fn)(void *ctx, uint64_t tid, uint64_t offset,
                              uint32_t length, uint64_t data_off);
int mk_logstore_each_transfer(const mk_logstore *ls, uint64_t after,
                              mk_transfer_fn fn, void *ctx);

/* Log truncation (section 7.7): once CP `cp` is applied and no transfer
 * newer than covers_tid is in the log, the records are dead and the file
 * is reset to its headers.  Returns 1 if it reset, 0 if live data remains. */
int mk_logstore_reclaim(mk_logstore *ls);

#endif
