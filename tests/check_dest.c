/*
 * check_dest.c - the destination engine (mk_dest.h) against hand-written
 * source streams, and its crash behaviour.
 *
 * Most tests drive one mk_dest with frames encoded here (mkt_peer) on
 * memory files wrapped by mkt_wfile, which counts syncs and traces the
 * order of storage calls.  The crash tests (SPEC.md 7.4, I3) run a real
 * source against the destination with the mirror and log on
 * crash-simulating memory files sharing one mk_crash_clock, and crash at
 * every tick: SQLite's enumeration, one run with limit 0 to count the
 * ticks, then one run per tick.
 *
 * Geometry: 64 blocks of 512 bytes unless a test says otherwise.  Transfer
 * 1 (LOG tid 1) is 4 whole blocks at offset 0, content X, so its slot i
 * holds block i.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mk_engine_test.h"

#define NB 64u
#define BS 512u
#define VB ((uint64_t)NB * BS)

static uint8_t X[4 * BS]; /* transfer 1: blocks 0..3 */
static uint8_t Y[BS], Z[BS];

static void data_init(void)
{
    mkt_fill(X, sizeof X, 100);
    mkt_fill(Y, sizeof Y, 200);
    mkt_fill(Z, sizeof Z, 300);
}

/* ---- fixture: a destination under a hand-written source ------------------ */

typedef struct dfx {
    mkt_wfile *wm, *wl;
    mk_file *mirror, *log;
    mk_dest *d;
    mk_dest_config cfg;
    mkt_peer p;
    mkt_trace *tr;
} dfx;

static void dfx_files(dfx *x)
{
    mk_file *m, *l;
    mkt_ok(mk_file_mem("test/dest/mirror", &m));
    mkt_ok(mk_file_mem("test/dest/log", &l));
    x->wm = mkt_wrap(m, NULL);
    x->wl = mkt_wrap(l, NULL);
    x->wm->id = 'M';
    x->wl->id = 'L';
    x->mirror = &x->wm->base;
    x->log = &x->wl->base;
}

static void dfx_open(dfx *x)
{
    memset(x, 0, sizeof *x);
    data_init();
    dfx_files(x);
    mkt_peer_init(&x->p);
    mkt_ok(mk_dest_open(&x->cfg, x->mirror, x->log, &x->d));
}

static void dfx_free(dfx *x)
{
    mk_dest_free(x->d);
    mk_file_close(x->mirror);
    mk_file_close(x->log);
    mkt_peer_free(&x->p);
    free(x->tr);
}

static void dfx_trace(dfx *x)
{
    if (!x->tr) {
        x->tr = calloc(1, sizeof *x->tr);
        ck_assert_ptr_nonnull(x->tr);
    }
    x->tr->n = 0;
    x->wm->trace = x->wl->trace = x->tr;
}

static int dfx_send(dfx *x) { return mkt_to_dest(&x->p, x->d); }

static mkt_frames *dfx_out(dfx *x) { return mkt_take(mk_dest_out(x->d)); }

/* Asserts the output is exactly one HELLO_ACK with these values. */
static void expect_hello_ack(dfx *x, uint64_t last_cp, uint64_t durable)
{
    mkt_frames *fs = dfx_out(x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_HELLO_ACK);
    ck_assert_uint_eq(fs->f[0].seq, 0);
    mk_hello_ack a;
    mkt_ok(mk_hello_ack_decode(&fs->f[0], &a));
    ck_assert_uint_eq(a.volume_id, MKT_VOLUME_ID);
    ck_assert_uint_eq(a.nblocks, NB);
    ck_assert_uint_eq(a.block_size, BS);
    ck_assert_uint_eq(a.last_cp, last_cp);
    ck_assert_uint_eq(a.durable_tid, durable);
    ck_assert_uint_eq(a.source_id, MKT_SOURCE_ID);
    if (last_cp == 0)
        ck_assert_uint_eq(a.last_digest, 0);
    mkt_frames_free(fs);
}

/* HELLO from the test's source, encoded (not sent). */
static void dfx_hello_frame(dfx *x) { mkt_hello(&x->p, NB, BS, MK_MODE_SYNC, MKT_SOURCE_ID); }

/* HELLO, sent and accepted. */
static void dfx_hello(dfx *x)
{
    dfx_hello_frame(x);
    mkt_ok(dfx_send(x));
}

/* A new connection from the same source, its HELLO encoded. */
static void dfx_reconnect(dfx *x)
{
    mk_dest_session_end(x->d);
    mk_buf_clear(&x->p.b);
    x->p.seq = 0;
    dfx_hello_frame(x);
}

/* ... and accepted. */
static void dfx_new_session(dfx *x)
{
    dfx_reconnect(x);
    mkt_ok(dfx_send(x));
}

/* HELLO + LOG tid 1 (blocks 0..3), both answered. */
static void dfx_ready(dfx *x)
{
    dfx_hello(x);
    expect_hello_ack(x, 0, 0);
    mkt_logf(&x->p, 1, 0, sizeof X, X);
    mkt_ok(dfx_send(x));
    mkt_frames *fs = dfx_out(x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_LOG_ACK);
    uint64_t tid;
    mkt_ok(mk_log_ack_decode(&fs->f[0], &tid));
    ck_assert_uint_eq(tid, 1);
    mkt_frames_free(fs);
}

static mk_ref ref_ok(uint64_t block)
{
    return (mk_ref){block, 1, (uint32_t)block, mk_block_hash(X + block * BS, BS)};
}

static uint64_t last_cp(dfx *x)
{
    mk_log_info info;
    mk_dest_log_info(x->d, &info);
    return info.last_cp;
}

/* The CP_ACK a correct destination must send for these (block, bytes)
 * records, digest computed here in ascending block order. */
static void expect_cp_ack(const mk_frame *f, uint64_t cp, uint64_t n, const uint64_t *blocks,
                          const uint8_t *const *data)
{
    mk_cp_ack a;
    ck_assert_uint_eq(f->type, MK_F_CP_ACK);
    mkt_ok(mk_cp_ack_decode(f, &a));
    ck_assert_uint_eq(a.cp, cp);
    ck_assert_uint_eq(a.napplied, n);
    uint64_t dg = 0;
    for (uint64_t i = 0; i < n; i++)
        dg = mk_digest_step(dg, blocks[i], mk_block_hash(data[i], BS));
    ck_assert_uint_eq(a.digest, dg);
}

/* ---- 2.1 / 2.2 / 2.3: sessions -------------------------------------------- */

START_TEST(test_s2_1_hello_adopts_identity)
{
    dfx x;
    dfx_open(&x);
    mk_log_ident id;
    mkt_assert_err(mk_dest_ident(x.d, &id), MK_ESTATE);
    ck_assert_uint_eq(mkt_fsize(x.log), 0);
    ck_assert_uint_eq(mkt_fsize(x.mirror), 0);
    dfx_hello(&x);
    expect_hello_ack(&x, 0, 0);
    mkt_ok(mk_dest_ident(x.d, &id));
    ck_assert_uint_eq(id.volume_id, MKT_VOLUME_ID);
    ck_assert_uint_eq(id.nblocks, NB);
    ck_assert_uint_eq(id.block_size, BS);
    ck_assert_uint_eq(id.source_id, MKT_SOURCE_ID);
    /* the log has its first header; the mirror its size, all zeros */
    ck_assert_uint_eq(mkt_fsize(x.log), MK_LOG_DATA_START);
    ck_assert_uint_eq(mkt_fsize(x.mirror), VB);
    uint8_t *zero = calloc(1, VB);
    mkt_assert_image(x.mirror, zero, NB, BS);
    free(zero);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->sessions, 1);
    /* the identity survives a restart */
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    mkt_ok(mk_dest_ident(x.d, &id));
    ck_assert_uint_eq(id.source_id, MKT_SOURCE_ID);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s2_3_adoption_writes_header_then_sizes_mirror)
{
    dfx x;
    dfx_open(&x);
    dfx_trace(&x);
    dfx_hello(&x);
    expect_hello_ack(&x, 0, 0);
    /* log: truncate to 256, header slot 0, sync; then mirror: size, sync */
    static const struct { uint8_t file, op, type; uint64_t off; } want[] = {
        {'L', 't', 0, 256}, {'L', 'w', 'H', 0}, {'L', 's', 0, 0},
        {'M', 't', 0, VB},  {'M', 's', 0, 0},
    };
    ck_assert_uint_eq(x.tr->n, sizeof want / sizeof *want);
    for (size_t i = 0; i < x.tr->n; i++) {
        ck_assert_uint_eq(x.tr->ev[i].file, want[i].file);
        ck_assert_uint_eq(x.tr->ev[i].op, want[i].op);
        ck_assert_uint_eq(x.tr->ev[i].type, want[i].type);
        ck_assert_uint_eq(x.tr->ev[i].off, want[i].off);
    }
    dfx_free(&x);
}
END_TEST

/* A raw HELLO payload with the given fields. */
static void hello_payload(uint8_t *p, uint64_t nblocks, uint32_t bs, uint8_t mode,
                          uint8_t reserved)
{
    memset(p, 0, 32);
    mk_put_le64(p, MKT_VOLUME_ID);
    mk_put_le64(p + 8, nblocks);
    mkt_put_le32(p + 16, bs);
    p[20] = mode;
    p[22] = reserved;
    mk_put_le64(p + 24, MKT_SOURCE_ID);
}

enum { HB_LENGTH, HB_RESERVED, HB_BLOCKSIZE, HB_MODE0, HB_MODE4, HB_NBLOCKS0,
       HB_NBLOCKS_HUGE, HB_COUNT };

START_TEST(test_s2_1_hello_decode_errors)
{
    static const int want[HB_COUNT] = {MK_ELENGTH, MK_ERESERVED, MK_EBLOCKSIZE, MK_EINVAL,
                                       MK_EINVAL, MK_ERANGE, MK_ERANGE};
    uint8_t p[40] = {0};
    uint32_t plen = 32;
    hello_payload(p, NB, BS, 1, 0);
    switch (_i) {
    case HB_LENGTH: plen = 33; break;
    case HB_RESERVED: hello_payload(p, NB, BS, 1, 1); break;
    case HB_BLOCKSIZE: hello_payload(p, NB, 1000, 1, 0); break;
    case HB_MODE0: hello_payload(p, NB, BS, 0, 0); break;
    case HB_MODE4: hello_payload(p, NB, BS, 4, 0); break;
    case HB_NBLOCKS0: hello_payload(p, 0, BS, 1, 0); break;
    case HB_NBLOCKS_HUGE: hello_payload(p, UINT64_MAX / BS + 1, BS, 1, 0); break;
    }
    dfx x;
    dfx_open(&x);
    mkt_raw(&x.p, MK_F_HELLO, p, plen);
    mkt_assert_err(dfx_send(&x), want[_i]);
    mkt_assert_error_frame(mk_dest_out(x.d), want[_i]);
    /* nothing adopted, nothing written */
    ck_assert_uint_eq(mkt_fsize(x.log), 0);
    ck_assert_uint_eq(mkt_fsize(x.mirror), 0);
    ck_assert_uint_eq(x.wl->writes + x.wm->writes + x.wm->truncs + x.wl->truncs, 0);
    /* a good HELLO on the next connection is adopted */
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 0);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s2_3_frames_before_hello_estate)
{
    static const uint8_t types[] = {MK_F_LOG, MK_F_CP_BEGIN, MK_F_CP_COMMIT, MK_F_ERROR,
                                    MK_F_HELLO_ACK, 0x42};
    for (size_t i = 0; i < sizeof types; i++) {
        dfx x;
        dfx_open(&x);
        switch (types[i]) {
        case MK_F_LOG: mkt_logf(&x.p, 1, 0, BS, Y); break;
        case MK_F_CP_BEGIN: mkt_cp_begin(&x.p, 1, 0, 0); break;
        case MK_F_CP_COMMIT: mkt_cp_commit(&x.p, 1, 0); break;
        case MK_F_ERROR: mkt_ok(mk_error_encode(&x.p.b, x.p.seq++, MK_EIO, "x")); break;
        case MK_F_HELLO_ACK: mkt_hello_ack(&x.p, NB, BS, 0, 0, MKT_SOURCE_ID, 0); break;
        default: mkt_raw(&x.p, types[i], Y, 8); break;
        }
        mkt_assert_err(dfx_send(&x), MK_ESTATE);
        mkt_frames *fs = dfx_out(&x);
        ck_assert_uint_eq(fs->n, 1);
        ck_assert_uint_eq(fs->f[0].seq, 0);
        mkt_frames_free(fs);
        ck_assert_uint_eq(mkt_fsize(x.log), 0);
        ck_assert_uint_eq(mkt_fsize(x.mirror), 0);
        /* the session stays refused until it ends */
        dfx_hello_frame(&x);
        mkt_assert_err(dfx_send(&x), MK_ESTATE);
        ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
        dfx_free(&x);
    }
}
END_TEST

