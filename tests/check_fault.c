/*
 * check_fault.c - the libfiu fault points of the reference (fault/POINTS.md,
 * ref/mk_fiu.h) and what the engines do when one fires: a storage or
 * allocation failure of the destination is a sticky engine error named on
 * the wire (SPEC.md 8.5); a CP whose mirror write failed is redone from its
 * redo record on restart (7.4, 7.6 step 9); a torn or short log append is
 * cut as a torn tail (7.6); a failed sync before the commit point leaves
 * the mirror at CP k-1 (7.4); a link failure is a reset the peer sees
 * (8.2).
 *
 * The fiu-dependent cases need a fault build (make fault-build, or the ASan
 * build of make check-asan).  In a normal build they are skipped, and one
 * case asserts instead that the points are compiled away: enabling one
 * changes nothing.  The catalogue's own checks run in both.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#endif
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mk_engine_test.h"
#include "mk_faults.h"
#include "mk_fiu.h"
#include "mk_net.h"
#include "mk_pair.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#endif

/* ---- the catalogue (every build) ------------------------------------------ */

static int word_in(const char *w, size_t n, const char *const *set)
{
    for (; *set; set++)
        if (strlen(*set) == n && strncmp(*set, w, n) == 0)
            return 1;
    return 0;
}

/* Every point has a unique name under ref/ that fits the name buffer, a
 * known seam, a storage point ends in one of the seam's ops, and its
 * kinds are names of the kind table. */
START_TEST(test_s0_catalogue_wellformed)
{
    static const char *const seams[] = {"storage", "transport", "allocation", NULL};
    static const char *const ops[] = {"read", "write", "sync", "truncate", NULL};
    static const char *const kinds[] = {"eio", "enospc", "short", "torn", "enomem", NULL};
    ck_assert_uint_ge(mk_fault_npoints, 20);
    for (size_t i = 0; i < mk_fault_npoints; i++) {
        const mk_fault_point *p = &mk_fault_points[i];
        ck_assert_msg(strncmp(p->name, "ref/", 4) == 0, "%s", p->name);
        ck_assert_uint_lt(strlen(p->name), MK_FAULT_NAME_MAX);
        ck_assert_msg(word_in(p->seam, strlen(p->seam), seams), "%s: seam %s", p->name, p->seam);
        ck_assert_msg(strlen(p->what) > 20, "%s says too little", p->name);
        if (strcmp(p->seam, "storage") == 0) {
            const char *op = strrchr(p->name, '/') + 1;
            ck_assert_msg(word_in(op, strlen(op), ops), "%s: op %s", p->name, op);
            ck_assert_uint_lt((size_t)(op - 1 - p->name), sizeof(((mk_file *)0)->name));
        }
        for (const char *k = p->kinds; *k;) {
            size_t n = strcspn(k, " ");
            ck_assert_msg(word_in(k, n, kinds), "%s: kind '%.*s'", p->name, (int)n, k);
            k += n + (k[n] == ' ');
        }
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(mk_fault_points[j].name, p->name);
    }
}
END_TEST

/* MK_FIU entries: what is accepted, and that every refusal says why. */
START_TEST(test_s0_mk_fiu_entries)
{
    static const char *const good[] = {
        "ref/dest/log/write", "ref/dest/log/write:torn:100:once", "ref/dest/mirror/sync:enospc",
        "ref/dest/*:p=0.5", "ref/link/recv:short:7", "ref/alloc/dest/redo:enomem",
        "ref/source/store/write:short"};
    static const char *const bad[] = {
        "", ":eio", "ref/dest/log/fsync", "ref/dest/log/write:bogus",
        "ref/dest/log/sync:torn", "ref/dest/log/write:eio:100", "ref/dest/log/write:short:0",
        "ref/dest/log/write:p=2", "ref/dest/log/write:p=", "ref/nothing/*",
        "ref/alloc/dest/redo:eio"};
    char err[256];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        err[0] = 0;
        ck_assert_msg(mk_faults_enable(good[i], err, sizeof err) == 0, "%s: %s", good[i], err);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        mkt_assert_err(mk_faults_enable(bad[i], err, sizeof err), MK_EUSAGE);
        ck_assert_msg(strlen(err) > 10, "'%s' refused without a reason", bad[i]);
    }
