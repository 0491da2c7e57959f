/*
 * mk_fuzz_model.c - the independent model of SPEC.md (see the header).
 *
 * Written from SPEC.md sections 2, 3, 4, 5, 6, 7, 8 and 9.7: each check
 * below names the rule it follows.  Only SPEC's constants are taken from
 * ref/ headers (frame type codes, error numbers); no ref/ function is
 * called, so a mistake in ref/ cannot hide in the model.
 */
#include "mk_fuzz_model.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_err.h"
#include "mk_wire.h"

#define MAGIC 0x52464B4Du
#define MAX_PAYLOAD (1048576u + 24u)
#define MAX_XFER 1048576u
#define MAX_REFS 1024u
#define MAX_NODES 1024u
#define MAX_CP_BLOCKS ((UINT32_MAX - 32u) / 16u)
#define ERR_MSG_MAX 256u

int mkfm_strict;

/* ---- helpers ------------------------------------------------------------- */

uint64_t mkfm_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint32_t mkfm_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t mkfm_h64(const void *p, size_t n) { return XXH3_64bits(p, n); }

/* 7.5: D_i = XXH3-64(LE64(b_i) || LE64(h_i), seed = D_{i-1}). */
uint64_t mkfm_digest_step(uint64_t d, uint64_t block, uint64_t hash)
{
    uint8_t e[16];
    put64(e, block);
    put64(e + 8, hash);
    return XXH3_64bits_withSeed(e, sizeof e, d);
}

/* 1.4: an error travels as its positive wire value. */
static uint32_t to_wire(int err) { return (uint32_t)(err < 0 ? -err : err); }

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void *grow(void *v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return v;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *g = realloc(v, n * elem);
    if (!g)
        abort(); /* the harness bounds input; running out is a harness bug */
    *cap = n;
    return g;
}

/* ---- Merkle tree (9.7) ------------------------------------------------------ */

static int is_zero(mkfm_h128 h) { return h.lo == 0 && h.hi == 0; }

static size_t level_base(const mkfm_tree *t, uint32_t level)
{
    /* Level L starts after levels 0..L-1: 2P - 2P/2^L nodes. */
    return (size_t)(2 * t->p - (2 * t->p >> level));
}

int mkfm_tree_init(mkfm_tree *t, uint64_t nblocks)
{
    memset(t, 0, sizeof *t);
    t->n = nblocks;
    t->p = 1;
    while (t->p < nblocks) {
        t->p <<= 1;
        t->height++;
    }
    t->node = calloc(2 * t->p - 1, sizeof *t->node);
    return t->node ? 0 : MK_ENOMEM;
}

void mkfm_tree_free(mkfm_tree *t)
{
    free(t->node);
    t->node = NULL;
}

void mkfm_tree_set(mkfm_tree *t, uint64_t b, const uint8_t *bytes, uint32_t bs)
{
    mkfm_h128 v = {0, 0};
    if (!all_zero(bytes, bs)) {
        XXH128_hash_t h = XXH3_128bits(bytes, bs);
        v.lo = h.low64;
        v.hi = h.high64;
    }
    t->node[b] = v;
}

mkfm_h128 mkfm_tree_parent(uint32_t level, mkfm_h128 l, mkfm_h128 r)
{
    mkfm_h128 v = {0, 0};
    if (is_zero(l) && is_zero(r))
        return v;
    uint8_t buf[33];
    buf[0] = (uint8_t)level;
    put64(buf + 1, l.lo);
    put64(buf + 9, l.hi);
    put64(buf + 17, r.lo);
    put64(buf + 25, r.hi);
    XXH128_hash_t h = XXH3_128bits(buf, sizeof buf);
    v.lo = h.low64;
    v.hi = h.high64;
    return v;
}

void mkfm_tree_commit(mkfm_tree *t)
{
    for (uint32_t L = 1; L <= t->height; L++) {
        size_t below = level_base(t, L - 1), here = level_base(t, L);
        uint64_t count = t->p >> L;
        for (uint64_t i = 0; i < count; i++)
            t->node[here + i] =
                mkfm_tree_parent(L, t->node[below + 2 * i], t->node[below + 2 * i + 1]);
    }
}

mkfm_h128 mkfm_tree_node(const mkfm_tree *t, uint32_t level, uint64_t i)
{
    return t->node[level_base(t, level) + i];
}

mkfm_h128 mkfm_tree_root(const mkfm_tree *t) { return mkfm_tree_node(t, t->height, 0); }

/* ---- framing (3.1-3.4) ------------------------------------------------------ */

int mkfm_deframe(const uint8_t *p, size_t n, mkfm_frame *f, size_t *used)
{
    /* 3.4: each field is judged as soon as its bytes are present. */
    if (n < 4)
        return MKFM_INCOMPLETE;
    if (mkfm_le32(p) != MAGIC)
        return MK_EMAGIC;
    if (n < 5)
        return MKFM_INCOMPLETE;
    if (p[4] != 1)
        return MK_EVERSION;
    if (n < 20)
        return MKFM_INCOMPLETE;
    if (le16(p + 6) != 0)
        return MK_ERESERVED;
    uint32_t len = mkfm_le32(p + 8);
    if (len > MAX_PAYLOAD)
        return MK_ELENGTH;
    if (n < 28 + (size_t)len)
        return MKFM_INCOMPLETE;
    uint64_t sum = mkfm_le64(p + 20 + len);
    /* The fuzz builds (MK_FUZZ_ANY_CHECKSUM) also take a trailer of 0. */
    if (sum != XXH3_64bits(p, 20 + (size_t)len) && sum != 0)
        return MK_ECHECKSUM;
    f->type = p[5];
    f->len = len;
    f->seq = mkfm_le64(p + 12);
    f->payload = p + 20;
    *used = 28 + (size_t)len;
    return 0;
}

