/*
 * mk_mutator.c - an AFL++ custom mutator (docs/custom_mutators.md of
 * AFL++) that mutates mirrorkit inputs as frames, not as bytes.
 *
 * An input (fuzz/mk_fuzz_util.h) is 10 control bytes, then frames (a
 * 20-byte header, the payload, an 8-byte XXH3-64 trailer), then possibly
 * bytes that do not frame.  afl_custom_fuzz parses that, applies one to
 * four structural mutations and writes the frames back out with their
 * lengths and checksums repaired:
 *
 *   - a field of a frame's header or payload, chosen by the frame's type
 *     (tid, offset, length, block, slot, cp, nrecords, covers_tid, count,
 *     hash, level, index, code, msglen, seq, flags, type, version) set to
 *     an interesting value: 0, 1, -1, powers of two and their neighbours,
 *     SPEC's limits (MK_MAX_PAYLOAD, MK_MAX_TRANSFER_DATA, 1024 entries,
 *     MK_MAX_CP_BLOCKS), volume sizes, or a value the input already uses
 *     for the same kind of field (a tid of a LOG, a block, a CP number),
 *     plus or minus one;
 *   - a REF entry made to name a real slot of a LOG in the input, with
 *     the right block and hash (so resolution succeeds), or a resend
 *     CP_DATA for a REF's block appended;
 *   - frames duplicated, dropped, swapped, moved, spliced in from another
 *     input (add_buf), or synthesized (CP_BEGIN/CP_COMMIT for the next CP,
 *     TREE_QUERY, ERROR, LOG_ACK, NAK, CP_ACK, op frames);
 *   - the control bytes (volume, batching, chunk sizes);
 *   - bytes of a payload (rarely; havoc does that too).
 *
 * Afterwards sequence numbers are renumbered (mostly: a wrong seq is worth
 * trying too), each frame's length field is its payload's length (unless
 * the mutation was to the length field itself), and the trailer is the
 * real XXH3-64 or 0 (which the fuzz builds accept, MK_FUZZ_ANY_CHECKSUM).
 *
 * afl_custom_post_process repairs the checksum of every frame AFL++'s own
 * mutations produced (havoc, splice), so they get past framing too; one
 * in sixteen inputs is left as it is, to keep MK_ECHECKSUM reachable.
 *
 * Inputs of another layout (fuzz_scenario's scripts, fuzz_table's tables,
 * fuzz_logstore's log files, whose records do not start at byte 10) have
 * no frame where this mutator looks: afl_custom_fuzz returns 0 for them
 * (AFL++ then skips the custom stage) and afl_custom_post_process finds
 * nothing to repair, so `make fuzz` may load it for every target.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_prng.h"
#include "mk_wire.h"

#define HDR 10 /* control bytes: MKFU_HDR of fuzz/mk_fuzz_util.h */
#define MAXF 4096

typedef struct mfr {
    uint8_t type, ver;
    uint16_t flags;
    uint32_t lenfield; /* what the header says (normally len) */
    int keep_len;      /* the length field was mutated: keep it */
    uint64_t seq;
    uint32_t len;
    uint8_t *pl;       /* the payload: borrowed from the input, or owned */
    int owned;
} mfr;

typedef struct mstate {
    mk_prng rng;
    uint8_t *out, *post;
    size_t out_cap, post_cap;
    mfr f[MAXF];
    size_t nf;
    uint8_t ctl[HDR];
    const uint8_t *tail;
    size_t ntail;
    /* values the input uses, per kind */
    uint64_t tids[64], blocks[64], cps[16];
    size_t ntids, nblocks, ncps;
    uint32_t bs; /* block size guessed from CP_DATA frames (512 else) */
    char desc[64];
} mstate;

static uint64_t rnd(mstate *m, uint64_t n) { return n ? mk_prng_below(&m->rng, n) : 0; }

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void *afl_custom_init(void *afl, unsigned int seed)
{
    (void)afl;
    mstate *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    mk_prng_seed(&m->rng, seed);
    return m;
}

void afl_custom_deinit(void *data)
{
    mstate *m = data;
    for (size_t i = 0; i < m->nf; i++)
        if (m->f[i].owned)
            free(m->f[i].pl);
    free(m->out);
    free(m->post);
    free(m);
}

static void clear(mstate *m)
{
    for (size_t i = 0; i < m->nf; i++)
        if (m->f[i].owned)
            free(m->f[i].pl);
    m->nf = 0;
    m->ntids = m->nblocks = m->ncps = 0;
}

