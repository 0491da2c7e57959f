/*
 * mk_conform_source.c - the conformance cases for a source under test
 * (SPEC.md section 10.2): the runner plays the reference destination.
 *
 * How a case runs.  The runner listens on loopback, starts the source
 * under test (the IUT) with the arguments of 10.2, writes script lines to
 * its stdin and reads its `ack N` / `cp-ack K` / `error MK_NAME` lines from
 * its stdout.  Every frame the IUT sends is first judged by a checker that
 * knows the script, and only then handed to the reference destination
 * engine (ref/mk_dest, sans I/O, over memory files); the engine's answers
 * go back to the IUT.  Between the two sit the stimuli a case asks for:
 * holding the destination's output back, rewriting a REF so that the
 * engine NAKs it, dropping the connection at a chosen frame, ending the
 * session with an ERROR frame, or answering with a HELLO_ACK, LOG_ACK or
 * CP_ACK that the source must refuse.
 *
 * The checker keeps its own model of the volume from the script's writes,
 * so it knows each CP image, which blocks qualify as REFs (6.3), which
 * transfers each write must produce (4.2) and which tids the destination
 * holds.  It judges the source's stream as it arrives (transfer IDs,
 * HELLO fields, sequence numbers, CP records, resends after NAK and after
 * reconnect) and the stdout lines against what the destination has
 * actually delivered (a sync `ack N` needs a covering LOG_ACK already
 * sent).  When the engine acknowledges CP K, its mirror is compared with
 * the CP K image; the first differing block fails the case.
 *
 * Everything runs in one poll loop over the listening socket, the
 * connection, and the IUT's stdin and stdout, because the IUT is
 * concurrent: it may block writing frames while the runner writes script
 * lines, so nothing here ever blocks on one descriptor alone.
 */
#include "mk_conform.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mk_dest.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_wire.h"

/* The default lag bound of 5.2: 10.2 passes no bound, so the default holds. */
#define SH_MAX_LAG (8u << 20)
#define SH_MAX_DROPS 4

/* ---- the model of the script ----------------------------------------------- */

/* One transfer the script's writes must produce (4.2), in creation order.
 * tid is learnt when its LOG arrives. */
typedef struct piece {
    uint64_t off;
    uint32_t len;
    uint32_t w; /* index of its write */
    const uint8_t *data;
    uint64_t tid;
    int seen;
} piece;

typedef struct wr {
    uint64_t off;
    uint32_t len;
    uint8_t *data;
    uint32_t cp_before;              /* cp lines before this write */
    size_t first_piece, npieces;
} wr;

/* What CP k must carry: its image and, per dirty block, the REF it
 * qualifies for (6.3: the piece and slot of the last whole write, or -1). */
typedef struct cpspec {
    uint8_t *img;
    uint8_t *dirty;
    int64_t *refp;
    uint32_t *slot;
    uint64_t ndirty;
    int64_t last_piece; /* the newest transfer the CP image includes, -1 none */
} cpspec;

/* A frame queued to the IUT, so that its effect counts only once it was
 * written to the socket (a LOG_ACK the IUT may have read). */
enum { MK_NONE = 0 };
typedef struct mark {
    uint64_t end; /* absolute byte count of the output stream */
    uint8_t type; /* 0: no effect (damaged or injected) */
    uint64_t a, b, c;
} mark;

/* A point at which the connection is dropped: the nth frame of a type
 * from the source (counted over the whole run), fed to the engine first
 * or lost with the connection. */
typedef struct droppt {
    uint8_t type;
    uint64_t nth;
    int feed;
} droppt;

typedef struct sh {
    mkc *c;
    int mode;
    uint64_t nblocks;
    uint32_t bs;
    uint64_t vid, sid;
    int failed;

    /* the model: the volume now, the descriptors of 6.2, writes and CPs */
    uint8_t *vol;
    uint8_t *ddirty;
    int64_t *dpiece;
    uint32_t *dslot;
    uint64_t ndirty;
    wr *w;
    size_t nw, capw;
    piece *p;
    size_t np, capp;
    cpspec *cps;
    size_t ncp, capcp;

    /* the IUT */
    mkc_proc *proc;
    mk_buf sin;  /* script bytes not yet written */
    mk_buf sout; /* stdout bytes not yet a whole line */
    int close_stdin, stdout_eof, exited, code;
    uint64_t acks, cpacks;
    char errline[80];
    int expect_error;

    /* the network and the engine */
    int lfd, fd, conns;
    uint16_t port;
    mk_buf rx, tx;
    mark *marks;
    size_t nmarks, capmarks;
    uint64_t tx_queued, tx_sent;
    mk_dest *d;
    mk_file *mirror, *log;

    /* what the destination has delivered to the source */
    uint64_t ack_tid, cp_dlv, naks_dlv;
    /* the current connection, from the source's side */
    uint64_t rx_seq, out_seq, conn_max_log, hello_durable;
    int hello_seen, hello_ack_q, hello_ack_dlv, src_error, src_error_code, stop_feed;
    /* transfers to be resent on this connection (8.2 step 3) */
    uint64_t *resend;
    size_t nresend, iresend, capresend;
    uint64_t opt_lo, opt_hi; /* (lo, hi]: may be resent, after a log loss */
    uint64_t lost_lo, lost_hi;
    uint64_t max_tid;
    size_t next_piece;
    uint64_t log_bytes;

    /* the CP in flight */
    uint64_t cur_cp;
    uint8_t *st, *naked; /* per block: 0, 1 REF, 2 DATA, 3 NAKed, 4 resent */
    int begun, committed;
    uint64_t cp_checked;   /* highest CP whose mirror matched its image */
    uint8_t *cp_ack_bad;   /* per CP: its CP_ACK was falsified */
    /* the SHOULD order of 7.1, for the CP in flight */
    int data_seen;
    uint64_t last_ref_block, nref_frames, nref_entries;
    char order_bad[200];

    /* stimuli */
    int hold, hold_ms;
    uint64_t hold_until;
    droppt drop[SH_MAX_DROPS];
    int ndrop, drops;
    uint64_t ftype[256];
    int nak_mode;        /* 1 hash, 2 unknown tid, 3 slot, 4 tid > covers */
    int nak_max, nak_done;
    int hold_until_commit;
    int drop_on_resend;
    int log_gap_ms;
    uint64_t rx_pause_until;
    int fresh_engine_conn;
    int require_ref;
    /* answers the source must refuse or survive */
    int hello_ack_conn, hello_ack_what;
    int cp_ack_what;
    int log_ack_future;
    uint64_t damage_log_ack; /* the nth LOG_ACK goes out with a bad trailer */
    uint64_t log_acks_out;
    uint8_t error_on_type;
    uint64_t error_nth;
    int32_t error_code;
    int error_dlv, close_after_tx;
} sh;

typedef struct shcfg {
    int mode;
    uint64_t nblocks;
    uint32_t bs;
} shcfg;

/* ---- reporting -------------------------------------------------------------- */

/* A rule of SPEC.md broken by the IUT: the first one fails the case. */
__attribute__((format(printf, 3, 4))) static int bad(sh *h, const char *sec, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!h->failed)
        mkc_fail(h->c, "SPEC %s: %s", sec, msg);
    h->failed = 1;
    return -1;
}

/* The runner itself could not go on (memory, sockets): not the IUT's fault. */
static int harness(sh *h, const char *what, int rc)
{
    if (!h->failed)
        mkc_error(h->c, "%s: %s", what, mk_errname(rc));
    h->failed = 1;
    return -1;
}

static const char *mode_arg(int mode)
{
    return mode == MK_MODE_SYNC ? "sync" : mode == MK_MODE_SEMI ? "semi-sync" : "async";
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return MK_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* Deterministic, never all-zero test data. */
static void fill_pat(uint8_t *d, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = (uint8_t)(x | 1);
    }
}

/* ---- the script and its model ----------------------------------------------- */

static void desc_set(sh *h, uint64_t b, int64_t pc, uint32_t slot)
{
    if (!h->ddirty[b]) {
        h->ddirty[b] = 1;
        h->ndirty++;
    }
    h->dpiece[b] = pc;
    h->dslot[b] = slot;
}

/* Queues `write OFF HEX` and applies it to the model: the volume, the
 * transfers of 4.2's split and the descriptors of 6.2 (head partial, slots
 * whole, tail partial; every block partial in async mode). */
static int sh_write(sh *h, uint64_t off, const uint8_t *data, uint32_t len)
{
    static const char hx[] = "0123456789abcdef";
    if (h->failed)
        return -1;
    if (grow((void **)&h->w, &h->capw, h->nw + 1, sizeof *h->w))
        return harness(h, "model", MK_ENOMEM);
    wr *w = &h->w[h->nw];
    memset(w, 0, sizeof *w);
    w->off = off;
    w->len = len;
    w->cp_before = (uint32_t)h->ncp;
    w->first_piece = h->np;
    if (!(w->data = malloc(len)))
        return harness(h, "model", MK_ENOMEM);
    memcpy(w->data, data, len);
    h->nw++;
    memcpy(h->vol + off, data, len);
    uint64_t at = off, end = off + len;
    while (at < end) {
        uint64_t pe = end;
        if (end - at > MK_MAX_TRANSFER_DATA)
            pe = (at + MK_MAX_TRANSFER_DATA) / h->bs * h->bs;
        int64_t pi = -1;
        if (h->mode != MK_MODE_ASYNC) {
            if (grow((void **)&h->p, &h->capp, h->np + 1, sizeof *h->p))
                return harness(h, "model", MK_ENOMEM);
            pi = (int64_t)h->np;
            h->p[h->np++] = (piece){at, (uint32_t)(pe - at), (uint32_t)(h->nw - 1),
                                    w->data + (at - off), 0, 0};
            w->npieces++;
        }
        mk_xgeom g;
        mk_transfer_geom(at, (uint32_t)(pe - at), h->bs, &g);
        if (g.head_len)
            desc_set(h, at / h->bs, -1, 0);
        for (uint32_t s = 0; s < g.nslots; s++)
            desc_set(h, g.first_block + s, pi, pi < 0 ? 0 : s);
        if (g.tail_len)
            desc_set(h, (pe - 1) / h->bs, -1, 0);
        at = pe;
    }
    size_t ll = 32 + 2 * (size_t)len;
    char *line = malloc(ll);
    if (!line)
        return harness(h, "script", MK_ENOMEM);
    int k = snprintf(line, ll, "write %llu ", (unsigned long long)off);
    for (uint32_t i = 0; i < len; i++) {
        line[k++] = hx[data[i] >> 4];
        line[k++] = hx[data[i] & 15];
    }
    line[k++] = '\n';
    int rc = mk_buf_append(&h->sin, line, (size_t)k);
    free(line);
    return rc ? harness(h, "script", rc) : 0;
}

/* A write of pattern bytes. */
static int sh_wpat(sh *h, uint64_t off, uint32_t len, uint32_t seed)
{
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        return harness(h, "script", MK_ENOMEM);
    fill_pat(d, len, seed);
    int rc = sh_write(h, off, d, len);
    free(d);
    return rc;
}

/* Queues `cp`: the CP image is the volume now (1.1), the records are the
 * descriptors, which the CP takes (7.1 step 5). */
static int sh_cp(sh *h)
{
    if (h->failed)
        return -1;
    if (grow((void **)&h->cps, &h->capcp, h->ncp + 1, sizeof *h->cps))
        return harness(h, "model", MK_ENOMEM);
    cpspec *s = &h->cps[h->ncp];
    size_t n = (size_t)h->nblocks;
    memset(s, 0, sizeof *s);
    s->img = malloc(n * h->bs);
    s->dirty = malloc(n);
    s->refp = malloc(n * sizeof *s->refp);
    s->slot = malloc(n * sizeof *s->slot);
    h->ncp++;
    uint8_t *bad_ = realloc(h->cp_ack_bad, h->ncp + 1);
    if (bad_)
        h->cp_ack_bad = bad_;
    if (!s->img || !s->dirty || !s->refp || !s->slot || !bad_)
        return harness(h, "model", MK_ENOMEM);
    h->cp_ack_bad[h->ncp] = 0;
    memcpy(s->img, h->vol, n * h->bs);
    memcpy(s->dirty, h->ddirty, n);
    memcpy(s->refp, h->dpiece, n * sizeof *s->refp);
    memcpy(s->slot, h->dslot, n * sizeof *s->slot);
    s->ndirty = h->ndirty;
    s->last_piece = (int64_t)h->np - 1;
    memset(h->ddirty, 0, n);
    h->ndirty = 0;
    return mk_buf_append(&h->sin, "cp\n", 3) ? harness(h, "script", MK_ENOMEM) : 0;
}

