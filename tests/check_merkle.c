/*
 * check_merkle.c - the Merkle tree of a volume (ref/mk_merkle.h, SPEC.md
 * section 9): the definition pinned by vectors computed here by hand with
 * XXH3_128bits, the file layout, incremental commit against a full
 * rebuild, the descent that finds differing blocks, its O(d log N) query
 * bound and its defence against a lying remote, and the memory bound on a
 * huge sparse volume.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "mk_err.h"
#include "mk_file.h"
#include "mk_merkle.h"
#include "mk_prng.h"
#include "mk_wire.h"
#include "mk_test.h"

/* ---- an independent model of the definition ------------------------------ */

/* The model below builds every hash input byte by byte from the text of
 * the definition, without the module's cursor or helpers, so that a
 * mistake in the module cannot be repeated by the oracle. */

static void put16(uint8_t out[16], mk_h128 h)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(h.lo >> (8 * i));
        out[8 + i] = (uint8_t)(h.hi >> (8 * i));
    }
}

static mk_h128 xxh(const void *p, size_t n)
{
    XXH128_hash_t x = XXH3_128bits(p, n);
    mk_h128 h = {x.low64, x.high64};
    return h;
}

static const mk_h128 ZERO = {0, 0};

static mk_h128 model_leaf(const uint8_t *block, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (block[i])
            return xxh(block, len);
    return ZERO;
}

static mk_h128 model_inner(unsigned level, mk_h128 l, mk_h128 r)
{
    if (mk_h128_is_zero(l) && mk_h128_is_zero(r))
        return ZERO;
    uint8_t in[33];
    in[0] = (uint8_t)level;
    put16(in + 1, l);
    put16(in + 17, r);
    return xxh(in, sizeof in);
}

/* A leaf with its value, for the sparse model below. */
typedef struct leafval {
    uint64_t idx;
    mk_h128 h;
} leafval;

static int leafval_cmp(const void *a, const void *b)
{
    uint64_t x = ((const leafval *)a)->idx, y = ((const leafval *)b)->idx;
    return (x > y) - (x < y);
}

/* Node (level, index) of the tree whose only non-zero leaves are v[0..n),
 * sorted: any subtree holding none of them is 0.  This costs O(n log N)
 * for the root however large N is, so it checks the huge trees too. */
static mk_h128 model_node(const leafval *v, size_t n, unsigned level, uint64_t index)
{
    uint64_t lo = index << level, hi = (index + 1) << level;
    size_t a = 0, b = n;
    while (a < b) { /* first entry >= lo */
        size_t m = a + (b - a) / 2;
        if (v[m].idx < lo)
            a = m + 1;
        else
            b = m;
    }
    if (a == n || v[a].idx >= hi)
        return ZERO;
    if (level == 0)
        return v[a].h;
    size_t e = a;
    while (e < n && v[e].idx < hi)
        e++;
    return model_inner(level, model_node(v + a, e - a, level - 1, 2 * index),
                       model_node(v + a, e - a, level - 1, 2 * index + 1));
}

/* ---- helpers ----------------------------------------------------------------- */

#define BS 512

static mk_file *mem(const char *name)
{
    mk_file *f;
    ck_assert_int_eq(mk_file_mem(name, &f), 0);
    return f;
}

static mk_merkle *open_tree(mk_file *f, uint64_t n)
{
    mk_merkle *t;
    ck_assert_int_eq(mk_merkle_open(f, n, &t), 0);
    return t;
}

static void ck_h_eq(mk_h128 a, mk_h128 b)
{
    ck_assert_msg(mk_h128_eq(a, b), "%016llx%016llx != %016llx%016llx",
                  (unsigned long long)a.hi, (unsigned long long)a.lo, (unsigned long long)b.hi,
                  (unsigned long long)b.lo);
}

static mk_h128 node(mk_merkle *t, unsigned level, uint64_t index)
{
    mk_h128 h;
    ck_assert_int_eq(mk_merkle_node(t, level, index, &h), 0);
    return h;
}

static mk_h128 root(mk_merkle *t)
{
    mk_h128 h;
    ck_assert_int_eq(mk_merkle_root(t, &h), 0);
    return h;
}

/* Every node of two trees of the same geometry is equal.  The nodes are
 * compared in a plain loop and asserted once, because each passing Check
 * assertion records its location (a pipe write when forking), which made
 * tens of thousands of per-node assertions dominate the suite's time. */
static void ck_same_tree(mk_merkle *a, mk_merkle *b)
{
    uint32_t h = mk_merkle_height(a);
    ck_assert_uint_eq(h, mk_merkle_height(b));
    int rc = 0;
    for (uint32_t level = 0; level <= h; level++) {
        for (uint64_t i = 0; i < (UINT64_C(1) << (h - level)); i++) {
            mk_h128 x, y;
            if ((rc = mk_merkle_node(a, level, i, &x)) || (rc = mk_merkle_node(b, level, i, &y)))
                ck_abort_msg("node (%u, %llu): %s", level, (unsigned long long)i, mk_errname(rc));
            if (!mk_h128_eq(x, y))
                ck_abort_msg("trees differ at node (%u, %llu)", level, (unsigned long long)i);
        }
    }
}

/* Block content that depends on the block and a version, never zero. */
static void fill_block(uint8_t *b, uint64_t blk, uint64_t version)
{
    mk_prng r;
    mk_prng_seed(&r, blk * 1000003 + version + 1);
    mk_prng_fill(&r, b, BS);
    b[0] |= 1;
}

/* A distinct non-zero leaf value for tests that need no block bytes. */
static mk_h128 val(uint64_t leaf, uint64_t version)
{
    uint64_t in[2] = {leaf, version};
    return xxh(in, sizeof in);
}

/* Resident set size of this process, from the second field of statm. */
static uint64_t rss_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(fp);
    unsigned long size, res;
    ck_assert_int_eq(fscanf(fp, "%lu %lu", &size, &res), 2);
    fclose(fp);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* ---- definition vectors ------------------------------------------------------- */

