/*
 * mk_bench.c - `mirrorkit bench` (mk_bench.h): each section measures the
 * pair next to a baseline taken in the same run.
 *
 *   throughput  client MB/s of the pair, every mode, over pipes, a
 *               socketpair and loopback TCP, against the raw transport
 *               moving as many bytes and against the storage floor (the
 *               same bytes written to a volume, sent, logged and copied
 *               into a mirror, with nothing else done)
 *   latency     sync write acknowledgements against the raw round trip of
 *               the same message sizes; CP commit time by CP size
 *   bandwidth   SPEC.md section 11's byte counts per workload against rsync
 *               resyncing the same CP images (counts: the same seed gives
 *               the same table on any machine)
 *   verify      `mirrorkit verify` on two images against cmp and xxhsum -H3
 *               on the same images; what the per-CP check adds to a run
 *   scale       peak RSS of both processes on a 1 TiB sparse volume against
 *               a 64 MiB one; time per CP as dirty data grows
 *   speed       simulator seeds/s and fuzz harness execs/s
 *
 * Every timing is the median of --rounds runs (default 3) with the fastest
 * and the slowest; the report starts with the machine and the command that
 * reproduces it, and ends with the targets of README.md's performance
 * section, held or missed.
 */
#include "mk_bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_net.h"
#include "mk_pair.h"
#include "mk_prng.h"
#include "mk_sim.h"
#include "mk_wire.h"
#include "mk_workload.h"

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }
static double ratio(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- statistics ------------------------------------------------------------ */

/* The median of repeated runs, with the fastest and the slowest. */
typedef struct stat3 {
    double med, min, max;
} stat3;

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v (n >= 1 values) and returns its median, minimum and maximum. */
static stat3 stat_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return (stat3){med, v[0], v[n - 1]};
}

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

/* ---- the run ------------------------------------------------------------- */

#define MAX_TARGETS 64

/* One target of README.md's performance section and how this run fared. */
typedef struct target {
    char what[160], figure[80];
    int held;
} target;

/* What every section gets: the work directory, the bandwidth section's
 * pair configuration, the repetitions, and the targets judged so far. */
typedef struct bench_ctx {
    const char *dir;
    mk_pair_config base;
    int rounds;
    uint64_t verify_mib;
    uint32_t fuzz_seconds;
    target targets[MAX_TARGETS];
    int ntargets;
    /* --transport, --mode, --load: the part of the throughput matrix to
     * run (and the transports of latency); each a bit per value */
    unsigned transports, modes, loads;
} bench_ctx;

static void judge(bench_ctx *b, int held, const char *what, const char *fmt, double v)
{
    if (b->ntargets == MAX_TARGETS)
        return;
    target *t = &b->targets[b->ntargets++];
    snprintf(t->what, sizeof t->what, "%s", what);
    snprintf(t->figure, sizeof t->figure, fmt, v);
    t->held = held;
}

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

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return MK_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return MK_EIO;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int reap_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return MK_EIO;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : MK_EIO;
}

/* ---- raw links: the transport with nothing on it ------------------------- */

/* The accepting end of a raw TCP baseline: without Nagle, as the pair's
 * connecting end is (mk_net_connect), so the floor is the transport's. */
