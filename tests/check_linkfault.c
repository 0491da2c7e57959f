/*
 * check_linkfault.c - link faults of the simulated link (fault/mk_linkfault.h,
 * fault/SCENARIOS.md section 3.5, issue 4 item 2).
 *
 * Every test sends a stream of real frames, built with the encoders of
 * mk_wire.h, through one pipe and decodes what comes out with
 * mk_frame_decode, as a receiver would.  Each fault's effect is asserted
 * exactly: which sequence numbers arrive, which frame fails its checksum,
 * how many bytes one pull gives, at which virtual nanosecond bytes arrive.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_buf.h"
#include "mk_err.h"
#include "mk_linkfault.h"
#include "mk_test.h"
#include "mk_wire.h"

#define MS 1000000ull
#define NFR 12
#define OUTCAP (1u << 16)

/* ---- helpers ------------------------------------------------------------- */

/* NFR LOG frames with seq 1..NFR and payloads of different lengths (so a
 * frame's size tells it apart); off[i] is where frame i starts. */
typedef struct stream {
    mk_buf b;
    size_t off[NFR + 1];
} stream;

static void stream_build(stream *s)
{
    uint8_t data[256];
    mk_buf_init(&s->b);
    for (size_t i = 0; i < NFR; i++) {
        uint32_t len = (uint32_t)(1 + (i * 37) % 200);
        for (uint32_t k = 0; k < len; k++)
            data[k] = (uint8_t)(i * 13 + k);
        mk_log l = {i + 1, 4096 * i, len, data};
        s->off[i] = mk_buf_len(&s->b);
        ck_assert_int_eq(mk_log_encode(&s->b, i + 1, &l), 0);
    }
    s->off[NFR] = mk_buf_len(&s->b);
}

/* The stream every test sends, built once by the suite's fixture. */
static stream S;

static void setup(void) { stream_build(&S); }
static void teardown(void) { mk_buf_free(&S.b); }

static const uint8_t *frame_p(const stream *s, size_t i) { return mk_buf_peek(&s->b) + s->off[i]; }
static size_t frame_n(const stream *s, size_t i) { return s->off[i + 1] - s->off[i]; }

/* Pushes frames [from, to) at time t, one push per frame as engines write. */
static void push_frames(mk_lf *lf, const stream *s, size_t from, size_t to, uint64_t t)
{
    for (size_t i = from; i < to; i++)
        ck_assert_int_eq(mk_lf_push(lf, frame_p(s, i), frame_n(s, i), t), 0);
}

/* Pulls everything deliverable at t into out (appending at *len). */
static size_t pull_all(mk_lf *lf, uint64_t t, uint8_t *out, size_t *len)
{
    size_t got = 0, n;
    while ((n = mk_lf_pull(lf, t, out + *len, OUTCAP - *len)) > 0) {
        *len += n;
        got += n;
    }
    return got;
}

/* What a receiver decodes from the delivered bytes. */
typedef struct rx {
    uint64_t seq[4 * NFR];
    size_t n;        /* frames that decoded */
    int bad[4 * NFR]; /* per position in the stream: 1 if it failed its checksum */
    size_t nbad;
    size_t nframes;  /* positions, good or bad */
    int trunc;       /* the bytes end inside a frame */
} rx;

static void decode_all(const uint8_t *buf, size_t len, rx *r)
{
    memset(r, 0, sizeof *r);
    size_t pos = 0;
    while (pos < len) {
        mk_frame f;
        size_t used = 0;
        int rc = mk_frame_decode(buf + pos, len - pos, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used);
        if (rc == MK_ETRUNC) {
            r->trunc = 1;
            return;
        }
        ck_assert_uint_lt(r->nframes, 4 * NFR);
        if (rc == MK_ECHECKSUM) {
            /* The header is intact (corrupt never flips it), so the frame's
             * length still says where the next one starts. */
            const uint8_t *h = buf + pos;
            used = MK_FRAME_OVERHEAD + ((size_t)h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 |
                                        (size_t)h[11] << 24);
            r->bad[r->nframes++] = 1;
            r->nbad++;
        } else {
            ck_assert_int_eq(rc, 0);
            r->seq[r->n++] = f.seq;
            r->nframes++;
        }
        pos += used;
    }
}

static mk_lf_fault fault(int kind)
{
    mk_lf_fault f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    return f;
}

static mk_lf_fault prob_fault(int kind, uint64_t num, uint64_t den)
{
    mk_lf_fault f = fault(kind);
    f.prob_num = num;
    f.prob_den = den;
    return f;
}

