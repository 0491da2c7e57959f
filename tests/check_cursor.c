/*
 * check_cursor.c - the bounds-checked cursor (mk_cursor.h), i.e. the wire
 * encoding rules every frame and record relies on (SPEC.md section 3, named
 * "3.0" here): integers are fixed-width little-endian, and a read or write
 * that does not fit fails with a negative mk_err and leaves the cursor
 * exactly as it was.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mk_cursor.h"
#include "mk_err.h"
#include "mk_test.h"

static const size_t widths[] = {1, 2, 4, 8};

/* Reads one integer of width w (1, 2, 4, 8) through the public API and
 * widens it; the output variable starts as a sentinel so a failed read can
 * be checked for not having written it. */
static int read_w(mk_rcur *c, size_t w, uint64_t *out)
{
    int rc = -1000;
    switch (w) {
    case 1: {
        uint8_t v = 0xA5;
        rc = mk_rcur_u8(c, &v);
        *out = v;
        break;
    }
    case 2: {
        uint16_t v = 0xA5A5;
        rc = mk_rcur_u16(c, &v);
        *out = v;
        break;
    }
    case 4: {
        uint32_t v = 0xA5A5A5A5u;
        rc = mk_rcur_u32(c, &v);
        *out = v;
        break;
    }
    case 8: {
        uint64_t v = 0xA5A5A5A5A5A5A5A5ull;
        rc = mk_rcur_u64(c, &v);
        *out = v;
        break;
    }
    }
    return rc;
}

static uint64_t sentinel(size_t w)
{
    return w == 8 ? UINT64_MAX / 0xFF * 0xA5 : (UINT64_MAX >> (64 - 8 * w)) / 0xFF * 0xA5;
}

static int write_w(mk_wcur *c, size_t w, uint64_t v)
{
    switch (w) {
    case 1: return mk_wcur_u8(c, (uint8_t)v);
    case 2: return mk_wcur_u16(c, (uint16_t)v);
    case 4: return mk_wcur_u32(c, (uint32_t)v);
    case 8: return mk_wcur_u64(c, v);
    }
    return -1000;
}

/* ---- reads -------------------------------------------------------------- */

START_TEST(test_s3_0_read_widths_little_endian)
{
    uint8_t b[32];
    size_t n = mk_test_unhex("ab"
                             "3412"
                             "78563412"
                             "efcdab8967452301"
                             "feffffff"
                             "00000080"
                             "ffffff7f",
                             b, sizeof b);
    ck_assert_uint_eq(n, 27);
    mk_rcur c;
    mk_rcur_init(&c, b, n);
    ck_assert_uint_eq(mk_rcur_left(&c), 27);

    uint8_t v8;
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    int32_t i32;
    ck_assert_int_eq(mk_rcur_u8(&c, &v8), 0);
    ck_assert_uint_eq(v8, 0xAB);
    ck_assert_uint_eq(c.pos, 1);
    ck_assert_int_eq(mk_rcur_u16(&c, &v16), 0);
    ck_assert_uint_eq(v16, 0x1234);
    ck_assert_uint_eq(c.pos, 3);
    ck_assert_int_eq(mk_rcur_u32(&c, &v32), 0);
    ck_assert_uint_eq(v32, 0x12345678u);
    ck_assert_uint_eq(c.pos, 7);
    ck_assert_int_eq(mk_rcur_u64(&c, &v64), 0);
    ck_assert_uint_eq(v64, 0x0123456789ABCDEFull);
    ck_assert_uint_eq(c.pos, 15);
    ck_assert_int_eq(mk_rcur_i32(&c, &i32), 0);
    ck_assert_int_eq(i32, -2);
    ck_assert_int_eq(mk_rcur_i32(&c, &i32), 0);
    ck_assert_int_eq(i32, INT32_MIN);
    ck_assert_int_eq(mk_rcur_i32(&c, &i32), 0);
    ck_assert_int_eq(i32, INT32_MAX);
    ck_assert_uint_eq(c.pos, 27);
    ck_assert_uint_eq(mk_rcur_left(&c), 0);
}
END_TEST