START_TEST(test_s9_merkle_leaf_of_zero_block_is_zero)
{
    static uint8_t z[65536 + 1];
    ck_assert(mk_h128_is_zero(mk_leaf_hash(z, 4096)));
    ck_assert(mk_h128_is_zero(mk_leaf_hash(z + 1, 512))); /* unaligned */
    ck_assert(mk_h128_is_zero(mk_leaf_hash(z, 65536)));
    ck_assert(mk_h128_is_zero(mk_leaf_hash(z, 0)));
    /* One non-zero byte anywhere, the last one included, makes the leaf
     * the plain XXH3-128 of the block. */
    size_t at[] = {0, 1, 17, 4095};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        uint8_t b[4096] = {0};
        b[at[k]] = 0x80;
        XXH128_hash_t x = XXH3_128bits(b, sizeof b);
        mk_h128 h = mk_leaf_hash(b, sizeof b);
        ck_assert_uint_eq(h.lo, x.low64);
        ck_assert_uint_eq(h.hi, x.high64);
    }
}
END_TEST

/* mk_block_sums gives H (SPEC.md 3.2) and the leaf of one block in one
 * pass, which rests on XXH3-64 being the low half of XXH3-128 for inputs
 * over 240 bytes: this holds the library to it for every block size, on
 * random, zero and almost-zero blocks, and checks the short fallback. */
START_TEST(test_s9_merkle_block_sums_equal_two_hashes)
{
    static uint8_t b[65536];
    mk_prng r;
    mk_prng_seed(&r, 77);
    for (uint32_t bs = 512; bs <= 65536; bs *= 2)
        for (int kind = 0; kind < 3; kind++) {
            memset(b, 0, bs);
            if (kind == 0)
                mk_prng_fill(&r, b, bs);
            if (kind == 2)
                b[bs - 1] = 1;
            uint64_t h;
            mk_h128 leaf, want = mk_leaf_hash(b, bs);
            mk_block_sums(b, bs, &h, &leaf);
            ck_assert_uint_eq(h, mk_block_hash(b, bs));
            ck_assert(mk_h128_eq(leaf, want));
            ck_assert_int_eq(mk_h128_is_zero(leaf), kind == 1);
        }
    for (size_t len = 0; len <= 300; len += 20) {
        uint64_t h;
        mk_h128 leaf;
        mk_prng_fill(&r, b, len);
        mk_block_sums(b, len, &h, &leaf);
        ck_assert_uint_eq(h, mk_block_hash(b, len));
        ck_assert(mk_h128_eq(leaf, mk_leaf_hash(b, len)));
    }
}
END_TEST

/* The inner node hashes the level byte and both children serialised low
 * half first, little-endian; two zero children give 0. */
START_TEST(test_s9_merkle_inner_node_encoding)
{
    mk_h128 l = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    mk_h128 r = {0x1716151413121110ull, 0x1f1e1d1c1b1a1918ull};
    uint8_t in[33];
    mk_test_unhex("05"
                  "000102030405060708090a0b0c0d0e0f"
                  "101112131415161718191a1b1c1d1e1f",
                  in, sizeof in);
    ck_h_eq(mk_merkle_inner(5, l, r), xxh(in, sizeof in));
    ck_h_eq(mk_merkle_inner(5, l, r), model_inner(5, l, r));
    ck_assert(mk_h128_is_zero(mk_merkle_inner(1, ZERO, ZERO)));
    ck_assert(!mk_h128_is_zero(mk_merkle_inner(1, ZERO, r)));
    ck_assert(!mk_h128_is_zero(mk_merkle_inner(1, l, ZERO)));
    /* The level byte separates levels: the same children differ by level. */
    ck_assert(!mk_h128_eq(mk_merkle_inner(1, l, r), mk_merkle_inner(2, l, r)));
}
END_TEST

static const struct {
    uint64_t n;
    uint32_t h;
    uint64_t bytes;
} geometry[] = {
    {1, 0, 16}, {2, 1, 48}, {3, 2, 112}, {4, 2, 112}, {5, 3, 240}, {1000, 10, 16 * 2047},
};

START_TEST(test_s9_merkle_geometry)
{
    for (size_t k = 0; k < sizeof geometry / sizeof geometry[0]; k++) {
        mk_file *f = mem("g");
        mk_merkle *t = open_tree(f, geometry[k].n);
        ck_assert_uint_eq(mk_merkle_height(t), geometry[k].h);
        ck_assert_uint_eq(mk_merkle_nleaves(t), geometry[k].n);
        ck_assert_uint_eq(mk_merkle_bytes(geometry[k].n), geometry[k].bytes);
        mk_merkle_free(t);
        mk_file_close(f);
    }
    ck_assert_uint_eq(mk_merkle_bytes(0), 0);
    ck_assert_uint_eq(mk_merkle_bytes(MK_MERKLE_MAX_LEAVES + 1), 0);
    ck_assert_uint_eq(mk_merkle_bytes(MK_MERKLE_MAX_LEAVES), 16 * ((UINT64_C(1) << 59) - 1));
}
END_TEST

/*
 * Builds a tree of n blocks both ways, by rebuild from an image and by
 * setting and committing every leaf, and checks both against the nodes
 * expect[level][index] computed by hand, and that each node sits at the
 * byte offset the layout gives.
 */
