#include "mk_logstore.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_err.h"
#include "mk_map.h"
#include "mk_vec.h"

/* One transfer in the file: enough to find any of its slots, and where
 * the hashes of its slots start in the slot-hash array. */
typedef struct xent {
    uint64_t tid, data_off, offset;
    uint32_t length;
    size_t hashes;
} xent;

struct mk_logstore {
    mk_file *f;
    int fresh;
    mk_log_ident id;
    uint64_t gen;  /* generation of the current header */
    int cur_slot;  /* 0 or 1: which header slot is current */
    uint64_t base_cp, base_tid;
    uint64_t end;  /* append position */
    uint64_t next_seq;
    uint64_t last_cp, applied_cp, covers_tid, durable_tid, last_digest;
    uint64_t base_digest;
    uint64_t commit_off; /* record offset of the last CP_COMMIT */
    mk_map cp_data;      /* scan: data offsets of the open CP's CP_DATA */
    uint64_t records, cut;
    xent *x;
    size_t nx, capx;
    /* H (section 3.2) of every whole block slot of the indexed transfers,
     * taken from the bytes as they were appended or scanned, so that a
     * REF is checked (7.2 rule 5) without reading the log back. */
    uint64_t *sh;
    size_t nsh, capsh;
    mk_buf scratch;
    /* Appended records not yet written to the file: they start at file
     * offset wb_at and end at end (wb_flush). */
    mk_buf wb;
    uint64_t wb_at;
    /* A write of the buffer failed: the file's tail is unknown (a prefix
     * may be there) and the engine has stopped, so nothing more is
     * written - not even when the store is freed. */
    int wb_err;
};

/* Records are appended into a write-behind buffer of up to WB_CAP bytes
 * and reach the file in one write when it fills, before every sync, read,
 * header write and truncation, and when the store is freed.  A record is
 * durable only after mk_logstore_sync either way (section 7.3); the buffer
 * only turns the thousands of small appends of a CP (a CP_DATA record per
 * block) into a few large writes.  A record larger than the buffer is
 * written at once. */
#define WB_CAP (1u << 20)

static int wb_flush(mk_logstore *ls)
{
    size_t n = mk_buf_len(&ls->wb);
    if (ls->wb_err)
        return ls->wb_err;
    if (n == 0)
        return 0;
    int rc = mk_file_pwrite(ls->f, mk_buf_peek(&ls->wb), n, ls->wb_at);
    if (rc)
        return ls->wb_err = rc;
    mk_buf_clear(&ls->wb);
    ls->wb_at = ls->end;
    return 0;
}

/* ---- header slots ----------------------------------------------------- */

static void header_encode(const mk_logstore *ls, uint64_t gen, uint8_t *out)
{
    mk_wcur c;
    mk_wcur_init(&c, out, MK_LOG_SLOT_LEN);
    mk_wcur_u32(&c, MK_LOG_MAGIC);
    mk_wcur_u16(&c, MK_LOG_VERSION);
    mk_wcur_u16(&c, 0);
    mk_wcur_u64(&c, gen);
    mk_wcur_u64(&c, ls->id.volume_id);
    mk_wcur_u64(&c, ls->id.nblocks);
    mk_wcur_u32(&c, ls->id.block_size);
    mk_wcur_u32(&c, 0);
    mk_wcur_u64(&c, ls->id.source_id);
    mk_wcur_u64(&c, ls->base_cp);
    mk_wcur_u64(&c, ls->base_tid);
    mk_wcur_u64(&c, ls->next_seq);
    mk_wcur_u64(&c, ls->base_digest);
    mk_wcur_zero(&c, MK_LOG_SLOT_LEN - 8 - c.pos);
    mk_wcur_u64(&c, XXH3_64bits(out, MK_LOG_SLOT_LEN - 8));
}

