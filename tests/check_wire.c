/*
 * check_wire.c - frames and payload codecs (mk_wire.h).
 *
 * Golden vectors: for every frame type the expected bytes are written out
 * by hand below as literal hex, field by field from the layout of SPEC.md
 * section 3.1 (20-byte header: u32 magic "MKFR", u8 version 1, u8 type,
 * u16 flags 0, u32 payload length, u64 seq; then the payload; all
 * little-endian).  The 8-byte trailer is XXH3-64 of header+payload,
 * computed here with <xxhash.h> over those literal bytes - never with the
 * code under test.  The encoder's output must be byte-identical, and the
 * golden bytes must decode back to every field.
 *
 * Then every malformed-frame class of section 3.4 and of each payload
 * decoder.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_buf.h"
#include "mk_err.h"
#include "mk_prng.h"
#include "mk_test.h"
#include "mk_wire.h"

/* ---- helpers ------------------------------------------------------------- */

/* The 512-byte block carried by the CP_DATA golden vector; too long to
 * spell out, so it is this fixed pattern (byte i = 31*i + 7 mod 256). */
static uint8_t pat(size_t i) { return (uint8_t)(31 * i + 7); }

static void put_le(uint8_t *p, uint64_t v, size_t w)
{
    for (size_t i = 0; i < w; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct gv {
    const char *name;
    const char *hex; /* header + payload, literal */
    size_t pattern;  /* bytes of pat() appended to the payload */
    uint8_t type;
    uint64_t seq;
    uint32_t plen;
} gv;

enum {
    GV_HELLO, GV_HELLO_ACK, GV_LOG, GV_LOG_ACK, GV_CP_BEGIN, GV_CP_DATA,
    GV_CP_REF, GV_CP_COMMIT, GV_NAK, GV_CP_ACK, GV_ERROR, GV_COUNT
};

static const gv GV[GV_COUNT] = {
    [GV_HELLO] = {"HELLO",
                  /* magic    ver type flags len      seq */
                  "4d4b4652 01 01 0000 20000000 0807060504030201"
                  /* volume_id 0x1122334455667788 */ "8877665544332211"
                  /* nblocks 65536 */ "0000010000000000"
                  /* block_size 4096 */ "00100000"
                  /* mode semi-sync, 3 reserved */ "02 000000"
                  /* source_id 0xA1A2A3A4A5A6A7A8 */ "a8a7a6a5a4a3a2a1",
                  0, MK_F_HELLO, 0x0102030405060708ull, 32},
    [GV_HELLO_ACK] = {"HELLO_ACK",
                      "4d4b4652 01 81 0000 38000000 0200000000000000"
                      /* volume_id */ "8877665544332211"
                      /* nblocks 65536 */ "0000010000000000"
                      /* block_size 512, 4 reserved */ "00020000 00000000"
                      /* last_cp 7 */ "0700000000000000"
                      /* durable_tid 0x100000002 */ "0200000001000000"
                      /* source_id */ "a8a7a6a5a4a3a2a1"
                      /* last_digest 0x0F1E2D3C4B5A6978 */ "78695a4b3c2d1e0f",
                      0, MK_F_HELLO_ACK, 2, 56},
    [GV_LOG] = {"LOG",
                "4d4b4652 01 02 0000 1d000000 0300000000000000"
                /* tid 42 */ "2a00000000000000"
                /* offset 0x1234 */ "3412000000000000"
                /* length 5, 4 reserved */ "05000000 00000000"
                /* data "hello" */ "68656c6c6f",
                0, MK_F_LOG, 3, 29},
    [GV_LOG_ACK] = {"LOG_ACK",
                    "4d4b4652 01 82 0000 08000000 0400000000000000"
                    /* tid 0x0807060504030201 */ "0102030405060708",
                    0, MK_F_LOG_ACK, 4, 8},
    [GV_CP_BEGIN] = {"CP_BEGIN",
                     "4d4b4652 01 03 0000 18000000 0500000000000000"
                     /* cp 9 */ "0900000000000000"
                     /* nrecords 3 */ "0300000000000000"
                     /* covers_tid 42 */ "2a00000000000000",
                     0, MK_F_CP_BEGIN, 5, 24},
    [GV_CP_DATA] = {"CP_DATA",
                    "4d4b4652 01 04 0000 10020000 0600000000000000"
                    /* cp 9 */ "0900000000000000"
                    /* block 0xDEADBEEF */ "efbeadde00000000",
                    /* then 512 data bytes of pat() */
                    512, MK_F_CP_DATA, 6, 16 + 512},
    [GV_CP_REF] = {"CP_REF",
                   "4d4b4652 01 05 0000 50000000 0700000000000000"
                   /* cp 9 */ "0900000000000000"
                   /* count 2, 4 reserved */ "02000000 00000000"
                   /* [0] block 0x10 */ "1000000000000000"
                   /*     tid 42 */ "2a00000000000000"
                   /*     slot 3, 4 reserved */ "03000000 00000000"
                   /*     hash 0x0123456789ABCDEF */ "efcdab8967452301"
                   /* [1] block 0x11 */ "1100000000000000"
                   /*     tid 43 */ "2b00000000000000"
                   /*     slot 0x01020304, 4 reserved */ "04030201 00000000"
                   /*     hash 0xFEDCBA9876543210 */ "1032547698badcfe",
                   0, MK_F_CP_REF, 7, 80},
    [GV_CP_COMMIT] = {"CP_COMMIT",
                      "4d4b4652 01 06 0000 10000000 0800000000000000"
                      /* cp 9 */ "0900000000000000"
                      /* nrecords 3 */ "0300000000000000",
                      0, MK_F_CP_COMMIT, 8, 16},
    [GV_NAK] = {"NAK",
                "4d4b4652 01 83 0000 18000000 0900000000000000"
                /* cp 9 */ "0900000000000000"
                /* block 0x10 */ "1000000000000000"
                /* reason 21 (MK_EREFHASH), 4 reserved */ "15000000 00000000",
                0, MK_F_NAK, 9, 24},
    [GV_CP_ACK] = {"CP_ACK",
                   "4d4b4652 01 84 0000 28000000 0a00000000000000"
                   /* cp 9 */ "0900000000000000"
                   /* napplied 3 */ "0300000000000000"
                   /* digest 0x0F1E2D3C4B5A6978 */ "78695a4b3c2d1e0f"
                   /* root low64 0x1122334455667788 */ "8877665544332211"
                   /* root high64 0x99AABBCCDDEEFF00 */ "00ffeeddccbbaa99",
                   0, MK_F_CP_ACK, 10, 40},
    [GV_ERROR] = {"ERROR",
                  "4d4b4652 01 7f 0000 0b000000 0b00000000000000"
                  /* code 9 (MK_ECHECKSUM) */ "09000000"
                  /* msglen 3 */ "03000000"
                  /* "bad" */ "626164",
                  0, MK_F_ERROR, 11, 11},
};

#define GV_CAP 1024

/* Builds a golden frame: the literal hex, the pattern bytes if any, then
 * the trailer - XXH3-64 of everything before it, little-endian. */
static size_t gv_build(const gv *v, uint8_t *out, size_t cap)
{
    size_t n = mk_test_unhex(v->hex, out, cap);
    ck_assert_uint_le(n + v->pattern + 8, cap);
    for (size_t i = 0; i < v->pattern; i++)
        out[n++] = pat(i);
    ck_assert_uint_eq(n, MK_HDR_LEN + v->plen);
    put_le(out + n, XXH3_64bits(out, n), 8);
    return n + 8;
}

static void assert_encoded(const mk_buf *b, const uint8_t *want, size_t n)
{
    ck_assert_uint_eq(mk_buf_len(b), n);
    ck_assert_mem_eq(mk_buf_peek(b), want, n);
}

/* Decodes a golden frame and checks every header field. */
static void decode_frame_ok(const gv *v, const uint8_t *g, size_t n, mk_frame *f)
{
    size_t used = 0;
    ck_assert_int_eq(mk_frame_decode(g, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, f, &used), 0);
    ck_assert_uint_eq(used, n);
    ck_assert_uint_eq(f->type, v->type);
    ck_assert_uint_eq(f->flags, 0);
    ck_assert_uint_eq(f->len, v->plen);
    ck_assert_uint_eq(f->seq, v->seq);
    ck_assert_ptr_eq(f->payload, g + MK_HDR_LEN);
}

/* An mk_frame whose payload lives in an exact-size heap block, so that a
 * decoder reading past f->len is caught by valgrind or ASan. */
static mk_frame heap_frame(uint8_t type, const void *payload, size_t n)
{
    mk_frame f;
    memset(&f, 0, sizeof f);
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    if (n)
        memcpy(p, payload, n);
    f.type = type;
    f.len = (uint32_t)n;
    f.payload = p;
    return f;
}

static void heap_frame_free(mk_frame *f) { free((void *)f->payload); }

/* The payload of a golden vector, copied into a writable scratch buffer. */
static size_t gv_payload(int k, uint8_t *out, size_t cap)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[k], g, sizeof g);
    ck_assert_uint_le(n - MK_FRAME_OVERHEAD, cap);
    memcpy(out, g + MK_HDR_LEN, n - MK_FRAME_OVERHEAD);
    return n - MK_FRAME_OVERHEAD;
}

/* Runs the decoder for type k over payload p[0..n); returns its result. */
static int decode_any(int k, const uint8_t *p, size_t n)
{
    mk_frame f = heap_frame(GV[k].type, p, n);
    int rc = -1000;
    switch (k) {
    case GV_HELLO: {
        mk_hello h;
        rc = mk_hello_decode(&f, &h);
        break;
    }
    case GV_HELLO_ACK: {
        mk_hello_ack h;
        rc = mk_hello_ack_decode(&f, &h);
        break;
    }
    case GV_LOG: {
        mk_log l;
        rc = mk_log_decode(&f, &l);
        break;
    }
    case GV_LOG_ACK: {
        uint64_t tid;
        rc = mk_log_ack_decode(&f, &tid);
        break;
    }
    case GV_CP_BEGIN: {
        mk_cp_begin b;
        rc = mk_cp_begin_decode(&f, &b);
        break;
    }
    case GV_CP_DATA: {
        mk_cp_data d;
        rc = mk_cp_data_decode(&f, 512, &d);
        break;
    }
    case GV_CP_REF: {
        uint64_t cp;
        uint32_t count;
        rc = mk_cp_ref_decode(&f, &cp, &count);
        break;
    }
    case GV_CP_COMMIT: {
        mk_cp_commit c;
        rc = mk_cp_commit_decode(&f, &c);
        break;
    }
    case GV_NAK: {
        mk_nak nk;
        rc = mk_nak_decode(&f, &nk);
        break;
    }
    case GV_CP_ACK: {
        mk_cp_ack a;
        rc = mk_cp_ack_decode(&f, &a);
        break;
    }
    case GV_ERROR: {
        mk_error_frame e;
        rc = mk_error_decode(&f, &e);
        break;
    }
    }
    heap_frame_free(&f);
    return rc;
}

/* ---- golden vectors, one per frame type ------------------------------------ */

START_TEST(test_s2_1_hello_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_HELLO], g, sizeof g);
    ck_assert_uint_eq(n, 60);
    mk_buf b;
    mk_buf_init(&b);
    mk_hello h = {.volume_id = 0x1122334455667788ull, .nblocks = 65536,
                  .block_size = 4096, .mode = MK_MODE_SEMI,
                  .source_id = 0xA1A2A3A4A5A6A7A8ull};
    ck_assert_int_eq(mk_hello_encode(&b, 0x0102030405060708ull, &h), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_hello d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_HELLO], g, n, &f);
    ck_assert_int_eq(mk_hello_decode(&f, &d), 0);
    ck_assert_uint_eq(d.volume_id, 0x1122334455667788ull);
    ck_assert_uint_eq(d.nblocks, 65536);
    ck_assert_uint_eq(d.block_size, 4096);
    ck_assert_uint_eq(d.mode, MK_MODE_SEMI);
    ck_assert_uint_eq(d.source_id, 0xA1A2A3A4A5A6A7A8ull);
}
END_TEST

