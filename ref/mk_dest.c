#include "mk_dest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_err.h"
#include "mk_fiu.h"
#include "mk_map.h"
#include "mk_merkle.h"
#include "mk_vec.h"
#include "mk_wire.h"

#ifdef MK_MUTANT_DEST_DIGEST_NO_BLOCK
/* Planted bug (verify/MUTANTS.md): the CP digest chain hashes each block's
 * checksum but not its block number.  It is used everywhere the destination
 * computes a digest (redo record, read-back check, recovery), so the
 * destination agrees with itself, but CP_ACK and HELLO_ACK carry a digest
 * that is not SPEC.md 7.5's. */
#include <xxhash.h>
static uint64_t mutant_digest_step(uint64_t d, uint64_t block, uint64_t hash)
{
    uint8_t e[8];
    (void)block;
    mk_put_le64(e, hash);
    return XXH3_64bits_withSeed(e, sizeof e, d);
}
#define mk_digest_step mutant_digest_step
#endif

enum { S_AWAIT_HELLO, S_READY };

/* How the destination reads a CP back from its log (7.4 step 5): blocks
 * that lie close together in the file (a transfer's slots, the CP_DATA
 * records of a CP, the records of consecutive small transfers) are read
 * with one call of up to LOG_SPAN bytes, skipping gaps of at most LOG_GAP
 * bytes, because on a virtual machine a system call costs as much as
 * copying tens of kilobytes.  The span buffer is the destination's only
 * buffer for it, grown to the largest span read so far (never past
 * LOG_SPAN, never past the log), so memory does not grow with the size of
 * a CP. */
#define LOG_SPAN (1u << 20)
#define LOG_GAP (16u << 10)

/* A block to read back: where it is in the log, and which one it is. */
typedef struct log_blk {
    uint64_t off;
    size_t i;
} log_blk;

/* One block staged for the open CP: where its CP content is in the log. */
typedef struct staged {
    uint64_t block, off, hash;
    int naked; /* REF refused; waiting for the DATA resend */
} staged;

struct mk_dest {
    mk_dest_config cfg;
    mk_file *mirror, *logf;
    mk_logstore *log;
    mk_log_ident id;
    int have_id;
    int state;
    int sess_err;  /* protocol error: ends the session */
    int fatal;     /* storage error: ends the engine */
    uint64_t recv_seq, send_seq;
    uint64_t last_tid;     /* highest transfer ID received (durable or not) */
    uint64_t synced_tid;   /* highest transfer ID made durable and acked */
    mk_buf in, out;
    uint8_t *span;         /* blocks read back from the log, span_cap bytes */
    size_t span_cap;
    /* the open CP */
    int cp_open, commit_seen;
    mk_cp_begin cp;
    staged *st;
    size_t nst, capst;
    mk_map where;          /* block -> index in st */
    uint64_t outstanding;  /* NAKed blocks not yet resent */
    /* the mirror's Merkle tree (section 9.7) */
    mk_file *tree_file;
    int own_tree_file;
    mk_merkle *tree;
    mk_dest_stats stats;
    uint64_t ev_data, ev_refs; /* records of the open CP, for events */
#ifdef MK_MUTANT_DEST_ACK_UNSTORED
    mk_buf held; /* LOG payloads acknowledged but not yet appended */
#endif
};

/* ---- helpers ----------------------------------------------------------- */

/* Makes the span buffer hold at least n bytes (n <= LOG_SPAN). */
static int ensure_span(mk_dest *d, size_t n)
{
    if (n <= d->span_cap)
        return 0;
    uint8_t *p = realloc(d->span, n);
    if (!p)
        return MK_ENOMEM;
    d->span = p;
    d->span_cap = n;
    return 0;
}

static void event(mk_dest *d, int kind, uint64_t n, uint64_t cp)
{
    if (d->cfg.event)
        d->cfg.event(d->cfg.event_ctx, kind, n, cp);
}

