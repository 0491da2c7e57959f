/*
 * check_pair.c - a real source and a real destination together.
 *
 *  - mk_pair_run (mk_pair.h) over the simulated link for every mode, block
 *    size and workload; its determinism (same seed, same recorded stream);
 *    and its pipe and tcp transports with a forked destination.
 *  - end-to-end failure rules over the test's own simulated link
 *    (mk_engine_test.h): REF resolution failures provoked in flight (7.2),
 *    reconnect and resume (8.2), lost log (8.3), promotion (8.4), and the
 *    invariants of SPEC.md section 9 (I1..I5) on seeded workloads.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_engine_test.h"
#include "mk_pair.h"
#include "mk_workload.h"

#define NB 64u
#define BS 512u

/* ---- mk_pair_run --------------------------------------------------------------- */

static const int MODES[3] = {MK_MODE_SYNC, MK_MODE_SEMI, MK_MODE_ASYNC};
static const uint32_t BSIZES[3] = {512, 4096, 65536};
static const int WLS[5] = {MK_WL_MIXED, MK_WL_WHOLE, MK_WL_PARTIAL, MK_WL_SEQ, MK_WL_HOT};

static void small_config(mk_pair_config *c, int mode, uint32_t bs, int wl)
{
    mk_pair_defaults(c);
    c->mode = mode;
    c->block_size = bs;
    c->nblocks = bs == 512 ? 256 : bs == 4096 ? 64 : 16;
    c->workload = wl;
    c->transport = MK_T_SIM;
    c->cps = 3;
    c->writes_per_cp = 25;
    c->seed = 11 + (uint64_t)wl;
    c->out = NULL;
}

/* Section 11's accounting identities, exact for a run without resends. */
static void check_accounting(const mk_pair_config *c, const mk_source_stats *s)
{
    uint64_t bs = c->block_size, blocks = s->cp_ref_blocks + s->cp_data_blocks;
    ck_assert_uint_eq(s->writes, c->cps * c->writes_per_cp);
    ck_assert_uint_eq(s->cps_started, c->cps);
    ck_assert_uint_eq(s->cps_acked, c->cps);
    ck_assert_uint_eq(s->naive_bytes, blocks * bs);
    ck_assert_uint_eq(s->ref_naive_bytes, s->cp_ref_blocks * bs);
    ck_assert_uint_eq(s->cp_data_bytes, s->cp_data_blocks * (44 + bs));
    ck_assert_uint_eq(s->cp_ctl_bytes, 96ull * c->cps);
    ck_assert_uint_eq(s->session_bytes, 60);
    ck_assert_uint_eq(s->naks + s->resent_transfers + s->resent_cps + s->lost_transfers, 0);
    ck_assert_int_eq(s->out_of_sync, 0);
    if (c->mode == MK_MODE_ASYNC) {
        ck_assert_uint_eq(s->transfers, 0);
        ck_assert_uint_eq(s->log_bytes, 0);
        ck_assert_uint_eq(s->cp_ref_blocks, 0);
        ck_assert_uint_eq(s->cp_ref_bytes, 0);
    } else {
        ck_assert_uint_ge(s->transfers, s->writes);
        ck_assert_uint_eq(s->log_bytes, 52 * s->transfers + s->client_bytes);
        /* one CP_REF frame per 1024 REFs at most, 44 bytes each */
        ck_assert_uint_ge(s->cp_ref_bytes, 32 * s->cp_ref_blocks);
        ck_assert_uint_le(s->cp_ref_bytes, 32 * s->cp_ref_blocks + 44 * (s->cp_ref_blocks + 1));
    }
}

START_TEST(test_s9_i1_pair_run_every_mode_block_size_workload)
{
    int mode = MODES[_i / 15], wl = WLS[_i % 5];
    uint32_t bs = BSIZES[(_i / 5) % 3];
    mk_pair_config c;
    mk_pair_result r;
    small_config(&c, mode, bs, wl);
    int rc = mk_pair_run(&c, &r);
    ck_assert_msg(rc == 0, "%s B=%u %s: %s (block %llu)", mk_mode_name(mode), bs,
                  mk_workload_name(wl), mk_errname(rc),
                  (unsigned long long)(r.report.ndiffs ? r.report.diffs[0].block : 0));
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.cps_done, 3);
    ck_assert_uint_eq(r.cps_verified, 3);
    check_accounting(&c, &r.stats);
    /* 6.3: whole-block workloads send only REFs when logged; partial
     * writes never qualify */
    if (mode != MK_MODE_ASYNC && (wl == MK_WL_WHOLE || wl == MK_WL_SEQ || wl == MK_WL_HOT))
        ck_assert_uint_eq(r.stats.cp_data_blocks, 0);
    if (wl == MK_WL_PARTIAL)
        ck_assert_uint_eq(r.stats.cp_ref_blocks, 0);
    if (mode != MK_MODE_ASYNC && wl == MK_WL_MIXED)
        ck_assert(r.stats.cp_ref_blocks > 0 && r.stats.cp_data_blocks > 0);
}
END_TEST

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* The same seed gives the same run: the recorded source->destination
 * streams are byte-identical; another seed gives another stream. */