#ifdef FIU_ENABLE
    for (size_t i = 0; i < mk_fault_npoints; i++)
        fiu_disable(mk_fault_points[i].name);
    fiu_disable("ref/dest/*");
#endif
}
END_TEST

/* The generated POINTS.md names every point, and the text list too. */
START_TEST(test_s0_catalogue_markdown_and_list_name_every_point)
{
    char *md = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&md, &len);
    ck_assert_ptr_nonnull(o);
    mk_faults_markdown(o);
    fclose(o);
    for (size_t i = 0; i < mk_fault_npoints; i++) {
        char cell[80];
        snprintf(cell, sizeof cell, "| `%s` |", mk_fault_points[i].name);
        ck_assert_msg(strstr(md, cell), "POINTS.md lacks %s", mk_fault_points[i].name);
    }
    ck_assert_ptr_nonnull(strstr(md, "LazyFS"));
    free(md);
}
END_TEST

#ifndef FIU_ENABLE
/* A normal build: the points are compiled away, so an enabled point - and
 * MK_FIU with it - has no effect on a file that carries the point's name
 * or on an allocation site. */
START_TEST(test_s0_points_compiled_away)
{
    char err[256];
    ck_assert_int_eq(mk_faults_compiled_in(), 0);
    mkt_ok(mk_faults_enable("ref/dest/log/write:eio", err, sizeof err));
    mkt_ok(mk_faults_enable("ref/alloc/source/transfer", err, sizeof err));
    mk_file *f;
    mkt_ok(mk_file_mem("ref/dest/log", &f));
    mkt_ok(mk_file_pwrite(f, "abc", 3, 0));
    mkt_ok(mk_file_sync(f));
    mk_file_close(f);
    mk_source_config sc = {MKT_VOLUME_ID, 16, MKT_SOURCE_ID, 512, MK_MODE_SEMI, 0, NULL};
    mk_file *store;
    mk_source *s;
    uint8_t blk[512] = {1};
    uint64_t wid;
    mkt_ok(mk_file_mem("ref/source/store", &store));
    mkt_ok(mk_source_new(&sc, store, &s));
    mkt_ok(mk_source_write(s, 0, blk, sizeof blk, 0, &wid));
    mk_source_free(s);
    mk_file_close(store);
}
END_TEST
#endif

#ifdef FIU_ENABLE
/* ---- fault builds ----------------------------------------------------------- */

#define BS 512u
#define NBLOCKS 64u

/* Enables one point with a failure kind; the point stays on until
 * points_off (or, with once, until its first hit). */
static void point_on(const char *name, int kind, uint64_t bytes, int once)
{
    ck_assert_int_eq(fiu_init(0), 0);
    ck_assert_int_eq(fiu_enable(name, 1, MK_FAULT_INFO((unsigned)kind, bytes),
                                once ? FIU_ONETIME : 0),
                     0);
}

/* Every catalogued point off, so a test run without fork (valgrind,
 * CK_FORK=no) starts the next test clean. */
static void points_off(void)
{
    for (size_t i = 0; i < mk_fault_npoints; i++)
        fiu_disable(mk_fault_points[i].name);
}

/* A destination on memory files that carry the reference's names, as
 * mirrorkit gives them; crashable on clk when it is given. */
typedef struct dfx {
    mk_crash_clock clk;
    mk_file *mirror, *log;
    mk_dest *d;
    mkt_peer p;
    uint8_t blk[4][BS];
} dfx;

static void dfx_open(dfx *x) { mkt_ok(mk_dest_open(&(mk_dest_config){0}, x->mirror, x->log, &x->d)); }

