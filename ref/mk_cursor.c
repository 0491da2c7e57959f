#include "mk_cursor.h"

#include <string.h>

#include "mk_err.h"

void mk_rcur_init(mk_rcur *c, const void *buf, size_t len)
{
    c->buf = buf;
    c->len = buf ? len : 0;
    c->pos = 0;
}

size_t mk_rcur_left(const mk_rcur *c) { return c->len - c->pos; }

/* Reads an n-byte little-endian unsigned integer; the common path of all
 * fixed-width reads so the bounds check lives in one place. */
static int rcur_le(mk_rcur *c, size_t n, uint64_t *v)
{
    if (mk_rcur_left(c) < n)
        return MK_ETRUNC;
    uint64_t x = 0;
    for (size_t i = n; i-- > 0;)
        x = (x << 8) | c->buf[c->pos + i];
    c->pos += n;
    *v = x;
    return 0;
}

int mk_rcur_u8(mk_rcur *c, uint8_t *v)
{
    uint64_t x;
    int rc = rcur_le(c, 1, &x);
    if (rc == 0)
        *v = (uint8_t)x;
    return rc;
}

int mk_rcur_u16(mk_rcur *c, uint16_t *v)
{
    uint64_t x;
    int rc = rcur_le(c, 2, &x);
    if (rc == 0)
        *v = (uint16_t)x;
    return rc;
}

int mk_rcur_u32(mk_rcur *c, uint32_t *v)
{
    uint64_t x;
    int rc = rcur_le(c, 4, &x);
    if (rc == 0)
        *v = (uint32_t)x;
    return rc;
}

int mk_rcur_u64(mk_rcur *c, uint64_t *v) { return rcur_le(c, 8, v); }

int mk_rcur_i32(mk_rcur *c, int32_t *v)
{
    uint32_t x;
    int rc = mk_rcur_u32(c, &x);
    if (rc == 0)
        *v = (int32_t)x;
    return rc;
}

int mk_rcur_take(mk_rcur *c, size_t n, const uint8_t **p)
{
    if (mk_rcur_left(c) < n)
        return MK_ETRUNC;
    *p = c->buf + c->pos;
    c->pos += n;
    return 0;
}

int mk_rcur_copy(mk_rcur *c, void *out, size_t n)
{
    const uint8_t *p;
    int rc = mk_rcur_take(c, n, &p);
    if (rc == 0 && n)
        memcpy(out, p, n);
    return rc;
}

int mk_rcur_skip(mk_rcur *c, size_t n)
{
    const uint8_t *p;
    return mk_rcur_take(c, n, &p);
}

int mk_rcur_sub(mk_rcur *c, size_t n, mk_rcur *sub)
{
    const uint8_t *p;
    int rc = mk_rcur_take(c, n, &p);
    if (rc == 0)
        mk_rcur_init(sub, p, n);
    return rc;
}

int mk_rcur_zero(mk_rcur *c, size_t n)
{
    if (mk_rcur_left(c) < n)
        return MK_ETRUNC;
    for (size_t i = 0; i < n; i++)
        if (c->buf[c->pos + i] != 0)
            return MK_ERESERVED;
    c->pos += n;
    return 0;
}

void mk_wcur_init(mk_wcur *c, void *buf, size_t cap)
{
    c->buf = buf;
    c->cap = buf ? cap : 0;
    c->pos = 0;
}

size_t mk_wcur_left(const mk_wcur *c) { return c->cap - c->pos; }

int mk_wcur_reserve(mk_wcur *c, size_t n, uint8_t **p)
{
    if (mk_wcur_left(c) < n)
        return MK_ELENGTH;
    *p = c->buf + c->pos;
    c->pos += n;
    return 0;
}

static int wcur_le(mk_wcur *c, size_t n, uint64_t v)
{
    uint8_t *p;
    int rc = mk_wcur_reserve(c, n, &p);
    if (rc == 0)
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)(v >> (8 * i));
    return rc;
}

int mk_wcur_u8(mk_wcur *c, uint8_t v) { return wcur_le(c, 1, v); }
int mk_wcur_u16(mk_wcur *c, uint16_t v) { return wcur_le(c, 2, v); }
int mk_wcur_u32(mk_wcur *c, uint32_t v) { return wcur_le(c, 4, v); }
int mk_wcur_u64(mk_wcur *c, uint64_t v) { return wcur_le(c, 8, v); }
int mk_wcur_i32(mk_wcur *c, int32_t v) { return wcur_le(c, 4, (uint32_t)v); }

int mk_wcur_bytes(mk_wcur *c, const void *src, size_t n)
{
    uint8_t *p;
    int rc = mk_wcur_reserve(c, n, &p);
    if (rc == 0 && n)
        memcpy(p, src, n);
    return rc;
}

int mk_wcur_zero(mk_wcur *c, size_t n)
{
    uint8_t *p;
    int rc = mk_wcur_reserve(c, n, &p);
    if (rc == 0 && n)
        memset(p, 0, n);
    return rc;
}

int mk_wcur_patch_u32(mk_wcur *c, size_t at, uint32_t v)
{
    if (at > c->pos || c->pos - at < 4)
        return MK_ELENGTH;
    for (size_t i = 0; i < 4; i++)
        c->buf[at + i] = (uint8_t)(v >> (8 * i));
    return 0;
}