START_TEST(test_s9_i1_pair_run_is_deterministic)
{
    char dir[256], p1[300], p2[300], p3[300];
    mkt_tmpdir(dir, sizeof dir);
    snprintf(p1, sizeof p1, "%s/a.rec", dir);
    snprintf(p2, sizeof p2, "%s/b.rec", dir);
    snprintf(p3, sizeof p3, "%s/c.rec", dir);
    for (int m = 0; m < 3; m++) {
        mk_pair_config c;
        mk_pair_result r;
        small_config(&c, MODES[m], 512, MK_WL_MIXED);
        c.cps = 4;
        c.record = p1;
        mkt_ok(mk_pair_run(&c, &r));
        c.record = p2;
        mkt_ok(mk_pair_run(&c, &r));
        c.record = p3;
        c.seed++;
        mkt_ok(mk_pair_run(&c, &r));
        size_t n1, n2, n3;
        uint8_t *a = read_all(p1, &n1), *b = read_all(p2, &n2), *d = read_all(p3, &n3);
        ck_assert_uint_gt(n1, 0);
        ck_assert_uint_eq(n1, n2);
        ck_assert_mem_eq(a, b, n1);
        ck_assert(n3 != n1 || memcmp(a, d, n1) != 0);
        /* the record is the stream: whole frames, HELLO first */
        mk_buf buf;
        mk_buf_init(&buf);
        mkt_ok(mk_buf_append(&buf, a, n1));
        mkt_frames *fs = mkt_take(&buf);
        ck_assert_uint_eq(fs->f[0].type, MK_F_HELLO);
        ck_assert_uint_eq(mkt_count(fs, MK_F_CP_BEGIN), 4);
        ck_assert_uint_eq(mkt_count(fs, MK_F_CP_COMMIT), 4);
        if (MODES[m] == MK_MODE_ASYNC)
            ck_assert_uint_eq(mkt_count(fs, MK_F_LOG), 0);
        else
            ck_assert_uint_ge(mkt_count(fs, MK_F_LOG), c.cps * c.writes_per_cp);
        for (size_t i = 0; i < fs->n; i++)
            ck_assert_uint_eq(fs->f[i].seq, i);
        mkt_frames_free(fs);
        mk_buf_free(&buf);
        free(a);
        free(b);
        free(d);
    }
    unlink(p1);
    unlink(p2);
    unlink(p3);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* The same run over pipes, a socketpair and loopback TCP to a forked
 * destination on POSIX files: every CP verified against the image file,
 * and the stream recorded on the wire equals the simulated one. */
START_TEST(test_s9_i1_pair_run_pipe_and_tcp)
{
    static const int transports[] = {MK_T_PIPE, MK_T_SOCKETPAIR, MK_T_TCP};
    int transport = transports[_i];
    for (int m = 0; m < 3; m++) {
        char dir[256], rec[300], simrec[300];
        mkt_tmpdir(dir, sizeof dir);
        snprintf(rec, sizeof rec, "%s/wire.rec", dir);
        snprintf(simrec, sizeof simrec, "%s/sim.rec", dir);
        mk_pair_config c;
        mk_pair_result r;
        small_config(&c, MODES[m], 4096, MK_WL_MIXED);
        c.transport = transport;
        c.workdir = dir;
        c.record = rec;
        int rc = mk_pair_run(&c, &r);
        ck_assert_msg(rc == 0, "%s %s: %s", mk_transport_name(transport),
                      mk_mode_name(MODES[m]), mk_errname(rc));
        ck_assert_uint_eq(r.cps_verified, 3);
        check_accounting(&c, &r.stats);
        c.transport = MK_T_SIM;
        c.record = simrec;
        mkt_ok(mk_pair_run(&c, &r));
        size_t n1, n2;
        uint8_t *a = read_all(rec, &n1), *b = read_all(simrec, &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert_mem_eq(a, b, n1);
        free(a);
        free(b);
        unlink(rec);
        unlink(simrec);
        mkt_unlink_in(dir, "mirror.img");
        mkt_unlink_in(dir, "dest.log");
        mkt_unlink_in(dir, "mirror.mkt");
        ck_assert_int_eq(rmdir(dir), 0);
    }
}
END_TEST

static void cp1_writes(mkt_env *e);

/* ---- 7.2: REF resolution failures provoked in flight ------------------------------ */

typedef struct tamper {
    int ncap;
    int32_t reason[16];
    uint64_t block[16];
} tamper;

/* Rewrites CP 2's REF entries for chosen blocks; records the NAKs. */
static int tamper_filter(void *ctx, int dir, uint8_t *f, size_t len)
{
    tamper *t = ctx;
    mk_frame fr;
    size_t used;
    mkt_ok(mk_frame_decode(f, len, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &fr, &used));
    if (dir == MKT_D2S && fr.type == MK_F_NAK) {
        mk_nak n;
        mkt_ok(mk_nak_decode(&fr, &n));
        ck_assert_int_lt(t->ncap, 16);
        t->block[t->ncap] = n.block;
        t->reason[t->ncap++] = n.reason;
    }
    if (dir != MKT_S2D || fr.type != MK_F_CP_REF || mk_get_le64(f + MK_HDR_LEN) != 2)
        return 1;
    uint32_t count = mkt_get_le32(f + MK_HDR_LEN + 8);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *e = f + MK_HDR_LEN + MK_CP_REF_HDR_LEN + 32 * (size_t)i;
        switch (mk_get_le64(e)) {
        case 10: mk_put_le64(e + 8, 1); break;         /* reclaimed with CP 1 */
        case 11: mkt_put_le32(e + 16, 4); break;       /* tid 2 has slots 0..3 */
        case 12: mkt_put_le32(e + 16, 0); break;       /* slot 0 holds block 10 */
        case 20: e[24] ^= 1; break;                    /* hash */
        case 30: mk_put_le64(e + 8, 1000); break;      /* beyond covers_tid */
        }
    }
    return 1;
}

START_TEST(test_s7_2_ref_failures_in_flight_nak_data_resend)
{
    mkt_env e;
    tamper t = {0};
    mkt_env_new(&e, MK_MODE_SYNC, NB, BS);
    e.link.filter = tamper_filter;
    e.link.fctx = &t;
    mkt_env_write_blocks(&e, 0, 8, 1); /* tid 1 */
    mkt_env_cp(&e);
    ck_assert_uint_eq(mkt_fsize(e.log), MK_LOG_DATA_START); /* reclaimed */
    mkt_env_write_blocks(&e, 10, 4, 2);  /* tid 2 */
    mkt_env_write_blocks(&e, 20, 1, 3);  /* tid 3 */
    mkt_env_write_blocks(&e, 30, 1, 4);  /* tid 4 */
    mkt_env_write_blocks(&e, 40, 1, 5);  /* tid 5: untouched */
    mkt_env_write(&e, 50 * BS + 3, 9, 6); /* tid 6: DATA */
    const mk_source_stats before = *mk_source_get_stats(e.src);
    mkt_env_cp(&e);
    static const uint64_t blocks[5] = {10, 11, 12, 20, 30};
    static const int reasons[5] = {MK_ENOTID, MK_ESLOT, MK_ESLOT, MK_EREFHASH, MK_ETID};
    ck_assert_int_eq(t.ncap, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(t.block[i], blocks[i]);
        mkt_assert_err(t.reason[i], reasons[i]);
    }
    const mk_source_stats *st = mk_source_get_stats(e.src);
    ck_assert_uint_eq(st->naks, 5);
    ck_assert_uint_eq(mk_dest_get_stats(e.dst)->naks, 5);
    ck_assert_uint_eq(st->cp_ref_blocks - before.cp_ref_blocks, 7);
    ck_assert_uint_eq(st->cp_data_blocks - before.cp_data_blocks, 1);
    ck_assert_uint_eq(st->cp_data_bytes - before.cp_data_bytes, 6 * (44 + BS));
    mkt_env_free(&e);
}
END_TEST

/* Changes the digest (or the count) of the first CP_ACK on its way. */
static int ack_filter(void *ctx, int dir, uint8_t *f, size_t len)
{
    int *what = ctx;
    (void)len;
    if (dir == MKT_D2S && f[5] == MK_F_CP_ACK && *what) {
        if (*what == 1)
            f[MK_HDR_LEN + 16] ^= 0x01; /* digest */
        else
            mk_put_le64(f + MK_HDR_LEN + 8, mk_get_le64(f + MK_HDR_LEN + 8) + 1);
        *what = 0;
    }
    return 1;
}

START_TEST(test_s7_5_wrong_cp_ack_fails_source)
{
    static const int want[2] = {MK_EDIGEST, MK_ECOUNT};
    for (int k = 0; k < 2; k++) {
        mkt_env e;
        int what = k + 1;
        mkt_env_new(&e, MK_MODE_SYNC, NB, BS);
        e.link.filter = ack_filter;
        e.link.fctx = &what;
        cp1_writes(&e);
        mkt_env_cp_start(&e);
        mkt_assert_err(mkt_pump(&e.link), MK_EREMOTE);
        mkt_assert_err(e.link.src_err, want[k]);
        mkt_assert_err(mk_source_error(e.src), want[k]);
        /* the source told the destination, which ended the session */
        mkt_assert_err(e.link.dst_err, MK_EREMOTE);
        ck_assert_uint_eq(mk_source_cp_acked(e.src), 0);
        /* the destination applied the CP; the source refuses to go on */
        mkt_assert_image(e.mirror, e.cp_img, NB, BS);
        mkt_assert_err(mk_source_connect(e.src, 0), want[k]);
        mkt_env_free(&e);
    }
}
END_TEST

/* ---- 8.2: reconnect and resume ---------------------------------------------------- */

static void cp1_writes(mkt_env *e)
{
    mkt_env_write_blocks(e, 0, 3, 1);
    mkt_env_write(e, 5 * BS + 17, 900, 2);
    mkt_env_write_blocks(e, 9, 1, 3);
    mkt_env_write(e, 9 * BS + 1, 1, 4);
    mkt_env_write_blocks(e, 12, 2, 5);
}

/* The connection dies after `cut` bytes of the CP (both directions dead
 * from then on), then both sides reconnect. */
START_TEST(test_s8_2_disconnect_mid_cp_then_resume)
{
    uint64_t total = 0;
    for (uint64_t cut = 0;; cut += 29) {
        mkt_env e;
        mkt_env_new(&e, MK_MODE_SYNC, NB, BS);
        cp1_writes(&e);
        mkt_env_cp_start(&e);
        if (!total)
            total = mk_buf_len(mk_source_out(e.src));
        if (cut > total + 29) {
            mkt_env_free(&e);
            break;
        }
        e.link.budget[MKT_S2D] = cut;
        e.link.budget[MKT_D2S] = 0;
        mkt_ok(mkt_pump(&e.link));
        ck_assert_uint_eq(mk_source_cp_acked(e.src), 0);
        uint64_t committed = 0;
        mk_log_info info;
        mk_dest_log_info(e.dst, &info);
        committed = info.last_cp;
        ck_assert_uint_eq(committed, cut >= total ? 1 : 0);
        if (!committed)
            mkt_assert_image(e.mirror, (uint8_t[NB * BS]){0}, NB, BS);
        mkt_ok(mkt_env_reconnect(&e));
        ck_assert_uint_eq(mk_source_cp_acked(e.src), 1);
        mkt_assert_image(e.mirror, e.cp_img, NB, BS);
        const mk_source_stats *st = mk_source_get_stats(e.src);
        ck_assert_uint_eq(st->resent_cps, committed ? 0 : 1);
        ck_assert_uint_eq(st->cps_acked, 1);
        ck_assert_uint_eq(st->reconnects, 2);
        ck_assert_uint_eq(st->lost_transfers, 0);
        /* and the pair goes on */
        mkt_env_write_blocks(&e, 3, 1, 9);
        mkt_env_cp(&e);
        mkt_env_free(&e);
    }
    /* CP_BEGIN, one CP_REF of 5 (blocks 0, 1, 2, 12, 13), DATA 5, 6, 9, COMMIT */
    ck_assert_uint_eq(total, 52 + (44 + 5 * 32) + 3 * (44 + BS) + 44);
}
END_TEST

START_TEST(test_s8_2_cp_ack_lost_then_recognised)
{
    mkt_env e;
    mkt_env_new(&e, MK_MODE_SYNC, NB, BS);
    cp1_writes(&e);
    mkt_env_cp_start(&e);
    e.link.budget[MKT_D2S] = 0; /* the CP_ACK never arrives */
    mkt_ok(mkt_pump(&e.link));
    ck_assert_uint_eq(mk_source_cp_acked(e.src), 0);
    ck_assert_uint_eq(mk_dest_get_stats(e.dst)->cps_applied, 1);
    mkt_assert_image(e.mirror, e.cp_img, NB, BS);
    mkt_ok(mkt_env_reconnect(&e));
    ck_assert_uint_eq(mk_source_cp_acked(e.src), 1);
    ck_assert_uint_eq(mk_source_get_stats(e.src)->resent_cps, 0);
    ck_assert_uint_eq(mk_dest_get_stats(e.dst)->cps_applied, 1); /* not applied twice */
    mkt_env_write_blocks(&e, 30, 2, 7);
    mkt_env_cp(&e);
    mkt_env_free(&e);
}
END_TEST

START_TEST(test_s8_2_unacked_transfers_resent)
{
    mkt_env e;
    mkt_env_new(&e, MK_MODE_SEMI, NB, BS);
    e.link.budget[MKT_S2D] = 0; /* the connection is already dead */
    for (int i = 0; i < 6; i++)
        mkt_env_write(&e, (uint64_t)i * 700 + 5, 800, 10 + i);
    ck_assert_uint_eq(mk_dest_get_stats(e.dst)->transfers, 0);
    ck_assert_uint_eq(mk_source_unacked_bytes(e.src), 6 * 800);
    mkt_ok(mkt_env_reconnect(&e));
    ck_assert_uint_eq(mk_source_get_stats(e.src)->resent_transfers, 6);
    ck_assert_uint_eq(mk_dest_get_stats(e.dst)->transfers, 6);
    ck_assert_uint_eq(mk_source_unacked_bytes(e.src), 0);
    mkt_env_cp(&e);
    mkt_env_free(&e);
}
END_TEST

START_TEST(test_s8_2_destination_restart_mid_run)
{
    mkt_env e;
    mkt_env_new(&e, MK_MODE_SYNC, NB, BS);
    cp1_writes(&e);
    mkt_env_cp(&e);
    /* CP 2 half delivered, then the destination process restarts */
    mkt_env_write_blocks(&e, 20, 4, 20);
    mkt_env_write(&e, 21 * BS + 3, 5, 21);
    mkt_env_cp_start(&e);
    e.link.budget[MKT_S2D] = mk_buf_len(mk_source_out(e.src)) / 2;
    e.link.budget[MKT_D2S] = 0;
    mkt_ok(mkt_pump(&e.link));
    mkt_env_restart_dest(&e);
    mkt_ok(mkt_env_reconnect(&e));
    ck_assert_uint_eq(mk_source_cp_acked(e.src), 2);
    mkt_assert_image(e.mirror, e.cp_img, NB, BS);
    ck_assert_uint_eq(mk_dest_get_stats(e.dst)->sessions, 1);
    /* a restart between CPs too, with writes in between */
    mkt_env_write_blocks(&e, 40, 2, 30);
    mkt_env_restart_dest(&e);
    mkt_ok(mkt_env_reconnect(&e));
    mkt_env_write(&e, 41 * BS + 9, 100, 31);
    mkt_env_cp(&e);
    ck_assert_uint_eq(mk_source_get_stats(e.src)->lost_transfers, 0);
    mkt_env_free(&e);
}
END_TEST

/* ---- 8.3: lost destination log -------------------------------------------------------- */

/* CP 1, then four whole-block writes (tids 2..5); the destination comes
 * back with its log cut after the second of them.  `more` writes a block
 * after the reconnect. */
static void lost_log_run(int mode, int mid_record, int more)
{
    mkt_env e;
    mkt_env_new(&e, mode, NB, BS);
    mkt_env_write_blocks(&e, 0, 1, 1);
    mkt_env_cp(&e);
    uint64_t keep = 0;
    for (uint64_t i = 1; i <= 4; i++) {
        mkt_env_write_blocks(&e, i, 1, 10 + i);
        if (i == 2)
            keep = mkt_fsize(e.log);
    }
    if (mode != MK_MODE_SYNC)
        mkt_ok(mkt_pump(&e.link));
    mk_dest_free(e.dst);
    e.dst = NULL;
    mkt_ok(mk_file_truncate(e.log, keep + (mid_record ? 100 : 0)));
    mkt_ok(mk_dest_open(&e.dc, e.mirror, e.log, &e.dst));
    e.link.dst = e.dst;
    mk_log_info info;
    mk_dest_log_info(e.dst, &info);
    ck_assert_uint_eq(info.durable_tid, 3);
    ck_assert_uint_eq(info.cut_bytes, mid_record ? 100 : 0);
    mkt_ok(mkt_env_reconnect(&e));
    const mk_source_stats *st = mk_source_get_stats(e.src);
    ck_assert_uint_eq(st->lost_transfers, 2);
    ck_assert_int_eq(st->out_of_sync, mode == MK_MODE_SYNC);
    if (more)
        mkt_env_write_blocks(&e, 30, 1, 30);
    const mk_source_stats before = *st;
    mkt_env_cp(&e);
    /* blocks 1, 2 (held) and 30 as REF; 3, 4 (lost) as DATA */
    ck_assert_uint_eq(st->cp_ref_blocks - before.cp_ref_blocks, more ? 3 : 2);
    ck_assert_uint_eq(st->cp_data_blocks - before.cp_data_blocks, 2);
    ck_assert_uint_eq(st->naks, 0);
    mkt_env_write_blocks(&e, 3, 1, 40);
    mkt_env_cp(&e);
    mkt_env_free(&e);
}

START_TEST(test_s8_3_lost_log_refs_fall_back_to_data)
{
    lost_log_run(MK_MODE_SYNC, 0, 1);
    lost_log_run(MK_MODE_SEMI, 0, 1);
    lost_log_run(MK_MODE_SYNC, 1, 1);
}
END_TEST

START_TEST(test_s8_3_lost_log_cp_without_newer_transfer)
{
    lost_log_run(MK_MODE_SYNC, 0, 0);
    lost_log_run(MK_MODE_SEMI, 1, 0);
}
END_TEST

START_TEST(test_s8_3_lost_log_during_cp_in_flight)
{
    mkt_env e;
    mkt_env_new(&e, MK_MODE_SYNC, NB, BS);
    mkt_env_write_blocks(&e, 0, 1, 1);
    mkt_env_cp(&e);
    uint64_t keep = 0;
    for (uint64_t i = 1; i <= 4; i++) {
        mkt_env_write_blocks(&e, i, 1, 10 + i);
        if (i == 2)
            keep = mkt_fsize(e.log);
    }
    mkt_env_cp_start(&e);
    e.link.budget[MKT_S2D] = 0; /* the CP never arrives */
    mkt_ok(mkt_pump(&e.link));
    /* a client write changes a block whose REF names a lost transfer (it
     * cannot be acknowledged: the connection is dead) */
    uint8_t nb4[BS];
    uint64_t wid;
    mkt_fill(nb4, BS, 50);
    mkt_ok(mk_source_write(e.src, 4 * BS, nb4, BS, 0, &wid));
    memcpy(e.model + 4 * BS, nb4, BS);
    mkt_ok(mkt_pump(&e.link));
    ck_assert_uint_lt(mk_source_acked(e.src), wid);
    mk_dest_free(e.dst);
    mkt_ok(mk_file_truncate(e.log, keep));
    mkt_ok(mk_dest_open(&e.dc, e.mirror, e.log, &e.dst));
    e.link.dst = e.dst;
    mkt_ok(mkt_env_reconnect(&e));
    ck_assert_uint_eq(mk_source_get_stats(e.src)->lost_transfers, 2);
    ck_assert_uint_eq(mk_source_cp_acked(e.src), 2);
    ck_assert_uint_eq(mk_source_acked(e.src), wid);
    mkt_assert_image(e.mirror, e.cp_img, NB, BS);
    mkt_env_cp(&e);
    mkt_env_free(&e);
}
END_TEST

/* ---- 8.4 / I2: promotion --------------------------------------------------------------- */

/* A copy of the destination's files, promoted: it must hold every write
 * the source acknowledged (sync mode: all of them). */
static void promote_copy_and_check(mkt_env *e)
{
    uint64_t ml, ll;
    uint8_t *m = mkt_slurp(e->mirror, &ml), *l = mkt_slurp(e->log, &ll);
    mk_file *fm = mkt_mem_with(m, ml), *fl = mkt_mem_with(l, ll);
    mk_dest *d;
    mk_dest_config cfg = {0};
    mkt_ok(mk_dest_open(&cfg, fm, fl, &d));
    mkt_ok(mk_dest_promote(d));
    mkt_assert_image(fm, e->model, e->sc.nblocks, e->sc.block_size);
    ck_assert_uint_eq(mkt_fsize(fl), 0);
    mk_dest_free(d);
    mk_file_close(fm);
    mk_file_close(fl);
    free(m);
    free(l);
}

START_TEST(test_s8_4_promotion_holds_every_acked_write)
{
    mkt_env e;
    mkt_env_new(&e, MK_MODE_SYNC, NB, BS);
    /* no CP at all */
    mkt_env_write_blocks(&e, 0, 4, 1);
    mkt_env_write(&e, BS + 100, 300, 2);
    mkt_env_write(&e, 63 * BS + 500, 12, 3);
    promote_copy_and_check(&e);
    /* after a CP, with overlapping writes after it */
    mkt_env_cp(&e);
    mkt_env_write(&e, 2 * BS - 7, 2 * BS, 4);
    mkt_env_write_blocks(&e, 2, 1, 5);
    mkt_env_write(&e, 10, 5, 6);
    promote_copy_and_check(&e);
    /* and in place: the source is gone for good */
    mk_source_free(e.src);
    e.src = NULL;
    mkt_ok(mk_dest_promote(e.dst));
    mkt_assert_image(e.mirror, e.model, NB, BS);
    mkt_env_free(&e);
}
END_TEST

/* ---- 9: invariants on seeded workloads ---------------------------------------------------- */

typedef struct wl_run {
    mkt_env e;
    mk_workload wl;
    mkt_wfile *wm;
    mkt_trace *tr;
} wl_run;

/* A pair on memory files (the mirror traced) with the link slicing both
 * streams at random. */
static void wl_start(wl_run *r, int mode, int kind, uint64_t seed)
{
    mkt_env_init(&r->e, mode, NB, BS);
    mk_file_close(r->e.mirror);
    mk_file *m;
    mkt_ok(mk_file_mem("test/dest/mirror", &m));
    r->wm = mkt_wrap(m, NULL);
    r->wm->id = 'M';
    r->tr = calloc(1, sizeof *r->tr);
    r->wm->trace = r->tr;
    r->e.mirror = &r->wm->base;
    mkt_env_start(&r->e);
    r->e.link.random_chunks = 1;
    mk_prng_seed(&r->e.link.rng, seed);
    mkt_ok(mk_workload_init(&r->wl, kind, seed, NB, BS));
}

static void wl_write(wl_run *r)
{
    uint64_t off;
    uint32_t len;
    const uint8_t *data;
    mk_workload_next(&r->wl, &off, &len, &data);
    /* mkt_env_write takes a seed; write the workload's bytes directly */
    uint64_t wid;
    int rc;
    while ((rc = mk_source_write(r->e.src, off, data, len, 0, &wid)) == MK_EAGAIN)
        mkt_ok(mkt_pump(&r->e.link));
    mkt_ok(rc);
    memcpy(r->e.model + off, data, len);
    mkt_ok(mkt_pump(&r->e.link));
    if (r->e.sc.mode == MK_MODE_SYNC)
        ck_assert_uint_ge(mk_source_acked(r->e.src), wid);
}

static void wl_free(wl_run *r)
{
    mk_workload_free(&r->wl);
    mkt_env_free(&r->e);
    free(r->tr);
}

/* I1: after each acknowledged CP the mirror is the CP image; and (I3's
 * other half) between CPs the mirror does not change at all. */
START_TEST(test_s9_i1_i3_mirror_is_cp_image_and_changes_only_at_apply)
{
    wl_run r;
    wl_start(&r, MODES[_i % 3], MK_WL_MIXED, 100 + (uint64_t)_i);
    for (int cp = 0; cp < 6; cp++) {
        for (int w = 0; w < 30; w++) {
            size_t writes = r.tr->n;
            wl_write(&r);
            ck_assert_uint_eq(r.tr->n, writes); /* no mirror I/O outside a CP */
        }
        mkt_assert_image(r.e.mirror, r.e.cp_img, NB, BS);
        mkt_env_cp(&r.e);
    }
    ck_assert_uint_eq(mk_source_get_stats(r.e.src)->naks, 0);
    ck_assert_uint_eq(mk_dest_get_stats(r.e.dst)->naks, 0);
    wl_free(&r);
}
END_TEST

/* I2: at any point of a sync run, a promoted copy of the destination holds
 * every acknowledged write. */
START_TEST(test_s9_i2_sync_promotion_at_any_point)
{
    wl_run r;
    wl_start(&r, MK_MODE_SYNC, _i == 0 ? MK_WL_MIXED : MK_WL_PARTIAL, 7 + (uint64_t)_i);
    for (int cp = 0; cp < 4; cp++) {
        for (int w = 0; w < 12; w++) {
            wl_write(&r);
            if (w % 4 == 3)
                promote_copy_and_check(&r.e);
        }
        mkt_env_cp(&r.e);
        promote_copy_and_check(&r.e);
    }
    wl_free(&r);
}
END_TEST

typedef struct corrupt {
    mkt_env *e;
    int type, done, mode;
    uint64_t llen, mlen;
    uint8_t *log, *mirror;
} corrupt;

/* Damages the first frame of one type in flight and snapshots the
 * destination's files just before it arrives. */
static int corrupt_filter(void *ctx, int dir, uint8_t *f, size_t len)
{
    corrupt *c = ctx;
    if (dir != MKT_S2D || c->done || f[5] != c->type)
        return 1;
    c->done = 1;
    c->log = mkt_slurp(c->e->log, &c->llen);
    c->mirror = mkt_slurp(c->e->mirror, &c->mlen);
    (void)len;
    if (c->mode == 0)
        mk_put_le64(f + 12, mk_get_le64(f + 12) + 1); /* seq: MK_ESEQ */
    else if (c->type == MK_F_LOG)
        f[MK_HDR_LEN + 15] ^= 0x80; /* offset past the volume: MK_ERANGE */
    else
        f[MK_HDR_LEN] ^= 0x01; /* the CP number: MK_ECP */
    return 1;
}

/* I4: a frame that fails validation writes nothing; the pair then
 * resumes and every CP still verifies. */
START_TEST(test_s9_i4_rejected_frame_changes_nothing)
{
    static const uint8_t types[] = {MK_F_LOG, MK_F_CP_BEGIN, MK_F_CP_REF, MK_F_CP_DATA,
                                    MK_F_CP_COMMIT};
    for (size_t t = 0; t < sizeof types; t++) {
        for (int mode = 0; mode < 2; mode++) {
            mkt_env e;
            corrupt c = {&e, types[t], 0, mode, 0, 0, NULL, NULL};
            mkt_env_new(&e, MK_MODE_SEMI, NB, BS);
            mkt_env_write_blocks(&e, 0, 2, 1);
            mkt_env_cp(&e);
            e.link.filter = corrupt_filter;
            e.link.fctx = &c;
            mkt_ok(mk_source_write(e.src, 4 * BS, (uint8_t[BS]){1, 2, 3}, BS, 0,
                                   &(uint64_t){0}));
            memcpy(e.model + 4 * BS, (uint8_t[BS]){1, 2, 3}, BS);
            mkt_ok(mk_source_write(e.src, 7 * BS + 3, (uint8_t[9]){9}, 9, 0, &(uint64_t){0}));
            memcpy(e.model + 7 * BS + 3, (uint8_t[9]){9}, 9);
            mkt_ok(mk_source_cp(e.src, 0));
            memcpy(e.cp_img, e.model, e.vbytes);
            int rc = mkt_pump(&e.link);
            ck_assert_msg(c.done, "type 0x%x never sent", types[t]);
            ck_assert_int_ne(rc, 0);
            ck_assert_int_ne(e.link.dst_err, 0);
            /* nothing written because of the bad frame (nor after it) */
            uint64_t ll, ml;
            uint8_t *l = mkt_slurp(e.log, &ll), *m = mkt_slurp(e.mirror, &ml);
            ck_assert_uint_eq(ll, c.llen);
            ck_assert_mem_eq(l, c.log, ll);
            ck_assert_uint_eq(ml, c.mlen);
            ck_assert_mem_eq(m, c.mirror, ml);
            free(l);
            free(m);
            free(c.log);
            free(c.mirror);
            if (mode == 0) {
                /* told the bytes arrived damaged: the session is lost, not
                 * the source (section 8.5), and it may resume */
                ck_assert_int_eq(mk_source_error(e.src), 0);
                ck_assert(!mk_source_ready(e.src));
                ck_assert_uint_eq(mk_source_get_stats(e.src)->sessions_lost, 1);
            } else {
                /* a well-formed frame that breaks a rule: the source is at
                 * fault and stops */
                ck_assert_int_eq(mk_source_error(e.src), MK_EREMOTE);
            }
            mkt_env_free(&e);
        }
    }
}
END_TEST

/* I5: whatever the workload, the destination's mirror writes stay inside
 * the volume and the image is exactly N*B bytes. */
START_TEST(test_s9_i5_mirror_writes_stay_inside_volume)
{
    wl_run r;
    wl_start(&r, MODES[_i], MK_WL_MIXED, 55 + (uint64_t)_i);
    for (int cp = 0; cp < 4; cp++) {
        for (int w = 0; w < 20; w++)
            wl_write(&r);
        /* and the volume's last byte, every CP */
        mkt_env_write(&r.e, (uint64_t)NB * BS - 1, 1, 900 + (uint64_t)cp);
        mkt_env_cp(&r.e);
    }
    ck_assert_uint_gt(r.tr->n, 0);
    for (size_t i = 0; i < r.tr->n; i++) {
        const mkt_event *ev = &r.tr->ev[i];
        if (ev->op == 'w')
            ck_assert_uint_le(ev->off + ev->n, (uint64_t)NB * BS);
        if (ev->op == 't')
            ck_assert_uint_eq(ev->off, (uint64_t)NB * BS);
    }
    ck_assert_uint_eq(mkt_fsize(r.e.mirror), (uint64_t)NB * BS);
    wl_free(&r);
}
END_TEST

/* 6.4 end to end: a 2^40-byte volume on sparse memory files, a few writes
 * at both ends, synchronised through a CP. */
START_TEST(test_s6_4_huge_sparse_volume_pair)
{
    const uint64_t nb = (1ull << 40) / BS, V = nb * BS;
    mk_source_config sc = {MKT_VOLUME_ID, nb, MKT_SOURCE_ID, BS, MK_MODE_SYNC, 0, NULL};
    mk_file *store, *mirror, *log;
    mk_source *s;
    mk_dest *d;
    mkt_ok(mk_file_mem("s", &store));
    mkt_ok(mk_file_mem("m", &mirror));
    mkt_ok(mk_file_mem("l", &log));
    mkt_ok(mk_source_new(&sc, store, &s));
    mk_dest_config dc = {0};
    mkt_ok(mk_dest_open(&dc, mirror, log, &d));
    mkt_link l;
    mkt_link_init(&l, s, d);
    mkt_ok(mk_source_connect(s, 0));
    mkt_ok(mkt_pump(&l));
    ck_assert_uint_eq(mkt_fsize(mirror), V);
    static const uint64_t offs[4] = {0, 5 * BS + 3, (1ull << 39) + 7, 0};
    uint8_t b[2 * BS];
    uint64_t wid;
    for (int i = 0; i < 4; i++) {
        uint64_t off = i == 3 ? V - 2 * BS : offs[i];
        mkt_fill(b, sizeof b, 70 + (uint64_t)i);
        mkt_ok(mk_source_write(s, off, b, sizeof b, 0, &wid));
        mkt_ok(mkt_pump(&l));
        ck_assert_uint_eq(mk_source_acked(s), wid);
    }
    ck_assert_uint_eq(mk_source_dirty_blocks(s), 2 + 3 + 3 + 2);
    mkt_ok(mk_source_cp(s, 0));
    mkt_ok(mkt_pump(&l));
    ck_assert_uint_eq(mk_source_cp_acked(s), 1);
    for (int i = 0; i < 4; i++) {
        uint64_t off = i == 3 ? V - 2 * BS : offs[i];
        uint8_t got[2 * BS];
        mkt_fill(b, sizeof b, 70 + (uint64_t)i);
        mkt_ok(mk_file_read_block(mirror, got, sizeof got, off));
        ck_assert_mem_eq(got, b, sizeof b);
    }
    mk_source_free(s);
    mk_dest_free(d);
    mk_file_close(store);
    mk_file_close(mirror);
    mk_file_close(log);
}
END_TEST

/* SPEC.md 8.2: through every link fault that lets sessions progress -
 * drops, duplicates, corruption, truncation, resets, partitions, latency,
 * jitter, slicing, bandwidth - the pair resumes and every CP verifies, the
 * same way for the same seed. */
START_TEST(test_s8_2_link_faults_cost_sessions_not_data)
{
    static const char *const faults[] = {
        "drop prob=1/200", "duplicate prob=1/100", "corrupt prob=1/100", "truncate",
        "reset_peer after=300000", "partition frames=3", "limit_data bytes=2000000",
        "latency ms=3 jitter=2; slicer bytes=700; bandwidth kbps=200000",
        "drop prob=1/300 dir=to-source; duplicate prob=1/300 dir=to-dest"};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        mk_pair_config c;
        mk_pair_result r, r2;
        mk_pair_defaults(&c);
        c.nblocks = 2048;
        c.cps = 3;
        c.writes_per_cp = 150;
        c.link = faults[i];
        int rc = mk_pair_run(&c, &r);
        ck_assert_msg(rc == 0, "%s: %s", faults[i], mk_errname(rc));
        ck_assert_uint_eq(r.cps_verified, 3);
        ck_assert_uint_eq(r.stats.lost_transfers, 0);
        ck_assert_int_eq(mk_pair_run(&c, &r2), 0);
        ck_assert_uint_eq(r2.stats.reconnects, r.stats.reconnects);
        ck_assert_uint_eq(r2.stats.resent_transfers, r.stats.resent_transfers);
    }
}
END_TEST

