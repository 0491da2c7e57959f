/*
 * mk_sim.c - the seeded simulator (`mirrorkit sim`) and crash-point
 * enumeration (`mirrorkit crashpoints`).
 *
 * Each seed draws a whole configuration and a fault mix - swarm testing as
 * in TigerBeetle's VOPR: every seed switches each fault family on or off,
 * so some runs see only crashes, some only a lossy link, some everything -
 * writes it as a scenario (mk_scenario_build: the simulator speaks the same
 * language as the library) and runs it with the invariant checker.  A seed
 * that fails is written out as a script and shrunk: steps removed, numbers
 * lowered, the volume made smaller, for as long as it still fails the same
 * way.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_pair.h"
#include "mk_prng.h"
#include "mk_run.h"
#include "mk_sim.h"
#include "mk_wire.h"
#include "mk_workload.h"

#define MAX_STEPS 96

typedef struct plan {
    mk_scenario_config cfg;
    mk_scenario_step st[MAX_STEPS];
    size_t n;
    char families[96];
} plan;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static mk_scenario_step *add(plan *p, int kind)
{
    if (p->n >= MAX_STEPS)
        return NULL;
    mk_scenario_step *s = &p->st[p->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    return s;
}

static uint64_t pick(mk_prng *g, uint64_t lo, uint64_t hi) { return lo + mk_prng_below(g, hi - lo + 1); }

/* The destination's points a crash may hit (all of them are reached by a
 * run on the simulated link). */
static const char *const dest_points[] = {
    "ref/dest/log/write",   "ref/dest/log/sync",   "ref/dest/log/read",
    "ref/dest/log/truncate", "ref/dest/mirror/write", "ref/dest/mirror/sync",
    "ref/dest/tree/write",  "ref/dest/tree/sync",  "ref/dest/tree/read",
    "ref/alloc/dest/staging", "ref/alloc/dest/redo"};
#define NDEST_POINTS (sizeof dest_points / sizeof *dest_points)

static void crash_event(mk_prng *g, mk_scn_event *ev, uint32_t ncps, uint64_t nwrites)
{
    static const int kinds[] = {MK_SCN_EV_CP_BEGIN, MK_SCN_EV_CP_COMMIT, MK_SCN_EV_CP_ACK,
                                MK_SCN_EV_REF,      MK_SCN_EV_DATA,      MK_SCN_EV_LOG_ACK,
                                MK_SCN_EV_TRANSFER, MK_SCN_EV_WRITE};
    ev->kind = kinds[mk_prng_below(g, 8)];
    ev->cp = pick(g, 1, ncps);
    switch (ev->kind) {
    case MK_SCN_EV_CP_BEGIN: case MK_SCN_EV_CP_COMMIT: case MK_SCN_EV_CP_ACK:
        ev->n = ev->cp;
        ev->cp = 0;
        break;
    case MK_SCN_EV_REF: case MK_SCN_EV_DATA:
        ev->n = pick(g, 1, 8);
        break;
    default:
        ev->n = pick(g, 1, nwrites ? nwrites : 1);
        ev->cp = 0;
    }
}

