#include "mk_wire.h"

#include <string.h>
#include <xxhash.h>

#include "mk_err.h"

const char *mk_ftype_name(int type)
{
    switch (type) {
    case MK_F_HELLO: return "HELLO";
    case MK_F_LOG: return "LOG";
    case MK_F_CP_BEGIN: return "CP_BEGIN";
    case MK_F_CP_DATA: return "CP_DATA";
    case MK_F_CP_REF: return "CP_REF";
    case MK_F_CP_COMMIT: return "CP_COMMIT";
    case MK_F_ERROR: return "ERROR";
    case MK_F_HELLO_ACK: return "HELLO_ACK";
    case MK_F_LOG_ACK: return "LOG_ACK";
    case MK_F_NAK: return "NAK";
    case MK_F_CP_ACK: return "CP_ACK";
    case MK_F_TREE_QUERY: return "TREE_QUERY";
    case MK_F_TREE_NODES: return "TREE_NODES";
    case MK_R_TRANSFER: return "R_TRANSFER";
    case MK_R_CP_DATA: return "R_CP_DATA";
    case MK_R_CP_COMMIT: return "R_CP_COMMIT";
    case MK_R_CP_APPLIED: return "R_CP_APPLIED";
    }
    return "?";
}

const char *mk_mode_name(int mode)
{
    switch (mode) {
    case MK_MODE_SYNC: return "sync";
    case MK_MODE_SEMI: return "semi-sync";
    case MK_MODE_ASYNC: return "async";
    }
    return "?";
}

int mk_mode_parse(const char *s)
{
    if (strcmp(s, "sync") == 0) return MK_MODE_SYNC;
    if (strcmp(s, "semi-sync") == 0 || strcmp(s, "semi") == 0) return MK_MODE_SEMI;
    if (strcmp(s, "async") == 0) return MK_MODE_ASYNC;
    return MK_EINVAL;
}

int mk_block_size_ok(uint32_t b)
{
    return b >= MK_MIN_BLOCK && b <= MK_MAX_BLOCK && (b & (b - 1)) == 0;
}

