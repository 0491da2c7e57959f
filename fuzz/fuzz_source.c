/*
 * fuzz_source - the source engine (ref/mk_source) on a memory store, with
 * its Merkle tree, fed the input as the destination->source stream
 * (HELLO_ACK, LOG_ACK, NAK, CP_ACK, TREE_NODES, ERROR, mutated),
 * interleaved with operations on the source: client writes, CP starts and
 * reconnects (op frames, fuzz/mk_fuzz_util.h), so that acknowledgement,
 * NAK and DATA resend, copy-on-write, lost-transfer handling (8.3), resume
 * after a reconnect (8.2), the CP_ACK digest and root checks and the
 * Merkle descent are all reachable.  Every piece is fed in recv calls of
 * the sizes the control bytes give.
 *
 * Input: 10 control bytes (byte 0 picks the volume, mode and lag bound of
 * the setup table below), then the stream.  The source connects at once
 * (HELLO is queued), so a stream normally starts with HELLO_ACK.
 *   op 0xF0  disconnect and connect again
 *   op 0xF1  client write: payload u64 offset, then the data
 *   op 0xF2  start a CP
 *
 * Oracles (abort() when broken), beyond no crash, hang, leak or sanitizer
 * report.  An independent model of the source side of SPEC.md
 * (fuzz/mk_fuzz_model.c) follows every step:
 *   S1  every destination frame is accepted, refused (fatal, with exactly
 *       the error SPEC 2.2, 4.4, 7.5, 8.1, 8.2, 9.7 name) or ends the
 *       session as damage (8.5) exactly as the model says; so is every
 *       write (1.2) and every CP start (7.1);
 *   S2  what the source sends is what SPEC makes it send, frame by frame:
 *       HELLO; each LOG with the written bytes; each CP with exactly the
 *       REF records 6.3 qualifies (tid, slot, hash) and DATA records
 *       holding the CP image, covers_tid by 7.1; a NAK answered by the
 *       block's CP-image content even after later writes (copy-on-write,
 *       8.1); resume order after HELLO_ACK (8.2); ERROR on a fatal error;
 *       real checksums, consecutive sequence numbers;
 *   S3  no CP_ACK is accepted unless its digest is the CP image's digest
 *       and its root the CP image's Merkle root (the model computes both);
 *       acknowledged write IDs, unacknowledged bytes, dirty blocks and
 *       the CP records (mk_source_cp_record) equal the model's; the store
 *       equals the model's image;
 *   S4  memory stays bounded: the heap in use grows at most linearly with
 *       the input and the volume, whatever the input claims.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_err.h"
#include "mk_file.h"
#include "mk_fuzz_model.h"
#include "mk_fuzz_util.h"
#include "mk_source.h"
#include "mk_wire.h"

static const struct {
    uint64_t nblocks;
    uint32_t bs;
    int mode;
    uint64_t max_lag;
} setups[] = {
#define SETUP(n, b, m, l) {n, b, m, l},
    MKFU_SOURCE_SETUPS(SETUP)
#undef SETUP
};

typedef struct srun {
    mkfu_ctl ctl;
    mk_source *s;
    mk_file *store, *tree;
    mkfm_source m;
    uint64_t vbytes;
    size_t item;          /* next model item to match */
    uint64_t out_seq;
    uint8_t *buf;         /* one image */
    uint64_t fed;
} srun;

/* ---- output checking ------------------------------------------------------ */

typedef struct oframe {
    uint8_t type;
    uint32_t len;
    const uint8_t *pl;
} oframe;

