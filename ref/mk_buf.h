/*
 * mk_buf.h - a growable FIFO byte queue.
 *
 * Engines append encoded frames at the tail and the transport drains them
 * from the head; readers accumulate partial frames the same way.  The queue
 * owns its storage (malloc'd, freed by mk_buf_free).  Space is reclaimed by
 * sliding the live bytes to the front when the head has moved past half the
 * capacity, so a long-lived queue does not grow with total traffic, only
 * with what is in flight.
 */
#ifndef MK_BUF_H
#define MK_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "mk_cursor.h"

typedef struct mk_buf {
    uint8_t *data;
    size_t head; /* first live byte */
    size_t tail; /* one past the last live byte */
    size_t cap;
} mk_buf;

void mk_buf_init(mk_buf *b);
void mk_buf_free(mk_buf *b);
size_t mk_buf_len(const mk_buf *b);
const uint8_t *mk_buf_peek(const mk_buf *b);
void mk_buf_consume(mk_buf *b, size_t n);
void mk_buf_clear(mk_buf *b);
/* Makes n bytes writable at the tail and opens a write cursor over them;
 * nothing becomes live until mk_buf_commit. */
int mk_buf_reserve(mk_buf *b, size_t n, mk_wcur *c);
void mk_buf_commit(mk_buf *b, size_t n);
int mk_buf_append(mk_buf *b, const void *p, size_t n);

#endif