/* One seed's configuration and schedule. */
static void generate(uint64_t seed, plan *p)
{
    static const uint32_t sizes[] = {512, 1024, 4096, 4096, 8192, 65536};
    mk_prng g;
    memset(p, 0, sizeof *p);
    mk_prng_seed(&g, seed ^ 0x737761726dULL); /* "swarm" */
    mk_scenario_config *c = &p->cfg;
    c->has = MK_SCN_HAS_VOLUME | MK_SCN_HAS_MODE | MK_SCN_HAS_SEED | MK_SCN_HAS_WORKLOAD;
    c->block_size = sizes[mk_prng_below(&g, 6)];
    c->nblocks = pick(&g, 4, c->block_size == 65536 ? 32 : 256);
    c->mode = MK_MODE_SYNC + (int)mk_prng_below(&g, 3);
    c->seed = seed;
    c->transport = MK_T_SIM;
    c->workload = (int)mk_prng_below(&g, 5);
    /* Swarm: each family is in or out for this seed. */
    int points = mk_faults_compiled_in();
    int f_event = mk_prng_chance(&g, 1, 2), f_point = points && mk_prng_chance(&g, 1, 2);
    int f_torn = points && mk_prng_chance(&g, 1, 3), f_link = mk_prng_chance(&g, 1, 2);
    int f_manual = mk_prng_chance(&g, 1, 4), f_promote = mk_prng_chance(&g, 1, 8);
    snprintf(p->families, sizeof p->families, "%s%s%s%s%s%s", f_event ? " crash-event" : "",
             f_point ? " crash-point" : "", f_torn ? " torn" : "", f_link ? " link" : "",
             f_manual ? " crash-restart" : "", f_promote ? " promote" : "");
    uint32_t ncps = (uint32_t)pick(&g, 1, 5);
    uint64_t writes = 0;
    mk_scenario_step *s;
    if (f_link) {
        int nl = (int)pick(&g, 1, 2);
        for (int i = 0; i < nl && (s = add(p, MK_SCN_LINK)); i++) {
            static const int kinds[] = {MK_SCN_L_DROP,      MK_SCN_L_DUPLICATE, MK_SCN_L_CORRUPT,
                                        MK_SCN_L_LATENCY,   MK_SCN_L_SLICER,    MK_SCN_L_RESET_PEER,
                                        MK_SCN_L_PARTITION, MK_SCN_L_TRUNCATE,  MK_SCN_L_BANDWIDTH};
            s->link.kind = kinds[mk_prng_below(&g, 9)];
            s->link.dir = (int)mk_prng_below(&g, 3);
            s->link.prob.num = 1;
            s->link.prob.den = pick(&g, 100, 1000);
            s->link.ms = pick(&g, 1, 20);
            s->link.jitter = mk_prng_below(&g, s->link.ms + 1);
            s->link.bytes = pick(&g, 1, 64);
            s->link.kbps = pick(&g, 1000, 100000);
            s->link.frames = pick(&g, 1, 4);
            if (s->link.kind == MK_SCN_L_PARTITION || s->link.kind == MK_SCN_L_TRUNCATE ||
                s->link.kind == MK_SCN_L_RESET_PEER)
                s->link.dir = MK_SCN_DIR_BOTH;
            if (s->link.kind == MK_SCN_L_RESET_PEER) {
                s->link.after.kind = MK_SCN_EV_BYTES;
                s->link.after.n = pick(&g, 100, 200000);
            } else if (s->link.kind == MK_SCN_L_PARTITION || s->link.kind == MK_SCN_L_TRUNCATE) {
                crash_event(&g, &s->link.after, ncps, 20);
            }
        }
    }
    for (uint32_t k = 1; k <= ncps; k++) {
        uint64_t w = pick(&g, 1, 60);
        if (f_event && mk_prng_chance(&g, 1, 2) && (s = add(p, MK_SCN_CRASH))) {
            s->crash.role = MK_SCN_DEST;
            s->crash.trigger = MK_SCN_AFTER_EVENT;
            s->crash.restart = MK_SCN_RESTART_AUTO;
            crash_event(&g, &s->crash.after, ncps, writes + w);
        }
        if (f_point && mk_prng_chance(&g, 1, 2) && (s = add(p, MK_SCN_CRASH))) {
            s->crash.role = MK_SCN_DEST;
            s->crash.trigger = MK_SCN_AT_POINT;
            s->crash.restart = MK_SCN_RESTART_AUTO;
            snprintf(s->crash.point, sizeof s->crash.point, "%s",
                     dest_points[mk_prng_below(&g, NDEST_POINTS)]);
            s->crash.hit = pick(&g, 1, 40);
        }
        if (f_torn && mk_prng_chance(&g, 1, 3) && (s = add(p, MK_SCN_FAULT))) {
            static const char *const w3[] = {"ref/dest/log/write", "ref/dest/mirror/write",
                                             "ref/dest/tree/write"};
            snprintf(s->fault.point, sizeof s->fault.point, "%s", w3[mk_prng_below(&g, 3)]);
            s->fault.kind = MK_SCN_F_TORN;
            s->fault.hit = pick(&g, 1, 40);
            s->fault.count = 1;
            s->fault.prob.num = s->fault.prob.den = 1;
        }
        if ((s = add(p, MK_SCN_WRITES)))
            s->writes.count = w;
        writes += w;
        if (f_manual && mk_prng_chance(&g, 1, 3) && p->n + 2 < MAX_STEPS) {
            add(p, MK_SCN_CRASH)->crash.role = MK_SCN_DEST;
            add(p, MK_SCN_RESTART)->restart.role = MK_SCN_DEST;
        }
        add(p, MK_SCN_CP);
    }
    if (f_promote && mk_prng_chance(&g, 1, 2) && (s = add(p, MK_SCN_WRITES)))
        s->writes.count = pick(&g, 1, 30);
    if (f_promote && p->n + 2 < MAX_STEPS) {
        add(p, MK_SCN_CRASH)->crash.role = MK_SCN_SOURCE;
        add(p, MK_SCN_PROMOTE);
    }
}