static void dfx_init(dfx *x, int crashable)
{
    memset(x, 0, sizeof *x);
    if (crashable) {
        mkt_ok(mk_file_mem_crashable("ref/dest/mirror", &x->clk, &x->mirror));
        mkt_ok(mk_file_mem_crashable("ref/dest/log", &x->clk, &x->log));
    } else {
        mkt_ok(mk_file_mem("ref/dest/mirror", &x->mirror));
        mkt_ok(mk_file_mem("ref/dest/log", &x->log));
    }
    for (int i = 0; i < 4; i++)
        mkt_fill(x->blk[i], BS, 100 + (uint64_t)i);
    mkt_peer_init(&x->p);
    dfx_open(x);
}

static void dfx_free(dfx *x)
{
    points_off();
    mk_dest_free(x->d);
    mk_file_close(x->mirror);
    mk_file_close(x->log);
    mkt_peer_free(&x->p);
}

/* A session that logs transfer 1 (blocks 0 and 1, whole). */
static void dfx_hello_and_log(dfx *x)
{
    uint8_t two[2 * BS];
    memcpy(two, x->blk[0], BS);
    memcpy(two + BS, x->blk[1], BS);
    mkt_hello(&x->p, NBLOCKS, BS, MK_MODE_SYNC, MKT_SOURCE_ID);
    mkt_logf(&x->p, 1, 0, sizeof two, two);
    mkt_ok(mkt_to_dest(&x->p, x->d));
    mk_buf_clear(mk_dest_out(x->d));
}

/* CP 1 of blocks 5 and 6 as DATA, with x->blk[2] and x->blk[3]. */
static void dfx_cp1(dfx *x, int commit)
{
    mkt_cp_begin(&x->p, 1, 2, 1);
    mkt_cp_data(&x->p, 1, 5, x->blk[2], BS);
    mkt_cp_data(&x->p, 1, 6, x->blk[3], BS);
    if (commit)
        mkt_cp_commit(&x->p, 1, 2);
}

/* The destination restarts on its files, after a power cut when crash is
 * set (memory files lose what was not synced; the clock runs again). */
static void dfx_restart(dfx *x, int crash)
{
    mk_dest_free(x->d);
    x->d = NULL;
    if (crash) {
        mk_file_mem_crash(x->mirror);
        mk_file_mem_crash(x->log);
        x->clk = (mk_crash_clock){0, 0, 0, 0};
    }
    dfx_open(x);
}

static void assert_block(mk_file *f, uint64_t block, const uint8_t *want)
{
    uint8_t b[BS];
    mkt_ok(mk_file_read_block(f, b, BS, block * BS));
    ck_assert_msg(memcmp(b, want, BS) == 0, "block %llu differs", (unsigned long long)block);
}

/* The engine error of 8.5: the call fails with the error, one ERROR frame
 * names it, and the engine refuses everything after it. */
static void assert_engine_error(dfx *x, int got, int want)
{
    mkt_assert_err(got, want);
    mkt_assert_err(mk_dest_error(x->d), want);
    mkt_assert_error_frame(mk_dest_out(x->d), want);
    points_off();
    mkt_logf(&x->p, 9, 0, BS, x->blk[0]);
    mkt_assert_err(mkt_to_dest(&x->p, x->d), want);
}

/* 8.5: a log append that fails with EIO is an engine error named MK_EIO. */
START_TEST(test_s8_5_log_write_eio_is_engine_error)
{
    dfx x;
    dfx_init(&x, 0);
    dfx_hello_and_log(&x);
    point_on("ref/dest/log/write", MK_FK_EIO, 0, 0);
    mkt_logf(&x.p, 2, 4 * BS, BS, x.blk[2]);
    assert_engine_error(&x, mkt_to_dest(&x.p, x.d), MK_EIO);
    dfx_free(&x);
}
END_TEST

