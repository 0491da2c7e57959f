/*
 * check_run.c - the scenario runner (fault/mk_run.h, mk_run_scenario) and
 * the pair's step-by-step crash API it is built on (ref/mk_pair.h:
 * mk_pair_open/write/cp/kill/crash/restart/promote).
 *
 *  - the runner: one scenario is one fixed run (the same trace hash twice,
 *    another one for another seed); crashes at protocol events are carried
 *    out and survived (SPEC.md 7.4, 7.6, I3); manual restarts, and a
 *    restart of a role that is up is an error; a trigger that never fires
 *    fails the scenario unless unfired_ok; each kind of expectation holds
 *    or fails for the right reason (I1, I2 after promotion, 8.4; exit
 *    codes, 10.3); scenarios that cannot run here are refused with
 *    FILE:LINE:COL.
 *  - the fault build (FIU_ENABLE) adds storage faults at libfiu points:
 *    ENOSPC on the destination's log ends the run (8.5), a torn log append
 *    is a crash that recovery cuts (7.6), crashes at a point's K-th hit,
 *    crash-point enumeration over every hit of the destination's points
 *    (7.6, I3), and the per-point hit counters.
 *  - the pair API directly: crash, restart, promote and their refusals,
 *    and a kill from inside an engine call (a hook).
 *
 * The scenario language and runner are mirrorkit's own tooling; tests of
 * the tooling alone carry section "0" (test_s0_run_...), as check_scenario.c
 * does, and tests of a protocol rule carry its SPEC.md section.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_dest.h"
#include "mk_err.h"
#include "mk_faults.h"
#include "mk_pair.h"
#include "mk_run.h"
#include "mk_scenario.h"
#include "mk_test.h"
#include "mk_wire.h"

/* ---- helpers --------------------------------------------------------------- */

/* Parses text as "t.scn" (a parse error fails the test) and runs it with
 * the options given (NULL: all zero - quiet, strict about unfired
 * triggers).  Returns what mk_run_scenario returns. */
static int run_opts(const char *text, const mk_run_options *o, mk_run_result *r)
{
    mk_scenario *sc = NULL;
    mk_scenario_error e;
    mk_run_options zero = {0};
    int rc = mk_scenario_parse("t.scn", text, strlen(text), &sc, &e);
    if (rc) {
        char buf[1024];
        mk_scenario_error_format(&e, buf, sizeof buf);
        ck_abort_msg("unexpected parse error: %s\n%s", buf, text);
    }
    ck_assert_ptr_nonnull(sc);
    rc = mk_run_scenario(sc, o ? o : &zero, r);
    mk_scenario_free(sc);
    return rc;
}

/* Runs text with zero options; the run must be carried out (rc 0). */
static void run_ok(const char *text, mk_run_result *r)
{
    int rc = run_opts(text, NULL, r);
    ck_assert_msg(rc == 0, "mk_run_scenario returned %s (%s)", mk_errname(rc), r->why);
}

#define assert_pass(r)                                                          \
    ck_assert_msg((r)->pass == 1 && (r)->why[0] == '\0',                       \
                  "scenario failed: %s (err %s)", (r)->why,                     \
                  (r)->err ? mk_errname((r)->err) : "none")

#define assert_fail_why(r, want)                                                \
    do {                                                                        \
        ck_assert_msg((r)->pass == 0, "scenario passed, expected it to fail "  \
                                      "with \"%s\"", (want));                   \
        ck_assert_msg(strstr((r)->why, (want)) != NULL,                         \
                      "why \"%s\" lacks \"%s\"", (r)->why, (want));            \
    } while (0)

/* A refusal: MK_EUSAGE, nothing run, and why is exactly
 * "t.scn:LINE:COL: MK_EUSAGE: ..." with want in the message. */
static void assert_refused(const char *text, const char *where, const char *want)
{
    mk_run_result r;
    memset(&r, 0xa5, sizeof r);
    int rc = run_opts(text, NULL, &r);
    ck_assert_msg(rc == MK_EUSAGE, "expected MK_EUSAGE, got %s (%s)\n%s",
                  rc ? mk_errname(rc) : "0", r.why, text);
    ck_assert_int_eq(r.pass, 0);
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.writes, 0);
    ck_assert_uint_eq(r.cps_done, 0);
    ck_assert_uint_eq(r.crashes, 0);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t.scn:%s: MK_EUSAGE: ", where);
    ck_assert_msg(strncmp(r.why, prefix, strlen(prefix)) == 0, "why \"%s\" does not start "
                  "with \"%s\"", r.why, prefix);
    ck_assert_msg(strstr(r.why, want) != NULL, "why \"%s\" lacks \"%s\"", r.why, want);
}

/* ---- determinism ----------------------------------------------------------- */

/* Two destination crashes at protocol events, a lossy link and workload
 * writes; %llu is the seed. */
static const char det_fmt[] =
    "volume blocks=16 block-size=512\n"
    "seed %llu\n"
    "cp every=10\n"
    "link drop prob=1/20\n"
    "crash dest after=cp-commit:2\n"
    "writes 25\n"
    "crash dest after=transfer:33\n"
    "writes 15\n"
    "cp\n"
    "expect verify-every-cp\n"
    "expect no-acked-write-lost\n";

