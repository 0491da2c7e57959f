/*
 * mirrorkit.c - the command line: demo, source, dest, dump.
 *
 * Exit codes (README.md, SPEC.md section 10): 0 ok, 1 verification failed,
 * 2 usage or bad input, 3 I/O or transport error.  Every error message
 * names the file, frame or offset it is about and the error's MK_ name.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mk_dest.h"
#include "mk_bench.h"
#include "mk_cli.h"
#include "mk_conform.h"
#include "mk_err.h"
#include "mk_faults.h"
#include "mk_logstore.h"
#include "mk_net.h"
#include "mk_pair.h"
#include "mk_proxy.h"
#include "mk_run.h"
#include "mk_sim.h"
#include "mk_wire.h"
#include "mk_workload.h"


#define exit_code mk_exit_code



/* ---- demo and source: options shared by every pair run ---------------- */

static const char pair_opts_help[] =
    "  --blocks N          volume size in blocks (default 16384)\n"
    "  --block-size B      block size, a power of two in 512..65536 (default 4096)\n"
    "  --mode M            sync | semi-sync | async (default sync)\n"
    "  --cps N             consistency points to run (default 10)\n"
    "  --writes N          client writes per CP (default 1000)\n"
    "  --workload W        mixed | whole | partial | seq | hot | block | small (default mixed)\n"
    "  --seed S            seed of the workload and the simulated link (default 1)\n"
    "  --record FILE       save the source->destination byte stream to FILE\n"
    "  --volume-id X       volume identity sent in HELLO (default 0x6d6972726f72)\n"
    "  --source-id X       source identity sent in HELLO (default 0x736f75726365)\n"
    "  --verify V          after each CP compare the CP's blocks plus a rolling scrub\n"
    "                      window (incremental, default), every block (full), or\n"
    "                      nothing (off); a checked run ends with a full comparison\n"
    "  --scrub N           blocks of rolling scrub per CP (default 256)\n"
    "  --json              report violations as JSON lines\n"
    "  --corrupt CP:BLOCK  test aid: after CP is checked, flip one byte of BLOCK in\n"
    "                      the destination's mirror, to watch the verifier catch it\n"
    "  --link-corrupt N    test aid (sim): each chunk crossing the link has an N per\n"
    "                      mille chance of a flipped bit; sessions are lost and resumed\n"
    "  --link 'FAULT; ...' link faults on the simulated link, in the scenario\n"
    "                      language's `link` form (fault/SCENARIOS.md), e.g.\n"
    "                      'drop prob=1/200; latency ms=3 jitter=1; reorder window=4'\n";

enum {
    O_BLOCKS = 256, O_BS, O_MODE, O_CPS, O_WRITES, O_WORKLOAD, O_SEED, O_RECORD,
    O_TRANSPORT, O_CONNECT, O_VERIFY_IMAGE, O_RECONNECT, O_VOLID, O_SRCID, O_KEEP,
    O_LISTEN, O_IMAGE, O_LOG, O_ONCE, O_PROMOTE, O_PORTFILE, O_HELP, O_SCRIPT, O_STDIO,
    O_VERIFY, O_SCRUB, O_JSON, O_CORRUPT, O_TREE, O_LINKCORRUPT, O_LINK
};

static const struct option pair_long[] = {
    {"blocks", 1, 0, O_BLOCKS}, {"block-size", 1, 0, O_BS}, {"mode", 1, 0, O_MODE},
    {"cps", 1, 0, O_CPS}, {"writes", 1, 0, O_WRITES}, {"workload", 1, 0, O_WORKLOAD},
    {"seed", 1, 0, O_SEED}, {"record", 1, 0, O_RECORD}, {"transport", 1, 0, O_TRANSPORT},
    {"connect", 1, 0, O_CONNECT}, {"verify-image", 1, 0, O_VERIFY_IMAGE},
    {"reconnect-timeout", 1, 0, O_RECONNECT}, {"volume-id", 1, 0, O_VOLID},
    {"source-id", 1, 0, O_SRCID}, {"keep", 0, 0, O_KEEP}, {"help", 0, 0, O_HELP},
    {"script", 1, 0, O_SCRIPT}, {"verify", 1, 0, O_VERIFY}, {"scrub", 1, 0, O_SCRUB},
    {"json", 0, 0, O_JSON}, {"corrupt", 1, 0, O_CORRUPT},
    {"link-corrupt", 1, 0, O_LINKCORRUPT}, {"link", 1, 0, O_LINK},
    {0, 0, 0, 0}};

