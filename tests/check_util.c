/*
 * check_util.c - the error registry (SPEC.md section 12) and the support
 * modules under the engines: mk_buf, mk_map, mk_prng and the mk_file
 * storage seam (memory and POSIX backends).
 *
 * mk_buf, mk_map, mk_prng and mk_file implement no SPEC.md rule of their
 * own, so their tests carry section "0" (test_s0_...): implementation
 * infrastructure, not a protocol claim.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#endif
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mk_buf.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_map.h"
#include "mk_prng.h"
#include "mk_test.h"

/* ---- 12 error registry ------------------------------------------------------ */

START_TEST(test_s12_error_table_roundtrip)
{
    int n = 0;
#define CHECK_ENTRY(name, num, msg)                                            \
    do {                                                                       \
        ck_assert_int_eq(MK_##name, -(num));                                   \
        ck_assert_int_lt(MK_##name, 0);                                        \
        ck_assert_str_eq(mk_strerror(MK_##name), msg);                         \
        ck_assert_str_eq(mk_errname(MK_##name), "MK_" #name);                  \
        ck_assert_int_eq(mk_errbyname("MK_" #name), MK_##name);                \
        ck_assert_int_eq(mk_errbyname(#name), MK_##name);                      \
        ck_assert_int_eq(mk_errbyname(mk_errname(MK_##name)), MK_##name);      \
        n++;                                                                   \
    } while (0);
    MK_ERRNO_MAP(CHECK_ENTRY)
#undef CHECK_ENTRY
    ck_assert_int_eq(n, 38);
}
END_TEST

/* Wire values are fixed forever (section 12): an entry may be appended but
 * never renumbered.  This is the registry as published, pinned. */
START_TEST(test_s12_wire_values_fixed)
{
    static const char *const names[] = {
        NULL,        "EINVAL",    "ENOMEM",   "EIO",       "ENOSPC",
        "EMAGIC",    "EVERSION",  "ETYPE",    "ELENGTH",   "ECHECKSUM",
        "ESEQ",      "ERESERVED", "ETRUNC",   "ESTATE",    "EPEER",
        "EVOLUME",   "ERANGE",    "EZEROLEN", "ETID",      "ENOTID",
        "ESLOT",     "EREFHASH",  "ECP",      "EDUPBLOCK", "ECOUNT",
        "EMODE",     "EAGAIN",    "ECLOSED",  "ETORN",     "ELOGLOST",
        "EDIVERGED", "EDIGEST",   "EUSAGE",   "EVERIFY",   "ETIMEOUT",
        "EREMOTE",   "EBLOCKSIZE", "ECORRUPT", "ECPFULL",
    };
    for (int v = 1; v < (int)(sizeof names / sizeof names[0]); v++) {
        ck_assert_msg(mk_errbyname(names[v]) == -v, "%s is not wire value %d", names[v], v);
        char full[32];
        snprintf(full, sizeof full, "MK_%s", names[v]);
        ck_assert_str_eq(mk_errname(-v), full);
    }
    ck_assert_int_eq(MK_OK, 0);
}
END_TEST

/* Names and messages are unique and non-empty; wire values are distinct. */
START_TEST(test_s12_names_messages_unique)
{
    static const struct { int code; const char *name, *msg; } t[] = {
#define ROW(name, num, msg) {MK_##name, "MK_" #name, msg},
        MK_ERRNO_MAP(ROW)
#undef ROW
    };
    size_t n = sizeof t / sizeof t[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_gt(strlen(t[i].msg), 0);
        ck_assert_str_ne(t[i].msg, "unknown error");
        ck_assert_str_ne(t[i].msg, "success");
        for (size_t j = i + 1; j < n; j++) {
            ck_assert_int_ne(t[i].code, t[j].code);
            ck_assert_str_ne(t[i].name, t[j].name);
            ck_assert_str_ne(t[i].msg, t[j].msg);
        }
    }
}
END_TEST

START_TEST(test_s12_unknown_codes)
{
    ck_assert_str_eq(mk_strerror(MK_OK), "success");
    ck_assert_str_eq(mk_errname(MK_OK), "MK_OK");
    static const int unknown[] = {-39, -40, -100, 1, 5, 38, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ck_assert_str_eq(mk_strerror(unknown[i]), "unknown error");
        ck_assert_str_eq(mk_errname(unknown[i]), "MK_EUNKNOWN");
    }
    static const char *const bad[] = {"", "MK_", "MK", "NOPE", "MK_NOPE",
                                      "eio", "mk_eio", "MK_eio", "EIO ",
                                      " EIO", "MK_MK_EIO", "EUNKNOWN",
                                      "MK_EUNKNOWN", "EINVALX", "EINVA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(mk_errbyname(bad[i]) == 0, "\"%s\" looked up", bad[i]);
    ck_assert_int_eq(mk_errbyname("MK_OK"), 0);
}
END_TEST

START_TEST(test_s12_from_errno)
{
    ck_assert_int_eq(mk_from_errno(ENOSPC), MK_ENOSPC);
    ck_assert_int_eq(mk_from_errno(EDQUOT), MK_ENOSPC);
    ck_assert_int_eq(mk_from_errno(ENOMEM), MK_ENOMEM);
    ck_assert_int_eq(mk_from_errno(EINVAL), MK_EINVAL);
    ck_assert_int_eq(mk_from_errno(EPIPE), MK_ECLOSED);
    ck_assert_int_eq(mk_from_errno(ECONNRESET), MK_ECLOSED);
    ck_assert_int_eq(mk_from_errno(ETIMEDOUT), MK_ETIMEOUT);
    ck_assert_int_eq(mk_from_errno(EAGAIN), MK_EAGAIN);
    ck_assert_int_eq(mk_from_errno(EIO), MK_EIO);
    ck_assert_int_eq(mk_from_errno(EBADF), MK_EIO);
    ck_assert_int_eq(mk_from_errno(0), MK_EIO);
}
END_TEST

/* ---- mk_buf ----------------------------------------------------------------- */

static uint8_t seqb(uint64_t i) { return (uint8_t)(i * 131 + (i >> 8)); }

START_TEST(test_s0_buf_empty)
{
    mk_buf b;
    mk_buf_init(&b);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    mk_buf_consume(&b, 10);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    mk_buf_clear(&b);
    mk_buf_free(&b);
    ck_assert_ptr_null(b.data);
    mk_buf_free(&b); /* twice is fine: free resets */
    ck_assert_int_eq(mk_buf_append(&b, "", 0), 0);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    mk_buf_free(&b);
}
END_TEST

START_TEST(test_s0_buf_fifo_append_consume)
{
    mk_buf b;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_buf_append(&b, "hello ", 6), 0);
    ck_assert_int_eq(mk_buf_append(&b, "world", 5), 0);
    ck_assert_uint_eq(mk_buf_len(&b), 11);
    ck_assert_mem_eq(mk_buf_peek(&b), "hello world", 11);
    mk_buf_consume(&b, 6);
    ck_assert_uint_eq(mk_buf_len(&b), 5);
    ck_assert_mem_eq(mk_buf_peek(&b), "world", 5);
    ck_assert_int_eq(mk_buf_append(&b, "!", 1), 0);
    ck_assert_mem_eq(mk_buf_peek(&b), "world!", 6);
    /* consuming everything resets to the front */
    mk_buf_consume(&b, 6);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    ck_assert_uint_eq(b.head, 0);
    ck_assert_uint_eq(b.tail, 0);
    /* consuming more than is there is clamped */
    ck_assert_int_eq(mk_buf_append(&b, "abc", 3), 0);
    mk_buf_consume(&b, 1000);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    ck_assert_uint_eq(b.head, 0);
    ck_assert_int_eq(mk_buf_append(&b, "xy", 2), 0);
    ck_assert_mem_eq(mk_buf_peek(&b), "xy", 2);
    mk_buf_consume(&b, SIZE_MAX);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    /* clear keeps the storage */
    ck_assert_int_eq(mk_buf_append(&b, "q", 1), 0);
    size_t cap = b.cap;
    mk_buf_clear(&b);
    ck_assert_uint_eq(mk_buf_len(&b), 0);
    ck_assert_uint_eq(b.cap, cap);
    mk_buf_free(&b);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_s0_buf_reserve_commit)
{
    mk_buf b;
    mk_wcur c;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_buf_append(&b, "ab", 2), 0);
    ck_assert_int_eq(mk_buf_reserve(&b, 100, &c), 0);
    ck_assert_uint_eq(mk_wcur_left(&c), 100); /* the cursor is exactly n */
    ck_assert_ptr_eq(c.buf, b.data + 2);
    ck_assert_uint_eq(mk_buf_len(&b), 2);      /* nothing live yet */
    ck_assert_int_eq(mk_wcur_bytes(&c, "cdef", 4), 0);
    ck_assert_int_eq(mk_wcur_zero(&c, 96), 0);
    ck_assert_int_eq(mk_wcur_u8(&c, 1), MK_ELENGTH);
    ck_assert_uint_eq(mk_buf_len(&b), 2);
    mk_buf_commit(&b, 3); /* only part of what was reserved */
    ck_assert_uint_eq(mk_buf_len(&b), 5);
    ck_assert_mem_eq(mk_buf_peek(&b), "abcde", 5);
    /* an abandoned reservation leaves nothing behind */
    ck_assert_int_eq(mk_buf_reserve(&b, 10, &c), 0);
    ck_assert_int_eq(mk_wcur_bytes(&c, "ZZZZ", 4), 0);
    ck_assert_int_eq(mk_buf_append(&b, "f", 1), 0);
    ck_assert_mem_eq(mk_buf_peek(&b), "abcdef", 6);
    mk_buf_free(&b);
}
END_TEST

START_TEST(test_s0_buf_grow_preserves_contents)
{
    mk_buf b;
    mk_buf_init(&b);
    uint8_t chunk[700];
    uint64_t wrote = 0, read = 0;
    for (size_t k = 1; wrote < 300000; k = k % 699 + 1) {
        for (size_t i = 0; i < k; i++)
            chunk[i] = seqb(wrote + i);
        ck_assert_int_eq(mk_buf_append(&b, chunk, k), 0);
        wrote += k;
        ck_assert_uint_eq(mk_buf_len(&b), wrote - read);
        ck_assert_uint_ge(b.cap, mk_buf_len(&b));
        if (k % 7 == 0) { /* drain a little now and then */
            const uint8_t *p = mk_buf_peek(&b);
            for (size_t i = 0; i < 5; i++)
                ck_assert_uint_eq(p[i], seqb(read + i));
            mk_buf_consume(&b, 5);
            read += 5;
        }
    }
    const uint8_t *p = mk_buf_peek(&b);
    for (uint64_t i = 0; i < wrote - read; i++)
        if (p[i] != seqb(read + i))
            ck_abort_msg("byte %llu lost in growth", (unsigned long long)(read + i));
    /* capacity grows by doubling from 4096 */
    ck_assert_uint_eq(b.cap & (b.cap - 1), 0);
    ck_assert_uint_ge(b.cap, 4096);
    mk_buf_free(&b);
}
END_TEST

/* Once the head has passed half the capacity, a reservation that does not
 * fit slides the live bytes to the front instead of growing. */
START_TEST(test_s0_buf_slide)
{
    mk_buf b;
    mk_wcur c;
    mk_buf_init(&b);
    uint8_t x[4096];
    for (size_t i = 0; i < sizeof x; i++)
        x[i] = seqb(i);
    ck_assert_int_eq(mk_buf_append(&b, x, sizeof x), 0);
    ck_assert_uint_eq(b.cap, 4096);
    mk_buf_consume(&b, 3000);
    ck_assert_int_eq(mk_buf_reserve(&b, 2000, &c), 0);
    ck_assert_uint_eq(b.cap, 4096); /* no growth */
    ck_assert_uint_eq(b.head, 0);
    ck_assert_uint_eq(mk_buf_len(&b), 1096);
    ck_assert_mem_eq(mk_buf_peek(&b), x + 3000, 1096);
    ck_assert_ptr_eq(c.buf, b.data + 1096);
    mk_buf_free(&b);

    /* head below half: grow, do not slide */
    mk_buf_init(&b);
    ck_assert_int_eq(mk_buf_append(&b, x, sizeof x), 0);
    mk_buf_consume(&b, 1000);
    ck_assert_int_eq(mk_buf_reserve(&b, 2000, &c), 0);
    ck_assert_uint_eq(b.cap, 8192);
    ck_assert_uint_eq(b.head, 1000);
    ck_assert_uint_eq(mk_buf_len(&b), 3096);
    ck_assert_mem_eq(mk_buf_peek(&b), x + 1000, 3096);
    /* slide and grow together when sliding alone is not enough */
    ck_assert_int_eq(mk_buf_append(&b, x, 2000), 0); /* tail 6096 */
    mk_buf_consume(&b, 3500); /* head 4500 >= 8192 / 2; live: x[404..2000) */
    ck_assert_uint_eq(mk_buf_len(&b), 1596);
    ck_assert_int_eq(mk_buf_reserve(&b, 8150, &c), 0);
    ck_assert_uint_eq(b.head, 0);
    ck_assert_uint_eq(b.cap, 16384);
    ck_assert_uint_eq(mk_buf_len(&b), 1596);
    ck_assert_mem_eq(mk_buf_peek(&b), x + 404, 1596);
    mk_buf_free(&b);
}
END_TEST

/* A long-lived queue grows with what is in flight, not with total
 * traffic. */
START_TEST(test_s0_buf_steady_state_bounded)
{
    mk_buf b;
    mk_buf_init(&b);
    uint8_t chunk[1000];
    uint64_t wrote = 0, read = 0;
    for (size_t i = 0; i < 500; i++)
        chunk[i] = seqb(wrote + i);
    ck_assert_int_eq(mk_buf_append(&b, chunk, 500), 0);
    wrote = 500;
    for (int round = 0; round < 20000; round++) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = seqb(wrote + i);
        ck_assert_int_eq(mk_buf_append(&b, chunk, sizeof chunk), 0);
        wrote += sizeof chunk;
        const uint8_t *p = mk_buf_peek(&b);
        ck_assert_uint_eq(p[0], seqb(read));
        ck_assert_uint_eq(p[999], seqb(read + 999));
        mk_buf_consume(&b, 1000);
        read += 1000;
        ck_assert_uint_eq(mk_buf_len(&b), 500);
    }
    ck_assert_uint_le(b.cap, 4096);
    mk_buf_free(&b);
}
END_TEST

START_TEST(test_s0_buf_reserve_enomem)
{
    mk_buf b;
    mk_wcur c;
    mk_buf_init(&b);
    ck_assert_int_eq(mk_buf_append(&b, "keep", 4), 0);
    ck_assert_int_eq(mk_buf_reserve(&b, SIZE_MAX, &c), MK_ENOMEM);
    ck_assert_int_eq(mk_buf_reserve(&b, SIZE_MAX / 2 + 2, &c), MK_ENOMEM);
    ck_assert_int_eq(mk_buf_append(&b, "x", SIZE_MAX - 3), MK_ENOMEM);
    ck_assert_uint_eq(mk_buf_len(&b), 4);
    ck_assert_mem_eq(mk_buf_peek(&b), "keep", 4);
    ck_assert_int_eq(mk_buf_append(&b, "!", 1), 0);
    ck_assert_mem_eq(mk_buf_peek(&b), "keep!", 5);
    mk_buf_free(&b);
}
END_TEST

/* ---- mk_map ----------------------------------------------------------------- */

START_TEST(test_s0_map_empty)
{
    mk_map m;
    mk_map_init(&m);
    uint64_t v = 77;
    ck_assert_int_eq(mk_map_get(&m, 0, &v), 0);
    ck_assert_int_eq(mk_map_get(&m, 12345, &v), 0);
    ck_assert_int_eq(mk_map_get(&m, UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 77);
    mk_map_clear(&m);
    ck_assert_uint_eq(m.count, 0);
    mk_map_free(&m);
    mk_map_free(&m);
}
END_TEST

START_TEST(test_s0_map_put_get_overwrite)
{
    mk_map m;
    mk_map_init(&m);
    uint64_t v = 0;
    ck_assert_int_eq(mk_map_put(&m, 0, 100), 0);
    ck_assert_int_eq(mk_map_put(&m, 1, 101), 0);
    ck_assert_int_eq(mk_map_put(&m, UINT64_MAX - 1, 102), 0);
    ck_assert_uint_eq(m.count, 3);
    ck_assert_int_eq(mk_map_get(&m, 0, &v), 1);
    ck_assert_uint_eq(v, 100);
    ck_assert_int_eq(mk_map_get(&m, 1, &v), 1);
    ck_assert_uint_eq(v, 101);
    ck_assert_int_eq(mk_map_get(&m, UINT64_MAX - 1, &v), 1);
    ck_assert_uint_eq(v, 102);
    /* overwrite: new value, same count */
    ck_assert_int_eq(mk_map_put(&m, 0, UINT64_MAX), 0);
    ck_assert_uint_eq(m.count, 3);
    ck_assert_int_eq(mk_map_get(&m, 0, &v), 1);
    ck_assert_uint_eq(v, UINT64_MAX);
    /* UINT64_MAX is the one key that is refused */
    ck_assert_int_eq(mk_map_put(&m, UINT64_MAX, 5), MK_EINVAL);
    ck_assert_uint_eq(m.count, 3);
    v = 9;
    ck_assert_int_eq(mk_map_get(&m, UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 9);
    ck_assert_int_eq(mk_map_get(&m, 2, &v), 0);
    mk_map_free(&m);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_uint_eq(m.cap, 0);
}
END_TEST

enum { MAP_N = 100000 };

/* Keys: 0..49999 (block numbers), a few extremes, and the rest spread over
 * the whole 64-bit range by an odd multiplier (a bijection, so distinct). */
static uint64_t *map_keys(void)
{
    uint64_t *k = malloc(MAP_N * sizeof *k);
    ck_assert_ptr_nonnull(k);
    size_t n = 0;
    for (uint64_t i = 0; i < 50000; i++)
        k[n++] = i;
    k[n++] = UINT64_MAX - 1;
    k[n++] = UINT64_MAX - 2;
    k[n++] = UINT64_C(1) << 63;
    k[n++] = UINT64_C(1) << 32;
    for (uint64_t i = 1; n < MAP_N; i++) {
        uint64_t x = i * 0x9E3779B97F4A7C15ull;
        if (x < (UINT64_C(1) << 33) || x >= UINT64_MAX - 2 || x == (UINT64_C(1) << 63))
            continue;
        k[n++] = x;
    }
    return k;
}

START_TEST(test_s0_map_100k_keys)
{
    uint64_t *k = map_keys();
    mk_map m;
    mk_map_init(&m);
    for (size_t i = 0; i < MAP_N; i++)
        ck_assert_int_eq(mk_map_put(&m, k[i], k[i] ^ 0x5555555555555555ull), 0);
    ck_assert_uint_eq(m.count, MAP_N);
    ck_assert_uint_le(m.count * 4, m.cap * 3); /* load stays under 3/4 */
    for (size_t i = 0; i < MAP_N; i++) {
        uint64_t v = 0;
        if (mk_map_get(&m, k[i], &v) != 1 || v != (k[i] ^ 0x5555555555555555ull))
            ck_abort_msg("key %llu lost", (unsigned long long)k[i]);
    }
    /* keys never inserted are absent */
    for (uint64_t key = 50000; key < 60000; key++) {
        uint64_t v = 42;
        ck_assert_int_eq(mk_map_get(&m, key, &v), 0);
        ck_assert_uint_eq(v, 42);
    }
    ck_assert_int_eq(mk_map_put(&m, UINT64_MAX, 1), MK_EINVAL);
    ck_assert_uint_eq(m.count, MAP_N);
    /* overwrite every key */
    for (size_t i = 0; i < MAP_N; i++)
        ck_assert_int_eq(mk_map_put(&m, k[i], ~k[i]), 0);
    ck_assert_uint_eq(m.count, MAP_N);
    for (size_t i = 0; i < MAP_N; i++) {
        uint64_t v = 0;
        if (mk_map_get(&m, k[i], &v) != 1 || v != ~k[i])
            ck_abort_msg("key %llu not overwritten", (unsigned long long)k[i]);
    }
    /* a large map's clear releases the table and empties it */
    mk_map_clear(&m);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_uint_eq(m.cap, 0);
    for (size_t i = 0; i < MAP_N; i += 97) {
        uint64_t v;
        ck_assert_int_eq(mk_map_get(&m, k[i], &v), 0);
    }
    /* and it is usable again */
    ck_assert_int_eq(mk_map_put(&m, 0, 1), 0);
    uint64_t v = 0;
    ck_assert_int_eq(mk_map_get(&m, 0, &v), 1);
    ck_assert_uint_eq(v, 1);
    ck_assert_uint_eq(m.count, 1);
    mk_map_free(&m);
    free(k);
}
END_TEST

START_TEST(test_s0_map_clear_small_keeps_table)
{
    mk_map m;
    mk_map_init(&m);
    for (uint64_t i = 0; i < 40; i++)
        ck_assert_int_eq(mk_map_put(&m, i * 1000, i), 0);
    size_t cap = m.cap;
    ck_assert_uint_gt(cap, 0);
    mk_map_clear(&m);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_uint_eq(m.cap, cap);
    for (uint64_t i = 0; i < 40; i++) {
        uint64_t v;
        ck_assert_int_eq(mk_map_get(&m, i * 1000, &v), 0);
    }
    /* refill after clear: no stale entry comes back */
    for (uint64_t i = 0; i < 40; i += 2)
        ck_assert_int_eq(mk_map_put(&m, i * 1000, i + 7), 0);
    ck_assert_uint_eq(m.count, 20);
    for (uint64_t i = 0; i < 40; i++) {
        uint64_t v = 0;
        ck_assert_int_eq(mk_map_get(&m, i * 1000, &v), i % 2 == 0);
        if (i % 2 == 0)
            ck_assert_uint_eq(v, i + 7);
    }
    mk_map_free(&m);
}
END_TEST

/* ---- mk_prng ---------------------------------------------------------------- */

/* An independent xoshiro256** seeded by splitmix64 (Blackman & Vigna's
 * reference algorithms), to pin mk_prng's exact output: a recorded seed
 * must replay the same run forever. */
static uint64_t ref_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t ref_next(uint64_t s[4])
{
    uint64_t r = ref_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return r;
}

START_TEST(test_s0_prng_reference_sequence)
{
    /* splitmix64 from 0: the published first four outputs */
    mk_prng r;
    mk_prng_seed(&r, 0);
    ck_assert_uint_eq(r.s[0], 0xe220a8397b1dcdafull);
    ck_assert_uint_eq(r.s[1], 0x6e789e6aa1b965f4ull);
    ck_assert_uint_eq(r.s[2], 0x06c45d188009454full);
    ck_assert_uint_eq(r.s[3], 0xf88bb8a8724c81ecull);

    static const uint64_t seeds[] = {0, 1, 0xDEADBEEF, UINT64_MAX};
    for (size_t k = 0; k < 4; k++) {
        uint64_t x = seeds[k], s[4];
        for (int i = 0; i < 4; i++)
            s[i] = ref_splitmix(&x);
        mk_prng_seed(&r, seeds[k]);
        for (int i = 0; i < 4; i++)
            ck_assert_uint_eq(r.s[i], s[i]);
        for (int i = 0; i < 1000; i++)
            ck_assert_uint_eq(mk_prng_next(&r), ref_next(s));
    }
}
END_TEST

START_TEST(test_s0_prng_same_seed_same_sequence)
{
    mk_prng a, b, c;
    mk_prng_seed(&a, 20261125);
    mk_prng_seed(&b, 20261125);
    mk_prng_seed(&c, 20261126);
    int differ = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = mk_prng_next(&a);
        ck_assert_uint_eq(x, mk_prng_next(&b));
        differ += x != mk_prng_next(&c);
    }
    ck_assert_int_gt(differ, 9990);
    /* derived draws replay too */
    mk_prng_seed(&a, 7);
    mk_prng_seed(&b, 7);
    for (int i = 0; i < 1000; i++) {
        ck_assert_uint_eq(mk_prng_below(&a, 1000 + i), mk_prng_below(&b, 1000 + i));
        ck_assert_int_eq(mk_prng_chance(&a, 1, 3), mk_prng_chance(&b, 1, 3));
    }
    uint8_t fa[100], fb[100];
    mk_prng_fill(&a, fa, sizeof fa);
    mk_prng_fill(&b, fb, sizeof fb);
    ck_assert_mem_eq(fa, fb, sizeof fa);
}
END_TEST

START_TEST(test_s0_prng_below_bounds)
{
    mk_prng r;
    mk_prng_seed(&r, 99);
    static const uint64_t ns[] = {1,
                                  2,
                                  3,
                                  7,
                                  10,
                                  1000,
                                  (UINT64_C(1) << 32) + 1,
                                  UINT64_C(1) << 63,
                                  (UINT64_C(1) << 63) + 1, /* ~half rejected */
                                  UINT64_MAX - 1,
                                  UINT64_MAX};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        uint64_t max = 0;
        for (int i = 0; i < 20000; i++) {
            uint64_t x = mk_prng_below(&r, ns[k]);
            ck_assert_uint_lt(x, ns[k]);
            if (x > max)
                max = x;
        }
        if (ns[k] == 1)
            ck_assert_uint_eq(max, 0);
        else if (ns[k] <= 1000)
            ck_assert_uint_eq(max, ns[k] - 1); /* the top value is reachable */
        else
            ck_assert_uint_gt(max, ns[k] / 2);
    }
    /* roughly uniform */
    uint32_t hist[10] = {0};
    for (int i = 0; i < 100000; i++)
        hist[mk_prng_below(&r, 10)]++;
    for (int i = 0; i < 10; i++) {
        ck_assert_uint_gt(hist[i], 9400);
        ck_assert_uint_lt(hist[i], 10600);
    }
}
END_TEST

START_TEST(test_s0_prng_chance)
{
    mk_prng r;
    mk_prng_seed(&r, 3);
    int hits = 0;
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(mk_prng_chance(&r, 0, 10), 0);
        ck_assert_int_eq(mk_prng_chance(&r, 10, 10), 1);
        ck_assert_int_eq(mk_prng_chance(&r, 1, 1), 1);
    }
    for (int i = 0; i < 100000; i++)
        hits += mk_prng_chance(&r, 1, 4);
    ck_assert_int_gt(hits, 24000);
    ck_assert_int_lt(hits, 26000);
}
END_TEST

START_TEST(test_s0_prng_fill)
{
    for (uint64_t n = 0; n <= 33; n++) {
        uint8_t buf[48], ref[48];
        memset(buf, 0xEE, sizeof buf);
        mk_prng a, b;
        mk_prng_seed(&a, 5);
        mk_prng_seed(&b, 5);
        mk_prng_fill(&a, buf, n);
        for (uint64_t i = n; i < sizeof buf; i++) /* exactly n bytes written */
            ck_assert_uint_eq(buf[i], 0xEE);
        /* the bytes are successive next() outputs in memory order */
        for (uint64_t i = 0; i < n; i += 8) {
            uint64_t x = mk_prng_next(&b);
            memcpy(ref + i, &x, 8);
        }
        ck_assert_mem_eq(buf, ref, n);
        /* and both generators are in the same state afterwards */
        ck_assert_uint_eq(mk_prng_next(&a), mk_prng_next(&b));
    }
}
END_TEST

/* ---- mk_file: memory and POSIX backends --------------------------------------- */

/* A file under test: _i == 0 memory, 1 POSIX in a mkdtemp directory. */
typedef struct fx {
    mk_file *f;
    int posix;
    char dir[64];
    char path[96];
} fx;

static const char *backend(const fx *x) { return x->posix ? "posix" : "mem"; }

static void fx_open(fx *x, int posix)
{
    memset(x, 0, sizeof *x);
    x->posix = posix;
    if (!posix) {
        ck_assert_int_eq(mk_file_mem("test/mem", &x->f), 0);
        return;
    }
    snprintf(x->dir, sizeof x->dir, "/tmp/mk_check_util_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/f.img", x->dir);
    ck_assert_int_eq(mk_file_open(x->path, 1, "test/posix", &x->f), 0);
}

static void fx_close(fx *x)
{
    mk_file_close(x->f);
    x->f = NULL;
    if (x->posix) {
        unlink(x->path);
        ck_assert_int_eq(rmdir(x->dir), 0);
    }
}

static uint64_t fsize(mk_file *f)
{
    uint64_t s = 12345;
    ck_assert_int_eq(mk_file_size(f, &s), 0);
    return s;
}

static void fill_pat(uint8_t *p, size_t n, uint64_t base)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(1 + (base + i) % 251); /* never zero */
}

START_TEST(test_s0_file_empty)
{
    fx x;
    fx_open(&x, _i);
    uint8_t buf[16];
    ck_assert_uint_eq(fsize(x.f), 0);
    ck_assert_int_eq(mk_file_pread(x.f, buf, sizeof buf, 0), 0);
    ck_assert_int_eq(mk_file_pread(x.f, buf, sizeof buf, 1 << 20), 0);
    memset(buf, 0xAA, sizeof buf);
    ck_assert_int_eq(mk_file_read_block(x.f, buf, sizeof buf, 0), 0);
    for (size_t i = 0; i < sizeof buf; i++)
        ck_assert_uint_eq(buf[i], 0);
    ck_assert_int_eq(mk_file_read_exact(x.f, buf, 1, 0), MK_ETRUNC);
    ck_assert_int_eq(mk_file_read_exact(x.f, buf, 0, 0), 0);
    ck_assert_int_eq(mk_file_sync(x.f), 0);
    fx_close(&x);
}
END_TEST

START_TEST(test_s0_file_pread_past_eof_short)
{
    fx x;
    fx_open(&x, _i);
    uint8_t w[100], r[256];
    fill_pat(w, sizeof w, 0);
    ck_assert_int_eq(mk_file_pwrite(x.f, w, sizeof w, 0), 0);
    ck_assert_uint_eq(fsize(x.f), 100);
    ck_assert_int_eq(mk_file_pread(x.f, r, 100, 0), 100);
    ck_assert_mem_eq(r, w, 100);
    /* short only at end of file */
    ck_assert_msg(mk_file_pread(x.f, r, 200, 0) == 100, "%s", backend(&x));
    ck_assert_mem_eq(r, w, 100);
    ck_assert_int_eq(mk_file_pread(x.f, r, 50, 80), 20);
    ck_assert_mem_eq(r, w + 80, 20);
    ck_assert_int_eq(mk_file_pread(x.f, r, 50, 99), 1);
    ck_assert_uint_eq(r[0], w[99]);
    ck_assert_int_eq(mk_file_pread(x.f, r, 50, 100), 0);
    ck_assert_int_eq(mk_file_pread(x.f, r, 50, 101), 0);
    ck_assert_int_eq(mk_file_pread(x.f, r, 50, UINT64_C(1) << 40), 0);
    ck_assert_int_eq(mk_file_pread(x.f, r, 0, 50), 0);
    fx_close(&x);
}
END_TEST

START_TEST(test_s0_file_read_block_zero_fill)
{
    fx x;
    fx_open(&x, _i);
    uint8_t w[100], r[64];
    fill_pat(w, sizeof w, 0);
    ck_assert_int_eq(mk_file_pwrite(x.f, w, sizeof w, 0), 0);
    /* straddling the end: data, then zeros */
    memset(r, 0xAA, sizeof r);
    ck_assert_int_eq(mk_file_read_block(x.f, r, 64, 80), 0);
    ck_assert_mem_eq(r, w + 80, 20);
    for (size_t i = 20; i < 64; i++)
        ck_assert_msg(r[i] == 0, "%s: byte %zu not zero", backend(&x), i);
    /* wholly past the end: all zeros */
    memset(r, 0xAA, sizeof r);
    ck_assert_int_eq(mk_file_read_block(x.f, r, 64, 4096), 0);
    for (size_t i = 0; i < 64; i++)
        ck_assert_uint_eq(r[i], 0);
    /* wholly inside */
    ck_assert_int_eq(mk_file_read_block(x.f, r, 64, 10), 0);
    ck_assert_mem_eq(r, w + 10, 64);
    ck_assert_uint_eq(fsize(x.f), 100); /* reading never extends */
    fx_close(&x);
}
END_TEST

START_TEST(test_s0_file_read_exact_trunc)
{
    fx x;
    fx_open(&x, _i);
    uint8_t w[100], r[64];
    fill_pat(w, sizeof w, 0);
    ck_assert_int_eq(mk_file_pwrite(x.f, w, sizeof w, 0), 0);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 20, 80), 0);
    ck_assert_mem_eq(r, w + 80, 20);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 21, 80), MK_ETRUNC);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 64, 80), MK_ETRUNC);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 1, 100), MK_ETRUNC);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 1, 5000), MK_ETRUNC);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 0, 100), 0);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 64, 0), 0);
    ck_assert_mem_eq(r, w, 64);
    fx_close(&x);
}
END_TEST

