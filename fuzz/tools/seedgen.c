/*
 * seedgen - makes the seed inputs of fuzz_log, fuzz_sync and fuzz_source
 * (fuzz/gen_corpus.sh runs it; it is not a harness and is not linked into
 * one).  Input layout: fuzz/mk_fuzz_util.h.
 *
 *   seedgen log OUTDIR NAME VARIANT REC
 *       REC is a stream recorded by `mirrorkit demo --record`: its HELLO is
 *       dropped (the harness sends its own) and the rest is cut into
 *       inputs: whole, first CP, chunked, a REF made to fail (hash, slot,
 *       tid) with the DATA resend a source would send, a reconnect
 *       between CPs, a resume in the middle of a CP, TREE_QUERYs, ERROR.
 *   seedgen sync HEADER OUTDIR NAME=REC:K ...
 *       Each REC is cut before the CP_BEGIN of CP K: the part before it
 *       (HELLO, transfers, earlier CPs) becomes prefix i of HEADER
 *       (fuzz/mk_fuzz_sync_prefix.h), and CP K and what follows become the
 *       inputs of variant i, plus the same failing-REF, reordering,
 *       chunking and resume variants.
 *   seedgen source OUTDIR
 *       Runs ref/'s source and destination engines against each other for
 *       every setup of fuzz_source (seeded workloads) and writes what the
 *       source was sent, with its client writes, CP starts and reconnects
 *       as op frames: plain CPs, a NAK (the destination's log damaged
 *       under a REF), a NAK for a block rewritten since the CP started
 *       (copy-on-write), a resume after a reconnect, a lost CP_ACK, and a
 *       Merkle descent (the destination's tree damaged).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mk_buf.h"
#include "mk_dest.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_fuzz_util.h"
#include "mk_merkle.h"
#include "mk_source.h"
#include "mk_wire.h"
#include "mk_workload.h"

/* Largest seed written: SEEDGEN_MAX bytes from the environment, else 60 KiB
 * (smaller seeds run faster, and afl-fuzz favours them anyway). */
static size_t max_input(void)
{
    const char *s = getenv("SEEDGEN_MAX");
    size_t v = s ? strtoul(s, NULL, 0) : 0;
    return v ? v : 60u << 10;
}

typedef struct fr {
    uint8_t type;
    uint32_t len;
    uint8_t *pl; /* owned */
} fr;

typedef struct frl {
    fr *v;
    size_t n, cap;
} frl;

static void die(const char *what)
{
    fprintf(stderr, "seedgen: %s\n", what);
    exit(2);
}

static void push(frl *l, uint8_t type, const uint8_t *pl, uint32_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        if (!(l->v = realloc(l->v, l->cap * sizeof *l->v)))
            die("out of memory");
    }
    fr *f = &l->v[l->n++];
    f->type = type;
    f->len = len;
    f->pl = malloc(len ? len : 1);
    if (!f->pl)
        die("out of memory");
    if (len)
        memcpy(f->pl, pl, len);
}

static void frl_free(frl *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].pl);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* A copy of frames [a, b) of l appended to out. */
static void copy(frl *out, const frl *l, size_t a, size_t b)
{
    for (size_t i = a; i < b && i < l->n; i++)
        push(out, l->v[i].type, l->v[i].pl, l->v[i].len);
}