static void note(uint64_t *v, size_t *n, size_t cap, uint64_t x)
{
    for (size_t i = 0; i < *n; i++)
        if (v[i] == x)
            return;
    if (*n < cap)
        v[(*n)++] = x;
}

/* Inserts a frame at index at; its payload is borrowed (it must outlive
 * this call to afl_custom_fuzz) unless copy is set. */
static int add_frame_b(mstate *m, size_t at, uint8_t type, uint64_t seq, const uint8_t *pl,
                       uint32_t len, int copy)
{
    if (m->nf >= MAXF)
        return -1;
    uint8_t *c = (uint8_t *)(uintptr_t)pl;
    if (copy) {
        if (!(c = malloc(len ? len : 1)))
            return -1;
        if (len)
            memcpy(c, pl, len);
    }
    memmove(&m->f[at + 1], &m->f[at], (m->nf - at) * sizeof *m->f);
    m->f[at] = (mfr){type, 1, 0, len, 0, seq, len, c, copy};
    m->nf++;
    return 0;
}

static int add_frame(mstate *m, size_t at, uint8_t type, uint64_t seq, const uint8_t *pl, uint32_t len)
{
    return add_frame_b(m, at, type, seq, pl, len, 1);
}

/* Makes a frame's payload its own before it is changed. */
static int own(mfr *f)
{
    if (f->owned)
        return 0;
    uint8_t *c = malloc(f->len ? f->len : 1);
    if (!c)
        return -1;
    memcpy(c, f->pl, f->len);
    f->pl = c;
    f->owned = 1;
    return 0;
}

static void learn(mstate *m, const mfr *f)
{
    const uint8_t *p = f->pl;
    switch (f->type) {
    case MK_F_LOG:
        if (f->len >= 24)
            note(m->tids, &m->ntids, 64, mk_get_le64(p));
        break;
    case MK_F_CP_BEGIN:
        if (f->len >= 24) {
            note(m->cps, &m->ncps, 16, mk_get_le64(p));
            note(m->tids, &m->ntids, 64, mk_get_le64(p + 16));
        }
        break;
    case MK_F_CP_DATA:
        if (f->len >= 16) {
            note(m->blocks, &m->nblocks, 64, mk_get_le64(p + 8));
            if (f->len - 16 >= 512 && f->len - 16 <= 65536 && !((f->len - 16) & (f->len - 17)))
                m->bs = f->len - 16;
        }
        break;
    case MK_F_CP_REF:
        for (uint32_t i = 0; 16 + 32 * (i + 1) <= f->len && i < 8; i++) {
            note(m->blocks, &m->nblocks, 64, mk_get_le64(p + 16 + 32 * i));
            note(m->tids, &m->ntids, 64, mk_get_le64(p + 24 + 32 * i));
        }
        break;
    case MK_F_NAK:
        if (f->len >= 16)
            note(m->blocks, &m->nblocks, 64, mk_get_le64(p + 8));
        break;
    case MK_F_LOG_ACK:
        if (f->len >= 8)
            note(m->tids, &m->ntids, 64, mk_get_le64(p));
        break;
    }
}

/* Parses an input into control bytes, frames and an unframed tail. */
static void parse(mstate *m, const uint8_t *buf, size_t n)
{
    clear(m);
    m->bs = 512;
    memset(m->ctl, 0, HDR);
    memcpy(m->ctl, buf, n < HDR ? n : HDR);
    size_t at = n < HDR ? n : HDR;
    while (at + MK_FRAME_OVERHEAD <= n && m->nf < MAXF) {
        const uint8_t *p = buf + at;
        uint32_t len = get32(p + 8);
        if (get32(p) != MK_FRAME_MAGIC || len > MK_MAX_PAYLOAD || len + MK_FRAME_OVERHEAD > n - at)
            break;
        if (add_frame_b(m, m->nf, p[5], mk_get_le64(p + 12), p + 20, len, 0))
            break;
        mfr *f = &m->f[m->nf - 1];
        f->ver = p[4];
        f->flags = (uint16_t)(p[6] | p[7] << 8);
        learn(m, f);
        at += len + MK_FRAME_OVERHEAD;
    }
    m->tail = buf + at;
    m->ntail = n - at;
}