START_TEST(test_s0_file_sparse_write_and_overwrite)
{
    fx x;
    fx_open(&x, _i);
    enum { OFF = 70001, LEN = 200003 };
    uint8_t *w = malloc(LEN), *r = malloc(OFF + LEN);
    ck_assert(w && r);
    fill_pat(w, LEN, 3);
    ck_assert_int_eq(mk_file_pwrite(x.f, w, LEN, OFF), 0);
    ck_assert_uint_eq(fsize(x.f), OFF + LEN);
    /* the hole reads as zeros */
    ck_assert_int_eq(mk_file_read_exact(x.f, r, OFF + LEN, 0), 0);
    for (size_t i = 0; i < OFF; i++)
        if (r[i] != 0)
            ck_abort_msg("%s: hole byte %zu is %u", backend(&x), i, r[i]);
    ck_assert_int_eq(memcmp(r + OFF, w, LEN), 0);
    /* overwrite in the middle: size unchanged, neighbours intact */
    ck_assert_int_eq(mk_file_pwrite(x.f, "MIDDLE", 6, OFF + 1000), 0);
    ck_assert_uint_eq(fsize(x.f), OFF + LEN);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 8, OFF + 999), 0);
    ck_assert_uint_eq(r[0], w[999]);
    ck_assert_mem_eq(r + 1, "MIDDLE", 6);
    ck_assert_uint_eq(r[7], w[1006]);
    /* zero-length write changes nothing */
    ck_assert_int_eq(mk_file_pwrite(x.f, w, 0, 0), 0);
    ck_assert_uint_eq(fsize(x.f), OFF + LEN);
    /* extend by a write just past the end */
    ck_assert_int_eq(mk_file_pwrite(x.f, "Z", 1, OFF + LEN), 0);
    ck_assert_uint_eq(fsize(x.f), OFF + LEN + 1);
    ck_assert_int_eq(mk_file_sync(x.f), 0);
    free(w);
    free(r);
    fx_close(&x);
}
END_TEST

