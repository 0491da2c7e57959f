/*
 * mk_conform.h - `mirrorkit conform`: checks another implementation of the
 * destination or the source against SPEC.md, case by case, through the
 * process interface of SPEC.md section 10 (CONFORMANCE.md).
 *
 * A case is a function that drives the implementation under test (IUT):
 * it starts it with mkc_spawn (arguments appended to the user's command),
 * talks to it through pipes or loopback TCP, kills and restarts it, reads
 * its image, and returns a verdict.  Every wait has a timeout, so a hung
 * or crashed IUT fails its case and never hangs the runner; every process
 * a case started is killed (its whole process group) and reaped when the
 * case ends, whatever the verdict.
 *
 * The catalogue is two tables, mkc_dest_cases (verify/mk_conform_dest.c)
 * and mkc_source_cases (verify/mk_conform_source.c).  Each case names the
 * SPEC.md section it checks and whether the rule is a MUST or a SHOULD.
 *
 * Ownership: the runner owns every mkc, mkc_proc and mkc_link; a case
 * borrows them and frees nothing of them.
 */
#ifndef MK_CONFORM_H
#define MK_CONFORM_H

#include <stddef.h>
#include <stdint.h>

#include "mk_wire.h"

typedef enum mkc_role { MKC_DEST = 1, MKC_SOURCE = 2 } mkc_role;
typedef enum mkc_level { MKC_MUST = 1, MKC_SHOULD = 2 } mkc_level;
typedef enum mkc_verdict {
    MKC_PASS = 0,
    MKC_FAIL = 1,
    MKC_UNSUPPORTED = 2, /* the IUT exited 127 (10.3) */
    MKC_ERROR = 3,       /* the runner could not run the case */
} mkc_verdict;

typedef struct mkc mkc; /* one case's run */
typedef mkc_verdict (*mkc_fn)(mkc *c);

typedef struct mkc_case {
    const char *id;      /* e.g. "dest-ref-unknown-tid" */
    const char *section; /* SPEC.md section, e.g. "7.2" */
    mkc_level level;
    const char *desc;    /* one line */
    mkc_fn run;
} mkc_case;

extern const mkc_case mkc_dest_cases[];
extern const size_t mkc_dest_ncases;
extern const mkc_case mkc_source_cases[];
extern const size_t mkc_source_ncases;

/* `mirrorkit conform ...` (exit codes: 0 every MUST case run passed, 1
 * some case failed, 2 usage or harness error). */
int mk_cmd_conform(int argc, char **argv);

/* ---- the case's context ------------------------------------------------ */

const char *mkc_dir(const mkc *c); /* a fresh directory of this case */
int mkc_timeout_ms(const mkc *c);  /* the per-wait timeout (--timeout) */
/* Builds "DIR/name" into buf (PATH_MAX bytes suffice). */
const char *mkc_path(const mkc *c, const char *name, char *buf, size_t n);

/* Records why the case failed (the first reason is kept) and returns
 * MKC_FAIL, so a case can `return mkc_fail(c, ...)`.  The SPEC section is
 * printed from the catalogue; the reason says what was seen. */
mkc_verdict mkc_fail(mkc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
mkc_verdict mkc_unsupported(mkc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
mkc_verdict mkc_error(mkc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A trace line, printed under the case with -v. */
void mkc_log(mkc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Milliseconds on the monotonic clock. */
uint64_t mkc_now_ms(void);
void mkc_sleep_ms(int ms);

/* ---- the implementation under test ---------------------------------------- */

typedef struct mkc_proc mkc_proc;

/*
 * Starts the IUT: `sh -c 'exec CMD "$@"'` with args (NULL-terminated)
 * appended, in a process group of its own, with its stdin and stdout
 * connected to pipes (the runner's ends non-blocking) and its stderr
 * appended to DIR/stderr.  0 or MK_EIO.
 */
int mkc_spawn(mkc *c, const char *const *args, mkc_proc **out);
int mkc_proc_stdin(const mkc_proc *p);  /* -1 once closed */
int mkc_proc_stdout(const mkc_proc *p);
void mkc_proc_close_stdin(mkc_proc *p); /* EOF to the IUT */
/* Waits for the IUT to exit: 0 and *code = its exit status (128 + N when
 * killed by signal N), or MK_ETIMEOUT (it keeps running). */
int mkc_proc_wait(mkc *c, mkc_proc *p, int timeout_ms, int *code);
int mkc_proc_exited(const mkc_proc *p, int *code); /* 1 if reaped */
/* SIGKILL to the IUT's process group, then reaps it. */
void mkc_proc_kill(mkc_proc *p);
/* SIGSTOP / SIGCONT to the IUT's process group. */
void mkc_proc_stop(mkc_proc *p, int stop);

/* ---- frames ------------------------------------------------------------- */

/* A byte stream to or from the IUT: its stdio pipes or a TCP socket.  It
 * owns the socket (closed when the case ends or by mkc_link_close). */
typedef struct mkc_link mkc_link;
mkc_link *mkc_link_proc(mkc *c, mkc_proc *p);
mkc_link *mkc_link_fd(mkc *c, int fd);
void mkc_link_close(mkc_link *l); /* shuts the connection (EOF to the IUT) */

/* Sends all n bytes: 0, MK_ECLOSED (the IUT closed its end) or
 * MK_ETIMEOUT.  While sending, bytes the IUT writes are read and queued,
 * so an IUT that answers before it has read everything cannot deadlock
 * the two. */
int mkc_send(mkc *c, mkc_link *l, const void *buf, size_t n);
int mkc_send_buf(mkc *c, mkc_link *l, mk_buf *b); /* sends and empties b */
/*
 * The next frame from the IUT, within timeout_ms: 0 with *f (its payload
 * valid until the next receive on l), MK_ECLOSED at end of stream,
 * MK_ETIMEOUT, or the framing error of a malformed frame (3.4).
 */
int mkc_recv_frame(mkc *c, mkc_link *l, int timeout_ms, mk_frame *f);
/* Whatever bytes the IUT sent, waiting at most timeout_ms for the first:
 * 0 with *p and *n (valid until the next receive on l), MK_ECLOSED at end
 * of stream, or MK_ETIMEOUT.  For feeding an engine. */
int mkc_recv_bytes(mkc *c, mkc_link *l, int timeout_ms, const uint8_t **p, size_t *n);
/* Whether the IUT closed the stream, waiting at most timeout_ms; bytes
 * that arrive meanwhile stay queued. */
int mkc_link_eof(mkc *c, mkc_link *l, int timeout_ms);
/* Reads one text line (without its newline) into buf: 0, MK_ECLOSED or
 * MK_ETIMEOUT.  For a source's stdout (10.2). */
int mkc_recv_line(mkc *c, mkc_link *l, int timeout_ms, char *buf, size_t n);

/* Loopback TCP: a free port (bound and released), and a connection to it
 * retried until timeout_ms (the IUT may still be starting).  0 or
 * MK_ETIMEOUT / MK_EIO. */
int mkc_free_port(mkc *c, uint16_t *port);
int mkc_connect(mkc *c, uint16_t port, int timeout_ms, int *fd);

/* The whole content of a file (malloc'd, *n its size): 0 or MK_EIO. */
int mkc_read_file(const char *path, uint8_t **data, size_t *n);

#endif