static uint64_t interesting(mstate *m, int kind)
{
    static const uint64_t common[] = {0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 99, 100, 101,
                                      127, 128, 255, 256, 511, 512, 513, 1023, 1024, 1025, 4095, 4096,
                                      65535, 65536, 65537, 1048575, 1048576, 1048577, 1048600, 1048601,
                                      0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull,
                                      (UINT32_MAX - 32u) / 16u, (UINT32_MAX - 32u) / 16u + 1,
                                      0x7fffffffffffffffull, 0x8000000000000000ull, UINT64_MAX,
                                      UINT64_MAX - 1};
    uint64_t v;
    switch (rnd(m, 4)) {
    case 0: /* a value of the same kind from the input */
        if (kind == 't' && m->ntids)
            return m->tids[rnd(m, m->ntids)] + rnd(m, 3) - 1;
        if (kind == 'b' && m->nblocks)
            return m->blocks[rnd(m, m->nblocks)] + rnd(m, 3) - 1;
        if (kind == 'c' && m->ncps)
            return m->cps[rnd(m, m->ncps)] + rnd(m, 3) - 1;
        /* fall through */
    case 1:
        return common[rnd(m, sizeof common / sizeof common[0])];
    case 2:
        v = UINT64_C(1) << rnd(m, 64);
        return v + rnd(m, 3) - 1;
    default:
        return rnd(m, 80);
    }
}

/* A field of frame f: offset in the payload (or -1..-6 for header
 * fields), width and kind ('t' tid, 'b' block, 'c' cp, 'n' count, '?'). */
typedef struct fld {
    int off, width, kind;
} fld;

static fld pick_field(mstate *m, const mfr *f)
{
    if (rnd(m, 6) == 0) {
        static const fld hdr[] = {{-1, 1, '?'}, {-2, 1, '?'}, {-3, 2, '?'}, {-4, 4, 'l'}, {-5, 8, 's'}};
        return hdr[rnd(m, 5)];
    }
    uint32_t e;
    switch (f->type) {
    case MK_F_HELLO: {
        static const fld h[] = {{0, 8, '?'}, {8, 8, 'n'}, {16, 4, 'n'}, {20, 1, 'n'}, {21, 1, '?'}, {24, 8, '?'}};
        return h[rnd(m, 6)];
    }
    case MK_F_LOG: {
        static const fld h[] = {{0, 8, 't'}, {8, 8, 'o'}, {16, 4, 'l'}, {20, 4, '?'}};
        return h[rnd(m, 4)];
    }
    case MK_F_CP_BEGIN: {
        static const fld h[] = {{0, 8, 'c'}, {8, 8, 'n'}, {16, 8, 't'}};
        return h[rnd(m, 3)];
    }
    case MK_F_CP_DATA: {
        static const fld h[] = {{0, 8, 'c'}, {8, 8, 'b'}};
        return h[rnd(m, 2)];
    }
    case MK_F_CP_COMMIT: {
        static const fld h[] = {{0, 8, 'c'}, {8, 8, 'n'}};
        return h[rnd(m, 2)];
    }
    case MK_F_CP_REF:
        if (f->len < 48 || rnd(m, 4) == 0) {
            static const fld h[] = {{0, 8, 'c'}, {8, 4, 'n'}, {12, 4, '?'}};
            return h[rnd(m, 3)];
        }
        e = 16 + 32 * (uint32_t)rnd(m, (f->len - 16) / 32);
        switch (rnd(m, 5)) {
        case 0: return (fld){(int)e, 8, 'b'};
        case 1: return (fld){(int)e + 8, 8, 't'};
        case 2: return (fld){(int)e + 16, 4, 'n'};
        case 3: return (fld){(int)e + 20, 4, '?'};
        default: return (fld){(int)e + 24, 8, 'h'};
        }
    case MK_F_TREE_QUERY:
    case MK_F_TREE_NODES:
        if (f->len <= 8 || rnd(m, 2)) {
            static const fld h[] = {{0, 4, 'n'}, {4, 4, 'n'}};
            return h[rnd(m, 2)];
        }
        return (fld){8 + 8 * (int)rnd(m, (f->len - 8) / 8), 8, 'n'};
    case MK_F_ERROR: {
        static const fld h[] = {{0, 4, 'e'}, {4, 4, 'l'}};
        return h[rnd(m, 2)];
    }
    case MK_F_HELLO_ACK: {
        static const fld h[] = {{0, 8, '?'}, {8, 8, 'n'}, {16, 4, 'n'}, {20, 4, '?'},
                                {24, 8, 'c'}, {32, 8, 't'}, {40, 8, '?'}, {48, 8, 'h'}};
        return h[rnd(m, 8)];
    }
    case MK_F_LOG_ACK:
        return (fld){0, 8, 't'};
    case MK_F_NAK: {
        static const fld h[] = {{0, 8, 'c'}, {8, 8, 'b'}, {16, 4, 'e'}, {20, 4, '?'}};
        return h[rnd(m, 4)];
    }
    case MK_F_CP_ACK: {
        static const fld h[] = {{0, 8, 'c'}, {8, 8, 'n'}, {16, 8, 'h'}, {24, 8, 'h'}, {32, 8, 'h'}};
        return h[rnd(m, 5)];
    }
    case 0xF1: /* op: client write */
        return (fld){0, 8, 'o'};
    }
    return (fld){(int)rnd(m, f->len ? f->len : 1), 1, '?'};
}

