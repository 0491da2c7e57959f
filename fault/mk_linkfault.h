/*
 * mk_linkfault.h - link faults of the simulated link (issue 4, item 2;
 * fault/SCENARIOS.md section 3.5).
 *
 * An mk_lf is one direction of a faulty pipe on a virtual clock.  The
 * sender's bytes go in with mk_lf_push, the receiver takes what has arrived
 * with mk_lf_pull, and mk_lf_next_event says when more will arrive, so a
 * simulator can jump its clock instead of spinning.  A link has two pipes,
 * one per direction; the scenario's dir= key therefore chooses which pipe
 * (or both) a fault is set on, and this module never sees it.
 *
 * Frame-aware faults (drop, duplicate, reorder, corrupt, truncate,
 * partition frames=) act on whole frames.  The pipe finds frame boundaries
 * in the byte stream from the header's magic and length field (mk_wire.h);
 * bytes that do not start a well-formed header pass through as plain bytes,
 * untouched by the frame-aware faults.  Byte-level faults (latency,
 * bandwidth, slicer, limit_data, reset_peer, timeout, partition ms=) act on
 * everything.
 *
 * Timing rules a simulator can rely on:
 *  - latency delays each frame, and each run of plain bytes, from the push
 *    that completes it; jitter never lets one overtake another, because
 *    the link is one ordered stream and reordering is the reorder fault's
 *    job alone;
 *  - bandwidth counts from the time bytes arrive (after latency); an idle
 *    link earns no credit for a later burst;
 *  - a reorder window that does not fill is released 1 ms (virtual) after
 *    its first frame came, so a quiet protocol does not deadlock on it;
 *  - partition ms= loses what is pushed during the partition; bytes
 *    already on their way still arrive;
 *  - a frame is judged when its last byte is pushed; until then its bytes
 *    wait in the pipe (engines write whole frames, so this costs nothing).
 *
 * Every random choice draws from the pipe's own mk_prng, seeded at
 * mk_lf_new, so the same seed and the same sequence of calls (with the same
 * clock values) deliver byte-identical output.  Memory is proportional to
 * the bytes in flight.
 */
#ifndef MK_LINKFAULT_H
#define MK_LINKFAULT_H

#include <stddef.h>
#include <stdint.h>

/* The kinds, in the order and with the names of the scenario language's
 * enum mk_scn_link_kind, so a runner converts one to the other by value
 * (mk_linkfault.c checks that the two orders agree). */
enum mk_lf_kind {
    MK_LF_K_LATENCY,    /* ms, jitter: each frame (or run of plain bytes) is delayed */
    MK_LF_K_BANDWIDTH,  /* kbps: 1000*kbps bytes per virtual second, as Toxiproxy */
    MK_LF_K_SLICER,     /* bytes: each pull delivers at most this many bytes */
    MK_LF_K_LIMIT_DATA, /* bytes: the connection is reset once this many bytes passed */
    MK_LF_K_RESET_PEER, /* bytes: reset after this many more bytes; 0: at once */
    MK_LF_K_TIMEOUT,    /* ms: nothing passes; the connection closes after ms (0: never) */
    MK_LF_K_DROP,       /* prob: a frame is lost */
    MK_LF_K_DUPLICATE,  /* prob: a frame is delivered twice */
    MK_LF_K_REORDER,    /* window >= 2: frames are permuted within windows */
    MK_LF_K_CORRUPT,    /* prob: one bit of a frame's payload or trailer flips */
    MK_LF_K_TRUNCATE,   /* the next frame is cut short, then the connection resets */
    MK_LF_K_PARTITION,  /* frames or ms (exactly one): everything is lost */
    MK_LF_K_CLEAR,      /* removes every fault */
    MK_LF_K_NKINDS
};

/* One fault; only the members its kind names are read. */
typedef struct mk_lf_fault {
    int kind;                   /* MK_LF_* */
    uint64_t ms, jitter;        /* latency (ms +- jitter), timeout, partition ms= */
    uint64_t kbps;              /* bandwidth, >= 1 */
    uint64_t bytes;             /* slicer (>= 1), limit_data, reset_peer after= */
    uint64_t window;            /* reorder, >= 2 */
    uint64_t frames;            /* partition frames= */
    uint64_t prob_num, prob_den; /* drop, duplicate, corrupt: den >= 1, num <= den */
} mk_lf_fault;

