/*
 * check_sumtab.c - per-block checksum tables and block-by-block comparison
 * (verify/mk_sumtab.h), the verifier that checks invariant I1 of SPEC.md
 * section 9 from outside the pair: a mirror equals its source image block
 * for block.
 *
 * test_s9_table_* pin the table (the checksum conventions, sparse reads,
 * the file format and every way a table file can be malformed);
 * test_s9_compare_* pin comparison (equal and differing images, ranges,
 * the detail limit, size mismatch, sparse against dense, read errors).
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "mk_cursor.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_sumtab.h"
#include "mk_test.h"

/* ---- helpers --------------------------------------------------------------- */

/* Deterministic non-zero bytes, different for every offset and seed. */
static void fill_pat(uint8_t *p, size_t n, uint64_t base, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(1 + (base + i + seed * 7u) % 251);
}

/* A memory image of `size` bytes of fill_pat(seed). */
static mk_file *mem_image(uint64_t size, unsigned seed)
{
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("test/img", &f), 0);
    uint8_t *buf = malloc(65536);
    ck_assert_ptr_nonnull(buf);
    for (uint64_t off = 0; off < size; off += 65536) {
        size_t n = size - off < 65536 ? (size_t)(size - off) : 65536;
        fill_pat(buf, n, off, seed);
        ck_assert_int_eq(mk_file_pwrite(f, buf, n, off), 0);
    }
    free(buf);
    if (size == 0)
        ck_assert_int_eq(mk_file_truncate(f, 0), 0);
    return f;
}

static void poke(mk_file *f, uint64_t off, uint8_t v)
{
    ck_assert_int_eq(mk_file_pwrite(f, &v, 1, off), 0);
}

/* An input over an mk_file; the file stays the caller's. */
static mk_sumtab_in *in_of(mk_file *f)
{
    mk_sumtab_in *in;
    ck_assert_int_eq(mk_sumtab_in_file(f, &in), 0);
    return in;
}

static mk_sumtab_opts opts(uint32_t bs, size_t max_diffs)
{
    mk_sumtab_opts o;
    mk_sumtab_opts_default(&o);
    o.block_size = bs;
    o.max_diffs = max_diffs;
    return o;
}

/* Compares two memory images with the given options. */
static int cmp_mem(mk_file *a, mk_file *b, const mk_sumtab_opts *o, mk_sumtab_result *r)
{
    mk_sumtab_in *ia = in_of(a), *ib = in_of(b);
    int rc = mk_sumtab_compare_images(ia, ib, o, r);
    mk_sumtab_in_close(ia);
    mk_sumtab_in_close(ib);
    return rc;
}

/* Collects computed checksums into an array (tests only: small images). */
typedef struct collect {
    mk_sumtab_sum *sums;
    uint64_t n, cap;
} collect;

static int collect_sink(void *ctx, uint64_t first, const mk_sumtab_sum *s, size_t n)
{
    collect *c = ctx;
    ck_assert_uint_eq(first, c->n); /* batches arrive in order, none skipped */
    ck_assert_uint_le(c->n + n, c->cap);
    memcpy(c->sums + c->n, s, n * sizeof *s);
    c->n += n;
    return 0;
}

static collect compute(mk_sumtab_in *in, uint32_t bs, mk_sumtab_stats *st)
{
    collect c = {NULL, 0, mk_sumtab_nblocks(mk_sumtab_in_size(in), bs)};
    c.sums = calloc(c.cap ? c.cap : 1, sizeof *c.sums);
    ck_assert_ptr_nonnull(c.sums);
    ck_assert_int_eq(mk_sumtab_compute(in, bs, collect_sink, &c, st), 0);
    ck_assert_uint_eq(c.n, c.cap);
    return c;
}

/* The table bytes written through mk_sumtab_out_fn into a memory file. */
typedef struct mem_out {
    mk_file *f;
    uint64_t off;
} mem_out;

static int mem_out_fn(void *ctx, const void *buf, size_t n)
{
    mem_out *m = ctx;
    int rc = mk_file_pwrite(m->f, buf, n, m->off);
    m->off += n;
    return rc;
}

/* Writes the table of img into a new memory file. */
static mk_file *table_of(mk_file *img, uint32_t bs)
{
    mem_out m = {NULL, 0};
    ck_assert_int_eq(mk_file_mem("test/table", &m.f), 0);
    mk_sumtab_in *in = in_of(img);
    ck_assert_int_eq(mk_sumtab_write(in, bs, mem_out_fn, &m, NULL), 0);
    mk_sumtab_in_close(in);
    return m.f;
}

/* Opens a reader on a table file; returns its error (0 and *r on success). */
static int open_table(mk_file *t, mk_sumtab_in **in, mk_sumtab_reader **r)
{
    *in = in_of(t);
    *r = NULL;
    int rc = mk_sumtab_reader_open(*in, r, NULL);
    if (rc) {
        mk_sumtab_in_close(*in);
        *in = NULL;
    }
    return rc;
}

/* Reads a whole (small) memory file. */
static uint8_t *slurp(mk_file *f, uint64_t *len)
{
    ck_assert_int_eq(mk_file_size(f, len), 0);
    uint8_t *b = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(mk_file_read_exact(f, b, *len, 0), 0);
    return b;
}

/* A memory file holding len bytes of buf. */
static mk_file *mem_bytes(const uint8_t *buf, uint64_t len)
{
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("test/bytes", &f), 0);
    if (len)
        ck_assert_int_eq(mk_file_pwrite(f, buf, len, 0), 0);
    return f;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes a table image's trailer after the test has edited it, so the
 * edit is judged by the field checks and not by the checksum. */
static void reseal(uint8_t *t, uint64_t len)
{
    mk_wcur c;
    mk_wcur_init(&c, t + len - 8, 8);
    ck_assert_int_eq(mk_wcur_u64(&c, XXH3_64bits(t, len - 8)), 0);
}

/* A directory for POSIX files; /tmp is where check_util puts its own. */
typedef struct tdir {
    char dir[64];
    char path[4][96];
} tdir;

static void tdir_open(tdir *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/mk_check_sumtab_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d->dir));
    /* A copy, so that no snprintf reads from the struct it writes to. */
    char base[sizeof d->dir];
    memcpy(base, d->dir, sizeof base);
    for (int i = 0; i < 4; i++)
        snprintf(d->path[i], sizeof d->path[i], "%s/f%d", base, i);
}