static void set_ok(mk_lf *lf, mk_lf_fault f) { ck_assert_int_eq(mk_lf_set(lf, &f), 0); }

/* Pushes frames [0,3) clean, frame 3 under fault f, then clears it and
 * pushes the rest; returns the pulled bytes' decoding. */
static void one_frame_under(const mk_lf_fault *f, uint64_t seed, uint8_t *out, size_t *len, rx *r)
{
    mk_lf *lf = mk_lf_new(seed);
    ck_assert_ptr_nonnull(lf);
    push_frames(lf, &S, 0, 3, 0);
    set_ok(lf, *f);
    push_frames(lf, &S, 3, 4, 0);
    set_ok(lf, fault(MK_LF_K_CLEAR));
    push_frames(lf, &S, 4, NFR, 0);
    *len = 0;
    pull_all(lf, 0, out, len);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_OK);
    ck_assert_uint_eq(mk_lf_in_flight(lf), 0);
    decode_all(out, *len, r);
    mk_lf_free(lf);
}

/* ---- a clean link -------------------------------------------------------- */

START_TEST(test_s8_2_link_clean_passthrough)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(1);
    push_frames(lf, &S, 0, NFR, 5);
    ck_assert_uint_eq(mk_lf_next_event(lf), 5);
    size_t len = 0;
    pull_all(lf, 5, out, &len);
    ck_assert_uint_eq(len, mk_buf_len(&S.b));
    ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
    ck_assert_uint_eq(mk_lf_next_event(lf), UINT64_MAX);
    mk_lf_stats st;
    mk_lf_stats_get(lf, &st);
    ck_assert_uint_eq(st.frames_in, NFR);
    ck_assert_uint_eq(st.bytes_in, len);
    ck_assert_uint_eq(st.bytes_out, len);
    ck_assert_uint_eq(st.bytes_lost, 0);
    mk_lf_free(lf);
}
END_TEST

/* ---- frame-aware faults -------------------------------------------------- */

START_TEST(test_s8_2_link_drop_removes_one_frame)
{
    static uint8_t out[OUTCAP];
    size_t len;
    rx r;
    mk_lf_fault f = prob_fault(MK_LF_K_DROP, 1, 1);
    one_frame_under(&f, 7, out, &len, &r);
    ck_assert_uint_eq(r.n, NFR - 1);
    ck_assert_uint_eq(r.nbad, 0);
    ck_assert(!r.trunc);
    /* The receiver sees exactly one gap in the sequence: 3 then 5. */
    size_t gaps = 0;
    for (size_t i = 1; i < r.n; i++) {
        if (r.seq[i] != r.seq[i - 1] + 1) {
            gaps++;
            ck_assert_uint_eq(r.seq[i - 1], 3);
            ck_assert_uint_eq(r.seq[i], 5);
        }
    }
    ck_assert_uint_eq(gaps, 1);
    ck_assert_uint_eq(len, mk_buf_len(&S.b) - frame_n(&S, 3));
    ck_assert_mem_eq(out, mk_buf_peek(&S.b), S.off[3]);
}
END_TEST

