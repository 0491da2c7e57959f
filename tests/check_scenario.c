/*
 * check_scenario.c - the scenario-script language of fault/SCENARIOS.md:
 * every statement, every class of parse error with its exact line and
 * column, the canonical print/parse round trip, and random input.
 *
 * The language is mirrorkit's own test tooling, not a SPEC.md protocol
 * rule, so the tests carry section "0" (test_s0_scenario_...), as the
 * infrastructure tests of check_util.c do.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_err.h"
#include "mk_pair.h"
#include "mk_prng.h"
#include "mk_scenario.h"
#include "mk_test.h"
#include "mk_wire.h"
#include "mk_workload.h"

/* ---- helpers --------------------------------------------------------------- */

static mk_scenario *parse_len(const char *text, size_t len)
{
    mk_scenario *sc = NULL;
    mk_scenario_error e;
    int rc = mk_scenario_parse("t.scn", text, len, &sc, &e);
    if (rc) {
        char buf[1024];
        mk_scenario_error_format(&e, buf, sizeof buf);
        ck_abort_msg("unexpected parse error: %s", buf);
    }
    ck_assert_ptr_nonnull(sc);
    return sc;
}

static mk_scenario *parse_ok(const char *text)
{
    return parse_len(text, strlen(text));
}

/* Parses text that must fail with MK_EUSAGE at (line, col) with a message
 * containing want. */
static void parse_bad_len(const char *text, size_t len, uint32_t line, uint32_t col,
                          const char *want)
{
    mk_scenario *sc = (mk_scenario *)1;
    mk_scenario_error e;
    int rc = mk_scenario_parse("t.scn", text, len, &sc, &e);
    ck_assert_msg(rc == MK_EUSAGE, "expected MK_EUSAGE for \"%s\", got %d", text, rc);
    ck_assert_ptr_null(sc);
    ck_assert_int_eq(e.code, MK_EUSAGE);
    ck_assert_msg(e.line == line && e.col == col,
                  "\"%s\": expected %u:%u, got %u:%u (%s)", text, line, col, e.line, e.col,
                  e.msg);
    ck_assert_msg(strstr(e.msg, want) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", text,
                  e.msg, want);
}

static void parse_bad(const char *text, uint32_t line, uint32_t col, const char *want)
{
    parse_bad_len(text, strlen(text), line, col, want);
}