static int next_frame(srun *r, const uint8_t **p, size_t *n, oframe *f)
{
    if (*n == 0)
        return 0;
    MKFU_CHECK(*n >= MK_FRAME_OVERHEAD, "S2: source sent a partial frame");
    const uint8_t *q = *p;
    uint32_t len = mkfm_le32(q + 8);
    MKFU_CHECK(mkfm_le32(q) == MK_FRAME_MAGIC && q[4] == 1 && q[6] == 0 && q[7] == 0 &&
                   len <= MK_MAX_PAYLOAD && *n >= MK_FRAME_OVERHEAD + (size_t)len,
               "S2: source sent a malformed frame");
    MKFU_CHECK(mkfm_le64(q + 20 + len) == XXH3_64bits(q, 20 + (size_t)len),
               "S2: source frame with a wrong checksum");
    uint64_t seq = mkfm_le64(q + 12);
    if (q[5] == MK_F_HELLO)
        r->out_seq = 0;
    MKFU_CHECK(seq == r->out_seq, "S2: source seq %llu, expected %llu",
               (unsigned long long)seq, (unsigned long long)r->out_seq);
    r->out_seq++;
    f->type = q[5];
    f->len = len;
    f->pl = q + 20;
    *p += MK_FRAME_OVERHEAD + len;
    *n -= MK_FRAME_OVERHEAD + len;
    return 1;
}

static const mkfm_pending *pending(const mkfm_source *m, uint64_t tid)
{
    for (size_t i = 0; i < m->npend; i++)
        if (m->pend[i].tid == tid)
            return &m->pend[i];
    return NULL;
}

static void check_data(srun *r, const oframe *f, uint64_t want_block)
{
    const mkfm_source *m = &r->m;
    MKFU_CHECK(f->type == MK_F_CP_DATA && f->len == 16 + m->bs, "S2: CP_DATA expected, got %s",
               mk_ftype_name(f->type));
    uint64_t cp = mkfm_le64(f->pl), b = mkfm_le64(f->pl + 8);
    MKFU_CHECK(cp == m->cp_no, "S2: CP_DATA of CP %llu, in flight %llu", (unsigned long long)cp,
               (unsigned long long)m->cp_no);
    if (want_block != UINT64_MAX)
        MKFU_CHECK(b == want_block, "S2: NAK of block %llu answered with block %llu",
                   (unsigned long long)want_block, (unsigned long long)b);
    MKFU_CHECK(b < m->nblocks && memcmp(f->pl + 16, m->cpimage + b * m->bs, m->bs) == 0,
               "S2: CP_DATA of block %llu does not hold the CP %llu image", (unsigned long long)b,
               (unsigned long long)cp);
}

static void check_tree_query(const srun *r, const oframe *f)
{
    const mkfm_tree *t = &r->m.tree;
    MKFU_CHECK(f->len >= 8, "S2: short TREE_QUERY");
    uint32_t level = mkfm_le32(f->pl), count = mkfm_le32(f->pl + 4);
    MKFU_CHECK(level >= 1 && level <= t->height && count >= 1 && count <= MK_MAX_TREE_NODES &&
                   f->len == 8 + 8 * (uint64_t)count,
               "S2: malformed TREE_QUERY level %u count %u", level, count);
    for (uint32_t i = 0; i < count; i++)
        MKFU_CHECK(mkfm_le64(f->pl + 8 + 8 * i) < (t->p >> level), "S2: TREE_QUERY index");
}

