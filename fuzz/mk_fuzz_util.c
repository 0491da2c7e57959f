/*
 * mk_fuzz_util.c - shared machinery of fuzz_log, fuzz_sync and fuzz_source
 * (see the header for the input layout), and the destination driver with
 * its oracles:
 *
 *   O1  I5: the mirror sits behind verify/'s mk_file_bounded; its
 *       violation counter must stay 0, and the mirror's size is N*B.
 *   O2  I4: mirror, log and tree sit behind a counting wrapper at the
 *       storage seam.  Around the frame the model says the destination
 *       must refuse, not one pwrite or truncate may reach any of them, no
 *       size may change, the tree's fingerprint (as verify/'s
 *       mk_file_fingerprint computes it) must stay and the mirror must
 *       still equal the model's image.  The refusal must be a session
 *       error (the next session is served, 8.5) with exactly the error
 *       SPEC names, and the destination must refuse exactly where the
 *       model does: a wrong acceptance is a failure too.  A frame fed
 *       before the refused one is fed in earlier reads, so the check is
 *       per frame even when a read carries several.
 *   O3  differential: every frame the destination sends is compared with
 *       what the model says it must send (HELLO_ACK, NAK, CP_ACK with the
 *       digest and Merkle root, TREE_NODES, ERROR; LOG_ACKs cumulative,
 *       in range and covering every transfer after each read, 4.4), and the
 *       mirror with the model's image after every applied CP and at the
 *       end.  After the input the destination is reopened from its files
 *       (recovery, 7.6) and must report the model's last CP, digest and
 *       durable tid, and keep the model's mirror.
 *   O4  memory: the log grows at most linearly with the bytes fed, the
 *       tree file stays within its 16*(2P-1) bytes, the output queue with
 *       the input, and (outside sanitizer builds) the heap in use stays
 *       within a linear bound of the input size above the heap measured
 *       before the first input.
 *
 * Test aids (environment): MK_FUZZ_TRACE=1 prints every piece with the
 * model's verdict; MK_FUZZ_PLANT=1 plants a bug in the model (a REF is
 * applied from the neighbouring slot) to show the differential oracle
 * aborts; MK_FUZZ_STRICT=1 tolerates no known divergence of ref/ from
 * SPEC.md (mk_fuzz_model.h, fuzz/regressions/).
 */
#include "mk_fuzz_util.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_check.h"
#include "mk_dest.h"
#include "mk_err.h"
#include "mk_fuzz_model.h"
#include "mk_wire.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define MKFU_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MKFU_SANITIZED 1
#endif

void mkfu_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz oracle broken: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

void mkfu_ctl_read(mkfu_ctl *c, const uint8_t *data, size_t size)
{
    uint8_t h[MKFU_HDR] = {0};
    memcpy(h, data, size < MKFU_HDR ? size : MKFU_HDR);
    c->variant = h[0];
    c->per_batch = (h[1] & 15u) + 1;
    c->flags = h[1] >> 4;
    memcpy(c->chunk, h + 2, 8);
    c->next_chunk = 0;
}

size_t mkfu_chunk(mkfu_ctl *c, size_t left)
{
    size_t k = c->chunk[c->next_chunk++ & 7];
    return k == 0 || k > left ? left : k;
}

size_t mkfu_split(const uint8_t *s, size_t n, mkfu_piece **out)
{
    size_t cap = n / MK_FRAME_OVERHEAD + 2, k = 0, at = 0;
    mkfu_piece *v = malloc(cap * sizeof *v);
    if (!v)
        abort();
    while (at < n) {
        const uint8_t *p = s + at;
        size_t left = n - at;
        if (left >= MK_HDR_LEN && mkfm_le32(p) == MK_FRAME_MAGIC && p[4] == MK_PROTO_VERSION) {
            uint32_t len = mkfm_le32(p + 8);
            if (len <= MK_MAX_PAYLOAD && (size_t)len + MK_FRAME_OVERHEAD <= left) {
                v[k++] = (mkfu_piece){p, (size_t)len + MK_FRAME_OVERHEAD, p[5] >= 0xF0 ? p[5] : 0};
                at += (size_t)len + MK_FRAME_OVERHEAD;
                continue;
            }
        }
        v[k++] = (mkfu_piece){p, left, 0};
        break;
    }
    *out = v;
    return k;
}