START_TEST(test_s3_0_read_extremes)
{
    uint8_t b[8];
    mk_rcur c;
    uint64_t v;
    for (size_t k = 0; k < 4; k++) {
        size_t w = widths[k];
        memset(b, 0xFF, sizeof b);
        mk_rcur_init(&c, b, w);
        ck_assert_int_eq(read_w(&c, w, &v), 0);
        ck_assert_uint_eq(v, w == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * w)) - 1);
        memset(b, 0, sizeof b);
        mk_rcur_init(&c, b, w);
        ck_assert_int_eq(read_w(&c, w, &v), 0);
        ck_assert_uint_eq(v, 0);
    }
}
END_TEST

/* For every buffer length 0..12, every start position and every width, a
 * read succeeds exactly when the bytes are there; a failed one returns
 * MK_ETRUNC and leaves pos and the output variable untouched. */
START_TEST(test_s3_0_read_exact_fit_and_one_short)
{
    uint8_t b[12];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)(0x10 + i);
    for (size_t len = 0; len <= sizeof b; len++) {
        /* exact-size heap copy so an over-read is seen by valgrind/ASan */
        uint8_t *h = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(h);
        memcpy(h, b, len);
        for (size_t start = 0; start <= len; start++) {
            for (size_t k = 0; k < 4; k++) {
                size_t w = widths[k];
                mk_rcur c;
                mk_rcur_init(&c, h, len);
                ck_assert_int_eq(mk_rcur_skip(&c, start), 0);
                uint64_t v = 0;
                int rc = read_w(&c, w, &v);
                if (len - start >= w) {
                    ck_assert_int_eq(rc, 0);
                    ck_assert_uint_eq(c.pos, start + w);
                    uint64_t want = 0;
                    for (size_t j = w; j-- > 0;)
                        want = want << 8 | b[start + j];
                    ck_assert_uint_eq(v, want);
                } else {
                    ck_assert_int_eq(rc, MK_ETRUNC);
                    ck_assert_uint_eq(c.pos, start);
                    ck_assert_uint_eq(v, sentinel(w));
                }
                /* i32 is u32 reinterpreted: same bounds */
                mk_rcur_init(&c, h, len);
                ck_assert_int_eq(mk_rcur_skip(&c, start), 0);
                int32_t s = 77;
                rc = mk_rcur_i32(&c, &s);
                if (len - start >= 4) {
                    ck_assert_int_eq(rc, 0);
                    ck_assert_uint_eq(c.pos, start + 4);
                } else {
                    ck_assert_int_eq(rc, MK_ETRUNC);
                    ck_assert_uint_eq(c.pos, start);
                    ck_assert_int_eq(s, 77);
                }
            }
        }
        free(h);
    }
}
END_TEST

START_TEST(test_s3_0_read_null_buffer)
{
    mk_rcur c;
    mk_rcur_init(&c, NULL, 100);
    ck_assert_uint_eq(mk_rcur_left(&c), 0);
    uint8_t v = 9;
    ck_assert_int_eq(mk_rcur_u8(&c, &v), MK_ETRUNC);
    ck_assert_uint_eq(v, 9);
    ck_assert_int_eq(mk_rcur_skip(&c, 0), 0);
    ck_assert_int_eq(mk_rcur_skip(&c, 1), MK_ETRUNC);
    ck_assert_uint_eq(c.pos, 0);
}
END_TEST

