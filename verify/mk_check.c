#include "mk_check.h"

#include <stdlib.h>
#include <string.h>

#include "mk_cursor.h"
#include "mk_err.h"
#include "mk_map.h"

#define PROV_LEN 32
#define CHUNK_BLOCKS 256

/* One block of the CP begun: its checksum in the CP k-1 image (the mirror
 * before apply) and in the CP k image (the source), and what wrote it. */
typedef struct snap {
    uint64_t block;
    uint64_t hash;          /* XXH3-64 of the CP k content, from the source */
    XXH128_hash_t old, new_;
    mk_prov prov;
} snap;

struct mk_checker {
    mk_checker_config cfg;
    uint64_t scrub_pos, cp;
    snap *sn;
    size_t nsn, capsn;
    mk_map acked, unsure;
    uint8_t *ba, *bb;    /* CHUNK_BLOCKS blocks each */
};

int mk_checker_new(const mk_checker_config *cfg, mk_checker **out)
{
    mk_checker *ck = calloc(1, sizeof *ck);
    if (!ck)
        return MK_ENOMEM;
    ck->cfg = *cfg;
    ck->ba = malloc((size_t)CHUNK_BLOCKS * cfg->block_size);
    ck->bb = malloc((size_t)CHUNK_BLOCKS * cfg->block_size);
    if (!ck->ba || !ck->bb) {
        mk_checker_free(ck);
        return MK_ENOMEM;
    }
    *out = ck;
    return 0;
}

void mk_checker_free(mk_checker *ck)
{
    if (!ck)
        return;
    free(ck->sn);
    mk_map_free(&ck->acked);
    mk_map_free(&ck->unsure);
    free(ck->ba);
    free(ck->bb);
    free(ck);
}

static XXH128_hash_t h128(const void *p, size_t n) { return XXH3_128bits(p, n); }

static int h128_eq(XXH128_hash_t a, XXH128_hash_t b) { return XXH128_isEqual(a, b); }

/* ---- provenance ------------------------------------------------------- */

static void prov_encode(const mk_prov *p, uint8_t *e)
{
    mk_wcur c;
    mk_wcur_init(&c, e, PROV_LEN);
    mk_wcur_u64(&c, p->cp);
    mk_wcur_u64(&c, p->tid);
    mk_wcur_u32(&c, p->slot);
    mk_wcur_u8(&c, p->kind);
    mk_wcur_zero(&c, PROV_LEN - c.pos);
}

/* Stores the provenance of the CP's blocks, one write per run of
 * consecutive blocks (the scratch buffer holds CHUNK_BLOCKS blocks, far
 * more than CHUNK_BLOCKS entries). */
static int prov_store(mk_checker *ck)
{
    if (!ck->cfg.prov)
        return 0;
    for (size_t i = 0; i < ck->nsn;) {
        size_t run = 0;
        while (i + run < ck->nsn && run < CHUNK_BLOCKS &&
               ck->sn[i + run].block == ck->sn[i].block + run) {
            prov_encode(&ck->sn[i + run].prov, ck->ba + run * PROV_LEN);
            run++;
        }
        int rc = mk_file_pwrite(ck->cfg.prov, ck->ba, run * PROV_LEN, ck->sn[i].block * PROV_LEN);
        if (rc)
            return rc;
        i += run;
    }
    return 0;
}

static void prov_get(mk_checker *ck, uint64_t block, mk_prov *p)
{
    uint8_t e[PROV_LEN];
    mk_rcur c;
    uint64_t idx;
    memset(p, 0, sizeof *p);
    /* The CP's records come in ascending block order (section 7.2). */
    size_t lo = 0, hi = ck->nsn;
    while (lo < hi) {
        idx = lo + (hi - lo) / 2;
        if (ck->sn[idx].block < block)
            lo = idx + 1;
        else
            hi = idx;
    }
    if (lo < ck->nsn && ck->sn[lo].block == block) {
        *p = ck->sn[lo].prov;
        return;
    }
    if (!ck->cfg.prov || mk_file_read_block(ck->cfg.prov, e, sizeof e, block * PROV_LEN))
        return;
    mk_rcur_init(&c, e, sizeof e);
    mk_rcur_u64(&c, &p->cp);
    mk_rcur_u64(&c, &p->tid);
    mk_rcur_u32(&c, &p->slot);
    mk_rcur_u8(&c, &p->kind);
}

