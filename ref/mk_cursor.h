/*
 * mk_cursor.h - the one bounds-checked cursor for all wire and on-disk
 * encoding in mirrorkit (after OpenBSD ibuf and s2n-tls stuffer).
 *
 * Every integer is fixed-width little-endian.  A read or write that does not
 * fit fails with a negative mk_err code and leaves the cursor exactly as it
 * was, so a parser can try, fail and report without having consumed
 * anything.  No other module does pointer arithmetic on frames or records.
 *
 * Ownership: a cursor borrows its buffer; it never allocates or frees.
 */
#ifndef MK_CURSOR_H
#define MK_CURSOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct mk_rcur {
    const uint8_t *buf;
    size_t len;
    size_t pos;
} mk_rcur;

typedef struct mk_wcur {
    uint8_t *buf;
    size_t cap;
    size_t pos;
} mk_wcur;

void mk_rcur_init(mk_rcur *c, const void *buf, size_t len);
size_t mk_rcur_left(const mk_rcur *c);
int mk_rcur_u8(mk_rcur *c, uint8_t *v);
int mk_rcur_u16(mk_rcur *c, uint16_t *v);
int mk_rcur_u32(mk_rcur *c, uint32_t *v);
int mk_rcur_u64(mk_rcur *c, uint64_t *v);
int mk_rcur_i32(mk_rcur *c, int32_t *v);
/* Copies n bytes out. */
int mk_rcur_copy(mk_rcur *c, void *out, size_t n);
/* Borrows n bytes in place: *p points into the cursor's buffer. */
int mk_rcur_take(mk_rcur *c, size_t n, const uint8_t **p);
int mk_rcur_skip(mk_rcur *c, size_t n);
/* Splits off the next n bytes as their own cursor (a length-prefixed body). */
int mk_rcur_sub(mk_rcur *c, size_t n, mk_rcur *sub);
/* MK_ERESERVED unless the next n bytes are all zero; consumes them if so. */
int mk_rcur_zero(mk_rcur *c, size_t n);

void mk_wcur_init(mk_wcur *c, void *buf, size_t cap);
size_t mk_wcur_left(const mk_wcur *c);
int mk_wcur_u8(mk_wcur *c, uint8_t v);
int mk_wcur_u16(mk_wcur *c, uint16_t v);
int mk_wcur_u32(mk_wcur *c, uint32_t v);
int mk_wcur_u64(mk_wcur *c, uint64_t v);
int mk_wcur_i32(mk_wcur *c, int32_t v);
int mk_wcur_bytes(mk_wcur *c, const void *p, size_t n);
int mk_wcur_zero(mk_wcur *c, size_t n);
/* Reserves n bytes to be filled in place (e.g. by pread); *p points at them. */
int mk_wcur_reserve(mk_wcur *c, size_t n, uint8_t **p);
/* Overwrites a u32 already written at absolute position at (a length that
 * is only known once the body is written). */
int mk_wcur_patch_u32(mk_wcur *c, size_t at, uint32_t v);

/* Plain little-endian helpers for fixed-size scratch, used by the cursor. */
static inline void mk_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t mk_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
