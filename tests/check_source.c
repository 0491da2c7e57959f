/*
 * check_source.c - the source engine (mk_source.h) against a destination
 * written by hand: every frame the source receives is encoded here
 * (mkt_peer), every frame it sends is decoded and checked field by field.
 *
 * Geometry: 64 blocks of 512 bytes unless a test says otherwise.  A model
 * of the volume (the bytes every accepted write put there) gives the CP
 * images, block hashes and CP digests the source's frames must carry.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mk_engine_test.h"

#define NB 64u
#define BS 512u

/* ---- fixture --------------------------------------------------------------- */

typedef struct sfx {
    mk_source_config cfg;
    mk_file *store;
    mk_source *s;
    mkt_peer p;     /* the destination's side */
    uint8_t *model; /* the volume as the client wrote it */
    uint64_t vbytes;
} sfx;

static void sfx_make(sfx *x, int mode, uint64_t nb, uint32_t bs, uint64_t max_lag)
{
    memset(x, 0, sizeof *x);
    x->cfg = (mk_source_config){MKT_VOLUME_ID, nb, MKT_SOURCE_ID, bs, mode, max_lag, NULL};
    x->vbytes = nb * bs;
    mkt_ok(mk_file_mem("test/source/store", &x->store));
    mkt_ok(mk_source_new(&x->cfg, x->store, &x->s));
    mkt_peer_init(&x->p);
    x->model = calloc(1, x->vbytes <= (64u << 20) ? x->vbytes : 1);
    ck_assert_ptr_nonnull(x->model);
}

static void sfx_free(sfx *x)
{
    mk_source_free(x->s);
    mk_file_close(x->store);
    mkt_peer_free(&x->p);
    free(x->model);
}

static mkt_frames *sfx_out(sfx *x) { return mkt_take(mk_source_out(x->s)); }

static int sfx_send(sfx *x) { return mkt_to_source(&x->p, x->s); }

/* Connects: the HELLO is checked and answered. */
static void sfx_connect(sfx *x, uint64_t last_cp, uint64_t durable, uint64_t digest)
{
    mkt_ok(mk_source_connect(x->s, 0));
    mkt_frames *fs = sfx_out(x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_HELLO);
    ck_assert_uint_eq(fs->f[0].seq, 0);
    mk_hello h;
    mkt_ok(mk_hello_decode(&fs->f[0], &h));
    ck_assert_uint_eq(h.volume_id, MKT_VOLUME_ID);
    ck_assert_uint_eq(h.nblocks, x->cfg.nblocks);
    ck_assert_uint_eq(h.block_size, x->cfg.block_size);
    ck_assert_uint_eq(h.mode, x->cfg.mode);
    ck_assert_uint_eq(h.source_id, MKT_SOURCE_ID);
    mkt_frames_free(fs);
    ck_assert(!mk_source_ready(x->s));
    mk_buf_clear(&x->p.b);
    x->p.seq = 0;
    mkt_hello_ack(&x->p, x->cfg.nblocks, x->cfg.block_size, last_cp, durable, MKT_SOURCE_ID,
                  digest);
    mkt_ok(sfx_send(x));
    ck_assert(mk_source_ready(x->s));
}

static void sfx_open(sfx *x, int mode)
{
    sfx_make(x, mode, NB, BS, 0);
    sfx_connect(x, 0, 0, 0);
}

/* A write of stream `seed`; returns its write ID. */
static uint64_t sfx_write(sfx *x, uint64_t off, uint32_t len, uint64_t seed)
{
    uint8_t *b = malloc(len);
    uint64_t wid = 0;
    ck_assert_ptr_nonnull(b);
    mkt_fill(b, len, seed);
    mkt_ok(mk_source_write(x->s, off, b, len, 0, &wid));
    memcpy(x->model + off, b, len);
    free(b);
    return wid;
}

static void sfx_ack(sfx *x, uint64_t tid)
{
    mkt_log_ack(&x->p, tid);
    mkt_ok(sfx_send(x));
}

/* The CP frames of one output, decoded. */
typedef struct cpview {
    mk_cp_begin b;
    size_t nbegin, ncommit, nref_frames;
    mk_cp_commit c;
    mk_ref ref[2048];
    size_t nref;
    uint64_t dblock[2048];
    const uint8_t *ddata[2048];
    size_t ndata;
    size_t nlog;
    uint64_t log_tid[64];
    int order_ok; /* BEGIN, REFs, DATA, COMMIT, each kind ascending */
} cpview;

static cpview *view(const mkt_frames *fs, uint32_t bs)
{
    cpview *v = calloc(1, sizeof *v);
    ck_assert_ptr_nonnull(v);
    int phase = 0; /* 0 before BEGIN, 1 refs, 2 data, 3 after COMMIT */
    v->order_ok = 1;
    for (size_t i = 0; i < fs->n; i++) {
        const mk_frame *f = &fs->f[i];
        switch (f->type) {
        case MK_F_CP_BEGIN:
            mkt_ok(mk_cp_begin_decode(f, &v->b));
            v->nbegin++;
            if (phase != 0)
                v->order_ok = 0;
            phase = 1;
            break;
        case MK_F_CP_REF: {
            uint64_t cp;
            uint32_t n;
            mkt_ok(mk_cp_ref_decode(f, &cp, &n));
            ck_assert_uint_eq(cp, v->b.cp);
            for (uint32_t k = 0; k < n; k++) {
                ck_assert_uint_lt(v->nref, 2048);
                mkt_ok(mk_ref_at(f, k, &v->ref[v->nref]));
                if (v->nref && v->ref[v->nref].block <= v->ref[v->nref - 1].block)
                    v->order_ok = 0;
                v->nref++;
            }
            v->nref_frames++;
            if (phase != 1)
                v->order_ok = 0;
            break;
        }
        case MK_F_CP_DATA: {
            mk_cp_data d;
            mkt_ok(mk_cp_data_decode(f, bs, &d));
            ck_assert_uint_eq(d.cp, v->b.cp);
            ck_assert_uint_lt(v->ndata, 2048);
            if (phase == 2 && v->ndata && d.block <= v->dblock[v->ndata - 1])
                v->order_ok = 0;
            v->dblock[v->ndata] = d.block;
            v->ddata[v->ndata++] = d.data;
            if (phase != 1 && phase != 2 && phase != 3)
                v->order_ok = 0;
            if (phase == 1)
                phase = 2;
            break;
        }
        case MK_F_CP_COMMIT:
            mkt_ok(mk_cp_commit_decode(f, &v->c));
            v->ncommit++;
            phase = 3;
            break;
        case MK_F_LOG: {
            mk_log l;
            mkt_ok(mk_log_decode(f, &l));
            if (v->nlog < 64)
                v->log_tid[v->nlog] = l.tid;
            v->nlog++;
            break;
        }
        }
    }
    return v;
}

static const mk_ref *find_ref(const cpview *v, uint64_t block)
{
    for (size_t i = 0; i < v->nref; i++)
        if (v->ref[i].block == block)
            return &v->ref[i];
    return NULL;
}

static const uint8_t *find_data(const cpview *v, uint64_t block)
{
    for (size_t i = 0; i < v->ndata; i++)
        if (v->dblock[i] == block)
            return v->ddata[i];
    return NULL;
}

/* The digest of the CP that covers these blocks of the model (ascending). */
static uint64_t model_digest(const sfx *x, const uint64_t *blocks, size_t n)
{
    uint64_t d = 0;
    uint32_t bs = x->cfg.block_size;
    for (size_t i = 0; i < n; i++)
        d = mk_digest_step(d, blocks[i], mk_block_hash(x->model + blocks[i] * bs, bs));
    return d;
}

/* Expected record of one block: REF (tid, slot) or, with tid 0, DATA. */
typedef struct want_rec {
    uint64_t block, tid;
    uint32_t slot;
} want_rec;

/* Checks a CP's frames against the expected records and the model, then
 * acknowledges it with the digest computed from the model. */
static void expect_cp(sfx *x, uint64_t cp, uint64_t covers, const want_rec *w, size_t n)
{
    uint32_t bs = x->cfg.block_size;
    mkt_frames *fs = sfx_out(x);
    cpview *v = view(fs, bs);
    ck_assert_uint_eq(v->nbegin, 1);
    ck_assert_uint_eq(v->ncommit, 1);
    ck_assert(v->order_ok);
    ck_assert_uint_eq(v->b.cp, cp);
    ck_assert_uint_eq(v->b.nrecords, n);
    ck_assert_uint_eq(v->b.covers_tid, covers);
    ck_assert_uint_eq(v->c.cp, cp);
    ck_assert_uint_eq(v->c.nrecords, n);
    size_t nref = 0;
    uint64_t *blocks = calloc(n ? n : 1, sizeof *blocks);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *img = x->model + w[i].block * bs;
        blocks[i] = w[i].block;
        if (i)
            ck_assert_uint_gt(w[i].block, w[i - 1].block);
        if (w[i].tid) {
            const mk_ref *r = find_ref(v, w[i].block);
            ck_assert_msg(r != NULL, "block %llu: no REF", (unsigned long long)w[i].block);
            ck_assert_msg(find_data(v, w[i].block) == NULL, "block %llu: REF and DATA",
                          (unsigned long long)w[i].block);
            ck_assert_uint_eq(r->tid, w[i].tid);
            ck_assert_uint_eq(r->slot, w[i].slot);
            ck_assert_uint_eq(r->hash, mk_block_hash(img, bs));
            nref++;
        } else {
            const uint8_t *d = find_data(v, w[i].block);
            ck_assert_msg(d != NULL, "block %llu: no DATA", (unsigned long long)w[i].block);
            ck_assert_msg(find_ref(v, w[i].block) == NULL, "block %llu: DATA and REF",
                          (unsigned long long)w[i].block);
            ck_assert_mem_eq(d, img, bs);
        }
    }
    ck_assert_uint_eq(v->nref, nref);
    ck_assert_uint_eq(v->ndata, n - nref);
    uint64_t digest = model_digest(x, blocks, n);
    free(blocks);
    free(v);
    mkt_frames_free(fs);
    mkt_cp_ack(&x->p, cp, n, digest);
    mkt_ok(sfx_send(x));
    ck_assert_uint_eq(mk_source_cp_acked(x->s), cp);
    ck_assert(!mk_source_cp_in_flight(x->s));
}