START_TEST(test_s8_2_link_duplicate_repeats_one_frame)
{
    static uint8_t out[OUTCAP];
    size_t len;
    rx r;
    mk_lf_fault f = prob_fault(MK_LF_K_DUPLICATE, 1, 1);
    one_frame_under(&f, 7, out, &len, &r);
    ck_assert_uint_eq(r.n, NFR + 1);
    ck_assert_uint_eq(r.nbad, 0);
    /* 1 2 3 4 4 5 ...: the second copy is the whole frame, byte for byte. */
    const uint64_t want[] = {1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (size_t i = 0; i < r.n; i++)
        ck_assert_uint_eq(r.seq[i], want[i]);
    ck_assert_uint_eq(len, mk_buf_len(&S.b) + frame_n(&S, 3));
    ck_assert_mem_eq(out + S.off[4], frame_p(&S, 3), frame_n(&S, 3));
    ck_assert_mem_eq(out + S.off[4] + frame_n(&S, 3), frame_p(&S, 4),
                     mk_buf_len(&S.b) - S.off[4]);
}
END_TEST

START_TEST(test_s8_2_link_reorder_within_window)
{
    static uint8_t out[OUTCAP];
    for (uint64_t w = 2; w <= 4; w++) {
        mk_lf *lf = mk_lf_new(100 + w);
        mk_lf_fault f = fault(MK_LF_K_REORDER);
        f.window = w;
        set_ok(lf, f);
        push_frames(lf, &S, 0, NFR, 0); /* NFR is a multiple of 2, 3 and 4 */
        size_t len = 0;
        pull_all(lf, 0, out, &len);
        ck_assert_uint_eq(len, mk_buf_len(&S.b));
        rx r;
        decode_all(out, len, &r);
        ck_assert_uint_eq(r.n, NFR);
        /* Each window holds exactly its own frames, and in another order. */
        for (size_t base = 0; base < NFR; base += w) {
            uint64_t seen = 0;
            int moved = 0;
            for (size_t i = base; i < base + w; i++) {
                ck_assert_uint_gt(r.seq[i], base);
                ck_assert_uint_le(r.seq[i], base + w);
                seen |= 1ull << r.seq[i];
                moved |= r.seq[i] != i + 1;
            }
            ck_assert_uint_eq(__builtin_popcountll(seen), w);
            ck_assert(moved);
        }
        mk_lf_stats st;
        mk_lf_stats_get(lf, &st);
        ck_assert_uint_eq(st.windows_reordered, NFR / w);
        mk_lf_free(lf);
    }
}
END_TEST

/* A window that does not fill is released after a short hold, so the last
 * frames before a quiet period still arrive. */
START_TEST(test_s8_2_link_reorder_partial_window_released)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(3);
    mk_lf_fault f = fault(MK_LF_K_REORDER);
    f.window = 5;
    set_ok(lf, f);
    push_frames(lf, &S, 0, 3, 10);
    size_t len = 0;
    ck_assert_uint_eq(pull_all(lf, 10, out, &len), 0);
    uint64_t t = mk_lf_next_event(lf);
    ck_assert_uint_gt(t, 10);
    ck_assert_uint_lt(t, UINT64_MAX);
    ck_assert_uint_eq(pull_all(lf, t - 1, out, &len), 0);
    pull_all(lf, t, out, &len);
    ck_assert_uint_eq(len, S.off[3]);
    rx r;
    decode_all(out, len, &r);
    ck_assert_uint_eq(r.n, 3);
    ck_assert(r.seq[0] != 1 || r.seq[1] != 2);
    mk_lf_free(lf);
}
END_TEST

START_TEST(test_s8_2_link_corrupt_fails_one_checksum)
{
    static uint8_t out[OUTCAP];
    for (uint64_t seed = 1; seed <= 50; seed++) {
        size_t len;
        rx r;
        mk_lf_fault f = prob_fault(MK_LF_K_CORRUPT, 1, 1);
        one_frame_under(&f, seed, out, &len, &r);
        ck_assert_uint_eq(len, mk_buf_len(&S.b));
        ck_assert_uint_eq(r.nframes, NFR);
        ck_assert_uint_eq(r.nbad, 1);
        ck_assert_int_eq(r.bad[3], 1);
        ck_assert_uint_eq(r.n, NFR - 1);
        /* Exactly one bit differs, and it is inside frame 4. */
        int bits = 0;
        for (size_t i = 0; i < len; i++) {
            uint8_t x = out[i] ^ mk_buf_peek(&S.b)[i];
            if (x) {
                ck_assert_uint_ge(i, S.off[3] + MK_HDR_LEN);
                ck_assert_uint_lt(i, S.off[4]);
            }
            bits += __builtin_popcount(x);
        }
        ck_assert_int_eq(bits, 1);
    }
}
END_TEST