static int sh_line(sh *h, const char *line)
{
    return mk_buf_append(&h->sin, line, strlen(line)) ? harness(h, "script", MK_ENOMEM) : 0;
}

static int sh_quit(sh *h) { return sh_line(h, "quit\n"); }

/* ---- the destination's output ----------------------------------------------- */

static int push_mark(sh *h, uint8_t type, uint64_t a, uint64_t b, uint64_t c)
{
    if (grow((void **)&h->marks, &h->capmarks, h->nmarks + 1, sizeof *h->marks))
        return harness(h, "output", MK_ENOMEM);
    h->marks[h->nmarks++] = (mark){h->tx_queued, type, a, b, c};
    return 0;
}

/* Appends frame bytes to the output, with the mark of what they mean. */
static int queue_out(sh *h, const mk_buf *b, uint8_t type, uint64_t a, uint64_t bb, uint64_t c)
{
    if (!mk_buf_len(&h->tx) && h->hold_ms)
        h->hold_until = mkc_now_ms() + (uint64_t)h->hold_ms;
    if (mk_buf_append(&h->tx, mk_buf_peek(b), mk_buf_len(b)))
        return harness(h, "output", MK_ENOMEM);
    h->tx_queued += mk_buf_len(b);
    h->out_seq++;
    return push_mark(h, type, a, bb, c);
}

/* The engine acknowledged CP k: its mirror must be the CP k image (I1). */
static int check_mirror(sh *h, uint64_t k)
{
    if (k == 0 || k > h->ncp)
        return bad(h, "7.1", "the destination acknowledged CP %llu but the script has %zu cp lines",
                   (unsigned long long)k, h->ncp);
    const cpspec *s = &h->cps[k - 1];
    uint8_t *blk = malloc(h->bs);
    if (!blk)
        return harness(h, "mirror", MK_ENOMEM);
    for (uint64_t b = 0; b < h->nblocks; b++) {
        int rc = mk_file_read_block(h->mirror, blk, h->bs, b * h->bs);
        if (rc) {
            free(blk);
            return harness(h, "reading the mirror", rc);
        }
        const uint8_t *want = s->img + b * h->bs;
        if (memcmp(blk, want, h->bs)) {
            uint32_t i = 0;
            while (blk[i] == want[i])
                i++;
            uint8_t got = blk[i];
            free(blk);
            return bad(h, "9 I1", "after CP %llu the mirror differs from the CP image at block %llu "
                       "(byte %u of the block: 0x%02x, want 0x%02x)%s",
                       (unsigned long long)k, (unsigned long long)b, i, got, want[i],
                       s->dirty[b] ? "" : "; the CP did not name this block");
        }
    }
    free(blk);
    if (k > h->cp_checked)
        h->cp_checked = k;
    mkc_log(h->c, "CP %llu: mirror equals the CP image", (unsigned long long)k);
    return 0;
}

/* Moves the engine's output to the IUT's queue, frame by frame, applying
 * the answers a case falsifies and checking the CPs the engine applied. */
static int collect(sh *h)
{
    mk_buf *o = mk_dest_out(h->d);
    mk_buf tmp;
    mk_buf_init(&tmp);
    int rc = 0;
    while (mk_buf_len(o) && rc == 0) {
        mk_frame f;
        size_t used;
        int e = mk_frame_decode(mk_buf_peek(o), mk_buf_len(o), MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &f, &used);
        if (e) {
            rc = harness(h, "the reference destination's output", e);
            break;
        }
        mk_buf_clear(&tmp);
        uint8_t type = f.type;
        uint64_t a = 0, b = 0, c = 0;
        if (f.type == MK_F_HELLO_ACK) {
            mk_hello_ack ha;
            if ((e = mk_hello_ack_decode(&f, &ha))) {
                rc = harness(h, "HELLO_ACK", e);
                break;
            }
            if (h->hello_ack_conn == h->conns) {
                switch (h->hello_ack_what) {
                case 1: ha.volume_id ^= 0x100; break;
                case 2: ha.source_id ^= 0x1; break;
                case 3: ha.last_cp += 5; break;
                case 4: ha.durable_tid += 1000; break;
                case 5: ha.last_digest ^= 0x5a5a; break;
                case 6: ha.nblocks += 1; break;
                }
            }
            mk_hello_ack_encode(&tmp, f.seq, &ha);
            a = ha.last_cp;
            b = ha.durable_tid;
            /* 8.2 step 3: every transfer above durable_tid is resent; after a
             * log loss (8.3) those the source saw acknowledged are not
             * retained and may or may not come again. */
            h->hello_ack_q = 1;
            h->hello_durable = ha.durable_tid;
            h->nresend = h->iresend = 0;
            h->opt_lo = h->opt_hi = 0;
            uint64_t req = ha.durable_tid > h->ack_tid ? ha.durable_tid : h->ack_tid;
            if (ha.durable_tid < h->ack_tid) {
                h->lost_lo = ha.durable_tid;
                h->lost_hi = h->ack_tid;
                h->opt_lo = ha.durable_tid;
                h->opt_hi = h->ack_tid;
            }
            for (size_t i = 0; i < h->next_piece; i++) {
                if (h->p[i].tid > req) {
                    if (grow((void **)&h->resend, &h->capresend, h->nresend + 1, sizeof *h->resend)) {
                        rc = harness(h, "resend", MK_ENOMEM);
                        break;
                    }
                    h->resend[h->nresend++] = h->p[i].tid;
                }
            }
        } else if (f.type == MK_F_LOG_ACK) {
            mk_log_ack_decode(&f, &a);
            h->log_acks_out++;
            if (h->log_ack_future) {
                a += 1000;
                type = MK_NONE;
            }
            mk_log_ack_encode(&tmp, f.seq, a);
            if (h->damage_log_ack && h->log_acks_out == h->damage_log_ack) {
                tmp.data[tmp.tail - 1] ^= 0x10; /* the trailer no longer matches */
                type = MK_NONE;
            }
        } else if (f.type == MK_F_NAK) {
            mk_nak n;
            mk_nak_decode(&f, &n);
            a = n.cp;
            b = n.block;
            mk_buf_append(&tmp, mk_buf_peek(o), used);
        } else if (f.type == MK_F_CP_ACK) {
            mk_cp_ack ca;
            mk_cp_ack_decode(&f, &ca);
            if ((rc = check_mirror(h, ca.cp)))
                break;
            if (h->cp_ack_what == 1)
                ca.digest ^= 0x77;
            else if (h->cp_ack_what == 2)
                ca.napplied += 1;
            if (h->cp_ack_what && ca.cp <= h->ncp)
                h->cp_ack_bad[ca.cp] = 1;
            mk_cp_ack_encode(&tmp, f.seq, &ca);
            a = ca.cp;
            if (h->cp_ack_what)
                type = MK_NONE;
        } else if (f.type == MK_F_ERROR) {
            mk_error_frame ef;
            mk_error_decode(&f, &ef);
            rc = bad(h, "3.4", "the reference destination refused the source's stream with %s: %.*s",
                     mk_errname(ef.code), (int)ef.msglen, (const char *)ef.msg);
            break;
        } else {
            mk_buf_append(&tmp, mk_buf_peek(o), used);
        }
        rc = queue_out(h, &tmp, type, a, b, c);
        mk_buf_consume(o, used);
    }
    mk_buf_free(&tmp);
    return rc;
}

/* A frame of the output reached the IUT: what it may now rely on. */
static void delivered(sh *h, const mark *m)
{
    switch (m->type) {
    case MK_F_HELLO_ACK:
        h->hello_ack_dlv = 1;
        if (m->b > h->ack_tid)
            h->ack_tid = m->b;
        if (m->a > h->cp_dlv)
            h->cp_dlv = m->a;
        if (h->cp_dlv >= h->cur_cp)
            h->begun = 0;
        break;
    case MK_F_LOG_ACK:
        if (m->a > h->ack_tid)
            h->ack_tid = m->a;
        break;
    case MK_F_NAK:
        if (m->a == h->cur_cp && m->b < h->nblocks) {
            if (h->st[m->b] == 1)
                h->st[m->b] = 3;
            h->naked[m->b] = 1;
        }
        h->naks_dlv++;
        break;
    case MK_F_CP_ACK:
        if (m->a > h->cp_dlv)
            h->cp_dlv = m->a;
        h->begun = 0;
        break;
    case MK_F_ERROR:
        h->error_dlv = 1;
        break;
    }
}

/* ---- connections -------------------------------------------------------------- */

static void conn_reset(sh *h)
{
    mk_buf_clear(&h->rx);
    mk_buf_clear(&h->tx);
    h->nmarks = 0;
    h->tx_queued = h->tx_sent = 0;
    h->rx_seq = h->out_seq = h->conn_max_log = h->hello_durable = 0;
    h->hello_seen = h->hello_ack_q = h->hello_ack_dlv = h->src_error = h->stop_feed = 0;
    h->nresend = h->iresend = 0;
    h->begun = h->committed = 0;
    h->error_dlv = h->close_after_tx = 0;
    if (h->st)
        memset(h->st, 0, (size_t)h->nblocks);
}

/* The connection is gone (dropped by a stimulus, or closed by the IUT):
 * the engine forgets the session (2.4) and the unsent output is lost. */
static void conn_end(sh *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    if (h->d) {
        mk_dest_session_end(h->d);
        mk_buf_clear(mk_dest_out(h->d));
    }
    conn_reset(h);
}

static int engine_open(sh *h)
{
    mk_dest_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc;
    if ((rc = mk_file_mem("conform/mirror", &h->mirror)) || (rc = mk_file_mem("conform/log", &h->log)) ||
        (rc = mk_dest_open(&cfg, h->mirror, h->log, &h->d)))
        return harness(h, "opening the reference destination", rc);
    return 0;
}

static void engine_close(sh *h)
{
    if (h->d)
        mk_dest_free(h->d);
    if (h->mirror)
        mk_file_close(h->mirror);
    if (h->log)
        mk_file_close(h->log);
    h->d = NULL;
    h->mirror = h->log = NULL;
}

static int on_accept(sh *h)
{
    int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return 0;
    if (h->fd >= 0)
        conn_end(h); /* the IUT gave up on the old connection (8.5) */
    h->fd = fd;
    h->conns++;
    conn_reset(h);
    mkc_log(h->c, "connection %d accepted", h->conns);
    /* 8.3: the destination lost its whole log; it is fresh again. */
    if (h->fresh_engine_conn == h->conns) {
        engine_close(h);
        if (engine_open(h))
            return -1;
        mkc_log(h->c, "the destination lost its log and mirror (fresh engine)");
    }
    return 0;
}

/* ---- the checker: every frame of the source ---------------------------------- */

static piece *piece_by_tid(sh *h, uint64_t tid)
{
    size_t lo = 0, hi = h->next_piece;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->p[mid].tid < tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < h->next_piece && h->p[lo].tid == tid ? &h->p[lo] : NULL;
}

