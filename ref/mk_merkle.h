/*
 * mk_merkle.h - a Merkle tree over the blocks of a volume, kept in a sparse
 * file, so that the source and the destination can find the blocks in which
 * their images differ without rescanning either image.
 *
 * The destination reports the root of the tree over its mirror in each CP
 * acknowledgement; the source compares it with the root over its own CP
 * image.  When they differ, the source descends the tree, fetching nodes
 * from the destination, and finds the d differing blocks with O(d log N)
 * node exchanges.  The tree lives in an mk_file rather than in RAM, and
 * both updating it and descending it touch only the paths to the changed
 * blocks, so the memory of either side grows with the blocks changed per
 * CP and never with the size of the volume.
 *
 * ---- Definition (normative; SPEC.md copies this text) -------------------
 *
 * Hash.  H128(x) is XXH3-128 (XXH3_128bits of xxhash.h, seed 0) of the
 * bytes x.  A 128-bit value is serialised as 16 bytes: its low 64 bits
 * little-endian, then its high 64 bits little-endian.  The value whose 16
 * bytes are all zero is written 0.
 *
 * Leaves.  A volume of N >= 1 blocks has N leaves; leaf i is the value of
 * block i: 0 if every byte of the block is zero, else H128(block bytes).
 * (A non-zero block whose XXH3-128 happens to be 0 is indistinguishable
 * from a zero block; the chance is 2^-128 per block and is accepted.)
 *
 * Shape.  The tree is a complete binary tree over P leaves, where P is the
 * smallest power of two >= N; leaves N..P-1 (padding) are 0.  Its height
 * is H = log2(P): level 0 holds the P leaves, level L holds P / 2^L nodes,
 * and level H holds the root alone.  A one-block volume has H = 0 and its
 * root is leaf 0.
 *
 * Inner nodes.  Node i of level L >= 1 has the children 2i and 2i+1 of
 * level L-1.  Its value is 0 if both children are 0, else
 *     H128( u8 L || left child (16 bytes) || right child (16 bytes) ),
 * 33 bytes in all.  The level byte keeps an inner node from ever being
 * taken for a leaf (or for a node of another level) with the same bytes.
 * Hence an all-zero volume has root 0, and the tree of a sparse volume is
 * itself sparse: every subtree over zero blocks is 0.
 *
 * Storage.  The tree is stored in an mk_file as 16-byte node values with
 * no header: level 0 (P entries) first, then level 1 (P/2 entries), and
 * so on up to the root.  Node (L, i) sits at byte offset
 *     16 * (sum over j < L of P / 2^j  +  i)  =  16 * (2P - 2P / 2^L + i),
 * and the whole tree spans 16 * (2P - 1) bytes (mk_merkle_bytes).  Bytes
 * past the end of the file read as zero, so an empty file is the tree of
 * an all-zero volume and zero subtrees may be holes.  The owner keeps the
 * geometry (N) elsewhere; the file is a cache derivable from the image
 * and can always be rebuilt from it (mk_merkle_rebuild).
 *
 * ---- Use ------------------------------------------------------------------
 *
 * Ownership: an mk_merkle borrows its mk_file (the caller closes it after
 * mk_merkle_free) and owns only its staging set.  An mk_merkle_diff
 * borrows its local tree, which must not be committed or rebuilt while the
 * descent runs.  Nothing here is thread-safe; one owner at a time.
 *
 * Errors are negative mk_err codes (mk_err.h).
 */
#ifndef MK_MERKLE_H
#define MK_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "mk_file.h"

/* A node value: lo and hi are the low and high 64 bits of the XXH3-128. */
typedef struct {
    uint64_t lo, hi;
} mk_h128;

/* The largest volume a tree may describe, in blocks.  It keeps every byte
 * offset of the file (16 * (2P - 1)) inside 64 bits. */
#define MK_MERKLE_MAX_LEAVES (UINT64_C(1) << 58)

/* The leaf value of a block of len bytes: 0 if every byte is zero, else
 * its XXH3-128.  The zero test is a memcmp of the block against itself
 * shifted by one byte, which is about five times cheaper than hashing a
 * zero 4 KiB block and exits within a few bytes on a non-zero one. */
mk_h128 mk_leaf_hash(const void *block, size_t len);