START_TEST(test_s8_2_link_truncate_cuts_then_resets)
{
    static uint8_t out[OUTCAP];
    for (uint64_t seed = 1; seed <= 20; seed++) {
        mk_lf *lf = mk_lf_new(seed);
        push_frames(lf, &S, 0, 3, 0);
        set_ok(lf, fault(MK_LF_K_TRUNCATE));
        push_frames(lf, &S, 3, NFR, 0);
        size_t len = 0;
        pull_all(lf, 0, out, &len);
        /* Frames 1-3 whole, then a strict prefix of frame 4, then nothing. */
        ck_assert_uint_gt(len, S.off[3]);
        ck_assert_uint_lt(len, S.off[4]);
        ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
        rx r;
        decode_all(out, len, &r);
        ck_assert_uint_eq(r.n, 3);
        ck_assert(r.trunc);
        ck_assert_int_eq(mk_lf_state(lf), MK_LF_RESET);
        ck_assert_uint_eq(mk_lf_next_event(lf), UINT64_MAX);
        ck_assert_uint_eq(mk_lf_in_flight(lf), 0);
        /* The broken connection takes no more bytes. */
        push_frames(lf, &S, 0, 1, 1);
        ck_assert_uint_eq(mk_lf_pull(lf, 1, out, OUTCAP), 0);
        mk_lf_stats st;
        mk_lf_stats_get(lf, &st);
        ck_assert_uint_eq(st.truncated, 1);
        ck_assert_uint_eq(st.resets, 1);
        ck_assert_uint_eq(st.bytes_out + st.bytes_lost, st.bytes_in);
        /* A reconnect gives a clean link again: truncate was one-shot. */
        mk_lf_reconnect(lf, 2);
        ck_assert_int_eq(mk_lf_state(lf), MK_LF_OK);
        push_frames(lf, &S, 0, NFR, 2);
        len = 0;
        pull_all(lf, 2, out, &len);
        ck_assert_uint_eq(len, mk_buf_len(&S.b));
        ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
        mk_lf_free(lf);
    }
}
END_TEST

START_TEST(test_s8_2_link_partition_frames)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(1);
    push_frames(lf, &S, 0, 2, 0);
    mk_lf_fault f = fault(MK_LF_K_PARTITION);
    f.frames = 3;
    set_ok(lf, f);
    push_frames(lf, &S, 2, NFR, 0);
    size_t len = 0;
    pull_all(lf, 0, out, &len);
    rx r;
    decode_all(out, len, &r);
    ck_assert_uint_eq(r.n, NFR - 3);
    const uint64_t want[] = {1, 2, 6, 7, 8, 9, 10, 11, 12};
    for (size_t i = 0; i < r.n; i++)
        ck_assert_uint_eq(r.seq[i], want[i]);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_OK);
    mk_lf_stats st;
    mk_lf_stats_get(lf, &st);
    ck_assert_uint_eq(st.partitioned, 3);
    mk_lf_free(lf);
}
END_TEST

START_TEST(test_s8_2_link_partition_ms)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(1);
    ck_assert_uint_eq(mk_lf_pull(lf, 10 * MS, out, OUTCAP), 0); /* the clock is at 10 ms */
    mk_lf_fault f = fault(MK_LF_K_PARTITION);
    f.ms = 5;
    set_ok(lf, f);
    /* Frames sent at 10, 12 and 14.999 ms are lost; at 15 ms the link is back. */
    push_frames(lf, &S, 0, 1, 10 * MS);
    push_frames(lf, &S, 1, 2, 12 * MS);
    push_frames(lf, &S, 2, 3, 15 * MS - 1);
    push_frames(lf, &S, 3, 5, 15 * MS);
    size_t len = 0;
    pull_all(lf, 15 * MS, out, &len);
    rx r;
    decode_all(out, len, &r);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_uint_eq(r.seq[0], 4);
    ck_assert_uint_eq(r.seq[1], 5);
    mk_lf_free(lf);
}
END_TEST

/* ---- byte-level faults --------------------------------------------------- */

START_TEST(test_s8_2_link_slicer_at_most_n_bytes)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(1);
    mk_lf_fault f = fault(MK_LF_K_SLICER);
    f.bytes = 7;
    set_ok(lf, f);
    push_frames(lf, &S, 0, NFR, 0);
    size_t len = 0, n, pulls = 0;
    while ((n = mk_lf_pull(lf, 0, out + len, OUTCAP - len)) > 0) {
        ck_assert_uint_le(n, 7);
        len += n;
        pulls++;
    }
    ck_assert_uint_eq(len, mk_buf_len(&S.b));
    ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
    ck_assert_uint_eq(pulls, (len + 6) / 7); /* full slices but the last */
    mk_lf_free(lf);
}
END_TEST