size_t mkfu_heap_base(void)
{
    static size_t base;
    static int have;
    if (!have) {
        base = mkfu_heap_in_use();
        have = 1;
    }
    return base;
}

size_t mkfu_heap_in_use(void)
{
#ifdef MKFU_SANITIZED
    return 0;
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

size_t mkfu_hello_geometry(const uint8_t *s, size_t n, uint64_t *nblocks, uint32_t *bs,
                           uint8_t *mode)
{
    mkfm_frame f;
    size_t used;
    if (mkfm_deframe(s, n, &f, &used) || f.type != MK_F_HELLO || f.len != MK_HELLO_LEN)
        return 0;
    *nblocks = mkfm_le64(f.payload + 8);
    *bs = mkfm_le32(f.payload + 16);
    *mode = f.payload[20];
    return used;
}

/* ---- a counting wrapper at the storage seam ------------------------------- */

/* Passes every call through and counts the mutating ones. */
typedef struct counted {
    mk_file base;
    mk_file *inner;
    uint64_t muts;
} counted;

static long c_pread(mk_file *f, void *b, size_t n, uint64_t off)
{
    return mk_file_pread(((counted *)f)->inner, b, n, off);
}
static int c_pwrite(mk_file *f, const void *b, size_t n, uint64_t off)
{
    ((counted *)f)->muts++;
    return mk_file_pwrite(((counted *)f)->inner, b, n, off);
}
static int c_sync(mk_file *f) { return mk_file_sync(((counted *)f)->inner); }
static int c_truncate(mk_file *f, uint64_t size)
{
    ((counted *)f)->muts++;
    return mk_file_truncate(((counted *)f)->inner, size);
}
static int c_size(mk_file *f, uint64_t *size) { return mk_file_size(((counted *)f)->inner, size); }
static void c_close(mk_file *f)
{
    mk_file_close(((counted *)f)->inner);
    free(f);
}
static const mk_file_ops counted_ops = {c_pread, c_pwrite, c_sync, c_truncate, c_size, c_close};

/* A memory file behind a counting wrapper (which owns it). */
static counted *counted_mem(const char *name)
{
    counted *c = calloc(1, sizeof *c);
    if (!c || mk_file_mem(name, &c->inner))
        abort();
    c->base.ops = &counted_ops;
    memcpy(c->base.name, c->inner->name, sizeof c->base.name);
    return c;
}

/* ---- the destination driver ------------------------------------------------ */

typedef struct drun {
    const mkfu_dest_setup *su;
    mkfu_ctl ctl;
    mk_dest *d;
    mk_file *mirror, *log, *tree; /* mirror: I5 bounds wrapper over cnt[0] */
    counted *cnt[3];              /* mirror, log, tree */
    uint64_t viol;
    mkfm_dest m;
    uint64_t vbytes;
    /* per tag (piece fed to the model): highest tid received after it */
    uint64_t *lt;
    size_t ntag, captag;
    /* output checking */
    size_t ev_pos;
    uint64_t out_seq, acked;
    int session_up;
    uint64_t applies_checked;
    int checked_valid;    /* the mirror equalled the model's image at */
    uint64_t checked_muts, checked_applies; /* these counts */
    uint8_t *mbuf;        /* one mirror image, for comparisons */
    uint64_t fed;         /* bytes handed to mk_dest_recv */
    int last_refusal;     /* the error of the last refused frame */
    uint64_t out_bytes;   /* bytes the destination sent */
} drun;

static uint32_t new_tag(drun *r)
{
    if (r->ntag == r->captag) {
        r->captag = r->captag ? 2 * r->captag : 256;
        if (!(r->lt = realloc(r->lt, r->captag * sizeof *r->lt)))
            abort();
    }
    r->lt[r->ntag] = 0;
    return (uint32_t)r->ntag++;
}

static void check_mirror(drun *r, const char *when)
{
    if (!r->m.have_id)
        return;
    MKFU_CHECK(r->viol == 0, "O1 (I5): %llu writes outside the volume",
               (unsigned long long)r->viol);
    /* Unchanged since the last comparison: no call wrote the mirror and
     * the model applied nothing. */
    if (r->checked_valid && r->checked_muts == r->cnt[0]->muts &&
        r->checked_applies == r->m.applies)
        return;
    uint64_t size;
    MKFU_CHECK(mk_file_size(r->mirror, &size) == 0 && size == r->vbytes,
               "O1: mirror size %llu, volume %llu (%s)", (unsigned long long)size,
               (unsigned long long)r->vbytes, when);
    MKFU_CHECK(mk_file_read_block(r->mirror, r->mbuf, r->vbytes, 0) == 0, "mirror read");
    if (memcmp(r->mbuf, r->m.image, r->vbytes) != 0) {
        uint64_t b = 0;
        while (memcmp(r->mbuf + b * r->m.bs, r->m.image + b * r->m.bs, r->m.bs) == 0)
            b++;
        mkfu_fail("O3: mirror differs from the model at block %llu after CP %llu (%s)",
                  (unsigned long long)b, (unsigned long long)r->m.last_cp, when);
    }
    r->checked_valid = 1;
    r->checked_muts = r->cnt[0]->muts;
    r->checked_applies = r->m.applies;
}

/* Checks every frame the destination sent since the last call against the
 * model's expected events up to tag `done` (the last piece wholly fed). */
static void check_output(drun *r, uint32_t done, int require_acks)
{
    mk_buf *out = mk_dest_out(r->d);
    const uint8_t *p = mk_buf_peek(out);
    size_t n = mk_buf_len(out);
    r->out_bytes += n;
    while (n) {
        MKFU_CHECK(n >= MK_FRAME_OVERHEAD, "O3: destination sent a partial frame");
        uint32_t len = mkfm_le32(p + 8);
        MKFU_CHECK(mkfm_le32(p) == MK_FRAME_MAGIC && p[4] == 1 && p[6] == 0 && p[7] == 0 &&
                       len <= MK_MAX_PAYLOAD && n >= MK_FRAME_OVERHEAD + (size_t)len,
                   "O3: destination sent a malformed frame header");
        MKFU_CHECK(mkfm_le64(p + 20 + len) == XXH3_64bits(p, 20 + (size_t)len),
                   "O3: destination frame has a wrong checksum (type 0x%02x)", p[5]);
        uint64_t seq = mkfm_le64(p + 12);
        MKFU_CHECK(seq == r->out_seq, "O3: destination seq %llu, expected %llu",
                   (unsigned long long)seq, (unsigned long long)r->out_seq);
        r->out_seq++;
        uint8_t type = p[5];
        const uint8_t *pl = p + 20;
        if (type == MK_F_LOG_ACK) {
            MKFU_CHECK(len == 8, "O3: LOG_ACK length %u", len);
            uint64_t t = mkfm_le64(pl);
            MKFU_CHECK(t >= r->acked, "O3: LOG_ACK %llu after %llu: not cumulative",
                       (unsigned long long)t, (unsigned long long)r->acked);
            MKFU_CHECK(t <= r->lt[done], "O3: LOG_ACK %llu for a transfer not received (%llu)",
                       (unsigned long long)t, (unsigned long long)r->lt[done]);
            r->acked = t;
        } else {
            MKFU_CHECK(r->ev_pos < r->m.ev.n && r->m.ev.v[r->ev_pos].tag <= done,
                       "O3: destination sent %s (0x%02x) the model does not expect",
                       mk_ftype_name(type), type);
            const mkfm_event *e = &r->m.ev.v[r->ev_pos++];
            MKFU_CHECK(e->type == type, "O3: destination sent %s, the model expects %s",
                       mk_ftype_name(type), mk_ftype_name(e->type));
            if (type == MK_F_ERROR) {
                MKFU_CHECK(len >= 8 && mkfm_le32(pl + 4) == len - 8 && mkfm_le32(pl + 4) <= 256,
                           "O3: malformed ERROR from the destination");
                int code = -(int)mkfm_le32(pl);
                MKFU_CHECK(code == e->code, "O2: refused with %s, SPEC says %s",
                           mk_errname(code), mk_errname(e->code));
            } else {
                if (len != e->len || memcmp(pl, e->payload, len) != 0) {
                    fprintf(stderr, "expected:");
                    for (uint32_t i = 0; i < e->len && i < 64; i++)
                        fprintf(stderr, " %02x", e->payload[i]);
                    fprintf(stderr, "\nsent:    ");
                    for (uint32_t i = 0; i < len && i < 64; i++)
                        fprintf(stderr, " %02x", pl[i]);
                    fprintf(stderr, "\n");
                    mkfu_fail("O3: %s payload differs from the model's", mk_ftype_name(type));
                }
                if (type == MK_F_HELLO_ACK)
                    r->acked = mkfm_le64(pl + 32); /* durable_tid covers these */
                if (type == MK_F_CP_ACK)
                    MKFU_CHECK(r->acked >= e->ack_floor,
                               "O3: CP_ACK before LOG_ACK of transfer %llu (7.4 step 1)",
                               (unsigned long long)e->ack_floor);
            }
        }
        p += MK_FRAME_OVERHEAD + len;
        n -= MK_FRAME_OVERHEAD + len;
    }
    mk_buf_consume(out, mk_buf_len(out));
    MKFU_CHECK(r->ev_pos == r->m.ev.n || r->m.ev.v[r->ev_pos].tag > done,
               "O3: destination did not send %s (the model expects it)",
               mk_ftype_name(r->m.ev.v[r->ev_pos].type));
    if (require_acks)
        MKFU_CHECK(r->acked >= r->lt[done],
                   "O3: transfers up to %llu received but only %llu acknowledged (4.4)",
                   (unsigned long long)r->lt[done], (unsigned long long)r->acked);
    /* O4: what the destination sends grows with what it is sent. */
    MKFU_CHECK(r->out_bytes <= 8 * r->fed + 4096, "O4: %llu bytes out for %llu in",
               (unsigned long long)r->out_bytes, (unsigned long long)r->fed);
}

/* I4's fingerprint, as verify/'s mk_file_fingerprint computes it (XXH3-128
 * over the bytes, then the size), through a static buffer: mk_file_
 * fingerprint allocates 1 MiB per call, which costs more than the file. */
static XXH128_hash_t fingerprint(mk_file *f)
{
    static uint8_t buf[16u << 10];
    static XXH3_state_t *st;
    uint64_t size, off = 0;
    uint8_t sz[8];
    if (!st && !(st = XXH3_createState()))
        abort();
    XXH3_128bits_reset(st);
    MKFU_CHECK(mk_file_size(f, &size) == 0, "file size");
    while (off < size) {
        size_t n = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
        MKFU_CHECK(mk_file_read_block(f, buf, n, off) == 0, "file read");
        XXH3_128bits_update(st, buf, n);
        off += n;
    }
    for (int i = 0; i < 8; i++)
        sz[i] = (uint8_t)(size >> (8 * i));
    XXH3_128bits_update(st, sz, sizeof sz);
    return XXH3_128bits_digest(st);
}

/* What a refused frame must not change (I4): every file's size, and the
 * number of mutating calls (pwrite, truncate) made through it - any write
 * counts, even of equal bytes - plus the tree's fingerprint; the mirror's
 * bytes are then compared with the model's image, which is exact, by
 * check_mirror. */
typedef struct snap {
    XXH128_hash_t tree_fp;
    uint64_t muts[3], size[3];
} snap;

static void take_snap(drun *r, snap *s, int fp)
{
    mk_file *f[3] = {r->mirror, r->log, r->tree};
    for (int i = 0; i < 3; i++) {
        s->muts[i] = r->cnt[i]->muts;
        mk_file_size(f[i], &s->size[i]);
    }
    /* (the session's first refusal; later ones only meet a sticky error) */
    s->tree_fp = fp ? fingerprint(r->tree) : (XXH128_hash_t){0, 0};
}

static void same_snap(const snap *a, const snap *b, int err)
{
    static const char *name[3] = {"mirror", "log", "tree"};
    for (int i = 0; i < 3; i++)
        MKFU_CHECK(a->muts[i] == b->muts[i] && a->size[i] == b->size[i],
                   "O2 (I4): a frame refused with %s wrote the %s", mk_errname(err), name[i]);
    MKFU_CHECK(XXH128_isEqual(a->tree_fp, b->tree_fp),
               "O2 (I4): a frame refused with %s changed the tree", mk_errname(err));
}

/* Feeds pieces v[0..k) (contiguous bytes), every recv call expecting 0. */
static void feed_ok(drun *r, const mkfu_piece *v, const uint32_t *tags, size_t k)
{
    if (!k)
        return;
    const uint8_t *base = v[0].p;
    size_t total = (size_t)(v[k - 1].p + v[k - 1].n - base), at = 0, done = 0;
    while (at < total) {
        size_t c = mkfu_chunk(&r->ctl, total - at);
        r->fed += c;
        int rc = mk_dest_recv(r->d, base + at, c, 0);
        at += c;
        while (done < k && (size_t)(v[done].p + v[done].n - base) <= at)
            done++;
        MKFU_CHECK(rc == 0 || rc != r->last_refusal || v[0].p[5] != MK_F_HELLO,
                   "O2: the refusal with %s ended the engine, not the session (8.5): "
                   "the next session's HELLO is refused", mk_errname(rc));
        MKFU_CHECK(rc == 0, "O2: destination refused with %s what SPEC accepts (piece %zu, type 0x%02x)",
                   mk_errname(rc), done < k ? done : k - 1, v[done < k ? done : k - 1].n >= 6 ? v[done < k ? done : k - 1].p[5] : 0);
        if (done) {
            check_output(r, tags[done - 1], 1);
            if (r->m.applies != r->applies_checked && r->m.last_apply_tag <= tags[done - 1]) {
                check_mirror(r, "after a CP_ACK");
                r->applies_checked = r->m.applies;
            }
        }
    }
}

/* Feeds pieces the model refuses (the first with err): every recv call
 * returns 0 until the bad bytes are in, then err for good; nothing of the
 * files may change. */
static void feed_refused(drun *r, const mkfu_piece *v, const uint32_t *tags, size_t k, int err,
                         int first)
{
    snap before, after;
    take_snap(r, &before, first);
    const uint8_t *base = v[0].p;
    size_t total = (size_t)(v[k - 1].p + v[k - 1].n - base), at = 0;
    int got = 0;
    while (at < total) {
        size_t c = mkfu_chunk(&r->ctl, total - at);
        r->fed += c;
        int rc = mk_dest_recv(r->d, base + at, c, 0);
        at += c;
        MKFU_CHECK(rc == 0 || rc == err, "O2: destination refused with %s, SPEC says %s",
                   mk_errname(rc), mk_errname(err));
        MKFU_CHECK(!(got && rc == 0), "O2: session error %s was not sticky", mk_errname(err));
        got |= rc != 0;
    }
    MKFU_CHECK(got, "O2: destination accepted what SPEC refuses with %s (type 0x%02x)",
               mk_errname(err), v[0].n >= 6 ? v[0].p[5] : 0);
    MKFU_CHECK(mk_dest_error(r->d) == err, "O2: sticky error %s, expected %s",
               mk_errname(mk_dest_error(r->d)), mk_errname(err));
    r->last_refusal = err;
    check_output(r, tags[k - 1], 0);
    take_snap(r, &after, first);
    same_snap(&before, &after, err);
    check_mirror(r, "after a refused frame");
}

/* Runs a batch of stream pieces through the model, then the destination. */
static void feed_batch(drun *r, const mkfu_piece *v, size_t k)
{
    uint32_t small[16], *tags = k <= 16 ? small : malloc(k * sizeof *tags);
    if (!tags)
        abort();
    size_t bad = k;
    int err = 0, was_dead = r->m.dead;
    for (size_t i = 0; i < k; i++) {
        tags[i] = new_tag(r);
        int rc = mkfm_dest_piece(&r->m, v[i].p, v[i].n, tags[i]);
        r->lt[tags[i]] = r->m.last_tid;
        if (mkfu_env_trace())
            fprintf(stderr, "trace: piece %u type 0x%02x len %zu: model %s\n", tags[i],
                    v[i].n > 5 ? v[i].p[5] : 0, v[i].n, rc ? mk_errname(rc) : "accepts");
        if (rc && bad == k) {
            bad = i;
            err = rc;
        }
    }
    feed_ok(r, v, tags, bad);
    if (bad < k)
        feed_refused(r, v + bad, tags + bad, k - bad, err, !was_dead);
    if (tags != small)
        free(tags);
}

static void send_hello(drun *r)
{
    mk_buf b;
    mk_buf_init(&b);
    mk_hello h = {MKFU_VOLUME_ID, r->su->nblocks, r->su->block_size, r->su->mode, MKFU_SOURCE_ID};
    if (mk_hello_encode(&b, 0, &h))
        abort();
    mkfu_piece pc = {mk_buf_peek(&b), mk_buf_len(&b), 0};
    r->out_seq = 0;
    r->acked = 0;
    feed_batch(r, &pc, 1);
    mk_buf_free(&b);
}

static void new_session(drun *r)
{
    MKFU_CHECK(r->ev_pos == r->m.ev.n, "O3: expected output never sent");
    mk_dest_session_end(r->d);
    mkfm_dest_end(&r->m);
    send_hello(r);
}

static void open_dest(drun *r)
{
    mk_dest_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.tree = r->tree;
    int rc = mk_dest_open(&cfg, r->mirror, r->log, &r->d);
    MKFU_CHECK(rc == 0, "O3: destination does not reopen its own files: %s", mk_errname(rc));
}

/* After the input: reopen from the files (7.6) and compare. */
static void check_recovery(drun *r)
{
    MKFU_CHECK(r->ev_pos == r->m.ev.n, "O3: expected output never sent");
    mk_dest_free(r->d);
    r->d = NULL;
    open_dest(r);
    mk_log_info info;
    mk_dest_log_info(r->d, &info);
    MKFU_CHECK(info.last_cp == r->m.last_cp && info.durable_tid == r->m.last_tid &&
                   info.last_digest == r->m.last_digest && info.covers_tid == r->m.last_covers,
               "O3: recovered last_cp %llu durable %llu covers %llu, model %llu %llu %llu",
               (unsigned long long)info.last_cp, (unsigned long long)info.durable_tid,
               (unsigned long long)info.covers_tid, (unsigned long long)r->m.last_cp,
               (unsigned long long)r->m.last_tid, (unsigned long long)r->m.last_covers);
    check_mirror(r, "after recovery");
    mkfm_dest_end(&r->m);
    send_hello(r);
}

static int env_int(const char *name)
{
    const char *s = getenv(name);
    return s ? atoi(s) : 0;
}

int mkfu_env_strict(void)
{
    static int v = -1;
    if (v < 0)
        v = env_int("MK_FUZZ_STRICT");
    return v;
}

int mkfu_env_trace(void)
{
    static int v = -1;
    if (v < 0)
        v = env_int("MK_FUZZ_TRACE");
    return v;
}

int mkfu_env_plant(void)
{
    static int v = -1;
    if (v < 0)
        v = env_int("MK_FUZZ_PLANT");
    return v;
}

void mkfu_dest_run(const mkfu_dest_setup *su, const uint8_t *data, size_t size)
{
    drun r;
    memset(&r, 0, sizeof r);
    r.su = su;
    size_t heap0 = mkfu_heap_base();
    mkfu_ctl_read(&r.ctl, data, size);
    r.vbytes = su->nblocks * su->block_size;
    r.cnt[0] = counted_mem("fuzz/mirror");
    r.cnt[1] = counted_mem("fuzz/log");
    r.cnt[2] = counted_mem("fuzz/tree");
    r.log = &r.cnt[1]->base;
    r.tree = &r.cnt[2]->base;
    if (mk_file_bounded(&r.cnt[0]->base, r.vbytes, &r.viol, &r.mirror))
        abort();
    if (!(r.mbuf = malloc(r.vbytes)))
        abort();
    mkfm_dest_init(&r.m, su->nblocks, su->block_size);
    r.m.plant = su->plant ? su->plant : mkfu_env_plant();
    mkfm_strict = mkfu_env_strict();
    open_dest(&r);
    send_hello(&r);

    mkfu_piece *v = NULL;
    size_t k;
    if (su->prefix) {
        /* The recorded prefix goes in one read: it is the same every
         * iteration, so its checks need not run frame by frame. */
        k = mkfu_split(su->prefix, su->prefix_len, &v);
        for (size_t i = 0; i < k; i++)
            MKFU_CHECK(!v[i].op, "prefix holds an op");
        mkfu_ctl whole = r.ctl;
        memset(r.ctl.chunk, 0, sizeof r.ctl.chunk);
        feed_batch(&r, v, k);
        r.ctl = whole;
        MKFU_CHECK(!r.m.dead, "the recorded prefix was refused");
        free(v);
    }
    size_t in_len = size > MKFU_HDR ? size - MKFU_HDR : 0;
    k = mkfu_split(data + MKFU_HDR, in_len, &v);
    for (size_t i = 0; i < k;) {
        if (v[i].op) {
            if (v[i].op == MKFU_OP_RECONNECT)
                new_session(&r);
            i++;
            continue;
        }
        size_t j = i;
        while (j < k && j - i < r.ctl.per_batch && !v[j].op)
            j++;
        feed_batch(&r, v + i, j - i);
        i = j;
    }
    free(v);

    /* O1, O3 at the end */
    check_mirror(&r, "at the end of the input");
    /* O4: files bounded by what was fed */
    uint64_t lsize, tsize;
    mk_file_size(r.log, &lsize);
    mk_file_size(r.tree, &tsize);
    MKFU_CHECK(lsize <= 256 + 3 * r.fed + 4096, "O4: log of %llu bytes after %llu fed",
               (unsigned long long)lsize, (unsigned long long)r.fed);
    MKFU_CHECK(tsize <= 16 * (2 * r.m.tree.p - 1), "O4: tree file of %llu bytes",
               (unsigned long long)tsize);
    size_t heap = mkfu_heap_in_use();
    MKFU_CHECK(heap <= heap0 + 48 * (r.fed + r.m.nblocks * r.m.bs) + (256u << 10),
               "O4: %zu heap bytes in use after %llu bytes fed", heap - heap0,
               (unsigned long long)r.fed);
    check_recovery(&r);

    mk_dest_free(r.d);
    mk_file_close(r.mirror);
    mk_file_close(r.log);
    mk_file_close(r.tree);
    mkfm_dest_free(&r.m);
    free(r.lt);
    free(r.mbuf);
}