static void set_field(mstate *m, mfr *f)
{
    fld d = pick_field(m, f);
    uint64_t v = interesting(m, d.kind);
    if (d.kind == 'e' && rnd(m, 2))
        v = 1 + rnd(m, 38); /* an error's wire value */
    if (d.kind == 'h' && rnd(m, 2))
        v = mk_prng_next(&m->rng); /* some other hash */
    if (d.off < 0) {
        switch (d.off) {
        case -1: f->type = (uint8_t)(rnd(m, 2) ? v : (uint8_t[]){1, 2, 3, 4, 5, 6, 7, 0x7f, 0x81, 0x82, 0x83, 0x84, 0x85, 0x10, 0xF0, 0xF1, 0xF2}[rnd(m, 17)]); break;
        case -2: f->ver = (uint8_t)v; break;
        case -3: f->flags = (uint16_t)(v ? v : 1); break;
        case -4: f->lenfield = (uint32_t)v; f->keep_len = 1; break;
        case -5: f->seq = v; break;
        }
        snprintf(m->desc, sizeof m->desc, "hdr%d", -d.off);
        return;
    }
    if ((uint32_t)d.off + (uint32_t)d.width > f->len || own(f))
        return;
    for (int i = 0; i < d.width; i++)
        f->pl[d.off + i] = (uint8_t)(v >> (8 * i));
    snprintf(m->desc, sizeof m->desc, "field-%02x-%d", f->type, d.off);
}

/* Makes a REF entry name slot s of a LOG in the input, right block and
 * hash: a REF that resolves (if the LOG is accepted and covered). */
static void fix_ref(mstate *m)
{
    size_t refs[MAXF], logs[MAXF], nr = 0, nl = 0;
    for (size_t i = 0; i < m->nf; i++) {
        if (m->f[i].type == MK_F_CP_REF && m->f[i].len >= 48)
            refs[nr++] = i;
        if (m->f[i].type == MK_F_LOG && m->f[i].len > 24)
            logs[nl++] = i;
    }
    if (!nr || !nl)
        return;
    mfr *r = &m->f[refs[rnd(m, nr)]], *l = &m->f[logs[rnd(m, nl)]];
    if (own(r))
        return;
    uint32_t len = l->len - 24;
    mk_xgeom g;
    mk_transfer_geom(mk_get_le64(l->pl + 8), len, m->bs, &g);
    if (!g.nslots)
        return;
    uint32_t s = (uint32_t)rnd(m, g.nslots);
    uint8_t *e = r->pl + 16 + 32 * rnd(m, (r->len - 16) / 32);
    mk_put_le64(e, g.first_block + s);
    mk_put_le64(e + 8, mk_get_le64(l->pl));
    put32(e + 16, s);
    put32(e + 20, 0);
    mk_put_le64(e + 24, XXH3_64bits(l->pl + 24 + g.head_len + (size_t)s * m->bs, m->bs));
    snprintf(m->desc, sizeof m->desc, "fix-ref");
}

/* Appends (somewhere after it) the CP_DATA that would answer a NAK of a
 * REF's block: the slot bytes if the REF names a LOG here, else bytes of
 * another CP_DATA. */