START_TEST(test_s2_3_second_hello_estate)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    uint64_t len0, len1;
    uint8_t *before = mkt_slurp(x.log, &len0);
    dfx_hello_frame(&x);
    mkt_assert_err(dfx_send(&x), MK_ESTATE);
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_ERROR);
    ck_assert_uint_eq(fs->f[0].seq, 2); /* after HELLO_ACK 0 and LOG_ACK 1 */
    mkt_frames_free(fs);
    uint8_t *after = mkt_slurp(x.log, &len1);
    ck_assert_uint_eq(len0, len1);
    ck_assert_mem_eq(before, after, len0);
    free(before);
    free(after);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s2_3_other_source_id_epeer)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_dest_session_end(x.d);
    x.p.seq = 0;
    mkt_hello(&x.p, NB, BS, MK_MODE_SYNC, MKT_SOURCE_ID + 1);
    mkt_assert_err(dfx_send(&x), MK_EPEER);
    mkt_assert_error_frame(mk_dest_out(x.d), MK_EPEER);
    /* the recorded source is unchanged and still served */
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 1);
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    mk_log_ident id;
    mkt_ok(mk_dest_ident(x.d, &id));
    ck_assert_uint_eq(id.source_id, MKT_SOURCE_ID);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s2_3_volume_mismatch_evolume)
{
    /* against the recorded identity */
    for (int k = 0; k < 3; k++) {
        dfx x;
        dfx_open(&x);
        dfx_ready(&x);
        mk_dest_session_end(x.d);
        x.p.seq = 0;
        mk_hello h = {MKT_VOLUME_ID, NB, BS, MK_MODE_SYNC, MKT_SOURCE_ID};
        if (k == 0) h.volume_id++;
        if (k == 1) h.nblocks = NB * 2;
        if (k == 2) h.block_size = BS * 2;
        mkt_ok(mk_hello_encode(&x.p.b, x.p.seq++, &h));
        mkt_assert_err(dfx_send(&x), MK_EVOLUME);
        mkt_assert_error_frame(mk_dest_out(x.d), MK_EVOLUME);
        dfx_free(&x);
    }
    /* against a configured identity, before adoption: nothing written */
    for (int k = 0; k < 3; k++) {
        dfx x;
        memset(&x, 0, sizeof x);
        data_init();
        dfx_files(&x);
        mkt_peer_init(&x.p);
        x.cfg = (mk_dest_config){k == 0 ? MKT_VOLUME_ID + 1 : 0, k == 1 ? NB + 1 : 0,
                                 k == 2 ? 4096 : 0, NULL, NULL, NULL};
        mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
        dfx_hello_frame(&x);
        mkt_assert_err(dfx_send(&x), MK_EVOLUME);
        mkt_assert_error_frame(mk_dest_out(x.d), MK_EVOLUME);
        ck_assert_uint_eq(mkt_fsize(x.log), 0);
        ck_assert_uint_eq(mkt_fsize(x.mirror), 0);
        dfx_free(&x);
    }
    /* an existing log against a different configuration: refuse to start */
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_dest_free(x.d);
    x.d = NULL;
    mk_dest_config bad[3] = {{.volume_id = MKT_VOLUME_ID + 1}, {.nblocks = NB + 1}, {.block_size = 4096}};
    for (int k = 0; k < 3; k++) {
        mk_dest *d = NULL;
        mkt_assert_err(mk_dest_open(&bad[k], x.mirror, x.log, &d), MK_EVOLUME);
        ck_assert_ptr_null(d);
    }
    mk_dest_config good = {.volume_id = MKT_VOLUME_ID, .nblocks = NB, .block_size = BS};
    mkt_ok(mk_dest_open(&good, x.mirror, x.log, &x.d));
    dfx_free(&x);
}
END_TEST

START_TEST(test_s2_3_nonempty_mirror_fresh_log_ediverged)
{
    dfx x;
    dfx_open(&x);
    /* an image from another history, its log lost */
    mkt_ok(mk_file_pwrite(x.mirror, Y, BS, 3 * BS));
    dfx_hello_frame(&x);
    mkt_assert_err(dfx_send(&x), MK_EDIVERGED);
    mkt_assert_error_frame(mk_dest_out(x.d), MK_EDIVERGED);
    ck_assert_uint_eq(mkt_fsize(x.log), 0);
    ck_assert_uint_eq(mkt_fsize(x.mirror), 4 * BS);
    uint8_t b[BS];
    mkt_ok(mk_file_read_exact(x.mirror, b, BS, 3 * BS));
    ck_assert_mem_eq(b, Y, BS);
    mk_log_ident id;
    mkt_assert_err(mk_dest_ident(x.d, &id), MK_ESTATE);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s2_4_session_end_discards_open_cp)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_cp_begin(&x.p, 1, 2, 1);
    mkt_cp_data(&x.p, 1, 10, Y, BS);
    mk_ref r = ref_ok(0);
    mkt_cp_ref(&x.p, 1, &r, 1);
    mkt_ok(dfx_send(&x));
    ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 1);
    /* the same CP again from scratch: no EDUPBLOCK, no ESTATE */
    mkt_cp_begin(&x.p, 1, 2, 1);
    mkt_cp_data(&x.p, 1, 10, Z, BS);
    mkt_cp_ref(&x.p, 1, &r, 1);
    mkt_cp_commit(&x.p, 1, 2);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    uint64_t blocks[2] = {0, 10};
    const uint8_t *data[2] = {X, Z};
    expect_cp_ack(&fs->f[0], 1, 2, blocks, data);
    mkt_frames_free(fs);
    /* the mirror holds the resent CP, not the discarded one */
    uint8_t b[BS];
    mkt_ok(mk_file_read_exact(x.mirror, b, BS, 10 * BS));
    ck_assert_mem_eq(b, Z, BS);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s2_4_session_end_discards_commit_waiting_for_resend)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref r = ref_ok(1);
    r.hash ^= 1;
    mkt_cp_begin(&x.p, 1, 1, 1);
    mkt_cp_ref(&x.p, 1, &r, 1);
    mkt_cp_commit(&x.p, 1, 1);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_NAK);
    mkt_frames_free(fs);
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 1);
    ck_assert_uint_eq(last_cp(&x), 0);
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    ck_assert_uint_eq(last_cp(&x), 0);
    dfx_free(&x);
}
END_TEST

/* ---- 3.4 / 3.5 / 3.6: malformed input ---------------------------------------- */

enum {
    BF_CHECKSUM, BF_MAGIC, BF_VERSION, BF_FLAGS, BF_LENGTH_HDR, BF_TYPE_UNKNOWN,
    BF_TYPE_RECORD, BF_TYPE_LOG_ACK, BF_SEQ_SKIP, BF_SEQ_REPEAT, BF_LOG_SHORT,
    BF_LOG_RESERVED, BF_LOG_ZERO, BF_LOG_LEN_MISMATCH, BF_LOG_TID0, BF_LOG_TID_DUP,
    BF_LOG_RANGE, BF_LOG_OFFSET_PAST, BF_CPB_LENGTH, BF_CPD_LENGTH, BF_CPREF_RESERVED,
    BF_CPREF_ENTRY_RESERVED, BF_CPREF_COUNT0, BF_CPREF_COUNT_LEN, BF_COMMIT_LENGTH,
    BF_ERROR_MALFORMED, BF_COUNT
};

static const int BF_WANT[BF_COUNT] = {
    [BF_CHECKSUM] = MK_ECHECKSUM, [BF_MAGIC] = MK_EMAGIC, [BF_VERSION] = MK_EVERSION,
    [BF_FLAGS] = MK_ERESERVED, [BF_LENGTH_HDR] = MK_ELENGTH, [BF_TYPE_UNKNOWN] = MK_ETYPE,
    [BF_TYPE_RECORD] = MK_ETYPE, [BF_TYPE_LOG_ACK] = MK_ETYPE, [BF_SEQ_SKIP] = MK_ESEQ,
    [BF_SEQ_REPEAT] = MK_ESEQ, [BF_LOG_SHORT] = MK_ELENGTH, [BF_LOG_RESERVED] = MK_ERESERVED,
    [BF_LOG_ZERO] = MK_EZEROLEN, [BF_LOG_LEN_MISMATCH] = MK_ELENGTH, [BF_LOG_TID0] = MK_ETID,
    [BF_LOG_TID_DUP] = MK_ETID, [BF_LOG_RANGE] = MK_ERANGE, [BF_LOG_OFFSET_PAST] = MK_ERANGE,
    [BF_CPB_LENGTH] = MK_ELENGTH, [BF_CPD_LENGTH] = MK_ELENGTH,
    [BF_CPREF_RESERVED] = MK_ERESERVED, [BF_CPREF_ENTRY_RESERVED] = MK_ERESERVED,
    [BF_CPREF_COUNT0] = MK_ELENGTH, [BF_CPREF_COUNT_LEN] = MK_ELENGTH,
    [BF_COMMIT_LENGTH] = MK_ELENGTH, [BF_ERROR_MALFORMED] = MK_ELENGTH,
};

/* Builds bad frame _i with seq 2 (after HELLO and LOG tid 1) into f;
 * returns how many of its bytes to deliver. */
