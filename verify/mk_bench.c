/*
 * mk_bench.c - `mirrorkit bench` (mk_bench.h).
 *
 * Bandwidth (SPEC.md section 11): for each workload the pair runs in
 * process, CP by CP, and counts what the source put on the wire.  After
 * every CP the source's store - the CP image - is written to a file, and
 * rsync brings the previous CP's image up to it with its delta algorithm
 * (`--inplace --no-whole-file`), the way one would resync a mirror without
 * the log.  Both are byte counts, so they do not depend on the machine's
 * speed: the same seed gives the same table anywhere.
 */
#include "mk_bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_pair.h"
#include "mk_wire.h"
#include "mk_workload.h"

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }
static double ratio(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

/* One workload's counts. */
typedef struct bw_row {
    const char *workload;
    int full_block; /* every write covers whole blocks only */
    uint64_t client, wire, cp_phase, naive, ref, ref_naive;
    uint64_t rsync_literal, rsync_sent;
} bw_row;

/* Writes the whole store to path (the CP image). */
static int dump_image(mk_file *store, uint64_t bytes, const char *path)
{
    static uint8_t buf[1u << 20];
    FILE *f = fopen(path, "wb");
    if (!f)
        return MK_EIO;
    int rc = 0;
    for (uint64_t off = 0; off < bytes && !rc; off += sizeof buf) {
        size_t n = bytes - off < sizeof buf ? (size_t)(bytes - off) : sizeof buf;
        if ((rc = mk_file_read_block(store, buf, n, off)) == 0 && fwrite(buf, 1, n, f) != n)
            rc = MK_EIO;
    }
    if (fclose(f))
        rc = MK_EIO;
    return rc;
}

/* rsync --inplace --no-whole-file --stats from src onto dst: the literal
 * bytes and the total bytes it sent.  --ignore-times: an image rewritten
 * within the same second as the copy has the same size and mtime, and
 * rsync would otherwise skip it as unchanged. */
static int rsync_delta(const char *src, const char *dst, uint64_t *literal, uint64_t *sent)
{
    char cmd[2600], line[512];
    snprintf(cmd, sizeof cmd, "rsync --inplace --no-whole-file --ignore-times --stats '%s' '%s' 2>&1", src, dst);
    FILE *p = popen(cmd, "r");
    if (!p)
        return MK_EIO;
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        char digits[64];
        size_t k = 0;
        const char *v = NULL;
        if (strncmp(line, "Literal data: ", 14) == 0)
            v = line + 14;
        else if (strncmp(line, "Total bytes sent: ", 18) == 0)
            v = line + 18;
        if (!v)
            continue;
        for (; *v && *v != ' ' && *v != '\n' && k + 1 < sizeof digits; v++)
            if (*v != ',')
                digits[k++] = *v;
        digits[k] = 0;
        uint64_t n;
        if (mk_parse_u64(digits, &n))
            continue;
        if (line[0] == 'L') {
            *literal += n;
            got |= 1;
        } else {
            *sent += n;
            got |= 2;
        }
    }
    int st = pclose(p);
    return st == 0 && got == 3 ? 0 : MK_EIO;
}

