/*
 * mk_linkfault.c - one direction of a faulty pipe on a virtual clock
 * (mk_linkfault.h).
 *
 * Bytes move through three stages.  Pushed bytes wait in `pend` until they
 * form a whole frame or a run of plain bytes (a "unit").  Each unit then
 * meets the frame-aware faults once, in a fixed order (partition, drop,
 * truncate, corrupt, duplicate, reorder), so every fault sees the sender's
 * clean stream and one fault never hides another's frame boundaries.
 * Surviving units get a delivery time (latency and jitter) and wait in the
 * delivery queue, from which pulls take bytes as the clock, the bandwidth,
 * the slicer and the byte limits allow.
 */
#include "mk_linkfault.h"

#include <stdlib.h>
#include <string.h>

#include "mk_buf.h"
#include "mk_err.h"
#include "mk_vec.h"
#include "mk_prng.h"
#include "mk_scenario.h"
#include "mk_wire.h"

/* The kinds are the scenario language's, by value, so a runner needs no
 * table to convert them; these checks keep the two enums from drifting. */
_Static_assert((int)MK_LF_K_LATENCY == (int)MK_SCN_L_LATENCY && (int)MK_LF_K_BANDWIDTH == (int)MK_SCN_L_BANDWIDTH &&
                   (int)MK_LF_K_SLICER == (int)MK_SCN_L_SLICER && (int)MK_LF_K_LIMIT_DATA == (int)MK_SCN_L_LIMIT_DATA &&
                   (int)MK_LF_K_RESET_PEER == (int)MK_SCN_L_RESET_PEER && (int)MK_LF_K_TIMEOUT == (int)MK_SCN_L_TIMEOUT &&
                   (int)MK_LF_K_DROP == (int)MK_SCN_L_DROP && (int)MK_LF_K_DUPLICATE == (int)MK_SCN_L_DUPLICATE &&
                   (int)MK_LF_K_REORDER == (int)MK_SCN_L_REORDER && (int)MK_LF_K_CORRUPT == (int)MK_SCN_L_CORRUPT &&
                   (int)MK_LF_K_TRUNCATE == (int)MK_SCN_L_TRUNCATE && (int)MK_LF_K_PARTITION == (int)MK_SCN_L_PARTITION &&
                   (int)MK_LF_K_CLEAR == (int)MK_SCN_L_CLEAR,
               "mk_lf_kind must match mk_scn_link_kind");

/* A reorder window that does not fill up is released after this much
 * virtual time.  Without it the last frames before a quiet period would be
 * held for ever, and a protocol waiting for their answer would deadlock:
 * that is a hang of the simulator, not a fault a real link shows. */
#define MK_LF_REORDER_HOLD_NS 1000000u

#define NS_PER_MS 1000000u

__extension__ typedef unsigned __int128 lf_u128;

typedef struct lf_unit {
    uint8_t *p;
    size_t n, off;  /* size, bytes already pulled */
    uint64_t ready; /* virtual time the unit has arrived */
    int cut;        /* a truncated frame: the connection resets after it */
    size_t tag;     /* in the reorder window: arrival order */
} lf_unit;

/* A FIFO of units: a vector with a moving head, compacted when the head
 * has passed half of it, so its size follows the units in flight. */
typedef struct lf_queue {
    lf_unit *u;
    size_t head, len, cap;
} lf_queue;