START_TEST(test_s3_0_copy_take_skip)
{
    uint8_t b[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint8_t out[16];
    const uint8_t *p = NULL;
    mk_rcur c;
    mk_rcur_init(&c, b, sizeof b);

    memset(out, 0xEE, sizeof out);
    ck_assert_int_eq(mk_rcur_copy(&c, out, 3), 0);
    ck_assert_mem_eq(out, b, 3);
    ck_assert_uint_eq(out[3], 0xEE);
    ck_assert_uint_eq(c.pos, 3);

    ck_assert_int_eq(mk_rcur_take(&c, 4, &p), 0);
    ck_assert_ptr_eq(p, b + 3); /* borrowed in place, not copied */
    ck_assert_uint_eq(c.pos, 7);

    ck_assert_int_eq(mk_rcur_skip(&c, 2), 0);
    ck_assert_uint_eq(c.pos, 9);

    /* one short: all three fail with pos, out and p unchanged */
    memset(out, 0xEE, sizeof out);
    ck_assert_int_eq(mk_rcur_copy(&c, out, 2), MK_ETRUNC);
    ck_assert_uint_eq(out[0], 0xEE);
    ck_assert_uint_eq(c.pos, 9);
    p = NULL;
    ck_assert_int_eq(mk_rcur_take(&c, 2, &p), MK_ETRUNC);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(c.pos, 9);
    ck_assert_int_eq(mk_rcur_skip(&c, 2), MK_ETRUNC);
    ck_assert_uint_eq(c.pos, 9);
    /* a huge n must not wrap the bounds check */
    ck_assert_int_eq(mk_rcur_skip(&c, SIZE_MAX), MK_ETRUNC);
    ck_assert_int_eq(mk_rcur_take(&c, SIZE_MAX - 8, &p), MK_ETRUNC);
    ck_assert_uint_eq(c.pos, 9);

    /* exact fit, then zero-length operations at the end succeed */
    ck_assert_int_eq(mk_rcur_copy(&c, out, 1), 0);
    ck_assert_uint_eq(out[0], 9);
    ck_assert_uint_eq(mk_rcur_left(&c), 0);
    ck_assert_int_eq(mk_rcur_copy(&c, out, 0), 0);
    ck_assert_int_eq(mk_rcur_take(&c, 0, &p), 0);
    ck_assert_ptr_eq(p, b + 10);
    ck_assert_int_eq(mk_rcur_skip(&c, 0), 0);
    ck_assert_uint_eq(c.pos, 10);
}
END_TEST

START_TEST(test_s3_0_sub_cursor_bounds)
{
    uint8_t b[12];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)i;
    mk_rcur c, sub, sub2;
    mk_rcur_init(&c, b, sizeof b);
    ck_assert_int_eq(mk_rcur_skip(&c, 2), 0);

    ck_assert_int_eq(mk_rcur_sub(&c, 5, &sub), 0);
    ck_assert_uint_eq(c.pos, 7);
    ck_assert_ptr_eq(sub.buf, b + 2);
    ck_assert_uint_eq(sub.len, 5);
    ck_assert_uint_eq(sub.pos, 0);
    ck_assert_uint_eq(mk_rcur_left(&sub), 5);

    /* the sub-cursor is bounded by its own length, not the parent's */
    uint32_t v32;
    ck_assert_int_eq(mk_rcur_u32(&sub, &v32), 0);
    ck_assert_uint_eq(v32, 0x05040302u);
    uint16_t v16 = 0x1111;
    ck_assert_int_eq(mk_rcur_u16(&sub, &v16), MK_ETRUNC);
    ck_assert_uint_eq(v16, 0x1111);
    ck_assert_uint_eq(sub.pos, 4);
    uint8_t v8;
    ck_assert_int_eq(mk_rcur_u8(&sub, &v8), 0);
    ck_assert_uint_eq(v8, 6);
    ck_assert_uint_eq(mk_rcur_left(&sub), 0);
    ck_assert_int_eq(mk_rcur_u8(&sub, &v8), MK_ETRUNC);
    /* reading the sub never moved the parent */
    ck_assert_uint_eq(c.pos, 7);
    ck_assert_int_eq(mk_rcur_u8(&c, &v8), 0);
    ck_assert_uint_eq(v8, 7);

    /* a sub longer than what is left fails and leaves both untouched */
    memset(&sub2, 0x5A, sizeof sub2);
    ck_assert_int_eq(mk_rcur_sub(&c, 5, &sub2), MK_ETRUNC);
    ck_assert_uint_eq(c.pos, 8);
    ck_assert_uint_eq(sub2.pos, 0x5A5A5A5A5A5A5A5Aull & SIZE_MAX);

    /* exact fit and zero length */
    ck_assert_int_eq(mk_rcur_sub(&c, 4, &sub2), 0);
    ck_assert_uint_eq(mk_rcur_left(&sub2), 4);
    ck_assert_uint_eq(mk_rcur_left(&c), 0);
    ck_assert_int_eq(mk_rcur_sub(&c, 0, &sub2), 0);
    ck_assert_uint_eq(mk_rcur_left(&sub2), 0);
    ck_assert_int_eq(mk_rcur_u8(&sub2, &v8), MK_ETRUNC);

    /* nested sub of a sub */
    mk_rcur_init(&c, b, sizeof b);
    ck_assert_int_eq(mk_rcur_sub(&c, 8, &sub), 0);
    ck_assert_int_eq(mk_rcur_skip(&sub, 1), 0);
    ck_assert_int_eq(mk_rcur_sub(&sub, 8, &sub2), MK_ETRUNC);
    ck_assert_int_eq(mk_rcur_sub(&sub, 7, &sub2), 0);
    uint64_t v64;
    ck_assert_int_eq(mk_rcur_u64(&sub2, &v64), MK_ETRUNC);
    ck_assert_uint_eq(sub2.pos, 0);
}
END_TEST

