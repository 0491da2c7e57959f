/*
 * mk_bench.c - `mirrorkit bench` (mk_bench.h): each section measures the
 * pair next to a baseline taken in the same run.
 *
 *   throughput  client MB/s of the pair, every mode, over a socketpair and
 *               loopback TCP, against the raw transport moving as many bytes
 *   latency     sync write acknowledgements against the raw round trip of
 *               the same message sizes; CP commit time by CP size
 *   bandwidth   SPEC.md section 11's byte counts per workload against rsync
 *               resyncing the same CP images (counts: the same seed gives
 *               the same table on any machine)
 *   scale       peak RSS of both processes on a 1 TiB sparse volume against
 *               a 64 MiB one; time per CP as dirty data grows
 *   speed       simulator seeds/s and fuzz harness execs/s
 *
 * Timings are medians of repeated runs where a run is short; the report
 * starts with the machine and the command that reproduces it.
 */
#include "mk_bench.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_net.h"
#include "mk_pair.h"
#include "mk_sim.h"
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

/* What every section gets: the work directory, the bandwidth section's
 * pair configuration, and where a missed target is noted. */
typedef struct bench_ctx {
    const char *dir;
    mk_pair_config base;
    int missed;
} bench_ctx;

/* ---- throughput: the pair against the raw transport ------------------------ */

/* Removes the files a run left in dir (the volume, logs, trees). */
static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1400];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && snprintf(path, sizeof path, "%.1100s/%.255s", dir, e->d_name) > 0)
            unlink(path);
    if (d)
        closedir(d);
}


static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The accepting end of a raw TCP baseline: without Nagle, as the pair's
 * connecting end is (mk_net_connect), so the floor is the transport's. */
static int accept_nodelay(int lfd)
{
    int one = 1, fd = accept(lfd, NULL, NULL);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Forks a raw link to a child: a socketpair (tcp 0) or a loopback TCP
 * connection (tcp 1).  Returns 0 in the child and the child's pid in the
 * parent, each with its own end in *fd; -1 on failure (no child).  The
 * child exits by itself; the parent closes *fd and reaps it. */
static pid_t raw_fork(int tcp, int *fd)
{
    int sv[2] = {-1, -1}, lfd = -1;
    uint16_t port = 0;
    char addr[32];
    if (tcp) {
        if (mk_net_listen("127.0.0.1:0", &lfd, &port))
            return -1;
        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    } else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        *fd = sv[1];
        if (tcp && mk_net_connect(addr, fd))
            _exit(1);
        return 0;
    }
    *fd = pid < 0 ? -1 : tcp ? accept_nodelay(lfd) : sv[0];
    if (tcp)
        close(lfd);
    else
        close(sv[1]);
    if (pid > 0 && *fd < 0) {
        int st;
        waitpid(pid, &st, 0);
        return -1;
    }
    return pid;
}

/* Reads until n bytes came, then answers one byte: the far end of a raw
 * transfer. */
static void raw_sink(int fd, uint64_t n)
{
    static uint8_t buf[1u << 16];
    while (n) {
        ssize_t r = read(fd, buf, n < sizeof buf ? (size_t)n : sizeof buf);
        if (r <= 0)
            _exit(1);
        n -= (uint64_t)r;
    }
    _exit(write(fd, buf, 1) == 1 ? 0 : 1);
}

/* Bytes per second of n bytes in 64 KiB writes through a socketpair (tcp
 * 0) or loopback TCP (tcp 1) to a forked reader, until it answers: the
 * physical limit of the pair's transport on this machine, now. */
