/*
 * mk_wire.h - frames of the mirrorkit protocol (SPEC.md section 3) and the
 * payload codecs of every frame type (sections 2, 4, 7, 8).
 *
 * A frame is a 20-byte header, a payload and an 8-byte XXH3-64 checksum of
 * header and payload.  The destination's log store (section 7.3) reuses the
 * same framing for its records, with record types of its own, so there is
 * one codec for everything that crosses a wire or lands on disk.
 *
 * Decoders never allocate: a decoded payload borrows the caller's buffer.
 */
#ifndef MK_WIRE_H
#define MK_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "mk_buf.h"
#include "mk_cursor.h"

#define MK_FRAME_MAGIC 0x52464B4Du /* bytes "MKFR" */
#define MK_PROTO_VERSION 1
#define MK_HDR_LEN 20
#define MK_TRAILER_LEN 8
#define MK_FRAME_OVERHEAD (MK_HDR_LEN + MK_TRAILER_LEN)
/* Largest data range one LOG transfer carries; longer client writes are
 * split into several transfers at block boundaries (section 4.2). */
#define MK_MAX_TRANSFER_DATA (1u << 20)
/* Largest payload of any frame: a full transfer plus its 24-byte header.
 * Every other frame type is smaller (CP_DATA is 16 + 65536). */
#define MK_MAX_PAYLOAD (MK_MAX_TRANSFER_DATA + 24)
/* Largest number of blocks in one CP: its redo record (section 7.3) must
 * fit a u32 length.  A source takes a CP before it has more dirty blocks. */
#define MK_MAX_CP_BLOCKS ((UINT32_MAX - 32u) / 16u)
/* A CP_REF frame carries at most this many 32-byte entries. */
#define MK_MAX_REFS_PER_FRAME 1024
#define MK_MIN_BLOCK 512u
#define MK_MAX_BLOCK 65536u

enum mk_ftype {
    /* source -> destination */
    MK_F_HELLO = 0x01,
    MK_F_LOG = 0x02,
    MK_F_CP_BEGIN = 0x03,
    MK_F_CP_DATA = 0x04,
    MK_F_CP_REF = 0x05,
    MK_F_CP_COMMIT = 0x06,
    MK_F_TREE_QUERY = 0x07,
    /* either direction */
    MK_F_ERROR = 0x7F,
    /* destination -> source */
    MK_F_HELLO_ACK = 0x81,
    MK_F_LOG_ACK = 0x82,
    MK_F_NAK = 0x83,
    MK_F_CP_ACK = 0x84,
    MK_F_TREE_NODES = 0x85,
    /* log-store records (section 7.3) */
    MK_R_TRANSFER = 0x10,
    MK_R_CP_DATA = 0x11,
    MK_R_CP_COMMIT = 0x12,
    MK_R_CP_APPLIED = 0x13,
};

enum mk_mode { MK_MODE_SYNC = 1, MK_MODE_SEMI = 2, MK_MODE_ASYNC = 3 };

const char *mk_ftype_name(int type); /* "LOG", ...; "?" if unknown */
const char *mk_mode_name(int mode);  /* "sync", "semi-sync", "async" */
int mk_mode_parse(const char *s);    /* mode or MK_EINVAL */
int mk_block_size_ok(uint32_t b);    /* power of two in 512..65536 */

typedef struct mk_frame {
    uint8_t type;
    uint16_t flags;
    uint32_t len;
    uint64_t seq;
    const uint8_t *payload; /* borrowed from the decoded buffer */
} mk_frame;

/*
 * Decodes one frame at the start of buf.  Returns 0 and sets *used to the
 * frame's total size; MK_ETRUNC if buf holds only a prefix of a valid frame
 * (read more and call again); or the named error of the first bad field in
 * the order magic, version, flags, length, checksum.  The length is judged
 * before waiting for the body, so a claimed length over max_payload is
 * refused at once and never buffered.
 */
int mk_frame_decode(const uint8_t *buf, size_t len, size_t max_payload,
                    uint32_t magic, mk_frame *f, size_t *used);