static int check_log(sh *h, const mk_frame *f)
{
    mk_log l;
    int rc;
    if (h->mode == MK_MODE_ASYNC)
        return bad(h, "5.3", "a LOG frame in async mode (no log entries, no LOG frames)");
    if ((rc = mk_log_decode(f, &l)))
        return bad(h, "4.3", "LOG payload: %s", mk_errname(rc));
    if (l.tid == 0)
        return bad(h, "4.5", "LOG with transfer ID 0");
    uint64_t prev = h->conn_max_log;
    if (l.tid > h->conn_max_log)
        h->conn_max_log = l.tid;
    h->log_bytes += l.length;
    if (l.tid > h->max_tid) {
        if (h->iresend < h->nresend)
            return bad(h, "8.2", "new transfer %llu before the retained transfer %llu was resent "
                       "(HELLO_ACK durable_tid %llu)", (unsigned long long)l.tid,
                       (unsigned long long)h->resend[h->iresend], (unsigned long long)h->hello_durable);
        if (h->next_piece >= h->np)
            return bad(h, "4.1", "LOG tid %llu (offset %llu, %u bytes) matches no write of the script",
                       (unsigned long long)l.tid, (unsigned long long)l.offset, l.length);
        piece *p = &h->p[h->next_piece];
        for (size_t j = h->next_piece + 1; j < h->np && (l.offset != p->off || l.length != p->len); j++)
            if (l.offset == h->p[j].off && l.length == h->p[j].len && !memcmp(l.data, h->p[j].data, l.length))
                return bad(h, "8.2", "transfer %llu carries write %u, but the transfer [%llu, +%u) of write %u "
                           "before it never arrived: transfers are sent in creation order, and one lost "
                           "with a connection is resent", (unsigned long long)l.tid, h->p[j].w + 1,
                           (unsigned long long)p->off, p->len, p->w + 1);
        if (l.offset != p->off || l.length != p->len)
            return bad(h, "4.2", "transfer %llu covers [%llu, +%u); write %u must produce the transfer "
                       "[%llu, +%u) next", (unsigned long long)l.tid, (unsigned long long)l.offset,
                       l.length, p->w + 1, (unsigned long long)p->off, p->len);
        if (memcmp(l.data, p->data, p->len))
            return bad(h, "4.3", "transfer %llu does not carry the bytes of write %u",
                       (unsigned long long)l.tid, p->w + 1);
        if (h->w[p->w].cp_before > h->cp_dlv)
            return bad(h, "10.2", "write %u, after cp line %u, was logged before CP %u was acknowledged",
                       p->w + 1, h->w[p->w].cp_before, h->w[p->w].cp_before);
        p->tid = l.tid;
        p->seen = 1;
        h->next_piece++;
        h->max_tid = l.tid;
        return 0;
    }
    /* Not a new ID: it must be a resend, of the same bytes, in tid order. */
    piece *p = piece_by_tid(h, l.tid);
    const piece *nx = h->next_piece < h->np ? &h->p[h->next_piece] : NULL;
    int same = p && l.offset == p->off && l.length == p->len && !memcmp(l.data, p->data, p->len);
    if (!same && nx && l.offset == nx->off && l.length == nx->len && !memcmp(l.data, nx->data, nx->len))
        return bad(h, "4.5", "transfer ID %llu reused for a new transfer (write %u) after ID %llu: IDs are "
                   "unique and strictly increasing for the life of the pairing",
                   (unsigned long long)l.tid, nx->w + 1, (unsigned long long)h->max_tid);
    if (!p)
        return bad(h, "4.5", "transfer ID %llu is not greater than %llu and names no earlier transfer",
                   (unsigned long long)l.tid, (unsigned long long)h->max_tid);
    if (!same)
        return bad(h, "4.5", "transfer %llu resent with other bytes: a resent transfer keeps its ID "
                   "and its bytes", (unsigned long long)l.tid);
    if (l.tid <= prev)
        return bad(h, "8.2", "transfer %llu sent after transfer %llu on the same connection: resends go "
                   "in tid order", (unsigned long long)l.tid, (unsigned long long)prev);
    if (h->iresend < h->nresend && h->resend[h->iresend] == l.tid) {
        h->iresend++;
        return 0;
    }
    if (l.tid > h->opt_lo && l.tid <= h->opt_hi)
        return 0;
    if (l.tid <= h->hello_durable)
        return bad(h, "8.2", "transfer %llu resent although HELLO_ACK durable_tid %llu covers it",
                   (unsigned long long)l.tid, (unsigned long long)h->hello_durable);
    return bad(h, "4.5", "transfer %llu sent again on the same connection (or out of order)",
               (unsigned long long)l.tid);
}

static int check_cp_begin(sh *h, const mk_frame *f)
{
    mk_cp_begin b;
    int rc;
    if ((rc = mk_cp_begin_decode(f, &b)))
        return bad(h, "7.1", "CP_BEGIN payload: %s", mk_errname(rc));
    if (h->begun)
        return bad(h, "7.1", "CP_BEGIN %llu while CP %llu is in flight", (unsigned long long)b.cp,
                   (unsigned long long)h->cur_cp);
    uint64_t k = h->cp_dlv + 1;
    if (b.cp != k)
        return bad(h, "7.1", "CP_BEGIN of CP %llu; the last acknowledged CP is %llu, so CP %llu is next",
                   (unsigned long long)b.cp, (unsigned long long)h->cp_dlv, (unsigned long long)k);
    if (k > h->ncp)
        return bad(h, "10.2", "CP %llu begun, but the script has only %zu cp lines",
                   (unsigned long long)k, h->ncp);
    if (h->iresend < h->nresend)
        return bad(h, "8.2", "CP_BEGIN before the retained transfer %llu was resent",
                   (unsigned long long)h->resend[h->iresend]);
    if (h->cur_cp != k) {
        h->cur_cp = k;
        memset(h->naked, 0, (size_t)h->nblocks);
    }
    const cpspec *s = &h->cps[k - 1];
    if (b.nrecords != s->ndirty)
        return bad(h, "7.1", "CP_BEGIN %llu nrecords %llu; %llu blocks were written since the last CP",
                   (unsigned long long)k, (unsigned long long)b.nrecords, (unsigned long long)s->ndirty);
    uint64_t want = 0;
    if (h->mode != MK_MODE_ASYNC) {
        uint64_t newest = s->last_piece < 0 ? 0 : h->p[s->last_piece].seen ? h->p[s->last_piece].tid : UINT64_MAX;
        uint64_t holds = h->hello_durable > h->conn_max_log ? h->hello_durable : h->conn_max_log;
        want = newest < holds ? newest : holds;
    }
    if (b.covers_tid != want)
        return bad(h, "7.1", "CP_BEGIN %llu covers_tid %llu, want %llu (min of the CP image's newest "
                   "transfer and the newest the destination holds or was sent)%s",
                   (unsigned long long)k, (unsigned long long)b.covers_tid, (unsigned long long)want,
                   h->mode == MK_MODE_ASYNC ? "; async mode has no transfers" : "");
    if (h->mode == MK_MODE_SYNC && h->ack_tid < h->max_tid)
        return bad(h, "5.1", "sync mode: CP %llu begun while transfers up to %llu are unacknowledged "
                   "(LOG_ACK delivered up to %llu)", (unsigned long long)k,
                   (unsigned long long)h->max_tid, (unsigned long long)h->ack_tid);
    h->begun = 1;
    h->committed = 0;
    h->data_seen = 0;
    h->last_ref_block = 0;
    h->nref_frames = h->nref_entries = 0;
    memset(h->st, 0, (size_t)h->nblocks);
    return 0;
}

static int cp_frame_ok(sh *h, uint64_t cp, const char *what)
{
    if (!h->begun)
        return bad(h, "7.2", "%s with no CP begun on this connection", what);
    if (cp != h->cur_cp)
        return bad(h, "7.2", "%s for CP %llu while CP %llu is in flight", what, (unsigned long long)cp,
                   (unsigned long long)h->cur_cp);
    return 0;
}

static int block_ok(sh *h, uint64_t block, const char *what)
{
    if (block >= h->nblocks)
        return bad(h, "7.2", "%s block %llu is outside the volume", what, (unsigned long long)block);
    if (!h->cps[h->cur_cp - 1].dirty[block])
        return bad(h, "7.1", "%s for block %llu, which no write touched since the last CP", what,
                   (unsigned long long)block);
    return 0;
}

static int check_cp_ref(sh *h, const mk_frame *f)
{
    uint64_t cp;
    uint32_t n;
    int rc;
    if ((rc = mk_cp_ref_decode(f, &cp, &n)))
        return bad(h, "7.2", "CP_REF payload: %s", mk_errname(rc));
    if (cp_frame_ok(h, cp, "CP_REF"))
        return -1;
    /* A REF for a block NAKed on this connection is the wrong answer to the
     * NAK, whatever else is wrong with the frame: say so first. */
    for (uint32_t i = 0; i < n; i++) {
        mk_ref r;
        if (mk_ref_at(f, i, &r) == 0 && r.block < h->nblocks && h->st[r.block] == 3)
            return bad(h, "8.1", "block %llu was NAKed and is sent as a REF again: the answer to a NAK "
                       "is CP_DATA with the block's CP-image content", (unsigned long long)r.block);
    }
    if (h->committed)
        return bad(h, "7.2", "CP_REF after CP_COMMIT");
    const cpspec *s = &h->cps[h->cur_cp - 1];
    if (h->data_seen && !h->order_bad[0])
        snprintf(h->order_bad, sizeof h->order_bad, "CP %llu: a CP_REF after a CP_DATA",
                 (unsigned long long)cp);
    h->nref_frames++;
    for (uint32_t i = 0; i < n; i++) {
        mk_ref r;
        if ((rc = mk_ref_at(f, i, &r)))
            return bad(h, "7.2", "REF entry %u: %s", i, mk_errname(rc));
        if (block_ok(h, r.block, "REF"))
            return -1;
        if (h->naked[r.block])
            return bad(h, "8.2", "block %llu was NAKed in this CP and is sent as a REF again: records "
                       "converted to DATA stay DATA", (unsigned long long)r.block);
        if (h->st[r.block])
            return bad(h, "7.2", "block %llu appears twice in CP %llu", (unsigned long long)r.block,
                       (unsigned long long)cp);
        if (h->mode == MK_MODE_ASYNC)
            return bad(h, "6.3", "a REF in async mode (every dirty block goes as CP_DATA)");
        int64_t pi = s->refp[r.block];
        if (pi < 0)
            return bad(h, "6.3", "REF for block %llu, whose last write since the last CP was partial "
                       "(whole then partial is not a REF)", (unsigned long long)r.block);
        const piece *p = &h->p[pi];
        if (!p->seen || p->tid != r.tid)
            return bad(h, "6.3", "REF for block %llu names tid %llu; the block's last whole write "
                       "is transfer %llu (write %u)", (unsigned long long)r.block,
                       (unsigned long long)r.tid, (unsigned long long)p->tid, p->w + 1);
        if (r.slot != s->slot[r.block])
            return bad(h, "4.2", "REF for block %llu names slot %u of tid %llu; the block is slot %u",
                       (unsigned long long)r.block, r.slot, (unsigned long long)r.tid, s->slot[r.block]);
        if (r.tid > h->lost_lo && r.tid <= h->lost_hi)
            return bad(h, "8.3", "REF for block %llu names tid %llu, which the destination lost",
                       (unsigned long long)r.block, (unsigned long long)r.tid);
        uint64_t want = mk_block_hash(s->img + r.block * h->bs, h->bs);
        if (r.hash != want)
            return bad(h, "7.2", "REF for block %llu carries hash %016llx, H of the block's CP-image "
                       "content is %016llx", (unsigned long long)r.block,
                       (unsigned long long)r.hash, (unsigned long long)want);
        if (h->nref_entries && r.block <= h->last_ref_block && !h->order_bad[0])
            snprintf(h->order_bad, sizeof h->order_bad, "CP %llu: REF for block %llu after block %llu",
                     (unsigned long long)cp, (unsigned long long)r.block,
                     (unsigned long long)h->last_ref_block);
        h->last_ref_block = r.block;
        h->nref_entries++;
        h->st[r.block] = 1;
    }
    return 0;
}

static int check_cp_data(sh *h, const mk_frame *f, int *resend)
{
    mk_cp_data d;
    int rc;
    *resend = 0;
    if ((rc = mk_cp_data_decode(f, h->bs, &d)))
        return bad(h, "7.2", "CP_DATA payload: %s", mk_errname(rc));
    if (cp_frame_ok(h, d.cp, "CP_DATA") || block_ok(h, d.block, "CP_DATA"))
        return -1;
    const cpspec *s = &h->cps[h->cur_cp - 1];
    uint8_t *st = &h->st[d.block];
    if (*st == 0) {
        if (h->committed)
            return bad(h, "7.2", "CP_DATA for a new block %llu after CP_COMMIT",
                       (unsigned long long)d.block);
        int64_t pi = s->refp[d.block];
        if (h->require_ref && pi >= 0 && !h->naked[d.block] &&
            !(h->p[pi].tid > h->lost_lo && h->p[pi].tid <= h->lost_hi))
            return bad(h, "6.3", "block %llu, wholly written last (write %u), is sent as CP_DATA instead "
                       "of a REF", (unsigned long long)d.block, h->p[pi].w + 1);
        *st = 2;
    } else if (*st == 3) {
        *st = 4;
        *resend = 1;
    } else {
        return bad(h, "7.2", "block %llu appears twice in CP %llu (%s)", (unsigned long long)d.block,
                   (unsigned long long)d.cp,
                   *st == 1 ? "a REF not NAKed, then CP_DATA" : "CP_DATA again");
    }
    const uint8_t *want = s->img + d.block * h->bs;
    if (memcmp(d.data, want, h->bs)) {
        uint32_t i = 0;
        while (d.data[i] == want[i])
            i++;
        return bad(h, *resend ? "8.1" : "7.2", "CP_DATA%s for block %llu differs from the block's CP-image "
                   "content at byte %u", *resend ? " (NAK resend)" : "", (unsigned long long)d.block, i);
    }
    h->data_seen = 1;
    return 0;
}