/* ---- comparison ------------------------------------------------------- */

static void report_reset(mk_check_report *rep, const char *what, uint64_t cp)
{
    memset(rep, 0, sizeof *rep);
    rep->what = what;
    rep->cp = cp;
}

/* Records one differing block: both checksums, provenance and the first
 * differing bytes, so the report can be acted on without rerunning. */
static void add_diff(mk_checker *ck, mk_check_report *rep, uint64_t block, const uint8_t *a,
                     const uint8_t *b, int invariant)
{
    uint32_t bs = ck->cfg.block_size;
    rep->differing++;
    if (!rep->invariant)
        rep->invariant = invariant;
    if (rep->ndiffs == MK_CHECK_MAX_DIFFS)
        return;
    mk_block_diff *d = &rep->diffs[rep->ndiffs++];
    d->block = block;
    d->offset = block * bs;
    d->src = h128(a, bs);
    d->dst = h128(b, bs);
    prov_get(ck, block, &d->prov);
    uint32_t at = 0;
    while (at < bs && a[at] == b[at])
        at++;
    d->at = at;
    d->nbytes = bs - at < 16 ? bs - at : 16;
    memcpy(d->src_bytes, a + at, d->nbytes);
    memcpy(d->dst_bytes, b + at, d->nbytes);
}

/* Compares n consecutive blocks starting at first. */
static int compare_run(mk_checker *ck, mk_file *src, mk_file *mirror, uint64_t first,
                       uint64_t n, mk_check_report *rep)
{
    uint32_t bs = ck->cfg.block_size;
    while (n) {
        uint64_t k = n < CHUNK_BLOCKS ? n : CHUNK_BLOCKS;
        int rc = mk_file_read_block(src, ck->ba, k * bs, first * bs);
        if (rc || (rc = mk_file_read_block(mirror, ck->bb, k * bs, first * bs)))
            return rc;
        if (memcmp(ck->ba, ck->bb, k * bs) != 0)
            for (uint64_t i = 0; i < k; i++)
                if (memcmp(ck->ba + i * bs, ck->bb + i * bs, bs) != 0)
                    add_diff(ck, rep, first + i, ck->ba + i * bs, ck->bb + i * bs, 1);
        rep->compared += k;
        first += k;
        n -= k;
    }
    return 0;
}

static int compare_block(mk_checker *ck, mk_file *src, mk_file *mirror, uint64_t block,
                         mk_check_report *rep)
{
    return compare_run(ck, src, mirror, block, 1, rep);
}

/* ---- write witness ---------------------------------------------------- */

#define WITNESS_PARTIAL UINT64_MAX    /* written, but not as a whole block */
#define WITNESS_TAKEN (UINT64_MAX - 1) /* already checked */

struct mk_witness {
    mk_file base;
    mk_file *inner;
    uint32_t bs;
    mk_map seen; /* block -> XXH3-64 of its last whole write, or PARTIAL */
};

static long w_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    return mk_file_pread(((mk_witness *)f)->inner, buf, n, off);
}

static int w_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    mk_witness *w = (mk_witness *)f;
    int rc = mk_file_pwrite(w->inner, buf, n, off);
    if (rc || n == 0)
        return rc;
    const uint8_t *p = buf;
    for (uint64_t b = off / w->bs; b <= (off + n - 1) / w->bs; b++) {
        uint64_t start = b * w->bs, h = WITNESS_PARTIAL;
        if (start >= off && start + w->bs <= off + n) {
            h = XXH3_64bits(p + (start - off), w->bs);
            if (h >= WITNESS_TAKEN)
                h = WITNESS_PARTIAL; /* keep the markers unambiguous: read back */
        }
        if ((rc = mk_map_put(&w->seen, b, h)))
            return rc;
    }
    return 0;
}