START_TEST(test_s0_file_truncate)
{
    fx x;
    fx_open(&x, _i);
    uint8_t w[1000], r[1000];
    fill_pat(w, sizeof w, 0);
    ck_assert_int_eq(mk_file_pwrite(x.f, w, sizeof w, 0), 0);
    ck_assert_int_eq(mk_file_truncate(x.f, 100), 0);
    ck_assert_uint_eq(fsize(x.f), 100);
    ck_assert_int_eq(mk_file_pread(x.f, r, sizeof r, 0), 100);
    ck_assert_mem_eq(r, w, 100);
    /* growing again brings back zeros, never the old bytes */
    ck_assert_int_eq(mk_file_truncate(x.f, 500), 0);
    ck_assert_uint_eq(fsize(x.f), 500);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 500, 0), 0);
    ck_assert_mem_eq(r, w, 100);
    for (size_t i = 100; i < 500; i++)
        ck_assert_msg(r[i] == 0, "%s: byte %zu resurrected after truncate", backend(&x), i);
    /* a write past a shrink point also leaves a zero gap */
    ck_assert_int_eq(mk_file_truncate(x.f, 10), 0);
    ck_assert_int_eq(mk_file_pwrite(x.f, "E", 1, 999), 0);
    ck_assert_uint_eq(fsize(x.f), 1000);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 1000, 0), 0);
    ck_assert_mem_eq(r, w, 10);
    for (size_t i = 10; i < 999; i++)
        ck_assert_uint_eq(r[i], 0);
    ck_assert_uint_eq(r[999], 'E');
    /* to zero, and far beyond the initial capacity */
    ck_assert_int_eq(mk_file_truncate(x.f, 0), 0);
    ck_assert_uint_eq(fsize(x.f), 0);
    ck_assert_int_eq(mk_file_pread(x.f, r, 10, 0), 0);
    ck_assert_int_eq(mk_file_truncate(x.f, 300000), 0);
    ck_assert_uint_eq(fsize(x.f), 300000);
    ck_assert_int_eq(mk_file_read_exact(x.f, r, 1000, 299000), 0);
    for (size_t i = 0; i < 1000; i++)
        ck_assert_uint_eq(r[i], 0);
    fx_close(&x);
}
END_TEST