/* The CP in flight, in full (7.1): CP_BEGIN, every record once, CP_COMMIT. */
static void check_cp(srun *r, const uint8_t **p, size_t *n, const oframe *first, uint64_t covers)
{
    const mkfm_source *m = &r->m;
    MKFU_CHECK(first->type == MK_F_CP_BEGIN && first->len == 24, "S2: CP_BEGIN expected, got %s",
               mk_ftype_name(first->type));
    MKFU_CHECK(mkfm_le64(first->pl) == m->cp_no && mkfm_le64(first->pl + 8) == m->nrec &&
                   mkfm_le64(first->pl + 16) == covers,
               "S2: CP_BEGIN cp %llu n %llu covers %llu; model %llu %zu %llu",
               (unsigned long long)mkfm_le64(first->pl),
               (unsigned long long)mkfm_le64(first->pl + 8),
               (unsigned long long)mkfm_le64(first->pl + 16), (unsigned long long)m->cp_no,
               m->nrec, (unsigned long long)covers);
    uint8_t *seen = calloc(m->nrec ? m->nrec : 1, 1);
    if (!seen)
        abort();
    oframe f;
    for (;;) {
        MKFU_CHECK(next_frame(r, p, n, &f), "S2: CP %llu sent without CP_COMMIT",
                   (unsigned long long)m->cp_no);
        if (f.type == MK_F_CP_COMMIT)
            break;
        uint64_t b;
        if (f.type == MK_F_CP_DATA) {
            check_data(r, &f, UINT64_MAX);
            b = mkfm_le64(f.pl + 8);
            const mkfm_rec *rec = mkfm_source_rec(m, b);
            MKFU_CHECK(rec && !rec->ref, "S2: block %llu sent as DATA, the model says %s",
                       (unsigned long long)b, rec ? "REF" : "not in the CP");
            MKFU_CHECK(!seen[rec - m->rec]++, "S2: block %llu sent twice", (unsigned long long)b);
            continue;
        }
        MKFU_CHECK(f.type == MK_F_CP_REF && f.len >= 16, "S2: %s inside a CP",
                   mk_ftype_name(f.type));
        uint32_t count = mkfm_le32(f.pl + 8);
        MKFU_CHECK(mkfm_le64(f.pl) == m->cp_no && count >= 1 && count <= MK_MAX_REFS_PER_FRAME &&
                       f.len == 16 + 32 * (uint64_t)count && mkfm_le32(f.pl + 12) == 0,
                   "S2: malformed CP_REF");
        for (uint32_t i = 0; i < count; i++) {
            const uint8_t *e = f.pl + 16 + 32 * i;
            b = mkfm_le64(e);
            const mkfm_rec *rec = mkfm_source_rec(m, b);
            MKFU_CHECK(rec && rec->ref, "S2: block %llu sent as REF, the model says %s",
                       (unsigned long long)b, rec ? "DATA" : "not in the CP");
            MKFU_CHECK(mkfm_le64(e + 8) == rec->tid && mkfm_le32(e + 16) == rec->slot &&
                           mkfm_le32(e + 20) == 0 && mkfm_le64(e + 24) == rec->hash,
                       "S2: REF of block %llu names tid %llu slot %u; the model tid %llu slot %u",
                       (unsigned long long)b, (unsigned long long)mkfm_le64(e + 8),
                       mkfm_le32(e + 16), (unsigned long long)rec->tid, rec->slot);
            MKFU_CHECK(!seen[rec - m->rec]++, "S2: block %llu sent twice", (unsigned long long)b);
        }
    }
    MKFU_CHECK(f.len == 16 && mkfm_le64(f.pl) == m->cp_no && mkfm_le64(f.pl + 8) == m->nrec,
               "S2: CP_COMMIT fields");
    for (size_t i = 0; i < m->nrec; i++)
        MKFU_CHECK(seen[i], "S2: block %llu of CP %llu never sent",
                   (unsigned long long)m->rec[i].block, (unsigned long long)m->cp_no);
    free(seen);
}