START_TEST(test_s3_0_rcur_zero)
{
    uint8_t b[8] = {0, 0, 0, 0, 0, 0, 7, 0};
    mk_rcur c;
    mk_rcur_init(&c, b, sizeof b);
    ck_assert_int_eq(mk_rcur_zero(&c, 0), 0);
    ck_assert_uint_eq(c.pos, 0);
    ck_assert_int_eq(mk_rcur_zero(&c, 4), 0);
    ck_assert_uint_eq(c.pos, 4);
    /* the nonzero byte is the last of the span: MK_ERESERVED, nothing consumed */
    ck_assert_int_eq(mk_rcur_zero(&c, 3), MK_ERESERVED);
    ck_assert_uint_eq(c.pos, 4);
    ck_assert_int_eq(mk_rcur_zero(&c, 2), 0);
    ck_assert_uint_eq(c.pos, 6);
    /* nonzero first byte */
    ck_assert_int_eq(mk_rcur_zero(&c, 1), MK_ERESERVED);
    ck_assert_uint_eq(c.pos, 6);
    ck_assert_int_eq(mk_rcur_skip(&c, 1), 0);
    /* one short */
    ck_assert_int_eq(mk_rcur_zero(&c, 2), MK_ETRUNC);
    ck_assert_uint_eq(c.pos, 7);
    ck_assert_int_eq(mk_rcur_zero(&c, 1), 0);
    ck_assert_uint_eq(mk_rcur_left(&c), 0);

    /* every single nonzero byte position in a 4-byte reserved field */
    for (size_t i = 0; i < 4; i++) {
        uint8_t r[4] = {0, 0, 0, 0};
        for (unsigned bit = 0; bit < 8; bit++) {
            r[i] = (uint8_t)(1u << bit);
            mk_rcur_init(&c, r, 4);
            ck_assert_int_eq(mk_rcur_zero(&c, 4), MK_ERESERVED);
            ck_assert_uint_eq(c.pos, 0);
        }
    }
}
END_TEST

/* ---- writes ------------------------------------------------------------- */

START_TEST(test_s3_0_write_widths_little_endian)
{
    uint8_t b[40], want[40];
    memset(b, 0xCC, sizeof b);
    mk_wcur c;
    mk_wcur_init(&c, b, sizeof b);
    ck_assert_uint_eq(mk_wcur_left(&c), 40);
    ck_assert_int_eq(mk_wcur_u8(&c, 0xAB), 0);
    ck_assert_int_eq(mk_wcur_u16(&c, 0x1234), 0);
    ck_assert_int_eq(mk_wcur_u32(&c, 0x12345678u), 0);
    ck_assert_int_eq(mk_wcur_u64(&c, 0x0123456789ABCDEFull), 0);
    ck_assert_int_eq(mk_wcur_i32(&c, -2), 0);
    ck_assert_int_eq(mk_wcur_i32(&c, INT32_MIN), 0);
    ck_assert_int_eq(mk_wcur_bytes(&c, "xyz", 3), 0);
    ck_assert_int_eq(mk_wcur_zero(&c, 2), 0);
    ck_assert_uint_eq(c.pos, 28);
    ck_assert_uint_eq(mk_wcur_left(&c), 12);
    size_t n = mk_test_unhex("ab"
                             "3412"
                             "78563412"
                             "efcdab8967452301"
                             "feffffff"
                             "00000080"
                             "78797a"
                             "0000"
                             "cccccccccccccccccccccccc",
                             want, sizeof want);
    ck_assert_uint_eq(n, 40);
    ck_assert_mem_eq(b, want, 40);
}
END_TEST

/* For every capacity and start position a write succeeds exactly when it
 * fits; a failed one leaves pos and every byte of the buffer untouched. */
