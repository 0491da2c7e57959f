/*
 * mk_conform.c - the conformance runner: the command line, the catalogue
 * walk and reports (lines, TAP, JUnit), and the process and stream tools
 * every case uses (mk_conform.h).  The cases themselves live in
 * mk_conform_dest.c and mk_conform_source.c.
 */
#include "mk_conform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_err.h"

#define MKC_MAX_PROCS 16
#define MKC_MAX_LINKS 32

struct mkc_proc {
    pid_t pid;
    int in, out; /* our ends: its stdin, its stdout */
    int reaped, code;
};

struct mkc_link {
    mkc *c;
    int rfd, wfd, own; /* own: a socket this link closes */
    int eof;
    mk_buf in;
    size_t consumed_next; /* the frame or line handed out last */
};

struct mkc {
    const mkc_case *kase;
    const char *cmd;
    char dir[PATH_MAX];
    int timeout_ms, verbose;
    uint64_t deadline; /* the whole case's budget */
    char why[1024];
    mkc_verdict verdict;
    int nprocs, nlinks;
    mkc_proc procs[MKC_MAX_PROCS];
    mkc_link links[MKC_MAX_LINKS];
};

/* The process groups alive now, so that SIGINT or SIGTERM of the runner
 * takes them down too: a conformance run never leaves strays behind. */
static volatile sig_atomic_t live_pgid[MKC_MAX_PROCS];

static void on_signal(int sig)
{
    for (int i = 0; i < MKC_MAX_PROCS; i++)
        if (live_pgid[i] > 0)
            kill(-(pid_t)live_pgid[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- context --------------------------------------------------------------- */

const char *mkc_dir(const mkc *c) { return c->dir; }
int mkc_timeout_ms(const mkc *c) { return c->timeout_ms; }

const char *mkc_path(const mkc *c, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", c->dir, name);
    return buf;
}

static mkc_verdict note(mkc *c, mkc_verdict v, const char *fmt, va_list ap)
{
    if (c->verdict == MKC_PASS) {
        c->verdict = v;
        vsnprintf(c->why, sizeof c->why, fmt, ap);
    }
    return v;
}

mkc_verdict mkc_fail(mkc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    note(c, MKC_FAIL, fmt, ap);
    va_end(ap);
    return MKC_FAIL;
}

mkc_verdict mkc_unsupported(mkc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    note(c, MKC_UNSUPPORTED, fmt, ap);
    va_end(ap);
    return MKC_UNSUPPORTED;
}

mkc_verdict mkc_error(mkc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    note(c, MKC_ERROR, fmt, ap);
    va_end(ap);
    return MKC_ERROR;
}

void mkc_log(mkc *c, const char *fmt, ...)
{
    if (!c->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "      . ");
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

uint64_t mkc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void mkc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* A wait of timeout_ms, cut to what is left of the case's budget. */
static int budget(const mkc *c, int timeout_ms)
{
    uint64_t now = mkc_now_ms();
    if (now >= c->deadline)
        return 0;
    uint64_t left = c->deadline - now;
    return left < (uint64_t)timeout_ms ? (int)left : timeout_ms;
}

/* ---- processes ------------------------------------------------------------- */

int mkc_spawn(mkc *c, const char *const *args, mkc_proc **out)
{
    int pin[2], pout[2], err;
    char path[PATH_MAX + 16];
    *out = NULL;
    if (c->nprocs == MKC_MAX_PROCS)
        return MK_EIO;
    int efd = open(mkc_path(c, "stderr", path, sizeof path), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (efd < 0)
        return MK_EIO;
    if (pipe2(pin, O_CLOEXEC)) {
        close(efd);
        return MK_EIO;
    }
    if (pipe2(pout, O_CLOEXEC)) {
        close(efd);
        close(pin[0]);
        close(pin[1]);
        return MK_EIO;
    }
    size_t n = 0;
    while (args && args[n])
        n++;
    const char **argv = calloc(n + 5, sizeof *argv);
    char *script = malloc(strlen(c->cmd) + 16);
    if (!argv || !script) {
        free(argv);
        free(script);
        close(efd);
        close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]);
        return MK_ENOMEM;
    }
    /* The user's command is shell words; ours are appended as "$@", so
     * paths with spaces or quotes reach it intact. */
    sprintf(script, "exec %s \"$@\"", c->cmd);
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = script;
    argv[3] = "mirrorkit-conform";
    for (size_t i = 0; i < n; i++)
        argv[4 + i] = args[i];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 || dup2(efd, 2) < 0)
            _exit(126);
        execv("/bin/sh", (char *const *)argv);
        _exit(126);
    }
    err = errno;
    free(argv);
    free(script);
    close(pin[0]);
    close(pout[1]);
    close(efd);
    if (pid < 0) {
        close(pin[1]);
        close(pout[0]);
        (void)err;
        return MK_EIO;
    }
    setpgid(pid, pid); /* both sides, so no kill can race the child's own */
    mkc_proc *p = &c->procs[c->nprocs];
    live_pgid[c->nprocs] = pid;
    c->nprocs++;
    p->pid = pid;
    p->in = pin[1];
    p->out = pout[0];
    p->reaped = 0;
    fcntl(p->in, F_SETFL, fcntl(p->in, F_GETFL) | O_NONBLOCK);
    fcntl(p->out, F_SETFL, fcntl(p->out, F_GETFL) | O_NONBLOCK);
    mkc_log(c, "spawned pid %d: %s ...", (int)pid, c->cmd);
    *out = p;
    return 0;
}

int mkc_proc_stdin(const mkc_proc *p) { return p->in; }
int mkc_proc_stdout(const mkc_proc *p) { return p->out; }

void mkc_proc_close_stdin(mkc_proc *p)
{
    if (p->in >= 0) {
        close(p->in);
        p->in = -1;
    }
}

static int status_code(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
}

static int try_reap(mkc_proc *p)
{
    int st;
    if (p->reaped)
        return 1;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->reaped = 1;
        p->code = status_code(st);
        /* Anything its children still run is killed with the group. */
        kill(-p->pid, SIGKILL);
        return 1;
    }
    return 0;
}