/* ---- 2.1 / 2.2 / 2.3: sessions -------------------------------------------------- */

START_TEST(test_s2_1_hello_first_frame)
{
    sfx x;
    sfx_make(&x, MK_MODE_SEMI, NB, BS, 0);
    ck_assert(!mk_source_ready(x.s));
    sfx_connect(&x, 0, 0, 0);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->session_bytes, MK_FRAME_OVERHEAD + 32);
    sfx_free(&x);
    /* configurations the source refuses */
    mk_file *f;
    mk_source *s = NULL;
    mkt_ok(mk_file_mem("test/store", &f));
    mk_source_config c = {1, NB, 2, 1000, MK_MODE_SYNC, 0, NULL};
    mkt_assert_err(mk_source_new(&c, f, &s), MK_EBLOCKSIZE);
    c = (mk_source_config){1, NB, 2, BS, 4, 0, NULL};
    mkt_assert_err(mk_source_new(&c, f, &s), MK_EMODE);
    c = (mk_source_config){1, 0, 2, BS, MK_MODE_SYNC, 0, NULL};
    mkt_assert_err(mk_source_new(&c, f, &s), MK_ERANGE);
    c = (mk_source_config){1, UINT64_MAX / BS + 1, 2, BS, MK_MODE_SYNC, 0, NULL};
    mkt_assert_err(mk_source_new(&c, f, &s), MK_ERANGE);
    ck_assert_ptr_null(s);
    mk_file_close(f);
}
END_TEST

enum { HA_VOLUME, HA_NBLOCKS, HA_BS, HA_SOURCE, HA_SHORT, HA_RESERVED, HA_DURABLE_AHEAD,
       HA_LAST_CP, HA_COUNT };

START_TEST(test_s2_2_hello_ack_checks)
{
    static const int want[HA_COUNT] = {MK_EVOLUME, MK_EVOLUME, MK_EVOLUME, MK_EPEER,
                                       MK_ELENGTH, MK_ERESERVED, MK_EDIVERGED, MK_EDIVERGED};
    sfx x;
    sfx_make(&x, MK_MODE_SYNC, NB, BS, 0);
    mkt_ok(mk_source_connect(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    mk_hello_ack a = {MKT_VOLUME_ID, NB, BS, 0, 0, MKT_SOURCE_ID, 0};
    switch (_i) {
    case HA_VOLUME: a.volume_id++; break;
    case HA_NBLOCKS: a.nblocks++; break;
    case HA_BS: a.block_size = 4096; break;
    case HA_SOURCE: a.source_id++; break;
    case HA_DURABLE_AHEAD: a.durable_tid = 1; break; /* the source assigned none */
    case HA_LAST_CP: a.last_cp = 1; break;
    default: break;
    }
    if (_i == HA_SHORT || _i == HA_RESERVED) {
        mkt_ok(mk_hello_ack_encode(&x.p.b, 0, &a));
        uint8_t raw[MK_FRAME_OVERHEAD + MK_HELLO_ACK_LEN];
        memcpy(raw, mk_buf_peek(&x.p.b), sizeof raw);
        mk_buf_clear(&x.p.b);
        if (_i == HA_RESERVED) {
            raw[MK_HDR_LEN + 21] = 1;
            mkt_ok(mk_buf_append(&x.p.b, raw, mkt_raw_frame(raw, MK_F_HELLO_ACK, 0,
                                                             raw + MK_HDR_LEN,
                                                             MK_HELLO_ACK_LEN)));
        } else {
            uint8_t p[MK_HELLO_ACK_LEN];
            memcpy(p, raw + MK_HDR_LEN, sizeof p);
            mkt_ok(mk_buf_append(&x.p.b, raw,
                                 mkt_raw_frame(raw, MK_F_HELLO_ACK, 0, p, MK_HELLO_ACK_LEN - 1)));
        }
    } else {
        mkt_ok(mk_hello_ack_encode(&x.p.b, 0, &a));
    }
    mkt_assert_err(sfx_send(&x), want[_i]);
    mkt_assert_err(mk_source_error(x.s), want[_i]);
    ck_assert(!mk_source_ready(x.s));
    /* the source says why, in an ERROR frame with its next seq (1) */
    mkt_frames *fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_ERROR);
    ck_assert_uint_eq(fs->f[0].seq, 1);
    mk_error_frame e;
    mkt_ok(mk_error_decode(&fs->f[0], &e));
    mkt_assert_err(e.code, want[_i]);
    mkt_frames_free(fs);
    /* fatal and sticky: writes, CPs and connections are refused */
    uint64_t wid;
    uint8_t b[BS] = {0};
    mkt_assert_err(mk_source_write(x.s, 0, b, BS, 0, &wid), want[_i]);
    mkt_assert_err(mk_source_cp(x.s, 0), want[_i]);
    mkt_assert_err(mk_source_connect(x.s, 0), want[_i]);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->writes, 0);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s2_3_frames_before_hello_ack_estate)
{
    static const uint8_t types[] = {MK_F_LOG_ACK, MK_F_NAK, MK_F_CP_ACK};
    for (size_t i = 0; i < sizeof types; i++) {
        sfx x;
        sfx_make(&x, MK_MODE_SYNC, NB, BS, 0);
        mkt_ok(mk_source_connect(x.s, 0));
        mkt_frames_free(sfx_out(&x));
        if (types[i] == MK_F_LOG_ACK)
            mkt_log_ack(&x.p, 0);
        else if (types[i] == MK_F_NAK)
            mkt_nak(&x.p, 1, 0, MK_ENOTID);
        else
            mkt_cp_ack(&x.p, 1, 0, 0);
        mkt_assert_err(sfx_send(&x), MK_ESTATE);
        mkt_assert_error_frame(mk_source_out(x.s), MK_ESTATE);
        sfx_free(&x);
    }
    /* an ERROR is allowed: it ends the session, unanswered */
    sfx x;
    sfx_make(&x, MK_MODE_SYNC, NB, BS, 0);
    mkt_ok(mk_source_connect(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    mkt_ok(mk_error_encode(&x.p.b, x.p.seq++, MK_EPEER, "busy"));
    mkt_assert_err(sfx_send(&x), MK_EREMOTE);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    const char *msg;
    mkt_assert_err(mk_source_remote_error(x.s, &msg), MK_EPEER);
    ck_assert_str_eq(msg, "busy");
    sfx_free(&x);
    /* a second HELLO_ACK on a ready session */
    sfx_open(&x, MK_MODE_SYNC);
    mkt_hello_ack(&x.p, NB, BS, 0, 0, MKT_SOURCE_ID, 0);
    mkt_assert_err(sfx_send(&x), MK_ESTATE);
    mkt_assert_error_frame(mk_source_out(x.s), MK_ESTATE);
    sfx_free(&x);
}
END_TEST

/* ---- 3.4 / 3.5: malformed input ------------------------------------------------ */

enum { SB_CHECKSUM, SB_MAGIC, SB_VERSION, SB_FLAGS, SB_LENGTH_HDR, SB_TYPE_UNKNOWN,
       SB_TYPE_LOG, SB_TYPE_RECORD, SB_SEQ, SB_LOG_ACK_LEN, SB_NAK_RESERVED, SB_CP_ACK_LEN,
       SB_COUNT };

START_TEST(test_s3_4_bad_frames_into_source)
{
    static const int want[SB_COUNT] = {MK_ECHECKSUM, MK_EMAGIC,  MK_EVERSION, MK_ERESERVED,
                                       MK_ELENGTH,   MK_ETYPE,   MK_ETYPE,    MK_ETYPE,
                                       MK_ESEQ,      MK_ELENGTH, MK_ERESERVED, MK_ELENGTH};
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    uint64_t wid = sfx_write(&x, 0, BS, 1);
    mkt_frames_free(sfx_out(&x));
    uint8_t f[MK_FRAME_OVERHEAD + 64], p[64] = {0};
    size_t n;
    mk_put_le64(p, 1);
    n = mkt_raw_frame(f, MK_F_LOG_ACK, 1, p, 8); /* a good LOG_ACK(1) to damage */
    switch (_i) {
    case SB_CHECKSUM: f[MK_HDR_LEN] ^= 1; break;
    case SB_MAGIC: f[3] ^= 0x20; break;
    case SB_VERSION: f[4] = 0; break;
    case SB_FLAGS: f[6] = 1; mkt_reseal(f); break;
    case SB_LENGTH_HDR: mkt_put_le32(f + 8, MK_MAX_PAYLOAD + 1); n = MK_HDR_LEN; break;
    case SB_TYPE_UNKNOWN: f[5] = 0x99; mkt_reseal(f); break;
    case SB_TYPE_LOG: f[5] = MK_F_LOG; mkt_reseal(f); break;
    case SB_TYPE_RECORD: f[5] = MK_R_CP_APPLIED; mkt_reseal(f); break;
    case SB_SEQ: mk_put_le64(f + 12, 2); mkt_reseal(f); break;
    case SB_LOG_ACK_LEN: n = mkt_raw_frame(f, MK_F_LOG_ACK, 1, p, 9); break;
    case SB_NAK_RESERVED:
        mk_put_le64(p, 1);
        mk_put_le64(p + 8, 0);
        mkt_put_le32(p + 16, 19);
        p[21] = 1;
        n = mkt_raw_frame(f, MK_F_NAK, 1, p, 24);
        break;
    case SB_CP_ACK_LEN: n = mkt_raw_frame(f, MK_F_CP_ACK, 1, p, 16); break;
    }
    mkt_assert_err(mk_source_recv(x.s, f, n, 0), want[_i]);
    if (_i == SB_CHECKSUM || _i == SB_MAGIC || _i == SB_VERSION || _i == SB_FLAGS ||
        _i == SB_LENGTH_HDR || _i == SB_SEQ) {
        /* Section 8.5: bytes damaged on the way end the session, not the
         * source: nothing applied, nothing sent, a new session may resume. */
        mkt_assert_err(mk_source_error(x.s), 0);
        ck_assert(!mk_source_ready(x.s));
        ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
        ck_assert_uint_eq(mk_source_get_stats(x.s)->sessions_lost, 1);
        ck_assert_uint_lt(mk_source_acked(x.s), wid);
        ck_assert_uint_eq(mk_source_unacked_bytes(x.s), BS);
        mkt_assert_err(mk_source_recv(x.s, f, n, 0), MK_ESTATE);
        sfx_free(&x);
        return;
    }
    mkt_assert_err(mk_source_error(x.s), want[_i]);
    mkt_frames *fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_ERROR);
    ck_assert_uint_eq(fs->f[0].seq, 2); /* HELLO 0, LOG 1 */
    mk_error_frame e;
    mkt_ok(mk_error_decode(&fs->f[0], &e));
    mkt_assert_err(e.code, want[_i]);
    mkt_frames_free(fs);
    /* nothing of it was applied: the write is still unacknowledged */
    ck_assert_uint_lt(mk_source_acked(x.s), wid);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), BS);
    /* and nothing more is accepted */
    mkt_log_ack(&x.p, 1);
    mkt_assert_err(sfx_send(&x), want[_i]);
    ck_assert_uint_lt(mk_source_acked(x.s), wid);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s3_6_error_from_destination)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    mkt_ok(mk_error_encode(&x.p.b, x.p.seq++, MK_EVOLUME, "HELLO volume differs"));
    mkt_assert_err(sfx_send(&x), MK_EREMOTE);
    mkt_assert_err(mk_source_error(x.s), MK_EREMOTE);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0); /* never answered */
    const char *msg;
    mkt_assert_err(mk_source_remote_error(x.s, &msg), MK_EVOLUME);
    ck_assert_str_eq(msg, "HELLO volume differs");
    sfx_free(&x);
    /* Section 8.5: the destination got damaged bytes - the link's fault,
     * not the source's: the session ends, the source does not. */
    sfx_open(&x, MK_MODE_SYNC);
    mkt_ok(mk_error_encode(&x.p.b, x.p.seq++, MK_ECHECKSUM, "frame: integrity"));
    mkt_assert_err(sfx_send(&x), MK_EREMOTE);
    mkt_assert_err(mk_source_error(x.s), 0);
    ck_assert(!mk_source_ready(x.s));
    mkt_assert_err(mk_source_remote_error(x.s, &msg), MK_ECHECKSUM);
    sfx_free(&x);
    /* a malformed ERROR ends it with the decode error, also unanswered */
    sfx_open(&x, MK_MODE_SYNC);
    uint8_t p[12] = {0}, f[MK_FRAME_OVERHEAD + 12];
    mkt_put_le32(p, 3);
    mkt_put_le32(p + 4, 300);
    size_t n = mkt_raw_frame(f, MK_F_ERROR, 1, p, sizeof p);
    mkt_assert_err(mk_source_recv(x.s, f, n, 0), MK_ELENGTH);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    sfx_free(&x);
}
END_TEST