/* Runs one workload through the pair, with an rsync of every CP image. */
static int run_bandwidth(int wl, const mk_pair_config *base, const char *dir, bw_row *row)
{
    mk_pair_config cfg = *base;
    mk_pair *p = NULL;
    mk_pair_result res;
    mk_workload w;
    char cur[1200], prev[1200];
    uint64_t vbytes = cfg.nblocks * cfg.block_size;
    cfg.workload = wl;
    memset(row, 0, sizeof *row);
    row->workload = mk_workload_name(wl);
    row->full_block = wl == MK_WL_WHOLE || wl == MK_WL_SEQ || wl == MK_WL_HOT || wl == MK_WL_BLOCK;
    snprintf(cur, sizeof cur, "%s/cp.img", dir);
    snprintf(prev, sizeof prev, "%s/mirror.img", dir);
    /* The mirror rsync keeps up to date starts as CP 0: all zeros. */
    FILE *f = fopen(prev, "wb");
    if (!f || ftruncate(fileno(f), (off_t)vbytes) || fclose(f))
        return MK_EIO;
    int rc = mk_workload_init(&w, wl, cfg.seed, cfg.nblocks, cfg.block_size);
    if (rc)
        return rc;
    if ((rc = mk_pair_open(&cfg, &p))) {
        mk_workload_free(&w);
        return rc;
    }
    for (uint32_t k = 0; k < cfg.cps && !rc; k++) {
        for (uint64_t i = 0; i < cfg.writes_per_cp && !rc; i++) {
            uint64_t off;
            uint32_t len;
            const uint8_t *data;
            mk_workload_next(&w, &off, &len, &data);
            rc = mk_pair_write(p, off, data, len);
        }
        if (!rc)
            rc = mk_pair_cp(p);
        if (!rc)
            rc = dump_image(mk_pair_store(p), vbytes, cur);
        if (!rc)
            rc = rsync_delta(cur, prev, &row->rsync_literal, &row->rsync_sent);
    }
    if (!rc)
        rc = mk_pair_finish(p);
    rc = mk_pair_close(p, rc, &res);
    mk_workload_free(&w);
    const mk_source_stats *s = &res.stats;
    row->client = s->client_bytes;
    row->cp_phase = s->cp_data_bytes + s->cp_ref_bytes + s->cp_ctl_bytes;
    row->wire = row->cp_phase + s->log_bytes + s->session_bytes;
    row->naive = s->naive_bytes;
    row->ref = s->cp_ref_bytes;
    row->ref_naive = s->ref_naive_bytes;
    unlink(cur);
    unlink(prev);
    return rc;
}

static void bench_help(void)
{
    printf("usage: mirrorkit bench [--csv FILE] [--blocks N] [--cps N] [--writes N] [--seed S]\n"
           "\n"
           "Measures the pair against baselines taken in the same run.  Today: the\n"
           "bandwidth saving (SPEC.md section 11).  For each workload - seq (full-block\n"
           "sequential), block (random 4 KiB), small (random 512-byte partial), mixed\n"
           "(70%% whole / 30%% unaligned) and hot (overwrites of a hot 10%%) - the pair\n"
           "runs in sync mode over the simulated link, and after every CP rsync\n"
           "(--inplace --no-whole-file) resyncs a copy of the previous CP image to it.\n"
           "\n"
           "  --csv FILE   also write the table as CSV\n"
           "  --blocks N   volume blocks of 4096 bytes (default 16384: 64 MiB)\n"
           "  --cps N      CPs per workload (default 10)\n"
           "  --writes N   writes per CP (default 1000)\n"
           "  --seed S     workload seed (default 1)\n"
           "\n"
           "Targets (checked, exit 1 if missed): CP-phase bytes of wholly modified\n"
           "blocks at most 1%% of a naive full-block CP; total wire bytes at most\n"
           "1.02 x client bytes for full-block workloads.  Needs rsync.\n");
}

enum { O_CSV = 256, O_BLOCKS, O_CPS, O_WRITES, O_SEED, O_HELP };