static int check_cp_commit(sh *h, const mk_frame *f)
{
    mk_cp_commit cc;
    int rc;
    if ((rc = mk_cp_commit_decode(f, &cc)))
        return bad(h, "7.4", "CP_COMMIT payload: %s", mk_errname(rc));
    if (cp_frame_ok(h, cc.cp, "CP_COMMIT"))
        return -1;
    if (h->committed)
        return bad(h, "7.4", "a second CP_COMMIT for CP %llu", (unsigned long long)cc.cp);
    const cpspec *s = &h->cps[h->cur_cp - 1];
    if (cc.nrecords != s->ndirty)
        return bad(h, "7.4", "CP_COMMIT %llu nrecords %llu, the CP has %llu records",
                   (unsigned long long)cc.cp, (unsigned long long)cc.nrecords,
                   (unsigned long long)s->ndirty);
    uint64_t sent = 0;
    for (uint64_t b = 0; b < h->nblocks; b++)
        sent += h->st[b] != 0;
    if (sent != s->ndirty)
        return bad(h, "7.4", "CP_COMMIT %llu after %llu of its %llu records were sent",
                   (unsigned long long)cc.cp, (unsigned long long)sent, (unsigned long long)s->ndirty);
    h->committed = 1;
    return 0;
}

static int check_hello(sh *h, const mk_frame *f)
{
    mk_hello m;
    int rc;
    if (h->hello_seen)
        return bad(h, "2.3", "a second HELLO on the same connection");
    if ((rc = mk_hello_decode(f, &m)))
        return bad(h, "2.1", "HELLO payload: %s", mk_errname(rc));
    if (m.volume_id != h->vid || m.nblocks != h->nblocks || m.block_size != h->bs ||
        m.mode != h->mode || m.source_id != h->sid)
        return bad(h, "2.1", "HELLO (volume_id 0x%llx, nblocks %llu, block_size %u, mode %u, source_id "
                   "0x%llx) does not match the arguments (0x%llx, %llu, %u, %d, 0x%llx)",
                   (unsigned long long)m.volume_id, (unsigned long long)m.nblocks, m.block_size, m.mode,
                   (unsigned long long)m.source_id, (unsigned long long)h->vid,
                   (unsigned long long)h->nblocks, h->bs, h->mode, (unsigned long long)h->sid);
    h->hello_seen = 1;
    return 0;
}

/* Rewrites one or more REF entries of a CP_REF so that the engine NAKs
 * them (7.2, 8.1).  The source's own frame has already been checked. */
static int nak_rewrite(sh *h, const mk_frame *f, mk_buf *out)
{
    uint64_t cp;
    uint32_t n;
    mk_ref *refs = malloc(MK_MAX_REFS_PER_FRAME * sizeof *refs);
    if (!refs)
        return harness(h, "NAK stimulus", MK_ENOMEM);
    mk_cp_ref_decode(f, &cp, &n);
    for (uint32_t i = 0; i < n; i++) {
        mk_ref_at(f, i, &refs[i]);
        if (h->nak_done >= h->nak_max)
            continue;
        h->nak_done++;
        switch (h->nak_mode) {
        case 1: refs[i].hash ^= 0x8000; break;        /* MK_EREFHASH */
        case 2: refs[i].tid = 0; break;               /* MK_ENOTID (0 is no tid) */
        case 3: refs[i].slot += 1; break;             /* MK_ESLOT */
        case 4: refs[i].tid = UINT64_MAX - 1; break;  /* MK_ETID: > covers_tid */
        }
        mkc_log(h->c, "REF for block %llu falsified: the destination will NAK it",
                (unsigned long long)refs[i].block);
    }
    int rc = mk_cp_ref_encode(out, f->seq, cp, refs, n);
    free(refs);
    return rc ? harness(h, "NAK stimulus", rc) : 0;
}

/* Judges one frame of the source, then applies the case's stimuli and
 * feeds it to the engine.  1: the connection was dropped here. */
static int on_src_frame(sh *h, const mk_frame *f, const uint8_t *raw, size_t rawlen)
{
    int rc = 0, resend = 0;
    h->ftype[f->type]++;
    if (h->src_error)
        return bad(h, "3.6", "%s frame after the source's own ERROR: the sender of an ERROR stops sending",
                   mk_ftype_name(f->type));
    if (f->seq != h->rx_seq)
        return bad(h, "3.5", "%s frame with seq %llu, want %llu (frames count from 0 on every connection)",
                   mk_ftype_name(f->type), (unsigned long long)f->seq, (unsigned long long)h->rx_seq);
    h->rx_seq++;
    if (f->type != MK_F_HELLO && f->type != MK_F_ERROR) {
        if (!h->hello_seen)
            return bad(h, "2.1", "%s frame before HELLO: HELLO is the first frame on every connection",
                       mk_ftype_name(f->type));
        if (!h->hello_ack_dlv)
            return bad(h, "8.2", "%s frame before the HELLO_ACK was received", mk_ftype_name(f->type));
    }
    if (h->error_dlv && f->type == MK_F_ERROR)
        return bad(h, "3.6", "the source answered the destination's ERROR with an ERROR");
    switch (f->type) {
    case MK_F_HELLO: rc = check_hello(h, f); break;
    case MK_F_LOG: rc = check_log(h, f); break;
    case MK_F_CP_BEGIN: rc = check_cp_begin(h, f); break;
    case MK_F_CP_REF: rc = check_cp_ref(h, f); break;
    case MK_F_CP_DATA: rc = check_cp_data(h, f, &resend); break;
    case MK_F_CP_COMMIT: rc = check_cp_commit(h, f); break;
    case MK_F_TREE_QUERY: break;
    case MK_F_ERROR: {
        mk_error_frame e;
        if (mk_error_decode(f, &e))
            return bad(h, "3.6", "malformed ERROR frame from the source");
        h->src_error = 1;
        h->src_error_code = e.code;
        mkc_log(h->c, "the source sent ERROR %s", mk_errname(e.code));
        return 0; /* not for the engine: the session is over */
    }
    default:
        return bad(h, "3.7", "frame type 0x%02x is not one a source sends", f->type);
    }
    if (rc)
        return rc;
    if (h->stop_feed)
        return 0;
    /* Stimulus: the destination ends the session with an ERROR frame. */
    if (h->error_on_type == f->type && h->ftype[f->type] == h->error_nth) {
        mk_buf e;
        mk_buf_init(&e);
        mk_error_encode(&e, h->out_seq, h->error_code, "conformance runner: session ended");
        rc = queue_out(h, &e, MK_F_ERROR, 0, 0, 0);
        mk_buf_free(&e);
        h->stop_feed = h->close_after_tx = 1;
        mkc_log(h->c, "ERROR %s sent to the source", mk_errname(h->error_code));
        return rc;
    }
    /* Stimulus: the connection is lost here, with or without the frame. */
    for (int i = 0; i < h->ndrop; i++) {
        if (h->drop[i].type == f->type && h->drop[i].nth == h->ftype[f->type]) {
            if (h->drop[i].feed) {
                if (mk_dest_recv(h->d, raw, rawlen, mkc_now_ms()) || collect(h))
                    return h->failed ? -1 : bad(h, "3.4", "the destination refused the %s frame",
                                                mk_ftype_name(f->type));
            }
            mkc_log(h->c, "connection dropped at %s #%llu (%s)", mk_ftype_name(f->type),
                    (unsigned long long)h->drop[i].nth, h->drop[i].feed ? "delivered" : "lost");
            h->drops++;
            conn_end(h);
            return 1;
        }
    }
    if (resend && h->drop_on_resend) {
        h->drop_on_resend = 0;
        h->drops++;
        mkc_log(h->c, "connection dropped at the first NAK resend");
        conn_end(h);
        return 1;
    }
    const uint8_t *feed = raw;
    size_t feedlen = rawlen;
    mk_buf tmp;
    mk_buf_init(&tmp);
    if (f->type == MK_F_CP_REF && h->nak_mode && h->nak_done < h->nak_max) {
        if (nak_rewrite(h, f, &tmp)) {
            mk_buf_free(&tmp);
            return -1;
        }
        feed = mk_buf_peek(&tmp);
        feedlen = mk_buf_len(&tmp);
    }
    rc = mk_dest_recv(h->d, feed, feedlen, mkc_now_ms());
    mk_buf_free(&tmp);
    int crc = collect(h);
    if (crc)
        return -1;
    if (rc)
        return bad(h, "3.4", "the reference destination refused the source's %s frame: %s",
                   mk_ftype_name(f->type), mk_errname(rc));
    if (f->type == MK_F_LOG && h->log_gap_ms)
        h->rx_pause_until = mkc_now_ms() + (uint64_t)h->log_gap_ms;
    if (f->type == MK_F_CP_COMMIT && h->hold_until_commit) {
        h->hold_until_commit = 0;
        h->hold = 0;
    }
    return 0;
}

/* Frames buffered from the connection, as far as no pause stops them. */
static int process_rx(sh *h)
{
    while (h->fd >= 0 && !h->failed && mkc_now_ms() >= h->rx_pause_until) {
        mk_frame f;
        size_t used;
        int rc = mk_frame_decode(mk_buf_peek(&h->rx), mk_buf_len(&h->rx), MK_MAX_PAYLOAD, MK_FRAME_MAGIC,
                                 &f, &used);
        if (rc == MK_ETRUNC)
            return 0;
        if (rc)
            return bad(h, "3.4", "malformed frame from the source on connection %d: %s "
                       "(3.2: the checksum covers the bytes as sent)", h->conns, mk_errname(rc));
        uint8_t *copy = malloc(used);
        if (!copy)
            return harness(h, "input", MK_ENOMEM);
        memcpy(copy, mk_buf_peek(&h->rx), used);
        mk_buf_consume(&h->rx, used);
        mk_frame g = f;
        g.payload = copy + MK_HDR_LEN;
        rc = on_src_frame(h, &g, copy, used);
        free(copy);
        if (rc)
            return rc < 0 ? -1 : 0;
    }
    return h->failed ? -1 : 0;
}

/* ---- the IUT's stdout ------------------------------------------------------- */

static int on_line(sh *h, const char *line)
{
    unsigned long long n;
    char name[64], extra;
    mkc_log(h->c, "stdout: %s", line);
    if (sscanf(line, "ack %llu%c", &n, &extra) == 1 && !strncmp(line, "ack ", 4)) {
        if (n != h->acks + 1)
            return bad(h, "10.2", "'ack %llu' after 'ack %llu': each write is acknowledged exactly once, "
                       "in increasing order", n, (unsigned long long)h->acks);
        if (n > h->nw)
            return bad(h, "10.2", "'ack %llu' but the script has %zu writes", n, h->nw);
        if (h->mode == MK_MODE_SYNC) {
            const wr *w = &h->w[n - 1];
            const piece *last = &h->p[w->first_piece + w->npieces - 1];
            if (!last->seen || last->tid > h->ack_tid)
                return bad(h, "5.1", "sync mode: 'ack %llu' before a LOG_ACK covering its transfer%s was "
                           "sent (%s %llu; LOG_ACK sent up to tid %llu)", n, w->npieces > 1 ? "s" : "",
                           last->seen ? "its last transfer has tid" : "its last transfer not yet received, piece",
                           (unsigned long long)(last->seen ? last->tid : w->first_piece + w->npieces),
                           (unsigned long long)h->ack_tid);
        }
        h->acks = n;
        return 0;
    }
    if (sscanf(line, "cp-ack %llu%c", &n, &extra) == 1 && !strncmp(line, "cp-ack ", 7)) {
        if (n != h->cpacks + 1)
            return bad(h, "10.2", "'cp-ack %llu' after 'cp-ack %llu'", n, (unsigned long long)h->cpacks);
        if (n > h->ncp)
            return bad(h, "10.2", "'cp-ack %llu' but the script has %zu cp lines", n, h->ncp);
        if (h->cp_ack_bad[n])
            return bad(h, "7.5", "'cp-ack %llu' for a CP_ACK whose %s was wrong: the source must refuse it",
                       n, h->cp_ack_what == 1 ? "digest" : "napplied");
        if (h->cp_dlv < n)
            return bad(h, "7.5", "'cp-ack %llu' before the destination acknowledged CP %llu", n, n);
        if (h->cp_checked < n)
            return bad(h, "9 I1", "'cp-ack %llu' but the mirror was never verified for CP %llu", n, n);
        h->cpacks = n;
        return 0;
    }
    if (sscanf(line, "error %63s%c", name, &extra) == 1 && !strncmp(line, "error MK_", 9)) {
        snprintf(h->errline, sizeof h->errline, "%s", name);
        if (!h->expect_error)
            return bad(h, "10.2", "the source reported 'error %s'", name);
        return 0;
    }
    return bad(h, "10.2", "unexpected stdout line '%.80s' (only ack N, cp-ack K and error MK_NAME)", line);
}