START_TEST(test_s2_2_hello_ack_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_HELLO_ACK], g, sizeof g);
    ck_assert_uint_eq(n, 84);
    mk_buf b;
    mk_buf_init(&b);
    mk_hello_ack h = {.volume_id = 0x1122334455667788ull, .nblocks = 65536,
                      .block_size = 512, .last_cp = 7,
                      .durable_tid = 0x100000002ull,
                      .source_id = 0xA1A2A3A4A5A6A7A8ull,
                      .last_digest = 0x0F1E2D3C4B5A6978ull};
    ck_assert_int_eq(mk_hello_ack_encode(&b, 2, &h), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_hello_ack d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_HELLO_ACK], g, n, &f);
    ck_assert_int_eq(mk_hello_ack_decode(&f, &d), 0);
    ck_assert_uint_eq(d.volume_id, 0x1122334455667788ull);
    ck_assert_uint_eq(d.nblocks, 65536);
    ck_assert_uint_eq(d.block_size, 512);
    ck_assert_uint_eq(d.last_cp, 7);
    ck_assert_uint_eq(d.durable_tid, 0x100000002ull);
    ck_assert_uint_eq(d.source_id, 0xA1A2A3A4A5A6A7A8ull);
    ck_assert_uint_eq(d.last_digest, 0x0F1E2D3C4B5A6978ull);
}
END_TEST

START_TEST(test_s4_3_log_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_LOG], g, sizeof g);
    ck_assert_uint_eq(n, 57);
    mk_buf b;
    mk_buf_init(&b);
    mk_log l = {.tid = 42, .offset = 0x1234, .length = 5,
                .data = (const uint8_t *)"hello"};
    ck_assert_int_eq(mk_log_encode(&b, 3, &l), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_log d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_LOG], g, n, &f);
    ck_assert_int_eq(mk_log_decode(&f, &d), 0);
    ck_assert_uint_eq(d.tid, 42);
    ck_assert_uint_eq(d.offset, 0x1234);
    ck_assert_uint_eq(d.length, 5);
    ck_assert_ptr_eq(d.data, g + MK_HDR_LEN + MK_LOG_HDR_LEN); /* borrowed */
    ck_assert_mem_eq(d.data, "hello", 5);
}
END_TEST

START_TEST(test_s4_4_log_ack_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_LOG_ACK], g, sizeof g);
    ck_assert_uint_eq(n, 36);
    mk_buf b;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_log_ack_encode(&b, 4, 0x0807060504030201ull), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    uint64_t tid = 0;
    decode_frame_ok(&GV[GV_LOG_ACK], g, n, &f);
    ck_assert_int_eq(mk_log_ack_decode(&f, &tid), 0);
    ck_assert_uint_eq(tid, 0x0807060504030201ull);
}
END_TEST

START_TEST(test_s7_1_cp_begin_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_CP_BEGIN], g, sizeof g);
    ck_assert_uint_eq(n, 52);
    mk_buf b;
    mk_buf_init(&b);
    mk_cp_begin c = {.cp = 9, .nrecords = 3, .covers_tid = 42};
    ck_assert_int_eq(mk_cp_begin_encode(&b, 5, &c), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_cp_begin d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_CP_BEGIN], g, n, &f);
    ck_assert_int_eq(mk_cp_begin_decode(&f, &d), 0);
    ck_assert_uint_eq(d.cp, 9);
    ck_assert_uint_eq(d.nrecords, 3);
    ck_assert_uint_eq(d.covers_tid, 42);
}
END_TEST

START_TEST(test_s7_2_cp_data_golden)
{
    uint8_t g[GV_CAP], blk[512];
    size_t n = gv_build(&GV[GV_CP_DATA], g, sizeof g);
    ck_assert_uint_eq(n, 556);
    for (size_t i = 0; i < sizeof blk; i++)
        blk[i] = pat(i);
    mk_buf b;
    mk_buf_init(&b);
    mk_cp_data c = {.cp = 9, .block = 0xDEADBEEFull, .data = blk};
    ck_assert_int_eq(mk_cp_data_encode(&b, 6, &c, 512), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_cp_data d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_CP_DATA], g, n, &f);
    ck_assert_int_eq(mk_cp_data_decode(&f, 512, &d), 0);
    ck_assert_uint_eq(d.cp, 9);
    ck_assert_uint_eq(d.block, 0xDEADBEEFull);
    ck_assert_ptr_eq(d.data, g + MK_HDR_LEN + MK_CP_DATA_HDR_LEN);
    ck_assert_mem_eq(d.data, blk, 512);
}
END_TEST

START_TEST(test_s7_2_cp_ref_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_CP_REF], g, sizeof g);
    ck_assert_uint_eq(n, 108);
    mk_buf b;
    mk_buf_init(&b);
    mk_ref refs[2] = {
        {.block = 0x10, .tid = 42, .slot = 3, .hash = 0x0123456789ABCDEFull},
        {.block = 0x11, .tid = 43, .slot = 0x01020304u, .hash = 0xFEDCBA9876543210ull},
    };
    ck_assert_int_eq(mk_cp_ref_encode(&b, 7, 9, refs, 2), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    uint64_t cp = 0;
    uint32_t count = 0;
    decode_frame_ok(&GV[GV_CP_REF], g, n, &f);
    ck_assert_int_eq(mk_cp_ref_decode(&f, &cp, &count), 0);
    ck_assert_uint_eq(cp, 9);
    ck_assert_uint_eq(count, 2);
    for (uint32_t i = 0; i < 2; i++) {
        mk_ref r;
        memset(&r, 0, sizeof r);
        ck_assert_int_eq(mk_ref_at(&f, i, &r), 0);
        ck_assert_uint_eq(r.block, refs[i].block);
        ck_assert_uint_eq(r.tid, refs[i].tid);
        ck_assert_uint_eq(r.slot, refs[i].slot);
        ck_assert_uint_eq(r.hash, refs[i].hash);
    }
    mk_ref r;
    ck_assert_int_eq(mk_ref_at(&f, 2, &r), MK_ETRUNC); /* one past the last */
    ck_assert_int_eq(mk_ref_at(&f, UINT32_MAX, &r), MK_ETRUNC);
}
END_TEST

START_TEST(test_s7_4_cp_commit_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_CP_COMMIT], g, sizeof g);
    ck_assert_uint_eq(n, 44);
    mk_buf b;
    mk_buf_init(&b);
    mk_cp_commit c = {.cp = 9, .nrecords = 3};
    ck_assert_int_eq(mk_cp_commit_encode(&b, 8, &c), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_cp_commit d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_CP_COMMIT], g, n, &f);
    ck_assert_int_eq(mk_cp_commit_decode(&f, &d), 0);
    ck_assert_uint_eq(d.cp, 9);
    ck_assert_uint_eq(d.nrecords, 3);
}
END_TEST

START_TEST(test_s8_1_nak_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_NAK], g, sizeof g);
    ck_assert_uint_eq(n, 52);
    mk_buf b;
    mk_buf_init(&b);
    mk_nak k = {.cp = 9, .block = 0x10, .reason = MK_EREFHASH};
    ck_assert_int_eq(mk_nak_encode(&b, 9, &k), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_nak d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_NAK], g, n, &f);
    ck_assert_int_eq(mk_nak_decode(&f, &d), 0);
    ck_assert_uint_eq(d.cp, 9);
    ck_assert_uint_eq(d.block, 0x10);
    ck_assert_int_eq(d.reason, MK_EREFHASH);
    ck_assert_int_eq(d.reason, -21);
}
END_TEST

START_TEST(test_s7_5_cp_ack_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_CP_ACK], g, sizeof g);
    ck_assert_uint_eq(n, 68);
    mk_buf b;
    mk_buf_init(&b);
    mk_cp_ack a = {.cp = 9, .napplied = 3, .digest = 0x0F1E2D3C4B5A6978ull,
                   .root_lo = 0x1122334455667788ull, .root_hi = 0x99AABBCCDDEEFF00ull};
    ck_assert_int_eq(mk_cp_ack_encode(&b, 10, &a), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_cp_ack d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_CP_ACK], g, n, &f);
    ck_assert_int_eq(mk_cp_ack_decode(&f, &d), 0);
    ck_assert_uint_eq(d.cp, 9);
    ck_assert_uint_eq(d.napplied, 3);
    ck_assert_uint_eq(d.digest, 0x0F1E2D3C4B5A6978ull);
    ck_assert_uint_eq(d.root_lo, 0x1122334455667788ull);
    ck_assert_uint_eq(d.root_hi, 0x99AABBCCDDEEFF00ull);
}
END_TEST

START_TEST(test_s3_6_error_golden)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_ERROR], g, sizeof g);
    ck_assert_uint_eq(n, 39);
    mk_buf b;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_error_encode(&b, 11, MK_ECHECKSUM, "bad"), 0);
    assert_encoded(&b, g, n);
    mk_buf_free(&b);

    mk_frame f;
    mk_error_frame d;
    memset(&d, 0, sizeof d);
    decode_frame_ok(&GV[GV_ERROR], g, n, &f);
    ck_assert_int_eq(mk_error_decode(&f, &d), 0);
    ck_assert_int_eq(d.code, MK_ECHECKSUM);
    ck_assert_uint_eq(d.msglen, 3);
    ck_assert_ptr_eq(d.msg, g + MK_HDR_LEN + 8);
    ck_assert_mem_eq(d.msg, "bad", 3);
}
END_TEST

/* ---- 3.1 header layout ------------------------------------------------------ */

START_TEST(test_s3_1_header_layout)
{
    mk_buf b;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_log_ack_encode(&b, UINT64_MAX, 0), 0);
    const uint8_t *p = mk_buf_peek(&b);
    ck_assert_uint_eq(mk_buf_len(&b), MK_HDR_LEN + 8 + MK_TRAILER_LEN);
    ck_assert_mem_eq(p, "MKFR", 4); /* magic 0x52464B4D little-endian */
    ck_assert_uint_eq(p[4], MK_PROTO_VERSION);
    ck_assert_uint_eq(p[4], 1);
    ck_assert_uint_eq(p[5], MK_F_LOG_ACK);
    ck_assert_uint_eq(p[6], 0);
    ck_assert_uint_eq(p[7], 0);
    ck_assert_mem_eq(p + 8, "\x08\x00\x00\x00", 4);
    ck_assert_mem_eq(p + 12, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    ck_assert_uint_eq(MK_FRAME_MAGIC, 0x52464B4Du);
    ck_assert_uint_eq(MK_HDR_LEN, 20);
    ck_assert_uint_eq(MK_TRAILER_LEN, 8);
    ck_assert_uint_eq(MK_FRAME_OVERHEAD, 28);

    /* seq 0 */
    mk_buf_clear(&b);
    ck_assert_int_eq(mk_log_ack_encode(&b, 0, 1), 0);
    ck_assert_mem_eq(mk_buf_peek(&b) + 12, "\0\0\0\0\0\0\0\0", 8);
    mk_frame f;
    size_t used;
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(f.seq, 0);
    mk_buf_free(&b);
}
END_TEST

/* The generic open/close path: nothing is live before close; the length is
 * patched in; a payload overrun fails in the cursor without eating the
 * trailer; an empty payload is a valid 28-byte frame; any magic/type. */
START_TEST(test_s3_1_frame_open_close)
{
    mk_buf b;
    mk_wcur c;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_frame_open(&b, MK_FRAME_MAGIC, MK_R_TRANSFER, 77, 4, &c), 0);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    ck_assert_int_eq(mk_wcur_u32(&c, 0xCAFEBABEu), 0);
    ck_assert_int_eq(mk_wcur_u8(&c, 1), MK_ELENGTH); /* over max_payload */
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    ck_assert_int_eq(mk_frame_close(&b, &c), 0);
    ck_assert_uint_eq(mk_buf_len(&b), MK_FRAME_OVERHEAD + 4);

    uint8_t want[64];
    size_t n = mk_test_unhex("4d4b4652 01 10 0000 04000000 4d00000000000000 bebafeca",
                             want, sizeof want);
    put_le(want + n, XXH3_64bits(want, n), 8);
    assert_encoded(&b, want, n + 8);

    /* a short payload under a larger max: length is what was written */
    mk_buf_clear(&b);
    ck_assert_int_eq(mk_frame_open(&b, 0x31323334u, 0x42, 1, 100, &c), 0);
    ck_assert_int_eq(mk_wcur_u16(&c, 0xBEEF), 0);
    ck_assert_int_eq(mk_frame_close(&b, &c), 0);
    ck_assert_uint_eq(mk_buf_len(&b), MK_FRAME_OVERHEAD + 2);
    mk_frame f;
    size_t used;
    const uint8_t *p = mk_buf_peek(&b);
    ck_assert_mem_eq(p, "4321", 4);
    ck_assert_int_eq(mk_frame_decode(p, mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), MK_EMAGIC);
    ck_assert_int_eq(mk_frame_decode(p, mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     0x31323334u, &f, &used), 0);
    ck_assert_uint_eq(f.type, 0x42);
    ck_assert_uint_eq(f.len, 2);
    ck_assert_uint_eq(used, 30);

    /* empty payload */
    mk_buf_clear(&b);
    ck_assert_int_eq(mk_frame_open(&b, MK_FRAME_MAGIC, MK_F_HELLO, 5, 0, &c), 0);
    ck_assert_int_eq(mk_wcur_u8(&c, 1), MK_ELENGTH);
    ck_assert_int_eq(mk_frame_close(&b, &c), 0);
    ck_assert_uint_eq(mk_buf_len(&b), MK_FRAME_OVERHEAD);
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(f.len, 0);
    ck_assert_uint_eq(used, MK_FRAME_OVERHEAD);
    mk_hello h;
    ck_assert_int_eq(mk_hello_decode(&f, &h), MK_ELENGTH);
    mk_buf_free(&b);
}
END_TEST