START_TEST(test_s8_2_link_bandwidth_rate)
{
    static uint8_t out[OUTCAP];
    /* kbps=1 is 1000 bytes per second: one byte per virtual millisecond;
     * kbps=8 is eight. */
    for (uint64_t kbps = 1; kbps <= 8; kbps *= 8) {
        mk_lf *lf = mk_lf_new(1);
        mk_lf_fault f = fault(MK_LF_K_BANDWIDTH);
        f.kbps = kbps;
        set_ok(lf, f);
        push_frames(lf, &S, 0, 8, 0);
        size_t total = S.off[8], len = 0;
        ck_assert_uint_eq(pull_all(lf, 0, out, &len), 0);
        ck_assert_uint_eq(mk_lf_next_event(lf), (MS + kbps - 1) / kbps);
        ck_assert_uint_eq(pull_all(lf, 10 * MS, out, &len), 10 * kbps);
        ck_assert_uint_eq(mk_lf_next_event(lf), 10 * MS + (MS + kbps - 1) / kbps);
        ck_assert_uint_eq(pull_all(lf, 20 * MS - 1, out, &len), 10 * kbps - 1);
        ck_assert_uint_eq(pull_all(lf, 20 * MS, out, &len), 1);
        /* The rest arrives exactly when the rate allows it, not before. */
        uint64_t done = total * MS / kbps;
        pull_all(lf, done - 1, out, &len);
        ck_assert_uint_eq(len, total - 1);
        pull_all(lf, done, out, &len);
        ck_assert_uint_eq(len, total);
        ck_assert_mem_eq(out, mk_buf_peek(&S.b), total);
        /* An idle link earns no credit: a frame sent later starts afresh. */
        push_frames(lf, &S, 8, 9, 2000 * MS);
        ck_assert_uint_eq(pull_all(lf, 2003 * MS, out, &len), 3 * kbps);
        mk_lf_free(lf);
    }
}
END_TEST

START_TEST(test_s8_2_link_latency_delays_ms)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(1);
    mk_lf_fault f = fault(MK_LF_K_LATENCY);
    f.ms = 20;
    set_ok(lf, f);
    push_frames(lf, &S, 0, 1, 1 * MS);
    push_frames(lf, &S, 1, 2, 2 * MS);
    size_t len = 0;
    ck_assert_uint_eq(mk_lf_next_event(lf), 21 * MS);
    ck_assert_uint_eq(pull_all(lf, 21 * MS - 1, out, &len), 0);
    ck_assert_uint_eq(pull_all(lf, 21 * MS, out, &len), frame_n(&S, 0));
    ck_assert_uint_eq(mk_lf_next_event(lf), 22 * MS);
    ck_assert_uint_eq(pull_all(lf, 22 * MS, out, &len), frame_n(&S, 1));
    mk_lf_free(lf);

    /* With jitter every frame arrives within ms +- jitter of its sending,
     * the order is kept, and the delays do vary. */
    lf = mk_lf_new(9);
    f.ms = 20;
    f.jitter = 5;
    set_ok(lf, f);
    uint64_t prev = 0, lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < NFR; i++) {
        uint64_t t = (uint64_t)i * 100 * MS; /* far apart: no FIFO clamping */
        push_frames(lf, &S, i, i + 1, t);
        uint64_t at = mk_lf_next_event(lf);
        ck_assert_uint_ge(at, t + 15 * MS);
        ck_assert_uint_le(at, t + 25 * MS);
        ck_assert_uint_ge(at, prev);
        len = 0;
        ck_assert_uint_eq(pull_all(lf, at - 1, out, &len), 0);
        ck_assert_uint_eq(pull_all(lf, at, out, &len), frame_n(&S, i));
        prev = at;
        lo = at - t < lo ? at - t : lo;
        hi = at - t > hi ? at - t : hi;
    }
    ck_assert_uint_lt(lo, hi);
    mk_lf_free(lf);

    /* Frames sent close together under jitter still arrive in order. */
    lf = mk_lf_new(11);
    set_ok(lf, f);
    for (size_t i = 0; i < NFR; i++)
        push_frames(lf, &S, i, i + 1, (uint64_t)i * 1000);
    len = 0;
    for (uint64_t t = 0; t <= 40 * MS; t += MS / 4)
        pull_all(lf, t, out, &len);
    ck_assert_uint_eq(len, mk_buf_len(&S.b));
    ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
    mk_lf_free(lf);
}
END_TEST

START_TEST(test_s8_2_link_limit_data_resets)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(1);
    mk_lf_fault f = fault(MK_LF_K_LIMIT_DATA);
    f.bytes = 100;
    set_ok(lf, f);
    push_frames(lf, &S, 0, NFR, 0);
    size_t len = 0;
    ck_assert_uint_eq(pull_all(lf, 0, out, &len), 100);
    ck_assert_mem_eq(out, mk_buf_peek(&S.b), 100);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_RESET);
    /* Per connection: after a reconnect another 100 bytes pass. */
    mk_lf_reconnect(lf, 1);
    push_frames(lf, &S, 0, NFR, 1);
    len = 0;
    ck_assert_uint_eq(pull_all(lf, 1, out, &len), 100);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_RESET);
    mk_lf_free(lf);
}
END_TEST