static void det_run(unsigned long long seed, mk_run_result *r)
{
    char text[1024];
    snprintf(text, sizeof text, det_fmt, seed);
    run_ok(text, r);
    assert_pass(r);
    ck_assert_uint_eq(r->writes, 40);
    ck_assert_uint_eq(r->cps_done, 5); /* 4 every 10 writes, then the last cp */
    ck_assert_uint_eq(r->cps_verified, 5);
    ck_assert_uint_eq(r->crashes, 2);
    ck_assert_uint_eq(r->restarts, 2);
}

/* Everything random is drawn from the scenario's seed: the same scenario
 * gives the same trace hash, another seed another one. */
START_TEST(test_s0_run_same_scenario_same_trace)
{
    mk_run_result a, b, c;
    det_run(5, &a);
    det_run(5, &b);
    ck_assert_uint_ne(a.trace, 0);
    ck_assert_uint_eq(a.trace, b.trace);
    ck_assert_uint_eq(a.cps_done, b.cps_done);
    ck_assert_uint_eq(a.crashes, b.crashes);
    ck_assert_uint_eq(a.writes, b.writes);
    ck_assert_int_eq(a.remote_code, b.remote_code);
    det_run(6, &c);
    ck_assert_uint_ne(a.trace, c.trace);
    /* ... and the seed is the only thing that made the difference */
    det_run(6, &b);
    ck_assert_uint_eq(b.trace, c.trace);
}
END_TEST

/* ---- crashes at protocol events ----------------------------------------------- */

/* SPEC.md 7.4, 7.6: the destination dies right after CP 2's redo record
 * is durable, before it applied the CP; restarted at once, its recovery
 * redoes CP 2 (I3 checked on the recovered mirror) and every CP after it
 * verifies, with no acknowledged write lost (I2). */
START_TEST(test_s7_6_crash_after_cp_commit_is_redone)
{
    mk_run_result r;
    run_ok("volume blocks=16 block-size=512\n"
           "seed 3\n"
           "cp every=10\n"
           "crash dest after=cp-commit:2\n"
           "writes 40\n"
           "expect verify-every-cp\n"
           "expect no-acked-write-lost\n",
           &r);
    assert_pass(&r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.invariant, 0);
    ck_assert_uint_eq(r.crashes, 1);
    ck_assert_uint_eq(r.restarts, 1);
    ck_assert_uint_eq(r.writes, 40);
    ck_assert_uint_eq(r.cps_done, 4);
    ck_assert_uint_eq(r.cps_verified, 4);
    ck_assert_int_eq(r.crashed_at, 0);
}
END_TEST

/* SPEC.md 7.6: a destination crashed with restart=manual stays down while
 * the source goes on taking writes (unacknowledged), and `restart dest`
 * recovers it; the next CP reads every block back.  Both the plain crash
 * and a crash at an event with restart=manual. */
START_TEST(test_s7_6_manual_restart_recovers)
{
    static const char *const texts[] = {
        "volume blocks=16 block-size=512\n"
        "seed 3\n"
        "writes 10\n"
        "cp\n"
        "crash dest restart=manual\n"
        "writes 5\n"
        "restart dest\n"
        "writes 5\n"
        "cp\n"
        "expect verify-every-cp\n"
        "expect no-acked-write-lost\n"
        "expect exit 0\n",
        "volume blocks=16 block-size=512\n"
        "seed 3\n"
        "writes 10\n"
        "cp\n"
        "crash dest after=transfer:13 restart=manual\n"
        "writes 5\n"
        "restart dest\n"
        "writes 5\n"
        "cp\n"
        "expect verify-every-cp\n"
        "expect no-acked-write-lost\n"
        "expect exit 0\n",
    };
    for (size_t i = 0; i < 2; i++) {
        mk_run_result r;
        run_ok(texts[i], &r);
        assert_pass(&r);
        ck_assert_int_eq(r.err, 0);
        ck_assert_uint_eq(r.crashes, 1);
        ck_assert_uint_eq(r.restarts, 1);
        ck_assert_uint_eq(r.writes, 20);
        ck_assert_uint_eq(r.cps_done, 2);
        ck_assert_uint_eq(r.cps_verified, 2);
    }

    /* The crash comes inside CP 2 (after its commit, 7.4): the `cp` step
     * gives way with the destination down, `restart dest` recovers it, and
     * the source completes CP 2 in the next session (8.2); CP 3 follows
     * and the mirror ends as CP 3's image. */
    mk_run_result r;
    run_ok("volume blocks=16 block-size=512\n"
           "seed 3\n"
           "writes 10\n"
           "cp\n"
           "crash dest after=cp-commit:2 restart=manual\n"
           "writes 5\n"
           "cp\n"
           "writes 5\n"
           "restart dest\n"
           "writes 5\n"
           "cp\n"
           "expect verify-every-cp\n"
           "expect no-acked-write-lost\n"
           "expect mirror-equals cp=3\n",
           &r);
    assert_pass(&r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.crashes, 1);
    ck_assert_uint_eq(r.restarts, 1);
    ck_assert_uint_eq(r.writes, 25);
    ck_assert_uint_eq(r.cps_done, 3);
}
END_TEST

