/*
 * mk_merkle.c - the Merkle tree of a volume in a sparse file (see
 * mk_merkle.h for the definition and the file layout).
 */
#include "mk_merkle.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "mk_cursor.h"
#include "mk_err.h"
#include "mk_vec.h"
#include "mk_map.h"

#define NODE_BYTES 16

/* Neighbouring nodes of one level are read and written as one span of at
 * most this many nodes, so a dense commit costs a few large I/Os per level
 * instead of one per node, while the scratch stays a fixed 16 KiB. */
#define RUN_NODES 1024
/* Commit reads and writes a span across up to this many nodes that need
 * no work, rather than make another call (write_changed). */
#define GAP_NODES 4

/* The rebuild buffers this many consecutive nodes per level before one
 * write, since it produces each level's nodes in index order. */
#define WB_NODES 64

/* The rebuild streams the image in reads of this many bytes. */
#define IMAGE_CHUNK (1u << 20)

/* ---- values and their encoding ------------------------------------------- */

/* Every node crosses into and out of its 16 bytes here, through the
 * cursor, so the byte order is defined in exactly one place.  The buffers
 * are always exactly one node long, so the cursor calls cannot fail. */
static void node_put(uint8_t *p, mk_h128 h)
{
    mk_wcur c;
    mk_wcur_init(&c, p, NODE_BYTES);
    (void)mk_wcur_u64(&c, h.lo);
    (void)mk_wcur_u64(&c, h.hi);
}

static mk_h128 node_get(const uint8_t *p)
{
    mk_rcur c;
    mk_h128 h = {0, 0};
    mk_rcur_init(&c, p, NODE_BYTES);
    (void)mk_rcur_u64(&c, &h.lo);
    (void)mk_rcur_u64(&c, &h.hi);
    return h;
}

static mk_h128 from_xxh(XXH128_hash_t x)
{
    mk_h128 h = {x.low64, x.high64};
    return h;
}

/* A block is zero if its first byte is zero and every byte equals the one
 * before it.  glibc's memcmp is vectorised, so this is the fastest portable
 * test measured (52 ns for a zero 4 KiB block against 264 ns for hashing
 * it and comparing with the hash of zeros; 2 ns for a non-zero block). */
static int all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

mk_h128 mk_leaf_hash(const void *block, size_t len)
{
    mk_h128 zero = {0, 0};
    if (all_zero(block, len))
        return zero;
    return from_xxh(XXH3_128bits(block, len));
}

void mk_block_sums(const void *block, size_t len, uint64_t *h, mk_h128 *leaf)
{
    if (len <= 240) {
        *h = XXH3_64bits(block, len);
        *leaf = mk_leaf_hash(block, len);
        return;
    }
    mk_h128 full = from_xxh(XXH3_128bits(block, len));
    mk_h128 zero = {0, 0};
    *h = full.lo;
    *leaf = all_zero(block, len) ? zero : full;
}

/* The inner node of level over a pair of children already in their 32
 * stored bytes, which is how both commit and rebuild hold them. */
static mk_h128 inner_bytes(uint32_t level, const uint8_t pair[2 * NODE_BYTES])
{
    mk_h128 zero = {0, 0};
    if (all_zero(pair, 2 * NODE_BYTES))
        return zero;
    uint8_t in[1 + 2 * NODE_BYTES];
    mk_wcur c;
    mk_wcur_init(&c, in, sizeof in);
    (void)mk_wcur_u8(&c, (uint8_t)level);
    (void)mk_wcur_bytes(&c, pair, 2 * NODE_BYTES);
    return from_xxh(XXH3_128bits(in, sizeof in));
}

mk_h128 mk_merkle_inner(uint32_t level, mk_h128 left, mk_h128 right)
{
    uint8_t pair[2 * NODE_BYTES];
    node_put(pair, left);
    node_put(pair + NODE_BYTES, right);
    return inner_bytes(level, pair);
}

/* ---- geometry ------------------------------------------------------------ */