/* The canonical form of sc as a string (caller frees). */
static char *print_str(const mk_scenario *sc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(mk_scenario_print(f, sc), 0);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

/* The round-trip property: the canonical form parses back to an equal
 * scenario, and printing that gives the same text again. */
static void check_round_trip(const mk_scenario *sc)
{
    char *text = print_str(sc);
    mk_scenario *back = NULL;
    mk_scenario_error e;
    int rc = mk_scenario_parse("printed", text, strlen(text), &back, &e);
    ck_assert_msg(rc == 0, "canonical form does not parse: %u:%u %s\n%s", e.line, e.col,
                  e.msg, text);
    ck_assert_msg(mk_scenario_equal(sc, back), "round trip changed the scenario:\n%s", text);
    ck_assert_msg(mk_scenario_equal(back, sc), "equality is not symmetric:\n%s", text);
    char *again = print_str(back);
    ck_assert_str_eq(text, again);
    free(again);
    free(text);
    mk_scenario_free(back);
}

static const mk_scenario_step *step(const mk_scenario *sc, size_t i)
{
    const mk_scenario_step *st = mk_scenario_step_at(sc, i);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* ---- every statement ------------------------------------------------------- */

/* One scenario that uses every statement, every link kind, every event and
 * every expectation but out-of-sync (which needs sync mode), and the typed
 * values each one parses to. */
static const char every_statement[] =
    "# models: nothing real; it names every statement of fault/SCENARIOS.md once\n"
    "scenario every-statement\n"
    "volume blocks=1024 block-size=4096\n"
    "mode semi-sync\n"
    "seed 42\n"
    "transport pipe\n"
    "workload hot\n"
    "expect verify-every-cp\n"
    "write offset=0 length=4096\n"
    "write offset=100 length=5 fill=0xab\n"
    "write offset=8192 length=4096 seed=7\n"
    "writes 200\n"
    "cp\n"
    "cp every=50\n"
    "crash dest\n"
    "  restart dest   # indented, with a comment\n"
    "crash dest at=ref/dest/log/sync hit=3\n"
    "crash source after=ref:37/cp:3 restart=manual\n"
    "restart source\n"
    "fault ref/dest/log/write kind=enospc hit=2 count=forever prob=1/2 after=cp-begin:2\n"
    "fault ref/alloc/* kind=enomem\n"
    "link latency ms=20 jitter=5\n"
    "link bandwidth kbps=800 dir=to-dest\n"
    "link slicer bytes=7\n"
    "link limit_data bytes=0\n"
    "link reset_peer after=1000\n"
    "link reset_peer after=log-ack:5\n"
    "link timeout ms=0\n"
    "link drop prob=1/100 dir=to-source\n"
    "link duplicate prob=1/10\n"
    "link reorder window=4\n"
    "link corrupt prob=1/1000 after=cp-commit:1\n"
    "link truncate\n"
    "link partition frames=3\n"
    "link partition ms=250\n"
    "link clear\n"
    "crash dest after=data:2/cp:4\n"
    "crash dest after=cp-ack:1\n"
    "crash dest after=transfer:9\n"
    "crash dest after=write:10 restart=auto\n"
    "promote\n"
    "expect no-acked-write-lost\n"
    "expect mirror-equals cp=3\n"
    "expect mirror-equals cp=0\n"
    "expect error MK_ENOSPC\n"
    "expect exit 3\n";

START_TEST(test_s0_scenario_every_statement_parses)
{
    mk_scenario *sc = parse_ok(every_statement);
    const mk_scenario_config *c = mk_scenario_config_of(sc);
    const mk_scenario_step *st;
    size_t i = 0;

    ck_assert_str_eq(mk_scenario_name(sc), "every-statement");
    ck_assert_str_eq(mk_scenario_file(sc), "t.scn");
    ck_assert_uint_eq(c->has, MK_SCN_HAS_VOLUME | MK_SCN_HAS_MODE | MK_SCN_HAS_SEED |
                                  MK_SCN_HAS_TRANSPORT | MK_SCN_HAS_WORKLOAD);
    ck_assert_uint_eq(c->nblocks, 1024);
    ck_assert_uint_eq(c->block_size, 4096);
    ck_assert_int_eq(c->mode, MK_MODE_SEMI);
    ck_assert_str_eq(mk_mode_name(c->mode), "semi-sync");
    ck_assert_uint_eq(c->seed, 42);
    ck_assert_int_eq(c->transport, MK_T_PIPE);
    ck_assert_int_eq(c->workload, MK_WL_HOT);
    ck_assert_int_eq(mk_scenario_uses_schedule(sc), 0);

    st = step(sc, i++);
    ck_assert_int_eq(st->kind, MK_SCN_WRITE);
    ck_assert_uint_eq(st->line, 9);
    ck_assert_uint_eq(st->col, 1);
    ck_assert_uint_eq(st->write.offset, 0);
    ck_assert_uint_eq(st->write.length, 4096);
    ck_assert_int_eq(st->write.data, MK_SCN_DATA_RUN);
    st = step(sc, i++);
    ck_assert_uint_eq(st->write.offset, 100);
    ck_assert_uint_eq(st->write.length, 5);
    ck_assert_int_eq(st->write.data, MK_SCN_DATA_FILL);
    ck_assert_uint_eq(st->write.value, 0xab);
    st = step(sc, i++);
    ck_assert_int_eq(st->write.data, MK_SCN_DATA_SEED);
    ck_assert_uint_eq(st->write.value, 7);
    st = step(sc, i++);
    ck_assert_int_eq(st->kind, MK_SCN_WRITES);
    ck_assert_uint_eq(st->writes.count, 200);
    ck_assert_int_eq(step(sc, i++)->kind, MK_SCN_CP);
    st = step(sc, i++);
    ck_assert_int_eq(st->kind, MK_SCN_CP_EVERY);
    ck_assert_uint_eq(st->cp_every.every, 50);

    st = step(sc, i++);
    ck_assert_int_eq(st->kind, MK_SCN_CRASH);
    ck_assert_int_eq(st->crash.role, MK_SCN_DEST);
    ck_assert_int_eq(st->crash.trigger, MK_SCN_NOW);
    ck_assert_int_eq(st->crash.restart, MK_SCN_RESTART_MANUAL);
    st = step(sc, i++);
    ck_assert_int_eq(st->kind, MK_SCN_RESTART);
    ck_assert_int_eq(st->restart.role, MK_SCN_DEST);
    ck_assert_uint_eq(st->line, 16);
    ck_assert_uint_eq(st->col, 3);
    st = step(sc, i++);
    ck_assert_int_eq(st->crash.trigger, MK_SCN_AT_POINT);
    ck_assert_str_eq(st->crash.point, "ref/dest/log/sync");
    ck_assert_uint_eq(st->crash.hit, 3);
    ck_assert_uint_eq(st->point_col, 15);
    ck_assert_int_eq(st->crash.restart, MK_SCN_RESTART_AUTO);
    st = step(sc, i++);
    ck_assert_int_eq(st->crash.role, MK_SCN_SOURCE);
    ck_assert_int_eq(st->crash.trigger, MK_SCN_AFTER_EVENT);
    ck_assert_int_eq(st->crash.after.kind, MK_SCN_EV_REF);
    ck_assert_uint_eq(st->crash.after.n, 37);
    ck_assert_uint_eq(st->crash.after.cp, 3);
    ck_assert_int_eq(st->crash.restart, MK_SCN_RESTART_MANUAL);
    st = step(sc, i++);
    ck_assert_int_eq(st->restart.role, MK_SCN_SOURCE);

    st = step(sc, i++);
    ck_assert_int_eq(st->kind, MK_SCN_FAULT);
    ck_assert_str_eq(st->fault.point, "ref/dest/log/write");
    ck_assert_uint_eq(st->point_col, 7);
    ck_assert_int_eq(st->fault.kind, MK_SCN_F_ENOSPC);
    ck_assert_uint_eq(st->fault.hit, 2);
    ck_assert_uint_eq(st->fault.count, MK_SCN_FOREVER);
    ck_assert_uint_eq(st->fault.prob.num, 1);
    ck_assert_uint_eq(st->fault.prob.den, 2);
    ck_assert_int_eq(st->fault.after.kind, MK_SCN_EV_CP_BEGIN);
    ck_assert_uint_eq(st->fault.after.n, 2);
    st = step(sc, i++);
    ck_assert_str_eq(st->fault.point, "ref/alloc/*");
    ck_assert_int_eq(st->fault.kind, MK_SCN_F_ENOMEM);
    ck_assert_uint_eq(st->fault.hit, 1);
    ck_assert_uint_eq(st->fault.count, 1);
    ck_assert_uint_eq(st->fault.prob.num, 1);
    ck_assert_uint_eq(st->fault.prob.den, 1);
    ck_assert_int_eq(st->fault.after.kind, MK_SCN_EV_NONE);

    st = step(sc, i++);
    ck_assert_int_eq(st->kind, MK_SCN_LINK);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_LATENCY);
    ck_assert_uint_eq(st->link.ms, 20);
    ck_assert_uint_eq(st->link.jitter, 5);
    ck_assert_int_eq(st->link.dir, MK_SCN_DIR_BOTH);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_BANDWIDTH);
    ck_assert_uint_eq(st->link.kbps, 800);
    ck_assert_int_eq(st->link.dir, MK_SCN_DIR_TO_DEST);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_SLICER);
    ck_assert_uint_eq(st->link.bytes, 7);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_LIMIT_DATA);
    ck_assert_uint_eq(st->link.bytes, 0);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_RESET_PEER);
    ck_assert_int_eq(st->link.after.kind, MK_SCN_EV_BYTES);
    ck_assert_uint_eq(st->link.after.n, 1000);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.after.kind, MK_SCN_EV_LOG_ACK);
    ck_assert_uint_eq(st->link.after.n, 5);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_TIMEOUT);
    ck_assert_uint_eq(st->link.ms, 0);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_DROP);
    ck_assert_uint_eq(st->link.prob.num, 1);
    ck_assert_uint_eq(st->link.prob.den, 100);
    ck_assert_int_eq(st->link.dir, MK_SCN_DIR_TO_SOURCE);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_DUPLICATE);
    ck_assert_uint_eq(st->link.prob.den, 10);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_REORDER);
    ck_assert_uint_eq(st->link.window, 4);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_CORRUPT);
    ck_assert_uint_eq(st->link.prob.den, 1000);
    ck_assert_int_eq(st->link.after.kind, MK_SCN_EV_CP_COMMIT);
    ck_assert_uint_eq(st->link.after.n, 1);
    ck_assert_int_eq(step(sc, i++)->link.kind, MK_SCN_L_TRUNCATE);
    st = step(sc, i++);
    ck_assert_int_eq(st->link.kind, MK_SCN_L_PARTITION);
    ck_assert_uint_eq(st->link.frames, 3);
    ck_assert_uint_eq(st->link.ms, 0);
    st = step(sc, i++);
    ck_assert_uint_eq(st->link.frames, 0);
    ck_assert_uint_eq(st->link.ms, 250);
    ck_assert_int_eq(step(sc, i++)->link.kind, MK_SCN_L_CLEAR);

    st = step(sc, i++);
    ck_assert_int_eq(st->crash.after.kind, MK_SCN_EV_DATA);
    ck_assert_uint_eq(st->crash.after.n, 2);
    ck_assert_uint_eq(st->crash.after.cp, 4);
    ck_assert_int_eq(step(sc, i++)->crash.after.kind, MK_SCN_EV_CP_ACK);
    ck_assert_int_eq(step(sc, i++)->crash.after.kind, MK_SCN_EV_TRANSFER);
    st = step(sc, i++);
    ck_assert_int_eq(st->crash.after.kind, MK_SCN_EV_WRITE);
    ck_assert_uint_eq(st->crash.after.n, 10);
    ck_assert_int_eq(st->crash.restart, MK_SCN_RESTART_AUTO);
    ck_assert_int_eq(step(sc, i++)->kind, MK_SCN_PROMOTE);
    ck_assert_uint_eq(mk_scenario_nsteps(sc), i);
    ck_assert_ptr_null(mk_scenario_step_at(sc, i));

    /* Expectations keep their order, wherever they stand in the text. */
    ck_assert_uint_eq(mk_scenario_nexpects(sc), 6);
    const mk_scenario_expect *e = mk_scenario_expect_at(sc, 0);
    ck_assert_int_eq(e->kind, MK_SCN_EXPECT_VERIFY_EVERY_CP);
    ck_assert_uint_eq(e->line, 8);
    ck_assert_int_eq(mk_scenario_expect_at(sc, 1)->kind, MK_SCN_EXPECT_NO_ACKED_WRITE_LOST);
    e = mk_scenario_expect_at(sc, 2);
    ck_assert_int_eq(e->kind, MK_SCN_EXPECT_MIRROR_EQUALS);
    ck_assert_uint_eq(e->cp, 3);
    ck_assert_uint_eq(mk_scenario_expect_at(sc, 3)->cp, 0);
    e = mk_scenario_expect_at(sc, 4);
    ck_assert_int_eq(e->kind, MK_SCN_EXPECT_ERROR);
    ck_assert_int_eq(e->err, MK_ENOSPC);
    e = mk_scenario_expect_at(sc, 5);
    ck_assert_int_eq(e->kind, MK_SCN_EXPECT_EXIT);
    ck_assert_int_eq(e->exit_code, 3);
    ck_assert_ptr_null(mk_scenario_expect_at(sc, 6));

    check_round_trip(sc);
    mk_scenario_free(sc);
}
END_TEST