static int w_sync(mk_file *f) { return mk_file_sync(((mk_witness *)f)->inner); }

static int w_truncate(mk_file *f, uint64_t size)
{
    return mk_file_truncate(((mk_witness *)f)->inner, size);
}

static int w_size(mk_file *f, uint64_t *size) { return mk_file_size(((mk_witness *)f)->inner, size); }

static void w_close(mk_file *f)
{
    mk_witness *w = (mk_witness *)f;
    mk_file_close(w->inner);
    mk_map_free(&w->seen);
    free(w);
}

static const mk_file_ops witness_ops = {w_pread, w_pwrite, w_sync, w_truncate, w_size, w_close};

int mk_file_witness(mk_file *inner, uint32_t bs, mk_witness **wout, mk_file **out)
{
    mk_witness *w = calloc(1, sizeof *w);
    if (!w)
        return MK_ENOMEM;
    w->base.ops = &witness_ops;
    memcpy(w->base.name, inner->name, sizeof w->base.name);
    w->inner = inner;
    w->bs = bs;
    *wout = w;
    *out = &w->base;
    return 0;
}

static int witness_has(mk_witness *w, uint64_t block)
{
    uint64_t h;
    return mk_map_get(&w->seen, block, &h) && h < WITNESS_TAKEN;
}

/* The whole-block checksum of block's last write, if there is one; the
 * entry is marked checked either way. */
static int witness_take(mk_witness *w, uint64_t block, uint64_t *h)
{
    int whole = witness_has(w, block);
    if (whole)
        mk_map_get(&w->seen, block, h);
    if (whole || mk_map_get(&w->seen, block, h))
        mk_map_put(&w->seen, block, WITNESS_TAKEN); /* cannot fail: key present */
    return whole;
}

/* Blocks written since the last check that the CP did not account for. */
static int witness_strays(mk_checker *ck, mk_witness *w, mk_file *src, mk_file *mirror,
                          mk_check_report *rep)
{
    uint64_t b, h;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->seen.cap; i++)
        if (mk_map_slot(&w->seen, i, &b, &h) && h != WITNESS_TAKEN)
            rc = compare_block(ck, src, mirror, b, rep);
    mk_map_clear(&w->seen);
    return rc;
}

static uint8_t prov_kind(const mk_cp_record *r)
{
    return r->naked ? MK_PROV_REF_NAKED : r->is_ref ? MK_PROV_REF : MK_PROV_DATA;
}

int mk_checker_cp_begin(mk_checker *ck, uint64_t cp, const mk_source *s, mk_file *src,
                        mk_file *mirror)
{
    uint32_t bs = ck->cfg.block_size;
    size_t n = mk_source_cp_size(s);
    int rc;
    ck->cp = cp;
    ck->nsn = 0;
    /* The writes before this CP are all inside it now. */
    mk_map_clear(&ck->acked);
    mk_map_clear(&ck->unsure);
    if (n > ck->capsn) {
        snap *p = realloc(ck->sn, n * sizeof *p);
        if (!p)
            return MK_ENOMEM;
        ck->sn = p;
        ck->capsn = n;
    }
    for (size_t i = 0; i < n; i++) {
        mk_cp_record r;
        snap *sn = &ck->sn[ck->nsn];
        if ((rc = mk_source_cp_record(s, i, &r)))
            return rc;
        sn->block = r.block;
        sn->hash = r.hash;
        if (ck->cfg.atomicity) {
            if ((rc = mk_file_read_block(mirror, ck->ba, bs, r.block * bs)) ||
                (rc = mk_file_read_block(src, ck->bb, bs, r.block * bs)))
                return rc;
            sn->old = h128(ck->ba, bs);
            sn->new_ = h128(ck->bb, bs);
        }
        sn->prov = (mk_prov){cp, r.tid, r.slot, prov_kind(&r)};
        ck->nsn++;
    }
    return 0;
}