START_TEST(test_s0_file_name)
{
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("ref/dest/log", &f), 0);
    ck_assert_str_eq(f->name, "ref/dest/log");
    mk_file_close(f);
    ck_assert_int_eq(mk_file_mem(NULL, &f), 0);
    ck_assert_str_eq(f->name, "file");
    mk_file_close(f);
    char longname[100];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ck_assert_int_eq(mk_file_mem(longname, &f), 0);
    ck_assert_uint_eq(strlen(f->name), sizeof f->name - 1);
    ck_assert_int_eq(strncmp(f->name, longname, sizeof f->name - 1), 0);
    mk_file_close(f);
    mk_file_close(NULL);
}
END_TEST

START_TEST(test_s0_file_mem_offset_overflow)
{
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("m", &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "abcd", 4, UINT64_MAX - 1), MK_ERANGE);
    ck_assert_int_eq(mk_file_pwrite(f, "abcd", 4, UINT64_MAX - 2), MK_ERANGE);
    ck_assert_uint_eq(fsize(f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "ok", 2, 0), 0);
    ck_assert_uint_eq(fsize(f), 2);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s0_file_posix_open_and_persist)
{
    char dir[64], path[96], missing[96];
    snprintf(dir, sizeof dir, "/tmp/mk_check_util_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/vol.img", dir);
    snprintf(missing, sizeof missing, "%s/nope/vol.img", dir);
    mk_file *f = NULL;
    /* absent without create: an error, and nothing is created */
    ck_assert_int_lt(mk_file_open(path, 0, "v", &f), 0);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_lt(mk_file_open(missing, 1, "v", &f), 0);
    /* a directory is not a file */
    ck_assert_int_lt(mk_file_open(dir, 0, "v", &f), 0);

    ck_assert_int_eq(mk_file_open(path, 1, "ref/src/vol", &f), 0);
    ck_assert_str_eq(f->name, "ref/src/vol");
    ck_assert_int_eq(mk_file_pwrite(f, "persist", 7, 4096), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    mk_file_close(f);

    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, 4096 + 7);

    /* reopen without create: the data is there */
    ck_assert_int_eq(mk_file_open(path, 0, "v", &f), 0);
    ck_assert_uint_eq(fsize(f), 4103);
    uint8_t r[8];
    ck_assert_int_eq(mk_file_read_exact(f, r, 7, 4096), 0);
    ck_assert_mem_eq(r, "persist", 7);
    ck_assert_int_eq(mk_file_truncate(f, 4100), 0);
    mk_file_close(f);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, 4100);
    /* reopen with create keeps the contents (no O_TRUNC) */
    ck_assert_int_eq(mk_file_open(path, 1, "v", &f), 0);
    ck_assert_uint_eq(fsize(f), 4100);
    ck_assert_int_eq(mk_file_read_exact(f, r, 4, 4096), 0);
    ck_assert_mem_eq(r, "pers", 4);
    /* an offset no off_t can hold is an error, not a write */
    ck_assert_int_lt(mk_file_pwrite(f, "x", 1, UINT64_MAX - 10), 0);
    ck_assert_uint_eq(fsize(f), 4100);
    mk_file_close(f);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- mk_file: crash simulation (memory backend) ------------------------------- */