static const mk_scenario_expect sim_expects[] = {
    {.kind = MK_SCN_EXPECT_VERIFY_EVERY_CP}, {.kind = MK_SCN_EXPECT_NO_ACKED_WRITE_LOST}};

static int build(const plan *p, uint64_t seed, mk_scenario **out, mk_scenario_error *err)
{
    char name[64];
    snprintf(name, sizeof name, "sim-seed-%llu", (unsigned long long)seed);
    return mk_scenario_build(name, &p->cfg, p->st, p->n, sim_expects, 2, out, err);
}

/* How a run failed, to tell whether a smaller one fails the same way. */
typedef struct verdict {
    int built, pass, invariant, err;
} verdict;

static verdict try_plan(const plan *p, uint64_t seed, mk_run_result *r)
{
    verdict v = {0, 1, 0, 0};
    mk_scenario *sc;
    mk_scenario_error e;
    mk_run_options o = {.unfired_ok = 1};
    if (build(p, seed, &sc, &e))
        return v;
    v.built = 1;
    if (mk_run_scenario(sc, &o, r) == 0) {
        v.pass = r->pass;
        v.invariant = r->invariant;
        v.err = r->err;
    }
    mk_scenario_free(sc);
    return v;
}

static int same_failure(verdict a, verdict b)
{
    return b.built && !b.pass && a.invariant == b.invariant &&
           (a.invariant || a.err == b.err);
}

/* Lowers *x toward lo while the plan still fails the same way: tries lo,
 * then halfway, then one less, and starts over from whatever held. */
static int shrink_number(plan *p, uint64_t seed, verdict want, uint64_t *x, uint64_t lo,
                         uint64_t *runs)
{
    int progress = 0, took = 1;
    mk_run_result r;
    while (took && *x > lo) {
        uint64_t old = *x, cand[3] = {lo, lo + (old - lo) / 2, old - 1};
        took = 0;
        for (int i = 0; i < 3 && !took; i++) {
            if (cand[i] >= old || (i && cand[i] == cand[i - 1]))
                continue;
            *x = cand[i];
            ++*runs;
            if (same_failure(want, try_plan(p, seed, &r)))
                took = progress = 1;
            else
                *x = old;
        }
    }
    return progress;
}

/* Shrinks a failing plan: remove chunks of steps (halves down to single
 * steps), then lower every number, until a whole pass changes nothing. */
static void shrink(plan *p, uint64_t seed, verdict want, uint64_t *runs)
{
    mk_run_result r;
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t chunk = p->n / 2 ? p->n / 2 : 1; chunk >= 1; chunk /= 2) {
            for (size_t at = 0; at + chunk <= p->n;) {
                plan q = *p;
                memmove(&q.st[at], &q.st[at + chunk], (q.n - at - chunk) * sizeof *q.st);
                q.n -= chunk;
                ++*runs;
                if (same_failure(want, try_plan(&q, seed, &r))) {
                    *p = q;
                    progress = 1;
                } else {
                    at++;
                }
            }
            if (chunk == 1)
                break;
        }
        uint64_t nb = p->cfg.nblocks;
        if (shrink_number(p, seed, want, &nb, 1, runs))
            progress = 1;
        p->cfg.nblocks = nb;
        for (size_t i = 0; i < p->n; i++) {
            mk_scenario_step *s = &p->st[i];
            if (s->kind == MK_SCN_WRITES)
                progress |= shrink_number(p, seed, want, &s->writes.count, 1, runs);
            else if (s->kind == MK_SCN_CRASH && s->crash.trigger == MK_SCN_AT_POINT)
                progress |= shrink_number(p, seed, want, &s->crash.hit, 1, runs);
            else if (s->kind == MK_SCN_CRASH && s->crash.trigger == MK_SCN_AFTER_EVENT) {
                /* An earlier event lets more of the steps before it go. */
                progress |= shrink_number(p, seed, want, &s->crash.after.n, 1, runs);
                if (s->crash.after.cp)
                    progress |= shrink_number(p, seed, want, &s->crash.after.cp, 1, runs);
            }
            else if (s->kind == MK_SCN_FAULT)
                progress |= shrink_number(p, seed, want, &s->fault.hit, 1, runs);
        }
    }
}

