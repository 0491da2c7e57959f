#include "mk_pair.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mk_dest.h"
#include "mk_err.h"
#include "mk_net.h"
#include "mk_prng.h"
#include "mk_wire.h"
#include "mk_workload.h"
#include "mk_linkfault.h"

static const char *const tnames[] = {"sim", "pipe", "tcp", "connect", "socketpair"};
#define NTRANSPORTS (sizeof tnames / sizeof tnames[0])

int mk_transport_parse(const char *s)
{
    for (size_t i = 0; i < NTRANSPORTS; i++)
        if (strcmp(s, tnames[i]) == 0)
            return (int)i;
    return MK_EINVAL;
}

const char *mk_transport_name(int t)
{
    return t >= 0 && (size_t)t < NTRANSPORTS ? tnames[t] : "?";
}

void mk_pair_defaults(mk_pair_config *c)
{
    memset(c, 0, sizeof *c);
    c->nblocks = 16384; /* 64 MiB of 4 KiB blocks */
    c->block_size = 4096;
    c->mode = MK_MODE_SYNC;
    c->workload = MK_WL_MIXED;
    c->transport = MK_T_SIM;
    c->cps = 10;
    c->writes_per_cp = 1000;
    c->seed = 1;
    c->volume_id = 0x6d6972726f72ULL; /* "mirror" */
    c->source_id = 0x736f75726365ULL; /* "source" */
    c->reconnect_timeout_s = 30;
    c->scrub_per_cp = 256;
}