int mkc_proc_exited(const mkc_proc *p, int *code)
{
    if (!try_reap((mkc_proc *)p))
        return 0;
    if (code)
        *code = p->code;
    return 1;
}

int mkc_proc_wait(mkc *c, mkc_proc *p, int timeout_ms, int *code)
{
    uint64_t end = mkc_now_ms() + (uint64_t)budget(c, timeout_ms);
    for (;;) {
        if (try_reap(p)) {
            *code = p->code;
            return 0;
        }
        if (mkc_now_ms() >= end)
            return MK_ETIMEOUT;
        mkc_sleep_ms(2);
    }
}

void mkc_proc_kill(mkc_proc *p)
{
    if (p->reaped)
        return;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    int st;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    p->reaped = 1;
    p->code = status_code(st);
}

void mkc_proc_stop(mkc_proc *p, int stop)
{
    if (!p->reaped)
        kill(-p->pid, stop ? SIGSTOP : SIGCONT);
}

/* ---- streams ---------------------------------------------------------------- */

static mkc_link *new_link(mkc *c, int rfd, int wfd, int own)
{
    if (c->nlinks == MKC_MAX_LINKS)
        return NULL;
    mkc_link *l = &c->links[c->nlinks++];
    memset(l, 0, sizeof *l);
    l->c = c;
    l->rfd = rfd;
    l->wfd = wfd;
    l->own = own;
    mk_buf_init(&l->in);
    return l;
}

mkc_link *mkc_link_proc(mkc *c, mkc_proc *p) { return new_link(c, p->out, p->in, 0); }

mkc_link *mkc_link_fd(mkc *c, int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return new_link(c, fd, fd, 1);
}

