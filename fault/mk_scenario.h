/*
 * mk_scenario.h - the scenario-script language of fault/SCENARIOS.md.
 *
 * A scenario is a small line-oriented text that describes one run of the
 * reference pair: its configuration (volume, mode, seed, transport,
 * workload, CP schedule), an ordered list of steps (writes, CPs, crashes
 * and restarts, promotion, storage faults at libfiu points, link faults)
 * and the expectations the run must meet.  This module only parses and
 * prints the language; running a scenario is the runner's job.
 *
 * The parser turns the text into typed structs (enums and numbers, no
 * strings left to re-parse) or into one error that names FILE:LINE:COL and
 * what was expected there.  It never recurses, never reads past the length
 * it is given (the text need not end in NUL, so a fuzzer can feed it any
 * bytes), and uses memory linear in the input size.
 *
 * mk_scenario_print() writes a canonical form that parses back to an equal
 * scenario (mk_scenario_equal), which is what lets the simulator write a
 * failing run out as a script and shrink it.
 */
#ifndef MK_SCENARIO_H
#define MK_SCENARIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MK_SCN_LINE_MAX 4096          /* bytes in a line, without its LF/CRLF */
#define MK_SCN_NAME_MAX 127           /* bytes in a scenario name */
#define MK_SCN_POINT_MAX 63           /* bytes in a fault point name */
#define MK_SCN_MAX_STATEMENTS (1u << 20)
#define MK_SCN_FILE_MAX (64u << 20)   /* mk_scenario_parse_file refuses more */
#define MK_SCN_FOREVER UINT64_MAX     /* fault count=forever */

typedef struct mk_scenario mk_scenario;

/* Where and why parsing failed.  line and col are 1-based; col counts bytes
 * (a tab is one column).  Errors that have no position (a file that cannot
 * be opened, memory exhausted) have line = col = 0. */
typedef struct mk_scenario_error {
    int code;            /* MK_EUSAGE for bad input; MK_EIO, MK_EINVAL, MK_ENOMEM */
    uint32_t line, col;
    char file[256];      /* the name given to the parser, truncated if longer */
    char msg[384];
} mk_scenario_error;

/* ---- configuration -------------------------------------------------------- */

/* Which configuration statements the scenario gave; a runner applies its
 * own defaults (mk_pair_defaults) to the others. */
enum {
    MK_SCN_HAS_VOLUME = 1 << 0,
    MK_SCN_HAS_MODE = 1 << 1,
    MK_SCN_HAS_SEED = 1 << 2,
    MK_SCN_HAS_TRANSPORT = 1 << 3,
    MK_SCN_HAS_WORKLOAD = 1 << 4,
    MK_SCN_HAS_WRITES = 1 << 5,   /* workload ... writes=N */
    MK_SCN_HAS_CPS = 1 << 6
};

typedef struct mk_scenario_config {
    unsigned has;                 /* MK_SCN_HAS_* */
    uint64_t nblocks;             /* volume blocks= */
    uint32_t block_size;          /* volume block-size= (4096 if omitted) */
    int mode;                     /* MK_MODE_* of mk_wire.h */
    uint64_t seed;
    int transport;                /* MK_T_SIM, MK_T_PIPE, MK_T_SOCKETPAIR or MK_T_TCP */
    int workload;                 /* MK_WL_* of mk_workload.h */
    uint64_t writes_per_cp;       /* workload writes= */
    uint32_t cps;
} mk_scenario_config;

/* ---- steps ---------------------------------------------------------------- */

enum mk_scn_step_kind {
    MK_SCN_WRITE = 1,   /* write offset=O length=L [fill=B|seed=S] */
    MK_SCN_WRITES,      /* writes N */
    MK_SCN_CP,          /* cp */
    MK_SCN_CP_EVERY,    /* cp every=N */
    MK_SCN_CRASH,       /* crash ROLE [at=POINT [hit=K] | after=EVENT] [restart=...] */
    MK_SCN_RESTART,     /* restart ROLE */
    MK_SCN_PROMOTE,     /* promote */
    MK_SCN_FAULT,       /* fault POINT kind=K [hit=K] [count=C] [prob=P/Q] [after=EVENT] */
    MK_SCN_LINK         /* link KIND ... */
};

enum mk_scn_role { MK_SCN_DEST, MK_SCN_SOURCE };

/* Where the bytes of an explicit write come from. */
enum mk_scn_data {
    MK_SCN_DATA_RUN,    /* the run's own PRNG (no fill= or seed=) */
    MK_SCN_DATA_FILL,   /* every byte is value */
    MK_SCN_DATA_SEED    /* a PRNG seeded with value */
};

/* A protocol event (SCENARIOS.md, "Events").  n is K, N or T as the event
 * is written; cp is the K of ref:N/cp:K and data:N/cp:K. */
