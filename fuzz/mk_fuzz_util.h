/*
 * mk_fuzz_util.h - what fuzz_log, fuzz_sync and fuzz_source share: the
 * input layout, splitting a stream into frames, chunked feeding, and the
 * destination driver with its oracles.  Symbols are prefixed mkfu_.
 *
 * Input layout (all three harnesses; fuzz/mk_mutator.c knows it too):
 *
 *   byte 0        variant: which volume / recorded prefix / source setup
 *   byte 1        bits 0-3: frames per recv batch - 1 (destination
 *                 harnesses); bits 4-7: harness flags
 *   bytes 2..9    eight chunk sizes, used in turn for every recv call;
 *                 0 = the rest of the batch in one call
 *   bytes 10..    the stream: frames (20-byte header, payload, 8-byte
 *                 trailer), trailers either the real XXH3-64 or 0
 *                 (MK_FUZZ_ANY_CHECKSUM).  A frame whose type is 0xF0..0xFF
 *                 is an *operation* for the harness, never fed (below).
 *                 Bytes that do not frame (bad magic, a length past the
 *                 end) are fed as they are, as one last piece.
 *
 * Operations (type byte of an op frame):
 *   0xF0  the connection ends and a new one starts (both sides: the
 *         destination harnesses end the session and send a fresh HELLO;
 *         fuzz_source disconnects and connects, queueing HELLO)
 *   0xF1  fuzz_source: client write, payload u64 offset, u32 length,
 *         u8 fill seed (data derived from it)
 *   0xF2  fuzz_source: start a CP
 */
#ifndef MK_FUZZ_UTIL_H
#define MK_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define MKFU_HDR 10
#define MKFU_OP_RECONNECT 0xF0
#define MKFU_OP_WRITE 0xF1
#define MKFU_OP_CP 0xF2
#define MKFU_VOLUME_ID 0x6d6972726f72ull /* the CLI defaults, so recorded */
#define MKFU_SOURCE_ID 0x736f75726365ull /* demo streams fit the harnesses */

/* The volumes fuzz_log's HELLO announces (byte 0 mod 8; the mode byte is
 * 1 + (byte 0 / 8) % 3), and the source setups of fuzz_source (byte 0
 * mod 8): X(nblocks, block size, mode, max_lag).  fuzz/tools/seedgen.c
 * makes seeds for the same tables. */
#define MKFU_LOG_VOLUMES(X)                                                    \
    X(64, 512) X(16, 1024) X(8, 4096) X(1, 512) X(3, 512) X(100, 512) X(33, 2048) X(2, 65536)
#define MKFU_SOURCE_SETUPS(X)                                                  \
    X(64, 512, 2, 0) X(64, 512, 1, 0) X(64, 512, 3, 0) X(16, 1024, 2, 2048)    \
    X(1, 512, 1, 0) X(8, 4096, 2, 0) X(3, 512, 1, 1024) X(100, 512, 2, 4096)

/* Reports a broken oracle and aborts (every build turns it into a crash). */
void mkfu_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define MKFU_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            mkfu_fail(__VA_ARGS__);                                            \
    } while (0)

typedef struct mkfu_ctl {
    uint8_t variant;
    uint8_t flags;        /* byte 1, bits 4-7 */
    uint32_t per_batch;   /* 1..16 */
    uint8_t chunk[8];
    unsigned next_chunk;
} mkfu_ctl;

/* Reads the 10 control bytes (missing ones read as 0). */
void mkfu_ctl_read(mkfu_ctl *c, const uint8_t *data, size_t size);
/* The next recv size for `left` bytes. */
size_t mkfu_chunk(mkfu_ctl *c, size_t left);

typedef struct mkfu_piece {
    const uint8_t *p;
    size_t n;
    int op; /* 0: stream bytes; else the op type */
} mkfu_piece;

/* Splits a stream into frames and a last unframed piece.  *out is
 * malloc'd; returns the number of pieces. */
size_t mkfu_split(const uint8_t *s, size_t n, mkfu_piece **out);

/* Reads the environment's test aids once: MK_FUZZ_STRICT=1 (no known
 * divergence tolerated, mk_fuzz_model.h), MK_FUZZ_PLANT=N (a planted bug
 * in the destination model, to show the differential oracle fires) and
 * MK_FUZZ_TRACE=1 (for triage: every piece with the model's verdict). */
int mkfu_env_strict(void);
int mkfu_env_plant(void);
int mkfu_env_trace(void); /* MK_FUZZ_TRACE=1: each piece and the model's verdict */

/* Heap bytes in use (glibc), or 0 under a sanitizer that replaces malloc;
 * and the same measured once, before the first input: between inputs the
 * heap must come back to it (a leak across iterations of the persistent
 * loop, where no leak checker runs, eventually breaks the bound). */
size_t mkfu_heap_in_use(void);
size_t mkfu_heap_base(void);

/* The destination harnesses (fuzz_log, fuzz_sync): a fresh destination on
 * memory files behind the I5 bounds wrapper, then `hello`, then `prefix`
 * (pieces that must all be accepted), then the input's stream, every byte
 * judged against the model of mk_fuzz_model.h. */
typedef struct mkfu_dest_setup {
    uint64_t nblocks;
    uint32_t block_size;
    uint8_t mode;
    const uint8_t *prefix; /* source->destination frames after HELLO, or NULL */
    size_t prefix_len;
    int plant;             /* a planted bug in the model (test aid) */
} mkfu_dest_setup;
void mkfu_dest_run(const mkfu_dest_setup *su, const uint8_t *data, size_t size);

/* Parses a recorded stream's HELLO (the first frame) for its geometry;
 * returns its size, 0 if it is not a HELLO. */
size_t mkfu_hello_geometry(const uint8_t *s, size_t n, uint64_t *nblocks, uint32_t *bs,
                           uint8_t *mode);

#endif