static void check_vector(uint64_t n, uint8_t blocks[][BS], mk_h128 *const *expect)
{
    mk_file *img = mem("img");
    for (uint64_t b = 0; b < n; b++)
        ck_assert_int_eq(mk_file_pwrite(img, blocks[b], BS, b * BS), 0);
    mk_file *f1 = mem("t1"), *f2 = mem("t2");
    mk_merkle *t1 = open_tree(f1, n), *t2 = open_tree(f2, n);
    ck_assert_int_eq(mk_merkle_rebuild(t1, img, BS), 0);
    for (uint64_t b = 0; b < n; b++)
        ck_assert_int_eq(mk_merkle_set(t2, b, mk_leaf_hash(blocks[b], BS)), 0);
    ck_assert_int_eq(mk_merkle_commit(t2), 0);

    uint32_t h = mk_merkle_height(t1);
    uint64_t p = UINT64_C(1) << h, base = 0;
    for (uint32_t level = 0; level <= h; level++) {
        for (uint64_t i = 0; i < (p >> level); i++) {
            ck_h_eq(node(t1, level, i), expect[level][i]);
            ck_h_eq(node(t2, level, i), expect[level][i]);
            uint8_t raw[16], want[16];
            ck_assert_int_eq(mk_file_read_block(f2, raw, 16, 16 * (base + i)), 0);
            put16(want, expect[level][i]);
            ck_assert_mem_eq(raw, want, 16);
        }
        base += p >> level;
    }
    ck_h_eq(root(t1), expect[h][0]);
    mk_merkle_free(t1);
    mk_merkle_free(t2);
    mk_file_close(f1);
    mk_file_close(f2);
    mk_file_close(img);
}

static uint8_t vblocks[5][BS];

static void make_vblocks(void)
{
    for (int b = 0; b < 5; b++)
        fill_block(vblocks[b], (uint64_t)b, 0);
}

START_TEST(test_s9_merkle_vector_1_leaf)
{
    make_vblocks();
    mk_h128 l0 = model_leaf(vblocks[0], BS);
    ck_assert(!mk_h128_is_zero(l0));
    mk_h128 lv0[] = {l0};
    mk_h128 *expect[] = {lv0};
    check_vector(1, vblocks, expect); /* H = 0: the root is leaf 0 */
}
END_TEST

START_TEST(test_s9_merkle_vector_2_leaves)
{
    make_vblocks();
    mk_h128 l0 = model_leaf(vblocks[0], BS), l1 = model_leaf(vblocks[1], BS);
    mk_h128 lv0[] = {l0, l1};
    mk_h128 lv1[] = {model_inner(1, l0, l1)};
    mk_h128 *expect[] = {lv0, lv1};
    check_vector(2, vblocks, expect);
}
END_TEST

START_TEST(test_s9_merkle_vector_3_leaves_padding)
{
    make_vblocks();
    mk_h128 l0 = model_leaf(vblocks[0], BS), l1 = model_leaf(vblocks[1], BS),
            l2 = model_leaf(vblocks[2], BS);
    /* P = 4: leaf 3 is padding, 0, and pairs with leaf 2. */
    mk_h128 lv0[] = {l0, l1, l2, ZERO};
    mk_h128 lv1[] = {model_inner(1, l0, l1), model_inner(1, l2, ZERO)};
    mk_h128 lv2[] = {model_inner(2, lv1[0], lv1[1])};
    mk_h128 *expect[] = {lv0, lv1, lv2};
    check_vector(3, vblocks, expect);
}
END_TEST

START_TEST(test_s9_merkle_vector_5_leaves_with_zero_block)
{
    make_vblocks();
    memset(vblocks[3], 0, BS); /* a zero block inside the volume: leaf 0 */
    mk_h128 l[5];
    for (int b = 0; b < 5; b++)
        l[b] = model_leaf(vblocks[b], BS);
    ck_assert(mk_h128_is_zero(l[3]));
    /* P = 8, H = 3; leaves 5..7 are padding, so node (1, 3) and its parent's
     * right half stay 0 while (1, 2) covers leaf 4 and a padding leaf. */
    mk_h128 lv0[] = {l[0], l[1], l[2], l[3], l[4], ZERO, ZERO, ZERO};
    mk_h128 lv1[] = {model_inner(1, l[0], l[1]), model_inner(1, l[2], l[3]),
                     model_inner(1, l[4], ZERO), ZERO};
    mk_h128 lv2[] = {model_inner(2, lv1[0], lv1[1]), model_inner(2, lv1[2], ZERO)};
    mk_h128 lv3[] = {model_inner(3, lv2[0], lv2[1])};
    mk_h128 *expect[] = {lv0, lv1, lv2, lv3};
    check_vector(5, vblocks, expect);
}
END_TEST

/* An all-zero volume has root 0, and its tree is an empty file: rebuild
 * writes no node, and neither does committing zero leaves. */
START_TEST(test_s9_merkle_zero_volume_empty_file)
{
    mk_file *img = mem("img"), *f = mem("t");
    mk_merkle *t = open_tree(f, 1000);
    ck_assert(mk_h128_is_zero(root(t)));
    ck_assert_int_eq(mk_file_truncate(img, 1000 * BS), 0);
    ck_assert_int_eq(mk_merkle_rebuild(t, img, BS), 0);
    ck_assert(mk_h128_is_zero(root(t)));
    for (uint64_t b = 0; b < 1000; b += 7)
        ck_assert_int_eq(mk_merkle_set(t, b, ZERO), 0);
    ck_assert_int_eq(mk_merkle_commit(t), 0);
    ck_assert(mk_h128_is_zero(root(t)));
    ck_assert_uint_eq(mk_file_mem_written(f), 0);
    mk_merkle_free(t);
    mk_file_close(f);
    mk_file_close(img);
}
END_TEST

