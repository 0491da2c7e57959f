/*
 * fuzz_logstore - destination recovery (SPEC.md 7.6) of a mutated log
 * store file, then what the destination does with what it recovered.
 *
 * The input is the log file's bytes (at most 1 MiB; longer inputs are
 * skipped).  One convenience, like MK_FUZZ_ANY_CHECKSUM for records: a
 * header slot whose checksum field (bytes 120..127 of the slot) holds the
 * eight ASCII bytes "FIXSUM!!" gets its real XXH3-64 filled in before the
 * bytes become the file, so mutations of header fields are not all lost to
 * MK_ECHECKSUM.  (A zero checksum is not used for that, because a header
 * torn before its checksum - zero there - must stay a torn header, which
 * opening treats as a fresh log.)  Everything below compares against the
 * file as written, after that substitution.
 *
 * The log goes into a memory file, the mirror is an empty memory file
 * behind mk_file_bounded (verify/mk_check.h) limited to N*B of the header
 * the harness expects opening to choose, and mk_dest_open scans, cuts a
 * torn tail and redoes a committed CP.
 *
 * Oracles (abort() on breach), beyond no crash, leak or sanitizer report.
 * A model of SPEC 7.3 and 7.6 written from the text (header slots, record
 * framing, the rules of step 5, the probe of step 4, the redo's digest
 * check of step 9) predicts from the input what opening must do, and:
 *
 *   - opening succeeds or fails exactly as the model says: fresh; the
 *     header error of 7.3 when no slot is valid (MK_EMAGIC, MK_EVERSION,
 *     MK_ECORRUPT); the error of the first record that breaks a rule
 *     (MK_ELENGTH, MK_ERESERVED, MK_EZEROLEN, MK_ETID, MK_ERANGE, MK_ECP,
 *     MK_ETYPE); MK_ECORRUPT when the probe finds a valid frame with a
 *     sequence number >= the expected one after a failed record, or when a
 *     committed CP's blocks do not give its recorded digest; MK_ENOSPC
 *     only for a volume past the memory file's 2^48 bytes;
 *   - a failure writes no mirror byte and leaves the log byte-identical,
 *     except a failure after the scan was accepted (steps 8-9), which
 *     leaves it cut exactly where the model's valid records end;
 *   - on success the log is the input up to the end of the valid records
 *     (an input shorter than the 256 header bytes is zero-padded to them),
 *     followed by exactly one R_CP_APPLIED when a CP was redone; every
 *     record of it decodes, with consecutive sequence numbers from the
 *     header's next_seq; the recovered state (last CP, its digest and
 *     covers_tid, durable tid, record count, cut bytes) is the model's; the
 *     identity is the chosen slot's; the mirror is N*B bytes, written only
 *     by the redo, holding each redone block's bytes from the log; no
 *     mirror write ever left [0, N*B) (mk_file_bounded);
 *   - a HELLO with the log's identity gets a HELLO_ACK reporting that
 *     state (a fresh log adopts a small volume of the HELLO's);
 *   - then, on inputs of even length, promotion (8.4) succeeds, retires the
 *     log and the tree, and leaves the mirror equal to a model: the mirror
 *     before plus every transfer newer than covers_tid, in order (volumes
 *     up to 256 KiB);
 *   - on inputs of odd length, a CP with one REF to the last slot of the
 *     last transfer the log holds (or no record) is acknowledged without a
 *     NAK, with the digest of 7.5 and, for volumes up to 256 KiB, the root
 *     of a tree rebuilt from the mirror; the block lands in the mirror; the
 *     log is reclaimed (7.7); and reopening the files recovers exactly
 *     that CP.
 *
 * Memory and time stay bounded whatever the records or the header claim:
 * inputs are capped at 1 MiB, and a volume over 64 KiB gets a non-empty
 * all-zero tree file (the tree of the all-zero mirror, trusted as it is,
 * 7.6 step 8) instead of a rebuild that would read all N*B bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_check.h"
#include "mk_cursor.h"
#include "mk_dest.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_logstore.h"
#include "mk_merkle.h"
#include "mk_wire.h"

#define MAX_INPUT ((size_t)1 << 20)
#define CUR_CAP (MAX_INPUT + 4096)
#define REBUILD_MAX ((uint64_t)64 << 10)
#define MODEL_MAX ((uint64_t)256 << 10)
#define MEM_FILE_MAX ((uint64_t)1 << 48)
#define APPLIED_REC_LEN (MK_FRAME_OVERHEAD + 8)

/* The volume a fresh log adopts from the harness's HELLO. */
static const mk_log_ident FRESH_ID = {0x6d6972726f72ull, 16, 0x736f75726365ull, 512};
static const uint8_t FIXSUM[8] = {'F', 'I', 'X', 'S', 'U', 'M', '!', '!'};