static void tdir_close(tdir *d)
{
    for (int i = 0; i < 4; i++)
        unlink(d->path[i]);
    ck_assert_int_eq(rmdir(d->dir), 0);
}

/* Creates a sparse file of `size` bytes with fill_pat data written only at
 * the given block numbers (4 KiB blocks). */
static void sparse_file(const char *path, uint64_t size, const uint64_t *blocks, size_t n)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    uint8_t b[4096];
    for (size_t i = 0; i < n; i++) {
        fill_pat(b, sizeof b, blocks[i] * 4096, 1);
        ck_assert_int_eq(pwrite(fd, b, sizeof b, (off_t)(blocks[i] * 4096)), (ssize_t)sizeof b);
    }
    ck_assert_int_eq(close(fd), 0);
}

/* Whether the file system under path reports holes (ext4, tmpfs, xfs do;
 * a few do not, and there only correctness, not the skipping, is tested). */
static int holes_reported(const char *path)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    off_t h = lseek(fd, 0, SEEK_HOLE);
    close(fd);
    return h >= 0 && h < st.st_size;
}

/* An mk_file wrapper that counts the bytes read through it and fails
 * every read that reaches fail_at with MK_EIO, as a bad disk would. */
typedef struct wrap_file {
    mk_file base;
    mk_file *inner;
    uint64_t bytes, fail_at;
} wrap_file;

static long wrap_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    wrap_file *w = (wrap_file *)f;
    if (off + n > w->fail_at)
        return MK_EIO;
    long r = mk_file_pread(w->inner, buf, n, off);
    if (r > 0)
        w->bytes += (uint64_t)r;
    return r;
}
static int wrap_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    return mk_file_pwrite(((wrap_file *)f)->inner, buf, n, off);
}
static int wrap_sync(mk_file *f) { return mk_file_sync(((wrap_file *)f)->inner); }
static int wrap_truncate(mk_file *f, uint64_t s) { return mk_file_truncate(((wrap_file *)f)->inner, s); }
static int wrap_size(mk_file *f, uint64_t *s) { return mk_file_size(((wrap_file *)f)->inner, s); }
static void wrap_close(mk_file *f)
{
    mk_file_close(((wrap_file *)f)->inner);
    free(f);
}
static const mk_file_ops wrap_ops = {wrap_pread, wrap_pwrite, wrap_sync,
                                     wrap_truncate, wrap_size, wrap_close};

static wrap_file *wrap(mk_file *inner, uint64_t fail_at)
{
    wrap_file *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->base.ops = &wrap_ops;
    snprintf(w->base.name, sizeof w->base.name, "test/wrap");
    w->inner = inner;
    w->fail_at = fail_at;
    return w;
}

/* ---- 9 tables: checksums ---------------------------------------------------------- */

/* The zero-block convention: a hole's checksum is the real XXH3-128 of
 * block_size zero bytes, printed high half first as xxhsum -H2 does. */
START_TEST(test_s9_table_zero_block_convention)
{
    static uint8_t zero[4096];
    XXH128_hash_t x = XXH3_128bits(zero, sizeof zero);
    mk_sumtab_sum s = mk_sumtab_block_sum(zero, sizeof zero);
    ck_assert_uint_eq(s.lo, x.low64);
    ck_assert_uint_eq(s.hi, x.high64);
    char hex[33];
    mk_sumtab_sum_hex(&s, hex);
    /* `head -c 4096 /dev/zero | xxhsum -H2` */
    ck_assert_str_eq(hex, "3ee8dc4f9e7ee49593d76fe148c689ba");

    /* A memory image that was never written is all holes and zeros. */
    mk_file *f;
    ck_assert_int_eq(mk_file_mem("test/zero", &f), 0);
    ck_assert_int_eq(mk_file_truncate(f, 3 * 4096), 0);
    mk_sumtab_in *in = in_of(f);
    collect c = compute(in, 4096, NULL);
    for (uint64_t i = 0; i < c.n; i++) {
        ck_assert_uint_eq(c.sums[i].lo, x.low64);
        ck_assert_uint_eq(c.sums[i].hi, x.high64);
    }
    free(c.sums);
    mk_sumtab_in_close(in);
    mk_file_close(f);
}
END_TEST

/* Every block's checksum is XXH3-128 of its bytes, for every block size;
 * a partial last block counts as a whole block padded with zeros. */
START_TEST(test_s9_table_compute_mem_blocks)
{
    static const uint32_t sizes[] = {512, 4096, 65536};
    uint32_t bs = sizes[_i];
    uint64_t vol = 3 * (uint64_t)MK_SUMTAB_CHUNK + 5 * bs + 100; /* several chunks, partial tail */
    mk_file *f = mem_image(vol, 3);
    mk_sumtab_in *in = in_of(f);
    mk_sumtab_stats st = {0, 0, 0};
    collect c = compute(in, bs, &st);
    ck_assert_uint_eq(c.n, vol / bs + 1);
    uint8_t *blk = malloc(bs);
    ck_assert_ptr_nonnull(blk);
    for (uint64_t i = 0; i < c.n; i++) {
        ck_assert_int_eq(mk_file_read_block(f, blk, bs, i * bs), 0); /* zero-padded */
        XXH128_hash_t x = XXH3_128bits(blk, bs);
        ck_assert_uint_eq(c.sums[i].lo, x.low64);
        ck_assert_uint_eq(c.sums[i].hi, x.high64);
    }
    /* An mk_file has no holes to skip: every byte is read, once. */
    ck_assert_uint_eq(st.bytes_read, vol);
    ck_assert_uint_eq(st.blocks_hashed, c.n);
    free(blk);
    free(c.sums);
    mk_sumtab_in_close(in);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s9_table_bad_block_size)
{
    mk_file *f = mem_image(8192, 1);
    mk_sumtab_in *in = in_of(f);
    collect c = {NULL, 0, 0};
    ck_assert_int_eq(mk_sumtab_compute(in, 1000, collect_sink, &c, NULL), MK_EBLOCKSIZE);
    ck_assert_int_eq(mk_sumtab_compute(in, 256, collect_sink, &c, NULL), MK_EBLOCKSIZE);
    ck_assert_int_eq(mk_sumtab_compute(in, 131072, collect_sink, &c, NULL), MK_EBLOCKSIZE);
    mem_out m = {f, 0};
    ck_assert_int_eq(mk_sumtab_write(in, 0, mem_out_fn, &m, NULL), MK_EBLOCKSIZE);
    mk_sumtab_opts o = opts(3000, 10);
    mk_sumtab_result r;
    ck_assert_int_eq(mk_sumtab_compare_images(in, in, &o, &r), MK_EBLOCKSIZE);
    mk_sumtab_result_free(&r);
    mk_sumtab_in_close(in);
    mk_file_close(f);
}
END_TEST

