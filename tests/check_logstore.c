/*
 * check_logstore.c - the destination's log store (mk_logstore.h), SPEC.md
 * sections 7.3 (file format), 7.4 (redo record), 7.6 (recovery scan) and
 * 7.7 (truncation), plus the transfer walk promotion uses (8.4).
 *
 * Header slots are checked against bytes laid out here by hand from the
 * format (u32 magic "MKLG", u16 version, u16 0, u64 generation, u64
 * volume_id, u64 nblocks, u32 block_size, u32 0, u64 source_id, u64
 * base_cp, u64 base_tid, u64 next_seq, u64 base_digest, zeros to byte 120,
 * XXH3-64 of bytes 0..119), and records are forged by hand (20-byte frame header, payload,
 * XXH3 trailer) so the scan meets exactly the bytes a test intends.
 *
 * The reference log used by most tests (64 blocks of 512 bytes):
 *
 *   off  256  seq 1  TRANSFER tid 1, offset 0,    1024 bytes (slots: blocks 0,1)
 *   off 1332  seq 2  TRANSFER tid 2, offset 1024,  512 bytes (slot: block 2)
 *   off 1896  seq 3  CP_DATA  cp 1, block 5
 *   off 2452  seq 4  CP_COMMIT cp 1, covers 2, digest DIG1, {0 @ 300, 5 @ 1932}
 *   off 2544  seq 5  CP_APPLIED 1
 *   off 2580  seq 6  TRANSFER tid 3, offset 2048,  512 bytes (slot: block 4)
 *   end 3144
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_engine_test.h"

#define BS 512u
#define NB 64u

static const mk_log_ident ID = {0x1111, NB, 0x2222, BS};

enum {
    OFF_T1 = 256, OFF_T2 = 1332, OFF_CPD = 1896, OFF_COMMIT = 2452,
    OFF_APPLIED = 2544, OFF_T3 = 2580, OFF_END = 3144
};

/* The CP digests the reference log's commit records carry. */
#define DIG1 0xD1D1D1D1D1D1D1D1ull
#define DIG2 0xD2D2D2D2D2D2D2D2ull

static uint8_t D1[1024], D2[512], D3[512], DB5[512];

static void fill_data(void)
{
    mkt_fill(D1, sizeof D1, 1);
    mkt_fill(D2, sizeof D2, 2);
    mkt_fill(D3, sizeof D3, 3);
    mkt_fill(DB5, sizeof DB5, 5);
}

/* ---- hand-made bytes ------------------------------------------------------ */