/*
 * Receives bytes for an engine: appends buf to the input queue in, then
 * hands every complete frame at its head to fn, consuming each frame after
 * fn returns.  Stops quietly at an incomplete frame (its prefix stays
 * queued).  Returns 0; or a framing error with *framing set, so the caller
 * can name it; or the first error fn returned (*framing clear).
 */
typedef int (*mk_frame_fn)(void *ctx, const mk_frame *f);
int mk_frame_recv(mk_buf *in, const void *buf, size_t n, mk_frame_fn fn, void *ctx,
                  int *framing);

/*
 * Encoding: mk_frame_open reserves room for header, up to max_payload bytes
 * of payload and trailer in b, writes the header and leaves *c positioned at
 * the payload.  The caller writes the payload through *c, then
 * mk_frame_close fills in the length and checksum and makes the frame live.
 */
int mk_frame_open(mk_buf *b, uint32_t magic, uint8_t type, uint64_t seq,
                  size_t max_payload, mk_wcur *c);
int mk_frame_close(mk_buf *b, mk_wcur *c);

/* XXH3-64 of one block; the checksum carried by REF entries. */
uint64_t mk_block_hash(const void *data, size_t len);

/* Transfer geometry (section 4.2): how a byte range splits into a partial
 * head fragment, whole block slots and a partial tail fragment. */
typedef struct mk_xgeom {
    uint32_t head_len;    /* bytes before the first block boundary */
    uint32_t nslots;      /* whole blocks, slot 0 first */
    uint32_t tail_len;    /* bytes after the last whole block */
    uint64_t first_block; /* volume block number of slot 0 */
} mk_xgeom;
void mk_transfer_geom(uint64_t offset, uint32_t length, uint32_t block_size,
                      mk_xgeom *g);

/* ---- payloads ---------------------------------------------------------- */

typedef struct mk_hello {
    uint64_t volume_id, nblocks;
    uint32_t block_size;
    uint8_t mode;
    uint64_t source_id;
} mk_hello;
#define MK_HELLO_LEN 32

typedef struct mk_hello_ack {
    uint64_t volume_id, nblocks;
    uint32_t block_size;
    uint64_t last_cp, durable_tid, source_id;
    uint64_t last_digest; /* CP digest (section 7.5) of last_cp; 0 if none */
} mk_hello_ack;
#define MK_HELLO_ACK_LEN 56

typedef struct mk_log {
    uint64_t tid, offset;
    uint32_t length;
    const uint8_t *data;
} mk_log;
#define MK_LOG_HDR_LEN 24

typedef struct mk_cp_begin {
    uint64_t cp, nrecords, covers_tid;
} mk_cp_begin;
#define MK_CP_BEGIN_LEN 24

typedef struct mk_cp_data {
    uint64_t cp, block;
    const uint8_t *data; /* block_size bytes */
} mk_cp_data;
#define MK_CP_DATA_HDR_LEN 16

typedef struct mk_ref {
    uint64_t block, tid;
    uint32_t slot;
    uint64_t hash;
} mk_ref;
#define MK_REF_LEN 32
#define MK_CP_REF_HDR_LEN 16

typedef struct mk_cp_commit {
    uint64_t cp, nrecords;
} mk_cp_commit;
#define MK_CP_COMMIT_LEN 16

/* Error codes travel as their positive wire value (mk_err.h); the decoders
 * give back the negative mk_err code. */
typedef struct mk_nak {
    uint64_t cp, block;
    int32_t reason;
} mk_nak;
#define MK_NAK_LEN 24

typedef struct mk_cp_ack {
    uint64_t cp, napplied, digest;
    uint64_t root_lo, root_hi; /* Merkle root of the mirror (section 9.7) */
} mk_cp_ack;
#define MK_CP_ACK_LEN 40

/* Merkle descent (section 9.7): the source asks for the children of up to
 * MK_MAX_TREE_NODES nodes of one level; the destination answers with them. */
