#include "mk_workload.h"

#include <stdlib.h>
#include <string.h>

#include "mk_err.h"

static const char *const names[MK_WL_COUNT] = {"mixed", "whole", "partial", "seq",
                                               "hot",   "block", "small"};

int mk_workload_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return MK_EINVAL;
}

const char *mk_workload_name(int kind)
{
    return kind >= 0 && kind < (int)(sizeof names / sizeof *names) ? names[kind] : "?";
}

#define MAX_WRITE_BLOCKS 16

int mk_workload_init(mk_workload *w, int kind, uint64_t seed, uint64_t nblocks,
                     uint32_t bs)
{
    memset(w, 0, sizeof *w);
    if (kind < 0 || kind >= MK_WL_COUNT || nblocks == 0)
        return MK_EINVAL;
    w->kind = kind;
    w->nblocks = nblocks;
    w->bs = bs;
    mk_prng_seed(&w->rng, seed);
    w->buf = malloc((size_t)MAX_WRITE_BLOCKS * bs);
    return w->buf ? 0 : MK_ENOMEM;
}

void mk_workload_free(mk_workload *w)
{
    free(w->buf);
    w->buf = NULL;
}

/* A whole-block write of up to max blocks starting at a random block. */
static void whole(mk_workload *w, uint64_t lo, uint64_t span, uint64_t max,
                  uint64_t *off, uint32_t *len)
{
    uint64_t b = lo + mk_prng_below(&w->rng, span);
    uint64_t room = w->nblocks - b;
    uint64_t n = 1 + mk_prng_below(&w->rng, max);
    if (n > room)
        n = room;
    *off = b * w->bs;
    *len = (uint32_t)(n * w->bs);
}

void mk_workload_next(mk_workload *w, uint64_t *off, uint32_t *len,
                      const uint8_t **data)
{
    uint64_t vbytes = w->nblocks * w->bs;
    int kind = w->kind;
    if (kind == MK_WL_MIXED)
        kind = mk_prng_chance(&w->rng, 7, 10) ? MK_WL_WHOLE : -1;
    switch (kind) {
    case MK_WL_WHOLE:
        whole(w, 0, w->nblocks, 8, off, len);
        break;
    case MK_WL_PARTIAL:
        *len = 1 + (uint32_t)mk_prng_below(&w->rng, w->bs - 1);
        *off = mk_prng_below(&w->rng, vbytes - *len + 1);
        break;
    case MK_WL_SEQ: {
        uint64_t n = MAX_WRITE_BLOCKS;
        if (w->seq_next >= w->nblocks)
            w->seq_next = 0;
        if (n > w->nblocks - w->seq_next)
            n = w->nblocks - w->seq_next;
        *off = w->seq_next * w->bs;
        *len = (uint32_t)(n * w->bs);
        w->seq_next += n;
        break;
    }
    case MK_WL_HOT: {
        uint64_t hot = w->nblocks / 10 ? w->nblocks / 10 : 1;
        if (mk_prng_chance(&w->rng, 9, 10))
            whole(w, 0, hot, 1, off, len);
        else
            whole(w, 0, w->nblocks, 1, off, len);
        break;
    }
    case MK_WL_BLOCK:
        whole(w, 0, w->nblocks, 1, off, len);
        break;
    case MK_WL_SMALL: {
        uint64_t n = vbytes / 512;
        *len = vbytes < 512 ? (uint32_t)vbytes : 512;
        *off = n ? mk_prng_below(&w->rng, n) * 512 : 0;
        break;
    }
    default: { /* mixed's unaligned share: 1 byte .. 4 blocks anywhere */
        uint64_t max = 4ull * w->bs < vbytes ? 4ull * w->bs : vbytes;
        *len = 1 + (uint32_t)mk_prng_below(&w->rng, max);
        *off = mk_prng_below(&w->rng, vbytes - *len + 1);
        break;
    }
    }
    mk_prng_fill(&w->rng, w->buf, *len);
    *data = w->buf;
}