START_TEST(test_s9_merkle_argument_errors)
{
    mk_file *f = mem("t");
    /* A failed open must clear *out, so start it at something non-NULL. */
    static char sentinel;
    mk_merkle *t = (mk_merkle *)(void *)&sentinel;
    ck_assert_int_eq(mk_merkle_open(f, 0, &t), MK_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(mk_merkle_open(f, MK_MERKLE_MAX_LEAVES + 1, &t), MK_EINVAL);
    ck_assert_int_eq(mk_merkle_open(NULL, 5, &t), MK_EINVAL);
    t = open_tree(f, 5);
    mk_h128 h;
    ck_assert_int_eq(mk_merkle_set(t, 5, val(5, 0)), MK_ERANGE);
    ck_assert_int_eq(mk_merkle_node(t, 4, 0, &h), MK_ERANGE);
    ck_assert_int_eq(mk_merkle_node(t, 0, 8, &h), MK_ERANGE);
    ck_assert_int_eq(mk_merkle_node(t, 2, 2, &h), MK_ERANGE);
    ck_assert_int_eq(mk_merkle_node(t, 0, 7, &h), 0); /* padding is in range */
    ck_assert(mk_h128_is_zero(h));
    mk_file *img = mem("img");
    ck_assert_int_eq(mk_merkle_rebuild(t, img, 256), MK_EBLOCKSIZE);
    ck_assert_int_eq(mk_merkle_rebuild(t, img, 3000), MK_EBLOCKSIZE);
    ck_assert_int_eq(mk_merkle_rebuild(t, img, 131072), MK_EBLOCKSIZE);
    mk_merkle_free(t);
    mk_merkle_free(NULL);
    mk_file_close(img);
    mk_file_close(f);
}
END_TEST

/* ---- commit ------------------------------------------------------------------ */

START_TEST(test_s9_merkle_set_last_wins)
{
    mk_file *f = mem("t");
    mk_merkle *t = open_tree(f, 10);
    ck_assert_int_eq(mk_merkle_set(t, 3, val(3, 1)), 0);
    ck_assert_int_eq(mk_merkle_set(t, 7, val(7, 1)), 0);
    ck_assert_int_eq(mk_merkle_set(t, 3, val(3, 2)), 0);
    ck_assert_uint_eq(mk_merkle_staged(t), 2);
    /* Staged leaves are not visible until committed. */
    ck_assert(mk_h128_is_zero(root(t)));
    ck_assert_int_eq(mk_merkle_commit(t), 0);
    ck_assert_uint_eq(mk_merkle_staged(t), 0);
    leafval v[] = {{3, val(3, 2)}, {7, val(7, 1)}};
    ck_h_eq(root(t), model_node(v, 2, 4, 0));
    ck_h_eq(node(t, 0, 3), val(3, 2));
    mk_merkle_free(t);
    mk_file_close(f);
}
END_TEST

/*
 * Random block writes, including blocks written back to zero, on a
 * 10000-block image: after each round of writes the leaves of the written
 * blocks are committed, and every node of the tree must equal that of a
 * tree rebuilt from the image on a second file.  Committing the same
 * leaves again must not write anything.
 */
START_TEST(test_s9_merkle_commit_equals_rebuild)
{
    const uint64_t n = 10000;
    mk_file *img = mem("img"), *f1 = mem("t1"), *f2 = mem("t2");
    mk_merkle *inc = open_tree(f1, n), *full = open_tree(f2, n);
    mk_prng r;
    mk_prng_seed(&r, 42);
    uint8_t b[BS];
    uint64_t *blk = malloc(2000 * sizeof *blk);
    ck_assert_ptr_nonnull(blk);
    for (int round = 0; round < 6; round++) {
        /* Early rounds are sparse, later ones dense and clustered. */
        size_t writes = round < 3 ? 50 + 300 * (size_t)round : 2000;
        for (size_t k = 0; k < writes; k++) {
            blk[k] = round == 4 ? (mk_prng_below(&r, 500) + 4000) : mk_prng_below(&r, n);
            if (k == 0 && round == 5)
                blk[k] = n - 1;
            if (mk_prng_chance(&r, 1, 8))
                memset(b, 0, sizeof b);
            else
                fill_block(b, blk[k], (uint64_t)round * 100000 + k);
            ck_assert_int_eq(mk_file_pwrite(img, b, BS, blk[k] * BS), 0);
        }
        for (size_t k = 0; k < writes; k++) {
            ck_assert_int_eq(mk_file_read_block(img, b, BS, blk[k] * BS), 0);
            ck_assert_int_eq(mk_merkle_set(inc, blk[k], mk_leaf_hash(b, BS)), 0);
        }
        ck_assert_int_eq(mk_merkle_commit(inc), 0);
        ck_assert_int_eq(mk_merkle_rebuild(full, img, BS), 0);
        ck_same_tree(inc, full);

        uint64_t written = mk_file_mem_written(f1);
        for (size_t k = 0; k < writes; k++) {
            ck_assert_int_eq(mk_file_read_block(img, b, BS, blk[k] * BS), 0);
            ck_assert_int_eq(mk_merkle_set(inc, blk[k], mk_leaf_hash(b, BS)), 0);
        }
        ck_assert_int_eq(mk_merkle_commit(inc), 0);
        ck_assert_uint_eq(mk_file_mem_written(f1), written);
    }
    free(blk);
    mk_merkle_free(inc);
    mk_merkle_free(full);
    mk_file_close(img);
    mk_file_close(f1);
    mk_file_close(f2);
}
END_TEST

/*
 * A commit that fails part-way (at every write it makes, in turn) leaves
 * its leaves staged, and the retry repairs the half-written paths: the
 * tree then equals the model.
 */
START_TEST(test_s9_merkle_commit_retry_repairs)
{
    const uint64_t n = 1000;
    leafval v[64];
    for (size_t k = 0; k < 64; k++) {
        /* 32 scattered leaves, then a run of 32 neighbours (950..981). */
        v[k].idx = k < 32 ? k * 29 : 918 + k;
        v[k].h = val(v[k].idx, 9);
    }
    /* A run with no limit counts the writes a commit makes and gives the
     * tree to compare with, itself checked against the model. */
    mk_crash_clock clk = {0, 0, 0, 0};
    mk_file *fref;
    ck_assert_int_eq(mk_file_mem_crashable("ref", &clk, &fref), 0);
    mk_merkle *ref = open_tree(fref, n);
    for (size_t k = 0; k < 64; k++)
        ck_assert_int_eq(mk_merkle_set(ref, v[k].idx, v[k].h), 0);
    ck_assert_int_eq(mk_merkle_commit(ref), 0);
    uint64_t ticks = clk.ticks;
    ck_assert_uint_gt(ticks, 10);
    qsort(v, 64, sizeof v[0], leafval_cmp);
    for (uint32_t level = 0; level <= mk_merkle_height(ref); level++) {
        for (uint64_t i = 0; i < (UINT64_C(1) << (mk_merkle_height(ref) - level)); i++) {
            mk_h128 x;
            if (mk_merkle_node(ref, level, i, &x) || !mk_h128_eq(x, model_node(v, 64, level, i)))
                ck_abort_msg("node (%u, %llu) is not the model's", level, (unsigned long long)i);
        }
    }

    for (uint64_t limit = 1; limit <= ticks; limit++) {
        mk_crash_clock c = {0, limit, 0, 0};
        mk_file *f;
        ck_assert_int_eq(mk_file_mem_crashable("t", &c, &f), 0);
        mk_merkle *t = open_tree(f, n);
        for (size_t k = 0; k < 64; k++)
            ck_assert_int_eq(mk_merkle_set(t, v[k].idx, v[k].h), 0);
        ck_assert_int_eq(mk_merkle_commit(t), MK_EIO);
        ck_assert_uint_eq(mk_merkle_staged(t), 64);
        c.dead = 0; /* the fault was transient */
        c.limit = 0;
        ck_assert_int_eq(mk_merkle_commit(t), 0);
        ck_assert_uint_eq(mk_merkle_staged(t), 0);
        ck_same_tree(t, ref);
        mk_merkle_free(t);
        mk_file_close(f);
    }
    mk_merkle_free(ref);
    mk_file_close(fref);
}
END_TEST

/* ---- descent ----------------------------------------------------------------- */

/*
 * Two trees over n leaves: a holds base values on every stride-th leaf
 * (none if stride is 0),
 * b the same except on the leaves in diff[]: changed, or made zero when
 * a has a value there and the index is a multiple of 5, or made non-zero
 * where a has a hole.
 */
typedef struct pair {
    mk_file *fa, *fb;
    mk_merkle *a, *b;
} pair;

static void pair_make(pair *p, uint64_t n, uint64_t stride, const uint64_t *diff, size_t d)
{
    p->fa = mem("a");
    p->fb = mem("b");
    p->a = open_tree(p->fa, n);
    p->b = open_tree(p->fb, n);
    /* One assertion for all the sets (see ck_same_tree on why). */
    int rc = 0;
    for (uint64_t i = 0; stride && i < n; i += stride) {
        rc |= mk_merkle_set(p->a, i, val(i, 0));
        rc |= mk_merkle_set(p->b, i, val(i, 0));
    }
    for (size_t k = 0; k < d; k++) {
        int base = stride && diff[k] % stride == 0;
        mk_h128 h = base && diff[k] % 5 == 0 ? ZERO : val(diff[k], 1);
        rc |= mk_merkle_set(p->b, diff[k], h);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(mk_merkle_commit(p->a), 0);
    ck_assert_int_eq(mk_merkle_commit(p->b), 0);
}

static void pair_free(pair *p)
{
    mk_merkle_free(p->a);
    mk_merkle_free(p->b);
    mk_file_close(p->fa);
    mk_file_close(p->fb);
}

static int u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/*
 * Drives the incremental API by hand, as a network peer would: each round
 * takes every ready query, then answers them in reverse order (answers may
 * arrive in any order).  Returns the number of queries.
 */
static uint64_t diff_by_hand(pair *p, uint64_t max, uint64_t *out, size_t *nout)
{
    mk_merkle_diff *d = mk_merkle_diff_start(p->a, root(p->b), max);
    ck_assert_ptr_nonnull(d);
    size_t cap = 1024;
    uint32_t *ql = malloc(cap * sizeof *ql);
    uint64_t *qi = malloc(cap * sizeof *qi);
    int rc;
    while ((rc = mk_merkle_diff_done(d)) == 0) {
        size_t nq = 0;
        while (mk_merkle_diff_next_query(d, &ql[nq], &qi[nq]) == 1) {
            ck_assert_uint_ge(ql[nq], 1);
            if (++nq == cap) {
                cap *= 2;
                ql = realloc(ql, cap * sizeof *ql);
                qi = realloc(qi, cap * sizeof *qi);
                ck_assert(ql && qi);
            }
        }
        ck_assert_uint_gt(nq, 0); /* not done, so something is asked */
        while (nq-- > 0)
            ck_assert_int_eq(mk_merkle_diff_answer(d, ql[nq], qi[nq], node(p->b, ql[nq] - 1, 2 * qi[nq]),
                                                   node(p->b, ql[nq] - 1, 2 * qi[nq] + 1)),
                             0);
    }
    ck_assert_int_eq(rc, 1);
    size_t n;
    const uint64_t *found = mk_merkle_diff_leaves(d, &n);
    if (n)
        memcpy(out, found, n * sizeof *found);
    *nout = n;
    uint64_t q = mk_merkle_diff_queries(d);
    ck_assert_uint_eq(mk_merkle_diff_answers(d), q);
    free(ql);
    free(qi);
    mk_merkle_diff_free(d);
    return q;
}

/* Checks that a descent between trees differing exactly in diff[0..d)
 * finds exactly those leaves, both through mk_merkle_compare and by hand,
 * within d * (H + 1) queries. */
static void check_descent(uint64_t n, uint64_t stride, uint64_t *diff, size_t d)
{
    pair p;
    pair_make(&p, n, stride, diff, d);
    if (d)
        qsort(diff, d, sizeof *diff, u64_cmp);
    uint64_t bound = (uint64_t)d * (mk_merkle_height(p.a) + 1);
    uint64_t *got = malloc((d + 1) * sizeof *got);
    size_t ngot = 99;
    uint64_t queries = 99;
    ck_assert_int_eq(mk_merkle_compare(p.a, p.b, d + 1, got, &ngot, &queries), 0);
    ck_assert_uint_eq(ngot, d);
    if (d)
        ck_assert_mem_eq(got, diff, d * sizeof *diff);
    ck_assert_uint_le(queries, bound);

    ck_assert_uint_le(diff_by_hand(&p, d + 1, got, &ngot), bound);
    ck_assert_uint_eq(ngot, d);
    if (d)
        ck_assert_mem_eq(got, diff, d * sizeof *diff);
    if (d == 0)
        ck_assert_uint_eq(queries, 0);
    free(got);
    pair_free(&p);
}

START_TEST(test_s9_merkle_descent_one_block)
{
    uint64_t diff[] = {4321};
    check_descent(10000, 3, diff, 1);
}
END_TEST

START_TEST(test_s9_merkle_descent_many_blocks)
{
    mk_prng r;
    mk_prng_seed(&r, 7);
    uint64_t diff[300];
    size_t d = 0;
    while (d < 300) {
        uint64_t x = mk_prng_below(&r, 10000);
        int dup = 0;
        for (size_t k = 0; k < d; k++)
            dup |= diff[k] == x;
        if (!dup)
            diff[d++] = x;
    }
    check_descent(10000, 2, diff, d);
}
END_TEST

START_TEST(test_s9_merkle_descent_both_ends)
{
    uint64_t diff[] = {0, 9999};
    check_descent(10000, 1, diff, 2);
    uint64_t first[] = {0};
    check_descent(8192, 1, first, 1);
    uint64_t last[] = {8191};
    check_descent(8192, 1, last, 1);
}
END_TEST

START_TEST(test_s9_merkle_descent_all_blocks)
{
    uint64_t *diff = malloc(1000 * sizeof *diff);
    for (uint64_t i = 0; i < 1000; i++)
        diff[i] = i;
    check_descent(1000, 1, diff, 1000);
    free(diff);
}
END_TEST

START_TEST(test_s9_merkle_descent_none)
{
    check_descent(10000, 3, NULL, 0);
    check_descent(1, 1, NULL, 0);
    /* Two all-zero trees are equal too. */
    check_descent(77, 0, NULL, 0);
}
END_TEST

START_TEST(test_s9_merkle_descent_non_power_of_two)
{
    uint64_t diff[] = {3, 500, 776};
    check_descent(777, 1, diff, 3);
    uint64_t d2[] = {1024};
    check_descent(1025, 1, d2, 1); /* the last leaf is alone in its half */
    uint64_t d3[] = {2};
    check_descent(3, 1, d3, 1);
}
END_TEST

START_TEST(test_s9_merkle_descent_single_leaf)
{
    /* H = 0: the roots are the leaves, so a difference needs no query. */
    uint64_t d1[] = {0};
    check_descent(1, 1, d1, 1);
    uint64_t d2[] = {1};
    check_descent(2, 1, d2, 1);
}
END_TEST

/* A descent stops issuing queries once max_diffs leaves are found, and
 * says whether more might differ. */
START_TEST(test_s9_merkle_descent_max_diffs)
{
    uint64_t diff[100];
    for (size_t k = 0; k < 100; k++)
        diff[k] = 37 * k + 11;
    pair p;
    pair_make(&p, 4000, 1, diff, 100);
    uint64_t got[100];
    size_t n;
    uint64_t q, q_all;

    ck_assert_int_eq(mk_merkle_compare(p.a, p.b, 100, got, &n, &q_all), 0);
    ck_assert_uint_eq(n, 100); /* exactly d: nothing more to report */

    /* Breadth-first, every query above the leaves is asked before the
     * first leaf is found, so the limit saves only part of the last level. */
    ck_assert_int_eq(mk_merkle_compare(p.a, p.b, 10, got, &n, &q), 1);
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_le(q, q_all);
    for (size_t k = 0; k < n; k++) {
        ck_assert_uint_eq((got[k] - 11) % 37, 0);
        if (k)
            ck_assert_uint_lt(got[k - 1], got[k]);
    }

    ck_assert_int_eq(mk_merkle_compare(p.a, p.b, 1, got, &n, &q), 1);
    ck_assert_uint_eq(n, 1);

    ck_assert_int_eq(mk_merkle_compare(p.a, p.b, 0, NULL, &n, &q), 1);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(q, 0);
    ck_assert_int_eq(mk_merkle_compare(p.a, p.a, 0, NULL, &n, &q), 0);

    /* By hand: once the limit is reached no query is ready, the descent is
     * done although queries are outstanding, and a late answer is still
     * checked but adds nothing. */
    mk_merkle_diff *d = mk_merkle_diff_start(p.a, root(p.b), 3);
    enum { QMAX = 4096 }; /* more than the whole descent can ask */
    static uint32_t lv[QMAX];
    static uint64_t ix[QMAX];
    size_t nq = 0;
    size_t nleaves = 0;
    while (nleaves < 3) {
        size_t first = nq;
        while (nq < QMAX && mk_merkle_diff_next_query(d, &lv[nq], &ix[nq]) == 1)
            nq++;
        ck_assert_uint_gt(nq, first);
        for (size_t k = first; k < nq && nleaves < 3; k++) {
            ck_assert_int_eq(mk_merkle_diff_answer(d, lv[k], ix[k], node(p.b, lv[k] - 1, 2 * ix[k]),
                                                   node(p.b, lv[k] - 1, 2 * ix[k] + 1)),
                             0);
            lv[k] = 0; /* answered */
            mk_merkle_diff_leaves(d, &nleaves);
        }
    }
    ck_assert_int_eq(mk_merkle_diff_done(d), 1);
    ck_assert_int_eq(mk_merkle_diff_truncated(d), 1);
    uint32_t level;
    uint64_t index;
    ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 0);
    for (size_t k = 0; k < nq; k++)
        if (lv[k])
            ck_assert_int_eq(mk_merkle_diff_answer(d, lv[k], ix[k], node(p.b, lv[k] - 1, 2 * ix[k]),
                                                   node(p.b, lv[k] - 1, 2 * ix[k] + 1)),
                             0);
    mk_merkle_diff_leaves(d, &nleaves);
    ck_assert_uint_eq(nleaves, 3);
    mk_merkle_diff_free(d);
    pair_free(&p);
}
END_TEST

/* Children that do not hash to the parent the remote claimed, at the root
 * or deeper, mark the remote as lying: the descent fails for good. */
START_TEST(test_s9_merkle_descent_lying_remote)
{
    uint64_t diff[] = {10, 600};
    pair p;
    pair_make(&p, 1000, 1, diff, 2);
    for (int depth = 0; depth < 4; depth++) {
        mk_merkle_diff *d = mk_merkle_diff_start(p.a, root(p.b), 100);
        uint32_t level;
        uint64_t index;
        for (int k = 0; k < depth; k++) {
            /* Answer honestly down to depth, following the first query. */
            ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 1);
            ck_assert_int_eq(mk_merkle_diff_answer(d, level, index, node(p.b, level - 1, 2 * index),
                                                   node(p.b, level - 1, 2 * index + 1)),
                             0);
        }
        ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 1);
        mk_h128 l = node(p.b, level - 1, 2 * index), r = node(p.b, level - 1, 2 * index + 1);
        l.hi ^= 1;
        ck_assert_int_eq(mk_merkle_diff_answer(d, level, index, l, r), MK_EINVAL);
        /* Sticky: the honest answer is refused now too. */
        l.hi ^= 1;
        ck_assert_int_eq(mk_merkle_diff_answer(d, level, index, l, r), MK_EINVAL);
        ck_assert_int_eq(mk_merkle_diff_done(d), MK_EINVAL);
        ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), MK_EINVAL);
        mk_merkle_diff_free(d);
    }
    /* A remote that claims a root its children do not make. */
    mk_h128 fake = val(1, 1);
    mk_merkle_diff *d = mk_merkle_diff_start(p.a, fake, 100);
    uint32_t level;
    uint64_t index;
    ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 1);
    ck_assert_int_eq(mk_merkle_diff_answer(d, level, index, node(p.b, level - 1, 0),
                                           node(p.b, level - 1, 1)),
                     MK_EINVAL);
    mk_merkle_diff_free(d);
    pair_free(&p);
}
END_TEST