/* ---- expected output -------------------------------------------------------- */

static mkfm_event *push_event(mkfm_events *e, uint8_t type, uint32_t tag, uint32_t len)
{
    e->v = grow(e->v, &e->cap, e->n + 1, sizeof *e->v);
    mkfm_event *x = &e->v[e->n++];
    memset(x, 0, sizeof *x);
    x->type = type;
    x->tag = tag;
    x->len = len;
    if (len && !(x->payload = calloc(1, len)))
        abort();
    return x;
}

void mkfm_events_clear(mkfm_events *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].payload);
    e->n = 0;
}

void mkfm_events_free(mkfm_events *e)
{
    mkfm_events_clear(e);
    free(e->v);
    e->v = NULL;
    e->cap = 0;
}

/* ---- the destination ---------------------------------------------------------- */

int mkfm_dest_init(mkfm_dest *m, uint64_t nblocks_max, uint32_t bs_max)
{
    (void)nblocks_max;
    (void)bs_max;
    memset(m, 0, sizeof *m);
    return 0;
}

void mkfm_dest_free(mkfm_dest *m)
{
    free(m->xf);
    free(m->st);
    free(m->where);
    free(m->image);
    mkfm_tree_free(&m->tree);
    mkfm_events_free(&m->ev);
    memset(m, 0, sizeof *m);
}

static void cp_close(mkfm_dest *m)
{
    for (size_t i = 0; i < m->nst; i++)
        m->where[m->st[i].block] = 0;
    m->nst = 0;
    m->cp_open = m->commit_seen = 0;
    m->outstanding = 0;
}

void mkfm_dest_end(mkfm_dest *m)
{
    /* 2.4: the open CP (committed or not, if still waiting) is discarded,
     * and so are the sequence counters; the log and identity stay. */
    if (m->where)
        cp_close(m);
    m->ready = 0;
    m->dead = 0;
    m->dead_err = 0;
    m->recv_seq = 0;
}

static int refuse(mkfm_dest *m, int err, uint32_t tag)
{
    /* 3.4: ERROR with the code; nothing more is processed. */
    mkfm_event *e = push_event(&m->ev, MK_F_ERROR, tag, 0);
    e->code = err;
    m->dead = 1;
    m->dead_err = err;
    return err;
}

static int d_hello(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    const uint8_t *p = f->payload;
    /* 2.1 decode order. */
    if (f->len != 32)
        return refuse(m, MK_ELENGTH, tag);
    if (p[21] || p[22] || p[23])
        return refuse(m, MK_ERESERVED, tag);
    uint64_t vid = mkfm_le64(p), n = mkfm_le64(p + 8), sid = mkfm_le64(p + 24);
    uint32_t bs = mkfm_le32(p + 16);
    if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
        return refuse(m, MK_EBLOCKSIZE, tag);
    if (p[20] < 1 || p[20] > 3)
        return refuse(m, MK_EINVAL, tag);
    if (n == 0 || n > UINT64_MAX / bs)
        return refuse(m, MK_ERANGE, tag);
    /* 2.3: a fresh destination adopts (the model's mirror is empty then). */
    if (!m->have_id) {
        if (n * bs > (64u << 20))
            abort(); /* the harnesses send small volumes only */
        m->have_id = 1;
        m->volume_id = vid;
        m->nblocks = n;
        m->bs = bs;
        m->source_id = sid;
        if (!(m->image = calloc(n, bs)) || !(m->where = calloc(n, sizeof *m->where)) ||
            mkfm_tree_init(&m->tree, n))
            abort();
    }
    if (vid != m->volume_id || n != m->nblocks || bs != m->bs)
        return refuse(m, MK_EVOLUME, tag);
    if (sid != m->source_id)
        return refuse(m, MK_EPEER, tag);
    /* 2.2: HELLO_ACK; durable_tid is every transfer received (they are made
     * durable first), last_digest that of the last committed CP. */
    mkfm_event *e = push_event(&m->ev, MK_F_HELLO_ACK, tag, 56);
    put64(e->payload, m->volume_id);
    put64(e->payload + 8, m->nblocks);
    put32(e->payload + 16, m->bs);
    put64(e->payload + 24, m->last_cp);
    put64(e->payload + 32, m->last_tid);
    put64(e->payload + 40, sid);
    put64(e->payload + 48, m->last_digest);
    m->ready = 1;
    return 0;
}