static int write_script(const char *path, const mk_scenario *sc, const char *comment)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return MK_EIO;
    fprintf(f, "# models: %s\n# run: mirrorkit scenario --unfired-ok %s\n", comment, path);
    int rc = mk_scenario_print(f, sc);
    if (fclose(f) && !rc)
        rc = MK_EIO;
    return rc;
}

static void describe(const plan *p, char *buf, size_t n)
{
    snprintf(buf, n, "%s bs=%u blocks=%llu %s steps=%zu faults:%s", mk_mode_name(p->cfg.mode),
             p->cfg.block_size, (unsigned long long)p->cfg.nblocks,
             mk_workload_name(p->cfg.workload), p->n, p->families[0] ? p->families : " none");
}

/* Runs one seed; 0 pass, 1 fail (written out and shrunk), 2 harness error. */
static int sim_one(uint64_t seed, const mk_sim_options *o)
{
    plan p;
    mk_run_result r, r2;
    char desc[256], path[4096];
    generate(seed, &p);
    describe(&p, desc, sizeof desc);
    verdict v = try_plan(&p, seed, &r);
    if (!v.built) {
        mk_scenario *sc;
        mk_scenario_error e;
        char msg[512] = "";
        if (build(&p, seed, &sc, &e))
            mk_scenario_error_format(&e, msg, sizeof msg);
        else
            mk_scenario_free(sc);
        printf("seed %llu: ERROR: the generated scenario does not build: %s (%s)\n",
               (unsigned long long)seed, msg, desc);
        return 2;
    }
    if (o->determinism && v.pass) {
        verdict v2 = try_plan(&p, seed, &r2);
        if (v2.pass != v.pass || r2.trace != r.trace) {
            printf("seed %llu: FAIL: not deterministic: trace %016llx then %016llx (%s)\n",
                   (unsigned long long)seed, (unsigned long long)r.trace,
                   (unsigned long long)r2.trace, desc);
            return 1;
        }
    }
    if (v.pass) {
        if (o->verbose)
            printf("seed %llu: ok %u/%u CPs, %llu crashes, trace %016llx (%s)\n",
                   (unsigned long long)seed, r.cps_verified, r.cps_done,
                   (unsigned long long)r.crashes, (unsigned long long)r.trace, desc);
        return 0;
    }
    printf("seed %llu: FAIL: %s (%s)\n", (unsigned long long)seed, r.why, desc);
    mk_scenario *sc;
    mk_scenario_error e;
    snprintf(path, sizeof path, "%s/sim-%llu.scn", o->outdir, (unsigned long long)seed);
    if (build(&p, seed, &sc, &e) == 0) {
        write_script(path, sc, "a failing run of mirrorkit sim, as generated");
        mk_scenario_free(sc);
        printf("  written: %s\n", path);
    }
    uint64_t runs = 0, t0 = mono_ns();
    size_t before = p.n;
    shrink(&p, seed, v, &runs);
    snprintf(path, sizeof path, "%s/sim-%llu.min.scn", o->outdir, (unsigned long long)seed);
    if (build(&p, seed, &sc, &e) == 0) {
        write_script(path, sc, "a failing run of mirrorkit sim, shrunk");
        printf("  shrunk from %zu to %zu steps in %llu runs (%.1f s): %s\n", before, p.n,
               (unsigned long long)runs, (double)(mono_ns() - t0) / 1e9, path);
        mk_scenario_print(stdout, sc);
        mk_scenario_free(sc);
    }
    return 1;
}