START_TEST(test_s0_file_mem_crash_discards_unsynced)
{
    mk_crash_clock clk;
    memset(&clk, 0, sizeof clk);
    mk_file *f;
    ck_assert_int_eq(mk_file_mem_crashable("c", &clk, &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "AAAAAAAA", 8, 0), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "BB", 2, 2), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "CCCC", 4, 8), 0);
    ck_assert_uint_eq(fsize(f), 12);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), 8);
    uint8_t r[16];
    memset(r, 0xEE, sizeof r);
    ck_assert_int_eq(mk_file_read_block(f, r, 16, 0), 0);
    ck_assert_mem_eq(r, "AAAAAAAA\0\0\0\0\0\0\0\0", 16);
    ck_assert_uint_eq(clk.dead, 0); /* limit 0: never dies */
    mk_file_close(f);

    /* never synced: a crash loses everything */
    memset(&clk, 0, sizeof clk);
    ck_assert_int_eq(mk_file_mem_crashable("c", &clk, &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "lost", 4, 0), 0);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), 0);
    mk_file_close(f);

    /* a plain memory file ignores crashes */
    ck_assert_int_eq(mk_file_mem("p", &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "kept", 4, 0), 0);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), 4);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s0_file_mem_crash_clock_limit)
{
    mk_crash_clock clk;
    memset(&clk, 0, sizeof clk);
    clk.limit = 4;
    mk_file *a, *b;
    ck_assert_int_eq(mk_file_mem_crashable("a", &clk, &a), 0);
    ck_assert_int_eq(mk_file_mem_crashable("b", &clk, &b), 0);
    /* the two files share one clock: calls 1..3 succeed */
    ck_assert_int_eq(mk_file_pwrite(a, "a1", 2, 0), 0);
    ck_assert_int_eq(mk_file_sync(a), 0);
    ck_assert_int_eq(mk_file_pwrite(b, "b1", 2, 0), 0);
    ck_assert_uint_eq(clk.ticks, 3);
    ck_assert_int_eq(clk.dead, 0);
    /* call 4 dies, and so does everything after it, on either file */
    ck_assert_int_eq(mk_file_truncate(b, 0), MK_EIO);
    ck_assert_int_ne(clk.dead, 0);
    ck_assert_int_eq(mk_file_pwrite(a, "a2", 2, 2), MK_EIO);
    ck_assert_int_eq(mk_file_sync(b), MK_EIO);
    ck_assert_int_eq(mk_file_truncate(a, 0), MK_EIO);
    /* the failed calls changed nothing; reads still work */
    ck_assert_uint_eq(fsize(a), 2);
    ck_assert_uint_eq(fsize(b), 2);
    uint8_t r[2];
    ck_assert_int_eq(mk_file_read_exact(b, r, 2, 0), 0);
    ck_assert_mem_eq(r, "b1", 2);
    /* the power loss: a keeps its synced bytes, b never synced */
    mk_file_mem_crash(a);
    mk_file_mem_crash(b);
    ck_assert_uint_eq(fsize(a), 2);
    ck_assert_int_eq(mk_file_read_exact(a, r, 2, 0), 0);
    ck_assert_mem_eq(r, "a1", 2);
    ck_assert_uint_eq(fsize(b), 0);
    mk_file_close(a);
    mk_file_close(b);
}
END_TEST

START_TEST(test_s0_file_mem_crash_torn_write)
{
    mk_crash_clock clk;
    memset(&clk, 0, sizeof clk);
    clk.limit = 3;
    clk.tear = 3;
    mk_file *f;
    ck_assert_int_eq(mk_file_mem_crashable("t", &clk, &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "AAAAAAAA", 8, 0), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    /* the dying write persists only its first `tear` bytes */
    ck_assert_int_eq(mk_file_pwrite(f, "BBBBBB", 6, 4), MK_EIO);
    mk_file_mem_crash(f);
    uint8_t r[16];
    ck_assert_uint_eq(fsize(f), 8);
    ck_assert_int_eq(mk_file_read_exact(f, r, 8, 0), 0);
    ck_assert_mem_eq(r, "AAAABBBA", 8);
    mk_file_close(f);

    /* a torn write that extends the file */
    memset(&clk, 0, sizeof clk);
    clk.limit = 3;
    clk.tear = 2;
    ck_assert_int_eq(mk_file_mem_crashable("t", &clk, &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "AAAA", 4, 0), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "CCCCCC", 6, 4), MK_EIO);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), 6);
    ck_assert_int_eq(mk_file_read_exact(f, r, 6, 0), 0);
    ck_assert_mem_eq(r, "AAAACC", 6);
    mk_file_close(f);
}
END_TEST

/* A torn write on a file that was never synced still leaves its torn part
 * behind after the crash (the first record of a fresh log can be torn). */
START_TEST(test_s0_file_mem_torn_write_never_synced)
{
    mk_crash_clock clk = {0, 1, 3, 0};
    mk_file *f;
    uint8_t buf[8] = {0};
    uint64_t size;
    ck_assert_int_eq(mk_file_mem_crashable("t", &clk, &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "BBBBBB", 6, 0), MK_EIO);
    mk_file_mem_crash(f);
    ck_assert_int_eq(mk_file_size(f, &size), 0);
    ck_assert_uint_eq(size, 3);
    ck_assert_int_eq(mk_file_pread(f, buf, sizeof buf, 0), 3);
    ck_assert_mem_eq(buf, "BBB", 3);
    mk_file_close(f);
}
END_TEST

/* Offsets near 2^64 are refused at once instead of looping while doubling
 * the buffer. */