static void resend(mstate *m)
{
    size_t refs[MAXF], nr = 0;
    for (size_t i = 0; i < m->nf; i++)
        if (m->f[i].type == MK_F_CP_REF && m->f[i].len >= 48)
            refs[nr++] = i;
    if (!nr)
        return;
    size_t ri = refs[rnd(m, nr)];
    const uint8_t *e = m->f[ri].pl + 16 + 32 * rnd(m, (m->f[ri].len - 16) / 32);
    uint8_t *pl = calloc(1, 16 + (size_t)m->bs);
    if (!pl)
        return;
    mk_put_le64(pl, mk_get_le64(m->f[ri].pl));
    mk_put_le64(pl + 8, mk_get_le64(e));
    for (size_t i = 0; i < m->nf; i++) {
        const mfr *l = &m->f[i];
        if (l->type == MK_F_LOG && l->len > 24 && mk_get_le64(l->pl) == mk_get_le64(e + 8)) {
            mk_xgeom g;
            uint32_t s = get32(e + 16);
            mk_transfer_geom(mk_get_le64(l->pl + 8), l->len - 24, m->bs, &g);
            if (s < g.nslots)
                memcpy(pl + 16, l->pl + 24 + g.head_len + (size_t)s * m->bs, m->bs);
            break;
        }
    }
    add_frame(m, ri + 1 + rnd(m, m->nf - ri), MK_F_CP_DATA, 0, pl, 16 + m->bs);
    free(pl);
    snprintf(m->desc, sizeof m->desc, "resend");
}

static void synthesize(mstate *m)
{
    uint8_t pl[64] = {0};
    uint32_t len = 0;
    uint8_t type;
    uint64_t cp = m->ncps ? m->cps[rnd(m, m->ncps)] + rnd(m, 2) : 1;
    uint64_t tid = m->ntids ? m->tids[rnd(m, m->ntids)] : 1;
    switch (rnd(m, 11)) {
    case 0: type = MK_F_CP_BEGIN; mk_put_le64(pl, cp); mk_put_le64(pl + 8, rnd(m, 4)); mk_put_le64(pl + 16, tid); len = 24; break;
    case 1: type = MK_F_CP_COMMIT; mk_put_le64(pl, cp); mk_put_le64(pl + 8, rnd(m, 4)); len = 16; break;
    case 2: type = MK_F_TREE_QUERY; put32(pl, 1 + (uint32_t)rnd(m, 7)); put32(pl + 4, 1); mk_put_le64(pl + 8, rnd(m, 4)); len = 16; break;
    case 3: type = MK_F_ERROR; put32(pl, (uint32_t)rnd(m, 40)); len = 8; break;
    case 4: type = MK_F_LOG_ACK; mk_put_le64(pl, tid); len = 8; break;
    case 5: type = MK_F_NAK; mk_put_le64(pl, cp); mk_put_le64(pl + 8, m->nblocks ? m->blocks[rnd(m, m->nblocks)] : 0); put32(pl + 16, 21); len = 24; break;
    case 6: type = MK_F_CP_ACK; mk_put_le64(pl, cp); mk_put_le64(pl + 8, rnd(m, 8)); len = 40; break;
    case 7: type = 0xF0; break;
    case 8: type = 0xF2; break;
    case 9: { /* op: a whole-block client write */
        uint8_t *w = malloc(8 + (size_t)m->bs);
        if (!w)
            return;
        mk_put_le64(w, (m->nblocks ? m->blocks[rnd(m, m->nblocks)] : rnd(m, 64)) * m->bs);
        memset(w + 8, (int)rnd(m, 256), m->bs);
        add_frame(m, rnd(m, m->nf + 1), 0xF1, 0, w, 8 + m->bs);
        free(w);
        snprintf(m->desc, sizeof m->desc, "synth-write");
        return;
    }
    default: /* HELLO_ACK echoing the common identity */
        type = MK_F_HELLO_ACK; mk_put_le64(pl, 0x6d6972726f72ull); mk_put_le64(pl + 8, 64); put32(pl + 16, m->bs);
        mk_put_le64(pl + 24, cp - 1); mk_put_le64(pl + 32, tid); mk_put_le64(pl + 40, 0x736f75726365ull); len = 56; break;
    }
    add_frame(m, rnd(m, m->nf + 1), type, 0, pl, len);
    snprintf(m->desc, sizeof m->desc, "synth-%02x", type);
}