struct mk_lf {
    mk_prng rng;
    uint64_t clock; /* the latest time a push or pull showed */
    int state;      /* MK_LF_OK or MK_LF_RESET; MK_LF_TIMEOUT is derived */
    int active[MK_LF_K_NKINDS];
    mk_lf_fault f[MK_LF_K_NKINDS];
    mk_buf pend;    /* pushed bytes not yet a whole unit */
    lf_queue win;   /* frames held by the reorder window */
    uint64_t win_deadline;
    lf_queue q;     /* units on their way, in delivery order */
    uint64_t last_ready;
    uint64_t bw_epoch, bw_sent; /* bandwidth: bytes sent since the epoch */
    uint64_t passed;            /* bytes delivered on this connection */
    uint64_t reset_left;        /* reset_peer: bytes still to pass */
    uint64_t part_frames_left, part_from, part_until;
    uint64_t timeout_start;
    int input_cut;              /* truncate fired: later bytes are lost */
    mk_lf_stats st;
};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t ms_to_ns(uint64_t ms)
{
    return ms > UINT64_MAX / NS_PER_MS ? UINT64_MAX : ms * NS_PER_MS;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static int q_push(lf_queue *q, lf_unit u)
{
    if (q->head && q->head >= q->len / 2) {
        memmove(q->u, q->u + q->head, (q->len - q->head) * sizeof *q->u);
        q->len -= q->head;
        q->head = 0;
    }
    lf_unit *nu = mk_vec_grow(q->u, &q->cap, q->len, sizeof *nu, 16);
    if (!nu)
        return MK_ENOMEM;
    q->u = nu;
    q->u[q->len++] = u;
    return 0;
}

static size_t q_count(const lf_queue *q) { return q->len - q->head; }

/* Frees every unit in q and returns how many undelivered bytes went. */
static uint64_t q_drain(lf_queue *q)
{
    uint64_t lost = 0;
    for (size_t i = q->head; i < q->len; i++) {
        lost += q->u[i].n - q->u[i].off;
        free(q->u[i].p);
    }
    q->head = q->len = 0;
    return lost;
}

/* The connection breaks: what was on its way is lost with it. */
static void do_reset(mk_lf *lf)
{
    if (lf->state == MK_LF_RESET)
        return;
    lf->state = MK_LF_RESET;
    lf->st.resets++;
    lf->st.bytes_lost += q_drain(&lf->q) + q_drain(&lf->win) + mk_buf_len(&lf->pend);
    mk_buf_clear(&lf->pend);
}

static int timeout_holding(const mk_lf *lf)
{
    return lf->state == MK_LF_OK && lf->active[MK_LF_K_TIMEOUT];
}

/* ---- delivery ---------------------------------------------------------- */

/* Gives a unit released at time t its arrival time and queues it.  Jitter
 * never lets a unit overtake the one before it: the link is one ordered
 * stream, as TCP and Toxiproxy's latency keep it; reordering is the reorder
 * fault's job alone.  On failure the unit is freed and counted as lost. */
static int deliver_at(mk_lf *lf, lf_unit u, uint64_t t)
{
    uint64_t ready = t;
    if (lf->active[MK_LF_K_LATENCY]) {
        const mk_lf_fault *f = &lf->f[MK_LF_K_LATENCY];
        uint64_t d = ms_to_ns(f->ms);
        if (f->jitter) {
            uint64_t j = ms_to_ns(f->jitter);
            uint64_t r = mk_prng_below(&lf->rng, j == UINT64_MAX ? j : 2 * j + 1);
            d = r >= j ? add_sat(d, r - j) : (d > j - r ? d - (j - r) : 0);
        }
        ready = add_sat(t, d);
    }
    if (ready < lf->last_ready)
        ready = lf->last_ready;
    lf->last_ready = ready;
    u.ready = ready;
    u.off = 0;
    u.tag = 0;
    if (q_push(&lf->q, u)) {
        lf->st.bytes_lost += u.n;
        free(u.p);
        return MK_ENOMEM;
    }
    return 0;
}

/* Releases the reorder window at time t in a random order that is not the
 * one the frames came in (when there are two or more), so a reorder fault
 * always reorders instead of passing a window through by chance. */
static int release_window(mk_lf *lf, uint64_t t)
{
    size_t n = q_count(&lf->win);
    if (n == 0)
        return 0; /* also keeps pointer arithmetic off an unallocated window */
    lf_unit *w = lf->win.u + lf->win.head;
    int rc = 0;
    if (n >= 2) {
        int identity;
        do {
            for (size_t i = n - 1; i > 0; i--) {
                size_t j = (size_t)mk_prng_below(&lf->rng, i + 1);
                lf_unit tmp = w[i];
                w[i] = w[j];
                w[j] = tmp;
            }
            identity = 1;
            for (size_t i = 0; i < n && identity; i++)
                identity = w[i].tag == i;
        } while (identity);
        lf->st.windows_reordered++;
    }
    for (size_t i = 0; i < n; i++) {
        int r = deliver_at(lf, w[i], t);
        if (r && !rc)
            rc = r;
    }
    lf->win.head = lf->win.len = 0;
    return rc;
}

/* ---- frame-aware faults ------------------------------------------------ */

static int prob_fires(mk_lf *lf, int kind)
{
    return lf->active[kind] &&
           mk_prng_chance(&lf->rng, lf->f[kind].prob_num, lf->f[kind].prob_den);
}

static void lose(mk_lf *lf, uint8_t *p, size_t n)
{
    lf->st.bytes_lost += n;
    free(p);
}

/* One unit of the sender's stream, pushed at now, meets the faults. */
static int emit(mk_lf *lf, const uint8_t *src, size_t n, int is_frame, uint64_t now)
{
    uint8_t *p = malloc(n);
    if (!p) {
        lf->st.bytes_lost += n;
        return MK_ENOMEM;
    }
    memcpy(p, src, n);
    if (is_frame)
        lf->st.frames_in++;

    if (lf->active[MK_LF_K_PARTITION]) {
        if (lf->part_frames_left) {
            lose(lf, p, n);
            if (is_frame) {
                lf->st.partitioned++;
                if (--lf->part_frames_left == 0)
                    lf->active[MK_LF_K_PARTITION] = 0;
            }
            return 0;
        }
        if (now >= lf->part_from && now < lf->part_until) {
            lose(lf, p, n);
            return 0;
        }
    }
    lf_unit u = {p, n, 0, 0, 0, 0};
    if (!is_frame) {
        /* Plain bytes keep their place after any frames the window holds. */
        int rc = release_window(lf, now);
        int r2 = deliver_at(lf, u, now);
        return rc ? rc : r2;
    }
    if (prob_fires(lf, MK_LF_K_DROP)) {
        lf->st.dropped++;
        lose(lf, p, n);
        return 0;
    }
    if (lf->active[MK_LF_K_TRUNCATE]) {
        /* At least one byte goes and at least one is missing, so the
         * receiver always holds a strict prefix of the frame. */
        size_t keep = 1 + (size_t)mk_prng_below(&lf->rng, n - 1);
        lf->st.truncated++;
        lf->st.bytes_lost += n - keep;
        lf->active[MK_LF_K_TRUNCATE] = 0;
        lf->input_cut = 1;
        /* The frame is at the front of pend and is counted above; the rest
         * of pend comes after the cut and is lost. */
        lf->st.bytes_lost += mk_buf_len(&lf->pend) - n;
        mk_buf_clear(&lf->pend);
        u.n = keep;
        u.cut = 1;
        int rc = release_window(lf, now);
        int r2 = deliver_at(lf, u, now);
        return rc ? rc : r2;
    }
    if (prob_fires(lf, MK_LF_K_CORRUPT)) {
        /* The flipped bit lies in the payload or the trailer, never in the
         * header: a flip there would make the frame fail its checksum as it
         * should, but a flip in the length field would also desynchronise
         * the receiver's framing, which is a different fault (truncate and
         * garbage cover it). */
        size_t at = MK_HDR_LEN + (size_t)mk_prng_below(&lf->rng, n - MK_HDR_LEN);
        p[at] ^= (uint8_t)(1u << mk_prng_below(&lf->rng, 8));
        lf->st.corrupted++;
    }
    int copies = 1;
    if (prob_fires(lf, MK_LF_K_DUPLICATE)) {
        copies = 2;
        lf->st.duplicated++;
    }
    for (int c = 0; c < copies; c++) {
        lf_unit v = u;
        if (c) {
            v.p = malloc(n);
            if (!v.p) {
                lf->st.bytes_lost += n;
                return MK_ENOMEM;
            }
            memcpy(v.p, p, n);
        }
        if (!lf->active[MK_LF_K_REORDER]) {
            int rc = deliver_at(lf, v, now);
            if (rc)
                return rc;
            continue;
        }
        /* The tag records the arrival order, which is how release_window
         * recognises (and avoids) the identity permutation. */
        v.tag = q_count(&lf->win);
        if (v.tag == 0)
            lf->win_deadline = add_sat(now, MK_LF_REORDER_HOLD_NS);
        if (q_push(&lf->win, v)) {
            lose(lf, v.p, n);
            return MK_ENOMEM;
        }
        if (q_count(&lf->win) >= lf->f[MK_LF_K_REORDER].window) {
            int rc = release_window(lf, now);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ---- framing ----------------------------------------------------------- */

static const uint8_t MAGIC[4] = {0x4D, 0x4B, 0x46, 0x52}; /* "MKFR" */

/* How the bytes at d start: the size of a whole frame; 0 if they are not a
 * well-formed header (plain bytes); SIZE_MAX if more bytes are needed to
 * tell or to complete the frame.  Magic, version, flags and a length the
 * receiver accepts make a well-formed header, checked in mk_frame_decode's
 * order; the type is the receiver's business. */
static size_t frame_at(const uint8_t *d, size_t len)
{
    size_t m = len < 4 ? len : 4;
    if (memcmp(d, MAGIC, m))
        return 0;
    if (len < MK_HDR_LEN)
        return SIZE_MAX;
    uint32_t plen = (uint32_t)d[8] | (uint32_t)d[9] << 8 | (uint32_t)d[10] << 16 |
                    (uint32_t)d[11] << 24;
    if (d[4] != MK_PROTO_VERSION || d[6] || d[7] || plen > MK_MAX_PAYLOAD)
        return 0;
    size_t total = (size_t)plen + MK_FRAME_OVERHEAD;
    return len < total ? SIZE_MAX : total;
}

/* Plain bytes run up to the next place a frame could start. */
static size_t plain_run(const uint8_t *d, size_t len)
{
    for (size_t i = 1; i < len; i++) {
        size_t m = len - i < 4 ? len - i : 4;
        if (!memcmp(d + i, MAGIC, m))
            return i;
    }
    return len;
}

static int split_units(mk_lf *lf, uint64_t now)
{
    int rc = 0;
    while (mk_buf_len(&lf->pend) && !lf->input_cut) {
        const uint8_t *d = mk_buf_peek(&lf->pend);
        size_t len = mk_buf_len(&lf->pend);
        size_t fl = frame_at(d, len);
        if (fl == SIZE_MAX)
            break;
        int is_frame = fl != 0;
        size_t n = is_frame ? fl : plain_run(d, len);
        int r = emit(lf, d, n, is_frame, now);
        if (r && !rc)
            rc = r;
        if (!lf->input_cut)
            mk_buf_consume(&lf->pend, n);
    }
    return rc;
}

/* ---- clock ------------------------------------------------------------- */

/* Moves the pipe's clock to now and fires what falls due by then. */
static void advance(mk_lf *lf, uint64_t now)
{
    if (now > lf->clock)
        lf->clock = now;
    if (q_count(&lf->win) && lf->clock >= lf->win_deadline)
        (void)release_window(lf, lf->win_deadline);
    if (timeout_holding(lf) && lf->f[MK_LF_K_TIMEOUT].ms &&
        lf->clock >= add_sat(lf->timeout_start, ms_to_ns(lf->f[MK_LF_K_TIMEOUT].ms)))
        do_reset(lf);
}

/* limit_data and reset_peer compare the bytes passed with their bound. */
static void check_limits(mk_lf *lf)
{
    if (lf->state != MK_LF_OK)
        return;
    if (lf->active[MK_LF_K_LIMIT_DATA] && lf->passed >= lf->f[MK_LF_K_LIMIT_DATA].bytes)
        do_reset(lf);
    else if (lf->active[MK_LF_K_RESET_PEER] && lf->reset_left == 0) {
        /* reset_peer is one-shot: the scenario resets one connection, not
         * every one after it. */
        lf->active[MK_LF_K_RESET_PEER] = 0;
        do_reset(lf);
    }
}

/* ---- API --------------------------------------------------------------- */

mk_lf *mk_lf_new(uint64_t seed)
{
    mk_lf *lf = calloc(1, sizeof *lf);
    if (!lf)
        return NULL;
    mk_prng_seed(&lf->rng, seed);
    mk_buf_init(&lf->pend);
    return lf;
}

void mk_lf_free(mk_lf *lf)
{
    if (!lf)
        return;
    q_drain(&lf->q);
    q_drain(&lf->win);
    free(lf->q.u);
    free(lf->win.u);
    mk_buf_free(&lf->pend);
    free(lf);
}

static int fault_ok(const mk_lf_fault *f)
{
    switch (f->kind) {
    case MK_LF_K_BANDWIDTH:
        return f->kbps >= 1;
    case MK_LF_K_SLICER:
        return f->bytes >= 1;
    case MK_LF_K_REORDER:
        return f->window >= 2;
    case MK_LF_K_DROP:
    case MK_LF_K_DUPLICATE:
    case MK_LF_K_CORRUPT:
        return f->prob_den >= 1 && f->prob_num <= f->prob_den;
    case MK_LF_K_PARTITION:
        return (f->frames >= 1) != (f->ms >= 1);
    case MK_LF_K_LATENCY:
    case MK_LF_K_LIMIT_DATA:
    case MK_LF_K_RESET_PEER:
    case MK_LF_K_TIMEOUT:
    case MK_LF_K_TRUNCATE:
    case MK_LF_K_CLEAR:
        return 1;
    default:
        return 0;
    }
}

int mk_lf_set(mk_lf *lf, const mk_lf_fault *f)
{
    if (!fault_ok(f))
        return MK_EINVAL;
    int rc = 0;
    if (f->kind == MK_LF_K_CLEAR || f->kind == MK_LF_K_REORDER)
        rc = release_window(lf, lf->clock);
    if (f->kind == MK_LF_K_CLEAR) {
        memset(lf->active, 0, sizeof lf->active);
        return rc;
    }
    lf->f[f->kind] = *f;
    lf->active[f->kind] = 1;
    switch (f->kind) {
    case MK_LF_K_BANDWIDTH:
        lf->bw_epoch = lf->clock;
        lf->bw_sent = 0;
        break;
    case MK_LF_K_LIMIT_DATA:
        /* Counted from the fault on, as Toxiproxy counts from the toxic. */
        lf->passed = 0;
        break;
    case MK_LF_K_RESET_PEER:
        lf->reset_left = f->bytes;
        break;
    case MK_LF_K_TIMEOUT:
        lf->timeout_start = lf->clock;
        break;
    case MK_LF_K_PARTITION:
        lf->part_frames_left = f->frames;
        lf->part_from = lf->clock;
        lf->part_until = f->ms ? add_sat(lf->clock, ms_to_ns(f->ms)) : lf->clock;
        break;
    default:
        break;
    }
    check_limits(lf);
    return rc;
}

int mk_lf_push(mk_lf *lf, const uint8_t *p, size_t n, uint64_t now_ns)
{
    advance(lf, now_ns);
    lf->st.bytes_in += n;
    if (lf->state != MK_LF_OK || timeout_holding(lf) || lf->input_cut) {
        lf->st.bytes_lost += n;
        return 0;
    }
    if (mk_buf_append(&lf->pend, p, n)) {
        lf->st.bytes_lost += n;
        return MK_ENOMEM;
    }
    return split_units(lf, lf->clock);
}

/* Bandwidth: byte k after the epoch has gone out at epoch + ceil(k * 1e6 /
 * kbps) ns (1000 * kbps bytes per second).  Counting from an epoch instead
 * of adding per-byte times keeps the rate exact over long runs. */
static uint64_t bw_time(const mk_lf *lf, uint64_t k)
{
    lf_u128 x = (lf_u128)k * NS_PER_MS + lf->f[MK_LF_K_BANDWIDTH].kbps - 1;
    x /= lf->f[MK_LF_K_BANDWIDTH].kbps;
    return x > UINT64_MAX - lf->bw_epoch ? UINT64_MAX : lf->bw_epoch + (uint64_t)x;
}

size_t mk_lf_pull(mk_lf *lf, uint64_t now_ns, uint8_t *out, size_t cap)
{
    advance(lf, now_ns);
    if (lf->state != MK_LF_OK || timeout_holding(lf))
        return 0;
    uint64_t now = lf->clock;
    uint64_t limit = cap;
    if (lf->active[MK_LF_K_SLICER])
        limit = min_u64(limit, lf->f[MK_LF_K_SLICER].bytes);
    if (lf->active[MK_LF_K_LIMIT_DATA])
        limit = min_u64(limit, lf->f[MK_LF_K_LIMIT_DATA].bytes - lf->passed);
    if (lf->active[MK_LF_K_RESET_PEER])
        limit = min_u64(limit, lf->reset_left);
    size_t got = 0;
    int cut = 0;
    while (got < limit && q_count(&lf->q)) {
        lf_unit *u = &lf->q.u[lf->q.head];
        if (u->ready > now)
            break;
        uint64_t take = min_u64(u->n - u->off, limit - got);
        if (lf->active[MK_LF_K_BANDWIDTH]) {
            /* An idle transmitter starts a new epoch when the unit arrives,
             * so idle time earns no credit for a later burst. */
            if (u->ready > bw_time(lf, lf->bw_sent)) {
                lf->bw_epoch = u->ready;
                lf->bw_sent = 0;
            }
            lf_u128 sent = (lf_u128)(now - lf->bw_epoch) * lf->f[MK_LF_K_BANDWIDTH].kbps / NS_PER_MS;
            uint64_t allowed = sent - lf->bw_sent > UINT64_MAX ? UINT64_MAX
                                                               : (uint64_t)(sent - lf->bw_sent);
            take = min_u64(take, allowed);
            lf->bw_sent += take;
        }
        if (!take)
            break;
        memcpy(out + got, u->p + u->off, (size_t)take);
        u->off += (size_t)take;
        got += (size_t)take;
        if (u->off == u->n) {
            cut = u->cut;
            free(u->p);
            lf->q.head++;
            if (cut)
                break;
        }
    }
    lf->st.bytes_out += got;
    lf->passed += got;
    if (lf->active[MK_LF_K_RESET_PEER])
        lf->reset_left -= got;
    if (cut)
        do_reset(lf);
    check_limits(lf);
    return got;
}

uint64_t mk_lf_next_event(const mk_lf *lf)
{
    if (lf->state != MK_LF_OK)
        return UINT64_MAX;
    if (timeout_holding(lf))
        return lf->f[MK_LF_K_TIMEOUT].ms
                   ? add_sat(lf->timeout_start, ms_to_ns(lf->f[MK_LF_K_TIMEOUT].ms))
                   : UINT64_MAX;
    uint64_t t = q_count(&lf->win) ? lf->win_deadline : UINT64_MAX;
    if (q_count(&lf->q)) {
        uint64_t r = lf->q.u[lf->q.head].ready;
        if (lf->active[MK_LF_K_BANDWIDTH]) {
            uint64_t busy = bw_time(lf, lf->bw_sent);
            if (r > busy) {
                /* A new epoch would start at r; its first byte needs one
                 * byte time. */
                lf_u128 one = ((lf_u128)NS_PER_MS + lf->f[MK_LF_K_BANDWIDTH].kbps - 1) /
                              lf->f[MK_LF_K_BANDWIDTH].kbps;
                r = add_sat(r, (uint64_t)one);
            } else {
                r = bw_time(lf, lf->bw_sent + 1);
            }
        }
        t = min_u64(t, r);
    }
    return t;
}

int mk_lf_state(const mk_lf *lf)
{
    return timeout_holding(lf) ? MK_LF_TIMEOUT : lf->state;
}

void mk_lf_reconnect(mk_lf *lf, uint64_t now_ns)
{
    if (now_ns > lf->clock)
        lf->clock = now_ns;
    lf->st.bytes_lost += q_drain(&lf->q) + q_drain(&lf->win) + mk_buf_len(&lf->pend);
    mk_buf_clear(&lf->pend);
    lf->state = MK_LF_OK;
    lf->input_cut = 0;
    lf->last_ready = 0;
    lf->passed = 0;
    lf->bw_epoch = lf->clock;
    lf->bw_sent = 0;
    lf->timeout_start = lf->clock;
    check_limits(lf);
}

void mk_lf_stats_get(const mk_lf *lf, mk_lf_stats *st) { *st = lf->st; }

size_t mk_lf_in_flight(const mk_lf *lf)
{
    size_t n = mk_buf_len(&lf->pend);
    for (size_t i = lf->q.head; i < lf->q.len; i++)
        n += lf->q.u[i].n - lf->q.u[i].off;
    for (size_t i = lf->win.head; i < lf->win.len; i++)
        n += lf->win.u[i].n;
    return n;
}