/* A scenario without write, writes or cp steps runs the automatic
 * schedule after its steps; its configuration maps onto mk_pair_config. */
START_TEST(test_s0_scenario_schedule_and_apply)
{
    mk_scenario *sc = parse_ok("# models: destination disk full during a CP\n"
                               "volume blocks=256 block-size=512\n"
                               "mode sync\n"
                               "seed 0x10\n"
                               "transport tcp\n"
                               "workload mixed writes=100\n"
                               "cps 5\n"
                               "fault ref/dest/log/write kind=torn hit=40\n"
                               "expect out-of-sync\n"
                               "expect verify-every-cp\n");
    ck_assert_int_eq(mk_scenario_uses_schedule(sc), 1);
    ck_assert_str_eq(mk_scenario_name(sc), "");
    mk_pair_config cfg;
    mk_pair_defaults(&cfg);
    mk_scenario_apply(sc, &cfg);
    ck_assert_uint_eq(cfg.nblocks, 256);
    ck_assert_uint_eq(cfg.block_size, 512);
    ck_assert_int_eq(cfg.mode, MK_MODE_SYNC);
    ck_assert_uint_eq(cfg.seed, 16);
    ck_assert_int_eq(cfg.transport, MK_T_TCP);
    ck_assert_int_eq(cfg.workload, MK_WL_MIXED);
    ck_assert_uint_eq(cfg.writes_per_cp, 100);
    ck_assert_uint_eq(cfg.cps, 5);
    ck_assert_int_eq(mk_scenario_expect_at(sc, 0)->kind, MK_SCN_EXPECT_OUT_OF_SYNC);
    check_round_trip(sc);
    mk_scenario_free(sc);

    /* What the scenario leaves out keeps the runner's defaults. */
    sc = parse_ok("volume blocks=64\nexpect verify-every-cp\n");
    mk_pair_defaults(&cfg);
    mk_scenario_apply(sc, &cfg);
    ck_assert_uint_eq(cfg.nblocks, 64);
    ck_assert_uint_eq(cfg.block_size, 4096);
    ck_assert_int_eq(cfg.mode, MK_MODE_SYNC);
    ck_assert_uint_eq(cfg.cps, 10);
    ck_assert_uint_eq(cfg.writes_per_cp, 1000);
    mk_scenario_free(sc);

    /* A workload without writes= is allowed next to explicit steps: it is
     * the kind of write the 'writes' step makes. */
    sc = parse_ok("workload partial\nwrites 10\ncp\n");
    ck_assert_int_eq(mk_scenario_uses_schedule(sc), 0);
    mk_scenario_free(sc);
    sc = parse_ok("cp every=0\n");
    ck_assert_int_eq(mk_scenario_uses_schedule(sc), 0);
    mk_scenario_free(sc);
}
END_TEST

/* ---- errors ---------------------------------------------------------------- */

/* The whole message, as a runner prints it: FILE:LINE:COL, the error name
 * and what was expected (the example of the issue, at line 7 column 12). */
