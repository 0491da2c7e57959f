/*
 * mk_prng.h - the one seeded PRNG of mirrorkit (xoshiro256**, seeded by
 * splitmix64).  Every random choice of a run - workload, link chunking,
 * faults - draws from an mk_prng derived from the run's seed, so the same
 * seed gives the same byte-identical run.
 */
#ifndef MK_PRNG_H
#define MK_PRNG_H

#include <stdint.h>

typedef struct mk_prng {
    uint64_t s[4];
} mk_prng;

void mk_prng_seed(mk_prng *r, uint64_t seed);
uint64_t mk_prng_next(mk_prng *r);
/* Uniform in [0, n); n > 0.  Uses rejection so there is no modulo bias. */
uint64_t mk_prng_below(mk_prng *r, uint64_t n);
/* 1 with probability num/den. */
int mk_prng_chance(mk_prng *r, uint64_t num, uint64_t den);
void mk_prng_fill(mk_prng *r, void *buf, uint64_t n);

#endif