/* Every encoder appends: all golden frames encoded back to back into one
 * queue (which grows and must keep earlier frames intact) equal the
 * concatenated golden bytes, and decode one after another. */
START_TEST(test_s3_1_frames_back_to_back)
{
    static uint8_t all[GV_COUNT * GV_CAP];
    size_t total = 0, lens[GV_COUNT];
    for (int k = 0; k < GV_COUNT; k++) {
        lens[k] = gv_build(&GV[k], all + total, GV_CAP);
        total += lens[k];
    }
    uint8_t blk[512];
    for (size_t i = 0; i < sizeof blk; i++)
        blk[i] = pat(i);
    mk_hello h = {0x1122334455667788ull, 65536, 4096, MK_MODE_SEMI, 0xA1A2A3A4A5A6A7A8ull};
    mk_hello_ack ha = {0x1122334455667788ull, 65536, 512, 7, 0x100000002ull,
                       0xA1A2A3A4A5A6A7A8ull, 0x0F1E2D3C4B5A6978ull};
    mk_log l = {42, 0x1234, 5, (const uint8_t *)"hello"};
    mk_cp_begin cb = {9, 3, 42};
    mk_cp_data cd = {9, 0xDEADBEEFull, blk};
    mk_ref refs[2] = {{0x10, 42, 3, 0x0123456789ABCDEFull},
                      {0x11, 43, 0x01020304u, 0xFEDCBA9876543210ull}};
    mk_cp_commit cc = {9, 3};
    mk_nak nk = {9, 0x10, MK_EREFHASH};
    mk_cp_ack ca = {9, 3, 0x0F1E2D3C4B5A6978ull, 0x1122334455667788ull, 0x99AABBCCDDEEFF00ull};

    mk_buf b;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_hello_encode(&b, 0x0102030405060708ull, &h), 0);
    ck_assert_int_eq(mk_hello_ack_encode(&b, 2, &ha), 0);
    ck_assert_int_eq(mk_log_encode(&b, 3, &l), 0);
    ck_assert_int_eq(mk_log_ack_encode(&b, 4, 0x0807060504030201ull), 0);
    ck_assert_int_eq(mk_cp_begin_encode(&b, 5, &cb), 0);
    ck_assert_int_eq(mk_cp_data_encode(&b, 6, &cd, 512), 0);
    ck_assert_int_eq(mk_cp_ref_encode(&b, 7, 9, refs, 2), 0);
    ck_assert_int_eq(mk_cp_commit_encode(&b, 8, &cc), 0);
    ck_assert_int_eq(mk_nak_encode(&b, 9, &nk), 0);
    ck_assert_int_eq(mk_cp_ack_encode(&b, 10, &ca), 0);
    ck_assert_int_eq(mk_error_encode(&b, 11, MK_ECHECKSUM, "bad"), 0);
    assert_encoded(&b, all, total);

    size_t off = 0;
    for (int k = 0; k < GV_COUNT; k++) {
        mk_frame f;
        size_t used = 0;
        ck_assert_int_eq(mk_frame_decode(all + off, total - off, MK_MAX_PAYLOAD,
                                         MK_FRAME_MAGIC, &f, &used), 0);
        ck_assert_uint_eq(used, lens[k]);
        ck_assert_uint_eq(f.type, GV[k].type);
        ck_assert_uint_eq(f.seq, GV[k].seq);
        off += used;
    }
    ck_assert_uint_eq(off, total);
    mk_buf_free(&b);
}
END_TEST

START_TEST(test_s3_1_type_and_mode_names)
{
    static const struct { int t; const char *n; } names[] = {
        {MK_F_HELLO, "HELLO"}, {MK_F_LOG, "LOG"}, {MK_F_CP_BEGIN, "CP_BEGIN"},
        {MK_F_CP_DATA, "CP_DATA"}, {MK_F_CP_REF, "CP_REF"},
        {MK_F_CP_COMMIT, "CP_COMMIT"}, {MK_F_ERROR, "ERROR"},
        {MK_F_HELLO_ACK, "HELLO_ACK"}, {MK_F_LOG_ACK, "LOG_ACK"},
        {MK_F_NAK, "NAK"}, {MK_F_CP_ACK, "CP_ACK"},
        {MK_R_TRANSFER, "R_TRANSFER"}, {MK_R_CP_DATA, "R_CP_DATA"},
        {MK_R_CP_COMMIT, "R_CP_COMMIT"}, {MK_R_CP_APPLIED, "R_CP_APPLIED"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_str_eq(mk_ftype_name(names[i].t), names[i].n);
    /* fixed wire values */
    ck_assert_int_eq(MK_F_HELLO, 0x01);
    ck_assert_int_eq(MK_F_LOG, 0x02);
    ck_assert_int_eq(MK_F_CP_BEGIN, 0x03);
    ck_assert_int_eq(MK_F_CP_DATA, 0x04);
    ck_assert_int_eq(MK_F_CP_REF, 0x05);
    ck_assert_int_eq(MK_F_CP_COMMIT, 0x06);
    ck_assert_int_eq(MK_F_ERROR, 0x7F);
    ck_assert_int_eq(MK_F_HELLO_ACK, 0x81);
    ck_assert_int_eq(MK_F_LOG_ACK, 0x82);
    ck_assert_int_eq(MK_F_NAK, 0x83);
    ck_assert_int_eq(MK_F_CP_ACK, 0x84);
    ck_assert_str_eq(mk_ftype_name(0), "?");
    ck_assert_str_eq(mk_ftype_name(0x80), "?");
    ck_assert_str_eq(mk_ftype_name(0xFF), "?");
    ck_assert_str_eq(mk_ftype_name(-1), "?");

    ck_assert_str_eq(mk_mode_name(MK_MODE_SYNC), "sync");
    ck_assert_str_eq(mk_mode_name(MK_MODE_SEMI), "semi-sync");
    ck_assert_str_eq(mk_mode_name(MK_MODE_ASYNC), "async");
    ck_assert_str_eq(mk_mode_name(0), "?");
    ck_assert_str_eq(mk_mode_name(4), "?");
    ck_assert_int_eq(mk_mode_parse("sync"), MK_MODE_SYNC);
    ck_assert_int_eq(mk_mode_parse("semi-sync"), MK_MODE_SEMI);
    ck_assert_int_eq(mk_mode_parse("semi"), MK_MODE_SEMI);
    ck_assert_int_eq(mk_mode_parse("async"), MK_MODE_ASYNC);
    ck_assert_int_eq(mk_mode_parse(""), MK_EINVAL);
    ck_assert_int_eq(mk_mode_parse("SYNC"), MK_EINVAL);
    ck_assert_int_eq(mk_mode_parse("synchronous"), MK_EINVAL);
    ck_assert_int_eq(mk_mode_parse("asyn"), MK_EINVAL);
}
END_TEST

/* ---- 3.2 checksum ------------------------------------------------------------ */

/* The trailer covers the header as well as the payload: a change in a
 * header field that has no check of its own (type, seq) is caught by the
 * checksum alone, as is a change in the payload or in the trailer. */
START_TEST(test_s3_2_checksum_covers_header_and_payload)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_LOG], g, sizeof g);
    mk_frame f;
    size_t used;
    /* the trailer is exactly XXH3-64 of bytes [0, 20 + len) */
    ck_assert_uint_eq(mk_get_le64(g + n - 8), XXH3_64bits(g, n - 8));
    size_t idx[] = {5, 12, 19, 20, 43, 48, 49, 50, 56};
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        uint8_t m[GV_CAP];
        memcpy(m, g, n);
        m[idx[i]] ^= 0x01;
        ck_assert_int_eq(mk_frame_decode(m, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used),
                         MK_ECHECKSUM);
    }
    /* a checksum that would match the payload alone is still wrong */
    uint8_t m[GV_CAP];
    memcpy(m, g, n);
    put_le(m + n - 8, XXH3_64bits(g + MK_HDR_LEN, n - MK_FRAME_OVERHEAD), 8);
    ck_assert_int_eq(mk_frame_decode(m, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used),
                     MK_ECHECKSUM);
    /* nor is a big-endian trailer */
    uint64_t s = XXH3_64bits(g, n - 8);
    for (size_t i = 0; i < 8; i++)
        m[n - 8 + i] = (uint8_t)(s >> (56 - 8 * i));
    ck_assert_int_eq(mk_frame_decode(m, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used),
                     MK_ECHECKSUM);
    /* a zero trailer is not accepted (only fuzz builds relax this) */
    memset(m + n - 8, 0, 8);
    ck_assert_int_eq(mk_frame_decode(m, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used),
                     MK_ECHECKSUM);
}
END_TEST

/* Flip each byte of each golden frame in turn (three ways): the result is
 * always an error, and it is the error of the field that was hit. */
START_TEST(test_s3_2_flip_every_byte)
{
    const gv *v = &GV[_i];
    uint8_t g[GV_CAP];
    size_t n = gv_build(v, g, sizeof g);
    static const uint8_t masks[] = {0x01, 0x80, 0xFF};
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof masks; k++) {
            uint8_t *m = malloc(n);
            ck_assert_ptr_nonnull(m);
            memcpy(m, g, n);
            m[i] ^= masks[k];
            mk_frame f;
            size_t used = 0;
            int rc = mk_frame_decode(m, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used);
            ck_assert_msg(rc < 0, "%s: flip byte %zu ^%02x decoded (rc %d)", v->name,
                          i, masks[k], rc);
            if (i < 4)
                ck_assert_int_eq(rc, MK_EMAGIC);
            else if (i == 4)
                ck_assert_int_eq(rc, MK_EVERSION);
            else if (i == 6 || i == 7)
                ck_assert_int_eq(rc, MK_ERESERVED);
            else if (i >= 8 && i < 12)
                /* a length byte: a longer length waits for more bytes, an
                 * impossible one is refused, a shorter one misplaces the
                 * trailer */
                ck_assert_msg(rc == MK_ELENGTH || rc == MK_ETRUNC || rc == MK_ECHECKSUM,
                              "%s: length byte %zu gave %s", v->name, i, mk_errname(rc));
            else
                ck_assert_int_eq(rc, MK_ECHECKSUM);
            free(m);
        }
    }
}
END_TEST

/* ---- 3.3 maximum payload ----------------------------------------------------- */