static int fail_session(mk_dest *d, int err, const char *what)
{
    char msg[MK_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s: %s", what, mk_strerror(err));
    mk_error_encode(&d->out, d->send_seq++, err, msg);
    d->sess_err = err;
    return err;
}

static int fail_storage(mk_dest *d, int err, const char *what)
{
    fail_session(d, err, what);
    d->fatal = err;
    return err;
}

static void cp_reset(mk_dest *d)
{
    d->cp_open = d->commit_seen = 0;
    d->nst = 0;
    d->outstanding = 0;
    mk_map_clear(&d->where);
}

#ifdef MK_MUTANT_DEST_ACK_UNSTORED
/* Planted bug (verify/MUTANTS.md): LOG payloads are kept in memory (a
 * "write-back buffer") and acknowledged at once; they reach the log only
 * when a CP begins or the session ends, so a kill in between loses
 * transfers whose LOG_ACK was sent (SPEC.md 4.4). */
static int held_flush(mk_dest *d)
{
    int rc = 0;
    while (rc == 0 && mk_buf_len(&d->held) >= 4) {
        const uint8_t *p = mk_buf_peek(&d->held);
        uint32_t len = (uint32_t)mk_get_le64((const uint8_t[8]){p[0], p[1], p[2], p[3]});
        mk_frame f = {MK_F_LOG, 0, len, 0, p + 4};
        mk_log l;
        if ((rc = mk_log_decode(&f, &l)) == 0)
            rc = mk_logstore_append_transfer(d->log, &l);
        mk_buf_consume(&d->held, 4 + (size_t)len);
    }
    mk_buf_clear(&d->held);
    return rc;
}
#endif

/* Makes every appended transfer durable, then acknowledges the highest
 * one; acknowledgement is cumulative (section 4.4). */
static int flush_log_acks(mk_dest *d)
{
    if (d->last_tid == d->synced_tid)
        return 0;
    int rc = mk_logstore_sync(d->log);
    if (rc)
        return fail_storage(d, rc, "log sync");
    d->stats.log_syncs++;
    d->synced_tid = d->last_tid;
    if ((rc = mk_log_ack_encode(&d->out, d->send_seq++, d->synced_tid)))
        return rc;
    event(d, MK_DEV_LOG_ACK, d->synced_tid, 0);
    return 0;
}

static int cmp_log_blk(const void *a, const void *b)
{
    const log_blk *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}


/* Hashes the n blocks of the log at b[k].off into h[b[k].i] (H of section
 * 3.2) and leaf[b[k].i] (the Merkle leaf of 9.7), one pass over each.  b
 * is sorted by offset here; the blocks are read in file order, spans at a
 * time.  Storage errors as mk_logstore_read returns them. */
static int hash_log_blocks(mk_dest *d, log_blk *b, size_t n, uint64_t *h, mk_h128 *leaf)
{
    uint32_t bs = d->id.block_size;
    int rc;
    if (n > 1)
        qsort(b, n, sizeof *b, cmp_log_blk);
    for (size_t k = 0; k < n;) {
        uint64_t start = b[k].off, end = start + bs;
        size_t j = k + 1;
        while (j < n && b[j].off >= end && b[j].off - end <= LOG_GAP &&
               b[j].off + bs - start <= LOG_SPAN)
            end = b[j++].off + bs;
        if ((rc = ensure_span(d, (size_t)(end - start))) ||
            (rc = mk_logstore_read(d->log, start, d->span, (uint32_t)(end - start))))
            return rc;
        for (; k < j; k++) {
            const uint8_t *p = d->span + (b[k].off - start);
            mk_block_sums(p, bs, &h[b[k].i], &leaf[b[k].i]);
        }
    }
    return 0;
}

/* Copies the blocks of a committed CP from the log into the mirror and
 * makes them durable (section 7.4 steps 5-6).  Every block is first read
 * back and hashed into the CP digest, which must come out as the digest
 * computed from what was verified when the CP was staged (and recorded
 * with the redo record), else the log was damaged after we wrote it: then
 * nothing is written.  The same read gives each block's Merkle leaf.  The
 * writes copy runs of blocks that are neighbours both in the volume and in
 * the log with one mk_logstore_copy_out, which between two files on one
 * kernel never brings the bytes into this process.  So each block is read
 * twice, to check and to copy: nothing may be written before the whole CP
 * has passed, and holding the CP in memory between the two would make the
 * destination's memory grow with the CP instead of one span.  Idempotent,
 * so recovery may repeat it after a crash at any point. */
static int apply_entries(mk_dest *d, const mk_redo_entry *e, uint64_t n, uint64_t digest)
{
    uint32_t bs = d->id.block_size;
    uint64_t dg = 0;
    int rc = 0;
    if (n > SIZE_MAX / (sizeof(log_blk) + sizeof(uint64_t) + sizeof(mk_h128)))
        return MK_ENOMEM;
    log_blk *b = malloc((n ? n : 1) * sizeof *b);
    uint64_t *h = malloc((n ? n : 1) * sizeof *h);
    mk_h128 *leaf = malloc((n ? n : 1) * sizeof *leaf);
    if (!b || !h || !leaf)
        rc = MK_ENOMEM;
    for (uint64_t i = 0; i < n && !rc; i++)
        b[i] = (log_blk){e[i].off, (size_t)i};
    if (!rc)
        rc = hash_log_blocks(d, b, (size_t)n, h, leaf);
    for (uint64_t i = 0; i < n && !rc; i++)
        dg = mk_digest_step(dg, e[i].block, h[i]);
    if (!rc && dg != digest)
        rc = MK_ECORRUPT;
    for (uint64_t i = 0; i < n && !rc;) {
        /* A run: blocks that follow each other in the volume and lie in
         * order within one span of the log. */
        uint64_t start = e[i].off, end = start + bs, j = i + 1;
        int contiguous = 1;
        while (j < n && e[j].block == e[j - 1].block + 1 && e[j].off >= end &&
               e[j].off - end <= LOG_GAP && e[j].off + bs - start <= LOG_SPAN) {
            contiguous &= e[j].off == end;
            end = e[j++].off + bs;
        }
#ifdef MK_MUTANT_DEST_APPLY_BY_INDEX
        /* Planted bug (verify/MUTANTS.md): the i-th block of the CP (in block
         * order) is written at i*B - the loop index, not the entry's block. */
        uint64_t at = i * bs;
#else
        uint64_t at = e[i].block * bs;
#endif
        if ((rc = ensure_span(d, (size_t)(end - start))))
            break;
        if (contiguous) {
            /* Slots of one transfer: the kernel copies them (the span is
             * only the bounce buffer of a copy it cannot make). */
            rc = mk_logstore_copy_out(d->log, start, end - start, d->mirror, at, d->span,
                                      d->span_cap);
        } else if ((rc = mk_logstore_read(d->log, start, d->span, (uint32_t)(end - start))) == 0) {
            /* Records with headers between their blocks (CP_DATA, small
             * transfers): the blocks are closed up in the span and written
             * with one call. */
            for (uint64_t k = i; k < j; k++)
                memmove(d->span + (k - i) * bs, d->span + (e[k].off - start), bs);
            rc = mk_file_pwrite(d->mirror, d->span, (size_t)(j - i) * bs, at);
        }
        for (; i < j && !rc; i++)
            rc = mk_merkle_set(d->tree, e[i].block, leaf[i]);
    }
    free(b);
    free(h);
    free(leaf);
    if (rc)
        return rc;
    /* The tree follows the mirror and is durable before CP_APPLIED, so a
     * crash in between is repaired by the same redo. */
    if ((rc = mk_file_sync(d->mirror)) || (rc = mk_merkle_commit(d->tree)))
        return rc;
    return mk_file_sync(d->tree_file);
}

/* Opens the mirror's tree once the volume is known.  An empty tree file
 * describes an all-zero volume, which is right for a fresh log; for an
 * existing one whose tree was lost (or kept in memory) it is rebuilt from
 * the image. */
static int open_tree(mk_dest *d, int fresh)
{
    uint64_t size;
    int rc = mk_merkle_open(d->tree_file, d->id.nblocks, &d->tree);
    if (rc || (rc = mk_file_size(d->tree_file, &size)))
        return rc;
    if (fresh && size)
        rc = mk_file_truncate(d->tree_file, 0);
    else if (!fresh && size == 0)
        rc = mk_merkle_rebuild(d->tree, d->mirror, d->id.block_size);
    else
        return 0;
    return rc ? rc : mk_file_sync(d->tree_file);
}

/* The mirror is a sparse image of exactly the volume's size, so every
 * later write lands inside it and unwritten blocks read as zeros.  A crash
 * between the log's first header and this leaves it short; opening the log
 * repeats it. */
static int size_mirror(mk_dest *d)
{
    uint64_t want = d->id.nblocks * d->id.block_size, have;
    int rc = mk_file_size(d->mirror, &have);
    if (rc == 0 && have < want && (rc = mk_file_truncate(d->mirror, want)) == 0)
        rc = mk_file_sync(d->mirror);
    return rc;
}

static int recover(mk_dest *d)
{
    mk_redo_entry *e = NULL;
    uint64_t cp, n, digest;
    int rc = mk_logstore_pending_redo(d->log, &cp, &digest, &e, &n);
    if (rc <= 0)
        return rc;
#ifdef MK_MUTANT_SKIP_REDO
    /* A planted bug for fault/'s simulator to find (make mutant-build):
     * recovery marks a committed CP applied without redoing it. */
    (void)digest;
    if ((rc = mk_logstore_append_applied(d->log, cp)) == 0)
#else
    if ((rc = apply_entries(d, e, n, digest)) == 0 &&
        (rc = mk_logstore_append_applied(d->log, cp)) == 0)
#endif
        rc = mk_logstore_sync(d->log);
    free(e);
    if (rc == 0)
        d->stats.redo_cps++;
    return rc;
}

int mk_dest_open(const mk_dest_config *cfg, mk_file *mirror, mk_file *log,
                 mk_dest **out)
{
    mk_dest *d = calloc(1, sizeof *d);
    mk_log_info info;
    int rc;
    if (!d)
        return MK_ENOMEM;
    d->cfg = *cfg;
    d->mirror = mirror;
    d->logf = log;
    d->tree_file = cfg->tree;
    if (!d->tree_file) {
        if ((rc = mk_file_mem("ref/dest/tree", &d->tree_file))) {
            free(d);
            return rc;
        }
        d->own_tree_file = 1;
    }
    mk_buf_init(&d->in);
    mk_buf_init(&d->out);
    mk_map_init(&d->where);
#ifdef MK_MUTANT_DEST_ACK_UNSTORED
    mk_buf_init(&d->held);
#endif
    if ((rc = mk_logstore_open(log, &d->log, &info)))
        goto fail;
    d->stats.cut_bytes = info.cut_bytes;
    if (!info.fresh) {
        mk_logstore_ident(d->log, &d->id);
        d->have_id = 1;
        if ((cfg->nblocks && cfg->nblocks != d->id.nblocks) ||
            (cfg->block_size && cfg->block_size != d->id.block_size) ||
            (cfg->volume_id && cfg->volume_id != d->id.volume_id)) {
            rc = MK_EVOLUME;
            goto fail;
        }
        if ((rc = size_mirror(d)) || (rc = open_tree(d, 0)) || (rc = recover(d)))
            goto fail;
    }
    d->last_tid = d->synced_tid = info.durable_tid;
    *out = d;
    return 0;
fail:
    mk_dest_free(d);
    return rc;
}

void mk_dest_free(mk_dest *d)
{
    if (!d)
        return;
    mk_logstore_free(d->log);
    mk_merkle_free(d->tree);
    if (d->own_tree_file)
        mk_file_close(d->tree_file);
    mk_buf_free(&d->in);
    mk_buf_free(&d->out);
    mk_map_free(&d->where);
#ifdef MK_MUTANT_DEST_ACK_UNSTORED
    mk_buf_free(&d->held);
#endif
    free(d->st);
    free(d->span);
    free(d);
}

mk_buf *mk_dest_out(mk_dest *d) { return &d->out; }
int mk_dest_error(const mk_dest *d) { return d->fatal ? d->fatal : d->sess_err; }
const mk_dest_stats *mk_dest_get_stats(const mk_dest *d) { return &d->stats; }
void mk_dest_log_info(const mk_dest *d, mk_log_info *info) { mk_logstore_info(d->log, info); }

int mk_dest_ident(const mk_dest *d, mk_log_ident *id)
{
    if (!d->have_id)
        return MK_ESTATE;
    *id = d->id;
    return 0;
}

void mk_dest_session_end(mk_dest *d)
{
#ifdef MK_MUTANT_DEST_ACK_UNSTORED
    if (d->have_id)
        (void)held_flush(d);
#endif
    mk_buf_clear(&d->in);
    mk_buf_clear(&d->out);
    cp_reset(d);
    d->state = S_AWAIT_HELLO;
    d->sess_err = 0;
    d->recv_seq = d->send_seq = 0;
}

/* ---- frame handlers --------------------------------------------------- */

static int on_hello(mk_dest *d, const mk_frame *f)
{
    mk_hello h;
    int rc = mk_hello_decode(f, &h);
    if (rc)
        return fail_session(d, rc, "HELLO");
    if ((d->cfg.nblocks && d->cfg.nblocks != h.nblocks) ||
        (d->cfg.block_size && d->cfg.block_size != h.block_size) ||
        (d->cfg.volume_id && d->cfg.volume_id != h.volume_id))
        return fail_session(d, MK_EVOLUME, "HELLO volume differs from configuration");
    if (!d->have_id) {
        mk_log_ident id = {h.volume_id, h.nblocks, h.source_id, h.block_size};
        uint64_t msize;
        /* A fresh log describes CP 0, the all-zero volume (section 1.1).
         * A mirror that already holds data belongs to some other history
         * (most likely its log was lost): refuse rather than wipe it. */
        if ((rc = mk_file_size(d->mirror, &msize)))
            return fail_storage(d, rc, "mirror size");
        if (msize != 0)
            return fail_session(d, MK_EDIVERGED,
                                "mirror image is not empty but the log is new");
        if ((rc = mk_logstore_init(d->log, &id)))
            return fail_storage(d, rc, "initialising the log");
        d->id = id;
        d->have_id = 1;
        if ((rc = size_mirror(d)) || (rc = open_tree(d, 1)))
            return fail_storage(d, rc, "sizing the mirror and its tree");
    }
    if (h.volume_id != d->id.volume_id || h.nblocks != d->id.nblocks ||
        h.block_size != d->id.block_size)
        return fail_session(d, MK_EVOLUME, "HELLO volume differs from the log's");
#ifdef MK_MUTANT_DEST_FOREIGN_SOURCE
    /* Planted bug (verify/MUTANTS.md): the source_id recorded in the log is
     * never compared, so any source that names the right volume is served. */
#else
    if (h.source_id != d->id.source_id)
        return fail_session(d, MK_EPEER, "HELLO from a source other than the log's");
#endif
    /* Whatever was appended is made durable before it is reported. */
    if (d->last_tid != d->synced_tid) {
        if ((rc = mk_logstore_sync(d->log)))
            return fail_storage(d, rc, "log sync");
        d->synced_tid = d->last_tid;
    }
    mk_log_info info;
    mk_logstore_info(d->log, &info);
    mk_hello_ack a = {d->id.volume_id, d->id.nblocks, d->id.block_size,
                      info.last_cp, info.durable_tid, h.source_id, info.last_digest};
    d->state = S_READY;
    d->stats.sessions++;
    return mk_hello_ack_encode(&d->out, d->send_seq++, &a);
}

static int on_log(mk_dest *d, const mk_frame *f)
{
    mk_log l;
    int rc = mk_log_decode(f, &l);
    if (rc)
        return fail_session(d, rc, "LOG");
    if (l.tid <= d->last_tid)
        return fail_session(d, MK_ETID, "LOG transfer ID");
    uint64_t vbytes = d->id.nblocks * d->id.block_size;
    if (l.offset > vbytes || l.length > vbytes - l.offset)
        return fail_session(d, MK_ERANGE, "LOG range");
#ifdef MK_MUTANT_DEST_ACK_UNSTORED
    uint8_t lenb[8];
    mk_put_le64(lenb, f->len);
    if ((rc = mk_buf_append(&d->held, lenb, 4)) || (rc = mk_buf_append(&d->held, f->payload, f->len)))
        return fail_storage(d, rc, "log append");
    d->last_tid = l.tid;
#else
    if ((rc = mk_logstore_append_transfer(d->log, &l)))
        return fail_storage(d, rc, "log append");
    d->last_tid = l.tid;
#endif
    d->stats.transfers++;
    event(d, MK_DEV_TRANSFER, l.tid, 0);
    return 0;
}

static int on_cp_begin(mk_dest *d, const mk_frame *f)
{
    mk_cp_begin b;
    mk_log_info info;
    int rc = mk_cp_begin_decode(f, &b);
    if (rc)
        return fail_session(d, rc, "CP_BEGIN");
#ifdef MK_MUTANT_DEST_ACK_UNSTORED
    if ((rc = held_flush(d)))
        return fail_storage(d, rc, "log append");
#endif
    if (d->cp_open)
        return fail_session(d, MK_ESTATE, "CP_BEGIN inside an open CP");
    mk_logstore_info(d->log, &info);
    if (b.cp != info.last_cp + 1)
        return fail_session(d, MK_ECP, "CP_BEGIN number");
    if (b.covers_tid > d->last_tid || b.covers_tid < info.covers_tid)
        return fail_session(d, MK_ETID, "CP_BEGIN covers a transfer not received");
    if (b.nrecords > d->id.nblocks || b.nrecords > MK_MAX_CP_BLOCKS)
        return fail_session(d, MK_ECOUNT, "CP_BEGIN record count");
    cp_reset(d);
    d->cp = b;
    d->cp_open = 1;
    d->ev_data = d->ev_refs = 0;
    event(d, MK_DEV_CP_BEGIN, 0, b.cp);
    return 0;
}

/* Admits one more record of the open CP for `block`; returns its staging
 * slot, or NULL after failing the session. */
static staged *stage(mk_dest *d, uint64_t block, int *rc)
{
    uint64_t idx;
    if (block >= d->id.nblocks) {
        *rc = fail_session(d, MK_ERANGE, "CP record block");
        return NULL;
    }
    if (mk_map_get(&d->where, block, &idx)) {
        if (d->st[idx].naked)
            return &d->st[idx];
        *rc = fail_session(d, MK_EDUPBLOCK, "CP record");
        return NULL;
    }
    if (d->commit_seen || d->nst >= d->cp.nrecords) {
        *rc = fail_session(d, d->commit_seen ? MK_ESTATE : MK_ECOUNT,
                           "CP record beyond the announced count");
        return NULL;
    }
    /* Fault point: staging a CP record needs memory (the staging array and
     * the block map grow), so any record may be the one that finds none. */
    fiu_do_on("ref/alloc/dest/staging", {
        *rc = fail_storage(d, MK_ENOMEM, "staging");
        return NULL;
    });
    staged *grown = mk_vec_grow(d->st, &d->capst, d->nst, sizeof *d->st, 1024);
    if (!grown) {
        *rc = fail_storage(d, MK_ENOMEM, "staging");
        return NULL;
    }
    d->st = grown;
    if ((*rc = mk_map_put(&d->where, block, d->nst))) {
        fail_storage(d, *rc, "staging");
        return NULL;
    }
    staged *s = &d->st[d->nst++];
    memset(s, 0, sizeof *s);
    s->block = block;
    return s;
}

static int cmp_staged(const void *a, const void *b)
{
    const staged *x = a, *y = b;
    return x->block < y->block ? -1 : x->block > y->block;
}

/* Section 7.4: redo record durable, then the mirror, then CP_ACK. */
static int apply_cp(mk_dest *d)
{
    int rc;
    uint64_t digest = 0, n = d->nst;
    if ((rc = flush_log_acks(d)))
        return rc;
    if (n) /* an empty CP may have no staging array at all */
        qsort(d->st, n, sizeof *d->st, cmp_staged);
    /* Fault point: out of memory for the redo record, after the CP was
     * staged and before it is committed (7.4 step 3). */
    fiu_do_on("ref/alloc/dest/redo", return fail_storage(d, MK_ENOMEM, "redo record"));
    mk_redo_entry *e = malloc((n ? n : 1) * sizeof *e);
    if (!e)
        return fail_storage(d, MK_ENOMEM, "redo record");
    for (uint64_t i = 0; i < n; i++) {
        e[i].block = d->st[i].block;
        e[i].off = d->st[i].off;
        digest = mk_digest_step(digest, d->st[i].block, d->st[i].hash);
    }
    rc = mk_logstore_sync(d->log);
    if (rc == 0)
        rc = mk_logstore_append_commit(d->log, d->cp.cp, d->cp.covers_tid, digest, e, n);
    if (rc == 0)
        rc = mk_logstore_sync(d->log);
    if (rc == 0)
        event(d, MK_DEV_CP_COMMIT, 0, d->cp.cp);
    if (rc == 0)
        rc = apply_entries(d, e, n, digest);
    free(e);
    if (rc == 0)
        rc = mk_logstore_append_applied(d->log, d->cp.cp);
    if (rc == 0 && (rc = mk_logstore_reclaim(d->log)) > 0)
        rc = 0;
    if (rc)
        return fail_storage(d, rc, "applying CP");
    mk_h128 root;
    if ((rc = mk_merkle_root(d->tree, &root)))
        return fail_storage(d, rc, "tree root");
    mk_cp_ack a = {d->cp.cp, n, digest, root.lo, root.hi};
    d->stats.cps_applied++;
    cp_reset(d);
    if ((rc = mk_cp_ack_encode(&d->out, d->send_seq++, &a)))
        return rc;
    event(d, MK_DEV_CP_ACK, 0, a.cp);
    return 0;
}

static int on_cp_data(mk_dest *d, const mk_frame *f)
{
    mk_cp_data c;
    int rc = mk_cp_data_decode(f, d->id.block_size, &c);
    if (rc)
        return fail_session(d, rc, "CP_DATA");
    if (!d->cp_open || c.cp != d->cp.cp)
        return fail_session(d, d->cp_open ? MK_ECP : MK_ESTATE, "CP_DATA");
    staged *s = stage(d, c.block, &rc);
    if (!s)
        return rc;
    uint64_t off;
    if ((rc = mk_logstore_append_cp_data(d->log, c.cp, c.block, c.data, &off)))
        return fail_storage(d, rc, "log append");
#ifdef MK_MUTANT_DEST_APPLY_EARLY
    /* Planted bug (verify/MUTANTS.md): "write-through" - the block is also
     * written into the mirror as soon as it arrives, before the CP commits
     * (SPEC.md 7.4 allows mirror writes only after the commit point). */
    if ((rc = mk_file_pwrite(d->mirror, c.data, d->id.block_size, c.block * d->id.block_size)))
        return fail_storage(d, rc, "mirror write");
#endif
    s->off = off;
    s->hash = mk_block_hash(c.data, d->id.block_size);
    if (s->naked) {
        s->naked = 0;
        d->outstanding--;
    }
    d->stats.cp_data++;
    event(d, MK_DEV_DATA, ++d->ev_data, c.cp);
    if (d->commit_seen && d->outstanding == 0)
        return apply_cp(d);
    return 0;
}

/* Resolves one REF against the log (section 7.2): the transfer must be in
 * the log and covered by this CP, the slot must exist and hold this block,
 * and its bytes must hash to the REF's checksum.  Those failures are NAK
 * reasons, not session errors.  The slot's hash was taken when the
 * transfer was appended (or scanned at open), from the bytes written to
 * the log, so resolving reads nothing; damage to the log since then is
 * what the read-back of 7.4 step 5 catches.  *off receives where the
 * slot's bytes are; *hash the slot's hash. */
static int resolve_ref(mk_dest *d, const mk_ref *r, uint64_t *off, uint64_t *hash)
{
    uint64_t block;
#ifdef MK_MUTANT_DEST_REF_NO_COVERS
    /* Planted bug (verify/MUTANTS.md): rule 1 (tid <= covers_tid) is not
     * checked; any transfer in the log may be referenced. */
#else
    if (r->tid > d->cp.covers_tid)
        return MK_ETID;
#endif
    int rc = mk_logstore_find_slot(d->log, r->tid, r->slot, off, &block, hash);
    if (rc)
        return rc;
#ifdef MK_MUTANT_DEST_REF_ANY_SLOT
    /* Planted bug (verify/MUTANTS.md): rule 4 is not checked - the slot may
     * hold another volume block than the one the REF fills. */
#else
    if (block != r->block)
        return MK_ESLOT;
#endif
#ifdef MK_MUTANT_DEST_REF_NO_HASH
    /* Planted bug (verify/MUTANTS.md): rule 5 is not checked; the slot's
     * bytes are taken whatever the REF's checksum says (on_cp_ref stages
     * the slot's hash). */
    return 0;
#else
    return *hash == r->hash ? 0 : MK_EREFHASH;
#endif
}

static int on_cp_ref(mk_dest *d, const mk_frame *f)
{
    uint64_t cp;
    uint32_t count;
    int rc = mk_cp_ref_decode(f, &cp, &count);
    if (rc)
        return fail_session(d, rc, "CP_REF");
    if (!d->cp_open || cp != d->cp.cp)
        return fail_session(d, d->cp_open ? MK_ECP : MK_ESTATE, "CP_REF");
    if (d->commit_seen)
        return fail_session(d, MK_ESTATE, "CP_REF after CP_COMMIT");
    /* Pass 1 admits every entry (range, duplicates, count) before pass 2
     * resolves any, so a frame that is rejected sends no NAK first. */
    size_t first = d->nst;
    for (uint32_t i = 0; i < count; i++) {
        mk_ref r;
        mk_ref_at(f, i, &r);
        staged *s = stage(d, r.block, &rc);
        if (!s)
            return rc;
        if (s->naked)
            return fail_session(d, MK_EDUPBLOCK, "CP_REF for a NAKed block");
    }
    for (uint32_t i = 0; i < count; i++) {
        mk_ref r;
        uint64_t off, hash;
        mk_ref_at(f, i, &r);
        staged *s = &d->st[first + i];
        rc = resolve_ref(d, &r, &off, &hash);
        d->stats.cp_refs++;
        event(d, MK_DEV_REF, ++d->ev_refs, cp);
        if (rc == 0) {
            s->off = off;
            s->hash = r.hash;
#ifdef MK_MUTANT_DEST_REF_NO_HASH
            s->hash = hash;
#endif
            continue;
        }
        s->naked = 1;
        d->outstanding++;
        d->stats.naks++;
        mk_nak n = {cp, r.block, rc};
        if ((rc = mk_nak_encode(&d->out, d->send_seq++, &n)))
            return fail_storage(d, rc, "NAK");
    }
    return 0;
}

static int on_cp_commit(mk_dest *d, const mk_frame *f)
{
    mk_cp_commit c;
    int rc = mk_cp_commit_decode(f, &c);
    if (rc)
        return fail_session(d, rc, "CP_COMMIT");
    if (!d->cp_open || d->commit_seen)
        return fail_session(d, MK_ESTATE, "CP_COMMIT without an open CP");
    if (c.cp != d->cp.cp)
        return fail_session(d, MK_ECP, "CP_COMMIT number");
    if (c.nrecords != d->cp.nrecords || d->nst != d->cp.nrecords)
        return fail_session(d, MK_ECOUNT, "CP_COMMIT record count");
    d->commit_seen = 1;
    return d->outstanding ? 0 : apply_cp(d);
}

/* Section 9.7: the children of the asked nodes of the mirror's tree, so a
 * source can find differing blocks with O(d log N) nodes exchanged. */
static int on_tree_query(mk_dest *d, const mk_frame *f)
{
    uint32_t level, count;
    mk_tree_node nodes[MK_MAX_TREE_NODES];
    int rc = mk_tree_query_decode(f, &level, &count);
    if (rc)
        return fail_session(d, rc, "TREE_QUERY");
    if (level > mk_merkle_height(d->tree))
        return fail_session(d, MK_ERANGE, "TREE_QUERY level");
    for (uint32_t i = 0; i < count; i++) {
        mk_h128 l, r;
        uint64_t index;
        mk_tree_query_at(f, i, &index);
        if (index > (UINT64_MAX >> 1) ||
            (rc = mk_merkle_node(d->tree, level - 1, 2 * index, &l)) ||
            (rc = mk_merkle_node(d->tree, level - 1, 2 * index + 1, &r)))
            return rc == MK_ERANGE || !rc ? fail_session(d, MK_ERANGE, "TREE_QUERY index")
                                          : fail_storage(d, rc, "tree read");
        nodes[i] = (mk_tree_node){index, l.lo, l.hi, r.lo, r.hi};
    }
    return mk_tree_nodes_encode(&d->out, d->send_seq++, level, nodes, count);
}

static int on_frame(mk_dest *d, const mk_frame *f)
{
#ifdef MK_MUTANT_DEST_NO_SEQ_CHECK
    /* Planted bug (verify/MUTANTS.md): frames are counted but their
     * sequence numbers are never compared (SPEC.md 3.5). */
    d->recv_seq++;
    d->stats.frames_in++;
#else
    if (f->seq != d->recv_seq)
        return fail_session(d, MK_ESEQ, "frame sequence");
    d->recv_seq++;
    d->stats.frames_in++;
#endif
    if (d->state == S_AWAIT_HELLO) {
        /* Section 2.3: nothing is accepted before the source of this
         * session has identified itself. */
        if (f->type != MK_F_HELLO)
            return fail_session(d, MK_ESTATE, "frame before HELLO");
        return on_hello(d, f);
    }
    switch (f->type) {
    case MK_F_LOG: return on_log(d, f);
    case MK_F_CP_BEGIN: return on_cp_begin(d, f);
    case MK_F_CP_DATA: return on_cp_data(d, f);
    case MK_F_CP_REF: return on_cp_ref(d, f);
    case MK_F_CP_COMMIT: return on_cp_commit(d, f);
    case MK_F_TREE_QUERY: return on_tree_query(d, f);
    case MK_F_HELLO: return fail_session(d, MK_ESTATE, "second HELLO");
    case MK_F_ERROR: {
        mk_error_frame e;
        d->sess_err = mk_error_decode(f, &e) ? MK_ELENGTH : MK_EREMOTE;
        return d->sess_err;
    }
    }
    return fail_session(d, MK_ETYPE, "frame type");
}

static int frame_fn(void *ctx, const mk_frame *f) { return on_frame(ctx, f); }

int mk_dest_recv(mk_dest *d, const void *buf, size_t n, uint64_t now)
{
    int framing;
    (void)now;
    if (d->fatal || d->sess_err)
        return d->fatal ? d->fatal : d->sess_err;
    d->stats.bytes_in += n;
    int rc = mk_frame_recv(&d->in, buf, n, frame_fn, d, &framing);
#ifdef MK_MUTANT_DEST_NO_CHECKSUM
    /* Planted bug (verify/MUTANTS.md): a trailer that does not match is
     * only a warning - the frame is taken from its header and handled
     * anyway (SPEC.md 3.2, 3.4 step 6). */
    while (rc == MK_ECHECKSUM && framing) {
        const uint8_t *p = mk_buf_peek(&d->in);
        uint8_t lenb[8] = {p[8], p[9], p[10], p[11], 0, 0, 0, 0};
        mk_frame fr = {p[5], 0, (uint32_t)mk_get_le64(lenb), mk_get_le64(p + 12), p + 20};
        framing = 0;
        rc = on_frame(d, &fr);
        mk_buf_consume(&d->in, MK_FRAME_OVERHEAD + (size_t)fr.len);
        if (rc)
            break;
        rc = mk_frame_recv(&d->in, "", 0, frame_fn, d, &framing);
    }
#endif
    if (rc && framing)
        return fail_session(d, rc, "frame");
    /* A handler's error has already ended the session or the engine; an
     * error that did not is the input queue's own. */
    if (rc && !d->sess_err && !d->fatal)
        return fail_storage(d, rc, "input buffer");
    if (rc)
        return rc;
    /* Group commit: one sync covers every transfer of this batch. */
    if (d->state == S_READY)
        return flush_log_acks(d);
    return 0;
}

/* ---- promotion -------------------------------------------------------- */

typedef struct promote_ctx {
    mk_dest *d;
    uint8_t *buf;
} promote_ctx;

static int promote_one(void *ctx, uint64_t tid, uint64_t offset, uint32_t length,
                       uint64_t data_off)
{
    promote_ctx *p = ctx;
    (void)tid;
    int rc = mk_logstore_read(p->d->log, data_off, p->buf, length);
    if (rc == 0)
        rc = mk_file_pwrite(p->d->mirror, p->buf, length, offset);
    return rc;
}

int mk_dest_promote(mk_dest *d)
{
    mk_log_info info;
    if (d->fatal)
        return d->fatal;
    if (!d->have_id)
        return MK_ESTATE;
    mk_logstore_info(d->log, &info);
    promote_ctx p = {d, malloc(MK_MAX_TRANSFER_DATA)};
    if (!p.buf)
        return MK_ENOMEM;
    int rc = mk_logstore_each_transfer(d->log, info.covers_tid, promote_one, &p);
    free(p.buf);
    if (rc == 0)
        rc = mk_file_sync(d->mirror);
    /* The mirror is now a volume of its own, newer than any CP the log
     * describes: the log is retired so no source can resume against it. */
    if (rc == 0 && (rc = mk_file_truncate(d->logf, 0)) == 0)
        rc = mk_file_sync(d->logf);
    /* The tree described the CP image; the promoted volume is newer. */
    if (rc == 0 && (rc = mk_file_truncate(d->tree_file, 0)) == 0)
        rc = mk_file_sync(d->tree_file);
    if (rc)
        d->fatal = rc;
    return rc;
}
