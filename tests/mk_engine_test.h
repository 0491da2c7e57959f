/*
 * mk_engine_test.h - helpers shared by the engine suites (check_logstore.c,
 * check_dest.c, check_source.c, check_pair.c).
 *
 *   mkt_peer     a hand-written peer: encodes frames with its own sequence
 *                numbers, so a test can feed an engine any stream it likes
 *   mkt_frames   decodes an engine's output into frames to look at
 *   mkt_wfile    an mk_file wrapper that counts syncs/writes and watches
 *                the log for CP_COMMIT records becoming durable (the crash
 *                tests' oracle, independent of the log store's own scan)
 *   mkt_link     the simulated link: moves mk_source_out -> mk_dest_recv
 *                and mk_dest_out -> mk_source_recv until quiet; it can cut
 *                a direction after a byte budget (a dead connection: the
 *                rest is dropped), slice the streams, and pass every whole
 *                frame through a filter that may rewrite or drop it
 *   mkt_env      a source and a destination on memory files with a model
 *                of the source volume, for end-to-end tests
 *
 * Everything is static inline so a suite that uses only part of it
 * compiles without unused-function warnings.
 */
#ifndef MK_ENGINE_TEST_H
#define MK_ENGINE_TEST_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "mk_buf.h"
#include "mk_dest.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_logstore.h"
#include "mk_prng.h"
#include "mk_source.h"
#include "mk_test.h"
#include "mk_wire.h"

/* Asserts an mk error code by name, so a failure reads "got MK_ETID". */
#define mkt_assert_err(got, want)                                              \
    do {                                                                       \
        int g_ = (int)(got), w_ = (int)(want);                                 \
        ck_assert_msg(g_ == w_, "%s: got %s (%d), want %s (%d)", #got,         \
                      mk_errname(g_), g_, mk_errname(w_), w_);                 \
    } while (0)

#define mkt_ok(expr) mkt_assert_err((expr), 0)

#define MKT_VOLUME_ID 0x766f6c756d65ULL /* "volume" */
#define MKT_SOURCE_ID 0x736f75726365ULL /* "source" */

/* Deterministic content: byte i of stream `seed`. */
static inline void mkt_fill(void *buf, size_t n, uint64_t seed)
{
    mk_prng r;
    mk_prng_seed(&r, seed * 0x9e3779b97f4a7c15ULL + 1);
    mk_prng_fill(&r, buf, n);
}

static inline void mkt_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t mkt_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Recomputes the XXH3 trailer of a frame whose header or payload a test
 * changed on purpose, so the change reaches the protocol logic. */
static inline void mkt_reseal(uint8_t *frame)
{
    uint32_t plen = mkt_get_le32(frame + 8);
    mk_put_le64(frame + MK_HDR_LEN + plen, XXH3_64bits(frame, MK_HDR_LEN + (size_t)plen));
}

/* A frame built byte by byte (header, payload, XXH3 trailer), for frames
 * no encoder would produce.  out needs MK_FRAME_OVERHEAD + plen bytes;
 * returns the frame's size. */
static inline size_t mkt_raw_frame(uint8_t *out, uint8_t type, uint64_t seq,
                                   const uint8_t *payload, uint32_t plen)
{
    mkt_put_le32(out, MK_FRAME_MAGIC);
    out[4] = MK_PROTO_VERSION;
    out[5] = type;
    out[6] = out[7] = 0;
    mkt_put_le32(out + 8, plen);
    mk_put_le64(out + 12, seq);
    if (plen)
        memcpy(out + MK_HDR_LEN, payload, plen);
    mkt_reseal(out);
    return MK_FRAME_OVERHEAD + (size_t)plen;
}

/* ---- a hand-written peer ------------------------------------------------ */

typedef struct mkt_peer {
    mk_buf b;
    uint64_t seq;
} mkt_peer;

static inline void mkt_peer_init(mkt_peer *p)
{
    mk_buf_init(&p->b);
    p->seq = 0;
}

static inline void mkt_peer_free(mkt_peer *p) { mk_buf_free(&p->b); }

