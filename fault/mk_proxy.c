/*
 * mk_proxy.c - the TCP fault proxy (see mk_proxy.h).
 *
 * One connection at a time: a source that reconnects after a reset finds
 * the proxy back at accept(), which is all the protocol needs (a
 * destination serves one session at a time anyway).  Each direction has
 * its own mk_lf pipe, kept across connections so a fault that has fired
 * (reset_peer, truncate) stays gone and the seed's random stream goes on,
 * as in the simulated link; mk_lf_reconnect starts each connection.
 */
#include "mk_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_linkfault.h"
#include "mk_net.h"

enum { TO_DEST = 0, TO_SOURCE = 1 };

/* Stop reading a side once this much waits in its pipe: the pipe's memory
 * is the bytes in flight, and a slow (bandwidth-limited) direction must
 * push back on its sender through TCP rather than grow without bound. */
#define PROXY_MAX_IN_FLIGHT (8u << 20)
#define PROXY_CHUNK 65536

static volatile sig_atomic_t proxy_stop;
static void proxy_on_signal(int sig)
{
    (void)sig;
    proxy_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void proxy_help(void)
{
    printf("usage: mirrorkit proxy --listen HOST:PORT --upstream HOST:PORT [options]\n\n"
           "A TCP fault proxy: accepts a connection (one at a time), connects to the\n"
           "upstream (the destination) for it and relays both directions through the\n"
           "link faults of --link, on the real clock.  A reset closes both sockets;\n"
           "the source reconnects through the proxy and resumes.\n\n"
           "  --listen HOST:PORT    address to listen on (port 0 picks one); loopback\n"
           "                        (127.x) only unless --any is given\n"
           "  --upstream HOST:PORT  where each connection is relayed to\n"
           "  --link 'FAULTS'       link faults as in demo --link, e.g.\n"
           "                        'drop prob=1/200; latency ms=3 dir=to-dest'\n"
           "                        (to-dest: client to upstream; to-source: back)\n"
           "  --seed S              seed of the faults' random choices (default 1)\n"
           "  --port-file F         write the port actually bound to F\n"
           "  --once                exit after the first connection ends\n"
           "  --any                 allow a listen address that is not loopback\n\n"
           "Runs until SIGTERM or SIGINT (or, with --once, the first connection's end).\n"
           "Exit: 0 ok, 2 usage or bad input, 3 I/O error.\n");
}

/* Loopback by default: a fault proxy left listening on a real interface
 * would let anyone on the network feed a destination. */
static int is_loopback(const char *hostport)
{
    char host[64];
    struct in_addr a;
    const char *colon = strrchr(hostport, ':');
    size_t n = colon ? (size_t)(colon - hostport) : 0;
    if (!colon || n >= sizeof host)
        return 0;
    if (n == 0)
        return 1; /* mk_net's default host is 127.0.0.1 */
    memcpy(host, hostport, n);
    host[n] = 0;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* One direction of a connection: bytes pulled from the pipe that the
 * receiving socket has not taken yet.  Only an empty buffer is refilled,
 * so each pull (a slicer's slice) goes out as its own send. */
typedef struct dir_out {
    uint8_t buf[PROXY_CHUNK];
    size_t len, off;
} dir_out;

/* Reads what fd has into the pipe.  1 on end of stream or error. */
static int feed(int fd, mk_lf *lf, uint64_t *bytes)
{
    uint8_t tmp[PROXY_CHUNK];
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r > 0) {
            *bytes += (uint64_t)r;
            /* MK_ENOMEM loses the bytes, as the pipe's counters say; the
             * protocol treats that like any lost frame. */
            mk_lf_push(lf, tmp, (size_t)r, now_ns());
            if ((size_t)r < sizeof tmp)
                return 0;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        return 1;
    }
}

/* Moves what has arrived in the pipe to fd.  1 when fd is gone. */
static int drain(int fd, mk_lf *lf, dir_out *o)
{
    for (;;) {
        if (o->off == o->len) {
            o->off = o->len = 0;
            o->len = mk_lf_pull(lf, now_ns(), o->buf, sizeof o->buf);
            if (!o->len)
                return 0;
        }
        ssize_t w = send(fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL);
        if (w > 0) {
            o->off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w < 0 && errno == EINTR)
            continue;
        return 1;
    }
}

/* A reset fault ends the connection as a reset would: with RST, so each
 * end sees the connection fail rather than end in order. */
static void close_reset(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Closes the upstream side in order and waits (up to 2 s) until the
 * upstream has closed too.  A destination serves one session at a time
 * and refuses a second connection with MK_EPEER while one is active; the
 * source reconnects at once after a reset, so the proxy must not open the
 * next upstream connection before the destination has ended this session.
 * An RST would leave no way to see when it has. */
static void close_upstream(int ufd)
{
    uint8_t tmp[4096];
    uint64_t deadline = now_ns() + 2000000000u;
    shutdown(ufd, SHUT_WR);
    while (!proxy_stop) {
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        struct pollfd p = {ufd, POLLIN, 0};
        int n = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0) {
            ssize_t r = recv(ufd, tmp, sizeof tmp, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                break; /* the destination has closed: its session is over */
        }
    }
    close(ufd);
}

/* Relays one connection until either end closes, a reset fault fires or
 * the proxy is told to stop.  Returns a short reason for the log. */
static const char *relay(int cfd, int ufd, mk_lf *lf[2])
{
    int fds[2] = {ufd, cfd};   /* where each pipe's bytes go */
    int from[2] = {cfd, ufd};  /* where each pipe's bytes come from */
    static dir_out out[2];
    uint64_t read_bytes[2] = {0, 0};
    const char *why = NULL;
    memset(out, 0, sizeof out);
    while (!why) {
        if (proxy_stop) {
            why = "proxy stopped";
            break;
        }
        struct pollfd p[2] = {{cfd, 0, 0}, {ufd, 0, 0}};
        uint64_t t = UINT64_MAX, now = now_ns();
        for (int d = 0; d < 2; d++) {
            struct pollfd *in = d == TO_DEST ? &p[0] : &p[1];
            struct pollfd *op = d == TO_DEST ? &p[1] : &p[0];
            if (mk_lf_in_flight(lf[d]) < PROXY_MAX_IN_FLIGHT)
                in->events |= POLLIN;
            if (out[d].off < out[d].len)
                op->events |= POLLOUT;
            else if (mk_lf_next_event(lf[d]) < t)
                t = mk_lf_next_event(lf[d]); /* only a free sender can use it */
        }
        /* Sleep until the pipes' next event (a delayed frame due, a
         * timeout closing), capped so a signal is never missed for long. */
        int timeout = 200;
        if (t <= now)
            timeout = 0;
        else if (t != UINT64_MAX && (t - now + 999999) / 1000000 < 200)
            timeout = (int)((t - now + 999999) / 1000000);
        if (poll(p, 2, timeout) < 0 && errno != EINTR) {
            why = "poll failed";
            break;
        }
        for (int d = 0; d < 2 && !why; d++) {
            struct pollfd *in = d == TO_DEST ? &p[0] : &p[1];
            if ((in->revents & (POLLIN | POLLHUP | POLLERR)) && feed(from[d], lf[d], &read_bytes[d]))
                why = d == TO_DEST ? "client closed" : "upstream closed";
        }
        for (int d = 0; d < 2 && !why; d++)
            if (drain(fds[d], lf[d], &out[d]))
                why = d == TO_DEST ? "upstream closed" : "client closed";
        for (int d = 0; d < 2 && !why; d++)
            if (mk_lf_state(lf[d]) == MK_LF_RESET)
                why = d == TO_DEST ? "reset by link fault (to-dest)" : "reset by link fault (to-source)";
        /* MK_LF_TIMEOUT needs nothing here: the pipe swallows what is
         * pushed and delivers nothing until its close time, which
         * mk_lf_next_event gives and the poll above waits for. */
    }
    return why;
}

int mk_cmd_proxy(int argc, char **argv)
{
    enum { O_LISTEN = 1, O_UPSTREAM, O_LINK, O_SEED, O_PORTFILE, O_ONCE, O_ANY, O_HELP };
    static const struct option lo[] = {
        {"listen", 1, 0, O_LISTEN}, {"upstream", 1, 0, O_UPSTREAM}, {"link", 1, 0, O_LINK},
        {"seed", 1, 0, O_SEED}, {"port-file", 1, 0, O_PORTFILE}, {"once", 0, 0, O_ONCE},
        {"any", 0, 0, O_ANY}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    const char *listen_addr = NULL, *upstream = NULL, *link = NULL, *portfile = NULL;
    uint64_t seed = 1;
    int once = 0, any = 0, o, rc;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case O_HELP: proxy_help(); return EXIT_OK;
        case O_LISTEN:
            if (mk_net_addr_ok(optarg))
                return mk_usage_error("proxy", "--listen needs IPV4:PORT, e.g. 127.0.0.1:7000, not '%s'", optarg);
            listen_addr = optarg;
            break;
        case O_UPSTREAM:
            if (mk_net_addr_ok(optarg))
                return mk_usage_error("proxy", "--upstream needs IPV4:PORT, e.g. 127.0.0.1:7000, not '%s'", optarg);
            upstream = optarg;
            break;
        case O_LINK: link = optarg; break;
        case O_SEED:
            if (mk_parse_u64(optarg, &seed))
                return mk_usage_error("proxy", "--seed needs an integer, not '%s'", optarg);
            break;
        case O_PORTFILE: portfile = optarg; break;
        case O_ONCE: once = 1; break;
        case O_ANY: any = 1; break;
        default:
            return mk_usage_error("proxy", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error("proxy", "unexpected argument '%s'", argv[optind]);
    if (!listen_addr || !upstream)
        return mk_usage_error("proxy", "%s are required", "--listen HOST:PORT and --upstream HOST:PORT");
    if (!any && !is_loopback(listen_addr))
        return mk_usage_error("proxy", "--listen '%s' is not a loopback address (give --any to allow it)", listen_addr);

    /* Seeded as the pair runner seeds its pipes, so the same --seed picks
     * the same fault draws for the same byte stream. */
    mk_lf *lf[2] = {mk_lf_new(seed * 2 + 1), mk_lf_new(seed * 2 + 2)};
    int lfd = -1, status = EXIT_OK;
    if (!lf[0] || !lf[1]) {
        fprintf(stderr, "mirrorkit proxy: %s: %s\n", mk_errname(MK_ENOMEM), mk_strerror(MK_ENOMEM));
        status = EXIT_IO;
        goto out;
    }
    if (link) {
        char err[512];
        rc = mk_lf_parse_spec(link, lf[TO_DEST], lf[TO_SOURCE], err, sizeof err);
        if (rc == MK_EUSAGE) {
            status = mk_usage_error("proxy", "%s", err);
            goto out;
        }
        if (rc) {
            fprintf(stderr, "mirrorkit proxy: --link: %s: %s\n", mk_errname(rc), mk_strerror(rc));
            status = EXIT_IO;
            goto out;
        }
    }
    uint16_t port;
    if ((rc = mk_net_listen(listen_addr, &lfd, &port))) {
        fprintf(stderr, "mirrorkit proxy: cannot listen on %s: %s: %s\n", listen_addr,
                mk_errname(rc), mk_strerror(rc));
        status = EXIT_IO;
        goto out;
    }
    if (portfile) {
        FILE *pf = fopen(portfile, "w");
        if (!pf || fprintf(pf, "%u\n", port) < 0 || fclose(pf)) {
            fprintf(stderr, "mirrorkit proxy: %s: cannot write port file\n", portfile);
            status = EXIT_IO;
            goto out;
        }
    }
    printf("mirrorkit proxy: listening on port %u, relaying to %s\n", port, upstream);
    fflush(stdout);
    /* No SA_RESTART: a signal must wake poll() so the proxy stops now. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = proxy_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    for (uint64_t conn = 1; !proxy_stop; conn++) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) {
            conn--;
            continue;
        }
        int cfd = accept(lfd, NULL, NULL), ufd = -1;
        if (cfd < 0) {
            conn--;
            continue;
        }
        if ((rc = mk_net_connect(upstream, &ufd))) {
            /* The client sees its connection fail, as it would if the
             * destination itself were down, and may retry. */
            fprintf(stderr, "mirrorkit proxy: connection %" PRIu64 ": upstream %s: %s: %s\n",
                    conn, upstream, mk_errname(rc), mk_strerror(rc));
            close_reset(cfd);
            if (once) {
                status = EXIT_IO;
                break;
            }
            continue;
        }
        mk_net_nonblock(cfd);
        mk_net_nonblock(ufd);
        uint64_t t = now_ns();
        mk_lf_reconnect(lf[TO_DEST], t);
        mk_lf_reconnect(lf[TO_SOURCE], t);
        mk_lf_stats s0[2], s1[2];
        mk_lf_stats_get(lf[TO_DEST], &s0[0]);
        mk_lf_stats_get(lf[TO_SOURCE], &s0[1]);
        const char *why = relay(cfd, ufd, lf);
        int reset = mk_lf_state(lf[TO_DEST]) == MK_LF_RESET ||
                    mk_lf_state(lf[TO_SOURCE]) == MK_LF_RESET;
        /* The client (the source) sees a reset as a reset; the upstream
         * is closed in order either way (close_upstream says why). */
        if (reset)
            close_reset(cfd);
        else
            close(cfd);
        close_upstream(ufd);
        mk_lf_stats_get(lf[TO_DEST], &s1[0]);
        mk_lf_stats_get(lf[TO_SOURCE], &s1[1]);
        fprintf(stderr, "mirrorkit proxy: connection %" PRIu64 " ended: %s", conn, why);
        for (int d = 0; d < 2; d++)
            fprintf(stderr, "; %s %" PRIu64 " bytes in, %" PRIu64 " out, %" PRIu64
                            " frames dropped, %" PRIu64 " bytes lost",
                    d == TO_DEST ? "to-dest" : "to-source", s1[d].bytes_in - s0[d].bytes_in,
                    s1[d].bytes_out - s0[d].bytes_out, s1[d].dropped - s0[d].dropped,
                    s1[d].bytes_lost - s0[d].bytes_lost);
        fprintf(stderr, "\n");
        if (once)
            break;
    }
out:
    if (lfd >= 0)
        close(lfd);
    mk_lf_free(lf[0]);
    mk_lf_free(lf[1]);
    return status;
}