/* A link fault that no session survives is reported, never hidden. */
START_TEST(test_s8_2_link_that_never_lets_a_cp_through_fails)
{
    mk_pair_config c;
    mk_pair_result r;
    mk_pair_defaults(&c);
    c.nblocks = 512;
    c.cps = 2;
    c.writes_per_cp = 20;
    c.link = "timeout ms=5";
    ck_assert_int_ne(mk_pair_run(&c, &r), 0);
    ck_assert_uint_lt(r.cps_verified, 2);
    c.link = "drop prob=1/1";
    ck_assert_int_ne(mk_pair_run(&c, &r), 0);
    c.link = "latencyy ms=1"; /* a bad spec is a usage error */
    ck_assert_int_eq(mk_pair_run(&c, &r), MK_EUSAGE);
}
END_TEST

/* SPEC.md 8.2, 8.5: a link that flips bits now and then costs sessions,
 * never data: every damaged frame is caught by its framing, the session is
 * dropped and resumed, and every CP still verifies - deterministically for
 * a given seed. */
START_TEST(test_s8_5_damaged_link_loses_sessions_not_data)
{
    mk_pair_config c;
    mk_pair_result r, r2;
    mk_pair_defaults(&c);
    c.nblocks = 2048;
    c.cps = 5;
    c.writes_per_cp = 120;
    c.link_corrupt = 20;
    for (int mode = MK_MODE_SYNC; mode <= MK_MODE_ASYNC; mode++) {
        c.mode = mode;
        ck_assert_int_eq(mk_pair_run(&c, &r), 0);
        ck_assert_uint_eq(r.cps_verified, 5);
        ck_assert_uint_gt(r.stats.sessions_lost, 0);
        ck_assert_uint_eq(r.stats.lost_transfers, 0);
        ck_assert_int_eq(r.stats.out_of_sync, 0);
        ck_assert_int_eq(mk_pair_run(&c, &r2), 0);
        ck_assert_uint_eq(r2.stats.sessions_lost, r.stats.sessions_lost);
        ck_assert_uint_eq(r2.stats.resent_transfers, r.stats.resent_transfers);
    }
}
END_TEST