static size_t bad_frame(int which, uint8_t *f)
{
    uint8_t p[64 + BS];
    size_t n;
    memset(p, 0, sizeof p);
    /* the base: LOG tid 2 of block 10 */
    mk_put_le64(p, 2);
    mk_put_le64(p + 8, 10 * BS);
    mkt_put_le32(p + 16, BS);
    memcpy(p + 24, Y, BS);
    n = mkt_raw_frame(f, MK_F_LOG, 2, p, 24 + BS);
    switch (which) {
    case BF_CHECKSUM: f[MK_HDR_LEN + 100] ^= 1; break;
    case BF_MAGIC: f[1] ^= 1; break;
    case BF_VERSION: f[4] = 2; break;
    case BF_FLAGS: f[7] = 0x80; mkt_reseal(f); break;
    case BF_LENGTH_HDR: mkt_put_le32(f + 8, MK_MAX_PAYLOAD + 1); return MK_HDR_LEN;
    case BF_TYPE_UNKNOWN: f[5] = 0x42; mkt_reseal(f); break;
    case BF_TYPE_RECORD: f[5] = MK_R_TRANSFER; mkt_reseal(f); break;
    case BF_TYPE_LOG_ACK: f[5] = MK_F_LOG_ACK; mkt_reseal(f); break;
    case BF_SEQ_SKIP: mk_put_le64(f + 12, 3); mkt_reseal(f); break;
    case BF_SEQ_REPEAT: mk_put_le64(f + 12, 1); mkt_reseal(f); break;
    case BF_LOG_SHORT: n = mkt_raw_frame(f, MK_F_LOG, 2, p, 20); break;
    case BF_LOG_RESERVED: p[23] = 1; n = mkt_raw_frame(f, MK_F_LOG, 2, p, 24 + BS); break;
    case BF_LOG_ZERO: mkt_put_le32(p + 16, 0); n = mkt_raw_frame(f, MK_F_LOG, 2, p, 24); break;
    case BF_LOG_LEN_MISMATCH:
        mkt_put_le32(p + 16, BS + 1);
        n = mkt_raw_frame(f, MK_F_LOG, 2, p, 24 + BS);
        break;
    case BF_LOG_TID0: mk_put_le64(p, 0); n = mkt_raw_frame(f, MK_F_LOG, 2, p, 24 + BS); break;
    case BF_LOG_TID_DUP: mk_put_le64(p, 1); n = mkt_raw_frame(f, MK_F_LOG, 2, p, 24 + BS); break;
    case BF_LOG_RANGE:
        mk_put_le64(p + 8, VB - 100);
        n = mkt_raw_frame(f, MK_F_LOG, 2, p, 24 + BS);
        break;
    case BF_LOG_OFFSET_PAST:
        mk_put_le64(p + 8, VB + 1);
        mkt_put_le32(p + 16, 1);
        n = mkt_raw_frame(f, MK_F_LOG, 2, p, 25);
        break;
    case BF_CPB_LENGTH: n = mkt_raw_frame(f, MK_F_CP_BEGIN, 2, p, 23); break;
    case BF_CPD_LENGTH: n = mkt_raw_frame(f, MK_F_CP_DATA, 2, p, 16 + BS - 1); break;
    case BF_CPREF_RESERVED:
    case BF_CPREF_ENTRY_RESERVED:
    case BF_CPREF_COUNT0:
    case BF_CPREF_COUNT_LEN: {
        mk_ref r = ref_ok(0);
        memset(p, 0, sizeof p);
        mk_put_le64(p, 1);
        mkt_put_le32(p + 8, which == BF_CPREF_COUNT0 ? 0 : which == BF_CPREF_COUNT_LEN ? 2 : 1);
        if (which == BF_CPREF_RESERVED)
            p[13] = 1;
        mk_put_le64(p + 16, r.block);
        mk_put_le64(p + 24, r.tid);
        mkt_put_le32(p + 32, r.slot);
        if (which == BF_CPREF_ENTRY_RESERVED)
            p[36] = 1;
        mk_put_le64(p + 40, r.hash);
        n = mkt_raw_frame(f, MK_F_CP_REF, 2, p, 48);
        break;
    }
    case BF_COMMIT_LENGTH: n = mkt_raw_frame(f, MK_F_CP_COMMIT, 2, p, 17); break;
    case BF_ERROR_MALFORMED:
        mkt_put_le32(p, (uint32_t)MK_EIO);
        mkt_put_le32(p + 4, 10); /* claims 10 bytes of message, has 3 */
        n = mkt_raw_frame(f, MK_F_ERROR, 2, p, 11);
        break;
    }
    return n;
}

START_TEST(test_s3_4_bad_frame_refused_nothing_applied)
{
    uint8_t *f = malloc(2 * (MK_FRAME_OVERHEAD + 64 + BS));
    ck_assert_ptr_nonnull(f);
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    size_t n = bad_frame(_i, f);
    int want = BF_WANT[_i];
    uint64_t llen0, mlen0, llen1, mlen1;
    uint8_t *log0 = mkt_slurp(x.log, &llen0), *mir0 = mkt_slurp(x.mirror, &mlen0);
    uint64_t syncs0 = x.wl->syncs, writes0 = x.wl->writes + x.wm->writes;
    mkt_assert_err(mk_dest_recv(x.d, f, n, 0), want);
    mkt_assert_err(mk_dest_error(x.d), want);
    if (_i == BF_ERROR_MALFORMED) {
        /* a received ERROR, even malformed, is never answered */
        ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
    } else {
        mkt_frames *fs = dfx_out(&x);
        ck_assert_uint_eq(fs->n, 1);
        ck_assert_uint_eq(fs->f[0].type, MK_F_ERROR);
        ck_assert_uint_eq(fs->f[0].seq, 2);
        mk_error_frame e;
        mkt_ok(mk_error_decode(&fs->f[0], &e));
        mkt_assert_err(e.code, want);
        mkt_frames_free(fs);
    }
    /* I4: nothing written because of it */
    ck_assert_uint_eq(x.wl->writes + x.wm->writes, writes0);
    ck_assert_uint_eq(x.wl->syncs, syncs0);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->transfers, 1);
    /* no further input on this session, not even a valid LOG */
    mkt_logf(&x.p, 2, 10 * BS, BS, Y);
    mkt_assert_err(dfx_send(&x), want);
    ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
    uint8_t *log1 = mkt_slurp(x.log, &llen1), *mir1 = mkt_slurp(x.mirror, &mlen1);
    ck_assert_uint_eq(llen0, llen1);
    ck_assert_uint_eq(mlen0, mlen1);
    ck_assert_mem_eq(log0, log1, llen0);
    ck_assert_mem_eq(mir0, mir1, mlen0);
    /* the next session is served, and tid 1 is all the log has */
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 1);
    mkt_ok(mk_dest_error(x.d));
    free(log0);
    free(log1);
    free(mir0);
    free(mir1);
    free(f);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s3_4_frames_before_bad_frame_stay_accepted)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_logf(&x.p, 2, 10 * BS, BS, Y);
    mkt_logf(&x.p, 3, 11 * BS, BS, Z);
    uint8_t junk[MK_FRAME_OVERHEAD + 8];
    mkt_raw_frame(junk, MK_F_LOG_ACK, x.p.seq++, Y, 8); /* wrong direction */
    mkt_ok(mk_buf_append(&x.p.b, junk, sizeof junk));
    mkt_assert_err(dfx_send(&x), MK_ETYPE);
    /* no LOG_ACK for them: the batch ended in an error */
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_ERROR);
    mkt_frames_free(fs);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->transfers, 3);
    /* they are made durable before the next HELLO_ACK reports them */
    uint64_t syncs = x.wl->syncs;
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 3);
    ck_assert_uint_eq(x.wl->syncs, syncs + 1);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s3_4_partial_frame_discarded_at_session_end)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_logf(&x.p, 2, 10 * BS, BS, Y);
    size_t n = mk_buf_len(&x.p.b);
    uint64_t writes = x.wl->writes;
    /* every prefix of the frame waits for more bytes */
    for (size_t k = 1; k < n; k += 37) {
        mkt_ok(mk_dest_recv(x.d, mk_buf_peek(&x.p.b), k, 0));
        ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
        ck_assert_uint_eq(x.wl->writes, writes);
        mk_dest_session_end(x.d);
    }
    mkt_ok(mk_dest_recv(x.d, mk_buf_peek(&x.p.b), n - 1, 0));
    mk_buf_clear(&x.p.b);
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 1);
    ck_assert_uint_eq(x.wl->writes, writes);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->transfers, 1);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s3_5_first_frame_seq_must_be_0)
{
    dfx x;
    dfx_open(&x);
    x.p.seq = 1;
    dfx_hello_frame(&x);
    mkt_assert_err(dfx_send(&x), MK_ESEQ);
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].seq, 0);
    mkt_frames_free(fs);
    ck_assert_uint_eq(mkt_fsize(x.log), 0);
    /* counters restart with each connection */
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 0);
    mkt_logf(&x.p, 1, 0, BS, Y);
    mkt_ok(dfx_send(&x));
    mkt_frames *f2 = dfx_out(&x);
    ck_assert_uint_eq(f2->n, 1);
    ck_assert_uint_eq(f2->f[0].seq, 1);
    mkt_frames_free(f2);
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 1);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s3_6_received_error_ends_session_without_reply)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_ok(mk_error_encode(&x.p.b, x.p.seq++, MK_EDIGEST, "digest"));
    mkt_assert_err(dfx_send(&x), MK_EREMOTE);
    ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
    mkt_logf(&x.p, 2, 0, BS, Y);
    mkt_assert_err(dfx_send(&x), MK_EREMOTE);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->transfers, 1);
    /* any code value is accepted, even one the registry lacks */
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 1);
    mkt_ok(mk_error_encode(&x.p.b, x.p.seq++, -9999, NULL));
    mkt_assert_err(dfx_send(&x), MK_EREMOTE);
    ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
    dfx_free(&x);
}
END_TEST

/* 8.5: a protocol violation ends the session only; a storage failure ends
 * the engine until it is reopened, which recovers from the log. */
START_TEST(test_s8_5_session_error_cleared_engine_error_sticky)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    /* session error: CP_COMMIT without a CP */
    mkt_cp_commit(&x.p, 1, 0);
    mkt_assert_err(dfx_send(&x), MK_ESTATE);
    mkt_assert_err(mk_dest_error(x.d), MK_ESTATE);
    mkt_frames_free(dfx_out(&x));
    mkt_logf(&x.p, 2, BS, BS, Y);
    mkt_assert_err(dfx_send(&x), MK_ESTATE); /* sticky for the session */
    dfx_new_session(&x);                     /* cleared at its end */
    expect_hello_ack(&x, 0, 1);
    mkt_ok(mk_dest_error(x.d));
    mkt_logf(&x.p, 2, BS, BS, Y);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    /* engine error: the log cannot be synced */
    x.wl->fail_sync = MK_ENOSPC;
    mkt_logf(&x.p, 3, 2 * BS, BS, Z);
    mkt_assert_err(dfx_send(&x), MK_ENOSPC);
    mkt_assert_error_frame(mk_dest_out(x.d), MK_ENOSPC);
    for (int i = 0; i < 2; i++) {
        dfx_reconnect(&x); /* no session is served again */
        mkt_assert_err(dfx_send(&x), MK_ENOSPC);
        ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
        mkt_assert_err(mk_dest_error(x.d), MK_ENOSPC);
        mkt_assert_err(mk_dest_promote(x.d), MK_ENOSPC);
    }
    /* a restart recovers: tid 3 was appended, and is durable now */
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 3);
    dfx_free(&x);
}
END_TEST

/* ---- 4.3 / 4.4 / 4.5: log forwarding --------------------------------------- */