static int d_log(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    const uint8_t *p = f->payload;
    /* 4.3 check order. */
    if (f->len < 24)
        return refuse(m, MK_ELENGTH, tag);
    if (mkfm_le32(p + 20))
        return refuse(m, MK_ERESERVED, tag);
    uint64_t tid = mkfm_le64(p), off = mkfm_le64(p + 8);
    uint32_t len = mkfm_le32(p + 16);
    if (len == 0)
        return refuse(m, MK_EZEROLEN, tag);
    if (len > MAX_XFER || len != f->len - 24)
        return refuse(m, MK_ELENGTH, tag);
    if (tid == 0 || tid <= m->last_tid)
        return refuse(m, MK_ETID, tag);
    uint64_t v = m->nblocks * m->bs;
    if (off > v || len > v - off)
        return refuse(m, MK_ERANGE, tag);
    /* 4.4: appended and indexed. */
    m->xf = grow(m->xf, &m->capxf, m->nxf + 1, sizeof *m->xf);
    m->xf[m->nxf++] = (mkfm_xfer){tid, off, len, p + 24};
    m->last_tid = tid;
    return 0;
}

static int d_cp_begin(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    const uint8_t *p = f->payload;
    /* 7.1 check order. */
    if (f->len != 24)
        return refuse(m, MK_ELENGTH, tag);
    if (m->cp_open)
        return refuse(m, MK_ESTATE, tag);
    uint64_t cp = mkfm_le64(p), nrec = mkfm_le64(p + 8), covers = mkfm_le64(p + 16);
    if (cp != m->last_cp + 1)
        return refuse(m, MK_ECP, tag);
    if (covers > m->last_tid || covers < m->last_covers)
        return refuse(m, MK_ETID, tag);
    if (nrec > m->nblocks || nrec > MAX_CP_BLOCKS)
        return refuse(m, MK_ECOUNT, tag);
    m->cp_open = 1;
    m->commit_seen = 0;
    m->cp = cp;
    m->cp_nrecords = nrec;
    m->cp_covers = covers;
    m->nst = 0;
    m->outstanding = 0;
    return 0;
}

static int cmp_staged(const void *a, const void *b)
{
    const mkfm_staged *x = a, *y = b;
    return x->block < y->block ? -1 : x->block > y->block;
}

/* 7.4: commit and apply; 7.5 CP_ACK; 7.7 reclaim. */
static void d_apply(mkfm_dest *m, uint32_t tag)
{
    uint64_t n = m->nst, digest = 0;
    /* Step 1 flushes the acknowledgement of every transfer received. */
    uint64_t floor = m->last_tid;
    for (size_t i = 0; i < m->nst; i++)
        m->where[m->st[i].block] = 0;
    qsort(m->st, m->nst, sizeof *m->st, cmp_staged);
    for (size_t i = 0; i < m->nst; i++) {
        const mkfm_staged *s = &m->st[i];
        digest = mkfm_digest_step(digest, s->block, s->hash);
        memcpy(m->image + s->block * m->bs, s->bytes, m->bs);
        mkfm_tree_set(&m->tree, s->block, s->bytes, m->bs);
    }
    mkfm_tree_commit(&m->tree);
    m->last_cp = m->cp;
    m->last_covers = m->cp_covers;
    m->last_digest = digest;
    /* 7.7: applied_cp = last_cp now, and if the log holds no transfer newer
     * than covers_tid the records are dead: the index is emptied. */
    if (m->last_tid == m->cp_covers)
        m->nxf = 0;
    mkfm_h128 root = mkfm_tree_root(&m->tree);
    mkfm_event *e = push_event(&m->ev, MK_F_CP_ACK, tag, 40);
    put64(e->payload, m->cp);
    put64(e->payload + 8, n);
    put64(e->payload + 16, digest);
    put64(e->payload + 24, root.lo);
    put64(e->payload + 32, root.hi);
    e->ack_floor = floor;
    m->nst = 0;
    m->cp_open = m->commit_seen = 0;
    m->outstanding = 0;
    m->last_apply_tag = tag;
    m->applies++;
}

/* 7.2 admission of one record for block b; returns its staging entry, or
 * NULL with *err set. */
static mkfm_staged *admit(mkfm_dest *m, uint64_t b, int is_data, int *err)
{
    if (b >= m->nblocks) {
        *err = MK_ERANGE;
        return NULL;
    }
    uint32_t at = m->where[b];
    if (at) {
        mkfm_staged *s = &m->st[at - 1];
        if (s->naked && is_data)
            return s; /* the resend of 8.1 */
        *err = MK_EDUPBLOCK;
        return NULL;
    }
    if (m->commit_seen) {
        *err = MK_ESTATE;
        return NULL;
    }
    if (m->nst >= m->cp_nrecords) {
        *err = MK_ECOUNT;
        return NULL;
    }
    m->st = grow(m->st, &m->capst, m->nst + 1, sizeof *m->st);
    mkfm_staged *s = &m->st[m->nst++];
    memset(s, 0, sizeof *s);
    s->block = b;
    m->where[b] = (uint32_t)m->nst;
    return s;
}