static Suite *pair_suite(void)
{
    Suite *s = suite_create("pair");
    TCase *tr = tcase_create("pair_run");
    tcase_set_timeout(tr, 120);
    tcase_add_loop_test(tr, test_s9_i1_pair_run_every_mode_block_size_workload, 0, 45);
    tcase_add_test(tr, test_s9_i1_pair_run_is_deterministic);
    tcase_add_test(tr, test_s8_5_damaged_link_loses_sessions_not_data);
    tcase_add_test(tr, test_s8_2_link_faults_cost_sessions_not_data);
    tcase_add_test(tr, test_s8_2_link_that_never_lets_a_cp_through_fails);
    tcase_add_loop_test(tr, test_s9_i1_pair_run_pipe_and_tcp, 0, 3);
    suite_add_tcase(s, tr);

    TCase *tf = tcase_create("failures");
    tcase_set_timeout(tf, 120);
    tcase_add_test(tf, test_s7_2_ref_failures_in_flight_nak_data_resend);
    tcase_add_test(tf, test_s7_5_wrong_cp_ack_fails_source);
    tcase_add_test(tf, test_s8_2_disconnect_mid_cp_then_resume);
    tcase_add_test(tf, test_s8_2_cp_ack_lost_then_recognised);
    tcase_add_test(tf, test_s8_2_unacked_transfers_resent);
    tcase_add_test(tf, test_s8_2_destination_restart_mid_run);
    tcase_add_test(tf, test_s8_3_lost_log_refs_fall_back_to_data);
    tcase_add_test(tf, test_s8_3_lost_log_cp_without_newer_transfer);
    tcase_add_test(tf, test_s8_3_lost_log_during_cp_in_flight);
    tcase_add_test(tf, test_s8_4_promotion_holds_every_acked_write);
    suite_add_tcase(s, tf);

    TCase *ti = tcase_create("invariants");
    tcase_set_timeout(ti, 120);
    tcase_add_loop_test(ti, test_s9_i1_i3_mirror_is_cp_image_and_changes_only_at_apply, 0, 6);
    tcase_add_loop_test(ti, test_s9_i2_sync_promotion_at_any_point, 0, 2);
    tcase_add_test(ti, test_s9_i4_rejected_frame_changes_nothing);
    tcase_add_loop_test(ti, test_s9_i5_mirror_writes_stay_inside_volume, 0, 3);
    tcase_add_test(ti, test_s6_4_huge_sparse_volume_pair);
    suite_add_tcase(s, ti);
    return s;
}

int main(void) { return mk_test_run(pair_suite()); }