START_TEST(test_s3_3_max_payload)
{
    ck_assert_uint_eq(MK_MAX_PAYLOAD, (1u << 20) + 24);
    ck_assert_uint_eq(MK_MAX_PAYLOAD, MK_MAX_TRANSFER_DATA + MK_LOG_HDR_LEN);
    ck_assert_uint_le(MK_CP_DATA_HDR_LEN + MK_MAX_BLOCK, MK_MAX_PAYLOAD);
    ck_assert_uint_le(MK_CP_REF_HDR_LEN + MK_MAX_REFS_PER_FRAME * MK_REF_LEN,
                      MK_MAX_PAYLOAD);

    /* the largest LOG exactly fills the largest payload */
    uint8_t *data = malloc(MK_MAX_TRANSFER_DATA);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < MK_MAX_TRANSFER_DATA; i++)
        data[i] = pat(i);
    mk_buf b;
    mk_buf_init(&b);
    mk_log l = {.tid = 1, .offset = 0, .length = MK_MAX_TRANSFER_DATA, .data = data};
    ck_assert_int_eq(mk_log_encode(&b, 1, &l), 0);
    ck_assert_uint_eq(mk_buf_len(&b), MK_FRAME_OVERHEAD + MK_MAX_PAYLOAD);
    const uint8_t *p = mk_buf_peek(&b);
    size_t n = mk_buf_len(&b);
    mk_frame f;
    size_t used;
    ck_assert_int_eq(mk_frame_decode(p, n, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(f.len, MK_MAX_PAYLOAD);
    mk_log d;
    ck_assert_int_eq(mk_log_decode(&f, &d), 0);
    ck_assert_uint_eq(d.length, MK_MAX_TRANSFER_DATA);
    ck_assert_int_eq(memcmp(d.data, data, MK_MAX_TRANSFER_DATA), 0);
    /* the same frame is over a smaller receiver limit */
    ck_assert_int_eq(mk_frame_decode(p, n, MK_MAX_PAYLOAD - 1, MK_FRAME_MAGIC, &f, &used),
                     MK_ELENGTH);
    /* every prefix of the largest frame is MK_ETRUNC */
    for (size_t k = 0; k < n; k++) {
        int rc = mk_frame_decode(p, k, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used);
        if (rc != MK_ETRUNC)
            ck_abort_msg("max frame prefix %zu: %s", k, mk_errname(rc));
    }

    /* one byte more than a transfer may carry is refused by the encoder,
     * which leaves the queue as it was */
    mk_buf_clear(&b);
    uint8_t *big = calloc(1, MK_MAX_TRANSFER_DATA + 1);
    ck_assert_ptr_nonnull(big);
    l.length = MK_MAX_TRANSFER_DATA + 1;
    l.data = big;
    ck_assert_int_eq(mk_log_encode(&b, 1, &l), MK_ELENGTH);
    ck_assert_uint_eq(mk_buf_len(&b), 0);

    /* a CP_DATA of the largest block size fits */
    mk_cp_data cd = {.cp = 1, .block = 2, .data = big};
    ck_assert_int_eq(mk_cp_data_encode(&b, 1, &cd, MK_MAX_BLOCK), 0);
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    mk_cp_data dd;
    ck_assert_int_eq(mk_cp_data_decode(&f, MK_MAX_BLOCK, &dd), 0);
    ck_assert_uint_eq(dd.block, 2);
    free(big);
    free(data);
    mk_buf_free(&b);
}
END_TEST

/* A receiver's own limit: a frame of length L decodes under max L and is
 * MK_ELENGTH under max L - 1. */
START_TEST(test_s3_3_receiver_limit)
{
    for (int k = 0; k < GV_COUNT; k++) {
        uint8_t g[GV_CAP];
        size_t n = gv_build(&GV[k], g, sizeof g);
        mk_frame f;
        size_t used;
        ck_assert_int_eq(mk_frame_decode(g, n, GV[k].plen, MK_FRAME_MAGIC, &f, &used), 0);
        ck_assert_int_eq(mk_frame_decode(g, n, GV[k].plen - 1, MK_FRAME_MAGIC, &f, &used),
                         MK_ELENGTH);
        /* judged from the header alone */
        ck_assert_int_eq(mk_frame_decode(g, MK_HDR_LEN, GV[k].plen - 1, MK_FRAME_MAGIC,
                                         &f, &used), MK_ELENGTH);
    }
}
END_TEST

/* ---- 3.4 receiver validation --------------------------------------------------- */

/* Builds a 20-byte header only. */
static void hdr(uint8_t *h, uint32_t magic, uint8_t ver, uint8_t type, uint16_t flags,
                uint32_t len, uint64_t seq)
{
    put_le(h, magic, 4);
    h[4] = ver;
    h[5] = type;
    put_le(h + 6, flags, 2);
    put_le(h + 8, len, 4);
    put_le(h + 12, seq, 8);
}

static int decode_heap(const uint8_t *src, size_t n, size_t max)
{
    uint8_t *m = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(m);
    memcpy(m, src, n);
    mk_frame f;
    size_t used;
    int rc = mk_frame_decode(m, n, max, MK_FRAME_MAGIC, &f, &used);
    free(m);
    return rc;
}

START_TEST(test_s3_4_bad_magic)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_LOG_ACK], g, sizeof g);
    static const uint32_t bad[] = {0, 0x4D4B4652u /* "RFKM": byte-swapped */,
                                   0x52464B4Cu, 0xD2464B4Du, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_le(g, bad[i], 4);
        ck_assert_int_eq(decode_heap(g, n, MK_MAX_PAYLOAD), MK_EMAGIC);
        /* named as soon as the 4 magic bytes are there */
        ck_assert_int_eq(decode_heap(g, 4, MK_MAX_PAYLOAD), MK_EMAGIC);
        ck_assert_int_eq(decode_heap(g, MK_HDR_LEN, MK_MAX_PAYLOAD), MK_EMAGIC);
    }
    /* the magic is a parameter: the log store's records use their own */
    gv_build(&GV[GV_LOG_ACK], g, sizeof g);
    mk_frame f;
    size_t used;
    ck_assert_int_eq(mk_frame_decode(g, n, MK_MAX_PAYLOAD, 0x474F4C4Du, &f, &used),
                     MK_EMAGIC);
}
END_TEST

START_TEST(test_s3_4_bad_version)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_LOG_ACK], g, sizeof g);
    static const uint8_t bad[] = {0, 2, 3, 0x81, 0xFF};
    for (size_t i = 0; i < sizeof bad; i++) {
        g[4] = bad[i];
        ck_assert_int_eq(decode_heap(g, n, MK_MAX_PAYLOAD), MK_EVERSION);
        ck_assert_int_eq(decode_heap(g, 5, MK_MAX_PAYLOAD), MK_EVERSION);
        ck_assert_int_eq(decode_heap(g, MK_HDR_LEN, MK_MAX_PAYLOAD), MK_EVERSION);
    }
}
END_TEST

START_TEST(test_s3_4_nonzero_flags)
{
    uint8_t g[GV_CAP];
    size_t n = gv_build(&GV[GV_LOG_ACK], g, sizeof g);
    for (unsigned bit = 0; bit < 16; bit++) {
        uint8_t m[GV_CAP];
        memcpy(m, g, n);
        put_le(m + 6, 1u << bit, 2);
        /* even with a trailer that is right for the altered header */
        put_le(m + n - 8, XXH3_64bits(m, n - 8), 8);
        ck_assert_int_eq(decode_heap(m, n, MK_MAX_PAYLOAD), MK_ERESERVED);
        ck_assert_int_eq(decode_heap(m, MK_HDR_LEN, MK_MAX_PAYLOAD), MK_ERESERVED);
    }
}
END_TEST

/* A claimed length over the maximum is refused with only the 20 header
 * bytes present - never MK_ETRUNC, which would make the receiver wait for
 * (and buffer) a body it will never accept. */
START_TEST(test_s3_4_length_over_max_header_only)
{
    uint8_t h[MK_HDR_LEN];
    static const uint32_t lens[] = {MK_MAX_PAYLOAD + 1, MK_MAX_PAYLOAD + 2,
                                    0x7FFFFFFFu, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 0, lens[i], 1);
        ck_assert_int_eq(decode_heap(h, MK_HDR_LEN, MK_MAX_PAYLOAD), MK_ELENGTH);
    }
    /* exactly the maximum is allowed: only the body is missing */
    hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 0, MK_MAX_PAYLOAD, 1);
    ck_assert_int_eq(decode_heap(h, MK_HDR_LEN, MK_MAX_PAYLOAD), MK_ETRUNC);
    /* max 0: any payload is too long, an empty one is fine */
    hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 0, 1, 1);
    ck_assert_int_eq(decode_heap(h, MK_HDR_LEN, 0), MK_ELENGTH);
    hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 0, 0, 1);
    ck_assert_int_eq(decode_heap(h, MK_HDR_LEN, 0), MK_ETRUNC);
}
END_TEST

/* With several bad fields the first in the order magic, version, flags,
 * length, checksum is the one reported. */
START_TEST(test_s3_4_validation_order)
{
    uint8_t h[MK_HDR_LEN + 16];
    memset(h, 0xEE, sizeof h);
    hdr(h, 0x12345678u, 9, MK_F_LOG, 1, UINT32_MAX, 0);
    ck_assert_int_eq(decode_heap(h, sizeof h, MK_MAX_PAYLOAD), MK_EMAGIC);
    hdr(h, MK_FRAME_MAGIC, 9, MK_F_LOG, 1, UINT32_MAX, 0);
    ck_assert_int_eq(decode_heap(h, sizeof h, MK_MAX_PAYLOAD), MK_EVERSION);
    hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 1, UINT32_MAX, 0);
    ck_assert_int_eq(decode_heap(h, sizeof h, MK_MAX_PAYLOAD), MK_ERESERVED);
    hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 0, UINT32_MAX, 0);
    ck_assert_int_eq(decode_heap(h, sizeof h, MK_MAX_PAYLOAD), MK_ELENGTH);
    hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 0, 8, 0); /* 8 bytes 0xEE, bad sum */
    ck_assert_int_eq(decode_heap(h, sizeof h, MK_MAX_PAYLOAD), MK_ECHECKSUM);
    hdr(h, MK_FRAME_MAGIC, 1, MK_F_LOG, 0, 9, 0); /* one trailer byte short */
    ck_assert_int_eq(decode_heap(h, sizeof h, MK_MAX_PAYLOAD), MK_ETRUNC);
    /* the type is not the framing layer's business */
    uint8_t g[GV_CAP];
    mk_buf b;
    mk_wcur c;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_frame_open(&b, MK_FRAME_MAGIC, 0xEE, 3, 0, &c), 0);
    ck_assert_int_eq(mk_frame_close(&b, &c), 0);
    memcpy(g, mk_buf_peek(&b), mk_buf_len(&b));
    ck_assert_int_eq(decode_heap(g, mk_buf_len(&b), MK_MAX_PAYLOAD), 0);
    mk_buf_free(&b);
}
END_TEST

/* Every proper prefix of every valid frame is MK_ETRUNC - never success
 * and never another error (the receiver reads more and tries again). */
START_TEST(test_s3_4_truncated_every_prefix)
{
    const gv *v = &GV[_i];
    uint8_t g[GV_CAP];
    size_t n = gv_build(v, g, sizeof g);
    for (size_t k = 0; k < n; k++) {
        int rc = decode_heap(g, k, MK_MAX_PAYLOAD);
        ck_assert_msg(rc == MK_ETRUNC, "%s prefix %zu/%zu: %s", v->name, k, n,
                      mk_errname(rc));
    }
    ck_assert_int_eq(decode_heap(g, n, MK_MAX_PAYLOAD), 0);
}
END_TEST

/* A valid frame followed by anything decodes on its own; *used says where
 * the next frame starts. */