/* A remote whose children hash correctly but put a non-zero value under
 * the padding (past leaf N-1) is lying about the volume too. */
START_TEST(test_s9_merkle_descent_padding_lie)
{
    mk_file *fa = mem("a"), *fb = mem("b");
    mk_merkle *a = open_tree(fa, 3), *b = open_tree(fb, 4); /* same P = 4 */
    for (uint64_t i = 0; i < 3; i++) {
        ck_assert_int_eq(mk_merkle_set(a, i, val(i, 0)), 0);
        ck_assert_int_eq(mk_merkle_set(b, i, val(i, 0)), 0);
    }
    ck_assert_int_eq(mk_merkle_set(b, 3, val(3, 0)), 0); /* padding for a */
    ck_assert_int_eq(mk_merkle_commit(a), 0);
    ck_assert_int_eq(mk_merkle_commit(b), 0);
    ck_assert_int_eq(mk_merkle_compare(a, b, 10, NULL, NULL, NULL), MK_EVOLUME);

    mk_merkle_diff *d = mk_merkle_diff_start(a, root(b), 10);
    uint32_t level;
    uint64_t index;
    ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 1);
    ck_assert_uint_eq(level, 2);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 2, 0, node(b, 1, 0), node(b, 1, 1)), 0);
    ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 1);
    ck_assert_uint_eq(level, 1);
    ck_assert_uint_eq(index, 1);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 1, 1, node(b, 0, 2), node(b, 0, 3)), MK_EINVAL);
    ck_assert_int_eq(mk_merkle_diff_done(d), MK_EINVAL);
    mk_merkle_diff_free(d);
    mk_merkle_free(a);
    mk_merkle_free(b);
    mk_file_close(fa);
    mk_file_close(fb);
}
END_TEST