START_TEST(test_s3_0_write_exact_fit_and_one_short)
{
    for (size_t cap = 0; cap <= 12; cap++) {
        for (size_t start = 0; start <= cap; start++) {
            for (size_t k = 0; k < 5; k++) {
                size_t w = k < 4 ? widths[k] : 4; /* k == 4: i32 */
                uint8_t b[16];
                memset(b, 0xCC, sizeof b);
                mk_wcur c;
                mk_wcur_init(&c, b, cap);
                ck_assert_int_eq(mk_wcur_zero(&c, start), 0);
                uint64_t v = 0x8877665544332211ull;
                int rc = k < 4 ? write_w(&c, w, v) : mk_wcur_i32(&c, -1);
                if (cap - start >= w) {
                    ck_assert_int_eq(rc, 0);
                    ck_assert_uint_eq(c.pos, start + w);
                    for (size_t j = 0; j < w; j++)
                        ck_assert_uint_eq(b[start + j],
                                          k < 4 ? (uint8_t)(v >> (8 * j)) : 0xFF);
                    for (size_t j = start + w; j < sizeof b; j++)
                        ck_assert_uint_eq(b[j], 0xCC);
                } else {
                    ck_assert_int_eq(rc, MK_ELENGTH);
                    ck_assert_uint_eq(c.pos, start);
                    for (size_t j = start; j < sizeof b; j++)
                        ck_assert_uint_eq(b[j], 0xCC);
                }
            }
        }
    }
}
END_TEST

START_TEST(test_s3_0_write_bytes_zero_reserve)
{
    uint8_t b[10];
    memset(b, 0xCC, sizeof b);
    mk_wcur c;
    uint8_t *p = NULL;
    mk_wcur_init(&c, b, 8);

    ck_assert_int_eq(mk_wcur_bytes(&c, "abc", 3), 0);
    ck_assert_int_eq(mk_wcur_reserve(&c, 2, &p), 0);
    ck_assert_ptr_eq(p, b + 3);
    ck_assert_uint_eq(c.pos, 5);
    ck_assert_uint_eq(b[3], 0xCC); /* reserve does not write */
    p[0] = 'd';
    p[1] = 'e';

    /* one short: all fail with pos and bytes unchanged */
    uint8_t *q = NULL;
    ck_assert_int_eq(mk_wcur_bytes(&c, "wxyz", 4), MK_ELENGTH);
    ck_assert_int_eq(mk_wcur_zero(&c, 4), MK_ELENGTH);
    ck_assert_int_eq(mk_wcur_reserve(&c, 4, &q), MK_ELENGTH);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(mk_wcur_reserve(&c, SIZE_MAX, &q), MK_ELENGTH);
    ck_assert_uint_eq(c.pos, 5);
    ck_assert_uint_eq(b[5], 0xCC);
    ck_assert_uint_eq(b[6], 0xCC);
    ck_assert_uint_eq(b[7], 0xCC);

    /* exact fit; zero-length at the end */
    ck_assert_int_eq(mk_wcur_zero(&c, 3), 0);
    ck_assert_uint_eq(mk_wcur_left(&c), 0);
    ck_assert_int_eq(mk_wcur_bytes(&c, "", 0), 0);
    ck_assert_int_eq(mk_wcur_zero(&c, 0), 0);
    ck_assert_int_eq(mk_wcur_u8(&c, 1), MK_ELENGTH);
    ck_assert_mem_eq(b, "abcde\0\0\0", 8);
    ck_assert_uint_eq(b[8], 0xCC); /* never wrote past cap */
    ck_assert_uint_eq(b[9], 0xCC);

    mk_wcur_init(&c, NULL, 50);
    ck_assert_uint_eq(mk_wcur_left(&c), 0);
    ck_assert_int_eq(mk_wcur_u8(&c, 1), MK_ELENGTH);
}
END_TEST