uint64_t mk_block_hash(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

uint64_t mk_digest_step(uint64_t d, uint64_t block, uint64_t hash)
{
    uint8_t e[16];
    mk_put_le64(e, block);
    mk_put_le64(e + 8, hash);
    return XXH3_64bits_withSeed(e, sizeof e, d);
}

void mk_transfer_geom(uint64_t offset, uint32_t length, uint32_t bs, mk_xgeom *g)
{
    uint64_t to_boundary = (bs - offset % bs) % bs;
    g->head_len = (uint32_t)(to_boundary < length ? to_boundary : length);
    g->nslots = (length - g->head_len) / bs;
    g->tail_len = length - g->head_len - g->nslots * bs;
    g->first_block = (offset + g->head_len) / bs;
}

/* ---- framing ----------------------------------------------------------- */

int mk_frame_decode(const uint8_t *buf, size_t len, size_t max_payload,
                    uint32_t magic, mk_frame *f, size_t *used)
{
    mk_rcur c;
    uint32_t m, plen;
    uint8_t ver;
    mk_rcur_init(&c, buf, len);
    /* Magic and version are judged as soon as their bytes are present, the
     * rest of the header once all 20 bytes are: garbage is named before we
     * wait for any body length it claims. */
    if (mk_rcur_u32(&c, &m))
        return MK_ETRUNC;
    if (m != magic)
        return MK_EMAGIC;
    if (mk_rcur_u8(&c, &ver))
        return MK_ETRUNC;
    if (ver != MK_PROTO_VERSION)
        return MK_EVERSION;
    if (mk_rcur_u8(&c, &f->type) || mk_rcur_u16(&c, &f->flags) ||
        mk_rcur_u32(&c, &plen) || mk_rcur_u64(&c, &f->seq))
        return MK_ETRUNC;
    if (f->flags != 0)
        return MK_ERESERVED;
    if (plen > max_payload)
        return MK_ELENGTH;
    f->len = plen;
    uint64_t sum;
    if (mk_rcur_take(&c, plen, &f->payload) || mk_rcur_u64(&c, &sum))
        return MK_ETRUNC;
#ifndef MK_FUZZ_ANY_CHECKSUM
    if (sum != XXH3_64bits(buf, MK_HDR_LEN + (size_t)plen))
        return MK_ECHECKSUM;
#else
    /* Fuzzing builds accept the fixed value 0 too, so that mutations reach
     * the protocol logic behind the checksum (fuzz/README.md). */
    if (sum != 0 && sum != XXH3_64bits(buf, MK_HDR_LEN + (size_t)plen))
        return MK_ECHECKSUM;
#endif
    *used = c.pos;
    return 0;
}

int mk_frame_recv(mk_buf *in, const void *buf, size_t n, mk_frame_fn fn, void *ctx,
                  int *framing)
{
    const uint8_t *p = buf;
    int rc;
    *framing = 0;
    /* Frames are decoded where they lie in the caller's bytes; only a
     * frame that the bytes end inside is queued, and the next call adds
     * just what completes it before going on in place.  A destination
     * receiving gigabytes so copies almost none of them.  Whatever stops
     * the loop, the unread bytes are queued behind the frame it stopped
     * at, as if every byte had been appended first. */
    for (;;) {
        mk_frame f;
        size_t used, take = 0;
        int queued = mk_buf_len(in) > 0;
        if (queued) {
            /* The queued prefix: its header first, then the rest of its
             * frame once the header gives the length. */
            size_t have = mk_buf_len(in), want = MK_HDR_LEN;
            if (have >= MK_HDR_LEN) {
                mk_rcur c;
                uint32_t plen;
                mk_rcur_init(&c, mk_buf_peek(in), have);
                mk_rcur_skip(&c, 8);
                mk_rcur_u32(&c, &plen);
                want = plen > MK_MAX_PAYLOAD ? have : MK_FRAME_OVERHEAD + (size_t)plen;
            }
            take = want > have ? (want - have < n ? want - have : n) : 0;
            if (take && (rc = mk_buf_append(in, p, take)))
                return rc;
            p += take;
            n -= take;
        } else if (n == 0) {
            return 0;
        }
        rc = queued ? mk_frame_decode(mk_buf_peek(in), mk_buf_len(in), MK_MAX_PAYLOAD,
                                      MK_FRAME_MAGIC, &f, &used)
                    : mk_frame_decode(p, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used);
        if (rc == MK_ETRUNC) {
            /* A frame the bytes end inside waits for the next call; a
             * queued one whose header just completed takes its body now. */
            if (queued && take && n)
                continue;
            return n ? mk_buf_append(in, p, n) : 0;
        }
        if (rc) {
            int a = mk_buf_append(in, p, n);
            *framing = !a;
            return a ? a : rc;
        }
        rc = fn(ctx, &f);
        if (queued) {
            mk_buf_consume(in, used);
        } else {
            p += used;
            n -= used;
        }
        if (rc) {
            (void)mk_buf_append(in, p, n);
            return rc;
        }
    }
}

int mk_frame_open(mk_buf *b, uint32_t magic, uint8_t type, uint64_t seq,
                  size_t max_payload, mk_wcur *c)
{
    int rc = mk_buf_reserve(b, MK_FRAME_OVERHEAD + max_payload, c);
    if (rc)
        return rc;
    mk_wcur_u32(c, magic);
    mk_wcur_u8(c, MK_PROTO_VERSION);
    mk_wcur_u8(c, type);
    mk_wcur_u16(c, 0);
    mk_wcur_u32(c, 0); /* length, patched by mk_frame_close */
    mk_wcur_u64(c, seq);
    /* Hold back the trailer's room so a payload overrun fails in the
     * cursor instead of eating the checksum. */
    c->cap -= MK_TRAILER_LEN;
    return 0;
}

int mk_frame_close(mk_buf *b, mk_wcur *c)
{
    size_t plen = c->pos - MK_HDR_LEN;
    c->cap += MK_TRAILER_LEN;
    mk_wcur_patch_u32(c, 8, (uint32_t)plen);
    uint64_t sum = XXH3_64bits(c->buf, c->pos);
    int rc = mk_wcur_u64(c, sum);
    if (rc)
        return rc;
    mk_buf_commit(b, c->pos);
    return 0;
}

/* ---- payload decoders ------------------------------------------------- */

/* Error codes cross the wire as their positive value (mk_err.h). */
static uint32_t err_to_wire(int32_t code)
{
    return code < 0 && code != INT32_MIN ? (uint32_t)-code : (uint32_t)code;
}

static int32_t wire_to_err(uint32_t w)
{
    return w <= INT32_MAX ? -(int32_t)w : INT32_MIN;
}

static int expect_len(const mk_frame *f, uint32_t want)
{
    return f->len == want ? 0 : MK_ELENGTH;
}

int mk_hello_decode(const mk_frame *f, mk_hello *h)
{
    mk_rcur c;
    int rc = expect_len(f, MK_HELLO_LEN);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &h->volume_id);
    mk_rcur_u64(&c, &h->nblocks);
    mk_rcur_u32(&c, &h->block_size);
    mk_rcur_u8(&c, &h->mode);
    if ((rc = mk_rcur_zero(&c, 3)))
        return rc;
    mk_rcur_u64(&c, &h->source_id);
    if (!mk_block_size_ok(h->block_size))
        return MK_EBLOCKSIZE;
    if (h->mode < MK_MODE_SYNC || h->mode > MK_MODE_ASYNC)
        return MK_EINVAL;
    if (h->nblocks == 0 || h->nblocks > (UINT64_MAX / h->block_size))
        return MK_ERANGE;
    return 0;
}