int mk_checker_cp_acked(mk_checker *ck, const mk_source *s, mk_file *src, mk_file *mirror,
                        mk_check_report *rep)
{
    int rc;
    report_reset(rep, "incremental", ck->cp);
    for (size_t i = 0; i < ck->nsn && i < mk_source_cp_size(s); i++) {
        mk_cp_record r;
        if (mk_source_cp_record(s, i, &r) == 0 && r.block == ck->sn[i].block)
            ck->sn[i].prov.kind = prov_kind(&r);
    }
    /* The CP's blocks: the mirror's bytes against the checksum the source
     * computed from its own CP image.  With a witness, the checksum of what
     * was written; else (or for a block not written whole) one read per
     * run of consecutive blocks.  Only a block that fails is read from the
     * source too, for the report. */
    uint32_t bs = ck->cfg.block_size;
    mk_witness *w = ck->cfg.witness;
    for (size_t i = 0; i < ck->nsn;) {
        uint64_t h;
        if (w && witness_take(w, ck->sn[i].block, &h)) {
            rep->compared++;
            if (h != ck->sn[i].hash && (rc = compare_block(ck, src, mirror, ck->sn[i].block, rep)))
                return rc;
            i++;
            continue;
        }
        size_t run = 1;
        while (i + run < ck->nsn && run < CHUNK_BLOCKS &&
               ck->sn[i + run].block == ck->sn[i].block + run &&
               !(w && witness_has(w, ck->sn[i + run].block)))
            run++;
        if ((rc = mk_file_read_block(mirror, ck->bb, run * bs, ck->sn[i].block * bs)))
            return rc;
        for (size_t k = 0; k < run; k++) {
            const snap *sn = &ck->sn[i + k];
            rep->compared++;
            if (w)
                witness_take(w, sn->block, &h);
            if (XXH3_64bits(ck->bb + k * bs, bs) == sn->hash)
                continue;
            if ((rc = mk_file_read_block(src, ck->ba, bs, sn->block * bs)))
                return rc;
            add_diff(ck, rep, sn->block, ck->ba, ck->bb + k * bs, 1);
        }
        i += run;
    }
    /* Whatever else was written since the last check was not part of the
     * CP: such a block must still equal the source (a stray write that
     * changed nothing is harmless; one that did is a violation). */
    if (w && (rc = witness_strays(ck, w, src, mirror, rep)))
        return rc;
    /* The rolling scrub: a window of the whole volume per CP, so damage
     * outside the dirty blocks is found within nblocks/scrub CPs. */
    uint64_t left = ck->cfg.scrub_per_cp < ck->cfg.nblocks ? ck->cfg.scrub_per_cp
                                                            : ck->cfg.nblocks;
    while (left) {
        uint64_t run = ck->cfg.nblocks - ck->scrub_pos < left ? ck->cfg.nblocks - ck->scrub_pos
                                                              : left;
        if ((rc = compare_run(ck, src, mirror, ck->scrub_pos, run, rep)))
            return rc;
        ck->scrub_pos = (ck->scrub_pos + run) % ck->cfg.nblocks;
        left -= run;
    }
    if ((rc = prov_store(ck)))
        return rc;
    return rep->invariant ? MK_EVERIFY : 0;
}

int mk_checker_full(mk_checker *ck, mk_file *src, mk_file *mirror, mk_check_report *rep)
{
    report_reset(rep, "full", ck->cp);
    int rc = compare_run(ck, src, mirror, 0, ck->cfg.nblocks, rep);
    if (rc)
        return rc;
    return rep->invariant ? MK_EVERIFY : 0;
}