START_TEST(test_s3_4_trailing_bytes_ignored)
{
    uint8_t g[GV_CAP + 64];
    size_t n = gv_build(&GV[GV_CP_COMMIT], g, GV_CAP);
    memset(g + n, 0x00, 64);
    mk_frame f;
    size_t used = 0;
    ck_assert_int_eq(mk_frame_decode(g, n + 64, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(used, n);
    /* what follows is judged on its own: 64 zero bytes are a bad magic */
    ck_assert_int_eq(mk_frame_decode(g + used, 64, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used),
                     MK_EMAGIC);
    ck_assert_int_eq(mk_frame_decode(NULL, 0, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used),
                     MK_ETRUNC);
}
END_TEST

/* ---- mk_frame_recv: the receive queue of both engines (3.1, 3.4) ---- */

/* What a receiver saw: each frame's type, seq and payload, in order. */
typedef struct recv_log {
    int n, stop_at, stop_rc;
    uint8_t type[16];
    uint64_t seq[16], sum[16];
    uint32_t len[16];
} recv_log;

static int recv_note(void *ctx, const mk_frame *f)
{
    recv_log *r = ctx;
    ck_assert_int_lt(r->n, 16);
    r->type[r->n] = f->type;
    r->seq[r->n] = f->seq;
    r->len[r->n] = f->len;
    r->sum[r->n] = XXH3_64bits(f->payload, f->len);
    return ++r->n == r->stop_at ? r->stop_rc : 0;
}

/* Six frames of payload 0, 1, 27, 28, 4096 and 5000 bytes back to back;
 * ends[k] is where frame k ends in the stream. */
static size_t recv_stream(uint8_t *all, size_t cap, size_t ends[6])
{
    static const uint32_t plen[6] = {0, 1, 27, 28, 4096, 5000};
    mk_buf b;
    mk_wcur c;
    mk_prng r;
    uint8_t pay[5000];
    mk_prng_seed(&r, 31);
    mk_buf_init(&b);
    for (int k = 0; k < 6; k++) {
        mk_prng_fill(&r, pay, plen[k]);
        ck_assert_int_eq(mk_frame_open(&b, MK_FRAME_MAGIC, (uint8_t)(0x40 + k), 100 + k,
                                       plen[k], &c), 0);
        ck_assert_int_eq(mk_wcur_bytes(&c, pay, plen[k]), 0);
        ck_assert_int_eq(mk_frame_close(&b, &c), 0);
        ends[k] = mk_buf_len(&b);
    }
    size_t n = mk_buf_len(&b);
    ck_assert_uint_le(n, cap);
    memcpy(all, mk_buf_peek(&b), n);
    mk_buf_free(&b);
    return n;
}

/* Feeds all[0..n) to mk_frame_recv in chunks (chunk bytes each; 0: sizes
 * drawn from a PRNG seeded with seed) until it returns nonzero.  Returns
 * its last return value; *fed is how many bytes it was given. */
static int recv_feed(mk_buf *in, const uint8_t *all, size_t n, size_t chunk, uint64_t seed,
                     recv_log *log, int *framing, size_t *fed)
{
    mk_prng r;
    mk_prng_seed(&r, seed);
    int rc = 0;
    *fed = 0;
    while (*fed < n && rc == 0) {
        size_t k = chunk ? chunk : 1 + (size_t)mk_prng_below(&r, 6000);
        if (k > n - *fed)
            k = n - *fed;
        rc = mk_frame_recv(in, all + *fed, k, recv_note, log, framing);
        *fed += k;
    }
    return rc;
}

/* However the bytes of a stream are cut - a byte at a time, across every
 * header and trailer, in pieces larger than frames - the receiver gets the
 * same frames, each whole, in order, and holds no byte once they are all
 * handed on. */
START_TEST(test_s3_1_recv_any_split)
{
    static uint8_t all[16384];
    size_t ends[6];
    size_t n = recv_stream(all, sizeof all, ends);
    static const size_t chunks[] = {1, 2, 3, 19, 27, 28, 29, 4095, 4124, 9000, 16384, 0};
    for (size_t t = 0; t < sizeof chunks / sizeof chunks[0]; t++) {
        for (uint64_t seed = 1; seed <= (chunks[t] ? 1 : 20); seed++) {
            recv_log log = {0};
            mk_buf in;
            int framing = -1;
            size_t fed;
            mk_buf_init(&in);
            ck_assert_int_eq(recv_feed(&in, all, n, chunks[t], seed, &log, &framing, &fed), 0);
            ck_assert_int_eq(framing, 0);
            ck_assert_int_eq(log.n, 6);
            ck_assert_uint_eq(mk_buf_len(&in), 0);
            size_t at = 0;
            for (int k = 0; k < 6; k++) {
                mk_frame f;
                size_t used;
                ck_assert_int_eq(mk_frame_decode(all + at, n - at, MK_MAX_PAYLOAD,
                                                 MK_FRAME_MAGIC, &f, &used), 0);
                ck_assert_uint_eq(log.type[k], f.type);
                ck_assert_uint_eq(log.seq[k], f.seq);
                ck_assert_uint_eq(log.len[k], f.len);
                ck_assert_uint_eq(log.sum[k], XXH3_64bits(f.payload, f.len));
                at += used;
            }
            mk_buf_free(&in);
        }
    }
}
END_TEST

/* A damaged frame (3.4) stops the receiver with its named error and
 * *framing set, after the frames before it and never the ones after it;
 * an error of the frame handler stops it with that error and *framing
 * clear.  Either way every byte not yet handed on stays queued, as if all
 * had been appended first - however the bytes were cut. */
START_TEST(test_s3_4_recv_stops_at_damage)
{
    static uint8_t all[16384];
    size_t ends[6];
    size_t n = recv_stream(all, sizeof all, ends);
    all[ends[3] - 1] ^= 0x20; /* frame 3's checksum */
    static const size_t chunks[] = {1, 7, 28, 5000, 16384, 0};
    for (size_t t = 0; t < sizeof chunks / sizeof chunks[0]; t++) {
        for (uint64_t seed = 1; seed <= (chunks[t] ? 1 : 20); seed++) {
            recv_log log = {0};
            mk_buf in;
            int framing = -1;
            size_t fed;
            mk_buf_init(&in);
            ck_assert_int_eq(recv_feed(&in, all, n, chunks[t], seed, &log, &framing, &fed),
                             MK_ECHECKSUM);
            ck_assert_int_eq(framing, 1);
            ck_assert_int_eq(log.n, 3);
            ck_assert_uint_eq(mk_buf_len(&in), fed - ends[2]);
            ck_assert_mem_eq(mk_buf_peek(&in), all + ends[2], fed - ends[2]);
            mk_buf_free(&in);

            /* The handler refuses frame 2 (a protocol error of the engine). */
            recv_log stop = {.stop_at = 2, .stop_rc = MK_ESTATE};
            mk_buf_init(&in);
            ck_assert_int_eq(recv_feed(&in, all, n, chunks[t], seed, &stop, &framing, &fed),
                             MK_ESTATE);
            ck_assert_int_eq(framing, 0);
            ck_assert_int_eq(stop.n, 2);
            ck_assert_uint_eq(mk_buf_len(&in), fed - ends[1]);
            ck_assert_mem_eq(mk_buf_peek(&in), all + ends[1], fed - ends[1]);
            mk_buf_free(&in);
        }
    }
}
END_TEST

/* ---- payload decoders: length, reserved fields, value ranges ---------------- */

/* Every fixed-size payload decoder refuses a payload one byte short or one
 * byte long, and an empty one. */
START_TEST(test_s3_4_payload_length_wrong_for_type)
{
    static const int fixed[] = {GV_HELLO, GV_HELLO_ACK, GV_LOG_ACK, GV_CP_BEGIN,
                                GV_CP_DATA, GV_CP_COMMIT, GV_NAK, GV_CP_ACK};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        int k = fixed[i];
        uint8_t p[GV_CAP + 1];
        size_t n = gv_payload(k, p, GV_CAP);
        p[n] = 0;
        ck_assert_int_eq(decode_any(k, p, n), 0);
        ck_assert_msg(decode_any(k, p, n - 1) == MK_ELENGTH, "%s short", GV[k].name);
        ck_assert_msg(decode_any(k, p, n + 1) == MK_ELENGTH, "%s long", GV[k].name);
        ck_assert_msg(decode_any(k, p, 0) == MK_ELENGTH, "%s empty", GV[k].name);
    }
}
END_TEST

START_TEST(test_s2_1_hello_length_wrong)
{
    uint8_t p[64];
    size_t n = gv_payload(GV_HELLO, p, sizeof p);
    ck_assert_uint_eq(n, MK_HELLO_LEN);
    for (size_t len = 0; len < sizeof p; len++)
        if (len != MK_HELLO_LEN)
            ck_assert_int_eq(decode_any(GV_HELLO, p, len), MK_ELENGTH);
}
END_TEST

/* SPEC.md 1.4: reserved fields MUST be zero and receivers check them; the
 * *_reserved_nonzero tests below set each reserved byte of each payload in
 * turn and expect MK_ERESERVED. */
START_TEST(test_s2_1_hello_reserved_nonzero)
{
    uint8_t p[64];
    size_t n = gv_payload(GV_HELLO, p, sizeof p);
    for (size_t i = 21; i < 24; i++) {
        uint8_t m[64];
        memcpy(m, p, n);
        m[i] = 0x01;
        ck_assert_int_eq(decode_any(GV_HELLO, m, n), MK_ERESERVED);
        m[i] = 0x80;
        ck_assert_int_eq(decode_any(GV_HELLO, m, n), MK_ERESERVED);
    }
}
END_TEST

static int hello_with(uint32_t bs, uint8_t mode, uint64_t nblocks, mk_hello *out)
{
    uint8_t p[64];
    size_t n = gv_payload(GV_HELLO, p, sizeof p);
    put_le(p + 8, nblocks, 8);
    put_le(p + 16, bs, 4);
    p[20] = mode;
    mk_frame f = heap_frame(MK_F_HELLO, p, n);
    int rc = mk_hello_decode(&f, out);
    heap_frame_free(&f);
    return rc;
}

START_TEST(test_s2_1_hello_bad_block_size)
{
    mk_hello h;
    static const uint32_t bad[] = {0,      1,      256,    511,     513,
                                   768,    1000,   3072,   4095,    4097,
                                   65535,  65537,  98304,  131072,  1u << 20,
                                   1u << 31, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(hello_with(bad[i], MK_MODE_SYNC, 100, &h) == MK_EBLOCKSIZE,
                      "block size %u accepted", bad[i]);
        ck_assert_int_eq(mk_block_size_ok(bad[i]), 0);
    }
    for (uint32_t bs = 512; bs <= 65536; bs *= 2) {
        ck_assert_int_eq(hello_with(bs, MK_MODE_SYNC, 100, &h), 0);
        ck_assert_uint_eq(h.block_size, bs);
        ck_assert_int_ne(mk_block_size_ok(bs), 0);
    }
}
END_TEST

START_TEST(test_s2_1_hello_bad_mode)
{
    mk_hello h;
    static const uint8_t bad[] = {0, 4, 5, 0x7F, 0x81, 0xFF};
    for (size_t i = 0; i < sizeof bad; i++)
        ck_assert_int_eq(hello_with(4096, bad[i], 100, &h), MK_EINVAL);
    for (uint8_t m = MK_MODE_SYNC; m <= MK_MODE_ASYNC; m++) {
        ck_assert_int_eq(hello_with(4096, m, 100, &h), 0);
        ck_assert_uint_eq(h.mode, m);
    }
}
END_TEST

START_TEST(test_s2_1_hello_nblocks_range)
{
    mk_hello h;
    ck_assert_int_eq(hello_with(4096, MK_MODE_SYNC, 0, &h), MK_ERANGE);
    ck_assert_int_eq(hello_with(4096, MK_MODE_SYNC, 1, &h), 0);
    ck_assert_uint_eq(h.nblocks, 1);
    /* the volume's byte size must fit in 64 bits */
    ck_assert_int_eq(hello_with(4096, MK_MODE_SYNC, UINT64_MAX / 4096, &h), 0);
    ck_assert_int_eq(hello_with(4096, MK_MODE_SYNC, UINT64_MAX / 4096 + 1, &h), MK_ERANGE);
    ck_assert_int_eq(hello_with(512, MK_MODE_SYNC, UINT64_MAX, &h), MK_ERANGE);
    ck_assert_int_eq(hello_with(65536, MK_MODE_SYNC, UINT64_MAX / 65536, &h), 0);
}
END_TEST

START_TEST(test_s2_2_hello_ack_reserved_nonzero)
{
    uint8_t p[64];
    size_t n = gv_payload(GV_HELLO_ACK, p, sizeof p);
    ck_assert_uint_eq(n, MK_HELLO_ACK_LEN);
    for (size_t i = 20; i < 24; i++) {
        uint8_t m[64];
        memcpy(m, p, n);
        m[i] = 0xFF;
        ck_assert_int_eq(decode_any(GV_HELLO_ACK, m, n), MK_ERESERVED);
    }
    for (size_t len = 0; len < sizeof p; len++)
        if (len != MK_HELLO_ACK_LEN)
            ck_assert_int_eq(decode_any(GV_HELLO_ACK, p, len), MK_ELENGTH);
}
END_TEST

/* A LOG payload: 24-byte header + exactly `length` data bytes. */
static size_t log_payload(uint8_t *p, uint64_t tid, uint64_t off, uint32_t length,
                          size_t ndata)
{
    put_le(p, tid, 8);
    put_le(p + 8, off, 8);
    put_le(p + 16, length, 4);
    put_le(p + 20, 0, 4);
    for (size_t i = 0; i < ndata; i++)
        p[24 + i] = pat(i);
    return 24 + ndata;
}

static int log_dec(const uint8_t *p, size_t n, mk_log *l)
{
    mk_frame f = heap_frame(MK_F_LOG, p, n);
    int rc = mk_log_decode(&f, l);
    heap_frame_free(&f);
    return rc;
}

START_TEST(test_s4_3_log_length_wrong)
{
    uint8_t p[128];
    mk_log l;
    size_t n = log_payload(p, 1, 0, 10, 10);
    ck_assert_int_eq(log_dec(p, n, &l), 0);
    /* length field does not match the bytes that follow */
    ck_assert_int_eq(log_dec(p, n - 1, &l), MK_ELENGTH);
    n = log_payload(p, 1, 0, 10, 11);
    ck_assert_int_eq(log_dec(p, n, &l), MK_ELENGTH);
    n = log_payload(p, 1, 0, 11, 10);
    ck_assert_int_eq(log_dec(p, n, &l), MK_ELENGTH);
    n = log_payload(p, 1, 0, 9, 10);
    ck_assert_int_eq(log_dec(p, n, &l), MK_ELENGTH);
    n = log_payload(p, 1, 0, UINT32_MAX, 10);
    ck_assert_int_eq(log_dec(p, n, &l), MK_ELENGTH);
    n = log_payload(p, 1, 0, MK_MAX_TRANSFER_DATA + 1, 10);
    ck_assert_int_eq(log_dec(p, n, &l), MK_ELENGTH);
    /* shorter than the 24-byte header */
    for (size_t k = 0; k < MK_LOG_HDR_LEN; k++)
        ck_assert_int_eq(log_dec(p, k, &l), MK_ELENGTH);
}
END_TEST

START_TEST(test_s4_3_log_zero_length)
{
    uint8_t p[64];
    mk_log l;
    size_t n = log_payload(p, 1, 4096, 0, 0);
    ck_assert_uint_eq(n, MK_LOG_HDR_LEN);
    ck_assert_int_eq(log_dec(p, n, &l), MK_EZEROLEN);
    /* the encoder never produces one */
    mk_buf b;
    mk_buf_init(&b);
    mk_log z = {.tid = 1, .offset = 0, .length = 0, .data = p};
    ck_assert_int_lt(mk_log_encode(&b, 1, &z), 0);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    mk_buf_free(&b);
}
END_TEST

START_TEST(test_s4_3_log_tid_zero)
{
    uint8_t p[64];
    mk_log l;
    size_t n = log_payload(p, 0, 0, 8, 8);
    ck_assert_int_eq(log_dec(p, n, &l), MK_ETID);
    n = log_payload(p, 1, 0, 8, 8);
    ck_assert_int_eq(log_dec(p, n, &l), 0);
    n = log_payload(p, UINT64_MAX, UINT64_MAX - 7, 8, 8);
    ck_assert_int_eq(log_dec(p, n, &l), 0);
    ck_assert_uint_eq(l.tid, UINT64_MAX);
    ck_assert_uint_eq(l.offset, UINT64_MAX - 7);
}
END_TEST

START_TEST(test_s4_3_log_reserved_nonzero)
{
    uint8_t p[64];
    mk_log l;
    size_t n = log_payload(p, 1, 0, 8, 8);
    for (size_t i = 20; i < 24; i++) {
        uint8_t m[64];
        memcpy(m, p, n);
        m[i] = 0x10;
        ck_assert_int_eq(log_dec(m, n, &l), MK_ERESERVED);
    }
}
END_TEST

START_TEST(test_s4_4_log_ack_length_wrong)
{
    uint8_t p[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    for (size_t len = 0; len <= sizeof p; len++)
        ck_assert_int_eq(decode_any(GV_LOG_ACK, p, len), len == 8 ? 0 : MK_ELENGTH);
}
END_TEST

START_TEST(test_s7_1_cp_begin_length_wrong)
{
    uint8_t p[48] = {0};
    for (size_t len = 0; len <= sizeof p; len++)
        ck_assert_int_eq(decode_any(GV_CP_BEGIN, p, len),
                         len == MK_CP_BEGIN_LEN ? 0 : MK_ELENGTH);
}
END_TEST

START_TEST(test_s7_2_cp_data_block_size_mismatch)
{
    uint8_t p[GV_CAP];
    size_t n = gv_payload(GV_CP_DATA, p, sizeof p);
    mk_frame f = heap_frame(MK_F_CP_DATA, p, n);
    mk_cp_data d;
    ck_assert_int_eq(mk_cp_data_decode(&f, 512, &d), 0);
    ck_assert_int_eq(mk_cp_data_decode(&f, 1024, &d), MK_ELENGTH);
    ck_assert_int_eq(mk_cp_data_decode(&f, 256, &d), MK_ELENGTH);
    ck_assert_int_eq(mk_cp_data_decode(&f, 511, &d), MK_ELENGTH);
    ck_assert_int_eq(mk_cp_data_decode(&f, 0, &d), MK_ELENGTH);
    heap_frame_free(&f);
    for (size_t len = 0; len < n; len += 7)
        ck_assert_int_eq(decode_any(GV_CP_DATA, p, len), MK_ELENGTH);
}
END_TEST

/* A CP_REF payload with `count` in its header and `nent` entries. */
static size_t ref_payload(uint8_t *p, uint64_t cp, uint32_t count, uint32_t nent)
{
    put_le(p, cp, 8);
    put_le(p + 8, count, 4);
    put_le(p + 12, 0, 4);
    for (uint32_t i = 0; i < nent; i++) {
        uint8_t *e = p + 16 + (size_t)i * 32;
        put_le(e, 1000 + i, 8);
        put_le(e + 8, 7, 8);
        put_le(e + 16, i, 4);
        put_le(e + 20, 0, 4);
        put_le(e + 24, 0xABCD0000u + i, 8);
    }
    return 16 + (size_t)nent * 32;
}

static int ref_dec(const uint8_t *p, size_t n, uint64_t *cp, uint32_t *count)
{
    mk_frame f = heap_frame(MK_F_CP_REF, p, n);
    int rc = mk_cp_ref_decode(&f, cp, count);
    heap_frame_free(&f);
    return rc;
}

START_TEST(test_s7_2_cp_ref_count_zero)
{
    uint8_t p[64];
    uint64_t cp;
    uint32_t count;
    size_t n = ref_payload(p, 1, 0, 0);
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), MK_ELENGTH);
    /* count 0 with an entry after it is just as wrong */
    n = ref_payload(p, 1, 1, 1);
    put_le(p + 8, 0, 4);
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), MK_ELENGTH);
    /* shorter than the 16-byte header */
    for (size_t k = 0; k < MK_CP_REF_HDR_LEN; k++)
        ck_assert_int_eq(ref_dec(p, k, &cp, &count), MK_ELENGTH);
    mk_buf b;
    mk_buf_init(&b);
    mk_ref r = {1, 1, 0, 0};
    ck_assert_int_eq(mk_cp_ref_encode(&b, 1, 1, &r, 0), MK_ELENGTH);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    mk_buf_free(&b);
}
END_TEST

