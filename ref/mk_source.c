#include "mk_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_err.h"
#include "mk_fiu.h"
#include "mk_map.h"
#include "mk_merkle.h"
#include "mk_vec.h"
#include "mk_wire.h"

enum { S_DOWN, S_HELLO_SENT, S_READY };
enum { REC_REF, REC_DATA };

/* A transfer kept until the destination acknowledges it durable, so it can
 * be resent after a reconnect (section 8.2). */
typedef struct xfer {
    uint64_t tid, offset;
    uint32_t length;
    uint8_t *data;
} xfer;

/* Claim 14's transfer-ID structure: descriptors name a transfer by index
 * into this table; an entry lives while a descriptor refers to it. */
typedef struct tid_ent {
    uint64_t tid;
    uint32_t refs;
    uint32_t next_free;
} tid_ent;

/* Claim 14's buffer descriptor, one per dirty block (section 6.2). */
typedef struct desc {
    uint64_t block;
    uint64_t hash;     /* XXH3-64 of the block, valid when hashed */
    mk_h128 leaf;      /* its Merkle leaf (section 9.7), valid when hashed */
    uint32_t xidx;     /* index into the transfer-ID table, when whole */
    uint32_t slot;     /* block number within that transfer */
    uint8_t whole;     /* current content == that slot */
    uint8_t hashed;    /* the last write covered the block: hash, leaf valid */
} desc;

/* One block of the CP in flight, kept until CP_ACK for NAK and resume.
 * Its CP content is in the store until a later write changes the block;
 * copy_on_write keeps a copy in data before that (section 8.1). */
typedef struct cprec {
    uint64_t block, tid, hash;
    uint32_t slot;
    uint8_t kind;
    uint8_t naked;     /* sent as REF, refused, resent as DATA */
    uint8_t resent;    /* ... and that CP_DATA went out in this session */
    uint8_t *data;     /* the block's CP content once the store no longer has it */
} cprec;

/* CP_DATA frames are queued a span at a time, as the transport drains
 * the output (mk_source_out): the blocks are read from the store then,
 * SPAN_BYTES at most per read, so a CP's DATA never sits in memory whole
 * and the output queue stays near OUT_LOW bytes. */
#define SPAN_BYTES (1u << 20)
#define OUT_LOW (512u << 10)

typedef struct pending_ack {
    uint64_t wid, last_tid;
} pending_ack;

struct mk_source {
    mk_source_config cfg;
    mk_file *store;
    int state, fatal;
    uint64_t send_seq, recv_seq;
    mk_buf in, out;
    uint64_t next_tid, acked_tid, next_wid, acked_wid;
    uint64_t peer_tid; /* highest transfer the destination holds or was sent */
    /* unacknowledged transfers, FIFO */
    xfer *xf;
    size_t xf_head, xf_len, xf_cap;
    uint64_t unacked_bytes;
    /* transfer-ID table */
    tid_ent *tt;
    uint32_t tt_len, tt_cap, tt_free;
    /* dirty-block descriptors */
    desc *dv;
    size_t dv_len, dv_cap;
    mk_map dmap;
    /* sync-mode writes waiting for LOG_ACK, FIFO */
    pending_ack *pa;
    size_t pa_head, pa_len, pa_cap;
    /* the CP in flight */
    int cp_inflight;
    uint64_t cp_no, cp_covers, cp_digest;
    cprec *cr;
    size_t cr_len;
    int streaming;     /* CP_DATA of the CP still to queue, from data_next */
    size_t data_next;
    uint64_t deferred_tid; /* the first transfer logged while streaming (0: none) */
    uint8_t *scratch;  /* one block */
    uint8_t *span;     /* consecutive blocks read from the store, span_cap bytes */
    size_t span_cap;
    int remote_code;
    char remote_msg[MK_ERROR_MSG_MAX + 1];
    /* the Merkle tree of the CP image, and a descent after a mismatch */
    mk_merkle *tree;
    mk_h128 cp_root;
    mk_merkle_diff *diff;
    uint64_t diff_blocks[MK_SOURCE_MAX_DIFFS];
    size_t ndiff;
    uint64_t diff_queries;
    int diff_truncated;
    mk_source_stats st;
};

#define NO_XIDX UINT32_MAX

static int fail(mk_source *s, int err)
{
    if (!s->fatal) {
        s->fatal = err;
        if (s->state != S_DOWN) {
            char msg[MK_ERROR_MSG_MAX];
            size_t before = mk_buf_len(&s->out);
            snprintf(msg, sizeof msg, "source: %s", mk_strerror(err));
            if (mk_error_encode(&s->out, s->send_seq++, err, msg) == 0)
                s->st.session_bytes += mk_buf_len(&s->out) - before;
        }
    }
    return err;
}


