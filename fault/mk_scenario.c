/*
 * mk_scenario.c - parser and printer of the scenario language
 * (fault/SCENARIOS.md has the grammar and the meaning of every statement).
 *
 * The parser works one line at a time: it checks the line's bytes (no NUL,
 * no stray CR, at most MK_SCN_LINE_MAX bytes), splits it into blank-separated
 * tokens up to a '#' comment, and hands the tokens to the handler of the
 * statement named by the first token.  Handlers check positional arguments
 * and key=value pairs against fixed tables, so every error can name the
 * exact column and list what was expected.  A few rules concern the whole
 * scenario (the automatic CP schedule against explicit steps, out-of-sync
 * outside sync mode); they are checked at the end with the positions saved
 * when the statements were read.
 *
 * Nothing here recurses, and nothing reads past the length it was given.
 * Memory is one parser context of fixed size plus the scenario's arrays,
 * which grow with the statements of the input and so stay linear in it.
 */
#include "mk_scenario.h"
#include "mk_vec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mk_err.h"
#include "mk_pair.h"
#include "mk_wire.h"
#include "mk_workload.h"

/* ---- name tables ---------------------------------------------------------- */

/* Every closed set of words in the language is one of these tables, so that
 * lookups, printing and the "expected ..." lists of error messages all come
 * from the same place and cannot drift apart. */
typedef struct nv {
    const char *name;
    int val;
} nv;

static const nv modes[] = {
    {"sync", MK_MODE_SYNC}, {"semi-sync", MK_MODE_SEMI}, {"async", MK_MODE_ASYNC}, {NULL, 0}};
static const nv transports[] = {
    {"sim", MK_T_SIM}, {"pipe", MK_T_PIPE}, {"socketpair", MK_T_SOCKETPAIR},
    {"tcp", MK_T_TCP},  {NULL, 0}};
static const nv workloads[] = {
    {"mixed", MK_WL_MIXED}, {"whole", MK_WL_WHOLE}, {"partial", MK_WL_PARTIAL},
    {"seq", MK_WL_SEQ},     {"hot", MK_WL_HOT},     {NULL, 0}};
static const nv roles[] = {{"dest", MK_SCN_DEST}, {"source", MK_SCN_SOURCE}, {NULL, 0}};
static const nv restarts[] = {
    {"auto", MK_SCN_RESTART_AUTO}, {"manual", MK_SCN_RESTART_MANUAL}, {NULL, 0}};
static const nv fault_kinds[] = {
    {"eio", MK_SCN_F_EIO},     {"enospc", MK_SCN_F_ENOSPC}, {"short", MK_SCN_F_SHORT},
    {"torn", MK_SCN_F_TORN},   {"enomem", MK_SCN_F_ENOMEM}, {NULL, 0}};
static const nv link_kinds[] = {
    {"latency", MK_SCN_L_LATENCY},       {"bandwidth", MK_SCN_L_BANDWIDTH},
    {"slicer", MK_SCN_L_SLICER},         {"limit_data", MK_SCN_L_LIMIT_DATA},
    {"reset_peer", MK_SCN_L_RESET_PEER}, {"timeout", MK_SCN_L_TIMEOUT},
    {"drop", MK_SCN_L_DROP},             {"duplicate", MK_SCN_L_DUPLICATE},
    {"reorder", MK_SCN_L_REORDER},       {"corrupt", MK_SCN_L_CORRUPT},
    {"truncate", MK_SCN_L_TRUNCATE},     {"partition", MK_SCN_L_PARTITION},
    {"clear", MK_SCN_L_CLEAR},           {NULL, 0}};
static const nv dirs[] = {
    {"both", MK_SCN_DIR_BOTH}, {"to-dest", MK_SCN_DIR_TO_DEST},
    {"to-source", MK_SCN_DIR_TO_SOURCE}, {NULL, 0}};
static const nv expect_kinds[] = {
    {"verify-every-cp", MK_SCN_EXPECT_VERIFY_EVERY_CP},
    {"no-acked-write-lost", MK_SCN_EXPECT_NO_ACKED_WRITE_LOST},
    {"mirror-equals", MK_SCN_EXPECT_MIRROR_EQUALS},
    {"error", MK_SCN_EXPECT_ERROR},
    {"out-of-sync", MK_SCN_EXPECT_OUT_OF_SYNC},
    {"exit", MK_SCN_EXPECT_EXIT},
    {NULL, 0}};
/* Event names; ref and data take "/cp:K" after their number. */
static const nv events[] = {
    {"cp-begin", MK_SCN_EV_CP_BEGIN}, {"cp-commit", MK_SCN_EV_CP_COMMIT},
    {"cp-ack", MK_SCN_EV_CP_ACK},     {"ref", MK_SCN_EV_REF},
    {"data", MK_SCN_EV_DATA},         {"log-ack", MK_SCN_EV_LOG_ACK},
    {"transfer", MK_SCN_EV_TRANSFER}, {"write", MK_SCN_EV_WRITE},
    {NULL, 0}};
#define EVENT_LIST                                                             \
    "cp-begin:K, cp-commit:K, cp-ack:K, ref:N/cp:K, data:N/cp:K, log-ack:T, "  \
    "transfer:T, write:N"

static const char *nv_name(const nv *t, int val)
{
    for (; t->name; t++)
        if (t->val == val)
            return t->name;
    return NULL;
}

static int nv_find(const nv *t, const char *p, size_t n, int *val)
{
    for (; t->name; t++)
        if (strlen(t->name) == n && memcmp(t->name, p, n) == 0) {
            *val = t->val;
            return 1;
        }
    return 0;
}