int mk_hello_ack_decode(const mk_frame *f, mk_hello_ack *h)
{
    mk_rcur c;
    int rc = expect_len(f, MK_HELLO_ACK_LEN);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &h->volume_id);
    mk_rcur_u64(&c, &h->nblocks);
    mk_rcur_u32(&c, &h->block_size);
    if ((rc = mk_rcur_zero(&c, 4)))
        return rc;
    mk_rcur_u64(&c, &h->last_cp);
    mk_rcur_u64(&c, &h->durable_tid);
    mk_rcur_u64(&c, &h->source_id);
    mk_rcur_u64(&c, &h->last_digest);
    return 0;
}

int mk_log_decode(const mk_frame *f, mk_log *l)
{
    mk_rcur c;
    int rc;
    if (f->len < MK_LOG_HDR_LEN)
        return MK_ELENGTH;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &l->tid);
    mk_rcur_u64(&c, &l->offset);
    mk_rcur_u32(&c, &l->length);
    if ((rc = mk_rcur_zero(&c, 4)))
        return rc;
    if (l->length == 0)
        return MK_EZEROLEN;
    if (l->length > MK_MAX_TRANSFER_DATA || l->length != mk_rcur_left(&c))
        return MK_ELENGTH;
    if (l->tid == 0)
        return MK_ETID;
    mk_rcur_take(&c, l->length, &l->data);
    return 0;
}

int mk_log_ack_decode(const mk_frame *f, uint64_t *tid)
{
    mk_rcur c;
    int rc = expect_len(f, 8);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    return mk_rcur_u64(&c, tid);
}

int mk_cp_begin_decode(const mk_frame *f, mk_cp_begin *b)
{
    mk_rcur c;
    int rc = expect_len(f, MK_CP_BEGIN_LEN);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &b->cp);
    mk_rcur_u64(&c, &b->nrecords);
    mk_rcur_u64(&c, &b->covers_tid);
    return 0;
}

int mk_cp_data_decode(const mk_frame *f, uint32_t bs, mk_cp_data *d)
{
    mk_rcur c;
    int rc = expect_len(f, MK_CP_DATA_HDR_LEN + bs);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &d->cp);
    mk_rcur_u64(&c, &d->block);
    mk_rcur_take(&c, bs, &d->data);
    return 0;
}