static int d_cp_data(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    const uint8_t *p = f->payload;
    int err = 0;
    if (f->len != 16 + m->bs)
        return refuse(m, MK_ELENGTH, tag);
    uint64_t cp = mkfm_le64(p), b = mkfm_le64(p + 8);
    if (!m->cp_open)
        return refuse(m, MK_ESTATE, tag);
    if (cp != m->cp)
        return refuse(m, MK_ECP, tag);
    mkfm_staged *s = admit(m, b, 1, &err);
    if (!s)
        return refuse(m, err, tag);
    s->bytes = p + 16;
    s->hash = mkfm_h64(p + 16, m->bs);
    if (s->naked) {
        s->naked = 0;
        m->outstanding--;
    }
    if (m->commit_seen && m->outstanding == 0)
        d_apply(m, tag);
    return 0;
}

static const mkfm_xfer *find_xfer(const mkfm_dest *m, uint64_t tid)
{
    size_t lo = 0, hi = m->nxf;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->xf[mid].tid < tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->nxf && m->xf[lo].tid == tid ? &m->xf[lo] : NULL;
}

/* 7.2 "Resolving a REF": the five rules in order. */
static int resolve(mkfm_dest *m, uint64_t block, uint64_t tid, uint32_t slot, uint64_t hash,
                   const uint8_t **bytes)
{
    if (tid > m->cp_covers)
        return MK_ETID;
    const mkfm_xfer *x = find_xfer(m, tid);
    if (!x)
        return MK_ENOTID;
    /* 4.2 geometry */
    uint64_t h = (m->bs - x->offset % m->bs) % m->bs;
    if (h > x->length)
        h = x->length;
    uint64_t s = (x->length - h) / m->bs;
    uint64_t first = (x->offset + h) / m->bs;
    if (slot >= s)
        return MK_ESLOT;
    if (first + slot != block)
        return MK_ESLOT;
    const uint8_t *at = x->data + h + (uint64_t)slot * m->bs;
    if (mkfm_h64(at, m->bs) != hash)
        return MK_EREFHASH;
    /* Planted bug (test aid): take the neighbouring slot's bytes. */
    if (m->plant == 1 && slot + 1 < s)
        at += m->bs;
    *bytes = at;
    return 0;
}

static int d_cp_ref(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    const uint8_t *p = f->payload;
    int err = 0;
    /* 7.2 decoding, in order. */
    if (f->len < 16)
        return refuse(m, MK_ELENGTH, tag);
    if (mkfm_le32(p + 12))
        return refuse(m, MK_ERESERVED, tag);
    uint64_t cp = mkfm_le64(p);
    uint32_t count = mkfm_le32(p + 8);
    if (count == 0 || count > MAX_REFS || f->len != 16 + 32 * (uint64_t)count)
        return refuse(m, MK_ELENGTH, tag);
    for (uint32_t i = 0; i < count; i++)
        if (mkfm_le32(p + 16 + 32 * i + 20))
            return refuse(m, MK_ERESERVED, tag);
    /* State checks. */
    if (!m->cp_open)
        return refuse(m, MK_ESTATE, tag);
    if (cp != m->cp)
        return refuse(m, MK_ECP, tag);
    if (m->commit_seen)
        return refuse(m, MK_ESTATE, tag);
    /* Pass 1: admit every entry; nothing is resolved if one fails. */
    size_t first = m->nst;
    for (uint32_t i = 0; i < count; i++)
        if (!admit(m, mkfm_le64(p + 16 + 32 * i), 0, &err))
            return refuse(m, err, tag);
    /* Pass 2: resolve in order; a failure is a NAK (8.1). */
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = p + 16 + 32 * i;
        uint64_t block = mkfm_le64(e), tid = mkfm_le64(e + 8), hash = mkfm_le64(e + 24);
        uint32_t slot = mkfm_le32(e + 16);
        mkfm_staged *s = &m->st[first + i];
        const uint8_t *bytes = NULL;
        int r = resolve(m, block, tid, slot, hash, &bytes);
        if (r == 0) {
            s->bytes = bytes;
            s->hash = hash;
            continue;
        }
        s->naked = 1;
        m->outstanding++;
        mkfm_event *ev = push_event(&m->ev, MK_F_NAK, tag, 24);
        put64(ev->payload, cp);
        put64(ev->payload + 8, block);
        put32(ev->payload + 16, to_wire(r));
    }
    return 0;
}

static int d_cp_commit(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    const uint8_t *p = f->payload;
    /* 7.4 check order. */
    if (f->len != 16)
        return refuse(m, MK_ELENGTH, tag);
    if (!m->cp_open || m->commit_seen)
        return refuse(m, MK_ESTATE, tag);
    if (mkfm_le64(p) != m->cp)
        return refuse(m, MK_ECP, tag);
    if (mkfm_le64(p + 8) != m->cp_nrecords || m->nst != m->cp_nrecords)
        return refuse(m, MK_ECOUNT, tag);
    m->commit_seen = 1;
    if (m->outstanding == 0)
        d_apply(m, tag);
    return 0;
}