/* 8.5: refusals of one request and lost connections are not fatal; any
 * other error is, and sticks; an ERROR is sent only with a session up. */
START_TEST(test_s8_5_source_fatal_errors)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    uint8_t b[BS] = {1};
    uint64_t wid;
    mkt_assert_err(mk_source_write(x.s, 0, b, 0, 0, &wid), MK_EZEROLEN);
    mkt_assert_err(mk_source_write(x.s, NB * BS, b, 1, 0, &wid), MK_ERANGE);
    sfx_write(&x, 0, BS, 1);
    mkt_assert_err(mk_source_cp(x.s, 0), MK_EAGAIN); /* sync: unacked */
    mk_source_disconnect(x.s);
    mkt_ok(mk_source_error(x.s));
    sfx_connect(&x, 0, 1, 0);
    ck_assert_uint_eq(mk_source_acked(x.s), 1);
    mkt_ok(mk_source_error(x.s));
    sfx_free(&x);

    /* a storage failure with a session up: ERROR sent, then sticky */
    mkt_wfile *w;
    for (int up = 1; up >= 0; up--) {
        memset(&x, 0, sizeof x);
        x.cfg = (mk_source_config){MKT_VOLUME_ID, NB, MKT_SOURCE_ID, BS, MK_MODE_SEMI, 0, NULL};
        mk_file *in;
        mkt_ok(mk_file_mem("test/store", &in));
        w = mkt_wrap(in, NULL);
        x.store = &w->base;
        mkt_ok(mk_source_new(&x.cfg, x.store, &x.s));
        mkt_peer_init(&x.p);
        x.model = calloc(1, NB * BS);
        sfx_connect(&x, 0, 0, 0);
        sfx_write(&x, 0, BS, 1);
        mkt_frames_free(sfx_out(&x));
        if (!up)
            mk_source_disconnect(x.s);
        w->fail_sync = MK_EIO; /* a CP syncs the store first (7.1) */
        mkt_assert_err(mk_source_cp(x.s, 0), MK_EIO);
        if (up)
            mkt_assert_error_frame(mk_source_out(x.s), MK_EIO);
        else
            ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
        mkt_assert_err(mk_source_error(x.s), MK_EIO);
        mkt_assert_err(mk_source_write(x.s, 0, b, BS, 0, &wid), MK_EIO);
        mkt_assert_err(mk_source_cp(x.s, 0), MK_EIO);
        mkt_assert_err(mk_source_connect(x.s, 0), MK_EIO);
        ck_assert(!mk_source_cp_in_flight(x.s));
        sfx_free(&x);
    }
}
END_TEST

/* ---- 1.2: write requests --------------------------------------------------------- */

START_TEST(test_s1_2_write_validation_changes_nothing)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    uint8_t b[2 * BS];
    uint64_t V = (uint64_t)NB * BS, wid = 77;
    mkt_fill(b, sizeof b, 5);
    mkt_assert_err(mk_source_write(x.s, 0, b, 0, 0, &wid), MK_EZEROLEN);
    mkt_assert_err(mk_source_write(x.s, V, b, 1, 0, &wid), MK_ERANGE);
    mkt_assert_err(mk_source_write(x.s, V + 1, b, 1, 0, &wid), MK_ERANGE);
    mkt_assert_err(mk_source_write(x.s, V - 1, b, 2, 0, &wid), MK_ERANGE);
    mkt_assert_err(mk_source_write(x.s, V - BS, b, BS + 1, 0, &wid), MK_ERANGE);
    mkt_assert_err(mk_source_write(x.s, UINT64_MAX - 10, b, 100, 0, &wid), MK_ERANGE);
    mkt_assert_err(mk_source_write(x.s, 0, b, UINT32_MAX, 0, &wid), MK_ERANGE);
    ck_assert_uint_eq(wid, 77);
    ck_assert_uint_eq(mkt_fsize(x.store), 0);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    ck_assert_uint_eq(mk_source_dirty_blocks(x.s), 0);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), 0);
    const mk_source_stats *st = mk_source_get_stats(x.s);
    ck_assert_uint_eq(st->writes, 0);
    ck_assert_uint_eq(st->transfers, 0);
    mkt_ok(mk_source_error(x.s)); /* not fatal */
    /* the volume's last byte is fine, and gets write ID 1 */
    mkt_ok(mk_source_write(x.s, V - 1, b, 1, 0, &wid));
    ck_assert_uint_eq(wid, 1);
    mkt_ok(mk_source_write(x.s, V - 2 * BS, b, 2 * BS, 0, &wid));
    ck_assert_uint_eq(wid, 2);
    uint8_t r[2 * BS];
    mkt_ok(mk_file_read_exact(x.store, r, 2 * BS, V - 2 * BS));
    ck_assert_mem_eq(r, b, 2 * BS);
    sfx_free(&x);
}
END_TEST

/* ---- 4.1 / 4.2 / 4.4 / 4.5: transfers ------------------------------------------------ */