START_TEST(test_s7_2_cp_ref_count_over_max)
{
    size_t cap = 16 + (size_t)(MK_MAX_REFS_PER_FRAME + 1) * 32;
    uint8_t *p = malloc(cap);
    ck_assert_ptr_nonnull(p);
    uint64_t cp;
    uint32_t count;
    /* exactly the maximum is fine */
    size_t n = ref_payload(p, 3, MK_MAX_REFS_PER_FRAME, MK_MAX_REFS_PER_FRAME);
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), 0);
    ck_assert_uint_eq(count, MK_MAX_REFS_PER_FRAME);
    /* one more, even with a consistent length */
    n = ref_payload(p, 3, MK_MAX_REFS_PER_FRAME + 1, MK_MAX_REFS_PER_FRAME + 1);
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), MK_ELENGTH);
    put_le(p + 8, UINT32_MAX, 4);
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), MK_ELENGTH);
    free(p);

    /* the encoder refuses too, leaving the queue untouched */
    mk_ref *refs = calloc(MK_MAX_REFS_PER_FRAME + 1, sizeof *refs);
    ck_assert_ptr_nonnull(refs);
    mk_buf b;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_cp_ref_encode(&b, 1, 1, refs, MK_MAX_REFS_PER_FRAME + 1),
                     MK_ELENGTH);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    ck_assert_int_eq(mk_cp_ref_encode(&b, 1, 1, refs, MK_MAX_REFS_PER_FRAME), 0);
    ck_assert_uint_eq(mk_buf_len(&b),
                      MK_FRAME_OVERHEAD + MK_CP_REF_HDR_LEN + MK_MAX_REFS_PER_FRAME * MK_REF_LEN);
    mk_buf_free(&b);
    free(refs);
}
END_TEST

START_TEST(test_s7_2_cp_ref_count_length_mismatch)
{
    uint8_t p[16 + 8 * 32 + 32];
    uint64_t cp;
    uint32_t count;
    size_t n = ref_payload(p, 5, 3, 3);
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), 0);
    ck_assert_uint_eq(cp, 5);
    ck_assert_uint_eq(count, 3);
    n = ref_payload(p, 5, 3, 2); /* fewer entries than counted */
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), MK_ELENGTH);
    n = ref_payload(p, 5, 3, 4); /* more */
    ck_assert_int_eq(ref_dec(p, n, &cp, &count), MK_ELENGTH);
    n = ref_payload(p, 5, 3, 3);
    for (size_t cut = 1; cut < 32; cut++) /* a partial entry */
        ck_assert_int_eq(ref_dec(p, n - cut, &cp, &count), MK_ELENGTH);
    p[n] = 0;
    ck_assert_int_eq(ref_dec(p, n + 1, &cp, &count), MK_ELENGTH);
}
END_TEST

START_TEST(test_s7_2_cp_ref_reserved_nonzero)
{
    uint8_t p[16 + 3 * 32];
    uint64_t cp;
    uint32_t count;
    size_t n = ref_payload(p, 5, 3, 3);
    /* header reserved */
    for (size_t i = 12; i < 16; i++) {
        uint8_t m[sizeof p];
        memcpy(m, p, n);
        m[i] = 1;
        ck_assert_int_eq(ref_dec(m, n, &cp, &count), MK_ERESERVED);
    }
    /* each entry's reserved field: the frame decoder checks every entry, and
     * mk_ref_at reports the bad one */
    for (uint32_t e = 0; e < 3; e++) {
        for (size_t i = 20; i < 24; i++) {
            uint8_t m[sizeof p];
            memcpy(m, p, n);
            m[16 + e * 32 + i] = 0x40;
            ck_assert_int_eq(ref_dec(m, n, &cp, &count), MK_ERESERVED);
            mk_frame f = heap_frame(MK_F_CP_REF, m, n);
            mk_ref r;
            for (uint32_t j = 0; j < 3; j++)
                ck_assert_int_eq(mk_ref_at(&f, j, &r), j == e ? MK_ERESERVED : 0);
            heap_frame_free(&f);
        }
    }
}
END_TEST

START_TEST(test_s7_2_cp_ref_roundtrip_many)
{
    enum { N = 300 };
    mk_ref refs[N];
    for (uint32_t i = 0; i < N; i++) {
        refs[i].block = (uint64_t)i * 0x100000001ull;
        refs[i].tid = UINT64_MAX - i;
        refs[i].slot = i * 3;
        refs[i].hash = XXH3_64bits(&i, sizeof i);
    }
    mk_buf b;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_cp_ref_encode(&b, 9, 77, refs, N), 0);
    mk_frame f;
    size_t used;
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(f.len, MK_CP_REF_HDR_LEN + N * MK_REF_LEN);
    uint64_t cp;
    uint32_t count;
    ck_assert_int_eq(mk_cp_ref_decode(&f, &cp, &count), 0);
    ck_assert_uint_eq(cp, 77);
    ck_assert_uint_eq(count, N);
    for (uint32_t i = 0; i < N; i++) {
        mk_ref r;
        ck_assert_int_eq(mk_ref_at(&f, i, &r), 0);
        ck_assert_uint_eq(r.block, refs[i].block);
        ck_assert_uint_eq(r.tid, refs[i].tid);
        ck_assert_uint_eq(r.slot, refs[i].slot);
        ck_assert_uint_eq(r.hash, refs[i].hash);
    }
    mk_buf_free(&b);
}
END_TEST

START_TEST(test_s7_4_cp_commit_length_wrong)
{
    uint8_t p[40] = {0};
    for (size_t len = 0; len <= sizeof p; len++)
        ck_assert_int_eq(decode_any(GV_CP_COMMIT, p, len),
                         len == MK_CP_COMMIT_LEN ? 0 : MK_ELENGTH);
}
END_TEST

START_TEST(test_s7_5_cp_ack_length_wrong)
{
    uint8_t p[48] = {0};
    for (size_t len = 0; len <= sizeof p; len++)
        ck_assert_int_eq(decode_any(GV_CP_ACK, p, len),
                         len == MK_CP_ACK_LEN ? 0 : MK_ELENGTH);
}
END_TEST