static int accept_nodelay(int lfd)
{
    int one = 1, fd = accept(lfd, NULL, NULL);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Forks a child at the far end of a raw link set up as the pair's own
 * transport t is (MK_T_PIPE: a pipe each way of 1 MiB; MK_T_SOCKETPAIR;
 * MK_T_TCP: loopback without Nagle).  Returns 0 in the child and the
 * child's pid in the parent, each with its read end in *rfd and its write
 * end in *wfd (one socket for both but for pipes); -1 on failure (no
 * child).  The child exits by itself; the parent closes its ends and reaps
 * it. */
static pid_t raw_fork(int t, int *rfd, int *wfd)
{
    int a[2] = {-1, -1}, b[2] = {-1, -1}, lfd = -1;
    uint16_t port = 0;
    char addr[32];
    if (t == MK_T_TCP) {
        if (mk_net_listen("127.0.0.1:0", &lfd, &port))
            return -1;
        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    } else if (t == MK_T_PIPE) {
        if (pipe(a))
            return -1;
        if (pipe(b)) {
            close(a[0]);
            close(a[1]);
            return -1;
        }
        (void)fcntl(a[1], F_SETPIPE_SZ, 1 << 20);
        (void)fcntl(b[1], F_SETPIPE_SZ, 1 << 20);
    } else if (socketpair(AF_UNIX, SOCK_STREAM, 0, a)) {
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (t == MK_T_TCP) {
            close(lfd);
            if (mk_net_connect(addr, rfd))
                _exit(1);
            *wfd = *rfd;
        } else if (t == MK_T_PIPE) {
            close(a[1]);
            close(b[0]);
            *rfd = a[0];
            *wfd = b[1];
        } else {
            close(a[0]);
            *rfd = *wfd = a[1];
        }
        return 0;
    }
    if (t == MK_T_TCP) {
        *rfd = *wfd = pid < 0 ? -1 : accept_nodelay(lfd);
        close(lfd);
    } else if (t == MK_T_PIPE) {
        close(a[0]);
        close(b[1]);
        *rfd = b[0];
        *wfd = a[1];
    } else {
        close(a[1]);
        *rfd = *wfd = a[0];
    }
    if (pid > 0 && *rfd < 0) {
        reap_child(pid);
        return -1;
    }
    return pid;
}

static void raw_close(int rfd, int wfd)
{
    if (wfd != rfd)
        close(wfd);
    close(rfd);
}

#define RAW_CHUNK (1u << 20)

/* Bytes per second of n bytes written in 1 MiB calls through transport t
 * to a forked reader, until it answers: the physical limit of the pair's
 * transport on this machine, now. */
static double raw_bps(int t, uint64_t n)
{
    uint8_t *buf = calloc(1, RAW_CHUNK);
    int rfd, wfd;
    pid_t pid = buf ? raw_fork(t, &rfd, &wfd) : -1;
    if (pid == 0) {
        for (uint64_t left = n; left;) {
            ssize_t r = read(rfd, buf, left < RAW_CHUNK ? (size_t)left : RAW_CHUNK);
            if (r <= 0)
                _exit(1);
            left -= (uint64_t)r;
        }
        _exit(write_all(wfd, buf, 1) ? 1 : 0);
    }
    double bps = 0;
    if (pid > 0) {
        uint64_t t0 = now_ns(), left = n;
        int rc = 0;
        while (left && !rc) {
            size_t k = left < RAW_CHUNK ? (size_t)left : RAW_CHUNK;
            rc = write_all(wfd, buf, k);
            left -= k;
        }
        if (!rc && read_all(rfd, buf, 1) == 0)
            bps = (double)n / ((double)(now_ns() - t0) / 1e9);
        raw_close(rfd, wfd);
        if (reap_child(pid))
            bps = 0;
    }
    free(buf);
    return bps;
}

/*
 * The storage floor: what any implementation of the design must do with
 * the client's bytes, and nothing more.  The source writes each client
 * write to its volume and sends the bytes on (1 MiB at a time), and syncs
 * the volume at each CP; the destination appends what arrives to its log,
 * and at each CP syncs the log, copies the CP's bytes into its mirror
 * with copy_file_range, syncs the mirror and empties the log.  No framing,
 * no hashing, no acknowledgement, no random placement in the mirror: a
 * floor no implementation can go below, measured with the same workload
 * (and the same cost of generating it) as the pair's.  The clock starts
 * at CP `untimed` (0: the whole run).
 */
static double floor_bps(int t, const mk_pair_config *cfg, const char *dir, uint32_t untimed)
{
    uint64_t vbytes = cfg->nblocks * cfg->block_size, total = 0;
    uint64_t *cp_bytes = calloc(cfg->cps, sizeof *cp_bytes);
    uint8_t *buf = malloc(RAW_CHUNK);
    mk_workload w;
    char vol[1200], logp[1200], mir[1200];
    double bps = 0;
    if (!cp_bytes || !buf || mk_workload_init(&w, cfg->workload, cfg->seed, cfg->nblocks, cfg->block_size)) {
        free(cp_bytes);
        free(buf);
        return 0;
    }
    /* Each CP's byte count, so that the destination knows when a CP ends;
     * found before the clock starts. */
    for (uint32_t k = 0; k < cfg->cps; k++)
        for (uint64_t i = 0; i < cfg->writes_per_cp; i++) {
            uint64_t off;
            uint32_t len;
            const uint8_t *data;
            mk_workload_next(&w, &off, &len, &data);
            cp_bytes[k] += len;
        }
    mk_workload_free(&w);
    snprintf(vol, sizeof vol, "%.1100s/floor.vol", dir);
    snprintf(logp, sizeof logp, "%.1100s/floor.log", dir);
    snprintf(mir, sizeof mir, "%.1100s/floor.mirror", dir);
    int rfd, wfd;
    pid_t pid = raw_fork(t, &rfd, &wfd);
    if (pid == 0) {
        int lf = open(logp, O_RDWR | O_CREAT | O_TRUNC, 0644);
        int mf = open(mir, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (lf < 0 || mf < 0 || ftruncate(mf, (off_t)vbytes))
            _exit(1);
        uint64_t at = 0; /* where the next CP lands in the mirror */
        for (uint32_t k = 0; k < cfg->cps; k++) {
            uint64_t end = 0;
            while (end < cp_bytes[k]) {
                uint64_t left = cp_bytes[k] - end;
                ssize_t r = read(rfd, buf, left < RAW_CHUNK ? (size_t)left : RAW_CHUNK);
                if (r <= 0 || pwrite(lf, buf, (size_t)r, (off_t)end) != r)
                    _exit(1);
                end += (uint64_t)r;
            }
            if (fdatasync(lf))
                _exit(1);
            loff_t in = 0;
            for (uint64_t left = end < vbytes ? end : vbytes; left;) {
                loff_t out = (loff_t)at;
                uint64_t room = vbytes - at, k2 = left < room ? left : room;
                ssize_t c = copy_file_range(lf, &in, mf, &out, (size_t)k2, 0);
                if (c <= 0)
                    _exit(1);
                left -= (uint64_t)c;
                at = (at + (uint64_t)c) % vbytes;
            }
            if (fdatasync(mf) || ftruncate(lf, 0))
                _exit(1);
        }
        _exit(write_all(wfd, buf, 1) ? 1 : 0);
    }
    int vf = pid > 0 ? open(vol, O_RDWR | O_CREAT | O_TRUNC, 0644) : -1;
    if (pid > 0 && vf >= 0 && mk_workload_init(&w, cfg->workload, cfg->seed, cfg->nblocks, cfg->block_size) == 0) {
        uint64_t t0 = now_ns();
        size_t fill = 0;
        int rc = 0;
        for (uint32_t k = 0; k < cfg->cps && !rc; k++) {
            if (k == untimed) { /* the clock starts at this CP */
                t0 = now_ns();
                total = 0;
            }
            for (uint64_t i = 0; i < cfg->writes_per_cp && !rc; i++) {
                uint64_t off;
                uint32_t len;
                const uint8_t *data;
                mk_workload_next(&w, &off, &len, &data);
                if (pwrite(vf, data, len, (off_t)off) != (ssize_t)len)
                    rc = MK_EIO;
                for (uint32_t done = 0; done < len && !rc;) {
                    uint32_t n = len - done < RAW_CHUNK - fill ? len - done : (uint32_t)(RAW_CHUNK - fill);
                    memcpy(buf + fill, data + done, n);
                    fill += n;
                    done += n;
                    if (fill == RAW_CHUNK) {
                        rc = write_all(wfd, buf, fill);
                        fill = 0;
                    }
                }
                total += len;
            }
            if (!rc && fill) {
                rc = write_all(wfd, buf, fill);
                fill = 0;
            }
            if (!rc && fdatasync(vf))
                rc = MK_EIO;
        }
        if (!rc && read_all(rfd, buf, 1) == 0)
            bps = (double)total / ((double)(now_ns() - t0) / 1e9);
        mk_workload_free(&w);
    }
    if (vf >= 0)
        close(vf);
    if (pid > 0) {
        raw_close(rfd, wfd);
        if (reap_child(pid))
            bps = 0;
    }
    unlink(vol);
    unlink(logp);
    unlink(mir);
    free(cp_bytes);
    free(buf);
    return bps;
}

/* ---- throughput ------------------------------------------------------------ */

static const int bench_transports[] = {MK_T_PIPE, MK_T_SOCKETPAIR, MK_T_TCP};
#define NTRANSPORTS (sizeof bench_transports / sizeof bench_transports[0])

/* The throughput runs' pair: 64 MiB volume of 4 KiB blocks, 4 CPs of
 * 64 MiB sequential (16 blocks a write) or 32 MiB random single-block
 * writes; files in dir, which a tmpfs keeps off any disk. */
static void throughput_config(mk_pair_config *cfg, int t, int mode, int wl, const char *dir)
{
    mk_pair_defaults(cfg);
    cfg->nblocks = 16384;
    cfg->block_size = 4096;
    cfg->mode = mode;
    cfg->workload = wl;
    cfg->transport = t;
    cfg->cps = 4;
    cfg->writes_per_cp = wl == MK_WL_SEQ ? 1024 : 8192;
    cfg->verify = MK_VERIFY_OFF;
    cfg->workdir = dir;
    cfg->store_dir = dir;
    cfg->out = NULL;
}

/* The pair's client throughput, bytes per second, over rounds runs (each
 * a fresh pair); *client is the client bytes of one run. */
static int pair_bps(const mk_pair_config *cfg, int rounds, stat3 *out, uint64_t *client)
{
    double v[16];
    for (int i = 0; i < rounds; i++) {
        mk_pair_result res;
        empty_dir(cfg->workdir);
        int rc = mk_pair_run(cfg, &res);
        if (rc)
            return rc;
        *client = res.stats.client_bytes;
        v[i] = (double)res.stats.client_bytes / ((double)res.run_ns / 1e9);
    }
    empty_dir(cfg->workdir);
    *out = stat_of(v, rounds);
    return 0;
}

static int bench_throughput(bench_ctx *b, FILE *csv)
{
    static const int modes[] = {MK_MODE_SYNC, MK_MODE_SEMI, MK_MODE_ASYNC};
    static const int wls[] = {MK_WL_SEQ, MK_WL_BLOCK};
    const char *dir = b->dir;
    double worst_fast = 1e9; /* the lowest pair/raw of async and semi-sync */
    char worst_what[64] = "";
    if (csv)
        fprintf(csv, "section,transport,mode,workload,client_bytes,pair_median,pair_min,pair_max,"
                     "raw_median,raw_min,raw_max,floor_median,floor_min,floor_max\n");
    printf("throughput: 64 MiB volume, 4 KiB blocks, 4 CPs per run, median (min-max) of %d runs,\n"
           "files in %s; MB/s of client data; raw = the transport alone, floor = the storage\n"
           "floor (volume write, send, log append, copy into the mirror, syncs)\n",
           b->rounds, dir);
    printf("%-10s %-9s %-5s %22s %8s %8s %8s %10s\n", "transport", "mode", "load",
           "pair MB/s (min-max)", "raw", "floor", "pair/raw", "pair/floor");
    /* One run first, untimed: the first touch of memory and files of a
     * fresh machine is slower than any later one. */
    mk_pair_config warm;
    mk_pair_result wres;
    throughput_config(&warm, MK_T_PIPE, MK_MODE_ASYNC, MK_WL_SEQ, dir);
    int rc = mk_pair_run(&warm, &wres);
    empty_dir(dir);
    if (rc)
        return rc;
    for (size_t t = 0; t < NTRANSPORTS; t++)
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
            for (size_t w = 0; w < sizeof wls / sizeof wls[0]; w++) {
                if (!(b->transports >> t & 1) || !(b->modes >> m & 1) || !(b->loads >> w & 1))
                    continue;
                mk_pair_config cfg;
                throughput_config(&cfg, bench_transports[t], modes[m], wls[w], dir);
                stat3 pair;
                uint64_t client = 0;
                if ((rc = pair_bps(&cfg, b->rounds, &pair, &client)))
                    return rc;
                double raw[16], flo[16];
                for (int i = 0; i < b->rounds; i++) {
                    raw[i] = raw_bps(bench_transports[t], client);
                    flo[i] = floor_bps(bench_transports[t], &cfg, dir, 0);
                }
                stat3 r = stat_of(raw, b->rounds), f = stat_of(flo, b->rounds);
                if (r.min <= 0 || f.min <= 0)
                    return MK_EIO;
                char range[64];
                snprintf(range, sizeof range, "%.0f (%.0f-%.0f)", pair.med / 1e6, pair.min / 1e6,
                         pair.max / 1e6);
                printf("%-10s %-9s %-5s %22s %8.0f %8.0f %8.3f %10.3f\n",
                       mk_transport_name(bench_transports[t]), mk_mode_name(modes[m]),
                       mk_workload_name(wls[w]), range, r.med / 1e6, f.med / 1e6, pair.med / r.med,
                       pair.med / f.med);
                if (csv)
                    fprintf(csv, "throughput,%s,%s,%s,%llu,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f\n",
                            mk_transport_name(bench_transports[t]), mk_mode_name(modes[m]),
                            mk_workload_name(wls[w]), (unsigned long long)client, pair.med, pair.min,
                            pair.max, r.med, r.min, r.max, f.med, f.min, f.max);
                if (modes[m] != MK_MODE_SYNC && pair.med / r.med < worst_fast) {
                    worst_fast = pair.med / r.med;
                    snprintf(worst_what, sizeof worst_what, "%s, %s, %s",
                             mk_transport_name(bench_transports[t]), mk_mode_name(modes[m]),
                             mk_workload_name(wls[w]));
                }
                fflush(stdout);
            }
    char what[160];
    snprintf(what, sizeof what, "async/semi-sync pair >= 0.7 x raw (lowest: %s)", worst_what);
    if (worst_what[0])
        judge(b, worst_fast >= 0.7, what, "%.3f", worst_fast);
    return 0;
}

/* ---- latency: sync-mode acknowledgements and CP commits --------------------- */

/* Round trips of a LOG-sized message (a 4 KiB transfer's frame) answered
 * with a LOG_ACK-sized one, through transport t to a forked echo: the
 * transport's own floor under a sync write. */
static int raw_rtt(int t, size_t n, uint64_t *ns)
{
    enum { REQ = 4096 + MK_FRAME_OVERHEAD + MK_LOG_HDR_LEN, ACK = MK_FRAME_OVERHEAD + 8 };
    static uint8_t buf[REQ];
    int rfd, wfd;
    pid_t pid = raw_fork(t, &rfd, &wfd);
    if (pid == 0) {
        for (size_t i = 0; i < n; i++)
            if (read_all(rfd, buf, REQ) || write_all(wfd, buf, ACK))
                _exit(1);
        _exit(0);
    }
    if (pid < 0)
        return MK_EIO;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t t0 = now_ns();
        rc = write_all(wfd, buf, REQ);
        if (!rc)
            rc = read_all(rfd, buf, ACK);
        ns[i] = now_ns() - t0;
    }
    raw_close(rfd, wfd);
    return reap_child(pid) ? MK_EIO : rc;
}

#define LAT_WRITES 2000
#define LAT_CPS 21

static void latency_row(FILE *csv, int t, const char *what, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, u64_cmp);
    printf("%-10s %-22s %9.1f %9.1f %9.1f %9.1f %9.1f\n", mk_transport_name(t), what,
           pct_us(ns, n, 0.5), pct_us(ns, n, 0.99), pct_us(ns, n, 0.999), pct_us(ns, n, 0),
           pct_us(ns, n, 1));
    if (csv)
        fprintf(csv, "latency,%s,%s,%zu,%.1f,%.1f,%.1f,%.1f,%.1f\n", mk_transport_name(t), what, n,
                pct_us(ns, n, 0.5), pct_us(ns, n, 0.99), pct_us(ns, n, 0.999), pct_us(ns, n, 0),
                pct_us(ns, n, 1));
}