static void load(const char *path, frl *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    static uint8_t buf[16u << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t at = 0;
    while (at < n) {
        mk_frame fr1;
        size_t used;
        if (mk_frame_decode(buf + at, n - at, MK_MAX_PAYLOAD, MK_FRAME_MAGIC, &fr1, &used))
            die("recording does not decode");
        push(out, fr1.type, fr1.payload, fr1.len);
        at += used;
    }
}

static void put_frame(mk_buf *b, uint8_t type, uint64_t seq, const uint8_t *pl, uint32_t len)
{
    uint8_t h[MK_HDR_LEN] = {0x4d, 0x4b, 0x46, 0x52, 1, type, 0, 0};
    for (int i = 0; i < 4; i++)
        h[8 + i] = (uint8_t)(len >> (8 * i));
    for (int i = 0; i < 8; i++)
        h[12 + i] = (uint8_t)(seq >> (8 * i));
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, h, sizeof h);
    XXH3_64bits_update(st, pl, len);
    uint64_t sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    uint8_t t[8];
    mk_put_le64(t, sum);
    if (mk_buf_append(b, h, sizeof h) || mk_buf_append(b, pl, len) || mk_buf_append(b, t, 8))
        die("out of memory");
}

/* Writes ctl + frames; stream frames get seq numbers from seq0 on, and
 * from reseq again after a reconnect op (1 for a destination, whose HELLO
 * the harness sends, 0 for a source).  Refuses inputs over max_input(). */
static int write_input_re(const char *dir, const char *name, const uint8_t ctl[MKFU_HDR],
                          const frl *l, uint64_t seq0, uint64_t reseq)
{
    mk_buf b;
    mk_buf_init(&b);
    if (mk_buf_append(&b, ctl, MKFU_HDR))
        die("out of memory");
    uint64_t seq = seq0;
    for (size_t i = 0; i < l->n; i++) {
        const fr *f = &l->v[i];
        if (f->type >= 0xF0) {
            put_frame(&b, f->type, 0, f->pl, f->len);
            if (f->type == MKFU_OP_RECONNECT)
                seq = reseq;
            continue;
        }
        put_frame(&b, f->type, seq++, f->pl, f->len);
    }
    int ok = mk_buf_len(&b) <= max_input();
    if (ok) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(mk_buf_peek(&b), 1, mk_buf_len(&b), f) != mk_buf_len(&b) || fclose(f))
            die(path);
    }
    mk_buf_free(&b);
    return ok;
}

static int write_input(const char *dir, const char *name, const uint8_t ctl[MKFU_HDR],
                       const frl *l, uint64_t seq0)
{
    return write_input_re(dir, name, ctl, l, seq0, 1);
}

/* Frames of l up to and including the CP_COMMIT of CP cp (or all). */
static size_t upto_commit(const frl *l, size_t from, uint64_t cp)
{
    for (size_t i = from; i < l->n; i++)
        if (l->v[i].type == MK_F_CP_COMMIT && mk_get_le64(l->v[i].pl) == cp)
            return i + 1;
    return l->n;
}

static size_t find_begin(const frl *l, size_t from, uint64_t cp)
{
    for (size_t i = from; i < l->n; i++)
        if (l->v[i].type == MK_F_CP_BEGIN && mk_get_le64(l->v[i].pl) == cp)
            return i;
    return l->n;
}

/* The B bytes of slot `slot` of transfer `tid`, from the LOG frames of rec. */
static const uint8_t *slot_bytes(const frl *rec, uint64_t tid, uint32_t slot, uint32_t bs)
{
    for (size_t i = 0; i < rec->n; i++) {
        const fr *f = &rec->v[i];
        if (f->type != MK_F_LOG || mk_get_le64(f->pl) != tid)
            continue;
        mk_xgeom g;
        uint32_t len = (uint32_t)(f->pl[16] | f->pl[17] << 8 | f->pl[18] << 16 |
                                  (uint32_t)f->pl[19] << 24);
        mk_transfer_geom(mk_get_le64(f->pl + 8), len, bs, &g);
        if (slot >= g.nslots)
            return NULL;
        return f->pl + 24 + g.head_len + (size_t)slot * bs;
    }
    return NULL;
}

enum { BAD_HASH, BAD_SLOT, BAD_TID_OLD, BAD_TID_NEW };

/* In the CP whose frames are l[a, b), spoils the first REF entry the way
 * `how` says, and appends the CP_DATA a source would resend after the NAK
 * (the slot's bytes, from rec).  Returns 0 if the CP has no REF. */
