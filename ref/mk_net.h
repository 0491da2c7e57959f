/*
 * mk_net.h - the thin transport layer: sockets, poll() and the loops that
 * move bytes between a file descriptor and an engine.  Nothing here knows
 * the protocol; the engines know nothing of this.
 *
 * Addresses are "HOST:PORT" with a numeric IPv4 host (127.0.0.1 by
 * default; mirrorkit only ever listens on loopback unless told otherwise).
 */
#ifndef MK_NET_H
#define MK_NET_H

#include <stdint.h>
#include <stdio.h>

#include "mk_buf.h"
#include "mk_dest.h"

/* Called with bytes read from the peer; a nonzero return stops the pump. */
typedef int (*mk_sink_fn)(void *ctx, const uint8_t *buf, size_t n);

/* 0 if hostport is a valid "IPv4:PORT" address, else MK_EUSAGE. */
int mk_net_addr_ok(const char *hostport);
int mk_net_listen(const char *hostport, int *fd, uint16_t *port);
int mk_net_connect(const char *hostport, int *fd);
int mk_net_nonblock(int fd);

/*
 * One poll() round: sends what it can of out on wfd (and copies the sent
 * bytes to record, if given), reads what rfd has and hands it to sink.  A
 * socket passes the same fd twice; --stdio passes 0 and 1.  Returns 0 (also
 * when the round timed out with nothing to do), MK_ECLOSED when the peer
 * closed or reset, or the sink's error.
 */
int mk_io_pump2(int rfd, int wfd, mk_buf *out, mk_sink_fn sink, void *ctx,
                int timeout_ms, FILE *record);
int mk_io_pump(int fd, mk_buf *out, mk_sink_fn sink, void *ctx, int timeout_ms,
               FILE *record);

/* Writes out completely (blocking through poll), for a last ERROR frame. */
int mk_io_flush(int fd, mk_buf *out, int timeout_ms);

/*
 * Serves one session of a destination on a connected fd until the peer
 * closes: 0 on an orderly end, else the error that ended it (the ERROR frame
 * for it has been sent).  The session state is reset on return.
 */
int mk_dest_serve_fd(mk_dest *d, int fd);
/* The same over a pair of descriptors (read rfd, write wfd), e.g. stdio. */
int mk_dest_serve_fds(mk_dest *d, int rfd, int wfd);

#endif