START_TEST(test_s4_1_each_write_is_a_transfer_in_tid_order)
{
    sfx x;
    sfx_open(&x, MK_MODE_SEMI);
    static const struct { uint64_t off; uint32_t len; } w[] = {
        {0, BS}, {100, 50}, {3 * BS, 3 * BS}, {700, 1000}, {10 * BS + 1, 1}};
    uint64_t log_bytes = 0;
    for (size_t i = 0; i < 5; i++) {
        uint64_t wid = sfx_write(&x, w[i].off, w[i].len, 40 + i);
        ck_assert_uint_eq(wid, i + 1);
        log_bytes += 52 + w[i].len;
    }
    mkt_frames *fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 5);
    for (size_t i = 0; i < 5; i++) {
        mk_log l;
        ck_assert_uint_eq(fs->f[i].type, MK_F_LOG);
        ck_assert_uint_eq(fs->f[i].seq, 1 + i);
        mkt_ok(mk_log_decode(&fs->f[i], &l));
        ck_assert_uint_eq(l.tid, i + 1);
        ck_assert_uint_eq(l.offset, w[i].off);
        ck_assert_uint_eq(l.length, w[i].len);
        uint8_t want[3 * BS];
        mkt_fill(want, w[i].len, 40 + i);
        ck_assert_mem_eq(l.data, want, w[i].len);
    }
    mkt_frames_free(fs);
    /* the store was written first (5: applied before logged) */
    uint8_t r[4 * BS];
    mkt_ok(mk_file_read_block(x.store, r, 4 * BS, 0));
    ck_assert_mem_eq(r, x.model, 4 * BS);
    const mk_source_stats *st = mk_source_get_stats(x.s);
    ck_assert_uint_eq(st->transfers, 5);
    ck_assert_uint_eq(st->log_bytes, log_bytes);
    ck_assert_uint_eq(st->client_bytes, BS + 50 + 3 * BS + 1000 + 1);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), st->client_bytes);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s4_2_long_write_split_at_block_boundaries)
{
    const uint32_t bs = 4096;
    const uint64_t nb = 600;
    sfx x;
    sfx_make(&x, MK_MODE_SYNC, nb, bs, 0);
    sfx_connect(&x, 0, 0, 0);
    uint32_t len = 2 * MK_MAX_TRANSFER_DATA + 5000;
    uint64_t wid = sfx_write(&x, 100, len, 9);
    mkt_frames *fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 3);
    static const uint64_t off[3] = {100, 1048576, 2097152};
    static const uint32_t ln[3] = {1048476, 1048576, 5100};
    for (size_t i = 0; i < 3; i++) {
        mk_log l;
        mkt_ok(mk_log_decode(&fs->f[i], &l));
        ck_assert_uint_eq(l.tid, i + 1);
        ck_assert_uint_eq(l.offset, off[i]);
        ck_assert_uint_eq(l.length, ln[i]);
        ck_assert_uint_le(l.length, MK_MAX_TRANSFER_DATA);
        ck_assert_mem_eq(l.data, x.model + off[i], ln[i]);
    }
    mkt_frames_free(fs);
    /* the write is acknowledged only with its last piece */
    sfx_ack(&x, 2);
    ck_assert_uint_lt(mk_source_acked(x.s), wid);
    mkt_assert_err(mk_source_cp(x.s, 0), MK_EAGAIN);
    sfx_ack(&x, 3);
    ck_assert_uint_eq(mk_source_acked(x.s), wid);
    /* every block the write covers wholly is a slot of exactly one piece:
     * block 0 (head) and 513 (tail) are DATA, 1..255 tid 1, 256..511 tid 2,
     * 512 tid 3 slot 0 */
    ck_assert_uint_eq(mk_source_dirty_blocks(x.s), 514);
    mkt_ok(mk_source_cp(x.s, 0));
    want_rec *w = calloc(514, sizeof *w);
    for (uint64_t b = 0; b < 514; b++) {
        w[b].block = b;
        if (b >= 1 && b <= 255)
            w[b].tid = 1, w[b].slot = (uint32_t)(b - 1);
        else if (b >= 256 && b <= 511)
            w[b].tid = 2, w[b].slot = (uint32_t)(b - 256);
        else if (b == 512)
            w[b].tid = 3, w[b].slot = 0;
    }
    expect_cp(&x, 1, 3, w, 514);
    free(w);
    sfx_free(&x);

    /* an aligned write one byte over the limit: two pieces */
    sfx_make(&x, MK_MODE_SEMI, nb, bs, 0);
    sfx_connect(&x, 0, 0, 0);
    sfx_write(&x, 0, MK_MAX_TRANSFER_DATA + 1, 3);
    fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 2);
    mk_log l;
    mkt_ok(mk_log_decode(&fs->f[0], &l));
    ck_assert_uint_eq(l.offset, 0);
    ck_assert_uint_eq(l.length, MK_MAX_TRANSFER_DATA);
    mkt_ok(mk_log_decode(&fs->f[1], &l));
    ck_assert_uint_eq(l.offset, MK_MAX_TRANSFER_DATA);
    ck_assert_uint_eq(l.length, 1);
    mkt_frames_free(fs);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->transfers, 2);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->writes, 1);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s4_4_log_ack_checks)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    for (int i = 0; i < 3; i++)
        sfx_write(&x, (uint64_t)i * BS, BS, 1 + i);
    mkt_frames_free(sfx_out(&x));
    sfx_ack(&x, 2);
    ck_assert_uint_eq(mk_source_acked(x.s), 2);
    sfx_ack(&x, 2); /* not below the acknowledged: fine */
    mkt_log_ack(&x.p, 1);
    mkt_assert_err(sfx_send(&x), MK_ETID);
    mkt_assert_error_frame(mk_source_out(x.s), MK_ETID);
    sfx_free(&x);

    sfx_open(&x, MK_MODE_SYNC);
    sfx_write(&x, 0, BS, 1);
    mkt_frames_free(sfx_out(&x));
    mkt_log_ack(&x.p, 2); /* never assigned */
    mkt_assert_err(sfx_send(&x), MK_ETID);
    ck_assert_uint_eq(mk_source_acked(x.s), 0);
    sfx_free(&x);
}
END_TEST

/* ---- 5: modes ------------------------------------------------------------------------ */

START_TEST(test_s5_1_sync_ack_only_after_log_ack)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    uint64_t w1 = sfx_write(&x, 0, BS, 1);
    uint64_t w2 = sfx_write(&x, BS, 100, 2);
    uint64_t w3 = sfx_write(&x, 5 * BS, 2 * BS, 3);
    ck_assert_uint_eq(w3, 3);
    ck_assert_uint_eq(mk_source_acked(x.s), 0);
    /* no CP while a transfer is unacknowledged; nothing happens */
    mkt_frames_free(sfx_out(&x));
    mkt_assert_err(mk_source_cp(x.s, 0), MK_EAGAIN);
    ck_assert(!mk_source_cp_in_flight(x.s));
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    ck_assert_uint_eq(mk_source_dirty_blocks(x.s), 4);
    sfx_ack(&x, 1);
    ck_assert_uint_eq(mk_source_acked(x.s), w1);
    mkt_assert_err(mk_source_cp(x.s, 0), MK_EAGAIN);
    sfx_ack(&x, 3); /* cumulative */
    ck_assert_uint_eq(mk_source_acked(x.s), w3);
    ck_assert_uint_gt(w3, w2);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), 0);
    mkt_ok(mk_source_cp(x.s, 0));
    want_rec w[4] = {{0, 1, 0}, {1, 0, 0}, {5, 3, 0}, {6, 3, 1}};
    expect_cp(&x, 1, 3, w, 4);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s5_2_semi_sync_lag_bound)
{
    sfx x;
    sfx_make(&x, MK_MODE_SEMI, NB, BS, 4 * BS);
    sfx_connect(&x, 0, 0, 0);
    /* a write larger than the bound passes when nothing is outstanding */
    uint64_t w1 = sfx_write(&x, 0, 6 * BS, 1);
    ck_assert_uint_eq(mk_source_acked(x.s), w1); /* semi: acked at once */
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), 6 * BS);
    mkt_frames_free(sfx_out(&x));
    /* now any write is refused, and changes nothing */
    uint8_t b[BS], r[BS];
    uint64_t wid = 99;
    mkt_fill(b, BS, 77);
    const mk_source_stats before = *mk_source_get_stats(x.s);
    mkt_assert_err(mk_source_write(x.s, 10 * BS, b, 1, 0, &wid), MK_EAGAIN);
    ck_assert_uint_eq(wid, 99);
    ck_assert_uint_eq(mkt_fsize(x.store), 6 * BS);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    ck_assert_uint_eq(mk_source_dirty_blocks(x.s), 6);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), 6 * BS);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->writes, before.writes);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->transfers, before.transfers);
    mkt_ok(mk_source_error(x.s));
    /* a CP may cover unacknowledged transfers in semi-sync */
    mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    mkt_cp_ack(&x.p, 1, 6, model_digest(&x, (uint64_t[]){0, 1, 2, 3, 4, 5}, 6));
    mkt_ok(sfx_send(&x));
    ck_assert_uint_eq(mk_source_cp_acked(x.s), 1);
    /* the acknowledgement drains the lag: U + len <= max_lag passes */
    sfx_ack(&x, 1);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), 0);
    uint64_t w2 = sfx_write(&x, 10 * BS, 3 * BS, 2);
    ck_assert_uint_eq(w2, 2);
    uint64_t w3 = sfx_write(&x, 20 * BS, BS, 3);
    ck_assert_uint_eq(w3, 3);
    mkt_assert_err(mk_source_write(x.s, 30 * BS, b, 1, 0, &wid), MK_EAGAIN);
    mkt_ok(mk_file_read_block(x.store, r, BS, 30 * BS));
    uint8_t z[BS] = {0};
    ck_assert_mem_eq(r, z, BS);
    sfx_free(&x);

    /* the bound holds in sync mode too */
    sfx_make(&x, MK_MODE_SYNC, NB, BS, 2 * BS);
    sfx_connect(&x, 0, 0, 0);
    sfx_write(&x, 0, 2 * BS, 1);
    mkt_assert_err(mk_source_write(x.s, 4 * BS, b, 1, 0, &wid), MK_EAGAIN);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s5_3_async_sends_no_log_all_data)
{
    sfx x;
    sfx_make(&x, MK_MODE_ASYNC, NB, BS, BS);
    sfx_connect(&x, 0, 0, 0);
    for (int i = 0; i < 4; i++) {
        uint64_t wid = sfx_write(&x, (uint64_t)i * 2 * BS, 2 * BS, 1 + i); /* > max_lag */
        ck_assert_uint_eq(mk_source_acked(x.s), wid);
    }
    sfx_write(&x, 100, 10, 9);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), 0);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->transfers, 0);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->log_bytes, 0);
    mkt_ok(mk_source_cp(x.s, 0));
    want_rec w[8];
    for (int i = 0; i < 8; i++)
        w[i] = (want_rec){(uint64_t)i, 0, 0};
    expect_cp(&x, 1, 0, w, 8);
    const mk_source_stats *st = mk_source_get_stats(x.s);
    ck_assert_uint_eq(st->cp_ref_blocks, 0);
    ck_assert_uint_eq(st->cp_data_blocks, 8);
    ck_assert_uint_eq(st->cp_data_bytes, 8 * (44 + BS));
    ck_assert_uint_eq(st->naive_bytes, 8 * BS);
    sfx_free(&x);
}
END_TEST