static void check_output(srun *r)
{
    mk_buf *out = mk_source_out(r->s);
    const uint8_t *p = mk_buf_peek(out);
    size_t n = mk_buf_len(out);
    mkfm_source *m = &r->m;
    oframe f;
    if (m->untracked) {
        while (next_frame(r, &p, &n, &f))
            ;
        mk_buf_consume(out, mk_buf_len(out));
        m->nitems = 0;
        return;
    }
    size_t it = 0;
    while (next_frame(r, &p, &n, &f)) {
        /* a descent step sends any number of TREE_QUERY frames */
        while (it < m->nitems && m->items[it].kind == MKFM_SI_TREE && f.type != MK_F_TREE_QUERY)
            it++;
        MKFU_CHECK(it < m->nitems, "S2: source sent %s the model does not expect",
                   mk_ftype_name(f.type));
        const mkfm_sitem *x = &m->items[it];
        switch (x->kind) {
        case MKFM_SI_HELLO:
            MKFU_CHECK(f.type == MK_F_HELLO && f.len == 32 && mkfm_le64(f.pl) == m->volume_id &&
                           mkfm_le64(f.pl + 8) == m->nblocks && mkfm_le32(f.pl + 16) == m->bs &&
                           f.pl[20] == m->mode && !f.pl[21] && !f.pl[22] && !f.pl[23] &&
                           mkfm_le64(f.pl + 24) == m->source_id,
                       "S2: HELLO expected, got %s", mk_ftype_name(f.type));
            it++;
            break;
        case MKFM_SI_LOG: {
            const mkfm_pending *x2 = pending(m, x->a);
            MKFU_CHECK(x2, "model: LOG of a transfer it does not hold");
            MKFU_CHECK(f.type == MK_F_LOG && f.len == 24 + x2->length &&
                           mkfm_le64(f.pl) == x2->tid && mkfm_le64(f.pl + 8) == x2->offset &&
                           mkfm_le32(f.pl + 16) == x2->length && mkfm_le32(f.pl + 20) == 0 &&
                           memcmp(f.pl + 24, x2->data, x2->length) == 0,
                       "S2: LOG of transfer %llu expected, got %s (tid %llu)",
                       (unsigned long long)x->a, mk_ftype_name(f.type),
                       f.len >= 8 ? (unsigned long long)mkfm_le64(f.pl) : 0ull);
            it++;
            break;
        }
        case MKFM_SI_CP:
            check_cp(r, &p, &n, &f, x->a);
            it++;
            break;
        case MKFM_SI_DATA:
            check_data(r, &f, x->a);
            it++;
            break;
        case MKFM_SI_TREE:
            check_tree_query(r, &f);
            break; /* more may follow */
        case MKFM_SI_ERROR:
            MKFU_CHECK(f.type == MK_F_ERROR && f.len >= 8 && mkfm_le32(f.pl + 4) == f.len - 8,
                       "S2: ERROR expected, got %s", mk_ftype_name(f.type));
            MKFU_CHECK(-(int64_t)mkfm_le32(f.pl) == (int64_t)x->a,
                       "S2: source sent ERROR %s, the model says %s",
                       mk_errname(-(int)mkfm_le32(f.pl)), mk_errname((int)(int64_t)x->a));
            it++;
            break;
        }
    }
    while (it < m->nitems && m->items[it].kind == MKFM_SI_TREE)
        it++;
    MKFU_CHECK(it == m->nitems, "S2: the source did not send item %d the model expects",
               m->items[it].kind);
    m->nitems = 0;
    mk_buf_consume(out, mk_buf_len(out));
}

/* S3: the engine's visible state against the model's. */
static void check_state(srun *r, int image)
{
    mkfm_source *m = &r->m;
    mk_source *s = r->s;
    if (!m->untracked && mk_source_error(s) != m->fatal)
        mkfu_fail("S1: source error %s, the model says %s", mk_errname(mk_source_error(s)),
                  mk_errname(m->fatal));
    if (m->untracked)
        return;
    MKFU_CHECK(mk_source_ready(s) == (m->state == MKFM_READY), "S3: ready %d, model state %d",
               mk_source_ready(s), m->state);
    MKFU_CHECK(mk_source_cp_in_flight(s) == m->cp_inflight &&
                   mk_source_cp_acked(s) == m->cp_no - (uint64_t)m->cp_inflight,
               "S3: CP in flight %d acked %llu; model %d %llu", mk_source_cp_in_flight(s),
               (unsigned long long)mk_source_cp_acked(s), m->cp_inflight,
               (unsigned long long)(m->cp_no - (uint64_t)m->cp_inflight));
    MKFU_CHECK(mk_source_acked(s) == m->acked_wid, "S3: acked write %llu, model %llu",
               (unsigned long long)mk_source_acked(s), (unsigned long long)m->acked_wid);
    MKFU_CHECK(mk_source_unacked_bytes(s) == m->unacked_bytes,
               "S3: unacked bytes %llu, model %llu",
               (unsigned long long)mk_source_unacked_bytes(s),
               (unsigned long long)m->unacked_bytes);
    MKFU_CHECK(mk_source_dirty_blocks(s) == m->ndirty, "S3: dirty blocks %llu, model %llu",
               (unsigned long long)mk_source_dirty_blocks(s), (unsigned long long)m->ndirty);
    if (m->cp_inflight) {
        MKFU_CHECK(mk_source_cp_size(s) == m->nrec, "S3: CP of %zu records, model %zu",
                   mk_source_cp_size(s), m->nrec);
        for (size_t i = 0; i < m->nrec; i++) {
            mk_cp_record c;
            const mkfm_rec *x = &m->rec[i];
            mk_source_cp_record(s, i, &c);
            int is_ref = x->ref || x->naked;
            MKFU_CHECK(c.block == x->block && c.is_ref == is_ref && c.naked == x->naked &&
                           c.hash == x->hash && (!is_ref || (c.tid == x->tid && c.slot == x->slot)),
                       "S3: CP record %zu (block %llu) differs from the model's", i,
                       (unsigned long long)x->block);
        }
    }
    if (image) {
        MKFU_CHECK(mk_file_read_block(r->store, r->buf, r->vbytes, 0) == 0, "store read");
        MKFU_CHECK(memcmp(r->buf, m->image, r->vbytes) == 0, "S3: store differs from the model");
    }
}