static int process_lines(sh *h)
{
    for (;;) {
        const uint8_t *p = mk_buf_peek(&h->sout);
        size_t n = mk_buf_len(&h->sout);
        const uint8_t *nl = n ? memchr(p, '\n', n) : NULL;
        if (!nl && !(h->stdout_eof && n))
            return 0;
        size_t k = nl ? (size_t)(nl - p) : n;
        char line[256];
        size_t m = k < sizeof line - 1 ? k : sizeof line - 1;
        memcpy(line, p, m);
        line[m] = 0;
        if (m && line[m - 1] == '\r')
            line[m - 1] = 0;
        mk_buf_consume(&h->sout, nl ? k + 1 : k);
        if (on_line(h, line))
            return -1;
    }
}

/* ---- the loop --------------------------------------------------------------- */

static int tx_allowed(const sh *h)
{
    return !h->hold && mkc_now_ms() >= h->hold_until;
}

/* One round of poll over everything, at most ms long. */
static int pump(sh *h, int ms)
{
    struct pollfd pf[5];
    int np = 0, ilis = -1, iconn = -1, iout = -1, iin = -1;
    uint64_t now = mkc_now_ms();
    if (h->failed)
        return -1;
    if (h->fd >= 0 && process_rx(h))
        return -1;
    if (h->hold_until > now && h->hold_until - now < (uint64_t)ms)
        ms = (int)(h->hold_until - now);
    if (h->rx_pause_until > now && h->rx_pause_until - now < (uint64_t)ms)
        ms = (int)(h->rx_pause_until - now);
    pf[np] = (struct pollfd){h->lfd, POLLIN, 0};
    ilis = np++;
    if (h->fd >= 0) {
        short ev = 0;
        if (now >= h->rx_pause_until)
            ev |= POLLIN;
        if (mk_buf_len(&h->tx) && tx_allowed(h))
            ev |= POLLOUT;
        pf[np] = (struct pollfd){h->fd, ev, 0};
        iconn = np++;
    }
    if (!h->stdout_eof) {
        pf[np] = (struct pollfd){mkc_proc_stdout(h->proc), POLLIN, 0};
        iout = np++;
    }
    if (mkc_proc_stdin(h->proc) >= 0 && (mk_buf_len(&h->sin) || h->close_stdin)) {
        pf[np] = (struct pollfd){mkc_proc_stdin(h->proc), POLLOUT, 0};
        iin = np++;
    }
    if (poll(pf, (nfds_t)np, ms < 0 ? 0 : ms) < 0 && errno != EINTR)
        return harness(h, "poll", MK_EIO);
    uint8_t buf[65536];
    if (iout >= 0 && pf[iout].revents) {
        ssize_t r = read(mkc_proc_stdout(h->proc), buf, sizeof buf);
        if (r > 0) {
            if (mk_buf_append(&h->sout, buf, (size_t)r))
                return harness(h, "stdout", MK_ENOMEM);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            h->stdout_eof = 1;
        }
        if (process_lines(h))
            return -1;
    }
    if (iconn >= 0 && h->fd >= 0 && (pf[iconn].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t r = read(h->fd, buf, sizeof buf);
        if (r > 0) {
            if (mk_buf_append(&h->rx, buf, (size_t)r))
                return harness(h, "input", MK_ENOMEM);
            if (process_rx(h))
                return -1;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            if (process_rx(h))
                return -1;
            mkc_log(h->c, "connection %d closed by the source", h->conns);
            conn_end(h);
        }
    }
    if (iconn >= 0 && h->fd >= 0 && (pf[iconn].revents & POLLOUT) && mk_buf_len(&h->tx)) {
        ssize_t w = write(h->fd, mk_buf_peek(&h->tx), mk_buf_len(&h->tx));
        if (w > 0) {
            mk_buf_consume(&h->tx, (size_t)w);
            h->tx_sent += (uint64_t)w;
            size_t k = 0;
            while (k < h->nmarks && h->marks[k].end <= h->tx_sent)
                delivered(h, &h->marks[k++]);
            memmove(h->marks, h->marks + k, (h->nmarks - k) * sizeof *h->marks);
            h->nmarks -= k;
            if (!mk_buf_len(&h->tx) && h->close_after_tx) {
                mkc_log(h->c, "the destination closes the connection after its ERROR");
                conn_end(h);
            }
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_end(h);
        }
    }
    if (pf[ilis].revents & POLLIN) {
        if (on_accept(h))
            return -1;
    }
    if (iin >= 0 && pf[iin].revents) {
        int fd = mkc_proc_stdin(h->proc);
        if (mk_buf_len(&h->sin)) {
            ssize_t w = write(fd, mk_buf_peek(&h->sin), mk_buf_len(&h->sin));
            if (w > 0)
                mk_buf_consume(&h->sin, (size_t)w);
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                mk_buf_clear(&h->sin); /* the IUT closed its stdin: it exited */
        }
        if (!mk_buf_len(&h->sin) && h->close_stdin)
            mkc_proc_close_stdin(h->proc);
    }
    if (h->stdout_eof && !h->exited && mkc_proc_exited(h->proc, &h->code)) {
        h->exited = 1;
        mkc_log(h->c, "the source exited with code %d", h->code);
    }
    return h->failed ? -1 : 0;
}

typedef int (*cond_fn)(sh *h, uint64_t arg);

/* Pumps until cond holds; the IUT's exit, a violation or the timeout ends
 * the wait (an exit with 127 makes the case UNSUPPORTED, 10.3). */
static int sh_until(sh *h, cond_fn cond, uint64_t arg, int timeout_ms, const char *what)
{
    uint64_t end = mkc_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (h->failed)
            return -1;
        if (cond(h, arg))
            return 0;
        if (h->exited) {
            if (h->code == 127) {
                mkc_unsupported(h->c, "the implementation exited 127 (unsupported, 10.3)");
                h->failed = 1;
                return -1;
            }
            mkc_fail(h->c, "the source exited with code %d while the runner waited for %s%s%s", h->code,
                     what, h->errline[0] ? "; it reported " : "", h->errline);
            h->failed = 1;
            return -1;
        }
        if (mkc_now_ms() >= end) {
            mkc_fail(h->c, "timed out after %d ms waiting for %s", timeout_ms, what);
            h->failed = 1;
            return -1;
        }
        if (pump(h, 20))
            return -1;
    }
}

static int c_acks(sh *h, uint64_t n) { return h->acks >= n; }
static int c_cpacks(sh *h, uint64_t n) { return h->cpacks >= n; }
static int c_hello_ack(sh *h, uint64_t n) { (void)n; return h->hello_ack_dlv; }
static int c_exited(sh *h, uint64_t n) { (void)n; return h->exited; }

static int wait_acks(sh *h, uint64_t n)
{
    char what[64];
    snprintf(what, sizeof what, "'ack %llu'", (unsigned long long)n);
    return sh_until(h, c_acks, n, mkc_timeout_ms(h->c), what);
}

static int wait_cpack(sh *h, uint64_t k)
{
    char what[64];
    snprintf(what, sizeof what, "'cp-ack %llu'", (unsigned long long)k);
    return sh_until(h, c_cpacks, k, mkc_timeout_ms(h->c), what);
}

/* Pumps for ms, to watch what the IUT does meanwhile. */
static int watch(sh *h, int ms)
{
    uint64_t end = mkc_now_ms() + (uint64_t)ms;
    while (mkc_now_ms() < end)
        if (pump(h, (int)(end - mkc_now_ms())))
            return -1;
    return h->failed ? -1 : 0;
}

/* The end of a run: the exit code of 10.3 and, after an exit 0, what
 * `quit` promises (10.2): every write acknowledged, every CP acknowledged,
 * all output sent, no retained transfer left unsent. */
static int sh_finish(sh *h, int want_code, const char *want_error)
{
    if (sh_until(h, c_exited, 0, mkc_timeout_ms(h->c), "the source to exit"))
        return -1;
    if (h->code == 127) {
        mkc_unsupported(h->c, "the implementation exited 127 (unsupported, 10.3)");
        h->failed = 1;
        return -1;
    }
    if (want_error && strcmp(h->errline, want_error))
        return bad(h, "10.2", "the source printed %s%s, want 'error %s'",
                   h->errline[0] ? "error " : "no error line", h->errline, want_error);
    if (h->code != want_code)
        return bad(h, "10.3", "exit code %d, want %d%s%s", h->code, want_code,
                   h->errline[0] ? " after error " : "", h->errline);
    if (want_code != 0)
        return 0;
    if (h->acks != h->nw)
        return bad(h, "10.2", "exit 0 after %llu of %zu writes were acknowledged",
                   (unsigned long long)h->acks, h->nw);
    if (h->cpacks != h->ncp)
        return bad(h, "10.2", "exit 0 after %llu of %zu CPs were acknowledged",
                   (unsigned long long)h->cpacks, h->ncp);
    if (h->next_piece != h->np)
        return bad(h, "10.2", "exit 0, but only %zu of the %zu transfers the writes need were sent "
                   "(quit waits until all output is sent)", h->next_piece, h->np);
    if (h->iresend < h->nresend)
        return bad(h, "8.2", "exit 0, but the retained transfer %llu was never resent",
                   (unsigned long long)h->resend[h->iresend]);
    return 0;
}

/* ---- setting up and tearing down ---------------------------------------------- */

static int sh_listen(sh *h)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return harness(h, "socket", MK_EIO);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 8) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return harness(h, "listening on loopback", MK_EIO);
    }
    h->lfd = fd;
    h->port = ntohs(a.sin_port);
    return 0;
}

static int sh_spawn(sh *h)
{
    char conn[32], nb[32], bs[16], vid[32], sid[32];
    snprintf(conn, sizeof conn, "127.0.0.1:%u", h->port);
    snprintf(nb, sizeof nb, "%llu", (unsigned long long)h->nblocks);
    snprintf(bs, sizeof bs, "%u", h->bs);
    /* 10.2: X and Y are decimal or 0x hexadecimal; one of each. */
    snprintf(vid, sizeof vid, "0x%llx", (unsigned long long)h->vid);
    snprintf(sid, sizeof sid, "%llu", (unsigned long long)h->sid);
    const char *args[] = {"--connect", conn, "--blocks", nb, "--block-size", bs, "--mode",
                          mode_arg(h->mode), "--volume-id", vid, "--source-id", sid, "--script", "-",
                          NULL};
    int rc = mkc_spawn(h->c, args, &h->proc);
    return rc ? harness(h, "starting the source", rc) : 0;
}

static void sh_free(sh *h)
{
    if (h->fd >= 0)
        close(h->fd);
    if (h->lfd >= 0)
        close(h->lfd);
    engine_close(h);
    for (size_t i = 0; i < h->nw; i++)
        free(h->w[i].data);
    for (size_t i = 0; i < h->ncp; i++) {
        free(h->cps[i].img);
        free(h->cps[i].dirty);
        free(h->cps[i].refp);
        free(h->cps[i].slot);
    }
    free(h->w);
    free(h->p);
    free(h->cps);
    free(h->vol);
    free(h->ddirty);
    free(h->dpiece);
    free(h->dslot);
    free(h->st);
    free(h->naked);
    free(h->cp_ack_bad);
    free(h->marks);
    free(h->resend);
    mk_buf_free(&h->sin);
    mk_buf_free(&h->sout);
    mk_buf_free(&h->rx);
    mk_buf_free(&h->tx);
}

typedef int (*body_fn)(sh *h);