/* ---- 6.3: REF qualification -------------------------------------------------------- */

typedef struct qcase {
    const char *name;
    int mode;
    struct { uint64_t off; uint32_t len; } w[4];
    size_t nw;
    want_rec want[8];
    size_t nwant;
    uint64_t covers;
} qcase;

#define V64 ((uint64_t)NB * BS)
static const qcase QCASES[] = {
    {"whole then partial is DATA", MK_MODE_SYNC, {{2 * BS, BS}, {2 * BS + 10, 20}}, 2,
     {{2, 0, 0}}, 1, 2},
    {"partial then whole is REF to the whole", MK_MODE_SYNC, {{2 * BS + 10, 20}, {2 * BS, BS}}, 2,
     {{2, 2, 0}}, 1, 2},
    {"whole then whole is REF to the later", MK_MODE_SYNC, {{2 * BS, BS}, {2 * BS, BS}}, 2,
     {{2, 2, 0}}, 1, 2},
    {"last write wins, within a multi-block transfer", MK_MODE_SYNC,
     {{0, 4 * BS}, {BS, BS}, {3 * BS, 5}}, 3,
     {{0, 1, 0}, {1, 2, 0}, {2, 1, 2}, {3, 0, 0}}, 4, 3},
    {"whole, partial, whole again", MK_MODE_SYNC, {{7 * BS, BS}, {7 * BS + 500, 12}, {7 * BS, BS}},
     3, {{7, 3, 0}}, 1, 3},
    {"spanning write: partial head and tail, whole middle", MK_MODE_SYNC, {{100, 3 * BS}}, 1,
     {{0, 0, 0}, {1, 1, 0}, {2, 1, 1}, {3, 0, 0}}, 4, 1},
    {"one block's worth, unaligned: two partial blocks", MK_MODE_SYNC, {{BS + 1, BS}}, 1,
     {{1, 0, 0}, {2, 0, 0}}, 2, 1},
    {"ending at the volume's last byte", MK_MODE_SYNC, {{V64 - 700, 700}}, 1,
     {{NB - 2, 0, 0}, {NB - 1, 1, 0}}, 2, 1},
    {"the whole volume's last block", MK_MODE_SEMI, {{V64 - BS, BS}, {0, 1}}, 2,
     {{0, 0, 0}, {NB - 1, 1, 0}}, 2, 2},
    {"async: whole blocks are DATA", MK_MODE_ASYNC, {{0, 2 * BS}, {5 * BS, BS}}, 2,
     {{0, 0, 0}, {1, 0, 0}, {5, 0, 0}}, 3, 0},
};
#define NQ (sizeof QCASES / sizeof *QCASES)

START_TEST(test_s6_3_ref_qualification)
{
    const qcase *q = &QCASES[_i];
    sfx x;
    sfx_open(&x, q->mode);
    for (size_t i = 0; i < q->nw; i++) {
        sfx_write(&x, q->w[i].off, q->w[i].len, 100 + i);
        if (q->mode == MK_MODE_SYNC)
            sfx_ack(&x, mk_source_get_stats(x.s)->transfers);
    }
    mkt_frames_free(sfx_out(&x));
    ck_assert_msg(mk_source_dirty_blocks(x.s) == q->nwant, "%s: %llu dirty", q->name,
                  (unsigned long long)mk_source_dirty_blocks(x.s));
    mkt_ok(mk_source_cp(x.s, 0));
    expect_cp(&x, 1, q->covers, q->want, q->nwant);
    ck_assert_uint_eq(mk_source_dirty_blocks(x.s), 0);
    sfx_free(&x);
}
END_TEST

/* ---- 6.4: memory bound ---------------------------------------------------------------- */

START_TEST(test_s6_4_descriptors_track_dirty_blocks_not_volume)
{
    /* the same writes on 64 blocks and on a 2^40-byte volume */
    static const uint64_t nbs[2] = {NB, (1ull << 40) / BS};
    for (int k = 0; k < 2; k++) {
        sfx x;
        sfx_make(&x, MK_MODE_SYNC, nbs[k], BS, 0);
        sfx_connect(&x, 0, 0, 0);
        uint64_t V = nbs[k] * BS;
        uint8_t b[3 * BS];
        uint64_t wid;
        static const uint64_t want_dirty[5] = {1, 1, 4, 5, 6};
        const struct { uint64_t off; uint32_t len; } w[5] = {
            {0, BS}, {10, 10}, {BS + 1, 2 * BS}, {V - BS, BS}, {V - 2 * BS - 1, 1}};
        for (int i = 0; i < 5; i++) {
            mkt_fill(b, w[i].len, i);
            mkt_ok(mk_source_write(x.s, w[i].off, b, w[i].len, 0, &wid));
            ck_assert_uint_eq(mk_source_dirty_blocks(x.s), want_dirty[i]);
        }
        sfx_ack(&x, 5);
        mkt_frames_free(sfx_out(&x));
        mkt_ok(mk_source_cp(x.s, 0));
        ck_assert_uint_eq(mk_source_dirty_blocks(x.s), 0);
        mkt_frames *fs = sfx_out(&x);
        cpview *v = view(fs, BS);
        ck_assert_uint_eq(v->b.nrecords, 6);
        ck_assert_uint_eq(v->nref, 2); /* block 2 (slot of write 3), block N-1 */
        ck_assert_uint_eq(v->ref[0].block, 2);
        ck_assert_uint_eq(v->ref[1].block, nbs[k] - 1);
        ck_assert_uint_eq(v->ndata, 4); /* 0 (partial last), 1, 3, N-3 */
        ck_assert_uint_eq(v->dblock[0], 0);
        ck_assert_uint_eq(v->dblock[1], 1);
        ck_assert_uint_eq(v->dblock[2], 3);
        ck_assert_uint_eq(v->dblock[3], nbs[k] - 3);
        free(v);
        mkt_frames_free(fs);
        /* the source's store holds only what was written */
        ck_assert_uint_eq(mkt_fsize(x.store), V);
        sfx_free(&x);
    }
}
END_TEST

/* ---- 7.1 / 7.2 / 7.5: CPs ------------------------------------------------------------ */

START_TEST(test_s7_1_cp_in_flight_and_empty_cp)
{
    sfx x;
    sfx_open(&x, MK_MODE_SEMI);
    /* an empty CP is begun, committed and acknowledged */
    mkt_ok(mk_source_cp(x.s, 0));
    ck_assert(mk_source_cp_in_flight(x.s));
    ck_assert_uint_eq(mk_source_cp_acked(x.s), 0);
    mkt_assert_err(mk_source_cp(x.s, 0), MK_EAGAIN);
    mkt_frames *fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 2);
    ck_assert_uint_eq(fs->f[0].type, MK_F_CP_BEGIN);
    ck_assert_uint_eq(fs->f[1].type, MK_F_CP_COMMIT);
    mk_cp_begin b;
    mkt_ok(mk_cp_begin_decode(&fs->f[0], &b));
    ck_assert_uint_eq(b.cp, 1);
    ck_assert_uint_eq(b.nrecords, 0);
    ck_assert_uint_eq(b.covers_tid, 0);
    mkt_frames_free(fs);
    mkt_cp_ack(&x.p, 1, 0, 0);
    mkt_ok(sfx_send(&x));
    ck_assert_uint_eq(mk_source_cp_acked(x.s), 1);
    /* CP 2: the number follows the last acknowledged */
    sfx_write(&x, 0, BS, 1);
    mkt_ok(mk_source_cp(x.s, 0));
    want_rec w[1] = {{0, 1, 0}};
    expect_cp(&x, 2, 1, w, 1);
    const mk_source_stats *st = mk_source_get_stats(x.s);
    ck_assert_uint_eq(st->cps_started, 2);
    ck_assert_uint_eq(st->cps_acked, 2);
    ck_assert_uint_eq(st->cp_ctl_bytes, 2 * 96);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s7_2_refs_first_ascending_batched_by_1024)
{
    const uint64_t nb = 2048;
    sfx x;
    sfx_make(&x, MK_MODE_SEMI, nb, BS, 0);
    sfx_connect(&x, 0, 0, 0);
    /* 1500 whole blocks in three writes, 20 partial ones among them */
    sfx_write(&x, 0, 500 * BS, 1);
    sfx_write(&x, 600 * BS, 500 * BS, 2);
    sfx_write(&x, 1200 * BS, 500 * BS, 3);
    for (uint64_t i = 0; i < 20; i++)
        sfx_write(&x, (1200 + 25 * i) * BS + 3, 7, 10 + i);
    mkt_frames_free(sfx_out(&x));
    mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames *fs = sfx_out(&x);
    cpview *v = view(fs, BS);
    ck_assert(v->order_ok);
    ck_assert_uint_eq(v->b.nrecords, 1500);
    ck_assert_uint_eq(v->nref_frames, 2);
    ck_assert_uint_eq(v->nref, 1480);
    ck_assert_uint_eq(v->ndata, 20);
    /* frame 1 has 1024 entries */
    long i1 = mkt_find(fs, MK_F_CP_REF, 0);
    uint64_t cp;
    uint32_t n;
    mkt_ok(mk_cp_ref_decode(&fs->f[i1], &cp, &n));
    ck_assert_uint_eq(n, 1024);
    for (size_t i = 0; i < v->nref; i++) {
        const mk_ref *r = &v->ref[i];
        uint64_t base = r->block < 500 ? 0 : r->block < 1100 ? 600 : 1200;
        ck_assert_uint_eq(r->tid, base == 0 ? 1 : base == 600 ? 2 : 3);
        ck_assert_uint_eq(r->slot, r->block - base);
    }
    for (size_t i = 0; i < 20; i++)
        ck_assert_uint_eq(v->dblock[i], 1200 + 25 * i);
    const mk_source_stats *st = mk_source_get_stats(x.s);
    ck_assert_uint_eq(st->cp_ref_bytes, 2 * 44 + 1480 * 32);
    ck_assert_uint_eq(st->cp_data_bytes, 20 * (44 + BS));
    ck_assert_uint_eq(st->ref_naive_bytes, 1480 * BS);
    ck_assert_uint_eq(st->naive_bytes, 1500 * BS);
    free(v);
    mkt_frames_free(fs);
    sfx_free(&x);
}
END_TEST