/* CP digest golden values: each step is XXH3-64, seeded with the previous
 * digest, of (block LE64 || hash LE64), starting from 0; written out here
 * as literal bytes and hashed with <xxhash.h>. */
START_TEST(test_s7_5_digest_golden)
{
    uint8_t e0[16], e1[16];
    ck_assert_uint_eq(mk_test_unhex("1000000000000000 efcdab8967452301", e0, sizeof e0), 16);
    ck_assert_uint_eq(mk_test_unhex("1100000000000000 1032547698badcfe", e1, sizeof e1), 16);
    uint64_t d1 = XXH3_64bits_withSeed(e0, 16, 0);
    uint64_t d2 = XXH3_64bits_withSeed(e1, 16, d1);
    ck_assert_uint_eq(mk_digest_step(0, 0x10, 0x0123456789ABCDEFull), d1);
    ck_assert_uint_eq(mk_digest_step(d1, 0x11, 0xFEDCBA9876543210ull), d2);
    /* order-sensitive: the same two blocks the other way round differ */
    uint64_t r1 = mk_digest_step(0, 0x11, 0xFEDCBA9876543210ull);
    uint64_t r2 = mk_digest_step(r1, 0x10, 0x0123456789ABCDEFull);
    ck_assert_uint_ne(r2, d2);
    /* block number and hash are both bound in */
    ck_assert_uint_ne(mk_digest_step(0, 0x10, 0x0123456789ABCDEFull),
                      mk_digest_step(0, 0x11, 0x0123456789ABCDEFull));
    ck_assert_uint_ne(mk_digest_step(0, 0x10, 0x0123456789ABCDEFull),
                      mk_digest_step(0, 0x10, 0x0123456789ABCDEEull));
    /* a REF's hash is XXH3-64 of the block */
    uint8_t blk[512];
    for (size_t i = 0; i < sizeof blk; i++)
        blk[i] = pat(i);
    ck_assert_uint_eq(mk_block_hash(blk, sizeof blk), XXH3_64bits(blk, sizeof blk));
    ck_assert_uint_eq(mk_block_hash("", 0), XXH3_64bits("", 0));
}
END_TEST

START_TEST(test_s8_1_nak_reserved_and_length)
{
    uint8_t p[64];
    size_t n = gv_payload(GV_NAK, p, sizeof p);
    ck_assert_uint_eq(n, MK_NAK_LEN);
    for (size_t i = 20; i < 24; i++) {
        uint8_t m[64];
        memcpy(m, p, n);
        m[i] = 0x02;
        ck_assert_int_eq(decode_any(GV_NAK, m, n), MK_ERESERVED);
    }
    for (size_t len = 0; len < sizeof p; len++)
        if (len != MK_NAK_LEN)
            ck_assert_int_eq(decode_any(GV_NAK, p, len), MK_ELENGTH);
    /* every error code survives the trip as a reason */
    mk_buf b;
    mk_buf_init(&b);
    for (int32_t reason = 0; reason >= MK_ECORRUPT; reason--) {
        mk_buf_clear(&b);
        mk_nak k = {.cp = 1, .block = 2, .reason = reason}, d;
        ck_assert_int_eq(mk_nak_encode(&b, 1, &k), 0);
        mk_frame f;
        size_t used;
        ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                         MK_FRAME_MAGIC, &f, &used), 0);
        ck_assert_int_eq(mk_nak_decode(&f, &d), 0);
        ck_assert_int_eq(d.reason, reason);
    }
    mk_buf_free(&b);
}
END_TEST

/* An ERROR payload: i32 code, u32 msglen, msglen bytes. */
static size_t err_payload(uint8_t *p, int32_t code, uint32_t msglen, size_t nmsg)
{
    put_le(p, (uint32_t)code, 4);
    put_le(p + 4, msglen, 4);
    for (size_t i = 0; i < nmsg; i++)
        p[8 + i] = (uint8_t)('a' + i % 26);
    return 8 + nmsg;
}

static int err_dec(const uint8_t *p, size_t n, mk_error_frame *e)
{
    mk_frame f = heap_frame(MK_F_ERROR, p, n);
    int rc = mk_error_decode(&f, e);
    heap_frame_free(&f);
    return rc;
}

START_TEST(test_s3_6_error_msglen_over_max)
{
    uint8_t p[8 + MK_ERROR_MSG_MAX + 16];
    mk_error_frame e;
    size_t n = err_payload(p, MK_EIO, MK_ERROR_MSG_MAX, MK_ERROR_MSG_MAX);
    ck_assert_int_eq(err_dec(p, n, &e), 0);
    ck_assert_uint_eq(e.msglen, MK_ERROR_MSG_MAX);
    n = err_payload(p, MK_EIO, MK_ERROR_MSG_MAX + 1, MK_ERROR_MSG_MAX + 1);
    ck_assert_int_eq(err_dec(p, n, &e), MK_ELENGTH);
    n = err_payload(p, MK_EIO, UINT32_MAX, 0);
    ck_assert_int_eq(err_dec(p, n, &e), MK_ELENGTH);
}
END_TEST

START_TEST(test_s3_6_error_length_wrong)
{
    uint8_t p[64];
    mk_error_frame e;
    for (size_t k = 0; k < 8; k++) /* shorter than code + msglen */
        ck_assert_int_eq(err_dec(p, k, &e), MK_ELENGTH);
    size_t n = err_payload(p, MK_EIO, 5, 5);
    ck_assert_int_eq(err_dec(p, n, &e), 0);
    ck_assert_int_eq(err_dec(p, n - 1, &e), MK_ELENGTH);
    n = err_payload(p, MK_EIO, 5, 6);
    ck_assert_int_eq(err_dec(p, n, &e), MK_ELENGTH);
    n = err_payload(p, MK_EIO, 0, 0);
    ck_assert_int_eq(err_dec(p, n, &e), 0);
    ck_assert_uint_eq(e.msglen, 0);
}
END_TEST

/* 3.6: "The receiver MUST accept any code value" - 0 and codes no table
 * names included (found by fuzz_log/fuzz_source: code 0 was refused). */
START_TEST(test_s3_6_error_any_code_accepted)
{
    static const uint32_t codes[] = {0, 1, 39, 1000, 0x7fffffff, 0x80000000u, 0xffffffffu};
    uint8_t p[16];
    mk_error_frame e;
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        put_le(p, codes[i], 4);
        put_le(p + 4, 2, 4);
        p[8] = 'h';
        p[9] = 'i';
        ck_assert_int_eq(err_dec(p, 10, &e), 0);
        ck_assert_uint_eq(e.msglen, 2);
    }
    put_le(p, 0, 4);
    ck_assert_int_eq(err_dec(p, 10, &e), 0);
    ck_assert_int_eq(e.code, 0);
}
END_TEST

START_TEST(test_s3_6_error_encode_message)
{
    mk_buf b;
    mk_buf_init(&b);
    mk_frame f;
    mk_error_frame e;
    size_t used;
    /* an over-long message is cut to MK_ERROR_MSG_MAX bytes */
    char msg[400];
    for (size_t i = 0; i < sizeof msg - 1; i++)
        msg[i] = (char)('A' + i % 26);
    msg[sizeof msg - 1] = 0;
    ck_assert_int_eq(mk_error_encode(&b, 1, MK_EREMOTE, msg), 0);
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(f.len, 8 + MK_ERROR_MSG_MAX);
    ck_assert_int_eq(mk_error_decode(&f, &e), 0);
    ck_assert_int_eq(e.code, MK_EREMOTE);
    ck_assert_uint_eq(e.msglen, MK_ERROR_MSG_MAX);
    ck_assert_mem_eq(e.msg, msg, MK_ERROR_MSG_MAX);
    /* NULL and empty messages */
    mk_buf_clear(&b);
    ck_assert_int_eq(mk_error_encode(&b, 2, MK_ETIMEOUT, NULL), 0);
    ck_assert_int_eq(mk_error_encode(&b, 3, MK_ETIMEOUT, ""), 0);
    ck_assert_uint_eq(mk_buf_len(&b), 2 * (MK_FRAME_OVERHEAD + 8));
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_int_eq(mk_error_decode(&f, &e), 0);
    ck_assert_int_eq(e.code, MK_ETIMEOUT);
    ck_assert_uint_eq(e.msglen, 0);
    mk_buf_free(&b);
}
END_TEST

/* ---- 4.2 transfer geometry --------------------------------------------------- */

static void geom(uint64_t off, uint32_t len, uint32_t bs, mk_xgeom *g)
{
    memset(g, 0xA5, sizeof *g);
    mk_transfer_geom(off, len, bs, g);
    ck_assert_uint_eq((uint64_t)g->head_len + (uint64_t)g->nslots * bs + g->tail_len, len);
}

START_TEST(test_s4_2_geom_aligned_whole_blocks)
{
    mk_xgeom g;
    geom(8192, 3 * 4096, 4096, &g);
    ck_assert_uint_eq(g.head_len, 0);
    ck_assert_uint_eq(g.nslots, 3);
    ck_assert_uint_eq(g.tail_len, 0);
    ck_assert_uint_eq(g.first_block, 2);
    geom(0, 512, 512, &g);
    ck_assert_uint_eq(g.head_len, 0);
    ck_assert_uint_eq(g.nslots, 1);
    ck_assert_uint_eq(g.tail_len, 0);
    ck_assert_uint_eq(g.first_block, 0);
    /* the largest transfer */
    geom(65536ull * 1000, MK_MAX_TRANSFER_DATA, 65536, &g);
    ck_assert_uint_eq(g.head_len, 0);
    ck_assert_uint_eq(g.nslots, 16);
    ck_assert_uint_eq(g.tail_len, 0);
    ck_assert_uint_eq(g.first_block, 1000);
}
END_TEST

START_TEST(test_s4_2_geom_unaligned_head_slots_tail)
{
    mk_xgeom g;
    /* [4196, 4196 + 3996 + 2*4096 + 50) */
    geom(4096 + 100, 3996 + 2 * 4096 + 50, 4096, &g);
    ck_assert_uint_eq(g.head_len, 3996);
    ck_assert_uint_eq(g.nslots, 2);
    ck_assert_uint_eq(g.tail_len, 50);
    ck_assert_uint_eq(g.first_block, 2);
    /* head and tail only, no whole block between */
    geom(1000, 100, 512, &g); /* [1000, 1100): crosses 1024 */
    ck_assert_uint_eq(g.head_len, 24);
    ck_assert_uint_eq(g.nslots, 0);
    ck_assert_uint_eq(g.tail_len, 76);
    /* aligned start, tail only after slots */
    geom(1024, 512 + 1, 512, &g);
    ck_assert_uint_eq(g.head_len, 0);
    ck_assert_uint_eq(g.nslots, 1);
    ck_assert_uint_eq(g.tail_len, 1);
    ck_assert_uint_eq(g.first_block, 2);
}
END_TEST

START_TEST(test_s4_2_geom_inside_one_block)
{
    mk_xgeom g;
    /* starts mid-block, ends mid-block: all bytes precede the first
     * boundary */
    geom(100, 50, 512, &g);
    ck_assert_uint_eq(g.nslots, 0);
    ck_assert_uint_eq(g.head_len, 50);
    ck_assert_uint_eq(g.tail_len, 0);
    /* starts on a boundary, ends mid-block: no head */
    geom(512, 10, 512, &g);
    ck_assert_uint_eq(g.nslots, 0);
    ck_assert_uint_eq(g.head_len, 0);
    ck_assert_uint_eq(g.tail_len, 10);
    /* a single byte */
    geom(4096 * 7 + 4095 - 1, 1, 4096, &g);
    ck_assert_uint_eq(g.nslots, 0);
    ck_assert_uint_eq(g.head_len, 1);
    ck_assert_uint_eq(g.tail_len, 0);
    /* one byte short of a whole block, aligned start */
    geom(65536 * 3, 65535, 65536, &g);
    ck_assert_uint_eq(g.nslots, 0);
    ck_assert_uint_eq(g.head_len, 0);
    ck_assert_uint_eq(g.tail_len, 65535);
}
END_TEST

