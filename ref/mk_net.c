#include "mk_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mk_err.h"
#include "mk_fiu.h"

/* The most one poll round reads before handing the bytes to the engine. */
#define PUMP_READ (1u << 20)

static int parse_addr(const char *hostport, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return MK_EUSAGE;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return MK_EUSAGE;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &sa->sin_addr) != 1)
        return MK_EUSAGE;
    return 0;
}

int mk_net_addr_ok(const char *hostport)
{
    struct sockaddr_in sa;
    return parse_addr(hostport, &sa);
}

int mk_net_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 ? 0 : mk_from_errno(errno);
}

int mk_net_listen(const char *hostport, int *out, uint16_t *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int one = 1, rc = parse_addr(hostport, &sa);
    if (rc)
        return rc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mk_from_errno(errno);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4) ||
        getsockname(fd, (struct sockaddr *)&sa, &len)) {
        rc = mk_from_errno(errno);
        close(fd);
        return rc;
    }
    *out = fd;
    if (port)
        *port = ntohs(sa.sin_port);
    return 0;
}

int mk_net_connect(const char *hostport, int *out)
{
    struct sockaddr_in sa;
    int one = 1, rc = parse_addr(hostport, &sa);
    if (rc)
        return rc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mk_from_errno(errno);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        rc = errno == ECONNREFUSED ? MK_ECLOSED : mk_from_errno(errno);
        close(fd);
        return rc;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *out = fd;
    return 0;
}

#ifdef FIU_ENABLE
/*
 * The transport's fault points, "ref/link/send" and "ref/link/recv" (see
 * mk_fiu.h).  A link that fails is a connection reset: the socket is shut
 * down both ways, so the peer sees the end of the stream, and the pump
 * reports MK_ECLOSED as it does for a real reset, so each side takes its
 * own path for a lost connection (the source reconnects and resumes,
 * section 8.2; the destination ends the session).  A short failure first
 * passes part of the bytes, so the peer sees a frame cut in the middle.
 * MK_ENOMEM is no link failure: it is passed up and the socket is left as
 * it is.  (On stdin/stdout, which are no sockets, shutdown does nothing and
 * the error alone ends the session.)
 */
static int link_fault(int fd, uint64_t n, uint64_t *part)
{
    uint64_t bytes;
    enum mk_fault_kind k = mk_fault_kind_now(&bytes);
    *part = k == MK_FK_SHORT || k == MK_FK_TORN ? mk_fault_part(bytes, n) : 0;
    if (k == MK_FK_ENOMEM)
        return MK_ENOMEM;
    if (!*part)
        shutdown(fd, SHUT_RDWR);
    return MK_ECLOSED;
}

static int send_fault(int wfd, mk_buf *out, FILE *record)
{
    uint64_t part;
    int rc = link_fault(wfd, mk_buf_len(out), &part);
    ssize_t w = part ? send(wfd, mk_buf_peek(out), (size_t)part, MSG_NOSIGNAL) : 0;
    if (w < 0 && errno == ENOTSOCK)
        w = write(wfd, mk_buf_peek(out), (size_t)part);
    if (part)
        shutdown(wfd, SHUT_RDWR);
    if (w > 0) {
        if (record && fwrite(mk_buf_peek(out), 1, (size_t)w, record) != (size_t)w)
            return MK_EIO;
        mk_buf_consume(out, (size_t)w);
    }
    return rc;
}

static int recv_fault(int rfd, const uint8_t *buf, size_t n, mk_sink_fn sink, void *ctx)
{
    uint64_t part;
    int rc = link_fault(rfd, n, &part), src = part ? sink(ctx, buf, (size_t)part) : 0;
    if (part)
        shutdown(rfd, SHUT_RDWR);
    return src ? src : rc;
}
#endif

/* Sends out until it is empty or the descriptor is full (or fails the way
 * the fault point says).  send() with MSG_NOSIGNAL: a peer that went away
 * is an error to report, not a SIGPIPE that kills the process. */