enum { CA_WRONG_CP, CA_NO_CP, CA_COUNT, CA_DIGEST, CA_CASES };

START_TEST(test_s7_5_cp_ack_checks)
{
    static const int want[CA_CASES] = {MK_ECP, MK_ECP, MK_ECOUNT, MK_EDIGEST};
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    sfx_write(&x, 0, 2 * BS, 1);
    sfx_ack(&x, 1);
    uint64_t blocks[2] = {0, 1}, dg = model_digest(&x, blocks, 2);
    if (_i != CA_NO_CP)
        mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    switch (_i) {
    case CA_WRONG_CP: mkt_cp_ack(&x.p, 2, 2, dg); break;
    case CA_NO_CP: mkt_cp_ack(&x.p, 1, 2, dg); break;
    case CA_COUNT: mkt_cp_ack(&x.p, 1, 1, dg); break;
    case CA_DIGEST: mkt_cp_ack(&x.p, 1, 2, dg ^ 1); break;
    }
    mkt_assert_err(sfx_send(&x), want[_i]);
    mkt_assert_error_frame(mk_source_out(x.s), want[_i]);
    ck_assert_uint_eq(mk_source_cp_acked(x.s), 0);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->cps_acked, 0);
    sfx_free(&x);
}
END_TEST

/* SPEC.md 7.5's vectors from the source's side: block 0 all zero and
 * block 5 all 0xFF, B = 4096. */
START_TEST(test_s7_5_source_digest_vectors)
{
    for (int mode = MK_MODE_SYNC; mode <= MK_MODE_ASYNC; mode++) {
        sfx x;
        sfx_make(&x, mode, 16, 4096, 0);
        sfx_connect(&x, 0, 0, 0);
        static uint8_t zero[4096], ff[4096];
        memset(ff, 0xFF, sizeof ff);
        uint64_t wid;
        mkt_ok(mk_source_write(x.s, 5 * 4096, ff, 4096, 0, &wid));
        mkt_ok(mk_source_write(x.s, 0, zero, 4096, 0, &wid));
        if (mode != MK_MODE_ASYNC)
            sfx_ack(&x, 2);
        mkt_ok(mk_source_cp(x.s, 0));
        mkt_frames_free(sfx_out(&x));
        mkt_cp_ack(&x.p, 1, 2, 0xFCE83EFC4151A1B0ull);
        mkt_ok(sfx_send(&x));
        ck_assert_uint_eq(mk_source_cp_acked(x.s), 1);
        sfx_free(&x);
    }
}
END_TEST

/* ---- 8.1: NAK -------------------------------------------------------------------------- */

START_TEST(test_s8_1_nak_resends_cp_image_copy_on_write)
{
    sfx x;
    sfx_open(&x, MK_MODE_SEMI);
    sfx_write(&x, 0, 4 * BS, 1);  /* blocks 0..3: REF */
    sfx_write(&x, 9 * BS + 5, 5, 2); /* block 9: DATA */
    mkt_ok(mk_source_cp(x.s, 0));
    uint8_t *cp_img = malloc(10 * BS);
    memcpy(cp_img, x.model, 10 * BS);
    uint64_t blocks[5] = {0, 1, 2, 3, 9}, dg = model_digest(&x, blocks, 5);
    mkt_frames_free(sfx_out(&x));
    /* client writes change blocks 1 and 2 while the CP is in flight */
    sfx_write(&x, BS, BS, 3);
    sfx_write(&x, 2 * BS + 100, 10, 4);
    mkt_frames_free(sfx_out(&x));
    /* NAKs (after the source sent CP_COMMIT) for 1, 2 and 3 */
    mkt_nak(&x.p, 1, 1, MK_EREFHASH);
    mkt_nak(&x.p, 1, 2, MK_ENOTID);
    mkt_nak(&x.p, 1, 3, MK_ESLOT);
    mkt_ok(sfx_send(&x));
    mkt_frames *fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 3);
    for (size_t i = 0; i < 3; i++) {
        mk_cp_data d;
        ck_assert_uint_eq(fs->f[i].type, MK_F_CP_DATA);
        mkt_ok(mk_cp_data_decode(&fs->f[i], BS, &d));
        ck_assert_uint_eq(d.cp, 1);
        ck_assert_uint_eq(d.block, 1 + i);
        /* the CP image, not what the client wrote since */
        ck_assert_mem_eq(d.data, cp_img + (1 + i) * BS, BS);
    }
    mkt_frames_free(fs);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->naks, 3);
    /* the digest is unchanged by the resends */
    mkt_cp_ack(&x.p, 1, 5, dg);
    mkt_ok(sfx_send(&x));
    ck_assert_uint_eq(mk_source_cp_acked(x.s), 1);
    /* the new writes belong to CP 2: block 1 REF tid 3, block 2 DATA */
    mkt_ok(mk_source_cp(x.s, 0));
    want_rec w[2] = {{1, 3, 0}, {2, 0, 0}};
    expect_cp(&x, 2, 4, w, 2);
    free(cp_img);
    sfx_free(&x);
}
END_TEST

/* Drains the source's output into fs: a CP's CP_DATA is queued as the
 * output drains (SPEC.md 7.1), so one take may end before CP_COMMIT. */
static mkt_frames *sfx_drain(sfx *x)
{
    mkt_frames *all = calloc(1, sizeof *all);
    ck_assert_ptr_nonnull(all);
    for (;;) {
        mkt_frames *fs = sfx_out(x);
        if (fs->n == 0) {
            mkt_frames_free(fs);
            return all;
        }
        mkt_frames_append(all, fs);
    }
}

/* The CP_DATA frames for block in fs. */
static size_t count_data(const mkt_frames *fs, uint64_t block, uint32_t bs)
{
    size_t n = 0;
    for (size_t i = 0; i < fs->n; i++) {
        mk_cp_data d;
        if (fs->f[i].type == MK_F_CP_DATA && mk_cp_data_decode(&fs->f[i], bs, &d) == 0 &&
            d.block == block)
            n++;
    }
    return n;
}

/* SPEC.md 7.1 and 8.1: a CP whose DATA is more than the output queue holds
 * at once is queued as the transport drains it, each block read from the
 * store then.  A NAK that arrives while DATA is still to come is answered
 * at once with the block's CP_DATA, and the stream does not send it again
 * (a second CP_DATA for it would be MK_EDUPBLOCK at the destination).  A
 * write meanwhile to a DATA block not yet queued is copied first, so the
 * CP still carries the CP image (8.1, copy-on-write), and its LOG waits
 * for CP_COMMIT.  A resume sends the CP again with the NAKed block as DATA,
 * once. */