/* `restart dest` while the destination is up (its crash is armed for an
 * event that has not come yet) is an error: the run ends with MK_ESTATE
 * at that step and the scenario fails saying so. */
START_TEST(test_s7_6_restart_of_live_dest_is_estate)
{
    mk_run_result r;
    run_ok("volume blocks=16 block-size=512\n"
           "seed 3\n"
           "writes 10\n"
           "cp\n"
           "crash dest after=cp-commit:2 restart=manual\n"
           "restart dest\n"
           "writes 5\n"
           "cp\n",
           &r);
    ck_assert_int_eq(r.err, MK_ESTATE);
    ck_assert_int_eq(mk_exit_code(r.err), EXIT_USAGE);
    assert_fail_why(&r, "the run ended with MK_ESTATE");
    ck_assert_uint_eq(r.crashes, 0);
    ck_assert_uint_eq(r.writes, 10); /* nothing after the restart step ran */
    ck_assert_uint_eq(r.cps_done, 1);
}
END_TEST

/* ---- triggers that never fire ------------------------------------------------ */

static const char unfired[] =
    "volume blocks=16 block-size=512\n"
    "seed 4\n"
    "crash dest after=cp-begin:99\n"
    "writes 10\n"
    "cp\n"
    "writes 10\n"
    "cp\n"
    "expect verify-every-cp\n";

/* "A crash that did not happen tests nothing" (SCENARIOS.md 3.3): a trigger
 * whose event never comes fails a run that is otherwise fine, naming its
 * line and event; with unfired_ok the same run passes. */
START_TEST(test_s0_run_unfired_trigger_fails_unless_allowed)
{
    mk_run_result r;
    run_ok(unfired, &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.cps_done, 2);
    ck_assert_uint_eq(r.cps_verified, 2);
    ck_assert_uint_eq(r.crashes, 0);
    assert_fail_why(&r, "never fired");
    assert_fail_why(&r, "line 3: 'crash' never fired: event cp-begin:99");
    uint64_t trace = r.trace;

    mk_run_options o = {0};
    o.unfired_ok = 1;
    ck_assert_int_eq(run_opts(unfired, &o, &r), 0);
    assert_pass(&r);
    ck_assert_uint_eq(r.cps_done, 2);
    ck_assert_uint_eq(r.trace, trace); /* the same run, judged otherwise */

    /* A trigger armed after the last thing that could fire it: its event
     * (CP 1's begin) came before its step, and events are not counted
     * from the step that names them. */
    run_ok("volume blocks=16 block-size=512\n"
           "seed 4\n"
           "writes 10\n"
           "cp\n"
           "crash dest after=cp-begin:1\n"
           "writes 10\n"
           "cp\n",
           &r);
    assert_fail_why(&r, "line 5: 'crash' never fired: event cp-begin:1 did not happen");
}
END_TEST

/* ---- expectations -------------------------------------------------------------- */

static const char two_cps[] =
    "volume blocks=16 block-size=512\n"
    "seed 2\n"
    "writes 10\n"
    "cp\n"
    "writes 10\n"
    "cp\n";

/* SPEC.md 8.5, 12: `expect error` holds only when the run ended with that
 * error; a clean run fails it and says it ended with no error. */
START_TEST(test_s8_5_expect_error_on_clean_run_fails)
{
    mk_run_result r;
    char text[512];
    snprintf(text, sizeof text, "%sexpect error MK_ENOSPC\n", two_cps);
    run_ok(text, &r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.cps_verified, 2);
    assert_fail_why(&r, "line 7: expect error MK_ENOSPC: the run ended with no error");
}
END_TEST

/* SPEC.md 10.3: `expect exit 0` holds for a clean run; `expect exit 3`
 * fails on it, naming the actual code. */
START_TEST(test_s10_3_expect_exit_code)
{
    mk_run_result r;
    char text[512];
    snprintf(text, sizeof text, "%sexpect exit 0\nexpect verify-every-cp\n", two_cps);
    run_ok(text, &r);
    assert_pass(&r);
    snprintf(text, sizeof text, "%sexpect exit 3\n", two_cps);
    run_ok(text, &r);
    assert_fail_why(&r, "line 7: expect exit 3: the run's exit code is 0 (ok)");
}
END_TEST

/* SPEC.md 9 I1, I3: at the end the mirror is the image of the last CP:
 * mirror-equals holds for it, fails for CP 1 and CP 0 (whose images
 * differ), and for a CP never taken says so.  Writes after the last CP
 * do not change the mirror (it changes only at apply). */