int mk_log_header_decode(const uint8_t *in, mk_log_header *h)
{
    mk_rcur c;
    uint32_t magic;
    uint16_t ver;
    uint64_t sum;
    mk_rcur_init(&c, in, MK_LOG_SLOT_LEN);
    mk_rcur_u32(&c, &magic);
    if (magic != MK_LOG_MAGIC)
        return MK_EMAGIC;
    mk_rcur_u16(&c, &ver);
    if (ver != MK_LOG_VERSION)
        return MK_EVERSION;
    mk_rcur_skip(&c, MK_LOG_SLOT_LEN - 8 - c.pos);
    mk_rcur_u64(&c, &sum);
    if (sum != XXH3_64bits(in, MK_LOG_SLOT_LEN - 8))
        return MK_ECHECKSUM;
    mk_rcur_init(&c, in + 6, MK_LOG_SLOT_LEN - 6);
    if (mk_rcur_zero(&c, 2))
        return MK_ERESERVED;
    mk_rcur_u64(&c, &h->generation);
    mk_rcur_u64(&c, &h->id.volume_id);
    mk_rcur_u64(&c, &h->id.nblocks);
    mk_rcur_u32(&c, &h->id.block_size);
    if (mk_rcur_zero(&c, 4))
        return MK_ERESERVED;
    mk_rcur_u64(&c, &h->id.source_id);
    mk_rcur_u64(&c, &h->base_cp);
    mk_rcur_u64(&c, &h->base_tid);
    mk_rcur_u64(&c, &h->next_seq);
    mk_rcur_u64(&c, &h->base_digest);
    if (mk_rcur_zero(&c, MK_LOG_SLOT_LEN - 8 - 6 - c.pos))
        return MK_ERESERVED;
    /* SPEC 7.3: generation 2^64-1 cannot be reached by header writes; it
     * would wrap to 0 at the next one and lose to the older slot. */
    if (!mk_block_size_ok(h->id.block_size) || h->id.nblocks == 0 ||
        h->id.nblocks > UINT64_MAX / h->id.block_size || h->generation == UINT64_MAX)
        return MK_ECORRUPT;
    return 0;
}

/* Writes the header into the slot that is not current, so a torn header
 * write leaves the previous one intact (LMDB's two meta pages). */
static int header_write(mk_logstore *ls)
{
    uint8_t buf[MK_LOG_SLOT_LEN];
    int slot = ls->fresh ? 0 : 1 - ls->cur_slot;
    /* SPEC 7.3: generation 2^64-1 is invalid, so it is never written (only
     * a crafted header gets this close); the log refuses to go on. */
    if (ls->gen >= UINT64_MAX - 1)
        return MK_ECORRUPT;
    header_encode(ls, ls->gen + 1, buf);
    int rc = mk_file_pwrite(ls->f, buf, sizeof buf, (uint64_t)slot * MK_LOG_SLOT_LEN);
    if (rc == 0)
        rc = mk_file_sync(ls->f);
    if (rc)
        return rc;
    ls->gen++;
    ls->cur_slot = slot;
    return 0;
}

/* ---- index ------------------------------------------------------------ */

/* Indexes a transfer whose data (e->length bytes) is at hand: its entry,
 * and the hash of each of its whole block slots. */
static int index_add(mk_logstore *ls, const xent *e, const uint8_t *data)
{
    mk_xgeom g;
    uint32_t bs = ls->id.block_size;
    mk_transfer_geom(e->offset, e->length, bs, &g);
    xent *x = mk_vec_grow(ls->x, &ls->capx, ls->nx, sizeof *ls->x, 256);
    if (!x)
        return MK_ENOMEM;
    ls->x = x;
    while (ls->capsh < ls->nsh + g.nslots) {
        uint64_t *h = mk_vec_grow(ls->sh, &ls->capsh, ls->capsh, sizeof *ls->sh, 256);
        if (!h)
            return MK_ENOMEM;
        ls->sh = h;
    }
    ls->x[ls->nx] = *e;
    ls->x[ls->nx++].hashes = ls->nsh;
    for (uint32_t i = 0; i < g.nslots; i++)
        ls->sh[ls->nsh++] = mk_block_hash(data + g.head_len + (size_t)i * bs, bs);
    return 0;
}

/* Transfer IDs are appended in increasing order, so the index is sorted
 * and a binary search finds any of them. */
static const xent *index_find(const mk_logstore *ls, uint64_t tid)
{
    size_t lo = 0, hi = ls->nx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ls->x[mid].tid < tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ls->nx && ls->x[lo].tid == tid ? &ls->x[lo] : NULL;
}