/* 8.5: a full disk under the log is named MK_ENOSPC, not MK_EIO. */
START_TEST(test_s8_5_log_write_enospc_is_named)
{
    dfx x;
    dfx_init(&x, 0);
    dfx_hello_and_log(&x);
    point_on("ref/dest/log/write", MK_FK_ENOSPC, 0, 0);
    mkt_logf(&x.p, 2, 4 * BS, BS, x.blk[2]);
    assert_engine_error(&x, mkt_to_dest(&x.p, x.d), MK_ENOSPC);
    dfx_free(&x);
}
END_TEST

/* 8.5: a log sync that fails before LOG_ACK: the transfer is not
 * acknowledged, the engine stops with MK_EIO. */
START_TEST(test_s8_5_log_sync_eio_no_log_ack)
{
    dfx x;
    dfx_init(&x, 0);
    dfx_hello_and_log(&x);
    point_on("ref/dest/log/sync", MK_FK_DEFAULT, 0, 0);
    mkt_logf(&x.p, 2, 4 * BS, BS, x.blk[2]);
    int rc = mkt_to_dest(&x.p, x.d);
    mkt_frames *fs = mkt_take(mk_dest_out(x.d));
    ck_assert_uint_eq(mkt_count(fs, MK_F_LOG_ACK), 0);
    ck_assert_uint_eq(mkt_count(fs, MK_F_ERROR), 1);
    mkt_frames_free(fs);
    mkt_assert_err(rc, MK_EIO);
    dfx_free(&x);
}
END_TEST

/* 7.4, 7.6 step 9: the mirror write of a committed CP fails; no CP_ACK is
 * sent, and the restarted destination - after a power cut, so only what
 * was synced counts - redoes the CP from its durable redo record. */
START_TEST(test_s7_4_mirror_write_eio_redone_after_restart)
{
    dfx x;
    dfx_init(&x, 1);
    dfx_hello_and_log(&x);
    dfx_cp1(&x, 1);
    point_on("ref/dest/mirror/write", MK_FK_EIO, 0, 0);
    int rc = mkt_to_dest(&x.p, x.d);
    mkt_assert_err(rc, MK_EIO);
    mkt_assert_error_frame(mk_dest_out(x.d), MK_EIO); /* and no CP_ACK */
    points_off();
    dfx_restart(&x, 1);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->redo_cps, 1);
    mk_log_info li;
    mk_dest_log_info(x.d, &li);
    ck_assert_uint_eq(li.last_cp, 1);
    ck_assert_uint_eq(li.applied_cp, 1);
    assert_block(x.mirror, 5, x.blk[2]);
    assert_block(x.mirror, 6, x.blk[3]);
    dfx_free(&x);
}
END_TEST

/* 7.4 atomicity: the sync before the commit point fails, then the power
 * goes.  The redo record never became durable, so recovery yields CP 0
 * and the mirror holds none of the CP's blocks. */
START_TEST(test_s7_4_log_sync_eio_before_commit_keeps_cp_k_minus_1)
{
    dfx x;
    dfx_init(&x, 1);
    dfx_hello_and_log(&x);
    dfx_cp1(&x, 0);
    mkt_ok(mkt_to_dest(&x.p, x.d));
    mkt_cp_commit(&x.p, 1, 2);
    point_on("ref/dest/log/sync", MK_FK_EIO, 0, 0);
    mkt_assert_err(mkt_to_dest(&x.p, x.d), MK_EIO);
    points_off();
    dfx_restart(&x, 1);
    mk_log_info li;
    mk_dest_log_info(x.d, &li);
    ck_assert_uint_eq(li.last_cp, 0);
    ck_assert_uint_eq(li.durable_tid, 1);
    static const uint8_t zero[BS];
    assert_block(x.mirror, 5, zero);
    assert_block(x.mirror, 6, zero);
    dfx_free(&x);
}
END_TEST

/* 7.6: a torn append on a crashable file kills the simulated process with
 * 100 bytes of the record persisted; after the crash the open cuts
 * exactly those 100 bytes and the log ends at transfer 1. */