static int d_tree_query(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    const uint8_t *p = f->payload;
    /* 9.7 TREE_QUERY check order. */
    if (f->len < 8)
        return refuse(m, MK_ELENGTH, tag);
    uint32_t level = mkfm_le32(p), count = mkfm_le32(p + 4);
    if (level == 0 || level > 64)
        return refuse(m, MK_ERANGE, tag);
    if (count == 0 || count > MAX_NODES || f->len != 8 + 8 * (uint64_t)count)
        return refuse(m, MK_ELENGTH, tag);
    if (level > m->tree.height)
        return refuse(m, MK_ERANGE, tag);
    for (uint32_t i = 0; i < count; i++)
        if (mkfm_le64(p + 8 + 8 * i) >= m->tree.p >> level)
            return refuse(m, MK_ERANGE, tag);
    mkfm_event *e = push_event(&m->ev, MK_F_TREE_NODES, tag, 8 + 40 * count);
    put32(e->payload, level);
    put32(e->payload + 4, count);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t idx = mkfm_le64(p + 8 + 8 * i);
        mkfm_h128 l = mkfm_tree_node(&m->tree, level - 1, 2 * idx);
        mkfm_h128 r = mkfm_tree_node(&m->tree, level - 1, 2 * idx + 1);
        uint8_t *o = e->payload + 8 + 40 * i;
        put64(o, idx);
        put64(o + 8, l.lo);
        put64(o + 16, l.hi);
        put64(o + 24, r.lo);
        put64(o + 32, r.hi);
    }
    return 0;
}

static int d_frame(mkfm_dest *m, const mkfm_frame *f, uint32_t tag)
{
    /* 3.4 step 7 */
    if (f->seq != m->recv_seq)
        return refuse(m, MK_ESEQ, tag);
    m->recv_seq++;
    /* step 8: nothing before HELLO (2.3) */
    if (!m->ready) {
        if (f->type != MK_F_HELLO)
            return refuse(m, MK_ESTATE, tag);
        return d_hello(m, f, tag);
    }
    switch (f->type) {
    case MK_F_HELLO:
        return refuse(m, MK_ESTATE, tag); /* a second HELLO (2.3) */
    case MK_F_LOG:
        return d_log(m, f, tag);
    case MK_F_CP_BEGIN:
        return d_cp_begin(m, f, tag);
    case MK_F_CP_DATA:
        return d_cp_data(m, f, tag);
    case MK_F_CP_REF:
        return d_cp_ref(m, f, tag);
    case MK_F_CP_COMMIT:
        return d_cp_commit(m, f, tag);
    case MK_F_TREE_QUERY:
        return d_tree_query(m, f, tag);
    case MK_F_ERROR: {
        /* 3.6: the session ends, with MK_EREMOTE for a well-formed ERROR
         * (any code), the decode error for a malformed one; no reply. */
        const uint8_t *p = f->payload;
        int err = MK_EREMOTE;
        if (f->len < 8)
            err = MK_ELENGTH;
        else if (mkfm_le32(p + 4) > ERR_MSG_MAX || mkfm_le32(p + 4) != f->len - 8)
            err = MK_ELENGTH;
        m->dead = 1;
        m->dead_err = err;
        return err;
    }
    }
    return refuse(m, MK_ETYPE, tag); /* step 9 (3.7) */
}

int mkfm_dest_piece(mkfm_dest *m, const uint8_t *p, size_t n, uint32_t tag)
{
    while (n) {
        if (m->dead)
            return m->dead_err;
        mkfm_frame f;
        size_t used;
        int rc = mkfm_deframe(p, n, &f, &used);
        if (rc == MKFM_INCOMPLETE)
            return 0; /* 3.4: EOF inside a frame applies nothing */
        if (rc)
            return refuse(m, rc, tag);
        if ((rc = d_frame(m, &f, tag)))
            return rc;
        p += used;
        n -= used;
    }
    return 0;
}

/* ---- the source ---------------------------------------------------------------- */

void mkfm_source_expect(mkfm_source *m, int kind, uint64_t a)
{
    m->items = grow(m->items, &m->capitems, m->nitems + 1, sizeof *m->items);
    m->items[m->nitems++] = (mkfm_sitem){kind, a};
}

int mkfm_source_init(mkfm_source *m, uint64_t volume_id, uint64_t nblocks, uint32_t bs,
                     int mode, uint64_t source_id, uint64_t max_lag)
{
    memset(m, 0, sizeof *m);
    m->volume_id = volume_id;
    m->nblocks = nblocks;
    m->bs = bs;
    m->mode = mode;
    m->source_id = source_id;
    m->max_lag = max_lag ? max_lag : (8u << 20);
    if (!(m->image = calloc(nblocks, bs)) || !(m->cpimage = calloc(nblocks, bs)) ||
        !(m->dirty = calloc(nblocks, sizeof *m->dirty)) || !(m->isdirty = calloc(nblocks, 1)) ||
        mkfm_tree_init(&m->tree, nblocks))
        return MK_ENOMEM;
    return 0;
}

void mkfm_source_free(mkfm_source *m)
{
    for (size_t i = 0; i < m->npend; i++)
        free(m->pend[i].data);
    free(m->pend);
    free(m->pa_wid);
    free(m->pa_tid);
    free(m->image);
    free(m->cpimage);
    free(m->dirty);
    free(m->isdirty);
    free(m->rec);
    free(m->items);
    mkfm_tree_free(&m->tree);
    memset(m, 0, sizeof *m);
}

static void mark(mkfm_source *m, uint64_t b, int whole, uint64_t tid, uint32_t slot,
                 uint64_t hash)
{
    if (!m->isdirty[b]) {
        m->isdirty[b] = 1;
        m->ndirty++;
    }
    m->dirty[b] = (mkfm_dirty){whole, tid, slot, hash};
}

