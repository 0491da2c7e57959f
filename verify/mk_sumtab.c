/*
 * mk_sumtab.c - per-block XXH3-128 checksum tables and block-by-block
 * comparison of images and tables (see mk_sumtab.h for the conventions
 * and the file format).
 */
#include "mk_sumtab.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "mk_cursor.h"
#include "mk_err.h"
#include "mk_vec.h"
#include "mk_wire.h"

/* Table entries read or written per batch: 64 KiB of entries keeps the
 * syscall count per table small while the memory stays fixed. */
#define ENTRY_BATCH 4096u

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

void mk_sumtab_sum_hex(const mk_sumtab_sum *s, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)s->hi,
             (unsigned long long)s->lo);
}

mk_sumtab_sum mk_sumtab_block_sum(const void *data, size_t len)
{
    XXH128_hash_t h = XXH3_128bits(data, len);
    mk_sumtab_sum s = {h.low64, h.high64};
    return s;
}

static int sum_eq(const mk_sumtab_sum *a, const mk_sumtab_sum *b)
{
    return a->lo == b->lo && a->hi == b->hi;
}

uint64_t mk_sumtab_nblocks(uint64_t bytes, uint32_t bs)
{
    return bytes / bs + (bytes % bs != 0);
}

void mk_sumtab_opts_default(mk_sumtab_opts *o)
{
    o->block_size = 4096;
    o->max_diffs = MK_SUMTAB_DEFAULT_MAX_DIFFS;
    o->max_ranges = MK_SUMTAB_DEFAULT_MAX_RANGES;
}

/* ---- inputs -------------------------------------------------------------- */

struct mk_sumtab_in {
    mk_file *f; /* borrowed, when reading through the storage seam */
    int fd;     /* -1 unless opened from a path */
    uint64_t size;
    /* Set while lseek SEEK_DATA/SEEK_HOLE work on fd.  A file system that
     * cannot answer them is simply read in full. */
    int sparse;
    /* The last extent query, cached because a dense file answers once for
     * the whole file and the callers ask for every chunk: for every offset
     * in [x_from, x_hole) the next data starts at max(offset, x_data) and
     * runs to x_hole. */
    int x_valid;
    uint64_t x_from, x_data, x_hole;
};

static int in_new(mk_sumtab_in **out)
{
    mk_sumtab_in *in = calloc(1, sizeof *in);
    if (!in)
        return MK_ENOMEM;
    in->fd = -1;
    *out = in;
    return 0;
}

int mk_sumtab_in_open(const char *path, mk_sumtab_in **out)
{
    struct stat st;
    /* O_NONBLOCK only so that a named pipe without a writer is refused
     * below instead of hanging here; reads of regular files and block
     * devices ignore it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? MK_EINVAL : mk_from_errno(errno);
    if (fstat(fd, &st) != 0) {
        int rc = mk_from_errno(errno);
        close(fd);
        return rc;
    }
    uint64_t size;
    if (S_ISREG(st.st_mode)) {
        size = (uint64_t)st.st_size;
    } else if (S_ISBLK(st.st_mode)) {
        /* A block device reports no size in st_size; its end does. */
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0) {
            int rc = mk_from_errno(errno);
            close(fd);
            return rc;
        }
        size = (uint64_t)end;
    } else {
        /* A pipe or a terminal has no size to compare and cannot be read
         * twice; a directory has no bytes at all. */
        close(fd);
        return MK_EINVAL;
    }
    mk_sumtab_in *in;
    int rc = in_new(&in);
    if (rc) {
        close(fd);
        return rc;
    }
    in->fd = fd;
    in->size = size;
    in->sparse = S_ISREG(st.st_mode);
    /* The kernel may then read ahead further; a failure costs only speed. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *out = in;
    return 0;
}

int mk_sumtab_in_file(mk_file *f, mk_sumtab_in **out)
{
    uint64_t size;
    int rc = mk_file_size(f, &size);
    if (rc)
        return rc;
    mk_sumtab_in *in;
    if ((rc = in_new(&in)))
        return rc;
    in->f = f;
    in->size = size;
    *out = in;
    return 0;
}

uint64_t mk_sumtab_in_size(const mk_sumtab_in *in) { return in->size; }

void mk_sumtab_in_close(mk_sumtab_in *in)
{
    if (!in)
        return;
    if (in->fd >= 0)
        close(in->fd);
    free(in);
}

/* Reads up to n bytes at off from the storage itself; returns the bytes
 * read (short only at the end of the file) or a negative mk_err. */