int mk_checker_atomic(mk_checker *ck, mk_file *mirror, mk_check_report *rep)
{
    uint32_t bs = ck->cfg.block_size;
    uint64_t as_old = 0, as_new = 0;
    report_reset(rep, "atomicity", ck->cp);
    if (!ck->cfg.atomicity)
        return MK_ESTATE;
    for (size_t i = 0; i < ck->nsn; i++) {
        int rc = mk_file_read_block(mirror, ck->ba, bs, ck->sn[i].block * bs);
        if (rc)
            return rc;
        XXH128_hash_t h = h128(ck->ba, bs);
        int o = h128_eq(h, ck->sn[i].old), n = h128_eq(h, ck->sn[i].new_);
        as_old += o;
        as_new += n;
        rep->compared++;
        if (!o && !n) {
            /* Neither image: show it against the CP k image. */
            rep->differing++;
            rep->invariant = 3;
            if (rep->ndiffs < MK_CHECK_MAX_DIFFS) {
                mk_block_diff *d = &rep->diffs[rep->ndiffs++];
                memset(d, 0, sizeof *d);
                d->block = ck->sn[i].block;
                d->offset = d->block * bs;
                d->src = ck->sn[i].new_;
                d->dst = h;
                d->prov = ck->sn[i].prov;
            }
        }
    }
    if (!rep->invariant) {
        if (as_new == ck->nsn)
            rep->image_cp = ck->cp;
        else if (as_old == ck->nsn)
            rep->image_cp = ck->cp - 1;
        else
            rep->invariant = 3; /* some blocks from each image: a mix */
    }
    if (rep->invariant == 3 && rep->ndiffs == 0) {
        /* A mix: list the blocks that moved on with those that did not. */
        for (size_t i = 0; i < ck->nsn && rep->ndiffs < MK_CHECK_MAX_DIFFS; i++) {
            if (h128_eq(ck->sn[i].old, ck->sn[i].new_))
                continue;
            int rc = mk_file_read_block(mirror, ck->ba, bs, ck->sn[i].block * bs);
            if (rc)
                return rc;
            if (!h128_eq(h128(ck->ba, bs), ck->sn[i].new_))
                continue;
            mk_block_diff *d = &rep->diffs[rep->ndiffs++];
            memset(d, 0, sizeof *d);
            d->block = ck->sn[i].block;
            d->offset = d->block * bs;
            d->src = ck->sn[i].old;
            d->dst = ck->sn[i].new_;
            d->prov = ck->sn[i].prov;
        }
        rep->differing = as_new < as_old ? as_new : as_old;
    }
    return rep->invariant ? MK_EVERIFY : 0;
}

/* ---- I2 --------------------------------------------------------------- */

void mk_checker_cp_taken(mk_checker *ck)
{
    mk_map_clear(&ck->acked);
    mk_map_clear(&ck->unsure);
}

int mk_checker_write(mk_checker *ck, uint64_t off, uint32_t len, int acked)
{
    uint32_t bs = ck->cfg.block_size;
    if (len == 0)
        return 0;
    for (uint64_t b = off / bs; b <= (off + len - 1) / bs; b++) {
        int rc = mk_map_put(acked ? &ck->acked : &ck->unsure, b, 1);
        if (rc)
            return rc;
    }
    return 0;
}

int mk_checker_promoted(mk_checker *ck, mk_file *src, mk_file *mirror, mk_check_report *rep)
{
    report_reset(rep, "promotion", ck->cp);
    for (size_t i = 0; i < ck->acked.cap; i++) {
        uint64_t v, b;
        if (!mk_map_slot(&ck->acked, i, &b, &v))
            continue;
        if (mk_map_get(&ck->unsure, b, &v))
            continue; /* a later write was never acknowledged: either is right */
        mk_check_report one;
        report_reset(&one, "promotion", ck->cp);
        int rc = compare_block(ck, src, mirror, b, &one);
        if (rc)
            return rc;
        rep->compared++;
        if (one.differing) {
            rep->differing++;
            rep->invariant = 2;
            if (rep->ndiffs < MK_CHECK_MAX_DIFFS)
                rep->diffs[rep->ndiffs++] = one.diffs[0];
        }
    }
    return rep->invariant ? MK_EVERIFY : 0;
}