int mk_cp_ref_decode(const mk_frame *f, uint64_t *cp, uint32_t *count)
{
    mk_rcur c;
    int rc;
    if (f->len < MK_CP_REF_HDR_LEN)
        return MK_ELENGTH;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, cp);
    mk_rcur_u32(&c, count);
    if ((rc = mk_rcur_zero(&c, 4)))
        return rc;
    if (*count == 0 || *count > MK_MAX_REFS_PER_FRAME ||
        mk_rcur_left(&c) != (size_t)*count * MK_REF_LEN)
        return MK_ELENGTH;
    for (uint32_t i = 0; i < *count; i++) {
        mk_ref r;
        if ((rc = mk_ref_at(f, i, &r)))
            return rc;
    }
    return 0;
}

int mk_ref_at(const mk_frame *f, uint32_t i, mk_ref *r)
{
    mk_rcur c;
    int rc;
    mk_rcur_init(&c, f->payload, f->len);
    if ((rc = mk_rcur_skip(&c, MK_CP_REF_HDR_LEN + (size_t)i * MK_REF_LEN)))
        return rc;
    if ((rc = mk_rcur_u64(&c, &r->block)) || (rc = mk_rcur_u64(&c, &r->tid)) ||
        (rc = mk_rcur_u32(&c, &r->slot)))
        return rc;
    if ((rc = mk_rcur_zero(&c, 4)))
        return rc;
    return mk_rcur_u64(&c, &r->hash);
}

int mk_cp_commit_decode(const mk_frame *f, mk_cp_commit *cc)
{
    mk_rcur c;
    int rc = expect_len(f, MK_CP_COMMIT_LEN);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &cc->cp);
    mk_rcur_u64(&c, &cc->nrecords);
    return 0;
}

int mk_nak_decode(const mk_frame *f, mk_nak *n)
{
    mk_rcur c;
    uint32_t w;
    int rc = expect_len(f, MK_NAK_LEN);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &n->cp);
    mk_rcur_u64(&c, &n->block);
    mk_rcur_u32(&c, &w);
    n->reason = wire_to_err(w);
    return mk_rcur_zero(&c, 4);
}

int mk_cp_ack_decode(const mk_frame *f, mk_cp_ack *a)
{
    mk_rcur c;
    int rc = expect_len(f, MK_CP_ACK_LEN);
    if (rc)
        return rc;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u64(&c, &a->cp);
    mk_rcur_u64(&c, &a->napplied);
    mk_rcur_u64(&c, &a->digest);
    mk_rcur_u64(&c, &a->root_lo);
    mk_rcur_u64(&c, &a->root_hi);
    return 0;
}

int mk_error_decode(const mk_frame *f, mk_error_frame *e)
{
    mk_rcur c;
    uint32_t w;
    if (f->len < 8)
        return MK_ELENGTH;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u32(&c, &w);
    e->code = wire_to_err(w); /* 3.6: any code is accepted, 0 included */
    mk_rcur_u32(&c, &e->msglen);
    if (e->msglen > MK_ERROR_MSG_MAX || e->msglen != mk_rcur_left(&c))
        return MK_ELENGTH;
    mk_rcur_take(&c, e->msglen, &e->msg);
    return 0;
}

/* ---- payload encoders ------------------------------------------------- */

int mk_hello_encode(mk_buf *b, uint64_t seq, const mk_hello *h)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_HELLO, seq, MK_HELLO_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, h->volume_id);
    mk_wcur_u64(&c, h->nblocks);
    mk_wcur_u32(&c, h->block_size);
    mk_wcur_u8(&c, h->mode);
    mk_wcur_zero(&c, 3);
    mk_wcur_u64(&c, h->source_id);
    return mk_frame_close(b, &c);
}

int mk_hello_ack_encode(mk_buf *b, uint64_t seq, const mk_hello_ack *h)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_HELLO_ACK, seq,
                           MK_HELLO_ACK_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, h->volume_id);
    mk_wcur_u64(&c, h->nblocks);
    mk_wcur_u32(&c, h->block_size);
    mk_wcur_zero(&c, 4);
    mk_wcur_u64(&c, h->last_cp);
    mk_wcur_u64(&c, h->durable_tid);
    mk_wcur_u64(&c, h->source_id);
    mk_wcur_u64(&c, h->last_digest);
    return mk_frame_close(b, &c);
}