static int spoil_ref(frl *l, size_t a, size_t b, const frl *rec, uint32_t bs, int how,
                     uint64_t covers)
{
    for (size_t i = a; i < b; i++) {
        fr *f = &l->v[i];
        if (f->type != MK_F_CP_REF)
            continue;
        uint8_t *e = f->pl + 16;
        uint64_t cp = mk_get_le64(f->pl), block = mk_get_le64(e), tid = mk_get_le64(e + 8);
        uint32_t slot = (uint32_t)(e[16] | e[17] << 8 | e[18] << 16 | (uint32_t)e[19] << 24);
        const uint8_t *bytes = slot_bytes(rec, tid, slot, bs);
        if (!bytes)
            return 0;
        switch (how) {
        case BAD_HASH: e[24] ^= 1; break;
        case BAD_SLOT: e[16] ^= 1; break;
        case BAD_TID_OLD: mk_put_le64(e + 8, 1); break;
        case BAD_TID_NEW: mk_put_le64(e + 8, covers + 1); break;
        }
        uint8_t *pl = malloc(16 + bs);
        if (!pl)
            die("out of memory");
        mk_put_le64(pl, cp);
        mk_put_le64(pl + 8, block);
        memcpy(pl + 16, bytes, bs);
        push(l, MK_F_CP_DATA, pl, 16 + bs);
        free(pl);
        return 1;
    }
    return 0;
}

static void push_op(frl *l, uint8_t op) { push(l, op, NULL, 0); }

static void push_tree_queries(frl *l, uint64_t nblocks)
{
    uint32_t h = 0;
    while ((UINT64_C(1) << h) < nblocks)
        h++;
    uint8_t q[8 + 8 * 4] = {0};
    uint32_t level = h ? h : 1, count = 1;
    q[0] = (uint8_t)level;
    q[4] = (uint8_t)count;
    push(l, MK_F_TREE_QUERY, q, 16);
    if (h >= 2) {
        uint64_t nodes = (UINT64_C(1) << h) >> 1; /* level 1 */
        count = nodes < 4 ? (uint32_t)nodes : 4;
        memset(q, 0, sizeof q);
        q[0] = 1;
        q[4] = (uint8_t)count;
        for (uint32_t i = 0; i < count; i++)
            mk_put_le64(q + 8 + 8 * i, i);
        push(l, MK_F_TREE_QUERY, q, 8 + 8 * count);
    }
}

static void push_error(frl *l)
{
    static const uint8_t e[11] = {9, 0, 0, 0, 3, 0, 0, 0, 'b', 'a', 'd'};
    push(l, MK_F_ERROR, e, sizeof e);
}

/* Covers_tid of the CP_BEGIN of CP cp in l. */
static uint64_t covers_of(const frl *l, uint64_t cp)
{
    size_t i = find_begin(l, 0, cp);
    return i < l->n ? mk_get_le64(l->v[i].pl + 16) : 0;
}

/* The variants every cut of a recording gets: s holds the stream from
 * index `from` (a CP_BEGIN of CP cp, or the first frame after HELLO). */