int mk_sim_run(const mk_sim_options *o, mk_sim_stats *st)
{
    uint64_t t0 = mono_ns();
    int jobs = o->jobs > 0 ? o->jobs : 1;
    memset(st, 0, sizeof *st);
    fflush(stdout);
    if (jobs == 1) {
        for (uint64_t s = o->from; s < o->from + o->seeds; s++) {
            int v = sim_one(s, o);
            st->failed += v == 1;
            st->errors += v == 2;
            fflush(stdout);
        }
    } else {
        /* Each worker takes every jobs-th seed; its exit status is how many
         * of them failed (capped), so the parent needs no pipe. */
        pid_t pid[64];
        if (jobs > 64)
            jobs = 64;
        for (int j = 0; j < jobs; j++) {
            if ((pid[j] = fork()) == 0) {
                unsigned bad = 0;
                setvbuf(stdout, NULL, _IOLBF, 0);
                for (uint64_t s = o->from + (uint64_t)j; s < o->from + o->seeds; s += (uint64_t)jobs)
                    bad += sim_one(s, o) != 0;
                fflush(stdout);
                _exit(bad > 100 ? 100 : (int)bad);
            }
        }
        for (int j = 0; j < jobs; j++) {
            int stt;
            if (pid[j] < 0 || waitpid(pid[j], &stt, 0) != pid[j] || !WIFEXITED(stt))
                st->errors++;
            else
                st->failed += (uint64_t)WEXITSTATUS(stt);
        }
    }
    st->seeds = o->seeds;
    st->ns = mono_ns() - t0;
    return st->failed || st->errors ? MK_EVERIFY : 0;
}

static void sim_help(FILE *f)
{
    fprintf(f,
            "usage: mirrorkit sim [--seeds N] [--from S] [--jobs J] [--determinism]\n"
            "                     [--out DIR] [-v]\n"
            "\n"
            "Runs N seeds (default 100) from S (default 1).  Each seed draws a whole\n"
            "configuration - mode, block size, volume, workload - and a fault mix\n"
            "(swarm testing: each family of crashes at protocol events, crashes at\n"
            "fault points, torn writes, link faults, crash+restart and failover is\n"
            "switched on or off per seed), runs it deterministically on the simulated\n"
            "link and checks every invariant.  A failing seed is written to\n"
            "DIR/sim-SEED.scn (default DIR .), shrunk to DIR/sim-SEED.min.scn, and\n"
            "printed.  --determinism runs every seed twice and compares the traces.\n"
            "-v prints every seed's parameters and result.  Crashes at fault points\n"
            "and torn writes need the fault build (build/fault/mirrorkit).\n"
            "Exit: 0 all seeds passed, 1 a seed failed, 2 bad usage.\n");
}

