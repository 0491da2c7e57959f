/*
 * fuzz_table - the checksum-table reader of verify/mk_sumtab.h ("MKST"
 * tables, verify/FORMAT.md) fed any bytes as a table file.
 *
 * The input is the table file (at most 1 MiB; longer inputs are skipped).
 * One convenience, like MK_FUZZ_ANY_CHECKSUM for frames: when the last 8
 * bytes of an input of at least 40 bytes are zero, the harness writes the
 * real trailer (XXH3-64 of every byte before it) there first, so that
 * mutations reach the checks behind the trailer; a wrong non-zero trailer
 * still tests MK_ECHECKSUM.  Everything below compares against the file as
 * written, after that substitution.
 *
 * Oracles (abort() on breach), beyond no crash, leak or sanitizer report:
 *
 *   - mk_sumtab_reader_open gives exactly the result of a model of
 *     FORMAT.md: the fields in the order of its table, each checked once
 *     its bytes are there, MK_ETRUNC when the file ends before the field to
 *     check (a file shorter than the magic is MK_ETRUNC only if its bytes
 *     are a prefix of "MKST", else MK_EMAGIC), then the length against
 *     nblocks (MK_ETRUNC short, MK_ELENGTH long), then the trailer
 *     (MK_ECHECKSUM); mk_sumtab_in_is_table agrees on the magic;
 *   - an accepted table's header is the file's, its reader returns the
 *     file's checksums in order and MK_ERANGE after the last, and it
 *     re-serialises to the same bytes: FORMAT.md leaves no freedom
 *     (reserved bytes zero, nblocks implied by volume_bytes, exact length),
 *     so header, entries and trailer written again must equal the input;
 *   - for a volume of at most 256 KiB, against an image the harness builds
 *     from the table (block i zero where the table has the zero-block
 *     checksum, else filled with the byte (151 i + 89) | 1, the last block
 *     cut to volume_bytes; the corpus tables are tables of such images, so
 *     they compare equal and their mutants differ in known blocks):
 *     mk_sumtab_write of the image gives the bytes the format prescribes;
 *     comparing the table with the image (either side first) and with the
 *     image's table reports exactly the blocks whose checksums differ,
 *     with their ranges, details and the caps of mk_sumtab_opts; an image
 *     one byte longer is MK_EVOLUME.
 *
 * Memory stays bounded whatever nblocks the header claims: the reader
 * judges it against the file's length before allocating (a breach would
 * show as an allocation failure or an ASan report), and the inputs are
 * capped at 1 MiB.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_cursor.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_sumtab.h"
#include "mk_wire.h"

#define MAX_INPUT ((size_t)1 << 20)
#define IMAGE_MAX ((uint64_t)256 << 10)
#define MAX_DIFFS 3
#define MAX_RANGES 4

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_table: oracle failed at line %d: %s\n", __LINE__, \
                    #cond);                                                          \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* Reused across runs: the input as written, the image, the table
 * mk_sumtab_write makes of it, the image's expected checksums. */
static uint8_t *g_in, *g_img, *g_out, *g_blk;
static size_t g_outlen;
static mk_sumtab_sum *g_sums;
/* MK_FUZZ_TRACE set: one line per input on stderr saying what the reader
 * and the comparisons did (for triage and for checking a corpus). */
static int g_trace;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_in = malloc(MAX_INPUT);
    g_img = malloc(IMAGE_MAX + 1);
    g_out = malloc(MAX_INPUT);
    g_blk = malloc(MK_MAX_BLOCK);
    g_sums = malloc((IMAGE_MAX / MK_MIN_BLOCK + 1) * sizeof *g_sums);
    if (!g_in || !g_img || !g_out || !g_blk || !g_sums)
        abort();
    g_trace = getenv("MK_FUZZ_TRACE") != NULL;
    return 0;
}

/* ---- the model of FORMAT.md --------------------------------------------- */