void mkc_link_close(mkc_link *l)
{
    if (l->own) {
        if (l->wfd >= 0)
            shutdown(l->wfd, SHUT_WR);
    } else {
        for (int i = 0; i < l->c->nprocs; i++)
            if (l->c->procs[i].in == l->wfd)
                mkc_proc_close_stdin(&l->c->procs[i]);
    }
    l->wfd = -1;
}

/* Reads what is there into l->in: 1 if bytes came, 0 if none, -1 at EOF
 * or error (l->eof set). */
static int fill(mkc_link *l)
{
    uint8_t tmp[65536];
    ssize_t r = read(l->rfd, tmp, sizeof tmp);
    if (r > 0)
        return mk_buf_append(&l->in, tmp, (size_t)r) ? -1 : 1;
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    l->eof = 1;
    return -1;
}

static void settle(mkc_link *l)
{
    if (l->consumed_next) {
        mk_buf_consume(&l->in, l->consumed_next);
        l->consumed_next = 0;
    }
}

int mkc_send(mkc *c, mkc_link *l, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint64_t end = mkc_now_ms() + (uint64_t)budget(c, c->timeout_ms);
    if (l->wfd < 0)
        return MK_ECLOSED;
    while (n) {
        uint64_t now = mkc_now_ms();
        if (now >= end)
            return MK_ETIMEOUT;
        struct pollfd pf[2] = {{l->wfd, POLLOUT, 0}, {l->rfd, POLLIN, 0}};
        int np = l->eof || l->rfd == l->wfd ? 1 : 2;
        if (l->rfd == l->wfd && !l->eof)
            pf[0].events |= POLLIN;
        if (poll(pf, (nfds_t)np, (int)(end - now)) < 0 && errno != EINTR)
            return MK_EIO;
        if ((np == 2 && (pf[1].revents & (POLLIN | POLLHUP))) ||
            (np == 1 && !l->eof && (pf[0].revents & POLLIN)))
            fill(l);
        if (pf[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t w = write(l->wfd, p, n);
            if (w > 0) {
                p += w;
                n -= (size_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                return errno == EPIPE || errno == ECONNRESET ? MK_ECLOSED : MK_EIO;
            }
        }
    }
    return 0;
}

int mkc_send_buf(mkc *c, mkc_link *l, mk_buf *b)
{
    int rc = mkc_send(c, l, mk_buf_peek(b), mk_buf_len(b));
    mk_buf_clear(b);
    return rc;
}

/* Waits until l->rfd is readable or the end: 1 ready, 0 timed out. */
static int wait_readable(mkc_link *l, uint64_t end)
{
    uint64_t now = mkc_now_ms();
    if (now >= end)
        return 0;
    struct pollfd pf = {l->rfd, POLLIN, 0};
    int r = poll(&pf, 1, (int)(end - now));
    return r > 0 || (r < 0 && errno == EINTR);
}

int mkc_recv_frame(mkc *c, mkc_link *l, int timeout_ms, mk_frame *f)
{
    settle(l);
    uint64_t end = mkc_now_ms() + (uint64_t)budget(c, timeout_ms);
    for (;;) {
        size_t used;
        int rc = mk_frame_decode(mk_buf_peek(&l->in), mk_buf_len(&l->in), MK_MAX_PAYLOAD,
                                 MK_FRAME_MAGIC, f, &used);
        if (rc == 0) {
            l->consumed_next = used;
            return 0;
        }
        if (rc != MK_ETRUNC)
            return rc;
        if (l->eof)
            return mk_buf_len(&l->in) ? MK_ETRUNC : MK_ECLOSED;
        if (!wait_readable(l, end))
            return MK_ETIMEOUT;
        fill(l);
    }
}

int mkc_recv_bytes(mkc *c, mkc_link *l, int timeout_ms, const uint8_t **p, size_t *n)
{
    settle(l);
    uint64_t end = mkc_now_ms() + (uint64_t)budget(c, timeout_ms);
    while (!mk_buf_len(&l->in)) {
        if (l->eof)
            return MK_ECLOSED;
        if (!wait_readable(l, end))
            return MK_ETIMEOUT;
        fill(l);
    }
    *p = mk_buf_peek(&l->in);
    *n = mk_buf_len(&l->in);
    l->consumed_next = *n;
    return 0;
}

int mkc_link_eof(mkc *c, mkc_link *l, int timeout_ms)
{
    uint64_t end = mkc_now_ms() + (uint64_t)budget(c, timeout_ms);
    while (!l->eof) {
        if (!wait_readable(l, end))
            return 0;
        fill(l);
    }
    return 1;
}

int mkc_recv_line(mkc *c, mkc_link *l, int timeout_ms, char *buf, size_t n)
{
    settle(l);
    uint64_t end = mkc_now_ms() + (uint64_t)budget(c, timeout_ms);
    for (;;) {
        const uint8_t *p = mk_buf_peek(&l->in);
        size_t len = mk_buf_len(&l->in);
        const uint8_t *nl = len ? memchr(p, '\n', len) : NULL;
        if (nl || (l->eof && len)) {
            size_t k = nl ? (size_t)(nl - p) : len;
            size_t m = k < n - 1 ? k : n - 1;
            memcpy(buf, p, m);
            buf[m] = 0;
            l->consumed_next = nl ? k + 1 : k;
            return 0;
        }
        if (l->eof)
            return MK_ECLOSED;
        if (!wait_readable(l, end))
            return MK_ETIMEOUT;
        fill(l);
    }
}

int mkc_free_port(mkc *c, uint16_t *port)
{
    (void)c;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return MK_EIO;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return MK_EIO;
    }
    *port = ntohs(a.sin_port);
    close(fd);
    return 0;
}

int mkc_connect(mkc *c, uint16_t port, int timeout_ms, int *fd)
{
    uint64_t end = mkc_now_ms() + (uint64_t)budget(c, timeout_ms);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (;;) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return MK_EIO;
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
            *fd = s;
            return 0;
        }
        close(s);
        if (mkc_now_ms() >= end)
            return MK_ETIMEOUT;
        mkc_sleep_ms(10);
    }
}

