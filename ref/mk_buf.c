#include "mk_buf.h"

#include <stdlib.h>
#include <string.h>

#include "mk_err.h"

void mk_buf_init(mk_buf *b) { memset(b, 0, sizeof *b); }

void mk_buf_free(mk_buf *b)
{
    free(b->data);
    mk_buf_init(b);
}

size_t mk_buf_len(const mk_buf *b) { return b->tail - b->head; }
const uint8_t *mk_buf_peek(const mk_buf *b) { return b->data + b->head; }
void mk_buf_clear(mk_buf *b) { b->head = b->tail = 0; }

void mk_buf_consume(mk_buf *b, size_t n)
{
    if (n > mk_buf_len(b))
        n = mk_buf_len(b);
    b->head += n;
    if (b->head == b->tail)
        b->head = b->tail = 0;
}

int mk_buf_reserve(mk_buf *b, size_t n, mk_wcur *c)
{
    if (b->cap - b->tail < n && b->head > 0 && b->head >= b->cap / 2) {
        memmove(b->data, b->data + b->head, mk_buf_len(b));
        b->tail -= b->head;
        b->head = 0;
    }
    if (b->cap - b->tail < n) {
        size_t want = b->cap ? b->cap : 4096;
        while (want - b->tail < n) {
            if (want > SIZE_MAX / 2)
                return MK_ENOMEM;
            want *= 2;
        }
        uint8_t *p = realloc(b->data, want);
        if (!p)
            return MK_ENOMEM;
        b->data = p;
        b->cap = want;
    }
    mk_wcur_init(c, b->data + b->tail, n);
    return 0;
}

void mk_buf_commit(mk_buf *b, size_t n) { b->tail += n; }

int mk_buf_append(mk_buf *b, const void *p, size_t n)
{
    mk_wcur c;
    int rc = mk_buf_reserve(b, n, &c);
    if (rc)
        return rc;
    mk_wcur_bytes(&c, p, n);
    mk_buf_commit(b, n);
    return 0;
}