START_TEST(test_s4_4_group_commit_one_sync_per_batch)
{
    dfx x;
    dfx_open(&x);
    dfx_hello(&x);
    expect_hello_ack(&x, 0, 0);
    uint8_t d[BS];
    /* ten transfers in one read: one sync, one cumulative LOG_ACK */
    uint64_t syncs = x.wl->syncs;
    for (uint64_t t = 1; t <= 10; t++) {
        mkt_fill(d, BS, t);
        mkt_logf(&x.p, t, t * BS, BS, d);
    }
    mkt_ok(dfx_send(&x));
    ck_assert_uint_eq(x.wl->syncs, syncs + 1);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->log_syncs, 1);
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    uint64_t tid;
    mkt_ok(mk_log_ack_decode(&fs->f[0], &tid));
    ck_assert_uint_eq(tid, 10);
    mkt_frames_free(fs);
    /* five reads of one transfer each: five syncs, five LOG_ACKs */
    for (uint64_t t = 11; t <= 15; t++) {
        mkt_fill(d, BS, t);
        mkt_logf(&x.p, t, (t - 10) * BS, BS, d);
        mkt_ok(dfx_send(&x));
    }
    ck_assert_uint_eq(x.wl->syncs, syncs + 6);
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 5);
    for (size_t i = 0; i < 5; i++) {
        mkt_ok(mk_log_ack_decode(&fs->f[i], &tid));
        ck_assert_uint_eq(tid, 11 + i);
        ck_assert_uint_eq(fs->f[i].seq, 2 + i);
    }
    mkt_frames_free(fs);
    /* a read that ends inside a frame syncs nothing until the frame is whole */
    mkt_logf(&x.p, 16, 0, BS, d);
    mkt_logf(&x.p, 17, BS, BS, d);
    size_t n = mk_buf_len(&x.p.b), half = n / 4 * 3;
    mkt_ok(mk_dest_recv(x.d, mk_buf_peek(&x.p.b), half, 0));
    ck_assert_uint_eq(x.wl->syncs, syncs + 7); /* tid 16 was whole */
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    mkt_ok(mk_log_ack_decode(&fs->f[0], &tid));
    ck_assert_uint_eq(tid, 16);
    mkt_frames_free(fs);
    uint64_t before = x.wl->syncs;
    mkt_ok(mk_dest_recv(x.d, mk_buf_peek(&x.p.b) + half, 0, 0));
    ck_assert_uint_eq(x.wl->syncs, before);
    mkt_ok(mk_dest_recv(x.d, mk_buf_peek(&x.p.b) + half, n - half, 0));
    mk_buf_clear(&x.p.b);
    ck_assert_uint_eq(x.wl->syncs, before + 1);
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    mkt_ok(mk_log_ack_decode(&fs->f[0], &tid));
    ck_assert_uint_eq(tid, 17);
    mkt_frames_free(fs);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->transfers, 17);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s4_4_no_log_ack_without_sync)
{
    dfx x;
    dfx_open(&x);
    dfx_hello(&x);
    expect_hello_ack(&x, 0, 0);
    x.wl->fail_sync = MK_EIO;
    mkt_logf(&x.p, 1, 0, BS, Y);
    mkt_assert_err(dfx_send(&x), MK_EIO);
    mkt_assert_error_frame(mk_dest_out(x.d), MK_EIO);
    /* an engine error: sticky across sessions until reopened */
    dfx_reconnect(&x);
    mkt_assert_err(dfx_send(&x), MK_EIO);
    mkt_assert_err(mk_dest_error(x.d), MK_EIO);
    ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
    mk_buf_clear(&x.p.b);
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    x.p.seq = 0;
    dfx_hello(&x);
    expect_hello_ack(&x, 0, 1);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s4_4_transfer_record_is_log_payload)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    uint64_t len;
    uint8_t *raw = mkt_slurp(x.log, &len);
    ck_assert_uint_eq(len, MK_LOG_DATA_START + MK_FRAME_OVERHEAD + 24 + sizeof X);
    mk_frame fr;
    size_t used;
    mkt_ok(mk_frame_decode(raw + 256, len - 256, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &fr, &used));
    ck_assert_uint_eq(fr.type, MK_R_TRANSFER);
    ck_assert_uint_eq(fr.seq, 1);
    mk_log l;
    mkt_ok(mk_log_decode(&fr, &l));
    ck_assert_uint_eq(l.tid, 1);
    ck_assert_uint_eq(l.offset, 0);
    ck_assert_uint_eq(l.length, sizeof X);
    ck_assert_mem_eq(l.data, X, sizeof X);
    free(raw);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s4_5_tid_must_increase_across_sessions)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_logf(&x.p, 5, BS, BS, Y); /* gaps are fine */
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    mkt_logf(&x.p, 5, BS, BS, Y);
    mkt_assert_err(dfx_send(&x), MK_ETID);
    mkt_assert_error_frame(mk_dest_out(x.d), MK_ETID);
    dfx_new_session(&x);
    expect_hello_ack(&x, 0, 5);
    mkt_logf(&x.p, 4, BS, BS, Y);
    mkt_assert_err(dfx_send(&x), MK_ETID);
    mkt_frames_free(dfx_out(&x));
    /* also after a restart: the scan rebuilds the highest tid */
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    x.p.seq = 0;
    mk_buf_clear(&x.p.b);
    dfx_hello(&x);
    expect_hello_ack(&x, 0, 5);
    mkt_logf(&x.p, 5, BS, BS, Y);
    mkt_assert_err(dfx_send(&x), MK_ETID);
    mkt_frames_free(dfx_out(&x));
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->transfers, 0);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s4_3_log_allowed_in_open_cp_and_after_commit)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref bad = ref_ok(2);
    bad.hash ^= 0xff;
    mkt_cp_begin(&x.p, 1, 1, 1);
    mkt_logf(&x.p, 2, 20 * BS, BS, Y);
    mkt_cp_ref(&x.p, 1, &bad, 1);
    mkt_cp_commit(&x.p, 1, 1);
    mkt_logf(&x.p, 3, 21 * BS, BS, Z);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 2);
    ck_assert_uint_eq(fs->f[0].type, MK_F_NAK);
    ck_assert_uint_eq(fs->f[1].type, MK_F_LOG_ACK);
    uint64_t tid;
    mkt_ok(mk_log_ack_decode(&fs->f[1], &tid));
    ck_assert_uint_eq(tid, 3);
    mkt_frames_free(fs);
    mkt_cp_data(&x.p, 1, 2, X + 2 * BS, BS);
    mkt_ok(dfx_send(&x));
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    uint64_t blocks[1] = {2};
    const uint8_t *data[1] = {X + 2 * BS};
    expect_cp_ack(&fs->f[0], 1, 1, blocks, data);
    mkt_frames_free(fs);
    dfx_free(&x);
}
END_TEST

/* ---- 7.1 / 7.2 / 7.4: CP records ------------------------------------------- */

START_TEST(test_s7_2_ref_resolution_failures_nak_then_data)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    uint8_t part[100], b5[BS], b6[BS], b7[BS], b9[BS];
    mkt_fill(part, sizeof part, 7);
    mkt_fill(b9, BS, 99);
    mkt_fill(b5, BS, 55);
    mkt_fill(b6, BS, 66);
    mkt_fill(b7, BS, 77);
    mkt_logf(&x.p, 2, 6 * BS + 10, sizeof part, part); /* no slot at all */
    mkt_logf(&x.p, 5, 5 * BS, BS, b5);                 /* slot 0 = block 5 */
    mkt_logf(&x.p, 6, 9 * BS, BS, b9);                 /* newer than the CP */
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    mk_ref r[8] = {
        ref_ok(0),                                /* resolves */
        {1, 3, 1, mk_block_hash(X + BS, BS)},     /* rule 1: tid 3 unknown */
        {2, 1, 4, mk_block_hash(X + 2 * BS, BS)}, /* rule 2: tid 1 has 4 slots */
        {3, 1, 2, mk_block_hash(X + 3 * BS, BS)}, /* rule 3: slot 2 holds block 2 */
        {4, 1, 0, mk_block_hash(X, BS)},          /* rule 3: slot 0 holds block 0 */
        {6, 2, 0, 0x1234},                        /* rule 2: tid 2 has no slot */
        {5, 5, 0, mk_block_hash(b5, BS) ^ 1},     /* rule 4: wrong hash */
        {9, 6, 0, mk_block_hash(b9, BS)},         /* tid 6 > covers_tid 5 */
    };
    mkt_cp_begin(&x.p, 1, 9, 5);
    mkt_cp_ref(&x.p, 1, r, 8);
    mkt_cp_data(&x.p, 1, 7, b7, BS);
    mkt_cp_commit(&x.p, 1, 9);
    mkt_ok(dfx_send(&x));
    static const uint64_t nak_block[7] = {1, 2, 3, 4, 6, 5, 9};
    static const int nak_reason[7] = {MK_ENOTID, MK_ESLOT,    MK_ESLOT, MK_ESLOT,
                                      MK_ESLOT,  MK_EREFHASH, MK_ETID};
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 7);
    for (size_t i = 0; i < 7; i++) {
        mk_nak n;
        ck_assert_uint_eq(fs->f[i].type, MK_F_NAK);
        ck_assert_uint_eq(fs->f[i].seq, 3 + i); /* HELLO_ACK, 2 LOG_ACKs */
        mkt_ok(mk_nak_decode(&fs->f[i], &n));
        ck_assert_uint_eq(n.cp, 1);
        ck_assert_uint_eq(n.block, nak_block[i]);
        mkt_assert_err(n.reason, nak_reason[i]);
    }
    mkt_frames_free(fs);
    /* committed by the source, but waiting: nothing applied yet */
    ck_assert_uint_eq(last_cp(&x), 0);
    ck_assert_uint_eq(x.wm->writes, 0);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->naks, 7);
    /* the DATA resends, in any order, complete it with the last one */
    mkt_cp_data(&x.p, 1, 5, b5, BS);
    mkt_cp_data(&x.p, 1, 1, X + BS, BS);
    mkt_cp_data(&x.p, 1, 2, X + 2 * BS, BS);
    mkt_cp_data(&x.p, 1, 3, X + 3 * BS, BS);
    mkt_cp_data(&x.p, 1, 4, Z, BS);
    mkt_cp_data(&x.p, 1, 9, b9, BS);
    mkt_ok(dfx_send(&x));
    ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0); /* block 6 still out */
    ck_assert_uint_eq(x.wm->writes, 0);
    mkt_cp_data(&x.p, 1, 6, b6, BS);
    mkt_ok(dfx_send(&x));
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    uint64_t blocks[9] = {0, 1, 2, 3, 4, 5, 6, 7, 9};
    const uint8_t *data[9] = {X, X + BS, X + 2 * BS, X + 3 * BS, Z, b5, b6, b7, b9};
    expect_cp_ack(&fs->f[0], 1, 9, blocks, data);
    mkt_frames_free(fs);
    ck_assert_uint_eq(last_cp(&x), 1);
    uint8_t *img = calloc(1, VB);
    for (int i = 0; i < 9; i++)
        memcpy(img + blocks[i] * BS, data[i], BS);
    mkt_assert_image(x.mirror, img, NB, BS);
    free(img);
    const mk_dest_stats *st = mk_dest_get_stats(x.d);
    ck_assert_uint_eq(st->cp_refs, 8);
    ck_assert_uint_eq(st->cp_data, 8);
    ck_assert_uint_eq(st->cps_applied, 1);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s7_2_ref_resolves_from_log_without_data)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    uint64_t log_before = mkt_fsize(x.log);
    mk_ref r[4] = {ref_ok(0), ref_ok(1), ref_ok(2), ref_ok(3)};
    mkt_cp_begin(&x.p, 1, 4, 1);
    mkt_cp_ref(&x.p, 1, r, 4);
    mkt_cp_commit(&x.p, 1, 4);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    uint64_t blocks[4] = {0, 1, 2, 3};
    const uint8_t *data[4] = {X, X + BS, X + 2 * BS, X + 3 * BS};
    expect_cp_ack(&fs->f[0], 1, 4, blocks, data);
    mkt_frames_free(fs);
    uint8_t *img = calloc(1, VB);
    memcpy(img, X, sizeof X);
    mkt_assert_image(x.mirror, img, NB, BS);
    free(img);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->cp_data, 0);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->naks, 0);
    /* no block data crossed for the CP: the log only grew by the commit and
     * applied records (then was reclaimed, everything being applied) */
    ck_assert_uint_gt(log_before, MK_LOG_DATA_START);
    ck_assert_uint_eq(mkt_fsize(x.log), MK_LOG_DATA_START);
    dfx_free(&x);
}
END_TEST

/* Session checks of CP frames: each case is a prelude the destination
 * accepts and one frame it must refuse, writing nothing. */
enum {
    CR_DUP_DATA, CR_REF_THEN_DATA, CR_DATA_THEN_REF, CR_REF_DUP_IN_FRAME, CR_REF_NAKED,
    CR_DATA_ACCEPTED_AFTER_COMMIT, CR_NEW_BLOCK_AFTER_COMMIT, CR_REF_AFTER_COMMIT,
    CR_BEYOND_COUNT, CR_REF_BEYOND_COUNT, CR_DATA_BLOCK_RANGE, CR_REF_BLOCK_RANGE,
    CR_DATA_NO_CP, CR_REF_NO_CP, CR_DATA_WRONG_CP, CR_REF_WRONG_CP, CR_BEGIN_OPEN,
    CR_BEGIN_COMMITTED_WAITING, CR_BEGIN_CP0, CR_BEGIN_CP2, CR_BEGIN_COVERS_AHEAD,
    CR_BEGIN_COVERS_BACK, CR_BEGIN_COUNT, CR_COMMIT_NO_CP, CR_COMMIT_TWICE,
    CR_COMMIT_WRONG_CP, CR_COMMIT_COUNT_FIELD, CR_COMMIT_COUNT_STAGED, CR_COUNT
};