START_TEST(test_s7_6_torn_log_append_cut_on_restart)
{
    dfx x;
    dfx_init(&x, 1);
    dfx_hello_and_log(&x);
    point_on("ref/dest/log/write", MK_FK_TORN, 100, 1);
    mkt_logf(&x.p, 2, 4 * BS, BS, x.blk[2]);
    mkt_assert_err(mkt_to_dest(&x.p, x.d), MK_EIO);
    ck_assert(x.clk.dead); /* the process died on that write */
    dfx_restart(&x, 1);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->cut_bytes, 100);
    mk_log_info li;
    mk_dest_log_info(x.d, &li);
    ck_assert_uint_eq(li.durable_tid, 1);
    dfx_free(&x);
}
END_TEST

/* 7.6 on real files: a short append to a POSIX log leaves a prefix of the
 * record in the file; the restarted destination cuts it as a torn tail
 * and keeps transfer 1. */
START_TEST(test_s7_6_short_posix_log_append_cut_on_restart)
{
    char dir[256], path[300];
    mkt_tmpdir(dir, sizeof dir);
    dfx x;
    memset(&x, 0, sizeof x);
    snprintf(path, sizeof path, "%s/mirror.img", dir);
    mkt_ok(mk_file_open(path, 1, "ref/dest/mirror", &x.mirror));
    snprintf(path, sizeof path, "%s/dest.log", dir);
    mkt_ok(mk_file_open(path, 1, "ref/dest/log", &x.log));
    for (int i = 0; i < 4; i++)
        mkt_fill(x.blk[i], BS, 100 + (uint64_t)i);
    mkt_peer_init(&x.p);
    dfx_open(&x);
    dfx_hello_and_log(&x);
    uint64_t before = mkt_fsize(x.log);
    point_on("ref/dest/log/write", MK_FK_SHORT, 50, 1);
    mkt_logf(&x.p, 2, 4 * BS, BS, x.blk[2]);
    mkt_assert_err(mkt_to_dest(&x.p, x.d), MK_EIO);
    ck_assert_uint_eq(mkt_fsize(x.log), before + 50);
    dfx_restart(&x, 0);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->cut_bytes, 50);
    ck_assert_uint_eq(mkt_fsize(x.log), before);
    mk_log_info li;
    mk_dest_log_info(x.d, &li);
    ck_assert_uint_eq(li.durable_tid, 1);
    dfx_free(&x);
    mkt_unlink_in(dir, "mirror.img");
    mkt_unlink_in(dir, "dest.log");
    rmdir(dir);
}
END_TEST

/* 8.5: no memory to stage a CP record is an engine error, MK_ENOMEM. */
START_TEST(test_s8_5_alloc_dest_staging_enomem)
{
    dfx x;
    dfx_init(&x, 0);
    dfx_hello_and_log(&x);
    point_on("ref/alloc/dest/staging", MK_FK_DEFAULT, 0, 0);
    dfx_cp1(&x, 0);
    assert_engine_error(&x, mkt_to_dest(&x.p, x.d), MK_ENOMEM);
    dfx_free(&x);
}
END_TEST

/* 7.4, 8.5: no memory for the redo record: MK_ENOMEM, the CP is not
 * committed, and a restart finds CP 0 with nothing to redo. */
START_TEST(test_s7_4_alloc_dest_redo_enomem_cp_not_committed)
{
    dfx x;
    dfx_init(&x, 0);
    dfx_hello_and_log(&x);
    point_on("ref/alloc/dest/redo", MK_FK_ENOMEM, 0, 0);
    dfx_cp1(&x, 1);
    assert_engine_error(&x, mkt_to_dest(&x.p, x.d), MK_ENOMEM);
    dfx_restart(&x, 0);
    mk_log_info li;
    mk_dest_log_info(x.d, &li);
    ck_assert_uint_eq(li.last_cp, 0);
    ck_assert_uint_eq(mk_dest_get_stats(x.d)->redo_cps, 0);
    dfx_free(&x);
}
END_TEST

