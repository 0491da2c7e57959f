/*
 * mk_map.h - an open-addressing hash map from u64 keys to u64 values.
 *
 * Used for the sets that must grow with dirty blocks and never with volume
 * size: the source's dirty-block descriptors and the destination's staged
 * CP blocks.  Both are cleared wholesale at a CP, so there is no delete.
 * Keys may be any value except UINT64_MAX.  The map owns its table.
 */
#ifndef MK_MAP_H
#define MK_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct mk_map {
    uint64_t *keys; /* key + 1; 0 marks an empty slot */
    uint64_t *vals;
    size_t cap, count;
} mk_map;

/* splitmix64's 64-bit finaliser: spreads neighbouring keys (block or page
 * numbers) over a power-of-two table.  Shared by every hash table here. */
static inline uint64_t mk_hash64(uint64_t key)
{
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    return key ^ (key >> 31);
}

void mk_map_init(mk_map *m);
void mk_map_free(mk_map *m);
/* Empties the map; releases the table too when it had grown large, so a
 * burst of dirty blocks does not pin memory for the rest of the run. */
void mk_map_clear(mk_map *m);
/* 1 and *val if present, else 0. */
int mk_map_get(const mk_map *m, uint64_t key, uint64_t *val);
/* Iteration: slot i in [0, m->cap); 1 and its entry if the slot is used. */
int mk_map_slot(const mk_map *m, size_t i, uint64_t *key, uint64_t *val);
/* Inserts or overwrites; 0 or MK_ENOMEM. */
int mk_map_put(mk_map *m, uint64_t key, uint64_t val);

#endif