START_TEST(test_s0_scenario_error_format_exact)
{
    static const char text[] = "scenario x\n"
                               "volume blocks=64\n"
                               "\n"
                               "# a comment\n"
                               "writes 10\n"
                               "cp\n"
                               "      link latencyy ms=5\n";
    mk_scenario *sc = (mk_scenario *)1;
    mk_scenario_error e;
    char buf[1024];
    ck_assert_int_eq(mk_scenario_parse("x.scn", text, strlen(text), &sc, &e), MK_EUSAGE);
    ck_assert_ptr_null(sc);
    mk_scenario_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "x.scn:7:12: MK_EUSAGE: unknown link kind 'latencyy' (expected "
                          "latency, bandwidth, slicer, limit_data, reset_peer, timeout, "
                          "drop, duplicate, reorder, corrupt, truncate, partition, clear)");

    /* A NULL name is "<input>"; a NULL error pointer is allowed. */
    ck_assert_int_eq(mk_scenario_parse(NULL, "bogus", 5, &sc, &e), MK_EUSAGE);
    mk_scenario_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "<input>:1:1: MK_EUSAGE: unknown statement 'bogus' (expected "
                          "scenario, volume, mode, seed, transport, workload, cps, write, "
                          "writes, cp, crash, restart, promote, fault, link, expect)");
    ck_assert_int_eq(mk_scenario_parse("n", "bogus", 5, &sc, NULL), MK_EUSAGE);
    ck_assert_ptr_null(sc);

    /* Unprintable bytes are escaped and long tokens cut in messages. */
    ck_assert_int_eq(mk_scenario_parse("q", "mode 'a\\b", 9, &sc, &e), MK_EUSAGE);
    ck_assert_str_eq(e.msg, "unknown mode '\\'a\\\\b' (expected sync, semi-sync, async)");
    ck_assert_int_eq(mk_scenario_parse("q", "mode aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                       55, &sc, &e), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(e.msg, "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'"));
}
END_TEST

/* One malformed input, the line and column of its error, and a piece of
 * the message that says what was expected. */
typedef struct bad_case {
    const char *text;
    uint32_t line, col;
    const char *msg;
} bad_case;

static const bad_case bad_cases[] = {
    /* statements */
    {"volum blocks=8", 1, 1, "unknown statement 'volum' (expected scenario, volume,"},
    {"Volume blocks=8", 1, 1, "keywords are lowercase"},
    {"  blocks=8", 1, 3, "unknown statement 'blocks=8'"},
    {"scenario", 1, 10, "missing argument: scenario NAME"},
    {"scenario a b", 1, 12, "unexpected argument 'b' after 'scenario NAME'"},
    {"scenario bad!name", 1, 13, "invalid character '!' in scenario name"},
    {"mode sync\nscenario late", 2, 1, "'scenario' must be the first statement"},
    {"expect verify-every-cp\nscenario\tlate", 2, 1, "'scenario' must be the first statement"},
    /* volume */
    {"volume", 1, 8, "missing required key 'blocks' for 'volume'"},
    {"volume blocks=0", 1, 15, "'blocks' must be at least 1, got 0"},
    {"volume blocks=-3", 1, 15, "'blocks' must not be negative, got '-3'"},
    {"volume blocks=+3", 1, 15, "expected a number for 'blocks', got '+3'"},
    {"volume blocks=12x", 1, 17, "unexpected 'x' after the number '12' for 'blocks'"},
    {"volume blocks=99999999999999999999", 1, 15, "is too large (max 18446744073709551615)"},
    {"volume blocks=0x", 1, 17, "expected hex digits after '0x'"},
    {"volume blocks=0xg", 1, 17, "expected hex digits after '0x'"},
    {"volume blocks=010", 1, 15, "leading zero in '010'"},
    {"volume blocks=8 block-size=1000", 1, 28, "power of two in 512..65536, got 1000"},
    {"volume blocks=8 block-size=256", 1, 28, "power of two in 512..65536, got 256"},
    {"volume blocks=8 block-size=131072", 1, 28, "power of two in 512..65536"},
    {"volume blocks=18446744073709551615", 1, 15, "exceeds 2^64-1 bytes"},
    {"volume blocks=8 blocks=9", 1, 17, "duplicate key 'blocks' (first at column 8)"},
    {"volume blocks=8 size=4096", 1, 17,
     "unknown key 'size' for 'volume' (expected blocks, block-size)"},
    {"volume blocks=", 1, 15, "missing value after 'blocks='"},
    {"volume =8", 1, 8, "missing key before '='"},
    {"volume 8", 1, 8, "unexpected argument '8' (expected key=value: blocks, block-size)"},
    {"volume\tblocks=8 \tfoo", 1, 18, "unexpected argument 'foo'"},
    /* mode, seed, transport, workload, cps */
    {"mode", 1, 6, "missing argument: mode followed by one of sync, semi-sync, async"},
    {"mode fast", 1, 6, "unknown mode 'fast' (expected sync, semi-sync, async)"},
    {"mode semi", 1, 6, "unknown mode 'semi'"},
    {"mode SYNC", 1, 6, "unknown mode 'SYNC'"},
    {"mode sync async", 1, 11, "unexpected argument 'async' after 'mode'"},
    {"mode sync\nmode async", 2, 1, "duplicate 'mode' statement (first at line 1)"},
    {"cps 3 # fine\ncps 4", 2, 1, "duplicate 'cps' statement (first at line 1)"},
    {"seed x", 1, 6, "expected a number for 'seed', got 'x'"},
    {"seed 1 2", 1, 8, "unexpected argument '2' after 'seed S'"},
    {"transport connect", 1, 11, "unknown transport 'connect' (expected sim, pipe, socketpair, tcp)"},
    {"workload zipf", 1, 10, "unknown workload 'zipf' (expected mixed, whole, partial, seq, hot)"},
    {"workload writes=5", 1, 10, "expected workload KIND"},
    {"workload mixed writes=0", 1, 23, "'writes' must be at least 1"},
    {"workload mixed count=5", 1, 16, "unknown key 'count' for 'workload' (expected writes)"},
    {"cps 0", 1, 5, "'cps' must be at least 1"},
    {"cps 4294967296", 1, 5, "'cps' must be at most 4294967295"},
    {"writes 10\nmode sync", 2, 1, "'mode' is configuration and must come before the first "
                                   "step (line 1)"},
    /* write, writes, cp */
    {"writes", 1, 8, "missing argument: writes N"},
    {"writes 0", 1, 8, "'writes' must be at least 1"},
    {"writes count=3", 1, 8, "expected writes N, got 'count=3'"},
    {"write offset=0", 1, 16, "missing required key 'length' for 'write'"},
    {"write length=1", 1, 16, "missing required key 'offset' for 'write'"},
    {"write offset=0 length=0", 1, 23, "'length' must be at least 1"},
    {"write offset=0 length=4294967296", 1, 23, "'length' must be at most 4294967295"},
    {"write offset=0 length=1 fill=256", 1, 30, "'fill' must be at most 255, got 256"},
    {"write offset=0 length=1 fill=1 seed=2", 1, 32, "'fill' and 'seed' cannot be used together"},
    {"volume blocks=2 block-size=512\nwrite offset=1024 length=1", 2, 14,
     "offset 1024 is outside the volume (1024 bytes)"},
    {"volume blocks=2 block-size=512\nwrite offset=1000 length=25", 2, 26,
     "a write of 25 bytes at offset 1000 ends past the volume (1024 bytes)"},
    {"cp now", 1, 4, "unexpected argument 'now' (expected key=value: every)"},
    {"cp every=x", 1, 10, "expected a number for 'every'"},
    {"cps 3\nwrites 5", 1, 1, "'cps' sets the automatic schedule, which does not run in a "
                              "scenario with its own 'writes' step (line 2)"},
    {"workload seq writes=10\n\ncp", 1, 21, "with its own 'cp' step (line 3)"},
    /* crash, restart, promote */
    {"crash", 1, 7, "missing argument: crash dest|source"},
    {"crash both", 1, 7, "unknown role 'both' (expected dest, source)"},
    {"crash dest at=ref/dest/log/sync after=cp-commit:1", 1, 33,
     "'at' and 'after' cannot be used together"},
    {"crash dest hit=3", 1, 12, "'hit' counts hits of a fault point: it needs at=POINT"},
    {"crash dest at=Ref/dest", 1, 15, "invalid character 'R' in fault point name 'Ref/dest'"},
    {"crash dest at=ref//dest", 1, 19, "empty segment in fault point name 'ref//dest'"},
    {"crash dest after=cp-comit:2", 1, 18, "unknown event 'cp-comit' (expected cp-begin:K,"},
    {"crash dest after=cp-commit", 1, 27, "event 'cp-commit' needs a number: cp-commit:K"},
    {"crash dest after=ref", 1, 21, "event 'ref' needs a number: ref:N/cp:K"},
    {"crash dest after=cp-commit:0", 1, 28, "the event's number must be at least 1"},
    {"crash dest after=ref:37", 1, 24, "expected '/cp:K' after 'ref:37'"},
    {"crash dest after=ref:37/cq:3", 1, 24, "expected '/cp:K' after 'ref:37'"},
    {"crash dest after=ref:37/cp:x", 1, 28, "expected a number for the event's CP number"},
    {"crash dest after=data:1/cp:0", 1, 28, "the event's CP number must be at least 1"},
    {"crash dest after=cp-ack:3x", 1, 26, "unexpected 'x' after the number '3'"},
    {"crash dest restart=later", 1, 20, "unknown restart policy 'later' (expected auto, manual)"},
    {"crash dest\ncrash dest", 2, 1, "the dest may already be down (crash with restart=manual "
                                     "at line 1)"},
    {"restart dest", 1, 1, "'restart dest' needs an earlier 'crash dest'"},
    {"crash dest at=ref/x\nrestart dest", 2, 1, "needs an earlier 'crash dest'"},
    {"restart", 1, 9, "missing argument: restart dest|source"},
    {"crash dest\nrestart dest now", 2, 14, "unexpected argument 'now' after 'restart ROLE'"},
    {"promote\nwrites 1", 2, 1, "no step may follow 'promote' (line 1)"},
    {"promote now", 1, 9, "unexpected argument 'now' after 'promote'"},
    /* fault */
    {"fault ref/dest/log/write", 1, 26, "missing required key 'kind' for 'fault'"},
    {"fault ref/dest/log/write kind=eaccess", 1, 31,
     "unknown fault kind 'eaccess' (expected eio, enospc, short, torn, enomem)"},
    {"fault ref/dest/log/write kind=eio hit=0", 1, 39, "'hit' must be at least 1"},
    {"fault ref/dest/log/write kind=eio count=never", 1, 41, "expected a number for 'count'"},
    {"fault ref/dest/log/write kind=eio count=0", 1, 41, "'count' must be at least 1"},
    {"fault ref/dest/log/write kind=eio prob=1/0", 1, 42, "probability denominator must not be 0"},
    {"fault ref/dest/log/write kind=eio prob=3/2", 1, 40, "probability '3/2' is greater than 1"},
    {"fault ref/dest/log/write kind=eio prob=0.5", 1, 40, "expected a probability P/Q for 'prob'"},
    {"fault ref/dest/log/write kind=eio prob=-1/2", 1, 40, "must not be negative"},
    {"fault ref/dest/log/write kind=eio prob=1/2x", 1, 43, "unexpected 'x' after the number '2'"},
    {"fault ref/dest/log/write kind=eio after=1000", 1, 41,
     "unknown event '1000' (expected cp-begin:K"},
    {"fault ref/dest/log/write kind=eio kind=eio", 1, 35, "duplicate key 'kind' (first at column 26)"},
    {"fault /ref kind=eio", 1, 7, "empty segment in fault point name '/ref'"},
    {"fault ref/dest/ kind=eio", 1, 16, "empty segment in fault point name 'ref/dest/'"},
    {"fault ref/*/log kind=eio", 1, 11, "invalid character '*' in fault point name"},
    {"fault kind=eio", 1, 7, "expected fault POINT kind="},
    {"fault ref/dest/log/write_with_a_very_long_name_that_goes_on_and_on_and_on kind=eio", 1, 7,
     "is longer than 63 bytes"},
    /* link */
    {"link", 1, 6, "missing argument: link KIND"},
    {"link latencyy ms=3", 1, 6, "unknown link kind 'latencyy' (expected latency, bandwidth,"},
    {"link latency", 1, 14, "missing required key 'ms' for 'link latency' (link latency ms=N)"},
    {"link latency ms=10 kbps=5", 1, 20,
     "unknown key 'kbps' for 'link latency' (expected ms, jitter, dir, after)"},
    {"link bandwidth kbps=0", 1, 21, "'kbps' must be at least 1"},
    {"link slicer bytes=0", 1, 19, "'bytes' must be at least 1"},
    {"link reorder window=1", 1, 21, "'window' must be at least 2"},
    {"link drop", 1, 11, "missing required key 'prob' for 'link drop' (link drop prob=P/Q)"},
    {"link drop prob=1/0", 1, 18, "probability denominator must not be 0"},
    {"link duplicate prob=2/1", 1, 21, "is greater than 1"},
    {"link partition", 1, 16, "'link partition' needs frames=N or ms=N"},
    {"link partition frames=2 ms=5", 1, 25, "'frames' and 'ms' cannot be used together"},
    {"link partition ms=0", 1, 19, "'ms' must be at least 1"},
    {"link clear dir=both", 1, 12, "unexpected argument 'dir=both' ('link clear' takes none)"},
    {"link drop prob=1/2 dir=up", 1, 24,
     "unknown link direction 'up' (expected both, to-dest, to-source)"},
    {"link reset_peer after=0", 1, 23, "'after' (bytes) must be at least 1"},
    {"link reset_peer after=rst", 1, 23, "(expected a byte count, cp-begin:K,"},
    {"link reset_peer dir=to-dest", 1, 17,
     "unknown key 'dir' for 'link reset_peer' (expected after)"},
    {"link latency ms=5 after=12", 1, 25, "unknown event '12'"},
    /* expect */
    {"expect", 1, 8, "missing argument: expect followed by verify-every-cp"},
    {"expect nothing", 1, 8, "unknown expectation 'nothing' (expected verify-every-cp,"},
    {"expect error", 1, 14, "missing argument: expect error MK_NAME"},
    {"expect error MK_EWHATEVER", 1, 14, "unknown error name 'MK_EWHATEVER'"},
    {"expect error EIO", 1, 14, "unknown error name 'EIO'"},
    {"expect error MK_OK", 1, 14, "unknown error name 'MK_OK'"},
    {"expect error MK_EIO extra", 1, 21, "unexpected argument 'extra' after 'expect error MK_NAME'"},
    {"expect exit 256", 1, 13, "the exit code must be at most 255"},
    {"expect exit", 1, 13, "missing argument: expect exit CODE"},
    {"expect mirror-equals", 1, 22, "missing required key 'cp' for 'expect mirror-equals'"},
    {"expect mirror-equals cp=1\nexpect mirror-equals cp=1", 2, 1,
     "duplicate 'expect mirror-equals cp=1' (first at line 1)"},
    {"expect verify-every-cp\n\nexpect verify-every-cp", 3, 1,
     "duplicate 'expect verify-every-cp' (first at line 1)"},
    {"expect error MK_EIO\nexpect error MK_ENOSPC", 2, 1, "duplicate 'expect error'"},
    {"expect verify-every-cp now", 1, 24, "unexpected argument 'now' after 'verify-every-cp'"},
    {"mode async\nexpect out-of-sync", 2, 8, "'expect out-of-sync' needs sync mode (SPEC.md "
                                             "8.3), but line 1 sets mode async"},
    /* bytes and lines */
    {"cp\r", 1, 3, "carriage return not followed by a newline"},
    {"cp\rwrites 1\n", 1, 3, "carriage return not followed by a newline"},
    {"# ok\r\ncp\r\nbogus\r\n", 3, 1, "unknown statement 'bogus'"},
    {"cp # ok\ncp\x01", 2, 3, "invalid byte 0x01"},
    {"write offset=0 length=1 fill=\xc3\xa9", 1, 30, "invalid byte 0xc3"},
    {"cp\x0b", 1, 3, "invalid byte 0x0b"},
};

START_TEST(test_s0_scenario_malformed_lines)
{
    size_t n = sizeof bad_cases / sizeof bad_cases[0];
    ck_assert_uint_ge(n, 60);
    for (size_t i = 0; i < n; i++)
        parse_bad(bad_cases[i].text, bad_cases[i].line, bad_cases[i].col, bad_cases[i].msg);
}
END_TEST

/* NUL bytes (anywhere, comments included), line length, CR/LF handling,
 * tabs and comments: the lexical rules of SCENARIOS.md. */
START_TEST(test_s0_scenario_lexical_limits)
{
    static char buf[MK_SCN_LINE_MAX + 64];
    mk_scenario *sc;

    parse_bad_len("cp\0", 3, 1, 3, "NUL byte in input");
    parse_bad_len("cp\n# comment \0 here\n", 20, 2, 11, "NUL byte in input");
    parse_bad_len("\0", 1, 1, 1, "NUL byte in input");

    /* A line of exactly MK_SCN_LINE_MAX bytes is fine, with LF or CRLF or
     * at the end of the input; one byte more is refused at that byte. */
    memset(buf, ' ', MK_SCN_LINE_MAX);
    memcpy(buf, "cp #", 4);
    sc = parse_len(buf, MK_SCN_LINE_MAX);
    ck_assert_uint_eq(mk_scenario_nsteps(sc), 1);
    mk_scenario_free(sc);
    memcpy(buf + MK_SCN_LINE_MAX, "\r\ncp\n", 5);
    sc = parse_len(buf, MK_SCN_LINE_MAX + 5);
    ck_assert_uint_eq(mk_scenario_nsteps(sc), 2);
    mk_scenario_free(sc);
    memcpy(buf + MK_SCN_LINE_MAX, "x\ncp\n", 5);
    parse_bad_len(buf, MK_SCN_LINE_MAX + 5, 1, MK_SCN_LINE_MAX + 1, "line is longer than 4096");
    /* The first problem of a line, in column order, is the one reported. */
    buf[10] = '\0';
    parse_bad_len(buf, MK_SCN_LINE_MAX + 5, 1, 11, "NUL byte");

    /* Empty input, blank lines and comments only, no final newline. */
    sc = parse_len("", 0);
    ck_assert_uint_eq(mk_scenario_nsteps(sc), 0);
    ck_assert_int_eq(mk_scenario_uses_schedule(sc), 1);
    mk_scenario_free(sc);
    sc = parse_ok("\n\n   \t\n# only a comment — with UTF-8 and \x01 in it\n");
    ck_assert_uint_eq(mk_scenario_nsteps(sc) + mk_scenario_nexpects(sc), 0);
    mk_scenario_free(sc);
    sc = parse_ok("\tcp\t\t# tabs are blanks\r\nwrites 3#comment touching a token");
    ck_assert_uint_eq(mk_scenario_nsteps(sc), 2);
    ck_assert_uint_eq(step(sc, 0)->col, 2);
    ck_assert_uint_eq(step(sc, 1)->writes.count, 3);
    ck_assert_uint_eq(step(sc, 1)->line, 2);
    mk_scenario_free(sc);

    /* The text need not end in NUL: the parser stops at len. */
    sc = parse_len("writes 12345", 8);
    ck_assert_uint_eq(step(sc, 0)->writes.count, 1);
    mk_scenario_free(sc);

    /* Numbers: hex, zero, the largest u64. */
    sc = parse_ok("seed 18446744073709551615\nvolume blocks=0x10 block-size=0x200\n"
                  "cp every=0\n");
    ck_assert_uint_eq(mk_scenario_config_of(sc)->seed, UINT64_MAX);
    ck_assert_uint_eq(mk_scenario_config_of(sc)->nblocks, 16);
    ck_assert_uint_eq(mk_scenario_config_of(sc)->block_size, 512);
    ck_assert_uint_eq(step(sc, 0)->cp_every.every, 0);
    mk_scenario_free(sc);
}
END_TEST

/* ---- round trip ------------------------------------------------------------ */

static const char *const round_trip_cases[] = {
    every_statement,
    "",
    "scenario only-a-name\n",
    "volume blocks=0x40 block-size=512\r\nmode async\r\nseed 0\r\ntransport sim\r\n"
    "workload whole writes=3\r\ncps 2\r\n",
    "mode sync\nexpect out-of-sync\nexpect no-acked-write-lost\n",
    "# models: link cut between log ack and CP commit\n"
    "volume blocks=128\nmode sync\nworkload whole\n"
    "link reset_peer after=log-ack:3\nwrites 20\ncp\n"
    "expect verify-every-cp\nexpect error MK_ECLOSED\n",
    "crash dest\nrestart dest\ncrash dest restart=auto\ncrash source at=ref/link/send "
    "restart=manual\nrestart source\ncrash dest after=cp-commit:2 restart=manual\n",
    "fault ref/dest/log/write kind=short hit=1 count=1 prob=1/1\n"
    "fault ref/dest/log/sync kind=eio prob=2/4 count=18446744073709551614\n"
    "fault * kind=enomem prob=0/1\n",
    "link partition ms=1 dir=to-source after=data:1/cp:1\nlink drop prob=0/5\n"
    "link latency ms=0 jitter=0\nlink truncate dir=to-dest after=transfer:1\n",
    "volume blocks=1 block-size=65536\nwrite offset=65535 length=1 fill=0\n"
    "write offset=0 length=65536 seed=18446744073709551615\nexpect exit 0\n"
    "expect mirror-equals cp=18446744073709551615\n",
};

START_TEST(test_s0_scenario_round_trip)
{
    for (size_t i = 0; i < sizeof round_trip_cases / sizeof round_trip_cases[0]; i++) {
        mk_scenario *sc = parse_ok(round_trip_cases[i]);
        check_round_trip(sc);
        mk_scenario_free(sc);
    }
    /* The canonical form of a known scenario, pinned: defaults left out,
     * configuration first, expectations last. */
    mk_scenario *sc = parse_ok("scenario pinned\nexpect verify-every-cp\nvolume blocks=8\n"
                  "fault ref/x kind=eio hit=1 count=1 prob=1/1\n"
                  "crash dest after=cp-ack:2 restart=auto\nlink latency ms=5 jitter=0 dir=both\n"
                  "write offset=0 length=1 fill=255\n");
    char *text = print_str(sc);
    ck_assert_str_eq(text, "scenario pinned\n"
                           "volume blocks=8 block-size=4096\n"
                           "fault ref/x kind=eio\n"
                           "crash dest after=cp-ack:2\n"
                           "link latency ms=5\n"
                           "write offset=0 length=1 fill=0xff\n"
                           "expect verify-every-cp\n");
    free(text);
    mk_scenario_free(sc);

    /* Different scenarios are not equal. */
    mk_scenario *a = parse_ok("link drop prob=1/2\n"), *b = parse_ok("link drop prob=2/4\n");
    ck_assert_int_eq(mk_scenario_equal(a, b), 0);
    mk_scenario_free(b);
    b = parse_ok("link drop prob=1/2 dir=to-dest\n");
    ck_assert_int_eq(mk_scenario_equal(a, b), 0);
    mk_scenario_free(b);
    b = parse_ok("scenario x\nlink drop prob=1/2\n");
    ck_assert_int_eq(mk_scenario_equal(a, b), 0);
    mk_scenario_free(b);
    b = parse_ok("  link   drop\tprob=1/2   # same run, other spelling\n");
    ck_assert_int_eq(mk_scenario_equal(a, b), 1);
    mk_scenario_free(b);
    mk_scenario_free(a);
}
END_TEST

/* ---- random input ---------------------------------------------------------- */

/* Words the generator draws from, so that random lines reach deep into the
 * handlers instead of stopping at "unknown statement". */
static const char *const gen_keywords[] = {
    "scenario", "volume", "mode", "seed",    "transport", "workload", "cps",  "write",
    "writes",   "cp",     "crash", "restart", "promote",  "fault",    "link", "expect",
    "Volume",   "cpp",    "",      "#"};
static const char *const gen_words[] = {
    "dest",      "source",     "sync",        "semi-sync",   "async",     "sim",
    "pipe",      "tcp",        "mixed",       "hot",         "latency",   "bandwidth",
    "slicer",    "limit_data", "reset_peer",  "timeout",     "drop",      "duplicate",
    "reorder",   "corrupt",    "truncate",    "partition",   "clear",     "verify-every-cp",
    "no-acked-write-lost",     "mirror-equals", "error",     "out-of-sync", "exit",
    "MK_EIO",    "MK_ENOSPC",  "MK_NOPE",     "ref/dest/log/write", "ref/*", "a//b",
    "0",         "1",          "7",           "255",         "256",       "0x10",
    "010",       "-1",         "18446744073709551615",       "18446744073709551616", "x"};
static const char *const gen_keys[] = {
    "blocks", "block-size", "writes", "offset", "length", "fill",  "seed",  "every",
    "at",     "hit",        "after",  "restart", "kind",  "count", "prob",  "ms",
    "jitter", "kbps",       "bytes",  "window",  "frames", "dir",  "cp",    "bogus"};
static const char *const gen_values[] = {
    "0",           "1",          "3",         "512",       "4096",       "1000",
    "0x0",         "0xff",       "-2",        "1x",        "",           "99999999999999999999",
    "1/2",         "0/1",        "3/2",       "1/0",       "1/",         "/2",
    "cp-begin:1",  "cp-commit:2", "cp-ack:3", "ref:37/cp:3", "data:1/cp:2", "ref:1",
    "log-ack:5",   "transfer:9", "write:4",   "cp-nope:1", "eio",        "enospc",
    "short",       "torn",       "enomem",    "auto",      "manual",     "to-dest",
    "to-source",   "both",       "forever",   "ref/dest/log/sync",       "Ref/x", "a/"};

static void gen_append(char *buf, size_t *n, size_t cap, const char *s)
{
    size_t l = strlen(s);
    if (*n + l < cap) {
        memcpy(buf + *n, s, l);
        *n += l;
    }
}

#define PICK(r, a) (a)[mk_prng_below((r), sizeof(a) / sizeof((a)[0]))]

/* Valid statements that the generator mutates: near-misses of real input
 * are where a parser's mistakes hide. */
static const char *const gen_templates[] = {
    "scenario t-1",          "volume blocks=1024 block-size=4096", "mode semi-sync",
    "seed 42",               "transport pipe",           "workload hot writes=10",
    "cps 3",                 "write offset=100 length=5 fill=0xab",
    "write offset=0 length=4096 seed=7",                 "writes 200",
    "cp",                    "cp every=50",              "crash dest",
    "crash dest at=ref/dest/log/sync hit=3",             "crash source after=ref:37/cp:3",
    "fault ref/dest/log/write kind=enospc hit=2 count=forever prob=1/2 after=cp-begin:2",
    "link latency ms=20 jitter=5",                       "link bandwidth kbps=800 dir=to-dest",
    "link reset_peer after=1000",                        "link partition frames=3",
    "link drop prob=1/100 dir=to-source",                "link reorder window=4",
    "expect mirror-equals cp=3",                         "expect error MK_ENOSPC",
    "expect exit 3",         "expect verify-every-cp",   "promote"};

/* A template with 0..2 mutations: a byte replaced by a printable one, a
 * byte deleted, or a value swapped for a random one. */
static size_t gen_mutant(mk_prng *r, char *buf, size_t cap)
{
    size_t n = 0;
    gen_append(buf, &n, cap, PICK(r, gen_templates));
    int muts = (int)mk_prng_below(r, 3);
    for (int m = 0; m < muts && n > 0; m++) {
        size_t at = (size_t)mk_prng_below(r, n);
        switch (mk_prng_below(r, 3)) {
        case 0:
            buf[at] = (char)(0x20 + mk_prng_below(r, 0x5f));
            break;
        case 1:
            memmove(buf + at, buf + at + 1, n - at - 1);
            n--;
            break;
        default: {
            char *eq = memchr(buf, '=', n);
            if (eq) {
                n = (size_t)(eq - buf) + 1;
                gen_append(buf, &n, cap, PICK(r, gen_values));
            }
        }
        }
    }
    return n;
}

/* One random line: raw bytes (NUL, CR, high bytes included), a mutated
 * valid statement, or a keyword followed by random words and key=value
 * pairs. */
static size_t gen_line(mk_prng *r, char *buf, size_t cap)
{
    size_t n = 0;
    uint64_t mode = mk_prng_below(r, 8);
    if (mode < 3)
        return gen_mutant(r, buf, cap);
    if (mode == 3) {
        size_t len = (size_t)mk_prng_below(r, 60);
        for (size_t i = 0; i < len && n < cap; i++)
            buf[n++] = (char)mk_prng_below(r, 256);
        return n;
    }
    static const char *const seps[] = {" ", " ", " ", "\t", "  "};
    if (mk_prng_below(r, 8) == 0)
        gen_append(buf, &n, cap, PICK(r, seps));
    gen_append(buf, &n, cap, PICK(r, gen_keywords));
    int nargs = (int)mk_prng_below(r, 6);
    for (int i = 0; i < nargs; i++) {
        gen_append(buf, &n, cap, PICK(r, seps));
        if (mk_prng_below(r, 2)) {
            gen_append(buf, &n, cap, PICK(r, gen_words));
        } else {
            gen_append(buf, &n, cap, PICK(r, gen_keys));
            gen_append(buf, &n, cap, "=");
            gen_append(buf, &n, cap, PICK(r, gen_values));
        }
    }
    switch (mk_prng_below(r, 16)) {
    case 0: gen_append(buf, &n, cap, " # comment"); break;
    case 1: gen_append(buf, &n, cap, "\r"); break;
    case 2: if (n < cap) buf[n++] = (char)mk_prng_below(r, 256); break;
    default: break;
    }
    return n;
}

static void check_any_outcome(const char *text, size_t len, int *ok, int *nontrivial)
{
    mk_scenario *sc = NULL;
    mk_scenario_error e;
    int rc = mk_scenario_parse("g.scn", text, len, &sc, &e);
    if (rc == 0) {
        ck_assert_ptr_nonnull(sc);
        check_round_trip(sc);
        if (mk_scenario_nsteps(sc) || mk_scenario_nexpects(sc) ||
            mk_scenario_config_of(sc)->has || mk_scenario_name(sc)[0])
            (*nontrivial)++;
        mk_scenario_free(sc);
        (*ok)++;
        return;
    }
    ck_assert_int_eq(rc, MK_EUSAGE);
    ck_assert_ptr_null(sc);
    ck_assert_uint_ge(e.line, 1);
    ck_assert_uint_ge(e.col, 1);
    /* A column is inside its line or just past its last token. */
    ck_assert_uint_le(e.col, len + 2);
    ck_assert_uint_gt(strlen(e.msg), 0);
    char buf[1024];
    mk_scenario_error_format(&e, buf, sizeof buf);
    ck_assert_int_eq(strncmp(buf, "g.scn:", 6), 0);
}

/* 10,000 seeded random lines, each parsed alone, then joined into
 * documents of up to 12 lines to reach the rules that span lines: never a
 * crash, always OK (and then the round trip holds) or an error with a
 * position. */
START_TEST(test_s0_scenario_random_lines)
{
    mk_prng r;
    static char line[256], doc[12 * 256 + 16];
    size_t doclen = 0, docn = 0, doclines;
    int ok = 0, docok = 0, nontrivial = 0, docnontrivial = 0;
    mk_prng_seed(&r, 20261125);
    doclines = 1 + (size_t)mk_prng_below(&r, 12);
    for (int i = 0; i < 10000; i++) {
        size_t n = gen_line(&r, line, sizeof line - 1);
        check_any_outcome(line, n, &ok, &nontrivial);
        memcpy(doc + doclen, line, n);
        doclen += n;
        doc[doclen++] = '\n';
        if (++docn == doclines) {
            check_any_outcome(doc, doclen, &docok, &docnontrivial);
            doclen = docn = 0;
            doclines = 1 + (size_t)mk_prng_below(&r, 12);
        }
    }
    /* The generator must reach valid statements, and documents of several
     * lines, or the round-trip half of this test would check nothing. */
    ck_assert_int_ge(nontrivial, 1500);
    ck_assert_int_ge(docnontrivial, 20);
    ck_assert_int_ge(ok, docok);
}
END_TEST

/* ---- files, fault points, building ----------------------------------------- */

START_TEST(test_s0_scenario_parse_file)
{
    char path[] = "/tmp/mk_scenario_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    static const char text[] = "scenario from-a-file\nwrites 3\ncp\nlink bogus\n";
    ck_assert_int_eq(write(fd, text, sizeof text - 1), (int)(sizeof text - 1));
    close(fd);

    mk_scenario *sc = (mk_scenario *)1;
    mk_scenario_error e;
    char buf[1024], want[512];
    ck_assert_int_eq(mk_scenario_parse_file(path, &sc, &e), MK_EUSAGE);
    ck_assert_ptr_null(sc);
    mk_scenario_error_format(&e, buf, sizeof buf);
    snprintf(want, sizeof want, "%s:4:6: MK_EUSAGE: unknown link kind 'bogus'", path);
    ck_assert_int_eq(strncmp(buf, want, strlen(want)), 0);

    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("scenario from-a-file\nwrites 3\ncp\n", f);
    fclose(f);
    ck_assert_int_eq(mk_scenario_parse_file(path, &sc, &e), 0);
    ck_assert_str_eq(mk_scenario_name(sc), "from-a-file");
    ck_assert_str_eq(mk_scenario_file(sc), path);
    ck_assert_uint_eq(mk_scenario_nsteps(sc), 2);
    mk_scenario_free(sc);
    unlink(path);

    /* A missing file is MK_EINVAL (as for every file mirrorkit opens) and
     * has no position. */
    ck_assert_int_eq(mk_scenario_parse_file(path, &sc, &e), MK_EINVAL);
    ck_assert_ptr_null(sc);
    ck_assert_uint_eq(e.line, 0);
    mk_scenario_error_format(&e, buf, sizeof buf);
    snprintf(want, sizeof want, "%s: MK_EINVAL: cannot open: ", path);
    ck_assert_int_eq(strncmp(buf, want, strlen(want)), 0);
}
END_TEST

static int known_point(const char *point, void *ctx)
{
    (void)ctx;
    return strcmp(point, "ref/dest/log/write") == 0 || strcmp(point, "ref/dest/log/sync") == 0;
}

/* The parser takes any well-formed point name; the runner checks them
 * against its catalogue and still gets the exact position. */
START_TEST(test_s0_scenario_check_points)
{
    mk_scenario *sc = parse_ok("fault ref/dest/log/write kind=eio\n"
                               "crash dest at=ref/dest/log/sync\n"
                               "crash dest after=cp-ack:1\n"
                               "  crash   source at=ref/dest/log/fsync hit=2\n");
    mk_scenario_error e;
    char buf[512];
    ck_assert_int_eq(mk_scenario_check_points(sc, known_point, NULL, &e), MK_EUSAGE);
    mk_scenario_error_format(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "t.scn:4:21: MK_EUSAGE: unknown fault point 'ref/dest/log/fsync' "
                          "(see the catalogue of fault points)");
    mk_scenario_free(sc);
    sc = parse_ok("fault ref/dest/log/sync kind=eio\n");
    ck_assert_int_eq(mk_scenario_check_points(sc, known_point, NULL, &e), 0);
    mk_scenario_free(sc);
}
END_TEST

/* Building from parts is checked by the same rules as text. */
START_TEST(test_s0_scenario_build)
{
    mk_scenario_config cfg;
    mk_scenario_step steps[3];
    mk_scenario_expect ex[1];
    mk_scenario *sc = NULL, *want;
    mk_scenario_error e;

    memset(&cfg, 0, sizeof cfg);
    memset(steps, 0xa5, sizeof steps); /* builders leave garbage in unused fields */
    memset(ex, 0, sizeof ex);
    cfg.has = MK_SCN_HAS_VOLUME | MK_SCN_HAS_MODE;
    cfg.nblocks = 64;
    cfg.block_size = 4096;
    cfg.mode = MK_MODE_ASYNC;
    cfg.seed = 99; /* not in cfg.has: ignored */
    steps[0].kind = MK_SCN_WRITES;
    steps[0].writes.count = 10;
    steps[1].kind = MK_SCN_FAULT;
    snprintf(steps[1].fault.point, sizeof steps[1].fault.point, "ref/dest/log/write");
    steps[1].fault.kind = MK_SCN_F_TORN;
    steps[1].fault.hit = 2;
    steps[1].fault.count = 1;
    steps[1].fault.prob.num = steps[1].fault.prob.den = 1;
    memset(&steps[1].fault.after, 0, sizeof steps[1].fault.after);
    steps[2].kind = MK_SCN_CP;
    ex[0].kind = MK_SCN_EXPECT_ERROR;
    ex[0].err = MK_EIO;
    ck_assert_int_eq(mk_scenario_build("built", &cfg, steps, 3, ex, 1, &sc, &e), 0);
    want = parse_ok("scenario built\nvolume blocks=64\nmode async\nwrites 10\n"
                    "fault ref/dest/log/write kind=torn hit=2\ncp\nexpect error MK_EIO\n");
    ck_assert_int_eq(mk_scenario_equal(sc, want), 1);
    mk_scenario_free(sc);
    mk_scenario_free(want);

    /* An out-of-range value is refused with the rule's own message. */
    steps[0].kind = MK_SCN_WRITE;
    steps[0].write.offset = 64 * 4096;
    steps[0].write.length = 1;
    steps[0].write.data = MK_SCN_DATA_FILL;
    steps[0].write.value = 1;
    ck_assert_int_eq(mk_scenario_build(NULL, &cfg, steps, 1, NULL, 0, &sc, &e), MK_EUSAGE);
    ck_assert_ptr_null(sc);
    ck_assert_str_eq(e.file, "<built>");
    ck_assert_uint_eq(e.line, 3);
    ck_assert_ptr_nonnull(strstr(e.msg, "outside the volume"));
    steps[0].write.offset = 0;
    steps[0].write.value = 300;
    ck_assert_int_eq(mk_scenario_build(NULL, &cfg, steps, 1, NULL, 0, &sc, &e), MK_EUSAGE);
    ck_assert_ptr_nonnull(strstr(e.msg, "'fill' must be at most 255"));

    /* Kinds the language cannot spell, and unterminated points. */
    steps[0].kind = 99;
    ck_assert_int_eq(mk_scenario_build(NULL, NULL, steps, 1, NULL, 0, &sc, &e), MK_EINVAL);
    ck_assert_ptr_null(sc);
    memset(steps[1].fault.point, 'a', sizeof steps[1].fault.point);
    ck_assert_int_eq(mk_scenario_build(NULL, NULL, steps + 1, 1, NULL, 0, &sc, &e), MK_EINVAL);
    ex[0].kind = 0;
    ck_assert_int_eq(mk_scenario_build(NULL, NULL, NULL, 0, ex, 1, &sc, &e), MK_EINVAL);
}
END_TEST

START_TEST(test_s0_scenario_names)
{
    char buf[64];
    mk_scn_event ev = {MK_SCN_EV_REF, 37, 3};
    mk_scn_event_format(&ev, buf, sizeof buf);
    ck_assert_str_eq(buf, "ref:37/cp:3");
    ev.kind = MK_SCN_EV_BYTES;
    mk_scn_event_format(&ev, buf, sizeof buf);
    ck_assert_str_eq(buf, "37");
    ev.kind = MK_SCN_EV_NONE;
    mk_scn_event_format(&ev, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    ck_assert_str_eq(mk_scn_role_name(MK_SCN_SOURCE), "source");
    ck_assert_str_eq(mk_scn_fault_kind_name(MK_SCN_F_TORN), "torn");
    ck_assert_str_eq(mk_scn_link_kind_name(MK_SCN_L_LIMIT_DATA), "limit_data");
    ck_assert_str_eq(mk_scn_link_kind_name(MK_SCN_L_CLEAR), "clear");
    ck_assert_str_eq(mk_scn_step_name(MK_SCN_CP_EVERY), "cp every");
    ck_assert_str_eq(mk_scn_step_name(0), "?");
    ck_assert_str_eq(mk_scn_link_kind_name(-1), "?");
}
END_TEST

static Suite *scenario_suite(void)
{
    Suite *s = suite_create("scenario");
    TCase *tc = tcase_create("language");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_s0_scenario_every_statement_parses);
    tcase_add_test(tc, test_s0_scenario_schedule_and_apply);
    tcase_add_test(tc, test_s0_scenario_error_format_exact);
    tcase_add_test(tc, test_s0_scenario_malformed_lines);
    tcase_add_test(tc, test_s0_scenario_lexical_limits);
    tcase_add_test(tc, test_s0_scenario_round_trip);
    tcase_add_test(tc, test_s0_scenario_random_lines);
    tcase_add_test(tc, test_s0_scenario_parse_file);
    tcase_add_test(tc, test_s0_scenario_check_points);
    tcase_add_test(tc, test_s0_scenario_build);
    tcase_add_test(tc, test_s0_scenario_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mk_test_run(scenario_suite()); }