static void variants(const char *dir, const char *name, const frl *rec, size_t from, uint64_t cp,
                     uint8_t variant, uint64_t seq0, uint64_t nblocks, uint32_t bs)
{
    char nm[512];
    uint8_t ctl[MKFU_HDR] = {variant};
    static const uint8_t chunky[MKFU_HDR] = {0, 0x03, 7, 100, 1, 0, 33, 250, 3, 9};
    uint8_t ctl2[MKFU_HDR];
    memcpy(ctl2, chunky, sizeof ctl2);
    ctl2[0] = variant;
    size_t c1 = upto_commit(rec, from, cp), c2 = upto_commit(rec, c1, cp + 1);
    frl l = {0};

    copy(&l, rec, from, rec->n);
    while (l.n > 1 && !write_input(dir, (snprintf(nm, sizeof nm, "%s_all", name), nm), ctl, &l, seq0))
        free(l.v[--l.n].pl); /* cut to size at a frame boundary */
    frl_free(&l);

    copy(&l, rec, from, c1);
    snprintf(nm, sizeof nm, "%s_cp", name);
    write_input(dir, nm, ctl, &l, seq0);
    snprintf(nm, sizeof nm, "%s_chunked", name);
    write_input(dir, nm, ctl2, &l, seq0);
    /* the same CP with its DATA first, REFs after (any order is valid) */
    frl r = {0};
    size_t b = find_begin(&l, 0, cp);
    if (b < l.n) {
        copy(&r, &l, 0, b + 1);
        for (size_t i = b + 1; i < l.n; i++)
            if (l.v[i].type == MK_F_CP_DATA)
                copy(&r, &l, i, i + 1);
        for (size_t i = b + 1; i < l.n; i++)
            if (l.v[i].type != MK_F_CP_DATA)
                copy(&r, &l, i, i + 1);
        snprintf(nm, sizeof nm, "%s_reordered", name);
        write_input(dir, nm, ctl, &r, seq0);
    }
    frl_free(&r);
    /* TREE_QUERYs after the CP, then an ERROR */
    push_tree_queries(&l, nblocks);
    snprintf(nm, sizeof nm, "%s_tree", name);
    write_input(dir, nm, ctl, &l, seq0);
    push_error(&l);
    snprintf(nm, sizeof nm, "%s_error", name);
    write_input(dir, nm, ctl, &l, seq0);
    frl_free(&l);

    static const char *bad[] = {"badhash", "badslot", "oldtid", "newtid"};
    for (int how = BAD_HASH; how <= BAD_TID_NEW; how++) {
        /* the old-tid case is spoiled in the second CP, where the first
         * CP's transfers have been reclaimed (7.7) */
        uint64_t at = how == BAD_TID_OLD ? cp + 1 : cp;
        size_t end = how == BAD_TID_OLD ? c2 : c1;
        size_t a = find_begin(rec, from, at);
        if (a >= rec->n)
            continue;
        copy(&l, rec, from, end);
        if (spoil_ref(&l, a - from, end - from, rec, bs, how, covers_of(rec, at))) {
            snprintf(nm, sizeof nm, "%s_%s", name, bad[how]);
            write_input(dir, nm, ctl, &l, seq0);
        }
        frl_free(&l);
    }

    /* a reconnect between two CPs, and one in the middle of a CP followed
     * by the whole CP again (8.2) */
    if (c1 < rec->n) {
        copy(&l, rec, from, c1);
        push_op(&l, MKFU_OP_RECONNECT);
        copy(&l, rec, c1, c2);
        snprintf(nm, sizeof nm, "%s_reconnect", name);
        write_input(dir, nm, ctl, &l, seq0);
        frl_free(&l);
    }
    size_t a = find_begin(rec, from, cp);
    if (a + 2 < c1) {
        copy(&l, rec, from, a + 2);
        push_op(&l, MKFU_OP_RECONNECT);
        copy(&l, rec, a, c2);
        snprintf(nm, sizeof nm, "%s_resume", name);
        write_input(dir, nm, ctl, &l, seq0);
        frl_free(&l);
    }
}

static int cmd_log(char **argv)
{
    const char *dir = argv[0], *name = argv[1];
    uint8_t variant = (uint8_t)strtoul(argv[2], NULL, 0);
    frl rec = {0};
    load(argv[3], &rec);
    if (!rec.n || rec.v[0].type != MK_F_HELLO)
        die("recording does not start with HELLO");
    uint64_t n = mk_get_le64(rec.v[0].pl + 8);
    uint32_t bs = (uint32_t)mk_get_le64(rec.v[0].pl + 16) & 0xffffffffu;
    variants(dir, name, &rec, 1, 1, variant, 1, n, bs);
    frl_free(&rec);
    return 0;
}