START_TEST(test_s8_1_nak_and_writes_while_cp_data_streams)
{
    enum { N = 1024, B = 4096, DATA = 512, REFB = 700 };
    sfx x;
    sfx_make(&x, MK_MODE_SEMI, N, B, 0);
    sfx_connect(&x, 0, 0, 0);
    for (uint64_t b = 0; b < DATA; b++)
        sfx_write(&x, b * B + 1, 7, 100 + b); /* partial: DATA */
    sfx_write(&x, REFB * B, B, 7);             /* whole: REF tid DATA+1 */
    sfx_ack(&x, DATA + 1);
    mkt_frames_free(sfx_out(&x));
    mkt_ok(mk_source_cp(x.s, 0));
    uint8_t *cp_img = malloc((size_t)N * B);
    ck_assert_ptr_nonnull(cp_img);
    memcpy(cp_img, x.model, (size_t)N * B);
    mkt_frames *first = sfx_out(&x);
    ck_assert_uint_gt(first->n, 3);
    ck_assert_uint_lt(count_data(first, DATA - 1, B), 1); /* the stream is not done */
    ck_assert_uint_eq(mkt_count(first, MK_F_CP_COMMIT), 0);
    /* a client write to the last DATA block before it is queued */
    sfx_write(&x, (DATA - 1) * B, B, 9);
    /* the destination refuses the REF */
    mkt_nak(&x.p, 1, REFB, MK_EREFHASH);
    mkt_ok(sfx_send(&x));
    mkt_frames *rest = sfx_drain(&x);
    ck_assert_uint_eq(count_data(first, REFB, B) + count_data(rest, REFB, B), 1);
    ck_assert_uint_eq(mkt_count(first, MK_F_CP_DATA) + mkt_count(rest, MK_F_CP_DATA), DATA + 1);
    ck_assert_uint_eq(mkt_count(rest, MK_F_CP_COMMIT), 1);
    /* every DATA carries the CP image, the overwritten block included */
    mkt_frames_append(first, rest);
    size_t commit_at = 0, log_at = 0;
    for (size_t i = 0; i < first->n; i++) {
        mk_cp_data d;
        if (first->f[i].type == MK_F_CP_COMMIT)
            commit_at = i;
        if (first->f[i].type == MK_F_LOG)
            log_at = i;
        if (first->f[i].type != MK_F_CP_DATA)
            continue;
        mkt_ok(mk_cp_data_decode(&first->f[i], B, &d));
        ck_assert_mem_eq(d.data, cp_img + d.block * B, B);
    }
    /* the write's LOG came after CP_COMMIT, in one sequence */
    ck_assert_uint_gt(log_at, commit_at);
    for (size_t i = 1; i < first->n; i++)
        ck_assert_uint_eq(first->f[i].seq, first->f[i - 1].seq + 1);
    mkt_frames_free(first);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->naks, 1);
    /* the connection goes before CP_ACK; the destination holds every
     * transfer but did not commit CP 1: the CP goes again in full */
    mk_source_disconnect(x.s);
    sfx_connect(&x, 0, DATA + 2, 0);
    mkt_frames *again = sfx_drain(&x);
    ck_assert_uint_eq(count_data(again, REFB, B), 1);
    ck_assert_uint_eq(mkt_count(again, MK_F_CP_DATA), DATA + 1);
    ck_assert_uint_eq(mkt_count(again, MK_F_CP_REF), 0);
    ck_assert_uint_eq(mkt_count(again, MK_F_CP_COMMIT), 1);
    for (size_t i = 0; i < again->n; i++) {
        mk_cp_data d;
        if (again->f[i].type != MK_F_CP_DATA)
            continue;
        mkt_ok(mk_cp_data_decode(&again->f[i], B, &d));
        ck_assert_mem_eq(d.data, cp_img + d.block * B, B);
    }
    mkt_frames_free(again);
    free(cp_img);
    sfx_free(&x);
}
END_TEST

/* SPEC.md 4.4, 7.1: transfers logged while a CP's DATA streams wait for
 * its CP_COMMIT.  A destination that acknowledges one of them before it
 * was sent (a LOG_ACK within the tids the source assigned, so 4.4 accepts
 * it) releases it: after CP_COMMIT the source sends only the rest, in tid
 * order, and goes on. */
START_TEST(test_s4_4_log_ack_of_a_transfer_waiting_for_cp_commit)
{
    enum { N = 1024, B = 4096, DATA = 512 };
    sfx x;
    sfx_make(&x, MK_MODE_SEMI, N, B, 0);
    sfx_connect(&x, 0, 0, 0);
    for (uint64_t b = 0; b < DATA; b++)
        sfx_write(&x, b * B + 1, 7, 100 + b); /* partial: DATA, tids 1..DATA */
    sfx_ack(&x, DATA);
    mkt_frames_free(sfx_out(&x));
    mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames *first = sfx_out(&x);
    ck_assert_uint_eq(mkt_count(first, MK_F_CP_COMMIT), 0);
    mkt_frames_free(first);
    sfx_write(&x, 900 * B, B, 1); /* tid DATA+1, waits */
    sfx_write(&x, 901 * B, B, 2); /* tid DATA+2, waits */
    sfx_write(&x, 902 * B, B, 3); /* tid DATA+3, waits */
    mkt_log_ack(&x.p, DATA + 2);
    mkt_ok(sfx_send(&x));
    ck_assert_int_eq(mk_source_error(x.s), 0);
    mkt_frames *rest = sfx_drain(&x);
    long commit = mkt_find(rest, MK_F_CP_COMMIT, 0);
    ck_assert_int_ge(commit, 0);
    ck_assert_uint_eq(mkt_count(rest, MK_F_LOG), 1);
    long at = mkt_find(rest, MK_F_LOG, 0);
    ck_assert_int_gt(at, commit);
    mk_log l;
    mkt_ok(mk_log_decode(&rest->f[at], &l));
    ck_assert_uint_eq(l.tid, DATA + 3);
    mkt_frames_free(rest);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), B);
    sfx_free(&x);
}
END_TEST

enum { NK_DATA_BLOCK, NK_NOT_IN_CP, NK_TWICE, NK_WRONG_CP, NK_NO_CP, NK_CASES };

START_TEST(test_s8_1_nak_checks)
{
    static const int want[NK_CASES] = {MK_ESTATE, MK_ESTATE, MK_ESTATE, MK_ECP, MK_ECP};
    sfx x;
    sfx_open(&x, MK_MODE_SEMI);
    sfx_write(&x, 0, BS, 1);
    sfx_write(&x, 3 * BS, 10, 2);
    if (_i != NK_NO_CP)
        mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    switch (_i) {
    case NK_DATA_BLOCK: mkt_nak(&x.p, 1, 3, MK_ENOTID); break;
    case NK_NOT_IN_CP: mkt_nak(&x.p, 1, 7, MK_ENOTID); break;
    case NK_TWICE:
        mkt_nak(&x.p, 1, 0, MK_ENOTID);
        mkt_ok(sfx_send(&x));
        mkt_frames_free(sfx_out(&x));
        mkt_nak(&x.p, 1, 0, MK_ENOTID);
        break;
    case NK_WRONG_CP: mkt_nak(&x.p, 2, 0, MK_ENOTID); break;
    case NK_NO_CP: mkt_nak(&x.p, 1, 0, MK_ENOTID); break;
    }
    mkt_assert_err(sfx_send(&x), want[_i]);
    mkt_assert_error_frame(mk_source_out(x.s), want[_i]);
    sfx_free(&x);
}
END_TEST

/* ---- 8.2: resume -------------------------------------------------------------------------- */