/* Returns -1 when the options are good, else the exit code to leave with. */
static int parse_pair_opts(const char *cmd, int argc, char **argv, mk_pair_config *c,
                           int *keep, void (*help)(void))
{
    uint64_t v;
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", pair_long, NULL)) != -1) {
        switch (o) {
        case O_HELP: help(); return EXIT_OK;
        case O_BLOCKS:
            if (mk_parse_u64(optarg, &v) || v == 0)
                return mk_usage_error(cmd, "--blocks needs a positive integer, not '%s'", optarg);
            c->nblocks = v;
            break;
        case O_BS:
            if (mk_parse_u64(optarg, &v) || v > UINT32_MAX || !mk_block_size_ok((uint32_t)v))
                return mk_usage_error(cmd, "--block-size must be a power of two in 512..65536, not '%s'", optarg);
            c->block_size = (uint32_t)v;
            break;
        case O_MODE:
            if ((c->mode = mk_mode_parse(optarg)) < 0)
                return mk_usage_error(cmd, "--mode must be sync, semi-sync or async, not '%s'", optarg);
            break;
        case O_CPS:
            if (mk_parse_u64(optarg, &v) || v == 0 || v > 1000000)
                return mk_usage_error(cmd, "--cps needs an integer in 1..1000000, not '%s'", optarg);
            c->cps = (uint32_t)v;
            break;
        case O_WRITES:
            if (mk_parse_u64(optarg, &v))
                return mk_usage_error(cmd, "--writes needs an integer, not '%s'", optarg);
            c->writes_per_cp = v;
            break;
        case O_WORKLOAD:
            if ((c->workload = mk_workload_parse(optarg)) < 0)
                return mk_usage_error(cmd, "--workload must be mixed, whole, partial, seq, hot, block or small, not '%s'", optarg);
            break;
        case O_SEED:
            if (mk_parse_u64(optarg, &c->seed))
                return mk_usage_error(cmd, "--seed needs an integer, not '%s'", optarg);
            break;
        case O_RECORD: c->record = optarg; break;
        case O_TRANSPORT:
            if (strcmp(cmd, "demo") != 0 || (c->transport = mk_transport_parse(optarg)) < 0 ||
                c->transport == MK_T_CONNECT)
                return mk_usage_error(cmd, "--transport must be sim, pipe, socketpair or tcp, not '%s'", optarg);
            break;
        case O_CONNECT:
            if (strcmp(cmd, "source") != 0)
                return mk_usage_error(cmd, "unknown option '%s'", "--connect");
            if (mk_net_addr_ok(optarg))
                return mk_usage_error(cmd, "--connect needs IPV4:PORT, e.g. 127.0.0.1:7000, not '%s'", optarg);
            c->connect = optarg;
            break;
        case O_VERIFY_IMAGE: c->verify_image = optarg; break;
        case O_RECONNECT:
            if (mk_parse_u64(optarg, &v) || v > 86400)
                return mk_usage_error(cmd, "--reconnect-timeout needs seconds, not '%s'", optarg);
            c->reconnect_timeout_s = (uint32_t)v;
            break;
        case O_VOLID:
            if (mk_parse_u64(optarg, &c->volume_id))
                return mk_usage_error(cmd, "--volume-id needs an integer, not '%s'", optarg);
            break;
        case O_SRCID:
            if (mk_parse_u64(optarg, &c->source_id))
                return mk_usage_error(cmd, "--source-id needs an integer, not '%s'", optarg);
            break;
        case O_KEEP: *keep = 1; break;
        case O_VERIFY:
            if ((c->verify = mk_verify_parse(optarg)) < 0)
                return mk_usage_error(cmd, "--verify must be incremental, full or off, not '%s'", optarg);
            break;
        case O_SCRUB:
            if (mk_parse_u64(optarg, &c->scrub_per_cp))
                return mk_usage_error(cmd, "--scrub needs a block count, not '%s'", optarg);
            break;
        case O_JSON: c->json = 1; break;
        case O_LINK:
            if (strcmp(cmd, "demo") != 0)
                return mk_usage_error(cmd, "unknown option '%s'", "--link");
            c->link = optarg;
            break;
        case O_LINKCORRUPT:
            if (strcmp(cmd, "demo") != 0 || mk_parse_u64(optarg, &v) || v > 1000)
                return mk_usage_error(cmd, "--link-corrupt needs a per mille in 0..1000 (demo only), not '%s'", optarg);
            c->link_corrupt = (uint32_t)v;
            break;
        case O_CORRUPT: {
            char *colon = strchr(optarg, ':');
            if (!colon)
                return mk_usage_error(cmd, "--corrupt needs CP:BLOCK, not '%s'", optarg);
            *colon = 0;
            int bad = mk_parse_u64(optarg, &c->corrupt_cp) || c->corrupt_cp == 0 ||
                      mk_parse_u64(colon + 1, &c->corrupt_block);
            *colon = ':';
            if (bad)
                return mk_usage_error(cmd, "--corrupt needs CP:BLOCK with CP >= 1, not '%s'", optarg);
            break;
        }
        case O_SCRIPT:
            if (strcmp(cmd, "source") != 0)
                return mk_usage_error(cmd, "unknown option '%s'", "--script");
            if (strcmp(optarg, "-") == 0) {
                c->script = stdin;
            } else if (!(c->script = fopen(optarg, "r"))) {
                fprintf(stderr, "mirrorkit %s: %s: MK_EINVAL: cannot open script: %s\n", cmd,
                        optarg, strerror(errno));
                return EXIT_USAGE;
            }
            break;
        default:
            return mk_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (c->nblocks > UINT64_MAX / c->block_size)
        return mk_usage_error(cmd, "volume of %s blocks is too large", "that many");
    if (c->corrupt_cp && c->corrupt_block >= c->nblocks)
        return mk_usage_error(cmd, "--corrupt block is outside the volume of %s", "--blocks");
    return -1;
}

static void demo_help(void)
{
    printf("usage: mirrorkit demo [options]\n\n"
           "Runs a source and a destination as a pair with a seeded workload, and\n"
           "after every CP compares the source's CP image with the mirror block by\n"
           "block.  Prints one line per CP and a bandwidth summary.  With no options:\n"
           "64 MiB volume, sync mode, mixed workload, 10 CPs, simulated link.\n\n%s"
           "  --transport T       sim (in-process, deterministic) | pipe (forked\n"
           "                      destination, a pipe each way) | socketpair (forked\n"
           "                      destination over a Unix socketpair) | tcp (forked\n"
           "                      destination on loopback TCP) (default sim)\n"
           "  --keep              keep a forked destination's files and print where\n\n"
           "Exit: 0 every CP verified, 1 verification failed, 2 usage, 3 I/O error.\n",
           pair_opts_help);
}

static int cmd_demo(int argc, char **argv)
{
    mk_pair_config c;
    mk_pair_result r;
    int keep = 0, rc;
    char dir[] = "/tmp/mirrorkit-demo-XXXXXX";
    mk_pair_defaults(&c);
    c.out = stdout;
    if ((rc = parse_pair_opts("demo", argc, argv, &c, &keep, demo_help)) >= 0)
        return rc;
    if (c.transport != MK_T_SIM) {
        if (!mkdtemp(dir)) {
            fprintf(stderr, "mirrorkit demo: MK_EIO: cannot create %s: %s\n", dir, strerror(errno));
            return EXIT_IO;
        }
        c.workdir = dir;
    }
    rc = mk_pair_run(&c, &r);
    if (rc == MK_EREMOTE && r.remote_code)
        rc = r.remote_code;
    if (c.workdir) {
        if (keep) {
            printf("destination files kept in %s\n", dir);
        } else {
            char p[64];
            snprintf(p, sizeof p, "%s/mirror.img", dir);
            unlink(p);
            snprintf(p, sizeof p, "%s/dest.log", dir);
            unlink(p);
            snprintf(p, sizeof p, "%s/mirror.mkt", dir);
            unlink(p);
            rmdir(dir);
        }
    }
    return exit_code(rc);
}

static void source_help(void)
{
    printf("usage: mirrorkit source --connect HOST:PORT [options]\n\n"
           "Runs the reference source against a destination listening at HOST:PORT\n"
           "(e.g. 'mirrorkit dest --listen').  If the connection drops it reconnects\n"
           "and resumes (SPEC.md 8.2).  Every CP_ACK digest is checked; with\n"
           "--verify-image the mirror image is also compared block by block.\n\n%s"
           "  --connect HOST:PORT the destination (required)\n"
           "  --verify-image F    the destination's mirror image, to compare after each CP\n"
           "  --reconnect-timeout S  give up reconnecting after S seconds (default 30)\n"
           "  --script FILE|-     instead of the workload, run the client commands of\n"
           "                      SPEC.md 10.2 ('write OFFSET HEX', 'cp', 'quit'),\n"
           "                      answering 'ack N', 'cp-ack K', 'error MK_NAME' on stdout\n\n"
           "Exit: 0 every CP verified, 1 verification failed, 2 usage, 3 I/O error.\n",
           pair_opts_help);
}

static int cmd_source(int argc, char **argv)
{
    mk_pair_config c;
    mk_pair_result r;
    int keep = 0, rc;
    mk_pair_defaults(&c);
    c.out = stdout;
    c.transport = MK_T_CONNECT;
    if ((rc = parse_pair_opts("source", argc, argv, &c, &keep, source_help)) >= 0)
        return rc;
    if (!c.connect)
        return mk_usage_error("source", "%s is required", "--connect HOST:PORT");
    if (c.script) {
        /* stdout carries the script answers; the report goes to stderr. */
        c.script_out = stdout;
        c.out = stderr;
    }
    rc = mk_pair_run(&c, &r);
    if (c.script && c.script != stdin)
        fclose(c.script);
    return exit_code(rc == MK_EREMOTE && r.remote_code ? r.remote_code : rc);
}

/* ---- dest ------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void dest_help(void)
{
    printf("usage: mirrorkit dest --listen HOST:PORT --image F --log F [options]\n\n"
           "Runs the reference destination.  On start it recovers from its log: a\n"
           "torn tail is cut and a committed CP not yet in the mirror is redone\n"
           "(SPEC.md 7.6).  It serves one source session at a time; a second\n"
           "connection is refused with MK_EPEER.\n\n"
           "  --listen HOST:PORT  address to listen on (port 0 picks one)\n"
           "  --stdio             serve one session on stdin/stdout instead\n"
           "  --image F           the mirror image (created sparse if absent)\n"
           "  --log F             the log store (created if absent)\n"
           "  --tree F            the mirror's Merkle tree, a cache rebuilt from the image\n"
           "                      if missing (default: the image's path + .mkt)\n"
           "  --port-file F       write the port actually bound to F\n"
           "  --once              exit after the first session ends\n"
           "  --promote           replay the log after the last CP onto the image\n"
           "                      and retire the log (SPEC.md 8.4), then exit\n"
           "  --blocks N --block-size B --volume-id X\n"
           "                      expected volume; a HELLO for another is refused\n\n"
           "Exit: 0 ok, 2 usage or bad input, 3 I/O error.\n");
}

/* Refuses connections that wait while a session is active (SPEC.md 2.3).
 * A source that gave up on a stalled session closes it and connects again
 * at once, so the new connection can arrive between our look at the active
 * one and the accept: before each refusal the active connection is looked
 * at again, and if it has ended (its close is there to read), the new one
 * is kept in *next to be served, not refused. */
static void refuse_peer(int lfd, int active, int *next)
{
    struct pollfd p = {lfd, POLLIN, 0};
    while (*next < 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return;
        struct pollfd a = {active, POLLIN, 0};
        if (poll(&a, 1, 0) != 0) {
            *next = fd;
            return;
        }
        mk_buf b;
        mk_buf_init(&b);
        mk_error_encode(&b, 0, MK_EPEER, "a session with another source is active");
        mk_io_flush(fd, &b, 500);
        mk_buf_free(&b);
        close(fd);
    }
}

static int dest_sink(void *ctx, const uint8_t *buf, size_t n)
{
    return mk_dest_recv(ctx, buf, n, 0);
}

static int serve_sessions(mk_dest *d, int lfd, int once)
{
    int next = -1;
    while (!stop_flag) {
        int fd = next;
        next = -1;
        if (fd < 0) {
            struct pollfd p = {lfd, POLLIN, 0};
            if (poll(&p, 1, 200) <= 0)
                continue;
            if ((fd = accept(lfd, NULL, NULL)) < 0)
                continue;
        }
        mk_net_nonblock(fd);
        int rc;
        do {
            rc = mk_io_pump(fd, mk_dest_out(d), dest_sink, d, 200, NULL);
            /* A waiting connection is refused only while the active one
             * has nothing left to read: a source that gave up on a stalled
             * session (a stopped destination, 8.5) closed it before it
             * reconnected, and that close is read - ending the session -
             * before the new connection is served. */
#ifdef MK_MUTANT_DEST_NO_PEER_REFUSE
            /* Planted bug (verify/MUTANTS.md): connections that arrive
             * during a session are never looked at - they wait in the
             * listen backlog and are served after it, instead of being
             * refused with ERROR MK_EPEER at once (SPEC.md 2.3). */
            (void)refuse_peer;
#else
            struct pollfd a = {fd, POLLIN, 0};
            if (rc == 0 && poll(&a, 1, 0) == 0)
                refuse_peer(lfd, fd, &next);
#endif
        } while (rc == 0 && !stop_flag);
        if (rc && rc != MK_ECLOSED) {
            mk_io_flush(fd, mk_dest_out(d), 2000);
            fprintf(stderr, "mirrorkit dest: session ended: %s: %s\n", mk_errname(rc),
                    mk_strerror(rc));
        }
        close(fd);
        mk_dest_session_end(d);
        if ((mk_dest_error(d) || once || stop_flag) && next >= 0) {
            close(next); /* not served: the process is about to end */
            next = -1;
        }
        if (mk_dest_error(d)) {
            fprintf(stderr, "mirrorkit dest: storage failed: %s: %s\n",
                    mk_errname(mk_dest_error(d)), mk_strerror(mk_dest_error(d)));
            return mk_dest_error(d);
        }
        /* With --once the session's outcome is the process's. */
        if (once)
            return rc == MK_ECLOSED ? 0 : rc;
    }
    return 0;
}

static int cmd_dest(int argc, char **argv)
{
    static const struct option lo[] = {
        {"listen", 1, 0, O_LISTEN}, {"image", 1, 0, O_IMAGE}, {"log", 1, 0, O_LOG},
        {"once", 0, 0, O_ONCE}, {"promote", 0, 0, O_PROMOTE}, {"port-file", 1, 0, O_PORTFILE},
        {"blocks", 1, 0, O_BLOCKS}, {"block-size", 1, 0, O_BS}, {"volume-id", 1, 0, O_VOLID},
        {"stdio", 0, 0, O_STDIO}, {"tree", 1, 0, O_TREE}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    const char *listen_addr = NULL, *image = NULL, *logp = NULL, *portfile = NULL;
    const char *treep = NULL;
    char tree_default[4096];
    int once = 0, promote = 0, stdio = 0, o, rc;
    mk_dest_config dc = {0};
    uint64_t v;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case O_HELP: dest_help(); return EXIT_OK;
        case O_LISTEN:
            if (mk_net_addr_ok(optarg))
                return mk_usage_error("dest", "--listen needs IPV4:PORT, e.g. 127.0.0.1:7000, not '%s'", optarg);
            listen_addr = optarg;
            break;
        case O_IMAGE: image = optarg; break;
        case O_LOG: logp = optarg; break;
        case O_PORTFILE: portfile = optarg; break;
        case O_ONCE: once = 1; break;
        case O_STDIO: stdio = 1; break;
        case O_TREE: treep = optarg; break;
        case O_PROMOTE: promote = 1; break;
        case O_BLOCKS:
            if (mk_parse_u64(optarg, &dc.nblocks) || !dc.nblocks)
                return mk_usage_error("dest", "--blocks needs a positive integer, not '%s'", optarg);
            break;
        case O_BS:
            if (mk_parse_u64(optarg, &v) || v > UINT32_MAX || !mk_block_size_ok((uint32_t)v))
                return mk_usage_error("dest", "--block-size must be a power of two in 512..65536, not '%s'", optarg);
            dc.block_size = (uint32_t)v;
            break;
        case O_VOLID:
            if (mk_parse_u64(optarg, &dc.volume_id))
                return mk_usage_error("dest", "--volume-id needs an integer, not '%s'", optarg);
            break;
        default:
            return mk_usage_error("dest", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error("dest", "unexpected argument '%s'", argv[optind]);
    if (!image || !logp)
        return mk_usage_error("dest", "%s are required", "--image and --log");
    if (!promote && !listen_addr == !stdio)
        return mk_usage_error("dest", "%s is required", "exactly one of --listen HOST:PORT and --stdio");
    mk_file *mf = NULL, *lf = NULL, *tf = NULL;
    mk_dest *d = NULL;
    int lfd = -1;
    if (!treep) {
        snprintf(tree_default, sizeof tree_default, "%s.mkt", image);
        treep = tree_default;
    }
    /* A destination without a log or mirror has no identity: there is
     * nothing to promote (8.4), and nothing is created. */
    if (promote && (access(image, F_OK) || access(logp, F_OK))) {
        fprintf(stderr, "mirrorkit dest: %s: no volume to promote: %s does not exist (SPEC.md 8.4)\n",
                mk_errname(MK_ESTATE), access(logp, F_OK) ? logp : image);
        return mk_exit_code(MK_ESTATE);
    }
    if ((rc = mk_file_open(image, !promote, "ref/dest/mirror", &mf))) {
        fprintf(stderr, "mirrorkit dest: %s: %s: %s\n", image, mk_errname(rc), mk_strerror(rc));
        return promote ? EXIT_USAGE : EXIT_IO;
    }
    if ((rc = mk_file_open(logp, !promote, "ref/dest/log", &lf))) {
        fprintf(stderr, "mirrorkit dest: %s: %s: %s\n", logp, mk_errname(rc), mk_strerror(rc));
        mk_file_close(mf);
        return promote ? EXIT_USAGE : EXIT_IO;
    }
    if ((rc = mk_file_open(treep, 1, "ref/dest/tree", &tf))) {
        fprintf(stderr, "mirrorkit dest: %s: %s: %s\n", treep, mk_errname(rc), mk_strerror(rc));
        mk_file_close(lf);
        mk_file_close(mf);
        return EXIT_IO;
    }
    dc.tree = tf;
    if ((rc = mk_dest_open(&dc, mf, lf, &d))) {
        fprintf(stderr, "mirrorkit dest: %s: %s: %s\n", logp, mk_errname(rc), mk_strerror(rc));
        goto out;
    }
    const mk_dest_stats *st = mk_dest_get_stats(d);
    mk_log_info li;
    mk_dest_log_info(d, &li);
    fprintf(stderr, "mirrorkit dest: log %s: last CP %" PRIu64 ", durable transfer %" PRIu64
                    ", %" PRIu64 " torn bytes cut, %" PRIu64 " CP redone\n",
            logp, li.last_cp, li.durable_tid, st->cut_bytes, st->redo_cps);
    if (promote) {
        rc = mk_dest_promote(d);
        if (rc == 0)
            fprintf(stderr, "mirrorkit dest: promoted: %s now holds CP %" PRIu64
                            " plus every durable transfer after it\n", image, li.last_cp);
        else
            fprintf(stderr, "mirrorkit dest: promote: %s: %s\n", mk_errname(rc), mk_strerror(rc));
        goto out;
    }
    if (stdio) {
        /* One session: the source's stream on stdin, replies on stdout. */
        rc = mk_dest_serve_fds(d, 0, 1);
        if (rc)
            fprintf(stderr, "mirrorkit dest: session ended: %s: %s\n", mk_errname(rc),
                    mk_strerror(rc));
        else if (mk_dest_error(d))
            rc = mk_dest_error(d);
        goto out;
    }
    uint16_t port;
    if ((rc = mk_net_listen(listen_addr, &lfd, &port))) {
        fprintf(stderr, "mirrorkit dest: cannot listen on %s: %s: %s\n", listen_addr,
                mk_errname(rc), mk_strerror(rc));
        goto out;
    }
    if (portfile) {
        FILE *pf = fopen(portfile, "w");
        if (!pf || fprintf(pf, "%u\n", port) < 0 || fclose(pf)) {
            rc = MK_EIO;
            fprintf(stderr, "mirrorkit dest: %s: cannot write port file\n", portfile);
            goto out;
        }
    }
    printf("mirrorkit dest: listening on port %u\n", port);
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    rc = serve_sessions(d, lfd, once);
out:;
    /* A failure of the destination's own storage (including a log found
     * damaged after we wrote it) is an I/O error, whatever its name. */
    int engine_failed = d && mk_dest_error(d);
    if (lfd >= 0)
        close(lfd);
    mk_dest_free(d);
    mk_file_close(mf);
    mk_file_close(lf);
    mk_file_close(tf);
    return engine_failed || rc == MK_EIO || rc == MK_ENOSPC ? EXIT_IO : exit_code(rc);
}

/* ---- dump ------------------------------------------------------------- */

static void dump_help(void)
{
    printf("usage: mirrorkit dump FILE\n\n"
           "Decodes a recorded stream (demo/source --record) or a destination log\n"
           "store into one line per frame or record, with its byte offset.  A\n"
           "malformed or torn file is reported at the exact offset where decoding\n"
           "stopped.\n\n"
           "Exit: 0 whole file decoded, 2 malformed input or usage, 3 I/O error.\n");
}

/* Prints the fields of one frame or record payload.  Decoding errors are
 * returned so the caller reports them with the offset. */
static int dump_payload(const mk_frame *f, uint32_t bs)
{
    int rc;
    switch (f->type) {
    case MK_F_HELLO: {
        mk_hello h;
        if ((rc = mk_hello_decode(f, &h)))
            return rc;
        printf(" volume=0x%" PRIx64 " nblocks=%" PRIu64 " block_size=%u mode=%s source=0x%" PRIx64,
               h.volume_id, h.nblocks, h.block_size, mk_mode_name(h.mode), h.source_id);
        return 0;
    }
    case MK_F_HELLO_ACK: {
        mk_hello_ack a;
        if ((rc = mk_hello_ack_decode(f, &a)))
            return rc;
        printf(" volume=0x%" PRIx64 " nblocks=%" PRIu64 " block_size=%u last_cp=%" PRIu64
               " durable_tid=%" PRIu64 " source=0x%" PRIx64 " last_digest=%016" PRIx64,
               a.volume_id, a.nblocks, a.block_size, a.last_cp, a.durable_tid, a.source_id,
               a.last_digest);
        return 0;
    }
    case MK_F_LOG: case MK_R_TRANSFER: {
        mk_log l;
        mk_xgeom g;
        if ((rc = mk_log_decode(f, &l)))
            return rc;
        printf(" tid=%" PRIu64 " offset=%" PRIu64 " length=%u", l.tid, l.offset, l.length);
        if (bs) {
            mk_transfer_geom(l.offset, l.length, bs, &g);
            printf(" head=%u slots=%u", g.head_len, g.nslots);
            if (g.nslots)
                printf(" (blocks %" PRIu64 "..%" PRIu64 ")", g.first_block,
                       g.first_block + g.nslots - 1);
            printf(" tail=%u", g.tail_len);
        }
        return 0;
    }
    case MK_F_LOG_ACK: {
        uint64_t t;
        if ((rc = mk_log_ack_decode(f, &t)))
            return rc;
        printf(" tid=%" PRIu64, t);
        return 0;
    }
    case MK_F_CP_BEGIN: {
        mk_cp_begin b;
        if ((rc = mk_cp_begin_decode(f, &b)))
            return rc;
        printf(" cp=%" PRIu64 " records=%" PRIu64 " covers_tid=%" PRIu64, b.cp, b.nrecords,
               b.covers_tid);
        return 0;
    }
    case MK_F_CP_DATA: case MK_R_CP_DATA: {
        mk_cp_data d;
        if (!bs) {
            if (f->len < MK_CP_DATA_HDR_LEN + MK_MIN_BLOCK)
                return MK_ELENGTH;
            bs = f->len - MK_CP_DATA_HDR_LEN;
        }
        if ((rc = mk_cp_data_decode(f, bs, &d)))
            return rc;
        printf(" cp=%" PRIu64 " block=%" PRIu64 " hash=%016" PRIx64, d.cp, d.block,
               mk_block_hash(d.data, bs));
        return 0;
    }
    case MK_F_CP_REF: {
        uint64_t cp;
        uint32_t n;
        if ((rc = mk_cp_ref_decode(f, &cp, &n)))
            return rc;
        printf(" cp=%" PRIu64 " count=%u", cp, n);
        for (uint32_t i = 0; i < n && i < 3; i++) {
            mk_ref r;
            mk_ref_at(f, i, &r);
            printf(" [block %" PRIu64 " = tid %" PRIu64 " slot %u hash %016" PRIx64 "]",
                   r.block, r.tid, r.slot, r.hash);
        }
        if (n > 3)
            printf(" ...");
        return 0;
    }
    case MK_F_CP_COMMIT: {
        mk_cp_commit c;
        if ((rc = mk_cp_commit_decode(f, &c)))
            return rc;
        printf(" cp=%" PRIu64 " records=%" PRIu64, c.cp, c.nrecords);
        return 0;
    }
    case MK_F_NAK: {
        mk_nak n;
        if ((rc = mk_nak_decode(f, &n)))
            return rc;
        printf(" cp=%" PRIu64 " block=%" PRIu64 " reason=%s", n.cp, n.block, mk_errname(n.reason));
        return 0;
    }
    case MK_F_CP_ACK: {
        mk_cp_ack a;
        if ((rc = mk_cp_ack_decode(f, &a)))
            return rc;
        printf(" cp=%" PRIu64 " applied=%" PRIu64 " digest=%016" PRIx64, a.cp, a.napplied, a.digest);
        return 0;
    }
    case MK_F_ERROR: {
        mk_error_frame e;
        if ((rc = mk_error_decode(f, &e)))
            return rc;
        printf(" code=%s msg=\"%.*s\"", mk_errname(e.code), (int)e.msglen, (const char *)e.msg);
        return 0;
    }
    case MK_R_CP_COMMIT: {
        mk_rcur c;
        uint64_t cp, covers, digest, n;
        mk_rcur_init(&c, f->payload, f->len);
        if (mk_rcur_u64(&c, &cp) || mk_rcur_u64(&c, &covers) || mk_rcur_u64(&c, &digest) ||
            mk_rcur_u64(&c, &n) || mk_rcur_left(&c) / 16 != n || mk_rcur_left(&c) % 16)
            return MK_ELENGTH;
        printf(" cp=%" PRIu64 " covers_tid=%" PRIu64 " digest=%016" PRIx64 " blocks=%" PRIu64,
               cp, covers, digest, n);
        return 0;
    }
    case MK_R_CP_APPLIED: {
        mk_rcur c;
        uint64_t cp;
        mk_rcur_init(&c, f->payload, f->len);
        if (f->len != 8 || mk_rcur_u64(&c, &cp))
            return MK_ELENGTH;
        printf(" cp=%" PRIu64, cp);
        return 0;
    }
    }
    return MK_ETYPE;
}

static int read_whole(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f)
        return errno == ENOENT ? MK_EINVAL : MK_EIO;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return MK_EINVAL;
    }
    *len = (size_t)st.st_size;
    *buf = malloc(*len ? *len : 1);
    int rc = *buf && fread(*buf, 1, *len, f) == *len ? 0 : MK_EIO;
    fclose(f);
    return rc;
}

static int dump_frames(const char *path, const uint8_t *buf, size_t len, size_t off,
                       uint32_t bs, int is_log, uint64_t seq)
{
    uint64_t nframes = 0;
    while (off < len) {
        mk_frame f;
        size_t used;
        int rc = mk_frame_decode(buf + off, len - off, len - off, MK_FRAME_MAGIC, &f, &used);
        if (rc == 0 && is_log && f.seq != seq)
            rc = MK_ESEQ;
        if (rc == 0) {
            printf("@%zu seq=%" PRIu64 " %s len=%u", off, f.seq, mk_ftype_name(f.type), f.len);
            if (f.type == MK_F_HELLO && !is_log) {
                mk_hello h;
                if (mk_hello_decode(&f, &h) == 0)
                    bs = h.block_size;
            }
            rc = dump_payload(&f, bs);
            printf("\n");
        }
        if (rc && is_log && (rc == MK_ETRUNC || rc == MK_ECHECKSUM || rc == MK_ESEQ)) {
            /* Where a log's valid records end; the open verdict printed
             * next says whether this is a tail to cut or damage inside. */
            fprintf(stderr, "mirrorkit dump: %s: offset %zu: MK_ETORN: valid records end "
                            "here (%s), %zu bytes follow\n",
                    path, off, mk_errname(rc), len - off);
            return MK_ETORN;
        }
        if (rc) {
            fprintf(stderr, "mirrorkit dump: %s: offset %zu: %s: %s\n", path, off,
                    mk_errname(rc), mk_strerror(rc));
            return rc;
        }
        off += used;
        seq++;
        nframes++;
    }
    printf("# %" PRIu64 " %s, %zu bytes\n", nframes, is_log ? "records" : "frames", len);
    return 0;
}

/* A log store: both header slots, every record, then what opening it would
 * do - the very scan the destination runs (section 7.6), on a copy in
 * memory so the file itself is never cut. */
static int dump_log(const char *path, const uint8_t *buf, size_t len)
{
    mk_log_header h[2];
    int r[2], best = -1;
    for (int s = 0; s < 2; s++) {
        uint8_t slot[MK_LOG_SLOT_LEN] = {0};
        size_t at = (size_t)s * MK_LOG_SLOT_LEN;
        if (len > at)
            memcpy(slot, buf + at, len - at < sizeof slot ? len - at : sizeof slot);
        r[s] = mk_log_header_decode(slot, &h[s]);
        if (r[s]) {
            printf("@%zu header slot %d: invalid (%s)\n", at, s, mk_errname(r[s]));
            continue;
        }
        printf("@%zu header slot %d: generation=%" PRIu64 " volume=0x%" PRIx64 " nblocks=%" PRIu64
               " block_size=%u source=0x%" PRIx64 " base_cp=%" PRIu64 " base_tid=%" PRIu64
               " base_digest=%016" PRIx64 " next_seq=%" PRIu64 "\n",
               at, s, h[s].generation, h[s].id.volume_id, h[s].id.nblocks, h[s].id.block_size,
               h[s].id.source_id, h[s].base_cp, h[s].base_tid, h[s].base_digest, h[s].next_seq);
        if (best < 0 || h[s].generation > h[best].generation)
            best = s;
    }
    int rc = 0;
    if (best < 0) {
        rc = r[0] == MK_EMAGIC && r[1] == MK_EMAGIC ? MK_EMAGIC : r[0] ? r[0] : r[1];
        fprintf(stderr, "mirrorkit dump: %s: offset 0: %s: no valid header slot\n", path,
                mk_errname(rc));
        return rc;
    }
    if (len > MK_LOG_DATA_START)
        rc = dump_frames(path, buf, len, MK_LOG_DATA_START, h[best].id.block_size, 1,
                         h[best].next_seq);
    /* The verdict of the real recovery scan. */
    mk_file *mf = NULL;
    mk_logstore *ls = NULL;
    mk_log_info info;
    int orc = mk_file_mem("dump/log", &mf);
    if (orc == 0)
        orc = mk_file_pwrite(mf, buf, len, 0);
    if (orc == 0)
        orc = mk_logstore_open(mf, &ls, &info);
    if (orc == 0)
        printf("# open: ok: last CP %" PRIu64 " (applied %" PRIu64 "), durable transfer %" PRIu64
               ", %" PRIu64 " records, %" PRIu64 " tail bytes would be cut\n",
               info.last_cp, info.applied_cp, info.durable_tid, info.records, info.cut_bytes);
    else
        fprintf(stderr, "mirrorkit dump: %s: opening this log would fail: %s: %s\n", path,
                mk_errname(orc), mk_strerror(orc));
    mk_logstore_free(ls);
    mk_file_close(mf);
    return rc ? rc : orc;
}

static int cmd_dump(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        dump_help();
        return EXIT_OK;
    }
    if (argc != 2 || argv[1][0] == '-')
        return mk_usage_error("dump", "expects exactly one FILE, got %s",
                           argc < 2 ? "none" : argv[argc > 2 ? 2 : 1]);
    const char *path = argv[1];
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_whole(path, &buf, &len);
    if (rc) {
        fprintf(stderr, "mirrorkit dump: %s: %s: %s\n", path, mk_errname(rc),
                rc == MK_EINVAL ? "no such regular file" : mk_strerror(rc));
        free(buf);
        return rc == MK_EINVAL ? EXIT_USAGE : EXIT_IO;
    }
    uint32_t magic = 0;
    mk_rcur mc;
    mk_rcur_init(&mc, buf, len);
    mk_rcur_u32(&mc, &magic);
    if (magic == MK_LOG_MAGIC) {
        rc = dump_log(path, buf, len);
    } else if (magic == MK_FRAME_MAGIC) {
        rc = dump_frames(path, buf, len, 0, 0, 0, 0);
    } else {
        rc = MK_EMAGIC;
        fprintf(stderr, "mirrorkit dump: %s: offset 0: MK_EMAGIC: %s\n", path, mk_strerror(rc));
    }
    free(buf);
    return rc ? EXIT_USAGE : EXIT_OK;
}

