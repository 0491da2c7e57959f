/*
 * mk_sumtab.h - per-block checksum tables and block-by-block comparison of
 * volume images (the verifier behind `mirrorkit verify`, SPEC.md section 9
 * invariant I1: the mirror equals the source's CP image).
 *
 * A checksum table holds one XXH3-128 checksum per block of a volume
 * image, so a mirror can be checked against a source that is not at hand
 * (on another machine, or already changed) by shipping 16 bytes per block
 * instead of the block.
 *
 * Checksum conventions
 *
 *   - The checksum of block i is XXH3_128bits (seed 0) of the block's
 *     block_size bytes at offset i * block_size.
 *   - An all-zero block, and so every block that lies in a hole of a sparse
 *     file, has as its checksum the real XXH3-128 of block_size zero bytes.
 *     Zero blocks are not given a special marker value, so a table is the
 *     same whether the image was sparse or dense, and a table computed by
 *     any XXH3-128 implementation matches one computed here.
 *   - When the volume's size is not a multiple of the block size, the last
 *     block is partial: it is checksummed and compared as a whole block
 *     padded with zeros.  The volume's exact size is kept in the table
 *     (volume_bytes), and two volumes of different sizes are never equal
 *     (MK_EVOLUME), so the padding cannot hide a difference.
 *   - Printed as hex, a checksum is its high 64 bits then its low 64 bits
 *     (32 digits), the canonical XXH128 form that `xxhsum -H2` prints.
 *
 * Table file format, version 1 (also in verify/FORMAT.md).  Integers are
 * little-endian, encoded and decoded only through mk_cursor.h.
 *
 *   offset  size  field
 *        0     4  magic        0x54534B4D, the bytes "MKST"
 *        4     2  version      1
 *        6     6  reserved     zero; a reader refuses anything else
 *       12     4  block_size   a power of two in 512..65536
 *       16     8  volume_bytes the image's exact size in bytes
 *       24     8  nblocks      ceil(volume_bytes / block_size)
 *       32  16*n  checksums    per block: low64 then high64
 *   32+16n     8  trailer      XXH3-64 (seed 0) of every byte before it
 *
 * A reader validates, in this order, and reports the first failure:
 * magic (MK_EMAGIC), version (MK_EVERSION), reserved bytes (MK_ERESERVED),
 * block size (MK_EBLOCKSIZE), nblocks against volume_bytes (MK_ELENGTH),
 * the file's length against nblocks (MK_ETRUNC when short, MK_ELENGTH when
 * long; a file too short to hold the header is MK_ETRUNC unless its first
 * bytes already fail the magic), and last the trailer (MK_ECHECKSUM).  The
 * claimed nblocks is judged against the file's size before anything is
 * allocated, and no reader ever holds the whole table in memory.
 *
 * Memory: computing, writing, reading and comparing all stream in bounded
 * chunks (MK_SUMTAB_CHUNK of image data, a few thousand table entries), so
 * a 1 TiB image costs the same memory as a 1 MiB one.  Only what a
 * comparison reports is kept: the differing ranges (at most max_ranges)
 * and the details of the first max_diffs differing blocks.
 *
 * Sparse files: an image opened by path is read with lseek SEEK_DATA /
 * SEEK_HOLE, and a hole is never read (its blocks take the zero-block
 * checksum, computed once).  Two images that share a hole are not even
 * compared there.  An image given as an mk_file is read in full.
 */
#ifndef MK_SUMTAB_H
#define MK_SUMTAB_H

#include <stddef.h>
#include <stdint.h>

#include "mk_file.h"

#define MK_SUMTAB_MAGIC 0x54534B4Du /* bytes "MKST" */
#define MK_SUMTAB_VERSION 1
#define MK_SUMTAB_HDR_LEN 32
#define MK_SUMTAB_ENTRY_LEN 16
#define MK_SUMTAB_TRAILER_LEN 8
/* Image bytes read per pread: large enough that syscalls cost nothing,
 * small enough that both sides' chunks stay in the L2/L3 cache between the
 * read and the memcmp or hash that follows. */