static int cmd_sync(int argc, char **argv)
{
    const char *hdr = argv[0], *dir = argv[1];
    FILE *h = fopen(hdr, "w");
    if (!h)
        die(hdr);
    fprintf(h, "/*\n * mk_fuzz_sync_prefix.h - generated by fuzz/gen_corpus.sh (fuzz/tools/seedgen.c);\n"
               " * do not edit.  The source->destination streams fuzz_sync feeds before\n"
               " * its input: recorded by `mirrorkit demo --record`, cut before a\n"
               " * CP_BEGIN, so the destination's log holds their transfers (and their\n"
               " * earlier CPs are applied).  Byte 0 of an input picks one.\n */\n"
               "#ifndef MK_FUZZ_SYNC_PREFIX_H\n#define MK_FUZZ_SYNC_PREFIX_H\n\n"
               "#include <stddef.h>\n#include <stdint.h>\n\n");
    int np = argc - 2;
    for (int i = 0; i < np; i++) {
        char name[256], path[4096];
        unsigned long k;
        const char *arg = argv[2 + i], *eq = strchr(arg, '='), *colon = strrchr(arg, ':');
        if (!eq || !colon || colon < eq)
            die("sync: NAME=REC:K expected");
        snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
        snprintf(path, sizeof path, "%.*s", (int)(colon - eq - 1), eq + 1);
        k = strtoul(colon + 1, NULL, 0);
        frl rec = {0};
        load(path, &rec);
        size_t cut = find_begin(&rec, 0, k);
        if (cut >= rec.n)
            die("sync: no such CP in the recording");
        uint64_t n = mk_get_le64(rec.v[0].pl + 8);
        uint32_t bs = (uint32_t)mk_get_le64(rec.v[0].pl + 16) & 0xffffffffu;
        /* the prefix, frames [1, cut) after the HELLO the harness parses */
        mk_buf b;
        mk_buf_init(&b);
        for (size_t j = 0; j < cut; j++)
            put_frame(&b, rec.v[j].type, j, rec.v[j].pl, rec.v[j].len);
        fprintf(h, "/* %s: %s, CP %lu onward is the input */\nstatic const uint8_t mkfs_prefix%d[%zu] = {",
                name, path, k, i, mk_buf_len(&b));
        for (size_t j = 0; j < mk_buf_len(&b); j++)
            fprintf(h, "%s%u,", j % 24 ? "" : "\n", mk_buf_peek(&b)[j]);
        fprintf(h, "\n};\n\n");
        mk_buf_free(&b);
        variants(dir, name, &rec, cut, k, (uint8_t)i, cut, n, bs);
        frl_free(&rec);
    }
    fprintf(h, "static const struct {\n    const uint8_t *p;\n    size_t n;\n} mkfs_prefixes[] = {\n");
    for (int i = 0; i < np; i++)
        fprintf(h, "    {mkfs_prefix%d, sizeof mkfs_prefix%d},\n", i, i);
    fprintf(h, "};\n\n#endif\n");
    if (fclose(h))
        die(hdr);
    return 0;
}

/* ---- fuzz_source: the two engines against each other --------------------- */

typedef struct pair {
    mk_source *s;
    mk_dest *d;
    mk_file *store, *stree, *mirror, *log, *dtree;
    frl in;         /* the fuzz input being built */
    uint64_t nblocks;
    uint32_t bs;
    mk_workload wl;
    int drop_dest;  /* discard what the destination sends */
} pair;

/* Moves bytes both ways until nothing moves; destination frames go into
 * the input one by one, as the harness will feed them. */