/* Answers for nodes that were never asked, or asked and already answered,
 * are refused without ending the descent. */
START_TEST(test_s9_merkle_descent_unasked_answer)
{
    uint64_t diff[] = {5};
    pair p;
    pair_make(&p, 64, 1, diff, 1);
    mk_merkle_diff *d = mk_merkle_diff_start(p.a, root(p.b), 10);
    mk_h128 l = node(p.b, 5, 0), r = node(p.b, 5, 1);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 6, 0, l, r), MK_ESTATE); /* pending, not asked */
    ck_assert_int_eq(mk_merkle_diff_answer(d, 0, 0, l, r), MK_ESTATE);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 7, 0, l, r), MK_ESTATE);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 3, 99, l, r), MK_ESTATE);
    uint32_t level;
    uint64_t index;
    ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 1);
    ck_assert_int_eq(mk_merkle_diff_next_query(d, &level, &index), 0); /* one at a time here */
    ck_assert_int_eq(mk_merkle_diff_done(d), 0);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 6, 0, l, r), 0);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 6, 0, l, r), MK_ESTATE);
    ck_assert_int_eq(mk_merkle_diff_answer(d, 5, 1, node(p.b, 4, 2), node(p.b, 4, 3)), MK_ESTATE);
    ck_assert_int_eq(mk_merkle_diff_done(d), 0);
    while (mk_merkle_diff_next_query(d, &level, &index) == 1)
        ck_assert_int_eq(mk_merkle_diff_answer(d, level, index, node(p.b, level - 1, 2 * index),
                                               node(p.b, level - 1, 2 * index + 1)),
                         0);
    ck_assert_int_eq(mk_merkle_diff_done(d), 1);
    ck_assert_int_eq(mk_merkle_diff_truncated(d), 0);
    size_t n;
    const uint64_t *found = mk_merkle_diff_leaves(d, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(found[0], 5);
    ck_assert_uint_eq(mk_merkle_diff_queries(d), 6); /* one per level 6..1 */
    mk_merkle_diff_free(d);
    pair_free(&p);
}
END_TEST