static const int CR_WANT[CR_COUNT] = {
    [CR_DUP_DATA] = MK_EDUPBLOCK, [CR_REF_THEN_DATA] = MK_EDUPBLOCK,
    [CR_DATA_THEN_REF] = MK_EDUPBLOCK, [CR_REF_DUP_IN_FRAME] = MK_EDUPBLOCK,
    [CR_REF_NAKED] = MK_EDUPBLOCK, [CR_DATA_ACCEPTED_AFTER_COMMIT] = MK_EDUPBLOCK,
    [CR_NEW_BLOCK_AFTER_COMMIT] = MK_ESTATE, [CR_REF_AFTER_COMMIT] = MK_ESTATE,
    [CR_BEYOND_COUNT] = MK_ECOUNT, [CR_REF_BEYOND_COUNT] = MK_ECOUNT,
    [CR_DATA_BLOCK_RANGE] = MK_ERANGE, [CR_REF_BLOCK_RANGE] = MK_ERANGE,
    [CR_DATA_NO_CP] = MK_ESTATE, [CR_REF_NO_CP] = MK_ESTATE, [CR_DATA_WRONG_CP] = MK_ECP,
    [CR_REF_WRONG_CP] = MK_ECP, [CR_BEGIN_OPEN] = MK_ESTATE,
    [CR_BEGIN_COMMITTED_WAITING] = MK_ESTATE, [CR_BEGIN_CP0] = MK_ECP,
    [CR_BEGIN_CP2] = MK_ECP, [CR_BEGIN_COVERS_AHEAD] = MK_ETID,
    [CR_BEGIN_COVERS_BACK] = MK_ETID, [CR_BEGIN_COUNT] = MK_ECOUNT,
    [CR_COMMIT_NO_CP] = MK_ESTATE, [CR_COMMIT_TWICE] = MK_ESTATE,
    [CR_COMMIT_WRONG_CP] = MK_ECP, [CR_COMMIT_COUNT_FIELD] = MK_ECOUNT,
    [CR_COMMIT_COUNT_STAGED] = MK_ECOUNT,
};

START_TEST(test_s7_2_cp_record_checks)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref bad1 = ref_ok(1);
    bad1.hash ^= 1;
    mk_ref r0 = ref_ok(0), r2 = ref_ok(2);
    size_t naks = 0;
    uint8_t *img = calloc(1, VB);
    ck_assert_ptr_nonnull(img);
    /* the prelude */
    switch (_i) {
    case CR_DUP_DATA: mkt_cp_begin(&x.p, 1, 2, 1); mkt_cp_data(&x.p, 1, 5, Y, BS); break;
    case CR_REF_THEN_DATA: mkt_cp_begin(&x.p, 1, 2, 1); mkt_cp_ref(&x.p, 1, &r0, 1); break;
    case CR_DATA_THEN_REF: mkt_cp_begin(&x.p, 1, 2, 1); mkt_cp_data(&x.p, 1, 0, Y, BS); break;
    case CR_REF_DUP_IN_FRAME: mkt_cp_begin(&x.p, 1, 2, 1); break;
    case CR_REF_NAKED:
        mkt_cp_begin(&x.p, 1, 2, 1);
        mkt_cp_ref(&x.p, 1, &bad1, 1);
        naks = 1;
        break;
    case CR_DATA_ACCEPTED_AFTER_COMMIT:
    case CR_NEW_BLOCK_AFTER_COMMIT:
        mkt_cp_begin(&x.p, 1, 2, 1);
        mkt_cp_data(&x.p, 1, 5, Y, BS);
        mkt_cp_ref(&x.p, 1, &bad1, 1);
        mkt_cp_commit(&x.p, 1, 2);
        naks = 1;
        break;
    case CR_REF_AFTER_COMMIT:
    case CR_BEGIN_COMMITTED_WAITING:
    case CR_COMMIT_TWICE:
        mkt_cp_begin(&x.p, 1, 1, 1);
        mkt_cp_ref(&x.p, 1, &bad1, 1);
        mkt_cp_commit(&x.p, 1, 1);
        naks = 1;
        break;
    case CR_BEYOND_COUNT: mkt_cp_begin(&x.p, 1, 1, 1); mkt_cp_data(&x.p, 1, 5, Y, BS); break;
    case CR_REF_BEYOND_COUNT: mkt_cp_begin(&x.p, 1, 1, 1); mkt_cp_ref(&x.p, 1, &r0, 1); break;
    case CR_DATA_BLOCK_RANGE:
    case CR_REF_BLOCK_RANGE:
    case CR_DATA_WRONG_CP:
    case CR_REF_WRONG_CP:
    case CR_BEGIN_OPEN:
        mkt_cp_begin(&x.p, 1, 1, 1);
        break;
    case CR_BEGIN_COVERS_BACK:
        /* CP 1 covering tid 1, applied; then tid 2 */
        mkt_cp_begin(&x.p, 1, 1, 1);
        mkt_cp_ref(&x.p, 1, &r0, 1);
        mkt_cp_commit(&x.p, 1, 1);
        mkt_logf(&x.p, 2, 9 * BS, BS, Z);
        memcpy(img, X, BS);
        break;
    case CR_COMMIT_WRONG_CP: mkt_cp_begin(&x.p, 1, 0, 1); break;
    case CR_COMMIT_COUNT_FIELD:
        mkt_cp_begin(&x.p, 1, 1, 1);
        mkt_cp_data(&x.p, 1, 5, Y, BS);
        break;
    case CR_COMMIT_COUNT_STAGED:
        mkt_cp_begin(&x.p, 1, 2, 1);
        mkt_cp_data(&x.p, 1, 5, Y, BS);
        break;
    default: break;
    }
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    size_t got_naks = mkt_count(fs, MK_F_NAK);
    ck_assert_uint_eq(got_naks, naks);
    mkt_frames_free(fs);
    uint64_t cp_before = last_cp(&x);
    uint64_t llen0, llen1;
    uint8_t *log0 = mkt_slurp(x.log, &llen0);
    uint64_t mw = x.wm->writes;
    /* the refused frame */
    switch (_i) {
    case CR_DUP_DATA: mkt_cp_data(&x.p, 1, 5, Z, BS); break;
    case CR_REF_THEN_DATA: mkt_cp_data(&x.p, 1, 0, Z, BS); break;
    case CR_DATA_THEN_REF: mkt_cp_ref(&x.p, 1, &r0, 1); break;
    case CR_REF_DUP_IN_FRAME: {
        mk_ref two[2] = {r2, r2};
        mkt_cp_ref(&x.p, 1, two, 2);
        break;
    }
    case CR_REF_NAKED: mkt_cp_ref(&x.p, 1, &bad1, 1); break;
    case CR_DATA_ACCEPTED_AFTER_COMMIT: mkt_cp_data(&x.p, 1, 5, Z, BS); break;
    case CR_NEW_BLOCK_AFTER_COMMIT: mkt_cp_data(&x.p, 1, 6, Z, BS); break;
    case CR_REF_AFTER_COMMIT: mkt_cp_ref(&x.p, 1, &r2, 1); break;
    case CR_BEYOND_COUNT: mkt_cp_data(&x.p, 1, 6, Z, BS); break;
    case CR_REF_BEYOND_COUNT: mkt_cp_ref(&x.p, 1, &r2, 1); break;
    case CR_DATA_BLOCK_RANGE: mkt_cp_data(&x.p, 1, NB, Z, BS); break;
    case CR_REF_BLOCK_RANGE: {
        mk_ref r = ref_ok(0);
        r.block = NB;
        mkt_cp_ref(&x.p, 1, &r, 1);
        break;
    }
    case CR_DATA_NO_CP: mkt_cp_data(&x.p, 1, 5, Z, BS); break;
    case CR_REF_NO_CP: mkt_cp_ref(&x.p, 1, &r0, 1); break;
    case CR_DATA_WRONG_CP: mkt_cp_data(&x.p, 2, 5, Z, BS); break;
    case CR_REF_WRONG_CP: mkt_cp_ref(&x.p, 2, &r0, 1); break;
    case CR_BEGIN_OPEN: mkt_cp_begin(&x.p, 1, 1, 1); break;
    case CR_BEGIN_COMMITTED_WAITING: mkt_cp_begin(&x.p, 2, 0, 1); break;
    case CR_BEGIN_CP0: mkt_cp_begin(&x.p, 0, 0, 1); break;
    case CR_BEGIN_CP2: mkt_cp_begin(&x.p, 2, 0, 1); break;
    case CR_BEGIN_COVERS_AHEAD: mkt_cp_begin(&x.p, 1, 0, 2); break;
    case CR_BEGIN_COVERS_BACK: mkt_cp_begin(&x.p, 2, 0, 0); break;
    case CR_BEGIN_COUNT: mkt_cp_begin(&x.p, 1, NB + 1, 1); break;
    case CR_COMMIT_NO_CP: mkt_cp_commit(&x.p, 1, 0); break;
    case CR_COMMIT_TWICE: mkt_cp_commit(&x.p, 1, 1); break;
    case CR_COMMIT_WRONG_CP: mkt_cp_commit(&x.p, 2, 0); break;
    case CR_COMMIT_COUNT_FIELD: mkt_cp_commit(&x.p, 1, 2); break;
    case CR_COMMIT_COUNT_STAGED: mkt_cp_commit(&x.p, 1, 2); break;
    }
    mkt_assert_err(dfx_send(&x), CR_WANT[_i]);
    mkt_assert_error_frame(mk_dest_out(x.d), CR_WANT[_i]);
    uint8_t *log1 = mkt_slurp(x.log, &llen1);
    ck_assert_uint_eq(llen1, llen0);
    ck_assert_mem_eq(log0, log1, llen0);
    ck_assert_uint_eq(x.wm->writes, mw);
    ck_assert_uint_eq(last_cp(&x), cp_before);
    mkt_assert_image(x.mirror, img, NB, BS);
    free(log0);
    free(log1);
    free(img);
    dfx_free(&x);
}
END_TEST

/* CP_REF is admitted whole (range, duplicates, count) before any entry is
 * resolved, so a refused frame sends no NAK first. */
START_TEST(test_s7_2_refused_ref_frame_sends_no_nak)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref r[3] = {ref_ok(0), ref_ok(1), ref_ok(0)};
    r[1].tid = 9; /* NAK */
    mkt_cp_begin(&x.p, 1, 3, 1);
    mkt_cp_ref(&x.p, 1, r, 3);
    mkt_assert_err(dfx_send(&x), MK_EDUPBLOCK);
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_ERROR);
    ck_assert_uint_eq(fs->f[0].seq, 2);
    mkt_frames_free(fs);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->naks, 0);
    ck_assert_uint_eq(x.wm->writes, 0);
    ck_assert_uint_eq(last_cp(&x), 0);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s7_1_empty_cp_is_committed_and_acked)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_cp_begin(&x.p, 1, 0, 1);
    mkt_cp_commit(&x.p, 1, 0);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    mk_cp_ack a;
    mkt_ok(mk_cp_ack_decode(&fs->f[0], &a));
    ck_assert_uint_eq(a.cp, 1);
    ck_assert_uint_eq(a.napplied, 0);
    ck_assert_uint_eq(a.digest, 0);
    mkt_frames_free(fs);
    ck_assert_uint_eq(last_cp(&x), 1);
    dfx_free(&x);
}
END_TEST

/* SPEC.md 7.5's test vectors, B = 4096. */
START_TEST(test_s7_5_cp_ack_digest_vectors)
{
    dfx x;
    memset(&x, 0, sizeof x);
    dfx_files(&x);
    mkt_peer_init(&x.p);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    static uint8_t zero[4096], ff[4096];
    memset(ff, 0xFF, sizeof ff);
    ck_assert_uint_eq(mk_block_hash(zero, 4096), 0x93D76FE148C689BAull);
    ck_assert_uint_eq(mk_block_hash(ff, 4096), 0x074CFAC273851DD6ull);
    mkt_hello(&x.p, 16, 4096, MK_MODE_ASYNC, MKT_SOURCE_ID);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    /* CP 1: block 0 all zero */
    mkt_cp_begin(&x.p, 1, 1, 0);
    mkt_cp_data(&x.p, 1, 0, zero, 4096);
    mkt_cp_commit(&x.p, 1, 1);
    /* CP 2: blocks 0 (zero) and 5 (0xFF), sent out of order */
    mkt_cp_begin(&x.p, 2, 2, 0);
    mkt_cp_data(&x.p, 2, 5, ff, 4096);
    mkt_cp_data(&x.p, 2, 0, zero, 4096);
    mkt_cp_commit(&x.p, 2, 2);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 2);
    mk_cp_ack a;
    mkt_ok(mk_cp_ack_decode(&fs->f[0], &a));
    ck_assert_uint_eq(a.cp, 1);
    ck_assert_uint_eq(a.napplied, 1);
    ck_assert_uint_eq(a.digest, 0xD1A0C2555E210F23ull);
    mkt_ok(mk_cp_ack_decode(&fs->f[1], &a));
    ck_assert_uint_eq(a.cp, 2);
    ck_assert_uint_eq(a.napplied, 2);
    ck_assert_uint_eq(a.digest, 0xFCE83EFC4151A1B0ull);
    mkt_frames_free(fs);
    dfx_free(&x);
}
END_TEST