static double raw_bps(int tcp, uint64_t n)
{
    static uint8_t buf[1u << 16];
    int fd;
    pid_t pid = raw_fork(tcp, &fd);
    if (pid == 0)
        raw_sink(fd, n);
    if (pid < 0)
        return 0;
    double bps = 0;
    uint64_t t0 = now_ns(), left = n;
    while (left) {
        ssize_t w = write(fd, buf, left < sizeof buf ? (size_t)left : sizeof buf);
        if (w <= 0)
            break;
        left -= (uint64_t)w;
    }
    uint8_t b;
    if (!left && read(fd, &b, 1) == 1)
        bps = (double)n / ((double)(now_ns() - t0) / 1e9);
    close(fd);
    int st;
    waitpid(pid, &st, 0);
    return bps;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define ROUNDS 3

/* The pair's client throughput, bytes per second, median of ROUNDS runs;
 * *client is the client bytes of one run. */
static int pair_bps(const mk_pair_config *cfg, double *bps, uint64_t *client)
{
    double v[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        mk_pair_result res;
        empty_dir(cfg->workdir); /* every run starts a fresh pair */
        int rc = mk_pair_run(cfg, &res);
        if (rc)
            return rc;
        *client = res.stats.client_bytes;
        v[i] = (double)res.stats.client_bytes / ((double)res.run_ns / 1e9);
    }
    qsort(v, ROUNDS, sizeof v[0], dbl_cmp);
    *bps = v[ROUNDS / 2];
    return 0;
}

/*
 * Every mode over both transports, full-block sequential (16 blocks a
 * write) and random 4 KiB writes, next to the raw transport carrying the
 * same number of bytes in the same run.  The destination's files and the
 * source's volume live in dir (a tmpfs when TMPDIR is one): the figure is
 * the protocol's and the transport's, not a disk's.
 */
static int bench_throughput(bench_ctx *b, FILE *csv)
{
    const char *dir = b->dir;
    static const int modes[] = {MK_MODE_SYNC, MK_MODE_SEMI, MK_MODE_ASYNC};
    static const int wls[] = {MK_WL_SEQ, MK_WL_BLOCK};
    static const int transports[] = {MK_T_PIPE, MK_T_TCP};
    if (csv)
        fprintf(csv, "section,transport,mode,workload,client_bytes,pair_bytes_per_s,raw_bytes_per_s\n");
    printf("throughput: 64 MiB volume, 4 KiB blocks, median of %d runs, files in %s\n", ROUNDS, dir);
    printf("%-9s %-10s %-6s %12s %12s %9s\n", "transport", "mode", "load", "pair MB/s", "raw MB/s",
           "pair/raw");
    for (size_t t = 0; t < sizeof transports / sizeof transports[0]; t++)
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
            for (size_t w = 0; w < sizeof wls / sizeof wls[0]; w++) {
                mk_pair_config cfg;
                mk_pair_defaults(&cfg);
                cfg.nblocks = 16384;
                cfg.block_size = 4096;
                cfg.mode = modes[m];
                cfg.workload = wls[w];
                cfg.transport = transports[t];
                cfg.cps = 4;
                cfg.writes_per_cp = wls[w] == MK_WL_SEQ ? 1024 : 8192;
                cfg.verify = MK_VERIFY_OFF;
                cfg.workdir = dir;
                cfg.store_dir = dir;
                cfg.out = NULL;
                double pair = 0, raw[ROUNDS];
                uint64_t client = 0;
                int rc = pair_bps(&cfg, &pair, &client);
                empty_dir(dir);
                if (rc)
                    return rc;
                for (int i = 0; i < ROUNDS; i++)
                    raw[i] = raw_bps(transports[t] == MK_T_TCP, client);
                qsort(raw, ROUNDS, sizeof raw[0], dbl_cmp);
                printf("%-9s %-10s %-6s %12.1f %12.1f %9.3f\n", mk_transport_name(transports[t]),
                       mk_mode_name(modes[m]), mk_workload_name(wls[w]), pair / 1e6,
                       raw[ROUNDS / 2] / 1e6, raw[ROUNDS / 2] > 0 ? pair / raw[ROUNDS / 2] : 0.0);
                if (csv)
                    fprintf(csv, "throughput,%s,%s,%s,%llu,%.0f,%.0f\n", mk_transport_name(transports[t]),
                            mk_mode_name(modes[m]), mk_workload_name(wls[w]),
                            (unsigned long long)client, pair, raw[ROUNDS / 2]);
                fflush(stdout);
            }
    return 0;
}

/* ---- latency: sync-mode acknowledgements and CP commits --------------------- */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted samples, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i < n ? i : n - 1] / 1e3;
}

/* Round trips of a LOG-sized message (a 4 KiB transfer's frame) answered
 * with a LOG_ACK-sized one, through a socketpair or loopback TCP to a
 * forked echo: the transport's own floor under a sync write. */