START_TEST(test_s0_file_mem_huge_offset_refused)
{
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("t", &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "x", 1, 1ull << 63), MK_ENOSPC);
    ck_assert_int_eq(mk_file_truncate(f, (1ull << 63) + 1), MK_ENOSPC);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s0_file_mem_written)
{
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("w", &f), 0);
    ck_assert_uint_eq(mk_file_mem_written(f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "abc", 3, 0), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "de", 2, 1), 0); /* overwrites count */
    ck_assert_uint_eq(mk_file_mem_written(f), 5);
    ck_assert_int_eq(mk_file_truncate(f, 100), 0);
    uint8_t r[4];
    ck_assert_int_eq(mk_file_pread(f, r, 4, 0), 4);
    ck_assert_uint_eq(mk_file_mem_written(f), 5); /* only bytes written */
    mk_file_close(f);
}
END_TEST

/* ---- mk_file: sparse memory files (6.4) --------------------------------------- */

/*
 * The simulator keeps a whole volume, its mirror and the log in memory
 * files, so a memory file must grow with the bytes written and never with
 * its size (section 6.4): a 1 TiB volume with a few blocks written has to
 * fit in a few MiB.  These tests also pin the crash semantics of the sparse
 * representation: sync copies only what changed, and no byte dropped by a
 * truncation may come back after a regrowth or a crash.
 */

/* The resident set size of this process in bytes, from /proc/self/statm;
 * 0 where there is no /proc, which turns the memory checks into no-ops. */
static uint64_t rss_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long long vsize = 0, resident = 0;
    if (!fp)
        return 0;
    if (fscanf(fp, "%llu %llu", &vsize, &resident) != 2)
        resident = 0;
    fclose(fp);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Asserts that n bytes at off (all inside the file) read as zeros. */
static void assert_zeros(mk_file *f, uint64_t off, size_t n)
{
    uint8_t r[4096];
    while (n) {
        size_t k = n < sizeof r ? n : sizeof r;
        memset(r, 0xAA, k);
        ck_assert_int_eq(mk_file_read_exact(f, r, k, off), 0);
        for (size_t i = 0; i < k; i++)
            if (r[i] != 0)
                ck_abort_msg("byte %llu is %u, not zero", (unsigned long long)(off + i), r[i]);
        off += k;
        n -= k;
    }
}

/* Asserts that n bytes at off read back as fill_pat(.., base). */
static void assert_pat(mk_file *f, uint64_t off, size_t n, uint64_t base)
{
    uint8_t r[4096], w[4096];
    while (n) {
        size_t k = n < sizeof r ? n : sizeof r;
        fill_pat(w, k, base);
        ck_assert_int_eq(mk_file_read_exact(f, r, k, off), 0);
        if (memcmp(r, w, k) != 0)
            ck_abort_msg("bytes at %llu differ from the pattern", (unsigned long long)off);
        off += k;
        n -= k;
        base += k;
    }
}

/* A 1 TiB file with a few scattered 4 KiB blocks written costs the blocks,
 * not the size: truncating up to 1 TiB allocates nothing. */
START_TEST(test_s6_4_mem_file_tib_sparse)
{
    const uint64_t tib = UINT64_C(1) << 40;
    const uint64_t offs[] = {
        0,
        UINT64_C(4096) * 12345,
        (tib / 3) & ~UINT64_C(4095),
        tib / 2 + 4096 * 7,
        tib - 3 * 4096 - 1000, /* unaligned: straddles two 4 KiB blocks */
        tib - 4096,            /* the last 4 KiB of the file */
    };
    const size_t nw = sizeof offs / sizeof offs[0];
    uint64_t before = rss_bytes();
    mk_file *f;
    uint8_t w[4096], r[8192];
    ck_assert_int_eq(mk_file_mem("test/tib", &f), 0);
    ck_assert_int_eq(mk_file_truncate(f, tib), 0);
    ck_assert_uint_eq(fsize(f), tib);
    for (size_t i = 0; i < nw; i++) {
        fill_pat(w, sizeof w, 1000 * i);
        ck_assert_int_eq(mk_file_pwrite(f, w, sizeof w, offs[i]), 0);
    }
    ck_assert_uint_eq(fsize(f), tib); /* writes inside the size never extend it */
    ck_assert_uint_eq(mk_file_mem_written(f), nw * 4096);
    for (size_t i = 0; i < nw; i++) {
        assert_pat(f, offs[i], 4096, 1000 * i);
        /* the holes around each block read as zeros */
        if (offs[i] >= 4096)
            assert_zeros(f, offs[i] - 4096, 4096);
        if (offs[i] + 2 * 4096 <= tib)
            assert_zeros(f, offs[i] + 4096, 4096);
    }
    /* a large hole in the middle reads as zeros */
    assert_zeros(f, tib / 4 + 12345, 1 << 20);
    /* reads stop at the end of the file */
    ck_assert_int_eq(mk_file_pread(f, r, sizeof r, tib - 4096), 4096);
    fill_pat(w, sizeof w, 1000 * (nw - 1));
    ck_assert_mem_eq(r, w, 4096);
    ck_assert_int_eq(mk_file_pread(f, r, 1, tib), 0);
    ck_assert_int_eq(mk_file_pread(f, r, 1, tib - 1), 1);
    uint64_t after = rss_bytes();
    ck_assert_msg(after < before + (UINT64_C(64) << 20),
                  "RSS grew by %llu bytes for %zu blocks written",
                  (unsigned long long)(after - before), nw);
    mk_file_close(f);
}
END_TEST

/* Writes that straddle 4 KiB and 64 KiB boundaries (the plausible page and
 * chunk sizes of a sparse file) land exactly where a flat file puts them. */
START_TEST(test_s6_4_mem_file_page_boundaries)
{
    enum { SPAN = 3 * 65536 + 5000 };
    static const struct {
        uint32_t off, len;
    } ws[] = {
        {4095, 2},                          /* across the first 4 KiB boundary */
        {8191, 4098},                       /* last byte of a page, past two boundaries */
        {65536 - 3, 7},                     /* across the first 64 KiB boundary */
        {2 * 65536 - 4096 - 10, 4096 + 20}, /* a whole page and both neighbours' edges */
        {100, 3 * 65536},                   /* many pages, unaligned at both ends */
        {65536, 65536},                     /* exactly one aligned 64 KiB span */
        {3 * 65536 + 4000, 1000},           /* extends the file across a boundary */
        {12288, 4096},                      /* exactly one aligned page */
    };
    uint8_t *model = calloc(1, SPAN), *w = malloc(SPAN), *r = malloc(SPAN);
    ck_assert(model && w && r);
    uint64_t size = 0;
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("test/pages", &f), 0);
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        fill_pat(w, ws[i].len, 37 * i + ws[i].off);
        ck_assert_int_eq(mk_file_pwrite(f, w, ws[i].len, ws[i].off), 0);
        memcpy(model + ws[i].off, w, ws[i].len);
        if (ws[i].off + ws[i].len > size)
            size = ws[i].off + ws[i].len;
        ck_assert_uint_eq(fsize(f), size);
        memset(r, 0xEE, SPAN);
        ck_assert_int_eq(mk_file_pread(f, r, SPAN, 0), (long)size);
        ck_assert_msg(memcmp(r, model, size) == 0, "contents differ after write %zu", i);
        /* reads that straddle the same boundaries */
        for (uint64_t at = 4090; at + 10000 <= size; at += 65536 - 7) {
            ck_assert_int_eq(mk_file_read_exact(f, r, 10000, at), 0);
            ck_assert_int_eq(memcmp(r, model + at, 10000), 0);
        }
    }
    ck_assert_uint_eq(size, SPAN);
    free(model);
    free(w);
    free(r);
    mk_file_close(f);
}
END_TEST

/* Shrinking drops the bytes past the cut wherever it falls (mid-page, on a
 * page or chunk boundary, on a huge file), and regrowth by truncate or by a
 * later write reads zeros there. */
START_TEST(test_s6_4_mem_file_truncate_regrow_zeros)
{
    const uint64_t tib = UINT64_C(1) << 40;
    enum { LEN = 300000 };
    mk_file *f;
    uint8_t *w = malloc(LEN);
    ck_assert_ptr_nonnull(w);
    fill_pat(w, LEN, 5);
    ck_assert_int_eq(mk_file_mem("test/cut", &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, w, LEN, 0), 0);

    static const uint64_t cuts[] = {70001, 65536, 4096 * 3, 4095, 1, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        uint64_t cut = cuts[i];
        ck_assert_int_eq(mk_file_truncate(f, cut), 0);
        ck_assert_uint_eq(fsize(f), cut);
        assert_pat(f, 0, cut, 5);
        /* regrow by truncate: zeros */
        ck_assert_int_eq(mk_file_truncate(f, LEN), 0);
        assert_pat(f, 0, cut, 5);
        assert_zeros(f, cut, LEN - cut);
        /* cut again and regrow by a write far past the cut: zeros between */
        ck_assert_int_eq(mk_file_truncate(f, cut), 0);
        ck_assert_int_eq(mk_file_pwrite(f, "Z", 1, LEN - 1), 0);
        ck_assert_uint_eq(fsize(f), LEN);
        assert_pat(f, 0, cut, 5);
        assert_zeros(f, cut, LEN - 1 - cut);
        /* put the pattern back for the next, smaller cut */
        ck_assert_int_eq(mk_file_pwrite(f, w, LEN, 0), 0);
    }

    /* a huge file with data at both ends, cut small and regrown */
    ck_assert_int_eq(mk_file_truncate(f, tib), 0);
    ck_assert_int_eq(mk_file_pwrite(f, w, 8192, tib - 8192), 0);
    ck_assert_int_eq(mk_file_truncate(f, 5000), 0);
    ck_assert_uint_eq(fsize(f), 5000);
    assert_pat(f, 0, 5000, 5);
    ck_assert_int_eq(mk_file_truncate(f, tib), 0);
    assert_zeros(f, 5000, LEN - 5000);
    assert_zeros(f, tib - 8192, 8192);
    /* cutting inside the huge hole keeps the data before it */
    ck_assert_int_eq(mk_file_pwrite(f, w, 4096, tib / 2), 0);
    ck_assert_int_eq(mk_file_truncate(f, tib / 2 + 100), 0);
    assert_pat(f, tib / 2, 100, 5);
    ck_assert_int_eq(mk_file_truncate(f, tib), 0);
    assert_zeros(f, tib / 2 + 100, 4096 - 100);
    assert_pat(f, 0, 5000, 5);
    free(w);
    mk_file_close(f);
}
END_TEST