static void pump(pair *p)
{
    for (int moved = 1; moved;) {
        moved = 0;
        mk_buf *so = mk_source_out(p->s), *dout = mk_dest_out(p->d);
        if (mk_buf_len(so)) {
            mk_dest_recv(p->d, mk_buf_peek(so), mk_buf_len(so), 0);
            mk_buf_consume(so, mk_buf_len(so));
            moved = 1;
        }
        while (mk_buf_len(dout)) {
            mk_frame f;
            size_t used;
            if (mk_frame_decode(mk_buf_peek(dout), mk_buf_len(dout), MK_MAX_PAYLOAD,
                                MK_FRAME_MAGIC, &f, &used))
                die("destination output does not decode");
            if (!p->drop_dest) {
                push(&p->in, f.type, f.payload, f.len);
                mk_source_recv(p->s, mk_buf_peek(dout), used, 0);
            }
            mk_buf_consume(dout, used);
            moved = 1;
        }
    }
}

static void op_write(pair *p, uint64_t off, const uint8_t *data, uint32_t len)
{
    uint64_t wid;
    uint8_t *pl = malloc(8 + (size_t)len);
    if (!pl)
        die("out of memory");
    mk_put_le64(pl, off);
    memcpy(pl + 8, data, len);
    push(&p->in, MKFU_OP_WRITE, pl, 8 + len);
    free(pl);
    mk_source_write(p->s, off, data, len, 0, &wid);
}

static void workload_writes(pair *p, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t off;
        uint32_t len;
        const uint8_t *data;
        mk_workload_next(&p->wl, &off, &len, &data);
        op_write(p, off, data, len);
        pump(p);
    }
}

static void workload_writes_nopump(pair *p, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t off;
        uint32_t len;
        const uint8_t *data;
        mk_workload_next(&p->wl, &off, &len, &data);
        op_write(p, off, data, len);
    }
}

/* Restarts the destination with the last R_TRANSFER record cut off its
 * log, as a torn tail would be (7.6). */
static void lose_log_tail(pair *p)
{
    uint64_t size, at = MK_LOG_DATA_START, last = 0;
    uint8_t hdr[MK_HDR_LEN];
    mk_file_size(p->log, &size);
    while (at + sizeof hdr <= size && mk_file_read_exact(p->log, hdr, sizeof hdr, at) == 0) {
        uint32_t len = (uint32_t)(hdr[8] | hdr[9] << 8 | hdr[10] << 16 | (uint32_t)hdr[11] << 24);
        if (hdr[5] == MK_R_TRANSFER)
            last = at;
        at += MK_FRAME_OVERHEAD + (uint64_t)len;
    }
    mk_dest_free(p->d);
    if (last)
        mk_file_truncate(p->log, last);
    mk_dest_config dc;
    memset(&dc, 0, sizeof dc);
    dc.tree = p->dtree;
    if (mk_dest_open(&dc, p->mirror, p->log, &p->d))
        die("destination reopen");
}

static void op_cp(pair *p)
{
    push_op(&p->in, MKFU_OP_CP);
    mk_source_cp(p->s, 0);
}

static void op_reconnect(pair *p)
{
    push_op(&p->in, MKFU_OP_RECONNECT);
    mk_dest_session_end(p->d);
    mk_source_disconnect(p->s);
    mk_source_connect(p->s, 0);
}

/* Damages the first whole slot of the newest transfer in the destination's
 * log, so that a REF to it fails resolution with MK_EREFHASH (a NAK). */