static int send_out(int wfd, mk_buf *out, FILE *record)
{
    fiu_do_on("ref/link/send", return send_fault(wfd, out, record));
    while (mk_buf_len(out)) {
        ssize_t w = send(wfd, mk_buf_peek(out), mk_buf_len(out), MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(wfd, mk_buf_peek(out), mk_buf_len(out));
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return MK_ECLOSED;
        if (w <= 0)
            break;
        if (record && fwrite(mk_buf_peek(out), 1, (size_t)w, record) != (size_t)w)
            return MK_EIO;
        mk_buf_consume(out, (size_t)w);
    }
    return 0;
}

int mk_io_pump2(int rfd, int wfd, mk_buf *out, mk_sink_fn sink, void *ctx,
                int timeout_ms, FILE *record)
{
    struct pollfd p[2] = {{rfd, POLLIN, 0}, {wfd, POLLOUT, 0}};
    int rc;
    /* Output is sent before the poll: a descriptor with room needs no poll
     * to say so, and a sync write saves a system call.  If it all went,
     * the round ends here, so that an engine that makes its output as the
     * transport drains it (the source's CP_DATA, mk_source_out) can queue
     * more at once rather than after a poll that waits for input. */
    if (mk_buf_len(out)) {
        if ((rc = send_out(wfd, out, record)))
            return rc;
        if (mk_buf_len(out) == 0)
            return 0;
    }
    int same = rfd == wfd, want_out = mk_buf_len(out) > 0;
    if (same)
        p[0].events |= want_out ? POLLOUT : 0;
    int n = poll(p, same || !want_out ? 1 : 2, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : mk_from_errno(errno);
    if (n == 0)
        return 0;
    short wrev = same ? p[0].revents : (want_out ? p[1].revents : 0);
    if (want_out && (wrev & (POLLOUT | POLLERR | POLLHUP)) && (rc = send_out(wfd, out, record)))
        return rc;
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        /* Read what has arrived, up to PUMP_READ bytes, in one call
         * before handing it on: an engine acts on a batch at once (the
         * destination makes a whole batch of transfers durable with one
         * sync, 4.4), and the fewer calls the better.  Static, not a 1 MiB
         * stack frame: a process runs one pump at a time, and no sink calls
         * back into it. */
        static uint8_t buf[PUMP_READ];
        ssize_t r = read(rfd, buf, sizeof buf);
        size_t got = r > 0 ? (size_t)r : 0;
        int closed = r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR);
        if (got) {
            fiu_do_on("ref/link/recv", return recv_fault(rfd, buf, got, sink, ctx));
            if ((rc = sink(ctx, buf, got)))
                return rc;
            /* What the engine answered goes out now, not a poll later: a
             * destination's LOG_ACK is what a sync write waits for. */
            if (mk_buf_len(out) && (rc = send_out(wfd, out, record)))
                return rc;
        }
        if (closed)
            return MK_ECLOSED;
    }
    return 0;
}

int mk_io_pump(int fd, mk_buf *out, mk_sink_fn sink, void *ctx, int timeout_ms,
               FILE *record)
{
    return mk_io_pump2(fd, fd, out, sink, ctx, timeout_ms, record);
}

static int discard(void *ctx, const uint8_t *buf, size_t n)
{
    (void)ctx, (void)buf, (void)n;
    return 0;
}

int mk_io_flush(int fd, mk_buf *out, int timeout_ms)
{
    int waited = 0;
    while (mk_buf_len(out) && waited < timeout_ms) {
        int rc = mk_io_pump(fd, out, discard, NULL, 50, NULL);
        if (rc)
            return rc;
        waited += 50;
    }
    return mk_buf_len(out) ? MK_ETIMEOUT : 0;
}

static int dest_sink(void *ctx, const uint8_t *buf, size_t n)
{
    return mk_dest_recv(ctx, buf, n, 0);
}

int mk_dest_serve_fds(mk_dest *d, int rfd, int wfd)
{
    int rc;
    mk_net_nonblock(rfd);
    mk_net_nonblock(wfd);
    do
        rc = mk_io_pump2(rfd, wfd, mk_dest_out(d), dest_sink, d, 1000, NULL);
    while (rc == 0);
    /* Deliver what is queued - the acknowledgements of the last batch, or
     * the ERROR frame that says why the session ended. */
    while (mk_buf_len(mk_dest_out(d)) &&
           mk_io_pump2(rfd, wfd, mk_dest_out(d), dest_sink, d, 1000, NULL) == 0)
        ;
    mk_dest_session_end(d);
    return rc == MK_ECLOSED ? 0 : rc;
}

int mk_dest_serve_fd(mk_dest *d, int fd) { return mk_dest_serve_fds(d, fd, fd); }