int mkc_read_file(const char *path, uint8_t **data, size_t *n)
{
    *data = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        if (fd >= 0)
            close(fd);
        return MK_EIO;
    }
    uint8_t *b = malloc(st.st_size ? (size_t)st.st_size : 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!b || got != (size_t)st.st_size) {
        free(b);
        return MK_EIO;
    }
    *data = b;
    *n = got;
    return 0;
}

/* ---- one case --------------------------------------------------------------- */

static int remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return unlink(path);
    struct dirent *e;
    char sub[PATH_MAX];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        remove_tree(sub);
    }
    closedir(d);
    return rmdir(path);
}

/* The tail of the IUT's stderr, for a failure's report. */
static void stderr_tail(const mkc *c, char *buf, size_t n)
{
    char path[PATH_MAX + 16];
    uint8_t *data;
    size_t len;
    buf[0] = 0;
    if (mkc_read_file(mkc_path(c, "stderr", path, sizeof path), &data, &len) || !len) {
        free(data);
        return;
    }
    while (len && (data[len - 1] == '\n' || data[len - 1] == ' '))
        len--;
    size_t from = len > n - 1 ? len - (n - 1) : 0;
    const uint8_t *nl = memchr(data + from, '\n', len - from);
    if (from && nl)
        from = (size_t)(nl + 1 - data);
    size_t k = 0;
    for (size_t i = from; i < len && k + 1 < n; i++)
        buf[k++] = data[i] == '\n' ? '|' : (char)data[i];
    buf[k] = 0;
    free(data);
}

typedef struct result {
    const mkc_case *k;
    mkc_verdict v;
    char why[1024];
    char err_tail[200];
    double ms;
} result;