/* Writes "a, b, c" into buf (always terminated). */
static const char *nv_list(const nv *t, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const nv *e = t; e->name; e++) {
        int w = snprintf(buf + used, n - used, "%s%s", e == t ? "" : ", ", e->name);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* ---- the scenario and the parser context ----------------------------------- */

enum { CFG_VOLUME, CFG_MODE, CFG_SEED, CFG_TRANSPORT, CFG_WORKLOAD, CFG_CPS, CFG_N };
static const char *const cfg_names[CFG_N] = {"volume", "mode", "seed",
                                             "transport", "workload", "cps"};

struct mk_scenario {
    char *file;
    char name[MK_SCN_NAME_MAX + 1];
    mk_scenario_config cfg;
    mk_scenario_step *steps;
    size_t nsteps, capsteps;
    mk_scenario_expect *ex;
    size_t nex, capex;
};

typedef struct tok {
    const char *p;
    uint32_t len, col;
} tok;

/* One key=value argument: where the key and the value start, so errors
 * about either can point at it. */
typedef struct kv {
    const char *k, *v;
    uint32_t klen, vlen, kcol, vcol;
} kv;

#define KV_MAX 8 /* no statement has more keys; duplicates are refused */
typedef struct kvset {
    kv a[KV_MAX];
    size_t n;
} kvset;

typedef struct parser {
    mk_scenario *sc;
    mk_scenario_error *err;
    uint32_t line;
    size_t nstatements;
    tok toks[MK_SCN_LINE_MAX / 2 + 1]; /* a line of n bytes has at most n/2+1 tokens */
    size_t ntoks;
    /* Where each configuration statement was, for "duplicate" messages and
     * for the rules checked at the end. */
    uint32_t cfg_line[CFG_N], cfg_col[CFG_N];
    uint32_t writes_col;                /* workload's writes= value */
    uint32_t first_step_line;           /* 0 until the first step */
    uint32_t driver_line;               /* first write, writes or cp step */
    const char *driver_kw;
    uint32_t down_line[2];              /* a role crashed with restart=manual */
    uint32_t promote_line;
    uint32_t expect_line[MK_SCN_EXPECT_EXIT + 1]; /* singletons, for duplicates */
    uint32_t out_of_sync_col;
    /* The CPs named by 'expect mirror-equals', an open-addressing hash set
     * (cp -> line), so that finding a duplicate stays linear in the input. */
    uint64_t *meq_cp;
    uint32_t *meq_line;
    size_t meq_n, meq_cap;
    char qbuf[2][40 * 4 + 8];           /* quote() results, two per message */
    char lbuf[320];                     /* nv_list() results */
} parser;

/* Records an error at (line, col) of the current file.  Returns MK_EUSAGE so
 * that handlers can write "return fail(...)". */
static int fail_at(parser *ps, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(parser *ps, uint32_t line, uint32_t col, const char *fmt, ...)
{
    if (ps->err) {
        va_list ap;
        ps->err->code = MK_EUSAGE;
        ps->err->line = line;
        ps->err->col = col;
        va_start(ap, fmt);
        vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
        va_end(ap);
    }
    return MK_EUSAGE;
}

#define fail(ps, col, ...) fail_at((ps), (ps)->line, (col), __VA_ARGS__)

/* Quotes bytes for a message: printable ASCII as is (with ' and \ escaped),
 * anything else as \xHH, and at most 40 bytes of input followed by "...",
 * so that garbage input still gives a short, printable message. */
static const char *quote(parser *ps, int slot, const char *p, size_t n)
{
    char *o = ps->qbuf[slot];
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (i == 40) {
            memcpy(o + j, "...", 3);
            j += 3;
            break;
        }
        if (c == '\'' || c == '\\') {
            o[j++] = '\\';
            o[j++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            o[j++] = (char)c;
        } else {
            j += (size_t)snprintf(o + j, 5, "\\x%02x", c);
        }
    }
    o[j] = '\0';
    return o;
}

static const char *qt(parser *ps, int slot, const tok *t)
{
    return quote(ps, slot, t->p, t->len);
}

static const char *list(parser *ps, const nv *t)
{
    return nv_list(t, ps->lbuf, sizeof ps->lbuf);
}

static int tok_is(const tok *t, const char *s)
{
    return strlen(s) == t->len && memcmp(s, t->p, t->len) == 0;
}

/* The column just after the line's last token: where a missing argument
 * would have to be written. */
static uint32_t end_col(const parser *ps)
{
    const tok *t = &ps->toks[ps->ntoks - 1];
    return t->col + t->len + 1;
}

/* ---- numbers, probabilities, events, names -------------------------------- */

/* Parses a whole unsigned number: decimal without leading zeros, or 0x hex.
 * Leading zeros are refused rather than read as decimal, because the CLI's
 * strtoull reads them as octal and a script must not mean something else
 * than the same digits on a command line.  what names the value in
 * messages ("'blocks'"). */
static int parse_u64(parser *ps, const char *p, size_t n, uint32_t col,
                     const char *what, uint64_t *v)
{
    size_t i = 0;
    uint64_t x = 0;
    int hex = 0;
    if (n == 0)
        return fail(ps, col, "missing number for %s", what);
    if (p[0] == '-')
        return fail(ps, col, "%s must not be negative, got '%s'", what,
                    quote(ps, 0, p, n));
    if (p[0] < '0' || p[0] > '9')
        return fail(ps, col, "expected a number for %s, got '%s'", what,
                    quote(ps, 0, p, n));
    if (n >= 2 && p[0] == '0' && p[1] == 'x') {
        hex = 1;
        i = 2;
        if (n == 2)
            return fail(ps, col + 2, "expected hex digits after '0x' for %s", what);
    } else if (n >= 2 && p[0] == '0' && p[1] >= '0' && p[1] <= '9') {
        return fail(ps, col, "leading zero in '%s' for %s (write decimal without "
                             "leading zeros, or hex as 0x...)", quote(ps, 0, p, n), what);
    }
    size_t first = i;
    for (; i < n; i++) {
        unsigned d;
        char c = p[i];
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (hex && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (hex && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        uint64_t base = hex ? 16 : 10;
        if (x > (UINT64_MAX - d) / base)
            return fail(ps, col, "number '%s' for %s is too large (max %llu)",
                        quote(ps, 0, p, n), what, (unsigned long long)UINT64_MAX);
        x = x * base + d;
    }
    if (i == first)
        return fail(ps, col + (uint32_t)i, "expected hex digits after '0x' for %s", what);
    if (i < n)
        return fail(ps, col + (uint32_t)i, "unexpected '%s' after the number '%s' for %s",
                    quote(ps, 0, p + i, n - i), quote(ps, 1, p, i), what);
    *v = x;
    return 0;
}

/* parse_u64 plus a range; min and max are inclusive. */
static int parse_range(parser *ps, const char *p, size_t n, uint32_t col,
                       const char *what, uint64_t min, uint64_t max, uint64_t *v)
{
    int rc = parse_u64(ps, p, n, col, what, v);
    if (rc)
        return rc;
    if (*v < min)
        return fail(ps, col, "%s must be at least %llu, got %llu", what,
                    (unsigned long long)min, (unsigned long long)*v);
    if (*v > max)
        return fail(ps, col, "%s must be at most %llu, got %llu", what,
                    (unsigned long long)max, (unsigned long long)*v);
    return 0;
}

/* P/Q with Q >= 1 and P <= Q. */
static int parse_prob(parser *ps, const kv *a, mk_scn_prob *pr)
{
    const char *slash = memchr(a->v, '/', a->vlen);
    if (!slash)
        return fail(ps, a->vcol, "expected a probability P/Q for 'prob' (e.g. 1/100), got '%s'",
                    quote(ps, 0, a->v, a->vlen));
    uint32_t pl = (uint32_t)(slash - a->v);
    int rc = parse_u64(ps, a->v, pl, a->vcol, "the numerator of 'prob'", &pr->num);
    if (!rc)
        rc = parse_u64(ps, slash + 1, a->vlen - pl - 1, a->vcol + pl + 1,
                       "the denominator of 'prob'", &pr->den);
    if (rc)
        return rc;
    if (pr->den == 0)
        return fail(ps, a->vcol + pl + 1, "probability denominator must not be 0 in '%s'",
                    quote(ps, 0, a->v, a->vlen));
    if (pr->num > pr->den)
        return fail(ps, a->vcol, "probability '%s' is greater than 1",
                    quote(ps, 0, a->v, a->vlen));
    return 0;
}

/* An event (SCENARIOS.md "Events"), or with allow_bytes also a plain byte
 * count. */
static int parse_event(parser *ps, const kv *a, int allow_bytes, mk_scn_event *ev)
{
    const char *p = a->v;
    size_t n = a->vlen;
    uint32_t col = a->vcol;
    memset(ev, 0, sizeof *ev);
    if (allow_bytes && p[0] >= '0' && p[0] <= '9') {
        ev->kind = MK_SCN_EV_BYTES;
        return parse_range(ps, p, n, col, "'after' (bytes)", 1, UINT64_MAX, &ev->n);
    }
    const char *colon = memchr(p, ':', n);
    size_t nl = colon ? (size_t)(colon - p) : n;
    if (!nv_find(events, p, nl, &ev->kind))
        return fail(ps, col, "unknown event '%s' (expected %s%s)", quote(ps, 0, p, nl),
                    allow_bytes ? "a byte count, " : "", EVENT_LIST);
    const char *en = nv_name(events, ev->kind);
    int two = ev->kind == MK_SCN_EV_REF || ev->kind == MK_SCN_EV_DATA;
    if (!colon)
        return fail(ps, col + (uint32_t)n, "event '%s' needs a number: %s:%s", en, en,
                    two ? "N/cp:K" : ev->kind == MK_SCN_EV_LOG_ACK ||
                                             ev->kind == MK_SCN_EV_TRANSFER
                                         ? "T"
                                     : ev->kind == MK_SCN_EV_WRITE ? "N"
                                                                   : "K");
    const char *num = colon + 1;
    size_t rest = n - nl - 1;
    uint32_t ncol = col + (uint32_t)nl + 1;
    size_t numlen = rest;
    const char *slash = two ? memchr(num, '/', rest) : NULL;
    if (slash)
        numlen = (size_t)(slash - num);
    int rc = parse_range(ps, num, numlen, ncol, "the event's number", 1, UINT64_MAX, &ev->n);
    if (rc || !two)
        return rc;
    uint32_t scol = ncol + (uint32_t)numlen;
    if (!slash || rest - numlen < 4 || memcmp(slash, "/cp:", 4) != 0)
        return fail(ps, scol, "expected '/cp:K' after '%s'",
                    quote(ps, 0, p, nl + 1 + numlen));
    return parse_range(ps, slash + 4, rest - numlen - 4, scol + 4, "the event's CP number",
                       1, UINT64_MAX, &ev->cp);
}

/* A fault point name: segments of [a-z0-9_] joined by '/', optionally
 * ending in '*' to name every point with that prefix (as MK_FIU entries do,
 * fault/mk_faults.h).  The catalogue of points belongs to the runner
 * (mk_scenario_check_points). */
static int parse_point(parser *ps, const tok *t, char *out)
{
    if (t->len > MK_SCN_POINT_MAX)
        return fail(ps, t->col, "fault point name '%s' is longer than %d bytes",
                    qt(ps, 0, t), MK_SCN_POINT_MAX);
    for (uint32_t i = 0; i < t->len; i++) {
        char c = t->p[i];
        if (c == '*' && i + 1 == t->len)
            break;
        if (c == '/') {
            if (i == 0 || i + 1 == t->len || t->p[i + 1] == '/')
                return fail(ps, t->col + i + (i == 0 ? 0 : 1),
                            "empty segment in fault point name '%s' (expected names like "
                            "ref/dest/log/sync)", qt(ps, 0, t));
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return fail(ps, t->col + i,
                        "invalid character '%s' in fault point name '%s' (expected a-z, "
                        "0-9, _ and /, and * only at the end)", quote(ps, 0, &t->p[i], 1), qt(ps, 1, t));
        }
    }
    memcpy(out, t->p, t->len);
    out[t->len] = '\0';
    return 0;
}

/* Looks a token up in a table; on failure names what was expected. */
static int parse_word(parser *ps, const tok *t, const nv *table, const char *what, int *val)
{
    if (nv_find(table, t->p, t->len, val))
        return 0;
    return fail(ps, t->col, "unknown %s '%s' (expected %s)", what, qt(ps, 0, t),
                list(ps, table));
}

/* ---- key=value arguments -------------------------------------------------- */

static const kv *kv_get(const kvset *s, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < s->n; i++)
        if (s->a[i].klen == kl && memcmp(s->a[i].k, key, kl) == 0)
            return &s->a[i];
    return NULL;
}

/* Reads tokens first.. as key=value pairs whose keys are in allowed (NULL
 * terminated).  stmt names the statement in messages. */
static int parse_kvs(parser *ps, size_t first, const char *const *allowed,
                     const char *stmt, kvset *out)
{
    char keys[160];
    size_t used = 0;
    keys[0] = '\0';
    for (const char *const *k = allowed; *k; k++) {
        int w = snprintf(keys + used, sizeof keys - used, "%s%s", k == allowed ? "" : ", ", *k);
        if (w > 0 && (size_t)w < sizeof keys - used)
            used += (size_t)w;
    }
    out->n = 0;
    for (size_t i = first; i < ps->ntoks; i++) {
        const tok *t = &ps->toks[i];
        const char *eq = memchr(t->p, '=', t->len);
        if (!allowed[0])
            return fail(ps, t->col, "unexpected argument '%s' ('%s' takes none)",
                        qt(ps, 0, t), stmt);
        if (!eq)
            return fail(ps, t->col, "unexpected argument '%s' (expected key=value: %s)",
                        qt(ps, 0, t), keys);
        kv a;
        a.k = t->p;
        a.klen = (uint32_t)(eq - t->p);
        a.kcol = t->col;
        a.v = eq + 1;
        a.vlen = t->len - a.klen - 1;
        a.vcol = t->col + a.klen + 1;
        if (a.klen == 0)
            return fail(ps, t->col, "missing key before '=' in '%s'", qt(ps, 0, t));
        int ok = 0;
        for (const char *const *k = allowed; *k && !ok; k++)
            ok = strlen(*k) == a.klen && memcmp(*k, a.k, a.klen) == 0;
        if (!ok)
            return fail(ps, t->col, "unknown key '%s' for '%s' (expected %s)",
                        quote(ps, 0, a.k, a.klen), stmt, keys);
        for (size_t j = 0; j < out->n; j++)
            if (out->a[j].klen == a.klen && memcmp(out->a[j].k, a.k, a.klen) == 0)
                return fail(ps, t->col, "duplicate key '%s' (first at column %u)",
                            quote(ps, 0, a.k, a.klen), out->a[j].kcol);
        if (a.vlen == 0)
            return fail(ps, a.vcol, "missing value after '%s='", quote(ps, 0, a.k, a.klen));
        out->a[out->n++] = a; /* at most one per allowed key, and KV_MAX >= any table */
    }
    return 0;
}

static int need(parser *ps, const kvset *s, const char *key, const char *stmt, const char *form)
{
    if (kv_get(s, key))
        return 0;
    return fail(ps, end_col(ps), "missing required key '%s' for '%s' (%s)", key, stmt, form);
}

/* A key's value as a number in [min, max], or def if the key is absent. */
static int kv_num(parser *ps, const kvset *s, const char *key, uint64_t min,
                  uint64_t max, uint64_t def, uint64_t *v)
{
    const kv *a = kv_get(s, key);
    char what[48];
    if (!a) {
        *v = def;
        return 0;
    }
    snprintf(what, sizeof what, "'%s'", key);
    return parse_range(ps, a->v, a->vlen, a->vcol, what, min, max, v);
}

/* A key's value as a word of a table, or def if the key is absent.  what
 * names the value in messages ("unknown fault kind 'x'"). */
static int kv_word(parser *ps, const kvset *s, const char *key, const nv *table,
                   const char *what, int def, int *v)
{
    const kv *a = kv_get(s, key);
    if (!a) {
        *v = def;
        return 0;
    }
    tok t = {a->v, a->vlen, a->vcol};
    return parse_word(ps, &t, table, what, v);
}

/* Fails if two exclusive keys are both present, at the later one. */
static int exclusive(parser *ps, const kvset *s, const char *k1, const char *k2)
{
    const kv *a = kv_get(s, k1), *b = kv_get(s, k2);
    if (a && b)
        return fail(ps, a->kcol > b->kcol ? a->kcol : b->kcol,
                    "'%s' and '%s' cannot be used together", k1, k2);
    return 0;
}

/* ---- scenario storage ----------------------------------------------------- */

static mk_scenario_step *new_step(parser *ps, int kind)
{
    mk_scenario *sc = ps->sc;
    mk_scenario_step *s = mk_vec_grow(sc->steps, &sc->capsteps, sc->nsteps, sizeof *s, 16);
    if (!s)
        return NULL;
    sc->steps = s;
    mk_scenario_step *st = &sc->steps[sc->nsteps++];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    st->line = ps->line;
    st->col = ps->toks[0].col;
    return st;
}

static mk_scenario_expect *new_expect(parser *ps, int kind)
{
    mk_scenario *sc = ps->sc;
    mk_scenario_expect *grown = mk_vec_grow(sc->ex, &sc->capex, sc->nex, sizeof *grown, 8);
    if (!grown)
        return NULL;
    sc->ex = grown;
    mk_scenario_expect *e = &sc->ex[sc->nex++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->line = ps->line;
    e->col = ps->toks[0].col;
    return e;
}

/* Running out of memory is not the input's fault, so the error has no
 * position (line = col = 0, as the header promises). */
static int nomem(parser *ps)
{
    if (ps->err) {
        ps->err->code = MK_ENOMEM;
        ps->err->line = 0;
        ps->err->col = 0;
        snprintf(ps->err->msg, sizeof ps->err->msg, "out of memory");
    }
    return MK_ENOMEM;
}

/* ---- statements ----------------------------------------------------------- */

/* Checks that a statement has at least npos positional arguments after its
 * keyword and that none of them is a key=value pair; what follows them is
 * checked by parse_kvs() or no_more(). */
static int positional(parser *ps, size_t npos, const char *form)
{
    if (ps->ntoks < 1 + npos)
        return fail(ps, end_col(ps), "missing argument: %s", form);
    for (size_t i = 1; i <= npos; i++)
        if (memchr(ps->toks[i].p, '=', ps->toks[i].len))
            return fail(ps, ps->toks[i].col, "expected %s, got '%s'", form,
                        qt(ps, 0, &ps->toks[i]));
    return 0;
}

static int no_more(parser *ps, size_t from, const char *stmt)
{
    if (ps->ntoks > from)
        return fail(ps, ps->toks[from].col, "unexpected argument '%s' after '%s'",
                    qt(ps, 0, &ps->toks[from]), stmt);
    return 0;
}

static int st_scenario(parser *ps)
{
    int rc = positional(ps, 1, "scenario NAME");
    if (rc || (rc = no_more(ps, 2, "scenario NAME")))
        return rc;
    if (ps->nstatements > 1)
        return fail(ps, ps->toks[0].col, "'scenario' must be the first statement");
    const tok *t = &ps->toks[1];
    if (t->len > MK_SCN_NAME_MAX)
        return fail(ps, t->col, "scenario name is longer than %d bytes", MK_SCN_NAME_MAX);
    for (uint32_t i = 0; i < t->len; i++) {
        char c = t->p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return fail(ps, t->col + i,
                        "invalid character '%s' in scenario name (expected A-Z, a-z, 0-9, "
                        "_, - and .)", quote(ps, 0, &t->p[i], 1));
    }
    memcpy(ps->sc->name, t->p, t->len);
    ps->sc->name[t->len] = '\0';
    return 0;
}

/* Every configuration statement: at most once, and before the first step,
 * because it describes the whole run. */
static int config_stmt(parser *ps, int which)
{
    uint32_t col = ps->toks[0].col;
    if (ps->cfg_line[which])
        return fail(ps, col, "duplicate '%s' statement (first at line %u)",
                    cfg_names[which], ps->cfg_line[which]);
    if (ps->first_step_line)
        return fail(ps, col, "'%s' is configuration and must come before the first "
                             "step (line %u)", cfg_names[which], ps->first_step_line);
    ps->cfg_line[which] = ps->line;
    ps->cfg_col[which] = col;
    return 0;
}

static int st_volume(parser *ps)
{
    static const char *const keys[] = {"blocks", "block-size", NULL};
    mk_scenario_config *c = &ps->sc->cfg;
    kvset s;
    uint64_t n, bs;
    int rc = config_stmt(ps, CFG_VOLUME);
    if (rc || (rc = parse_kvs(ps, 1, keys, "volume", &s)) ||
        (rc = need(ps, &s, "blocks", "volume", "volume blocks=N [block-size=B]")) ||
        (rc = kv_num(ps, &s, "blocks", 1, UINT64_MAX, 0, &n)) ||
        (rc = kv_num(ps, &s, "block-size", 0, UINT64_MAX, 4096, &bs)))
        return rc;
    if (bs < 512 || bs > 65536 || (bs & (bs - 1)) != 0)
        return fail(ps, kv_get(&s, "block-size")->vcol,
                    "block-size must be a power of two in 512..65536, got %llu",
                    (unsigned long long)bs);
    if (n > UINT64_MAX / bs)
        return fail(ps, kv_get(&s, "blocks")->vcol,
                    "a volume of %llu blocks of %llu bytes exceeds 2^64-1 bytes",
                    (unsigned long long)n, (unsigned long long)bs);
    c->nblocks = n;
    c->block_size = (uint32_t)bs;
    c->has |= MK_SCN_HAS_VOLUME;
    return 0;
}

/* mode, transport: one word from a table. */
static int st_word_config(parser *ps, int which, const nv *table, int *dst, unsigned bit)
{
    char form[sizeof ((parser *)0)->lbuf + 64];
    int rc = config_stmt(ps, which);
    snprintf(form, sizeof form, "%s followed by one of %s", cfg_names[which], list(ps, table));
    if (rc || (rc = positional(ps, 1, form)) || (rc = no_more(ps, 2, cfg_names[which])) ||
        (rc = parse_word(ps, &ps->toks[1], table, cfg_names[which], dst)))
        return rc;
    ps->sc->cfg.has |= bit;
    return 0;
}

static int st_mode(parser *ps)
{
    return st_word_config(ps, CFG_MODE, modes, &ps->sc->cfg.mode, MK_SCN_HAS_MODE);
}

static int st_transport(parser *ps)
{
    return st_word_config(ps, CFG_TRANSPORT, transports, &ps->sc->cfg.transport,
                          MK_SCN_HAS_TRANSPORT);
}

static int st_seed(parser *ps)
{
    const tok *t;
    int rc = config_stmt(ps, CFG_SEED);
    if (rc || (rc = positional(ps, 1, "seed S")) || (rc = no_more(ps, 2, "seed S")))
        return rc;
    t = &ps->toks[1];
    if ((rc = parse_u64(ps, t->p, t->len, t->col, "'seed'", &ps->sc->cfg.seed)))
        return rc;
    ps->sc->cfg.has |= MK_SCN_HAS_SEED;
    return 0;
}

static int st_cps(parser *ps)
{
    const tok *t;
    uint64_t n;
    int rc = config_stmt(ps, CFG_CPS);
    if (rc || (rc = positional(ps, 1, "cps N")) || (rc = no_more(ps, 2, "cps N")))
        return rc;
    t = &ps->toks[1];
    if ((rc = parse_range(ps, t->p, t->len, t->col, "'cps'", 1, UINT32_MAX, &n)))
        return rc;
    ps->sc->cfg.cps = (uint32_t)n;
    ps->sc->cfg.has |= MK_SCN_HAS_CPS;
    return 0;
}

static int st_workload(parser *ps)
{
    static const char *const keys[] = {"writes", NULL};
    char form[sizeof ((parser *)0)->lbuf + 64];
    mk_scenario_config *c = &ps->sc->cfg;
    kvset s;
    int rc = config_stmt(ps, CFG_WORKLOAD);
    snprintf(form, sizeof form, "workload KIND [writes=N], KIND one of %s",
             list(ps, workloads));
    if (rc || (rc = positional(ps, 1, form)) ||
        (rc = parse_word(ps, &ps->toks[1], workloads, "workload", &c->workload)) ||
        (rc = parse_kvs(ps, 2, keys, "workload", &s)) ||
        (rc = kv_num(ps, &s, "writes", 1, UINT64_MAX, 0, &c->writes_per_cp)))
        return rc;
    c->has |= MK_SCN_HAS_WORKLOAD;
    if (kv_get(&s, "writes")) {
        c->has |= MK_SCN_HAS_WRITES;
        ps->writes_col = kv_get(&s, "writes")->vcol;
    }
    return 0;
}

/* Every step: after 'promote' there is no source to drive, so no step may
 * follow it. */
static int step_stmt(parser *ps, int driver)
{
    if (ps->promote_line)
        return fail(ps, ps->toks[0].col,
                    "no step may follow 'promote' (line %u); only expectations may",
                    ps->promote_line);
    if (!ps->first_step_line)
        ps->first_step_line = ps->line;
    if (driver && !ps->driver_line) {
        /* The drivers are write, writes and cp, told apart by length. */
        ps->driver_line = ps->line;
        ps->driver_kw = ps->toks[0].len == 5 ? "write" : ps->toks[0].len == 6 ? "writes" : "cp";
    }
    return 0;
}

static int st_write(parser *ps)
{
    static const char *const keys[] = {"offset", "length", "fill", "seed", NULL};
    const mk_scenario_config *c = &ps->sc->cfg;
    kvset s;
    uint64_t off, len, v = 0;
    int rc = step_stmt(ps, 1);
    const char *form = "write offset=O length=L [fill=BYTE|seed=S]";
    if (rc || (rc = parse_kvs(ps, 1, keys, "write", &s)) ||
        (rc = need(ps, &s, "offset", "write", form)) ||
        (rc = need(ps, &s, "length", "write", form)) ||
        (rc = kv_num(ps, &s, "offset", 0, UINT64_MAX, 0, &off)) ||
        (rc = kv_num(ps, &s, "length", 1, UINT32_MAX, 0, &len)) ||
        (rc = exclusive(ps, &s, "fill", "seed")))
        return rc;
    if (c->has & MK_SCN_HAS_VOLUME) {
        uint64_t vol = c->nblocks * c->block_size; /* checked not to overflow */
        if (off >= vol)
            return fail(ps, kv_get(&s, "offset")->vcol,
                        "offset %llu is outside the volume (%llu bytes)",
                        (unsigned long long)off, (unsigned long long)vol);
        if (len > vol - off)
            return fail(ps, kv_get(&s, "length")->vcol,
                        "a write of %llu bytes at offset %llu ends past the volume "
                        "(%llu bytes)", (unsigned long long)len, (unsigned long long)off,
                        (unsigned long long)vol);
    }
    int data = MK_SCN_DATA_RUN;
    if (kv_get(&s, "fill")) {
        data = MK_SCN_DATA_FILL;
        rc = kv_num(ps, &s, "fill", 0, 255, 0, &v);
    } else if (kv_get(&s, "seed")) {
        data = MK_SCN_DATA_SEED;
        rc = kv_num(ps, &s, "seed", 0, UINT64_MAX, 0, &v);
    }
    if (rc)
        return rc;
    mk_scenario_step *st = new_step(ps, MK_SCN_WRITE);
    if (!st)
        return nomem(ps);
    st->write.offset = off;
    st->write.length = (uint32_t)len;
    st->write.data = data;
    st->write.value = v;
    return 0;
}

static int st_writes(parser *ps)
{
    uint64_t n;
    int rc = step_stmt(ps, 1);
    if (rc || (rc = positional(ps, 1, "writes N")) || (rc = no_more(ps, 2, "writes N")) ||
        (rc = parse_range(ps, ps->toks[1].p, ps->toks[1].len, ps->toks[1].col, "'writes'",
                          1, UINT64_MAX, &n)))
        return rc;
    mk_scenario_step *st = new_step(ps, MK_SCN_WRITES);
    if (!st)
        return nomem(ps);
    st->writes.count = n;
    return 0;
}

static int st_cp(parser *ps)
{
    static const char *const keys[] = {"every", NULL};
    kvset s;
    uint64_t every;
    int rc = step_stmt(ps, 1);
    if (rc || (rc = parse_kvs(ps, 1, keys, "cp", &s)) ||
        (rc = kv_num(ps, &s, "every", 0, UINT64_MAX, 0, &every)))
        return rc;
    mk_scenario_step *st = new_step(ps, kv_get(&s, "every") ? MK_SCN_CP_EVERY : MK_SCN_CP);
    if (!st)
        return nomem(ps);
    st->cp_every.every = every;
    return 0;
}

static int st_crash(parser *ps)
{
    static const char *const keys[] = {"at", "hit", "after", "restart", NULL};
    const char *form = "crash dest|source [at=POINT [hit=K] | after=EVENT] "
                       "[restart=auto|manual]";
    kvset s;
    int role, restart, rc = step_stmt(ps, 0);
    if (rc || (rc = positional(ps, 1, form)) ||
        (rc = parse_word(ps, &ps->toks[1], roles, "role", &role)) ||
        (rc = parse_kvs(ps, 2, keys, "crash", &s)) ||
        (rc = exclusive(ps, &s, "at", "after")))
        return rc;
    const kv *at = kv_get(&s, "at"), *after = kv_get(&s, "after"), *hit = kv_get(&s, "hit");
    if (hit && !at)
        return fail(ps, hit->kcol, "'hit' counts hits of a fault point: it needs at=POINT");
    mk_scenario_step st0;
    memset(&st0, 0, sizeof st0);
    st0.crash.role = role;
    st0.crash.trigger = at ? MK_SCN_AT_POINT : after ? MK_SCN_AFTER_EVENT : MK_SCN_NOW;
    if (at) {
        tok t = {at->v, at->vlen, at->vcol};
        if ((rc = parse_point(ps, &t, st0.crash.point)) ||
            (rc = kv_num(ps, &s, "hit", 1, UINT64_MAX, 1, &st0.crash.hit)))
            return rc;
        st0.point_col = at->vcol;
    }
    if (after && (rc = parse_event(ps, after, 0, &st0.crash.after)))
        return rc;
    /* A crash now is followed by an explicit 'restart'; a crash armed for
     * later happens in the middle of a step, so by default it restarts the
     * role as soon as it has happened. */
    if ((rc = kv_word(ps, &s, "restart", restarts, "restart policy",
                      st0.crash.trigger == MK_SCN_NOW ? MK_SCN_RESTART_MANUAL
                                                      : MK_SCN_RESTART_AUTO,
                      &restart)))
        return rc;
    st0.crash.restart = restart;
    if (st0.crash.trigger == MK_SCN_NOW && ps->down_line[role])
        return fail(ps, ps->toks[0].col, "the %s may already be down (crash with "
                                         "restart=manual at line %u); 'restart %s' first",
                    roles[role].name, ps->down_line[role], roles[role].name);
    if (restart == MK_SCN_RESTART_MANUAL && !ps->down_line[role])
        ps->down_line[role] = ps->line;
    mk_scenario_step *st = new_step(ps, MK_SCN_CRASH);
    if (!st)
        return nomem(ps);
    st0.kind = st->kind;
    st0.line = st->line;
    st0.col = st->col;
    *st = st0;
    return 0;
}

static int st_restart(parser *ps)
{
    int role, rc = step_stmt(ps, 0);
    if (rc || (rc = positional(ps, 1, "restart dest|source")) ||
        (rc = parse_word(ps, &ps->toks[1], roles, "role", &role)) ||
        (rc = no_more(ps, 2, "restart ROLE")))
        return rc;
    if (!ps->down_line[role])
        return fail(ps, ps->toks[0].col, "'restart %s' needs an earlier 'crash %s' that "
                                         "does not restart by itself (restart=manual)",
                    roles[role].name, roles[role].name);
    ps->down_line[role] = 0;
    mk_scenario_step *st = new_step(ps, MK_SCN_RESTART);
    if (!st)
        return nomem(ps);
    st->restart.role = role;
    return 0;
}

static int st_promote(parser *ps)
{
    int rc = step_stmt(ps, 0);
    if (rc || (rc = no_more(ps, 1, "promote")))
        return rc;
    if (!new_step(ps, MK_SCN_PROMOTE))
        return nomem(ps);
    ps->promote_line = ps->line;
    return 0;
}

static int st_fault(parser *ps)
{
    static const char *const keys[] = {"kind", "hit", "count", "prob", "after", NULL};
    const char *form = "fault POINT kind=eio|enospc|short|torn|enomem [hit=K] "
                       "[count=C|forever] [prob=P/Q] [after=EVENT]";
    mk_scenario_step st0;
    kvset s;
    int rc = step_stmt(ps, 0);
    memset(&st0, 0, sizeof st0);
    if (rc || (rc = positional(ps, 1, form)) ||
        (rc = parse_point(ps, &ps->toks[1], st0.fault.point)) ||
        (rc = parse_kvs(ps, 2, keys, "fault", &s)) ||
        (rc = need(ps, &s, "kind", "fault", form)) ||
        (rc = kv_word(ps, &s, "kind", fault_kinds, "fault kind", 0, &st0.fault.kind)) ||
        (rc = kv_num(ps, &s, "hit", 1, UINT64_MAX, 1, &st0.fault.hit)))
        return rc;
    const kv *count = kv_get(&s, "count");
    if (count && count->vlen == 7 && memcmp(count->v, "forever", 7) == 0)
        st0.fault.count = MK_SCN_FOREVER;
    else if ((rc = kv_num(ps, &s, "count", 1, UINT64_MAX - 1, 1, &st0.fault.count)))
        return rc;
    st0.fault.prob.num = st0.fault.prob.den = 1;
    if (kv_get(&s, "prob") && (rc = parse_prob(ps, kv_get(&s, "prob"), &st0.fault.prob)))
        return rc;
    if (kv_get(&s, "after") && (rc = parse_event(ps, kv_get(&s, "after"), 0, &st0.fault.after)))
        return rc;
    mk_scenario_step *st = new_step(ps, MK_SCN_FAULT);
    if (!st)
        return nomem(ps);
    st0.kind = st->kind;
    st0.line = st->line;
    st0.col = st->col;
    st0.point_col = ps->toks[1].col;
    *st = st0;
    return 0;
}

/* Which keys each link kind takes; the first 'nreq' of them are required
 * (partition is special: exactly one of frames= and ms=). */
typedef struct link_def {
    int kind, nreq;
    const char *keys[6];
} link_def;

static const link_def link_defs[] = {
    {MK_SCN_L_LATENCY, 1, {"ms", "jitter", "dir", "after", NULL}},
    {MK_SCN_L_BANDWIDTH, 1, {"kbps", "dir", "after", NULL}},
    {MK_SCN_L_SLICER, 1, {"bytes", "dir", "after", NULL}},
    {MK_SCN_L_LIMIT_DATA, 1, {"bytes", "dir", "after", NULL}},
    {MK_SCN_L_RESET_PEER, 0, {"after", NULL}},
    {MK_SCN_L_TIMEOUT, 1, {"ms", "after", NULL}},
    {MK_SCN_L_DROP, 1, {"prob", "dir", "after", NULL}},
    {MK_SCN_L_DUPLICATE, 1, {"prob", "dir", "after", NULL}},
    {MK_SCN_L_REORDER, 1, {"window", "dir", "after", NULL}},
    {MK_SCN_L_CORRUPT, 1, {"prob", "dir", "after", NULL}},
    {MK_SCN_L_TRUNCATE, 0, {"dir", "after", NULL}},
    {MK_SCN_L_PARTITION, 0, {"frames", "ms", "dir", "after", NULL}},
    {MK_SCN_L_CLEAR, 0, {NULL}},
};

static int st_link(parser *ps)
{
    char stmt[32];
    mk_scenario_step st0;
    kvset s;
    int rc = step_stmt(ps, 0);
    memset(&st0, 0, sizeof st0);
    if (rc || (rc = positional(ps, 1, "link KIND [key=value...]")) ||
        (rc = parse_word(ps, &ps->toks[1], link_kinds, "link kind", &st0.link.kind)))
        return rc;
    const link_def *d = &link_defs[st0.link.kind];
    snprintf(stmt, sizeof stmt, "link %s", link_kinds[st0.link.kind].name);
    if ((rc = parse_kvs(ps, 2, d->keys, stmt, &s)))
        return rc;
    for (int i = 0; i < d->nreq; i++) {
        char form[64];
        snprintf(form, sizeof form, "%s %s=N", stmt, d->keys[i]);
        if (strcmp(d->keys[i], "prob") == 0)
            snprintf(form, sizeof form, "%s prob=P/Q", stmt);
        if ((rc = need(ps, &s, d->keys[i], stmt, form)))
            return rc;
    }
    if (st0.link.kind == MK_SCN_L_PARTITION) {
        if (!kv_get(&s, "frames") && !kv_get(&s, "ms"))
            return fail(ps, end_col(ps), "'link partition' needs frames=N or ms=N");
        if ((rc = exclusive(ps, &s, "frames", "ms")))
            return rc;
    }
    switch (st0.link.kind) {
    case MK_SCN_L_LATENCY:
        rc = kv_num(ps, &s, "ms", 0, UINT64_MAX, 0, &st0.link.ms);
        if (!rc)
            rc = kv_num(ps, &s, "jitter", 0, UINT64_MAX, 0, &st0.link.jitter);
        break;
    case MK_SCN_L_BANDWIDTH:
        rc = kv_num(ps, &s, "kbps", 1, UINT64_MAX, 0, &st0.link.kbps);
        break;
    case MK_SCN_L_SLICER:
        rc = kv_num(ps, &s, "bytes", 1, UINT64_MAX, 0, &st0.link.bytes);
        break;
    case MK_SCN_L_LIMIT_DATA:
        rc = kv_num(ps, &s, "bytes", 0, UINT64_MAX, 0, &st0.link.bytes);
        break;
    case MK_SCN_L_TIMEOUT:
        rc = kv_num(ps, &s, "ms", 0, UINT64_MAX, 0, &st0.link.ms);
        break;
    case MK_SCN_L_DROP:
    case MK_SCN_L_DUPLICATE:
    case MK_SCN_L_CORRUPT:
        rc = parse_prob(ps, kv_get(&s, "prob"), &st0.link.prob);
        break;
    case MK_SCN_L_REORDER:
        rc = kv_num(ps, &s, "window", 2, UINT64_MAX, 0, &st0.link.window);
        break;
    case MK_SCN_L_PARTITION:
        rc = kv_num(ps, &s, "frames", 1, UINT64_MAX, 0, &st0.link.frames);
        if (!rc)
            rc = kv_num(ps, &s, "ms", 1, UINT64_MAX, 0, &st0.link.ms);
        break;
    default:
        break;
    }
    if (!rc)
        rc = kv_word(ps, &s, "dir", dirs, "link direction", MK_SCN_DIR_BOTH, &st0.link.dir);
    if (!rc && kv_get(&s, "after"))
        rc = parse_event(ps, kv_get(&s, "after"), st0.link.kind == MK_SCN_L_RESET_PEER,
                         &st0.link.after);
    if (rc)
        return rc;
    mk_scenario_step *st = new_step(ps, MK_SCN_LINK);
    if (!st)
        return nomem(ps);
    st0.kind = st->kind;
    st0.line = st->line;
    st0.col = st->col;
    *st = st0;
    return 0;
}

static size_t meq_slot(const uint64_t *keys, const uint32_t *lines, size_t cap, uint64_t cp)
{
    uint64_t h = cp * 0x9e3779b97f4a7c15ULL;
    size_t i = (size_t)(h >> 32) & (cap - 1);
    while (lines[i] && keys[i] != cp)
        i = (i + 1) & (cap - 1);
    return i;
}

/* Adds cp (at the current line) to the set; *first is the line that named
 * it before, or 0. */
static int meq_insert(parser *ps, uint64_t cp, uint32_t *first)
{
    if ((ps->meq_n + 1) * 2 > ps->meq_cap) {
        size_t cap = ps->meq_cap ? ps->meq_cap * 2 : 16;
        uint64_t *keys = calloc(cap, sizeof *keys);
        uint32_t *lines = calloc(cap, sizeof *lines);
        if (!keys || !lines) {
            free(keys);
            free(lines);
            return nomem(ps);
        }
        for (size_t i = 0; i < ps->meq_cap; i++)
            if (ps->meq_line[i]) {
                size_t j = meq_slot(keys, lines, cap, ps->meq_cp[i]);
                keys[j] = ps->meq_cp[i];
                lines[j] = ps->meq_line[i];
            }
        free(ps->meq_cp);
        free(ps->meq_line);
        ps->meq_cp = keys;
        ps->meq_line = lines;
        ps->meq_cap = cap;
    }
    size_t i = meq_slot(ps->meq_cp, ps->meq_line, ps->meq_cap, cp);
    *first = ps->meq_line[i];
    if (!*first) {
        ps->meq_cp[i] = cp;
        ps->meq_line[i] = ps->line;
        ps->meq_n++;
    }
    return 0;
}

static int st_expect(parser *ps)
{
    int kind, rc = positional(ps, 1, "expect followed by verify-every-cp, "
                                     "no-acked-write-lost, mirror-equals cp=K, error "
                                     "MK_NAME, out-of-sync or exit CODE");
    if (rc || (rc = parse_word(ps, &ps->toks[1], expect_kinds, "expectation", &kind)))
        return rc;
    mk_scenario_expect e0;
    memset(&e0, 0, sizeof e0);
    if (kind == MK_SCN_EXPECT_MIRROR_EQUALS) {
        static const char *const keys[] = {"cp", NULL};
        kvset s;
        if ((rc = parse_kvs(ps, 2, keys, "expect mirror-equals", &s)) ||
            (rc = need(ps, &s, "cp", "expect mirror-equals", "expect mirror-equals cp=K")) ||
            (rc = kv_num(ps, &s, "cp", 0, UINT64_MAX, 0, &e0.cp)))
            return rc;
        uint32_t first = 0;
        if ((rc = meq_insert(ps, e0.cp, &first)))
            return rc;
        if (first)
            return fail(ps, ps->toks[0].col, "duplicate 'expect mirror-equals cp=%llu' "
                                             "(first at line %u)",
                        (unsigned long long)e0.cp, first);
    } else {
        if (ps->expect_line[kind])
            return fail(ps, ps->toks[0].col, "duplicate 'expect %s' (first at line %u)",
                        expect_kinds[kind - 1].name, ps->expect_line[kind]);
        if (kind == MK_SCN_EXPECT_ERROR) {
            const tok *t;
            if ((rc = positional(ps, 2, "expect error MK_NAME")) ||
                (rc = no_more(ps, 3, "expect error MK_NAME")))
                return rc;
            t = &ps->toks[2];
            char name[48];
            int code = 0;
            if (t->len < sizeof name && t->len > 3 && memcmp(t->p, "MK_", 3) == 0) {
                memcpy(name, t->p, t->len);
                name[t->len] = '\0';
                code = mk_errbyname(name);
            }
            if (code >= 0)
                return fail(ps, t->col, "unknown error name '%s' (expected an MK_ name of "
                                        "SPEC.md section 12, e.g. MK_ENOSPC)", qt(ps, 0, t));
            e0.err = code;
        } else if (kind == MK_SCN_EXPECT_EXIT) {
            uint64_t v;
            const tok *t;
            if ((rc = positional(ps, 2, "expect exit CODE")) ||
                (rc = no_more(ps, 3, "expect exit CODE")))
                return rc;
            t = &ps->toks[2];
            if ((rc = parse_range(ps, t->p, t->len, t->col, "the exit code", 0, 255, &v)))
                return rc;
            e0.exit_code = (int)v;
        } else if ((rc = no_more(ps, 2, expect_kinds[kind - 1].name))) {
            return rc;
        }
        ps->expect_line[kind] = ps->line;
        if (kind == MK_SCN_EXPECT_OUT_OF_SYNC)
            ps->out_of_sync_col = ps->toks[1].col;
    }
    mk_scenario_expect *e = new_expect(ps, kind);
    if (!e)
        return nomem(ps);
    e0.kind = e->kind;
    e0.line = e->line;
    e0.col = e->col;
    *e = e0;
    return 0;
}

typedef struct stmt_def {
    const char *name;
    int (*fn)(parser *ps);
} stmt_def;

static const stmt_def stmts[] = {
    {"scenario", st_scenario}, {"volume", st_volume},   {"mode", st_mode},
    {"seed", st_seed},         {"transport", st_transport}, {"workload", st_workload},
    {"cps", st_cps},           {"write", st_write},     {"writes", st_writes},
    {"cp", st_cp},             {"crash", st_crash},     {"restart", st_restart},
    {"promote", st_promote},   {"fault", st_fault},     {"link", st_link},
    {"expect", st_expect},     {NULL, NULL}};

static int statement(parser *ps)
{
    const tok *t = &ps->toks[0];
    if (++ps->nstatements > MK_SCN_MAX_STATEMENTS)
        return fail(ps, t->col, "more than %u statements", MK_SCN_MAX_STATEMENTS);
    for (const stmt_def *d = stmts; d->name; d++)
        if (tok_is(t, d->name))
            return d->fn(ps);
    char names[200];
    size_t used = 0;
    names[0] = '\0';
    for (const stmt_def *d = stmts; d->name; d++) {
        int w = snprintf(names + used, sizeof names - used, "%s%s", d == stmts ? "" : ", ",
                         d->name);
        if (w < 0 || (size_t)w >= sizeof names - used)
            break;
        used += (size_t)w;
    }
    int upper = 0;
    for (uint32_t i = 0; i < t->len; i++)
        upper |= t->p[i] >= 'A' && t->p[i] <= 'Z';
    return fail(ps, t->col, "unknown statement '%s' (%sexpected %s)", qt(ps, 0, t),
                upper ? "keywords are lowercase; " : "", names);
}

/* Splits one line (no LF, no CR) into tokens and runs its statement. */
static int line(parser *ps, const char *p, size_t n)
{
    size_t i = 0;
    ps->ntoks = 0;
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == n || p[i] == '#')
            break;
        size_t start = i;
        for (; i < n && p[i] != ' ' && p[i] != '\t' && p[i] != '#'; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x21 || c > 0x7e)
                return fail(ps, (uint32_t)i + 1, "invalid byte 0x%02x (statements are "
                                                 "printable ASCII; only comments may hold "
                                                 "other bytes)", c);
        }
        tok *t = &ps->toks[ps->ntoks++];
        t->p = p + start;
        t->len = (uint32_t)(i - start);
        t->col = (uint32_t)start + 1;
    }
    return ps->ntoks ? statement(ps) : 0;
}

/* Rules about the whole scenario, checked once every statement is read. */
static int finish(parser *ps)
{
    const mk_scenario_config *c = &ps->sc->cfg;
    if (ps->driver_line && (c->has & MK_SCN_HAS_CPS))
        return fail_at(ps, ps->cfg_line[CFG_CPS], ps->cfg_col[CFG_CPS],
                       "'cps' sets the automatic schedule, which does not run in a scenario "
                       "with its own '%s' step (line %u); take CPs with 'cp' or 'cp every=N'",
                       ps->driver_kw, ps->driver_line);
    if (ps->driver_line && (c->has & MK_SCN_HAS_WRITES))
        return fail_at(ps, ps->cfg_line[CFG_WORKLOAD], ps->writes_col,
                       "'workload ... writes=N' sets the automatic schedule, which does not "
                       "run in a scenario with its own '%s' step (line %u); write 'writes N' "
                       "steps instead", ps->driver_kw, ps->driver_line);
    if (ps->expect_line[MK_SCN_EXPECT_OUT_OF_SYNC] && (c->has & MK_SCN_HAS_MODE) &&
        c->mode != MK_MODE_SYNC)
        return fail_at(ps, ps->expect_line[MK_SCN_EXPECT_OUT_OF_SYNC], ps->out_of_sync_col,
                       "'expect out-of-sync' needs sync mode (SPEC.md 8.3), but line %u sets "
                       "mode %s", ps->cfg_line[CFG_MODE], nv_name(modes, c->mode));
    return 0;
}

static void err_init(mk_scenario_error *err, const char *name)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    snprintf(err->file, sizeof err->file, "%s", name);
}