static int raw_rtt(int tcp, size_t n, uint64_t *ns)
{
    enum { REQ = 4096 + MK_FRAME_OVERHEAD + MK_LOG_HDR_LEN, ACK = MK_FRAME_OVERHEAD + 8 };
    static uint8_t buf[REQ];
    int fd;
    pid_t pid = raw_fork(tcp, &fd);
    if (pid == 0) {
        for (size_t i = 0; i < n; i++) {
            for (size_t got = 0; got < REQ;) {
                ssize_t r = read(fd, buf + got, REQ - got);
                if (r <= 0)
                    _exit(1);
                got += (size_t)r;
            }
            if (write(fd, buf, ACK) != ACK)
                _exit(1);
        }
        _exit(0);
    }
    if (pid < 0)
        return MK_EIO;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t t0 = now_ns();
        size_t got = 0;
        if (write(fd, buf, REQ) != REQ)
            rc = MK_EIO;
        while (!rc && got < ACK) {
            ssize_t r = read(fd, buf, ACK - got);
            if (r <= 0)
                rc = MK_EIO;
            else
                got += (size_t)r;
        }
        ns[i] = now_ns() - t0;
    }
    close(fd);
    int st;
    waitpid(pid, &st, 0);
    return rc;
}

#define LAT_WRITES 2000

/*
 * Sync mode: every random 4 KiB write waits for the LOG_ACK that covers it
 * (5.1), so the time of one mk_pair_write is the client's acknowledgement
 * latency.  Then CPs of 16, 256 and 4096 dirty blocks, each timed from
 * CP_BEGIN to its CP_ACK.
 */