static long raw_read(mk_sumtab_in *in, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        long r;
        if (in->f) {
            r = mk_file_pread(in->f, (uint8_t *)buf + done, n - done, off + done);
        } else {
            ssize_t s = pread(in->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
            if (s < 0 && errno == EINTR)
                continue;
            /* Whatever errno a read of an open file fails with, the
             * storage failed us: that is an I/O error, not bad input. */
            r = s >= 0 ? (long)s : errno == ENOMEM ? MK_ENOMEM : MK_EIO;
        }
        if (r < 0)
            return r;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (long)done;
}

/* Reads exactly n bytes of a table; a short read means the file shrank
 * after it was validated, which is as bad as a truncated file. */
static int read_exact(mk_sumtab_in *in, void *buf, size_t n, uint64_t off)
{
    long r = raw_read(in, buf, n, off);
    if (r < 0)
        return (int)r;
    return (size_t)r == n ? 0 : MK_ETRUNC;
}

/*
 * Where the data next to off lies: *data is the first data byte at or
 * after off (the size if there is none), and the data runs to *hole.
 * Without hole information everything is data.
 */
static void next_data(mk_sumtab_in *in, uint64_t off, uint64_t *data, uint64_t *hole)
{
    if (off >= in->size) {
        *data = *hole = in->size;
        return;
    }
    if (!in->sparse) {
        *data = off;
        *hole = in->size;
        return;
    }
    if (in->x_valid && off >= in->x_from && off < in->x_hole) {
        *data = off > in->x_data ? off : in->x_data;
        *hole = in->x_hole;
        return;
    }
    uint64_t d, h;
    off_t r = lseek(in->fd, (off_t)off, SEEK_DATA);
    if (r < 0) {
        if (errno != ENXIO) {
            /* Not supported here: read everything from now on. */
            in->sparse = 0;
            *data = off;
            *hole = in->size;
            return;
        }
        d = h = in->size; /* nothing but hole up to the end */
    } else {
        d = min64((uint64_t)r, in->size);
        off_t e = lseek(in->fd, r, SEEK_HOLE);
        if (e < 0) {
            in->sparse = 0;
            *data = off;
            *hole = in->size;
            return;
        }
        h = min64((uint64_t)e, in->size);
        /* The file changed under us (data past a hole that is not there
         * any more): reading is always correct, so read to the end. */
        if (h <= d && d < in->size)
            h = in->size;
    }
    in->x_valid = 1;
    in->x_from = off;
    in->x_data = d;
    in->x_hole = h;
    *data = d;
    *hole = h;
}

/*
 * Fills buf with the n image bytes at off: holes and bytes past the end of
 * the image read as zeros without touching the storage (an image, like
 * mk_file_read_block, is never short).
 */
static int img_read(mk_sumtab_in *in, uint8_t *buf, size_t n, uint64_t off,
                    mk_sumtab_stats *st)
{
    while (n) {
        if (off >= in->size) {
            memset(buf, 0, n);
            return 0;
        }
        size_t lim = (size_t)min64(n, in->size - off);
        uint64_t d, h;
        next_data(in, off, &d, &h);
        size_t k;
        if (d > off) {
            k = (size_t)min64(d - off, lim);
            memset(buf, 0, k);
            st->bytes_skipped += k;
        } else {
            k = (size_t)min64(h - off, lim);
            long r = raw_read(in, buf, k, off);
            if (r < 0)
                return (int)r;
            /* The image shrank while we read it: what is gone reads as
             * zeros, as it would past the end. */
            if ((size_t)r < k)
                memset(buf + r, 0, k - (size_t)r);
            st->bytes_read += (uint64_t)r;
        }
        buf += k;
        off += k;
        n -= k;
    }
    return 0;
}

int mk_sumtab_in_is_table(mk_sumtab_in *in)
{
    uint8_t m[4];
    uint32_t magic;
    mk_rcur c;
    if (in->size < sizeof m)
        return 0;
    int rc = read_exact(in, m, sizeof m, 0);
    if (rc)
        return rc;
    mk_rcur_init(&c, m, sizeof m);
    mk_rcur_u32(&c, &magic);
    return magic == MK_SUMTAB_MAGIC;
}

/* ---- computing ------------------------------------------------------------ */

int mk_sumtab_compute(mk_sumtab_in *img, uint32_t bs, mk_sumtab_sink fn, void *ctx,
                      mk_sumtab_stats *st)
{
    mk_sumtab_stats dummy = {0, 0, 0};
    if (!st)
        st = &dummy;
    if (!mk_block_size_ok(bs))
        return MK_EBLOCKSIZE;
    const size_t per = MK_SUMTAB_CHUNK / bs;
    uint8_t *buf = malloc(MK_SUMTAB_CHUNK);
    mk_sumtab_sum *sums = malloc(per * sizeof *sums);
    int rc = 0;
    if (!buf || !sums) {
        rc = MK_ENOMEM;
        goto out;
    }
    /* Every block in a hole has this checksum; it is computed once. */
    memset(buf, 0, bs);
    const mk_sumtab_sum zero = mk_sumtab_block_sum(buf, bs);
    const uint64_t vol = img->size, nb = mk_sumtab_nblocks(vol, bs);
    uint64_t block = 0;
    while (block < nb) {
        uint64_t off = block * bs, d, h;
        next_data(img, off, &d, &h);
        size_t n;
        if (d >= off + bs || d >= vol) {
            /* A run of blocks wholly in a hole: checksums without reads. */
            uint64_t end = d >= vol ? nb : d / bs;
            n = (size_t)min64(per, end - block);
            for (size_t i = 0; i < n; i++)
                sums[i] = zero;
            st->bytes_skipped += min64((uint64_t)n * bs, vol - off);
        } else {
            /* Data: read up to the block holding the extent's end, so the
             * next step sees a hole that follows as a hole. */
            uint64_t end = min64(block + per, min64(nb, mk_sumtab_nblocks(h, bs)));
            n = (size_t)(end - block);
            if ((rc = img_read(img, buf, n * bs, off, st)))
                goto out;
            for (size_t i = 0; i < n; i++)
                sums[i] = mk_sumtab_block_sum(buf + i * bs, bs);
            st->blocks_hashed += n;
        }
        if ((rc = fn(ctx, block, sums, n)))
            goto out;
        block += n;
    }
out:
    free(buf);
    free(sums);
    return rc;
}

/* ---- writing -------------------------------------------------------------- */

int mk_sumtab_out_fd(void *ctx, const void *buf, size_t n)
{
    int fd = *(int *)ctx;
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return mk_from_errno(errno);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int mk_sumtab_hdr_encode(const mk_sumtab_hdr *h, uint8_t out[MK_SUMTAB_HDR_LEN])
{
    mk_wcur c;
    mk_wcur_init(&c, out, MK_SUMTAB_HDR_LEN);
    int rc = mk_wcur_u32(&c, MK_SUMTAB_MAGIC);
    if (!rc) rc = mk_wcur_u16(&c, MK_SUMTAB_VERSION);
    if (!rc) rc = mk_wcur_zero(&c, 6);
    if (!rc) rc = mk_wcur_u32(&c, h->block_size);
    if (!rc) rc = mk_wcur_u64(&c, h->volume_bytes);
    if (!rc) rc = mk_wcur_u64(&c, h->nblocks);
    return rc;
}

typedef struct write_ctx {
    mk_sumtab_out_fn out;
    void *octx;
    XXH3_state_t *hash; /* over every byte written, for the trailer */
    uint8_t buf[ENTRY_BATCH * MK_SUMTAB_ENTRY_LEN];
} write_ctx;

static int emit(write_ctx *w, const void *p, size_t n)
{
    XXH3_64bits_update(w->hash, p, n);
    return w->out(w->octx, p, n);
}

static int write_sink(void *ctx, uint64_t first, const mk_sumtab_sum *sums, size_t n)
{
    write_ctx *w = ctx;
    (void)first;
    while (n) {
        size_t k = n < ENTRY_BATCH ? n : ENTRY_BATCH;
        mk_wcur c;
        mk_wcur_init(&c, w->buf, sizeof w->buf);
        for (size_t i = 0; i < k; i++) {
            mk_wcur_u64(&c, sums[i].lo);
            mk_wcur_u64(&c, sums[i].hi);
        }
        int rc = emit(w, w->buf, c.pos);
        if (rc)
            return rc;
        sums += k;
        n -= k;
    }
    return 0;
}

int mk_sumtab_write(mk_sumtab_in *img, uint32_t bs, mk_sumtab_out_fn out, void *ctx,
                    mk_sumtab_stats *st)
{
    if (!mk_block_size_ok(bs))
        return MK_EBLOCKSIZE;
    write_ctx *w = malloc(sizeof *w);
    if (!w || !(w->hash = XXH3_createState())) {
        free(w);
        return MK_ENOMEM;
    }
    w->out = out;
    w->octx = ctx;
    XXH3_64bits_reset(w->hash);
    mk_sumtab_hdr h = {bs, img->size, mk_sumtab_nblocks(img->size, bs)};
    uint8_t hdr[MK_SUMTAB_HDR_LEN], trailer[MK_SUMTAB_TRAILER_LEN];
    int rc = mk_sumtab_hdr_encode(&h, hdr);
    if (!rc)
        rc = emit(w, hdr, sizeof hdr);
    if (!rc)
        rc = mk_sumtab_compute(img, bs, write_sink, w, st);
    if (!rc) {
        mk_wcur c;
        mk_wcur_init(&c, trailer, sizeof trailer);
        rc = mk_wcur_u64(&c, XXH3_64bits_digest(w->hash));
        if (!rc)
            rc = out(ctx, trailer, sizeof trailer);
    }
    XXH3_freeState(w->hash);
    free(w);
    return rc;
}

int mk_sumtab_write_path(const char *path, uint32_t bs, mk_sumtab_out_fn out, void *ctx,
                         mk_sumtab_stats *st)
{
    mk_sumtab_in *in = NULL;
    int rc = mk_sumtab_in_open(path, &in);
    if (rc)
        return rc;
    rc = mk_sumtab_write(in, bs, out, ctx, st);
    mk_sumtab_in_close(in);
    return rc;
}

/* ---- reading -------------------------------------------------------------- */

int mk_sumtab_hdr_decode(const uint8_t *buf, size_t len, mk_sumtab_hdr *h)
{
    mk_rcur c;
    uint32_t magic;
    uint16_t version;
    int rc;
    mk_rcur_init(&c, buf, len);
    if ((rc = mk_rcur_u32(&c, &magic)))
        return rc;
    if (magic != MK_SUMTAB_MAGIC)
        return MK_EMAGIC;
    if ((rc = mk_rcur_u16(&c, &version)))
        return rc;
    if (version != MK_SUMTAB_VERSION)
        return MK_EVERSION;
    if ((rc = mk_rcur_zero(&c, 6)) || (rc = mk_rcur_u32(&c, &h->block_size)))
        return rc;
    if (!mk_block_size_ok(h->block_size))
        return MK_EBLOCKSIZE;
    if ((rc = mk_rcur_u64(&c, &h->volume_bytes)) || (rc = mk_rcur_u64(&c, &h->nblocks)))
        return rc;
    /* nblocks is implied by the other two; a table that disagrees with
     * itself is refused rather than trusted either way. */
    if (h->nblocks != mk_sumtab_nblocks(h->volume_bytes, h->block_size))
        return MK_ELENGTH;
    return 0;
}

struct mk_sumtab_reader {
    mk_sumtab_in *in;
    mk_sumtab_hdr h;
    uint64_t next;       /* number of the next checksum to return */
    uint64_t bytes_read; /* entry bytes read since open */
    mk_rcur cur;         /* over the entries buffered in buf */
    uint8_t buf[ENTRY_BATCH * MK_SUMTAB_ENTRY_LEN];
};

/* Checks the trailer by hashing the file in chunks, so a table of any size
 * is validated in fixed memory before a single checksum is believed. */
static int check_trailer(mk_sumtab_in *in, mk_sumtab_stats *st)
{
    uint64_t body = in->size - MK_SUMTAB_TRAILER_LEN;
    uint8_t tb[MK_SUMTAB_TRAILER_LEN];
    uint8_t *buf = malloc(MK_SUMTAB_CHUNK);
    XXH3_state_t *hs = XXH3_createState();
    int rc = 0;
    if (!buf || !hs) {
        rc = MK_ENOMEM;
        goto out;
    }
    XXH3_64bits_reset(hs);
    for (uint64_t off = 0; off < body;) {
        size_t k = (size_t)min64(MK_SUMTAB_CHUNK, body - off);
        if ((rc = read_exact(in, buf, k, off)))
            goto out;
        XXH3_64bits_update(hs, buf, k);
        off += k;
    }
    if ((rc = read_exact(in, tb, sizeof tb, body)))
        goto out;
    if (st)
        st->bytes_read += in->size;
    mk_rcur c;
    uint64_t want;
    mk_rcur_init(&c, tb, sizeof tb);
    mk_rcur_u64(&c, &want);
    if (want != XXH3_64bits_digest(hs))
        rc = MK_ECHECKSUM;
out:
    XXH3_freeState(hs);
    free(buf);
    return rc;
}

int mk_sumtab_reader_open(mk_sumtab_in *in, mk_sumtab_reader **out, mk_sumtab_stats *st)
{
    uint8_t hb[MK_SUMTAB_HDR_LEN];
    size_t have = (size_t)min64(in->size, sizeof hb);
    mk_sumtab_hdr h;
    int rc = read_exact(in, hb, have, 0);
    if (rc)
        return rc;
    rc = mk_sumtab_hdr_decode(hb, have, &h);
    if (rc == MK_ETRUNC && have < 4) {
        /* Too short to hold a magic: truncated only if what is there is
         * the start of one. */
        uint8_t m[4];
        mk_wcur c;
        mk_wcur_init(&c, m, sizeof m);
        mk_wcur_u32(&c, MK_SUMTAB_MAGIC);
        if (memcmp(hb, m, have) != 0)
            rc = MK_EMAGIC;
    }
    if (rc)
        return rc;
    /* The claimed count is judged against the file's real length before
     * anything is allocated or read for it.  With blocks of at least 512
     * bytes nblocks is below 2^56, so the product cannot overflow; the
     * guard keeps that true should the block size limits ever change. */
    const uint64_t fixed = MK_SUMTAB_HDR_LEN + MK_SUMTAB_TRAILER_LEN;
    if (h.nblocks > (UINT64_MAX - fixed) / MK_SUMTAB_ENTRY_LEN)
        return MK_ELENGTH;
    uint64_t want = fixed + h.nblocks * MK_SUMTAB_ENTRY_LEN;
    if (in->size < want)
        return MK_ETRUNC;
    if (in->size > want)
        return MK_ELENGTH;
    if ((rc = check_trailer(in, st)))
        return rc;
    mk_sumtab_reader *r = calloc(1, sizeof *r);
    if (!r)
        return MK_ENOMEM;
    r->in = in;
    r->h = h;
    mk_rcur_init(&r->cur, r->buf, 0);
    *out = r;
    return 0;
}

const mk_sumtab_hdr *mk_sumtab_reader_hdr(const mk_sumtab_reader *r) { return &r->h; }

int mk_sumtab_reader_next(mk_sumtab_reader *r, mk_sumtab_sum *sum)
{
    if (r->next >= r->h.nblocks)
        return MK_ERANGE;
    if (mk_rcur_left(&r->cur) < MK_SUMTAB_ENTRY_LEN) {
        size_t k = (size_t)min64(ENTRY_BATCH, r->h.nblocks - r->next);
        size_t n = k * MK_SUMTAB_ENTRY_LEN;
        int rc = read_exact(r->in, r->buf, n,
                            MK_SUMTAB_HDR_LEN + r->next * MK_SUMTAB_ENTRY_LEN);
        if (rc)
            return rc;
        r->bytes_read += n;
        mk_rcur_init(&r->cur, r->buf, n);
    }
    mk_rcur_u64(&r->cur, &sum->lo);
    mk_rcur_u64(&r->cur, &sum->hi);
    r->next++;
    return 0;
}

void mk_sumtab_reader_free(mk_sumtab_reader *r) { free(r); }

/* ---- comparison ----------------------------------------------------------- */

static void result_init(mk_sumtab_result *res)
{
    memset(res, 0, sizeof *res);
    res->ranges_complete = 1;
}

void mk_sumtab_result_free(mk_sumtab_result *res)
{
    free(res->ranges);
    free(res->diffs);
    res->ranges = NULL;
    res->diffs = NULL;
    res->nranges = res->ndiffs = 0;
}

typedef struct cmp_state {
    mk_sumtab_result *res;
    const mk_sumtab_opts *o;
    size_t rcap, dcap;
} cmp_state;

/*
 * Records one differing block: it extends the last range or starts a new
 * one, and the first max_diffs blocks are described.  With the blocks'
 * bytes at hand (image vs image) their checksums are computed here, only
 * for the blocks described, and the first differing bytes are shown.
 */
static int note_diff(cmp_state *cs, uint64_t block, const uint8_t *a, const uint8_t *b,
                     const mk_sumtab_sum *sa, const mk_sumtab_sum *sb)
{
    mk_sumtab_result *res = cs->res;
    const uint32_t bs = res->block_size;
    res->differing++;
    if (res->nranges && res->ranges[res->nranges - 1].last + 1 == block) {
        res->ranges[res->nranges - 1].last = block;
    } else if (res->nranges < cs->o->max_ranges) {
        void *r = mk_vec_grow(res->ranges, &cs->rcap, res->nranges, sizeof *res->ranges, 16);
        if (!r)
            return MK_ENOMEM;
        res->ranges = r;
        res->ranges[res->nranges].first = res->ranges[res->nranges].last = block;
        res->nranges++;
    } else {
        res->ranges_complete = 0;
    }
    if (res->ndiffs >= cs->o->max_diffs)
        return 0;
    void *g = mk_vec_grow(res->diffs, &cs->dcap, res->ndiffs, sizeof *res->diffs, 16);
    if (!g)
        return MK_ENOMEM;
    res->diffs = g;
    mk_sumtab_diff *d = &res->diffs[res->ndiffs++];
    memset(d, 0, sizeof *d);
    d->block = block;
    d->offset = block * bs;
    if (a && b) {
        d->a = mk_sumtab_block_sum(a, bs);
        d->b = mk_sumtab_block_sum(b, bs);
        res->stats.blocks_hashed += 2;
        uint32_t first = 0;
        while (first < bs && a[first] == b[first])
            first++;
        /* The excerpt is centred on the first difference where the block
         * allows, so the bytes just before it show as context. */
        uint32_t start = first >= MK_SUMTAB_HEXDIFF_LEN / 2 ? first - MK_SUMTAB_HEXDIFF_LEN / 2 : 0;
        if (start > bs - MK_SUMTAB_HEXDIFF_LEN)
            start = bs - MK_SUMTAB_HEXDIFF_LEN;
        d->has_hexdiff = 1;
        d->hex.first = first;
        d->hex.start = start;
        memcpy(d->hex.a, a + start, MK_SUMTAB_HEXDIFF_LEN);
        memcpy(d->hex.b, b + start, MK_SUMTAB_HEXDIFF_LEN);
    } else {
        d->a = *sa;
        d->b = *sb;
    }
    return 0;
}

/* Sets up res for two volumes; MK_EVOLUME if their sizes differ. */
static int same_volume(mk_sumtab_result *res, uint32_t bs, uint64_t a_bytes,
                       uint64_t b_bytes)
{
    res->block_size = res->a_block_size = res->b_block_size = bs;
    res->a_bytes = a_bytes;
    res->b_bytes = b_bytes;
    if (a_bytes != b_bytes)
        return MK_EVOLUME;
    res->volume_bytes = a_bytes;
    res->nblocks = mk_sumtab_nblocks(a_bytes, bs);
    return 0;
}

static int verdict(const mk_sumtab_result *res) { return res->differing ? MK_EVERIFY : 0; }

/*
 * Image against image reads the two sides at once: a helper thread reads
 * side b's chunk while the caller reads side a's.  Reading (the kernel's
 * copy out of the page cache, or the disk) is nearly all the work - the
 * memcmp that follows costs a tenth of it - so two readers on two CPUs
 * take about half the time of one.  The handoff is one job at a time: the
 * caller posts a chunk, reads its own, and waits for the helper before it
 * compares, so the two never touch the same input, buffer or counters.
 * Where no thread can be started, the caller reads both sides itself.
 */
typedef struct side_reader {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum { SR_IDLE, SR_POSTED, SR_DONE, SR_QUIT } state;
    mk_sumtab_in *in;
    uint8_t *buf;
    size_t n;
    uint64_t off;
    int rc;
    mk_sumtab_stats st; /* the helper's own, merged by the caller */
    pthread_t th;
    int running;
} side_reader;

static void *side_reader_main(void *arg)
{
    side_reader *sr = arg;
    pthread_mutex_lock(&sr->mu);
    for (;;) {
        while (sr->state != SR_POSTED && sr->state != SR_QUIT)
            pthread_cond_wait(&sr->cv, &sr->mu);
        if (sr->state == SR_QUIT)
            break;
        pthread_mutex_unlock(&sr->mu);
        int rc = img_read(sr->in, sr->buf, sr->n, sr->off, &sr->st);
        pthread_mutex_lock(&sr->mu);
        sr->rc = rc;
        sr->state = SR_DONE;
        pthread_cond_broadcast(&sr->cv);
    }
    pthread_mutex_unlock(&sr->mu);
    return NULL;
}

/* Starts the helper; 0 if it runs, else the caller reads both sides. */
static int side_reader_start(side_reader *sr, mk_sumtab_in *in, uint8_t *buf)
{
    memset(sr, 0, sizeof *sr);
    sr->in = in;
    sr->buf = buf;
    if (pthread_mutex_init(&sr->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&sr->cv, NULL) != 0) {
        pthread_mutex_destroy(&sr->mu);
        return -1;
    }
    if (pthread_create(&sr->th, NULL, side_reader_main, sr) != 0) {
        pthread_cond_destroy(&sr->cv);
        pthread_mutex_destroy(&sr->mu);
        return -1;
    }
    sr->running = 1;
    return 0;
}

static void side_reader_post(side_reader *sr, size_t n, uint64_t off)
{
    pthread_mutex_lock(&sr->mu);
    sr->n = n;
    sr->off = off;
    sr->state = SR_POSTED;
    pthread_cond_broadcast(&sr->cv);
    pthread_mutex_unlock(&sr->mu);
}

static int side_reader_wait(side_reader *sr)
{
    pthread_mutex_lock(&sr->mu);
    while (sr->state != SR_DONE)
        pthread_cond_wait(&sr->cv, &sr->mu);
    sr->state = SR_IDLE;
    int rc = sr->rc;
    pthread_mutex_unlock(&sr->mu);
    return rc;
}

static void side_reader_stop(side_reader *sr, mk_sumtab_stats *st)
{
    if (!sr->running)
        return;
    pthread_mutex_lock(&sr->mu);
    sr->state = SR_QUIT;
    pthread_cond_broadcast(&sr->cv);
    pthread_mutex_unlock(&sr->mu);
    pthread_join(sr->th, NULL);
    pthread_cond_destroy(&sr->cv);
    pthread_mutex_destroy(&sr->mu);
    st->bytes_read += sr->st.bytes_read;
    st->bytes_skipped += sr->st.bytes_skipped;
    sr->running = 0;
}

int mk_sumtab_compare_images(mk_sumtab_in *a, mk_sumtab_in *b, const mk_sumtab_opts *o,
                             mk_sumtab_result *res)
{
    result_init(res);
    const uint32_t bs = o->block_size;
    if (!mk_block_size_ok(bs))
        return MK_EBLOCKSIZE;
    int rc = same_volume(res, bs, a->size, b->size);
    if (rc)
        return rc;
    cmp_state cs = {res, o, 0, 0};
    side_reader sr;
    sr.running = 0;
    uint8_t *ba = malloc(MK_SUMTAB_CHUNK), *bb = malloc(MK_SUMTAB_CHUNK);
    if (!ba || !bb) {
        rc = MK_ENOMEM;
        goto out;
    }
    const uint64_t vol = res->volume_bytes;
    mk_sumtab_stats *st = &res->stats;
    /* A volume of one chunk is read before a thread could start; and one
     * input given as both sides must not be read by two threads at once,
     * since an input caches its extent map. */
    if (vol > MK_SUMTAB_CHUNK && a != b)
        (void)side_reader_start(&sr, b, bb);
    uint64_t off = 0;
    while (off < vol) {
        uint64_t da, db, h;
        next_data(a, off, &da, &h);
        next_data(b, off, &db, &h);
        uint64_t both = min64(da, db);
        if (both >= off + bs || both >= vol) {
            /* Both are holes here: equal without a read.  Only whole
             * blocks are skipped, so chunks stay block-aligned. */
            uint64_t to = both >= vol ? vol : both - both % bs;
            st->bytes_skipped += 2 * (to - off);
            off = to;
            continue;
        }
        /* CHUNK is a multiple of every block size, so only the volume's
         * last chunk can end in a partial block; img_read pads it. */
        size_t n = (size_t)min64(MK_SUMTAB_CHUNK, vol - off);
        size_t nr = (size_t)mk_sumtab_nblocks(n, bs) * bs;
        int rb = 0;
        if (sr.running)
            side_reader_post(&sr, nr, off);
        int ra = img_read(a, ba, nr, off, st);
        if (sr.running)
            rb = side_reader_wait(&sr);
        else if (!ra)
            rb = img_read(b, bb, nr, off, st);
        if (ra || rb) {
            rc = ra ? ra : rb;
            res->err_side = ra ? 1 : 2;
            goto out;
        }
        if (memcmp(ba, bb, nr) != 0) {
            for (size_t i = 0; i < nr; i += bs)
                if (memcmp(ba + i, bb + i, bs) != 0 &&
                    (rc = note_diff(&cs, (off + i) / bs, ba + i, bb + i, NULL, NULL)))
                    goto out;
        }
        off += nr;
    }
    rc = verdict(res);
out:
    side_reader_stop(&sr, &res->stats);
    free(ba);
    free(bb);
    return rc;
}

typedef struct table_image_ctx {
    cmp_state cs;
    mk_sumtab_reader *t;
    int swap;
    int table_err; /* the error came from reading the table */
} table_image_ctx;

static int table_image_sink(void *ctx, uint64_t first, const mk_sumtab_sum *sums, size_t n)
{
    table_image_ctx *x = ctx;
    for (size_t i = 0; i < n; i++) {
        mk_sumtab_sum ts;
        int rc = mk_sumtab_reader_next(x->t, &ts);
        if (rc) {
            x->table_err = 1;
            return rc;
        }
        if (sum_eq(&ts, &sums[i]))
            continue;
        const mk_sumtab_sum *sa = x->swap ? &sums[i] : &ts;
        const mk_sumtab_sum *sb = x->swap ? &ts : &sums[i];
        if ((rc = note_diff(&x->cs, first + i, NULL, NULL, sa, sb)))
            return rc;
    }
    return 0;
}

int mk_sumtab_compare_table_image(mk_sumtab_reader *t, mk_sumtab_in *img, int swap,
                                  const mk_sumtab_opts *o, mk_sumtab_result *res)
{
    result_init(res);
    const mk_sumtab_hdr *h = &t->h;
    int rc = swap ? same_volume(res, h->block_size, img->size, h->volume_bytes)
                  : same_volume(res, h->block_size, h->volume_bytes, img->size);
    if (rc)
        return rc;
    table_image_ctx x = {{res, o, 0, 0}, t, swap, 0};
    uint64_t before = t->bytes_read;
    rc = mk_sumtab_compute(img, h->block_size, table_image_sink, &x, &res->stats);
    res->stats.bytes_read += t->bytes_read - before;
    if (rc && rc != MK_ENOMEM)
        res->err_side = (x.table_err != 0) != (swap != 0) ? 1 : 2;
    return rc ? rc : verdict(res);
}

int mk_sumtab_compare_tables(mk_sumtab_reader *a, mk_sumtab_reader *b,
                             const mk_sumtab_opts *o, mk_sumtab_result *res)
{
    result_init(res);
    res->a_block_size = a->h.block_size;
    res->b_block_size = b->h.block_size;
    res->a_bytes = a->h.volume_bytes;
    res->b_bytes = b->h.volume_bytes;
    /* Checksums of different block sizes say nothing about each other. */
    if (a->h.block_size != b->h.block_size)
        return MK_EVOLUME;
    int rc = same_volume(res, a->h.block_size, a->h.volume_bytes, b->h.volume_bytes);
    if (rc)
        return rc;
    cmp_state cs = {res, o, 0, 0};
    uint64_t ba = a->bytes_read, bb = b->bytes_read;
    for (uint64_t i = 0; i < res->nblocks; i++) {
        mk_sumtab_sum sa, sb;
        if ((rc = mk_sumtab_reader_next(a, &sa))) {
            res->err_side = 1;
            break;
        }
        if ((rc = mk_sumtab_reader_next(b, &sb))) {
            res->err_side = 2;
            break;
        }
        if (!sum_eq(&sa, &sb) && (rc = note_diff(&cs, i, NULL, NULL, &sa, &sb)))
            break;
    }
    res->stats.bytes_read += (a->bytes_read - ba) + (b->bytes_read - bb);
    return rc ? rc : verdict(res);
}