/* A POSIX sparse file: holes are never read (bytes_read counts only the
 * data blocks) and hole blocks take the zero-block checksum. */
START_TEST(test_s9_table_compute_sparse_posix_skips_holes)
{
    tdir d;
    tdir_open(&d);
    const uint64_t size = 64ull << 20; /* 64 MiB, 16384 blocks */
    const uint64_t data[] = {0, 7, 8, 4000, 16383};
    sparse_file(d.path[0], size, data, 5);
    mk_sumtab_in *in;
    ck_assert_int_eq(mk_sumtab_in_open(d.path[0], &in), 0);
    ck_assert_uint_eq(mk_sumtab_in_size(in), size);
    mk_sumtab_stats st = {0, 0, 0};
    collect c = compute(in, 4096, &st);
    static uint8_t zero[4096];
    mk_sumtab_sum z = mk_sumtab_block_sum(zero, 4096);
    uint8_t b[4096];
    for (uint64_t i = 0, k = 0; i < c.n; i++) {
        if (k < 5 && data[k] == i) {
            fill_pat(b, sizeof b, i * 4096, 1);
            mk_sumtab_sum s = mk_sumtab_block_sum(b, sizeof b);
            ck_assert_msg(c.sums[i].lo == s.lo && c.sums[i].hi == s.hi, "data block %llu",
                          (unsigned long long)i);
            k++;
        } else {
            ck_assert_msg(c.sums[i].lo == z.lo && c.sums[i].hi == z.hi, "hole block %llu",
                          (unsigned long long)i);
        }
    }
    if (holes_reported(d.path[0])) {
        ck_assert_uint_eq(st.bytes_read, 5 * 4096);
        ck_assert_uint_eq(st.bytes_read + st.bytes_skipped, size);
        ck_assert_uint_eq(st.blocks_hashed, 5);
    } else {
        ck_assert_uint_eq(st.bytes_read, size);
    }
    free(c.sums);
    mk_sumtab_in_close(in);
    tdir_close(&d);
}
END_TEST

/* A file of holes only, with a size that is not a multiple of the block
 * size: nothing is read and the partial last block is a zero block too. */
START_TEST(test_s9_table_compute_all_hole_partial_tail)
{
    tdir d;
    tdir_open(&d);
    sparse_file(d.path[0], 10 * 4096 + 17, NULL, 0);
    mk_sumtab_in *in;
    ck_assert_int_eq(mk_sumtab_in_open(d.path[0], &in), 0);
    mk_sumtab_stats st = {0, 0, 0};
    collect c = compute(in, 4096, &st);
    ck_assert_uint_eq(c.n, 11);
    static uint8_t zero[4096];
    mk_sumtab_sum z = mk_sumtab_block_sum(zero, 4096);
    for (uint64_t i = 0; i < c.n; i++)
        ck_assert(c.sums[i].lo == z.lo && c.sums[i].hi == z.hi);
    if (holes_reported(d.path[0]))
        ck_assert_uint_eq(st.bytes_read, 0);
    free(c.sums);
    mk_sumtab_in_close(in);
    tdir_close(&d);
}
END_TEST

/* ---- 9 tables: file format ---------------------------------------------------------- */

/* The header as documented: every field at its offset, little-endian. */
START_TEST(test_s9_table_header_layout)
{
    mk_file *img = mem_image(3 * 4096 + 1, 2);
    mk_file *t = table_of(img, 4096);
    uint64_t len;
    uint8_t *b = slurp(t, &len);
    uint8_t want[32];
    size_t n = mk_test_unhex("4d4b5354"         /* "MKST" */
                             "0100"             /* version 1 */
                             "000000000000"     /* reserved */
                             "00100000"         /* block size 4096 */
                             "0130000000000000" /* volume bytes 12289 */
                             "0400000000000000" /* 4 blocks */,
                             want, sizeof want);
    ck_assert_uint_eq(n, 32);
    ck_assert_uint_eq(len, 32 + 4 * 16 + 8);
    ck_assert_mem_eq(b, want, 32);
    /* Entries: low64 then high64 of each block's XXH3-128. */
    uint8_t blk[4096];
    ck_assert_int_eq(mk_file_read_block(img, blk, 4096, 4096), 0);
    XXH128_hash_t x = XXH3_128bits(blk, 4096);
    ck_assert_uint_eq(mk_get_le64(b + 32 + 16), x.low64);
    ck_assert_uint_eq(mk_get_le64(b + 32 + 24), x.high64);
    /* The trailer: XXH3-64 of everything before it. */
    ck_assert_uint_eq(mk_get_le64(b + len - 8), XXH3_64bits(b, len - 8));
    free(b);
    mk_file_close(t);
    mk_file_close(img);
}
END_TEST

/* Write then read: the reader returns exactly the computed checksums, and
 * then MK_ERANGE. */
START_TEST(test_s9_table_roundtrip_mem)
{
    static const uint64_t sizes[] = {0, 1, 4096, 5 * 4096 + 300, 3 << 20};
    uint64_t vol = sizes[_i];
    mk_file *img = mem_image(vol, 5);
    mk_file *t = table_of(img, 4096);
    mk_sumtab_in *ii = in_of(img), *ti;
    mk_sumtab_reader *r;
    ck_assert_int_eq(open_table(t, &ti, &r), 0);
    const mk_sumtab_hdr *h = mk_sumtab_reader_hdr(r);
    ck_assert_uint_eq(h->block_size, 4096);
    ck_assert_uint_eq(h->volume_bytes, vol);
    ck_assert_uint_eq(h->nblocks, mk_sumtab_nblocks(vol, 4096));
    collect c = compute(ii, 4096, NULL);
    for (uint64_t i = 0; i < c.n; i++) {
        mk_sumtab_sum s;
        ck_assert_int_eq(mk_sumtab_reader_next(r, &s), 0);
        ck_assert(s.lo == c.sums[i].lo && s.hi == c.sums[i].hi);
    }
    mk_sumtab_sum s;
    ck_assert_int_eq(mk_sumtab_reader_next(r, &s), MK_ERANGE);
    free(c.sums);
    mk_sumtab_reader_free(r);
    mk_sumtab_in_close(ti);
    mk_sumtab_in_close(ii);
    mk_file_close(t);
    mk_file_close(img);
}
END_TEST