/* 8.5: the source is fatal and sticky on MK_ENOMEM, for a write (the
 * transfer's copy) and for a CP (its records). */
START_TEST(test_s8_5_alloc_source_enomem_is_sticky)
{
    static const char *const pts[] = {"ref/alloc/source/transfer", "ref/alloc/source/cp"};
    for (int i = 0; i < 2; i++) {
        /* Semi-sync: writes are logged as transfers, yet acknowledged at
         * once, so this source needs no destination. */
        mk_source_config sc = {MKT_VOLUME_ID, NBLOCKS, MKT_SOURCE_ID, BS, MK_MODE_SEMI, 0, NULL};
        mk_file *store;
        mk_source *s;
        uint8_t blk[BS];
        uint64_t wid;
        mkt_fill(blk, BS, 7);
        mkt_ok(mk_file_mem("ref/source/store", &store));
        mkt_ok(mk_source_new(&sc, store, &s));
        point_on(pts[i], MK_FK_DEFAULT, 0, 1);
        int rc = mk_source_write(s, 0, blk, BS, 0, &wid);
        if (i == 1) {
            mkt_ok(rc);
            rc = mk_source_cp(s, 0);
        }
        mkt_assert_err(rc, MK_ENOMEM);
        mkt_assert_err(mk_source_error(s), MK_ENOMEM);
        mkt_assert_err(mk_source_write(s, BS, blk, BS, 0, &wid), MK_ENOMEM);
        mkt_assert_err(mk_source_cp(s, 0), MK_ENOMEM);
        points_off();
        mk_source_free(s);
        mk_file_close(store);
    }
}
END_TEST

/* 8.5: a source volume write that fails changes nothing the source
 * reports as written, and stops the source with the error. */
START_TEST(test_s8_5_source_store_write_short_stops_source)
{
    mk_source_config sc = {MKT_VOLUME_ID, NBLOCKS, MKT_SOURCE_ID, BS, MK_MODE_ASYNC, 0, NULL};
    mk_file *store;
    mk_source *s;
    uint8_t blk[BS];
    uint64_t wid = 0;
    mkt_fill(blk, BS, 8);
    mkt_ok(mk_file_mem("ref/source/store", &store));
    mkt_ok(mk_source_new(&sc, store, &s));
    point_on("ref/source/store/write", MK_FK_SHORT, 10, 1);
    mkt_assert_err(mk_source_write(s, 0, blk, BS, 0, &wid), MK_EIO);
    ck_assert_uint_eq(mkt_fsize(store), 10); /* the short prefix, no more */
    ck_assert_uint_eq(mk_source_get_stats(s)->writes, 0);
    mkt_assert_err(mk_source_error(s), MK_EIO);
    points_off();
    mk_source_free(s);
    mk_file_close(store);
}
END_TEST

/* ---- the transport ---------------------------------------------------------- */

typedef struct sinkbuf {
    uint8_t b[4096];
    size_t n;
} sinkbuf;

static int sink_fn(void *ctx, const uint8_t *buf, size_t n)
{
    sinkbuf *s = ctx;
    ck_assert_uint_le(s->n + n, sizeof s->b);
    memcpy(s->b + s->n, buf, n);
    s->n += n;
    return 0;
}

/* Reads what the peer end holds until end of stream; returns the count. */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r <= 0)
            return got;
        got += (size_t)r;
    }
}

/* 8.2: a short send passes its first 100 bytes, then the connection is
 * reset: the sender sees MK_ECLOSED and the peer the end of the stream
 * right after those bytes, a frame cut in the middle. */