/*
 * Sync mode: every random 4 KiB write waits for the LOG_ACK that covers it
 * (5.1), so the time of one mk_pair_write is the client's acknowledgement
 * latency.  Then LAT_CPS CPs each of 16, 256 and 4096 dirty blocks, each
 * timed from CP_BEGIN to its CP_ACK.
 */
static int bench_latency(bench_ctx *b, FILE *csv)
{
    const char *dir = b->dir;
    static const uint32_t cp_blocks[] = {16, 256, 4096};
    uint64_t *ns = malloc(LAT_WRITES * sizeof *ns);
    int rc = ns ? 0 : MK_ENOMEM;
    if (csv)
        fprintf(csv, "section,transport,what,samples,p50_us,p99_us,p999_us,min_us,max_us\n");
    printf("latency: sync mode, random 4 KiB writes, 64 MiB volume, files in %s;\n"
           "%d writes and %d CPs of each size per transport\n", dir, LAT_WRITES, LAT_CPS);
    printf("%-10s %-22s %9s %9s %9s %9s %9s\n", "transport", "what", "p50 us", "p99 us",
           "p99.9 us", "min us", "max us");
    for (size_t t = 0; t < NTRANSPORTS && !rc; t++) {
        int tr = bench_transports[t];
        if (!(b->transports >> t & 1))
            continue;
        mk_pair_config cfg;
        mk_pair *p = NULL;
        mk_workload w;
        throughput_config(&cfg, tr, MK_MODE_SYNC, MK_WL_BLOCK, dir);
        empty_dir(dir);
        if ((rc = raw_rtt(tr, LAT_WRITES, ns)))
            break;
        latency_row(csv, tr, "raw round trip", ns, LAT_WRITES);
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
            latency_row(csv, tr, "sync write ack", ns, LAT_WRITES);
            rc = mk_pair_cp(p); /* the writes above make CP 1 */
        }
        for (size_t k = 0; k < sizeof cp_blocks / sizeof cp_blocks[0] && !rc; k++) {
            uint64_t cpns[LAT_CPS];
            for (int j = 0; j < LAT_CPS && !rc; j++) {
                for (uint32_t i = 0; i < cp_blocks[k] && !rc; i++) {
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
            char what[40];
            snprintf(what, sizeof what, "CP of %u blocks", cp_blocks[k]);
            if (!rc)
                latency_row(csv, tr, what, cpns, LAT_CPS);
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

/* ---- bandwidth: SPEC.md 11's counts against rsync ------------------------------ */

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
    snprintf(cur, sizeof cur, "%.1100s/cp.img", dir);
    snprintf(prev, sizeof prev, "%.1100s/mirror.img", dir);
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

/* The bandwidth table, and its CSV if f is given. */
static int bench_bandwidth(bench_ctx *b, FILE *f)
{
    const mk_pair_config *base = &b->base;
    const char *dir = b->dir;
    static const int wls[] = {MK_WL_SEQ, MK_WL_BLOCK, MK_WL_SMALL, MK_WL_MIXED, MK_WL_HOT};
    bw_row rows[sizeof wls / sizeof wls[0]];
    double worst_ref = 0, worst_wire = 0;
    int rc = 0;
    printf("bandwidth (SPEC.md 11): %llu x 4096-byte volume (%.0f MiB), sync mode, %u CPs x %llu "
           "writes, seed %llu; byte counts, the same on every run\n",
           (unsigned long long)base->nblocks, mib(base->nblocks * 4096), base->cps,
           (unsigned long long)base->writes_per_cp, (unsigned long long)base->seed);
    printf("%-7s %10s %10s %11s %10s %10s %9s %10s %11s %10s %10s %9s\n", "workload", "client MiB",
           "wire MiB", "wire/client", "CP MiB", "naive MiB", "CP/naive", "REF/naive", "rsync lit.",
           "rsync MiB", "wire/rsync", "CP/rsync");
    for (size_t i = 0; i < sizeof wls / sizeof wls[0] && !rc; i++) {
        bw_row *r = &rows[i];
        if ((rc = run_bandwidth(wls[i], base, dir, r)))
            break;
        double wc = ratio(r->wire, r->client), rn = ratio(r->ref, r->ref_naive);
        printf("%-8s %10.2f %10.2f %11.4f %10.2f %10.2f %8.2f%% %9.3f%% %11.2f %10.2f %10.3f %9.3f\n",
               r->workload, mib(r->client), mib(r->wire), wc, mib(r->cp_phase), mib(r->naive),
               100 * ratio(r->cp_phase, r->naive), 100 * rn, mib(r->rsync_literal),
               mib(r->rsync_sent), ratio(r->wire, r->rsync_sent), ratio(r->cp_phase, r->rsync_sent));
        if (r->ref_naive && rn > worst_ref)
            worst_ref = rn;
        if (r->full_block && wc > worst_wire)
            worst_wire = wc;
        fflush(stdout);
    }
    if (rc)
        return rc;
    printf("wire = LOG + CP + session bytes; CP = the CP phase (DATA, REF, BEGIN, COMMIT); naive = every\n"
           "dirty block sent whole at the CP; REF/naive = REF bytes against the wholly modified blocks\n"
           "sent whole; rsync lit. = the literal (unmatched) MiB rsync sent to resync each CP image\n"
           "from the previous, rsync MiB = all it sent (wire/rsync counts the log stream too, which\n"
           "gives sync mode its durability; rsync has none).\n");
    judge(b, worst_ref <= 0.01, "CP-phase REF bytes <= 1% of naive for wholly modified blocks (worst)",
          "%.3f%%", 100 * worst_ref);
    judge(b, worst_wire <= 1.02, "wire <= 1.02 x client bytes, full-block workloads (worst)", "%.4f",
          worst_wire);
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

/* ---- verify: the verifier against cmp and xxhsum --------------------------- */

/* Runs argv with stdout and stderr on /dev/null; the seconds it took, or
 * a negative value if it did not exit with want. */
static double timed_run(char *const argv[], int want)
{
    uint64_t t0 = now_ns();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != want)
        return -1;
    return (double)(now_ns() - t0) / 1e9;
}

/* Writes an image of n bytes of seeded random data (or a copy of from,
 * when given) to path, with the byte at flip (if < n) inverted. */
static int make_image(const char *path, uint64_t n, const char *from, uint64_t flip)
{
    uint8_t *buf = malloc(RAW_CHUNK);
    int in = from ? open(from, O_RDONLY) : -1;
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = buf && out >= 0 && (!from || in >= 0) ? 0 : MK_EIO;
    mk_prng rng;
    mk_prng_seed(&rng, 0x62656e6368ull);
    for (uint64_t off = 0; off < n && !rc; off += RAW_CHUNK) {
        size_t k = n - off < RAW_CHUNK ? (size_t)(n - off) : RAW_CHUNK;
        if (from)
            rc = read_all(in, buf, k);
        else
            mk_prng_fill(&rng, buf, k);
        if (!rc && flip >= off && flip < off + k)
            buf[flip - off] ^= 0xFF;
        if (!rc)
            rc = write_all(out, buf, k);
    }
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out))
        rc = MK_EIO;
    free(buf);
    return rc;
}

/* The per-CP check's cost: the demo's pair (mixed workload, 64 MiB, 10
 * CPs) with --verify off, incremental and full, alternated round by
 * round, and the share of the incremental run spent in its per-CP checks
 * by the run's own clock. */
static int verify_overhead(bench_ctx *b, FILE *csv, int transport)
{
    static const int kinds[] = {MK_VERIFY_OFF, MK_VERIFY_INCREMENTAL, MK_VERIFY_FULL};
    static const char *const names[] = {"off", "incremental", "full"};
    double v[3][16], share[16], final_share[16];
    /* Round -1 is not timed: the first run of a process pays for the
     * memory it is the first to touch. */
    for (int r = -1; r < b->rounds; r++)
        for (int k = 0; k < 3; k++) {
            mk_pair_config cfg;
            mk_pair_result res;
            mk_pair_defaults(&cfg);
            cfg.transport = transport;
            cfg.workdir = b->dir;
            cfg.verify = kinds[k];
            cfg.out = NULL;
            empty_dir(b->dir);
            int rc = mk_pair_run(&cfg, &res);
            if (rc)
                return rc;
            if (r < 0)
                continue;
            v[k][r] = (double)res.run_ns / 1e6;
            if (kinds[k] == MK_VERIFY_INCREMENTAL) {
                share[r] = 100.0 * (double)res.verify_cp_ns / (double)res.run_ns;
                final_share[r] = 100.0 * (double)res.verify_final_ns / (double)res.run_ns;
            }
        }
    empty_dir(b->dir);
    stat3 off = stat_of(v[0], b->rounds);
    for (int k = 0; k < 3; k++) {
        stat3 s = stat_of(v[k], b->rounds);
        printf("  demo over %-10s --verify %-12s %8.1f ms (%.1f-%.1f)  %+6.1f%%\n",
               mk_transport_name(transport), names[k], s.med, s.min, s.max,
               100 * (s.med - off.med) / off.med);
        if (csv)
            fprintf(csv, "verify,run_%s_%s,%.3f,%.3f,%.3f\n", mk_transport_name(transport), names[k],
                    s.med, s.min, s.max);
    }
    stat3 sh = stat_of(share, b->rounds), fs = stat_of(final_share, b->rounds);
    printf("  ... of the incremental run, by its own clock: per-CP checks %.1f%% (%.1f-%.1f), final "
           "full check %.1f%%\n",
           sh.med, sh.min, sh.max, fs.med);
    if (csv)
        fprintf(csv, "verify,per_cp_check_share_%s_pct,%.2f,%.2f,%.2f\n", mk_transport_name(transport),
                sh.med, sh.min, sh.max);
    return 0;
}

static int bench_verify(bench_ctx *b, FILE *csv)
{
    uint64_t n = b->verify_mib << 20;
    char a[1200], bb[1200], c[1200], t[1200], out[1200], s1[1200], s2[1200];
    /* This very binary, even if a rebuild has replaced its file since. */
    char self[] = "/proc/self/exe";
    if (system("command -v cmp >/dev/null 2>&1 && command -v xxhsum >/dev/null 2>&1") != 0) {
        printf("verify: not measured: needs cmp and xxhsum (make deps installs them)\n");
        return 0;
    }
    snprintf(a, sizeof a, "%.1100s/a.img", b->dir);
    snprintf(bb, sizeof bb, "%.1100s/b.img", b->dir);
    snprintf(c, sizeof c, "%.1100s/c.img", b->dir);
    snprintf(t, sizeof t, "%.1100s/a.sum", b->dir);
    snprintf(out, sizeof out, "%.1100s/out.sum", b->dir);
    snprintf(s1, sizeof s1, "%.1100s/s1.img", b->dir);
    snprintf(s2, sizeof s2, "%.1100s/s2.img", b->dir);
    int rc = make_image(a, n, NULL, UINT64_MAX);
    if (!rc)
        rc = make_image(bb, n, a, UINT64_MAX);
    if (!rc)
        rc = make_image(c, n, a, n / 2 + 12345); /* one byte differs */
    if (rc)
        fprintf(stderr, "mirrorkit bench: cannot write the images in %s\n", b->dir);
    int fd1 = open(s1, O_WRONLY | O_CREAT | O_TRUNC, 0644), fd2 = open(s2, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd1 < 0 || fd2 < 0 || ftruncate(fd1, (off_t)n) || ftruncate(fd2, (off_t)n))
        rc = MK_EIO;
    if (fd1 >= 0)
        close(fd1);
    if (fd2 >= 0)
        close(fd2);
    char *tab[] = {self, "verify", "--table", "--output", t, a, NULL};
    if (!rc && timed_run(tab, 0) < 0) {
        fprintf(stderr, "mirrorkit bench: mirrorkit verify --table failed\n");
        rc = MK_EIO;
    }
    /* Each case: the command, the exit it must end with, and the cmp case
     * it is compared with. */
    struct {
        const char *name;
        char *argv[8];
        int want, base;
    } cases[] = {
        {"cmp equal", {"cmp", a, bb, NULL}, 0, 0},
        {"xxhsum -H3 equal", {"xxhsum", "-H3", a, bb, NULL}, 0, 0},
        {"verify equal", {self, "verify", a, bb, NULL}, 0, 0},
        {"cmp 1 byte differs", {"cmp", a, c, NULL}, 1, 3},
        {"verify 1 byte differs", {self, "verify", a, c, NULL}, 1, 3},
        {"verify table vs image", {self, "verify", t, bb, NULL}, 0, 0},
        {"verify --table", {self, "verify", "--table", "--output", out, a, NULL}, 0, 0},
        {"cmp sparse equal", {"cmp", s1, s2, NULL}, 0, 7},
        {"verify sparse equal", {self, "verify", s1, s2, NULL}, 0, 7},
    };
    enum { NCASES = sizeof cases / sizeof cases[0] };
    double v[NCASES][16];
    /* Round by round, every command once in turn, so that a machine that
     * speeds up or slows down during the run affects all of them. */
    for (int r = 0; r < b->rounds && !rc; r++)
        for (int i = 0; i < NCASES && !rc; i++)
            if ((v[i][r] = timed_run(cases[i].argv, cases[i].want)) < 0) {
                fprintf(stderr, "mirrorkit bench: '%s' did not exit %d\n", cases[i].name, cases[i].want);
                rc = MK_EIO;
            }
    if (!rc) {
        stat3 s[NCASES];
        for (int i = 0; i < NCASES; i++)
            s[i] = stat_of(v[i], b->rounds);
        printf("verify: two %llu MiB images in %s, median (min-max) of %d rounds; GB/s is volume\n"
               "bytes (10^9) compared per second, each tool reading both images\n",
               (unsigned long long)b->verify_mib, b->dir, b->rounds);
        printf("%-24s %22s %8s %8s\n", "case", "seconds (min-max)", "GB/s", "vs cmp");
        if (csv)
            fprintf(csv, "section,what,median,min,max\n");
        for (int i = 0; i < NCASES; i++) {
            char range[64];
            snprintf(range, sizeof range, "%.3f (%.3f-%.3f)", s[i].med, s[i].min, s[i].max);
            printf("%-24s %22s %8.2f %8.2f\n", cases[i].name, range, (double)n / 1e9 / s[i].med,
                   s[i].med / s[cases[i].base].med);
            if (csv)
                fprintf(csv, "verify,%s_s,%.4f,%.4f,%.4f\n", cases[i].name, s[i].med, s[i].min, s[i].max);
        }
        judge(b, s[2].med <= s[0].med, "verify of two equal images no slower than cmp (x cmp's time)",
              "%.2f", s[2].med / s[0].med);
        printf("what the per-CP check costs a run (the demo's pair, median (min-max) of %d):\n", b->rounds);
    }
    unlink(a);
    unlink(bb);
    unlink(c);
    unlink(t);
    unlink(out);
    unlink(s1);
    unlink(s2);
    if (!rc)
        rc = verify_overhead(b, csv, MK_T_SIM);
    if (!rc)
        rc = verify_overhead(b, csv, MK_T_PIPE);
    return rc;
}

/* ---- scale: memory follows dirty data, not volume size ------------------------ */


/* One scale run's figures, measured in a child process so that each run's
 * peak RSS is its own. */
typedef struct scale_row {
    uint64_t nblocks, writes_per_cp;
    uint32_t cps, untimed; /* the first `untimed` CPs are not timed */
    long src_rss_kib, dest_rss_kib; /* peak resident set sizes */
    double ms_per_cp;
    int err;
} scale_row;

/* One scale run, in this process: the pair over pipes to a forked
 * destination, every file on disk and sparse: the source's volume, tree
 * and provenance (store_dir) and the destination's mirror, log and tree
 * (workdir).  Sequential 64 KiB writes; no final full check, which would
 * read every block of the volume. */
static void scale_here(const char *dir, scale_row *r)
{
    mk_pair_config cfg;
    mk_pair_result res;
    mk_pair *p = NULL;
    mk_workload w;
    mk_pair_defaults(&cfg);
    cfg.nblocks = r->nblocks;
    cfg.block_size = 4096;
    cfg.mode = MK_MODE_SYNC;
    cfg.workload = MK_WL_SEQ;
    cfg.transport = MK_T_PIPE;
    cfg.cps = r->cps;
    cfg.writes_per_cp = r->writes_per_cp;
    cfg.verify = MK_VERIFY_OFF;
    cfg.workdir = dir;
    cfg.store_dir = dir;
    cfg.out = NULL;
    uint64_t timed = 0;
    int rc = mk_workload_init(&w, MK_WL_SEQ, cfg.seed, cfg.nblocks, cfg.block_size);
    if (rc == 0 && (rc = mk_pair_open(&cfg, &p)) == 0) {
        for (uint32_t k = 0; k < cfg.cps && !rc; k++) {
            uint64_t t0 = now_ns();
            for (uint64_t i = 0; i < cfg.writes_per_cp && !rc; i++) {
                uint64_t off;
                uint32_t len;
                const uint8_t *data;
                mk_workload_next(&w, &off, &len, &data);
                rc = mk_pair_write(p, off, data, len);
            }
            if (!rc)
                rc = mk_pair_cp(p);
            if (k >= r->untimed)
                timed += now_ns() - t0;
        }
        if (!rc)
            rc = mk_pair_finish(p);
    }
    if (p)
        rc = mk_pair_close(p, rc, &res);
    if (w.buf)
        mk_workload_free(&w);
    r->err = rc;
    r->ms_per_cp = (double)timed / 1e6 / (r->cps - r->untimed);
    /* The source's peak is its own address space's (VmHWM): getrusage
     * would also count what the process it was started from had. */
    struct rusage kids;
    char line[256];
    FILE *st = fopen("/proc/self/status", "r");
    r->src_rss_kib = -1;
    while (st && fgets(line, sizeof line, st))
        if (strncmp(line, "VmHWM:", 6) == 0)
            r->src_rss_kib = strtol(line + 6, NULL, 10);
    if (st)
        fclose(st);
    getrusage(RUSAGE_CHILDREN, &kids);
    r->dest_rss_kib = kids.ru_maxrss;
}

/* `mirrorkit bench --scale-run NBLOCKS:WRITES:CPS:UNTIMED:DIR`: one scale run,
 * its figures on stdout.  The scale section runs each in a process of its
 * own, started afresh: a forked child would count the pages it shares
 * with the bench, whose earlier sections grew it, in its peak RSS, and so
 * would the destination it forks. */
static int scale_run_cmd(const char *spec)
{
    scale_row r = {0, 0, 0, 0, 0, 0, 0, 0};
    unsigned long long nb, w;
    unsigned cps, untimed;
    int at = 0;
    if (sscanf(spec, "%llu:%llu:%u:%u:%n", &nb, &w, &cps, &untimed, &at) != 4 || at == 0 ||
        !spec[at] || nb == 0 || w == 0 || untimed >= cps)
        return mk_usage_error("bench", "--scale-run needs NBLOCKS:WRITES:CPS:UNTIMED:DIR, not '%s'", spec);
    r.nblocks = nb;
    r.writes_per_cp = w;
    r.cps = cps;
    r.untimed = untimed;
    scale_here(spec + at, &r);
    printf("%ld %ld %.3f %d\n", r.src_rss_kib, r.dest_rss_kib, r.ms_per_cp, r.err);
    return r.err ? EXIT_IO : EXIT_OK;
}

/* Runs one scale run in a fresh mirrorkit process and reads its figures. */
static void run_scale(const char *dir, scale_row *row)
{
    char spec[1400], line[256];
    snprintf(spec, sizeof spec, "%llu:%llu:%u:%u:%.1100s", (unsigned long long)row->nblocks,
             (unsigned long long)row->writes_per_cp, row->cps, row->untimed, dir);
    int fd[2];
    row->err = MK_EIO;
    if (pipe(fd))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        execl("/proc/self/exe", "mirrorkit", "bench", "--scale-run", spec, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = pid > 0 ? fdopen(fd[0], "r") : NULL;
    int got = f && fgets(line, sizeof line, f) &&
              sscanf(line, "%ld %ld %lf %d", &row->src_rss_kib, &row->dest_rss_kib, &row->ms_per_cp,
                     &row->err) == 4;
    if (f)
        fclose(f);
    else
        close(fd[0]);
    if (pid > 0 && reap_child(pid) && got && !row->err)
        row->err = MK_EIO;
    if (!got)
        row->err = MK_EIO;
}

static int bench_scale(bench_ctx *b, FILE *csv)
{
    const char *dir = b->dir;
    /* Memory: 10 CPs of 64 MiB dirty data (1024 writes of 16 blocks) on a
     * 64 MiB and on a 1 TiB volume.  Time: CPs of 16, 64 and 256 MiB, each
     * on a volume twice the CP, four CPs of which the last two are timed:
     * the first two write every block of the volume, its mirror and their
     * trees once, so the timed ones find every page in place and
     * measure the pair, not the allocation of fresh memory - which a
     * hypervisor that takes freed memory back makes slow (warm_memory
     * reports by how much), and of which a larger CP would need more.  The
     * median of two more rounds than the others: a CP's time varies more
     * than a throughput run's. */
    static const struct {
        uint64_t nblocks, writes;
        uint32_t cps, untimed;
    } runs[] = {{1u << 14, 1024, 10, 0}, {1ull << 28, 1024, 10, 0}, {1u << 13, 256, 4, 2},
                {1u << 15, 1024, 4, 2},  {1u << 17, 4096, 4, 2}};
    enum { NRUNS = sizeof runs / sizeof runs[0], FIRST_TIME = 2 };
    if (csv)
        fprintf(csv, "section,nblocks,cps,untimed_cps,dirty_bytes_per_cp,source_rss_kib,dest_rss_kib,ms_per_cp_median,"
                     "ms_per_cp_min,ms_per_cp_max\n");
    printf("scale: sync mode over pipes to a forked destination, every file sparse in %s;\n"
           "peak RSS of one run; ms per timed CP median (min-max) of %d runs; the time runs fill\n"
           "a volume of two CPs once before the two CPs they time\n", dir, b->rounds + 2);
    printf("%-9s %11s %11s %15s %13s %22s %12s %12s\n", "volume", "CPs (timed)", "MiB per CP",
           "source RSS MiB", "dest RSS MiB", "ms per CP (min-max)", "us per MiB", "floor us/MiB");
    double base_us = 0, base_floor = 0, worst = 0;
    long rss64 = 0, rss1t = 0;
    for (int i = 0; i < NRUNS; i++) {
        scale_row r = {runs[i].nblocks, runs[i].writes, runs[i].cps, runs[i].untimed, 0, 0, 0, 0};
        double ms[16];
        int rounds = i < FIRST_TIME ? 1 : b->rounds + 2;
        long src = 0, dst = 0;
        for (int k = 0; k < rounds; k++) {
            r = (scale_row){runs[i].nblocks, runs[i].writes, runs[i].cps, runs[i].untimed, 0, 0, 0, 0};
            run_scale(dir, &r);
            empty_dir(dir);
            if (r.err) {
                fprintf(stderr, "mirrorkit bench: scale run: %s: %s\n", mk_errname(r.err), mk_strerror(r.err));
                return r.err;
            }
            ms[k] = r.ms_per_cp;
            src = r.src_rss_kib > src ? r.src_rss_kib : src;
            dst = r.dest_rss_kib > dst ? r.dest_rss_kib : dst;
        }
        stat3 s = stat_of(ms, rounds);
        /* The time runs' storage floor (throughput section) on the same
         * volume, CPs and workload, timed from the same CP: how the
         * machine's own costs grow with the CP, which the pair's must not
         * outgrow. */
        double floor_us = 0;
        if (runs[i].untimed) {
            mk_pair_config fc;
            double fv[16];
            mk_pair_defaults(&fc);
            fc.nblocks = runs[i].nblocks;
            fc.block_size = 4096;
            fc.workload = MK_WL_SEQ;
            fc.cps = runs[i].cps;
            fc.writes_per_cp = runs[i].writes;
            for (int k = 0; k < rounds; k++) {
                double bps = floor_bps(MK_T_PIPE, &fc, dir, runs[i].untimed);
                if (bps <= 0)
                    return MK_EIO;
                fv[k] = 1e6 * (1024.0 * 1024.0) / bps;
            }
            floor_us = stat_of(fv, rounds).med;
        }
        double vol_gib = (double)r.nblocks * 4096 / (1024.0 * 1024 * 1024);
        double per_cp = (double)r.writes_per_cp * 16 * 4096 / (1024.0 * 1024);
        double us_per_mib = 1000.0 * s.med / per_cp;
        char vol[32], range[64], cps[32];
        if (r.untimed)
            snprintf(cps, sizeof cps, "%u, last %u", r.cps, r.cps - r.untimed);
        else
            snprintf(cps, sizeof cps, "%u", r.cps);
        if (vol_gib >= 1024)
            snprintf(vol, sizeof vol, "%.0f TiB", vol_gib / 1024);
        else
            snprintf(vol, sizeof vol, "%.0f MiB", vol_gib * 1024);
        snprintf(range, sizeof range, "%.1f (%.1f-%.1f)", s.med, s.min, s.max);
        printf("%-9s %11s %11.0f %15.1f %13.1f %22s %12.0f", vol, cps, per_cp, src / 1024.0,
               dst / 1024.0, range, us_per_mib);
        if (floor_us > 0)
            printf(" %12.0f", floor_us);
        if (i == FIRST_TIME) {
            base_us = us_per_mib;
            base_floor = floor_us;
        }
        if (i > FIRST_TIME && base_us > 0 && base_floor > 0) {
            double pair_x = us_per_mib / base_us, floor_x = floor_us / base_floor;
            printf("   x%.2f per MiB, floor x%.2f", pair_x, floor_x);
            /* Growth the machine's own storage shows too is not the
             * pair's; a floor that grows less than linearly (its fixed
             * per-CP costs weigh less in a larger CP) excuses nothing. */
            double own = pair_x / (floor_x > 1.0 ? floor_x : 1.0);
            if (own > worst)
                worst = own;
        }
        if (i == 0)
            rss64 = src + dst;
        if (i == 1)
            rss1t = src + dst;
        printf("\n");
        if (csv)
            fprintf(csv, "scale,%llu,%u,%u,%llu,%ld,%ld,%.3f,%.3f,%.3f\n", (unsigned long long)r.nblocks,
                    r.cps, r.untimed, (unsigned long long)(r.writes_per_cp * 16 * 4096), src, dst, s.med,
                    s.min, s.max);
        fflush(stdout);
    }
    printf("us per MiB: time per CP over its dirty data, which linear growth keeps flat; floor: the\n"
           "storage floor's (throughput section) for the same CPs, how the machine's own costs grow\n");
    judge(b, rss1t <= 2 * rss64, "RSS on 1 TiB <= 2 x RSS on 64 MiB, 10 CPs of 64 MiB (x)", "%.2f",
          ratio((uint64_t)rss1t, (uint64_t)rss64));
    judge(b, worst <= 1.25, "time per CP linear: cost per MiB at 4x, 16x <= 1.25 x 1x's (beyond the floor's)",
          "%.2f", worst);
    return 0;
}

/* ---- speed: the simulator and the fuzz harnesses ----------------------------- */

/* execs_per_sec of a short afl-fuzz run of build/fuzz-afl/fuzz/<t>, or -1
 * if afl-fuzz or the harness is missing (make fuzz-afl). */
static double fuzz_execs(const char *t, const char *dir, uint32_t seconds)
{
    char bin[256], cmd[2600], stats[1300], line[256];
    snprintf(bin, sizeof bin, "build/fuzz-afl/fuzz/%s", t);
    if (access(bin, X_OK) || system("command -v afl-fuzz >/dev/null 2>&1"))
        return -1;
    int mut = !strcmp(t, "fuzz_log") || !strcmp(t, "fuzz_sync") || !strcmp(t, "fuzz_source");
    snprintf(cmd, sizeof cmd,
             "AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 %s "
             "afl-fuzz -i fuzz/corpus/%s -o '%.1000s/%s' -x fuzz/%s.dict -V %u -- %s >/dev/null 2>&1",
             mut ? "AFL_CUSTOM_MUTATOR_LIBRARY=build/fuzz-afl/fuzz/mk_mutator.so" : "", t, dir, t, t,
             seconds, bin);
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
 * execs per second of every fuzz harness in short afl-fuzz runs. */
static int bench_speed(bench_ctx *b, FILE *csv)
{
    static const char *const harnesses[] = {"fuzz_log", "fuzz_sync", "fuzz_source",
                                            "fuzz_logstore", "fuzz_table", "fuzz_scenario"};
    if (csv)
        fprintf(csv, "section,what,median_per_s,min_per_s,max_per_s\n");
    printf("speed: the simulator (mirrorkit sim, 200 seeds a run) and the fuzz harnesses (%u s of\n"
           "afl-fuzz a run), median (min-max) of %d runs\n", b->fuzz_seconds, b->rounds);
    for (int jobs = 1; jobs <= 2; jobs++) {
        double v[16];
        for (int r = 0; r < b->rounds; r++) {
            mk_sim_options o = {200, 1, jobs, 0, 0, NULL};
            mk_sim_stats st;
            int rc = mk_sim_run(&o, &st);
            if (rc || st.failed || st.errors)
                return rc ? rc : MK_EVERIFY;
            v[r] = (double)st.seeds / ((double)st.ns / 1e9);
        }
        stat3 s = stat_of(v, b->rounds);
        printf("  sim, %d job%s %10.0f seeds/s (%.0f-%.0f)\n", jobs, jobs > 1 ? "s" : " ", s.med,
               s.min, s.max);
        if (csv)
            fprintf(csv, "speed,sim_seeds_jobs_%d,%.1f,%.1f,%.1f\n", jobs, s.med, s.min, s.max);
        fflush(stdout);
    }
    for (size_t i = 0; i < sizeof harnesses / sizeof harnesses[0]; i++) {
        double v[16];
        int ok = 1;
        for (int r = 0; r < b->rounds && ok; r++)
            ok = (v[r] = fuzz_execs(harnesses[i], b->dir, b->fuzz_seconds)) >= 0;
        if (!ok) {
            printf("  %-14s not measured: needs afl-fuzz and make fuzz-afl\n", harnesses[i]);
            continue;
        }
        stat3 s = stat_of(v, b->rounds);
        printf("  %-14s %10.0f execs/s (%.0f-%.0f)\n", harnesses[i], s.med, s.min, s.max);
        if (csv)
            fprintf(csv, "speed,%s,%.1f,%.1f,%.1f\n", harnesses[i], s.med, s.min, s.max);
        fflush(stdout);
    }
    return 0;
}

/* ---- the command ------------------------------------------------------------ */

static void bench_help(void)
{
    printf("usage: mirrorkit bench [--section S[,S...]] [--csv DIR] [--rounds N] [--check-targets]\n"
           "                       [--transport T[,T...]] [--mode M[,M...]] [--load L[,L...]]\n"
           "                       [--blocks N] [--cps N] [--writes N] [--seed S]\n"
           "                       [--verify-mib N] [--fuzz-seconds N]\n"
           "\n"
           "Measures the pair against baselines taken in the same run; every timing\n"
           "is the median of N runs (default 3) with the fastest and the slowest.\n"
           "Work files go to $TMPDIR (use a tmpfs, e.g. /dev/shm, to leave disks out).\n"
           "\n"
           "throughput: client MB/s of the pair in every mode over pipes, a socketpair\n"
           "and loopback TCP to a forked destination, for sequential 64 KiB and random\n"
           "4 KiB writes, next to the raw transport carrying as many bytes and to the\n"
           "storage floor: the same writes applied to a volume, sent, appended to a\n"
           "log and copied into a mirror, with the same syncs and nothing else.\n"
           "\n"
           "latency: sync-mode write acknowledgement p50/p99/p99.9 over each transport,\n"
           "next to the raw round trip of a LOG-sized message and a LOG_ACK-sized\n"
           "answer; CP commit time (CP_BEGIN to CP_ACK) for 16, 256 and 4096 blocks.\n"
           "\n"
           "bandwidth (SPEC.md section 11): for each workload - seq (full-block\n"
           "sequential), block (random 4 KiB), small (random 512-byte partial), mixed\n"
           "(70%% whole / 30%% unaligned) and hot (overwrites of a hot 10%%) - the pair\n"
           "runs in sync mode over the simulated link, and after every CP rsync\n"
           "(--inplace --no-whole-file) resyncs a copy of the previous CP image to it.\n"
           "Needs rsync.\n"
           "\n"
           "verify: mirrorkit verify on two images of --verify-mib MiB (default 1024)\n"
           "next to cmp and xxhsum -H3 on the same images, and what the per-CP check\n"
           "adds to the demo's run (--verify off, incremental, full).\n"
           "\n"
           "scale: peak RSS of the source and of the forked destination, every file\n"
           "sparse on disk, for a 64 MiB and a 1 TiB volume with 10 CPs of 64 MiB of\n"
           "dirty data, and the time per CP with 16, 64 and 256 MiB of dirty data, timed\n"
           "on CPs that overwrite a volume written once, next to the storage floor's.\n"
           "\n"
           "speed: simulator seeds/s with one and two jobs, and the execs/s of every fuzz\n"
           "harness in afl-fuzz runs of --fuzz-seconds (default 5; needs make fuzz-afl,\n"
           "run from the source tree).\n"
           "\n"
           "The report ends with the targets of README.md's performance section, each\n"
           "held or missed with its figure.\n"
           "\n"
           "  --section S      only these sections, comma-separated (default: all, in the\n"
           "                   order above)\n"
           "  --csv DIR        also write DIR/<section>.csv\n"
           "  --rounds N       runs per timed figure, 1..15 (default 3)\n"
           "  --transport T    throughput, latency: only these of pipe, socketpair, tcp\n"
           "  --mode M         throughput: only these of sync, semi-sync, async\n"
           "  --load L         throughput: only these of seq, block\n"
           "  --check-targets  exit 1 if a target was missed (default: report only)\n"
           "  --blocks N       bandwidth: volume blocks of 4096 bytes (default 16384: 64 MiB)\n"
           "  --cps N          bandwidth: CPs per workload (default 10)\n"
           "  --writes N       bandwidth: writes per CP (default 1000)\n"
           "  --seed S         bandwidth: workload seed (default 1)\n"
           "  --verify-mib N   verify: image size in MiB, 1..65536 (default 1024)\n"
           "  --fuzz-seconds N speed: seconds per afl-fuzz run, 1..600 (default 5)\n"
           "\n"
           "Exit: 0 measured (1 with --check-targets and a target missed), 2 usage,\n"
           "3 a run failed.  (--scale-run NBLOCKS:WRITES:CPS:DIR is internal: one scale\n"
           "run, which the scale section starts in a fresh process.)\n");
}

enum { O_CSV = 256, O_BLOCKS, O_CPS, O_WRITES, O_SEED, O_SECTION, O_HELP, O_ROUNDS, O_CHECK,
       O_VERIFY_MIB, O_FUZZ_SECONDS, O_TRANSPORT, O_MODE, O_LOAD };

/* Parses a comma-separated list of names from names[0..n) into a bit
 * per name; 0 if one is unknown (or the list is empty). */
static unsigned pick(const char *list, const char *const *names, size_t n)
{
    char buf[256];
    unsigned bits = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < n && strcmp(tok, names[i]) != 0)
            i++;
        if (i == n)
            return 0;
        bits |= 1u << i;
    }
    return bits;
}

/* The sections in the order they run; each writes DIR/<name>.csv. */
static const struct {
    const char *name;
    int (*run)(bench_ctx *, FILE *);
} sections[] = {{"throughput", bench_throughput}, {"latency", bench_latency},
                {"bandwidth", bench_bandwidth},   {"verify", bench_verify},
                {"scale", bench_scale},           {"speed", bench_speed}};
#define NSECTIONS (sizeof sections / sizeof sections[0])

/* Marks the sections named in list (comma-separated); 0, or -1 if a name
 * is not a section. */
static int pick_sections(const char *list, int *want)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < NSECTIONS && strcmp(tok, sections[i].name) != 0)
            i++;
        if (i == NSECTIONS)
            return -1;
        want[i] = 1;
    }
    return 0;
}