int mk_scenario_parse(const char *name, const char *text, size_t len,
                      mk_scenario **out, mk_scenario_error *err)
{
    if (!name)
        name = "<input>";
    err_init(err, name);
    *out = NULL;
    if (!text && len)
        return MK_EINVAL;
    parser *ps = calloc(1, sizeof *ps);
    mk_scenario *sc = calloc(1, sizeof *sc);
    char *file = strdup(name);
    if (!ps || !sc || !file) {
        free(ps);
        free(sc);
        free(file);
        if (err) {
            err->code = MK_ENOMEM;
            snprintf(err->msg, sizeof err->msg, "out of memory");
        }
        return MK_ENOMEM;
    }
    sc->file = file;
    ps->sc = sc;
    ps->err = err;
    int rc = 0;
    size_t pos = 0;
    while (pos < len && rc == 0) {
        const char *p = text + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (ps->line == UINT32_MAX) {
            rc = fail(ps, 1, "more than %u lines", UINT32_MAX - 1);
            break;
        }
        ps->line++;
        /* A CR is only a line ending when an LF follows it (CRLF); anywhere
         * else, even in a comment, it is refused, so that a file with old
         * Mac line endings is one clear error rather than one long line. */
        if (n > 0 && p[n - 1] == '\r' && nl)
            n--;
        /* Byte checks in column order, so that the first problem of the
         * line is the one reported. */
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (i == MK_SCN_LINE_MAX)
                rc = fail(ps, MK_SCN_LINE_MAX + 1, "line is longer than %d bytes",
                          MK_SCN_LINE_MAX);
            else if (p[i] == '\0')
                rc = fail(ps, (uint32_t)i + 1, "NUL byte in input");
            else if (p[i] == '\r')
                rc = fail(ps, (uint32_t)i + 1,
                          "carriage return not followed by a newline (lines end with LF "
                          "or CRLF)");
        }
        if (rc == 0)
            rc = line(ps, p, n);
    }
    if (rc == 0)
        rc = finish(ps);
    free(ps->meq_cp);
    free(ps->meq_line);
    free(ps);
    if (rc) {
        mk_scenario_free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

int mk_scenario_parse_file(const char *path, mk_scenario **out, mk_scenario_error *err)
{
    err_init(err, path);
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (err) {
            err->code = e == ENOENT || e == ENOTDIR ? MK_EINVAL : mk_from_errno(e);
            snprintf(err->msg, sizeof err->msg, "cannot open: %s", strerror(e));
        }
        return e == ENOENT || e == ENOTDIR ? MK_EINVAL : mk_from_errno(e);
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : MK_ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            if (cap >= MK_SCN_FILE_MAX) {
                rc = MK_EUSAGE;
                if (err)
                    snprintf(err->msg, sizeof err->msg, "file is larger than %u bytes",
                             MK_SCN_FILE_MAX);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = MK_ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                rc = MK_EIO;
                if (err)
                    snprintf(err->msg, sizeof err->msg, "read failed: %s", strerror(errno));
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = mk_scenario_parse(path, buf, len, out, err);
    else if (err) {
        err->code = rc;
        if (rc == MK_ENOMEM)
            snprintf(err->msg, sizeof err->msg, "out of memory");
    }
    free(buf);
    return rc;
}

void mk_scenario_free(mk_scenario *sc)
{
    if (!sc)
        return;
    free(sc->file);
    free(sc->steps);
    free(sc->ex);
    free(sc);
}

int mk_scenario_error_format(const mk_scenario_error *e, char *buf, size_t n)
{
    if (e->line)
        return snprintf(buf, n, "%s:%u:%u: %s: %s", e->file, e->line, e->col,
                        mk_errname(e->code), e->msg);
    return snprintf(buf, n, "%s: %s: %s", e->file, mk_errname(e->code), e->msg);
}

void mk_scenario_error_print(FILE *f, const mk_scenario_error *e)
{
    char buf[sizeof e->file + sizeof e->msg + 64];
    mk_scenario_error_format(e, buf, sizeof buf);
    fprintf(f, "%s\n", buf);
}

/* ---- accessors ------------------------------------------------------------ */

const char *mk_scenario_name(const mk_scenario *sc) { return sc->name; }
const char *mk_scenario_file(const mk_scenario *sc) { return sc->file; }
const mk_scenario_config *mk_scenario_config_of(const mk_scenario *sc) { return &sc->cfg; }
size_t mk_scenario_nsteps(const mk_scenario *sc) { return sc->nsteps; }
size_t mk_scenario_nexpects(const mk_scenario *sc) { return sc->nex; }

const mk_scenario_step *mk_scenario_step_at(const mk_scenario *sc, size_t i)
{
    return i < sc->nsteps ? &sc->steps[i] : NULL;
}

const mk_scenario_expect *mk_scenario_expect_at(const mk_scenario *sc, size_t i)
{
    return i < sc->nex ? &sc->ex[i] : NULL;
}

int mk_scenario_uses_schedule(const mk_scenario *sc)
{
    for (size_t i = 0; i < sc->nsteps; i++) {
        int k = sc->steps[i].kind;
        if (k == MK_SCN_WRITE || k == MK_SCN_WRITES || k == MK_SCN_CP || k == MK_SCN_CP_EVERY)
            return 0;
    }
    return 1;
}

void mk_scenario_apply(const mk_scenario *sc, mk_pair_config *cfg)
{
    const mk_scenario_config *c = &sc->cfg;
    if (c->has & MK_SCN_HAS_VOLUME) {
        cfg->nblocks = c->nblocks;
        cfg->block_size = c->block_size;
    }
    if (c->has & MK_SCN_HAS_MODE)
        cfg->mode = c->mode;
    if (c->has & MK_SCN_HAS_SEED)
        cfg->seed = c->seed;
    if (c->has & MK_SCN_HAS_TRANSPORT)
        cfg->transport = c->transport;
    if (c->has & MK_SCN_HAS_WORKLOAD)
        cfg->workload = c->workload;
    if (c->has & MK_SCN_HAS_WRITES)
        cfg->writes_per_cp = c->writes_per_cp;
    if (c->has & MK_SCN_HAS_CPS)
        cfg->cps = c->cps;
}

int mk_scenario_check_points(const mk_scenario *sc,
                             int (*known)(const char *point, void *ctx),
                             void *ctx, mk_scenario_error *err)
{
    err_init(err, sc->file);
    for (size_t i = 0; i < sc->nsteps; i++) {
        const mk_scenario_step *st = &sc->steps[i];
        const char *point = st->kind == MK_SCN_FAULT ? st->fault.point
                            : st->kind == MK_SCN_CRASH && st->crash.trigger == MK_SCN_AT_POINT
                                ? st->crash.point
                                : NULL;
        if (point && !known(point, ctx)) {
            if (err) {
                err->code = MK_EUSAGE;
                err->line = st->line;
                err->col = st->point_col;
                snprintf(err->msg, sizeof err->msg,
                         "unknown fault point '%s' (see the catalogue of fault points)",
                         point);
            }
            return MK_EUSAGE;
        }
    }
    return 0;
}

/* ---- printing ------------------------------------------------------------- */

const char *mk_scn_role_name(int role)
{
    const char *s = nv_name(roles, role);
    return s ? s : "?";
}

const char *mk_scn_fault_kind_name(int kind)
{
    const char *s = nv_name(fault_kinds, kind);
    return s ? s : "?";
}

const char *mk_scn_link_kind_name(int kind)
{
    const char *s = nv_name(link_kinds, kind);
    return s ? s : "?";
}

const char *mk_scn_step_name(int kind)
{
    static const char *const names[] = {"?",     "write", "writes",  "cp",    "cp every",
                                        "crash", "restart", "promote", "fault", "link"};
    return kind >= MK_SCN_WRITE && kind <= MK_SCN_LINK ? names[kind] : "?";
}

int mk_scn_event_format(const mk_scn_event *ev, char *buf, size_t n)
{
    const char *name = nv_name(events, ev->kind);
    if (ev->kind == MK_SCN_EV_NONE)
        return snprintf(buf, n, "%s", "");
    if (ev->kind == MK_SCN_EV_BYTES)
        return snprintf(buf, n, "%llu", (unsigned long long)ev->n);
    if (!name)
        return snprintf(buf, n, "?");
    if (ev->kind == MK_SCN_EV_REF || ev->kind == MK_SCN_EV_DATA)
        return snprintf(buf, n, "%s:%llu/cp:%llu", name, (unsigned long long)ev->n,
                        (unsigned long long)ev->cp);
    return snprintf(buf, n, "%s:%llu", name, (unsigned long long)ev->n);
}

static void print_after(FILE *f, const mk_scn_event *ev)
{
    char buf[96];
    if (ev->kind == MK_SCN_EV_NONE)
        return;
    mk_scn_event_format(ev, buf, sizeof buf);
    fprintf(f, " after=%s", buf);
}

static void print_prob(FILE *f, const mk_scn_prob *p)
{
    fprintf(f, " prob=%llu/%llu", (unsigned long long)p->num, (unsigned long long)p->den);
}

/* Names a value of a table, or NULL: the printer refuses a built scenario
 * with a value the language cannot spell. */
#define NAME_OR_FAIL(var, table, val)                                          \
    const char *var = nv_name(table, val);                                     \
    if (!var)                                                                  \
        return MK_EINVAL;

static int print_step(FILE *f, const mk_scenario_step *st)
{
    switch (st->kind) {
    case MK_SCN_WRITE:
        fprintf(f, "write offset=%llu length=%u", (unsigned long long)st->write.offset,
                st->write.length);
        if (st->write.data == MK_SCN_DATA_FILL)
            fprintf(f, " fill=0x%02llx", (unsigned long long)st->write.value);
        else if (st->write.data == MK_SCN_DATA_SEED)
            fprintf(f, " seed=%llu", (unsigned long long)st->write.value);
        else if (st->write.data != MK_SCN_DATA_RUN)
            return MK_EINVAL;
        break;
    case MK_SCN_WRITES:
        fprintf(f, "writes %llu", (unsigned long long)st->writes.count);
        break;
    case MK_SCN_CP:
        fputs("cp", f);
        break;
    case MK_SCN_CP_EVERY:
        fprintf(f, "cp every=%llu", (unsigned long long)st->cp_every.every);
        break;
    case MK_SCN_CRASH: {
        NAME_OR_FAIL(role, roles, st->crash.role);
        NAME_OR_FAIL(restart, restarts, st->crash.restart);
        int def = st->crash.trigger == MK_SCN_NOW ? MK_SCN_RESTART_MANUAL : MK_SCN_RESTART_AUTO;
        fprintf(f, "crash %s", role);
        if (st->crash.trigger == MK_SCN_AT_POINT) {
            fprintf(f, " at=%s", st->crash.point);
            if (st->crash.hit != 1)
                fprintf(f, " hit=%llu", (unsigned long long)st->crash.hit);
        } else if (st->crash.trigger == MK_SCN_AFTER_EVENT) {
            print_after(f, &st->crash.after);
        } else if (st->crash.trigger != MK_SCN_NOW) {
            return MK_EINVAL;
        }
        if (st->crash.restart != def)
            fprintf(f, " restart=%s", restart);
        break;
    }
    case MK_SCN_RESTART: {
        NAME_OR_FAIL(role, roles, st->restart.role);
        fprintf(f, "restart %s", role);
        break;
    }
    case MK_SCN_PROMOTE:
        fputs("promote", f);
        break;
    case MK_SCN_FAULT: {
        NAME_OR_FAIL(kind, fault_kinds, st->fault.kind);
        fprintf(f, "fault %s kind=%s", st->fault.point, kind);
        if (st->fault.hit != 1)
            fprintf(f, " hit=%llu", (unsigned long long)st->fault.hit);
        if (st->fault.count == MK_SCN_FOREVER)
            fputs(" count=forever", f);
        else if (st->fault.count != 1)
            fprintf(f, " count=%llu", (unsigned long long)st->fault.count);
        if (st->fault.prob.num != 1 || st->fault.prob.den != 1)
            print_prob(f, &st->fault.prob);
        print_after(f, &st->fault.after);
        break;
    }
    case MK_SCN_LINK: {
        NAME_OR_FAIL(kind, link_kinds, st->link.kind);
        NAME_OR_FAIL(dir, dirs, st->link.dir);
        fprintf(f, "link %s", kind);
        switch (st->link.kind) {
        case MK_SCN_L_LATENCY:
            fprintf(f, " ms=%llu", (unsigned long long)st->link.ms);
            if (st->link.jitter)
                fprintf(f, " jitter=%llu", (unsigned long long)st->link.jitter);
            break;
        case MK_SCN_L_BANDWIDTH:
            fprintf(f, " kbps=%llu", (unsigned long long)st->link.kbps);
            break;
        case MK_SCN_L_SLICER:
        case MK_SCN_L_LIMIT_DATA:
            fprintf(f, " bytes=%llu", (unsigned long long)st->link.bytes);
            break;
        case MK_SCN_L_TIMEOUT:
            fprintf(f, " ms=%llu", (unsigned long long)st->link.ms);
            break;
        case MK_SCN_L_DROP:
        case MK_SCN_L_DUPLICATE:
        case MK_SCN_L_CORRUPT:
            print_prob(f, &st->link.prob);
            break;
        case MK_SCN_L_REORDER:
            fprintf(f, " window=%llu", (unsigned long long)st->link.window);
            break;
        case MK_SCN_L_PARTITION:
            if (st->link.frames)
                fprintf(f, " frames=%llu", (unsigned long long)st->link.frames);
            else
                fprintf(f, " ms=%llu", (unsigned long long)st->link.ms);
            break;
        default:
            break;
        }
        if (st->link.dir != MK_SCN_DIR_BOTH)
            fprintf(f, " dir=%s", dir);
        print_after(f, &st->link.after);
        break;
    }
    default:
        return MK_EINVAL;
    }
    fputc('\n', f);
    return 0;
}

static int print_expect(FILE *f, const mk_scenario_expect *e)
{
    const char *kind = nv_name(expect_kinds, e->kind);
    if (!kind)
        return MK_EINVAL;
    fprintf(f, "expect %s", kind);
    if (e->kind == MK_SCN_EXPECT_MIRROR_EQUALS)
        fprintf(f, " cp=%llu", (unsigned long long)e->cp);
    else if (e->kind == MK_SCN_EXPECT_ERROR)
        fprintf(f, " %s", mk_errname(e->err));
    else if (e->kind == MK_SCN_EXPECT_EXIT)
        fprintf(f, " %d", e->exit_code);
    fputc('\n', f);
    return 0;
}

int mk_scenario_print(FILE *f, const mk_scenario *sc)
{
    const mk_scenario_config *c = &sc->cfg;
    if (sc->name[0])
        fprintf(f, "scenario %s\n", sc->name);
    if (c->has & MK_SCN_HAS_VOLUME)
        fprintf(f, "volume blocks=%llu block-size=%u\n", (unsigned long long)c->nblocks,
                c->block_size);
    if (c->has & MK_SCN_HAS_MODE) {
        NAME_OR_FAIL(mode, modes, c->mode);
        fprintf(f, "mode %s\n", mode);
    }
    if (c->has & MK_SCN_HAS_SEED)
        fprintf(f, "seed %llu\n", (unsigned long long)c->seed);
    if (c->has & MK_SCN_HAS_TRANSPORT) {
        NAME_OR_FAIL(t, transports, c->transport);
        fprintf(f, "transport %s\n", t);
    }
    if (c->has & MK_SCN_HAS_WORKLOAD) {
        NAME_OR_FAIL(w, workloads, c->workload);
        fprintf(f, "workload %s", w);
        if (c->has & MK_SCN_HAS_WRITES)
            fprintf(f, " writes=%llu", (unsigned long long)c->writes_per_cp);
        fputc('\n', f);
    }
    if (c->has & MK_SCN_HAS_CPS)
        fprintf(f, "cps %u\n", c->cps);
    for (size_t i = 0; i < sc->nsteps; i++) {
        int rc = print_step(f, &sc->steps[i]);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < sc->nex; i++) {
        int rc = print_expect(f, &sc->ex[i]);
        if (rc)
            return rc;
    }
    return ferror(f) ? MK_EIO : 0;
}

/* ---- equality and building ------------------------------------------------- */

static int event_eq(const mk_scn_event *a, const mk_scn_event *b)
{
    return a->kind == b->kind && a->n == b->n && a->cp == b->cp;
}

static int prob_eq(const mk_scn_prob *a, const mk_scn_prob *b)
{
    return a->num == b->num && a->den == b->den;
}

/* Field by field, because the union's unused members and the padding hold
 * whatever a builder left there. */
static int step_eq(const mk_scenario_step *a, const mk_scenario_step *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case MK_SCN_WRITE:
        return a->write.offset == b->write.offset && a->write.length == b->write.length &&
               a->write.data == b->write.data &&
               (a->write.data == MK_SCN_DATA_RUN || a->write.value == b->write.value);
    case MK_SCN_WRITES:
        return a->writes.count == b->writes.count;
    case MK_SCN_CP:
    case MK_SCN_PROMOTE:
        return 1;
    case MK_SCN_CP_EVERY:
        return a->cp_every.every == b->cp_every.every;
    case MK_SCN_CRASH:
        if (a->crash.role != b->crash.role || a->crash.trigger != b->crash.trigger ||
            a->crash.restart != b->crash.restart)
            return 0;
        if (a->crash.trigger == MK_SCN_AT_POINT)
            return strcmp(a->crash.point, b->crash.point) == 0 && a->crash.hit == b->crash.hit;
        if (a->crash.trigger == MK_SCN_AFTER_EVENT)
            return event_eq(&a->crash.after, &b->crash.after);
        return 1;
    case MK_SCN_RESTART:
        return a->restart.role == b->restart.role;
    case MK_SCN_FAULT:
        return strcmp(a->fault.point, b->fault.point) == 0 && a->fault.kind == b->fault.kind &&
               a->fault.hit == b->fault.hit && a->fault.count == b->fault.count &&
               prob_eq(&a->fault.prob, &b->fault.prob) &&
               event_eq(&a->fault.after, &b->fault.after);
    case MK_SCN_LINK:
        return a->link.kind == b->link.kind && a->link.dir == b->link.dir &&
               a->link.ms == b->link.ms && a->link.jitter == b->link.jitter &&
               a->link.kbps == b->link.kbps && a->link.bytes == b->link.bytes &&
               a->link.window == b->link.window && a->link.frames == b->link.frames &&
               prob_eq(&a->link.prob, &b->link.prob) &&
               event_eq(&a->link.after, &b->link.after);
    default:
        return 0;
    }
}

static int expect_eq(const mk_scenario_expect *a, const mk_scenario_expect *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case MK_SCN_EXPECT_MIRROR_EQUALS: return a->cp == b->cp;
    case MK_SCN_EXPECT_ERROR: return a->err == b->err;
    case MK_SCN_EXPECT_EXIT: return a->exit_code == b->exit_code;
    default: return 1;
    }
}