/* Through real files: mk_sumtab_write_path to a descriptor, then
 * mk_sumtab_in_open; and a table of a sparse image equals the table of
 * the same image written densely. */
START_TEST(test_s9_table_roundtrip_posix_sparse_equals_dense)
{
    tdir d;
    tdir_open(&d);
    const uint64_t data[] = {1, 2, 200};
    sparse_file(d.path[0], 1 << 20, data, 3);
    /* The same bytes, every block written. */
    int fd = open(d.path[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    static uint8_t buf[1 << 20];
    memset(buf, 0, sizeof buf);
    for (int k = 0; k < 3; k++)
        fill_pat(buf + data[k] * 4096, 4096, data[k] * 4096, 1);
    ck_assert_int_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    close(fd);

    for (int k = 0; k < 2; k++) {
        fd = open(d.path[2 + k], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(mk_sumtab_write_path(d.path[k], 4096, mk_sumtab_out_fd, &fd, NULL), 0);
        close(fd);
    }
    mk_sumtab_in *ta, *tb;
    mk_sumtab_reader *ra, *rb;
    ck_assert_int_eq(mk_sumtab_in_open(d.path[2], &ta), 0);
    ck_assert_int_eq(mk_sumtab_in_open(d.path[3], &tb), 0);
    ck_assert_int_eq(mk_sumtab_in_is_table(ta), 1);
    ck_assert_int_eq(mk_sumtab_reader_open(ta, &ra, NULL), 0);
    ck_assert_int_eq(mk_sumtab_reader_open(tb, &rb, NULL), 0);
    mk_sumtab_opts o = opts(4096, 10);
    mk_sumtab_result r;
    ck_assert_int_eq(mk_sumtab_compare_tables(ra, rb, &o, &r), 0);
    ck_assert_uint_eq(r.nblocks, 256);
    mk_sumtab_result_free(&r);
    mk_sumtab_reader_free(ra);
    mk_sumtab_reader_free(rb);
    mk_sumtab_in_close(ta);
    mk_sumtab_in_close(tb);
    /* An image is not a table. */
    mk_sumtab_in *im;
    ck_assert_int_eq(mk_sumtab_in_open(d.path[1], &im), 0);
    ck_assert_int_eq(mk_sumtab_in_is_table(im), 0);
    mk_sumtab_in_close(im);
    tdir_close(&d);
}
END_TEST

/* A valid table of 3 blocks plus a partial one, as bytes, for the
 * malformed-table tests to damage. */
static uint8_t *good_table(uint64_t *len)
{
    mk_file *img = mem_image(3 * 4096 + 10, 4);
    mk_file *t = table_of(img, 4096);
    uint8_t *b = slurp(t, len);
    mk_file_close(t);
    mk_file_close(img);
    return b;
}

/* Opens the damaged table bytes and returns the reader's verdict. */
static int verdict_of(const uint8_t *b, uint64_t len)
{
    mk_file *f = mem_bytes(b, len);
    mk_sumtab_in *in;
    mk_sumtab_reader *r;
    int rc = open_table(f, &in, &r);
    mk_sumtab_reader_free(r);
    mk_sumtab_in_close(in);
    mk_file_close(f);
    return rc;
}

START_TEST(test_s9_table_malformed_magic)
{
    uint64_t len;
    uint8_t *b = good_table(&len);
    b[0] ^= 0x20; /* "mKST" */
    reseal(b, len);
    ck_assert_int_eq(verdict_of(b, len), MK_EMAGIC);
    /* Too short for a magic: not ours, unless it is the start of one. */
    ck_assert_int_eq(verdict_of((const uint8_t *)"XY", 2), MK_EMAGIC);
    ck_assert_int_eq(verdict_of((const uint8_t *)"MK", 2), MK_ETRUNC);
    ck_assert_int_eq(verdict_of(b, 0), MK_ETRUNC);
    free(b);
}
END_TEST

START_TEST(test_s9_table_malformed_version)
{
    uint64_t len;
    uint8_t *b = good_table(&len);
    b[4] = 2;
    reseal(b, len);
    ck_assert_int_eq(verdict_of(b, len), MK_EVERSION);
    b[4] = 0;
    reseal(b, len);
    ck_assert_int_eq(verdict_of(b, len), MK_EVERSION);
    free(b);
}
END_TEST

/* Each of the six reserved bytes is checked. */
START_TEST(test_s9_table_malformed_reserved)
{
    uint64_t len;
    uint8_t *b = good_table(&len);
    b[6 + _i] = 0x01;
    reseal(b, len);
    ck_assert_int_eq(verdict_of(b, len), MK_ERESERVED);
    free(b);
}
END_TEST

START_TEST(test_s9_table_malformed_block_size)
{
    static const uint32_t bad[] = {0, 256, 1000, 4097, 131072, 0xFFFFFFFFu};
    uint64_t len;
    uint8_t *b = good_table(&len);
    mk_wcur c;
    mk_wcur_init(&c, b + 12, 4);
    mk_wcur_u32(&c, bad[_i]);
    reseal(b, len);
    ck_assert_int_eq(verdict_of(b, len), MK_EBLOCKSIZE);
    free(b);
}
END_TEST

/* nblocks that disagrees with volume_bytes, a file cut short anywhere, a
 * file with bytes after the trailer, and a hostile count far beyond the
 * file: each named, and the hostile one refused before any allocation. */
START_TEST(test_s9_table_malformed_lengths)
{
    uint64_t len;
    uint8_t *b = good_table(&len);
    ck_assert_uint_eq(len, 32 + 4 * 16 + 8);
    uint8_t *w = malloc(len + 1);
    ck_assert_ptr_nonnull(w);

    /* nblocks one too many / one too few for volume_bytes. */
    for (int delta = -1; delta <= 1; delta += 2) {
        memcpy(w, b, len);
        mk_put_le64(w + 24, (uint64_t)(4 + delta));
        reseal(w, len);
        ck_assert_int_eq(verdict_of(w, len), MK_ELENGTH);
    }
    /* Every cut: inside the header, inside an entry, before the trailer. */
    for (uint64_t cut = 4; cut < len; cut++)
        ck_assert_msg(verdict_of(b, cut) == MK_ETRUNC, "cut at %llu: %s",
                      (unsigned long long)cut, mk_errname(verdict_of(b, cut)));
    /* One byte too many. */
    memcpy(w, b, len);
    w[len] = 0;
    ck_assert_int_eq(verdict_of(w, len + 1), MK_ELENGTH);
    /* A consistent header claiming 2^50 blocks in a 104-byte file. */
    memcpy(w, b, len);
    mk_put_le64(w + 16, 4096ull << 50);
    mk_put_le64(w + 24, 1ull << 50);
    reseal(w, len);
    ck_assert_int_eq(verdict_of(w, len), MK_ETRUNC);
    /* The largest claim a header can make: 2^55 blocks of 512 bytes. */
    memcpy(w, b, len);
    put_le32(w + 12, 512);
    mk_put_le64(w + 16, UINT64_MAX);
    mk_put_le64(w + 24, UINT64_MAX / 512 + 1);
    reseal(w, len);
    ck_assert_int_eq(verdict_of(w, len), MK_ETRUNC);
    free(w);
    free(b);
}
END_TEST

/* Any flipped bit in the entries or the trailer: MK_ECHECKSUM. */
START_TEST(test_s9_table_malformed_checksum)
{
    uint64_t len;
    uint8_t *b = good_table(&len);
    for (uint64_t i = 32; i < len; i++) {
        b[i] ^= 0x10;
        ck_assert_msg(verdict_of(b, len) == MK_ECHECKSUM, "flip at %llu",
                      (unsigned long long)i);
        b[i] ^= 0x10;
    }
    ck_assert_int_eq(verdict_of(b, len), 0);
    free(b);
}
END_TEST

/* ---- 9 comparison ----------------------------------------------------------------- */

START_TEST(test_s9_compare_equal_images)
{
    uint64_t vol = 2 * (uint64_t)MK_SUMTAB_CHUNK + 3 * 4096 + 5;
    mk_file *a = mem_image(vol, 1), *b = mem_image(vol, 1);
    mk_sumtab_opts o = opts(4096, 10);
    mk_sumtab_result r;
    ck_assert_int_eq(cmp_mem(a, b, &o, &r), 0);
    ck_assert_uint_eq(r.differing, 0);
    ck_assert_uint_eq(r.nranges, 0);
    ck_assert_uint_eq(r.ndiffs, 0);
    ck_assert_uint_eq(r.volume_bytes, vol);
    ck_assert_uint_eq(r.nblocks, vol / 4096 + 1);
    ck_assert_uint_eq(r.stats.bytes_read, 2 * vol);
    /* Equal chunks are compared with memcmp alone: nothing is hashed. */
    ck_assert_uint_eq(r.stats.blocks_hashed, 0);
    mk_sumtab_result_free(&r);
    /* One input as both sides is read by one thread (it is equal, too). */
    mk_sumtab_in *ia = in_of(a);
    ck_assert_int_eq(mk_sumtab_compare_images(ia, ia, &o, &r), 0);
    ck_assert_uint_eq(r.stats.bytes_read, 2 * vol);
    mk_sumtab_result_free(&r);
    mk_sumtab_in_close(ia);
    mk_file_close(a);
    mk_file_close(b);
}
END_TEST

/* One byte differs in the first block, then in the last (partial) block:
 * exactly that block is reported, with its offset, both checksums and the
 * bytes around the difference. */
START_TEST(test_s9_compare_one_byte_first_and_last_block)
{
    const uint32_t bs = 4096;
    const uint64_t vol = 3 * (uint64_t)MK_SUMTAB_CHUNK + 1000; /* last block partial */
    const uint64_t last = vol / bs;
    const uint64_t where[] = {0, 5, bs - 1, last * bs, vol - 1};
    for (int k = 0; k < 5; k++) {
        mk_file *a = mem_image(vol, 1), *b = mem_image(vol, 1);
        poke(b, where[k], 0);
        mk_sumtab_opts o = opts(bs, 10);
        mk_sumtab_result r;
        ck_assert_int_eq(cmp_mem(a, b, &o, &r), MK_EVERIFY);
        uint64_t blk = where[k] / bs;
        ck_assert_uint_eq(r.differing, 1);
        ck_assert_uint_eq(r.nranges, 1);
        ck_assert_uint_eq(r.ranges[0].first, blk);
        ck_assert_uint_eq(r.ranges[0].last, blk);
        ck_assert_uint_eq(r.ndiffs, 1);
        const mk_sumtab_diff *d = &r.diffs[0];
        ck_assert_uint_eq(d->block, blk);
        ck_assert_uint_eq(d->offset, blk * bs);
        /* The checksums are those of the padded blocks. */
        uint8_t pa[4096], pb[4096];
        ck_assert_int_eq(mk_file_read_block(a, pa, bs, blk * bs), 0);
        ck_assert_int_eq(mk_file_read_block(b, pb, bs, blk * bs), 0);
        mk_sumtab_sum sa = mk_sumtab_block_sum(pa, bs), sb = mk_sumtab_block_sum(pb, bs);
        ck_assert(d->a.lo == sa.lo && d->a.hi == sa.hi);
        ck_assert(d->b.lo == sb.lo && d->b.hi == sb.hi);
        ck_assert(!(d->a.lo == d->b.lo && d->a.hi == d->b.hi));
        /* The hex diff: first differing byte, and 16 bytes around it. */
        uint32_t first = (uint32_t)(where[k] % bs);
        ck_assert_int_eq(d->has_hexdiff, 1);
        ck_assert_uint_eq(d->hex.first, first);
        ck_assert_uint_le(d->hex.start, first);
        ck_assert_uint_lt(first, d->hex.start + MK_SUMTAB_HEXDIFF_LEN);
        ck_assert_uint_le(d->hex.start + MK_SUMTAB_HEXDIFF_LEN, bs);
        ck_assert_mem_eq(d->hex.a, pa + d->hex.start, MK_SUMTAB_HEXDIFF_LEN);
        ck_assert_mem_eq(d->hex.b, pb + d->hex.start, MK_SUMTAB_HEXDIFF_LEN);
        ck_assert_uint_eq(d->hex.b[first - d->hex.start], 0);
        mk_sumtab_result_free(&r);
        mk_file_close(a);
        mk_file_close(b);
    }
}
END_TEST

/* Differing blocks coalesce into [first,last] ranges, across chunk
 * boundaries too; max_ranges bounds the list and says it was cut. */
START_TEST(test_s9_compare_ranges_coalesce)
{
    const uint32_t bs = 512;
    const uint64_t per = MK_SUMTAB_CHUNK / bs; /* blocks per chunk */
    const uint64_t vol = 3 * (uint64_t)MK_SUMTAB_CHUNK;
    const uint64_t bad[] = {0, 1, 2, 5, 7, 8, per - 1, per, per + 1, 3 * per - 1};
    const size_t nbad = sizeof bad / sizeof bad[0];
    mk_file *a = mem_image(vol, 1), *b = mem_image(vol, 1);
    for (size_t i = 0; i < nbad; i++)
        poke(b, bad[i] * bs + 100, 0);
    mk_sumtab_opts o = opts(bs, 100);
    mk_sumtab_result r;
    ck_assert_int_eq(cmp_mem(a, b, &o, &r), MK_EVERIFY);
    const mk_sumtab_range want[] = {{0, 2}, {5, 5}, {7, 8}, {per - 1, per + 1},
                                    {3 * per - 1, 3 * per - 1}};
    ck_assert_uint_eq(r.differing, nbad);
    ck_assert_uint_eq(r.nranges, 5);
    ck_assert_int_eq(r.ranges_complete, 1);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_uint_eq(r.ranges[i].first, want[i].first);
        ck_assert_uint_eq(r.ranges[i].last, want[i].last);
    }
    ck_assert_uint_eq(r.ndiffs, nbad);
    for (size_t i = 0; i < nbad; i++)
        ck_assert_uint_eq(r.diffs[i].block, bad[i]);
    mk_sumtab_result_free(&r);

    o.max_ranges = 2;
    ck_assert_int_eq(cmp_mem(a, b, &o, &r), MK_EVERIFY);
    ck_assert_uint_eq(r.nranges, 2);
    ck_assert_int_eq(r.ranges_complete, 0);
    ck_assert_uint_eq(r.differing, nbad); /* still counted */
    ck_assert_uint_eq(r.ranges[1].last, 5);
    mk_sumtab_result_free(&r);
    mk_file_close(a);
    mk_file_close(b);
}
END_TEST

/* Only the first max_diffs differing blocks are described (and hashed);
 * all of them are counted and in the ranges. */
START_TEST(test_s9_compare_max_diffs)
{
    const size_t limits[] = {0, 1, 3, 1000};
    const uint64_t vol = 64 * 4096;
    mk_file *a = mem_image(vol, 1), *b = mem_image(vol, 1);
    for (uint64_t blk = 10; blk < 40; blk += 2)
        poke(b, blk * 4096 + 7, 0); /* 15 blocks */
    for (int k = 0; k < 4; k++) {
        mk_sumtab_opts o = opts(4096, limits[k]);
        mk_sumtab_result r;
        ck_assert_int_eq(cmp_mem(a, b, &o, &r), MK_EVERIFY);
        size_t want = limits[k] < 15 ? limits[k] : 15;
        ck_assert_uint_eq(r.differing, 15);
        ck_assert_uint_eq(r.nranges, 15);
        ck_assert_uint_eq(r.ndiffs, want);
        ck_assert_uint_eq(r.stats.blocks_hashed, 2 * want);
        for (size_t i = 0; i < r.ndiffs; i++)
            ck_assert_uint_eq(r.diffs[i].block, 10 + 2 * i);
        mk_sumtab_result_free(&r);
    }
    mk_file_close(a);
    mk_file_close(b);
}
END_TEST

/* Volumes of different sizes are a named error, never a crash nor a
 * comparison padded into equality - even when the extra bytes are zero. */
START_TEST(test_s9_compare_size_mismatch)
{
    mk_file *a = mem_image(8192, 1), *b = mem_image(8192, 1);
    ck_assert_int_eq(mk_file_truncate(b, 8192 + 1), 0);
    mk_sumtab_opts o = opts(4096, 10);
    mk_sumtab_result r;
    ck_assert_int_eq(cmp_mem(a, b, &o, &r), MK_EVOLUME);
    ck_assert_uint_eq(r.a_bytes, 8192);
    ck_assert_uint_eq(r.b_bytes, 8193);
    ck_assert_uint_eq(r.differing, 0);
    mk_sumtab_result_free(&r);

    /* Table against image, both ways round, and table against table. */
    mk_file *ta = table_of(a, 4096), *tb = table_of(b, 4096);
    mk_sumtab_in *ita, *itb, *ib = in_of(b), *ia = in_of(a);
    mk_sumtab_reader *ra, *rb;
    ck_assert_int_eq(open_table(ta, &ita, &ra), 0);
    ck_assert_int_eq(open_table(tb, &itb, &rb), 0);
    ck_assert_int_eq(mk_sumtab_compare_table_image(ra, ib, 0, &o, &r), MK_EVOLUME);
    ck_assert_uint_eq(r.a_bytes, 8192);
    ck_assert_uint_eq(r.b_bytes, 8193);
    mk_sumtab_result_free(&r);
    ck_assert_int_eq(mk_sumtab_compare_table_image(rb, ia, 1, &o, &r), MK_EVOLUME);
    ck_assert_uint_eq(r.a_bytes, 8192);
    ck_assert_uint_eq(r.b_bytes, 8193);
    mk_sumtab_result_free(&r);
    ck_assert_int_eq(mk_sumtab_compare_tables(ra, rb, &o, &r), MK_EVOLUME);
    mk_sumtab_result_free(&r);
    mk_sumtab_reader_free(ra);
    mk_sumtab_reader_free(rb);
    mk_sumtab_in_close(ita);
    mk_sumtab_in_close(itb);
    mk_sumtab_in_close(ia);
    mk_sumtab_in_close(ib);
    mk_file_close(ta);
    mk_file_close(tb);
    mk_file_close(a);
    mk_file_close(b);
}
END_TEST

/* Tables of different block sizes cannot be compared: MK_EVOLUME, with
 * both block sizes reported. */
START_TEST(test_s9_compare_tables_block_size_mismatch)
{
    mk_file *a = mem_image(65536, 1);
    mk_file *t4 = table_of(a, 4096), *t8 = table_of(a, 8192);
    mk_sumtab_in *i4, *i8;
    mk_sumtab_reader *r4, *r8;
    ck_assert_int_eq(open_table(t4, &i4, &r4), 0);
    ck_assert_int_eq(open_table(t8, &i8, &r8), 0);
    mk_sumtab_opts o = opts(4096, 10);
    mk_sumtab_result r;
    ck_assert_int_eq(mk_sumtab_compare_tables(r4, r8, &o, &r), MK_EVOLUME);
    ck_assert_uint_eq(r.a_block_size, 4096);
    ck_assert_uint_eq(r.b_block_size, 8192);
    mk_sumtab_result_free(&r);
    mk_sumtab_reader_free(r4);
    mk_sumtab_reader_free(r8);
    mk_sumtab_in_close(i4);
    mk_sumtab_in_close(i8);
    mk_file_close(t4);
    mk_file_close(t8);
    mk_file_close(a);
}
END_TEST

/* A table against an image and a table against a table find the same
 * blocks as image against image, with the sides in the order given. */
START_TEST(test_s9_compare_table_paths_agree)
{
    const uint64_t vol = 2 * (uint64_t)MK_SUMTAB_CHUNK + 4096 + 3;
    mk_file *a = mem_image(vol, 1), *b = mem_image(vol, 1);
    const uint64_t bad[] = {0, 1, 300, vol / 4096};
    for (int i = 0; i < 4; i++)
        poke(b, bad[i] * 4096 + 1, 0);
    mk_sumtab_opts o = opts(4096, 10);
    mk_sumtab_result ri, rt, rs, rtt;
    ck_assert_int_eq(cmp_mem(a, b, &o, &ri), MK_EVERIFY);

    mk_file *ta = table_of(a, 4096), *tb = table_of(b, 4096);
    mk_sumtab_in *ita, *itb, *ia = in_of(a), *ib = in_of(b);
    mk_sumtab_reader *ra, *rb;
    ck_assert_int_eq(open_table(ta, &ita, &ra), 0);
    ck_assert_int_eq(mk_sumtab_compare_table_image(ra, ib, 0, &o, &rt), MK_EVERIFY);
    mk_sumtab_reader_free(ra);
    mk_sumtab_in_close(ita);
    ck_assert_int_eq(open_table(ta, &ita, &ra), 0); /* a fresh reader restarts */
    ck_assert_int_eq(open_table(tb, &itb, &rb), 0);
    ck_assert_int_eq(mk_sumtab_compare_tables(ra, rb, &o, &rtt), MK_EVERIFY);
    mk_sumtab_reader_free(rb);
    mk_sumtab_in_close(itb);
    ck_assert_int_eq(open_table(tb, &itb, &rb), 0);
    ck_assert_int_eq(mk_sumtab_compare_table_image(rb, ia, 1, &o, &rs), MK_EVERIFY);

    const mk_sumtab_result *all[] = {&rt, &rs, &rtt};
    for (int k = 0; k < 3; k++) {
        const mk_sumtab_result *x = all[k];
        ck_assert_uint_eq(x->differing, ri.differing);
        ck_assert_uint_eq(x->nranges, ri.nranges);
        for (size_t i = 0; i < ri.nranges; i++) {
            ck_assert_uint_eq(x->ranges[i].first, ri.ranges[i].first);
            ck_assert_uint_eq(x->ranges[i].last, ri.ranges[i].last);
        }
        ck_assert_uint_eq(x->ndiffs, ri.ndiffs);
        for (size_t i = 0; i < ri.ndiffs; i++) {
            ck_assert_uint_eq(x->diffs[i].block, ri.diffs[i].block);
            ck_assert_uint_eq(x->diffs[i].offset, ri.diffs[i].offset);
            /* a is always the first-named side. */
            ck_assert(x->diffs[i].a.lo == ri.diffs[i].a.lo && x->diffs[i].a.hi == ri.diffs[i].a.hi);
            ck_assert(x->diffs[i].b.lo == ri.diffs[i].b.lo && x->diffs[i].b.hi == ri.diffs[i].b.hi);
            ck_assert_int_eq(x->diffs[i].has_hexdiff, 0); /* no bytes at hand */
        }
    }
    /* Table vs image reads the image once and the table's entries. */
    ck_assert_uint_eq(rt.stats.bytes_read, vol + mk_sumtab_nblocks(vol, 4096) * 16);
    mk_sumtab_result_free(&ri);
    mk_sumtab_result_free(&rt);
    mk_sumtab_result_free(&rs);
    mk_sumtab_result_free(&rtt);
    mk_sumtab_reader_free(ra);
    mk_sumtab_reader_free(rb);
    mk_sumtab_in_close(ita);
    mk_sumtab_in_close(itb);
    mk_sumtab_in_close(ia);
    mk_sumtab_in_close(ib);
    mk_file_close(ta);
    mk_file_close(tb);
    mk_file_close(a);
    mk_file_close(b);
}
END_TEST

/* A sparse image equals a dense image of the same bytes (zeros written
 * out), image against image and against each other's tables; two sparse
 * images share their holes and read only their data. */
START_TEST(test_s9_compare_sparse_vs_dense_zero)
{
    tdir d;
    tdir_open(&d);
    const uint64_t size = 16ull << 20;
    const uint64_t data[] = {3, 1000, 4095};
    sparse_file(d.path[0], size, data, 3);
    sparse_file(d.path[2], size, data, 3);
    int fd = open(d.path[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    uint8_t *buf = calloc(1, 1 << 20);
    ck_assert_ptr_nonnull(buf);
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        memset(buf, 0, 1 << 20);
        for (int k = 0; k < 3; k++)
            if (data[k] * 4096 >= off && data[k] * 4096 < off + (1 << 20))
                fill_pat(buf + (data[k] * 4096 - off), 4096, data[k] * 4096, 1);
        ck_assert_int_eq(write(fd, buf, 1 << 20), 1 << 20);
    }
    close(fd);
    free(buf);

    mk_sumtab_in *sp, *de, *sp2;
    ck_assert_int_eq(mk_sumtab_in_open(d.path[0], &sp), 0);
    ck_assert_int_eq(mk_sumtab_in_open(d.path[1], &de), 0);
    ck_assert_int_eq(mk_sumtab_in_open(d.path[2], &sp2), 0);
    mk_sumtab_opts o = opts(4096, 10);
    mk_sumtab_result r;
    ck_assert_int_eq(mk_sumtab_compare_images(sp, de, &o, &r), 0);
    mk_sumtab_result_free(&r);
    ck_assert_int_eq(mk_sumtab_compare_images(de, sp, &o, &r), 0);
    mk_sumtab_result_free(&r);
    ck_assert_int_eq(mk_sumtab_compare_images(sp, sp2, &o, &r), 0);
    if (holes_reported(d.path[0]))
        ck_assert_uint_le(r.stats.bytes_read, 2 * 3 * (uint64_t)MK_SUMTAB_CHUNK);
    mk_sumtab_result_free(&r);
    /* A difference inside a hole of one side is still found. */
    fd = open(d.path[2], O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "x", 1, 2000 * 4096 + 5), 1);
    close(fd);
    ck_assert_int_eq(mk_sumtab_compare_images(sp, sp2, &o, &r), MK_EVERIFY);
    ck_assert_uint_eq(r.differing, 1);
    ck_assert_uint_eq(r.ranges[0].first, 2000);
    ck_assert_uint_eq(r.diffs[0].hex.first, 5);
    mk_sumtab_result_free(&r);
    mk_sumtab_in_close(sp);
    mk_sumtab_in_close(de);
    mk_sumtab_in_close(sp2);
    tdir_close(&d);
}
END_TEST

/* A missing file or a directory cannot be opened as an input (MK_EINVAL);
 * a read that fails mid-way is MK_EIO, reported against the side that
 * failed, and whatever was found before it is not claimed as a verdict. */
START_TEST(test_s9_compare_unreadable)
{
    mk_sumtab_in *in;
    ck_assert_int_eq(mk_sumtab_in_open("/nonexistent/mk_check_sumtab/x.img", &in), MK_EINVAL);
    ck_assert_int_eq(mk_sumtab_in_open("/tmp", &in), MK_EINVAL);

    const uint64_t vol = 4 * (uint64_t)MK_SUMTAB_CHUNK;
    for (int side = 1; side <= 2; side++) {
        mk_file *a = mem_image(vol, 1), *b = mem_image(vol, 1);
        wrap_file *w = wrap(side == 1 ? a : b, 2 * (uint64_t)MK_SUMTAB_CHUNK + 1);
        mk_sumtab_in *ia = in_of(side == 1 ? &w->base : a);
        mk_sumtab_in *ib = in_of(side == 2 ? &w->base : b);
        mk_sumtab_opts o = opts(4096, 10);
        mk_sumtab_result r;
        ck_assert_int_eq(mk_sumtab_compare_images(ia, ib, &o, &r), MK_EIO);
        ck_assert_int_eq(r.err_side, side);
        /* Two whole chunks were read through the wrapper before it failed. */
        ck_assert_uint_eq(w->bytes, 2 * (uint64_t)MK_SUMTAB_CHUNK);
        mk_sumtab_result_free(&r);

        /* Table against the failing image: the image is the culprit. */
        mk_file *t = table_of(side == 1 ? b : a, 4096);
        mk_sumtab_in *ti;
        mk_sumtab_reader *tr;
        ck_assert_int_eq(open_table(t, &ti, &tr), 0);
        ck_assert_int_eq(mk_sumtab_compare_table_image(tr, side == 1 ? ia : ib, side == 1, &o, &r),
                         MK_EIO);
        ck_assert_int_eq(r.err_side, side);
        mk_sumtab_result_free(&r);
        mk_sumtab_reader_free(tr);
        mk_sumtab_in_close(ti);
        mk_file_close(t);

        mk_sumtab_in_close(ia);
        mk_sumtab_in_close(ib);
        mk_file_close(&w->base); /* closes the wrapped file too */
        mk_file_close(side == 1 ? b : a);
    }
}
END_TEST

/* A table that cannot be read past its validation is the table's fault:
 * its read error names the table side. */
START_TEST(test_s9_compare_table_read_error)
{
    const uint64_t vol = 2 * 4096 * (uint64_t)4096; /* 8192 entries: two batches */
    mk_file *a = mem_image(vol, 1);
    mk_file *t = table_of(a, 4096);
    uint64_t tlen;
    ck_assert_int_eq(mk_file_size(t, &tlen), 0);
    wrap_file *w = wrap(t, UINT64_MAX);
    mk_sumtab_in *ti = in_of(&w->base), *ia = in_of(a);
    mk_sumtab_reader *tr;
    ck_assert_int_eq(mk_sumtab_reader_open(ti, &tr, NULL), 0);
    w->fail_at = 32 + 4096 * 16 + 1; /* the second batch of entries */
    mk_sumtab_opts o = opts(4096, 10);
    mk_sumtab_result r;
    ck_assert_int_eq(mk_sumtab_compare_table_image(tr, ia, 0, &o, &r), MK_EIO);
    ck_assert_int_eq(r.err_side, 1);
    mk_sumtab_result_free(&r);
    mk_sumtab_reader_free(tr);
    mk_sumtab_in_close(ti);
    mk_sumtab_in_close(ia);
    mk_file_close(&w->base);
    mk_file_close(a);
}
END_TEST

static Suite *sumtab_suite(void)
{
    Suite *s = suite_create("sumtab");
    TCase *tt = tcase_create("table");
    tcase_set_timeout(tt, 120);
    tcase_add_test(tt, test_s9_table_zero_block_convention);
    tcase_add_loop_test(tt, test_s9_table_compute_mem_blocks, 0, 3);
    tcase_add_test(tt, test_s9_table_bad_block_size);
    tcase_add_test(tt, test_s9_table_compute_sparse_posix_skips_holes);
    tcase_add_test(tt, test_s9_table_compute_all_hole_partial_tail);
    tcase_add_test(tt, test_s9_table_header_layout);
    tcase_add_loop_test(tt, test_s9_table_roundtrip_mem, 0, 5);
    tcase_add_test(tt, test_s9_table_roundtrip_posix_sparse_equals_dense);
    tcase_add_test(tt, test_s9_table_malformed_magic);
    tcase_add_test(tt, test_s9_table_malformed_version);
    tcase_add_loop_test(tt, test_s9_table_malformed_reserved, 0, 6);
    tcase_add_loop_test(tt, test_s9_table_malformed_block_size, 0, 6);
    tcase_add_test(tt, test_s9_table_malformed_lengths);
    tcase_add_test(tt, test_s9_table_malformed_checksum);
    suite_add_tcase(s, tt);

    TCase *tc = tcase_create("compare");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_s9_compare_equal_images);
    tcase_add_test(tc, test_s9_compare_one_byte_first_and_last_block);
    tcase_add_test(tc, test_s9_compare_ranges_coalesce);
    tcase_add_test(tc, test_s9_compare_max_diffs);
    tcase_add_test(tc, test_s9_compare_size_mismatch);
    tcase_add_test(tc, test_s9_compare_tables_block_size_mismatch);
    tcase_add_test(tc, test_s9_compare_table_paths_agree);
    tcase_add_test(tc, test_s9_compare_sparse_vs_dense_zero);
    tcase_add_test(tc, test_s9_compare_unreadable);
    tcase_add_test(tc, test_s9_compare_table_read_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mk_test_run(sumtab_suite()); }