/* Section 7.4's apply order, as storage calls. */
START_TEST(test_s7_4_apply_order)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref r[4] = {ref_ok(0), ref_ok(1), ref_ok(2), ref_ok(3)};
    mkt_cp_begin(&x.p, 1, 5, 1);
    mkt_cp_ref(&x.p, 1, r, 4);
    mkt_cp_data(&x.p, 1, 10, Y, BS);
    mkt_ok(dfx_send(&x));
    dfx_trace(&x);
    mkt_cp_commit(&x.p, 1, 5);
    mkt_ok(dfx_send(&x));
    static const struct { uint8_t file, op, type; uint64_t off; } want[] = {
        {'L', 'w', MK_R_CP_DATA, 0},      /* 2: the buffered R_CP_DATA */
        {'L', 's', 0, 0},                 /*    written and durable */
        {'L', 'w', MK_R_CP_COMMIT, 0},    /* 3: the redo record */
        {'L', 's', 0, 0},                 /* 4: commit point */
        {'M', 'w', 0, 0 * BS},            /* 5: ascending blocks; 0-3 are */
        {'M', 'w', 0, 10 * BS},           /*    one transfer's slots: one write */
        {'M', 's', 0, 0},                 /* 6 */
        {'L', 'w', MK_R_CP_APPLIED, 0},   /* 7 */
        {'L', 's', 0, 0},                 /* 8: reclaim */
        {'L', 'w', 'H', MK_LOG_SLOT_LEN}, /*    header into slot 1 */
        {'L', 's', 0, 0},
        {'L', 't', 0, MK_LOG_DATA_START},
        {'L', 's', 0, 0},
    };
    ck_assert_uint_eq(x.tr->n, sizeof want / sizeof *want);
    for (size_t i = 0; i < x.tr->n; i++) {
        const mkt_event *e = &x.tr->ev[i];
        ck_assert_msg(e->file == want[i].file && e->op == want[i].op &&
                          e->type == want[i].type &&
                          (want[i].off == 0 || e->off == want[i].off),
                      "step %zu: got %c %c 0x%x @%llu", i, e->file, e->op, e->type,
                      (unsigned long long)e->off);
    }
    ck_assert_uint_eq(x.tr->ev[4].n, 4 * BS);
    ck_assert_uint_eq(x.tr->ev[5].n, BS);
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_CP_ACK);
    mkt_frames_free(fs);

    /* a transfer arriving with the commit: step 1 syncs and acks it first,
     * and the log keeps it (no reclaim) */
    mkt_cp_begin(&x.p, 2, 1, 1);
    mkt_cp_data(&x.p, 2, 11, Z, BS);
    mkt_ok(dfx_send(&x));
    x.tr->n = 0;
    mkt_logf(&x.p, 2, 30 * BS, BS, Y);
    mkt_cp_commit(&x.p, 2, 1);
    mkt_ok(dfx_send(&x));
    /* The first write carries the buffered R_CP_DATA and the R_TRANSFER
     * behind it; R_CP_APPLIED stays buffered (it need not be synced, 7.4
     * step 7, and no reclaim syncs it here). */
    static const struct { uint8_t file, op, type; } want2[] = {
        {'L', 'w', MK_R_CP_DATA}, {'L', 's', 0}, {'L', 's', 0}, {'L', 'w', MK_R_CP_COMMIT},
        {'L', 's', 0}, {'M', 'w', 0}, {'M', 's', 0},
    };
    ck_assert_uint_eq(x.tr->n, sizeof want2 / sizeof *want2);
    for (size_t i = 0; i < x.tr->n; i++) {
        ck_assert_uint_eq(x.tr->ev[i].file, want2[i].file);
        ck_assert_uint_eq(x.tr->ev[i].op, want2[i].op);
        ck_assert_uint_eq(x.tr->ev[i].type, want2[i].type);
    }
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 2);
    ck_assert_uint_eq(fs->f[0].type, MK_F_LOG_ACK);
    ck_assert_uint_eq(fs->f[1].type, MK_F_CP_ACK);
    mkt_frames_free(fs);
    ck_assert_uint_gt(mkt_fsize(x.log), MK_LOG_DATA_START);
    dfx_free(&x);
}
END_TEST

/* What apply reads back from the log must be what was verified when it
 * was staged (7.4 step 5): damage in between is an engine error, and the
 * mirror is not written with it. */
START_TEST(test_s7_4_read_back_mismatch_is_engine_error)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref r[2] = {ref_ok(2), ref_ok(3)};
    mkt_cp_begin(&x.p, 1, 3, 1);
    mkt_cp_data(&x.p, 1, 0, Y, BS);
    mkt_cp_ref(&x.p, 1, r, 2);
    /* a transfer after it makes the log sync, which writes the buffered
     * R_CP_DATA to the file (and keeps the log from reclaim) */
    mkt_logf(&x.p, 2, 30 * BS, 100, Z);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x)); /* its LOG_ACK */
    /* the staged R_CP_DATA of block 0 is the record before that transfer's:
     * damage one byte of its block */
    uint64_t end = mkt_fsize(x.log) - (MK_FRAME_OVERHEAD + MK_LOG_HDR_LEN + 100);
    uint64_t at = end - MK_TRAILER_LEN - 10;
    uint8_t byte;
    mkt_ok(mk_file_read_exact(x.log, &byte, 1, at));
    ck_assert_uint_eq(byte, Y[BS - 10]);
    byte ^= 1;
    mkt_ok(mk_file_pwrite(x.wl->in, &byte, 1, at));
    mkt_cp_commit(&x.p, 1, 3);
    mkt_assert_err(dfx_send(&x), MK_ECORRUPT);
    mkt_assert_error_frame(mk_dest_out(x.d), MK_ECORRUPT);
    ck_assert_uint_eq(x.wm->writes, 0);
    /* an engine error: the next session is refused too */
    dfx_reconnect(&x);
    mkt_assert_err(dfx_send(&x), MK_ECORRUPT);
    ck_assert_uint_eq(mk_buf_len(mk_dest_out(x.d)), 0);
    /* the redo record is durable, but the restart's redo checks the bytes
     * against the recorded CP digest and refuses too: the damaged block never
     * reaches the mirror */
    mk_dest_free(x.d);
    x.d = NULL;
    mkt_assert_err(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d), MK_ECORRUPT);
    ck_assert_ptr_null(x.d);
    ck_assert_uint_eq(x.wm->writes, 0);
    dfx_free(&x);
}
END_TEST

/* ---- 7.7: truncation through the engine ------------------------------------- */

START_TEST(test_s7_7_reclaim_after_applied_cp_only)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_logf(&x.p, 2, 20 * BS, BS, Y);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    uint64_t before = mkt_fsize(x.log);
    /* CP 1 covers only tid 1: tid 2 is newer, the log stays */
    mk_ref r0 = ref_ok(0);
    mkt_cp_begin(&x.p, 1, 1, 1);
    mkt_cp_ref(&x.p, 1, &r0, 1);
    mkt_cp_commit(&x.p, 1, 1);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    ck_assert_uint_gt(mkt_fsize(x.log), before);
    mk_log_info info;
    mk_dest_log_info(x.d, &info);
    ck_assert_uint_eq(info.applied_cp, 1);
    ck_assert_uint_eq(info.covers_tid, 1);
    ck_assert_uint_eq(info.durable_tid, 2);
    /* CP 2 covers tid 2: nothing newer, the log shrinks to its headers */
    mk_ref r20 = {20, 2, 0, mk_block_hash(Y, BS)};
    mkt_cp_begin(&x.p, 2, 1, 2);
    mkt_cp_ref(&x.p, 2, &r20, 1);
    mkt_cp_commit(&x.p, 2, 1);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    ck_assert_uint_eq(mkt_fsize(x.log), MK_LOG_DATA_START);
    mk_dest_log_info(x.d, &info);
    ck_assert_uint_eq(info.size, MK_LOG_DATA_START);
    ck_assert_uint_eq(info.last_cp, 2);
    ck_assert_uint_eq(info.durable_tid, 2);
    /* after a restart the state is the header's */
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    dfx_new_session(&x);
    expect_hello_ack(&x, 2, 2);
    uint8_t *img = calloc(1, VB);
    memcpy(img, X, BS);
    memcpy(img + 20 * BS, Y, BS);
    mkt_assert_image(x.mirror, img, NB, BS);
    free(img);
    /* a REF to a reclaimed transfer is unknown */
    mkt_cp_begin(&x.p, 3, 1, 2);
    mkt_cp_ref(&x.p, 3, &r0, 1);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    mk_nak n;
    mkt_ok(mk_nak_decode(&fs->f[0], &n));
    mkt_assert_err(n.reason, MK_ENOTID);
    mkt_frames_free(fs);
    dfx_free(&x);
}
END_TEST

START_TEST(test_s7_7_no_reclaim_when_transfer_arrives_during_cp)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref bad = ref_ok(1);
    bad.tid = 99;
    mkt_cp_begin(&x.p, 1, 1, 1);
    mkt_cp_ref(&x.p, 1, &bad, 1);
    mkt_cp_commit(&x.p, 1, 1);
    mkt_logf(&x.p, 2, 40 * BS, BS, Z); /* newer than covers_tid 1 */
    mkt_cp_data(&x.p, 1, 1, X + BS, BS);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(mkt_count(fs, MK_F_CP_ACK), 1);
    mkt_frames_free(fs);
    ck_assert_uint_gt(mkt_fsize(x.log), MK_LOG_DATA_START);
    mk_log_info info;
    mk_dest_log_info(x.d, &info);
    ck_assert_uint_eq(info.durable_tid, 2);
    ck_assert_uint_eq(info.covers_tid, 1);
    /* tid 2 is still resolvable */
    mk_ref r40 = {40, 2, 0, mk_block_hash(Z, BS)};
    mkt_cp_begin(&x.p, 2, 1, 2);
    mkt_cp_ref(&x.p, 2, &r40, 1);
    mkt_cp_commit(&x.p, 2, 1);
    mkt_ok(dfx_send(&x));
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    ck_assert_uint_eq(fs->f[0].type, MK_F_CP_ACK);
    mkt_frames_free(fs);
    ck_assert_uint_eq(mkt_fsize(x.log), MK_LOG_DATA_START);
    dfx_free(&x);
}
END_TEST

/* ---- 7.6: recovery on open -------------------------------------------------- */

/* A log holding a committed CP 1 (covers tid 1) whose mirror writes never
 * happened: the R_CP_APPLIED record and the mirror are rolled back by
 * hand.  *img receives the CP 1 image. */