static uint64_t damage_newest_slot(pair *p)
{
    uint64_t size, at = MK_LOG_DATA_START, slot_off = 0, block = UINT64_MAX;
    mk_file_size(p->log, &size);
    uint8_t hdr[MK_HDR_LEN + MK_LOG_HDR_LEN];
    while (at + sizeof hdr <= size) {
        if (mk_file_read_exact(p->log, hdr, sizeof hdr, at))
            break;
        uint32_t len = (uint32_t)(hdr[8] | hdr[9] << 8 | hdr[10] << 16 | (uint32_t)hdr[11] << 24);
        if (hdr[5] == MK_R_TRANSFER) {
            mk_xgeom g;
            uint32_t dl = (uint32_t)(hdr[36] | hdr[37] << 8 | hdr[38] << 16 | (uint32_t)hdr[39] << 24);
            mk_transfer_geom(mk_get_le64(hdr + 28), dl, p->bs, &g);
            if (g.nslots) {
                slot_off = at + MK_HDR_LEN + MK_LOG_HDR_LEN + g.head_len;
                block = g.first_block;
            }
        }
        at += MK_FRAME_OVERHEAD + (uint64_t)len;
    }
    if (slot_off) {
        uint8_t x;
        mk_file_pread(p->log, &x, 1, slot_off);
        x ^= 0x5a;
        mk_file_pwrite(p->log, &x, 1, slot_off);
    }
    return block;
}

static int pair_open(pair *p, unsigned v)
{
    static const struct {
        uint64_t n;
        uint32_t bs;
        int mode;
        uint64_t lag;
    } su[] = {
#define SETUP(n, b, m, l) {n, b, m, l},
        MKFU_SOURCE_SETUPS(SETUP)
#undef SETUP
    };
    memset(p, 0, sizeof *p);
    mk_source_config sc = {MKFU_VOLUME_ID, su[v].n, MKFU_SOURCE_ID, su[v].bs,
                           su[v].mode, su[v].lag, NULL};
    mk_dest_config dc;
    memset(&dc, 0, sizeof dc);
    if (mk_file_mem("s", &p->store) || mk_file_mem("st", &p->stree) ||
        mk_file_mem("m", &p->mirror) || mk_file_mem("l", &p->log) || mk_file_mem("t", &p->dtree))
        die("out of memory");
    sc.tree = p->stree;
    dc.tree = p->dtree;
    if (mk_source_new(&sc, p->store, &p->s) || mk_dest_open(&dc, p->mirror, p->log, &p->d))
        die("engines");
    p->nblocks = su[v].n;
    p->bs = su[v].bs;
    mk_workload_init(&p->wl, v % 2 ? MK_WL_WHOLE : MK_WL_MIXED, 1 + v, p->nblocks, p->bs);
    mk_source_connect(p->s, 0);
    pump(p);
    return su[v].mode;
}

static void pair_close(pair *p, const char *dir, const char *name, unsigned v)
{
    uint8_t ctl[MKFU_HDR] = {(uint8_t)v};
    write_input_re(dir, name, ctl, &p->in, 0, 0);
    mk_source_free(p->s);
    mk_dest_free(p->d);
    mk_file_close(p->store);
    mk_file_close(p->stree);
    mk_file_close(p->mirror);
    mk_file_close(p->log);
    mk_file_close(p->dtree);
    mk_workload_free(&p->wl);
    frl_free(&p->in);
}

/* Repeats the CP start until the source takes it (sync mode waits for its
 * acknowledgements, which the pump has delivered). */
static void cp_and_pump(pair *p)
{
    op_cp(p);
    pump(p);
}