/* ---- main ------------------------------------------------------------- */

int mk_cmd_verify(int argc, char **argv); /* verify/mk_verify_cli.c */

static void main_help(void)
{
    printf("usage: mirrorkit COMMAND [options]   (mirrorkit COMMAND --help for each)\n\n"
           "  demo     run a source/destination pair and verify every CP\n"
           "  source   run the reference source against a destination over TCP\n"
           "  dest     run the reference destination (listen, recover, promote)\n"
           "  dump     decode a recorded stream or a destination log, frame by frame\n"
           "  verify   compare images or checksum tables block by block; write a table\n"
           "  faults   list the libfiu fault points (fault/POINTS.md)\n"
           "  proxy    relay a TCP connection through link faults (drop, latency, reset...)\n"
           "  scenario run fault scenario scripts (fault/SCENARIOS.md) and check them\n"
           "  sim      seeded swarm simulation of faults, with shrinking of failures\n"
           "  crashpoints  crash at every fault-point hit of a scenario, recover, check\n"
           "  conform  check another implementation of the destination or source\n"
           "           against SPEC.md, case by case (CONFORMANCE.md)\n"
           "  bench    measure the pair against baselines taken in the same run\n\n"
           "Exit codes: 0 ok, 1 verification failed, 2 usage or bad input, 3 I/O error.\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* A fault build enables the points MK_FIU names before any command. */
    if (mk_faults_init())
        return EXIT_USAGE;
    if (argc < 2) {
        main_help();
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0) {
        main_help();
        return EXIT_OK;
    }
    if (strcmp(cmd, "demo") == 0)
        return cmd_demo(argc - 1, argv + 1);
    if (strcmp(cmd, "source") == 0)
        return cmd_source(argc - 1, argv + 1);
    if (strcmp(cmd, "dest") == 0)
        return cmd_dest(argc - 1, argv + 1);
    if (strcmp(cmd, "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return mk_cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "faults") == 0)
        return mk_cmd_faults(argc - 1, argv + 1);
    if (strcmp(cmd, "proxy") == 0)
        return mk_cmd_proxy(argc - 1, argv + 1);
    if (strcmp(cmd, "scenario") == 0)
        return mk_cmd_scenario(argc - 1, argv + 1);
    if (strcmp(cmd, "sim") == 0)
        return mk_cmd_sim(argc - 1, argv + 1);
    if (strcmp(cmd, "crashpoints") == 0)
        return mk_cmd_crashpoints(argc - 1, argv + 1);
    if (strcmp(cmd, "conform") == 0)
        return mk_cmd_conform(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return mk_cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "mirrorkit: MK_EUSAGE: unknown command '%s' (see 'mirrorkit --help')\n", cmd);
    return EXIT_USAGE;
}