/* One run of a case: model, listener, engine, IUT; the body drives it. */
static mkc_verdict sh_run(mkc *c, const shcfg *k, body_fn body)
{
    sh *h = calloc(1, sizeof *h);
    if (!h)
        return mkc_error(c, "MK_ENOMEM");
    h->c = c;
    h->mode = k->mode;
    h->nblocks = k->nblocks;
    h->bs = k->bs;
    h->vid = 0x6d6b636f6e66ull + k->nblocks; /* arbitrary, but not the CLI default */
    h->sid = 0x5eed0000ull + k->bs;
    h->lfd = h->fd = -1;
    mk_buf_init(&h->sin);
    mk_buf_init(&h->sout);
    mk_buf_init(&h->rx);
    mk_buf_init(&h->tx);
    size_t n = (size_t)k->nblocks;
    h->vol = calloc(n, k->bs);
    h->ddirty = calloc(n, 1);
    h->dpiece = calloc(n, sizeof *h->dpiece);
    h->dslot = calloc(n, sizeof *h->dslot);
    h->st = calloc(n, 1);
    h->naked = calloc(n, 1);
    h->cp_ack_bad = calloc(1, 1);
    if (!h->vol || !h->ddirty || !h->dpiece || !h->dslot || !h->st || !h->naked || !h->cp_ack_bad)
        harness(h, "model", MK_ENOMEM);
    if (!h->failed && !sh_listen(h) && !engine_open(h) && !sh_spawn(h))
        body(h);
    mkc_verdict v = h->failed ? MKC_FAIL : MKC_PASS;
    sh_free(h);
    free(h);
    return v;
}

#define CASE(name, md, nb, bsz)                                                  \
    static int body_##name(sh *h);                                               \
    static mkc_verdict name(mkc *c)                                              \
    {                                                                            \
        static const shcfg k = {md, nb, bsz};                                    \
        return sh_run(c, &k, body_##name);                                       \
    }                                                                            \
    static int body_##name(sh *h)

#define TRY(x)                                                                   \
    do {                                                                         \
        if ((x) || h->failed)                                                    \
            return -1;                                                           \
    } while (0)

/* ---- scripts the cases share ------------------------------------------------ */

/* SPEC 4, 5, 6.3, 7 and I1 together.  A mixed workload in three CPs:
 * whole blocks, unaligned multi-block writes, partial writes, overwrites,
 * and a block written wholly then partly, each CP verified; then quit. */
static int mixed_script(sh *h)
{
    uint32_t B = h->bs;
    TRY(sh_wpat(h, 0, B, 1));                    /* whole: REF */
    TRY(sh_wpat(h, 2 * (uint64_t)B + 7, 2 * B + 100, 2)); /* head, slot, tail */
    TRY(sh_wpat(h, 5 * (uint64_t)B, 3 * B, 3));  /* three whole blocks */
    TRY(sh_wpat(h, 6 * (uint64_t)B + 11, 20, 4)); /* partial over a whole */
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 9 * (uint64_t)B + B - 1, 2, 5)); /* straddles two blocks */
    TRY(sh_wpat(h, 0, B, 6));                       /* whole again */
    TRY(sh_wpat(h, 12 * (uint64_t)B, B / 2, 7));     /* tail only */
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 3 * (uint64_t)B, B, 8));
    TRY(sh_wpat(h, 3 * (uint64_t)B, B, 9));          /* whole then whole */
    TRY(sh_wpat(h, (h->nblocks - 1) * B, B, 10));    /* the last block */
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(wait_cpack(h, 3));
    return sh_finish(h, 0, NULL);
}

/* ---- valid traffic in every mode and several block sizes ---------------------- */

/* Sections 5.1 (sync), 5.2 (semi-sync) and 5.3 (async), each at two block
 * sizes: the whole stream is judged (4.2 transfers, 4.5 IDs, 6.3 REFs,
 * 7.1-7.4 CP records) and the mirror is verified after every CP (I1).  In
 * the logged modes a wholly written block must go as a REF (6.3). */

CASE(case_sync_b4096, MK_MODE_SYNC, 64, 4096) { h->require_ref = 1; return mixed_script(h); }
CASE(case_sync_b512, MK_MODE_SYNC, 64, 512) { h->require_ref = 1; return mixed_script(h); }
CASE(case_semi_b65536, MK_MODE_SEMI, 16, 65536) { h->require_ref = 1; return mixed_script(h); }
CASE(case_semi_b512, MK_MODE_SEMI, 64, 512) { h->require_ref = 1; return mixed_script(h); }
CASE(case_async_b4096, MK_MODE_ASYNC, 64, 4096) { return mixed_script(h); }
CASE(case_async_b65536, MK_MODE_ASYNC, 16, 65536) { return mixed_script(h); }

/* 2.1: HELLO carries the arguments: volume_id given in hex, source_id in
 * decimal, and is the first frame of the connection, with seq 0. */