static int bench_latency(bench_ctx *b, FILE *csv)
{
    const char *dir = b->dir;
    static const int transports[] = {MK_T_PIPE, MK_T_TCP};
    static const uint32_t cp_blocks[] = {16, 256, 4096};
    uint64_t *ns = malloc(LAT_WRITES * sizeof *ns);
    int rc = ns ? 0 : MK_ENOMEM;
    if (csv)
        fprintf(csv, "section,transport,what,samples,p50_us,p99_us,p999_us\n");
    printf("latency: sync mode, random 4 KiB writes, 64 MiB volume, files in %s\n", dir);
    printf("%-9s %-22s %10s %10s %10s\n", "transport", "what", "p50 us", "p99 us", "p99.9 us");
    for (size_t t = 0; t < sizeof transports / sizeof transports[0] && !rc; t++) {
        mk_pair_config cfg;
        mk_pair *p = NULL;
        mk_workload w;
        mk_pair_defaults(&cfg);
        cfg.nblocks = 16384;
        cfg.block_size = 4096;
        cfg.mode = MK_MODE_SYNC;
        cfg.transport = transports[t];
        cfg.verify = MK_VERIFY_OFF;
        cfg.workdir = dir;
        cfg.store_dir = dir;
        cfg.out = NULL;
        empty_dir(dir);
        if ((rc = raw_rtt(transports[t] == MK_T_TCP, LAT_WRITES, ns)))
            break;
        qsort(ns, LAT_WRITES, sizeof *ns, u64_cmp);
        printf("%-9s %-22s %10.1f %10.1f %10.1f\n", mk_transport_name(transports[t]), "raw round trip",
               pct_us(ns, LAT_WRITES, 0.5), pct_us(ns, LAT_WRITES, 0.99), pct_us(ns, LAT_WRITES, 0.999));
        if (csv)
            fprintf(csv, "latency,%s,raw_rtt,%u,%.1f,%.1f,%.1f\n", mk_transport_name(transports[t]),
                    LAT_WRITES, pct_us(ns, LAT_WRITES, 0.5), pct_us(ns, LAT_WRITES, 0.99),
                    pct_us(ns, LAT_WRITES, 0.999));
        if ((rc = mk_workload_init(&w, MK_WL_BLOCK, 1, cfg.nblocks, cfg.block_size)))
            break;
        if ((rc = mk_pair_open(&cfg, &p))) {
            mk_workload_free(&w);
            break;
        }
        for (size_t i = 0; i < LAT_WRITES && !rc; i++) {
            uint64_t off;
            uint32_t len;
            const uint8_t *data;
            mk_workload_next(&w, &off, &len, &data);
            uint64_t t0 = now_ns();
            rc = mk_pair_write(p, off, data, len);
            ns[i] = now_ns() - t0;
        }
        if (!rc) {
            qsort(ns, LAT_WRITES, sizeof *ns, u64_cmp);
            printf("%-9s %-22s %10.1f %10.1f %10.1f\n", mk_transport_name(transports[t]),
                   "sync write ack", pct_us(ns, LAT_WRITES, 0.5), pct_us(ns, LAT_WRITES, 0.99),
                   pct_us(ns, LAT_WRITES, 0.999));
            if (csv)
                fprintf(csv, "latency,%s,write_ack,%u,%.1f,%.1f,%.1f\n", mk_transport_name(transports[t]),
                        LAT_WRITES, pct_us(ns, LAT_WRITES, 0.5), pct_us(ns, LAT_WRITES, 0.99),
                        pct_us(ns, LAT_WRITES, 0.999));
            rc = mk_pair_cp(p); /* the writes above leave CP 1 */
        }
        for (size_t k = 0; k < sizeof cp_blocks / sizeof cp_blocks[0] && !rc; k++) {
            enum { CPS = 9 };
            uint64_t cpns[CPS];
            for (int j = 0; j < CPS && !rc; j++) {
                for (uint32_t b = 0; b < cp_blocks[k] && !rc; b++) {
                    uint64_t off;
                    uint32_t len;
                    const uint8_t *data;
                    mk_workload_next(&w, &off, &len, &data);
                    rc = mk_pair_write(p, off, data, len);
                }
                uint64_t t0 = now_ns();
                if (!rc)
                    rc = mk_pair_cp(p);
                cpns[j] = now_ns() - t0;
            }
            if (rc)
                break;
            qsort(cpns, CPS, sizeof *cpns, u64_cmp);
            char what[40];
            snprintf(what, sizeof what, "CP of %u blocks", cp_blocks[k]);
            printf("%-9s %-22s %10.1f %10.1f %10s\n", mk_transport_name(transports[t]), what,
                   pct_us(cpns, CPS, 0.5), pct_us(cpns, CPS, 0.99), "-");
            if (csv)
                fprintf(csv, "latency,%s,cp_%u_blocks,%d,%.1f,%.1f,\n", mk_transport_name(transports[t]),
                        cp_blocks[k], CPS, pct_us(cpns, CPS, 0.5), pct_us(cpns, CPS, 0.99));
        }
        if (!rc)
            rc = mk_pair_finish(p);
        mk_pair_result res;
        rc = mk_pair_close(p, rc, &res);
        mk_workload_free(&w);
        fflush(stdout);
    }
    free(ns);
    empty_dir(dir);
    return rc;
}

/* ---- scale: memory follows dirty data, not volume size ------------------------ */

/* One scale run's figures, measured in a child process so that each run's
 * peak RSS is its own. */
typedef struct scale_row {
    uint64_t nblocks, writes_per_cp;
    uint32_t cps;
    long src_rss_kib, dest_rss_kib; /* peak resident set sizes */
    double ms_per_cp;
    int err;
} scale_row;

/* The pair over a pipe to a forked destination, every file on disk and
 * sparse: the source's volume, tree and provenance (store_dir) and the
 * destination's mirror, log and tree (workdir).  Sequential 64 KiB writes;
 * no final full check, which would read every block of the volume. */