START_TEST(test_s8_2_link_send_short_then_reset)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mk_buf out;
    mk_buf_init(&out);
    uint8_t data[1000], got[2000];
    mkt_fill(data, sizeof data, 3);
    mkt_ok(mk_buf_append(&out, data, sizeof data));
    sinkbuf sb = {.n = 0};
    point_on("ref/link/send", MK_FK_SHORT, 100, 1);
    mkt_assert_err(mk_io_pump2(sv[0], sv[0], &out, sink_fn, &sb, 1000, NULL), MK_ECLOSED);
    ck_assert_uint_eq(mk_buf_len(&out), 900);
    ck_assert_uint_eq(drain(sv[1], got, sizeof got), 100);
    ck_assert_mem_eq(got, data, 100);
    points_off();
    mk_buf_free(&out);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* 8.2: a receive that fails resets the connection: the bytes read are not
 * delivered and the peer sees the end of the stream. */
START_TEST(test_s8_2_link_recv_reset)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mk_buf out;
    mk_buf_init(&out);
    uint8_t data[500], got[16];
    mkt_fill(data, sizeof data, 4);
    ck_assert_int_eq(write(sv[1], data, sizeof data), (ssize_t)sizeof data);
    sinkbuf sb = {.n = 0};
    point_on("ref/link/recv", MK_FK_EIO, 0, 1);
    mkt_assert_err(mk_io_pump2(sv[0], sv[0], &out, sink_fn, &sb, 1000, NULL), MK_ECLOSED);
    ck_assert_uint_eq(sb.n, 0);
    ck_assert_uint_eq(drain(sv[1], got, sizeof got), 0);
    points_off();
    mk_buf_free(&out);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* A link point failing with MK_ENOMEM is no link failure: the error is
 * passed up and the connection still works afterwards. */
START_TEST(test_s8_5_link_recv_enomem_keeps_connection)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mk_buf out;
    mk_buf_init(&out);
    sinkbuf sb = {.n = 0};
    ck_assert_int_eq(write(sv[1], "abc", 3), 3);
    point_on("ref/link/recv", MK_FK_ENOMEM, 0, 1);
    mkt_assert_err(mk_io_pump2(sv[0], sv[0], &out, sink_fn, &sb, 1000, NULL), MK_ENOMEM);
    ck_assert_int_eq(write(sv[1], "def", 3), 3);
    mkt_ok(mk_io_pump2(sv[0], sv[0], &out, sink_fn, &sb, 1000, NULL));
    ck_assert_uint_eq(sb.n, 3);
    ck_assert_mem_eq(sb.b, "def", 3);
    points_off();
    mk_buf_free(&out);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- the catalogue is complete: every point is reached ---------------------- */

static uint64_t hits[64];

static size_t point_index(const char *name)
{
    for (size_t i = 0; i < mk_fault_npoints; i++)
        if (strcmp(mk_fault_points[i].name, name) == 0)
            return i;
    ck_abort_msg("%s is not catalogued", name);
    return 0;
}

/* libfiu asks this for every hit of a point enabled with it; it counts
 * the hit and never fails it.  The name is the one enabled, which is the
 * catalogue's exact name. */
static int count_hit(const char *name, int *failnum, void **failinfo, unsigned int *flags)
{
    (void)failnum, (void)failinfo, (void)flags;
    hits[point_index(name)]++;
    return 0;
}

static int sink_discard(void *ctx, const uint8_t *buf, size_t n)
{
    (void)ctx, (void)buf, (void)n;
    return 0;
}

/* Every point of the catalogue is reached by the reference: a pair run in
 * one process, a destination restarted without its tree and promoted, and
 * a pump over a socket pair.  A catalogued name the code does not carry
 * would stay at zero. */