static void committed_unapplied(uint8_t **log, uint64_t *loglen, uint8_t **img)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_logf(&x.p, 2, 30 * BS, 100, Z); /* keeps the log from reclaim */
    mk_ref r[4] = {ref_ok(0), ref_ok(1), ref_ok(2), ref_ok(3)};
    mkt_cp_begin(&x.p, 1, 5, 1);
    mkt_cp_ref(&x.p, 1, r, 4);
    mkt_cp_data(&x.p, 1, 10, Y, BS);
    mkt_cp_commit(&x.p, 1, 5);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(mkt_count(fs, MK_F_CP_ACK), 1);
    mkt_frames_free(fs);
    mk_dest_free(x.d); /* its last appends reach the file */
    x.d = NULL;
    *log = mkt_slurp(x.log, loglen);
    *loglen -= MK_FRAME_OVERHEAD + 8; /* drop R_CP_APPLIED */
    ck_assert_uint_eq((*log)[*loglen + 5], MK_R_CP_APPLIED);
    *img = calloc(1, VB);
    memcpy(*img, X, sizeof X);
    memcpy(*img + 10 * BS, Y, BS);
    dfx_free(&x);
}

START_TEST(test_s7_6_open_redoes_committed_cp)
{
    uint8_t *log, *img;
    uint64_t len;
    committed_unapplied(&log, &len, &img);
    mk_file *l = mkt_mem_with(log, len), *m;
    mkt_ok(mk_file_mem("test/mirror", &m));
    mkt_ok(mk_file_truncate(m, VB));
    mk_dest_config cfg = {0};
    mk_dest *d;
    mkt_ok(mk_dest_open(&cfg, m, l, &d));
    ck_assert_uint_eq(mk_dest_get_stats(d)->redo_cps, 1);
    mkt_assert_image(m, img, NB, BS);
    mk_log_info info;
    mk_dest_log_info(d, &info);
    ck_assert_uint_eq(info.last_cp, 1);
    ck_assert_uint_eq(info.applied_cp, 1);
    mk_dest_free(d);
    /* the redo was recorded: a second open has nothing to redo */
    mkt_ok(mk_dest_open(&cfg, m, l, &d));
    ck_assert_uint_eq(mk_dest_get_stats(d)->redo_cps, 0);
    mk_dest_free(d);
    mk_file_close(l);
    mk_file_close(m);
    free(log);
    free(img);
}
END_TEST

/* A crash at every storage call of that redo (with and without torn
 * writes), then a clean recovery: always the CP 1 image. */
START_TEST(test_s7_6_crash_during_redo_at_every_tick)
{
    static const uint32_t tears[] = {0, 100};
    uint8_t *log, *img;
    uint64_t len;
    committed_unapplied(&log, &len, &img);
    uint8_t *zero = calloc(1, VB);
    for (size_t t = 0; t < sizeof tears / sizeof *tears; t++) {
        for (uint64_t k = 1;; k++) {
            mk_crash_clock clk = {0, 0, 0, 0};
            mk_file *l, *m;
            mkt_ok(mk_file_mem_crashable("test/log", &clk, &l));
            mkt_ok(mk_file_mem_crashable("test/mirror", &clk, &m));
            mkt_ok(mk_file_pwrite(l, log, len, 0));
            mkt_ok(mk_file_pwrite(m, zero, VB, 0));
            mkt_ok(mk_file_sync(l));
            mkt_ok(mk_file_sync(m));
            clk.limit = clk.ticks + k;
            clk.tear = tears[t];
            mk_dest_config cfg = {0};
            mk_dest *d = NULL;
            int rc = mk_dest_open(&cfg, m, l, &d);
            int done = rc == 0;
            if (rc) {
                mkt_assert_err(rc, MK_EIO);
                mk_file_mem_crash(l);
                mk_file_mem_crash(m);
                clk = (mk_crash_clock){0, 0, 0, 0};
                mkt_ok(mk_dest_open(&cfg, m, l, &d));
            }
            mkt_assert_image(m, img, NB, BS);
            mk_log_info info;
            mk_dest_log_info(d, &info);
            ck_assert_uint_eq(info.last_cp, 1);
            ck_assert_uint_eq(info.applied_cp, 1);
            ck_assert_uint_eq(info.durable_tid, 2);
            mk_dest_free(d);
            mk_file_close(l);
            mk_file_close(m);
            if (done) {
                ck_assert_uint_gt(k, 3);
                break;
            }
        }
    }
    free(zero);
    free(log);
    free(img);
}
END_TEST

START_TEST(test_s7_6_torn_commit_never_applied)
{
    uint8_t *log, *img;
    uint64_t len;
    committed_unapplied(&log, &len, &img);
    /* cut inside the R_CP_COMMIT (5 entries: 28 + 32 + 80 bytes) */
    uint64_t commit_len = MK_FRAME_OVERHEAD + 32 + 5 * 16;
    ck_assert_uint_eq(log[len - commit_len + 5], MK_R_CP_COMMIT);
    for (uint64_t cut = 1; cut < commit_len; cut += 13) {
        mk_file *l = mkt_mem_with(log, len - cut), *m;
        mkt_ok(mk_file_mem("test/mirror", &m));
        mkt_ok(mk_file_truncate(m, VB));
        mk_dest_config cfg = {0};
        mk_dest *d;
        mkt_ok(mk_dest_open(&cfg, m, l, &d));
        ck_assert_uint_eq(mk_dest_get_stats(d)->redo_cps, 0);
        ck_assert_uint_eq(mk_dest_get_stats(d)->cut_bytes, commit_len - cut);
        uint8_t *zero = calloc(1, VB);
        mkt_assert_image(m, zero, NB, BS);
        free(zero);
        mk_log_info info;
        mk_dest_log_info(d, &info);
        ck_assert_uint_eq(info.last_cp, 0);
        mk_dest_free(d);
        mk_file_close(l);
        mk_file_close(m);
    }
    free(log);
    free(img);
}
END_TEST

START_TEST(test_s8_2_restart_rebuilds_index_for_refs)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mkt_logf(&x.p, 2, 8 * BS, BS, Y);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    x.p.seq = 0;
    dfx_hello(&x);
    expect_hello_ack(&x, 0, 2);
    mk_ref r[3] = {ref_ok(1), ref_ok(3), {8, 2, 0, mk_block_hash(Y, BS)}};
    mkt_cp_begin(&x.p, 1, 3, 2);
    mkt_cp_ref(&x.p, 1, r, 3);
    mkt_cp_commit(&x.p, 1, 3);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    uint64_t blocks[3] = {1, 3, 8};
    const uint8_t *data[3] = {X + BS, X + 3 * BS, Y};
    expect_cp_ack(&fs->f[0], 1, 3, blocks, data);
    mkt_frames_free(fs);
    dfx_free(&x);
}
END_TEST

/* ---- 8.1: NAK ------------------------------------------------------------------ */

START_TEST(test_s8_1_data_resend_after_commit_applies)
{
    dfx x;
    dfx_open(&x);
    dfx_ready(&x);
    mk_ref r[2] = {ref_ok(0), ref_ok(1)};
    r[1].hash ^= 0x10;
    mkt_cp_begin(&x.p, 1, 3, 1);
    mkt_cp_ref(&x.p, 1, r, 2);
    mkt_cp_data(&x.p, 1, 9, Y, BS);
    mkt_cp_commit(&x.p, 1, 3);
    mkt_ok(dfx_send(&x));
    mkt_frames *fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    mk_nak n;
    mkt_ok(mk_nak_decode(&fs->f[0], &n));
    ck_assert_uint_eq(n.cp, 1);
    ck_assert_uint_eq(n.block, 1);
    mkt_assert_err(n.reason, MK_EREFHASH);
    mkt_frames_free(fs);
    /* the mirror is not touched while block 1 is outstanding */
    ck_assert_uint_eq(x.wm->writes, 0);
    ck_assert_uint_eq(last_cp(&x), 0);
    /* the resend carries other bytes than the REF claimed: DATA wins */
    mkt_cp_data(&x.p, 1, 1, Z, BS);
    mkt_ok(dfx_send(&x));
    fs = dfx_out(&x);
    ck_assert_uint_eq(fs->n, 1);
    uint64_t blocks[3] = {0, 1, 9};
    const uint8_t *data[3] = {X, Z, Y};
    expect_cp_ack(&fs->f[0], 1, 3, blocks, data);
    mkt_frames_free(fs);
    uint8_t *img = calloc(1, VB);
    memcpy(img, X, BS);
    memcpy(img + BS, Z, BS);
    memcpy(img + 9 * BS, Y, BS);
    mkt_assert_image(x.mirror, img, NB, BS);
    free(img);
    dfx_free(&x);
}
END_TEST

/* ---- 8.4: promotion -------------------------------------------------------------- */

START_TEST(test_s8_4_promote_replays_after_last_cp)
{
    dfx x;
    dfx_open(&x);
    mk_log_ident id;
    mkt_assert_err(mk_dest_promote(x.d), MK_ESTATE); /* fresh */
    dfx_ready(&x);
    mk_ref r0 = ref_ok(0);
    mkt_cp_begin(&x.p, 1, 1, 1);
    mkt_cp_ref(&x.p, 1, &r0, 1);
    mkt_cp_commit(&x.p, 1, 1);
    uint8_t a[700], b[BS];
    mkt_fill(a, sizeof a, 1);
    mkt_fill(b, sizeof b, 2);
    mkt_logf(&x.p, 2, BS + 50, sizeof a, a); /* partial blocks 1 and 2 */
    mkt_logf(&x.p, 3, 2 * BS, BS, b);
    mkt_logf(&x.p, 4, BS + 60, 10, Y);
    mkt_ok(dfx_send(&x));
    mkt_frames_free(dfx_out(&x));
    mkt_ok(mk_dest_promote(x.d));
    /* CP 1 (block 0 of X) plus tids 2, 3, 4 in order */
    uint8_t *img = calloc(1, VB);
    memcpy(img, X, BS);
    memcpy(img + BS + 50, a, sizeof a);
    memcpy(img + 2 * BS, b, BS);
    memcpy(img + BS + 60, Y, 10);
    mkt_assert_image(x.mirror, img, NB, BS);
    free(img);
    ck_assert_uint_eq(mkt_fsize(x.log), 0);
    mk_dest_free(x.d);
    /* the log is retired: a fresh destination that refuses the old mirror */
    mkt_ok(mk_dest_open(&x.cfg, x.mirror, x.log, &x.d));
    mkt_assert_err(mk_dest_ident(x.d, &id), MK_ESTATE);
    x.p.seq = 0;
    mk_buf_clear(&x.p.b);
    dfx_hello_frame(&x);
    mkt_assert_err(dfx_send(&x), MK_EDIVERGED);
    dfx_free(&x);
}
END_TEST

/* ---- 7.4 / I3: crash at every tick of a real run --------------------------------- */

typedef struct crun {
    mk_crash_clock clk;
    mkt_wfile *wm, *wl;
    mk_file *store;
    mk_source *src;
    mk_dest *dst;
    mk_source_config sc;
    mkt_link link;
    uint8_t *model, *img[3];
    int started[3];
    int crashed;
    uint32_t bs;
    uint64_t nb;
} crun;

typedef struct cwrite {
    uint64_t off;
    uint32_t len;
} cwrite;

/* CP 1 and CP 2 of the crash scenario: whole blocks, partial writes,
 * writes spanning blocks, and overwrites of both kinds. */
static const cwrite CW1[] = {{0, 4 * BS}, {5 * BS + 100, 700}, {10 * BS, BS}, {12 * BS, 3 * BS}};
static const cwrite CW2[] = {{1 * BS, BS}, {2 * BS + 7, 9}, {20 * BS, 4 * BS},
                             {13 * BS + 1, 2 * BS}, {10 * BS, BS}, {NB * BS - 300, 300}};

static void crun_free(crun *r)
{
    mk_source_free(r->src);
    mk_dest_free(r->dst);
    mk_file_close(&r->wm->base);
    mk_file_close(&r->wl->base);
    mk_file_close(r->store);
    free(r->model);
    for (int k = 0; k < 3; k++)
        free(r->img[k]);
    memset(r, 0, sizeof *r);
}

/* The destination died: power loss on both files, restart with
 * recovery, and the atomicity checks; then the source reconnects. */