static int config_eq(const mk_scenario_config *a, const mk_scenario_config *b)
{
    unsigned h = a->has;
    if (h != b->has)
        return 0;
    return (!(h & MK_SCN_HAS_VOLUME) ||
            (a->nblocks == b->nblocks && a->block_size == b->block_size)) &&
           (!(h & MK_SCN_HAS_MODE) || a->mode == b->mode) &&
           (!(h & MK_SCN_HAS_SEED) || a->seed == b->seed) &&
           (!(h & MK_SCN_HAS_TRANSPORT) || a->transport == b->transport) &&
           (!(h & MK_SCN_HAS_WORKLOAD) || a->workload == b->workload) &&
           (!(h & MK_SCN_HAS_WRITES) || a->writes_per_cp == b->writes_per_cp) &&
           (!(h & MK_SCN_HAS_CPS) || a->cps == b->cps);
}

int mk_scenario_equal(const mk_scenario *a, const mk_scenario *b)
{
    if (strcmp(a->name, b->name) != 0 || !config_eq(&a->cfg, &b->cfg) ||
        a->nsteps != b->nsteps || a->nex != b->nex)
        return 0;
    for (size_t i = 0; i < a->nsteps; i++)
        if (!step_eq(&a->steps[i], &b->steps[i]))
            return 0;
    for (size_t i = 0; i < a->nex; i++)
        if (!expect_eq(&a->ex[i], &b->ex[i]))
            return 0;
    return 1;
}