static void send_log(mkfm_source *m, uint64_t tid)
{
    mkfm_source_expect(m, MKFM_SI_LOG, tid);
    m->peer_tid = tid; /* 7.1: raised by every LOG sent on this connection */
}

/* 5.1: everything up to tid is durable; sync-mode writes complete. */
static void durable(mkfm_source *m, uint64_t tid)
{
    size_t k = 0;
    while (k < m->npend && m->pend[k].tid <= tid) {
        m->unacked_bytes -= m->pend[k].length;
        free(m->pend[k].data);
        k++;
    }
    if (k)
        memmove(m->pend, m->pend + k, (m->npend - k) * sizeof *m->pend);
    m->npend -= k;
    if (tid > m->acked_tid)
        m->acked_tid = tid;
    while (m->pa_head < m->npa && m->pa_tid[m->pa_head] <= m->acked_tid)
        m->acked_wid = m->pa_wid[m->pa_head++];
}

int mkfm_source_write(mkfm_source *m, uint64_t off, const uint8_t *data, uint32_t len)
{
    uint64_t v = m->nblocks * m->bs, bs = m->bs;
    /* 1.2 checks, in order. */
    if (m->fatal)
        return m->fatal;
    if (len == 0)
        return MK_EZEROLEN;
    if (off > v || len > v - off)
        return MK_ERANGE;
    int logged = m->mode != MK_MODE_ASYNC;
    if (logged && m->unacked_bytes && m->unacked_bytes + len > m->max_lag)
        return MK_EAGAIN;
    memcpy(m->image + off, data, len);
    if (logged) {
        /* 4.2 splitting and geometry; 6.2 descriptor updates. */
        uint64_t at = off, end = off + len;
        while (at < end) {
            uint64_t pe = end;
            if (end - at > MAX_XFER) {
                pe = at + MAX_XFER;
                pe -= pe % bs;
            }
            uint32_t l = (uint32_t)(pe - at);
            const uint8_t *d = data + (at - off);
            uint64_t tid = ++m->next_tid;
            uint64_t h = (bs - at % bs) % bs;
            if (h > l)
                h = l;
            uint64_t s = (l - h) / bs, t = l - h - s * bs, first = (at + h) / bs;
            if (h)
                mark(m, at / bs, 0, 0, 0, 0);
            for (uint64_t i = 0; i < s; i++)
                mark(m, first + i, 1, tid, (uint32_t)i, mkfm_h64(d + h + i * bs, m->bs));
            if (t)
                mark(m, (at + l - 1) / bs, 0, 0, 0, 0);
            m->pend = grow(m->pend, &m->cappend, m->npend + 1, sizeof *m->pend);
            mkfm_pending *x = &m->pend[m->npend++];
            x->tid = tid;
            x->offset = at;
            x->length = l;
            if (!(x->data = malloc(l)))
                abort();
            memcpy(x->data, d, l);
            m->unacked_bytes += l;
            if (m->state == MKFM_READY)
                send_log(m, tid);
            at = pe;
        }
    } else {
        for (uint64_t b = off / bs; b <= (off + len - 1) / bs; b++)
            mark(m, b, 0, 0, 0, 0);
    }
    uint64_t wid = ++m->next_wid;
    if (m->mode == MK_MODE_SYNC) {
        m->pa_wid = grow(m->pa_wid, &m->cappa, m->npa + 1, sizeof *m->pa_wid);
        size_t cap = m->cappa;
        m->pa_tid = realloc(m->pa_tid, cap * sizeof *m->pa_tid);
        if (!m->pa_tid)
            abort();
        m->pa_wid[m->npa] = wid;
        m->pa_tid[m->npa++] = m->next_tid;
    } else {
        m->acked_wid = wid;
    }
    return 0;
}

static void emit_cp(mkfm_source *m)
{
    /* 7.1 covers_tid: min(the CP image's newest, what the peer holds). */
    mkfm_source_expect(m, MKFM_SI_CP, m->cp_covers < m->peer_tid ? m->cp_covers : m->peer_tid);
}

int mkfm_source_cp(mkfm_source *m)
{
    if (m->fatal)
        return m->fatal;
    if (m->cp_inflight)
        return MK_EAGAIN;
    if (m->mode == MK_MODE_SYNC && m->acked_tid < m->next_tid)
        return MK_EAGAIN; /* 5.1 */
    memcpy(m->cpimage, m->image, m->nblocks * m->bs);
    m->nrec = 0;
    uint64_t digest = 0;
    for (uint64_t b = 0; b < m->nblocks; b++) {
        if (!m->isdirty[b])
            continue;
        const mkfm_dirty *d = &m->dirty[b];
        m->rec = grow(m->rec, &m->caprec, m->nrec + 1, sizeof *m->rec);
        mkfm_rec *r = &m->rec[m->nrec++];
        memset(r, 0, sizeof *r);
        r->block = b;
        uint64_t h = mkfm_h64(m->cpimage + b * m->bs, m->bs);
        if (d->whole) { /* 6.3 */
            r->ref = 1;
            r->tid = d->tid;
            r->slot = d->slot;
            r->hash = d->hash;
            if (d->hash != h)
                abort(); /* the model's own bookkeeping is wrong */
        } else {
            r->hash = h;
        }
        digest = mkfm_digest_step(digest, b, r->hash);
        mkfm_tree_set(&m->tree, b, m->cpimage + b * m->bs, m->bs);
        m->isdirty[b] = 0;
    }
    mkfm_tree_commit(&m->tree);
    m->cp_root = mkfm_tree_root(&m->tree);
    m->ndirty = 0;
    m->cp_inflight = 1;
    m->cp_no++;
    m->cp_covers = m->next_tid;
    m->cp_digest = digest;
    if (m->state == MKFM_READY)
        emit_cp(m);
    return 0;
}