static inline void mkt_hello(mkt_peer *p, uint64_t nblocks, uint32_t bs, int mode,
                             uint64_t source_id)
{
    mk_hello h = {MKT_VOLUME_ID, nblocks, bs, (uint8_t)mode, source_id};
    mkt_ok(mk_hello_encode(&p->b, p->seq++, &h));
}

static inline void mkt_logf(mkt_peer *p, uint64_t tid, uint64_t off, uint32_t len,
                            const uint8_t *data)
{
    mk_log l = {tid, off, len, data};
    mkt_ok(mk_log_encode(&p->b, p->seq++, &l));
}

static inline void mkt_cp_begin(mkt_peer *p, uint64_t cp, uint64_t n, uint64_t covers)
{
    mk_cp_begin b = {cp, n, covers};
    mkt_ok(mk_cp_begin_encode(&p->b, p->seq++, &b));
}

static inline void mkt_cp_data(mkt_peer *p, uint64_t cp, uint64_t block,
                               const uint8_t *data, uint32_t bs)
{
    mk_cp_data d = {cp, block, data};
    mkt_ok(mk_cp_data_encode(&p->b, p->seq++, &d, bs));
}

static inline void mkt_cp_ref(mkt_peer *p, uint64_t cp, const mk_ref *r, uint32_t n)
{
    mkt_ok(mk_cp_ref_encode(&p->b, p->seq++, cp, r, n));
}

static inline void mkt_cp_commit(mkt_peer *p, uint64_t cp, uint64_t n)
{
    mk_cp_commit c = {cp, n};
    mkt_ok(mk_cp_commit_encode(&p->b, p->seq++, &c));
}

/* destination -> source frames */
static inline void mkt_hello_ack(mkt_peer *p, uint64_t nblocks, uint32_t bs,
                                 uint64_t last_cp, uint64_t durable_tid,
                                 uint64_t source_id, uint64_t last_digest)
{
    mk_hello_ack a = {MKT_VOLUME_ID, nblocks, bs, last_cp, durable_tid, source_id,
                      last_digest};
    mkt_ok(mk_hello_ack_encode(&p->b, p->seq++, &a));
}

static inline void mkt_log_ack(mkt_peer *p, uint64_t tid)
{
    mkt_ok(mk_log_ack_encode(&p->b, p->seq++, tid));
}

static inline void mkt_nak(mkt_peer *p, uint64_t cp, uint64_t block, int reason)
{
    mk_nak n = {cp, block, reason};
    mkt_ok(mk_nak_encode(&p->b, p->seq++, &n));
}

static inline void mkt_cp_ack(mkt_peer *p, uint64_t cp, uint64_t n, uint64_t digest)
{
    mk_cp_ack a = {cp, n, digest, 0, 0};
    mkt_ok(mk_cp_ack_encode(&p->b, p->seq++, &a));
}

/* A raw frame with the peer's next seq. */
static inline void mkt_raw(mkt_peer *p, uint8_t type, const uint8_t *payload, uint32_t plen)
{
    uint8_t *f = malloc(MK_FRAME_OVERHEAD + (size_t)plen);
    ck_assert_ptr_nonnull(f);
    size_t n = mkt_raw_frame(f, type, p->seq++, payload, plen);
    mkt_ok(mk_buf_append(&p->b, f, n));
    free(f);
}

/* Hands everything the peer encoded to the destination in one call. */
static inline int mkt_to_dest(mkt_peer *p, mk_dest *d)
{
    int rc = mk_dest_recv(d, mk_buf_peek(&p->b), mk_buf_len(&p->b), 0);
    mk_buf_clear(&p->b);
    return rc;
}

static inline int mkt_to_source(mkt_peer *p, mk_source *s)
{
    int rc = mk_source_recv(s, mk_buf_peek(&p->b), mk_buf_len(&p->b), 0);
    mk_buf_clear(&p->b);
    return rc;
}

/* ---- decoding an engine's output ---------------------------------------- */

#define MKT_MAX_FRAMES 4096

/* The frames of one output buffer, copied out so the buffer can be
 * consumed; payload pointers point into `bytes`. */
typedef struct mkt_frames {
    uint8_t *bytes;
    size_t len, n;
    mk_frame f[MKT_MAX_FRAMES];
} mkt_frames;

/* Decodes every frame in b (which must hold whole frames only), then
 * empties b.  Free with mkt_frames_free. */