/* Crash after sync and further writes restores exactly the synced state; a
 * truncation after the sync is undone by the crash; a truncation that was
 * synced stays, and the dropped bytes never come back. */
START_TEST(test_s6_4_mem_file_crash_dirty_sync)
{
    const uint64_t far = UINT64_C(1) << 32;
    mk_crash_clock clk;
    memset(&clk, 0, sizeof clk);
    mk_file *f;
    uint8_t *w = malloc(200000);
    ck_assert_ptr_nonnull(w);
    fill_pat(w, 200000, 11);
    ck_assert_int_eq(mk_file_mem_crashable("test/crash", &clk, &f), 0);

    /* state A: 200000 bytes at 0 and one block far away, synced */
    ck_assert_int_eq(mk_file_pwrite(f, w, 200000, 0), 0);
    ck_assert_int_eq(mk_file_pwrite(f, w, 4096, far), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    /* then: part of a page, a span across pages, a new page, an extension */
    ck_assert_int_eq(mk_file_pwrite(f, "BBBB", 4, 10), 0);
    memset(w + 100000, 'C', 9000);
    ck_assert_int_eq(mk_file_pwrite(f, w + 100000, 9000, 65536 - 4500), 0);
    ck_assert_int_eq(mk_file_pwrite(f, w + 100000, 4096, far / 2), 0);
    ck_assert_int_eq(mk_file_pwrite(f, w + 100000, 4096, 2 * far), 0);
    ck_assert_uint_eq(fsize(f), 2 * far + 4096);
    fill_pat(w, 200000, 11);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), far + 4096);
    assert_pat(f, 0, 200000, 11);
    assert_zeros(f, far / 2, 4096);
    assert_pat(f, far, 4096, 11);

    /* after a crash the file carries on: sync, write, crash again */
    ck_assert_int_eq(mk_file_pwrite(f, "DDDD", 4, 65534), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "EEEE", 4, 65534), 0);
    mk_file_mem_crash(f);
    uint8_t r[4];
    ck_assert_int_eq(mk_file_read_exact(f, r, 4, 65534), 0);
    ck_assert_mem_eq(r, "DDDD", 4);
    ck_assert_int_eq(mk_file_pwrite(f, w + 65534, 4, 65534), 0); /* back to the pattern */
    ck_assert_int_eq(mk_file_sync(f), 0);

    /* a truncation after the sync is undone by the crash */
    ck_assert_int_eq(mk_file_truncate(f, 5000), 0);
    ck_assert_uint_eq(fsize(f), 5000);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), far + 4096);
    assert_pat(f, 0, 200000, 11);
    assert_pat(f, far, 4096, 11);

    /* a synced truncation stays, and regrowth then crash reads zeros */
    ck_assert_int_eq(mk_file_truncate(f, 70001), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    ck_assert_int_eq(mk_file_truncate(f, 200000), 0);
    ck_assert_int_eq(mk_file_pwrite(f, w, 4096, far), 0);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), 70001);
    assert_pat(f, 0, 70001, 11);
    ck_assert_int_eq(mk_file_truncate(f, 200000), 0);
    assert_zeros(f, 70001, 200000 - 70001);
    ck_assert_int_eq(mk_file_pwrite(f, "F", 1, far), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), far + 1);
    assert_pat(f, 0, 70001, 11);
    assert_zeros(f, 70001, 200000 - 70001);
    assert_zeros(f, far - 4096, 4096);

    /* pages written and dropped between two syncs leave nothing behind */
    ck_assert_int_eq(mk_file_pwrite(f, w, 8192, far + 1000), 0);
    ck_assert_int_eq(mk_file_truncate(f, 100000), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    ck_assert_int_eq(mk_file_truncate(f, far + 10000), 0);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), 100000);
    ck_assert_int_eq(mk_file_truncate(f, far + 10000), 0);
    assert_zeros(f, far - 4096, 14096);
    assert_pat(f, 0, 70001, 11);
    free(w);
    mk_file_close(f);
}
END_TEST

/* A torn write across a page (and chunk) boundary persists exactly its
 * first `tear` bytes, in the live image at once and after the crash. */
START_TEST(test_s6_4_mem_file_torn_write_page_boundary)
{
    mk_crash_clock clk;
    memset(&clk, 0, sizeof clk);
    clk.limit = 4;
    clk.tear = 300;
    mk_file *f;
    uint8_t p[70000], q[200], t[5000], r[5000];
    fill_pat(p, sizeof p, 1);
    fill_pat(q, sizeof q, 101);
    fill_pat(t, sizeof t, 202);
    ck_assert_int_eq(mk_file_mem_crashable("test/torn", &clk, &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, p, sizeof p, 0), 0);          /* tick 1 */
    ck_assert_int_eq(mk_file_sync(f), 0);                            /* tick 2 */
    ck_assert_int_eq(mk_file_pwrite(f, q, sizeof q, 3 * 4096 - 50), 0); /* 3: lost */
    /* tick 4 dies; its first 300 bytes cross 4 KiB and 64 KiB boundaries */
    ck_assert_int_eq(mk_file_pwrite(f, t, sizeof t, 65536 - 150), MK_EIO);
    ck_assert_int_ne(clk.dead, 0);
    ck_assert_uint_eq(fsize(f), sizeof p);
    ck_assert_int_eq(mk_file_read_exact(f, r, 300, 65536 - 150), 0);
    ck_assert_mem_eq(r, t, 300);
    ck_assert_int_eq(mk_file_read_exact(f, r, 200, 3 * 4096 - 50), 0);
    ck_assert_mem_eq(r, q, 200);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), sizeof p);
    ck_assert_int_eq(mk_file_read_exact(f, r, 300, 65536 - 150), 0);
    ck_assert_mem_eq(r, t, 300);
    ck_assert_int_eq(mk_file_read_exact(f, r, 200, 3 * 4096 - 50), 0);
    ck_assert_mem_eq(r, p + 3 * 4096 - 50, 200); /* the unsynced write is gone */
    ck_assert_int_eq(mk_file_read_exact(f, r, 1000, 65536 + 150), 0);
    ck_assert_mem_eq(r, p + 65536 + 150, 1000);   /* the rest of t never landed */
    assert_pat(f, 0, 3 * 4096 - 50, 1);
    mk_file_close(f);

    /* a torn write that extends a never-synced file across boundaries */
    memset(&clk, 0, sizeof clk);
    clk.limit = 1;
    clk.tear = 5000;
    uint8_t big[9000];
    fill_pat(big, sizeof big, 303);
    ck_assert_int_eq(mk_file_mem_crashable("test/torn", &clk, &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, big, sizeof big, 4000), MK_EIO);
    ck_assert_uint_eq(fsize(f), 9000);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), 9000);
    assert_zeros(f, 0, 4000);
    ck_assert_int_eq(mk_file_read_exact(f, r, 5000, 4000), 0);
    ck_assert_mem_eq(r, big, 5000);
    mk_file_close(f);
}
END_TEST

/* Syncing a 1 TiB crashable file after each of many scattered block writes
 * costs the blocks, not the size: a sync that copied or scanned the whole
 * file could not finish, and memory stays small. */
START_TEST(test_s6_4_mem_file_sync_cost_dirty_pages)
{
    const uint64_t tib = UINT64_C(1) << 40;
    enum { N = 2000 };
    mk_crash_clock clk;
    memset(&clk, 0, sizeof clk);
    uint64_t before = rss_bytes();
    mk_file *f;
    uint8_t w[4096];
    ck_assert_int_eq(mk_file_mem_crashable("test/synccost", &clk, &f), 0);
    ck_assert_int_eq(mk_file_truncate(f, tib), 0);
    ck_assert_int_eq(mk_file_sync(f), 0);
    /* block i goes to block number i * odd mod 2^28: distinct blocks */
    for (uint64_t i = 0; i < N; i++) {
        uint64_t off = ((i * UINT64_C(2654435761)) & ((UINT64_C(1) << 28) - 1)) * 4096;
        fill_pat(w, sizeof w, i);
        ck_assert_int_eq(mk_file_pwrite(f, w, sizeof w, off), 0);
        ck_assert_int_eq(mk_file_sync(f), 0);
    }
    /* one more, unsynced, on top of a synced block */
    memset(w, 'X', sizeof w);
    ck_assert_int_eq(mk_file_pwrite(f, w, sizeof w, 0), 0);
    mk_file_mem_crash(f);
    ck_assert_uint_eq(fsize(f), tib);
    for (uint64_t i = 0; i < N; i += 97) {
        uint64_t off = ((i * UINT64_C(2654435761)) & ((UINT64_C(1) << 28) - 1)) * 4096;
        assert_pat(f, off, 4096, i);
    }
    uint64_t after = rss_bytes();
    ck_assert_msg(after < before + (UINT64_C(64) << 20), "RSS grew by %llu bytes",
                  (unsigned long long)(after - before));
    mk_file_close(f);
}
END_TEST