/* ---- huge sparse volume ------------------------------------------------------------- */

/*
 * N = 2^28 leaves on a memory file (an 8 GiB tree): 100 leaves set and
 * committed must give the model's root while the process grows by less
 * than 64 MiB, and a descent against a second such tree differing in
 * three leaves stays within the query bound.  A rebuild from an image
 * holding only its first blocks reads just those and gives the same root.
 */
START_TEST(test_s9_merkle_huge_sparse_volume)
{
    const uint64_t n = UINT64_C(1) << 28;
    uint64_t rss0 = rss_bytes();
    mk_file *fa = mem("a"), *fb = mem("b");
    mk_merkle *a = open_tree(fa, n), *b = open_tree(fb, n);
    ck_assert_uint_eq(mk_merkle_height(a), 28);
    mk_prng r;
    mk_prng_seed(&r, 2828);
    leafval v[100];
    uint64_t expect[3], got[100];
    size_t d = 0, ngot;
    for (size_t k = 0; k < 100; k++) {
        v[k].idx = k == 0 ? 0 : k == 1 ? n - 1 : mk_prng_below(&r, n);
        v[k].h = val(v[k].idx, 0);
        int differs = k == 1 || k == 2 || k == 50; /* the last leaf and two random ones */
        if (differs)
            expect[d++] = v[k].idx;
        ck_assert_int_eq(mk_merkle_set(a, v[k].idx, v[k].h), 0);
        ck_assert_int_eq(mk_merkle_set(b, v[k].idx, differs ? val(7, k) : v[k].h), 0);
    }
    qsort(expect, d, sizeof *expect, u64_cmp);
    ck_assert_int_eq(mk_merkle_commit(a), 0);
    ck_assert_int_eq(mk_merkle_commit(b), 0);
    qsort(v, 100, sizeof v[0], leafval_cmp);
    ck_h_eq(root(a), model_node(v, 100, 28, 0));
    uint64_t grew = rss_bytes() - rss0;
    ck_assert_msg(grew < (UINT64_C(64) << 20), "RSS grew by %llu bytes",
                  (unsigned long long)grew);
    /* A commit writes each path once: 29 nodes per leaf at most. */
    ck_assert_uint_le(mk_file_mem_written(fa), 100 * 29 * 16);

    uint64_t q;
    ck_assert_int_eq(mk_merkle_compare(a, b, 100, got, &ngot, &q), 0);
    ck_assert_uint_eq(ngot, 3);
    ck_assert_mem_eq(got, expect, 3 * sizeof *got);
    ck_assert_uint_le(q, 3 * 29);

    /* Rebuild: blocks 0..9 written, the rest of the 128 GiB volume past the
     * end of the image and never read. */
    mk_file *img = mem("img"), *fc = mem("c");
    mk_merkle *c = open_tree(fc, n);
    leafval w[10];
    for (uint64_t i = 0; i < 10; i++) {
        uint8_t blk[BS];
        fill_block(blk, i, 3);
        ck_assert_int_eq(mk_file_pwrite(img, blk, BS, i * BS), 0);
        w[i].idx = i;
        w[i].h = model_leaf(blk, BS);
    }
    ck_assert_int_eq(mk_merkle_rebuild(c, img, BS), 0);
    ck_h_eq(root(c), model_node(w, 10, 28, 0));
    ck_assert_uint_le(mk_file_mem_written(fc), 64 * 16);

    mk_merkle_free(a);
    mk_merkle_free(b);
    mk_merkle_free(c);
    mk_file_close(fa);
    mk_file_close(fb);
    mk_file_close(fc);
    mk_file_close(img);
}
END_TEST