START_TEST(test_s4_2_geom_ends_on_boundary)
{
    mk_xgeom g;
    geom(100, 412, 512, &g); /* [100, 512) */
    ck_assert_uint_eq(g.head_len, 412);
    ck_assert_uint_eq(g.nslots, 0);
    ck_assert_uint_eq(g.tail_len, 0);
    geom(100, 412 + 2 * 512, 512, &g); /* [100, 1536) */
    ck_assert_uint_eq(g.head_len, 412);
    ck_assert_uint_eq(g.nslots, 2);
    ck_assert_uint_eq(g.tail_len, 0);
    ck_assert_uint_eq(g.first_block, 1);
}
END_TEST

START_TEST(test_s4_2_geom_volume_last_byte)
{
    const uint64_t nblocks = 1000;
    const uint32_t bs = 4096;
    mk_xgeom g;
    geom(nblocks * bs - 1, 1, bs, &g);
    ck_assert_uint_eq(g.head_len, 1);
    ck_assert_uint_eq(g.nslots, 0);
    ck_assert_uint_eq(g.tail_len, 0);
    /* no slot lies outside the volume */
    ck_assert_uint_le(g.first_block + g.nslots, nblocks);
    /* the whole last block */
    geom((nblocks - 1) * bs, bs, bs, &g);
    ck_assert_uint_eq(g.head_len, 0);
    ck_assert_uint_eq(g.nslots, 1);
    ck_assert_uint_eq(g.tail_len, 0);
    ck_assert_uint_eq(g.first_block, nblocks - 1);
    /* the last two blocks from mid-block */
    geom((nblocks - 2) * bs + 1, 2 * bs - 1, bs, &g);
    ck_assert_uint_eq(g.head_len, bs - 1);
    ck_assert_uint_eq(g.nslots, 1);
    ck_assert_uint_eq(g.tail_len, 0);
    ck_assert_uint_eq(g.first_block, nblocks - 1);
    /* the last byte of the largest volume a 512-byte HELLO allows */
    uint64_t big = UINT64_MAX / 512 * 512;
    geom(big - 1, 1, 512, &g);
    ck_assert_uint_eq(g.head_len, 1);
    ck_assert_uint_eq(g.nslots, 0);
    geom(big - 512, 512, 512, &g);
    ck_assert_uint_eq(g.nslots, 1);
    ck_assert_uint_eq(g.first_block, UINT64_MAX / 512 - 1);
}
END_TEST

/* Invariants over many random ranges: the pieces add up; head and tail are
 * each shorter than a block; slots start on a boundary at first_block; the
 * tail starts on a boundary; a head is present only when the start is not
 * on a boundary. */
START_TEST(test_s4_2_geom_invariants)
{
    uint64_t x = 0x0123456789ABCDEFull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t bs = 512u << (x % 8);
        uint64_t off = (x >> 3) % ((uint64_t)1 << (i % 2 ? 40 : 62));
        uint32_t len = (uint32_t)(1 + (x >> 20) % (i % 3 ? 3 * bs : MK_MAX_TRANSFER_DATA));
        mk_xgeom g;
        geom(off, len, bs, &g);
        ck_assert_uint_lt(g.head_len, bs);
        ck_assert_uint_lt(g.tail_len, bs);
        if (off % bs == 0)
            ck_assert_uint_eq(g.head_len, 0);
        else if (len >= bs - off % bs)
            ck_assert_uint_eq(g.head_len, bs - off % bs);
        else
            ck_assert_uint_eq(g.head_len, len);
        if (g.nslots) {
            ck_assert_uint_eq((off + g.head_len) % bs, 0);
            ck_assert_uint_eq(g.first_block * bs, off + g.head_len);
        }
        if (g.tail_len) {
            ck_assert_uint_eq((off + g.head_len + (uint64_t)g.nslots * bs) % bs, 0);
            ck_assert_uint_eq(len - g.tail_len, g.head_len + (uint64_t)g.nslots * bs);
        }
    }
}
END_TEST

/* Section 9.7: TREE_QUERY and TREE_NODES round trip, and every bad
 * header is named: level 0 or above 64 (MK_ERANGE), count 0, over
 * MK_MAX_TREE_NODES or not matching the length (MK_ELENGTH). */
START_TEST(test_s9_7_tree_frames_roundtrip_and_malformed)
{
    mk_buf b;
    mk_frame f;
    size_t used;
    uint32_t level, count;
    mk_buf_init(&b);
    uint64_t idx[3] = {0, 7, 0x123456789ull};
    ck_assert_int_eq(mk_tree_query_encode(&b, 4, 12, idx, 3), 0);
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(f.type, MK_F_TREE_QUERY);
    ck_assert_uint_eq(f.len, 8 + 3 * 8);
    ck_assert_int_eq(mk_tree_query_decode(&f, &level, &count), 0);
    ck_assert_uint_eq(level, 12);
    ck_assert_uint_eq(count, 3);
    for (uint32_t i = 0; i < 3; i++) {
        uint64_t x;
        ck_assert_int_eq(mk_tree_query_at(&f, i, &x), 0);
        ck_assert_uint_eq(x, idx[i]);
    }
    mk_buf_clear(&b);
    mk_tree_node n[2] = {{5, 1, 2, 3, 4}, {6, 0, 0, 0xffffffffffffffffull, 9}};
    ck_assert_int_eq(mk_tree_nodes_encode(&b, 5, 1, n, 2), 0);
    ck_assert_int_eq(mk_frame_decode(mk_buf_peek(&b), mk_buf_len(&b), MK_MAX_PAYLOAD,
                                     MK_FRAME_MAGIC, &f, &used), 0);
    ck_assert_uint_eq(f.type, MK_F_TREE_NODES);
    ck_assert_uint_eq(f.len, 8 + 2 * MK_TREE_NODE_LEN);
    ck_assert_int_eq(mk_tree_nodes_decode(&f, &level, &count), 0);
    ck_assert_uint_eq(level, 1);
    ck_assert_uint_eq(count, 2);
    mk_tree_node m;
    ck_assert_int_eq(mk_tree_nodes_at(&f, 1, &m), 0);
    ck_assert_uint_eq(m.index, 6);
    ck_assert_uint_eq(m.right_lo, 0xffffffffffffffffull);
    ck_assert_uint_eq(m.right_hi, 9);
    /* Encoders refuse counts the decoders would refuse. */
    ck_assert_int_eq(mk_tree_query_encode(&b, 6, 1, idx, 0), MK_ELENGTH);
    ck_assert_int_eq(mk_tree_nodes_encode(&b, 6, 1, n, MK_MAX_TREE_NODES + 1), MK_ELENGTH);
    mk_buf_free(&b);
    /* Hand-made payloads for the decoders. */
    uint8_t p[8 + 8];
    mk_frame h = {MK_F_TREE_QUERY, 0, 0, 0, p};
    mk_wcur c;
    struct { uint32_t level, count, len; int want; } cases[] = {
        {0, 1, 16, MK_ERANGE}, {65, 1, 16, MK_ERANGE}, {3, 0, 8, MK_ELENGTH},
        {3, 2, 16, MK_ELENGTH}, {3, 1, 15, MK_ELENGTH}, {3, 1, 4, MK_ELENGTH},
        {3, MK_MAX_TREE_NODES + 1, 16, MK_ELENGTH}, {64, 1, 16, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memset(p, 0, sizeof p);
        mk_wcur_init(&c, p, sizeof p);
        mk_wcur_u32(&c, cases[k].level);
        mk_wcur_u32(&c, cases[k].count);
        h.len = cases[k].len;
        ck_assert_int_eq(mk_tree_query_decode(&h, &level, &count), cases[k].want);
    }
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");

    TCase *tg = tcase_create("golden");
    tcase_add_test(tg, test_s2_1_hello_golden);
    tcase_add_test(tg, test_s2_2_hello_ack_golden);
    tcase_add_test(tg, test_s9_7_tree_frames_roundtrip_and_malformed);
    tcase_add_test(tg, test_s4_3_log_golden);
    tcase_add_test(tg, test_s4_4_log_ack_golden);
    tcase_add_test(tg, test_s7_1_cp_begin_golden);
    tcase_add_test(tg, test_s7_2_cp_data_golden);
    tcase_add_test(tg, test_s7_2_cp_ref_golden);
    tcase_add_test(tg, test_s7_4_cp_commit_golden);
    tcase_add_test(tg, test_s8_1_nak_golden);
    tcase_add_test(tg, test_s7_5_cp_ack_golden);
    tcase_add_test(tg, test_s3_6_error_golden);
    tcase_add_test(tg, test_s7_5_digest_golden);
    suite_add_tcase(s, tg);

    TCase *tf = tcase_create("framing");
    tcase_set_timeout(tf, 60);
    tcase_add_test(tf, test_s3_1_header_layout);
    tcase_add_test(tf, test_s3_1_frame_open_close);
    tcase_add_test(tf, test_s3_1_frames_back_to_back);
    tcase_add_test(tf, test_s3_1_type_and_mode_names);
    tcase_add_test(tf, test_s3_2_checksum_covers_header_and_payload);
    tcase_add_loop_test(tf, test_s3_2_flip_every_byte, 0, GV_COUNT);
    tcase_add_test(tf, test_s3_3_max_payload);
    tcase_add_test(tf, test_s3_3_receiver_limit);
    tcase_add_test(tf, test_s3_4_bad_magic);
    tcase_add_test(tf, test_s3_4_bad_version);
    tcase_add_test(tf, test_s3_4_nonzero_flags);
    tcase_add_test(tf, test_s3_4_length_over_max_header_only);
    tcase_add_test(tf, test_s3_4_validation_order);
    tcase_add_loop_test(tf, test_s3_4_truncated_every_prefix, 0, GV_COUNT);
    tcase_add_test(tf, test_s3_4_trailing_bytes_ignored);
    tcase_add_test(tf, test_s3_1_recv_any_split);
    tcase_add_test(tf, test_s3_4_recv_stops_at_damage);
    suite_add_tcase(s, tf);

    TCase *tp = tcase_create("payloads");
    tcase_add_test(tp, test_s3_4_payload_length_wrong_for_type);
    tcase_add_test(tp, test_s2_1_hello_length_wrong);
    tcase_add_test(tp, test_s2_1_hello_reserved_nonzero);
    tcase_add_test(tp, test_s2_1_hello_bad_block_size);
    tcase_add_test(tp, test_s2_1_hello_bad_mode);
    tcase_add_test(tp, test_s2_1_hello_nblocks_range);
    tcase_add_test(tp, test_s2_2_hello_ack_reserved_nonzero);
    tcase_add_test(tp, test_s4_3_log_length_wrong);
    tcase_add_test(tp, test_s4_3_log_zero_length);
    tcase_add_test(tp, test_s4_3_log_tid_zero);
    tcase_add_test(tp, test_s4_3_log_reserved_nonzero);
    tcase_add_test(tp, test_s4_4_log_ack_length_wrong);
    tcase_add_test(tp, test_s7_1_cp_begin_length_wrong);
    tcase_add_test(tp, test_s7_2_cp_data_block_size_mismatch);
    tcase_add_test(tp, test_s7_2_cp_ref_count_zero);
    tcase_add_test(tp, test_s7_2_cp_ref_count_over_max);
    tcase_add_test(tp, test_s7_2_cp_ref_count_length_mismatch);
    tcase_add_test(tp, test_s7_2_cp_ref_reserved_nonzero);
    tcase_add_test(tp, test_s7_2_cp_ref_roundtrip_many);
    tcase_add_test(tp, test_s7_4_cp_commit_length_wrong);
    tcase_add_test(tp, test_s7_5_cp_ack_length_wrong);
    tcase_add_test(tp, test_s8_1_nak_reserved_and_length);
    tcase_add_test(tp, test_s3_6_error_msglen_over_max);
    tcase_add_test(tp, test_s3_6_error_length_wrong);
    tcase_add_test(tp, test_s3_6_error_any_code_accepted);
    tcase_add_test(tp, test_s3_6_error_encode_message);
    suite_add_tcase(s, tp);

    TCase *tx = tcase_create("geometry");
    tcase_set_timeout(tx, 60);
    tcase_add_test(tx, test_s4_2_geom_aligned_whole_blocks);
    tcase_add_test(tx, test_s4_2_geom_unaligned_head_slots_tail);
    tcase_add_test(tx, test_s4_2_geom_inside_one_block);
    tcase_add_test(tx, test_s4_2_geom_ends_on_boundary);
    tcase_add_test(tx, test_s4_2_geom_volume_last_byte);
    tcase_add_test(tx, test_s4_2_geom_invariants);
    suite_add_tcase(s, tx);
    return s;
}


int main(void) { return mk_test_run(wire_suite()); }