/* The 2^48-byte limit still holds, and is reachable without memory. */
START_TEST(test_s6_4_mem_file_max_size_edge)
{
    const uint64_t max = UINT64_C(1) << 48;
    mk_file *f;
    uint8_t r[2];
    ck_assert_int_eq(mk_file_mem("test/max", &f), 0);
    ck_assert_int_eq(mk_file_pwrite(f, "Q", 1, max - 1), 0);
    ck_assert_uint_eq(fsize(f), max);
    ck_assert_int_eq(mk_file_pread(f, r, 2, max - 1), 1);
    ck_assert_uint_eq(r[0], 'Q');
    ck_assert_int_eq(mk_file_pwrite(f, "Q", 1, max), MK_ENOSPC);
    ck_assert_int_eq(mk_file_pwrite(f, "QQ", 2, max - 1), MK_ENOSPC);
    ck_assert_int_eq(mk_file_truncate(f, max + 1), MK_ENOSPC);
    ck_assert_uint_eq(fsize(f), max);
    ck_assert_int_eq(mk_file_truncate(f, 1), 0);
    ck_assert_int_eq(mk_file_truncate(f, max), 0);
    ck_assert_int_eq(mk_file_pread(f, r, 2, max - 1), 1);
    ck_assert_uint_eq(r[0], 0);
    ck_assert_uint_eq(mk_file_mem_written(f), 1);
    mk_file_close(f);
}
END_TEST

/* Random writes, reads, truncations, syncs and crashes, with offsets drawn
 * near 4 KiB and 64 KiB boundaries, against a flat model of the live and
 * the durable image. */
START_TEST(test_s6_4_mem_file_random_ops_match_model)
{
    enum { SPAN = 1 << 19, OPS = 3000 };
    uint8_t *live = calloc(1, SPAN), *durable = calloc(1, SPAN);
    uint8_t *w = malloc(SPAN), *r = malloc(SPAN);
    ck_assert(live && durable && w && r);
    uint64_t size = 0, dsize = 0;
    mk_crash_clock clk;
    memset(&clk, 0, sizeof clk);
    mk_prng g;
    mk_prng_seed(&g, 0x5ba25e);
    mk_file *f;
    ck_assert_int_eq(mk_file_mem_crashable("test/model", &clk, &f), 0);
    for (int op = 0; op < OPS; op++) {
        uint64_t off;
        /* half the offsets sit within a few bytes of a boundary */
        if (mk_prng_chance(&g, 1, 2)) {
            uint64_t unit = mk_prng_chance(&g, 1, 2) ? 4096 : 65536;
            uint64_t jitter = mk_prng_below(&g, 17);
            off = mk_prng_below(&g, SPAN / unit) * unit + jitter;
            off = off >= 8 ? off - 8 : 0;
        } else {
            off = mk_prng_below(&g, SPAN);
        }
        if (off >= SPAN)
            off = SPAN - 1;
        uint64_t kind = mk_prng_below(&g, 100);
        if (kind < 45) { /* write */
            uint64_t len = mk_prng_chance(&g, 1, 10) ? mk_prng_below(&g, 200000)
                                                     : mk_prng_below(&g, 3 * 4096 + 1);
            if (off + len > SPAN)
                len = SPAN - off;
            mk_prng_fill(&g, w, len);
            ck_assert_int_eq(mk_file_pwrite(f, w, len, off), 0);
            memcpy(live + off, w, len);
            if (off + len > size)
                size = off + len;
        } else if (kind < 70) { /* read */
            uint64_t n = mk_prng_below(&g, 3 * 65536);
            long want = off >= size ? 0 : (long)(size - off < n ? size - off : n);
            ck_assert_int_eq(mk_file_pread(f, r, n, off), want);
            ck_assert_msg(memcmp(r, live + off, (size_t)want) == 0, "op %d: read differs", op);
        } else if (kind < 82) { /* truncate */
            if (off < size)
                memset(live + off, 0, size - off);
            ck_assert_int_eq(mk_file_truncate(f, off), 0);
            size = off;
        } else if (kind < 94) { /* sync */
            ck_assert_int_eq(mk_file_sync(f), 0);
            memcpy(durable, live, SPAN);
            dsize = size;
        } else { /* crash */
            mk_file_mem_crash(f);
            memcpy(live, durable, SPAN);
            size = dsize;
        }
        ck_assert_uint_eq(fsize(f), size);
        if (op % 100 == 99 || kind >= 94) {
            memset(r, 0xEE, SPAN);
            ck_assert_int_eq(mk_file_pread(f, r, SPAN, 0), (long)size);
            ck_assert_msg(memcmp(r, live, size) == 0, "op %d: contents differ", op);
        }
    }
    free(live);
    free(durable);
    free(w);
    free(r);
    mk_file_close(f);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");

    TCase *te = tcase_create("errors");
    tcase_add_test(te, test_s12_error_table_roundtrip);
    tcase_add_test(te, test_s12_wire_values_fixed);
    tcase_add_test(te, test_s12_names_messages_unique);
    tcase_add_test(te, test_s12_unknown_codes);
    tcase_add_test(te, test_s12_from_errno);
    suite_add_tcase(s, te);

    TCase *tb = tcase_create("buf");
    tcase_set_timeout(tb, 60);
    tcase_add_test(tb, test_s0_buf_empty);
    tcase_add_test(tb, test_s0_buf_fifo_append_consume);
    tcase_add_test(tb, test_s0_buf_reserve_commit);
    tcase_add_test(tb, test_s0_buf_grow_preserves_contents);
    tcase_add_test(tb, test_s0_buf_slide);
    tcase_add_test(tb, test_s0_buf_steady_state_bounded);
    tcase_add_test(tb, test_s0_buf_reserve_enomem);
    suite_add_tcase(s, tb);

    TCase *tm = tcase_create("map");
    tcase_set_timeout(tm, 60);
    tcase_add_test(tm, test_s0_map_empty);
    tcase_add_test(tm, test_s0_map_put_get_overwrite);
    tcase_add_test(tm, test_s0_map_100k_keys);
    tcase_add_test(tm, test_s0_map_clear_small_keeps_table);
    suite_add_tcase(s, tm);

    TCase *tp = tcase_create("prng");
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, test_s0_prng_reference_sequence);
    tcase_add_test(tp, test_s0_prng_same_seed_same_sequence);
    tcase_add_test(tp, test_s0_prng_below_bounds);
    tcase_add_test(tp, test_s0_prng_chance);
    tcase_add_test(tp, test_s0_prng_fill);
    suite_add_tcase(s, tp);

    TCase *tf = tcase_create("file");
    tcase_set_timeout(tf, 60);
    /* loop index: 0 memory backend, 1 POSIX backend */
    tcase_add_loop_test(tf, test_s0_file_empty, 0, 2);
    tcase_add_loop_test(tf, test_s0_file_pread_past_eof_short, 0, 2);
    tcase_add_loop_test(tf, test_s0_file_read_block_zero_fill, 0, 2);
    tcase_add_loop_test(tf, test_s0_file_read_exact_trunc, 0, 2);
    tcase_add_loop_test(tf, test_s0_file_sparse_write_and_overwrite, 0, 2);
    tcase_add_loop_test(tf, test_s0_file_truncate, 0, 2);
    tcase_add_test(tf, test_s0_file_name);
    tcase_add_test(tf, test_s0_file_mem_offset_overflow);
    tcase_add_test(tf, test_s0_file_posix_open_and_persist);
    tcase_add_test(tf, test_s0_file_mem_crash_discards_unsynced);
    tcase_add_test(tf, test_s0_file_mem_crash_clock_limit);
    tcase_add_test(tf, test_s0_file_mem_crash_torn_write);
    tcase_add_test(tf, test_s0_file_mem_written);
    tcase_add_test(tf, test_s0_file_mem_torn_write_never_synced);
    tcase_add_test(tf, test_s0_file_mem_huge_offset_refused);
    tcase_add_test(tf, test_s6_4_mem_file_tib_sparse);
    tcase_add_test(tf, test_s6_4_mem_file_page_boundaries);
    tcase_add_test(tf, test_s6_4_mem_file_truncate_regrow_zeros);
    tcase_add_test(tf, test_s6_4_mem_file_crash_dirty_sync);
    tcase_add_test(tf, test_s6_4_mem_file_torn_write_page_boundary);
    tcase_add_test(tf, test_s6_4_mem_file_sync_cost_dirty_pages);
    tcase_add_test(tf, test_s6_4_mem_file_max_size_edge);
    tcase_add_test(tf, test_s6_4_mem_file_random_ops_match_model);
    suite_add_tcase(s, tf);
    return s;
}

int main(void) { return mk_test_run(util_suite()); }