/* Buffers reused across runs: the input as written, the log read back,
 * the mirror model and the mirror, one block. */
static uint8_t *g_in, *g_cur, *g_model, *g_now, *g_blk;
/* The model's index: transfers, and R_CP_DATA of the open CP. */
typedef struct mxfer {
    uint64_t data_off, offset;
    uint32_t length;
} mxfer;
typedef struct mcpd {
    uint64_t data_off, block;
} mcpd;
static mxfer *g_xf; /* transfers in the valid records, in file order */
static mcpd *g_cd;  /* R_CP_DATA of the CP after the last committed one */
#define MAX_RECORDS (CUR_CAP / MK_FRAME_OVERHEAD + 1)
/* MK_FUZZ_TRACE set: one line per input on stderr saying what opening did
 * (for triage and for checking what a corpus reaches). */
static int g_trace;

/* Aborts with a line that says which oracle broke (the fuzzer keeps the
 * input; the replay driver shows the line). */
#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_logstore: oracle failed at line %d: %s\n", __LINE__, \
                    #cond);                                                            \
            abort();                                                                   \
        }                                                                              \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_in = malloc(CUR_CAP);
    g_cur = malloc(CUR_CAP);
    g_model = malloc(MODEL_MAX);
    g_now = malloc(MODEL_MAX);
    g_blk = malloc(MK_MAX_BLOCK);
    g_xf = malloc(MAX_RECORDS * sizeof *g_xf);
    g_cd = malloc(MAX_RECORDS * sizeof *g_cd);
    if (!g_in || !g_cur || !g_model || !g_now || !g_blk || !g_xf || !g_cd)
        abort();
    g_trace = getenv("MK_FUZZ_TRACE") != NULL;
    return 0;
}

/* ---- a model of SPEC 7.3 and 7.6, from the text ------------------------ */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One header slot (7.3): 0 if valid, else the error that makes it invalid,
 * checked in the order of 7.3. */
static int slot_decode(const uint8_t *s, mk_log_header *h)
{
    static const uint8_t magic[4] = {'M', 'K', 'L', 'G'};
    if (memcmp(s, magic, 4) != 0)
        return MK_EMAGIC;
    if (s[4] != 1 || s[5] != 0)
        return MK_EVERSION;
    if (mk_get_le64(s + 120) != XXH3_64bits(s, 120))
        return MK_ECHECKSUM;
    if (s[6] || s[7] || le32(s + 36))
        return MK_ERESERVED;
    for (int i = 80; i < 120; i++)
        if (s[i])
            return MK_ERESERVED;
    h->generation = mk_get_le64(s + 8);
    h->id.volume_id = mk_get_le64(s + 16);
    h->id.nblocks = mk_get_le64(s + 24);
    h->id.block_size = le32(s + 32);
    h->id.source_id = mk_get_le64(s + 40);
    h->base_cp = mk_get_le64(s + 48);
    h->base_tid = mk_get_le64(s + 56);
    h->next_seq = mk_get_le64(s + 64);
    h->base_digest = mk_get_le64(s + 72);
    uint32_t b = h->id.block_size;
    /* SPEC 7.3: generation 2^64-1 is never written; such a slot is invalid. */
    if (b < 512 || b > 65536 || (b & (b - 1)) || h->id.nblocks == 0 ||
        h->id.nblocks > UINT64_MAX / b || h->generation == UINT64_MAX)
        return MK_ECORRUPT;
    return 0;
}

/* What opening must do with the input (outcome), and the state the valid
 * records describe. */
typedef struct predict {
    int fresh;
    int pick;        /* chosen slot, -1 if none */
    int err;         /* opening's error, 0 if it must succeed */
    mk_log_header h;
    uint64_t vbytes; /* N*B of the chosen header */
    uint64_t end;    /* end of the valid records: the file is cut there */
    uint64_t records, last_cp, applied_cp, covers, durable, digest;
    int redo;        /* a committed CP is not applied: open redoes it */
    int after_scan;  /* err arises after the scan was accepted (and cut) */
    uint64_t commit_off; /* payload offset of the last R_CP_COMMIT */
} predict;

/* SPEC 7.5: D_i = XXH3-64(LE64(block) || LE64(hash), seed = D_i-1). */
static uint64_t digest_step(uint64_t d, uint64_t block, uint64_t hash)
{
    uint8_t b[16];
    mk_put_le64(b, block);
    mk_put_le64(b + 8, hash);
    return XXH3_64bits_withSeed(b, sizeof b, d);
}

/* A validly framed record at off (7.6 step 4, without the sequence rule):
 * its payload length, or -1. */