#define MK_SUMTAB_CHUNK ((size_t)1 << 20)
/* Default caps of what a comparison keeps (see mk_sumtab_opts). */
#define MK_SUMTAB_DEFAULT_MAX_DIFFS 10
#define MK_SUMTAB_DEFAULT_MAX_RANGES ((size_t)1 << 20)
/* Bytes of each side shown around a block's first differing byte. */
#define MK_SUMTAB_HEXDIFF_LEN 16

/* One XXH3-128 checksum (the fields of XXH128_hash_t). */
typedef struct mk_sumtab_sum {
    uint64_t lo, hi;
} mk_sumtab_sum;

/* Formats a checksum as 32 hex digits, high half first; out must hold 33. */
void mk_sumtab_sum_hex(const mk_sumtab_sum *s, char out[33]);
/* The checksum of one block (len bytes, no padding). */
mk_sumtab_sum mk_sumtab_block_sum(const void *data, size_t len);

/* What a run read: for tests and for `verify --json`. */
typedef struct mk_sumtab_stats {
    uint64_t bytes_read;    /* bytes read from storage, every input summed */
    uint64_t bytes_skipped; /* bytes of holes never read, every input summed */
    uint64_t blocks_hashed; /* blocks run through XXH3-128 */
} mk_sumtab_stats;

/* ---- inputs -------------------------------------------------------------- */

/* An input file, a volume image or a checksum table, open for reading. */
typedef struct mk_sumtab_in mk_sumtab_in;

/*
 * Opens path read-only: a regular file or a block device.  MK_EINVAL if it
 * does not exist or is another kind of file (a directory, a pipe), MK_EIO
 * (or the nearest code) if it cannot be opened.  Large reads are announced
 * with posix_fadvise SEQUENTIAL.
 */
int mk_sumtab_in_open(const char *path, mk_sumtab_in **out);
/* Reads through an mk_file, which stays the caller's: it must outlive the
 * input and is not closed with it.  Its size is taken once, now. */
int mk_sumtab_in_file(mk_file *f, mk_sumtab_in **out);
uint64_t mk_sumtab_in_size(const mk_sumtab_in *in);
/* 1 if the input starts with the table magic, 0 if not, or a negative
 * mk_err if it could not be read. */
int mk_sumtab_in_is_table(mk_sumtab_in *in);
void mk_sumtab_in_close(mk_sumtab_in *in);

/* ---- computing and writing tables ---------------------------------------- */

/* A table header: what a table says about its volume. */
typedef struct mk_sumtab_hdr {
    uint32_t block_size;
    uint64_t volume_bytes, nblocks;
} mk_sumtab_hdr;

/* Blocks in a volume of `bytes` (the last one possibly partial). */
uint64_t mk_sumtab_nblocks(uint64_t bytes, uint32_t block_size);

/* Receives n consecutive checksums, of blocks first .. first + n - 1.
 * Returning non-zero stops the computation with that value. */
typedef int (*mk_sumtab_sink)(void *ctx, uint64_t first, const mk_sumtab_sum *sums,
                              size_t n);
/*
 * Computes the checksum of every block of the image, in order, handing
 * them to fn in batches.  Returns 0, MK_EBLOCKSIZE, a read error, or what
 * fn returned.  st (may be NULL) is added to, not reset.
 */
int mk_sumtab_compute(mk_sumtab_in *img, uint32_t block_size, mk_sumtab_sink fn,
                      void *ctx, mk_sumtab_stats *st);

/* Receives the table's bytes in order; 0 or a negative mk_err. */
typedef int (*mk_sumtab_out_fn)(void *ctx, const void *buf, size_t n);
/* A ready-made mk_sumtab_out_fn writing to the file descriptor *(int *)ctx. */
int mk_sumtab_out_fd(void *ctx, const void *buf, size_t n);

/* Computes the table of img and writes the whole table file through out,
 * streaming: header, checksums in batches, trailer. */
int mk_sumtab_write(mk_sumtab_in *img, uint32_t block_size, mk_sumtab_out_fn out,
                    void *ctx, mk_sumtab_stats *st);
/* The same for an image at a path. */
int mk_sumtab_write_path(const char *path, uint32_t block_size, mk_sumtab_out_fn out,
                         void *ctx, mk_sumtab_stats *st);

/* ---- reading tables ------------------------------------------------------- */

/* Encodes or decodes the 32-byte header (decoding checks every field but
 * the lengths, which need the file). */