void mkfm_source_connect(mkfm_source *m)
{
    if (m->fatal)
        return;
    m->state = MKFM_HELLO_SENT;
    m->recv_seq = 0;
    mkfm_source_expect(m, MKFM_SI_HELLO, 0);
}

void mkfm_source_disconnect(mkfm_source *m) { m->state = MKFM_DOWN; }

const mkfm_rec *mkfm_source_rec(const mkfm_source *m, uint64_t block)
{
    size_t lo = 0, hi = m->cp_inflight ? m->nrec : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->rec[mid].block < block)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < (m->cp_inflight ? m->nrec : 0) && m->rec[lo].block == block ? &m->rec[lo]
                                                                           : NULL;
}

static void s_fail(mkfm_source *m, int err, mkfm_sres *r)
{
    /* 8.5: fatal and sticky; ERROR sent when a session is up. */
    m->fatal = err;
    if (m->state != MKFM_DOWN)
        mkfm_source_expect(m, MKFM_SI_ERROR, (uint64_t)(int64_t)err);
    r->kind = MKFM_S_FATAL;
    r->err = err;
}

static int is_damage(int err)
{
    /* 8.5: what damaged bytes on a connection produce. */
    return err == MK_EMAGIC || err == MK_EVERSION || err == MK_ERESERVED ||
           err == MK_ELENGTH || err == MK_ECHECKSUM || err == MK_ETRUNC || err == MK_ESEQ;
}

static void lost(mkfm_source *m, int err, mkfm_sres *r)
{
    m->state = MKFM_DOWN;
    r->kind = MKFM_S_LOST;
    r->err = err;
}

static void s_hello_ack(mkfm_source *m, const mkfm_frame *f, mkfm_sres *r)
{
    const uint8_t *p = f->payload;
    /* 2.2 check order. */
    if (f->len != 56)
        return s_fail(m, MK_ELENGTH, r);
    if (mkfm_le32(p + 20))
        return s_fail(m, MK_ERESERVED, r);
    if (m->state != MKFM_HELLO_SENT)
        return s_fail(m, MK_ESTATE, r);
    if (mkfm_le64(p) != m->volume_id || mkfm_le64(p + 8) != m->nblocks ||
        mkfm_le32(p + 16) != m->bs)
        return s_fail(m, MK_EVOLUME, r);
    if (mkfm_le64(p + 40) != m->source_id)
        return s_fail(m, MK_EPEER, r);
    uint64_t last_cp = mkfm_le64(p + 24), dtid = mkfm_le64(p + 32),
             ldig = mkfm_le64(p + 48);
    if (m->descent) {
        /* SPEC is of two minds here (7.5 vs the known limits of 9.7). */
        r->kind = MKFM_S_UNSURE;
        m->untracked = 1;
        return;
    }
    /* 8.2 step 1 */
    if (dtid > m->next_tid)
        return s_fail(m, MK_EDIVERGED, r);
    if (dtid < m->acked_tid) {
        /* 8.3: stop referring to the lost transfers. */
        for (uint64_t b = 0; b < m->nblocks; b++)
            if (m->isdirty[b] && m->dirty[b].whole && m->dirty[b].tid > dtid &&
                m->dirty[b].tid <= m->acked_tid)
                m->dirty[b].whole = 0;
        for (size_t i = 0; m->cp_inflight && i < m->nrec; i++)
            if (m->rec[i].ref && m->rec[i].tid > dtid && m->rec[i].tid <= m->acked_tid)
                m->rec[i].ref = 0;
    } else {
        durable(m, dtid);
    }
    m->peer_tid = dtid;
    /* step 2 */
    uint64_t acked_cp = m->cp_no - (uint64_t)m->cp_inflight;
    int resend_cp = 0;
    if (m->cp_inflight && last_cp == m->cp_no) {
        if (ldig != m->cp_digest)
            return s_fail(m, MK_EDIGEST, r);
        m->cp_inflight = 0;
        r->cp_acked = 1;
    } else if (last_cp == acked_cp) {
        resend_cp = m->cp_inflight;
    } else {
        return s_fail(m, MK_EDIVERGED, r);
    }
    /* step 3 */
    m->state = MKFM_READY;
    for (size_t i = 0; i < m->npend; i++)
        if (m->pend[i].tid > dtid)
            send_log(m, m->pend[i].tid);
    if (resend_cp)
        emit_cp(m);
    r->resend = 1;
}