static void run_case(const mkc_case *k, const char *cmd, const char *work, int timeout_ms,
                     int case_ms, int verbose, int keep, result *r)
{
    mkc *c = calloc(1, sizeof *c);
    memset(r, 0, sizeof *r);
    r->k = k;
    if (!c) {
        r->v = MKC_ERROR;
        snprintf(r->why, sizeof r->why, "MK_ENOMEM");
        return;
    }
    c->kase = k;
    c->cmd = cmd;
    c->timeout_ms = timeout_ms;
    c->verbose = verbose;
    snprintf(c->dir, sizeof c->dir, "%.2000s/%.200s", work, k->id);
    uint64_t t0 = mkc_now_ms();
    c->deadline = t0 + (uint64_t)case_ms;
    if (mkdir(c->dir, 0755) && errno != EEXIST) {
        r->v = MKC_ERROR;
        snprintf(r->why, sizeof r->why, "cannot create %.900s", c->dir);
        free(c);
        return;
    }
    mkc_verdict v = k->run(c);
    /* A verdict returned without a reason still counts; a reason recorded
     * (a failure on the way) wins over a PASS returned after it. */
    if (c->verdict != MKC_PASS)
        v = c->verdict;
    for (int i = 0; i < c->nprocs; i++) {
        int code;
        /* 10.3: exit 127 is the IUT's way to say it does not support
         * this invocation; whatever the case concluded from the silence
         * that followed, the verdict is UNSUPPORTED. */
        if (v == MKC_FAIL && !mkc_proc_exited(&c->procs[i], NULL)) {
            c->deadline = mkc_now_ms() + 100; /* an exit may be on its way */
            mkc_proc_wait(c, &c->procs[i], 100, &code);
        }
        if ((v == MKC_PASS || v == MKC_FAIL) && mkc_proc_exited(&c->procs[i], &code) && code == 127) {
            v = MKC_UNSUPPORTED;
            snprintf(c->why, sizeof c->why, "the implementation exited 127 (unsupported, 10.3)");
        }
        mkc_proc_kill(&c->procs[i]);
        live_pgid[i] = 0;
        if (c->procs[i].in >= 0)
            close(c->procs[i].in);
        close(c->procs[i].out);
    }
    for (int i = 0; i < c->nlinks; i++) {
        if (c->links[i].own)
            close(c->links[i].rfd);
        mk_buf_free(&c->links[i].in);
    }
    r->v = v;
    r->ms = (double)(mkc_now_ms() - t0);
    snprintf(r->why, sizeof r->why, "%s", c->why);
    if (v == MKC_FAIL || v == MKC_ERROR)
        stderr_tail(c, r->err_tail, sizeof r->err_tail);
    if (!keep || v == MKC_PASS || v == MKC_UNSUPPORTED)
        remove_tree(c->dir);
    free(c);
}

/* ---- the command line ----------------------------------------------------------- */

static void conform_help(void)
{
    printf("usage: mirrorkit conform (--dest CMD | --source CMD) [options]\n"
           "       mirrorkit conform --list [--dest CMD | --source CMD]\n"
           "\n"
           "Runs the conformance cases of SPEC.md against another implementation of\n"
           "the destination or the source, driven through the interface of SPEC.md\n"
           "section 10 (CONFORMANCE.md).  CMD is a shell command; the runner appends\n"
           "the section 10 arguments (--stdio/--listen, --image, --log; or --connect,\n"
           "--blocks, ..., --script -).\n"
           "\n"
           "  --dest CMD       check a destination (e.g. 'build/mirrorkit dest')\n"
           "  --source CMD     check a source (e.g. 'build/mirrorkit source')\n"
           "  --strict         also run the SHOULD cases\n"
           "  --case ID        run only this case (a glob; repeatable)\n"
           "  --section N      run only the cases of SPEC.md section N and its\n"
           "                   subsections (repeatable)\n"
           "  --list           print the catalogue: ID, section, MUST/SHOULD, description\n"
           "  --tap            TAP version 13 on stdout instead of the result lines\n"
           "  --junit FILE     also write JUnit XML to FILE\n"
           "  --timeout MS     timeout of every wait (default 5000)\n"
           "  --case-timeout MS  budget of one whole case (default 60000)\n"
           "  --keep DIR       work in DIR and keep the files of failed cases\n"
           "  -v, --verbose    trace what each case does\n"
           "\n"
           "An implementation that exits 127 does not support the invocation: the\n"
           "case is UNSUPPORTED, not failed.\n"
           "Exit: 0 every case run passed (UNSUPPORTED allowed), 1 a case failed,\n"
           "2 usage or harness error.\n");
}