static void run_scale(const char *dir, scale_row *row)
{
    int fd[2];
    row->err = MK_EIO;
    if (pipe(fd))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        mk_pair_config cfg;
        mk_pair_result res;
        mk_pair_defaults(&cfg);
        cfg.nblocks = row->nblocks;
        cfg.block_size = 4096;
        cfg.mode = MK_MODE_SYNC;
        cfg.workload = MK_WL_SEQ;
        cfg.transport = MK_T_PIPE;
        cfg.cps = row->cps;
        cfg.writes_per_cp = row->writes_per_cp;
        cfg.verify = MK_VERIFY_OFF;
        cfg.workdir = dir;
        cfg.store_dir = dir;
        cfg.out = NULL;
        scale_row r = *row;
        r.err = mk_pair_run(&cfg, &res);
        struct rusage self, kids;
        getrusage(RUSAGE_SELF, &self);
        getrusage(RUSAGE_CHILDREN, &kids);
        r.src_rss_kib = self.ru_maxrss;
        r.dest_rss_kib = kids.ru_maxrss;
        r.ms_per_cp = (double)res.run_ns / 1e6 / r.cps;
        ssize_t w = write(fd[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    scale_row r;
    ssize_t n = pid > 0 ? read(fd[0], &r, sizeof r) : -1;
    close(fd[0]);
    int st;
    if (pid > 0)
        waitpid(pid, &st, 0);
    if (n == (ssize_t)sizeof r)
        *row = r;
}

static int bench_scale(bench_ctx *b, FILE *csv)
{
    const char *dir = b->dir;
    /* 64 MiB of dirty data per CP (1024 writes of 16 blocks); then the
     * same volume with 4x and 16x the dirty data per CP. */
    static const struct { uint64_t nblocks, writes; uint32_t cps; } runs[] = {
        {1u << 14, 1024, 10}, {1ull << 28, 1024, 10}, {1ull << 28, 256, 4},
        {1ull << 28, 1024, 4}, {1ull << 28, 4096, 4}};
    if (csv)
        fprintf(csv, "section,nblocks,cps,dirty_bytes_per_cp,source_rss_kib,dest_rss_kib,ms_per_cp\n");
    printf("scale: sync mode over a pipe to a forked destination, every file sparse on disk\n");
    printf("%-9s %9s %11s %14s %14s %10s\n", "volume", "CPs", "MiB per CP", "source RSS MiB",
           "dest RSS MiB", "ms per CP");
    double base_ms = 0;
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        scale_row r = {runs[i].nblocks, runs[i].writes, runs[i].cps, 0, 0, 0, 0};
        run_scale(dir, &r);
        empty_dir(dir);
        if (r.err) {
            fprintf(stderr, "mirrorkit bench: scale run: %s: %s\n", mk_errname(r.err), mk_strerror(r.err));
            return r.err;
        }
        double vol_gib = (double)r.nblocks * 4096 / (1024.0 * 1024 * 1024);
        double per_cp = (double)r.writes_per_cp * 16 * 4096 / (1024.0 * 1024);
        char vol[32];
        if (vol_gib >= 1024)
            snprintf(vol, sizeof vol, "%.0f TiB", vol_gib / 1024);
        else
            snprintf(vol, sizeof vol, "%.0f MiB", vol_gib * 1024);
        printf("%-9s %9u %11.0f %14.1f %14.1f %10.1f", vol, r.cps, per_cp, r.src_rss_kib / 1024.0,
               r.dest_rss_kib / 1024.0, r.ms_per_cp);
        if (i == 2)
            base_ms = r.ms_per_cp;
        if (i > 2 && base_ms > 0)
            printf("   %.2f x the 16 MiB run", r.ms_per_cp / base_ms);
        printf("\n");
        if (csv)
            fprintf(csv, "scale,%llu,%u,%llu,%ld,%ld,%.3f\n", (unsigned long long)r.nblocks, r.cps,
                    (unsigned long long)(r.writes_per_cp * 16 * 4096), r.src_rss_kib, r.dest_rss_kib,
                    r.ms_per_cp);
        fflush(stdout);
    }
    return 0;
}

/* The bandwidth table, and its CSV if f is given. */
static int bench_bandwidth(bench_ctx *b, FILE *f)
{
    const mk_pair_config *base = &b->base;
    const char *dir = b->dir;
    static const int wls[] = {MK_WL_SEQ, MK_WL_BLOCK, MK_WL_SMALL, MK_WL_MIXED, MK_WL_HOT};
    bw_row rows[sizeof wls / sizeof wls[0]];
    int rc = 0;
    printf("bandwidth (SPEC.md 11): %llu x 4096-byte volume (%.0f MiB), sync mode, %u CPs x %llu "
           "writes, seed %llu\n",
           (unsigned long long)base->nblocks, mib(base->nblocks * 4096), base->cps,
           (unsigned long long)base->writes_per_cp, (unsigned long long)base->seed);
    printf("%-7s %10s %10s %11s %10s %10s %9s %10s %10s %10s %9s\n", "workload", "client MiB", "wire MiB",
           "wire/client", "CP MiB", "naive MiB", "CP/naive", "REF/naive", "rsync MiB", "wire/rsync",
           "CP/rsync");
    for (size_t i = 0; i < sizeof wls / sizeof wls[0] && !rc; i++) {
        bw_row *r = &rows[i];
        if ((rc = run_bandwidth(wls[i], base, dir, r)))
            break;
        double wc = ratio(r->wire, r->client), rn = ratio(r->ref, r->ref_naive);
        printf("%-8s %10.2f %10.2f %11.3f %10.2f %10.2f %8.2f%% %9.3f%% %10.2f %10.3f %9.3f\n",
               r->workload, mib(r->client), mib(r->wire), wc, mib(r->cp_phase), mib(r->naive),
               100 * ratio(r->cp_phase, r->naive), 100 * rn, mib(r->rsync_sent),
               ratio(r->wire, r->rsync_sent), ratio(r->cp_phase, r->rsync_sent));
        if (r->ref_naive && rn > 0.01) {
            printf("  target missed: REF bytes are %.3f%% of naive for wholly modified blocks (at most 1%%)\n", 100 * rn);
            b->missed = 1;
        }
        if (r->full_block && wc > 1.02) {
            printf("  target missed: wire is %.3f x client for a full-block workload (at most 1.02)\n", wc);
            b->missed = 1;
        }
        fflush(stdout);
    }
    if (rc)
        return rc;
    printf("wire = LOG + CP + session bytes; CP = the CP phase (DATA, REF, BEGIN, COMMIT); naive = every\n"
           "dirty block sent whole at the CP; REF/naive = REF bytes against the wholly modified blocks\n"
           "sent whole; rsync MiB = total bytes rsync sent to resync each CP image from the previous\n"
           "(wire/rsync counts the log stream too, which gives sync mode its durability; rsync has none).\n");
    if (!f)
        return 0;
    fprintf(f, "section,workload,client_bytes,wire_bytes,cp_phase_bytes,naive_bytes,ref_bytes,"
               "ref_naive_bytes,rsync_literal_bytes,rsync_sent_bytes\n");
    for (size_t i = 0; i < sizeof wls / sizeof wls[0]; i++)
        fprintf(f, "bandwidth,%s,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n", rows[i].workload,
                (unsigned long long)rows[i].client, (unsigned long long)rows[i].wire,
                (unsigned long long)rows[i].cp_phase, (unsigned long long)rows[i].naive,
                (unsigned long long)rows[i].ref, (unsigned long long)rows[i].ref_naive,
                (unsigned long long)rows[i].rsync_literal, (unsigned long long)rows[i].rsync_sent);
    return 0;
}

/* ---- speed: the simulator and the fuzz harnesses ----------------------------- */

/* execs_per_sec of a short afl-fuzz run of build/fuzz-afl/fuzz/<t>, or -1
 * if afl-fuzz or the harness is missing (make fuzz-build). */
static double fuzz_execs(const char *t, const char *dir)
{
    char bin[256], cmd[2600], stats[1300], line[256];
    snprintf(bin, sizeof bin, "build/fuzz-afl/fuzz/%s", t);
    if (access(bin, X_OK) || system("command -v afl-fuzz >/dev/null 2>&1"))
        return -1;
    int mut = !strcmp(t, "fuzz_log") || !strcmp(t, "fuzz_sync") || !strcmp(t, "fuzz_source");
    snprintf(cmd, sizeof cmd,
             "AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 %s "
             "afl-fuzz -i fuzz/corpus/%s -o '%.1000s/%s' -x fuzz/%s.dict -V 10 -- %s >/dev/null 2>&1",
             mut ? "AFL_CUSTOM_MUTATOR_LIBRARY=build/fuzz-afl/fuzz/mk_mutator.so" : "", t, dir, t, t, bin);
    if (system(cmd))
        return -1;
    snprintf(stats, sizeof stats, "%.1000s/%s/default/fuzzer_stats", dir, t);
    FILE *f = fopen(stats, "r");
    double v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "execs_per_sec", 13))
            v = strtod(strchr(line, ':') + 1, NULL);
    if (f)
        fclose(f);
    snprintf(cmd, sizeof cmd, "rm -rf '%.1000s/%s'", dir, t);
    if (system(cmd))
        v = -1;
    return v;
}