#define MK_MAX_TREE_NODES 1024
#define MK_TREE_QUERY_HDR_LEN 8
#define MK_TREE_NODE_LEN 40 /* index u64, left 16, right 16 */
int mk_tree_query_decode(const mk_frame *f, uint32_t *level, uint32_t *count);
int mk_tree_query_at(const mk_frame *f, uint32_t i, uint64_t *index);
int mk_tree_query_encode(mk_buf *b, uint64_t seq, uint32_t level, const uint64_t *index,
                         uint32_t count);
typedef struct mk_tree_node {
    uint64_t index;
    uint64_t left_lo, left_hi, right_lo, right_hi;
} mk_tree_node;
int mk_tree_nodes_decode(const mk_frame *f, uint32_t *level, uint32_t *count);
int mk_tree_nodes_at(const mk_frame *f, uint32_t i, mk_tree_node *n);
int mk_tree_nodes_encode(mk_buf *b, uint64_t seq, uint32_t level, const mk_tree_node *n,
                         uint32_t count);

#define MK_ERROR_MSG_MAX 256
typedef struct mk_error_frame {
    int32_t code;
    uint32_t msglen;
    const uint8_t *msg;
} mk_error_frame;

/* Each decoder takes the frame's payload, checks its exact length, reserved
 * fields and value ranges that need no session state, and fills *out. */
int mk_hello_decode(const mk_frame *f, mk_hello *out);
int mk_hello_ack_decode(const mk_frame *f, mk_hello_ack *out);
int mk_log_decode(const mk_frame *f, mk_log *out);
int mk_log_ack_decode(const mk_frame *f, uint64_t *tid);
int mk_cp_begin_decode(const mk_frame *f, mk_cp_begin *out);
int mk_cp_data_decode(const mk_frame *f, uint32_t block_size, mk_cp_data *out);
/* Checks the header and entry count; entries are read with mk_ref_at. */
int mk_cp_ref_decode(const mk_frame *f, uint64_t *cp, uint32_t *count);
int mk_ref_at(const mk_frame *f, uint32_t i, mk_ref *out);
int mk_cp_commit_decode(const mk_frame *f, mk_cp_commit *out);
int mk_nak_decode(const mk_frame *f, mk_nak *out);
int mk_cp_ack_decode(const mk_frame *f, mk_cp_ack *out);
int mk_error_decode(const mk_frame *f, mk_error_frame *out);

/* Encoders append one whole frame with sequence number seq to b. */
int mk_hello_encode(mk_buf *b, uint64_t seq, const mk_hello *h);
int mk_hello_ack_encode(mk_buf *b, uint64_t seq, const mk_hello_ack *h);
int mk_log_encode(mk_buf *b, uint64_t seq, const mk_log *l);
int mk_log_ack_encode(mk_buf *b, uint64_t seq, uint64_t tid);
int mk_cp_begin_encode(mk_buf *b, uint64_t seq, const mk_cp_begin *c);
int mk_cp_data_encode(mk_buf *b, uint64_t seq, const mk_cp_data *d,
                      uint32_t block_size);
int mk_cp_ref_encode(mk_buf *b, uint64_t seq, uint64_t cp, const mk_ref *refs,
                     uint32_t count);
int mk_cp_commit_encode(mk_buf *b, uint64_t seq, const mk_cp_commit *c);
int mk_nak_encode(mk_buf *b, uint64_t seq, const mk_nak *n);
int mk_cp_ack_encode(mk_buf *b, uint64_t seq, const mk_cp_ack *a);
int mk_error_encode(mk_buf *b, uint64_t seq, int32_t code, const char *msg);

/* CP digest (section 7.5): a chain over the CP's blocks in ascending block
 * order, d' = XXH3-64 with seed d of (block LE64 || block hash LE64),
 * starting from d = 0.  Chaining keeps it stateless and order-sensitive. */
uint64_t mk_digest_step(uint64_t d, uint64_t block, uint64_t hash);

#endif