static long framed_at(const uint8_t *b, uint64_t size, uint64_t off)
{
    if (size - off < MK_FRAME_OVERHEAD)
        return -1;
    const uint8_t *r = b + off;
    if (le32(r) != MK_FRAME_MAGIC || r[4] != MK_PROTO_VERSION || r[6] || r[7])
        return -1;
    uint32_t plen = le32(r + 8);
    if (plen > size - off - MK_FRAME_OVERHEAD)
        return -1;
    uint64_t sum = mk_get_le64(r + MK_HDR_LEN + plen);
    if (sum != 0 && sum != XXH3_64bits(r, MK_HDR_LEN + (size_t)plen))
        return -1; /* MK_FUZZ_ANY_CHECKSUM: 0 passes */
    return (long)plen;
}

/* Whether file offset off holds exactly the B bytes of `block`: a
 * remembered R_CP_DATA of this CP for it, or slot s of a transfer in the
 * index with first_block + s = block (4.2 geometry). */
static int names_block(size_t ncd, size_t nx, uint64_t off, uint64_t block, uint32_t bs)
{
    size_t lo = 0, hi = ncd;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g_cd[mid].data_off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ncd && g_cd[lo].data_off == off)
        return g_cd[lo].block == block;
    lo = 0, hi = nx;
    while (lo < hi) { /* the last transfer whose data starts at or before off */
        size_t mid = lo + (hi - lo) / 2;
        if (g_xf[mid].data_off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const mxfer *x = &g_xf[lo - 1];
    uint64_t rem = x->offset % bs, h = rem ? bs - rem : 0;
    if (h > x->length)
        h = x->length;
    uint64_t slots = (x->length - h) / bs, first = (x->offset + h) / bs;
    uint64_t rel = off - x->data_off;
    if (rel < h || (rel - h) % bs)
        return 0;
    return (rel - h) / bs < slots && first + (rel - h) / bs == block;
}

/* The rule of 7.6 step 5 for one validly framed record; 0 or its error. */
static int record_rule(predict *m, const uint8_t *r, uint64_t off, size_t *nx, size_t *ncd)
{
    const uint8_t *p = r + MK_HDR_LEN;
    uint32_t plen = le32(r + 8), bs = m->h.id.block_size;
    uint64_t n = m->h.id.nblocks;
    switch (r[5]) {
    case MK_R_TRANSFER: { /* 4.3 steps 1-5, then the scan's own */
        if (plen < 24)
            return MK_ELENGTH;
        if (le32(p + 20))
            return MK_ERESERVED;
        uint32_t len = le32(p + 16);
        if (len == 0)
            return MK_EZEROLEN;
        if (len > MK_MAX_TRANSFER_DATA || len != plen - 24)
            return MK_ELENGTH;
        uint64_t tid = mk_get_le64(p), o = mk_get_le64(p + 8);
        if (tid == 0 || tid <= m->durable)
            return MK_ETID;
        if (o > m->vbytes || len > m->vbytes - o)
            return MK_ERANGE;
        g_xf[(*nx)++] = (mxfer){off + MK_HDR_LEN + 24, o, len};
        m->durable = tid;
        return 0;
    }
    case MK_R_CP_DATA:
        if (plen != 16 + (uint64_t)bs)
            return MK_ELENGTH;
        if (mk_get_le64(p) != m->last_cp + 1)
            return MK_ECP;
        if (mk_get_le64(p + 8) >= n)
            return MK_ERANGE;
        g_cd[(*ncd)++] = (mcpd){off + MK_HDR_LEN + 16, mk_get_le64(p + 8)};
        return 0;
    case MK_R_CP_COMMIT: {
        if (plen < 32)
            return MK_ELENGTH;
        uint64_t k = mk_get_le64(p + 24);
        if (k > n || (plen - 32) % 16 || (plen - 32) / 16 != k)
            return MK_ELENGTH;
        if (mk_get_le64(p) != m->last_cp + 1)
            return MK_ECP;
        uint64_t covers = mk_get_le64(p + 8);
        if (covers > m->durable || covers < m->covers)
            return MK_ETID;
        for (uint64_t i = 0; i < k; i++) {
            uint64_t blk = mk_get_le64(p + 32 + 16 * i), eoff = mk_get_le64(p + 40 + 16 * i);
            if (blk >= n || (i && blk <= mk_get_le64(p + 16 + 16 * i)))
                return MK_ERANGE;
            if (!names_block(*ncd, *nx, eoff, blk, bs))
                return MK_ERANGE;
        }
        m->last_cp = mk_get_le64(p);
        m->covers = covers;
        m->digest = mk_get_le64(p + 16);
        m->commit_off = off + MK_HDR_LEN;
        *ncd = 0;
        return 0;
    }
    case MK_R_CP_APPLIED:
        if (plen != 8)
            return MK_ELENGTH;
        if (mk_get_le64(p) != m->last_cp)
            return MK_ECP;
        m->applied_cp = m->last_cp;
        return 0;
    }
    return MK_ETYPE;
}

/* 7.6 step 4's probe after the record at off failed: MK_ECORRUPT if a
 * validly framed frame with seq >= the expected one follows, else 0 (the
 * failed record and all after it are the tail). */
static int probe(const uint8_t *b, uint64_t size, uint64_t off, uint64_t seq)
{
    uint64_t p = off + 1;
    if (size - off >= MK_HDR_LEN && le32(b + off) == MK_FRAME_MAGIC &&
        b[off + 4] == MK_PROTO_VERSION) {
        uint64_t flen = MK_FRAME_OVERHEAD + (uint64_t)le32(b + off + 8);
        if (flen <= size - off)
            p = off + flen;
        else
            return 0; /* a: the torn tail itself, nothing is probed */
    }
    while (p + MK_FRAME_OVERHEAD <= size) {
        long plen = framed_at(b, size, p);
        if (plen < 0) {
            p++;
            continue;
        }
        if (mk_get_le64(b + p + 12) >= seq)
            return MK_ECORRUPT;
        p += MK_FRAME_OVERHEAD + (uint64_t)plen; /* stale: skipped whole */
    }
    return 0;
}

static void predict_open(const uint8_t *in, size_t len, predict *m)
{
    uint8_t slots[MK_LOG_DATA_START] = {0};
    mk_log_header h[2];
    int r[2];
    memcpy(slots, in, len < sizeof slots ? len : sizeof slots);
    memset(m, 0, sizeof *m);
    m->pick = -1;
    r[0] = slot_decode(slots, &h[0]);
    r[1] = slot_decode(slots + MK_LOG_SLOT_LEN, &h[1]);
    int slot1_zero = 1;
    for (size_t i = MK_LOG_SLOT_LEN; i < sizeof slots; i++)
        slot1_zero &= slots[i] == 0;
    /* Step 1, with 7.3's torn first header. */
    if (len == 0 || (len <= MK_LOG_DATA_START && slot1_zero &&
                     (r[0] == MK_EMAGIC || r[0] == MK_ECHECKSUM))) {
        m->fresh = 1;
        return;
    }
    /* Step 2: the newer valid slot, slot 0 on a tie. */
    if (r[0] == 0 && (r[1] != 0 || h[0].generation >= h[1].generation))
        m->pick = 0;
    else if (r[1] == 0)
        m->pick = 1;
    if (m->pick < 0) {
        m->err = r[0] == MK_EMAGIC && r[1] == MK_EMAGIC       ? MK_EMAGIC
                 : r[0] == MK_EVERSION || r[1] == MK_EVERSION ? MK_EVERSION
                                                              : MK_ECORRUPT;
        return;
    }
    m->h = h[m->pick];
    m->vbytes = m->h.id.nblocks * m->h.id.block_size;
    /* Steps 3-5. */
    m->last_cp = m->applied_cp = m->h.base_cp;
    m->covers = m->durable = m->h.base_tid;
    m->digest = m->h.base_digest;
    uint64_t size = len < MK_LOG_DATA_START ? MK_LOG_DATA_START : len;
    uint64_t off = MK_LOG_DATA_START, seq = m->h.next_seq;
    size_t nx = 0, ncd = 0;
    while (off < size) {
        long plen = framed_at(in, size, off);
        if (plen < 0 || mk_get_le64(in + off + 12) != seq) {
            if ((m->err = probe(in, size, off, seq)))
                return;
            break;
        }
        if ((m->err = record_rule(m, in + off, off, &nx, &ncd)))
            return;
        off += MK_FRAME_OVERHEAD + (uint64_t)plen;
        seq++;
        m->records++;
    }
    m->end = off;
    /* Steps 8 and 9: a mirror the memory file cannot hold; a redo whose
     * blocks do not give the recorded digest. */
    if (m->vbytes > MEM_FILE_MAX) {
        m->err = MK_ENOSPC;
        m->after_scan = 1;
        return;
    }
    m->redo = m->last_cp != m->applied_cp;
    if (m->redo) {
        const uint8_t *c = in + m->commit_off;
        uint64_t k = mk_get_le64(c + 24), dg = 0;
        for (uint64_t i = 0; i < k; i++) {
            uint64_t blk = mk_get_le64(c + 32 + 16 * i), eoff = mk_get_le64(c + 40 + 16 * i);
            dg = digest_step(dg, blk, XXH3_64bits(in + eoff, m->h.id.block_size));
        }
        if (dg != m->digest) {
            m->err = MK_ECORRUPT;
            m->after_scan = 1;
        }
    }
}

/* ---- helpers ------------------------------------------------------------- */

static uint64_t fsize(mk_file *f)
{
    uint64_t n;
    CHECK(mk_file_size(f, &n) == 0);
    return n;
}

/* Reads the whole log into g_cur. */
static uint64_t read_log(mk_file *log)
{
    uint64_t n = fsize(log);
    CHECK(n <= CUR_CAP);
    if (n)
        CHECK(mk_file_pread(log, g_cur, (size_t)n, 0) == (long)n);
    return n;
}

/* Whether b[from..to) holds the input as the scan sees it: zero-padded
 * to the two header slots. */
static int same_as_input(const uint8_t *b, uint64_t n, uint64_t from, uint64_t to, size_t len)
{
    if (to > n)
        return 0;
    uint64_t mid = to < len ? to : len;
    if (from < mid && memcmp(b + from, g_in + from, (size_t)(mid - from)) != 0)
        return 0;
    for (uint64_t i = from > mid ? from : mid; i < to; i++)
        if (b[i])
            return 0;
    return 1;
}

/* What the records of the opened log say (they must all decode). */
typedef struct logsum {
    uint64_t records, max_tid;
    int have_commit, last_is_applied;
    uint64_t c_cp, c_covers, c_digest, c_n, c_entries; /* last R_CP_COMMIT */
    uint64_t applied_cp;
    int have_xfer;
    uint64_t x_tid, x_off, x_dataoff; /* last R_TRANSFER */
    uint32_t x_len;
} logsum;

static void parse_log(uint64_t n, uint64_t next_seq, logsum *s)
{
    uint64_t off = MK_LOG_DATA_START, seq = next_seq;
    memset(s, 0, sizeof *s);
    while (off < n) {
        mk_frame f;
        size_t used;
        CHECK(mk_frame_decode(g_cur + off, (size_t)(n - off), (size_t)(n - off), MK_FRAME_MAGIC,
                              &f, &used) == 0);
        CHECK(f.seq == seq);
        mk_rcur c;
        mk_rcur_init(&c, f.payload, f.len);
        s->last_is_applied = 0;
        switch (f.type) {
        case MK_R_TRANSFER: {
            mk_log l;
            CHECK(mk_log_decode(&f, &l) == 0);
            s->have_xfer = 1;
            s->x_tid = s->max_tid = l.tid;
            s->x_off = l.offset;
            s->x_len = l.length;
            s->x_dataoff = off + MK_HDR_LEN + MK_LOG_HDR_LEN;
            break;
        }
        case MK_R_CP_DATA:
            break;
        case MK_R_CP_COMMIT:
            CHECK(f.len >= 32);
            s->have_commit = 1;
            mk_rcur_u64(&c, &s->c_cp);
            mk_rcur_u64(&c, &s->c_covers);
            mk_rcur_u64(&c, &s->c_digest);
            mk_rcur_u64(&c, &s->c_n);
            CHECK(s->c_n == (f.len - 32) / 16);
            s->c_entries = off + MK_HDR_LEN + 32;
            break;
        case MK_R_CP_APPLIED:
            CHECK(f.len == 8);
            mk_rcur_u64(&c, &s->applied_cp);
            s->last_is_applied = 1;
            break;
        default:
            CHECK(!"record of unknown type in an opened log");
        }
        off += used;
        seq++;
        s->records++;
    }
    CHECK(off == n);
}

static void send_frames(mk_dest *d, mk_buf *b)
{
    CHECK(mk_dest_recv(d, mk_buf_peek(b), mk_buf_len(b), 0) == 0);
    CHECK(mk_dest_error(d) == 0);
    mk_buf_clear(b);
}

/* The single frame the destination queued, of type `type`. */
static void one_reply(mk_dest *d, uint8_t type, uint64_t seq, mk_frame *f)
{
    mk_buf *out = mk_dest_out(d);
    size_t used;
    CHECK(mk_frame_decode(mk_buf_peek(out), mk_buf_len(out), MK_MAX_PAYLOAD, MK_FRAME_MAGIC, f,
                          &used) == 0);
    CHECK(used == mk_buf_len(out));
    CHECK(f->type == type);
    CHECK(f->seq == seq);
}

/* ---- after a successful open -------------------------------------------- */

typedef struct run {
    mk_file *log, *mirror, *mirror_in, *tree;
    uint64_t viol;
    mk_dest_config cfg;
    size_t len;
    predict p;
} run;

/* The mirror's root as a tree rebuilt from scratch sees it. */
static mk_h128 rebuilt_root(mk_file *mirror, const mk_log_ident *id)
{
    mk_file *tf;
    mk_merkle *t;
    mk_h128 root;
    CHECK(mk_file_mem("fuzz/tree", &tf) == 0);
    CHECK(mk_merkle_open(tf, id->nblocks, &t) == 0);
    CHECK(mk_merkle_rebuild(t, mirror, id->block_size) == 0);
    CHECK(mk_merkle_root(t, &root) == 0);
    mk_merkle_free(t);
    mk_file_close(tf);
    return root;
}

static void promote(run *r, mk_dest *d, const mk_log_ident *id, const mk_log_info *info,
                    uint64_t logn)
{
    uint64_t vb = id->nblocks * id->block_size;
    int model = vb <= MODEL_MAX;
    if (model) {
        CHECK(mk_file_read_block(r->mirror_in, g_model, (size_t)vb, 0) == 0);
        /* Every transfer newer than the CP, in log (= tid) order. */
        uint64_t off = MK_LOG_DATA_START;
        while (off < logn) {
            mk_frame f;
            size_t used;
            mk_log l;
            CHECK(mk_frame_decode(g_cur + off, (size_t)(logn - off), (size_t)(logn - off),
                                  MK_FRAME_MAGIC, &f, &used) == 0);
            if (f.type == MK_R_TRANSFER && mk_log_decode(&f, &l) == 0 &&
                l.tid > info->covers_tid) {
                CHECK(l.offset <= vb && l.length <= vb - l.offset);
                memcpy(g_model + l.offset, l.data, l.length);
            }
            off += used;
        }
    }
    CHECK(mk_dest_promote(d) == 0);
    CHECK(fsize(r->log) == 0);
    CHECK(fsize(r->tree) == 0);
    CHECK(fsize(r->mirror) == vb);
    CHECK(r->viol == 0);
    if (model) {
        CHECK(mk_file_read_block(r->mirror_in, g_now, (size_t)vb, 0) == 0);
        CHECK(memcmp(g_now, g_model, (size_t)vb) == 0);
    }
}

/* One CP on the recovered state, then a restart that must recover it. */
static void cp_and_reopen(run *r, mk_dest **dp, const mk_log_ident *id, const mk_log_info *info,
                          const logsum *s)
{
    mk_dest *d = *dp;
    uint32_t bs = id->block_size;
    uint64_t vb = id->nblocks * bs;
    mk_cp_begin b = {info->last_cp + 1, 0, info->durable_tid};
    mk_ref ref = {0, 0, 0, 0};
    uint64_t slot_off = 0, digest = 0;
    if (s->have_xfer) {
        mk_xgeom g;
        mk_transfer_geom(s->x_off, s->x_len, bs, &g);
        if (g.nslots) {
            ref.slot = g.nslots - 1;
            ref.block = g.first_block + ref.slot;
            ref.tid = s->x_tid;
            slot_off = s->x_dataoff + g.head_len + (uint64_t)ref.slot * bs;
            ref.hash = mk_block_hash(g_cur + slot_off, bs);
            b.nrecords = 1;
            digest = mk_digest_step(0, ref.block, ref.hash);
        }
    }
    mk_buf fb;
    uint64_t seq = 1;
    mk_buf_init(&fb);
    CHECK(mk_cp_begin_encode(&fb, seq++, &b) == 0);
    if (b.nrecords)
        CHECK(mk_cp_ref_encode(&fb, seq++, b.cp, &ref, 1) == 0);
    mk_cp_commit cc = {b.cp, b.nrecords};
    CHECK(mk_cp_commit_encode(&fb, seq++, &cc) == 0);
    send_frames(d, &fb);
    mk_buf_free(&fb);

    mk_frame f;
    mk_cp_ack a;
    one_reply(d, MK_F_CP_ACK, 1, &f);
    CHECK(mk_cp_ack_decode(&f, &a) == 0);
    CHECK(a.cp == b.cp && a.napplied == b.nrecords && a.digest == digest);
    CHECK(r->viol == 0);
    if (b.nrecords) {
        CHECK(mk_file_read_block(r->mirror_in, g_blk, bs, ref.block * bs) == 0);
        CHECK(memcmp(g_blk, g_cur + slot_off, bs) == 0);
    }
    if (vb <= MODEL_MAX) {
        mk_h128 root = rebuilt_root(r->mirror_in, id);
        CHECK(root.lo == a.root_lo && root.hi == a.root_hi);
    }
    /* Nothing newer than covers_tid is in the log: it was reclaimed. */
    CHECK(fsize(r->log) == MK_LOG_DATA_START);

    /* A restart recovers the CP just acknowledged, and nothing else. */
    mk_dest_free(d);
    *dp = NULL;
    uint64_t written = mk_file_mem_written(r->mirror_in);
    CHECK(mk_dest_open(&r->cfg, r->mirror, r->log, dp) == 0);
    mk_log_info again;
    mk_log_ident id2;
    mk_dest_log_info(*dp, &again);
    CHECK(mk_dest_ident(*dp, &id2) == 0);
    CHECK(id2.volume_id == id->volume_id && id2.nblocks == id->nblocks &&
          id2.block_size == id->block_size && id2.source_id == id->source_id);
    CHECK(!again.fresh);
    CHECK(again.last_cp == b.cp && again.applied_cp == b.cp);
    CHECK(again.covers_tid == b.covers_tid && again.durable_tid == info->durable_tid);
    CHECK(again.last_digest == digest);
    CHECK(again.records == 0 && again.cut_bytes == 0);
    CHECK(mk_dest_get_stats(*dp)->redo_cps == 0);
    CHECK(mk_file_mem_written(r->mirror_in) == written);
    CHECK(r->viol == 0);
}

static void after_open(run *r, mk_dest **dp)
{
    mk_dest *d = *dp;
    const mk_dest_stats *st = mk_dest_get_stats(d);
    mk_log_info info;
    mk_log_ident id;
    mk_dest_log_info(d, &info);
    CHECK(info.fresh == r->p.fresh);
    uint64_t logn = read_log(r->log);
    logsum s;
    memset(&s, 0, sizeof s);

    if (r->p.fresh) {
        /* 7.6 step 1: the file is not changed, the mirror not touched. */
        CHECK(logn == r->len && same_as_input(g_cur, logn, 0, logn, r->len));
        CHECK(mk_dest_ident(d, &id) == MK_ESTATE);
        CHECK(fsize(r->mirror) == 0);
        id = FRESH_ID;
        info.covers_tid = info.durable_tid = info.last_cp = info.last_digest = 0;
    } else {
        const mk_log_header *h = &r->p.h;
        CHECK(mk_dest_ident(d, &id) == 0);
        CHECK(id.volume_id == h->id.volume_id && id.nblocks == h->id.nblocks &&
              id.block_size == h->id.block_size && id.source_id == h->id.source_id);
        /* The log: the input up to the end of its valid records (the
         * tail cut), then R_CP_APPLIED if a CP was redone. */
        uint64_t keep = r->p.end, full = r->len < MK_LOG_DATA_START ? MK_LOG_DATA_START : r->len;
        CHECK(st->redo_cps == (uint64_t)r->p.redo);
        CHECK(logn == keep + (r->p.redo ? APPLIED_REC_LEN : 0));
        CHECK(same_as_input(g_cur, logn, 0, keep, r->len));
        CHECK(info.cut_bytes == full - keep && st->cut_bytes == info.cut_bytes);
        CHECK(info.size == logn);
        parse_log(logn, h->next_seq, &s);
        CHECK(info.records == s.records && s.records == r->p.records + (uint64_t)r->p.redo);
        if (r->p.redo)
            CHECK(s.last_is_applied && s.applied_cp == r->p.last_cp);
        /* The state the valid records describe (7.6 steps 3-5). */
        CHECK(info.last_cp == r->p.last_cp && info.applied_cp == r->p.last_cp);
        CHECK(info.covers_tid == r->p.covers && info.durable_tid == r->p.durable &&
              info.last_digest == r->p.digest);
        CHECK(info.durable_tid == (s.have_xfer ? s.max_tid : h->base_tid));
        if (s.have_commit)
            CHECK(info.last_cp == s.c_cp && info.covers_tid == s.c_covers &&
                  info.last_digest == s.c_digest);
        CHECK(info.covers_tid <= info.durable_tid);
        /* The mirror: sized, written by the redo only, with its blocks. */
        CHECK(fsize(r->mirror) == r->p.vbytes);
        if (!st->redo_cps) {
            CHECK(mk_file_mem_written(r->mirror_in) == 0);
        } else {
            CHECK(s.have_commit);
            uint32_t bs = id.block_size;
            for (uint64_t i = 0; i < s.c_n; i++) {
                uint64_t blk = mk_get_le64(g_cur + s.c_entries + 16 * i);
                uint64_t off = mk_get_le64(g_cur + s.c_entries + 16 * i + 8);
                CHECK(off <= keep && bs <= keep - off);
                CHECK(mk_file_read_block(r->mirror_in, g_blk, bs, blk * bs) == 0);
                CHECK(memcmp(g_blk, g_cur + off, bs) == 0);
            }
        }
    }
    CHECK(r->viol == 0);

    /* HELLO (seq 0): HELLO_ACK reports the recovered state. */
    mk_buf fb;
    mk_buf_init(&fb);
    mk_hello hello = {id.volume_id, id.nblocks, id.block_size, MK_MODE_SYNC, id.source_id};
    CHECK(mk_hello_encode(&fb, 0, &hello) == 0);
    send_frames(d, &fb);
    mk_buf_free(&fb);
    mk_frame f;
    mk_hello_ack ha;
    one_reply(d, MK_F_HELLO_ACK, 0, &f);
    CHECK(mk_hello_ack_decode(&f, &ha) == 0);
    CHECK(ha.volume_id == id.volume_id && ha.nblocks == id.nblocks &&
          ha.block_size == id.block_size && ha.source_id == id.source_id);
    CHECK(ha.last_cp == info.last_cp && ha.durable_tid == info.durable_tid &&
          ha.last_digest == info.last_digest);
    mk_buf_clear(mk_dest_out(d));
    if (r->p.fresh) {
        /* 7.3: the first header, in slot 0, and a mirror of N*B. */
        mk_log_header h;
        logn = read_log(r->log);
        CHECK(logn == MK_LOG_DATA_START);
        CHECK(slot_decode(g_cur, &h) == 0);
        CHECK(h.generation == 1 && h.next_seq == 1 && h.base_cp == 0 && h.base_tid == 0 &&
              h.base_digest == 0);
        CHECK(h.id.nblocks == id.nblocks && h.id.block_size == id.block_size);
        CHECK(fsize(r->mirror) == id.nblocks * id.block_size);
    }

    if (r->len % 2 == 0)
        promote(r, d, &id, &info, logn);
    else
        cp_and_reopen(r, dp, &id, &info, &s);
}

/* ---- the harness --------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    if (!g_in)
        LLVMFuzzerInitialize(NULL, NULL);
    memcpy(g_in, data, size);
    for (size_t s = 0; s < 2; s++) {
        uint8_t *slot = g_in + s * MK_LOG_SLOT_LEN;
        if (size >= (s + 1) * MK_LOG_SLOT_LEN &&
            memcmp(slot + MK_LOG_SLOT_LEN - 8, FIXSUM, 8) == 0)
            mk_put_le64(slot + MK_LOG_SLOT_LEN - 8, XXH3_64bits(slot, MK_LOG_SLOT_LEN - 8));
    }

    run r;
    memset(&r, 0, sizeof r);
    r.len = size;
    predict_open(g_in, size, &r.p);
    uint64_t limit = r.p.fresh ? FRESH_ID.nblocks * FRESH_ID.block_size : r.p.vbytes;

    CHECK(mk_file_mem("ref/dest/log", &r.log) == 0);
    if (size)
        CHECK(mk_file_pwrite(r.log, g_in, size, 0) == 0);
    CHECK(mk_file_mem("ref/dest/mirror", &r.mirror_in) == 0);
    CHECK(mk_file_bounded(r.mirror_in, limit, &r.viol, &r.mirror) == 0);
    CHECK(mk_file_mem("ref/dest/tree", &r.tree) == 0);
    /* A large volume gets the (non-empty) tree of its all-zero mirror, so
     * opening does not read N*B bytes to rebuild it. */
    if (r.p.pick >= 0 && r.p.vbytes > REBUILD_MAX)
        CHECK(mk_file_truncate(r.tree, 16) == 0);
    r.cfg.tree = r.tree;

    mk_dest *d = NULL;
    int rc = mk_dest_open(&r.cfg, r.mirror, r.log, &d);
    if (g_trace) {
        mk_log_info li = {0};
        if (d)
            mk_dest_log_info(d, &li);
        fprintf(stderr, "fuzz_logstore: %zu bytes: %s%s%s, records %llu, cut %llu, last_cp %llu, "
                        "redo %llu, path %s\n",
                size, rc ? "open failed with " : "opened", rc ? mk_errname(rc) : "",
                r.p.fresh ? " fresh" : "", (unsigned long long)li.records,
                (unsigned long long)li.cut_bytes, (unsigned long long)li.last_cp,
                d ? (unsigned long long)mk_dest_get_stats(d)->redo_cps : 0ull,
                rc ? "-" : size % 2 ? "cp+reopen" : "promote");
    }
    if (rc != r.p.err)
        fprintf(stderr, "fuzz_logstore: opening says %s, SPEC 7.6 %s\n",
                rc ? mk_errname(rc) : "ok", r.p.err ? mk_errname(r.p.err) : "ok");
    CHECK(rc == r.p.err);
    if (rc) {
        /* Nothing written to the mirror; the log untouched unless the
         * error came after the accepted scan had cut its tail (6-9). */
        CHECK(d == NULL);
        CHECK(mk_file_mem_written(r.mirror_in) == 0);
        CHECK(r.viol == 0);
        uint64_t logn = read_log(r.log);
        uint64_t msize = fsize(r.mirror);
        if (r.p.after_scan) {
            CHECK(logn == r.p.end && same_as_input(g_cur, logn, 0, logn, size));
            CHECK(msize == (rc == MK_ENOSPC ? 0 : r.p.vbytes));
        } else {
            CHECK(logn == size && same_as_input(g_cur, logn, 0, logn, size));
            CHECK(msize == 0);
        }
    } else {
        /* A crafted header one short of the last generation: the log
         * refuses every further header write (SPEC 7.3), so the HELLO,
         * CP and promotion that follow are not this harness's business. */
        if (r.p.fresh || r.p.h.generation < UINT64_MAX - 1)
            after_open(&r, &d);
    }
    mk_dest_free(d);
    mk_file_close(r.log);
    mk_file_close(r.mirror);
    mk_file_close(r.tree);
    return 0;
}