START_TEST(test_s0_every_catalogued_point_is_reached)
{
    ck_assert_uint_le(mk_fault_npoints, sizeof hits / sizeof *hits);
    memset(hits, 0, sizeof hits);
    ck_assert_int_eq(fiu_init(0), 0);
    for (size_t i = 0; i < mk_fault_npoints; i++)
        ck_assert_int_eq(fiu_enable_external(mk_fault_points[i].name, 1, NULL, 0, count_hit), 0);

    mk_pair_config c;
    mk_pair_result r;
    mk_pair_defaults(&c);
    c.nblocks = 512;
    c.cps = 3;
    c.writes_per_cp = 60;
    mkt_ok(mk_pair_run(&c, &r));

    /* A destination that restarts without its tree rebuilds it from the
     * image; one promoted empties its tree and retires its log. */
    dfx x;
    dfx_init(&x, 0);
    dfx_hello_and_log(&x);
    dfx_cp1(&x, 1);
    mkt_ok(mkt_to_dest(&x.p, x.d));
    mk_file *tree;
    mkt_ok(mk_file_mem("ref/dest/tree", &tree));
    mk_dest_free(x.d);
    mkt_ok(mk_dest_open(&(mk_dest_config){.tree = tree}, x.mirror, x.log, &x.d));
    mkt_ok(mk_dest_promote(x.d));

    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mk_buf out;
    mk_buf_init(&out);
    mkt_ok(mk_buf_append(&out, "ping", 4));
    ck_assert_int_eq(write(sv[1], "pong", 4), 4);
    size_t send = point_index("ref/link/send"), recv = point_index("ref/link/recv");
    for (int i = 0; i < 4 && (!hits[send] || !hits[recv]); i++)
        mkt_ok(mk_io_pump2(sv[0], sv[0], &out, sink_discard, NULL, 1000, NULL));

    int missed = 0;
    for (size_t i = 0; i < mk_fault_npoints; i++)
        if (!hits[i]) {
            fprintf(stderr, "check_fault: fault point %s was never reached\n",
                    mk_fault_points[i].name);
            missed++;
        }
    ck_assert_int_eq(missed, 0);

    mk_buf_free(&out);
    close(sv[0]);
    close(sv[1]);
    dfx_free(&x);
    mk_file_close(tree);
}
END_TEST
#endif

static Suite *fault_suite(void)
{
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("catalogue");
    tcase_add_test(tc, test_s0_catalogue_wellformed);
    tcase_add_test(tc, test_s0_mk_fiu_entries);
    tcase_add_test(tc, test_s0_catalogue_markdown_and_list_name_every_point);
    suite_add_tcase(s, tc);
    tc = tcase_create("points");
    tcase_set_timeout(tc, 60);
#ifdef FIU_ENABLE
    tcase_add_test(tc, test_s8_5_log_write_eio_is_engine_error);
    tcase_add_test(tc, test_s8_5_log_write_enospc_is_named);
    tcase_add_test(tc, test_s8_5_log_sync_eio_no_log_ack);
    tcase_add_test(tc, test_s7_4_mirror_write_eio_redone_after_restart);
    tcase_add_test(tc, test_s7_4_log_sync_eio_before_commit_keeps_cp_k_minus_1);
    tcase_add_test(tc, test_s7_6_torn_log_append_cut_on_restart);
    tcase_add_test(tc, test_s7_6_short_posix_log_append_cut_on_restart);
    tcase_add_test(tc, test_s8_5_alloc_dest_staging_enomem);
    tcase_add_test(tc, test_s7_4_alloc_dest_redo_enomem_cp_not_committed);
    tcase_add_test(tc, test_s8_5_alloc_source_enomem_is_sticky);
    tcase_add_test(tc, test_s8_5_source_store_write_short_stops_source);
    tcase_add_test(tc, test_s8_2_link_send_short_then_reset);
    tcase_add_test(tc, test_s8_2_link_recv_reset);
    tcase_add_test(tc, test_s8_5_link_recv_enomem_keeps_connection);
    tcase_add_test(tc, test_s0_every_catalogued_point_is_reached);
#else
    tcase_add_test(tc, test_s0_points_compiled_away);
    printf("check_fault: 15 fault-point cases skipped: built without FIU_ENABLE "
           "(make fault-build)\n");
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mk_test_run(fault_suite()); }