static inline mkt_frames *mkt_take(mk_buf *b)
{
    mkt_frames *fs = calloc(1, sizeof *fs);
    ck_assert_ptr_nonnull(fs);
    fs->len = mk_buf_len(b);
    fs->bytes = malloc(fs->len ? fs->len : 1);
    ck_assert_ptr_nonnull(fs->bytes);
    memcpy(fs->bytes, mk_buf_peek(b), fs->len);
    mk_buf_clear(b);
    size_t at = 0;
    while (at < fs->len) {
        size_t used;
        ck_assert_uint_lt(fs->n, MKT_MAX_FRAMES);
        int rc = mk_frame_decode(fs->bytes + at, fs->len - at, MK_MAX_PAYLOAD,
                                 MK_FRAME_MAGIC, &fs->f[fs->n], &used);
        ck_assert_msg(rc == 0, "output frame %zu at byte %zu: %s", fs->n, at,
                      mk_errname(rc));
        fs->n++;
        at += used;
    }
    return fs;
}

static inline void mkt_frames_free(mkt_frames *fs)
{
    if (fs) {
        free(fs->bytes);
        free(fs);
    }
}

/* Appends the frames of more to fs and frees more; payloads are copied,
 * so every frame of fs stays valid. */
static inline void mkt_frames_append(mkt_frames *fs, mkt_frames *more)
{
    size_t at[MKT_MAX_FRAMES];
    for (size_t i = 0; i < fs->n; i++)
        at[i] = (size_t)(fs->f[i].payload - fs->bytes);
    uint8_t *b = malloc(fs->len + more->len + 1);
    ck_assert_ptr_nonnull(b);
    if (fs->len)
        memcpy(b, fs->bytes, fs->len);
    if (more->len)
        memcpy(b + fs->len, more->bytes, more->len);
    for (size_t i = 0; i < fs->n; i++)
        fs->f[i].payload = b + at[i];
    for (size_t i = 0; i < more->n; i++) {
        ck_assert_uint_lt(fs->n, MKT_MAX_FRAMES);
        fs->f[fs->n] = more->f[i];
        fs->f[fs->n].payload = b + fs->len + (size_t)(more->f[i].payload - more->bytes);
        fs->n++;
    }
    free(fs->bytes);
    fs->bytes = b;
    fs->len += more->len;
    mkt_frames_free(more);
}

static inline size_t mkt_count(const mkt_frames *fs, int type)
{
    size_t n = 0;
    for (size_t i = 0; i < fs->n; i++)
        n += fs->f[i].type == type;
    return n;
}

/* Index of the k-th frame of a type, or -1. */
static inline long mkt_find(const mkt_frames *fs, int type, size_t k)
{
    for (size_t i = 0; i < fs->n; i++)
        if (fs->f[i].type == type && k-- == 0)
            return (long)i;
    return -1;
}

/* Asserts the output is exactly one ERROR frame carrying `code`. */
static inline void mkt_assert_error_frame(mk_buf *out, int code)
{
    mkt_frames *fs = mkt_take(out);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_ERROR);
    mk_error_frame e;
    mkt_ok(mk_error_decode(&fs->f[0], &e));
    mkt_assert_err(e.code, code);
    ck_assert_uint_gt(e.msglen, 0);
    mkt_frames_free(fs);
}

/* ---- a watching file wrapper --------------------------------------------- */

/*
 * Passes every call to `in` and counts it.  When the wrapped file is a log,
 * it also notes each CP_COMMIT record written and, once a later sync of the
 * file succeeds, that CP as durable (durable_cp).  A dying pwrite that the
 * crash clock tears after at least the whole record counts as durable at
 * once, since the torn part persists.
 */
/* One storage call, for tests of the order of storage operations. */
typedef struct mkt_event {
    uint8_t file; /* the wrapper's id */
    uint8_t op;   /* 'w' pwrite, 's' sync, 't' truncate */
    uint8_t type; /* pwrite of a frame/record: its type; of a header: 'H' */
    uint64_t off, n;
} mkt_event;

#define MKT_TRACE_MAX 8192
typedef struct mkt_trace {
    size_t n;
    mkt_event ev[MKT_TRACE_MAX];
} mkt_trace;