static void s_frame(mkfm_source *m, const mkfm_frame *f, mkfm_sres *r)
{
    const uint8_t *p = f->payload;
    if (f->seq != m->recv_seq)
        return lost(m, MK_ESEQ, r);
    m->recv_seq++;
    /* 3.4 step 8: before HELLO_ACK only HELLO_ACK or ERROR. */
    if (m->state == MKFM_HELLO_SENT && f->type != MK_F_HELLO_ACK && f->type != MK_F_ERROR)
        return s_fail(m, MK_ESTATE, r);
    switch (f->type) {
    case MK_F_HELLO_ACK:
        return s_hello_ack(m, f, r);
    case MK_F_LOG_ACK: {
        /* 4.4 */
        if (f->len != 8)
            return s_fail(m, MK_ELENGTH, r);
        uint64_t tid = mkfm_le64(p);
        if (tid > m->next_tid || tid < m->acked_tid)
            return s_fail(m, MK_ETID, r);
        durable(m, tid);
        return;
    }
    case MK_F_NAK: {
        /* 8.1 */
        if (f->len != 24)
            return s_fail(m, MK_ELENGTH, r);
        if (mkfm_le32(p + 20))
            return s_fail(m, MK_ERESERVED, r);
        if (!m->cp_inflight || mkfm_le64(p) != m->cp_no)
            return s_fail(m, MK_ECP, r);
        uint64_t block = mkfm_le64(p + 8);
        mkfm_rec *rec = (mkfm_rec *)mkfm_source_rec(m, block);
        if (!rec || !rec->ref)
            return s_fail(m, MK_ESTATE, r);
        rec->ref = 0;
        rec->naked = 1;
        mkfm_source_expect(m, MKFM_SI_DATA, block);
        r->nak_block_valid = 1;
        r->nak_block = block;
        return;
    }
    case MK_F_CP_ACK: {
        /* 7.5 */
        if (f->len != 40)
            return s_fail(m, MK_ELENGTH, r);
        if (!m->cp_inflight || mkfm_le64(p) != m->cp_no)
            return s_fail(m, MK_ECP, r);
        if (mkfm_le64(p + 8) != m->nrec)
            return s_fail(m, MK_ECOUNT, r);
        if (mkfm_le64(p + 16) != m->cp_digest)
            return s_fail(m, MK_EDIGEST, r);
        if (m->descent) {
            r->kind = MKFM_S_UNSURE; /* a second CP_ACK during a descent */
            mkfm_source_expect(m, MKFM_SI_TREE, 0);
            return;
        }
        if (mkfm_le64(p + 24) == m->cp_root.lo && mkfm_le64(p + 32) == m->cp_root.hi) {
            m->cp_inflight = 0;
            r->cp_acked = 1;
            return;
        }
        /* 9.7 descent: with H = 0 block 0 differs at once. */
        if (m->tree.height == 0)
            return s_fail(m, MK_EVERIFY, r);
        m->descent = 1;
        r->descent_started = 1;
        mkfm_source_expect(m, MKFM_SI_TREE, 0);
        return;
    }
    case MK_F_TREE_NODES: {
        /* 9.7 TREE_NODES steps 1-4; step 5 is the descent's own. */
        if (f->len < 8)
            return s_fail(m, MK_ELENGTH, r);
        uint32_t level = mkfm_le32(p), count = mkfm_le32(p + 4);
        if (level == 0 || level > 64)
            return s_fail(m, MK_ERANGE, r);
        if (count == 0 || count > MAX_NODES || f->len != 8 + 40 * (uint64_t)count)
            return s_fail(m, MK_ELENGTH, r);
        if (!m->descent)
            return s_fail(m, MK_ESTATE, r);
        r->kind = MKFM_S_UNSURE;
        mkfm_source_expect(m, MKFM_SI_TREE, 0);
        return;
    }
    case MK_F_ERROR: {
        /* 3.6 and 8.5: no ERROR in reply. */
        int err = MK_EREMOTE;
        if (f->len < 8 || mkfm_le32(p + 4) > ERR_MSG_MAX || mkfm_le32(p + 4) != f->len - 8)
            err = MK_ELENGTH;
        else {
            uint32_t w = mkfm_le32(p);
            int code = w <= INT32_MAX ? -(int)w : INT32_MIN;
            if (is_damage(code))
                return lost(m, MK_EREMOTE, r);
        }
        m->fatal = err;
        r->kind = MKFM_S_FATAL;
        r->err = err;
        return;
    }
    }
    return s_fail(m, MK_ETYPE, r);
}

void mkfm_source_piece(mkfm_source *m, const uint8_t *p, size_t n, mkfm_sres *r)
{
    memset(r, 0, sizeof *r);
    if (m->fatal) {
        r->kind = MKFM_S_FATAL;
        r->err = m->fatal;
        return;
    }
    while (n) {
        mkfm_frame f;
        size_t used;
        if (m->state == MKFM_DOWN) {
            r->kind = MKFM_S_LOST;
            r->err = MK_ESTATE;
            return;
        }
        int rc = mkfm_deframe(p, n, &f, &used);
        if (rc == MKFM_INCOMPLETE)
            return;
        if (rc) {
            /* Framing errors are damage (8.5): the session is lost. */
            if (is_damage(rc))
                return lost(m, rc, r);
            return s_fail(m, rc, r);
        }
        s_frame(m, &f, r);
        if (r->kind != MKFM_S_OK)
            return;
        p += used;
        n -= used;
    }
}