START_TEST(test_s8_2_link_reset_peer)
{
    static uint8_t out[OUTCAP];
    /* At once. */
    mk_lf *lf = mk_lf_new(1);
    push_frames(lf, &S, 0, 2, 0);
    set_ok(lf, fault(MK_LF_K_RESET_PEER));
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_RESET);
    ck_assert_uint_eq(mk_lf_pull(lf, 0, out, OUTCAP), 0);
    ck_assert_uint_eq(mk_lf_in_flight(lf), 0);
    mk_lf_reconnect(lf, 1);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_OK);
    mk_lf_free(lf);

    /* After 50 more bytes, once: the next connection is not reset. */
    lf = mk_lf_new(1);
    push_frames(lf, &S, 0, 1, 0);
    size_t len = 0;
    pull_all(lf, 0, out, &len);
    mk_lf_fault f = fault(MK_LF_K_RESET_PEER);
    f.bytes = 50;
    set_ok(lf, f);
    push_frames(lf, &S, 1, NFR, 0);
    ck_assert_uint_eq(pull_all(lf, 0, out, &len), 50);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_RESET);
    ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
    mk_lf_reconnect(lf, 1);
    push_frames(lf, &S, 0, NFR, 1);
    len = 0;
    ck_assert_uint_eq(pull_all(lf, 1, out, &len), mk_buf_len(&S.b));
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_OK);
    mk_lf_free(lf);
}
END_TEST

START_TEST(test_s8_2_link_timeout)
{
    static uint8_t out[OUTCAP];
    /* ms=0: a black hole that never closes. */
    mk_lf *lf = mk_lf_new(1);
    set_ok(lf, fault(MK_LF_K_TIMEOUT));
    push_frames(lf, &S, 0, NFR, 0);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_TIMEOUT);
    ck_assert_uint_eq(mk_lf_pull(lf, 1000000 * MS, out, OUTCAP), 0);
    ck_assert_uint_eq(mk_lf_next_event(lf), UINT64_MAX);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_TIMEOUT);
    mk_lf_free(lf);

    /* ms=10: bytes in flight stop, and the connection closes at 10 ms. */
    lf = mk_lf_new(1);
    push_frames(lf, &S, 0, 2, 0);
    mk_lf_fault f = fault(MK_LF_K_TIMEOUT);
    f.ms = 10;
    set_ok(lf, f);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_TIMEOUT);
    ck_assert_uint_eq(mk_lf_next_event(lf), 10 * MS);
    ck_assert_uint_eq(mk_lf_pull(lf, 10 * MS - 1, out, OUTCAP), 0);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_TIMEOUT);
    ck_assert_uint_eq(mk_lf_pull(lf, 10 * MS, out, OUTCAP), 0);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_RESET);
    /* Toxiproxy's timeout holds every connection until it is removed. */
    mk_lf_reconnect(lf, 11 * MS);
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_TIMEOUT);
    ck_assert_uint_eq(mk_lf_next_event(lf), 21 * MS);
    set_ok(lf, fault(MK_LF_K_CLEAR));
    ck_assert_int_eq(mk_lf_state(lf), MK_LF_OK);
    mk_lf_free(lf);
}
END_TEST

START_TEST(test_s8_2_link_clear_restores_clean_link)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(5);
    mk_lf_fault fs[] = {prob_fault(MK_LF_K_DROP, 1, 2), prob_fault(MK_LF_K_DUPLICATE, 1, 2),
                        prob_fault(MK_LF_K_CORRUPT, 1, 2), fault(MK_LF_K_REORDER),
                        fault(MK_LF_K_SLICER), fault(MK_LF_K_LATENCY), fault(MK_LF_K_BANDWIDTH)};
    fs[3].window = 3;
    fs[4].bytes = 3;
    fs[5].ms = 7;
    fs[6].kbps = 1;
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        set_ok(lf, fs[i]);
    push_frames(lf, &S, 0, 4, 0);
    set_ok(lf, fault(MK_LF_K_CLEAR));
    size_t len = 0;
    pull_all(lf, 1000000 * MS, out, &len); /* drain what the faults left */
    len = 0;
    push_frames(lf, &S, 0, NFR, 1000000 * MS);
    pull_all(lf, 1000000 * MS, out, &len);
    ck_assert_uint_eq(len, mk_buf_len(&S.b));
    ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
    mk_lf_free(lf);
}
END_TEST

/* Bytes that do not start a well-formed header pass through untouched,
 * even with every frame fault firing always. */