/* ---- I4, I5 ----------------------------------------------------------- */

int mk_file_fingerprint(mk_file *f, XXH128_hash_t *out)
{
    enum { CH = 1 << 20 };
    uint64_t size, off = 0;
    uint8_t sz[8];
    int rc = mk_file_size(f, &size);
    if (rc)
        return rc;
    XXH3_state_t *st = XXH3_createState();
    uint8_t *buf = malloc(CH);
    if (!st || !buf) {
        XXH3_freeState(st);
        free(buf);
        return MK_ENOMEM;
    }
    XXH3_128bits_reset(st);
    while (rc == 0 && off < size) {
        size_t n = size - off < CH ? (size_t)(size - off) : CH;
        if ((rc = mk_file_read_block(f, buf, n, off)) == 0)
            XXH3_128bits_update(st, buf, n);
        off += n;
    }
    mk_put_le64(sz, size);
    XXH3_128bits_update(st, sz, sizeof sz);
    *out = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    return rc;
}

typedef struct bounded {
    mk_file base;
    mk_file *inner;
    uint64_t limit;
    uint64_t *violations;
} bounded;

static long b_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    return mk_file_pread(((bounded *)f)->inner, buf, n, off);
}

static int b_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    bounded *b = (bounded *)f;
    if (off > b->limit || n > b->limit - off) {
        ++*b->violations;
        return MK_ERANGE;
    }
    return mk_file_pwrite(b->inner, buf, n, off);
}

static int b_sync(mk_file *f) { return mk_file_sync(((bounded *)f)->inner); }

static int b_truncate(mk_file *f, uint64_t size)
{
    bounded *b = (bounded *)f;
    if (size > b->limit) {
        ++*b->violations;
        return MK_ERANGE;
    }
    return mk_file_truncate(b->inner, size);
}

static int b_size(mk_file *f, uint64_t *size) { return mk_file_size(((bounded *)f)->inner, size); }

static void b_close(mk_file *f)
{
    mk_file_close(((bounded *)f)->inner);
    free(f);
}

static const mk_file_ops bounded_ops = {b_pread, b_pwrite, b_sync, b_truncate, b_size, b_close};

int mk_file_bounded(mk_file *inner, uint64_t limit, uint64_t *violations, mk_file **out)
{
    bounded *b = calloc(1, sizeof *b);
    if (!b)
        return MK_ENOMEM;
    b->base.ops = &bounded_ops;
    memcpy(b->base.name, inner->name, sizeof b->base.name);
    b->inner = inner;
    b->limit = limit;
    b->violations = violations;
    *out = &b->base;
    return 0;
}

/* ---- reports ---------------------------------------------------------- */

void mk_checker_provenance(mk_checker *ck, uint64_t block, mk_prov *p)
{
    prov_get(ck, block, p);
}

void mk_prov_text(FILE *o, const mk_prov *p)
{
    switch (p->kind) {
    case MK_PROV_REF:
        fprintf(o, "last written in CP %llu by REF tid %llu slot %u", (unsigned long long)p->cp,
                (unsigned long long)p->tid, p->slot);
        break;
    case MK_PROV_REF_NAKED:
        fprintf(o, "last written in CP %llu by DATA (REF tid %llu slot %u was NAKed)",
                (unsigned long long)p->cp, (unsigned long long)p->tid, p->slot);
        break;
    case MK_PROV_DATA:
        fprintf(o, "last written in CP %llu by DATA", (unsigned long long)p->cp);
        break;
    default:
        fprintf(o, "never written by a CP of this run");
    }
}

static void hex(FILE *o, const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        fprintf(o, "%s%02x", i ? " " : "", p[i]);
}

static const char *const inames[] = {"", "I1 mirror equals the CP image",
                                     "I2 no acknowledged write lost",
                                     "I3 CP applied atomically",
                                     "I4 rejected input changed nothing",
                                     "I5 no write outside the volume"};