CASE(case_hello_fields, MK_MODE_SEMI, 100, 1024)
{
    TRY(sh_until(h, c_hello_ack, 0, mkc_timeout_ms(h->c), "HELLO"));
    TRY(sh_wpat(h, 100, 50, 1));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* ---- REF qualification (6.3) -------------------------------------------------- */

/* Aligned whole-block writes: each block goes as a REF naming its slot. */
CASE(case_ref_whole, MK_MODE_SYNC, 64, 4096)
{
    h->require_ref = 1;
    TRY(sh_wpat(h, 0, 4 * 4096, 1));
    TRY(sh_wpat(h, 10 * 4096, 4096, 2));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* Whole, then partial, in one interval: CP_DATA with the CP-image content,
 * never a REF to the slot that no longer holds the block. */
CASE(case_ref_whole_then_partial, MK_MODE_SEMI, 64, 4096)
{
    h->require_ref = 1;
    TRY(sh_wpat(h, 4096, 3 * 4096, 1));
    TRY(sh_wpat(h, 2 * 4096 + 100, 10, 2));
    TRY(sh_wpat(h, 3 * 4096 + 4000, 200, 3)); /* partial over blocks 3 and 4 */
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* Partial, then whole: a REF to the later transfer. */
CASE(case_ref_partial_then_whole, MK_MODE_SYNC, 64, 512)
{
    h->require_ref = 1;
    TRY(sh_wpat(h, 5 * 512 + 3, 9, 1));
    TRY(sh_wpat(h, 5 * 512, 512, 2));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* Whole, then whole: a REF to the later transfer, with its hash. */
CASE(case_ref_whole_then_whole, MK_MODE_SEMI, 64, 4096)
{
    h->require_ref = 1;
    TRY(sh_wpat(h, 7 * 4096, 2 * 4096, 1));
    TRY(sh_wpat(h, 8 * 4096, 4096, 2));
    TRY(sh_wpat(h, 6 * 4096, 2 * 4096, 3));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* A write over several CPs' worth of history: blocks REF'd in CP 1 and only
 * partly rewritten in CP 2 go as DATA then, with the CP 2 content. */
CASE(case_ref_across_cps, MK_MODE_SYNC, 32, 4096)
{
    h->require_ref = 1;
    TRY(sh_wpat(h, 0, 8 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 2 * 4096 + 1, 1, 2));
    TRY(sh_wpat(h, 4 * 4096, 4096, 3));
    TRY(sh_cp(h));
    TRY(sh_cp(h)); /* an empty CP */
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 4.2: a write longer than MK_MAX_TRANSFER_DATA is split at block
 * boundaries into ascending transfers; REFs name the right piece. */
CASE(case_split_large_write, MK_MODE_SEMI, 512, 4096)
{
    h->require_ref = 1;
    TRY(sh_wpat(h, 4096 + 123, MK_MAX_TRANSFER_DATA + 3 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 7.1: with more than 1024 REFs, REFs go first in ascending block order,
 * 1024 per CP_REF frame, then DATA (a SHOULD). */
CASE(case_cp_order, MK_MODE_SEMI, 2048, 512)
{
    TRY(sh_wpat(h, 7, 100, 1));
    TRY(sh_wpat(h, 512, 1100 * 512, 2));
    TRY(sh_wpat(h, 1500 * 512 + 9, 40, 3));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (h->order_bad[0])
        return bad(h, "7.1", "%s", h->order_bad);
    if (h->nref_frames != 2)
        return bad(h, "7.1", "1100 REFs went in %llu CP_REF frames; batched up to 1024 per frame "
                   "they take 2", (unsigned long long)h->nref_frames);
    return 0;
}

/* 7.1: a CP with no records is still begun, committed and acknowledged. */
CASE(case_cp_empty, MK_MODE_SYNC, 16, 4096)
{
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* ---- transfer IDs (4.5) ----------------------------------------------------------- */

/* Unique and strictly increasing for the life of the pairing: across CPs
 * (an implementation must not restart them when nothing is retained). */
CASE(case_tid_across_cps, MK_MODE_SYNC, 64, 4096)
{
    for (int k = 0; k < 3; k++) {
        TRY(sh_wpat(h, (uint64_t)k * 4096, 4096, 10u + (uint32_t)k));
        TRY(sh_wpat(h, 20 * 4096 + (uint64_t)k * 100, 50, 20u + (uint32_t)k));
        TRY(sh_cp(h));
    }
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* ---- acknowledgement rules (5) --------------------------------------------------- */

/* 5.1: no `ack N` before a LOG_ACK covering the write was sent; every
 * destination answer is held back 300 ms, so an early ack shows. */
CASE(case_sync_ack_waits, MK_MODE_SYNC, 64, 4096)
{
    h->hold_ms = 300;
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_wpat(h, 8192 + 5, 10, 2));
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 4096, 4096, 3));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 5.1: a write split into several transfers is acknowledged only after
 * the LOG_ACK of its last one; the runner waits 300 ms between the LOG
 * frames it takes, so an ack after the first piece shows. */
CASE(case_sync_ack_split_write, MK_MODE_SYNC, 512, 4096)
{
    h->log_gap_ms = 300;
    TRY(sh_wpat(h, 0, MK_MAX_TRANSFER_DATA + 2 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 5.1: in sync mode a CP starts only when every transfer is acknowledged;
 * `write` and `cp` arrive together and the LOG_ACK is held 300 ms. */
CASE(case_sync_cp_waits, MK_MODE_SYNC, 64, 4096)
{
    TRY(sh_until(h, c_hello_ack, 0, mkc_timeout_ms(h->c), "HELLO_ACK delivered"));
    h->hold_ms = 300;
    TRY(sh_wpat(h, 0, 2 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 4096 * 3, 4096, 2));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 5.2: semi-sync acknowledges once the write is applied locally: with
 * every answer of the destination held back, all acks still come. */
CASE(case_semi_ack_local, MK_MODE_SEMI, 64, 4096)
{
    TRY(sh_until(h, c_hello_ack, 0, mkc_timeout_ms(h->c), "HELLO_ACK delivered"));
    h->hold = 1;
    for (uint32_t i = 0; i < 6; i++)
        TRY(sh_wpat(h, (uint64_t)i * 5000, 3000, i + 1));
    TRY(wait_acks(h, 6));
    h->hold = 0;
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 5.3: async acknowledges at once, sends no LOG frames, and its CP is all
 * DATA with covers_tid 0 (the checker refuses anything else). */
CASE(case_async_ack_local, MK_MODE_ASYNC, 64, 4096)
{
    TRY(sh_until(h, c_hello_ack, 0, mkc_timeout_ms(h->c), "HELLO_ACK delivered"));
    h->hold = 1;
    for (uint32_t i = 0; i < 5; i++)
        TRY(sh_wpat(h, (uint64_t)i * 4096, 4096, i + 1));
    TRY(wait_acks(h, 5));
    h->hold = 0;
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 5.2: the lag bound.  With LOG_ACKs held back, 8 writes of 1 MiB fill
 * the default 8 MiB bound; the 9th must wait (never be reported, 10.2). */
CASE(case_semi_lag_bound, MK_MODE_SEMI, 160, 65536)
{
    TRY(sh_until(h, c_hello_ack, 0, mkc_timeout_ms(h->c), "HELLO_ACK delivered"));
    h->hold = 1;
    for (uint32_t i = 0; i < 9; i++)
        TRY(sh_wpat(h, (uint64_t)i * MK_MAX_TRANSFER_DATA, MK_MAX_TRANSFER_DATA, i + 1));
    TRY(wait_acks(h, 8));
    TRY(watch(h, 400));
    if (h->acks > 8 || h->log_bytes > SH_MAX_LAG)
        return bad(h, "5.2", "with 8 MiB unacknowledged the source %s (ack lines: %llu, LOG bytes: %llu)",
                   h->acks > 8 ? "acknowledged a 9th write" : "logged past the lag bound",
                   (unsigned long long)h->acks, (unsigned long long)h->log_bytes);
    h->hold = 0;
    TRY(wait_acks(h, 9));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 10.2: each `ack N` exactly once, in increasing order, over many writes. */
CASE(case_acks_in_order, MK_MODE_SEMI, 256, 512)
{
    for (uint32_t i = 0; i < 60; i++)
        TRY(sh_wpat(h, (uint64_t)(i * 37 % 250) * 512 + (i % 3) * 100, 300 + (i % 5) * 200, i + 1));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 10.2: at quit the source waits for every acknowledgement before it
 * exits 0 (sync mode, the destination slowed down). */
CASE(case_quit_waits, MK_MODE_SYNC, 64, 4096)
{
    h->hold_ms = 200;
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_wpat(h, 4096, 100, 2));
    TRY(sh_wpat(h, 3 * 4096, 4096, 3));
    TRY(sh_quit(h));
    return sh_finish(h, 0, NULL);
}

/* 10.2: EOF on stdin ends the script like quit. */
CASE(case_eof_ends, MK_MODE_SEMI, 64, 4096)
{
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 4096, 7, 2));
    h->close_stdin = 1;
    return sh_finish(h, 0, NULL);
}

/* 10.2: a malformed script line is MK_EUSAGE, exit 2. */
CASE(case_script_malformed, MK_MODE_SEMI, 64, 4096)
{
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 100, 1));
    TRY(sh_line(h, "write 0 abc\n"));
    return sh_finish(h, 2, "MK_EUSAGE");
}

/* ---- NAK and DATA resend (8.1) ------------------------------------------------- */

/* A REF the destination cannot resolve is NAKed at once; the source sends
 * the block as CP_DATA with its CP-image content. */
CASE(case_nak_resend, MK_MODE_SYNC, 64, 4096)
{
    h->nak_mode = 1;
    h->nak_max = 1;
    TRY(sh_wpat(h, 0, 3 * 4096, 1));
    TRY(sh_wpat(h, 4096 * 10 + 5, 5, 2));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (!h->naks_dlv)
        return bad(h, "8.1", "no REF was NAKed: the case needs one (did the source send REFs?)");
    return 0;
}

/* The NAK arrives after CP_COMMIT (the destination's answers are held
 * until then): the resend must still be sent and accepted. */
CASE(case_nak_after_commit, MK_MODE_SEMI, 64, 4096)
{
    TRY(sh_until(h, c_hello_ack, 0, mkc_timeout_ms(h->c), "HELLO_ACK delivered"));
    h->nak_mode = 1;
    h->nak_max = 2;
    TRY(sh_wpat(h, 4096, 4 * 4096, 1));
    TRY(sh_wpat(h, 0, 10, 2));
    TRY(sh_until(h, c_acks, 2, mkc_timeout_ms(h->c), "'ack 2'"));
    h->hold = h->hold_until_commit = 1;
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 4096 * 2, 4096, 3));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (h->naks_dlv < 2)
        return bad(h, "8.1", "only %llu REFs were NAKed; the case needs 2", (unsigned long long)h->naks_dlv);
    return 0;
}

/* Every resolution failure is a NAK reason (MK_ENOTID, MK_ESLOT,
 * MK_ETID); the reason is informational and the answer always DATA. */
static int nak_reason_script(sh *h, int mode)
{
    h->nak_mode = mode;
    h->nak_max = 3;
    TRY(sh_wpat(h, 0, 5 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_wpat(h, 2 * 4096, 4096, 2));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (h->naks_dlv < 3)
        return bad(h, "8.1", "only %llu REFs were NAKed; the case needs 3", (unsigned long long)h->naks_dlv);
    return 0;
}
CASE(case_nak_enotid, MK_MODE_SYNC, 64, 4096) { return nak_reason_script(h, 2); }
CASE(case_nak_eslot, MK_MODE_SEMI, 64, 4096) { return nak_reason_script(h, 3); }
CASE(case_nak_etid, MK_MODE_SYNC, 64, 4096) { return nak_reason_script(h, 4); }

/* 8.1 with 8.2: a NAKed block stays DATA when the CP is resent after the
 * connection is lost at its resend. */
CASE(case_nak_then_reconnect, MK_MODE_SYNC, 64, 4096)
{
    h->nak_mode = 1;
    h->nak_max = 1;
    h->drop_on_resend = 1;
    TRY(sh_wpat(h, 0, 4 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (!h->drops)
        return bad(h, "8.1", "the source never resent the NAKed block as CP_DATA");
    return 0;
}

/* ---- reconnect and resume (8.2) --------------------------------------------------- */

static int drop_script(sh *h, int ncp)
{
    TRY(sh_wpat(h, 0, 2 * h->bs, 1));
    TRY(sh_wpat(h, 5 * (uint64_t)h->bs + 3, 2 * h->bs, 2));
    TRY(sh_wpat(h, 9 * (uint64_t)h->bs, 100, 3));
    TRY(sh_cp(h));
    if (ncp > 1) {
        TRY(sh_wpat(h, 2 * (uint64_t)h->bs, h->bs, 4));
        TRY(sh_wpat(h, 0, 33, 5));
        TRY(sh_cp(h));
    }
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (h->drops < h->ndrop)
        return bad(h, "8.2", "only %d of the %d planned connection losses happened (the frames never came)",
                   h->drops, h->ndrop);
    return 0;
}

#define DROP(i, t, n, f) (h->drop[i] = (droppt){t, n, f}, h->ndrop = (i) + 1 > h->ndrop ? (i) + 1 : h->ndrop)

/* Lost right after HELLO, before HELLO_ACK: the next HELLO has seq 0. */
CASE(case_reconnect_after_hello, MK_MODE_SYNC, 64, 4096)
{
    DROP(0, MK_F_HELLO, 1, 0);
    return drop_script(h, 1);
}

/* A LOG lost with the connection: resent with the same tid and bytes,
 * and (sync) acknowledged to the client only after that. */
CASE(case_reconnect_log_lost, MK_MODE_SYNC, 64, 4096)
{
    DROP(0, MK_F_LOG, 2, 0);
    return drop_script(h, 2);
}

/* A LOG the destination stored but whose LOG_ACK was lost: HELLO_ACK
 * durable_tid acknowledges it, and it must not be resent. */
CASE(case_reconnect_log_ack_lost, MK_MODE_SYNC, 64, 4096)
{
    DROP(0, MK_F_LOG, 2, 1);
    return drop_script(h, 2);
}

/* Semi-sync: several LOGs in flight when the connection goes. */
CASE(case_reconnect_semi_logs, MK_MODE_SEMI, 64, 4096)
{
    DROP(0, MK_F_LOG, 2, 1);
    DROP(1, MK_F_LOG, 4, 0);
    return drop_script(h, 2);
}

/* Lost after CP_BEGIN: the CP is sent again in full, same number. */
CASE(case_reconnect_cp_begin, MK_MODE_SYNC, 64, 4096)
{
    DROP(0, MK_F_CP_BEGIN, 1, 1);
    return drop_script(h, 2);
}

/* Lost in the middle of a CP, after its REFs and after a DATA. */
CASE(case_reconnect_mid_cp, MK_MODE_SEMI, 64, 512)
{
    DROP(0, MK_F_CP_REF, 1, 1);
    DROP(1, MK_F_CP_DATA, 2, 1);
    return drop_script(h, 2);
}

/* Lost with the CP_COMMIT itself: the destination never committed it. */
CASE(case_reconnect_commit_lost, MK_MODE_SYNC, 64, 4096)
{
    DROP(0, MK_F_CP_COMMIT, 1, 0);
    return drop_script(h, 2);
}

/* The CP_ACK lost: the destination committed CP 1, HELLO_ACK last_cp = 1,
 * so the source counts it as acknowledged and goes on with CP 2. */
CASE(case_reconnect_cp_ack_lost, MK_MODE_SYNC, 64, 4096)
{
    DROP(0, MK_F_CP_COMMIT, 1, 1);
    return drop_script(h, 2);
}

/* The same, but HELLO_ACK's last_digest is not CP 1's: MK_EDIGEST. */
CASE(case_reconnect_cp_ack_lost_digest, MK_MODE_SEMI, 64, 4096)
{
    DROP(0, MK_F_CP_COMMIT, 1, 1);
    h->hello_ack_conn = 2;
    h->hello_ack_what = 5;
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 2 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 1, "MK_EDIGEST");
}

/* Several losses in one run, in async mode too. */
CASE(case_reconnect_async, MK_MODE_ASYNC, 64, 4096)
{
    DROP(0, MK_F_HELLO, 2, 1);
    DROP(1, MK_F_CP_DATA, 2, 1);
    DROP(2, MK_F_CP_COMMIT, 2, 1);
    return drop_script(h, 2);
}

/* 8.3: the destination lost its whole log before any CP was acknowledged;
 * lost transfers are never referenced, covers_tid follows what it holds,
 * the CP verifies, and sync mode ends with MK_ELOGLOST. */
CASE(case_log_lost, MK_MODE_SYNC, 64, 4096)
{
    h->fresh_engine_conn = 2;
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 3 * 4096, 1));
    TRY(sh_wpat(h, 8 * 4096, 4096, 2));
    TRY(wait_acks(h, 2));
    /* Lose the connection; the destination comes back empty.  A source may
     * notice only when the next command makes it talk (the reference
     * blocks reading the script), so the cp goes with it.  CP 1's newest
     * transfer is lost: covers_tid must fall back to 0. */
    conn_end(h);
    TRY(sh_cp(h));
    TRY(wait_cpack(h, 1));
    if (h->conns < 2)
        return bad(h, "8.2", "CP 1 was acknowledged without a reconnect");
    TRY(sh_wpat(h, 4 * 4096, 4096, 3));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 1, "MK_ELOGLOST");
}

/* 3.5: sequence numbers restart at 0 on every connection. */
CASE(case_seq_restart, MK_MODE_SEMI, 64, 4096)
{
    DROP(0, MK_F_LOG, 3, 1);
    DROP(1, MK_F_CP_COMMIT, 1, 1);
    return drop_script(h, 2);
}

/* ---- errors from the destination (3.6, 8.5, 10.3) --------------------------------- */

static int error_script(sh *h, int32_t code, int want_exit)
{
    h->error_on_type = MK_F_LOG;
    h->error_nth = 2;
    h->error_code = code;
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_wpat(h, 4096, 4096, 2));
    TRY(sh_wpat(h, 8192, 4096, 3));
    /* The cp makes every mode wait for the destination, so the ERROR is
     * read before the script ends (a semi-sync quit need not read). */
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, want_exit, "MK_EREMOTE");
}
CASE(case_error_remote_eio, MK_MODE_SYNC, 64, 4096) { return error_script(h, MK_EIO, 3); }
CASE(case_error_remote_epeer, MK_MODE_SEMI, 64, 4096) { return error_script(h, MK_EPEER, 2); }
CASE(case_error_remote_ediverged, MK_MODE_SYNC, 64, 4096) { return error_script(h, MK_EDIVERGED, 1); }

/* 8.5: an ERROR whose code is damage (MK_ECHECKSUM) ends the session, not
 * the source: it resumes, and the run ends well. */
CASE(case_error_damage_resumes, MK_MODE_SYNC, 64, 4096)
{
    h->error_on_type = MK_F_LOG;
    h->error_nth = 2;
    h->error_code = MK_ECHECKSUM;
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_wpat(h, 4096, 4096, 2));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (h->conns < 2)
        return bad(h, "8.5", "the source never reconnected after the damage-code ERROR");
    return 0;
}

/* 8.5: damaged bytes from the destination (a LOG_ACK whose trailer does
 * not match) end the session, not the source. */
CASE(case_damaged_bytes_resume, MK_MODE_SYNC, 64, 4096)
{
    h->damage_log_ack = 2;
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_wpat(h, 4096, 4096, 2));
    TRY(sh_wpat(h, 3 * 4096, 10, 3));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    TRY(sh_finish(h, 0, NULL));
    if (h->conns < 2)
        return bad(h, "8.5", "the source never reconnected after the damaged LOG_ACK");
    if (h->src_error)
        return bad(h, "8.5", "the source sent ERROR on a connection it must deem broken");
    return 0;
}

/* ---- answers the source must refuse (2.2, 4.4, 7.5, 8.2) --------------------------- */

static int refuse_hello_ack(sh *h, int what, int want_exit, const char *err)
{
    h->hello_ack_conn = 1;
    h->hello_ack_what = what;
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_quit(h));
    return sh_finish(h, want_exit, err);
}
CASE(case_hello_ack_volume, MK_MODE_SYNC, 64, 4096) { return refuse_hello_ack(h, 1, 2, "MK_EVOLUME"); }
CASE(case_hello_ack_nblocks, MK_MODE_SEMI, 64, 4096) { return refuse_hello_ack(h, 6, 2, "MK_EVOLUME"); }
CASE(case_hello_ack_peer, MK_MODE_SYNC, 64, 4096) { return refuse_hello_ack(h, 2, 2, "MK_EPEER"); }
CASE(case_hello_ack_future_cp, MK_MODE_SYNC, 64, 4096) { return refuse_hello_ack(h, 3, 1, "MK_EDIVERGED"); }
CASE(case_hello_ack_future_tid, MK_MODE_SEMI, 64, 4096) { return refuse_hello_ack(h, 4, 1, "MK_EDIVERGED"); }

/* 4.4: a LOG_ACK for a tid never assigned is MK_ETID, fatal (exit 2). */
CASE(case_log_ack_future, MK_MODE_SYNC, 64, 4096)
{
    h->log_ack_future = 1;
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 4096, 1));
    TRY(sh_quit(h));
    return sh_finish(h, 2, "MK_ETID");
}

/* 7.5: a CP_ACK whose digest is not the CP's: MK_EDIGEST, exit 1, and no
 * `cp-ack` line for it. */
CASE(case_cp_ack_digest, MK_MODE_SYNC, 64, 4096)
{
    h->cp_ack_what = 1;
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 2 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 1, "MK_EDIGEST");
}

/* 7.5: a CP_ACK whose napplied is not the record count: MK_ECOUNT. */
CASE(case_cp_ack_count, MK_MODE_SEMI, 64, 4096)
{
    h->cp_ack_what = 2;
    h->expect_error = 1;
    TRY(sh_wpat(h, 0, 2 * 4096, 1));
    TRY(sh_cp(h));
    TRY(sh_quit(h));
    return sh_finish(h, 2, "MK_ECOUNT");
}

/* ---- the catalogue ---------------------------------------------------------------- */

const mkc_case mkc_source_cases[] = {
    {"src-sync-b4096", "5.1", MKC_MUST, "sync, B=4096: mixed writes over 3 CPs, stream checked, mirror verified per CP", case_sync_b4096},
    {"src-sync-b512", "5.1", MKC_MUST, "sync, B=512: mixed writes over 3 CPs, stream checked, mirror verified per CP", case_sync_b512},
    {"src-semi-b65536", "5.2", MKC_MUST, "semi-sync, B=65536: mixed writes over 3 CPs, mirror verified per CP", case_semi_b65536},
    {"src-semi-b512", "5.2", MKC_MUST, "semi-sync, B=512: mixed writes over 3 CPs, mirror verified per CP", case_semi_b512},
    {"src-async-b4096", "5.3", MKC_MUST, "async, B=4096: no LOG frames, all CP_DATA, covers_tid 0, mirror verified", case_async_b4096},
    {"src-async-b65536", "5.3", MKC_MUST, "async, B=65536: no LOG frames, all CP_DATA, covers_tid 0, mirror verified", case_async_b65536},
    {"src-hello-fields", "2.1", MKC_MUST, "HELLO first with seq 0, fields from --volume-id (hex), --source-id (decimal), --blocks, --block-size, --mode", case_hello_fields},
    {"src-ref-whole", "6.3", MKC_MUST, "wholly written blocks go as REFs naming (tid, slot) with H of the CP-image block", case_ref_whole},
    {"src-ref-whole-then-partial", "6.3", MKC_MUST, "whole then partial in one interval is CP_DATA with the CP-image content, not a REF", case_ref_whole_then_partial},
    {"src-ref-partial-then-whole", "6.3", MKC_MUST, "partial then whole is a REF to the later transfer", case_ref_partial_then_whole},
    {"src-ref-whole-then-whole", "6.3", MKC_MUST, "whole then whole is a REF to the later transfer", case_ref_whole_then_whole},
    {"src-ref-across-cps", "6.3", MKC_MUST, "descriptors restart at each CP; an empty CP is begun, committed, acknowledged", case_ref_across_cps},
    {"src-split-large-write", "4.2", MKC_MUST, "a write over 1 MiB is split at block boundaries into ascending transfers", case_split_large_write},
    {"src-cp-order", "7.1", MKC_SHOULD, "REFs first in ascending block order, 1024 per CP_REF frame, then DATA", case_cp_order},
    {"src-cp-empty", "7.1", MKC_MUST, "a CP with no records is begun, committed and acknowledged; CP numbers consecutive", case_cp_empty},
    {"src-tid-across-cps", "4.5", MKC_MUST, "transfer IDs unique and strictly increasing across CPs", case_tid_across_cps},
    {"src-sync-ack-waits", "5.1", MKC_MUST, "sync: no 'ack N' before the covering LOG_ACK was sent (answers held 300 ms)", case_sync_ack_waits},
    {"src-sync-ack-split-write", "5.1", MKC_MUST, "sync: a split write is acknowledged only after the LOG_ACK of its last transfer", case_sync_ack_split_write},
    {"src-sync-cp-waits", "5.1", MKC_MUST, "sync: no CP_BEGIN while a transfer is unacknowledged (LOG_ACK held 300 ms)", case_sync_cp_waits},
    {"src-semi-ack-local", "5.2", MKC_MUST, "semi-sync: writes acknowledged once applied locally, with no LOG_ACK", case_semi_ack_local},
    {"src-async-ack-local", "5.3", MKC_MUST, "async: writes acknowledged with no destination answer; no LOG frames", case_async_ack_local},
    {"src-semi-lag-bound", "5.2", MKC_MUST, "semi-sync: the 8 MiB lag bound holds the 9th 1 MiB write until a LOG_ACK", case_semi_lag_bound},
    {"src-acks-in-order", "10.2", MKC_MUST, "each 'ack N' exactly once and in increasing order over 60 writes", case_acks_in_order},
    {"src-quit-waits", "10.2", MKC_MUST, "quit waits for every acknowledgement, then exits 0", case_quit_waits},
    {"src-eof-ends", "10.2", MKC_MUST, "EOF on stdin ends the script like quit, exit 0", case_eof_ends},
    {"src-script-malformed", "10.2", MKC_MUST, "a malformed script line: 'error MK_EUSAGE', exit 2", case_script_malformed},
    {"src-nak-resend", "8.1", MKC_MUST, "a NAKed REF (MK_EREFHASH) is resent as CP_DATA with the CP-image content", case_nak_resend},
    {"src-nak-after-commit", "8.1", MKC_MUST, "NAKs arriving after CP_COMMIT are answered with CP_DATA", case_nak_after_commit},
    {"src-nak-enotid", "8.1", MKC_MUST, "NAK reason MK_ENOTID is answered with CP_DATA", case_nak_enotid},
    {"src-nak-eslot", "8.1", MKC_MUST, "NAK reason MK_ESLOT is answered with CP_DATA", case_nak_eslot},
    {"src-nak-etid", "8.1", MKC_MUST, "NAK reason MK_ETID is answered with CP_DATA", case_nak_etid},
    {"src-nak-then-reconnect", "8.2", MKC_MUST, "a NAKed block stays DATA when the CP is resent after a reconnect", case_nak_then_reconnect},
    {"src-reconnect-after-hello", "8.2", MKC_MUST, "connection lost after HELLO: reconnect, HELLO seq 0, resume", case_reconnect_after_hello},
    {"src-reconnect-log-lost", "8.2", MKC_MUST, "a LOG lost with the connection is resent with the same tid and bytes", case_reconnect_log_lost},
    {"src-reconnect-log-ack-lost", "8.2", MKC_MUST, "a stored LOG whose LOG_ACK was lost: durable_tid acknowledges it, no resend", case_reconnect_log_ack_lost},
    {"src-reconnect-semi-logs", "8.2", MKC_MUST, "semi-sync: two losses with LOGs in flight; resend in tid order before new ones", case_reconnect_semi_logs},
    {"src-reconnect-cp-begin", "8.2", MKC_MUST, "lost after CP_BEGIN: the CP is resent in full, covers_tid recomputed", case_reconnect_cp_begin},
    {"src-reconnect-mid-cp", "8.2", MKC_MUST, "lost after a CP_REF and after a CP_DATA: the CP is resent in full", case_reconnect_mid_cp},
    {"src-reconnect-commit-lost", "8.2", MKC_MUST, "the CP_COMMIT lost with the connection: the CP is resent", case_reconnect_commit_lost},
    {"src-reconnect-cp-ack-lost", "8.2", MKC_MUST, "CP committed, CP_ACK lost: HELLO_ACK last_cp acknowledges it, no resend", case_reconnect_cp_ack_lost},
    {"src-reconnect-cp-ack-lost-digest", "8.2", MKC_MUST, "CP_ACK lost and HELLO_ACK last_digest wrong: 'error MK_EDIGEST', exit 1", case_reconnect_cp_ack_lost_digest},
    {"src-reconnect-async", "8.2", MKC_MUST, "async: three losses (after HELLO, mid-CP, CP_ACK lost), mirror verified", case_reconnect_async},
    {"src-seq-restart", "3.5", MKC_MUST, "frame seq counts from 0 on every connection, +1 per frame; trailers valid", case_seq_restart},
    {"src-log-lost", "8.3", MKC_MUST, "destination log lost: no REF to lost transfers, covers_tid follows, sync ends MK_ELOGLOST", case_log_lost},
    {"src-error-remote-eio", "10.3", MKC_MUST, "ERROR MK_EIO from the destination: 'error MK_EREMOTE', exit 3, no ERROR back", case_error_remote_eio},
    {"src-error-remote-epeer", "10.3", MKC_MUST, "ERROR MK_EPEER from the destination: 'error MK_EREMOTE', exit 2", case_error_remote_epeer},
    {"src-error-remote-ediverged", "10.3", MKC_MUST, "ERROR MK_EDIVERGED from the destination: 'error MK_EREMOTE', exit 1", case_error_remote_ediverged},
    {"src-error-damage-resumes", "8.5", MKC_MUST, "ERROR with a damage code (MK_ECHECKSUM) ends the session only; the source resumes", case_error_damage_resumes},
    {"src-damaged-bytes-resume", "8.5", MKC_MUST, "a LOG_ACK with a bad trailer ends the session only; resume, no ERROR sent", case_damaged_bytes_resume},
    {"src-hello-ack-volume", "2.2", MKC_MUST, "HELLO_ACK with another volume_id: 'error MK_EVOLUME', exit 2", case_hello_ack_volume},
    {"src-hello-ack-nblocks", "2.2", MKC_MUST, "HELLO_ACK with another nblocks: 'error MK_EVOLUME', exit 2", case_hello_ack_nblocks},
    {"src-hello-ack-peer", "2.2", MKC_MUST, "HELLO_ACK with another source_id: 'error MK_EPEER', exit 2", case_hello_ack_peer},
    {"src-hello-ack-future-cp", "8.2", MKC_MUST, "HELLO_ACK last_cp from the future: 'error MK_EDIVERGED', exit 1", case_hello_ack_future_cp},
    {"src-hello-ack-future-tid", "8.2", MKC_MUST, "HELLO_ACK durable_tid never assigned: 'error MK_EDIVERGED', exit 1", case_hello_ack_future_tid},
    {"src-log-ack-future", "4.4", MKC_MUST, "LOG_ACK for a tid never assigned: 'error MK_ETID', exit 2", case_log_ack_future},
    {"src-cp-ack-digest", "7.5", MKC_MUST, "CP_ACK with a wrong digest: no cp-ack line, 'error MK_EDIGEST', exit 1", case_cp_ack_digest},
    {"src-cp-ack-count", "7.5", MKC_MUST, "CP_ACK with a wrong napplied: no cp-ack line, 'error MK_ECOUNT', exit 2", case_cp_ack_count},
};
const size_t mkc_source_ncases = sizeof mkc_source_cases / sizeof mkc_source_cases[0];