/* Both checksums of one block with one pass over its bytes: H of SPEC.md
 * 3.2 (XXH3-64) into *h and the leaf value above into *leaf.  XXH3-64 of
 * an input longer than 240 bytes is the low half of its XXH3-128: both
 * run xxhash's long-input path over the same accumulators and differ only
 * in the final merge of the high half.  Every block size (512..65536) is
 * longer than that; len <= 240 falls back to two hashes.  tests/
 * check_merkle.c holds the library to the identity for every block size. */
void mk_block_sums(const void *block, size_t len, uint64_t *h, mk_h128 *leaf);

/* 1 if h is the zero value. */
static inline int mk_h128_is_zero(mk_h128 h) { return (h.lo | h.hi) == 0; }
static inline int mk_h128_eq(mk_h128 a, mk_h128 b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

/* The value of an inner node of level (>= 1) over two children. */
mk_h128 mk_merkle_inner(uint32_t level, mk_h128 left, mk_h128 right);

/* Bytes the tree of nleaves leaves spans in its file, 16 * (2P - 1); 0 if
 * nleaves is 0 or above MK_MERKLE_MAX_LEAVES. */
uint64_t mk_merkle_bytes(uint64_t nleaves);

typedef struct mk_merkle mk_merkle;

/*
 * Opens the tree of a volume of nleaves blocks stored in f.  Nothing is
 * read or written: f is trusted to hold that tree (an empty file holds
 * the tree of an all-zero volume).  MK_EINVAL if nleaves is 0 or above
 * MK_MERKLE_MAX_LEAVES, MK_ENOMEM.
 */
int mk_merkle_open(mk_file *f, uint64_t nleaves, mk_merkle **out);
/* Frees the tree (not its file) and any staged leaves.  NULL is fine. */
void mk_merkle_free(mk_merkle *t);

uint32_t mk_merkle_height(const mk_merkle *t);
uint64_t mk_merkle_nleaves(const mk_merkle *t);

/*
 * Stages leaf := h for the next commit; the file is untouched until then.
 * Staging a leaf twice keeps the last value.  MK_ERANGE if leaf >= N,
 * MK_ENOMEM.  Memory grows with the distinct leaves staged.
 */
int mk_merkle_set(mk_merkle *t, uint64_t leaf, mk_h128 h);
/* Number of distinct leaves staged and not yet committed. */
size_t mk_merkle_staged(const mk_merkle *t);

/*
 * Writes the staged leaves and recomputes every ancestor of them exactly
 * once, level by level, over the sorted distinct node indices of each
 * level: O(d log N) node reads and writes and O(d) memory for d staged
 * leaves.  Runs of neighbouring nodes are read and written as one span.
 * A node whose value does not change is not written, so committing the
 * same leaves again leaves the file as it was, and zero subtrees stay
 * holes.  Every ancestor is recomputed from its children even when a
 * child did not change, so a commit also repairs a path that an earlier
 * failed commit left half written.
 *
 * On success the staged set is emptied.  On failure (MK_EIO, MK_ENOSPC,
 * MK_ENOMEM) the file may be partly updated and the staged set is kept:
 * a later successful commit, or a rebuild, makes the file consistent.
 * Commit does not sync the file: the owner syncs it along with the image,
 * and after a crash re-commits the leaves of the blocks it may have lost
 * (or rebuilds), since the tree may then lag the image.
 */
int mk_merkle_commit(mk_merkle *t);

/* The committed root (staged leaves are not included). */
int mk_merkle_root(mk_merkle *t, mk_h128 *root);
/* The committed node (level, index); MK_ERANGE unless level <= H and
 * index < P / 2^level.  Padding nodes are in range and read 0. */
int mk_merkle_node(mk_merkle *t, uint32_t level, uint64_t index, mk_h128 *h);

/*
 * Recomputes the whole tree from image, a volume of N blocks of block_size
 * bytes (bytes past the end of the image read as zero).  The tree file is
 * truncated to empty first and only non-zero nodes are written, so zero
 * regions stay holes; blocks past the end of the image are never read and
 * each zero run costs O(log N) steps rather than a step per block.  The
 * image is streamed 1 MiB at a time and the builder keeps one pending node
 * per level, so memory is O(log N); time is O(N).  Staged leaves are
 * discarded, since the image is the truth.  MK_EBLOCKSIZE unless
 * block_size is a power of two in 512..65536; storage errors as returned.
 */
int mk_merkle_rebuild(mk_merkle *t, mk_file *image, uint32_t block_size);

/*
 * ---- Descent ----------------------------------------------------------------
 *
 * Finding the differing leaves between the local tree and a remote one of
 * the same geometry, driven by the caller so a network protocol can run it
 * without blocking callbacks:
 *
 *     d = mk_merkle_diff_start(local, remote_root, max_diffs);
 *     while (!mk_merkle_diff_done(d)) {
 *         while (mk_merkle_diff_next_query(d, &level, &index) == 1)
 *             ask the remote for the two children of (level, index);
 *         for each reply: mk_merkle_diff_answer(d, level, index, l, r);
 *     }
 *     leaves = mk_merkle_diff_leaves(d, &n);
 *
 * A query names a node whose remote value differs from the local one; the
 * caller fetches that node's two children from the remote.  Queries come
 * out breadth-first, any number may be outstanding at once, and answers
 * may be fed in any order.  Every queried subtree holds at least one
 * differing leaf, so a descent issues at most d * H queries for d
 * differing leaves.  The remote is not trusted: each answer must hash to
 * the value the remote claimed for that node one level up (ultimately the
 * remote root), and a padding node (wholly past leaf N-1) must be 0.
 */
typedef struct mk_merkle_diff mk_merkle_diff;

/*
 * Starts a descent of local against a remote whose root is remote_root.
 * At most max_diffs differing leaves are collected; once that many are
 * found no further queries are issued (0 compares the roots only).  NULL
 * only for lack of memory; a failure to read the local tree is reported
 * by the calls that follow.
 */
mk_merkle_diff *mk_merkle_diff_start(mk_merkle *local, mk_h128 remote_root, uint64_t max_diffs);
/*
 * 1 and (*level, *index) of a node whose children the caller must fetch
 * from the remote; 0 if no query is ready now (answers may make more);
 * a negative code if the descent has failed.
 */
int mk_merkle_diff_next_query(mk_merkle_diff *d, uint32_t *level, uint64_t *index);
/*
 * Feeds the remote's children (left = 2*index, right = 2*index+1 of level
 * level-1) of a queried node.  MK_ESTATE if (level, index) is not an
 * outstanding query (never asked or already answered); the descent goes
 * on.  MK_EINVAL if the children do not hash to the value the remote
 * claimed for that node, or a padding child is not 0: the remote is lying
 * or corrupt, and the descent fails with MK_EINVAL for good.  A failure
 * to read the local tree fails the descent with that code.
 */
int mk_merkle_diff_answer(mk_merkle_diff *d, uint32_t level, uint64_t index, mk_h128 left,
                          mk_h128 right);
/*
 * 1 when the descent is finished: nothing is left to ask or to answer, or
 * max_diffs leaves are found (outstanding queries may then be dropped).
 * 0 while it is running; the negative code once it has failed.
 */
int mk_merkle_diff_done(const mk_merkle_diff *d);
/* The differing leaves found so far, ascending; at most max_diffs.  Valid
 * until the next call on d. */
const uint64_t *mk_merkle_diff_leaves(mk_merkle_diff *d, size_t *n);
/* 1 if the max_diffs limit stopped the descent while differing leaves
 * might remain unreported; 0 if the leaves reported are all of them. */
int mk_merkle_diff_truncated(const mk_merkle_diff *d);
/* Queries issued and answers accepted so far. */
uint64_t mk_merkle_diff_queries(const mk_merkle_diff *d);
uint64_t mk_merkle_diff_answers(const mk_merkle_diff *d);
void mk_merkle_diff_free(mk_merkle_diff *d);

/*
 * Compares two local trees of the same geometry, a as the local side and
 * b as the remote, through the incremental API (each round issues every
 * ready query as one batch).  Writes at most max leaves, ascending, to
 * leaves (which may be NULL if max is 0), their count to *n and the
 * queries issued to *queries (either may be NULL).  Returns 0 if the
 * leaves written are all the differing ones, 1 if max cut the list short,
 * MK_EVOLUME if the geometries differ, or a storage error.
 */
int mk_merkle_compare(mk_merkle *a, mk_merkle *b, uint64_t max, uint64_t *leaves, size_t *n,
                      uint64_t *queries);

#endif