static const char *level_name(mkc_level l) { return l == MKC_MUST ? "MUST" : "SHOULD"; }
static const char *verdict_name(mkc_verdict v)
{
    static const char *n[] = {"PASS", "FAIL", "UNSUPPORTED", "ERROR"};
    return n[v];
}

static int section_matches(const char *case_sec, const char *want)
{
    size_t n = strlen(want);
    return strncmp(case_sec, want, n) == 0 && (case_sec[n] == 0 || case_sec[n] == '.');
}

/* Whether the command's program exists: a command that cannot run is a
 * harness error, not 60 cases of "exit 127: unsupported". */
static int command_exists(const char *cmd)
{
    char word[PATH_MAX];
    size_t k = 0;
    while (*cmd == ' ' || *cmd == '\t')
        cmd++;
    while (*cmd && *cmd != ' ' && *cmd != '\t' && k + 1 < sizeof word)
        word[k++] = *cmd++;
    word[k] = 0;
    if (!k)
        return 0;
    if (strchr(word, '/'))
        return access(word, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char full[PATH_MAX * 2];
    while (*path) {
        const char *e = strchr(path, ':');
        size_t len = e ? (size_t)(e - path) : strlen(path);
        snprintf(full, sizeof full, "%.*s/%s", (int)len, len ? path : ".", word);
        if (access(full, X_OK) == 0)
            return 1;
        path += len + (e != NULL);
    }
    return 0;
}

enum { O_DEST = 256, O_SOURCE, O_STRICT, O_CASE, O_SECTION, O_LIST, O_TAP, O_JUNIT, O_TIMEOUT,
       O_CASE_TIMEOUT, O_KEEP, O_HELP };

int mk_cmd_conform(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dest", 1, 0, O_DEST},       {"source", 1, 0, O_SOURCE},   {"strict", 0, 0, O_STRICT},
        {"case", 1, 0, O_CASE},       {"section", 1, 0, O_SECTION}, {"list", 0, 0, O_LIST},
        {"tap", 0, 0, O_TAP},         {"junit", 1, 0, O_JUNIT},     {"timeout", 1, 0, O_TIMEOUT},
        {"case-timeout", 1, 0, O_CASE_TIMEOUT}, {"keep", 1, 0, O_KEEP},
        {"verbose", 0, 0, 'v'},       {"help", 0, 0, O_HELP},       {0, 0, 0, 0}};
    const char *dest = NULL, *source = NULL, *junit = NULL, *keep = NULL;
    const char *cases[64], *sections[64];
    int ncases = 0, nsections = 0, strict = 0, list = 0, tap = 0, verbose = 0, o;
    uint64_t timeout = 5000, case_timeout = 60000;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (o) {
        case O_DEST: dest = optarg; break;
        case O_SOURCE: source = optarg; break;
        case O_STRICT: strict = 1; break;
        case O_CASE:
            if (ncases == 64)
                return mk_usage_error("conform", "%stoo many --case options (64 at most)", "");
            cases[ncases++] = optarg;
            break;
        case O_SECTION:
            if (nsections == 64)
                return mk_usage_error("conform", "%stoo many --section options (64 at most)", "");
            sections[nsections++] = optarg;
            break;
        case O_LIST: list = 1; break;
        case O_TAP: tap = 1; break;
        case O_JUNIT: junit = optarg; break;
        case O_TIMEOUT:
            if (mk_parse_u64(optarg, &timeout) || timeout == 0 || timeout > 3600000)
                return mk_usage_error("conform", "--timeout needs milliseconds in 1..3600000, not '%s'", optarg);
            break;
        case O_CASE_TIMEOUT:
            if (mk_parse_u64(optarg, &case_timeout) || case_timeout == 0 || case_timeout > 86400000)
                return mk_usage_error("conform", "--case-timeout needs milliseconds in 1..86400000, not '%s'", optarg);
            break;
        case O_KEEP: keep = optarg; break;
        case 'v': verbose = 1; break;
        case O_HELP: conform_help(); return EXIT_OK;
        default:
            return mk_usage_error("conform", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mk_usage_error("conform", "unexpected argument '%s'", argv[optind]);
    if (dest && source)
        return mk_usage_error("conform", "%s--dest and --source exclude each other: check one implementation at a time", "");
    if (!dest && !source && !list)
        return mk_usage_error("conform", "%sone of --dest CMD and --source CMD is required", "");

    /* The selection: the role's table (both for a bare --list), by level,
     * case pattern and section. */
    const mkc_case *sel[512];
    size_t nsel = 0;
    for (int t = 0; t < 2; t++) {
        const mkc_case *tab = t == 0 ? mkc_dest_cases : mkc_source_cases;
        size_t n = t == 0 ? mkc_dest_ncases : mkc_source_ncases;
        if ((t == 0 && source) || (t == 1 && dest))
            continue;
        for (size_t i = 0; i < n && nsel < 512; i++) {
            const mkc_case *k = &tab[i];
            int ok = list || strict || k->level == MKC_MUST;
            if (ok && ncases) {
                ok = 0;
                for (int j = 0; j < ncases; j++)
                    ok |= fnmatch(cases[j], k->id, 0) == 0;
            }
            if (ok && nsections) {
                ok = 0;
                for (int j = 0; j < nsections; j++)
                    ok |= section_matches(k->section, sections[j]);
            }
            if (ok)
                sel[nsel++] = k;
        }
    }
    if (list) {
        for (size_t i = 0; i < nsel; i++)
            printf("%-34s %-5s %-6s %s\n", sel[i]->id, sel[i]->section, level_name(sel[i]->level),
                   sel[i]->desc);
        printf("%zu cases\n", nsel);
        return EXIT_OK;
    }
    if (!nsel)
        return mk_usage_error("conform", "%sno case matches the --case and --section options (see --list)", "");
    const char *cmd = dest ? dest : source;
    if (!command_exists(cmd)) {
        fprintf(stderr, "mirrorkit conform: MK_EUSAGE: cannot run '%s': no such program\n", cmd);
        return EXIT_USAGE;
    }

    char work[2048];
    int made_work = 0;
    if (keep) {
        if (strlen(keep) >= sizeof work - 64)
            return mk_usage_error("conform", "--keep needs a shorter path than '%s'", keep);
        if (mkdir(keep, 0755) && errno != EEXIST) {
            fprintf(stderr, "mirrorkit conform: MK_EIO: cannot create %s: %s\n", keep, strerror(errno));
            return EXIT_USAGE;
        }
        snprintf(work, sizeof work, "%s", keep);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(work, sizeof work, "%.1900s/mk-conform.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(work)) {
            fprintf(stderr, "mirrorkit conform: MK_EIO: cannot create a work directory: %s\n", strerror(errno));
            return EXIT_USAGE;
        }
        made_work = 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);

    result *res = calloc(nsel, sizeof *res);
    if (!res)
        return EXIT_IO;
    if (tap)
        printf("TAP version 13\n1..%zu\n", nsel);
    int count[4] = {0}, must_failed = 0;
    for (size_t i = 0; i < nsel; i++) {
        result *r = &res[i];
        run_case(sel[i], cmd, work, (int)timeout, (int)case_timeout, verbose && !tap, keep != NULL, r);
        count[r->v]++;
        must_failed += r->v == MKC_FAIL && sel[i]->level == MKC_MUST;
        if (tap) {
            printf("%s %zu - %s [%s %s] %s%s\n", r->v == MKC_PASS || r->v == MKC_UNSUPPORTED ? "ok" : "not ok",
                   i + 1, sel[i]->id, sel[i]->section, level_name(sel[i]->level), sel[i]->desc,
                   r->v == MKC_UNSUPPORTED ? " # SKIP unsupported" : "");
            if (r->why[0])
                printf("  # %s\n", r->why);
            if (r->err_tail[0])
                printf("  # stderr: %s\n", r->err_tail);
        } else {
            printf("%-11s %-34s %-5s %-6s %s", verdict_name(r->v), sel[i]->id, sel[i]->section,
                   level_name(sel[i]->level), sel[i]->desc);
            if (r->why[0])
                printf(": %s", r->why);
            if (r->err_tail[0])
                printf(" [stderr: %s]", r->err_tail);
            printf(" (%.0f ms)\n", r->ms);
        }
        fflush(stdout);
    }
    if (!tap)
        printf("conform: %d passed, %d failed (%d MUST), %d unsupported, %d errors, of %zu cases\n",
               count[MKC_PASS], count[MKC_FAIL], must_failed, count[MKC_UNSUPPORTED], count[MKC_ERROR], nsel);
    int rc = count[MKC_ERROR] ? EXIT_USAGE : count[MKC_FAIL] ? EXIT_VERIFY : EXIT_OK;
    if (junit) {
        FILE *f = fopen(junit, "w");
        if (!f) {
            fprintf(stderr, "mirrorkit conform: MK_EIO: cannot write %s\n", junit);
            rc = EXIT_USAGE;
        } else {
            double total = 0;
            for (size_t i = 0; i < nsel; i++)
                total += res[i].ms;
            fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<testsuite name=\"mirrorkit-conform-%s\" tests=\"%zu\" failures=\"%d\" "
                       "errors=\"%d\" skipped=\"%d\" time=\"%.3f\">\n",
                    dest ? "dest" : "source", nsel, count[MKC_FAIL], count[MKC_ERROR],
                    count[MKC_UNSUPPORTED], total / 1e3);
            for (size_t i = 0; i < nsel; i++) {
                result *r = &res[i];
                fprintf(f, "  <testcase classname=\"conform.%s.%s\" name=\"", dest ? "dest" : "source",
                        level_name(sel[i]->level));
                mk_xml_escaped(f, sel[i]->id);
                fprintf(f, " [SPEC %s] ", sel[i]->section);
                mk_xml_escaped(f, sel[i]->desc);
                fprintf(f, "\" time=\"%.3f\">", r->ms / 1e3);
                if (r->v != MKC_PASS) {
                    fprintf(f, "\n    <%s message=\"",
                            r->v == MKC_FAIL ? "failure" : r->v == MKC_ERROR ? "error" : "skipped");
                    mk_xml_escaped(f, r->why);
                    fprintf(f, "\"/>");
                    if (r->err_tail[0]) {
                        fprintf(f, "\n    <system-err>");
                        mk_xml_escaped(f, r->err_tail);
                        fprintf(f, "</system-err>");
                    }
                    fprintf(f, "\n  ");
                }
                fprintf(f, "</testcase>\n");
            }
            fprintf(f, "</testsuite>\n");
            if (fclose(f)) {
                fprintf(stderr, "mirrorkit conform: MK_EIO: cannot write %s\n", junit);
                rc = EXIT_USAGE;
            }
        }
    }
    if (made_work)
        remove_tree(work);
    free(res);
    return rc;
}