static void crun_recover(crun *r)
{
    uint64_t crash_tick = r->clk.limit;
    uint32_t crash_tear = r->clk.tear;
    r->crashed = 1;
    mk_source_disconnect(r->src);
    mk_dest_free(r->dst);
    r->dst = NULL;
    mk_file_mem_crash(r->wm->in);
    mk_file_mem_crash(r->wl->in);
    r->wl->written_cp = r->wl->durable_cp;
    r->clk.dead = 0;
    r->clk.limit = 0;
    r->clk.tear = 0;
    mk_dest_config cfg = {0};
    int rc = mk_dest_open(&cfg, &r->wm->base, &r->wl->base, &r->dst);
    if (rc) {
        uint64_t llen = mkt_fsize(&r->wl->base);
        crun_free(r);
        ck_abort_msg("crash at tick %llu (tear %u): the destination cannot restart: %s "
                     "(log is %llu bytes)",
                     (unsigned long long)crash_tick, crash_tear, mk_errname(rc),
                     (unsigned long long)llen);
    }
    uint64_t durable = r->wl->durable_cp, acked = mk_source_cp_acked(r->src);
    mk_log_info info;
    mk_dest_log_info(r->dst, &info);
    ck_assert_uint_eq(info.last_cp, durable);
    ck_assert_uint_eq(info.applied_cp, durable);
    /* I3: CP k-1 or CP k, and exactly the one whose redo record is durable */
    ck_assert_msg(durable == acked || (durable == acked + 1 && mk_source_cp_in_flight(r->src)),
                  "durable CP %llu, source acked %llu", (unsigned long long)durable,
                  (unsigned long long)acked);
    ck_assert(r->started[durable]);
    if (!mkt_image_eq(&r->wm->base, r->img[durable], r->nb, r->bs)) {
        int k1 = durable ? mkt_image_eq(&r->wm->base, r->img[durable - 1], r->nb, r->bs) : 0;
        ck_abort_msg("after recovery the mirror is not the CP %llu image%s",
                     (unsigned long long)durable, k1 ? " (it is the one before)" : "");
    }
    r->link.dst = r->dst;
    mkt_link_reset(&r->link);
    mkt_ok(mk_source_connect(r->src, 0));
}

/* Pumps until the condition holds, recovering from the crash on the way. */
enum { C_READY, C_ACKED, C_CP };
static void crun_until(crun *r, int cond, uint64_t arg)
{
    for (int round = 0;; round++) {
        ck_assert_int_lt(round, 10);
        int rc = mkt_pump(&r->link);
        if (r->clk.dead) {
            crun_recover(r);
            continue;
        }
        mkt_ok(rc);
        mkt_ok(mk_source_error(r->src));
        int ok = cond == C_READY   ? mk_source_ready(r->src)
                 : cond == C_ACKED ? mk_source_acked(r->src) >= arg
                                   : mk_source_cp_acked(r->src) >= arg;
        if (ok)
            return;
        ck_abort_msg("link went quiet before the condition held");
    }
}

static void crun_write(crun *r, const cwrite *w, uint64_t seed)
{
    uint8_t *buf = malloc(w->len);
    uint64_t wid;
    int rc;
    mkt_fill(buf, w->len, seed);
    while ((rc = mk_source_write(r->src, w->off, buf, w->len, 0, &wid)) == MK_EAGAIN)
        crun_until(r, C_READY, 0);
    mkt_ok(rc);
    memcpy(r->model + w->off, buf, w->len);
    free(buf);
    if (r->sc.mode == MK_MODE_SYNC)
        crun_until(r, C_ACKED, wid);
    else
        crun_until(r, C_READY, 0);
}

static void crun_cp(crun *r, int k)
{
    int rc;
    while ((rc = mk_source_cp(r->src, 0)) == MK_EAGAIN)
        crun_until(r, C_ACKED, mk_source_get_stats(r->src)->writes);
    mkt_ok(rc);
    r->img[k] = malloc(r->nb * r->bs);
    memcpy(r->img[k], r->model, r->nb * r->bs);
    r->started[k] = 1;
    crun_until(r, C_CP, (uint64_t)k);
}

/* One run; limit counts ticks from the start when `from_start`, else from
 * the established session.  Returns the ticks the window used. */
static uint64_t crash_run(int mode, uint64_t limit, uint32_t tear, int from_start,
                          int *crashed)
{
    crun r;
    memset(&r, 0, sizeof r);
    r.bs = BS;
    r.nb = NB;
    mk_file *m, *l;
    mkt_ok(mk_file_mem_crashable("test/dest/mirror", &r.clk, &m));
    mkt_ok(mk_file_mem_crashable("test/dest/log", &r.clk, &l));
    r.wm = mkt_wrap(m, &r.clk);
    r.wl = mkt_wrap(l, &r.clk);
    mkt_ok(mk_file_mem("test/source/store", &r.store));
    r.sc = (mk_source_config){MKT_VOLUME_ID, NB, MKT_SOURCE_ID, BS, mode, 4 * BS, NULL};
    mkt_ok(mk_source_new(&r.sc, r.store, &r.src));
    mk_dest_config cfg = {0};
    mkt_ok(mk_dest_open(&cfg, &r.wm->base, &r.wl->base, &r.dst));
    mkt_link_init(&r.link, r.src, r.dst);
    r.link.dst_down = &r.clk.dead;
    r.model = calloc(1, VB);
    r.img[0] = calloc(1, VB);
    r.started[0] = 1;
    if (from_start) {
        r.clk.limit = limit;
        r.clk.tear = tear;
    }
    mkt_ok(mk_source_connect(r.src, 0));
    crun_until(&r, C_READY, 0);
    uint64_t t0 = r.clk.ticks;
    if (!from_start && limit) {
        r.clk.limit = t0 + limit;
        r.clk.tear = tear;
    }
    for (size_t i = 0; i < sizeof CW1 / sizeof *CW1; i++)
        crun_write(&r, &CW1[i], 10 + i);
    crun_cp(&r, 1);
    for (size_t i = 0; i < sizeof CW2 / sizeof *CW2; i++)
        crun_write(&r, &CW2[i], 20 + i);
    crun_cp(&r, 2);
    /* the run completed: the final mirror is CP 2, nothing acked was lost */
    mkt_assert_image(&r.wm->base, r.img[2], NB, BS);
    mkt_assert_image(r.store, r.img[2], NB, BS);
    const mk_source_stats *st = mk_source_get_stats(r.src);
    ck_assert_uint_eq(st->lost_transfers, 0);
    ck_assert_int_eq(st->out_of_sync, 0);
    ck_assert_uint_eq(st->cps_acked, 2);
    uint64_t used = r.clk.ticks - (from_start ? 0 : t0);
    *crashed = r.crashed;
    crun_free(&r);
    return used;
}

static const int CRASH_MODES[3] = {MK_MODE_SYNC, MK_MODE_SEMI, MK_MODE_ASYNC};
static const uint32_t CRASH_TEARS[3] = {0, 20, 300};

START_TEST(test_s7_4_crash_at_every_tick_mirror_is_cp_image)
{
    int mode = CRASH_MODES[_i / 3];
    uint32_t tear = CRASH_TEARS[_i % 3];
    int crashed;
    uint64_t n = crash_run(mode, 0, 0, 0, &crashed);
    ck_assert_int_eq(crashed, 0);
    ck_assert_uint_gt(n, 20);
    for (uint64_t k = 1; k <= n; k++) {
        crash_run(mode, k, tear, 0, &crashed);
        ck_assert_msg(crashed, "tick %llu of %llu never came", (unsigned long long)k,
                      (unsigned long long)n);
    }
}
END_TEST

/* The same from the very first storage call: adoption (2.3) included. */
START_TEST(test_s7_4_crash_during_adoption_recovers)
{
    uint32_t tear = CRASH_TEARS[_i];
    int crashed;
    uint64_t n = crash_run(MK_MODE_SYNC, 0, 0, 1, &crashed);
    ck_assert_uint_gt(n, 5);
    /* the ticks of the first HELLO and the first write */
    for (uint64_t k = 1; k <= 8; k++) {
        crash_run(MK_MODE_SYNC, k, tear, 1, &crashed);
        ck_assert(crashed);
    }
}
END_TEST

static Suite *dest_suite(void)
{
    Suite *s = suite_create("dest");
    TCase *ts = tcase_create("sessions");
    tcase_set_timeout(ts, 60);
    tcase_add_test(ts, test_s2_1_hello_adopts_identity);
    tcase_add_test(ts, test_s2_3_adoption_writes_header_then_sizes_mirror);
    tcase_add_loop_test(ts, test_s2_1_hello_decode_errors, 0, HB_COUNT);
    tcase_add_test(ts, test_s2_3_frames_before_hello_estate);
    tcase_add_test(ts, test_s2_3_second_hello_estate);
    tcase_add_test(ts, test_s2_3_other_source_id_epeer);
    tcase_add_test(ts, test_s2_3_volume_mismatch_evolume);
    tcase_add_test(ts, test_s2_3_nonempty_mirror_fresh_log_ediverged);
    tcase_add_test(ts, test_s2_4_session_end_discards_open_cp);
    tcase_add_test(ts, test_s2_4_session_end_discards_commit_waiting_for_resend);
    suite_add_tcase(s, ts);

    TCase *tf = tcase_create("framing");
    tcase_set_timeout(tf, 60);
    tcase_add_loop_test(tf, test_s3_4_bad_frame_refused_nothing_applied, 0, BF_COUNT);
    tcase_add_test(tf, test_s3_4_frames_before_bad_frame_stay_accepted);
    tcase_add_test(tf, test_s3_4_partial_frame_discarded_at_session_end);
    tcase_add_test(tf, test_s3_5_first_frame_seq_must_be_0);
    tcase_add_test(tf, test_s3_6_received_error_ends_session_without_reply);
    tcase_add_test(tf, test_s8_5_session_error_cleared_engine_error_sticky);
    suite_add_tcase(s, tf);

    TCase *tl = tcase_create("log");
    tcase_set_timeout(tl, 60);
    tcase_add_test(tl, test_s4_4_group_commit_one_sync_per_batch);
    tcase_add_test(tl, test_s4_4_no_log_ack_without_sync);
    tcase_add_test(tl, test_s4_4_transfer_record_is_log_payload);
    tcase_add_test(tl, test_s4_5_tid_must_increase_across_sessions);
    tcase_add_test(tl, test_s4_3_log_allowed_in_open_cp_and_after_commit);
    suite_add_tcase(s, tl);

    TCase *tc = tcase_create("cp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_s7_2_ref_resolution_failures_nak_then_data);
    tcase_add_test(tc, test_s7_2_ref_resolves_from_log_without_data);
    tcase_add_loop_test(tc, test_s7_2_cp_record_checks, 0, CR_COUNT);
    tcase_add_test(tc, test_s7_2_refused_ref_frame_sends_no_nak);
    tcase_add_test(tc, test_s7_1_empty_cp_is_committed_and_acked);
    tcase_add_test(tc, test_s7_5_cp_ack_digest_vectors);
    tcase_add_test(tc, test_s7_4_apply_order);
    tcase_add_test(tc, test_s7_4_read_back_mismatch_is_engine_error);
    tcase_add_test(tc, test_s7_7_reclaim_after_applied_cp_only);
    tcase_add_test(tc, test_s7_7_no_reclaim_when_transfer_arrives_during_cp);
    tcase_add_test(tc, test_s8_1_data_resend_after_commit_applies);
    tcase_add_test(tc, test_s8_4_promote_replays_after_last_cp);
    suite_add_tcase(s, tc);

    TCase *tr = tcase_create("recovery");
    tcase_set_timeout(tr, 120);
    tcase_add_test(tr, test_s7_6_open_redoes_committed_cp);
    tcase_add_test(tr, test_s7_6_crash_during_redo_at_every_tick);
    tcase_add_test(tr, test_s7_6_torn_commit_never_applied);
    tcase_add_test(tr, test_s8_2_restart_rebuilds_index_for_refs);
    tcase_add_loop_test(tr, test_s7_4_crash_at_every_tick_mirror_is_cp_image, 0, 9);
    tcase_add_loop_test(tr, test_s7_4_crash_during_adoption_recovers, 0, 3);
    suite_add_tcase(s, tr);
    return s;
}

int main(void) { return mk_test_run(dest_suite()); }