typedef struct mkt_wfile {
    mk_file base;
    mk_file *in;
    mk_crash_clock *clk;
    uint64_t syncs, writes, truncs, write_bytes;
    uint64_t written_cp, durable_cp;
    int fail_sync; /* nonzero: sync fails with this code (once) */
    mkt_trace *trace;
    uint8_t id;
} mkt_wfile;

static inline void mkt_note(mkt_wfile *w, uint8_t op, uint8_t type, uint64_t off,
                            uint64_t n)
{
    if (w->trace && w->trace->n < MKT_TRACE_MAX)
        w->trace->ev[w->trace->n++] = (mkt_event){w->id, op, type, off, n};
}

static inline long mkt_w_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    return mk_file_pread(((mkt_wfile *)f)->in, buf, n, off);
}

static inline int mkt_commit_cp(const uint8_t *p, size_t n, uint64_t *cp)
{
    if (n < MK_FRAME_OVERHEAD + 8 || mkt_get_le32(p) != MK_FRAME_MAGIC ||
        p[5] != MK_R_CP_COMMIT)
        return 0;
    *cp = mk_get_le64(p + MK_HDR_LEN);
    return 1;
}

static inline int mkt_w_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    mkt_wfile *w = (mkt_wfile *)f;
    uint64_t cp;
    const uint8_t *b = buf;
    uint8_t type = n >= MK_HDR_LEN && mkt_get_le32(b) == MK_FRAME_MAGIC ? b[5]
                   : n == MK_LOG_SLOT_LEN && off < MK_LOG_DATA_START  ? 'H'
                                                                       : 0;
    mkt_note(w, 'w', type, off, n);
    int rc = mk_file_pwrite(w->in, buf, n, off);
    w->writes++;
    if (rc == 0) {
        w->write_bytes += n;
        if (mkt_commit_cp(buf, n, &cp))
            w->written_cp = cp;
    } else if (w->clk && w->clk->dead && w->clk->tear >= n &&
               w->clk->ticks == w->clk->limit && mkt_commit_cp(buf, n, &cp)) {
        w->durable_cp = cp;
    }
    return rc;
}

static inline int mkt_w_sync(mk_file *f)
{
    mkt_wfile *w = (mkt_wfile *)f;
    w->syncs++;
    mkt_note(w, 's', 0, 0, 0);
    if (w->fail_sync) {
        int rc = w->fail_sync;
        w->fail_sync = 0;
        return rc;
    }
    int rc = mk_file_sync(w->in);
    if (rc == 0 && w->written_cp > w->durable_cp)
        w->durable_cp = w->written_cp;
    return rc;
}

static inline int mkt_w_truncate(mk_file *f, uint64_t size)
{
    ((mkt_wfile *)f)->truncs++;
    mkt_note((mkt_wfile *)f, 't', 0, size, 0);
    return mk_file_truncate(((mkt_wfile *)f)->in, size);
}

static inline int mkt_w_size(mk_file *f, uint64_t *size)
{
    return mk_file_size(((mkt_wfile *)f)->in, size);
}

static inline void mkt_w_close(mk_file *f)
{
    mk_file_close(((mkt_wfile *)f)->in);
    free(f);
}

/* Wraps `in` (which the wrapper then owns and closes). */
static inline mkt_wfile *mkt_wrap(mk_file *in, mk_crash_clock *clk)
{
    static const mk_file_ops ops = {mkt_w_pread, mkt_w_pwrite, mkt_w_sync,
                                    mkt_w_truncate, mkt_w_size, mkt_w_close};
    mkt_wfile *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->base.ops = &ops;
    snprintf(w->base.name, sizeof w->base.name, "%s", in->name);
    w->in = in;
    w->clk = clk;
    return w;
}

static inline uint64_t mkt_fsize(mk_file *f)
{
    uint64_t n;
    mkt_ok(mk_file_size(f, &n));
    return n;
}

/* A copy of the whole file (caller frees). */
static inline uint8_t *mkt_slurp(mk_file *f, uint64_t *len)
{
    *len = mkt_fsize(f);
    uint8_t *p = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(p);
    mkt_ok(mk_file_read_block(f, p, *len, 0));
    return p;
}