static uint64_t pow2_at_least(uint64_t n)
{
    uint64_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

uint64_t mk_merkle_bytes(uint64_t nleaves)
{
    if (nleaves == 0 || nleaves > MK_MERKLE_MAX_LEAVES)
        return 0;
    return NODE_BYTES * (2 * pow2_at_least(nleaves) - 1);
}

/* One staged leaf, or one node of the level being recomputed. */
typedef struct ent {
    uint64_t idx;
    mk_h128 h;
} ent;

struct mk_merkle {
    mk_file *f;
    uint64_t n; /* leaves (volume blocks) */
    uint64_t p; /* leaves including padding, a power of two */
    uint32_t h; /* height: log2(p) */
    /* Staged leaves in the order first staged; slot maps a leaf to its
     * entry so a leaf staged again overwrites its value in place and the
     * set stays as large as the distinct leaves, not the calls. */
    ent *staged;
    size_t nstaged, capstaged;
    mk_map slot;
    uint8_t run[RUN_NODES * NODE_BYTES]; /* commit's span scratch */
    uint8_t changed[RUN_NODES];
};

/* Byte offset of node (level, index): the levels below it come first, and
 * they hold P + P/2 + ... + P/2^(level-1) = 2P - 2P/2^level nodes. */
static uint64_t node_off(const mk_merkle *t, uint32_t level, uint64_t index)
{
    return NODE_BYTES * (2 * t->p - ((2 * t->p) >> level) + index);
}

int mk_merkle_open(mk_file *f, uint64_t nleaves, mk_merkle **out)
{
    *out = NULL;
    if (!f || nleaves == 0 || nleaves > MK_MERKLE_MAX_LEAVES)
        return MK_EINVAL;
    /* The commit scratch (run, changed) is written before it is read, so
     * only the fields before it are cleared: zeroing 17 KiB per open was
     * the largest cost of a destination's start-up. */
    mk_merkle *t = malloc(sizeof *t);
    if (!t)
        return MK_ENOMEM;
    memset(t, 0, offsetof(mk_merkle, run));
    t->f = f;
    t->n = nleaves;
    t->p = pow2_at_least(nleaves);
    while ((UINT64_C(1) << t->h) < t->p)
        t->h++;
    mk_map_init(&t->slot);
    *out = t;
    return 0;
}

void mk_merkle_free(mk_merkle *t)
{
    if (!t)
        return;
    mk_map_free(&t->slot);
    free(t->staged);
    free(t);
}

uint32_t mk_merkle_height(const mk_merkle *t) { return t->h; }
uint64_t mk_merkle_nleaves(const mk_merkle *t) { return t->n; }
size_t mk_merkle_staged(const mk_merkle *t) { return t->nstaged; }

int mk_merkle_node(mk_merkle *t, uint32_t level, uint64_t index, mk_h128 *h)
{
    if (level > t->h || index >= (t->p >> level))
        return MK_ERANGE;
    uint8_t b[NODE_BYTES];
    int rc = mk_file_read_block(t->f, b, sizeof b, node_off(t, level, index));
    if (rc)
        return rc;
    *h = node_get(b);
    return 0;
}

int mk_merkle_root(mk_merkle *t, mk_h128 *root) { return mk_merkle_node(t, t->h, 0, root); }

/* ---- staging and commit -------------------------------------------------- */

/* Forgets the staged set.  The map releases its table when it had grown
 * large, and so does the array here, so one huge CP does not pin memory
 * for the rest of the run. */
static void stage_clear(mk_merkle *t)
{
    mk_map_clear(&t->slot);
    t->nstaged = 0;
    if (t->capstaged > 4096) {
        free(t->staged);
        t->staged = NULL;
        t->capstaged = 0;
    }
}

int mk_merkle_set(mk_merkle *t, uint64_t leaf, mk_h128 h)
{
    if (leaf >= t->n)
        return MK_ERANGE;
    uint64_t at;
    if (mk_map_get(&t->slot, leaf, &at)) {
        t->staged[at].h = h;
        return 0;
    }
    ent *s = mk_vec_grow(t->staged, &t->capstaged, t->nstaged, sizeof *s, 64);
    if (!s)
        return MK_ENOMEM;
    t->staged = s;
    /* The map entry goes in first: if it fails, the array slot is simply
     * not claimed, and the set is as it was. */
    int rc = mk_map_put(&t->slot, leaf, t->nstaged);
    if (rc)
        return rc;
    t->staged[t->nstaged].idx = leaf;
    t->staged[t->nstaged].h = h;
    t->nstaged++;
    return 0;
}

static int ent_cmp(const void *a, const void *b)
{
    uint64_t x = ((const ent *)a)->idx, y = ((const ent *)b)->idx;
    return (x > y) - (x < y);
}

/* Writes the changed nodes of the span held in t->run, which starts at
 * node first of level: each run of changed nodes with one write, and two
 * runs with at most GAP_NODES unchanged nodes between them as one, since a
 * system call costs more than rewriting a few hundred bytes with what they
 * already hold.  A span without a change writes nothing. */
static int write_changed(mk_merkle *t, uint32_t level, uint64_t first, size_t span)
{
    size_t k = 0;
    while (k < span) {
        if (!t->changed[k]) {
            k++;
            continue;
        }
        size_t e = k + 1, last = k;
        for (; e < span && e - last <= GAP_NODES; e++)
            if (t->changed[e])
                last = e;
        e = last + 1;
        int rc = mk_file_pwrite(t->f, t->run + k * NODE_BYTES, (e - k) * NODE_BYTES,
                                node_off(t, level, first + k));
        if (rc)
            return rc;
        k = e;
    }
    return 0;
}

/* Overlays the new value h on node k of the span, marking it changed if
 * its stored bytes differ. */
static void overlay(mk_merkle *t, size_t k, mk_h128 h)
{
    uint8_t b[NODE_BYTES];
    node_put(b, h);
    uint8_t *slot = t->run + k * NODE_BYTES;
    if (memcmp(slot, b, NODE_BYTES) != 0) {
        memcpy(slot, b, NODE_BYTES);
        t->changed[k] = 1;
    }
}

/*
 * Stores the new values of w[0..*n), sorted distinct nodes of level < H,
 * and replaces them with their parents (sorted, distinct, level + 1) and
 * the parents' new values.  Parents with neighbouring indices are handled
 * as one span: their children are read in one read, the new values laid
 * over the old, the changed nodes written back, and each parent hashed
 * from the span.  A parent whose sibling child was not staged takes that
 * child from the file, which is what the read is for; it also yields the
 * old values of the staged nodes, so unchanged ones need no write.  The
 * parents overwrite w from the front: a span's parents are no more than
 * its entries and are stored only after those entries are consumed.
 */
static int commit_level(mk_merkle *t, uint32_t level, ent *w, size_t *n)
{
    size_t i = 0, out = 0;
    while (i < *n) {
        uint64_t first = w[i].idx & ~UINT64_C(1); /* left child of the first parent */
        uint64_t lastp = w[i].idx >> 1;
        size_t j = i + 1;
        while (j < *n) {
            uint64_t q = w[j].idx >> 1;
            if (q > lastp + GAP_NODES / 2 || 2 * q + 2 - first > RUN_NODES)
                break;
            lastp = q;
            j++;
        }
        size_t span = (size_t)(2 * lastp + 2 - first);
        int rc = mk_file_read_block(t->f, t->run, span * NODE_BYTES, node_off(t, level, first));
        if (rc)
            return rc;
        memset(t->changed, 0, span);
        for (size_t k = i; k < j; k++)
            overlay(t, (size_t)(w[k].idx - first), w[k].h);
        if ((rc = write_changed(t, level, first, span)))
            return rc;
        /* The parents of the staged nodes, each once (the span may also
         * hold nodes between them that did not change). */
        uint64_t prev = UINT64_MAX; /* w[k - 1] may hold a parent already */
        for (size_t k = i; k < j; k++) {
            uint64_t q = w[k].idx >> 1;
            if (q == prev)
                continue;
            prev = q;
            w[out].idx = q;
            w[out].h = inner_bytes(level + 1, t->run + (size_t)(2 * q - first) * NODE_BYTES);
            out++;
        }
        i = j;
    }
    *n = out;
    return 0;
}

/* Stores the root (level H, one node) if it changed. */
static int commit_root(mk_merkle *t, mk_h128 root)
{
    int rc = mk_file_read_block(t->f, t->run, NODE_BYTES, node_off(t, t->h, 0));
    if (rc)
        return rc;
    t->changed[0] = 0;
    overlay(t, 0, root);
    return write_changed(t, t->h, 0, 1);
}

int mk_merkle_commit(mk_merkle *t)
{
    if (t->nstaged == 0)
        return 0;
    /* The levels are computed in a copy so that a failed commit leaves the
     * staged set intact for the retry that repairs the file. */
    size_t n = t->nstaged;
    ent *w = malloc(n * sizeof *w);
    if (!w)
        return MK_ENOMEM;
    memcpy(w, t->staged, n * sizeof *w);
    qsort(w, n, sizeof *w, ent_cmp);
    int rc = 0;
    for (uint32_t level = 0; level < t->h && rc == 0; level++)
        rc = commit_level(t, level, w, &n);
    if (rc == 0)
        rc = commit_root(t, w[0].h); /* n is 1 here: only the root is left */
    free(w);
    if (rc == 0)
        stage_clear(t);
    return rc;
}

/* ---- rebuild ------------------------------------------------------------- */

/*
 * The streaming builder.  Nodes arrive in leaf order, each either a leaf or
 * a whole aligned zero subtree; pend[L] holds the left child of level L
 * waiting for its sibling, so after covering leaves [0, x) the pending
 * nodes are exactly the binary digits of x.  Non-zero nodes are written
 * through a per-level buffer of consecutive indices; zero nodes are left
 * as holes of the truncated file.
 */
typedef struct builder {
    mk_merkle *t;
    mk_h128 *pend;
    uint8_t *wb;      /* (H+1) buffers of WB_NODES nodes */
    uint64_t *wfirst; /* index of the first node buffered per level */
    uint32_t *wcount; /* nodes buffered per level */
} builder;

static int wb_flush(builder *b, uint32_t level)
{
    if (b->wcount[level] == 0)
        return 0;
    int rc = mk_file_pwrite(b->t->f, b->wb + (size_t)level * WB_NODES * NODE_BYTES,
                            (size_t)b->wcount[level] * NODE_BYTES,
                            node_off(b->t, level, b->wfirst[level]));
    b->wcount[level] = 0;
    return rc;
}

static int wb_put(builder *b, uint32_t level, uint64_t index, mk_h128 h)
{
    uint32_t c = b->wcount[level];
    if (c && (c == WB_NODES || b->wfirst[level] + c != index)) {
        int rc = wb_flush(b, level);
        if (rc)
            return rc;
        c = 0;
    }
    if (c == 0)
        b->wfirst[level] = index;
    node_put(b->wb + ((size_t)level * WB_NODES + c) * NODE_BYTES, h);
    b->wcount[level] = c + 1;
    return 0;
}

/* Adds node (level, index) with value h, the next in leaf order, and every
 * ancestor it completes. */
static int build_add(builder *b, uint32_t level, uint64_t index, mk_h128 h)
{
    for (;;) {
        if (!mk_h128_is_zero(h)) {
            int rc = wb_put(b, level, index, h);
            if (rc)
                return rc;
        }
        if (level == b->t->h)
            return 0;
        if ((index & 1) == 0) {
            b->pend[level] = h;
            return 0;
        }
        h = mk_merkle_inner(level + 1, b->pend[level], h);
        index >>= 1;
        level++;
    }
}

/* Adds the zero leaves [lo, hi) as the fewest aligned zero subtrees, so a
 * zero run costs O(log N) steps whatever its length. */
static int build_zeros(builder *b, uint64_t lo, uint64_t hi)
{
    const mk_h128 zero = {0, 0};
    while (lo < hi) {
        uint32_t level = 0;
        while (level < b->t->h && (lo & (UINT64_C(1) << level)) == 0 &&
               (UINT64_C(2) << level) <= hi - lo)
            level++;
        int rc = build_add(b, level, lo >> level, zero);
        if (rc)
            return rc;
        lo += UINT64_C(1) << level;
    }
    return 0;
}

/* Streams the image through the builder: leaves [0, present) are read and
 * hashed, runs of zero leaves among them are added as zero subtrees, and
 * everything from present to P is zero without a read. */
static int build_image(builder *b, mk_file *image, uint32_t bs, uint64_t present)
{
    size_t per = IMAGE_CHUNK / bs;
    uint8_t *buf = malloc((size_t)per * bs);
    if (!buf)
        return MK_ENOMEM;
    int rc = 0;
    uint64_t zrun = 0; /* first leaf of the zero run being collected */
    for (uint64_t i = 0; i < present && rc == 0;) {
        size_t cnt = present - i < per ? (size_t)(present - i) : per;
        rc = mk_file_read_block(image, buf, cnt * bs, i * bs);
        for (size_t k = 0; k < cnt && rc == 0; k++, i++) {
            mk_h128 leaf = mk_leaf_hash(buf + k * bs, bs);
            if (mk_h128_is_zero(leaf))
                continue;
            if ((rc = build_zeros(b, zrun, i)) == 0)
                rc = build_add(b, 0, i, leaf);
            zrun = i + 1;
        }
    }
    free(buf);
    if (rc == 0)
        rc = build_zeros(b, zrun, b->t->p);
    return rc;
}

int mk_merkle_rebuild(mk_merkle *t, mk_file *image, uint32_t block_size)
{
    if (block_size < 512 || block_size > 65536 || (block_size & (block_size - 1)))
        return MK_EBLOCKSIZE;
    uint64_t isize;
    int rc = mk_file_size(image, &isize);
    if (rc)
        return rc;
    uint64_t present = isize / block_size + (isize % block_size != 0);
    if (present > t->n)
        present = t->n;
    stage_clear(t);
    if ((rc = mk_file_truncate(t->f, 0)))
        return rc;

    size_t levels = (size_t)t->h + 1;
    builder b = {t, NULL, NULL, NULL, NULL};
    b.pend = calloc(levels, sizeof *b.pend);
    b.wb = malloc(levels * WB_NODES * NODE_BYTES);
    b.wfirst = calloc(levels, sizeof *b.wfirst);
    b.wcount = calloc(levels, sizeof *b.wcount);
    if (!b.pend || !b.wb || !b.wfirst || !b.wcount) {
        rc = MK_ENOMEM;
    } else {
        rc = build_image(&b, image, block_size, present);
        for (uint32_t level = 0; level <= t->h && rc == 0; level++)
            rc = wb_flush(&b, level);
    }
    free(b.pend);
    free(b.wb);
    free(b.wfirst);
    free(b.wcount);
    return rc;
}

/* ---- descent ------------------------------------------------------------- */

enum { DN_PENDING, DN_ASKED, DN_ANSWERED };

/* A node known to differ: its remote value, and where it is in its life
 * (waiting to be asked, asked, answered). */
typedef struct dnode {
    uint64_t index;
    mk_h128 remote;
    uint32_t level;
    uint32_t state;
} dnode;

/*
 * nodes[] is both the record of every node found to differ and the
 * breadth-first queue: nodes are appended as they are found and issued
 * from head onwards.  where maps (level, index) to the record, which is
 * how an answer finds the value the remote claimed; mk_map has no delete,
 * so an answered record is marked rather than removed.  Memory is the
 * number of queries, O(d log N).
 */
struct mk_merkle_diff {
    mk_merkle *t;
    dnode *nodes;
    size_t nnodes, capnodes, head;
    mk_map where;
    uint64_t *leaves;
    size_t nleaves, capleaves;
    int sorted;
    uint64_t max, queries, answers;
    size_t outstanding;
    int truncated;
    int err;
};

/* Levels fit in 6 bits (H <= 58) and indices in 58, so the pair packs
 * into one map key that is never UINT64_MAX. */
static uint64_t dkey(uint32_t level, uint64_t index) { return index << 6 | level; }

static int diff_push(mk_merkle_diff *d, uint32_t level, uint64_t index, mk_h128 remote)
{
    dnode *nn = mk_vec_grow(d->nodes, &d->capnodes, d->nnodes, sizeof *nn, 64);
    if (!nn)
        return MK_ENOMEM;
    d->nodes = nn;
    int rc = mk_map_put(&d->where, dkey(level, index), d->nnodes);
    if (rc)
        return rc;
    dnode *x = &d->nodes[d->nnodes++];
    x->index = index;
    x->remote = remote;
    x->level = level;
    x->state = DN_PENDING;
    return 0;
}

/* Whether a descent that has found max leaves left anything unexplored:
 * every node still to be asked or awaiting an answer differs, so holds at
 * least one more differing leaf.  Pending nodes are dropped. */
static void diff_limit_reached(mk_merkle_diff *d)
{
    if (d->head < d->nnodes || d->outstanding > 0)
        d->truncated = 1;
    d->head = d->nnodes;
}

static int diff_leaf(mk_merkle_diff *d, uint64_t leaf)
{
    if (d->nleaves >= d->max) {
        d->truncated = 1;
        return 0;
    }
    uint64_t *nl = mk_vec_grow(d->leaves, &d->capleaves, d->nleaves, sizeof *nl, 64);
    if (!nl)
        return MK_ENOMEM;
    d->leaves = nl;
    d->leaves[d->nleaves++] = leaf;
    d->sorted = 0;
    if (d->nleaves == d->max)
        diff_limit_reached(d);
    return 0;
}

/* Records that the child (level, index) differs: a leaf is a result, an
 * inner node a future query (unless the limit was reached, in which case
 * it is only evidence that more leaves differ). */
static int diff_found(mk_merkle_diff *d, uint32_t level, uint64_t index, mk_h128 remote)
{
    if (level == 0)
        return diff_leaf(d, index);
    if (d->nleaves >= d->max) {
        d->truncated = 1;
        return 0;
    }
    return diff_push(d, level, index, remote);
}

mk_merkle_diff *mk_merkle_diff_start(mk_merkle *local, mk_h128 remote_root, uint64_t max_diffs)
{
    mk_merkle_diff *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->t = local;
    d->max = max_diffs;
    d->sorted = 1;
    mk_map_init(&d->where);
    mk_h128 root;
    int rc = mk_merkle_root(local, &root);
    if (rc == 0 && !mk_h128_eq(root, remote_root)) {
        if (d->max == 0)
            d->truncated = 1;
        else
            rc = diff_found(d, local->h, 0, remote_root);
    }
    if (rc == MK_ENOMEM) {
        mk_merkle_diff_free(d);
        return NULL;
    }
    d->err = rc;
    return d;
}

int mk_merkle_diff_next_query(mk_merkle_diff *d, uint32_t *level, uint64_t *index)
{
    if (d->err)
        return d->err;
    if (d->head >= d->nnodes)
        return 0;
    dnode *x = &d->nodes[d->head++];
    x->state = DN_ASKED;
    d->outstanding++;
    d->queries++;
    *level = x->level;
    *index = x->index;
    return 1;
}

int mk_merkle_diff_answer(mk_merkle_diff *d, uint32_t level, uint64_t index, mk_h128 left,
                          mk_h128 right)
{
    if (d->err)
        return d->err;
    uint64_t at;
    if (level == 0 || level > d->t->h || index >= (d->t->p >> level) ||
        !mk_map_get(&d->where, dkey(level, index), &at) || d->nodes[at].state != DN_ASKED)
        return MK_ESTATE;
    /* The children must be the ones the claimed parent was made from;
     * otherwise nothing below this node can be believed. */
    if (!mk_h128_eq(mk_merkle_inner(level, left, right), d->nodes[at].remote))
        return d->err = MK_EINVAL;
    /* A child whose leaves all lie past leaf N-1 is padding, 0 by
     * definition; a non-zero one would send the descent past the volume. */
    uint64_t rindex = 2 * index + 1;
    if (!mk_h128_is_zero(right) && (rindex << (level - 1)) >= d->t->n)
        return d->err = MK_EINVAL;
    d->nodes[at].state = DN_ANSWERED;
    d->outstanding--;
    d->answers++;

    uint8_t pair[2 * NODE_BYTES];
    int rc = mk_file_read_block(d->t->f, pair, sizeof pair, node_off(d->t, level - 1, 2 * index));
    if (rc)
        return d->err = rc;
    mk_h128 remote[2] = {left, right};
    for (int c = 0; c < 2 && rc == 0; c++)
        if (!mk_h128_eq(node_get(pair + c * NODE_BYTES), remote[c]))
            rc = diff_found(d, level - 1, 2 * index + (uint64_t)c, remote[c]);
    if (rc)
        d->err = rc;
    return rc;
}

int mk_merkle_diff_done(const mk_merkle_diff *d)
{
    if (d->err)
        return d->err;
    if (d->nleaves >= d->max)
        return 1;
    return d->head >= d->nnodes && d->outstanding == 0;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

const uint64_t *mk_merkle_diff_leaves(mk_merkle_diff *d, size_t *n)
{
    /* Answers may come in any order, so leaves are found out of order;
     * they are sorted once, when asked for. */
    if (!d->sorted && d->nleaves > 1)
        qsort(d->leaves, d->nleaves, sizeof *d->leaves, u64_cmp);
    d->sorted = 1;
    *n = d->nleaves;
    return d->leaves;
}

int mk_merkle_diff_truncated(const mk_merkle_diff *d) { return d->truncated; }
uint64_t mk_merkle_diff_queries(const mk_merkle_diff *d) { return d->queries; }
uint64_t mk_merkle_diff_answers(const mk_merkle_diff *d) { return d->answers; }

void mk_merkle_diff_free(mk_merkle_diff *d)
{
    if (!d)
        return;
    mk_map_free(&d->where);
    free(d->nodes);
    free(d->leaves);
    free(d);
}

int mk_merkle_compare(mk_merkle *a, mk_merkle *b, uint64_t max, uint64_t *leaves, size_t *n,
                      uint64_t *queries)
{
    if (n)
        *n = 0;
    if (queries)
        *queries = 0;
    if (a->n != b->n)
        return MK_EVOLUME;
    mk_h128 broot;
    int rc = mk_merkle_root(b, &broot);
    if (rc)
        return rc;
    mk_merkle_diff *d = mk_merkle_diff_start(a, broot, max);
    if (!d)
        return MK_ENOMEM;
    /* Each round asks every ready query, as a network caller would send
     * them in one batch, then feeds the answers. */
    size_t cap = 0;
    struct q {
        uint32_t level;
        uint64_t index;
    } *batch = NULL;
    while ((rc = mk_merkle_diff_done(d)) == 0) {
        size_t nb = 0;
        struct q x;
        while ((rc = mk_merkle_diff_next_query(d, &x.level, &x.index)) == 1) {
            if (nb == cap) {
                size_t nc = cap ? 2 * cap : 64;
                struct q *nq = realloc(batch, nc * sizeof *nq);
                if (!nq) {
                    rc = MK_ENOMEM;
                    break;
                }
                batch = nq;
                cap = nc;
            }
            batch[nb++] = x;
        }
        if (rc < 0)
            break;
        for (size_t k = 0; k < nb && rc == 0; k++) {
            mk_h128 l, r;
            if ((rc = mk_merkle_node(b, batch[k].level - 1, 2 * batch[k].index, &l)) == 0 &&
                (rc = mk_merkle_node(b, batch[k].level - 1, 2 * batch[k].index + 1, &r)) == 0)
                rc = mk_merkle_diff_answer(d, batch[k].level, batch[k].index, l, r);
        }
        if (rc < 0)
            break;
    }
    free(batch);
    if (rc >= 0) {
        size_t cnt;
        const uint64_t *found = mk_merkle_diff_leaves(d, &cnt);
        if (cnt)
            memcpy(leaves, found, cnt * sizeof *found);
        if (n)
            *n = cnt;
        if (queries)
            *queries = mk_merkle_diff_queries(d);
        rc = mk_merkle_diff_truncated(d);
    }
    mk_merkle_diff_free(d);
    return rc;
}