static int model(const uint8_t *b, size_t n, mk_sumtab_hdr *h)
{
    static const uint8_t magic[4] = {'M', 'K', 'S', 'T'};
    if (n < 4)
        return memcmp(b, magic, n) == 0 ? MK_ETRUNC : MK_EMAGIC;
    if (memcmp(b, magic, 4) != 0)
        return MK_EMAGIC;
    if (n < 6)
        return MK_ETRUNC;
    if (b[4] != 1 || b[5] != 0)
        return MK_EVERSION;
    if (n < 12)
        return MK_ETRUNC;
    for (int i = 6; i < 12; i++)
        if (b[i])
            return MK_ERESERVED;
    if (n < 16)
        return MK_ETRUNC;
    h->block_size = (uint32_t)b[12] | (uint32_t)b[13] << 8 | (uint32_t)b[14] << 16 |
                    (uint32_t)b[15] << 24;
    if (h->block_size < 512 || h->block_size > 65536 || (h->block_size & (h->block_size - 1)))
        return MK_EBLOCKSIZE;
    if (n < 32)
        return MK_ETRUNC;
    h->volume_bytes = mk_get_le64(b + 16);
    h->nblocks = mk_get_le64(b + 24);
    uint64_t want_n = h->volume_bytes / h->block_size + (h->volume_bytes % h->block_size != 0);
    if (h->nblocks != want_n)
        return MK_ELENGTH;
    /* nblocks < 2^56 here, so the length cannot overflow. */
    uint64_t want = 40 + 16 * h->nblocks;
    if (n < want)
        return MK_ETRUNC;
    if (n > want)
        return MK_ELENGTH;
    if (mk_get_le64(b + n - 8) != XXH3_64bits(b, n - 8))
        return MK_ECHECKSUM;
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static mk_sumtab_sum entry(uint64_t i)
{
    mk_sumtab_sum s = {mk_get_le64(g_in + 32 + 16 * i), mk_get_le64(g_in + 32 + 16 * i + 8)};
    return s;
}

static int sum_eq(mk_sumtab_sum a, mk_sumtab_sum b) { return a.lo == b.lo && a.hi == b.hi; }

static mk_sumtab_reader *open_table(mk_file *f, mk_sumtab_in **in)
{
    mk_sumtab_reader *r = NULL;
    CHECK(mk_sumtab_in_file(f, in) == 0);
    CHECK(mk_sumtab_reader_open(*in, &r, NULL) == 0);
    return r;
}

static int out_mem(void *ctx, const void *buf, size_t n)
{
    (void)ctx;
    CHECK(g_outlen + n <= MAX_INPUT);
    memcpy(g_out + g_outlen, buf, n);
    g_outlen += n;
    return 0;
}

static mk_file *mem_with(const void *buf, size_t n)
{
    mk_file *f;
    CHECK(mk_file_mem("fuzz/table", &f) == 0);
    if (n)
        CHECK(mk_file_pwrite(f, buf, n, 0) == 0);
    return f;
}

/* The result of comparing the table's entries with the image's checksums
 * (g_sums): exactly the blocks where they differ, the first MAX_RANGES
 * maximal runs of them as ranges, the first MAX_DIFFS described. */
static void check_result(int rc, const mk_sumtab_result *res, const mk_sumtab_hdr *h,
                         int table_is_a)
{
    uint64_t differing = 0, runs = 0, ndiffs = 0;
    mk_sumtab_range want[MAX_RANGES];
    int prev = 0; /* block i - 1 differs */
    for (uint64_t i = 0; i < h->nblocks; i++) {
        mk_sumtab_sum t = entry(i), m = g_sums[i];
        int differs = !sum_eq(t, m);
        if (differs) {
            if (!prev) {
                if (runs < MAX_RANGES)
                    want[runs].first = i;
                runs++;
            }
            if (runs <= MAX_RANGES)
                want[runs - 1].last = i;
            if (ndiffs < MAX_DIFFS) {
                CHECK(ndiffs < res->ndiffs);
                const mk_sumtab_diff *d = &res->diffs[ndiffs];
                CHECK(d->block == i && d->offset == i * h->block_size && !d->has_hexdiff);
                CHECK(sum_eq(d->a, table_is_a ? t : m) && sum_eq(d->b, table_is_a ? m : t));
                ndiffs++;
            }
            differing++;
        }
        prev = differs;
    }
    uint64_t kept = runs < MAX_RANGES ? runs : MAX_RANGES;
    if (g_trace)
        fprintf(stderr, "fuzz_table:   compared: %s, %llu blocks differ in %llu ranges\n",
                rc ? mk_errname(rc) : "equal", (unsigned long long)differing,
                (unsigned long long)runs);
    CHECK(rc == (differing ? MK_EVERIFY : 0));
    CHECK(res->differing == differing && res->ndiffs == ndiffs);
    CHECK(res->nranges == kept && res->ranges_complete == (runs <= MAX_RANGES));
    for (uint64_t k = 0; k < kept; k++)
        CHECK(res->ranges[k].first == want[k].first && res->ranges[k].last == want[k].last);
    CHECK(res->block_size == h->block_size && res->volume_bytes == h->volume_bytes &&
          res->nblocks == h->nblocks);
}

/* ---- against an image ------------------------------------------------------ */

static void against_image(mk_file *tf, const mk_sumtab_hdr *h, size_t size)
{
    const uint32_t bs = h->block_size;
    const uint64_t vb = h->volume_bytes;
    memset(g_blk, 0, bs);
    const mk_sumtab_sum zero = mk_sumtab_block_sum(g_blk, bs);

    /* The image the table could describe, and its checksums. */
    for (uint64_t i = 0; i < h->nblocks; i++) {
        uint64_t off = i * bs;
        size_t len = vb - off < bs ? (size_t)(vb - off) : bs;
        if (sum_eq(entry(i), zero)) {
            memset(g_img + off, 0, len);
            g_sums[i] = zero;
        } else {
            memset(g_img + off, (int)(((i * 151 + 89) & 0xff) | 1), len);
            memset(g_blk, 0, bs);
            memcpy(g_blk, g_img + off, len);
            g_sums[i] = mk_sumtab_block_sum(g_blk, bs);
        }
    }
    mk_file *imf = mem_with(g_img, (size_t)vb);
    mk_sumtab_in *img, *tin, *win;
    CHECK(mk_sumtab_in_file(imf, &img) == 0);
    CHECK(mk_sumtab_in_is_table(img) == (vb >= 4 && memcmp(g_img, "MKST", 4) == 0));

    /* mk_sumtab_write: exactly the table FORMAT.md prescribes. */
    g_outlen = 0;
    CHECK(mk_sumtab_write(img, bs, out_mem, NULL, NULL) == 0);
    CHECK(g_outlen == 40 + 16 * h->nblocks);
    CHECK(memcmp(g_out, g_in, 32) == 0);
    for (uint64_t i = 0; i < h->nblocks; i++)
        CHECK(mk_get_le64(g_out + 32 + 16 * i) == g_sums[i].lo &&
              mk_get_le64(g_out + 40 + 16 * i) == g_sums[i].hi);
    CHECK(mk_get_le64(g_out + g_outlen - 8) == XXH3_64bits(g_out, g_outlen - 8));

    mk_sumtab_opts o;
    mk_sumtab_opts_default(&o);
    o.max_diffs = MAX_DIFFS;
    o.max_ranges = MAX_RANGES;
    mk_sumtab_result res;

    /* The table against the image, the table first on even-length inputs. */
    int swap = size % 2;
    mk_sumtab_reader *t = open_table(tf, &tin);
    int rc = mk_sumtab_compare_table_image(t, img, swap, &o, &res);
    check_result(rc, &res, h, !swap);
    mk_sumtab_result_free(&res);
    mk_sumtab_reader_free(t);
    mk_sumtab_in_close(tin);

    /* The table against the image's table. */
    mk_file *wf = mem_with(g_out, g_outlen);
    mk_sumtab_reader *w = open_table(wf, &win);
    t = open_table(tf, &tin);
    rc = swap ? mk_sumtab_compare_tables(w, t, &o, &res) : mk_sumtab_compare_tables(t, w, &o, &res);
    check_result(rc, &res, h, !swap);
    mk_sumtab_result_free(&res);
    mk_sumtab_reader_free(t);
    mk_sumtab_in_close(tin);
    mk_sumtab_reader_free(w);
    mk_sumtab_in_close(win);
    mk_file_close(wf);

    /* An image of another size is another volume. */
    mk_sumtab_in_close(img);
    CHECK(mk_file_truncate(imf, vb + 1) == 0);
    CHECK(mk_sumtab_in_file(imf, &img) == 0);
    t = open_table(tf, &tin);
    rc = mk_sumtab_compare_table_image(t, img, 0, &o, &res);
    CHECK(rc == MK_EVOLUME && res.differing == 0 && res.a_bytes == vb && res.b_bytes == vb + 1);
    mk_sumtab_result_free(&res);
    mk_sumtab_reader_free(t);
    mk_sumtab_in_close(tin);
    mk_sumtab_in_close(img);
    mk_file_close(imf);
}

/* ---- the harness ------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    if (!g_in)
        LLVMFuzzerInitialize(NULL, NULL);
    memcpy(g_in, data, size);
    if (size >= 40 && mk_get_le64(g_in + size - 8) == 0)
        mk_put_le64(g_in + size - 8, XXH3_64bits(g_in, size - 8));

    mk_sumtab_hdr mh = {0, 0, 0};
    int want = model(g_in, size, &mh);
    mk_file *tf = mem_with(g_in, size);
    mk_sumtab_in *in;
    mk_sumtab_reader *r = NULL;
    mk_sumtab_stats st = {0, 0, 0};
    CHECK(mk_sumtab_in_file(tf, &in) == 0);
    CHECK(mk_sumtab_in_size(in) == size);
    CHECK(mk_sumtab_in_is_table(in) == (size >= 4 && memcmp(g_in, "MKST", 4) == 0));
    int rc = mk_sumtab_reader_open(in, &r, &st);
    if (g_trace)
        fprintf(stderr, "fuzz_table: %zu bytes: %s\n", size, rc ? mk_errname(rc) : "table loads");
    if (rc != want)
        fprintf(stderr, "fuzz_table: reader says %s, FORMAT.md %s\n", mk_errname(rc),
                mk_errname(want));
    CHECK(rc == want);
    if (rc) {
        CHECK(r == NULL);
        mk_sumtab_in_close(in);
        mk_file_close(tf);
        return 0;
    }

    /* The header and the entries are the file's. */
    const mk_sumtab_hdr *h = mk_sumtab_reader_hdr(r);
    CHECK(h->block_size == mh.block_size && h->volume_bytes == mh.volume_bytes &&
          h->nblocks == mh.nblocks);
    CHECK(st.bytes_read == size);
    uint8_t hb[MK_SUMTAB_HDR_LEN];
    CHECK(mk_sumtab_hdr_encode(h, hb) == 0);
    mk_sumtab_hdr back;
    CHECK(mk_sumtab_hdr_decode(hb, sizeof hb, &back) == 0);
    CHECK(back.block_size == h->block_size && back.volume_bytes == h->volume_bytes &&
          back.nblocks == h->nblocks);
    /* Re-serialised: header, the entries as read, the trailer. */
    memcpy(g_out, hb, sizeof hb);
    for (uint64_t i = 0; i < h->nblocks; i++) {
        mk_sumtab_sum s;
        CHECK(mk_sumtab_reader_next(r, &s) == 0);
        mk_put_le64(g_out + 32 + 16 * i, s.lo);
        mk_put_le64(g_out + 40 + 16 * i, s.hi);
    }
    mk_sumtab_sum s;
    CHECK(mk_sumtab_reader_next(r, &s) == MK_ERANGE);
    size_t body = 32 + 16 * (size_t)h->nblocks;
    mk_put_le64(g_out + body, XXH3_64bits(g_out, body));
    CHECK(body + 8 == size && memcmp(g_out, g_in, size) == 0);
    mk_sumtab_hdr hcopy = *h;
    mk_sumtab_reader_free(r);
    mk_sumtab_in_close(in);

    if (hcopy.volume_bytes <= IMAGE_MAX)
        against_image(tf, &hcopy, size);
    mk_file_close(tf);
    return 0;
}