START_TEST(test_s8_2_link_plain_bytes_pass)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(1);
    set_ok(lf, prob_fault(MK_LF_K_DROP, 1, 1));
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 7 + 1);
    memcpy(junk + 100, "MKFR\x02", 5); /* magic with a wrong version */
    ck_assert_int_eq(mk_lf_push(lf, junk, sizeof junk, 0), 0);
    size_t len = 0;
    pull_all(lf, 0, out, &len);
    ck_assert_uint_eq(len, sizeof junk);
    ck_assert_mem_eq(out, junk, len);
    /* A frame after plain bytes is found again and dropped. */
    push_frames(lf, &S, 0, 1, 0);
    ck_assert_uint_eq(pull_all(lf, 0, out, &len), 0);
    mk_lf_stats st;
    mk_lf_stats_get(lf, &st);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.frames_in, 1);
    mk_lf_free(lf);
}
END_TEST

/* A frame pushed one byte at a time is still one frame to the faults. */
START_TEST(test_s8_2_link_frames_across_pushes)
{
    static uint8_t out[OUTCAP];
    size_t len = 0;
    mk_lf *lf = mk_lf_new(1);
    set_ok(lf, prob_fault(MK_LF_K_DUPLICATE, 1, 1));
    const uint8_t *p = mk_buf_peek(&S.b);
    for (size_t i = 0; i < S.off[3]; i++) {
        ck_assert_int_eq(mk_lf_push(lf, p + i, 1, 0), 0);
        pull_all(lf, 0, out, &len);
    }
    rx r;
    decode_all(out, len, &r);
    const uint64_t want[] = {1, 1, 2, 2, 3, 3};
    ck_assert_uint_eq(r.n, 6);
    for (size_t i = 0; i < r.n; i++)
        ck_assert_uint_eq(r.seq[i], want[i]);
    mk_lf_free(lf);
}
END_TEST

/* ---- probabilities, determinism, arguments ------------------------------- */

START_TEST(test_s8_2_link_prob_never_and_always)
{
    static uint8_t out[OUTCAP];
    const int kinds[] = {MK_LF_K_DROP, MK_LF_K_DUPLICATE, MK_LF_K_CORRUPT};
    for (size_t k = 0; k < 3; k++) {
        for (uint64_t q = 1; q <= 1000; q *= 10) {
            for (int always = 0; always <= 1; always++) {
                mk_lf *lf = mk_lf_new(q * 31 + k);
                set_ok(lf, prob_fault(kinds[k], always ? q : 0, q));
                push_frames(lf, &S, 0, NFR, 0);
                size_t len = 0;
                pull_all(lf, 0, out, &len);
                rx r;
                decode_all(out, len, &r);
                mk_lf_stats st;
                mk_lf_stats_get(lf, &st);
                uint64_t fired = kinds[k] == MK_LF_K_DROP        ? st.dropped
                                 : kinds[k] == MK_LF_K_DUPLICATE ? st.duplicated
                                                                 : st.corrupted;
                ck_assert_uint_eq(fired, always ? NFR : 0);
                if (!always) {
                    ck_assert_uint_eq(len, mk_buf_len(&S.b));
                    ck_assert_mem_eq(out, mk_buf_peek(&S.b), len);
                } else if (kinds[k] == MK_LF_K_DROP) {
                    ck_assert_uint_eq(len, 0);
                } else if (kinds[k] == MK_LF_K_DUPLICATE) {
                    ck_assert_uint_eq(r.n, 2 * NFR);
                } else {
                    ck_assert_uint_eq(r.nbad, NFR);
                }
                mk_lf_free(lf);
            }
        }
    }
}
END_TEST

/* Runs one mixed-fault session with a fixed push/pull schedule and returns
 * the hash of every byte delivered. */