int mk_sumtab_hdr_encode(const mk_sumtab_hdr *h, uint8_t out[MK_SUMTAB_HDR_LEN]);
int mk_sumtab_hdr_decode(const uint8_t *buf, size_t len, mk_sumtab_hdr *h);

typedef struct mk_sumtab_reader mk_sumtab_reader;
/*
 * Validates the table file in (see the format above; this reads the whole
 * file once, in chunks, to check the trailer) and positions a reader at
 * its first checksum.  The input stays the caller's and must outlive the
 * reader.
 */
int mk_sumtab_reader_open(mk_sumtab_in *in, mk_sumtab_reader **out, mk_sumtab_stats *st);
const mk_sumtab_hdr *mk_sumtab_reader_hdr(const mk_sumtab_reader *r);
/* The next checksum, block 0 first; MK_ERANGE after the last. */
int mk_sumtab_reader_next(mk_sumtab_reader *r, mk_sumtab_sum *sum);
void mk_sumtab_reader_free(mk_sumtab_reader *r);

/* ---- comparison ----------------------------------------------------------- */

typedef struct mk_sumtab_opts {
    uint32_t block_size; /* for image vs image; a table brings its own */
    size_t max_diffs;    /* differing blocks to describe in detail */
    size_t max_ranges;   /* differing ranges to keep; the rest are counted */
} mk_sumtab_opts;
void mk_sumtab_opts_default(mk_sumtab_opts *o); /* 4096, 10, 1 Mi */

typedef struct mk_sumtab_range {
    uint64_t first, last; /* blocks first..last all differ */
} mk_sumtab_range;

/* The first differing bytes of a block, image vs image only. */
typedef struct mk_sumtab_hexdiff {
    uint32_t first; /* offset in the block of the first differing byte */
    uint32_t start; /* offset in the block where the excerpts start */
    uint8_t a[MK_SUMTAB_HEXDIFF_LEN], b[MK_SUMTAB_HEXDIFF_LEN];
} mk_sumtab_hexdiff;

typedef struct mk_sumtab_diff {
    uint64_t block, offset; /* block number and its byte offset */
    mk_sumtab_sum a, b;
    int has_hexdiff;
    mk_sumtab_hexdiff hex;
} mk_sumtab_diff;

typedef struct mk_sumtab_result {
    uint32_t block_size;
    uint64_t volume_bytes, nblocks;
    uint64_t a_bytes, b_bytes; /* each side's size: for MK_EVOLUME */
    uint32_t a_block_size, b_block_size;
    uint64_t differing; /* differing blocks, all of them */
    mk_sumtab_range *ranges;
    size_t nranges;
    int ranges_complete; /* 0 if max_ranges cut the list short */
    mk_sumtab_diff *diffs;
    size_t ndiffs;
    int err_side; /* on a read error: 1 if input a failed, 2 if b */
    mk_sumtab_stats stats;
} mk_sumtab_result;

/*
 * Compare two inputs block by block.  Each returns 0 when they are equal,
 * MK_EVERIFY when blocks differ (listed in res), MK_EVOLUME when the
 * volumes' sizes (or two tables' block sizes) differ, or the error of a
 * read (res->err_side names the input) or of memory.  res is always
 * initialised and must be released with mk_sumtab_result_free.
 *
 * Two images are read in chunks, side b by a helper thread while the
 * caller reads side a, and compared with memcmp; only the blocks that
 * differ and are described are hashed.  With a table, the table's block
 * size is used and the image is checksummed as it streams by.
 */
int mk_sumtab_compare_images(mk_sumtab_in *a, mk_sumtab_in *b, const mk_sumtab_opts *o,
                             mk_sumtab_result *res);
/* a is a validated table; b is an image (swap is 0) or, with swap set, the
 * table is input b and the image input a, as the caller named them. */
int mk_sumtab_compare_table_image(mk_sumtab_reader *t, mk_sumtab_in *img, int swap,
                                  const mk_sumtab_opts *o, mk_sumtab_result *res);
int mk_sumtab_compare_tables(mk_sumtab_reader *a, mk_sumtab_reader *b,
                             const mk_sumtab_opts *o, mk_sumtab_result *res);
void mk_sumtab_result_free(mk_sumtab_result *res);

#endif