int mk_scenario_build(const char *name, const mk_scenario_config *cfg,
                      const mk_scenario_step *steps, size_t nsteps,
                      const mk_scenario_expect *expects, size_t nexpects,
                      mk_scenario **out, mk_scenario_error *err)
{
    mk_scenario tmp;
    char *text = NULL;
    size_t len = 0;
    int rc;
    err_init(err, "<built>");
    *out = NULL;
    if (!name)
        name = "";
    /* Names and point strings are copied into fixed arrays and printed with
     * %s, so they must fit and be terminated; everything else is checked
     * by parsing the printed text. */
    if (strlen(name) > MK_SCN_NAME_MAX)
        goto invalid;
    for (size_t i = 0; i < nsteps; i++) {
        const char *pt = steps[i].kind == MK_SCN_FAULT ? steps[i].fault.point
                         : steps[i].kind == MK_SCN_CRASH && steps[i].crash.trigger ==
                                                                MK_SCN_AT_POINT
                             ? steps[i].crash.point
                             : NULL;
        if (pt && !memchr(pt, '\0', MK_SCN_POINT_MAX + 1))
            goto invalid;
    }
    memset(&tmp, 0, sizeof tmp);
    snprintf(tmp.name, sizeof tmp.name, "%s", name);
    if (cfg)
        tmp.cfg = *cfg;
    tmp.steps = (mk_scenario_step *)steps;
    tmp.nsteps = nsteps;
    tmp.ex = (mk_scenario_expect *)expects;
    tmp.nex = nexpects;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        free(text);
        rc = MK_ENOMEM;
        if (err) {
            err->code = rc;
            snprintf(err->msg, sizeof err->msg, "out of memory");
        }
        return rc;
    }
    rc = mk_scenario_print(f, &tmp);
    if (fclose(f) != 0 && rc == 0)
        rc = MK_ENOMEM;
    if (rc == MK_EINVAL) {
        free(text);
        goto invalid;
    }
    if (rc == 0)
        rc = mk_scenario_parse("<built>", text, len, out, err);
    else if (err) {
        err->code = rc;
        snprintf(err->msg, sizeof err->msg, "cannot print the scenario");
    }
    free(text);
    return rc;
invalid:
    if (err) {
        err->code = MK_EINVAL;
        snprintf(err->msg, sizeof err->msg,
                 "a step or expectation has a value the language cannot write "
                 "(unknown kind, or a name or point too long)");
    }
    return MK_EINVAL;
}