START_TEST(test_s3_0_patch_u32_bounds)
{
    uint8_t b[16];
    memset(b, 0xCC, sizeof b);
    mk_wcur c;
    mk_wcur_init(&c, b, sizeof b);
    ck_assert_int_eq(mk_wcur_u64(&c, 0), 0);
    ck_assert_uint_eq(c.pos, 8);

    ck_assert_int_eq(mk_wcur_patch_u32(&c, 0, 0x04030201u), 0);
    ck_assert_int_eq(mk_wcur_patch_u32(&c, 4, 0x08070605u), 0); /* ends at pos */
    ck_assert_mem_eq(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    ck_assert_uint_eq(c.pos, 8); /* patching does not move the cursor */

    /* only already-written bytes may be patched */
    size_t bad[] = {5, 7, 8, 9, 12, 16, 100, SIZE_MAX - 3, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(mk_wcur_patch_u32(&c, bad[i], 0xFFFFFFFFu), MK_ELENGTH);
        ck_assert_uint_eq(c.pos, 8);
    }
    ck_assert_mem_eq(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    for (size_t i = 8; i < sizeof b; i++)
        ck_assert_uint_eq(b[i], 0xCC);

    /* fewer than 4 bytes written: nothing is patchable */
    mk_wcur_init(&c, b, sizeof b);
    ck_assert_int_eq(mk_wcur_patch_u32(&c, 0, 1), MK_ELENGTH);
    ck_assert_int_eq(mk_wcur_u16(&c, 0), 0);
    ck_assert_int_eq(mk_wcur_u8(&c, 0), 0);
    ck_assert_int_eq(mk_wcur_patch_u32(&c, 0, 1), MK_ELENGTH);
    ck_assert_int_eq(mk_wcur_u8(&c, 0), 0);
    ck_assert_int_eq(mk_wcur_patch_u32(&c, 0, 0xA1B2C3D4u), 0);
    ck_assert_mem_eq(b, "\xD4\xC3\xB2\xA1", 4);
}
END_TEST

START_TEST(test_s3_0_le64_helpers)
{
    uint8_t b[8];
    mk_put_le64(b, 0x0123456789ABCDEFull);
    ck_assert_mem_eq(b, "\xEF\xCD\xAB\x89\x67\x45\x23\x01", 8);
    ck_assert_uint_eq(mk_get_le64(b), 0x0123456789ABCDEFull);
    mk_put_le64(b, UINT64_MAX);
    ck_assert_uint_eq(mk_get_le64(b), UINT64_MAX);
    mk_put_le64(b, 0);
    ck_assert_uint_eq(mk_get_le64(b), 0);
}
END_TEST

/* Write then read back a long mixed sequence; the reader sees exactly what
 * the writer wrote, and the encoding matches an independent LE encoder. */
START_TEST(test_s3_0_roundtrip_mixed)
{
    enum { N = 2000 };
    uint8_t *buf = malloc(N * 8);
    uint8_t *ref = malloc(N * 8);
    size_t *ws = malloc(N * sizeof *ws);
    uint64_t *vs = malloc(N * sizeof *vs);
    ck_assert(buf && ref && ws && vs);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    size_t rpos = 0;
    mk_wcur w;
    mk_wcur_init(&w, buf, N * 8);
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ws[i] = widths[x % 4];
        vs[i] = ws[i] == 8 ? x : x & ((UINT64_C(1) << (8 * ws[i])) - 1);
        ck_assert_int_eq(write_w(&w, ws[i], vs[i]), 0);
        for (size_t j = 0; j < ws[i]; j++)
            ref[rpos++] = (uint8_t)(vs[i] >> (8 * j));
    }
    ck_assert_uint_eq(w.pos, rpos);
    ck_assert_mem_eq(buf, ref, rpos);
    mk_rcur r;
    mk_rcur_init(&r, buf, w.pos);
    for (size_t i = 0; i < N; i++) {
        uint64_t v;
        ck_assert_int_eq(read_w(&r, ws[i], &v), 0);
        ck_assert_uint_eq(v, vs[i]);
    }
    ck_assert_uint_eq(mk_rcur_left(&r), 0);
    free(buf);
    free(ref);
    free(ws);
    free(vs);
}
END_TEST

static Suite *cursor_suite(void)
{
    Suite *s = suite_create("cursor");
    TCase *tr = tcase_create("read");
    tcase_add_test(tr, test_s3_0_read_widths_little_endian);
    tcase_add_test(tr, test_s3_0_read_extremes);
    tcase_add_test(tr, test_s3_0_read_exact_fit_and_one_short);
    tcase_add_test(tr, test_s3_0_read_null_buffer);
    tcase_add_test(tr, test_s3_0_copy_take_skip);
    tcase_add_test(tr, test_s3_0_sub_cursor_bounds);
    tcase_add_test(tr, test_s3_0_rcur_zero);
    suite_add_tcase(s, tr);
    TCase *tw = tcase_create("write");
    tcase_add_test(tw, test_s3_0_write_widths_little_endian);
    tcase_add_test(tw, test_s3_0_write_exact_fit_and_one_short);
    tcase_add_test(tw, test_s3_0_write_bytes_zero_reserve);
    tcase_add_test(tw, test_s3_0_patch_u32_bounds);
    tcase_add_test(tw, test_s3_0_le64_helpers);
    tcase_add_test(tw, test_s3_0_roundtrip_mixed);
    suite_add_tcase(s, tw);
    return s;
}

int main(void) { return mk_test_run(cursor_suite()); }