int mk_log_encode(mk_buf *b, uint64_t seq, const mk_log *l)
{
    mk_wcur c;
    if (l->length == 0 || l->length > MK_MAX_TRANSFER_DATA)
        return MK_ELENGTH;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_LOG, seq,
                           MK_LOG_HDR_LEN + l->length, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, l->tid);
    mk_wcur_u64(&c, l->offset);
    mk_wcur_u32(&c, l->length);
    mk_wcur_zero(&c, 4);
    mk_wcur_bytes(&c, l->data, l->length);
    return mk_frame_close(b, &c);
}

int mk_log_ack_encode(mk_buf *b, uint64_t seq, uint64_t tid)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_LOG_ACK, seq, 8, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, tid);
    return mk_frame_close(b, &c);
}

int mk_cp_begin_encode(mk_buf *b, uint64_t seq, const mk_cp_begin *p)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_CP_BEGIN, seq,
                           MK_CP_BEGIN_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, p->cp);
    mk_wcur_u64(&c, p->nrecords);
    mk_wcur_u64(&c, p->covers_tid);
    return mk_frame_close(b, &c);
}

int mk_cp_data_encode(mk_buf *b, uint64_t seq, const mk_cp_data *d, uint32_t bs)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_CP_DATA, seq,
                           MK_CP_DATA_HDR_LEN + bs, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, d->cp);
    mk_wcur_u64(&c, d->block);
    mk_wcur_bytes(&c, d->data, bs);
    return mk_frame_close(b, &c);
}

int mk_cp_ref_encode(mk_buf *b, uint64_t seq, uint64_t cp, const mk_ref *refs,
                     uint32_t count)
{
    mk_wcur c;
    if (count == 0 || count > MK_MAX_REFS_PER_FRAME)
        return MK_ELENGTH;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_CP_REF, seq,
                           MK_CP_REF_HDR_LEN + (size_t)count * MK_REF_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, cp);
    mk_wcur_u32(&c, count);
    mk_wcur_zero(&c, 4);
    for (uint32_t i = 0; i < count; i++) {
        mk_wcur_u64(&c, refs[i].block);
        mk_wcur_u64(&c, refs[i].tid);
        mk_wcur_u32(&c, refs[i].slot);
        mk_wcur_zero(&c, 4);
        mk_wcur_u64(&c, refs[i].hash);
    }
    return mk_frame_close(b, &c);
}

int mk_cp_commit_encode(mk_buf *b, uint64_t seq, const mk_cp_commit *p)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_CP_COMMIT, seq,
                           MK_CP_COMMIT_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, p->cp);
    mk_wcur_u64(&c, p->nrecords);
    return mk_frame_close(b, &c);
}

int mk_nak_encode(mk_buf *b, uint64_t seq, const mk_nak *n)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_NAK, seq, MK_NAK_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, n->cp);
    mk_wcur_u64(&c, n->block);
    mk_wcur_u32(&c, err_to_wire(n->reason));
    mk_wcur_zero(&c, 4);
    return mk_frame_close(b, &c);
}

int mk_cp_ack_encode(mk_buf *b, uint64_t seq, const mk_cp_ack *a)
{
    mk_wcur c;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_CP_ACK, seq, MK_CP_ACK_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u64(&c, a->cp);
    mk_wcur_u64(&c, a->napplied);
    mk_wcur_u64(&c, a->digest);
    mk_wcur_u64(&c, a->root_lo);
    mk_wcur_u64(&c, a->root_hi);
    return mk_frame_close(b, &c);
}

int mk_error_encode(mk_buf *b, uint64_t seq, int32_t code, const char *msg)
{
    mk_wcur c;
    size_t n = msg ? strlen(msg) : 0;
    if (n > MK_ERROR_MSG_MAX)
        n = MK_ERROR_MSG_MAX;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_ERROR, seq, 8 + n, &c);
    if (rc)
        return rc;
    mk_wcur_u32(&c, err_to_wire(code));
    mk_wcur_u32(&c, (uint32_t)n);
    mk_wcur_bytes(&c, msg, n);
    return mk_frame_close(b, &c);
}