START_TEST(test_s9_i1_expect_mirror_equals)
{
    mk_run_result r;
    char text[512];
    snprintf(text, sizeof text, "%sexpect mirror-equals cp=2\n", two_cps);
    run_ok(text, &r);
    assert_pass(&r);
    uint64_t trace = r.trace;
    ck_assert_uint_eq(r.cps_done, 2);

    snprintf(text, sizeof text, "%sexpect mirror-equals cp=1\n", two_cps);
    run_ok(text, &r);
    ck_assert_uint_eq(r.trace, trace);
    assert_fail_why(&r, "line 7: expect mirror-equals cp=1: the mirror differs from the "
                        "CP 1 image");

    snprintf(text, sizeof text, "%sexpect mirror-equals cp=0\n", two_cps);
    run_ok(text, &r);
    assert_fail_why(&r, "expect mirror-equals cp=0: the mirror differs from the CP 0 image");

    snprintf(text, sizeof text, "%sexpect mirror-equals cp=3\n", two_cps);
    run_ok(text, &r);
    assert_fail_why(&r, "expect mirror-equals cp=3: CP 3 was never taken");

    /* ends with 5 writes after CP 1: the mirror is still CP 1's image */
    run_ok("volume blocks=16 block-size=512\n"
           "seed 2\n"
           "writes 10\n"
           "cp\n"
           "writes 5\n"
           "expect mirror-equals cp=1\n",
           &r);
    assert_pass(&r);
    ck_assert_uint_eq(r.cps_done, 1);
    ck_assert_uint_eq(r.writes, 15);
}
END_TEST

/* SPEC.md 8.4, I2: sync mode, the source crashes with 7 writes after its
 * last CP and the destination is promoted: every acknowledged write is on
 * the promoted volume - so it is not CP 1's image any more. */