static Suite *merkle_suite(void)
{
    Suite *s = suite_create("merkle");

    TCase *td = tcase_create("definition");
    tcase_set_timeout(td, 60);
    tcase_add_test(td, test_s9_merkle_leaf_of_zero_block_is_zero);
    tcase_add_test(td, test_s9_merkle_block_sums_equal_two_hashes);
    tcase_add_test(td, test_s9_merkle_inner_node_encoding);
    tcase_add_test(td, test_s9_merkle_geometry);
    tcase_add_test(td, test_s9_merkle_vector_1_leaf);
    tcase_add_test(td, test_s9_merkle_vector_2_leaves);
    tcase_add_test(td, test_s9_merkle_vector_3_leaves_padding);
    tcase_add_test(td, test_s9_merkle_vector_5_leaves_with_zero_block);
    tcase_add_test(td, test_s9_merkle_zero_volume_empty_file);
    tcase_add_test(td, test_s9_merkle_argument_errors);
    suite_add_tcase(s, td);

    TCase *tc = tcase_create("commit");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_s9_merkle_set_last_wins);
    tcase_add_test(tc, test_s9_merkle_commit_equals_rebuild);
    tcase_add_test(tc, test_s9_merkle_commit_retry_repairs);
    suite_add_tcase(s, tc);

    TCase *tr = tcase_create("descent");
    tcase_set_timeout(tr, 120);
    tcase_add_test(tr, test_s9_merkle_descent_one_block);
    tcase_add_test(tr, test_s9_merkle_descent_many_blocks);
    tcase_add_test(tr, test_s9_merkle_descent_both_ends);
    tcase_add_test(tr, test_s9_merkle_descent_all_blocks);
    tcase_add_test(tr, test_s9_merkle_descent_none);
    tcase_add_test(tr, test_s9_merkle_descent_non_power_of_two);
    tcase_add_test(tr, test_s9_merkle_descent_single_leaf);
    tcase_add_test(tr, test_s9_merkle_descent_max_diffs);
    tcase_add_test(tr, test_s9_merkle_descent_lying_remote);
    tcase_add_test(tr, test_s9_merkle_descent_padding_lie);
    tcase_add_test(tr, test_s9_merkle_descent_unasked_answer);
    suite_add_tcase(s, tr);

    TCase *th = tcase_create("huge");
    tcase_set_timeout(th, 120);
    tcase_add_test(th, test_s9_merkle_huge_sparse_volume);
    suite_add_tcase(s, th);
    return s;
}

int main(void) { return mk_test_run(merkle_suite()); }