/* ---- Merkle descent ---------------------------------------------------- */

/* Both tree frames: u32 level, u32 count, then count fixed-size entries. */
static int tree_hdr(const mk_frame *f, size_t entry, uint32_t *level, uint32_t *count)
{
    mk_rcur c;
    if (f->len < MK_TREE_QUERY_HDR_LEN)
        return MK_ELENGTH;
    mk_rcur_init(&c, f->payload, f->len);
    mk_rcur_u32(&c, level);
    mk_rcur_u32(&c, count);
    if (*level == 0 || *level > 64)
        return MK_ERANGE;
    if (*count == 0 || *count > MK_MAX_TREE_NODES || mk_rcur_left(&c) != *count * entry)
        return MK_ELENGTH;
    return 0;
}

int mk_tree_query_decode(const mk_frame *f, uint32_t *level, uint32_t *count)
{
    return tree_hdr(f, 8, level, count);
}

int mk_tree_query_at(const mk_frame *f, uint32_t i, uint64_t *index)
{
    mk_rcur c;
    mk_rcur_init(&c, f->payload, f->len);
    int rc = mk_rcur_skip(&c, MK_TREE_QUERY_HDR_LEN + (size_t)i * 8);
    return rc ? rc : mk_rcur_u64(&c, index);
}

int mk_tree_query_encode(mk_buf *b, uint64_t seq, uint32_t level, const uint64_t *index,
                         uint32_t count)
{
    mk_wcur c;
    if (count == 0 || count > MK_MAX_TREE_NODES)
        return MK_ELENGTH;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_TREE_QUERY, seq,
                           MK_TREE_QUERY_HDR_LEN + (size_t)count * 8, &c);
    if (rc)
        return rc;
    mk_wcur_u32(&c, level);
    mk_wcur_u32(&c, count);
    for (uint32_t i = 0; i < count; i++)
        mk_wcur_u64(&c, index[i]);
    return mk_frame_close(b, &c);
}

int mk_tree_nodes_decode(const mk_frame *f, uint32_t *level, uint32_t *count)
{
    return tree_hdr(f, MK_TREE_NODE_LEN, level, count);
}

int mk_tree_nodes_at(const mk_frame *f, uint32_t i, mk_tree_node *n)
{
    mk_rcur c;
    mk_rcur_init(&c, f->payload, f->len);
    int rc = mk_rcur_skip(&c, MK_TREE_QUERY_HDR_LEN + (size_t)i * MK_TREE_NODE_LEN);
    if (rc || (rc = mk_rcur_u64(&c, &n->index)) || (rc = mk_rcur_u64(&c, &n->left_lo)) ||
        (rc = mk_rcur_u64(&c, &n->left_hi)) || (rc = mk_rcur_u64(&c, &n->right_lo)))
        return rc;
    return mk_rcur_u64(&c, &n->right_hi);
}

int mk_tree_nodes_encode(mk_buf *b, uint64_t seq, uint32_t level, const mk_tree_node *n,
                         uint32_t count)
{
    mk_wcur c;
    if (count == 0 || count > MK_MAX_TREE_NODES)
        return MK_ELENGTH;
    int rc = mk_frame_open(b, MK_FRAME_MAGIC, MK_F_TREE_NODES, seq,
                           MK_TREE_QUERY_HDR_LEN + (size_t)count * MK_TREE_NODE_LEN, &c);
    if (rc)
        return rc;
    mk_wcur_u32(&c, level);
    mk_wcur_u32(&c, count);
    for (uint32_t i = 0; i < count; i++) {
        mk_wcur_u64(&c, n[i].index);
        mk_wcur_u64(&c, n[i].left_lo);
        mk_wcur_u64(&c, n[i].left_hi);
        mk_wcur_u64(&c, n[i].right_lo);
        mk_wcur_u64(&c, n[i].right_hi);
    }
    return mk_frame_close(b, &c);
}