/* A fresh memory file holding exactly these bytes. */
static inline mk_file *mkt_mem_with(const uint8_t *p, uint64_t len)
{
    mk_file *f;
    mkt_ok(mk_file_mem("test/copy", &f));
    if (len)
        mkt_ok(mk_file_pwrite(f, p, len, 0));
    return f;
}

/* Asserts blocks [0, nblocks) of f equal img; names the first bad block. */
static inline void mkt_assert_image(mk_file *f, const uint8_t *img, uint64_t nblocks,
                                    uint32_t bs)
{
    uint8_t *b = malloc(bs);
    ck_assert_ptr_nonnull(b);
    for (uint64_t i = 0; i < nblocks; i++) {
        mkt_ok(mk_file_read_block(f, b, bs, i * bs));
        if (memcmp(b, img + i * bs, bs) != 0) {
            free(b);
            ck_abort_msg("block %llu differs from the expected image",
                         (unsigned long long)i);
        }
    }
    free(b);
}

/* 1 if blocks [0, nblocks) of f equal img. */
static inline int mkt_image_eq(mk_file *f, const uint8_t *img, uint64_t nblocks,
                               uint32_t bs)
{
    uint8_t *b = malloc(bs);
    int eq = 1;
    ck_assert_ptr_nonnull(b);
    for (uint64_t i = 0; eq && i < nblocks; i++) {
        mkt_ok(mk_file_read_block(f, b, bs, i * bs));
        eq = memcmp(b, img + i * bs, bs) == 0;
    }
    free(b);
    return eq;
}

/* ---- the simulated link -------------------------------------------------- */

enum { MKT_S2D = 0, MKT_D2S = 1 };
#define MKT_UNLIMITED UINT64_MAX

/* Sees every whole frame (in place, may rewrite it: the link reseals it
 * afterwards); returns 1 to deliver it, 0 to drop it. */
typedef int (*mkt_filter_fn)(void *ctx, int dir, uint8_t *frame, size_t len);

typedef struct mkt_link {
    mk_source *src;
    mk_dest *dst;
    uint64_t now;
    uint64_t budget[2];  /* bytes still deliverable; MKT_UNLIMITED: no cut */
    int cut[2];          /* the budget ran out: the rest is dropped */
    int random_chunks;   /* slice the streams with rng (else one piece) */
    mk_prng rng;
    const int *dst_down; /* when *dst_down: the destination is dead */
    mkt_filter_fn filter;
    void *fctx;
    int src_err, dst_err; /* first error each engine reported */
    uint64_t delivered[2], dropped[2];
} mkt_link;

static inline void mkt_link_init(mkt_link *l, mk_source *s, mk_dest *d)
{
    memset(l, 0, sizeof *l);
    l->src = s;
    l->dst = d;
    l->budget[0] = l->budget[1] = MKT_UNLIMITED;
    mk_prng_seed(&l->rng, 42);
}

/* A new connection: no cut, no pending errors. */
static inline void mkt_link_reset(mkt_link *l)
{
    l->budget[0] = l->budget[1] = MKT_UNLIMITED;
    l->cut[0] = l->cut[1] = 0;
    l->src_err = l->dst_err = 0;
}

static inline int mkt_deliver(mkt_link *l, int dir, const uint8_t *p, size_t n)
{
    l->delivered[dir] += n;
    l->now += 1000;
    if (dir == MKT_S2D)
        return mk_dest_recv(l->dst, p, n, l->now);
    return mk_source_recv(l->src, p, n, l->now);
}

/* Moves what one side has queued to the other; 1 if any byte reached a
 * live engine. */
