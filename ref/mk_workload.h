/*
 * mk_workload.h - the seeded client-write generator.
 *
 * Kinds (section 1.2 says what a write may be; these cover its classes):
 *   whole    block-aligned writes of 1..8 whole blocks at random places
 *   partial  sub-block writes (1..B-1 bytes) at random byte offsets
 *   mixed    70% whole, 30% unaligned writes of 1 byte..4 blocks (default)
 *   seq      sequential whole-block writes of 16 blocks, wrapping
 *   hot      whole-block writes, 90% of them into a hot 10% of the volume
 *   block    one whole block at a random place (random 4 KiB with B = 4096)
 *   small    512 bytes at a random 512-byte-aligned offset: a partial write
 *            of a block when B > 512
 * The same seed gives the same writes, byte for byte.  The generator owns
 * one buffer of the largest write; the data pointer it returns is valid
 * until the next call.
 */
#ifndef MK_WORKLOAD_H
#define MK_WORKLOAD_H

#include <stdint.h>

#include "mk_prng.h"

enum { MK_WL_MIXED, MK_WL_WHOLE, MK_WL_PARTIAL, MK_WL_SEQ, MK_WL_HOT, MK_WL_BLOCK, MK_WL_SMALL,
       MK_WL_COUNT };

typedef struct mk_workload {
    int kind;
    mk_prng rng;
    uint64_t nblocks, seq_next;
    uint32_t bs;
    uint8_t *buf;
} mk_workload;

int mk_workload_parse(const char *name); /* kind or MK_EINVAL */
const char *mk_workload_name(int kind);
int mk_workload_init(mk_workload *w, int kind, uint64_t seed, uint64_t nblocks,
                     uint32_t bs);
void mk_workload_free(mk_workload *w);
void mk_workload_next(mk_workload *w, uint64_t *off, uint32_t *len,
                      const uint8_t **data);

#endif