enum mk_scn_event_kind {
    MK_SCN_EV_NONE,      /* no event given */
    MK_SCN_EV_BYTES,     /* link reset_peer after=BYTES: n bytes */
    MK_SCN_EV_CP_BEGIN,  /* cp-begin:K */
    MK_SCN_EV_CP_COMMIT, /* cp-commit:K */
    MK_SCN_EV_CP_ACK,    /* cp-ack:K */
    MK_SCN_EV_REF,       /* ref:N/cp:K */
    MK_SCN_EV_DATA,      /* data:N/cp:K */
    MK_SCN_EV_LOG_ACK,   /* log-ack:T */
    MK_SCN_EV_TRANSFER,  /* transfer:T */
    MK_SCN_EV_WRITE      /* write:N */
};

typedef struct mk_scn_event {
    int kind;
    uint64_t n, cp;
} mk_scn_event;

typedef struct mk_scn_prob {
    uint64_t num, den;   /* den >= 1, num <= den */
} mk_scn_prob;

enum mk_scn_trigger { MK_SCN_NOW, MK_SCN_AT_POINT, MK_SCN_AFTER_EVENT };
enum mk_scn_restart { MK_SCN_RESTART_MANUAL, MK_SCN_RESTART_AUTO };

enum mk_scn_fault_kind {
    MK_SCN_F_EIO, MK_SCN_F_ENOSPC, MK_SCN_F_SHORT, MK_SCN_F_TORN, MK_SCN_F_ENOMEM
};

/* Toxiproxy's names where they fit (latency .. timeout), then the rest. */
enum mk_scn_link_kind {
    MK_SCN_L_LATENCY, MK_SCN_L_BANDWIDTH, MK_SCN_L_SLICER, MK_SCN_L_LIMIT_DATA,
    MK_SCN_L_RESET_PEER, MK_SCN_L_TIMEOUT, MK_SCN_L_DROP, MK_SCN_L_DUPLICATE,
    MK_SCN_L_REORDER, MK_SCN_L_CORRUPT, MK_SCN_L_TRUNCATE, MK_SCN_L_PARTITION,
    MK_SCN_L_CLEAR
};

/* Which direction of the link a link fault acts on. */
enum mk_scn_dir { MK_SCN_DIR_BOTH, MK_SCN_DIR_TO_DEST, MK_SCN_DIR_TO_SOURCE };

typedef struct mk_scenario_step {
    int kind;                     /* MK_SCN_WRITE .. MK_SCN_LINK */
    uint32_t line, col;           /* of the statement's keyword */
    uint32_t point_col;           /* fault, crash at=: of the point name; else 0 */
    union {
        struct {
            uint64_t offset;
            uint32_t length;
            int data;             /* MK_SCN_DATA_* */
            uint64_t value;       /* the fill byte or the seed */
        } write;
        struct {
            uint64_t count;
        } writes;
        struct {
            uint64_t every;       /* 0 turns automatic CPs off */
        } cp_every;
        struct {
            int role, trigger, restart;
            char point[MK_SCN_POINT_MAX + 1]; /* MK_SCN_AT_POINT */
            uint64_t hit;                     /* MK_SCN_AT_POINT, >= 1 */
            mk_scn_event after;               /* MK_SCN_AFTER_EVENT */
        } crash;
        struct {
            int role;
        } restart;
        struct {
            char point[MK_SCN_POINT_MAX + 1];
            int kind;             /* MK_SCN_F_* */
            uint64_t hit;         /* first failing hit, >= 1 */
            uint64_t count;       /* failures, >= 1, or MK_SCN_FOREVER */
            mk_scn_prob prob;     /* each eligible hit fails with this chance */
            mk_scn_event after;   /* hits are counted from this event on */
        } fault;
        struct {
            int kind;             /* MK_SCN_L_* */
            int dir;              /* MK_SCN_DIR_* */
            uint64_t ms;          /* latency, timeout, partition ms= */
            uint64_t jitter;      /* latency */
            uint64_t kbps;        /* bandwidth */
            uint64_t bytes;       /* slicer, limit_data */
            uint64_t window;      /* reorder */
            uint64_t frames;      /* partition frames= */
            mk_scn_prob prob;     /* drop, duplicate, corrupt */
            mk_scn_event after;   /* when the fault starts (reset_peer: or bytes) */
        } link;
    };
} mk_scenario_step;

/* ---- expectations --------------------------------------------------------- */

enum mk_scn_expect_kind {
    MK_SCN_EXPECT_VERIFY_EVERY_CP = 1, /* expect verify-every-cp */
    MK_SCN_EXPECT_NO_ACKED_WRITE_LOST, /* expect no-acked-write-lost */
    MK_SCN_EXPECT_MIRROR_EQUALS,       /* expect mirror-equals cp=K */
    MK_SCN_EXPECT_ERROR,               /* expect error MK_NAME */
    MK_SCN_EXPECT_OUT_OF_SYNC,         /* expect out-of-sync */
    MK_SCN_EXPECT_EXIT                 /* expect exit CODE */
};