static inline int mkt_move(mkt_link *l, int dir)
{
    mk_buf *from = dir == MKT_S2D ? mk_source_out(l->src) : mk_dest_out(l->dst);
    int *err = dir == MKT_S2D ? &l->dst_err : &l->src_err;
    int down = l->dst_down && *l->dst_down;
    int progress = 0;
    while (mk_buf_len(from)) {
        size_t avail = mk_buf_len(from), n = avail;
        int receiver_dead = *err != 0 || down;
        if (l->cut[dir] || receiver_dead) {
            l->dropped[dir] += avail;
            mk_buf_consume(from, avail);
            break;
        }
        uint8_t *copy = NULL;
        if (l->filter) {
            mk_frame f;
            size_t used;
            int rc = mk_frame_decode(mk_buf_peek(from), avail, MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used);
            if (rc == MK_ETRUNC)
                break;
            if (rc == 0) {
                n = used;
                copy = malloc(n);
                ck_assert_ptr_nonnull(copy);
                memcpy(copy, mk_buf_peek(from), n);
                if (!l->filter(l->fctx, dir, copy, n)) {
                    free(copy);
                    l->dropped[dir] += n;
                    mk_buf_consume(from, n);
                    continue;
                }
                mkt_reseal(copy);
            }
        } else if (l->random_chunks) {
            size_t c = mk_prng_chance(&l->rng, 1, 4) ? 1 + mk_prng_below(&l->rng, 40)
                                                     : 1 + mk_prng_below(&l->rng, 9000);
            n = c < avail ? c : avail;
        }
        size_t give = n;
        if (l->budget[dir] != MKT_UNLIMITED) {
            if (give > l->budget[dir])
                give = (size_t)l->budget[dir];
            l->budget[dir] -= give;
        }
        int rc = 0;
        if (give)
            rc = mkt_deliver(l, dir, copy ? copy : mk_buf_peek(from), give);
        free(copy);
        mk_buf_consume(from, n);
        if (give)
            progress = 1;
        if (give < n) {
            l->cut[dir] = 1;
            l->dropped[dir] += n - give;
        } else if (l->budget[dir] == 0) {
            l->cut[dir] = 1;
        }
        if (rc) {
            if (!*err)
                *err = rc;
            break;
        }
    }
    return progress;
}

/* Moves bytes both ways until neither side has anything more to say.
 * Returns the first error either engine reported (0 if none). */
static inline int mkt_pump(mkt_link *l)
{
    int guard = 0;
    for (;;) {
        int a = l->src ? mkt_move(l, MKT_S2D) : 0;
        int b = l->dst ? mkt_move(l, MKT_D2S) : 0;
        if (!a && !b)
            break;
        ck_assert_int_lt(++guard, 1000000);
    }
    return l->dst_err ? l->dst_err : l->src_err;
}

/* ---- two engines and a model volume --------------------------------------- */

typedef struct mkt_env {
    mk_source_config sc;
    mk_dest_config dc;
    mk_file *store, *mirror, *log;
    mk_source *src;
    mk_dest *dst;
    mkt_link link;
    uint64_t vbytes;
    uint8_t *model;   /* what the source volume holds */
    uint8_t *cp_img;  /* the last acknowledged CP image */
    uint8_t *buf;     /* write scratch */
} mkt_env;

/* Memory files and configurations; the engines start with mkt_env_start,
 * so a test may swap in files of its own first. */
static inline void mkt_env_init(mkt_env *e, int mode, uint64_t nblocks, uint32_t bs)
{
    memset(e, 0, sizeof *e);
    e->sc = (mk_source_config){MKT_VOLUME_ID, nblocks, MKT_SOURCE_ID, bs, mode, 0, NULL};
    e->vbytes = nblocks * bs;
    mkt_ok(mk_file_mem("test/source/store", &e->store));
    mkt_ok(mk_file_mem("test/dest/mirror", &e->mirror));
    mkt_ok(mk_file_mem("test/dest/log", &e->log));
    e->model = calloc(1, e->vbytes);
    e->cp_img = calloc(1, e->vbytes);
    ck_assert_ptr_nonnull(e->model);
    ck_assert_ptr_nonnull(e->cp_img);
}

/* Engines up and the session established. */
static inline void mkt_env_start(mkt_env *e)
{
    mkt_ok(mk_source_new(&e->sc, e->store, &e->src));
    mkt_ok(mk_dest_open(&e->dc, e->mirror, e->log, &e->dst));
    mkt_link_init(&e->link, e->src, e->dst);
    mkt_ok(mk_source_connect(e->src, 0));
    mkt_ok(mkt_pump(&e->link));
    ck_assert(mk_source_ready(e->src));
}