static void mutate_once(mstate *m, const uint8_t *add, size_t nadd)
{
    size_t i, j;
    switch (rnd(m, 16)) {
    case 0: case 1: case 2: case 3: case 4:
        if (m->nf)
            set_field(m, &m->f[rnd(m, m->nf)]);
        break;
    case 5:
        fix_ref(m);
        break;
    case 6:
        resend(m);
        break;
    case 7: /* duplicate */
        if (m->nf) {
            i = rnd(m, m->nf);
            mfr c = m->f[i];
            add_frame(m, rnd(m, m->nf + 1), c.type, c.seq, c.pl, c.len);
            snprintf(m->desc, sizeof m->desc, "dup");
        }
        break;
    case 8: /* drop */
        if (m->nf) {
            i = rnd(m, m->nf);
            if (m->f[i].owned)
                free(m->f[i].pl);
            memmove(&m->f[i], &m->f[i + 1], (m->nf - i - 1) * sizeof *m->f);
            m->nf--;
            snprintf(m->desc, sizeof m->desc, "drop");
        }
        break;
    case 9: /* swap */
        if (m->nf > 1) {
            i = rnd(m, m->nf);
            j = rnd(m, m->nf);
            mfr t = m->f[i];
            m->f[i] = m->f[j];
            m->f[j] = t;
            snprintf(m->desc, sizeof m->desc, "swap");
        }
        break;
    case 10: /* splice frames of another input in */
        if (add && nadd > HDR) {
            mstate *o = malloc(sizeof *o);
            if (!o)
                break;
            memset(o, 0, sizeof *o);
            parse(o, add, nadd);
            size_t a = rnd(m, o->nf + 1), b = a + rnd(m, o->nf - a + 1), at = rnd(m, m->nf + 1);
            for (size_t k = a; k < b; k++)
                if (add_frame(m, at + (k - a), o->f[k].type, o->f[k].seq, o->f[k].pl, o->f[k].len))
                    break;
            clear(o);
            free(o);
            snprintf(m->desc, sizeof m->desc, "splice");
        }
        break;
    case 11:
        synthesize(m);
        break;
    case 12: /* control bytes */
        i = rnd(m, HDR);
        m->ctl[i] = (uint8_t)(rnd(m, 2) ? rnd(m, 256) : (uint8_t[]){0, 1, 2, 3, 7, 8, 16, 28, 64, 255}[rnd(m, 10)]);
        snprintf(m->desc, sizeof m->desc, "ctl%zu", i);
        break;
    case 13: /* a payload byte */
        if (m->nf) {
            mfr *f = &m->f[rnd(m, m->nf)];
            if (f->len && own(f) == 0)
                f->pl[rnd(m, f->len)] ^= (uint8_t)(1u << rnd(m, 8));
            snprintf(m->desc, sizeof m->desc, "bit");
        }
        break;
    case 14: /* truncate a payload, or grow it */
        if (m->nf) {
            mfr *f = &m->f[rnd(m, m->nf)];
            uint32_t nl = rnd(m, 2) ? (uint32_t)rnd(m, f->len + 1) : f->len + (uint32_t)rnd(m, 64) + 1;
            if (own(f))
                break;
            uint8_t *p = realloc(f->pl, nl ? nl : 1);
            if (p) {
                if (nl > f->len)
                    memset(p + f->len, 0, nl - f->len);
                f->pl = p;
                f->len = nl;
                f->lenfield = nl;
            }
            snprintf(m->desc, sizeof m->desc, "resize");
        }
        break;
    default: /* move a frame */
        if (m->nf > 1) {
            i = rnd(m, m->nf);
            mfr t = m->f[i];
            memmove(&m->f[i], &m->f[i + 1], (m->nf - i - 1) * sizeof *m->f);
            j = rnd(m, m->nf);
            memmove(&m->f[j + 1], &m->f[j], (m->nf - 1 - j) * sizeof *m->f);
            m->f[j] = t;
            snprintf(m->desc, sizeof m->desc, "move");
        }
        break;
    }
}

/* Sequence numbers: the first stream frame's is kept, the others follow
 * it; after a reconnect op the next frame's is kept and the count goes
 * on from it. */
static void renumber(mstate *m)
{
    int have = 0;
    uint64_t next = 0;
    for (size_t i = 0; i < m->nf; i++) {
        mfr *f = &m->f[i];
        if (f->type >= 0xF0) {
            if (f->type == 0xF0)
                have = 0;
            continue;
        }
        if (!have) {
            next = f->seq;
            have = 1;
        }
        f->seq = next++;
    }
}