START_TEST(test_s8_4_promote_after_source_crash_keeps_acked_writes)
{
    static const char base[] =
        "volume blocks=16 block-size=512\n"
        "mode sync\n"
        "seed 2\n"
        "writes 10\n"
        "cp\n"
        "writes 7\n"
        "crash source\n"
        "promote\n"
        "expect no-acked-write-lost\n";
    mk_run_result r;
    char text[512];
    snprintf(text, sizeof text, "%sexpect verify-every-cp\nexpect exit 0\n", base);
    run_ok(text, &r);
    assert_pass(&r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_int_eq(r.invariant, 0);
    ck_assert_uint_eq(r.crashes, 1);
    ck_assert_uint_eq(r.restarts, 0);
    ck_assert_uint_eq(r.writes, 17);
    ck_assert_uint_eq(r.cps_done, 1);

    snprintf(text, sizeof text, "%sexpect mirror-equals cp=1\n", base);
    run_ok(text, &r);
    assert_fail_why(&r, "line 10: expect mirror-equals cp=1: the mirror differs");
}
END_TEST

/* ---- refusals -------------------------------------------------------------------- */

/* Scenarios that cannot run here are refused before anything runs, with
 * FILE:LINE:COL: a crash needs the simulated link; an unknown point is
 * named at its own column; a crash at another role's point is refused in
 * the fault build (in a normal build any crash at a point is refused first
 * for want of points). */
START_TEST(test_s0_run_refusals_name_file_line_col)
{
    assert_refused("transport pipe\n"
                   "writes 5\n"
                   "  crash dest\n"
                   "restart dest\n"
                   "cp\n",
                   "3:3", "'crash' needs transport sim");
    assert_refused("transport tcp\n"
                   "writes 5\n"
                   "cp\n"
                   "promote\n",
                   "4:1", "'promote' needs transport sim");
    assert_refused("volume blocks=16 block-size=512\n"
                   "writes 5\n"
                   "fault ref/dest/log/fsync kind=eio\n"
                   "cp\n",
                   "3:7", "unknown fault point 'ref/dest/log/fsync'");
    assert_refused("volume blocks=16 block-size=512\n"
                   "writes 5\n"
                   "crash dest at=ref/dest/log/fsynx\n"
                   "cp\n",
                   "3:15", "unknown fault point 'ref/dest/log/fsynx'");
#ifdef FIU_ENABLE
    assert_refused("volume blocks=16 block-size=512\n"
                   "writes 5\n"
                   "crash dest at=ref/source/store/write\n"
                   "cp\n",
                   "3:15", "crash at 'ref/source/store/write': the point is not in that "
                          "role's process");
    assert_refused("volume blocks=16 block-size=512\n"
                   "writes 5\n"
                   "crash source at=ref/dest/*\n"
                   "cp\n",
                   "3:17", "crash at 'ref/dest/*': the point is not in that role's process");
    assert_refused("volume blocks=16 block-size=512\n"
                   "writes 5\n"
                   "fault ref/link/send kind=eio\n"
                   "cp\n",
                   "3:7", "the simulated link has no sockets");
#else
    assert_refused("volume blocks=16 block-size=512\n"
                   "writes 5\n"
                   "crash dest at=ref/source/store/write\n"
                   "cp\n",
                   "3:1", "'crash' needs fault points: run the fault build");
    assert_refused("volume blocks=16 block-size=512\n"
                   "writes 5\n"
                   "fault ref/dest/log/write kind=eio\n"
                   "cp\n",
                   "3:1", "'fault' needs fault points: run the fault build");
#endif
}
END_TEST

#ifndef FIU_ENABLE
/* A normal build counts no hits: the points are compiled away. */
START_TEST(test_s0_run_no_hits_without_points)
{
    mk_run_result r;
    run_ok(two_cps, &r);
    assert_pass(&r);
    ck_assert_uint_eq(r.hits_total, 0);
    ck_assert_uint_eq(r.role_hits, 0);
    for (size_t i = 0; i < mk_fault_npoints; i++)
        ck_assert_uint_eq(r.hits[i], 0);
}
END_TEST
#endif

/* ---- the pair's crash API ------------------------------------------------------ */

#define NB 16u
#define BS 512u

static void pair_config(mk_pair_config *c, int mode, uint64_t seed)
{
    mk_pair_defaults(c);
    c->nblocks = NB;
    c->block_size = BS;
    c->mode = mode;
    c->seed = seed;
    c->transport = MK_T_SIM;
    c->crashable = 1;
    c->cps = 0;
    c->out = NULL;
}

/* Writes n blocks of fill bytes starting at block first (mod NB). */
static void pair_writes(mk_pair *p, uint32_t first, uint32_t n, uint8_t fill)
{
    uint8_t b[BS];
    for (uint32_t i = 0; i < n; i++) {
        memset(b, fill + (uint8_t)i, sizeof b);
        ck_assert_int_eq(mk_pair_write(p, (uint64_t)((first + i) % NB) * BS, b, BS), 0);
    }
}

/* SPEC.md 7.6, I3: crash the destination between CPs, restart it, and the
 * run goes on; the calls that make no sense with a role down are refused
 * without changing anything. */
START_TEST(test_s7_6_pair_crash_and_restart_dest)
{
    mk_pair_config c;
    mk_pair_result res;
    mk_pair *p;
    pair_config(&c, MK_MODE_SYNC, 21);
    ck_assert_int_eq(mk_pair_open(&c, &p), 0);
    ck_assert_int_eq(mk_pair_down(p, MK_ROLE_DEST), 0);
    ck_assert_int_eq(mk_pair_down(p, MK_ROLE_SOURCE), 0);
    ck_assert_int_eq(mk_pair_restart(p, MK_ROLE_DEST), MK_ESTATE); /* it is up */
    pair_writes(p, 0, 6, 0x10);
    ck_assert_int_eq(mk_pair_cp(p), 0);
    ck_assert_uint_eq(mk_pair_progress(p)->cps_done, 1);
    pair_writes(p, 3, 4, 0x40);

    ck_assert_int_eq(mk_pair_crash(p, MK_ROLE_DEST), 0);
    ck_assert_int_eq(mk_pair_down(p, MK_ROLE_DEST), 1);
    ck_assert_int_eq(mk_pair_dying(p, MK_ROLE_DEST), 0); /* reaped already */
    ck_assert_int_eq(mk_pair_crash(p, MK_ROLE_DEST), MK_ESTATE);
    ck_assert_int_eq(mk_pair_cp(p), MK_ECLOSED);
    ck_assert_int_eq(mk_pair_finish(p), MK_ECLOSED);
    ck_assert_int_eq(mk_pair_promote(p), MK_ESTATE);
    /* the source takes writes with the destination down: unacknowledged */
    pair_writes(p, 9, 2, 0x70);

    ck_assert_int_eq(mk_pair_restart(p, MK_ROLE_DEST), 0);
    ck_assert_int_eq(mk_pair_down(p, MK_ROLE_DEST), 0);
    ck_assert_int_eq(mk_pair_restart(p, MK_ROLE_DEST), MK_ESTATE);
    pair_writes(p, 12, 3, 0x90);
    ck_assert_int_eq(mk_pair_cp(p), 0);
    ck_assert_int_eq(mk_pair_finish(p), 0);
    ck_assert_int_eq(mk_pair_close(p, 0, &res), 0);
    ck_assert_int_eq(res.err, 0);
    ck_assert_int_eq(res.report.invariant, 0);
    ck_assert_uint_eq(res.cps_done, 2);
    ck_assert_uint_eq(res.cps_verified, 2);
    ck_assert_uint_eq(res.stats.writes, 15);
    ck_assert_int_eq(res.stats.out_of_sync, 0);
}
END_TEST

/* SPEC.md 8.4, I2: the source crashes (and, not restarted, takes no
 * writes), the destination is promoted once - I2 checked on it - and a
 * second promotion is refused. */
START_TEST(test_s8_4_pair_crash_source_then_promote)
{
    mk_pair_config c;
    mk_pair_result res;
    mk_pair *p;
    uint8_t b[BS] = {0};
    pair_config(&c, MK_MODE_SYNC, 22);
    ck_assert_int_eq(mk_pair_open(&c, &p), 0);
    pair_writes(p, 0, 5, 0x21);
    ck_assert_int_eq(mk_pair_cp(p), 0);
    pair_writes(p, 2, 6, 0x61);
    ck_assert_int_eq(mk_pair_crash(p, MK_ROLE_SOURCE), 0);
    ck_assert_int_eq(mk_pair_down(p, MK_ROLE_SOURCE), 1);
    ck_assert_ptr_null(mk_pair_source(p));
    ck_assert_int_eq(mk_pair_write(p, 0, b, BS), MK_ECLOSED);
    ck_assert_int_eq(mk_pair_cp(p), MK_ECLOSED);
    ck_assert_int_eq(mk_pair_promote(p), 0);
    ck_assert_int_eq(mk_pair_promote(p), MK_ESTATE);
    ck_assert_int_eq(mk_pair_finish(p), 0); /* the destination is a volume now */
    ck_assert_int_eq(mk_pair_close(p, 0, &res), 0);
    ck_assert_int_eq(res.report.invariant, 0);
    ck_assert_uint_eq(res.cps_done, 1);
    ck_assert_uint_eq(res.stats.writes, 11);
}
END_TEST

/* A kill from inside an engine call: the hook of CP 2's commit (7.4) marks
 * the destination dead, it is reaped when the call returns and restarted
 * at once (automatic restart), recovers CP 2 from its redo record (7.6)
 * and the CP is acknowledged and verified. */
typedef struct killer {
    mk_pair *p;
    int kills, dying_seen, commits;
} killer;

static void kill_at_commit_2(void *ctx, int kind, uint64_t n, uint64_t cp)
{
    killer *k = ctx;
    (void)n;
    if (kind != MK_DEV_CP_COMMIT || !k->p)
        return;
    k->commits++;
    if (cp == 2 && !k->kills) {
        mk_pair_set_restart(k->p, MK_ROLE_DEST, 1);
        mk_pair_kill(k->p, MK_ROLE_DEST, 0);
        k->kills++;
        k->dying_seen = mk_pair_dying(k->p, MK_ROLE_DEST) && mk_pair_down(k->p, MK_ROLE_DEST);
        mk_pair_kill(k->p, MK_ROLE_DEST, 0); /* a second kill changes nothing */
    }
}

START_TEST(test_s7_4_pair_kill_inside_cp_commit_redone)
{
    killer k = {0};
    mk_pair_hooks h = {kill_at_commit_2, NULL, NULL, &k};
    mk_pair_config c;
    mk_pair_result res;
    mk_pair *p;
    pair_config(&c, MK_MODE_SEMI, 23);
    c.hooks = &h;
    ck_assert_int_eq(mk_pair_open(&c, &p), 0);
    k.p = p;
    pair_writes(p, 0, 8, 0x31);
    ck_assert_int_eq(mk_pair_cp(p), 0);
    pair_writes(p, 4, 8, 0xa1);
    ck_assert_int_eq(mk_pair_cp(p), 0);
    ck_assert_int_eq(k.kills, 1);
    ck_assert_int_eq(k.dying_seen, 1);
    ck_assert_int_eq(mk_pair_dying(p, MK_ROLE_DEST), 0);
    ck_assert_int_eq(mk_pair_down(p, MK_ROLE_DEST), 0); /* restarted */
    pair_writes(p, 1, 3, 0xc1);
    ck_assert_int_eq(mk_pair_cp(p), 0);
    ck_assert_int_eq(mk_pair_finish(p), 0);
    ck_assert_int_eq(mk_pair_close(p, 0, &res), 0);
    ck_assert_int_eq(res.report.invariant, 0);
    ck_assert_uint_eq(res.cps_done, 3);
    ck_assert_uint_eq(res.cps_verified, 3);
    ck_assert_int_ge(k.commits, 3);
}
END_TEST

/* Crashes are simulated on the in-process link only: on another transport
 * the calls are refused (MK_EINVAL) and a kill does nothing. */
START_TEST(test_s0_pair_crash_needs_sim)
{
    mk_pair_config c;
    mk_pair_result res;
    mk_pair *p;
    char dir[] = "/tmp/mk-check-run-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pair_config(&c, MK_MODE_SYNC, 24);
    c.transport = MK_T_PIPE;
    c.crashable = 0;
    c.workdir = dir;
    ck_assert_int_eq(mk_pair_open(&c, &p), 0);
    pair_writes(p, 0, 3, 0x51);
    ck_assert_int_eq(mk_pair_crash(p, MK_ROLE_DEST), MK_EINVAL);
    ck_assert_int_eq(mk_pair_restart(p, MK_ROLE_DEST), MK_EINVAL);
    ck_assert_int_eq(mk_pair_promote(p), MK_EINVAL);
    mk_pair_kill(p, MK_ROLE_DEST, 0);
    ck_assert_int_eq(mk_pair_dying(p, MK_ROLE_DEST), 0);
    ck_assert_int_eq(mk_pair_down(p, MK_ROLE_DEST), 0);
    ck_assert_int_eq(mk_pair_cp(p), 0);
    ck_assert_int_eq(mk_pair_finish(p), 0);
    ck_assert_int_eq(mk_pair_close(p, 0, &res), 0);
    ck_assert_uint_eq(res.cps_verified, 1);
    static const char *const files[] = {"mirror.img", "dest.log", "mirror.mkt"};
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- the fault build ------------------------------------------------------------ */

#ifdef FIU_ENABLE
static size_t point_index(const char *name)
{
    for (size_t i = 0; i < mk_fault_npoints; i++)
        if (strcmp(mk_fault_points[i].name, name) == 0)
            return i;
    ck_abort_msg("no fault point %s in the catalogue", name);
    return 0;
}

static int dest_point(const char *name)
{
    return strncmp(name, "ref/dest/", 9) == 0 || strncmp(name, "ref/alloc/dest/", 15) == 0;
}

/* SPEC.md 8.5: the destination's disk fills up from CP 2's begin on: its
 * engine stops with MK_ENOSPC, named on the wire (MK_EREMOTE at the
 * source), and the run's exit code is 3 (10.3). */
START_TEST(test_s8_5_run_dest_log_enospc_ends_run)
{
    mk_run_result r;
    run_ok("volume blocks=16 block-size=512\n"
           "seed 7\n"
           "cp every=10\n"
           "fault ref/dest/log/write kind=enospc after=cp-begin:2 count=forever\n"
           "writes 40\n"
           "expect error MK_ENOSPC\n"
           "expect exit 3\n",
           &r);
    assert_pass(&r);
    ck_assert_int_eq(r.err, MK_EREMOTE);
    ck_assert_int_eq(r.remote_code, MK_ENOSPC);
    ck_assert_uint_eq(r.cps_done, 1); /* CP 2 never completed */
    ck_assert_uint_eq(r.writes, 20);  /* the run stopped in CP 2 */
    ck_assert_uint_ge(r.faults_fired, 1);
    ck_assert_uint_eq(r.crashes, 0);

    /* the same run without the expectations fails, naming the error */
    run_ok("volume blocks=16 block-size=512\n"
           "seed 7\n"
           "cp every=10\n"
           "fault ref/dest/log/write kind=enospc after=cp-begin:2 count=forever\n"
           "writes 40\n",
           &r);
    assert_fail_why(&r, "the run ended with MK_ENOSPC");
}
END_TEST

/* SPEC.md 7.6: a torn append to the destination's log on the simulated
 * link is a crash inside the write; the destination is restarted at once,
 * recovery cuts the torn tail, and every CP verifies. */
START_TEST(test_s7_6_run_torn_log_write_survived)
{
    mk_run_result r;
    run_ok("volume blocks=16 block-size=512\n"
           "seed 7\n"
           "cp every=10\n"
           "fault ref/dest/log/write kind=torn after=cp-begin:2\n"
           "writes 40\n"
           "expect verify-every-cp\n"
           "expect no-acked-write-lost\n",
           &r);
    assert_pass(&r);
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.faults_fired, 1);
    ck_assert_uint_eq(r.crashes, 1);
    ck_assert_uint_eq(r.restarts, 1);
    ck_assert_uint_eq(r.cps_done, 4);
    ck_assert_uint_eq(r.cps_verified, 4);
}
END_TEST

/* SPEC.md 7.4, 7.6: the destination dies at the 3rd hit of its log sync
 * point (instead of that sync), is restarted and the run verifies. */
START_TEST(test_s7_6_run_crash_at_log_sync_hit_3)
{
    mk_run_result r;
    run_ok("volume blocks=16 block-size=512\n"
           "seed 7\n"
           "cp every=10\n"
           "crash dest at=ref/dest/log/sync hit=3\n"
           "writes 40\n"
           "expect verify-every-cp\n"
           "expect no-acked-write-lost\n",
           &r);
    assert_pass(&r);
    ck_assert_uint_eq(r.crashes, 1);
    ck_assert_uint_eq(r.restarts, 1);
    ck_assert_uint_eq(r.cps_verified, 4);
    ck_assert_uint_ge(r.hits[point_index("ref/dest/log/sync")], 3);

    /* a hit that never comes fails the scenario */
    run_ok("volume blocks=16 block-size=512\n"
           "seed 7\n"
           "writes 3\n"
           "crash dest at=ref/dest/mirror/truncate hit=1000000\n"
           "writes 3\n",
           &r);
    ck_assert_uint_eq(r.crashes, 0);
    assert_fail_why(&r, "line 4: 'crash' never fired: its point was hit");
}
END_TEST

static const char small[] =
    "volume blocks=16 block-size=512\n"
    "seed 7\n"
    "cps 2\n"
    "workload mixed writes=10\n"
    "expect verify-every-cp\n"
    "expect no-acked-write-lost\n";

/* Per-point hit counters (mk_fault_points order): the destination's log
 * and mirror writes are hit, all hits are of catalogued points, and
 * role_hits counts exactly the destination's ones. */
START_TEST(test_s0_run_hits_per_point)
{
    mk_run_result r;
    mk_run_options o = {0};
    o.crash_role = MK_ROLE_DEST;
    ck_assert_int_eq(run_opts(small, &o, &r), 0);
    assert_pass(&r);
    ck_assert_uint_gt(r.hits[point_index("ref/dest/log/write")], 0);
    ck_assert_uint_gt(r.hits[point_index("ref/dest/mirror/write")], 0);
    ck_assert_uint_gt(r.hits[point_index("ref/source/store/write")], 0);
    /* 20 client writes reach the source volume */
    ck_assert_uint_eq(r.hits[point_index("ref/source/store/write")], 20);
    /* the simulated link has no sockets */
    ck_assert_uint_eq(r.hits[point_index("ref/link/send")], 0);
    ck_assert_uint_eq(r.hits[point_index("ref/link/recv")], 0);
    uint64_t sum = 0, dest = 0;
    for (size_t i = 0; i < mk_fault_npoints; i++) {
        sum += r.hits[i];
        if (dest_point(mk_fault_points[i].name))
            dest += r.hits[i];
    }
    ck_assert_uint_eq(sum, r.hits_total);
    ck_assert_uint_eq(dest, r.role_hits);

    o.crash_role = MK_ROLE_SOURCE;
    mk_run_result s;
    ck_assert_int_eq(run_opts(small, &o, &s), 0);
    ck_assert_uint_eq(s.hits_total, r.hits_total);
    ck_assert_uint_eq(s.role_hits, r.hits_total - r.role_hits);
    ck_assert_uint_eq(s.trace, r.trace);
}
END_TEST

/* SPEC.md 7.6, I3 - crash points, as SQLite's crash tests: count the hits
 * of the destination's points in one run, then crash the destination at
 * each hit k in turn (restarted at once); every run must pass. */
START_TEST(test_s7_6_crashpoints_every_dest_hit)
{
    mk_run_result r;
    mk_run_options o = {0};
    o.crash_role = MK_ROLE_DEST;
    ck_assert_int_eq(run_opts(small, &o, &r), 0);
    assert_pass(&r);
    ck_assert_int_eq(r.crashed_at, 0);
    ck_assert_uint_eq(r.crashes, 0);
    uint64_t n = r.role_hits;
    ck_assert_uint_gt(n, 50);
    uint64_t points_crashed[64] = {0};
    for (uint64_t k = 1; k <= n; k++) {
        mk_run_result x;
        o.crash_at = k;
        ck_assert_int_eq(run_opts(small, &o, &x), 0);
        ck_assert_msg(x.pass == 1, "crash at dest hit %llu (%s): %s",
                      (unsigned long long)k, x.crash_point, x.why);
        ck_assert_msg(x.crashed_at == 1, "dest hit %llu never came (role_hits %llu)",
                      (unsigned long long)k, (unsigned long long)x.role_hits);
        ck_assert_uint_eq(x.crashes, 1);
        ck_assert_uint_eq(x.restarts, 1);
        ck_assert_uint_eq(x.cps_done, 2);
        ck_assert_uint_eq(x.cps_verified, 2);
        ck_assert_msg(dest_point(x.crash_point), "crash at hit %llu in %s",
                      (unsigned long long)k, x.crash_point);
        points_crashed[point_index(x.crash_point)]++;
    }
    /* the enumeration went through the log, the mirror and the tree */
    ck_assert_uint_gt(points_crashed[point_index("ref/dest/log/write")], 0);
    ck_assert_uint_gt(points_crashed[point_index("ref/dest/log/sync")], 0);
    ck_assert_uint_gt(points_crashed[point_index("ref/dest/mirror/write")], 0);
    ck_assert_uint_gt(points_crashed[point_index("ref/dest/tree/write")], 0);
    /* past the last hit, nothing crashes */
    o.crash_at = n + 1000;
    ck_assert_int_eq(run_opts(small, &o, &r), 0);
    assert_pass(&r);
    ck_assert_int_eq(r.crashed_at, 0);
    ck_assert_uint_eq(r.crashes, 0);
}
END_TEST
#endif

static Suite *run_suite(void)
{
    Suite *s = suite_create("run");
    TCase *tc = tcase_create("runner");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_s0_run_same_scenario_same_trace);
    tcase_add_test(tc, test_s7_6_crash_after_cp_commit_is_redone);
    tcase_add_test(tc, test_s7_6_manual_restart_recovers);
    tcase_add_test(tc, test_s7_6_restart_of_live_dest_is_estate);
    tcase_add_test(tc, test_s0_run_unfired_trigger_fails_unless_allowed);
    tcase_add_test(tc, test_s8_5_expect_error_on_clean_run_fails);
    tcase_add_test(tc, test_s10_3_expect_exit_code);
    tcase_add_test(tc, test_s9_i1_expect_mirror_equals);
    tcase_add_test(tc, test_s8_4_promote_after_source_crash_keeps_acked_writes);
    tcase_add_test(tc, test_s0_run_refusals_name_file_line_col);
#ifndef FIU_ENABLE
    tcase_add_test(tc, test_s0_run_no_hits_without_points);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("pair");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_s7_6_pair_crash_and_restart_dest);
    tcase_add_test(tc, test_s8_4_pair_crash_source_then_promote);
    tcase_add_test(tc, test_s7_4_pair_kill_inside_cp_commit_redone);
    tcase_add_test(tc, test_s0_pair_crash_needs_sim);
    suite_add_tcase(s, tc);

#ifdef FIU_ENABLE
    tc = tcase_create("faults");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_s8_5_run_dest_log_enospc_ends_run);
    tcase_add_test(tc, test_s7_6_run_torn_log_write_survived);
    tcase_add_test(tc, test_s7_6_run_crash_at_log_sync_hit_3);
    tcase_add_test(tc, test_s0_run_hits_per_point);
    tcase_add_test(tc, test_s7_6_crashpoints_every_dest_hit);
    suite_add_tcase(s, tc);
#endif
    return s;
}

int main(void) { return mk_test_run(run_suite()); }