/* States, as mk_lf_state reports them. */
enum mk_lf_state {
    MK_LF_OK = 0,
    /* The connection was reset or closed (limit_data, reset_peer, truncate,
     * or a timeout's close).  Nothing more arrives and pushed bytes are
     * discarded; the caller must end the session and mk_lf_reconnect. */
    MK_LF_RESET = 1,
    /* A timeout fault is black-holing the link: nothing arrives until the
     * connection closes (MK_LF_RESET at the time mk_lf_next_event gives)
     * or, with ms=0, ever on this connection. */
    MK_LF_TIMEOUT = 2
};

/* What the pipe did, for a run's report and for the tests. */
typedef struct mk_lf_stats {
    uint64_t bytes_in, bytes_out;  /* pushed, pulled */
    uint64_t frames_in;            /* whole frames found in the pushed stream */
    uint64_t bytes_lost;           /* pushed bytes that will never be delivered */
    uint64_t dropped, duplicated, corrupted, truncated;
    uint64_t partitioned;          /* frames lost to partition frames= */
    uint64_t windows_reordered;    /* reorder windows released in a new order */
    uint64_t resets;               /* transitions to MK_LF_RESET */
} mk_lf_stats;

typedef struct mk_lf mk_lf;

/* NULL when memory runs out. */
mk_lf *mk_lf_new(uint64_t seed);
void mk_lf_free(mk_lf *lf);

/*
 * Adds a fault, replacing an active one of the same kind; MK_LF_K_CLEAR
 * removes them all (held reorder windows are released in order, bytes
 * already delayed keep their delivery times).  A fault starts at the
 * pipe's clock: the latest time a push or pull has shown it.  Returns 0, or
 * MK_EINVAL for an unknown kind or a parameter outside the rules of
 * SCENARIOS.md 3.5 (nothing changes then).
 */
int mk_lf_set(mk_lf *lf, const mk_lf_fault *f);

/*
 * The sender wrote n bytes at now_ns.  Returns 0, or MK_ENOMEM (the bytes
 * are then lost, as the counters say).  After a reset or during a timeout
 * the bytes are discarded and 0 is returned: a broken connection loses
 * data silently and mk_lf_state tells.  Clock values must not go back.
 */
int mk_lf_push(mk_lf *lf, const uint8_t *p, size_t n, uint64_t now_ns);

/* Copies up to cap bytes that have arrived by now_ns into out and returns
 * how many.  A slicer makes one pull at most its size. */
size_t mk_lf_pull(mk_lf *lf, uint64_t now_ns, uint8_t *out, size_t cap);

/* The virtual time at which mk_lf_pull returns more bytes or the state
 * changes (a timeout closing, a held reorder window released); at or
 * before the clock if bytes can be pulled already; UINT64_MAX if nothing
 * will happen without another push. */
uint64_t mk_lf_next_event(const mk_lf *lf);

int mk_lf_state(const mk_lf *lf); /* MK_LF_OK, MK_LF_RESET, MK_LF_TIMEOUT */

/* A new connection at now_ns: everything in flight is dropped, the state
 * is MK_LF_OK again and per-connection faults start over (limit_data
 * counts from 0, a timeout starts its timer again).  Faults stay set; a
 * truncate or reset_peer that has fired is gone. */
void mk_lf_reconnect(mk_lf *lf, uint64_t now_ns);

void mk_lf_stats_get(const mk_lf *lf, mk_lf_stats *st);
size_t mk_lf_in_flight(const mk_lf *lf); /* bytes pushed, not yet pulled or lost */

/*
 * Parses a --link spec - `link` statements of the scenario language
 * without the word `link`, separated by ';', e.g. "drop prob=1/200;
 * latency ms=3 dir=to-dest" - and sets each fault on the pipe its dir=
 * names (either pipe may be NULL to ignore that direction).  after=BYTES
 * is taken as the fault's byte count; other after= events need a scenario
 * and are refused.  Returns 0, MK_EUSAGE with a message in err (the
 * parser's "--link:LINE:COL: ..." form), or MK_ENOMEM.  Faults set before
 * an error stay set: callers discard the pipes on failure.
 * (fault/mk_linkspec.c)
 */
int mk_lf_parse_spec(const char *spec, mk_lf *to_dest, mk_lf *to_source, char *err,
                     size_t errlen);

/* Sets one parsed `link` step (mk_scenario.h) on the pipes its dir= names;
 * a scenario runner calls it when the step runs or its after= event comes.
 * 0 or MK_EINVAL (a parameter the pipe cannot take). */
struct mk_scenario_step;
int mk_lf_apply_step(const struct mk_scenario_step *st, mk_lf *to_dest, mk_lf *to_source);

#endif