/*
 * A virtual machine's hypervisor may back guest memory only when the guest
 * first touches it, at a fraction of the usual speed (on the machine of
 * README.md's figures, 0.2 GB/s against 8 GB/s).  Whichever run first
 * needs fresh memory - the largest scale run, say - would pay for it and
 * look slower than it is.  So the memory the sections will need is
 * touched once before any is timed, and the rates are reported: they
 * describe the machine, not mirrorkit.
 */
static void warm_memory(uint64_t want)
{
    long avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t chunk = 256u << 20;
    want = (want + chunk - 1) / chunk * chunk;
    if (avail > 0 && page > 0 && (uint64_t)avail * (uint64_t)page / 2 < want)
        want = (uint64_t)avail * (uint64_t)page / 2 / chunk * chunk;
    if (want < chunk)
        return;
    double rate[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        uint64_t n = pass == 0 ? want : chunk, t0 = now_ns();
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED)
            return;
        rate[pass] = (double)n / ((double)(now_ns() - t0) / 1e9) / 1e9;
        munmap(p, n);
    }
    printf("memory: %.1f GiB touched before the sections: %.2f GB/s the first time, %.2f GB/s "
           "again\n\n", (double)want / (1u << 30), rate[0], rate[1]);
}

/* Every figure is only as good as the machine it was taken on. */
static void print_machine(int argc, char **argv)
{
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
    long mem_mib = sysconf(_SC_PHYS_PAGES) / 1024 * (sysconf(_SC_PAGESIZE) / 1024);
    if (uname(&u) == 0)
        printf("machine: %s, %ld CPUs (%s), %ld MiB RAM, %s %s %s\n", day,
               sysconf(_SC_NPROCESSORS_ONLN), model, mem_mib, u.sysname, u.release, u.machine);
    printf("command: mirrorkit");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n\n");
}