/* ---- records ---------------------------------------------------------- */

static uint64_t volume_bytes(const mk_logstore *ls)
{
    return ls->id.nblocks * ls->id.block_size;
}

/* True if off is where the bytes of `block` sit in this log: a CP_DATA
 * record of the open CP for that block, or a slot of a scanned transfer
 * that wrote that block.  A redo record may name nothing else. */
static int block_data_at(mk_logstore *ls, uint64_t off, uint64_t block)
{
    uint64_t b;
    if (mk_map_get(&ls->cp_data, off, &b))
        return b == block;
    size_t lo = 0, hi = ls->nx;
    while (lo < hi) { /* last transfer whose data starts at or before off */
        size_t mid = lo + (hi - lo) / 2;
        if (ls->x[mid].data_off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const xent *e = &ls->x[lo - 1];
    mk_xgeom g;
    uint32_t bs = ls->id.block_size;
    mk_transfer_geom(e->offset, e->length, bs, &g);
    uint64_t rel = off - e->data_off;
    if (rel < g.head_len || (rel - g.head_len) % bs != 0)
        return 0;
    uint64_t slot = (rel - g.head_len) / bs;
    return slot < g.nslots && g.first_block + slot == block;
}

/* Checks one record that passed its frame checksum against the rules of
 * section 7.6 and folds it into the scan state. */
static int scan_apply(mk_logstore *ls, const mk_frame *fr, uint64_t rec_off)
{
    mk_rcur c;
    int rc;
    switch (fr->type) {
    case MK_R_TRANSFER: {
        mk_log l;
        if ((rc = mk_log_decode(fr, &l)))
            return rc;
        if (l.tid <= ls->durable_tid)
            return MK_ETID;
        if (l.offset > volume_bytes(ls) || l.length > volume_bytes(ls) - l.offset)
            return MK_ERANGE;
        xent e = {l.tid, rec_off + MK_HDR_LEN + MK_LOG_HDR_LEN, l.offset, l.length, 0};
        if ((rc = index_add(ls, &e, l.data)))
            return rc;
        ls->durable_tid = l.tid;
        return 0;
    }
    case MK_R_CP_DATA: {
        mk_cp_data d;
        if ((rc = mk_cp_data_decode(fr, ls->id.block_size, &d)))
            return rc;
        if (d.cp != ls->last_cp + 1)
            return MK_ECP;
        if (d.block >= ls->id.nblocks)
            return MK_ERANGE;
        return mk_map_put(&ls->cp_data, rec_off + MK_HDR_LEN + MK_CP_DATA_HDR_LEN, d.block);
    }
    case MK_R_CP_COMMIT: {
        uint64_t cp, covers, digest, n, prev = 0;
        mk_rcur_init(&c, fr->payload, fr->len);
        if (mk_rcur_u64(&c, &cp) || mk_rcur_u64(&c, &covers) || mk_rcur_u64(&c, &digest) ||
            mk_rcur_u64(&c, &n))
            return MK_ELENGTH;
        if (n > ls->id.nblocks || mk_rcur_left(&c) != n * 16)
            return MK_ELENGTH;
        if (cp != ls->last_cp + 1)
            return MK_ECP;
        if (covers > ls->durable_tid || covers < ls->covers_tid)
            return MK_ETID;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t block, off;
            mk_rcur_u64(&c, &block);
            mk_rcur_u64(&c, &off);
            if (block >= ls->id.nblocks || (i > 0 && block <= prev))
                return MK_ERANGE;
            if (!block_data_at(ls, off, block))
                return MK_ERANGE;
            prev = block;
        }
        ls->last_cp = cp;
        ls->covers_tid = covers;
        ls->last_digest = digest;
        ls->commit_off = rec_off;
        mk_map_clear(&ls->cp_data);
        return 0;
    }
    case MK_R_CP_APPLIED: {
        uint64_t cp;
        mk_rcur_init(&c, fr->payload, fr->len);
        if (fr->len != 8 || mk_rcur_u64(&c, &cp))
            return MK_ELENGTH;
        if (cp != ls->last_cp)
            return MK_ECP;
        ls->applied_cp = cp;
        return 0;
    }
    }
    return MK_ETYPE;
}

/* Reads the record at off into ls->scratch and decodes its framing.
 * Returns 0, or the framing error that marks the end of the valid log. */
static int read_record(mk_logstore *ls, uint64_t off, uint64_t size, mk_frame *fr,
                       size_t *used)
{
    uint8_t h[MK_HDR_LEN];
    uint64_t left = size - off;
    if (left < MK_FRAME_OVERHEAD)
        return MK_ETRUNC;
    int rc = mk_file_read_exact(ls->f, h, sizeof h, off);
    if (rc)
        return rc;
    mk_rcur hc;
    uint32_t plen;
    mk_rcur_init(&hc, h, sizeof h);
    mk_rcur_skip(&hc, 8);
    mk_rcur_u32(&hc, &plen);
    /* Judge the claimed length against the file before allocating, so a
     * corrupt length can never make us buffer more than the file holds. */
    if ((uint64_t)plen > left - MK_FRAME_OVERHEAD)
        return MK_ETRUNC;
    mk_wcur wc;
    mk_buf_clear(&ls->scratch);
    size_t total = MK_FRAME_OVERHEAD + (size_t)plen;
    if ((rc = mk_buf_reserve(&ls->scratch, total, &wc)))
        return rc;
    if ((rc = mk_file_read_exact(ls->f, wc.buf, total, off)))
        return rc;
    return mk_frame_decode(wc.buf, total, plen, MK_FRAME_MAGIC, fr, used);
}

/* After the record at off failed, decides whether it is the torn or stale
 * tail (nothing valid and newer follows: cut it) or damage inside the log
 * (a valid record with a sequence number >= seq follows: cutting would
 * silently drop committed data, so refuse with MK_ECORRUPT).
 *
 * The search starts right after the failed record when its header is
 * intact and its length fits the file, else one byte after its start (a
 * damaged length must not hide what follows).  Every valid frame found is
 * skipped whole, so bytes inside a record (client data can look like
 * anything) are never taken for a record of their own. */
static int probe_after(mk_logstore *ls, uint64_t off, uint64_t size, uint64_t seq)
{
    enum { WINDOW = 1u << 20 };
    uint8_t h[MK_HDR_LEN], *win = malloc(WINDOW + 3);
    uint64_t p = off + 1;
    int rc = 0;
    if (!win)
        return MK_ENOMEM;
    if (size - off >= MK_HDR_LEN && mk_file_read_exact(ls->f, h, sizeof h, off) == 0) {
        mk_rcur hc;
        uint32_t magic, plen;
        uint8_t ver;
        mk_rcur_init(&hc, h, sizeof h);
        mk_rcur_u32(&hc, &magic);
        mk_rcur_u8(&hc, &ver);
        mk_rcur_skip(&hc, 3);
        mk_rcur_u32(&hc, &plen);
        if (magic == MK_FRAME_MAGIC && ver == MK_PROTO_VERSION) {
            /* 7.6 step 4a: an intact header whose frame runs past the end
             * of the file is the torn tail itself - the append a crash cut
             * - and its payload (client data, which may hold anything,
             * frames included) is not probed. */
            if (MK_FRAME_OVERHEAD + (uint64_t)plen > size - off) {
                free(win);
                return 0;
            }
            p = off + MK_FRAME_OVERHEAD + plen;
        }
    }
    /* Windows of the file are searched for the magic; each candidate is
     * then read and checked as a whole record straight from the file. */
    while (rc == 0 && p + MK_FRAME_OVERHEAD <= size) {
        uint64_t n = size - p < WINDOW + 3 ? size - p : WINDOW + 3;
        if ((rc = mk_file_read_exact(ls->f, win, n, p)))
            break;
        uint64_t i = 0, next = p + (n > 3 ? n - 3 : n);
        for (; i + 4 <= n; i++) {
            mk_rcur mc;
            uint32_t magic;
            mk_rcur_init(&mc, win + i, 4);
            if (mk_rcur_u32(&mc, &magic) || magic != MK_FRAME_MAGIC)
                continue;
            mk_frame fr;
            size_t used;
            if (read_record(ls, p + i, size, &fr, &used) != 0)
                continue;
            if (fr.seq >= seq) {
                rc = MK_ECORRUPT;
                break;
            }
            next = p + i + used; /* a stale record: skip it whole */
            break;
        }
        p = next;
    }
    free(win);
    return rc;
}

static int scan(mk_logstore *ls, uint64_t size)
{
    uint64_t off = MK_LOG_DATA_START, seq = ls->next_seq;
    while (off < size) {
        mk_frame fr;
        size_t used;
        int rc = read_record(ls, off, size, &fr, &used);
        if (rc == MK_ENOMEM || rc == MK_EIO)
            return rc;
        /* Any framing failure, or a record from an older generation of
         * the file (its sequence number does not continue ours), ends the
         * valid log; what follows is cut below, never applied - unless it
         * turns out not to be a tail at all. */
        if (rc || fr.seq != seq) {
            if ((rc = probe_after(ls, off, size, seq)))
                return rc;
            break;
        }
        if ((rc = scan_apply(ls, &fr, off)))
            return rc;
        off += used;
        seq++;
        ls->records++;
    }
    ls->end = off;
    ls->next_seq = seq;
    ls->cut = size - off;
    mk_map_clear(&ls->cp_data);
    return 0;
}

/* A log whose creation was cut short by a crash: no room for a record,
 * slot 1 never written (all zero; the first header always goes to slot 0)
 * and slot 0 never written or torn - a prefix of a header, so its magic or
 * its checksum fails (a wrong version or a bad field under a good checksum
 * is something else and stays an error).  It holds nothing - no record, so
 * nothing was ever acknowledged - and is treated as fresh. */
static int never_initialised(mk_file *f, uint64_t size)
{
    uint8_t buf[MK_LOG_DATA_START];
    mk_log_header h;
    if (size > MK_LOG_DATA_START || mk_file_read_block(f, buf, sizeof buf, 0))
        return 0;
    for (size_t i = MK_LOG_SLOT_LEN; i < sizeof buf; i++)
        if (buf[i])
            return 0;
    int rc = mk_log_header_decode(buf, &h);
    return rc == MK_EMAGIC || rc == MK_ECHECKSUM;
}

int mk_logstore_open(mk_file *f, mk_logstore **out, mk_log_info *info)
{
    mk_logstore *ls = calloc(1, sizeof *ls);
    uint64_t size;
    int rc;
    if (!ls)
        return MK_ENOMEM;
    ls->f = f;
    mk_buf_init(&ls->scratch);
    mk_buf_init(&ls->wb);
    if ((rc = mk_file_size(f, &size)))
        goto fail;
    if (size == 0 || never_initialised(f, size)) {
        ls->fresh = 1;
        ls->end = MK_LOG_DATA_START;
    } else {
        uint8_t slots[2][MK_LOG_SLOT_LEN];
        mk_log_header h[2];
        int r[2];
        if ((rc = mk_file_read_block(f, slots, sizeof slots, 0)))
            goto fail;
        r[0] = mk_log_header_decode(slots[0], &h[0]);
        r[1] = mk_log_header_decode(slots[1], &h[1]);
        int pick = r[0] == 0 && (r[1] != 0 || h[0].generation >= h[1].generation) ? 0
                   : r[1] == 0                                       ? 1
                                                                     : -1;
        if (pick < 0) {
            rc = r[0] == MK_EMAGIC && r[1] == MK_EMAGIC     ? MK_EMAGIC
                 : r[0] == MK_EVERSION || r[1] == MK_EVERSION ? MK_EVERSION
                                                            : MK_ECORRUPT;
            goto fail;
        }
        ls->cur_slot = pick;
        ls->gen = h[pick].generation;
        ls->id = h[pick].id;
        ls->base_cp = ls->last_cp = ls->applied_cp = h[pick].base_cp;
        ls->base_tid = ls->covers_tid = ls->durable_tid = h[pick].base_tid;
        ls->next_seq = h[pick].next_seq;
        ls->base_digest = ls->last_digest = h[pick].base_digest;
        if ((rc = scan(ls, size < MK_LOG_DATA_START ? MK_LOG_DATA_START : size)))
            goto fail;
#ifdef MK_MUTANT_DEST_NO_TORN_CUT
        /* Planted bug (verify/MUTANTS.md): the torn tail is left in the
         * file and appends go on at the end of the file, after it (an
         * O_APPEND-style log), instead of at the end of the valid records
         * (SPEC.md 7.6 step 6).  The next scan stops at the torn record. */
        ls->end = size < MK_LOG_DATA_START ? MK_LOG_DATA_START : size;
        ls->cut = 0;
#endif
        /* Only now, with the whole scan accepted, is the tail cut. */
        if (ls->cut || size < MK_LOG_DATA_START) {
            if ((rc = mk_file_truncate(f, ls->end)) || (rc = mk_file_sync(f)))
                goto fail;
        }
    }
    *out = ls;
    if (info)
        mk_logstore_info(ls, info);
    return 0;
fail:
    mk_logstore_free(ls);
    return rc;
}

void mk_logstore_free(mk_logstore *ls)
{
    if (!ls)
        return;
    /* What was appended reaches the file, as a process's writes reach the
     * page cache when it exits (a crashed file refuses them; after a failed
     * write nothing is written, wb_err). */
    (void)wb_flush(ls);
    mk_buf_free(&ls->wb);
    free(ls->x);
    free(ls->sh);
    mk_map_free(&ls->cp_data);
    mk_buf_free(&ls->scratch);
    free(ls);
}

void mk_logstore_info(const mk_logstore *ls, mk_log_info *info)
{
    info->fresh = ls->fresh;
    info->records = ls->records;
    info->cut_bytes = ls->cut;
    info->last_cp = ls->last_cp;
    info->applied_cp = ls->applied_cp;
    info->covers_tid = ls->covers_tid;
    info->durable_tid = ls->durable_tid;
    info->last_digest = ls->last_digest;
    info->size = ls->end;
}

int mk_logstore_init(mk_logstore *ls, const mk_log_ident *id)
{
    if (!ls->fresh)
        return MK_ESTATE;
    if (!mk_block_size_ok(id->block_size))
        return MK_EBLOCKSIZE;
    ls->id = *id;
    ls->next_seq = 1;
    int rc = mk_file_truncate(ls->f, MK_LOG_DATA_START);
    if (rc == 0)
        rc = header_write(ls);
    if (rc == 0)
        ls->fresh = 0;
    return rc;
}

int mk_logstore_ident(const mk_logstore *ls, mk_log_ident *id)
{
    if (ls->fresh)
        return MK_ESTATE;
    *id = ls->id;
    return 0;
}

/* Frames one record at the end of the write-behind buffer (or, when it is
 * larger than the buffer, in the scratch buffer, written at once). */
static int append(mk_logstore *ls, uint8_t type, size_t plen,
                  int (*fill)(mk_wcur *c, const void *ctx), const void *ctx,
                  uint64_t *rec_off)
{
    mk_wcur c;
    int rc;
    size_t total = MK_FRAME_OVERHEAD + plen;
    if (ls->fresh)
        return MK_ESTATE;
    if (mk_buf_len(&ls->wb) + total > WB_CAP && (rc = wb_flush(ls)))
        return rc;
    mk_buf *b = total <= WB_CAP ? &ls->wb : &ls->scratch;
    if (b == &ls->scratch)
        mk_buf_clear(b);
    else if (mk_buf_len(b) == 0)
        ls->wb_at = ls->end;
    if ((rc = mk_frame_open(b, MK_FRAME_MAGIC, type, ls->next_seq, plen, &c)))
        return rc;
    if ((rc = fill(&c, ctx)) || (rc = mk_frame_close(b, &c)))
        return rc;
    if (b == &ls->scratch &&
        (rc = mk_file_pwrite(ls->f, mk_buf_peek(b), total, ls->end)))
        return ls->wb_err = rc;
    if (rec_off)
        *rec_off = ls->end;
    ls->end += total;
    ls->next_seq++;
    ls->records++;
    return 0;
}

static int fill_transfer(mk_wcur *c, const void *ctx)
{
    const mk_log *l = ctx;
    mk_wcur_u64(c, l->tid);
    mk_wcur_u64(c, l->offset);
    mk_wcur_u32(c, l->length);
    mk_wcur_zero(c, 4);
    return mk_wcur_bytes(c, l->data, l->length);
}

int mk_logstore_append_transfer(mk_logstore *ls, const mk_log *l)
{
    uint64_t rec;
    if (ls->fresh)
        return MK_ESTATE; /* no identity yet: no volume to range-check */
    if (l->tid <= ls->durable_tid)
        return MK_ETID;
    if (l->offset > volume_bytes(ls) || l->length > volume_bytes(ls) - l->offset)
        return MK_ERANGE;
    int rc = append(ls, MK_R_TRANSFER, MK_LOG_HDR_LEN + l->length, fill_transfer, l, &rec);
    if (rc)
        return rc;
    xent e = {l->tid, rec + MK_HDR_LEN + MK_LOG_HDR_LEN, l->offset, l->length, 0};
    if ((rc = index_add(ls, &e, l->data)))
        return rc;
    ls->durable_tid = l->tid;
    return 0;
}

typedef struct cpdata_ctx {
    uint64_t cp, block;
    const uint8_t *data;
    uint32_t bs;
} cpdata_ctx;

static int fill_cp_data(mk_wcur *c, const void *ctx)
{
    const cpdata_ctx *d = ctx;
    mk_wcur_u64(c, d->cp);
    mk_wcur_u64(c, d->block);
    return mk_wcur_bytes(c, d->data, d->bs);
}

int mk_logstore_append_cp_data(mk_logstore *ls, uint64_t cp, uint64_t block,
                               const uint8_t *data, uint64_t *data_off)
{
    cpdata_ctx d = {cp, block, data, ls->id.block_size};
    uint64_t rec;
    if (ls->fresh)
        return MK_ESTATE;
    if (block >= ls->id.nblocks)
        return MK_ERANGE;
    int rc = append(ls, MK_R_CP_DATA, MK_CP_DATA_HDR_LEN + d.bs, fill_cp_data, &d, &rec);
    if (rc == 0)
        *data_off = rec + MK_HDR_LEN + MK_CP_DATA_HDR_LEN;
    return rc;
}

typedef struct commit_ctx {
    uint64_t cp, covers, digest, n;
    const mk_redo_entry *e;
} commit_ctx;

static int fill_commit(mk_wcur *c, const void *ctx)
{
    const commit_ctx *k = ctx;
    mk_wcur_u64(c, k->cp);
    mk_wcur_u64(c, k->covers);
    mk_wcur_u64(c, k->digest);
    mk_wcur_u64(c, k->n);
    for (uint64_t i = 0; i < k->n; i++) {
        mk_wcur_u64(c, k->e[i].block);
        mk_wcur_u64(c, k->e[i].off);
    }
    return 0;
}

int mk_logstore_append_commit(mk_logstore *ls, uint64_t cp, uint64_t covers_tid,
                              uint64_t digest, const mk_redo_entry *e, uint64_t n)
{
    commit_ctx k = {cp, covers_tid, digest, n, e};
    uint64_t rec;
    if (cp != ls->last_cp + 1)
        return MK_ECP;
    if (n > MK_MAX_CP_BLOCKS)
        return MK_ECOUNT;
    int rc = append(ls, MK_R_CP_COMMIT, 32 + (size_t)n * 16, fill_commit, &k, &rec);
    if (rc == 0) {
        ls->last_cp = cp;
        ls->covers_tid = covers_tid;
        ls->last_digest = digest;
        ls->commit_off = rec;
    }
    return rc;
}

static int fill_applied(mk_wcur *c, const void *ctx)
{
    return mk_wcur_u64(c, *(const uint64_t *)ctx);
}

int mk_logstore_append_applied(mk_logstore *ls, uint64_t cp)
{
    if (cp != ls->last_cp)
        return MK_ECP;
    int rc = append(ls, MK_R_CP_APPLIED, 8, fill_applied, &cp, NULL);
    if (rc == 0)
        ls->applied_cp = cp;
    return rc;
}

int mk_logstore_sync(mk_logstore *ls)
{
    int rc = wb_flush(ls);
    return rc ? rc : mk_file_sync(ls->f);
}

int mk_logstore_find_slot(const mk_logstore *ls, uint64_t tid, uint32_t slot,
                          uint64_t *data_off, uint64_t *block, uint64_t *hash)
{
    const xent *e = index_find(ls, tid);
    if (!e)
        return MK_ENOTID;
    mk_xgeom g;
    mk_transfer_geom(e->offset, e->length, ls->id.block_size, &g);
    if (slot >= g.nslots)
        return MK_ESLOT;
    *data_off = e->data_off + g.head_len + (uint64_t)slot * ls->id.block_size;
    *block = g.first_block + slot;
    if (hash)
        *hash = ls->sh[e->hashes + slot];
    return 0;
}

int mk_logstore_read(mk_logstore *ls, uint64_t off, void *buf, uint32_t n)
{
    if (off > ls->end || n > ls->end - off)
        return MK_ERANGE;
    int rc = wb_flush(ls);
    return rc ? rc : mk_file_read_exact(ls->f, buf, n, off);
}

int mk_logstore_copy_out(mk_logstore *ls, uint64_t off, uint64_t n, mk_file *dst,
                         uint64_t dst_off, void *buf, size_t bufsize)
{
    if (off > ls->end || n > ls->end - off)
        return MK_ERANGE;
    int rc = wb_flush(ls);
    return rc ? rc : mk_file_copy(dst, dst_off, ls->f, off, n, buf, bufsize);
}

int mk_logstore_pending_redo(mk_logstore *ls, uint64_t *cp, uint64_t *digest,
                             mk_redo_entry **out, uint64_t *n)
{
    mk_frame fr;
    size_t used;
    mk_rcur c;
    if (ls->last_cp == ls->applied_cp)
        return 0;
    int rc = wb_flush(ls);
    if (rc == 0)
        rc = read_record(ls, ls->commit_off, ls->end, &fr, &used);
    if (rc)
        return rc;
    mk_rcur_init(&c, fr.payload, fr.len);
    mk_rcur_u64(&c, cp);
    mk_rcur_skip(&c, 8);
    mk_rcur_u64(&c, digest);
    mk_rcur_u64(&c, n);
    mk_redo_entry *e = malloc((*n ? *n : 1) * sizeof *e);
    if (!e)
        return MK_ENOMEM;
    for (uint64_t i = 0; i < *n; i++) {
        mk_rcur_u64(&c, &e[i].block);
        mk_rcur_u64(&c, &e[i].off);
    }
    *out = e;
    return 1;
}

int mk_logstore_each_transfer(const mk_logstore *ls, uint64_t after,
                              mk_transfer_fn fn, void *ctx)
{
    for (size_t i = 0; i < ls->nx; i++) {
        if (ls->x[i].tid <= after)
            continue;
        int rc = fn(ctx, ls->x[i].tid, ls->x[i].offset, ls->x[i].length,
                    ls->x[i].data_off);
        if (rc)
            return rc;
    }
    return 0;
}

int mk_logstore_reclaim(mk_logstore *ls)
{
#ifdef MK_MUTANT_DEST_RECLAIM_PENDING
    /* Planted bug (verify/MUTANTS.md): reclaim only asks whether the last
     * committed CP is applied, and forgets the transfers newer than its
     * covers_tid (SPEC.md 7.7), which a later CP's REFs still name. */
    if (ls->fresh || ls->applied_cp != ls->last_cp || ls->end == MK_LOG_DATA_START)
        return 0;
#else
    if (ls->fresh || ls->applied_cp != ls->last_cp ||
        ls->durable_tid != ls->covers_tid || ls->end == MK_LOG_DATA_START)
        return 0;
#endif
    /* The new header is durable before the records are cut, so a crash
     * in between leaves a header whose base already covers them and
     * records whose sequence numbers the scan rejects as stale. */
    ls->base_cp = ls->last_cp;
    ls->base_tid = ls->durable_tid;
    ls->base_digest = ls->last_digest;
    int rc = mk_logstore_sync(ls);
    if (rc == 0)
        rc = header_write(ls);
    if (rc == 0)
        rc = mk_file_truncate(ls->f, MK_LOG_DATA_START);
    if (rc == 0)
        rc = mk_file_sync(ls->f);
    if (rc)
        return rc;
    ls->end = MK_LOG_DATA_START;
    ls->nx = 0;
    ls->nsh = 0;
    return 1;
}