START_TEST(test_s8_2_resend_unacked_transfers_same_tid_same_bytes)
{
    sfx x;
    sfx_open(&x, MK_MODE_SEMI);
    for (int i = 0; i < 4; i++)
        sfx_write(&x, (uint64_t)i * 3 * BS + 7, 700, 1 + i);
    mkt_frames *first = sfx_out(&x);
    sfx_ack(&x, 1);
    mk_source_disconnect(x.s);
    ck_assert(!mk_source_ready(x.s));
    /* writes go on while no session is up (5.2 permitting) */
    sfx_write(&x, 40 * BS, BS, 5);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    /* the destination holds 2: the LOG_ACK for it was lost */
    sfx_connect(&x, 0, 2, 0);
    mkt_frames *fs = sfx_out(&x);
    ck_assert_uint_eq(fs->n, 3);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_uint_eq(fs->f[i].seq, 1 + i);
        ck_assert_uint_eq(fs->f[i].len, first->f[2 + i].len);
        ck_assert_mem_eq(fs->f[i].payload, first->f[2 + i].payload, fs->f[i].len);
    }
    mk_log l;
    mkt_ok(mk_log_decode(&fs->f[2], &l));
    ck_assert_uint_eq(l.tid, 5);
    ck_assert_uint_eq(l.offset, 40 * BS);
    mkt_frames_free(fs);
    mkt_frames_free(first);
    /* 8.2 step 3 sends every retained transfer above durable_tid, the one
     * queued while down included */
    const mk_source_stats *st = mk_source_get_stats(x.s);
    ck_assert_uint_eq(st->resent_transfers, 3);
    ck_assert_uint_eq(st->reconnects, 2);
    ck_assert_uint_eq(st->session_bytes, 2 * 60);
    ck_assert_uint_eq(mk_source_unacked_bytes(x.s), 700 + 700 + BS);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s8_2_hello_ack_durable_acknowledges_sync_writes)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    uint64_t w1 = sfx_write(&x, 0, BS, 1);
    uint64_t w2 = sfx_write(&x, BS, BS, 2);
    mk_source_disconnect(x.s);
    ck_assert_uint_eq(mk_source_acked(x.s), 0);
    sfx_connect(&x, 0, 2, 0);
    ck_assert_uint_eq(mk_source_acked(x.s), w2);
    ck_assert_uint_gt(w2, w1);
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->resent_transfers, 0);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s8_2_cp_in_flight_resent_in_full)
{
    sfx x;
    sfx_open(&x, MK_MODE_SEMI);
    sfx_write(&x, 0, 2 * BS, 1);
    sfx_write(&x, 5 * BS + 1, 3, 2);
    mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    mkt_nak(&x.p, 1, 1, MK_EREFHASH); /* block 1 becomes DATA */
    mkt_ok(sfx_send(&x));
    mkt_frames_free(sfx_out(&x));
    mk_source_disconnect(x.s);
    /* the destination has both transfers but never committed CP 1 */
    sfx_connect(&x, 0, 2, 0);
    want_rec w[3] = {{0, 1, 0}, {1, 0, 0}, {5, 0, 0}};
    expect_cp(&x, 1, 2, w, 3);
    const mk_source_stats *st = mk_source_get_stats(x.s);
    ck_assert_uint_eq(st->resent_cps, 1);
    ck_assert_uint_eq(st->cps_started, 1);
    ck_assert_uint_eq(st->cp_ctl_bytes, 2 * 96);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s8_2_cp_ack_lost_recognised_by_last_cp)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    sfx_write(&x, 0, BS, 1);
    sfx_ack(&x, 1);
    mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    uint64_t blocks[1] = {0}, dg = model_digest(&x, blocks, 1);
    mk_source_disconnect(x.s);
    sfx_connect(&x, 1, 1, dg);
    ck_assert_uint_eq(mk_source_cp_acked(x.s), 1);
    ck_assert(!mk_source_cp_in_flight(x.s));
    ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0); /* nothing resent */
    ck_assert_uint_eq(mk_source_get_stats(x.s)->resent_cps, 0);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->cps_acked, 1);
    sfx_write(&x, BS, BS, 2);
    sfx_ack(&x, 2);
    mkt_ok(mk_source_cp(x.s, 0));
    want_rec w[1] = {{1, 2, 0}};
    expect_cp(&x, 2, 2, w, 1);
    sfx_free(&x);

    /* the destination's record of that CP must carry the same digest */
    sfx_open(&x, MK_MODE_SYNC);
    sfx_write(&x, 0, BS, 1);
    sfx_ack(&x, 1);
    mkt_ok(mk_source_cp(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    dg = model_digest(&x, blocks, 1);
    mk_source_disconnect(x.s);
    mkt_ok(mk_source_connect(x.s, 0));
    mkt_frames_free(sfx_out(&x));
    x.p.seq = 0;
    mkt_hello_ack(&x.p, NB, BS, 1, 1, MKT_SOURCE_ID, dg ^ 4);
    mkt_assert_err(sfx_send(&x), MK_EDIGEST);
    sfx_free(&x);
}
END_TEST

START_TEST(test_s8_2_irreconcilable_hello_ack_ediverged)
{
    /* k 0: CP 2 is unknown to a source with CP 1 in flight; 1: tid 2 was
     * never assigned; 2: a destination back at CP 0 after CP 1 was
     * acknowledged (A = 1) */
    for (int k = 0; k < 3; k++) {
        sfx x;
        sfx_open(&x, MK_MODE_SYNC);
        sfx_write(&x, 0, BS, 1);
        sfx_ack(&x, 1);
        mkt_ok(mk_source_cp(x.s, 0));
        mkt_frames_free(sfx_out(&x));
        if (k == 2) {
            uint64_t b0 = 0;
            mkt_cp_ack(&x.p, 1, 1, model_digest(&x, &b0, 1));
            mkt_ok(sfx_send(&x));
            ck_assert_uint_eq(mk_source_cp_acked(x.s), 1);
        }
        mk_source_disconnect(x.s);
        mkt_ok(mk_source_connect(x.s, 0));
        mkt_frames_free(sfx_out(&x));
        x.p.seq = 0;
        if (k == 0)
            mkt_hello_ack(&x.p, NB, BS, 2, 1, MKT_SOURCE_ID, 0);
        else if (k == 1)
            mkt_hello_ack(&x.p, NB, BS, 0, 2, MKT_SOURCE_ID, 0);
        else
            mkt_hello_ack(&x.p, NB, BS, 0, 1, MKT_SOURCE_ID, 0);
        mkt_assert_err(sfx_send(&x), MK_EDIVERGED);
        mkt_assert_err(mk_source_error(x.s), MK_EDIVERGED);
        mkt_assert_error_frame(mk_source_out(x.s), MK_EDIVERGED);
        sfx_free(&x);
    }
}
END_TEST

/* ---- 8.3: lost destination log --------------------------------------------------------------- */

START_TEST(test_s8_3_lost_transfers_counted_refs_become_data)
{
    for (int mode = MK_MODE_SYNC; mode <= MK_MODE_SEMI; mode++) {
        sfx x;
        sfx_open(&x, mode);
        for (uint64_t i = 0; i < 4; i++)
            sfx_write(&x, (1 + i) * BS, BS, 1 + i); /* tid i+1: block i+1 */
        sfx_ack(&x, 4);
        mkt_frames_free(sfx_out(&x));
        mk_source_disconnect(x.s);
        /* the destination came back holding only tids 1 and 2 */
        sfx_connect(&x, 0, 2, 0);
        const mk_source_stats *st = mk_source_get_stats(x.s);
        ck_assert_uint_eq(st->lost_transfers, 2);
        ck_assert_int_eq(st->out_of_sync, mode == MK_MODE_SYNC);
        ck_assert_uint_eq(mk_buf_len(mk_source_out(x.s)), 0);
        /* blocks 3 and 4 go as DATA; covers_tid names only what it holds */
        mkt_ok(mk_source_cp(x.s, 0));
        want_rec w[4] = {{1, 1, 0}, {2, 2, 0}, {3, 0, 0}, {4, 0, 0}};
        expect_cp(&x, 1, 2, w, 4);
        sfx_free(&x);
    }
}
END_TEST

START_TEST(test_s8_3_lost_transfers_in_flight_cp_refs_become_data)
{
    sfx x;
    sfx_open(&x, MK_MODE_SYNC);
    for (uint64_t i = 0; i < 4; i++)
        sfx_write(&x, (1 + i) * BS, BS, 1 + i);
    sfx_ack(&x, 4);
    mkt_ok(mk_source_cp(x.s, 0));
    uint8_t cp4[BS];
    memcpy(cp4, x.model + 4 * BS, BS);
    uint64_t blocks[4] = {1, 2, 3, 4}, dg = model_digest(&x, blocks, 4);
    mkt_frames_free(sfx_out(&x));
    /* block 4 changes after the CP started: its CP content is kept */
    sfx_write(&x, 4 * BS, BS, 50);
    mkt_frames_free(sfx_out(&x));
    mk_source_disconnect(x.s);
    sfx_connect(&x, 0, 3, 0);
    ck_assert_uint_eq(mk_source_get_stats(x.s)->lost_transfers, 1);
    ck_assert_int_eq(mk_source_get_stats(x.s)->out_of_sync, 1);
    /* the resend: tid 5 (the new write), then CP 1 with tid 4's block as DATA */
    mkt_frames *fs = sfx_out(&x);
    cpview *v = view(fs, BS);
    ck_assert_uint_eq(v->nlog, 1);
    ck_assert_uint_eq(v->log_tid[0], 5);
    ck_assert_uint_eq(v->b.cp, 1);
    ck_assert_uint_eq(v->b.covers_tid, 4); /* the destination holds tid 5 > 4 */
    ck_assert_uint_eq(v->nref, 3);
    ck_assert_uint_eq(v->ndata, 1);
    ck_assert_uint_eq(v->dblock[0], 4);
    ck_assert_mem_eq(v->ddata[0], cp4, BS);
    free(v);
    mkt_frames_free(fs);
    mkt_cp_ack(&x.p, 1, 4, dg);
    mkt_ok(sfx_send(&x));
    ck_assert_uint_eq(mk_source_cp_acked(x.s), 1);
    sfx_free(&x);
}
END_TEST

static Suite *source_suite(void)
{
    Suite *s = suite_create("source");
    TCase *ts = tcase_create("sessions");
    tcase_set_timeout(ts, 60);
    tcase_add_test(ts, test_s2_1_hello_first_frame);
    tcase_add_loop_test(ts, test_s2_2_hello_ack_checks, 0, HA_COUNT);
    tcase_add_test(ts, test_s2_3_frames_before_hello_ack_estate);
    tcase_add_loop_test(ts, test_s3_4_bad_frames_into_source, 0, SB_COUNT);
    tcase_add_test(ts, test_s3_6_error_from_destination);
    tcase_add_test(ts, test_s8_5_source_fatal_errors);
    suite_add_tcase(s, ts);

    TCase *tw = tcase_create("writes");
    tcase_set_timeout(tw, 60);
    tcase_add_test(tw, test_s1_2_write_validation_changes_nothing);
    tcase_add_test(tw, test_s4_1_each_write_is_a_transfer_in_tid_order);
    tcase_add_test(tw, test_s4_2_long_write_split_at_block_boundaries);
    tcase_add_test(tw, test_s4_4_log_ack_checks);
    tcase_add_test(tw, test_s5_1_sync_ack_only_after_log_ack);
    tcase_add_test(tw, test_s5_2_semi_sync_lag_bound);
    tcase_add_test(tw, test_s5_3_async_sends_no_log_all_data);
    suite_add_tcase(s, tw);

    TCase *tc = tcase_create("cp");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_s6_3_ref_qualification, 0, NQ);
    tcase_add_test(tc, test_s6_4_descriptors_track_dirty_blocks_not_volume);
    tcase_add_test(tc, test_s7_1_cp_in_flight_and_empty_cp);
    tcase_add_test(tc, test_s7_2_refs_first_ascending_batched_by_1024);
    tcase_add_loop_test(tc, test_s7_5_cp_ack_checks, 0, CA_CASES);
    tcase_add_test(tc, test_s7_5_source_digest_vectors);
    tcase_add_test(tc, test_s8_1_nak_resends_cp_image_copy_on_write);
    tcase_add_test(tc, test_s8_1_nak_and_writes_while_cp_data_streams);
    tcase_add_test(tc, test_s4_4_log_ack_of_a_transfer_waiting_for_cp_commit);
    tcase_add_loop_test(tc, test_s8_1_nak_checks, 0, NK_CASES);
    suite_add_tcase(s, tc);

    TCase *tr = tcase_create("resume");
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, test_s8_2_resend_unacked_transfers_same_tid_same_bytes);
    tcase_add_test(tr, test_s8_2_hello_ack_durable_acknowledges_sync_writes);
    tcase_add_test(tr, test_s8_2_cp_in_flight_resent_in_full);
    tcase_add_test(tr, test_s8_2_cp_ack_lost_recognised_by_last_cp);
    tcase_add_test(tr, test_s8_2_irreconcilable_hello_ack_ediverged);
    tcase_add_test(tr, test_s8_3_lost_transfers_counted_refs_become_data);
    tcase_add_test(tr, test_s8_3_lost_transfers_in_flight_cp_refs_become_data);
    suite_add_tcase(s, tr);
    return s;
}

int main(void) { return mk_test_run(source_suite()); }