/* ---- feeding ---------------------------------------------------------------- */

static void feed_piece(srun *r, const uint8_t *p, size_t n)
{
    mkfm_sres want;
    mkfm_source *m = &r->m;
    int was_fatal = m->fatal;
    mkfm_source_piece(m, p, n, &want);
    size_t at = 0;
    int first = 0, last = 0;
    while (at < n) {
        size_t c = mkfu_chunk(&r->ctl, n - at);
        r->fed += c;
        last = mk_source_recv(r->s, p + at, c, 0);
        at += c;
        if (last && !first)
            first = last;
    }
    if (m->untracked)
        goto out;
    switch (want.kind) {
    case MKFM_S_OK:
        MKFU_CHECK(first == 0, "S1: source refused with %s what SPEC accepts (type 0x%02x)",
                   mk_errname(first), n > 5 ? p[5] : 0);
        break;
    case MKFM_S_LOST:
        MKFU_CHECK(first == want.err && mk_source_error(r->s) == 0 && !mk_source_ready(r->s),
                   "S1: source gave %s (error %s, ready %d); SPEC: session lost with %s",
                   mk_errname(first), mk_errname(mk_source_error(r->s)), mk_source_ready(r->s),
                   mk_errname(want.err));
        break;
    case MKFM_S_FATAL:
        MKFU_CHECK(first == want.err, "S1: source gave %s; SPEC: fatal %s%s", mk_errname(first),
                   mk_errname(want.err), was_fatal ? " (already)" : "");
        break;
    case MKFM_S_UNSURE:
        /* The model does not judge a descent's answers: take the engine's
         * verdict, which must still be a fatal error or nothing. */
        if (mk_source_error(r->s)) {
            m->fatal = mk_source_error(r->s);
            if (m->state != MKFM_DOWN) /* 8.5: ERROR after any queries */
                mkfm_source_expect(m, MKFM_SI_ERROR, (uint64_t)(int64_t)m->fatal);
            m->descent = 0;
        }
        break;
    }
out:
    check_output(r);
    check_state(r, 0);
}

static void do_write(srun *r, const uint8_t *pl, uint32_t len)
{
    uint8_t zero[8] = {0};
    const uint8_t *h = len >= 8 ? pl : zero;
    uint64_t off = mkfm_le64(h);
    uint32_t dlen = len >= 8 ? len - 8 : 0;
    const uint8_t *data = pl + (len >= 8 ? 8 : len);
    uint64_t wid;
    int want = r->m.untracked ? 0 : mkfm_source_write(&r->m, off, data, dlen);
    int got = mk_source_write(r->s, off, data, dlen, 0, &wid);
    if (!r->m.untracked)
        MKFU_CHECK(got == want, "S1: write of %u bytes at %llu: %s, SPEC says %s", dlen,
                   (unsigned long long)off, mk_errname(got), mk_errname(want));
    check_output(r);
    check_state(r, 1);
}