void mk_check_report_text(FILE *o, const mk_check_report *rep, uint32_t bs)
{
    if (!rep->invariant) {
        fprintf(o, "verify %s after CP %llu: %llu blocks compared, all equal",
                rep->what, (unsigned long long)rep->cp, (unsigned long long)rep->compared);
        if (!strcmp(rep->what, "atomicity"))
            fprintf(o, "; the mirror is the CP %llu image", (unsigned long long)rep->image_cp);
        fprintf(o, "\n");
        return;
    }
    fprintf(o, "VIOLATED %s (%s check after CP %llu): %llu of %llu blocks differ\n",
            inames[rep->invariant], rep->what, (unsigned long long)rep->cp,
            (unsigned long long)rep->differing, (unsigned long long)rep->compared);
    for (size_t i = 0; i < rep->ndiffs; i++) {
        const mk_block_diff *d = &rep->diffs[i];
        fprintf(o, "  block %llu (byte offset %llu): source %016llx%016llx mirror %016llx%016llx; ",
                (unsigned long long)d->block, (unsigned long long)d->offset,
                (unsigned long long)d->src.high64, (unsigned long long)d->src.low64,
                (unsigned long long)d->dst.high64, (unsigned long long)d->dst.low64);
        mk_prov_text(o, &d->prov);
        fprintf(o, "\n");
        if (d->nbytes) {
            fprintf(o, "    first difference at byte %u (offset %llu): source ", d->at,
                    (unsigned long long)(d->offset + d->at));
            hex(o, d->src_bytes, d->nbytes);
            fprintf(o, " | mirror ");
            hex(o, d->dst_bytes, d->nbytes);
            fprintf(o, "\n");
        }
    }
    if (rep->differing > rep->ndiffs)
        fprintf(o, "  ... and %llu more\n", (unsigned long long)(rep->differing - rep->ndiffs));
    (void)bs;
}

void mk_check_report_json(FILE *o, const mk_check_report *rep)
{
    static const char *const kinds[] = {"none", "REF", "DATA", "REF_NAKED"};
    fprintf(o, "{\"check\":\"%s\",\"cp\":%llu,\"held\":%s,\"invariant\":%s%d%s,"
               "\"compared\":%llu,\"differing\":%llu",
            rep->what, (unsigned long long)rep->cp, rep->invariant ? "false" : "true",
            rep->invariant ? "\"I" : "", rep->invariant, rep->invariant ? "\"" : "",
            (unsigned long long)rep->compared, (unsigned long long)rep->differing);
    if (!strcmp(rep->what, "atomicity") && !rep->invariant)
        fprintf(o, ",\"image_cp\":%llu", (unsigned long long)rep->image_cp);
    fprintf(o, ",\"diffs\":[");
    for (size_t i = 0; i < rep->ndiffs; i++) {
        const mk_block_diff *d = &rep->diffs[i];
        fprintf(o, "%s{\"block\":%llu,\"offset\":%llu,\"source\":\"%016llx%016llx\","
                   "\"mirror\":\"%016llx%016llx\",\"last_cp\":%llu,\"record\":\"%s\","
                   "\"tid\":%llu,\"slot\":%u,\"first_byte\":%u,\"source_bytes\":\"",
                i ? "," : "", (unsigned long long)d->block, (unsigned long long)d->offset,
                (unsigned long long)d->src.high64, (unsigned long long)d->src.low64,
                (unsigned long long)d->dst.high64, (unsigned long long)d->dst.low64,
                (unsigned long long)d->prov.cp, kinds[d->prov.kind & 3],
                (unsigned long long)d->prov.tid, d->prov.slot, d->at);
        for (uint32_t k = 0; k < d->nbytes; k++)
            fprintf(o, "%02x", d->src_bytes[k]);
        fprintf(o, "\",\"mirror_bytes\":\"");
        for (uint32_t k = 0; k < d->nbytes; k++)
            fprintf(o, "%02x", d->dst_bytes[k]);
        fprintf(o, "\"}");
    }
    fprintf(o, "]}\n");
}