int mk_cmd_sim(int argc, char **argv)
{
    static const struct option opts[] = {{"seeds", required_argument, NULL, 'n'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"jobs", required_argument, NULL, 'j'},
                                         {"determinism", no_argument, NULL, 'd'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    mk_sim_options o = {100, 1, 1, 0, 0, "."};
    uint64_t v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (mk_parse_u64(optarg, &v) || v == 0 || v > (1ull << 40))
                return mk_usage_error("sim", "--seeds wants a number in 1..2^40, got '%s'", optarg);
            o.seeds = v;
            break;
        case 'f':
            if (mk_parse_u64(optarg, &v) || v > (1ull << 62))
                return mk_usage_error("sim", "--from wants a seed number, got '%s'", optarg);
            o.from = v;
            break;
        case 'j':
            if (mk_parse_u64(optarg, &v) || v == 0 || v > 64)
                return mk_usage_error("sim", "--jobs wants a number in 1..64, got '%s'", optarg);
            o.jobs = (int)v;
            break;
        case 'd': o.determinism = 1; break;
        case 'o': o.outdir = optarg; break;
        case 'v': o.verbose = 1; break;
        case 'h': sim_help(stdout); return EXIT_OK;
        default: return mk_usage_error("sim", "unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error("sim", "unexpected argument '%s'", argv[optind]);
    struct stat sb;
    if (stat(o.outdir, &sb) || !S_ISDIR(sb.st_mode))
        return mk_usage_error("sim", "--out: '%s' is not a directory", o.outdir);
    mk_sim_stats st;
    int rc = mk_sim_run(&o, &st);
    double secs = (double)st.ns / 1e9;
    printf("sim: %llu seeds from %llu, %llu failed, %llu errors, %.2f s, %.0f seeds/s "
           "(%.0f per minute), %d job%s%s\n",
           (unsigned long long)st.seeds, (unsigned long long)o.from,
           (unsigned long long)st.failed, (unsigned long long)st.errors, secs,
           secs > 0 ? (double)st.seeds / secs : 0.0, secs > 0 ? 60.0 * (double)st.seeds / secs : 0.0,
           o.jobs, o.jobs == 1 ? "" : "s", o.determinism ? ", each run twice for determinism" : "");
    return rc ? EXIT_VERIFY : EXIT_OK;
}

/* ---- crash points ------------------------------------------------------ */

static void crashpoints_help(FILE *f)
{
    fprintf(f,
            "usage: mirrorkit crashpoints [--role dest|source] [--max N] [-v] FILE\n"
            "\n"
            "Runs the scenario once counting the hits of the role's fault points\n"
            "(default: the destination's), then once per hit K, crashing the role\n"
            "at hit K instead of carrying the call out, restarting it at once and\n"
            "going on; each run must meet the scenario's expectations (recovery,\n"
            "I1-I3 checked).  --max N caps the runs.  Needs the fault build.\n"
            "Exit: 0 every crash point recovered, 1 one did not, 2 bad usage.\n");
}

int mk_cmd_crashpoints(int argc, char **argv)
{
    static const struct option opts[] = {{"role", required_argument, NULL, 'r'},
                                         {"max", required_argument, NULL, 'm'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int role = MK_ROLE_DEST, verbose = 0, c;
    uint64_t max = UINT64_MAX, v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (strcmp(optarg, "dest") == 0)
                role = MK_ROLE_DEST;
            else if (strcmp(optarg, "source") == 0)
                role = MK_ROLE_SOURCE;
            else
                return mk_usage_error("crashpoints", "--role wants dest or source, got '%s'", optarg);
            break;
        case 'm':
            if (mk_parse_u64(optarg, &v) || v == 0)
                return mk_usage_error("crashpoints", "--max wants a number >= 1, got '%s'", optarg);
            max = v;
            break;
        case 'v': verbose = 1; break;
        case 'h': crashpoints_help(stdout); return EXIT_OK;
        default:
            return mk_usage_error("crashpoints", "unknown option or missing value '%s'",
                                  argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return mk_usage_error("crashpoints", "%swant exactly one scenario FILE", "");
    if (!mk_faults_compiled_in()) {
        fprintf(stderr, "mirrorkit crashpoints: MK_EUSAGE: needs fault points: run the fault "
                        "build (make fault-build; build/fault/mirrorkit)\n");
        return EXIT_USAGE;
    }
    mk_scenario *sc;
    mk_scenario_error e;
    if (mk_scenario_parse_file(argv[optind], &sc, &e)) {
        mk_scenario_error_print(stderr, &e);
        return EXIT_USAGE;
    }
    mk_run_result r;
    mk_run_options o = {.crash_role = role};
    uint64_t t0 = mono_ns();
    int rc = mk_run_scenario(sc, &o, &r);
    if (rc || !r.pass) {
        fprintf(stderr, "mirrorkit crashpoints: the scenario fails without a crash: %s\n", r.why);
        mk_scenario_free(sc);
        return rc ? EXIT_USAGE : EXIT_VERIFY;
    }
    uint64_t n = r.role_hits < max ? r.role_hits : max, failed = 0, recovered = 0;
    printf("crashpoints: %s: %llu hits of the %s's fault points; crashing at each of %llu\n",
           argv[optind], (unsigned long long)r.role_hits, role == MK_ROLE_DEST ? "destination" : "source",
           (unsigned long long)n);
    for (uint64_t k = 1; k <= n; k++) {
        o.crash_at = k;
        rc = mk_run_scenario(sc, &o, &r);
        if (rc || !r.pass) {
            failed++;
            printf("crash at hit %llu (%s): FAIL: %s\n", (unsigned long long)k, r.crash_point,
                   r.why);
        } else {
            recovered += r.crashed_at;
        }
        if (verbose && rc == 0 && r.pass) {
            printf("crash at hit %llu (%s): ok, %u/%u CPs verified\n", (unsigned long long)k,
                   r.crash_point, r.cps_verified, r.cps_done);
        }
    }
    printf("crashpoints: %llu crash points, %llu crashed and recovered, %llu failed, %.2f s\n",
           (unsigned long long)n, (unsigned long long)recovered,
           (unsigned long long)failed, (double)(mono_ns() - t0) / 1e9);
    mk_scenario_free(sc);
    return failed ? EXIT_VERIFY : EXIT_OK;
}