int mk_cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"csv", 1, 0, O_CSV},         {"blocks", 1, 0, O_BLOCKS},
        {"cps", 1, 0, O_CPS},         {"writes", 1, 0, O_WRITES},
        {"seed", 1, 0, O_SEED},       {"help", 0, 0, O_HELP},
        {"section", 1, 0, O_SECTION}, {"rounds", 1, 0, O_ROUNDS},
        {"check-targets", 0, 0, O_CHECK}, {"verify-mib", 1, 0, O_VERIFY_MIB},
        {"fuzz-seconds", 1, 0, O_FUZZ_SECONDS}, {"transport", 1, 0, O_TRANSPORT},
        {"mode", 1, 0, O_MODE},       {"load", 1, 0, O_LOAD}, {0, 0, 0, 0}};
    static const char *const tnames[] = {"pipe", "socketpair", "tcp"};
    static const char *const mnames[] = {"sync", "semi-sync", "async"};
    static const char *const lnames[] = {"seq", "block"};
    unsigned transports = 7, modes = 7, loads = 3;
    int want[NSECTIONS] = {0}, only = 0, check = 0;
    const char *csv = NULL;
    uint64_t blocks = 16384, cps = 10, writes = 1000, seed = 1, rounds = 3, vmib = 1024, fsec = 5;
    int o;
    if (argc == 3 && strcmp(argv[1], "--scale-run") == 0)
        return scale_run_cmd(argv[2]);
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
        case O_ROUNDS:
            if (mk_parse_u64(optarg, &rounds) || rounds == 0 || rounds > 15)
                return mk_usage_error("bench", "--rounds needs 1..15, not '%s'", optarg);
            break;
        case O_VERIFY_MIB:
            if (mk_parse_u64(optarg, &vmib) || vmib == 0 || vmib > 65536)
                return mk_usage_error("bench", "--verify-mib needs 1..65536, not '%s'", optarg);
            break;
        case O_FUZZ_SECONDS:
            if (mk_parse_u64(optarg, &fsec) || fsec == 0 || fsec > 600)
                return mk_usage_error("bench", "--fuzz-seconds needs 1..600, not '%s'", optarg);
            break;
        case O_SECTION:
            if (pick_sections(optarg, want))
                return mk_usage_error("bench", "--section takes throughput, latency, bandwidth, verify, "
                                               "scale or speed (comma-separated), not '%s'", optarg);
            only = 1;
            break;
        case O_CHECK: check = 1; break;
        case O_TRANSPORT:
            if (!(transports = pick(optarg, tnames, 3)))
                return mk_usage_error("bench", "--transport takes pipe, socketpair or tcp (comma-separated), not '%s'", optarg);
            break;
        case O_MODE:
            if (!(modes = pick(optarg, mnames, 3)))
                return mk_usage_error("bench", "--mode takes sync, semi-sync or async (comma-separated), not '%s'", optarg);
            break;
        case O_LOAD:
            if (!(loads = pick(optarg, lnames, 2)))
                return mk_usage_error("bench", "--load takes seq or block (comma-separated), not '%s'", optarg);
            break;
        case O_HELP: bench_help(); return EXIT_OK;
        default: return mk_usage_error("bench", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    for (size_t i = 0; i < NSECTIONS; i++)
        want[i] |= !only;
    if (want[2] && system("rsync --version >/dev/null 2>&1") != 0) {
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
    if (csv && (mkdir(csv, 0755) && errno != EEXIST)) {
        fprintf(stderr, "mirrorkit bench: MK_EIO: cannot create %s\n", csv);
        rmdir(dir);
        return EXIT_IO;
    }
    bench_ctx *b = calloc(1, sizeof *b);
    if (!b) {
        rmdir(dir);
        return EXIT_IO;
    }
    b->dir = dir;
    b->rounds = (int)rounds;
    b->verify_mib = vmib;
    b->fuzz_seconds = (uint32_t)fsec;
    b->transports = transports;
    b->modes = modes;
    b->loads = loads;
    mk_pair_defaults(&b->base);
    b->base.nblocks = blocks;
    b->base.block_size = 4096;
    b->base.mode = MK_MODE_SYNC;
    b->base.cps = (uint32_t)cps;
    b->base.writes_per_cp = writes;
    b->base.seed = seed;
    b->base.out = NULL;
    print_machine(argc, argv);
    /* What the chosen sections hold at once, about: a run's files and
     * buffers (throughput, latency), three images (verify), a 1 GiB
     * volume, its mirror and a 256 MiB log (scale). */
    uint64_t need = want[0] || want[1] ? 1ull << 30 : 0;
    if (want[3] && 3 * (vmib << 20) + (512u << 20) > need)
        need = 3 * (vmib << 20) + (512u << 20);
    if (want[4] && (3ull << 30) > need)
        need = 3ull << 30;
    if (need)
        warm_memory(need);
    int rc = 0, first = 1;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < NSECTIONS && !rc; i++) {
        if (!want[i])
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
        uint64_t s0 = now_ns();
        rc = sections[i].run(b, f);
        printf("(%s: %.0f s)\n", sections[i].name, (double)(now_ns() - s0) / 1e9);
        if (f && fclose(f) && !rc)
            rc = MK_EIO;
        fflush(stdout);
    }
    empty_dir(dir);
    rmdir(dir);
    int missed = 0;
    if (!rc && b->ntargets) {
        printf("\ntargets (README.md, Performance):\n");
        for (int i = 0; i < b->ntargets; i++) {
            printf("  %-6s %-78s %s\n", b->targets[i].held ? "held" : "MISSED", b->targets[i].what,
                   b->targets[i].figure);
            missed |= !b->targets[i].held;
        }
    }
    if (!rc)
        printf("\nbench: %.0f s in all\n", (double)(now_ns() - t0) / 1e9);
    free(b);
    if (rc) {
        fprintf(stderr, "mirrorkit bench: %s: %s\n", mk_errname(rc), mk_strerror(rc));
        return mk_exit_code(rc);
    }
    return check && missed ? EXIT_VERIFY : EXIT_OK;
}