int mk_cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"csv", 1, 0, O_CSV},       {"blocks", 1, 0, O_BLOCKS},
                                         {"cps", 1, 0, O_CPS},       {"writes", 1, 0, O_WRITES},
                                         {"seed", 1, 0, O_SEED},     {"help", 0, 0, O_HELP},
                                         {0, 0, 0, 0}};
    const char *csv = NULL;
    uint64_t blocks = 16384, cps = 10, writes = 1000, seed = 1;
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_CSV: csv = optarg; break;
        case O_BLOCKS:
            if (mk_parse_u64(optarg, &blocks) || blocks < 16 || blocks > (1u << 22))
                return mk_usage_error("bench", "--blocks needs 16..4194304, not '%s'", optarg);
            break;
        case O_CPS:
            if (mk_parse_u64(optarg, &cps) || cps == 0 || cps > 1000)
                return mk_usage_error("bench", "--cps needs 1..1000, not '%s'", optarg);
            break;
        case O_WRITES:
            if (mk_parse_u64(optarg, &writes) || writes == 0 || writes > 1000000)
                return mk_usage_error("bench", "--writes needs 1..1000000, not '%s'", optarg);
            break;
        case O_SEED:
            if (mk_parse_u64(optarg, &seed))
                return mk_usage_error("bench", "--seed needs an integer, not '%s'", optarg);
            break;
        case O_HELP: bench_help(); return EXIT_OK;
        default: return mk_usage_error("bench", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if (system("rsync --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "mirrorkit bench: MK_EUSAGE: rsync is needed for the baseline (make deps installs it)\n");
        return EXIT_USAGE;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%.900s/mk-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mirrorkit bench: MK_EIO: cannot create a work directory: %s\n", strerror(errno));
        return EXIT_IO;
    }
    mk_pair_config base;
    mk_pair_defaults(&base);
    base.nblocks = blocks;
    base.block_size = 4096;
    base.mode = MK_MODE_SYNC;
    base.cps = (uint32_t)cps;
    base.writes_per_cp = writes;
    base.seed = seed;
    base.out = NULL;

    static const int wls[] = {MK_WL_SEQ, MK_WL_BLOCK, MK_WL_SMALL, MK_WL_MIXED, MK_WL_HOT};
    bw_row rows[sizeof wls / sizeof wls[0]];
    int rc = 0, missed = 0;
    printf("bandwidth (SPEC.md 11): %llu x 4096-byte volume (%.0f MiB), sync mode, %llu CPs x %llu "
           "writes, seed %llu\n",
           (unsigned long long)blocks, mib(blocks * 4096), (unsigned long long)cps,
           (unsigned long long)writes, (unsigned long long)seed);
    printf("%-7s %10s %10s %11s %10s %10s %9s %10s %10s %10s %9s\n", "workload", "client MiB", "wire MiB",
           "wire/client", "CP MiB", "naive MiB", "CP/naive", "REF/naive", "rsync MiB", "wire/rsync",
           "CP/rsync");
    for (size_t i = 0; i < sizeof wls / sizeof wls[0] && !rc; i++) {
        bw_row *r = &rows[i];
        if ((rc = run_bandwidth(wls[i], &base, dir, r)))
            break;
        double wc = ratio(r->wire, r->client), rn = ratio(r->ref, r->ref_naive);
        printf("%-8s %10.2f %10.2f %11.3f %10.2f %10.2f %8.2f%% %9.3f%% %10.2f %10.3f %9.3f\n",
               r->workload, mib(r->client), mib(r->wire), wc, mib(r->cp_phase), mib(r->naive),
               100 * ratio(r->cp_phase, r->naive), 100 * rn, mib(r->rsync_sent),
               ratio(r->wire, r->rsync_sent), ratio(r->cp_phase, r->rsync_sent));
        if (r->ref_naive && rn > 0.01) {
            printf("  target missed: REF bytes are %.3f%% of naive for wholly modified blocks (at most 1%%)\n", 100 * rn);
            missed = 1;
        }
        if (r->full_block && wc > 1.02) {
            printf("  target missed: wire is %.3f x client for a full-block workload (at most 1.02)\n", wc);
            missed = 1;
        }
        fflush(stdout);
    }
    rmdir(dir);
    if (rc) {
        fprintf(stderr, "mirrorkit bench: %s: %s\n", mk_errname(rc), mk_strerror(rc));
        return mk_exit_code(rc);
    }
    printf("wire = LOG + CP + session bytes; CP = the CP phase (DATA, REF, BEGIN, COMMIT); naive = every\n"
           "dirty block sent whole at the CP; REF/naive = REF bytes against the wholly modified blocks\n"
           "sent whole; rsync MiB = total bytes rsync sent to resync each CP image from the previous\n"
           "(wire/rsync counts the log stream too, which gives sync mode its durability; rsync has none).\n");
    if (csv) {
        FILE *f = fopen(csv, "w");
        if (!f) {
            fprintf(stderr, "mirrorkit bench: MK_EIO: cannot write %s\n", csv);
            return EXIT_IO;
        }
        fprintf(f, "section,workload,client_bytes,wire_bytes,cp_phase_bytes,naive_bytes,ref_bytes,"
                   "ref_naive_bytes,rsync_literal_bytes,rsync_sent_bytes\n");
        for (size_t i = 0; i < sizeof wls / sizeof wls[0]; i++)
            fprintf(f, "bandwidth,%s,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n", rows[i].workload,
                    (unsigned long long)rows[i].client, (unsigned long long)rows[i].wire,
                    (unsigned long long)rows[i].cp_phase, (unsigned long long)rows[i].naive,
                    (unsigned long long)rows[i].ref, (unsigned long long)rows[i].ref_naive,
                    (unsigned long long)rows[i].rsync_literal, (unsigned long long)rows[i].rsync_sent);
        if (fclose(f)) {
            fprintf(stderr, "mirrorkit bench: MK_EIO: cannot write %s\n", csv);
            return EXIT_IO;
        }
    }
    return missed ? EXIT_VERIFY : EXIT_OK;
}