/* Simulator seeds per second with one and two worker processes, and the
 * execs per second of every fuzz harness in a 10 s afl-fuzz run. */
static int bench_speed(bench_ctx *b, FILE *csv)
{
    static const char *const harnesses[] = {"fuzz_log", "fuzz_sync", "fuzz_source",
                                            "fuzz_logstore", "fuzz_table", "fuzz_scenario"};
    if (csv)
        fprintf(csv, "section,what,per_second\n");
    printf("speed: the simulator (mirrorkit sim) and the fuzz harnesses (10 s of afl-fuzz each)\n");
    for (int jobs = 1; jobs <= 2; jobs++) {
        mk_sim_options o = {400, 1, jobs, 0, 0, NULL};
        mk_sim_stats st;
        int rc = mk_sim_run(&o, &st);
        if (rc || st.failed || st.errors)
            return rc ? rc : MK_EVERIFY;
        double v = (double)st.seeds / ((double)st.ns / 1e9);
        printf("  sim, %d job%s %10.0f seeds/s\n", jobs, jobs > 1 ? "s" : " ", v);
        if (csv)
            fprintf(csv, "speed,sim_seeds_jobs_%d,%.1f\n", jobs, v);
    }
    for (size_t i = 0; i < sizeof harnesses / sizeof harnesses[0]; i++) {
        double v = fuzz_execs(harnesses[i], b->dir);
        if (v < 0) {
            printf("  %-14s not measured: needs afl-fuzz and make fuzz-build\n", harnesses[i]);
            continue;
        }
        printf("  %-14s %10.0f execs/s\n", harnesses[i], v);
        if (csv)
            fprintf(csv, "speed,%s,%.1f\n", harnesses[i], v);
        fflush(stdout);
    }
    return 0;
}