int mk_source_new(const mk_source_config *cfg, mk_file *store, mk_source **out)
{
    if (!mk_block_size_ok(cfg->block_size))
        return MK_EBLOCKSIZE;
    if (cfg->mode < MK_MODE_SYNC || cfg->mode > MK_MODE_ASYNC)
        return MK_EMODE;
    if (cfg->nblocks == 0 || cfg->nblocks > UINT64_MAX / cfg->block_size)
        return MK_ERANGE;
    mk_source *s = calloc(1, sizeof *s);
    if (!s)
        return MK_ENOMEM;
    s->cfg = *cfg;
    if (!s->cfg.max_lag)
        s->cfg.max_lag = MK_DEFAULT_MAX_LAG;
    s->store = store;
    s->tt_free = NO_XIDX;
    mk_buf_init(&s->in);
    mk_buf_init(&s->out);
    mk_map_init(&s->dmap);
    s->scratch = malloc(cfg->block_size);
    if (!s->scratch) {
        free(s);
        return MK_ENOMEM;
    }
    int rc;
    if (cfg->tree && (rc = mk_merkle_open(cfg->tree, cfg->nblocks, &s->tree))) {
        mk_source_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void cp_free(mk_source *s)
{
    for (size_t i = 0; i < s->cr_len; i++)
        free(s->cr[i].data);
    free(s->cr);
    s->cr = NULL;
    s->cr_len = 0;
    s->cp_inflight = 0;
    s->streaming = 0;
}

/* A CP is acknowledged: its block copies go, but the records stay (a few
 * bytes per block) until the next CP, so a verifier can still ask what
 * the destination was told to apply. */
static void cp_done(mk_source *s)
{
    for (size_t i = 0; i < s->cr_len; i++) {
        free(s->cr[i].data);
        s->cr[i].data = NULL;
    }
    s->cp_inflight = 0;
}

void mk_source_free(mk_source *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->xf_len; i++)
        free(s->xf[(s->xf_head + i) % s->xf_cap].data);
    free(s->xf);
    free(s->tt);
    free(s->dv);
    free(s->pa);
    mk_map_free(&s->dmap);
    cp_free(s);
    mk_buf_free(&s->in);
    mk_buf_free(&s->out);
    mk_merkle_diff_free(s->diff);
    mk_merkle_free(s->tree);
    free(s->scratch);
    free(s->span);
    free(s);
}

static void stream_cp(mk_source *s);

mk_buf *mk_source_out(mk_source *s)
{
    if (s->streaming && mk_buf_len(&s->out) < OUT_LOW)
        stream_cp(s);
    return &s->out;
}
uint64_t mk_source_acked(const mk_source *s) { return s->acked_wid; }
uint64_t mk_source_cp_acked(const mk_source *s) { return s->cp_no - (uint64_t)s->cp_inflight; }
int mk_source_cp_in_flight(const mk_source *s) { return s->cp_inflight; }
int mk_source_ready(const mk_source *s) { return s->state == S_READY; }
uint64_t mk_source_unacked_bytes(const mk_source *s) { return s->unacked_bytes; }
uint64_t mk_source_dirty_blocks(const mk_source *s) { return s->dv_len; }
int mk_source_error(const mk_source *s) { return s->fatal; }

size_t mk_source_cp_size(const mk_source *s) { return s->cr_len; }

int mk_source_cp_record(const mk_source *s, size_t i, mk_cp_record *out)
{
    if (i >= s->cr_len)
        return MK_ERANGE;
    const cprec *r = &s->cr[i];
    out->block = r->block;
    out->hash = r->hash;
    out->is_ref = r->kind == REC_REF || r->naked;
    out->naked = r->naked;
    out->tid = r->kind == REC_REF || r->naked ? r->tid : 0;
    out->slot = r->slot;
    return 0;
}

int mk_source_remote_error(const mk_source *s, const char **msg)
{
    *msg = s->remote_msg;
    return s->remote_code;
}
const mk_source_stats *mk_source_get_stats(const mk_source *s) { return &s->st; }

/* ---- transfer-ID table ------------------------------------------------ */

/* Grows a FIFO ring by one element, unwrapping it into the new storage so
 * that element i stays at (head + i) % cap. */
static int ring_grow(void **v, size_t *cap, size_t *head, size_t len, size_t elem)
{
    if (len < *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    uint8_t *p = malloc(n * elem), *old = *v;
    if (!p)
        return MK_ENOMEM;
    for (size_t i = 0; i < len; i++)
        memcpy(p + i * elem, old + ((*head + i) % *cap) * elem, elem);
    free(old);
    *v = p;
    *cap = n;
    *head = 0;
    return 0;
}

static int tt_acquire(mk_source *s, uint64_t tid, uint32_t refs, uint32_t *idx)
{
    if (s->tt_free != NO_XIDX) {
        *idx = s->tt_free;
        s->tt_free = s->tt[*idx].next_free;
    } else {
        size_t cap = s->tt_cap;
        tid_ent *t = mk_vec_grow(s->tt, &cap, s->tt_len, sizeof *s->tt, 64);
        if (!t || cap > UINT32_MAX)
            return MK_ENOMEM;
        s->tt = t;
        s->tt_cap = (uint32_t)cap;
        *idx = s->tt_len++;
    }
    s->tt[*idx].tid = tid;
    s->tt[*idx].refs = refs;
    return 0;
}

static void tt_release(mk_source *s, uint32_t idx)
{
    if (idx == NO_XIDX || --s->tt[idx].refs > 0)
        return;
    s->tt[idx].next_free = s->tt_free;
    s->tt_free = idx;
}

/* ---- frame emission --------------------------------------------------- */

/* Emits one frame through enc and charges its wire bytes to *counter, so
 * the accounting of section 11 is exact by construction. */
#define EMIT(s, counter, call)                                                 \
    do {                                                                       \
        size_t before_ = mk_buf_len(&(s)->out);                                \
        int rc_ = (call);                                                      \
        if (rc_)                                                               \
            return fail((s), rc_);                                             \
        (counter) += mk_buf_len(&(s)->out) - before_;                          \
    } while (0)

static int emit_transfer(mk_source *s, const xfer *x)
{
    mk_log l = {x->tid, x->offset, x->length, x->data};
    s->peer_tid = x->tid;
    EMIT(s, s->st.log_bytes, mk_log_encode(&s->out, s->send_seq++, &l));
    return 0;
}

static int emit_data(mk_source *s, const cprec *r, const uint8_t *content)
{
    mk_cp_data d = {s->cp_no, r->block, content};
    EMIT(s, s->st.cp_data_bytes,
         mk_cp_data_encode(&s->out, s->send_seq++, &d, s->cfg.block_size));
    return 0;
}

/* Section 7.2: CP_BEGIN, every REF in as few CP_REF frames as fit, every
 * DATA block, CP_COMMIT.  Records go in ascending block order within each
 * kind; batching the REFs keeps their per-frame overhead negligible. */
static int emit_cp(mk_source *s)
{
    /* covers_tid names the newest transfer inside the CP image that the
     * destination holds: after it lost part of its log (section 8.3) that
     * can be older than the newest transfer the CP image includes. */
#ifdef MK_MUTANT_SRC_COVERS_IGNORES_LOSS
    /* Planted bug (verify/MUTANTS.md): covers_tid is always the CP image's
     * newest transfer, even after the destination reported that it lost
     * transfers (SPEC.md 7.1, 8.3: min with what the destination holds). */
    mk_cp_begin b = {s->cp_no, s->cr_len, s->cp_covers};
#else
    mk_cp_begin b = {s->cp_no, s->cr_len,
                     s->cp_covers < s->peer_tid ? s->cp_covers : s->peer_tid};
#endif
    mk_ref batch[MK_MAX_REFS_PER_FRAME];
    uint32_t nb = 0;
    EMIT(s, s->st.cp_ctl_bytes, mk_cp_begin_encode(&s->out, s->send_seq++, &b));
    for (size_t i = 0; i < s->cr_len; i++) {
        cprec *r = &s->cr[i];
        r->resent = 0; /* a new session's stream carries every DATA record */
        if (r->kind == REC_REF)
            batch[nb++] = (mk_ref){r->block, r->tid, r->slot, r->hash};
        if (nb && (nb == MK_MAX_REFS_PER_FRAME || i + 1 == s->cr_len)) {
            EMIT(s, s->st.cp_ref_bytes,
                 mk_cp_ref_encode(&s->out, s->send_seq++, s->cp_no, batch, nb));
            nb = 0;
        }
    }
    /* The DATA frames and CP_COMMIT follow as the output drains. */
    s->streaming = 1;
    s->data_next = 0;
    return 0;
}

static xfer *xf_at(mk_source *s, size_t i);

/* Reads blocks first .. first+n-1 of the store into s->span, which grows
 * to the largest span read so far (SPAN_BYTES at most), so a source whose
 * CPs are small keeps a small buffer. */
static int read_span(mk_source *s, uint64_t first, size_t n)
{
    uint32_t bs = s->cfg.block_size;
    if (n * bs > s->span_cap) {
        uint8_t *p = realloc(s->span, n * bs);
        if (!p)
            return MK_ENOMEM;
        s->span = p;
        s->span_cap = n * bs;
    }
    return mk_file_read_block(s->store, s->span, n * bs, first * bs);
}

/* Queues the next span of the CP's DATA frames: a run of records that
 * follow each other in the volume is read from the store at once; a record
 * whose block was written since the CP started goes from its copy.  After
 * the last one, CP_COMMIT, then the transfers logged meanwhile, which wait
 * so that the frames keep the order in which they were made.  A failing
 * read of the store is fatal (the ERROR frame goes out instead). */
static void stream_cp(mk_source *s)
{
    uint32_t bs = s->cfg.block_size;
    size_t per_span = SPAN_BYTES / bs;
    int rc = 0;
    while (!s->fatal && s->streaming && mk_buf_len(&s->out) < OUT_LOW) {
        /* A NAKed REF answered in this session is DATA now, but its
         * CP_DATA went out with the answer (on_nak): not again. */
        while (s->data_next < s->cr_len &&
               (s->cr[s->data_next].kind != REC_DATA || s->cr[s->data_next].resent))
            s->data_next++;
        if (s->data_next == s->cr_len) {
            mk_cp_commit c = {s->cp_no, s->cr_len};
            size_t before = mk_buf_len(&s->out);
            s->streaming = 0;
            if ((rc = mk_cp_commit_encode(&s->out, s->send_seq++, &c)))
                break;
            s->st.cp_ctl_bytes += mk_buf_len(&s->out) - before;
            /* The ring holds transfers in tid order; a destination that
             * acknowledged one it was never sent has released it. */
            for (size_t i = 0; s->deferred_tid && i < s->xf_len && !rc; i++)
                if (xf_at(s, i)->tid >= s->deferred_tid)
                    rc = emit_transfer(s, xf_at(s, i));
            s->deferred_tid = 0;
            break;
        }
        cprec *r = &s->cr[s->data_next];
        if (r->data) {
            rc = emit_data(s, r, r->data);
            s->data_next++;
            continue;
        }
        size_t n = 1;
        while (n < per_span && s->data_next + n < s->cr_len) {
            const cprec *q = &s->cr[s->data_next + n];
            if (q->kind != REC_DATA || q->data || q->block != r->block + n)
                break;
            n++;
        }
        if ((rc = read_span(s, r->block, n)))
            break;
        for (size_t i = 0; i < n && !rc; i++)
            rc = emit_data(s, &s->cr[s->data_next + i], s->span + i * bs);
        s->data_next += n;
    }
    if (rc)
        fail(s, rc);
}

/* ---- sessions --------------------------------------------------------- */

/* A new session resends what the old one may not have delivered (8.2):
 * nothing of the old one stays queued. */
static void drop_output(mk_source *s)
{
    mk_buf_clear(&s->in);
    mk_buf_clear(&s->out);
    s->streaming = 0;
    s->deferred_tid = 0;
}

int mk_source_connect(mk_source *s, uint64_t now)
{
    (void)now;
    if (s->fatal)
        return s->fatal;
    drop_output(s);
#ifdef MK_MUTANT_SRC_SEQ_NO_RESET
    /* Planted bug (verify/MUTANTS.md): only the receive counter restarts on
     * a new connection; HELLO goes out with the old connection's next seq
     * (SPEC.md 3.5: every connection starts at 0). */
    s->recv_seq = 0;
    s->state = S_HELLO_SENT;
#else
    s->send_seq = s->recv_seq = 0;
    s->state = S_HELLO_SENT;
#endif
    s->st.reconnects++;
    mk_hello h = {s->cfg.volume_id, s->cfg.nblocks, s->cfg.block_size,
                  (uint8_t)s->cfg.mode, s->cfg.source_id};
    EMIT(s, s->st.session_bytes, mk_hello_encode(&s->out, s->send_seq++, &h));
    return 0;
}

void mk_source_disconnect(mk_source *s)
{
    s->state = S_DOWN;
    drop_output(s);
}

static xfer *xf_at(mk_source *s, size_t i) { return &s->xf[(s->xf_head + i) % s->xf_cap]; }

/* Everything up to tid is durable at the destination. */
static void on_durable(mk_source *s, uint64_t tid)
{
    while (s->xf_len && xf_at(s, 0)->tid <= tid) {
        xfer *x = xf_at(s, 0);
        s->unacked_bytes -= x->length;
        free(x->data);
        s->xf_head = (s->xf_head + 1) % s->xf_cap;
        s->xf_len--;
    }
    if (tid > s->acked_tid)
        s->acked_tid = tid;
    while (s->pa_len && s->pa[s->pa_head].last_tid <= s->acked_tid) {
        s->acked_wid = s->pa[s->pa_head].wid;
        s->pa_head = (s->pa_head + 1) % s->pa_cap;
        s->pa_len--;
    }
}

static int rec_cmp(const void *a, const void *b)
{
    const cprec *x = a, *y = b;
    return x->block < y->block ? -1 : x->block > y->block;
}

static cprec *cp_find(mk_source *s, uint64_t block)
{
    cprec key = {.block = block};
    return s->cp_inflight ? bsearch(&key, s->cr, s->cr_len, sizeof *s->cr, rec_cmp) : NULL;
}

/* Turns a REF record of the CP in flight into DATA with the block's CP
 * content: the copy taken before a later write, or else the store, which
 * then still holds the CP content (section 8.1). */
static int rec_to_data(mk_source *s, cprec *r)
{
    if (!r->data) {
        r->data = malloc(s->cfg.block_size);
        if (!r->data)
            return MK_ENOMEM;
        int rc = mk_file_read_block(s->store, r->data, s->cfg.block_size,
                                    r->block * s->cfg.block_size);
        if (rc)
            return rc;
    }
    r->kind = REC_DATA;
    return 0;
}

/* Section 8.3: the destination no longer holds transfers in (lo, hi]:
 * nothing may refer to them any more. */
static int forget_transfers(mk_source *s, uint64_t lo, uint64_t hi)
{
    int rc;
    for (size_t i = 0; i < s->dv_len; i++) {
        desc *d = &s->dv[i];
        if (d->whole && s->tt[d->xidx].tid > lo && s->tt[d->xidx].tid <= hi) {
            tt_release(s, d->xidx);
            d->whole = 0;
            d->xidx = NO_XIDX;
        }
    }
    for (size_t i = 0; s->cp_inflight && i < s->cr_len; i++) {
        cprec *r = &s->cr[i];
        if (r->kind == REC_REF && r->tid > lo && r->tid <= hi && (rc = rec_to_data(s, r)))
            return rc;
    }
    return 0;
}

static int on_hello_ack(mk_source *s, const mk_frame *f)
{
    mk_hello_ack a;
    int rc = mk_hello_ack_decode(f, &a);
    if (rc)
        return fail(s, rc);
    if (s->state != S_HELLO_SENT)
        return fail(s, MK_ESTATE);
    if (a.volume_id != s->cfg.volume_id || a.nblocks != s->cfg.nblocks ||
        a.block_size != s->cfg.block_size)
        return fail(s, MK_EVOLUME);
    if (a.source_id != s->cfg.source_id)
        return fail(s, MK_EPEER);
    if (a.durable_tid > s->next_tid)
        return fail(s, MK_EDIVERGED);
    if (a.durable_tid < s->acked_tid) {
        /* The destination lost log entries it had acknowledged. */
        s->st.lost_transfers += s->acked_tid - a.durable_tid;
        if (s->cfg.mode == MK_MODE_SYNC)
            s->st.out_of_sync = 1;
        if ((rc = forget_transfers(s, a.durable_tid, s->acked_tid)))
            return fail(s, rc);
#ifdef MK_MUTANT_SRC_RESUME_FORGETS
    } else {
        /* Planted bug (verify/MUTANTS.md): on resume every transfer sent on
         * the old connection is taken as received - released, its sync
         * writes acknowledged - instead of resending those above the
         * HELLO_ACK's durable_tid (SPEC.md 8.2 steps 1 and 3). */
        on_durable(s, s->next_tid);
    }
#else
    } else {
        on_durable(s, a.durable_tid);
    }
#endif
    s->peer_tid = a.durable_tid;
    /* A root mismatch was being traced when the connection went: it stands,
     * whatever the descent would have named (section 9.7). */
    if (s->diff)
        return fail(s, MK_EVERIFY);
    uint64_t acked_cp = s->cp_no - s->cp_inflight;
    int resend_cp = 0;
    if (s->cp_inflight && a.last_cp == s->cp_no) {
        /* The CP committed but its CP_ACK was lost with the connection;
         * the destination's digest of it must still be ours. */
        if (a.last_digest != s->cp_digest)
            return fail(s, MK_EDIGEST);
        cp_done(s);
        s->st.cps_acked++;
    } else if (a.last_cp == acked_cp) {
        resend_cp = s->cp_inflight;
    } else {
        return fail(s, MK_EDIVERGED);
    }
    s->state = S_READY;
    for (size_t i = 0; i < s->xf_len; i++) {
        xfer *x = xf_at(s, i);
        if (x->tid <= a.durable_tid)
            continue;
        s->st.resent_transfers++;
        if ((rc = emit_transfer(s, x)))
            return rc;
    }
    if (resend_cp) {
        s->st.resent_cps++;
        return emit_cp(s);
    }
    return 0;
}

static int on_log_ack(mk_source *s, const mk_frame *f)
{
    uint64_t tid;
    int rc = mk_log_ack_decode(f, &tid);
    if (rc)
        return fail(s, rc);
    if (tid > s->next_tid || tid < s->acked_tid)
        return fail(s, MK_ETID);
    on_durable(s, tid);
    return 0;
}

static int on_nak(mk_source *s, const mk_frame *f)
{
    mk_nak n;
    int rc = mk_nak_decode(f, &n);
    if (rc)
        return fail(s, rc);
    if (!s->cp_inflight || n.cp != s->cp_no)
        return fail(s, MK_ECP);
    cprec *r = cp_find(s, n.block);
    if (!r || r->kind != REC_REF)
        return fail(s, MK_ESTATE);
#ifdef MK_MUTANT_SRC_NAK_RESEND_REF
    /* Planted bug (verify/MUTANTS.md): the NAKed block is sent again as the
     * same REF instead of as CP_DATA with its CP-image content (SPEC.md
     * 8.1). */
    {
        mk_ref again = {r->block, r->tid, r->slot, r->hash};
        s->st.naks++;
        EMIT(s, s->st.cp_ref_bytes, mk_cp_ref_encode(&s->out, s->send_seq++, s->cp_no, &again, 1));
        return 0;
    }
#endif
    if ((rc = rec_to_data(s, r)))
        return fail(s, rc);
    s->st.naks++;
    r->naked = 1;
    r->resent = 1;
    return emit_data(s, r, r->data);
}

static int tree_ask(mk_source *s);

static int on_cp_ack(mk_source *s, const mk_frame *f)
{
    mk_cp_ack a;
    int rc = mk_cp_ack_decode(f, &a);
    if (rc)
        return fail(s, rc);
    if (!s->cp_inflight || a.cp != s->cp_no)
        return fail(s, MK_ECP);
    if (a.napplied != s->cr_len)
        return fail(s, MK_ECOUNT);
    if (a.digest != s->cp_digest)
        return fail(s, MK_EDIGEST);
    if (s->diff)
        return fail(s, MK_ESTATE); /* a second CP_ACK for the same CP */
    mk_h128 root = {a.root_lo, a.root_hi};
    if (!s->tree || mk_h128_eq(root, s->cp_root)) {
        cp_done(s);
        s->st.cps_acked++;
#ifdef MK_MUTANT_SRC_REUSE_TID
        /* Planted bug (verify/MUTANTS.md): transfer IDs are numbered per CP
         * interval - once a CP is acknowledged and nothing is retained, the
         * counter starts again at 1 (SPEC.md 4.5: unique and increasing for
         * the life of the pairing). */
        if (s->xf_len == 0)
            s->next_tid = s->acked_tid = s->peer_tid = 0;
#endif
        return 0;
    }
    /* The mirror is not the CP image although every block the CP sent
     * arrived as sent: descend the trees to find where (section 9.7).  The
     * CP stays in flight meanwhile - it is not acknowledged, no other CP
     * can start and move the tree - and the descent ends in MK_EVERIFY. */
    if (!(s->diff = mk_merkle_diff_start(s->tree, root, MK_SOURCE_MAX_DIFFS)))
        return fail(s, MK_ENOMEM);
    return tree_ask(s);
}

/* Sends the descent's pending queries, a frame per level and batch. */
static int tree_ask(mk_source *s)
{
    uint64_t idx[MK_MAX_TREE_NODES];
    uint32_t level = 0, n = 0, lv;
    uint64_t i;
    int rc;
    while ((rc = mk_merkle_diff_next_query(s->diff, &lv, &i)) == 1) {
        if (n && (lv != level || n == MK_MAX_TREE_NODES)) {
            EMIT(s, s->st.session_bytes, mk_tree_query_encode(&s->out, s->send_seq++, level, idx, n));
            n = 0;
        }
        level = lv;
        idx[n++] = i;
    }
    if (rc < 0) /* a remote whose nodes contradict its root: mismatch stands */
        return fail(s, rc == MK_EINVAL ? MK_EVERIFY : rc);
    if (n)
        EMIT(s, s->st.session_bytes, mk_tree_query_encode(&s->out, s->send_seq++, level, idx, n));
    if (mk_merkle_diff_done(s->diff)) {
        size_t k;
        const uint64_t *leaves = mk_merkle_diff_leaves(s->diff, &k);
        s->ndiff = k < MK_SOURCE_MAX_DIFFS ? k : MK_SOURCE_MAX_DIFFS;
        memcpy(s->diff_blocks, leaves, s->ndiff * sizeof *leaves);
        s->diff_queries = mk_merkle_diff_queries(s->diff);
        s->diff_truncated = mk_merkle_diff_truncated(s->diff);
        return fail(s, MK_EVERIFY);
    }
    return 0;
}

static int on_tree_nodes(mk_source *s, const mk_frame *f)
{
    uint32_t level, count;
    int rc = mk_tree_nodes_decode(f, &level, &count);
    if (rc)
        return fail(s, rc);
    if (!s->diff)
        return fail(s, MK_ESTATE);
    for (uint32_t i = 0; i < count; i++) {
        mk_tree_node n;
        mk_tree_nodes_at(f, i, &n);
        rc = mk_merkle_diff_answer(s->diff, level, n.index, (mk_h128){n.left_lo, n.left_hi},
                                   (mk_h128){n.right_lo, n.right_hi});
        /* A destination whose nodes do not hash to what it said before is
         * lying or damaged: the check fails either way. */
        if (rc)
            return fail(s, rc == MK_EINVAL ? MK_EVERIFY : rc);
    }
    return tree_ask(s);
}

const uint64_t *mk_source_diff_blocks(const mk_source *s, size_t *n, uint64_t *queries,
                                      int *truncated)
{
    *n = s->ndiff;
    if (queries)
        *queries = s->diff_queries;
    if (truncated)
        *truncated = s->diff_truncated;
    return s->diff_blocks;
}

/* The connection delivered damaged bytes (section 8.5): this session is
 * over but nothing the source holds is wrong - unacknowledged transfers and
 * the CP in flight are resent after the next HELLO (section 8.2). */
static int session_lost(mk_source *s, int err)
{
    s->state = S_DOWN;
    drop_output(s);
    s->st.sessions_lost++;
    return err;
}

static int on_frame(mk_source *s, const mk_frame *f)
{
    if (f->seq != s->recv_seq)
        return session_lost(s, MK_ESEQ);
    s->recv_seq++;
    if (s->state == S_HELLO_SENT && f->type != MK_F_HELLO_ACK && f->type != MK_F_ERROR)
        return fail(s, MK_ESTATE);
    switch (f->type) {
    case MK_F_HELLO_ACK: return on_hello_ack(s, f);
    case MK_F_LOG_ACK: return on_log_ack(s, f);
    case MK_F_NAK: return on_nak(s, f);
    case MK_F_CP_ACK: return on_cp_ack(s, f);
    case MK_F_TREE_NODES: return on_tree_nodes(s, f);
    case MK_F_ERROR: {
        mk_error_frame e;
        int rc = mk_error_decode(f, &e);
        if (rc == 0) {
            s->remote_code = e.code;
            memcpy(s->remote_msg, e.msg, e.msglen);
            s->remote_msg[e.msglen] = 0;
            /* The destination received damaged bytes: the link, not the
             * source, is at fault; start a new session. */
            if (mk_err_is_damage(e.code))
                return session_lost(s, MK_EREMOTE);
        }
        s->fatal = rc ? rc : MK_EREMOTE;
        return s->fatal;
    }
    }
    return fail(s, MK_ETYPE);
}

static int frame_fn(void *ctx, const mk_frame *f) { return on_frame(ctx, f); }

int mk_source_recv(mk_source *s, const void *buf, size_t n, uint64_t now)
{
    int framing;
    (void)now;
    if (s->fatal)
        return s->fatal;
    if (s->state == S_DOWN)
        return MK_ESTATE;
    int rc = mk_frame_recv(&s->in, buf, n, frame_fn, s, &framing);
    if (rc && framing && mk_err_is_damage(rc))
        return session_lost(s, rc);
    /* Every other handler error has already made the engine fail or ended
     * the session; one that did neither is the input queue's own. */
    return rc && !s->fatal && s->state != S_DOWN ? fail(s, rc) : rc;
}

/* ---- client writes ---------------------------------------------------- */

/* Records that `block` is dirty and what its current content is (section
 * 6.3): a slot of transfer xidx when the last write covered it wholly
 * (whole_data, the block's bytes; xidx is NO_XIDX in async mode, which
 * logs nothing a REF could name), otherwise nothing. */
static int mark_dirty(mk_source *s, uint64_t block, uint32_t xidx, uint32_t slot,
                      const uint8_t *whole_data)
{
    uint64_t i;
    desc *d;
    if (mk_map_get(&s->dmap, block, &i)) {
        d = &s->dv[i];
#ifdef MK_MUTANT_SRC_REF_PARTIAL
        /* Planted bug (verify/MUTANTS.md): a partial write leaves a whole
         * descriptor as it was, so a block written wholly and then partly
         * in one CP interval goes as a REF to the older, whole content
         * (SPEC.md 6.3: whole then partial is not a REF). */
        if (d->whole && !whole_data)
            return 0;
#endif
        if (d->whole)
            tt_release(s, d->xidx);
    } else {
        desc *v = mk_vec_grow(s->dv, &s->dv_cap, s->dv_len, sizeof *s->dv, 64);
        if (!v)
            return MK_ENOMEM;
        s->dv = v;
        if (mk_map_put(&s->dmap, block, s->dv_len))
            return MK_ENOMEM;
        d = &s->dv[s->dv_len++];
        d->block = block;
    }
    d->whole = whole_data != NULL && xidx != NO_XIDX;
    d->hashed = whole_data != NULL;
    d->xidx = d->whole ? xidx : NO_XIDX;
    d->slot = slot;
    /* The hash and the leaf are taken while the bytes are in hand, so a CP
     * never has to read a wholly written block back to compute them. */
    d->hash = 0;
    if (whole_data)
        mk_block_sums(whole_data, s->cfg.block_size, &d->hash, &d->leaf);
    return 0;
}

/* Before a write changes a block of the CP in flight whose CP content
 * only the store holds, keep a copy: a DATA record not yet queued, a
 * resume that sends the CP again, or a NAK of a REF needs it sent as DATA
 * (section 8.1). */
static int copy_on_write(mk_source *s, uint64_t first, uint64_t last)
{
    for (uint64_t b = first; s->cp_inflight && b <= last; b++) {
        cprec *r = cp_find(s, b);
        if (!r || r->data)
            continue;
        if (!(r->data = malloc(s->cfg.block_size)))
            return MK_ENOMEM;
        int rc = mk_file_read_block(s->store, r->data, s->cfg.block_size,
                                    b * s->cfg.block_size);
        if (rc)
            return rc;
    }
    return 0;
}

/* Logs one piece of a write as a transfer (section 4.2) and updates the
 * descriptors of the blocks it touches. */
static int log_piece(mk_source *s, uint64_t off, const uint8_t *data, uint32_t len)
{
    uint32_t bs = s->cfg.block_size;
    mk_xgeom g;
    int rc;
    mk_transfer_geom(off, len, bs, &g);
    uint64_t tid = ++s->next_tid;
    uint32_t xidx = NO_XIDX;
    if (g.nslots && (rc = tt_acquire(s, tid, g.nslots, &xidx)))
        return rc;
    if (g.head_len && (rc = mark_dirty(s, off / bs, NO_XIDX, 0, NULL)))
        return rc;
    for (uint32_t i = 0; i < g.nslots; i++)
        if ((rc = mark_dirty(s, g.first_block + i, xidx, i, data + g.head_len + (size_t)i * bs)))
            return rc;
    if (g.tail_len && (rc = mark_dirty(s, (off + len - 1) / bs, NO_XIDX, 0, NULL)))
        return rc;
    if (ring_grow((void **)&s->xf, &s->xf_cap, &s->xf_head, s->xf_len, sizeof *s->xf))
        return MK_ENOMEM;
    /* Fault point: out of memory for the copy of a transfer the source
     * keeps until the destination acknowledges it (6.1). */
    fiu_return_on("ref/alloc/source/transfer", MK_ENOMEM);
    xfer x = {tid, off, len, malloc(len)};
    if (!x.data)
        return MK_ENOMEM;
    memcpy(x.data, data, len);
    *xf_at(s, s->xf_len) = x;
    s->xf_len++;
    s->unacked_bytes += len;
    s->st.transfers++;
    if (s->state != S_READY)
        return 0; /* sent when the session resumes (8.2) */
    if (s->streaming) {
        if (!s->deferred_tid) /* sent after the CP's CP_COMMIT */
            s->deferred_tid = tid;
        return 0;
    }
    return emit_transfer(s, &x);
}

/* How many blocks of [off, off+len) are not dirty yet. */
static uint64_t new_dirty(const mk_source *s, uint64_t off, uint32_t len)
{
    uint64_t n = 0, v, bs = s->cfg.block_size;
    for (uint64_t b = off / bs; b <= (off + len - 1) / bs; b++)
        n += !mk_map_get(&s->dmap, b, &v);
    return n;
}

int mk_source_write(mk_source *s, uint64_t off, const void *data, uint32_t len,
                    uint64_t now, uint64_t *wid)
{
    (void)now;
    uint32_t bs = s->cfg.block_size;
    uint64_t vbytes = s->cfg.nblocks * bs;
    int rc;
    if (s->fatal)
        return s->fatal;
    if (len == 0)
        return MK_EZEROLEN;
    if (off > vbytes || len > vbytes - off)
        return MK_ERANGE;
    int logged = s->cfg.mode != MK_MODE_ASYNC;
    if (logged && s->unacked_bytes && s->unacked_bytes + len > s->cfg.max_lag)
        return MK_EAGAIN;
    /* One CP holds at most MK_MAX_CP_BLOCKS blocks: the caller must take a
     * CP before a write that would dirty more. */
    if (s->dv_len + (off % bs + len + bs - 1) / bs > MK_MAX_CP_BLOCKS &&
        new_dirty(s, off, len) > MK_MAX_CP_BLOCKS - s->dv_len)
        return MK_ECPFULL;
    if ((rc = copy_on_write(s, off / bs, (off + len - 1) / bs)))
        return fail(s, rc);
    if ((rc = mk_file_pwrite(s->store, data, len, off)))
        return fail(s, rc);
#ifdef MK_MUTANT_SRC_ACK_FIRST_PIECE
    uint64_t mutant_first_tid = s->next_tid + 1;
#endif
    if (logged) {
        const uint8_t *p = data;
        uint64_t at = off, end = off + len;
        while (at < end) {
            uint64_t piece_end = end;
            if (end - at > MK_MAX_TRANSFER_DATA) {
                piece_end = at + MK_MAX_TRANSFER_DATA;
                piece_end -= piece_end % bs; /* split at a block boundary */
            }
            if ((rc = log_piece(s, at, p + (at - off), (uint32_t)(piece_end - at))))
                return fail(s, rc);
            at = piece_end;
        }
    } else {
        for (uint64_t b = off / bs; b <= (off + len - 1) / bs; b++) {
            uint64_t at = b * bs;
            const uint8_t *whole = at >= off && at + bs <= off + len
                                       ? (const uint8_t *)data + (at - off)
                                       : NULL;
            if ((rc = mark_dirty(s, b, NO_XIDX, 0, whole)))
                return fail(s, rc);
        }
    }
    s->st.writes++;
    s->st.client_bytes += len;
    *wid = ++s->next_wid;
#ifdef MK_MUTANT_SRC_SYNC_AS_SEMI
    /* Planted bug (verify/MUTANTS.md): sync mode acknowledges like
     * semi-sync - once the write is applied locally, without waiting for
     * the LOG_ACK that covers it (SPEC.md 5.1; see also mk_source_cp). */
    s->acked_wid = *wid;
    return 0;
#endif
    if (s->cfg.mode == MK_MODE_SYNC) {
        if (ring_grow((void **)&s->pa, &s->pa_cap, &s->pa_head, s->pa_len, sizeof *s->pa))
            return fail(s, MK_ENOMEM);
#ifdef MK_MUTANT_SRC_ACK_FIRST_PIECE
        /* Planted bug (verify/MUTANTS.md): a sync-mode write waits for the
         * LOG_ACK of its first transfer, not its last; a write split into
         * several transfers (over 1 MiB, SPEC.md 4.2) is acknowledged
         * before all of it is durable (SPEC.md 5.1). */
        s->pa[(s->pa_head + s->pa_len++) % s->pa_cap] = (pending_ack){*wid, mutant_first_tid};
#else
        s->pa[(s->pa_head + s->pa_len++) % s->pa_cap] = (pending_ack){*wid, s->next_tid};
#endif
    } else {
        s->acked_wid = *wid;
    }
    return 0;
}

/* ---- consistency points ----------------------------------------------- */

static int desc_cmp(const void *a, const void *b)
{
    const desc *x = a, *y = b;
    return x->block < y->block ? -1 : x->block > y->block;
}

/* The hash and leaf of every DATA record whose block was last written
 * partly: the block is read from the store, runs of neighbouring blocks a
 * span at a time.  The bytes are not kept; they are read again when the
 * CP_DATA frame is queued (stream_cp). */
static int hash_unhashed(mk_source *s, cprec *cr, const desc *dv, mk_h128 *leaf)
{
    uint32_t bs = s->cfg.block_size;
    size_t per_span = SPAN_BYTES / bs;
    int rc;
    for (size_t i = 0; i < s->dv_len;) {
        if (dv[i].hashed) {
            i++;
            continue;
        }
        size_t n = 1;
        while (n < per_span && i + n < s->dv_len && !dv[i + n].hashed &&
               dv[i + n].block == dv[i].block + n)
            n++;
        if ((rc = read_span(s, dv[i].block, n)))
            return rc;
        for (size_t k = 0; k < n; k++) {
            const uint8_t *p = s->span + k * bs;
            mk_h128 lv;
            mk_block_sums(p, bs, &cr[i + k].hash, &lv);
            if (s->tree)
                leaf[i + k] = lv;
        }
        i += n;
    }
    return 0;
}

int mk_source_cp(mk_source *s, uint64_t now)
{
    (void)now;
    uint32_t bs = s->cfg.block_size;
    int rc;
    if (s->fatal)
        return s->fatal;
    if (s->cp_inflight)
        return MK_EAGAIN;
#ifdef MK_MUTANT_SRC_SYNC_AS_SEMI
    /* Planted bug (verify/MUTANTS.md): nor does a sync-mode CP wait until
     * every transfer it covers is acknowledged (SPEC.md 5.1). */
#else
    /* Section 5.1: in sync mode a CP names only durable transfers. */
    if (s->cfg.mode == MK_MODE_SYNC && s->acked_tid < s->next_tid)
        return MK_EAGAIN;
#endif
    cp_free(s); /* the previous CP's records */
    if ((rc = mk_file_sync(s->store)))
        return fail(s, rc);
    if (s->dv_len) /* an empty CP may have no descriptor array at all */
        qsort(s->dv, s->dv_len, sizeof *s->dv, desc_cmp);
    /* Fault point: out of memory for the CP's records, after the volume
     * was synced and before anything of the CP is sent. */
    fiu_do_on("ref/alloc/source/cp", return fail(s, MK_ENOMEM));
    size_t n = s->dv_len ? s->dv_len : 1;
    cprec *cr = calloc(n, sizeof *cr);
    mk_h128 *leaf = s->tree ? malloc(n * sizeof *leaf) : NULL;
    if (!cr || (s->tree && !leaf)) {
        free(cr);
        free(leaf);
        return fail(s, MK_ENOMEM);
    }
    uint64_t digest = 0;
    for (size_t i = 0; i < s->dv_len; i++) {
        desc *d = &s->dv[i];
        cprec *r = &cr[i];
        r->block = d->block;
        r->hash = d->hash;
        if (leaf)
            leaf[i] = d->leaf;
        if (d->whole) {
            r->kind = REC_REF;
            r->tid = s->tt[d->xidx].tid;
            r->slot = d->slot;
            tt_release(s, d->xidx);
            s->st.cp_ref_blocks++;
            s->st.ref_naive_bytes += bs;
        } else {
            r->kind = REC_DATA;
            s->st.cp_data_blocks++;
        }
    }
    rc = hash_unhashed(s, cr, s->dv, leaf);
    for (size_t i = 0; i < s->dv_len && !rc; i++) {
        digest = mk_digest_step(digest, cr[i].block, cr[i].hash);
        if (leaf)
            rc = mk_merkle_set(s->tree, cr[i].block, leaf[i]);
    }
    if (!rc && s->tree && !(rc = mk_merkle_commit(s->tree)))
        rc = mk_merkle_root(s->tree, &s->cp_root);
    free(leaf);
    if (rc) {
        free(cr);
        return fail(s, rc);
    }
    s->st.naive_bytes += (uint64_t)s->dv_len * bs;
    s->cr = cr;
    s->cr_len = s->dv_len;
    s->dv_len = 0;
    mk_map_clear(&s->dmap);
    s->cp_inflight = 1;
    s->cp_no++;
    s->cp_covers = s->next_tid;
    s->cp_digest = digest;
    s->st.cps_started++;
    return s->state == S_READY ? emit_cp(s) : 0;
}