static void do_cp(srun *r)
{
    int want = r->m.untracked ? 0 : mkfm_source_cp(&r->m);
    int got = mk_source_cp(r->s, 0);
    if (!r->m.untracked)
        MKFU_CHECK(got == want, "S1: CP start: %s, SPEC says %s", mk_errname(got),
                   mk_errname(want));
    check_output(r);
    check_state(r, 0);
}

static void do_connect(srun *r, int first)
{
    if (!first) {
        mk_source_disconnect(r->s);
        mkfm_source_disconnect(&r->m);
    }
    int got = mk_source_connect(r->s, 0);
    if (!r->m.untracked) {
        MKFU_CHECK(got == r->m.fatal, "S1: connect: %s, model %s", mk_errname(got),
                   mk_errname(r->m.fatal));
        mkfm_source_connect(&r->m);
    }
    check_output(r);
    check_state(r, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srun r;
    memset(&r, 0, sizeof r);
    mkfm_strict = mkfu_env_strict();
    size_t heap0 = mkfu_heap_base();
    mkfu_ctl_read(&r.ctl, data, size);
    unsigned v = r.ctl.variant % (sizeof setups / sizeof setups[0]);
    mk_source_config cfg = {MKFU_VOLUME_ID, setups[v].nblocks, MKFU_SOURCE_ID, setups[v].bs,
                            setups[v].mode, setups[v].max_lag, NULL};
    r.vbytes = cfg.nblocks * cfg.block_size;
    if (mk_file_mem("fuzz/store", &r.store) || mk_file_mem("fuzz/tree", &r.tree) ||
        !(r.buf = malloc(r.vbytes)))
        abort();
    cfg.tree = r.tree;
    if (mk_source_new(&cfg, r.store, &r.s) ||
        mkfm_source_init(&r.m, cfg.volume_id, cfg.nblocks, cfg.block_size, cfg.mode,
                         cfg.source_id, cfg.max_lag))
        abort();
    do_connect(&r, 1);

    mkfu_piece *pc = NULL;
    size_t k = mkfu_split(data + (size > MKFU_HDR ? MKFU_HDR : size),
                          size > MKFU_HDR ? size - MKFU_HDR : 0, &pc);
    for (size_t i = 0; i < k; i++) {
        switch (pc[i].op) {
        case 0:
            feed_piece(&r, pc[i].p, pc[i].n);
            break;
        case MKFU_OP_RECONNECT:
            do_connect(&r, 0);
            break;
        case MKFU_OP_WRITE:
            do_write(&r, pc[i].p + MK_HDR_LEN, (uint32_t)(pc[i].n - MK_FRAME_OVERHEAD));
            break;
        case MKFU_OP_CP:
            do_cp(&r);
            break;
        }
    }
    free(pc);
    check_state(&r, 1);
    /* S4 */
    size_t heap = mkfu_heap_in_use();
    MKFU_CHECK(heap <= heap0 + 16 * (size + r.vbytes) + 2 * (r.m.max_lag < (1u << 20) ? r.m.max_lag : (1u << 20)) + (512u << 10),
               "S4: %zu heap bytes in use for a %zu-byte input", heap - heap0, size);
    uint64_t fsz;
    mk_file_size(r.store, &fsz);
    MKFU_CHECK(fsz <= r.vbytes, "S4: store of %llu bytes", (unsigned long long)fsz);
    mk_file_size(r.tree, &fsz);
    MKFU_CHECK(fsz <= 16 * (2 * r.m.tree.p - 1), "S4: tree file of %llu bytes",
               (unsigned long long)fsz);
    mk_source_free(r.s);
    mk_file_close(r.store);
    mk_file_close(r.tree);
    mkfm_source_free(&r.m);
    free(r.buf);
    return 0;
}