static inline void mkt_env_new(mkt_env *e, int mode, uint64_t nblocks, uint32_t bs)
{
    mkt_env_init(e, mode, nblocks, bs);
    mkt_env_start(e);
}

static inline void mkt_env_free(mkt_env *e)
{
    mk_source_free(e->src);
    mk_dest_free(e->dst);
    mk_file_close(e->store);
    mk_file_close(e->mirror);
    mk_file_close(e->log);
    free(e->model);
    free(e->cp_img);
    free(e->buf);
    memset(e, 0, sizeof *e);
}

/* Writes len bytes of stream `seed` at off through the source (pumping
 * through EAGAIN) and into the model; in sync mode waits for the write's
 * acknowledgement.  Returns the write ID. */
static inline uint64_t mkt_env_write(mkt_env *e, uint64_t off, uint32_t len, uint64_t seed)
{
    uint64_t wid = 0;
    int rc;
    free(e->buf);
    e->buf = malloc(len);
    ck_assert_ptr_nonnull(e->buf);
    mkt_fill(e->buf, len, seed);
    ck_assert_uint_le(off + len, e->vbytes);
    while ((rc = mk_source_write(e->src, off, e->buf, len, 0, &wid)) == MK_EAGAIN) {
        uint64_t before = mk_source_unacked_bytes(e->src);
        mkt_ok(mkt_pump(&e->link));
        ck_assert_msg(mk_source_unacked_bytes(e->src) < before, "lag never drains");
    }
    mkt_ok(rc);
    memcpy(e->model + off, e->buf, len);
    mkt_ok(mkt_pump(&e->link));
    if (e->sc.mode == MK_MODE_SYNC)
        ck_assert_uint_ge(mk_source_acked(e->src), wid);
    return wid;
}

/* Whole blocks [first, first+n) with content of stream seed. */
static inline uint64_t mkt_env_write_blocks(mkt_env *e, uint64_t first, uint32_t n,
                                            uint64_t seed)
{
    return mkt_env_write(e, first * e->sc.block_size, n * e->sc.block_size, seed);
}

/* Starts a CP (pumping through EAGAIN) without waiting for it. */
static inline void mkt_env_cp_start(mkt_env *e)
{
    int rc;
    while ((rc = mk_source_cp(e->src, 0)) == MK_EAGAIN) {
        uint64_t before = mk_source_acked(e->src);
        ck_assert(!mk_source_cp_in_flight(e->src));
        mkt_ok(mkt_pump(&e->link));
        ck_assert_msg(mk_source_acked(e->src) > before, "sync CP never unblocks");
    }
    mkt_ok(rc);
    memcpy(e->cp_img, e->model, e->vbytes);
}

/* A whole CP: started, acknowledged, and the mirror checked (I1). */
static inline void mkt_env_cp(mkt_env *e)
{
    uint64_t want = mk_source_cp_acked(e->src) + 1;
    mkt_env_cp_start(e);
    mkt_ok(mkt_pump(&e->link));
    ck_assert_uint_eq(mk_source_cp_acked(e->src), want);
    ck_assert(!mk_source_cp_in_flight(e->src));
    mkt_assert_image(e->mirror, e->cp_img, e->sc.nblocks, e->sc.block_size);
}

/* The connection dies; both sides notice. */
static inline void mkt_env_disconnect(mkt_env *e)
{
    mk_dest_session_end(e->dst);
    mk_source_disconnect(e->src);
    mkt_link_reset(&e->link);
}

/* A new connection and the resume handshake. */
static inline int mkt_env_reconnect(mkt_env *e)
{
    mkt_env_disconnect(e);
    mkt_ok(mk_source_connect(e->src, 0));
    return mkt_pump(&e->link);
}

/* The destination process restarts on the same files. */
static inline void mkt_env_restart_dest(mkt_env *e)
{
    mk_dest_free(e->dst);
    e->dst = NULL;
    mkt_ok(mk_dest_open(&e->dc, e->mirror, e->log, &e->dst));
    e->link.dst = e->dst;
}

/* ---- temporary directories ------------------------------------------------- */

static inline void mkt_tmpdir(char *path, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(path, cap, "%s/mkt.XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(path));
}

/* Removes dir/name if present. */
static inline void mkt_unlink_in(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

#endif