static void bench_help(void)
{
    printf("usage: mirrorkit bench [--section throughput|latency|bandwidth|scale|speed] [--csv DIR]\n"
           "                       [--blocks N] [--cps N] [--writes N] [--seed S]\n"
           "\n"
           "Measures the pair against baselines taken in the same run.\n"
           "\n"
           "throughput: client MB/s of the pair in every mode over a socketpair to a\n"
           "forked destination (pipe) and over loopback TCP, for sequential 64 KiB and\n"
           "random 4 KiB writes, next to the raw transport carrying the same number of\n"
           "bytes (median of 3 each); files in $TMPDIR (use a tmpfs to leave disks out).\n"
           "\n"
           "latency: sync-mode write acknowledgement p50/p99/p99.9 over both transports,\n"
           "next to the raw round trip of a LOG-sized message and a LOG_ACK-sized\n"
           "answer; CP commit time (CP_BEGIN to CP_ACK) for 16, 256 and 4096 blocks.\n"
           "\n"
           "bandwidth (SPEC.md section 11): for each workload - seq (full-block\n"
           "sequential), block (random 4 KiB), small (random 512-byte partial), mixed\n"
           "(70%% whole / 30%% unaligned) and hot (overwrites of a hot 10%%) - the pair\n"
           "runs in sync mode over the simulated link, and after every CP rsync\n"
           "(--inplace --no-whole-file) resyncs a copy of the previous CP image to it.\n"
           "Targets (exit 1 if missed): CP-phase bytes of wholly modified blocks at\n"
           "most 1%% of a naive full-block CP; total wire bytes at most 1.02 x client\n"
           "bytes for full-block workloads.  Needs rsync.\n"
           "\n"
           "scale: peak RSS of the source and of the forked destination, every file\n"
           "sparse on disk, for a 64 MiB and a 1 TiB volume with 64 MiB of dirty data\n"
           "per CP, and the time per CP with 16, 64 and 256 MiB of dirty data.\n"
           "\n"
           "speed: simulator seeds/s with one and two jobs, and the execs/s of every fuzz\n"
           "harness in 10 s of afl-fuzz (needs make fuzz-build; run from the source tree).\n"
           "\n"
           "  --section S  only this section (default: all, in this order)\n"
           "  --csv DIR    also write DIR/<section>.csv\n"
           "  --blocks N   bandwidth: volume blocks of 4096 bytes (default 16384: 64 MiB)\n"
           "  --cps N      bandwidth: CPs per workload (default 10)\n"
           "  --writes N   bandwidth: writes per CP (default 1000)\n"
           "  --seed S     bandwidth: workload seed (default 1)\n");
}

