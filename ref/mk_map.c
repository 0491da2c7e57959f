#include "mk_map.h"

#include <stdlib.h>
#include <string.h>

#include "mk_err.h"

void mk_map_init(mk_map *m) { memset(m, 0, sizeof *m); }

void mk_map_free(mk_map *m)
{
    free(m->keys);
    free(m->vals);
    mk_map_init(m);
}

void mk_map_clear(mk_map *m)
{
    if (m->cap > 4096) {
        mk_map_free(m);
        return;
    }
    if (m->keys)
        memset(m->keys, 0, m->cap * sizeof *m->keys);
    m->count = 0;
}

static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)mk_hash64(key) & (cap - 1);
}

int mk_map_get(const mk_map *m, uint64_t key, uint64_t *val)
{
    if (!m->cap)
        return 0;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == 0)
            return 0;
        if (m->keys[i] == key + 1) {
            *val = m->vals[i];
            return 1;
        }
    }
}

static void put_raw(mk_map *m, uint64_t k1, uint64_t val)
{
    size_t i = slot_of(k1 - 1, m->cap);
    while (m->keys[i] != 0 && m->keys[i] != k1)
        i = (i + 1) & (m->cap - 1);
    if (m->keys[i] == 0)
        m->count++;
    m->keys[i] = k1;
    m->vals[i] = val;
}

int mk_map_put(mk_map *m, uint64_t key, uint64_t val)
{
    if (key == UINT64_MAX)
        return MK_EINVAL;
    if ((m->count + 1) * 4 > m->cap * 3) { /* keep load under 3/4 */
        size_t ncap = m->cap ? m->cap * 2 : 64;
        mk_map n = {calloc(ncap, sizeof *n.keys), malloc(ncap * sizeof *n.vals),
                    ncap, 0};
        if (!n.keys || !n.vals) {
            free(n.keys);
            free(n.vals);
            return MK_ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                put_raw(&n, m->keys[i], m->vals[i]);
        mk_map_free(m);
        *m = n;
    }
    put_raw(m, key + 1, val);
    return 0;
}

int mk_map_slot(const mk_map *m, size_t i, uint64_t *key, uint64_t *val)
{
    if (i >= m->cap || !m->keys[i])
        return 0;
    *key = m->keys[i] - 1;
    *val = m->vals[i];
    return 1;
}