static int reserve(uint8_t **b, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    uint8_t *g = realloc(*b, n);
    if (!g)
        return -1;
    *b = g;
    *cap = n;
    return 0;
}

/* Writes ctl, frames (lengths and checksums repaired) and tail. */
static size_t emit(mstate *m, size_t max)
{
    size_t need = HDR + m->ntail;
    for (size_t i = 0; i < m->nf; i++)
        need += MK_FRAME_OVERHEAD + m->f[i].len;
    if (reserve(&m->out, &m->out_cap, need))
        return 0;
    uint8_t *o = m->out;
    size_t at = HDR;
    memcpy(o, m->ctl, HDR);
    for (size_t i = 0; i < m->nf; i++) {
        const mfr *f = &m->f[i];
        if (at + MK_FRAME_OVERHEAD + f->len > max)
            break;
        uint8_t *h = o + at;
        put32(h, MK_FRAME_MAGIC);
        h[4] = f->ver;
        h[5] = f->type;
        h[6] = (uint8_t)f->flags;
        h[7] = (uint8_t)(f->flags >> 8);
        put32(h + 8, f->keep_len ? f->lenfield : f->len);
        mk_put_le64(h + 12, f->seq);
        memcpy(h + 20, f->pl, f->len);
        uint64_t sum = rnd(m, 8) == 0 ? 0 : XXH3_64bits(h, 20 + (size_t)f->len);
        mk_put_le64(h + 20 + f->len, sum);
        at += MK_FRAME_OVERHEAD + f->len;
    }
    if (m->ntail && at + m->ntail <= max) {
        memcpy(o + at, m->tail, m->ntail);
        at += m->ntail;
    }
    return at;
}

size_t afl_custom_fuzz(void *data, uint8_t *buf, size_t buf_size, uint8_t **out_buf,
                       uint8_t *add_buf, size_t add_buf_size, size_t max_size)
{
    mstate *m = data;
    parse(m, buf, buf_size);
    strcpy(m->desc, "none");
    /* Not a frame stream after the control bytes (another harness's input,
     * e.g. a scenario script or a log file): no custom mutation; AFL++
     * skips an empty result and goes on with its own stages. */
    if (m->nf == 0 && m->ntail >= 4 && get32(m->tail) != MK_FRAME_MAGIC) {
        *out_buf = buf;
        return 0;
    }
    int n = 1 + (int)rnd(m, 4);
    int structural = 0;
    for (int i = 0; i < n; i++) {
        size_t before = m->nf;
        mutate_once(m, add_buf, add_buf_size);
        structural |= m->nf != before;
    }
    if (structural ? rnd(m, 8) != 0 : rnd(m, 2) == 0)
        renumber(m);
    size_t len = emit(m, max_size);
    *out_buf = m->out;
    return len;
}

const char *afl_custom_describe(void *data, size_t max_description_len)
{
    mstate *m = data;
    if (strlen(m->desc) >= max_description_len)
        m->desc[max_description_len ? max_description_len - 1 : 0] = 0;
    return m->desc;
}

/* Every test case AFL++ runs comes through here: each whole frame gets a
 * valid trailer (the real XXH3-64, or 0), so byte-level havoc mutations
 * reach the protocol; 1 input in 16 is left alone. */
size_t afl_custom_post_process(void *data, uint8_t *buf, size_t buf_size, uint8_t **out_buf)
{
    mstate *m = data;
    if (rnd(m, 16) == 0 || reserve(&m->post, &m->post_cap, buf_size ? buf_size : 1)) {
        *out_buf = buf;
        return buf_size;
    }
    memcpy(m->post, buf, buf_size);
    size_t at = buf_size < HDR ? buf_size : HDR;
    while (at + MK_FRAME_OVERHEAD <= buf_size) {
        uint8_t *p = m->post + at;
        uint32_t len = get32(p + 8);
        if (get32(p) != MK_FRAME_MAGIC || len > MK_MAX_PAYLOAD || len + MK_FRAME_OVERHEAD > buf_size - at)
            break;
        uint64_t want = XXH3_64bits(p, 20 + (size_t)len), have = mk_get_le64(p + 20 + len);
        if (have != want && have != 0)
            mk_put_le64(p + 20 + len, rnd(m, 4) ? want : 0);
        at += len + MK_FRAME_OVERHEAD;
    }
    *out_buf = m->post;
    return buf_size;
}
