/*
 * mk_vec.h - growing a dynamic array by doubling, the one way every module
 * does it.
 */
#ifndef MK_VEC_H
#define MK_VEC_H

#include <stdint.h>
#include <stdlib.h>

/*
 * Makes room for element number len of an array of *cap elements of elem
 * bytes: returns the array, moved if it had to grow (to first elements, or
 * twice *cap), with *cap updated; or NULL when memory or size_t ran out, in
 * which case the old array is untouched and still the caller's.
 */
static inline void *mk_vec_grow(void *v, size_t *cap, size_t len, size_t elem, size_t first)
{
    if (len < *cap)
        return v;
    size_t n = *cap ? *cap * 2 : first;
    if (n < *cap || n > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(v, n * elem);
    if (p)
        *cap = n;
    return p;
}

#endif