static uint64_t mixed_run(uint64_t seed)
{
    static uint8_t out[OUTCAP];
    mk_lf *lf = mk_lf_new(seed);
    mk_lf_fault fs[] = {prob_fault(MK_LF_K_DROP, 1, 5), prob_fault(MK_LF_K_DUPLICATE, 1, 4),
                        prob_fault(MK_LF_K_CORRUPT, 1, 3), fault(MK_LF_K_REORDER),
                        fault(MK_LF_K_SLICER), fault(MK_LF_K_LATENCY), fault(MK_LF_K_BANDWIDTH)};
    fs[3].window = 3;
    fs[4].bytes = 13;
    fs[5].ms = 3;
    fs[5].jitter = 2;
    fs[6].kbps = 50;
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        set_ok(lf, fs[i]);
    XXH64_state_t *h = XXH64_createState();
    XXH64_reset(h, 0);
    uint64_t t = 0;
    for (int round = 0; round < 20; round++) {
        push_frames(lf, &S, (size_t)round % NFR, (size_t)round % NFR + 1, t);
        for (int k = 0; k < 5; k++) {
            size_t n = mk_lf_pull(lf, t, out, OUTCAP);
            XXH64_update(h, out, n);
            XXH64_update(h, &t, sizeof t); /* when, as well as what */
            uint64_t e = mk_lf_next_event(lf);
            t = e != UINT64_MAX && e > t ? e : t + MS / 2;
        }
    }
    for (;;) {
        uint64_t e = mk_lf_next_event(lf);
        if (e == UINT64_MAX)
            break;
        t = e > t ? e : t;
        size_t n = mk_lf_pull(lf, t, out, OUTCAP);
        XXH64_update(h, out, n);
        XXH64_update(h, &t, sizeof t);
    }
    ck_assert_uint_eq(mk_lf_in_flight(lf), 0);
    uint64_t d = XXH64_digest(h);
    XXH64_freeState(h);
    mk_lf_free(lf);
    return d;
}

START_TEST(test_s8_2_link_deterministic)
{
    for (uint64_t seed = 1; seed <= 10; seed++)
        ck_assert_uint_eq(mixed_run(seed), mixed_run(seed));
    ck_assert_uint_ne(mixed_run(1), mixed_run(2));
}
END_TEST

START_TEST(test_s8_2_link_invalid_arguments)
{
    mk_lf *lf = mk_lf_new(1);
    mk_lf_fault bad[] = {fault(MK_LF_K_BANDWIDTH), fault(MK_LF_K_SLICER), fault(MK_LF_K_REORDER),
                         prob_fault(MK_LF_K_DROP, 1, 0), prob_fault(MK_LF_K_CORRUPT, 3, 2),
                         fault(MK_LF_K_PARTITION), fault(MK_LF_K_PARTITION), fault(-1),
                         fault(MK_LF_K_NKINDS)};
    bad[2].window = 1;
    bad[6].frames = 2;
    bad[6].ms = 2;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(mk_lf_set(lf, &bad[i]), MK_EINVAL);
    /* Nothing was set: the link is clean. */
    static uint8_t out[OUTCAP];
    push_frames(lf, &S, 0, NFR, 0);
    size_t len = 0;
    pull_all(lf, 0, out, &len);
    ck_assert_uint_eq(len, mk_buf_len(&S.b));
    mk_lf_free(lf);
    mk_lf_free(NULL);
}
END_TEST

static Suite *linkfault_suite(void)
{
    Suite *s = suite_create("linkfault");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_s8_2_link_clean_passthrough);
    tcase_add_test(tc, test_s8_2_link_drop_removes_one_frame);
    tcase_add_test(tc, test_s8_2_link_duplicate_repeats_one_frame);
    tcase_add_test(tc, test_s8_2_link_reorder_within_window);
    tcase_add_test(tc, test_s8_2_link_reorder_partial_window_released);
    tcase_add_test(tc, test_s8_2_link_corrupt_fails_one_checksum);
    tcase_add_test(tc, test_s8_2_link_truncate_cuts_then_resets);
    tcase_add_test(tc, test_s8_2_link_partition_frames);
    tcase_add_test(tc, test_s8_2_link_partition_ms);
    tcase_add_test(tc, test_s8_2_link_slicer_at_most_n_bytes);
    tcase_add_test(tc, test_s8_2_link_bandwidth_rate);
    tcase_add_test(tc, test_s8_2_link_latency_delays_ms);
    tcase_add_test(tc, test_s8_2_link_limit_data_resets);
    tcase_add_test(tc, test_s8_2_link_reset_peer);
    tcase_add_test(tc, test_s8_2_link_timeout);
    tcase_add_test(tc, test_s8_2_link_clear_restores_clean_link);
    tcase_add_test(tc, test_s8_2_link_plain_bytes_pass);
    tcase_add_test(tc, test_s8_2_link_frames_across_pushes);
    tcase_add_test(tc, test_s8_2_link_prob_never_and_always);
    tcase_add_test(tc, test_s8_2_link_deterministic);
    tcase_add_test(tc, test_s8_2_link_invalid_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mk_test_run(linkfault_suite()); }