static int cmd_source(char **argv)
{
    const char *dir = argv[0];
    char nm[256];
    unsigned nsetups = 0;
#define COUNT(n, b, m, l) nsetups++;
    MKFU_SOURCE_SETUPS(COUNT)
#undef COUNT
    for (unsigned v = 0; v < nsetups; v++) {
        pair p;
        int writes = 6;

        /* two plain CPs */
        pair_open(&p, v);
        workload_writes(&p, writes);
        cp_and_pump(&p);
        workload_writes(&p, writes);
        cp_and_pump(&p);
        snprintf(nm, sizeof nm, "s%u_cps", v);
        pair_close(&p, dir, nm, v);

        /* a REF that fails at the destination: NAK, DATA resend */
        pair_open(&p, v);
        uint64_t block;
        uint8_t *blk = malloc(p.bs);
        for (uint32_t i = 0; i < p.bs; i++)
            blk[i] = (uint8_t)(i * 7 + v);
        workload_writes(&p, writes);
        op_write(&p, 0, blk, p.bs);
        pump(&p);
        block = damage_newest_slot(&p);
        cp_and_pump(&p);
        snprintf(nm, sizeof nm, "s%u_nak", v);
        pair_close(&p, dir, nm, v);

        /* the NAKed block rewritten after the CP started: the resend must
         * be the copy taken before the write (8.1) */
        pair_open(&p, v);
        op_write(&p, 0, blk, p.bs);
        pump(&p);
        block = damage_newest_slot(&p);
        op_cp(&p);
        {
            /* the CP goes out; the NAK comes back but waits while the
             * client rewrites the block */
            mk_buf *so = mk_source_out(p.s);
            mk_dest_recv(p.d, mk_buf_peek(so), mk_buf_len(so), 0);
            mk_buf_consume(so, mk_buf_len(so));
            for (uint32_t i = 0; i < p.bs; i++)
                blk[i] ^= 0xff;
            if (block != UINT64_MAX)
                op_write(&p, block * p.bs, blk, p.bs);
            pump(&p);
        }
        snprintf(nm, sizeof nm, "s%u_cow", v);
        pair_close(&p, dir, nm, v);

        /* a reconnect with a CP in flight: resume and resend (8.2) */
        pair_open(&p, v);
        workload_writes(&p, writes);
        p.drop_dest = 1;
        op_cp(&p);
        pump(&p); /* the CP_ACK is lost with the connection */
        p.drop_dest = 0;
        op_reconnect(&p);
        pump(&p);
        workload_writes(&p, 2);
        op_reconnect(&p);
        workload_writes_nopump(&p, 1); /* queued, resent after HELLO_ACK */
        op_cp(&p); /* started while the session is down */
        pump(&p);
        snprintf(nm, sizeof nm, "s%u_resume", v);
        pair_close(&p, dir, nm, v);

        /* the destination lost the tail of its log (a torn tail cut at
         * restart): HELLO_ACK reports fewer transfers than were acked,
         * and REFs to the lost ones must become DATA (8.3) */
        pair_open(&p, v);
        workload_writes(&p, writes);
        op_write(&p, 0, blk, p.bs); /* a whole block, so a REF names the lost one */
        pump(&p);
        lose_log_tail(&p);
        op_reconnect(&p);
        if (v % 2)
            pump(&p); /* HELLO_ACK first: the dirty descriptors forget */
        cp_and_pump(&p); /* else the CP's REF records do */
        snprintf(nm, sizeof nm, "s%u_lost", v);
        pair_close(&p, dir, nm, v);

        /* the destination's tree damaged: the CP_ACK root differs and the
         * source descends (9.7) until it names the block (MK_EVERIFY) */
        pair_open(&p, v);
        workload_writes(&p, writes);
        cp_and_pump(&p);
        {
            mk_merkle *t;
            if (mk_merkle_open(p.dtree, p.nblocks, &t) == 0) {
                mk_merkle_set(t, 0, (mk_h128){0x1234, 0x5678});
                mk_merkle_commit(t);
                mk_merkle_free(t);
            }
        }
        op_write(&p, (p.nblocks - 1) * p.bs, blk, p.bs);
        pump(&p);
        cp_and_pump(&p);
        snprintf(nm, sizeof nm, "s%u_descent", v);
        pair_close(&p, dir, nm, v);
        free(blk);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "log") == 0)
        return cmd_log(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "sync") == 0)
        return cmd_sync(argc - 2, argv + 2);
    if (argc == 3 && strcmp(argv[1], "source") == 0)
        return cmd_source(argv + 2);
    fprintf(stderr, "usage: seedgen log OUTDIR NAME VARIANT REC\n"
                    "       seedgen sync HEADER OUTDIR NAME=REC:K ...\n"
                    "       seedgen source OUTDIR\n");
    return 2;
}