static void put(uint8_t *p, uint64_t v, int w)
{
    for (int i = 0; i < w; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One header slot, byte by byte from the format. */
static void make_slot(uint8_t *s, uint32_t magic, uint16_t version, uint64_t gen,
                      const mk_log_ident *id, uint64_t base_cp, uint64_t base_tid,
                      uint64_t next_seq, uint64_t base_digest)
{
    memset(s, 0, MK_LOG_SLOT_LEN);
    put(s + 0, magic, 4);
    put(s + 4, version, 2);
    put(s + 8, gen, 8);
    put(s + 16, id->volume_id, 8);
    put(s + 24, id->nblocks, 8);
    put(s + 32, id->block_size, 4);
    put(s + 40, id->source_id, 8);
    put(s + 48, base_cp, 8);
    put(s + 56, base_tid, 8);
    put(s + 64, next_seq, 8);
    put(s + 72, base_digest, 8);
    put(s + 120, XXH3_64bits(s, 120), 8);
}

/* One record: frame header, payload, XXH3 trailer.  Returns its size. */
static size_t make_record(uint8_t *r, uint8_t type, uint64_t seq, const uint8_t *payload,
                          uint32_t plen)
{
    put(r + 0, MK_FRAME_MAGIC, 4);
    r[4] = MK_PROTO_VERSION;
    r[5] = type;
    put(r + 6, 0, 2);
    put(r + 8, plen, 4);
    put(r + 12, seq, 8);
    memcpy(r + MK_HDR_LEN, payload, plen);
    put(r + MK_HDR_LEN + plen, XXH3_64bits(r, MK_HDR_LEN + (size_t)plen), 8);
    return MK_FRAME_OVERHEAD + plen;
}

/* Appends a forged record at the end of f. */
static uint64_t append_raw(mk_file *f, uint8_t type, uint64_t seq, const uint8_t *payload,
                           uint32_t plen)
{
    uint8_t *r = malloc(MK_FRAME_OVERHEAD + (size_t)plen);
    ck_assert_ptr_nonnull(r);
    size_t n = make_record(r, type, seq, payload, plen);
    uint64_t at = mkt_fsize(f);
    mkt_ok(mk_file_pwrite(f, r, n, at));
    free(r);
    return at;
}

static uint32_t transfer_payload(uint8_t *p, uint64_t tid, uint64_t off, uint32_t len,
                                 const uint8_t *data, uint32_t ndata)
{
    put(p, tid, 8);
    put(p + 8, off, 8);
    put(p + 16, len, 4);
    put(p + 20, 0, 4);
    memcpy(p + 24, data, ndata);
    return 24 + ndata;
}

/* ---- stores under test ---------------------------------------------------- */

static mk_logstore *open_ok(mk_file *f, mk_log_info *info)
{
    mk_logstore *ls = NULL;
    mkt_ok(mk_logstore_open(f, &ls, info));
    ck_assert_ptr_nonnull(ls);
    return ls;
}

static mk_logstore *new_store(mk_file **f)
{
    mkt_ok(mk_file_mem("test/log", f));
    mk_logstore *ls = open_ok(*f, NULL);
    mkt_ok(mk_logstore_init(ls, &ID));
    return ls;
}

static void add_transfer(mk_logstore *ls, uint64_t tid, uint64_t off, uint32_t len,
                         const uint8_t *data)
{
    mk_log l = {tid, off, len, data};
    mkt_ok(mk_logstore_append_transfer(ls, &l));
}

/* The reference log of the file comment, up to and including `upto`
 * records (1..6). */
static mk_file *reference_log(int upto)
{
    mk_file *f;
    uint64_t off;
    mk_logstore *ls = new_store(&f);
    fill_data();
    if (upto >= 1)
        add_transfer(ls, 1, 0, 1024, D1);
    if (upto >= 2)
        add_transfer(ls, 2, 1024, 512, D2);
    if (upto >= 3) {
        mkt_ok(mk_logstore_append_cp_data(ls, 1, 5, DB5, &off));
        ck_assert_uint_eq(off, OFF_CPD + MK_HDR_LEN + MK_CP_DATA_HDR_LEN);
    }
    if (upto >= 4) {
        mk_redo_entry e[2] = {{0, OFF_T1 + 44}, {5, OFF_CPD + 36}};
        mkt_ok(mk_logstore_append_commit(ls, 1, 2, DIG1, e, 2));
    }
    if (upto >= 5)
        mkt_ok(mk_logstore_append_applied(ls, 1));
    if (upto >= 6)
        add_transfer(ls, 3, 2048, 512, D3);
    mkt_ok(mk_logstore_sync(ls));
    mk_logstore_free(ls);
    return f;
}

static const uint64_t REF_END[7] = {256, OFF_T2, OFF_CPD, OFF_COMMIT, OFF_APPLIED,
                                    OFF_T3, OFF_END};

/* ---- 7.3: fresh files and the header ------------------------------------- */

START_TEST(test_s7_3_fresh_file_has_no_identity)
{
    mk_file *f;
    mk_log_info info;
    mk_log_ident id;
    mkt_ok(mk_file_mem("test/log", &f));
    mk_logstore *ls = open_ok(f, &info);
    ck_assert_int_eq(info.fresh, 1);
    ck_assert_uint_eq(info.records, 0);
    ck_assert_uint_eq(info.cut_bytes, 0);
    ck_assert_uint_eq(info.last_cp, 0);
    ck_assert_uint_eq(info.applied_cp, 0);
    ck_assert_uint_eq(info.durable_tid, 0);
    ck_assert_uint_eq(info.size, MK_LOG_DATA_START);
    mkt_assert_err(mk_logstore_ident(ls, &id), MK_ESTATE);
    fill_data();
    mk_log l = {1, 0, 512, D1};
    mkt_assert_err(mk_logstore_append_transfer(ls, &l), MK_ESTATE);
    /* opening an empty file writes nothing */
    ck_assert_uint_eq(mkt_fsize(f), 0);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_3_init_writes_header_slot_0)
{
    mk_file *f;
    mk_log_info info;
    mk_log_ident id;
    uint8_t want[MK_LOG_SLOT_LEN], zero[MK_LOG_SLOT_LEN] = {0};
    mk_logstore *ls = new_store(&f);
    ck_assert_uint_eq(mkt_fsize(f), MK_LOG_DATA_START);
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    make_slot(want, MK_LOG_MAGIC, MK_LOG_VERSION, 1, &ID, 0, 0, 1, 0);
    ck_assert_mem_eq(raw, want, MK_LOG_SLOT_LEN);
    ck_assert_mem_eq(raw + MK_LOG_SLOT_LEN, zero, MK_LOG_SLOT_LEN);
    ck_assert_mem_eq(raw, "MKLG", 4);
    free(raw);
    /* a second init is refused */
    mkt_assert_err(mk_logstore_init(ls, &ID), MK_ESTATE);
    mk_logstore_free(ls);

    ls = open_ok(f, &info);
    ck_assert_int_eq(info.fresh, 0);
    ck_assert_uint_eq(info.records, 0);
    ck_assert_uint_eq(info.size, MK_LOG_DATA_START);
    mkt_ok(mk_logstore_ident(ls, &id));
    ck_assert_uint_eq(id.volume_id, ID.volume_id);
    ck_assert_uint_eq(id.nblocks, ID.nblocks);
    ck_assert_uint_eq(id.block_size, ID.block_size);
    ck_assert_uint_eq(id.source_id, ID.source_id);
    mk_logstore_free(ls);
    mk_file_close(f);

    /* an identity with a bad block size is refused and nothing is written */
    mkt_ok(mk_file_mem("test/log", &f));
    ls = open_ok(f, NULL);
    mk_log_ident bad = ID;
    bad.block_size = 1000;
    mkt_assert_err(mk_logstore_init(ls, &bad), MK_EBLOCKSIZE);
    ck_assert_uint_eq(mkt_fsize(f), 0);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_3_records_are_frames_with_continuing_seq)
{
    mk_file *f = reference_log(6);
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    ck_assert_uint_eq(len, OFF_END);
    static const uint8_t types[6] = {MK_R_TRANSFER, MK_R_TRANSFER, MK_R_CP_DATA,
                                     MK_R_CP_COMMIT, MK_R_CP_APPLIED, MK_R_TRANSFER};
    static const uint32_t plens[6] = {24 + 1024, 24 + 512, 16 + 512, 32 + 32, 8, 24 + 512};
    uint64_t at = MK_LOG_DATA_START;
    for (int i = 0; i < 6; i++) {
        mk_frame fr;
        size_t used;
        ck_assert_uint_eq(at, REF_END[i]);
        mkt_ok(mk_frame_decode(raw + at, len - at, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &fr, &used));
        ck_assert_uint_eq(fr.type, types[i]);
        ck_assert_uint_eq(fr.seq, (uint64_t)i + 1);
        ck_assert_uint_eq(fr.len, plens[i]);
        at += used;
    }
    ck_assert_uint_eq(at, len);
    /* the TRANSFER payload is the LOG payload as received */
    ck_assert_uint_eq(mk_get_le64(raw + OFF_T1 + 20), 1);
    ck_assert_uint_eq(mk_get_le64(raw + OFF_T1 + 28), 0);
    ck_assert_uint_eq(mkt_get_le32(raw + OFF_T1 + 36), 1024);
    ck_assert_mem_eq(raw + OFF_T1 + 44, D1, 1024);
    /* the redo record: cp, covers, digest, n, then (block, offset) pairs */
    const uint8_t *c = raw + OFF_COMMIT + 20;
    ck_assert_uint_eq(mk_get_le64(c), 1);
    ck_assert_uint_eq(mk_get_le64(c + 8), 2);
    ck_assert_uint_eq(mk_get_le64(c + 16), DIG1);
    ck_assert_uint_eq(mk_get_le64(c + 24), 2);
    ck_assert_uint_eq(mk_get_le64(c + 32), 0);
    ck_assert_uint_eq(mk_get_le64(c + 40), OFF_T1 + 44);
    ck_assert_uint_eq(mk_get_le64(c + 48), 5);
    ck_assert_uint_eq(mk_get_le64(c + 56), OFF_CPD + 36);
    ck_assert_mem_eq(raw + OFF_CPD + 36, DB5, 512);
    free(raw);
    mk_file_close(f);
}
END_TEST

/* ---- 7.3 / 7.6: the index -------------------------------------------------- */

static void check_slots(mk_logstore *ls)
{
    uint64_t off, block;
    uint8_t b[BS];
    /* tid 1: blocks 0 and 1 */
    mkt_ok(mk_logstore_find_slot(ls, 1, 0, &off, &block, NULL));
    ck_assert_uint_eq(off, OFF_T1 + 44);
    ck_assert_uint_eq(block, 0);
    mkt_ok(mk_logstore_read(ls, off, b, BS));
    ck_assert_mem_eq(b, D1, BS);
    mkt_ok(mk_logstore_find_slot(ls, 1, 1, &off, &block, NULL));
    ck_assert_uint_eq(off, OFF_T1 + 44 + 512);
    ck_assert_uint_eq(block, 1);
    mkt_ok(mk_logstore_read(ls, off, b, BS));
    ck_assert_mem_eq(b, D1 + 512, BS);
    mkt_assert_err(mk_logstore_find_slot(ls, 1, 2, &off, &block, NULL), MK_ESLOT);
    /* tid 2: block 2 */
    mkt_ok(mk_logstore_find_slot(ls, 2, 0, &off, &block, NULL));
    ck_assert_uint_eq(off, OFF_T2 + 44);
    ck_assert_uint_eq(block, 2);
    mkt_ok(mk_logstore_read(ls, off, b, BS));
    ck_assert_mem_eq(b, D2, BS);
    /* tid 3: block 4 */
    mkt_ok(mk_logstore_find_slot(ls, 3, 0, &off, &block, NULL));
    ck_assert_uint_eq(off, OFF_T3 + 44);
    ck_assert_uint_eq(block, 4);
    mkt_assert_err(mk_logstore_find_slot(ls, 9, 0, &off, &block, NULL), MK_ENOTID);
    mkt_assert_err(mk_logstore_find_slot(ls, 0, 0, &off, &block, NULL), MK_ENOTID);
}

START_TEST(test_s7_6_reopen_rebuilds_index)
{
    mk_file *f = reference_log(6);
    mk_log_info info;
    mk_logstore *ls = open_ok(f, &info);
    ck_assert_int_eq(info.fresh, 0);
    ck_assert_uint_eq(info.records, 6);
    ck_assert_uint_eq(info.cut_bytes, 0);
    ck_assert_uint_eq(info.last_cp, 1);
    ck_assert_uint_eq(info.applied_cp, 1);
    ck_assert_uint_eq(info.covers_tid, 2);
    ck_assert_uint_eq(info.durable_tid, 3);
    ck_assert_uint_eq(info.size, OFF_END);
    ck_assert_uint_eq(mkt_fsize(f), OFF_END);
    check_slots(ls);
    /* appending continues the sequence: a fourth transfer, then reopen */
    uint8_t d4[700];
    mkt_fill(d4, sizeof d4, 4);
    add_transfer(ls, 4, 3 * 512 + 100, 700, d4); /* head 412, no slot, tail 288 */
    mkt_ok(mk_logstore_sync(ls));
    mk_logstore_free(ls);
    ls = open_ok(f, &info);
    ck_assert_uint_eq(info.records, 7);
    ck_assert_uint_eq(info.durable_tid, 4);
    ck_assert_uint_eq(info.cut_bytes, 0);
    check_slots(ls);
    uint64_t off, block;
    mkt_assert_err(mk_logstore_find_slot(ls, 4, 0, &off, &block, NULL), MK_ESLOT);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_6_unaligned_transfer_slots)
{
    mk_file *f;
    mk_logstore *ls = new_store(&f);
    uint8_t d[3 * 512 + 200];
    mkt_fill(d, sizeof d, 9);
    /* offset 512*7 + 300: head 212 in block 7, then blocks 8 and 9 whole */
    add_transfer(ls, 5, 7 * 512 + 300, sizeof d, d);
    mk_logstore_free(ls);
    mk_log_info info;
    ls = open_ok(f, &info);
    ck_assert_uint_eq(info.durable_tid, 5);
    uint64_t off, block;
    /* head 212, then whole blocks 8, 9 (3*512+200-212 = 1524 = 2*512 + 500) */
    for (uint32_t s = 0; s < 2; s++) {
        uint8_t b[BS];
        mkt_ok(mk_logstore_find_slot(ls, 5, s, &off, &block, NULL));
        ck_assert_uint_eq(block, 8 + s);
        ck_assert_uint_eq(off, 256 + 44 + 212 + (uint64_t)s * 512);
        mkt_ok(mk_logstore_read(ls, off, b, BS));
        ck_assert_mem_eq(b, d + 212 + s * 512, BS);
    }
    mkt_assert_err(mk_logstore_find_slot(ls, 5, 2, &off, &block, NULL), MK_ESLOT);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_3_append_rules)
{
    mk_file *f = reference_log(6);
    mk_logstore *ls = open_ok(f, NULL);
    uint8_t d[BS] = {0};
    uint64_t off;
    mk_log l = {3, 0, 512, d};
    mkt_assert_err(mk_logstore_append_transfer(ls, &l), MK_ETID); /* equal */
    l.tid = 2;
    mkt_assert_err(mk_logstore_append_transfer(ls, &l), MK_ETID); /* smaller */
    l = (mk_log){4, NB * BS - 100, 200, d};
    mkt_assert_err(mk_logstore_append_transfer(ls, &l), MK_ERANGE);
    l = (mk_log){4, NB * BS + 1, 1, d};
    mkt_assert_err(mk_logstore_append_transfer(ls, &l), MK_ERANGE);
    mkt_assert_err(mk_logstore_append_cp_data(ls, 2, NB, d, &off), MK_ERANGE);
    mk_redo_entry e = {0, 300};
    mkt_assert_err(mk_logstore_append_commit(ls, 1, 3, 0, &e, 1), MK_ECP);
    mkt_assert_err(mk_logstore_append_commit(ls, 3, 3, 0, &e, 1), MK_ECP);
    mkt_assert_err(mk_logstore_append_applied(ls, 2), MK_ECP);
    mkt_assert_err(mk_logstore_read(ls, OFF_END - 100, d, 200), MK_ERANGE);
    ck_assert_uint_eq(mkt_fsize(f), OFF_END);
    /* the last byte of the volume is fine */
    l = (mk_log){4, NB * BS - 100, 100, d};
    mkt_ok(mk_logstore_append_transfer(ls, &l));
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

/* ---- 7.6: torn and stale tails -------------------------------------------- */

/* Truncates the reference log (`records` long) at every byte inside its
 * last record and checks the scan cuts exactly that record. */
static void torn_at_every_byte(int records, uint64_t want_last_cp, uint64_t want_durable)
{
    mk_file *f = reference_log(records);
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    mk_file_close(f);
    uint64_t start = REF_END[records - 1];
    ck_assert_uint_eq(len, REF_END[records]);
    for (uint64_t cut = start + 1; cut < len; cut++) {
        mk_log_info info;
        f = mkt_mem_with(raw, cut);
        mk_logstore *ls = open_ok(f, &info);
        ck_assert_uint_eq(info.cut_bytes, cut - start);
        ck_assert_uint_eq(info.records, (uint64_t)records - 1);
        ck_assert_uint_eq(info.size, start);
        ck_assert_uint_eq(info.last_cp, want_last_cp);
        ck_assert_uint_eq(info.durable_tid, want_durable);
        /* the cut is made on disk, and nothing torn is pending */
        ck_assert_uint_eq(mkt_fsize(f), start);
        uint64_t cp, n, dg;
        mk_redo_entry *e = NULL;
        if (want_last_cp == info.applied_cp)
            ck_assert_int_eq(mk_logstore_pending_redo(ls, &cp, &dg, &e, &n), 0);
        /* the log goes on from the cut: a record appended now is kept */
        uint8_t d[BS];
        mkt_fill(d, BS, cut);
        add_transfer(ls, want_durable + 1, 40 * BS, BS, d);
        mkt_ok(mk_logstore_sync(ls));
        mk_logstore_free(ls);
        ls = open_ok(f, &info);
        ck_assert_uint_eq(info.records, (uint64_t)records);
        ck_assert_uint_eq(info.cut_bytes, 0);
        ck_assert_uint_eq(info.durable_tid, want_durable + 1);
        mk_logstore_free(ls);
        mk_file_close(f);
    }
    free(raw);
}

START_TEST(test_s7_6_torn_transfer_tail_cut_at_every_byte)
{
    torn_at_every_byte(6, 1, 2);
}
END_TEST

START_TEST(test_s7_6_torn_commit_tail_cut_never_applied)
{
    /* the tail is the redo record of CP 1: cut, CP 1 never happened */
    torn_at_every_byte(4, 0, 2);
    /* and the CP_DATA before it */
    torn_at_every_byte(3, 0, 2);
    /* and CP_APPLIED: CP 1 committed but not known applied -> redo pending */
    mk_file *f = reference_log(5);
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    mk_file_close(f);
    f = mkt_mem_with(raw, len - 1);
    mk_log_info info;
    mk_logstore *ls = open_ok(f, &info);
    ck_assert_uint_eq(info.cut_bytes, 36 - 1);
    ck_assert_uint_eq(info.last_digest, DIG1);
    ck_assert_uint_eq(info.last_cp, 1);
    ck_assert_uint_eq(info.applied_cp, 0);
    uint64_t cp, n, dg = 0;
    mk_redo_entry *e = NULL;
    ck_assert_int_eq(mk_logstore_pending_redo(ls, &cp, &dg, &e, &n), 1);
    ck_assert_uint_eq(cp, 1);
    ck_assert_uint_eq(dg, DIG1);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(e[0].block, 0);
    ck_assert_uint_eq(e[0].off, OFF_T1 + 44);
    ck_assert_uint_eq(e[1].block, 5);
    ck_assert_uint_eq(e[1].off, OFF_CPD + 36);
    free(e);
    mk_logstore_free(ls);
    mk_file_close(f);
    free(raw);
}
END_TEST

/* Flips each byte of the last record in turn: always cut, whole. */
static void flipped_every_byte(int records)
{
    mk_file *f = reference_log(records);
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    mk_file_close(f);
    uint64_t start = REF_END[records - 1];
    for (uint64_t i = start; i < len; i++) {
        mk_log_info info;
        raw[i] ^= 0x5A;
        f = mkt_mem_with(raw, len);
        raw[i] ^= 0x5A;
        mk_logstore *ls = open_ok(f, &info);
        ck_assert_msg(info.cut_bytes == len - start, "flip at %llu: cut %llu",
                      (unsigned long long)i, (unsigned long long)info.cut_bytes);
        ck_assert_uint_eq(info.records, (uint64_t)records - 1);
        ck_assert_uint_eq(mkt_fsize(f), start);
        mk_logstore_free(ls);
        mk_file_close(f);
    }
    free(raw);
}

START_TEST(test_s7_6_flipped_byte_in_last_record_cut)
{
    flipped_every_byte(6); /* TRANSFER */
    flipped_every_byte(5); /* CP_APPLIED */
    flipped_every_byte(4); /* CP_COMMIT */
    flipped_every_byte(3); /* CP_DATA */
}
END_TEST

START_TEST(test_s7_6_stale_seq_record_cut)
{
    static const uint64_t seqs[] = {8, 6, 1, 0, 1000};
    for (size_t k = 0; k < sizeof seqs / sizeof *seqs; k++) {
        mk_file *f = reference_log(6);
        uint8_t p[24 + BS], d[BS] = {7};
        uint32_t plen = transfer_payload(p, 4, 10 * BS, BS, d, BS);
        append_raw(f, MK_R_TRANSFER, seqs[k], p, plen);
        mk_log_info info;
        mk_logstore *ls = open_ok(f, &info);
        ck_assert_uint_eq(info.cut_bytes, MK_FRAME_OVERHEAD + plen);
        ck_assert_uint_eq(info.records, 6);
        ck_assert_uint_eq(info.durable_tid, 3);
        ck_assert_uint_eq(mkt_fsize(f), OFF_END);
        mk_logstore_free(ls);
        mk_file_close(f);
    }
    /* the right seq (7) is kept */
    mk_file *f = reference_log(6);
    uint8_t p[24 + BS], d[BS] = {7};
    append_raw(f, MK_R_TRANSFER, 7, p, transfer_payload(p, 4, 10 * BS, BS, d, BS));
    mk_log_info info;
    mk_logstore *ls = open_ok(f, &info);
    ck_assert_uint_eq(info.cut_bytes, 0);
    ck_assert_uint_eq(info.records, 7);
    ck_assert_uint_eq(info.durable_tid, 4);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_6_garbage_after_last_record_cut)
{
    mk_file *f = reference_log(6);
    uint8_t junk[300];
    mkt_fill(junk, sizeof junk, 77);
    mkt_ok(mk_file_pwrite(f, junk, sizeof junk, OFF_END));
    mk_log_info info;
    mk_logstore *ls = open_ok(f, &info);
    ck_assert_uint_eq(info.cut_bytes, sizeof junk);
    ck_assert_uint_eq(info.records, 6);
    ck_assert_uint_eq(mkt_fsize(f), OFF_END);
    mk_logstore_free(ls);
    /* zeros (a preallocated or extended tail) likewise */
    uint8_t z[100] = {0};
    mkt_ok(mk_file_pwrite(f, z, sizeof z, OFF_END));
    ls = open_ok(f, &info);
    ck_assert_uint_eq(info.cut_bytes, sizeof z);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

/* ---- 7.6: records that pass their checksum but break a rule ------------- */

typedef struct rule_case {
    const char *what;
    uint8_t type;
    int want;
} rule_case;

enum {
    RC_OK_TRANSFER, RC_TID_EQUAL, RC_TID_SMALLER, RC_TID_ZERO, RC_XFER_RANGE_END,
    RC_XFER_RANGE_OFF, RC_XFER_ZERO_LEN, RC_XFER_LEN_MISMATCH, RC_XFER_RESERVED,
    RC_CPD_OLD_CP, RC_CPD_SKIP_CP, RC_CPD_BLOCK, RC_CPD_LENGTH, RC_COMMIT_OLD_CP,
    RC_COMMIT_COVERS_AHEAD, RC_COMMIT_COVERS_BACK, RC_COMMIT_UNSORTED,
    RC_COMMIT_DUP, RC_COMMIT_BLOCK, RC_COMMIT_OFF_LOW, RC_COMMIT_OFF_NEAR,
    RC_COMMIT_COUNT, RC_COMMIT_TOO_MANY, RC_COMMIT_SHORT, RC_COMMIT_WRONG_BLOCK,
    RC_COMMIT_MID_SLOT, RC_COMMIT_OLD_CP_DATA, RC_APPLIED_AHEAD,
    RC_APPLIED_BACK, RC_APPLIED_LENGTH, RC_TYPE_LOG, RC_TYPE_UNKNOWN, RC_COUNT
};

static const rule_case RULES[RC_COUNT] = {
    [RC_OK_TRANSFER] = {"valid transfer tid 4", MK_R_TRANSFER, 0},
    [RC_TID_EQUAL] = {"transfer tid 3 again", MK_R_TRANSFER, MK_ETID},
    [RC_TID_SMALLER] = {"transfer tid 2", MK_R_TRANSFER, MK_ETID},
    [RC_TID_ZERO] = {"transfer tid 0", MK_R_TRANSFER, MK_ETID},
    [RC_XFER_RANGE_END] = {"transfer past the volume end", MK_R_TRANSFER, MK_ERANGE},
    [RC_XFER_RANGE_OFF] = {"transfer offset past the end", MK_R_TRANSFER, MK_ERANGE},
    [RC_XFER_ZERO_LEN] = {"transfer of 0 bytes", MK_R_TRANSFER, MK_EZEROLEN},
    [RC_XFER_LEN_MISMATCH] = {"transfer length != data", MK_R_TRANSFER, MK_ELENGTH},
    [RC_XFER_RESERVED] = {"transfer reserved bytes", MK_R_TRANSFER, MK_ERESERVED},
    [RC_CPD_OLD_CP] = {"CP_DATA of committed CP 1", MK_R_CP_DATA, MK_ECP},
    [RC_CPD_SKIP_CP] = {"CP_DATA of CP 3", MK_R_CP_DATA, MK_ECP},
    [RC_CPD_BLOCK] = {"CP_DATA block 64", MK_R_CP_DATA, MK_ERANGE},
    [RC_CPD_LENGTH] = {"CP_DATA short block", MK_R_CP_DATA, MK_ELENGTH},
    [RC_COMMIT_OLD_CP] = {"commit of CP 1 again", MK_R_CP_COMMIT, MK_ECP},
    [RC_COMMIT_COVERS_AHEAD] = {"commit covers tid 4 > durable 3", MK_R_CP_COMMIT, MK_ETID},
    [RC_COMMIT_COVERS_BACK] = {"commit covers tid 1 < 2", MK_R_CP_COMMIT, MK_ETID},
    [RC_COMMIT_UNSORTED] = {"commit blocks unsorted", MK_R_CP_COMMIT, MK_ERANGE},
    [RC_COMMIT_DUP] = {"commit block twice", MK_R_CP_COMMIT, MK_ERANGE},
    [RC_COMMIT_BLOCK] = {"commit block 64", MK_R_CP_COMMIT, MK_ERANGE},
    [RC_COMMIT_OFF_LOW] = {"commit offset in the header", MK_R_CP_COMMIT, MK_ERANGE},
    [RC_COMMIT_OFF_NEAR] = {"commit offset < a block before it", MK_R_CP_COMMIT, MK_ERANGE},
    [RC_COMMIT_COUNT] = {"commit count 2, one entry", MK_R_CP_COMMIT, MK_ELENGTH},
    [RC_COMMIT_TOO_MANY] = {"commit count 65 > nblocks", MK_R_CP_COMMIT, MK_ELENGTH},
    [RC_COMMIT_SHORT] = {"commit payload 24 bytes", MK_R_CP_COMMIT, MK_ELENGTH},
    [RC_COMMIT_WRONG_BLOCK] = {"commit entry: slot of another block", MK_R_CP_COMMIT, MK_ERANGE},
    [RC_COMMIT_MID_SLOT] = {"commit entry: not a slot boundary", MK_R_CP_COMMIT, MK_ERANGE},
    [RC_COMMIT_OLD_CP_DATA] = {"commit entry: an older CP's CP_DATA", MK_R_CP_COMMIT,
                               MK_ERANGE},
    [RC_APPLIED_AHEAD] = {"applied CP 2 (not committed)", MK_R_CP_APPLIED, MK_ECP},
    [RC_APPLIED_BACK] = {"applied CP 0", MK_R_CP_APPLIED, MK_ECP},
    [RC_APPLIED_LENGTH] = {"applied payload 16 bytes", MK_R_CP_APPLIED, MK_ELENGTH},
    [RC_TYPE_LOG] = {"record type LOG (0x02)", MK_F_LOG, MK_ETYPE},
    [RC_TYPE_UNKNOWN] = {"record type 0x14", 0x14, MK_ETYPE},
};

static uint32_t commit_payload(uint8_t *p, uint64_t cp, uint64_t covers, uint64_t n,
                               const uint64_t *pairs, size_t npairs)
{
    put(p, cp, 8);
    put(p + 8, covers, 8);
    put(p + 16, DIG2, 8);
    put(p + 24, n, 8);
    for (size_t i = 0; i < npairs * 2; i++)
        put(p + 32 + 8 * i, pairs[i], 8);
    return (uint32_t)(32 + 16 * npairs);
}

START_TEST(test_s7_6_rule_breaking_record_named_error_file_unchanged)
{
    const rule_case *rc = &RULES[_i];
    mk_file *f = reference_log(6);
    uint8_t p[64 + 2 * BS] = {0}, d[BS];
    uint32_t plen = 0;
    mkt_fill(d, BS, 11);
    uint64_t t2 = OFF_T2 + 44, t3 = OFF_T3 + 44; /* block 2, block 4 */
    switch (_i) {
    case RC_OK_TRANSFER: plen = transfer_payload(p, 4, 9 * BS, BS, d, BS); break;
    case RC_TID_EQUAL: plen = transfer_payload(p, 3, 9 * BS, BS, d, BS); break;
    case RC_TID_SMALLER: plen = transfer_payload(p, 2, 9 * BS, BS, d, BS); break;
    case RC_TID_ZERO: plen = transfer_payload(p, 0, 9 * BS, BS, d, BS); break;
    case RC_XFER_RANGE_END: plen = transfer_payload(p, 4, NB * BS - 100, 200, d, 200); break;
    case RC_XFER_RANGE_OFF: plen = transfer_payload(p, 4, NB * BS + BS, 1, d, 1); break;
    case RC_XFER_ZERO_LEN: plen = transfer_payload(p, 4, 0, 0, d, 0); break;
    case RC_XFER_LEN_MISMATCH: plen = transfer_payload(p, 4, 0, 100, d, 99); break;
    case RC_XFER_RESERVED:
        plen = transfer_payload(p, 4, 0, 100, d, 100);
        p[21] = 1;
        break;
    case RC_CPD_OLD_CP:
    case RC_CPD_SKIP_CP:
    case RC_CPD_BLOCK:
    case RC_CPD_LENGTH:
        put(p, _i == RC_CPD_OLD_CP ? 1 : _i == RC_CPD_SKIP_CP ? 3 : 2, 8);
        put(p + 8, _i == RC_CPD_BLOCK ? NB : 7, 8);
        memcpy(p + 16, d, BS);
        plen = 16 + (_i == RC_CPD_LENGTH ? BS - 1 : BS);
        break;
    case RC_COMMIT_OLD_CP: {
        uint64_t e[] = {2, t2};
        plen = commit_payload(p, 1, 3, 1, e, 1);
        break;
    }
    case RC_COMMIT_COVERS_AHEAD: {
        uint64_t e[] = {2, t2};
        plen = commit_payload(p, 2, 4, 1, e, 1);
        break;
    }
    case RC_COMMIT_COVERS_BACK: {
        uint64_t e[] = {2, t2};
        plen = commit_payload(p, 2, 1, 1, e, 1);
        break;
    }
    case RC_COMMIT_UNSORTED: {
        uint64_t e[] = {4, t3, 2, t2};
        plen = commit_payload(p, 2, 3, 2, e, 2);
        break;
    }
    case RC_COMMIT_DUP: {
        uint64_t e[] = {2, t2, 2, t3};
        plen = commit_payload(p, 2, 3, 2, e, 2);
        break;
    }
    case RC_COMMIT_BLOCK: {
        uint64_t e[] = {NB, t2};
        plen = commit_payload(p, 2, 3, 1, e, 1);
        break;
    }
    case RC_COMMIT_OFF_LOW: {
        uint64_t e[] = {2, 100};
        plen = commit_payload(p, 2, 3, 1, e, 1);
        break;
    }
    case RC_COMMIT_OFF_NEAR: {
        uint64_t e[] = {2, OFF_END - 100};
        plen = commit_payload(p, 2, 3, 1, e, 1);
        break;
    }
    case RC_COMMIT_COUNT: {
        uint64_t e[] = {2, t2};
        plen = commit_payload(p, 2, 3, 2, e, 1);
        break;
    }
    case RC_COMMIT_TOO_MANY: {
        uint64_t e[] = {2, t2};
        plen = commit_payload(p, 2, 3, NB + 1, e, 1);
        break;
    }
    case RC_COMMIT_SHORT:
        put(p, 2, 8);
        put(p + 8, 3, 8);
        put(p + 16, DIG2, 8);
        plen = 24; /* no entry count */
        break;
    case RC_COMMIT_WRONG_BLOCK: {
        uint64_t e[] = {3, t2}; /* tid 2's slot holds block 2 */
        plen = commit_payload(p, 2, 3, 1, e, 1);
        break;
    }
    case RC_COMMIT_MID_SLOT: {
        uint64_t e[] = {0, OFF_T1 + 44 + 100}; /* inside slot 0, not at it */
        plen = commit_payload(p, 2, 3, 1, e, 1);
        break;
    }
    case RC_COMMIT_OLD_CP_DATA: {
        uint64_t e[] = {5, OFF_CPD + 36}; /* CP 1's block 5, not this CP's */
        plen = commit_payload(p, 2, 3, 1, e, 1);
        break;
    }
    case RC_APPLIED_AHEAD: put(p, 2, 8); plen = 8; break;
    case RC_APPLIED_BACK: put(p, 0, 8); plen = 8; break;
    case RC_APPLIED_LENGTH: put(p, 1, 8); plen = 16; break;
    case RC_TYPE_LOG: plen = transfer_payload(p, 4, 9 * BS, BS, d, BS); break;
    case RC_TYPE_UNKNOWN: put(p, 1, 8); plen = 8; break;
    }
    append_raw(f, rc->type, 7, p, plen);
    uint64_t len0, len1;
    uint8_t *before = mkt_slurp(f, &len0);
    mk_logstore *ls = NULL;
    mk_log_info info;
    int got = mk_logstore_open(f, &ls, &info);
    ck_assert_msg(got == rc->want, "%s: got %s, want %s", rc->what, mk_errname(got),
                  mk_errname(rc->want));
    uint8_t *after = mkt_slurp(f, &len1);
    ck_assert_uint_eq(len1, len0);
    ck_assert_msg(memcmp(before, after, len0) == 0, "%s: the file changed", rc->what);
    if (got == 0) {
        ck_assert_uint_eq(info.records, 7);
        ck_assert_uint_eq(info.durable_tid, 4);
        mk_logstore_free(ls);
    } else {
        ck_assert_ptr_null(ls);
    }
    free(before);
    free(after);
    mk_file_close(f);
}
END_TEST

/* ---- 7.3: header slots ----------------------------------------------------- */

static int open_err(mk_file *f)
{
    mk_logstore *ls = NULL;
    int rc = mk_logstore_open(f, &ls, NULL);
    mk_logstore_free(ls);
    return rc;
}

START_TEST(test_s7_3_bad_magic)
{
    uint8_t junk[512];
    memset(junk, 0xAB, sizeof junk);
    mk_file *f = mkt_mem_with(junk, sizeof junk);
    mkt_assert_err(open_err(f), MK_EMAGIC);
    ck_assert_uint_eq(mkt_fsize(f), 512);
    mk_file_close(f);

    /* a real log whose only header lost its magic */
    f = reference_log(6);
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    mk_file_close(f);
    raw[0] = 'X';
    f = mkt_mem_with(raw, len);
    mkt_assert_err(open_err(f), MK_EMAGIC);
    uint64_t len2;
    uint8_t *after = mkt_slurp(f, &len2);
    ck_assert_uint_eq(len2, len);
    ck_assert_mem_eq(after, raw, len);
    free(after);
    free(raw);
    mk_file_close(f);

    /* a protocol frame stream is not a log either */
    mk_buf b;
    mk_buf_init(&b);
    mk_hello h = {1, 64, 512, 1, 2};
    for (int i = 0; i < 10; i++)
        mkt_ok(mk_hello_encode(&b, (uint64_t)i, &h));
    f = mkt_mem_with(mk_buf_peek(&b), mk_buf_len(&b));
    mkt_assert_err(open_err(f), MK_EMAGIC);
    mk_buf_free(&b);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_3_wrong_version)
{
    uint8_t s[2 * MK_LOG_SLOT_LEN] = {0};
    make_slot(s, MK_LOG_MAGIC, MK_LOG_VERSION + 1, 1, &ID, 0, 0, 1, 0);
    mk_file *f = mkt_mem_with(s, sizeof s);
    mkt_assert_err(open_err(f), MK_EVERSION);
    ck_assert_uint_eq(mkt_fsize(f), sizeof s);
    mk_file_close(f);
    /* version 0 likewise, in slot 1 this time */
    memset(s, 0, sizeof s);
    make_slot(s + MK_LOG_SLOT_LEN, MK_LOG_MAGIC, 0, 1, &ID, 0, 0, 1, 0);
    f = mkt_mem_with(s, sizeof s);
    mkt_assert_err(open_err(f), MK_EVERSION);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_3_both_slots_corrupt)
{
    uint8_t s[2 * MK_LOG_SLOT_LEN];
    make_slot(s, MK_LOG_MAGIC, MK_LOG_VERSION, 1, &ID, 0, 0, 1, 0);
    make_slot(s + MK_LOG_SLOT_LEN, MK_LOG_MAGIC, MK_LOG_VERSION, 2, &ID, 0, 0, 1, 0);
    s[20] ^= 1;
    s[MK_LOG_SLOT_LEN + 50] ^= 1;
    mk_file *f = mkt_mem_with(s, sizeof s);
    mkt_assert_err(open_err(f), MK_ECORRUPT);
    mk_file_close(f);
    /* checksum right, identity impossible: block size 1000 */
    mk_log_ident bad = ID;
    bad.block_size = 1000;
    memset(s, 0, sizeof s);
    make_slot(s, MK_LOG_MAGIC, MK_LOG_VERSION, 1, &bad, 0, 0, 1, 0);
    f = mkt_mem_with(s, sizeof s);
    mkt_assert_err(open_err(f), MK_ECORRUPT);
    mk_file_close(f);
    /* ... or zero blocks */
    bad = ID;
    bad.nblocks = 0;
    make_slot(s, MK_LOG_MAGIC, MK_LOG_VERSION, 1, &bad, 0, 0, 1, 0);
    f = mkt_mem_with(s, sizeof s);
    mkt_assert_err(open_err(f), MK_ECORRUPT);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_3_header_reserved_fields_checked)
{
    /* reserved bytes at 6, 36 and 80 (inside 72..119 after base_digest),
     * each with a checksum that matches: the slot is not valid */
    static const size_t at[] = {6, 7, 36, 39, 80, 119};
    for (size_t k = 0; k < sizeof at / sizeof *at; k++) {
        uint8_t s[2 * MK_LOG_SLOT_LEN] = {0};
        make_slot(s, MK_LOG_MAGIC, MK_LOG_VERSION, 1, &ID, 0, 0, 1, 0);
        s[at[k]] = 1;
        put(s + 120, XXH3_64bits(s, 120), 8);
        mk_file *f = mkt_mem_with(s, sizeof s);
        mkt_assert_err(open_err(f), MK_ECORRUPT);
        ck_assert_uint_eq(mkt_fsize(f), sizeof s);
        mk_file_close(f);
        /* with a valid older slot beside it, that one is used */
        make_slot(s + MK_LOG_SLOT_LEN, MK_LOG_MAGIC, MK_LOG_VERSION, 0, &ID, 0, 0, 1, 0);
        f = mkt_mem_with(s, sizeof s);
        mk_log_info info;
        mk_logstore *ls = open_ok(f, &info);
        ck_assert_int_eq(info.fresh, 0);
        mk_logstore_free(ls);
        mk_file_close(f);
    }
}
END_TEST

START_TEST(test_s7_6_never_initialised_log_is_fresh)
{
    /* a crash during creation can leave the truncation to 256 zero bytes
     * (or part of it) and no header: that log holds nothing */
    static const uint64_t sizes[] = {1, 100, 255, 256};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint8_t z[256] = {0};
        mk_file *f = mkt_mem_with(z, sizes[k]);
        mk_log_info info;
        mk_logstore *ls = open_ok(f, &info);
        ck_assert_int_eq(info.fresh, 1);
        mkt_ok(mk_logstore_init(ls, &ID));
        mk_logstore_free(ls);
        ls = open_ok(f, &info);
        ck_assert_int_eq(info.fresh, 0);
        mk_logstore_free(ls);
        mk_file_close(f);
    }
    /* but 257 zero bytes is a file with a record area: not ours */
    uint8_t z[257] = {0};
    mk_file *f = mkt_mem_with(z, sizeof z);
    mkt_assert_err(open_err(f), MK_EMAGIC);
    mk_file_close(f);
}
END_TEST

/* Damage with valid newer records after it is not a torn tail: cutting it
 * would silently drop committed data, so the open fails and cuts nothing. */
START_TEST(test_s7_6_mid_file_damage_refused_file_unchanged)
{
    static const uint64_t victims[] = {OFF_T1 + 30, OFF_T1 + 600, OFF_T2 + 5, OFF_CPD + 100,
                                       OFF_COMMIT + 40, OFF_APPLIED + 25};
    mk_file *f = reference_log(6);
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    mk_file_close(f);
    for (size_t k = 0; k < sizeof victims / sizeof *victims; k++) {
        raw[victims[k]] ^= 0x40;
        f = mkt_mem_with(raw, len);
        mkt_assert_err(open_err(f), MK_ECORRUPT);
        uint64_t len2;
        uint8_t *after = mkt_slurp(f, &len2);
        ck_assert_uint_eq(len2, len);
        ck_assert_mem_eq(after, raw, len);
        free(after);
        mk_file_close(f);
        raw[victims[k]] ^= 0x40;
    }
    free(raw);
}
END_TEST

/* 7.3: generation 2^64-1 is never written by header writes; a slot that
 * holds it is invalid, so the other slot is used (or, with none, the file
 * is MK_ECORRUPT) - the next write must never wrap to 0 and lose to it.
 * (fuzz/regressions/fuzz_logstore/generation-wrap-loses-acked-cp) */
START_TEST(test_s7_3_generation_max_slot_invalid)
{
    uint8_t s[2 * MK_LOG_SLOT_LEN];
    make_slot(s, MK_LOG_MAGIC, MK_LOG_VERSION, UINT64_MAX, &ID, 9, 90, 1, 0x99);
    make_slot(s + MK_LOG_SLOT_LEN, MK_LOG_MAGIC, MK_LOG_VERSION, 5, &ID, 5, 50, 100, 0x55);
    mk_file *f = mkt_mem_with(s, sizeof s);
    mk_log_info info;
    mk_logstore *ls = open_ok(f, &info);
    ck_assert_uint_eq(info.last_cp, 5);
    mk_logstore_free(ls);
    mk_file_close(f);
    make_slot(s + MK_LOG_SLOT_LEN, MK_LOG_MAGIC, MK_LOG_VERSION, UINT64_MAX, &ID, 5, 50, 100,
              0x55);
    f = mkt_mem_with(s, sizeof s);
    mkt_assert_err(open_err(f), MK_ECORRUPT);
    mk_file_close(f);
}
END_TEST

/* 7.6 step 4a: a failed record whose header is intact and whose frame runs
 * past the end of the file is the torn tail itself and is cut without a
 * probe, even if its payload (client data) holds the image of a valid
 * frame with a later seq.  (fuzz/regressions/fuzz_logstore/
 * torn-tail-with-embedded-frame-refused) */
START_TEST(test_s7_6_torn_tail_with_intact_header_not_probed)
{
    mk_file *f;
    mk_logstore *ls = new_store(&f);
    add_transfer(ls, 1, 0, BS, D2);
    mkt_ok(mk_logstore_sync(ls));
    mk_logstore_free(ls);
    uint64_t at = mkt_fsize(f);
    /* The client data of transfer 2 carries a whole valid frame, seq 99. */
    uint8_t d[BS], inner[MK_FRAME_OVERHEAD + 8], p[24 + BS], rec[MK_FRAME_OVERHEAD + 24 + BS];
    uint8_t cp[8];
    put(cp, 7, 8);
    memset(d, 0x5a, sizeof d);
    size_t ni = make_record(inner, MK_R_CP_APPLIED, 99, cp, 8);
    memcpy(d + 40, inner, ni);
    size_t n = make_record(rec, MK_R_TRANSFER, 2, p, transfer_payload(p, 2, BS, BS, d, BS));
    /* torn: the header and the embedded frame reached the disk, the rest not */
    mkt_ok(mk_file_pwrite(f, rec, MK_HDR_LEN + 24 + 40 + ni + 10, at));
    ck_assert_uint_lt(MK_HDR_LEN + 24 + 40 + ni + 10, n);
    mk_log_info info;
    ls = open_ok(f, &info);
    ck_assert_uint_eq(info.durable_tid, 1);
    ck_assert_uint_eq(info.cut_bytes, MK_HDR_LEN + 24 + 40 + ni + 10);
    ck_assert_uint_eq(mkt_fsize(f), at);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

/* Two hand-made slots; the newer generation must win wherever it is. */
START_TEST(test_s7_3_newer_generation_wins)
{
    for (int newer_in = 0; newer_in < 2; newer_in++) {
        uint8_t s[2 * MK_LOG_SLOT_LEN];
        make_slot(s + (1 - newer_in) * MK_LOG_SLOT_LEN, MK_LOG_MAGIC, MK_LOG_VERSION, 5,
                  &ID, 5, 50, 100, 0x55);
        make_slot(s + newer_in * MK_LOG_SLOT_LEN, MK_LOG_MAGIC, MK_LOG_VERSION, 6, &ID, 6,
                  60, 120, 0x66);
        mk_file *f = mkt_mem_with(s, sizeof s);
        /* a record continuing the newer header's sequence */
        uint8_t p[24 + BS], d[BS];
        mkt_fill(d, BS, 61);
        append_raw(f, MK_R_TRANSFER, 120, p, transfer_payload(p, 61, 0, BS, d, BS));
        mk_log_info info;
        mk_logstore *ls = open_ok(f, &info);
        ck_assert_uint_eq(info.last_cp, 6);
        ck_assert_uint_eq(info.applied_cp, 6);
        ck_assert_uint_eq(info.covers_tid, 60);
        ck_assert_uint_eq(info.last_digest, 0x66);
        ck_assert_uint_eq(info.durable_tid, 61);
        ck_assert_uint_eq(info.records, 1);
        ck_assert_uint_eq(info.cut_bytes, 0);
        mk_logstore_free(ls);
        mk_file_close(f);
    }
}
END_TEST

START_TEST(test_s7_3_torn_newer_slot_falls_back_to_older)
{
    for (int newer_in = 0; newer_in < 2; newer_in++) {
        uint8_t s[2 * MK_LOG_SLOT_LEN];
        uint8_t *older = s + (1 - newer_in) * MK_LOG_SLOT_LEN;
        uint8_t *newer = s + newer_in * MK_LOG_SLOT_LEN;
        make_slot(older, MK_LOG_MAGIC, MK_LOG_VERSION, 5, &ID, 5, 50, 100, 0x55);
        make_slot(newer, MK_LOG_MAGIC, MK_LOG_VERSION, 6, &ID, 6, 60, 120, 0x66);
        /* a torn write: the new slot's first 40 bytes over the old ones */
        memset(newer + 40, 0, MK_LOG_SLOT_LEN - 40);
        mk_file *f = mkt_mem_with(s, sizeof s);
        uint8_t p[24 + BS], d[BS];
        mkt_fill(d, BS, 51);
        append_raw(f, MK_R_TRANSFER, 100, p, transfer_payload(p, 51, 0, BS, d, BS));
        mk_log_info info;
        mk_logstore *ls = open_ok(f, &info);
        ck_assert_uint_eq(info.last_cp, 5);
        ck_assert_uint_eq(info.covers_tid, 50);
        ck_assert_uint_eq(info.last_digest, 0x55);
        ck_assert_uint_eq(info.durable_tid, 51);
        ck_assert_uint_eq(info.records, 1);
        mk_log_ident id;
        mkt_ok(mk_logstore_ident(ls, &id));
        ck_assert_uint_eq(id.source_id, ID.source_id);
        mk_logstore_free(ls);
        mk_file_close(f);
    }
}
END_TEST

/* ---- 7.7: truncation ---------------------------------------------------------- */

START_TEST(test_s7_7_reclaim_resets_to_headers)
{
    mk_file *f;
    mk_logstore *ls = new_store(&f);
    mk_log_info info;
    fill_data();
    add_transfer(ls, 1, 0, 1024, D1);
    add_transfer(ls, 2, 1024, 512, D2);
    mk_redo_entry e[3] = {{0, OFF_T1 + 44}, {1, OFF_T1 + 44 + 512}, {2, OFF_T2 + 44}};
    mkt_ok(mk_logstore_append_commit(ls, 1, 2, DIG1, e, 3));
    /* committed, not applied: the records are live */
    ck_assert_int_eq(mk_logstore_reclaim(ls), 0);
    mkt_ok(mk_logstore_append_applied(ls, 1));
    mkt_ok(mk_logstore_sync(ls)); /* the appends reach the file */
    uint64_t size_before = mkt_fsize(f);
    ck_assert_uint_gt(size_before, MK_LOG_DATA_START);
    ck_assert_int_eq(mk_logstore_reclaim(ls), 1);
    ck_assert_uint_eq(mkt_fsize(f), MK_LOG_DATA_START);
    mk_logstore_info(ls, &info);
    ck_assert_uint_eq(info.size, MK_LOG_DATA_START);
    ck_assert_uint_eq(info.last_cp, 1);
    ck_assert_uint_eq(info.applied_cp, 1);
    ck_assert_uint_eq(info.durable_tid, 2);
    ck_assert_uint_eq(info.covers_tid, 2);
    uint64_t off, block;
    mkt_assert_err(mk_logstore_find_slot(ls, 1, 0, &off, &block, NULL), MK_ENOTID);
    /* nothing left to reclaim */
    ck_assert_int_eq(mk_logstore_reclaim(ls), 0);
    /* the header now carries the base: slot 1, generation 2, next seq 5 */
    uint64_t len;
    uint8_t *raw = mkt_slurp(f, &len);
    uint8_t want0[MK_LOG_SLOT_LEN], want1[MK_LOG_SLOT_LEN];
    make_slot(want0, MK_LOG_MAGIC, MK_LOG_VERSION, 1, &ID, 0, 0, 1, 0);
    make_slot(want1, MK_LOG_MAGIC, MK_LOG_VERSION, 2, &ID, 1, 2, 5, DIG1);
    ck_assert_mem_eq(raw, want0, MK_LOG_SLOT_LEN);
    ck_assert_mem_eq(raw + MK_LOG_SLOT_LEN, want1, MK_LOG_SLOT_LEN);
    free(raw);
    /* transfer IDs keep rising across the reset */
    mk_log l = {2, 0, 512, D1};
    mkt_assert_err(mk_logstore_append_transfer(ls, &l), MK_ETID);
    l.tid = 3;
    mkt_ok(mk_logstore_append_transfer(ls, &l));
    mkt_ok(mk_logstore_sync(ls));
    mk_logstore_free(ls);

    ls = open_ok(f, &info);
    ck_assert_uint_eq(info.last_cp, 1);
    ck_assert_uint_eq(info.applied_cp, 1);
    ck_assert_uint_eq(info.covers_tid, 2);
    ck_assert_uint_eq(info.durable_tid, 3);
    ck_assert_uint_eq(info.records, 1);
    ck_assert_uint_eq(info.cut_bytes, 0);
    mkt_ok(mk_logstore_find_slot(ls, 3, 0, &off, &block, NULL));
    ck_assert_uint_eq(off, MK_LOG_DATA_START + 44);
    /* CP 2 on top, then the second reset goes back to slot 0 (gen 3) */
    mk_redo_entry e2 = {0, off};
    mkt_ok(mk_logstore_append_commit(ls, 2, 3, DIG2, &e2, 1));
    mkt_ok(mk_logstore_append_applied(ls, 2));
    ck_assert_int_eq(mk_logstore_reclaim(ls), 1);
    mk_logstore_free(ls);
    raw = mkt_slurp(f, &len);
    ck_assert_uint_eq(len, MK_LOG_DATA_START);
    make_slot(want0, MK_LOG_MAGIC, MK_LOG_VERSION, 3, &ID, 2, 3, 8, DIG2);
    ck_assert_mem_eq(raw, want0, MK_LOG_SLOT_LEN);
    ck_assert_mem_eq(raw + MK_LOG_SLOT_LEN, want1, MK_LOG_SLOT_LEN);
    free(raw);
    ls = open_ok(f, &info);
    ck_assert_uint_eq(info.last_cp, 2);
    ck_assert_uint_eq(info.durable_tid, 3);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

START_TEST(test_s7_7_no_reclaim_while_newer_transfer_live)
{
    mk_file *f = reference_log(6); /* CP 1 covers 2; tid 3 is newer */
    mk_logstore *ls = open_ok(f, NULL);
    ck_assert_int_eq(mk_logstore_reclaim(ls), 0);
    ck_assert_uint_eq(mkt_fsize(f), OFF_END);
    uint64_t off, block;
    mkt_ok(mk_logstore_find_slot(ls, 3, 0, &off, &block, NULL));
    mk_logstore_free(ls);
    mk_file_close(f);
    /* a fresh log has nothing to reclaim */
    mkt_ok(mk_file_mem("test/log", &f));
    ls = open_ok(f, NULL);
    ck_assert_int_eq(mk_logstore_reclaim(ls), 0);
    ck_assert_uint_eq(mkt_fsize(f), 0);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

/* A crash at every storage call of a reclaim, torn or not: the log always
 * reopens with CP 1 applied and transfers up to 2, either still holding
 * its records or reset to its headers. */
START_TEST(test_s7_3_crash_during_reclaim_header_write)
{
    static const uint32_t tears[] = {0, 20, 100, 200};
    uint64_t nticks = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t t = 0; t < (pass ? sizeof tears / sizeof *tears : 1); t++) {
            for (uint64_t k = pass ? 1 : 0; k <= (pass ? nticks : 0); k++) {
                mk_crash_clock clk = {0, 0, 0, 0};
                mk_file *f;
                mkt_ok(mk_file_mem_crashable("test/log", &clk, &f));
                mk_logstore *ls = open_ok(f, NULL);
                mkt_ok(mk_logstore_init(ls, &ID));
                fill_data();
                add_transfer(ls, 1, 0, 1024, D1);
                add_transfer(ls, 2, 1024, 512, D2);
                mk_redo_entry e[2] = {{0, OFF_T1 + 44}, {1, OFF_T1 + 44 + 512}};
                mkt_ok(mk_logstore_append_commit(ls, 1, 2, DIG1, e, 2));
                mkt_ok(mk_logstore_append_applied(ls, 1));
                mkt_ok(mk_logstore_sync(ls));
                uint64_t full = mkt_fsize(f), t0 = clk.ticks;
                ck_assert_uint_gt(t0, 0);
                clk.limit = pass ? t0 + k : 0;
                clk.tear = tears[t];
                int rc = mk_logstore_reclaim(ls);
                if (!pass) {
                    ck_assert_int_eq(rc, 1);
                    nticks = clk.ticks - t0;
                    ck_assert_uint_ge(nticks, 3);
                } else {
                    mkt_assert_err(rc, MK_EIO);
                }
                mk_logstore_free(ls);
                mk_file_mem_crash(f);
                clk = (mk_crash_clock){0, 0, 0, 0};
                mk_log_info info;
                ls = open_ok(f, &info);
                ck_assert_uint_eq(info.last_cp, 1);
                ck_assert_uint_eq(info.applied_cp, 1);
                ck_assert_uint_eq(info.covers_tid, 2);
                ck_assert_uint_eq(info.durable_tid, 2);
                uint64_t size = mkt_fsize(f);
                ck_assert_msg(size == full || size == MK_LOG_DATA_START,
                              "tick %llu tear %u: size %llu", (unsigned long long)k,
                              tears[t], (unsigned long long)size);
                ck_assert_uint_eq(info.records, size == full ? 4 : 0);
                /* and the log carries on */
                mk_log l = {3, 2048, 512, D3};
                mkt_ok(mk_logstore_append_transfer(ls, &l));
                mkt_ok(mk_logstore_sync(ls));
                mk_logstore_free(ls);
                ls = open_ok(f, &info);
                ck_assert_uint_eq(info.durable_tid, 3);
                ck_assert_uint_eq(info.cut_bytes, 0);
                mk_logstore_free(ls);
                mk_file_close(f);
            }
        }
    }
}
END_TEST

/* ---- 7.4 / 8.4: redo record and transfer walk ------------------------------- */

START_TEST(test_s7_4_pending_redo_until_applied)
{
    mk_file *f = reference_log(4); /* committed, not applied */
    mk_log_info info;
    mk_logstore *ls = open_ok(f, &info);
    ck_assert_uint_eq(info.last_cp, 1);
    ck_assert_uint_eq(info.applied_cp, 0);
    uint64_t cp = 0, n = 0, dg = 0;
    mk_redo_entry *e = NULL;
    ck_assert_int_eq(mk_logstore_pending_redo(ls, &cp, &dg, &e, &n), 1);
    ck_assert_uint_eq(cp, 1);
    ck_assert_uint_eq(dg, DIG1);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(e[0].block, 0);
    ck_assert_uint_eq(e[0].off, OFF_T1 + 44);
    ck_assert_uint_eq(e[1].block, 5);
    ck_assert_uint_eq(e[1].off, OFF_CPD + 36);
    uint8_t b[BS];
    mkt_ok(mk_logstore_read(ls, e[1].off, b, BS));
    ck_assert_mem_eq(b, DB5, BS);
    free(e);
    mkt_ok(mk_logstore_append_applied(ls, 1));
    ck_assert_int_eq(mk_logstore_pending_redo(ls, &cp, &dg, &e, &n), 0);
    mk_logstore_free(ls);
    ls = open_ok(f, &info);
    ck_assert_uint_eq(info.applied_cp, 1);
    ck_assert_int_eq(mk_logstore_pending_redo(ls, &cp, &dg, &e, &n), 0);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

typedef struct walk {
    int n, stop_at;
    uint64_t tid[8], offset[8], data_off[8];
    uint32_t length[8];
} walk;

static int walk_fn(void *ctx, uint64_t tid, uint64_t offset, uint32_t length,
                   uint64_t data_off)
{
    walk *w = ctx;
    ck_assert_int_lt(w->n, 8);
    w->tid[w->n] = tid;
    w->offset[w->n] = offset;
    w->length[w->n] = length;
    w->data_off[w->n] = data_off;
    w->n++;
    return w->n == w->stop_at ? MK_EIO : 0;
}

START_TEST(test_s8_4_each_transfer_after_covers)
{
    mk_file *f = reference_log(6);
    mk_logstore *ls = open_ok(f, NULL);
    walk w = {0};
    mkt_ok(mk_logstore_each_transfer(ls, 0, walk_fn, &w));
    ck_assert_int_eq(w.n, 3);
    ck_assert_uint_eq(w.tid[0], 1);
    ck_assert_uint_eq(w.offset[0], 0);
    ck_assert_uint_eq(w.length[0], 1024);
    ck_assert_uint_eq(w.data_off[0], OFF_T1 + 44);
    ck_assert_uint_eq(w.tid[2], 3);
    ck_assert_uint_eq(w.offset[2], 2048);
    ck_assert_uint_eq(w.data_off[2], OFF_T3 + 44);
    memset(&w, 0, sizeof w);
    mkt_ok(mk_logstore_each_transfer(ls, 2, walk_fn, &w));
    ck_assert_int_eq(w.n, 1);
    ck_assert_uint_eq(w.tid[0], 3);
    ck_assert_uint_eq(w.length[0], 512);
    memset(&w, 0, sizeof w);
    mkt_ok(mk_logstore_each_transfer(ls, 3, walk_fn, &w));
    ck_assert_int_eq(w.n, 0);
    /* the callback's error stops the walk and comes back */
    memset(&w, 0, sizeof w);
    w.stop_at = 2;
    mkt_assert_err(mk_logstore_each_transfer(ls, 0, walk_fn, &w), MK_EIO);
    ck_assert_int_eq(w.n, 2);
    mk_logstore_free(ls);
    mk_file_close(f);
}
END_TEST

static Suite *logstore_suite(void)
{
    Suite *s = suite_create("logstore");
    TCase *tc = tcase_create("format");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_s7_3_fresh_file_has_no_identity);
    tcase_add_test(tc, test_s7_3_init_writes_header_slot_0);
    tcase_add_test(tc, test_s7_3_records_are_frames_with_continuing_seq);
    tcase_add_test(tc, test_s7_3_append_rules);
    tcase_add_test(tc, test_s7_3_bad_magic);
    tcase_add_test(tc, test_s7_3_wrong_version);
    tcase_add_test(tc, test_s7_3_both_slots_corrupt);
    tcase_add_test(tc, test_s7_3_header_reserved_fields_checked);
    tcase_add_test(tc, test_s7_3_newer_generation_wins);
    tcase_add_test(tc, test_s7_3_generation_max_slot_invalid);
    tcase_add_test(tc, test_s7_6_torn_tail_with_intact_header_not_probed);
    tcase_add_test(tc, test_s7_3_torn_newer_slot_falls_back_to_older);
    tcase_add_test(tc, test_s7_3_crash_during_reclaim_header_write);
    suite_add_tcase(s, tc);

    TCase *ts = tcase_create("scan");
    tcase_set_timeout(ts, 60);
    tcase_add_test(ts, test_s7_6_reopen_rebuilds_index);
    tcase_add_test(ts, test_s7_6_unaligned_transfer_slots);
    tcase_add_test(ts, test_s7_6_torn_transfer_tail_cut_at_every_byte);
    tcase_add_test(ts, test_s7_6_torn_commit_tail_cut_never_applied);
    tcase_add_test(ts, test_s7_6_flipped_byte_in_last_record_cut);
    tcase_add_test(ts, test_s7_6_stale_seq_record_cut);
    tcase_add_test(ts, test_s7_6_garbage_after_last_record_cut);
    tcase_add_test(ts, test_s7_6_never_initialised_log_is_fresh);
    tcase_add_test(ts, test_s7_6_mid_file_damage_refused_file_unchanged);
    tcase_add_loop_test(ts, test_s7_6_rule_breaking_record_named_error_file_unchanged, 0,
                        RC_COUNT);
    suite_add_tcase(s, ts);

    TCase *tr = tcase_create("reclaim");
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, test_s7_7_reclaim_resets_to_headers);
    tcase_add_test(tr, test_s7_7_no_reclaim_while_newer_transfer_live);
    tcase_add_test(tr, test_s7_4_pending_redo_until_applied);
    tcase_add_test(tr, test_s8_4_each_transfer_after_covers);
    suite_add_tcase(s, tr);
    return s;
}

int main(void) { return mk_test_run(logstore_suite()); }