int mk_verify_parse(const char *s)
{
    static const char *const names[] = {"incremental", "full", "off"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return MK_EINVAL;
}

/* ---- links ------------------------------------------------------------ */

typedef struct pair_link {
    const mk_pair_config *cfg;
    mk_source *src;
    uint64_t now;     /* virtual clock (sim) or monotonic ns */
    FILE *record;
    /* sim */
    mk_dest *dest;
    mk_file *mirror, *log;
    mk_prng rng;
    /* fd transports: fd is read (and written, but for pipes: wfd) */
    int fd, wfd;
    pid_t child;
    char mirror_path[PATH_MAX];
    uint8_t damaged[65536]; /* a chunk with a flipped bit */
    uint64_t bits_flipped, stalls;
    mk_lf *lf[2];           /* --link faults: [0] to the destination, [1] back */
    /* verification */
    mk_file *view;          /* the mirror as the checker reads it */
    mk_witness *witness;    /* sim: the mirror's write witness */
    mk_file *raw_mirror;    /* sim: the storage under both wrappers */
    uint64_t i5_violations; /* writes outside the volume (sim) */
    struct mk_pair *pair;   /* the pair this link belongs to */
    mk_crash_clock dclk;    /* sim, crashable: the destination's files */
    mk_file *dtree;         /* sim, crashable: the destination's tree file */
    char addr[64];          /* tcp: the forked destination, for reconnects */
    int life;               /* tcp: closed to tell the forked destination to exit */
    int checking;           /* the checker, not an engine, is reading the files */
    uint64_t last_connect;  /* fd transports: when the last reconnect began */
} pair_link;

/*
 * The pair, run step by step (mk_pair.h).  A role is killed by
 * mk_pair_kill - from a fault hook, in the middle of an engine call - and
 * reaped by the driver as soon as that call returns: what it had queued
 * before it died is delivered, the rest is lost with the process.
 */
struct mk_pair {
    const mk_pair_config *cfg;
    pair_link l;
    mk_source *src;
    mk_file *store, *stree, *prov;
    mk_crash_clock sclk;     /* crashable: the source's files */
    mk_checker *ck;
    mk_pair_result res;
    mk_source_stats before;
    uint64_t reported, t_start;
    int killed[2], down[2], restart_auto[2];
    size_t mark[2];          /* output bytes queued when the role died */
    int recovered;           /* a destination recovered: check every block */
    int promoting, promoted;
};

static int reap(mk_pair *p);
static int killed(const mk_pair *p) { return p->killed[0] | p->killed[1]; }

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The simulated link cuts each stream into chunks of seeded random size
 * (1 byte to 64 KiB), so frame reassembly is exercised on every run and
 * the same seed always cuts the same way. */
static size_t sim_chunk(pair_link *l, size_t avail)
{
    size_t n = mk_prng_chance(&l->rng, 1, 8) ? 1 + mk_prng_below(&l->rng, 64)
                                             : 1 + mk_prng_below(&l->rng, 65536);
    return n < avail ? n : avail;
}

/* The simulated link's damage (a test aid, --link-corrupt): each chunk
 * crossing it has a link_corrupt per mille chance to get one bit flipped,
 * in either direction.  Framing checks turn that into a lost session, and
 * the pair must resume and still verify every CP (section 8.2, 8.5). */
static const uint8_t *sim_damage(pair_link *l, const uint8_t *p, size_t n)
{
    if (!l->cfg->link_corrupt || !mk_prng_chance(&l->rng, l->cfg->link_corrupt, 1000))
        return p;
    if (n > sizeof l->damaged)
        n = sizeof l->damaged;
    memcpy(l->damaged, p, n);
    l->damaged[mk_prng_below(&l->rng, n)] ^= (uint8_t)(1u << mk_prng_below(&l->rng, 8));
    l->bits_flipped++;
    return l->damaged;
}

/* Moves everything queued in both directions; >0 if any byte moved. */
static int sim_pump_lf(pair_link *l);

static int sim_pump(pair_link *l)
{
    if (l->lf[0])
        return sim_pump_lf(l);
    mk_buf *so = mk_source_out(l->src), *dout = mk_dest_out(l->dest);
    int moved = 0, rc = 0;
    l->now += 1000;
    while (mk_buf_len(so)) {
        size_t n = sim_chunk(l, mk_buf_len(so));
        if (l->record && fwrite(mk_buf_peek(so), 1, n, l->record) != n)
            return MK_EIO;
        rc = mk_dest_recv(l->dest, sim_damage(l, mk_buf_peek(so), n), n, l->now);
        mk_buf_consume(so, n);
        moved = 1;
        if (killed(l->pair))
            return 0;
        if (rc)
            break;
    }
    while (mk_buf_len(dout)) {
        size_t n = sim_chunk(l, mk_buf_len(dout));
        int r2 = mk_source_recv(l->src, sim_damage(l, mk_buf_peek(dout), n), n, l->now);
        mk_buf_consume(dout, n);
        moved = 1;
        if (killed(l->pair))
            return 0;
        if (r2 && !rc)
            rc = r2;
        if (r2)
            break;
    }
    return rc ? rc : moved;
}

/* The same through the --link fault pipes, on the virtual clock: what each
 * side sends goes into its pipe, what has arrived by now comes out; when
 * nothing can move yet the clock jumps to the pipes' next event. */
static int sim_pump_lf(pair_link *l)
{
    mk_buf *out[2] = {mk_source_out(l->src), mk_dest_out(l->dest)};
    int moved = 0, rc = 0;
    l->now += 1000;
    for (int d = 0; d < 2 && rc == 0; d++) {
        size_t n = mk_buf_len(out[d]);
        if (n) {
            if (d == 0 && l->record && fwrite(mk_buf_peek(out[d]), 1, n, l->record) != n)
                return MK_EIO;
            if ((rc = mk_lf_push(l->lf[d], mk_buf_peek(out[d]), n, l->now)))
                return rc;
            mk_buf_consume(out[d], n);
            moved = 1;
        }
        size_t got;
        while (rc == 0 && (got = mk_lf_pull(l->lf[d], l->now, l->damaged,
                                            sim_chunk(l, sizeof l->damaged))) > 0) {
            rc = d == 0 ? mk_dest_recv(l->dest, l->damaged, got, l->now)
                        : mk_source_recv(l->src, l->damaged, got, l->now);
            moved = 1;
            if (killed(l->pair))
                return 0;
        }
    }
    /* The destination ended the session: its last words, the ERROR frame,
     * are flushed to the source as a closing connection would deliver them,
     * and the source engine decides what they mean (section 8.5). */
    if (rc && mk_dest_error(l->dest) == rc) {
        mk_buf *e = mk_dest_out(l->dest);
        if (mk_source_ready(l->src))
            mk_source_recv(l->src, mk_buf_peek(e), mk_buf_len(e), l->now);
        mk_buf_consume(e, mk_buf_len(e));
        if (mk_source_error(l->src))
            return mk_source_error(l->src);
        mk_source_disconnect(l->src);
        return MK_ECLOSED;
    }
    /* A reset or closed connection ends the session at both ends. */
    if (rc == 0 && (mk_lf_state(l->lf[0]) == MK_LF_RESET || mk_lf_state(l->lf[1]) == MK_LF_RESET)) {
        mk_source_disconnect(l->src);
        return MK_ECLOSED;
    }
    if (rc == 0 && !moved) {
        uint64_t t = mk_lf_next_event(l->lf[0]), t1 = mk_lf_next_event(l->lf[1]);
        if (t1 < t)
            t = t1;
        if (t != UINT64_MAX && t > l->now) {
            l->now = t; /* nothing to do until then: let virtual time pass */
            moved = 1;
        }
    }
    return rc ? rc : moved;
}

/* A session ended by damaged bytes on the simulated link: both ends drop
 * it, as a closed connection would make them, and the source starts the
 * next one (section 8.2). */
static int sim_reconnect(pair_link *l)
{
    for (int d = 0; d < 2; d++)
        if (l->lf[d])
            mk_lf_reconnect(l->lf[d], l->now);
    mk_dest_session_end(l->dest);
    if (mk_dest_error(l->dest)) /* a storage error: the engine is gone */
        return mk_dest_error(l->dest);
    return mk_source_connect(l->src, l->now);
}

static int src_sink(void *ctx, const uint8_t *buf, size_t n)
{
    pair_link *l = ctx;
    return mk_source_recv(l->src, buf, n, l->now);
}

/* Connects to an external destination, retrying until the reconnect
 * timeout: it may not be up yet, or be restarting after a crash. */
static int connect_retry(pair_link *l)
{
    uint64_t deadline = mono_ns() + (uint64_t)l->cfg->reconnect_timeout_s * 1000000000u;
    int rc;
    const char *addr = l->cfg->transport == MK_T_CONNECT ? l->cfg->connect : l->addr;
    while ((rc = mk_net_connect(addr, &l->fd)) != 0) {
        if (rc == MK_EUSAGE)
            return rc;
        if (mono_ns() >= deadline) {
            fprintf(stderr, "mirrorkit: no destination accepted a connection at %s within %u s\n",
                    addr, l->cfg->reconnect_timeout_s);
            return MK_ETIMEOUT;
        }
        usleep(100 * 1000);
    }
    return mk_net_nonblock(l->fd);
}

/* An external destination went away: reconnect and resume (section 8.2),
 * at most one attempt per 100 ms, so a destination that accepts and then
 * resets every connection is not hammered. */
static int reconnect(pair_link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    mk_source_disconnect(l->src);
    uint64_t since = mono_ns() - l->last_connect;
    if (since < 100000000u)
        usleep((useconds_t)((100000000u - since) / 1000u));
    l->last_connect = mono_ns();
    int rc = connect_retry(l);
    return rc ? rc : mk_source_connect(l->src, mono_ns());
}

/* The transports whose destination takes a new connection after a lost
 * one: the simulated link, an external destination and the forked TCP
 * destination, which serves session after session.  A socketpair or a
 * pair of pipes cannot be reconnected. */
static int resumable(const mk_pair_config *c)
{
    return c->transport != MK_T_PIPE && c->transport != MK_T_SOCKETPAIR;
}

static int fd_pump(pair_link *l, int timeout_ms)
{
    l->now = mono_ns();
    int rc = mk_io_pump2(l->fd, l->wfd >= 0 ? l->wfd : l->fd, mk_source_out(l->src), src_sink,
                         l, timeout_ms, l->record);
    if (rc == MK_ECLOSED && resumable(l->cfg) && !mk_source_error(l->src))
        return reconnect(l);
    return rc;
}

typedef int (*cond_fn)(const mk_source *s, uint64_t arg);

static int c_ready(const mk_source *s, uint64_t a) { (void)a; return mk_source_ready(s); }
static int c_acked(const mk_source *s, uint64_t wid) { return mk_source_acked(s) >= wid; }
static int c_cp(const mk_source *s, uint64_t cp) { return mk_source_cp_acked(s) >= cp; }
static int c_less_unacked(const mk_source *s, uint64_t n) { return mk_source_unacked_bytes(s) < n; }
static int c_drained(const mk_source *s, uint64_t max)
{
    return mk_buf_len(mk_source_out((mk_source *)s)) <= max;
}

/* How long a real connection may show no progress before the session is
 * deemed stalled and resumed in a new one. */
#define MK_PAIR_IDLE_NS (5ull * 1000000000u)

/* Pumps until cond holds.  A simulated link that moves nothing while the
 * condition is still false is a deadlock and fails at once; a real one
 * fails after 60 s without the condition.  MK_ECLOSED if a role is down
 * (crashed and not restarted): nothing a pump does can make the condition
 * come true then. */
static int pump_until(pair_link *l, cond_fn cond, uint64_t arg)
{
    const mk_pair_config *c = l->cfg;
    mk_pair *p = l->pair;
    uint64_t deadline = mono_ns() + 60ull * 1000000000u, progress = 0;
    unsigned lost = 0;
    uint64_t last_change = mono_ns();
    for (;;) {
        if (p->down[MK_ROLE_DEST] || p->down[MK_ROLE_SOURCE])
            return MK_ECLOSED;
        if (cond(l->src, arg))
            return 0;
        int sim = c->transport == MK_T_SIM;
        int rc = sim ? sim_pump(l) : fd_pump(l, 100);
        /* A role died inside that call: reap it (and restart it if the
         * scenario says so), then see where the pair stands. */
        if (killed(p)) {
            if ((rc = reap(p)))
                return rc;
            continue;
        }
        uint64_t mark = mk_source_acked(l->src) + mk_source_cp_acked(l->src) +
                        mk_source_get_stats(l->src)->transfers - mk_source_unacked_bytes(l->src);
        if (mark != progress) {
            last_change = mono_ns();
            progress = mark;
            lost = 0;
        }
        /* On the simulated link nothing moving while the condition is
         * false is a deadlock - a bug - unless the link damages bytes: a
         * flipped length can leave a receiver waiting for bytes that never
         * come, and the session has stalled (a real one would hit its idle
         * timeout). */
        int stalled = sim && rc == 0;
        if (stalled && !c->link_corrupt && !l->lf[0])
            return MK_ETIMEOUT;
        /* A real connection whose session made no progress for a while has
         * stalled the same way (a frame lost by a faulty network or proxy
         * leaves both ends waiting): drop it and resume (section 8.5). */
        if (!sim && resumable(c) && rc == 0 && mono_ns() - last_change > MK_PAIR_IDLE_NS) {
            stalled = 1;
            last_change = mono_ns();
        }
        if (!sim && rc == 0 && mono_ns() > deadline)
            return MK_ETIMEOUT;
        if (mk_source_error(l->src))
            return mk_source_error(l->src);
        /* A stalled session, or one lost to damaged bytes, is dropped and
         * resumed in a new one (sections 8.2, 8.5) - unless the link never
         * lets a session through.  A socketpair cannot be reconnected, so
         * a pipe run cannot resume. */
        if (stalled || (rc < 0 && !mk_source_ready(l->src) && resumable(c))) {
            /* Give up only on a link that lets no session make progress:
             * 64 sessions in a row that got nothing acknowledged. */
            if (++lost > 64)
                return rc < 0 ? rc : MK_ETIMEOUT;
            l->stalls += stalled;
            rc = sim ? sim_reconnect(l) : reconnect(l);
        }
        if (rc < 0)
            return rc;
    }
}

/* Serves sessions on a listening socket until the parent closes its end of
 * the lifeline pipe (the run is over), so a session lost to a fault is
 * resumed in a new connection as with an external destination (8.2).  A
 * session error ends that session only; a storage error ends the engine. */
static int serve_listener(mk_dest *d, int lfd, int life)
{
    for (;;) {
        struct pollfd pf[2] = {{lfd, POLLIN, 0}, {life, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return mk_from_errno(errno);
        }
        if (pf[1].revents)
            return 0;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        mk_dest_serve_fd(d, fd);
        close(fd);
        if (mk_dest_error(d))
            return mk_dest_error(d);
    }
}

/* The forked destination of the pipe, socketpair and tcp transports: it
 * reads fd and writes wfd (the same socket but for pipes), or serves the
 * listening socket lfd until life closes. */
static void child_dest(pair_link *l, int fd, int wfd, int lfd, int life)
{
    char logp[PATH_MAX], treep[PATH_MAX];
    mk_file *mirror = NULL, *log = NULL, *tree = NULL;
    mk_dest *d = NULL;
    mk_dest_config dc = {0};
    snprintf(logp, sizeof logp, "%s/dest.log", l->cfg->workdir);
    snprintf(treep, sizeof treep, "%s/mirror.mkt", l->cfg->workdir);
    int rc = mk_file_open(l->mirror_path, 1, "ref/dest/mirror", &mirror);
    if (!rc)
        rc = mk_file_open(logp, 1, "ref/dest/log", &log);
    if (!rc)
        rc = mk_file_open(treep, 1, "ref/dest/tree", &tree);
    dc.tree = tree;
    if (!rc)
        rc = mk_dest_open(&dc, mirror, log, &d);
    if (!rc)
        rc = lfd >= 0 ? serve_listener(d, lfd, life) : mk_dest_serve_fds(d, fd, wfd);
    if (rc)
        fprintf(stderr, "mirrorkit: destination: %s: %s\n", mk_errname(rc), mk_strerror(rc));
    _exit(rc ? 3 : 0);
}

/* Sets --link's faults (mk_lf_parse_spec) on the two directions' fault
 * pipes; on failure the pipes are dropped again, so a run without usable
 * faults never looks like one with them. */
static int link_faults(pair_link *l)
{
    char err[512];
    int rc = 0;
    for (int d = 0; d < 2 && rc == 0; d++)
        if (!(l->lf[d] = mk_lf_new(l->cfg->seed * 2 + (uint64_t)d + 1)))
            rc = MK_ENOMEM;
    if (rc == 0)
        rc = mk_lf_parse_spec(l->cfg->link, l->lf[0], l->lf[1], err, sizeof err);
    if (rc) {
        if (rc == MK_EUSAGE && err[0])
            fprintf(stderr, "mirrorkit: %s\n", err);
        for (int d = 0; d < 2; d++) {
            mk_lf_free(l->lf[d]);
            l->lf[d] = NULL;
        }
    }
    return rc;
}

static void on_dest_event(void *ctx, int kind, uint64_t n, uint64_t cp)
{
    pair_link *l = ctx;
    const mk_pair_hooks *h = l->cfg->hooks;
    if (h && h->dest_event)
        h->dest_event(h->ctx, kind, n, cp);
}

/* Opens the simulated destination's engine on its files: at the start, and
 * again after a crash, when opening is recovery (section 7.6). */
static int dest_start(pair_link *l)
{
    mk_dest_config dc = {0};
    dc.tree = l->dtree;
    dc.event = on_dest_event;
    dc.event_ctx = l;
    return mk_dest_open(&dc, l->mirror, l->log, &l->dest);
}

/* The pipe transport: a pipe each way to a forked destination, each as
 * large as the kernel allows an unprivileged process by default (1 MiB),
 * so that a pipe holds as much in flight as a socket does. */
static int pipes_open(pair_link *l)
{
    int down[2], up[2]; /* to the destination, back from it */
    if (pipe2(down, O_CLOEXEC))
        return mk_from_errno(errno);
    if (pipe2(up, O_CLOEXEC)) {
        int rc = mk_from_errno(errno);
        close(down[0]);
        close(down[1]);
        return rc;
    }
    (void)fcntl(down[1], F_SETPIPE_SZ, 1 << 20);
    (void)fcntl(up[1], F_SETPIPE_SZ, 1 << 20);
    fflush(NULL);
    l->child = fork();
    if (l->child == 0) {
        close(down[1]);
        close(up[0]);
        child_dest(l, down[0], up[1], -1, -1);
    }
    close(down[0]);
    close(up[1]);
    l->fd = up[0];
    l->wfd = down[1];
    if (l->child < 0)
        return mk_from_errno(errno);
    int rc = mk_net_nonblock(l->fd);
    return rc ? rc : mk_net_nonblock(l->wfd);
}

static int link_open(pair_link *l)
{
    const mk_pair_config *c = l->cfg;
    int rc;
    l->fd = l->wfd = -1;
    mk_prng_seed(&l->rng, c->seed ^ 0x6c696e6bULL);
    if (c->transport == MK_T_SIM) {
        mk_file *raw, *seen;
        /* A run that crashes the destination keeps its files on one crash
         * clock, so a crash loses what was not synced (LazyFS clear-cache),
         * and keeps the tree in a file of its own, as a real one would. */
        rc = c->crashable ? mk_file_mem_crashable("ref/dest/mirror", &l->dclk, &raw)
                          : mk_file_mem("ref/dest/mirror", &raw);
        if (rc)
            return rc;
        /* The destination writes its mirror through two wrappers: I5's,
         * which counts (and refuses) any write outside the volume, over a
         * write witness that hashes what reaches storage for the per-CP
         * check. */
        l->raw_mirror = raw;
        if ((rc = mk_file_witness(raw, c->block_size, &l->witness, &seen))) {
            mk_file_close(raw);
            return rc;
        }
        if ((rc = mk_file_bounded(seen, c->nblocks * c->block_size, &l->i5_violations,
                                  &l->mirror))) {
            mk_file_close(seen);
            return rc;
        }
        rc = c->crashable ? mk_file_mem_crashable("ref/dest/log", &l->dclk, &l->log)
                          : mk_file_mem("ref/dest/log", &l->log);
        if (rc == 0 && c->crashable)
            rc = mk_file_mem_crashable("ref/dest/tree", &l->dclk, &l->dtree);
        if (rc)
            return rc;
        l->view = l->mirror;
        if (c->link && (rc = link_faults(l)))
            return rc;
        return dest_start(l);
    }
    if (c->transport == MK_T_CONNECT)
        return connect_retry(l);
    if (!c->workdir)
        return MK_EINVAL;
    snprintf(l->mirror_path, sizeof l->mirror_path, "%s/mirror.img", c->workdir);
    int sv[2] = {-1, -1}, lfd = -1;
    if (c->transport == MK_T_PIPE)
        return pipes_open(l);
    if (c->transport == MK_T_SOCKETPAIR) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return mk_from_errno(errno);
    } else {
        uint16_t port;
        int lp[2];
        if ((rc = mk_net_listen("127.0.0.1:0", &lfd, &port)))
            return rc;
        if (pipe(lp)) {
            close(lfd);
            return mk_from_errno(errno);
        }
        snprintf(l->addr, sizeof l->addr, "127.0.0.1:%u", port);
        fflush(NULL);
        l->child = fork();
        if (l->child == 0) {
            close(lp[1]);
            child_dest(l, -1, -1, lfd, lp[0]);
        }
        close(lfd);
        close(lp[0]);
        l->life = lp[1];
        if (l->child < 0)
            return mk_from_errno(errno);
        if ((rc = mk_net_connect(l->addr, &l->fd)))
            return rc;
        return mk_net_nonblock(l->fd);
    }
    fflush(NULL);
    l->child = fork();
    if (l->child == 0) {
        close(sv[0]);
        child_dest(l, sv[1], sv[1], -1, -1);
    }
    close(sv[1]);
    if (l->child < 0) {
        close(sv[0]);
        return mk_from_errno(errno);
    }
    l->fd = sv[0];
    return mk_net_nonblock(l->fd);
}

/* Ends the session in order; a forked destination must then exit 0. */
static int link_close(pair_link *l, int ok)
{
    int rc = 0;
    if (l->wfd >= 0)
        close(l->wfd); /* a pipe's end of stream */
    if (l->fd >= 0) {
        shutdown(l->fd, SHUT_WR);
        close(l->fd);
    }
    if (l->life > 0)
        close(l->life);
    if (l->child > 0) {
        int st;
        if (!ok)
            kill(l->child, SIGKILL);
        if (waitpid(l->child, &st, 0) == l->child && ok &&
            !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            rc = MK_EREMOTE;
    }
    mk_dest_free(l->dest);
    mk_lf_free(l->lf[0]);
    mk_lf_free(l->lf[1]);
    if (l->view != l->mirror)
        mk_file_close(l->view);
    mk_file_close(l->mirror);
    mk_file_close(l->log);
    mk_file_close(l->dtree);
    return rc;
}

/* The mirror as the checker reads it: in this process for sim, the forked
 * destination's image file for pipe/tcp, --verify-image for connect (NULL
 * when there is none: the CP_ACK digest is then the only check). */
static mk_file *mirror_view(pair_link *l)
{
    const mk_pair_config *c = l->cfg;
    const char *path = c->transport == MK_T_CONNECT ? c->verify_image : l->mirror_path;
    if (!l->view && path && path[0])
        mk_file_open(path, 0, "verify/mirror", &l->view);
    return l->view;
}


static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }
static double pct(uint64_t a, uint64_t b) { return b ? 100.0 * (double)a / (double)b : 0.0; }

/* The same figures as print_summary, as one JSON object for machines. */
static void print_summary_json(FILE *o, const mk_pair_config *c, const mk_pair_result *r)
{
    const mk_source_stats *s = &r->stats;
    fprintf(o, "{\"summary\":{\"ok\":%s,\"error\":\"%s\",\"cps\":%u,\"cps_verified\":%u,"
               "\"mode\":\"%s\",\"transport\":\"%s\",\"blocks\":%llu,\"block_size\":%u,"
               "\"seed\":%llu,\"writes\":%llu,\"client_bytes\":%llu,\"log_bytes\":%llu,"
               "\"cp_data_bytes\":%llu,\"cp_ref_bytes\":%llu,\"cp_control_bytes\":%llu,"
               "\"session_bytes\":%llu,\"naive_cp_bytes\":%llu,\"ref_naive_bytes\":%llu,"
               "\"naks\":%llu,\"lost_transfers\":%llu,\"blocks_checked\":%llu,"
               "\"run_ms\":%.3f,\"verify_cp_ms\":%.3f,\"verify_final_ms\":%.3f}}\n",
            r->err ? "false" : "true", r->err ? mk_errname(r->err) : "", r->cps_done,
            r->cps_verified, mk_mode_name(c->mode), mk_transport_name(c->transport),
            (unsigned long long)c->nblocks, c->block_size, (unsigned long long)c->seed,
            (unsigned long long)s->writes, (unsigned long long)s->client_bytes,
            (unsigned long long)s->log_bytes, (unsigned long long)s->cp_data_bytes,
            (unsigned long long)s->cp_ref_bytes, (unsigned long long)s->cp_ctl_bytes,
            (unsigned long long)s->session_bytes, (unsigned long long)s->naive_bytes,
            (unsigned long long)s->ref_naive_bytes, (unsigned long long)s->naks,
            (unsigned long long)s->lost_transfers, (unsigned long long)r->blocks_checked,
            (double)r->run_ns / 1e6, (double)r->verify_cp_ns / 1e6,
            (double)r->verify_final_ns / 1e6);
}

static void print_summary(FILE *o, const mk_pair_config *c, const mk_pair_result *r)
{
    const mk_source_stats *s = &r->stats;
    uint64_t cpb = s->cp_data_bytes + s->cp_ref_bytes + s->cp_ctl_bytes;
    uint64_t wire = cpb + s->log_bytes + s->session_bytes;
    fprintf(o, "summary: %u/%u CPs verified, %llu writes, client %.2f MiB\n",
            r->cps_verified, c->script || r->cps_done > c->cps ? r->cps_done : c->cps,
            (unsigned long long)s->writes,
            mib(s->client_bytes));
    fprintf(o, "  wire %.2f MiB = %.3f x client: log %.2f MiB, CP data %.2f MiB, "
               "CP refs %.3f MiB, CP control %llu B, session %llu B\n",
            mib(wire), s->client_bytes ? (double)wire / (double)s->client_bytes : 0.0,
            mib(s->log_bytes), mib(s->cp_data_bytes), mib(s->cp_ref_bytes),
            (unsigned long long)s->cp_ctl_bytes, (unsigned long long)s->session_bytes);
    fprintf(o, "  CP phase %.2f MiB vs naive full-block CP %.2f MiB (%.2f%%); "
               "wholly-modified blocks: %.3f MiB of REFs vs %.2f MiB naive (%.3f%%)\n",
            mib(cpb), mib(s->naive_bytes), pct(cpb, s->naive_bytes), mib(s->cp_ref_bytes),
            mib(s->ref_naive_bytes), pct(s->cp_ref_bytes, s->ref_naive_bytes));
    if (r->blocks_checked) {
        /* Measured in this run: what checking added to the run without it. */
        uint64_t rest = r->run_ns - r->verify_cp_ns - r->verify_final_ns;
        fprintf(o, "  verification: %llu blocks compared; per-CP checks %.1f ms (+%.2f%% over "
                   "the %.1f ms unchecked run), final full check %.1f ms (+%.2f%%)\n",
                (unsigned long long)r->blocks_checked, (double)r->verify_cp_ns / 1e6,
                pct(r->verify_cp_ns, rest), (double)rest / 1e6, (double)r->verify_final_ns / 1e6,
                pct(r->verify_final_ns, rest));
    }
    if (c->link_corrupt)
        fprintf(o, "  link: %llu bits flipped, %llu sessions stalled on a damaged length\n",
                (unsigned long long)r->bits_flipped, (unsigned long long)r->stalls);
    fprintf(o, "  NAKs %llu, reconnects %llu (%llu sessions lost to damaged bytes), resent "
               "transfers %llu, lost transfers %llu%s\n",
            (unsigned long long)s->naks, (unsigned long long)(s->reconnects ? s->reconnects - 1 : 0),
            (unsigned long long)s->sessions_lost,
            (unsigned long long)s->resent_transfers, (unsigned long long)s->lost_transfers,
            s->out_of_sync ? ", OUT OF SYNC" : "");
}

/* ---- what the run does next: the workload's schedule or a script ------ */

enum { A_WRITE, A_CP, A_END };

typedef struct action {
    int kind;
    uint64_t off;
    uint32_t len;
    const uint8_t *data;
} action;

typedef struct planner {
    const mk_pair_config *cfg;
    mk_workload wl;
    uint32_t cp;            /* CPs started */
    uint64_t in_cp;         /* writes issued in the current CP */
    /* script mode */
    char *line;
    size_t line_cap;
    uint64_t lineno;
    uint8_t *data;
} planner;

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Parses one script line (SPEC.md 10.2).  Errors name the line. */
static int script_next(planner *p, action *a)
{
    const mk_pair_config *c = p->cfg;
    for (;;) {
        ssize_t n = getline(&p->line, &p->line_cap, c->script);
        if (n < 0) {
            a->kind = A_END;
            return 0;
        }
        p->lineno++;
        while (n > 0 && (p->line[n - 1] == '\n' || p->line[n - 1] == '\r'))
            p->line[--n] = 0;
        if (n == 0 || p->line[0] == '#')
            continue;
        if (strcmp(p->line, "quit") == 0) {
            a->kind = A_END;
            return 0;
        }
        if (strcmp(p->line, "cp") == 0) {
            a->kind = A_CP;
            return 0;
        }
        char *end, *hex;
        if (strncmp(p->line, "write ", 6) == 0) {
            errno = 0;
            unsigned long long off = strtoull(p->line + 6, &end, 10);
            hex = end + (*end == ' ');
            size_t hl = strlen(hex);
            if (!errno && end != p->line + 6 && *end == ' ' && hl && hl % 2 == 0 &&
                hl / 2 <= (size_t)1 << 26) {
                uint8_t *d = realloc(p->data, hl / 2);
                if (!d)
                    return MK_ENOMEM;
                p->data = d;
                size_t i;
                for (i = 0; i < hl / 2; i++) {
                    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
                    if (hi < 0 || lo < 0)
                        break;
                    d[i] = (uint8_t)(hi << 4 | lo);
                }
                if (i == hl / 2) {
                    *a = (action){A_WRITE, off, (uint32_t)(hl / 2), d};
                    return 0;
                }
            }
        }
        fprintf(stderr, "mirrorkit: script line %llu: MK_EUSAGE: expected 'write OFFSET HEXDATA', "
                        "'cp' or 'quit'\n", (unsigned long long)p->lineno);
        return MK_EUSAGE;
    }
}

static int plan_next(planner *p, action *a)
{
    const mk_pair_config *c = p->cfg;
    if (c->script)
        return script_next(p, a);
    if (p->cp == 0 || p->in_cp == c->writes_per_cp) {
        if (p->cp && p->in_cp == c->writes_per_cp) {
            p->in_cp = UINT64_MAX; /* this CP's writes are done: take it */
            a->kind = A_CP;
            return 0;
        }
    }
    if (p->cp == 0 || p->in_cp == UINT64_MAX) {
        if (p->cp == c->cps) {
            a->kind = A_END;
            return 0;
        }
        p->cp++;
        p->in_cp = 0;
        if (c->writes_per_cp == 0) {
            p->in_cp = UINT64_MAX;
            a->kind = A_CP;
            return 0;
        }
    }
    p->in_cp++;
    a->kind = A_WRITE;
    mk_workload_next(&p->wl, &a->off, &a->len, &a->data);
    return 0;
}

static void print_cp_line(FILE *o, uint32_t cp, const mk_source_stats *s,
                          const mk_source_stats *b, int vrc, int checked)
{
    uint64_t cpb = (s->cp_data_bytes + s->cp_ref_bytes + s->cp_ctl_bytes) -
                   (b->cp_data_bytes + b->cp_ref_bytes + b->cp_ctl_bytes);
    uint64_t naive = s->naive_bytes - b->naive_bytes;
    const char *verdict = vrc ? "NO" : checked > 0 ? "yes" : checked == 0 ? "digest" : "off";
    fprintf(o, "%4u %7llu %7llu %7llu %7llu %12llu %12llu %7.2f%% %8.3f%%  %s\n", cp,
            (unsigned long long)(s->writes - b->writes),
            (unsigned long long)(s->transfers - b->transfers),
            (unsigned long long)(s->cp_data_blocks - b->cp_data_blocks),
            (unsigned long long)(s->cp_ref_blocks - b->cp_ref_blocks),
            (unsigned long long)cpb, (unsigned long long)naive, pct(cpb, naive),
            pct(s->cp_ref_bytes - b->cp_ref_bytes, s->ref_naive_bytes - b->ref_naive_bytes),
            verdict);
    /* A CP row is progress: whoever reads the pipe or the file (a test
     * timing a kill, a user behind tee) sees it when the CP is done, not
     * when the run ends and stdio's buffer drains. */
    fflush(o);
}

/* Script mode reports each acknowledged write once, in order. */
static void report_acks(const mk_pair_config *c, const mk_source *src, uint64_t *reported)
{
    if (!c->script_out)
        return;
    while (*reported < mk_source_acked(src))
        fprintf(c->script_out, "ack %llu\n", (unsigned long long)++*reported);
    fflush(c->script_out);
}

/* Runs one check of the checker against the mirror view, timing it, and
 * keeps the first violation in the result. */
typedef int (*check_fn)(pair_link *l, mk_checker *ck, mk_file *store, mk_file *view,
                        mk_check_report *rep);

static int check_i1_incremental(pair_link *l, mk_checker *ck, mk_file *store, mk_file *view,
                                mk_check_report *rep)
{
    return mk_checker_cp_acked(ck, l->src, store, view, rep);
}

static int check_i1_full(pair_link *l, mk_checker *ck, mk_file *store, mk_file *view,
                         mk_check_report *rep)
{
    (void)l;
    return mk_checker_full(ck, store, view, rep);
}

static int run_check(pair_link *l, mk_checker *ck, mk_file *store, check_fn fn,
                     mk_pair_result *res, int *checked, uint64_t *ns)
{
    mk_file *view = mirror_view(l);
    mk_check_report rep;
    uint64_t t0 = mono_ns();
    int rc = 0;
    *checked = view != NULL;
    if (view) {
        l->checking++;
        rc = fn(l, ck, store, view, &rep);
        l->checking--;
        res->blocks_checked += rep.compared;
    } else {
        memset(&rep, 0, sizeof rep);
    }
    /* I5 is watched on every write the simulated destination makes. */
    if (rc == 0 && l->i5_violations) {
        rep.invariant = 5;
        rep.what = "bounds";
        rep.differing = l->i5_violations;
        rc = MK_EVERIFY;
    }
    *ns += mono_ns() - t0;
    if (rc == MK_EVERIFY) {
        if (!res->report.invariant)
            res->report = rep;
        if (l->cfg->out) {
            if (l->cfg->json)
                mk_check_report_json(l->cfg->out, &rep);
            else
                mk_check_report_text(l->cfg->out, &rep, l->cfg->block_size);
        }
    }
    return rc;
}

/* The source found the mirror's Merkle root wrong in a CP_ACK and descended
 * the trees (section 9.7): name the blocks, with what last wrote them.  The
 * CP of that CP_ACK is the one in flight: the engine keeps it so until the
 * descent ends, so it is the last acknowledged CP + 1. */
static void report_tree_diff(FILE *o, const mk_pair_config *c, const mk_source *src,
                             mk_checker *ck)
{
    size_t n;
    uint64_t queries;
    int more;
    const uint64_t *b = mk_source_diff_blocks(src, &n, &queries, &more);
    if (!n)
        return;
    if (c->json) {
        fprintf(o, "{\"check\":\"merkle\",\"cp\":%llu,\"held\":false,\"invariant\":\"I1\","
                   "\"node_queries\":%llu,\"more\":%s,\"blocks\":[",
                (unsigned long long)mk_source_cp_acked(src) + 1, (unsigned long long)queries,
                more ? "true" : "false");
        for (size_t i = 0; i < n; i++)
            fprintf(o, "%s%llu", i ? "," : "", (unsigned long long)b[i]);
        fprintf(o, "]}\n");
        return;
    }
    fprintf(o, "VIOLATED I1 mirror equals the CP image (Merkle root in CP_ACK %llu): "
               "%zu%s differing blocks found with %llu tree nodes asked\n",
            (unsigned long long)mk_source_cp_acked(src) + 1, n, more ? "+" : "",
            (unsigned long long)queries);
    for (size_t i = 0; i < n; i++) {
        mk_prov p;
        mk_checker_provenance(ck, b[i], &p);
        fprintf(o, "  block %llu (byte offset %llu): ", (unsigned long long)b[i],
                (unsigned long long)(b[i] * c->block_size));
        mk_prov_text(o, &p);
        fprintf(o, "\n");
    }
}

/* Breaks the mirror on purpose, as a disk or a stray writer would: one byte
 * of one block flipped behind the destination's back. */
static int corrupt_mirror(pair_link *l)
{
    const mk_pair_config *c = l->cfg;
    /* Under the destination's wrappers: nothing on the write path sees it. */
    mk_file *m = l->cfg->transport == MK_T_SIM ? l->raw_mirror : NULL;
    uint64_t off = c->corrupt_block * c->block_size + c->block_size / 3;
    uint8_t b;
    int rc;
    if (c->corrupt_block >= c->nblocks)
        return MK_ERANGE;
    if (!m && (rc = mk_file_open(c->transport == MK_T_CONNECT ? c->verify_image : l->mirror_path,
                                 0, "verify/corrupt", &m)))
        return rc;
    if ((rc = mk_file_read_block(m, &b, 1, off)) == 0) {
        b ^= 0x40;
        rc = mk_file_pwrite(m, &b, 1, off);
    }
    if (m != l->raw_mirror)
        mk_file_close(m);
    if (rc == 0 && c->out && !c->json)
        fprintf(c->out, "corrupted: flipped one bit of mirror byte %llu (block %llu) after CP %llu\n",
                (unsigned long long)off, (unsigned long long)c->corrupt_block,
                (unsigned long long)c->corrupt_cp);
    return rc;
}

/* Takes the next CP, waits for its CP_ACK, checks the mirror against the
 * source's CP image (I1) and reports it. */
static int take_cp(mk_pair *p)
{
    const mk_pair_config *c = p->cfg;
    pair_link *l = &p->l;
    mk_pair_result *res = &p->res;
    int rc, checked = 0, vrc = 0;
    if (p->down[MK_ROLE_SOURCE] || p->down[MK_ROLE_DEST])
        return MK_ECLOSED;
    uint64_t cp = mk_source_cp_acked(p->src) + 1;
    while ((rc = mk_source_cp(p->src, l->now)) == MK_EAGAIN && !killed(p))
        if ((rc = pump_until(l, c_acked, mk_source_get_stats(p->src)->writes)))
            return rc;
    if (killed(p)) /* the source died starting the CP */
        return reap(p);
    if (rc)
        return rc;
    if (c->hooks && c->hooks->cp_begin)
        c->hooks->cp_begin(c->hooks->ctx, cp);
    /* Before a byte of the CP leaves: the mirror still holds CP k-1. */
    if (c->verify != MK_VERIFY_OFF && mirror_view(l)) {
        uint64_t t0 = mono_ns();
        l->checking++;
        rc = mk_checker_cp_begin(p->ck, cp, p->src, p->store, mirror_view(l));
        l->checking--;
        if (rc)
            return rc;
        res->verify_cp_ns += mono_ns() - t0;
    } else {
        mk_checker_cp_taken(p->ck);
    }
    if ((rc = pump_until(l, c_cp, cp))) {
        /* A root that differed (9.7): the CP_ACK passed its checks - the
         * CP's blocks arrived as sent - and the descent then failed the run.
         * A script still hears of the acknowledgement first (SPEC.md 10.2). */
        size_t nd = 0;
        uint64_t queries;
        int more;
        if (rc == MK_EVERIFY && c->script_out &&
            mk_source_diff_blocks(p->src, &nd, &queries, &more) && nd) {
            fprintf(c->script_out, "cp-ack %llu\n", (unsigned long long)cp);
            fflush(c->script_out);
        }
        return rc;
    }
    report_acks(c, p->src, &p->reported);
    res->cps_done = (uint32_t)cp;
    /* After a destination recovered, every block is read back: its write
     * witness saw writes that the crash may have thrown away. */
    if (c->verify != MK_VERIFY_OFF)
        vrc = run_check(l, p->ck, p->store,
                        c->verify == MK_VERIFY_FULL || p->recovered ? check_i1_full
                                                                    : check_i1_incremental,
                        res, &checked, &res->verify_cp_ns);
    p->recovered = 0;
    if (vrc == 0)
        res->cps_verified++;
    if (c->out && !c->json)
        print_cp_line(c->out, (uint32_t)cp, mk_source_get_stats(p->src), &p->before, vrc,
                      c->verify == MK_VERIFY_OFF ? -1 : checked);
    if (c->script_out) {
        fprintf(c->script_out, "cp-ack %llu\n", (unsigned long long)cp);
        fflush(c->script_out);
    }
    p->before = *mk_source_get_stats(p->src);
    return vrc;
}

/* ---- crashes and restarts (sim) ---------------------------------------- */

static int source_start(mk_pair *p)
{
    const mk_pair_config *c = p->cfg;
    mk_source_config sc = {c->volume_id, c->nblocks, c->source_id, c->block_size,
                           c->mode, 0, NULL};
    /* The source keeps the Merkle tree of its CP image and checks the
     * mirror's root in every CP_ACK (section 9.7). */
    sc.tree = p->stree;
    int rc = mk_source_new(&sc, p->store, &p->src);
    p->l.src = p->src;
    return rc;
}

void mk_pair_kill(mk_pair *p, int role, int torn)
{
    pair_link *l = &p->l;
    if (p->cfg->transport != MK_T_SIM || p->down[role] || p->killed[role])
        return;
    /* From now on every storage call of the role fails: a dead process
     * changes nothing.  What it queued to send so far was sent.  A torn
     * write is the exception: the dying call persists its prefix, and the
     * crash clock, which the tear ran out, stops everything after it. */
    /* (A role still opening - a destination in recovery - has sent
     * nothing yet.) */
    if (role == MK_ROLE_DEST) {
        l->dclk.dead = !torn;
        p->mark[role] = l->dest ? mk_buf_len(mk_dest_out(l->dest)) : 0;
    } else {
        p->sclk.dead = !torn;
        p->mark[role] = p->src ? mk_buf_len(mk_source_out(p->src)) : 0;
    }
    p->killed[role] = 1;
}

int mk_pair_down(const mk_pair *p, int role) { return p->down[role] || p->killed[role]; }
int mk_pair_dying(const mk_pair *p, int role) { return p->killed[role]; }
int mk_pair_checking(const mk_pair *p) { return p->l.checking > 0; }

void mk_pair_set_restart(mk_pair *p, int role, int automatic)
{
    p->restart_auto[role] = automatic;
}

static void drop_link(pair_link *l)
{
    for (int d = 0; d < 2; d++)
        if (l->lf[d])
            mk_lf_reconnect(l->lf[d], l->now);
}

/* Carries out the deaths mk_pair_kill marked: delivers what each role had
 * queued before it died, loses the rest and - for the destination - every
 * write not yet synced, then restarts the roles the scenario restarts
 * automatically. */
static int reap(mk_pair *p)
{
    pair_link *l = &p->l;
    int rc = 0;
    if (p->killed[MK_ROLE_DEST]) {
        if (l->dest && p->src && !p->killed[MK_ROLE_SOURCE] && mk_source_ready(p->src) &&
            p->mark[MK_ROLE_DEST])
            mk_source_recv(p->src, mk_buf_peek(mk_dest_out(l->dest)), p->mark[MK_ROLE_DEST],
                           l->now);
        mk_dest_free(l->dest);
        l->dest = NULL;
        mk_file_mem_crash(l->log);
        mk_file_mem_crash(l->raw_mirror);
        mk_file_mem_crash(l->dtree);
        memset(&l->dclk, 0, sizeof l->dclk);
        p->killed[MK_ROLE_DEST] = 0;
        p->down[MK_ROLE_DEST] = 1;
        p->recovered = 1;
        if (p->src)
            mk_source_disconnect(p->src);
        drop_link(l);
    }
    if (p->killed[MK_ROLE_SOURCE]) {
        if (p->src && l->dest && p->mark[MK_ROLE_SOURCE])
            mk_dest_recv(l->dest, mk_buf_peek(mk_source_out(p->src)), p->mark[MK_ROLE_SOURCE],
                         l->now);
        if (p->src)
            p->res.stats = *mk_source_get_stats(p->src);
        mk_source_free(p->src);
        p->src = l->src = NULL;
        memset(&p->sclk, 0, sizeof p->sclk);
        p->killed[MK_ROLE_SOURCE] = 0;
        p->down[MK_ROLE_SOURCE] = 1;
        /* The connection closed under the destination. */
        if (l->dest) {
            mk_buf_consume(mk_dest_out(l->dest), mk_buf_len(mk_dest_out(l->dest)));
            mk_dest_session_end(l->dest);
        }
        drop_link(l);
    }
    for (int r = 0; r < 2 && rc == 0; r++)
        if (p->down[r] && p->restart_auto[r])
            rc = mk_pair_restart(p, r);
    return rc;
}

int mk_pair_crash(mk_pair *p, int role)
{
    if (p->cfg->transport != MK_T_SIM)
        return MK_EINVAL;
    if (p->down[role])
        return MK_ESTATE;
    mk_pair_kill(p, role, 0);
    return reap(p);
}

int mk_pair_restart(mk_pair *p, int role)
{
    pair_link *l = &p->l;
    int rc;
    if (p->cfg->transport != MK_T_SIM)
        return MK_EINVAL;
    if (!p->down[role])
        return MK_ESTATE;
    p->down[role] = 0;
    if (role == MK_ROLE_SOURCE) {
        /* A restarted source has lost its memory: its tree of the CP image
         * goes with it, and a destination with history refuses it (8.2). */
        if ((rc = mk_file_truncate(p->stree, 0)) || (rc = source_start(p)))
            return rc;
        return l->dest ? mk_source_connect(p->src, l->now) : 0;
    }
    /* Opening the destination again is its recovery (section 7.6) - in
     * which it may crash again, and recover again. */
    rc = dest_start(l);
    if (p->killed[MK_ROLE_DEST])
        return reap(p);
    if (rc) {
        p->down[role] = 1;
        return rc;
    }
    /* I3: the recovered mirror is CP k-1 or CP k, never a mix - unless it
     * crashed promoting, when it holds part of the replay (8.4 step 2),
     * which the retried promotion completes and I2 then checks. */
    if (p->cfg->verify != MK_VERIFY_OFF && !p->promoting) {
        mk_check_report rep;
        l->checking++;
        rc = mk_checker_atomic(p->ck, l->view, &rep);
        l->checking--;
        if (rc == MK_EVERIFY) {
            if (!p->res.report.invariant)
                p->res.report = rep;
            if (p->cfg->out)
                mk_check_report_text(p->cfg->out, &rep, p->cfg->block_size);
        }
        if (rc)
            return rc;
    }
    return p->src ? mk_source_connect(p->src, l->now) : 0;
}

int mk_pair_promote(mk_pair *p)
{
    pair_link *l = &p->l;
    mk_check_report rep;
    int rc;
    if (p->cfg->transport != MK_T_SIM)
        return MK_EINVAL;
    if (p->down[MK_ROLE_DEST] || p->promoted)
        return MK_ESTATE;
    /* Promotion follows the loss of the source (section 8.4): whatever it
     * had not sent yet is lost with it. */
    if (p->src) {
        mk_pair_kill(p, MK_ROLE_SOURCE, 0);
        p->mark[MK_ROLE_SOURCE] = 0;
        p->restart_auto[MK_ROLE_SOURCE] = 0;
        if ((rc = reap(p)))
            return rc;
    }
    /* A destination that crashes while promoting is recovered and promoted
     * again, as an operator would retry (promotion is idempotent, 8.4). */
    p->promoting = 1;
    while ((rc = mk_dest_promote(l->dest)) && p->killed[MK_ROLE_DEST]) {
        mk_log_ident id;
        if ((rc = reap(p)) == 0 && p->down[MK_ROLE_DEST])
            rc = MK_ECLOSED;
        if (rc)
            break;
        /* Recovered with no identity: it died after retiring its log (8.4
         * step 4), after the mirror was synced - promotion was done. */
        if (mk_dest_ident(l->dest, &id) != 0)
            break;
    }
    p->promoting = 0;
    if (rc)
        return rc;
    p->promoted = 1;
    /* I2: every write acknowledged in sync mode is on the promoted volume. */
    if (p->cfg->verify != MK_VERIFY_OFF) {
        l->checking++;
        rc = mk_checker_promoted(p->ck, p->store, l->view, &rep);
        l->checking--;
    }
    if (rc == MK_EVERIFY) {
        if (!p->res.report.invariant)
            p->res.report = rep;
        if (p->cfg->out)
            mk_check_report_text(p->cfg->out, &rep, p->cfg->block_size);
    }
    return rc;
}

/* ---- the pair, step by step ------------------------------------------- */

/* One of the source side's files: in memory, or a fresh sparse file in
 * c->store_dir. */
static int side_file(const mk_pair_config *c, const char *name, const char *file, mk_file **out)
{
    char path[4096];
    if (!c->store_dir)
        return mk_file_mem(name, out);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", c->store_dir, file) >= sizeof path)
        return MK_EINVAL;
    if (unlink(path) && errno != ENOENT)
        return MK_EIO;
    return mk_file_open(path, 1, name, out);
}

int mk_pair_open(const mk_pair_config *c, mk_pair **out)
{
    mk_pair *p = calloc(1, sizeof *p);
    int rc;
    *out = p;
    if (!p)
        return MK_ENOMEM;
    p->cfg = c;
    p->t_start = mono_ns();
    p->l.cfg = c;
    p->l.fd = p->l.wfd = p->l.life = -1;
    p->l.pair = p;
    if (c->record && !(p->l.record = fopen(c->record, "wb")))
        return p->res.err = MK_EIO;
    if ((rc = side_file(c, "verify/provenance", "provenance", &p->prov)) ||
        (rc = side_file(c, "ref/source/tree", "source.mkt", &p->stree)))
        return rc;
    /* A crashable source fails every call once it is dead; its volume is
     * never rolled back (a process crash leaves the page cache). */
    rc = c->crashable ? mk_file_mem_crashable("ref/source/store", &p->sclk, &p->store)
                      : side_file(c, "ref/source/store", "source.img", &p->store);
    if (rc || (rc = source_start(p)) || (rc = link_open(&p->l)))
        return rc;
    mk_checker_config cc = {c->nblocks, c->block_size, c->scrub_per_cp, p->prov,
                            c->crashable, p->l.witness};
    if ((rc = mk_checker_new(&cc, &p->ck)) || (rc = mk_source_connect(p->src, p->l.now)) ||
        (rc = pump_until(&p->l, c_ready, 0)))
        return rc;
    if (c->out && !c->json) {
        FILE *o = c->out;
        fprintf(o, "mirrorkit pair: %llu blocks x %u B (%.0f MiB), mode %s, workload %s, "
                   "%u CPs x %llu writes, transport %s, seed %llu\n",
                (unsigned long long)c->nblocks, c->block_size,
                mib(c->nblocks * c->block_size), mk_mode_name(c->mode),
                c->script ? "script" : mk_workload_name(c->workload), c->cps,
                (unsigned long long)c->writes_per_cp, mk_transport_name(c->transport),
                (unsigned long long)c->seed);
        fprintf(o, "%4s %7s %7s %7s %7s %12s %12s %8s %9s  %s\n", "CP", "writes", "xfers",
                "DATA", "REF", "CP bytes", "naive bytes", "CP/naive", "REF/naive", "verified");
    }
    p->before = *mk_source_get_stats(p->src);
    return 0;
}

int mk_pair_write(mk_pair *p, uint64_t off, const void *data, uint32_t len)
{
    const mk_pair_config *c = p->cfg;
    pair_link *l = &p->l;
    uint64_t wid = 0;
    int rc;
    for (;;) {
        if (p->down[MK_ROLE_SOURCE])
            return MK_ECLOSED; /* no source takes client writes */
        rc = mk_source_write(p->src, off, data, len, l->now, &wid);
        if (rc != MK_EAGAIN || killed(p))
            break;
        /* The lag bound holds the client until acknowledgements come; the
         * wait resumes stalled sessions and gives up on a dead link as every
         * wait does.  A destination that is down holds it for good. */
        if ((rc = pump_until(l, c_less_unacked, mk_source_unacked_bytes(p->src))))
            return rc;
    }
    /* The workload runs too many writes into one CP for a CP to hold them:
     * the caller's answer is to take a CP (script mode reports it instead,
     * as the caller there is the script). */
    if (rc == MK_ECPFULL && !c->script && !killed(p)) {
        if ((rc = take_cp(p)) == 0)
            rc = p->src ? mk_source_write(p->src, off, data, len, l->now, &wid) : MK_ECLOSED;
    }
    if (rc == 0 && c->hooks && c->hooks->write_event)
        c->hooks->write_event(c->hooks->ctx, wid);
    /* The source died taking the write: it was never acknowledged. */
    if (killed(p)) {
        int acked = c->mode == MK_MODE_SYNC && p->src && wid && mk_source_acked(p->src) >= wid;
        return (rc = reap(p)) ? rc : mk_checker_write(p->ck, off, len, acked);
    }
    if (rc)
        return rc;
    if (c->mode == MK_MODE_SYNC)
        rc = pump_until(l, c_acked, wid);
    else if (mk_buf_len(mk_source_out(p->src)) > (1u << 20))
        rc = pump_until(l, c_drained, 1u << 18);
    /* A role that went down while the client waited leaves the write
     * unacknowledged; the run goes on (a scenario restarts it). */
    if (rc == MK_ECLOSED && (p->down[MK_ROLE_DEST] || p->down[MK_ROLE_SOURCE]))
        rc = 0;
    if (rc)
        return rc;
    /* I2's history: the write is acknowledged now (sync mode waited for it
     * above).  I2 promises nothing for the other modes, which acknowledge
     * before the destination has the write (section 9, I2). */
    int acked = c->mode == MK_MODE_SYNC && p->src && mk_source_acked(p->src) >= wid;
    if ((rc = mk_checker_write(p->ck, off, len, acked)))
        return rc;
    if (p->src)
        report_acks(c, p->src, &p->reported);
    return 0;
}

int mk_pair_cp(mk_pair *p) { return take_cp(p); }

int mk_pair_finish(mk_pair *p)
{
    const mk_pair_config *c = p->cfg;
    pair_link *l = &p->l;
    int rc = 0, checked;
    if (p->promoted)
        return 0; /* the destination is a volume of its own now */
    if (p->down[MK_ROLE_SOURCE] || p->down[MK_ROLE_DEST])
        return MK_ECLOSED;
    /* The end of a script waits until every write is acknowledged. */
    if (c->script && (rc = pump_until(l, c_acked, mk_source_get_stats(p->src)->writes)) == 0)
        report_acks(c, p->src, &p->reported);
    /* A CP a crash interrupted is completed by the source in the session
     * after the restart: wait for its CP_ACK. */
    if (rc == 0 && mk_source_cp_in_flight(p->src)) {
        uint64_t cp = mk_source_cp_acked(p->src) + 1;
        if ((rc = pump_until(l, c_cp, cp)) == 0)
            p->res.cps_done = (uint32_t)cp;
    }
    if (rc == 0)
        rc = pump_until(l, c_drained, 0);
    /* Every CP verified, but in sync mode the destination lost writes it
     * had acknowledged: invariant I2 was broken and the run says so. */
    if (rc == 0 && p->src && mk_source_get_stats(p->src)->out_of_sync)
        rc = MK_ELOGLOST;
    /* A run that checks ends with every block compared - if it ends at a
     * CP: blocks written after the last one are not the mirror's yet, and
     * the checker compares with the live volume. */
    if (rc == 0 && c->verify != MK_VERIFY_OFF && p->res.cps_done && p->src &&
        mk_source_dirty_blocks(p->src)) {
        if (c->out && !c->json)
            fprintf(c->out, "final full check: skipped, %llu blocks written after the last CP\n",
                    (unsigned long long)mk_source_dirty_blocks(p->src));
    } else if (rc == 0 && c->verify != MK_VERIFY_OFF && p->res.cps_done) {
        rc = run_check(l, p->ck, p->store, check_i1_full, &p->res, &checked,
                       &p->res.verify_final_ns);
        p->res.final_checked = checked && rc == 0;
        if (c->out && !c->json && checked && rc == 0)
            fprintf(c->out, "final full check: %llu blocks equal\n",
                    (unsigned long long)c->nblocks);
    }
    return rc;
}

mk_source *mk_pair_source(mk_pair *p) { return p->src; }
mk_file *mk_pair_store(mk_pair *p) { return p->store; }
mk_file *mk_pair_mirror(mk_pair *p) { return mirror_view(&p->l); }
mk_lf *mk_pair_link_faults(mk_pair *p, int dir) { return p->l.lf[dir]; }
uint64_t mk_pair_now(const mk_pair *p) { return p->l.now; }
const mk_pair_result *mk_pair_progress(const mk_pair *p) { return &p->res; }

int mk_pair_close(mk_pair *p, int rc, mk_pair_result *res)
{
    const mk_pair_config *c;
    FILE *o;
    if (!p) {
        memset(res, 0, sizeof *res);
        return res->err = rc;
    }
    c = p->cfg;
    o = c->out;
    pair_link *l = &p->l;
    p->res.run_ns = mono_ns() - p->t_start;
    p->res.bits_flipped = l->bits_flipped;
    p->res.stalls = l->stalls;
    if (p->src) {
        const char *rmsg;
        p->res.stats = *mk_source_get_stats(p->src);
        if (rc == MK_EREMOTE)
            p->res.remote_code = mk_source_remote_error(p->src, &rmsg);
    }
    if (rc == 0 && p->res.err)
        rc = p->res.err;
    p->res.err = rc;
    int crc = link_close(l, rc == 0);
    if (rc == 0 && crc)
        p->res.err = rc = crc;
    if (c->script_out && rc) {
        fprintf(c->script_out, "error %s\n", mk_errname(rc));
        fflush(c->script_out);
    }
    if (o && p->src && rc == MK_EVERIFY)
        report_tree_diff(o, c, p->src, p->ck);
    if (o && c->json) {
        print_summary_json(o, c, &p->res);
    } else if (o) {
        print_summary(o, c, &p->res);
        if (rc == MK_EREMOTE && p->res.remote_code) {
            const char *rmsg;
            mk_source_remote_error(p->src, &rmsg);
            fprintf(o, "result: FAILED: destination reported %s: %s\n",
                    mk_errname(p->res.remote_code), rmsg);
        } else if (rc) {
            fprintf(o, "result: FAILED: %s: %s\n", mk_errname(rc), mk_strerror(rc));
        } else if (p->res.cps_verified < p->res.cps_done) {
            /* A CP a crash interrupted was acknowledged in a later session,
             * after writes that changed the volume: only the final full
             * check, if the run ended at a CP, speaks for it. */
            fprintf(o, "result: ok, %u of %u CPs checked when acknowledged, %s\n",
                    p->res.cps_verified, p->res.cps_done,
                    p->res.final_checked ? "the rest by the final full check"
                                         : "the rest NOT checked (no final full check)");
        } else {
            fprintf(o, "result: ok, every CP verified\n");
        }
    }
    if (l->record)
        fclose(l->record);
    *res = p->res;
    mk_checker_free(p->ck);
    mk_file_close(p->prov);
    mk_source_free(p->src);
    mk_file_close(p->store);
    mk_file_close(p->stree);
    free(p);
    return rc;
}

int mk_pair_run(const mk_pair_config *c, mk_pair_result *res)
{
    planner pl = {.cfg = c};
    mk_pair *p;
    int rc = mk_pair_open(c, &p);
    if (rc == 0 && !c->script)
        rc = mk_workload_init(&pl.wl, c->workload, c->seed, c->nblocks, c->block_size);
    while (rc == 0) {
        action a;
        if ((rc = plan_next(&pl, &a)) || a.kind == A_END)
            break;
        if (a.kind == A_WRITE) {
            rc = mk_pair_write(p, a.off, a.data, a.len);
            continue;
        }
        if ((rc = mk_pair_cp(p)) == 0 && c->corrupt_cp && c->corrupt_cp == p->res.cps_done)
            rc = corrupt_mirror(&p->l);
    }
    if (rc == 0)
        rc = mk_pair_finish(p);
    rc = mk_pair_close(p, rc, res);
    mk_workload_free(&pl.wl);
    free(pl.line);
    free(pl.data);
    return rc;
}