typedef struct mk_scenario_expect {
    int kind;
    uint32_t line, col;   /* of the 'expect' keyword */
    uint64_t cp;          /* mirror-equals */
    int err;              /* error: the negative MK_ code */
    int exit_code;        /* exit: 0..255 */
} mk_scenario_expect;

/* ---- parsing -------------------------------------------------------------- */

/* Parses len bytes of text.  name is used in error messages only (NULL:
 * "<input>").  On success *out is a new scenario and 0 is returned; on
 * failure *out is NULL, *err (if err is not NULL) says where and why, and
 * the error code is returned: MK_EUSAGE for any malformed input, MK_ENOMEM
 * if memory ran out. */
int mk_scenario_parse(const char *name, const char *text, size_t len,
                      mk_scenario **out, mk_scenario_error *err);

/* Reads and parses a file.  A missing file is MK_EINVAL, a read failure
 * MK_EIO, a file larger than MK_SCN_FILE_MAX MK_EUSAGE (all with line 0). */
int mk_scenario_parse_file(const char *path, mk_scenario **out,
                           mk_scenario_error *err);

void mk_scenario_free(mk_scenario *sc);

/* "FILE:LINE:COL: MK_NAME: message", or "FILE: MK_NAME: message" when the
 * error has no position.  Returns what snprintf returns. */
int mk_scenario_error_format(const mk_scenario_error *e, char *buf, size_t n);
void mk_scenario_error_print(FILE *f, const mk_scenario_error *e);

/* ---- reading a scenario --------------------------------------------------- */

const char *mk_scenario_name(const mk_scenario *sc);   /* "" if none given */
const char *mk_scenario_file(const mk_scenario *sc);   /* the name parsed from */
const mk_scenario_config *mk_scenario_config_of(const mk_scenario *sc);
size_t mk_scenario_nsteps(const mk_scenario *sc);
const mk_scenario_step *mk_scenario_step_at(const mk_scenario *sc, size_t i);
size_t mk_scenario_nexpects(const mk_scenario *sc);
const mk_scenario_expect *mk_scenario_expect_at(const mk_scenario *sc, size_t i);

/* 1 if the scenario has no write, writes or cp step, so that after its
 * steps (which then only arm faults) the runner runs the automatic
 * schedule: cps times (writes_per_cp workload writes, then a CP). */
int mk_scenario_uses_schedule(const mk_scenario *sc);

/* Copies the configuration the scenario gave into cfg, leaving every other
 * field as it was (call mk_pair_defaults first). */
struct mk_pair_config;
void mk_scenario_apply(const mk_scenario *sc, struct mk_pair_config *cfg);

/* The parser accepts any well-formed fault point name; the runner knows
 * the catalogue.  This reports the first point (fault or crash at=) for
 * which known() returns 0 as an MK_EUSAGE error at the point's line and
 * column.  Returns 0 if every point is known. */
int mk_scenario_check_points(const mk_scenario *sc,
                             int (*known)(const char *point, void *ctx),
                             void *ctx, mk_scenario_error *err);

/* ---- writing a scenario --------------------------------------------------- */

/* Prints the canonical form: configuration, then steps, then expectations,
 * one statement per line, every key at its default left out.  It parses
 * back to a scenario equal to sc.  Returns 0, MK_EINVAL for a step or
 * expectation of an unknown kind (only possible for built scenarios), or
 * MK_EIO if the stream failed. */
int mk_scenario_print(FILE *f, const mk_scenario *sc);

/* 1 if a and b describe the same run: same name, configuration, steps and
 * expectations in the same order.  Source positions are not compared. */
int mk_scenario_equal(const mk_scenario *a, const mk_scenario *b);

/* Builds a scenario from parts, e.g. for the simulator to write out and
 * shrink a failing run.  The parts are checked by the same rules as text:
 * they are printed and parsed back (errors name "<built>" and the line of
 * the canonical form).  name may be NULL or "". */
int mk_scenario_build(const char *name, const mk_scenario_config *cfg,
                      const mk_scenario_step *steps, size_t nsteps,
                      const mk_scenario_expect *expects, size_t nexpects,
                      mk_scenario **out, mk_scenario_error *err);

/* ---- names, for runners' messages ----------------------------------------- */

const char *mk_scn_role_name(int role);             /* "dest", "source" */
const char *mk_scn_fault_kind_name(int kind);       /* "eio", ... */
const char *mk_scn_link_kind_name(int kind);        /* "latency", ... */
const char *mk_scn_step_name(int kind);             /* "write", "cp every", ... */
/* Writes an event as the language spells it ("ref:37/cp:3"); "" for none. */
int mk_scn_event_format(const mk_scn_event *ev, char *buf, size_t n);

#endif