enum { O_CSV = 256, O_BLOCKS, O_CPS, O_WRITES, O_SEED, O_SECTION, O_HELP };

int mk_cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"csv", 1, 0, O_CSV},       {"blocks", 1, 0, O_BLOCKS},
                                         {"cps", 1, 0, O_CPS},       {"writes", 1, 0, O_WRITES},
                                         {"seed", 1, 0, O_SEED},     {"help", 0, 0, O_HELP},
                                         {"section", 1, 0, O_SECTION}, {0, 0, 0, 0}};
    const char *only = NULL; /* --section */
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
        case O_SECTION:
            if (strcmp(optarg, "throughput") && strcmp(optarg, "latency") &&
                strcmp(optarg, "bandwidth") && strcmp(optarg, "scale") && strcmp(optarg, "speed"))
                return mk_usage_error("bench", "--section must be throughput, latency, bandwidth, scale or speed, not '%s'", optarg);
            only = optarg;
            break;
        case O_HELP: bench_help(); return EXIT_OK;
        default: return mk_usage_error("bench", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if ((!only || !strcmp(only, "bandwidth")) && system("rsync --version >/dev/null 2>&1") != 0) {
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
    bench_ctx b = {dir, {0}, 0};
    mk_pair_defaults(&b.base);
    b.base.nblocks = blocks;
    b.base.block_size = 4096;
    b.base.mode = MK_MODE_SYNC;
    b.base.cps = (uint32_t)cps;
    b.base.writes_per_cp = writes;
    b.base.seed = seed;
    b.base.out = NULL;

    if (csv && (mkdir(csv, 0755) && errno != EEXIST)) {
        fprintf(stderr, "mirrorkit bench: MK_EIO: cannot create %s\n", csv);
        rmdir(dir);
        return EXIT_IO;
    }
    /* Every figure is only as good as the machine it was taken on. */
    struct utsname u;
    char model[128] = "?", line[256];
    FILE *ci = fopen("/proc/cpuinfo", "r");
    while (ci && fgets(line, sizeof line, ci))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (ci)
        fclose(ci);
    time_t now = time(NULL);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    if (uname(&u) == 0)
        printf("machine: %s, %ld CPUs (%s), %s %s %s\n", day, sysconf(_SC_NPROCESSORS_ONLN), model,
               u.sysname, u.release, u.machine);
    printf("command: mirrorkit");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n\n");
    /* The sections in the order they print; each writes DIR/<name>.csv. */
    static const struct {
        const char *name;
        int (*run)(bench_ctx *, FILE *);
    } sections[] = {{"throughput", bench_throughput}, {"latency", bench_latency},
                    {"bandwidth", bench_bandwidth},   {"scale", bench_scale},
                    {"speed", bench_speed}};
    int rc = 0, first = 1;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0] && !rc; i++) {
        if (only && strcmp(only, sections[i].name) != 0)
            continue;
        char path[1200];
        FILE *f = NULL;
        snprintf(path, sizeof path, "%.1100s/%s.csv", csv ? csv : "", sections[i].name);
        if (csv && !(f = fopen(path, "w"))) {
            rc = MK_EIO;
            break;
        }
        if (!first)
            printf("\n");
        first = 0;
        rc = sections[i].run(&b, f);
        if (f && fclose(f) && !rc)
            rc = MK_EIO;
    }
    rmdir(dir);
    if (rc) {
        fprintf(stderr, "mirrorkit bench: %s: %s\n", mk_errname(rc), mk_strerror(rc));
        return mk_exit_code(rc);
    }
    return b.missed ? EXIT_VERIFY : EXIT_OK;
}
