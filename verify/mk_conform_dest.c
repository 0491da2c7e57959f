/*
 * mk_conform_dest.c - the conformance cases for a destination under test
 * (SPEC.md section 10.1).  The runner plays the source: valid traffic
 * comes from the reference source engine (ref/mk_source) pumped through
 * the IUT's stdin and stdout; every other case writes its frames by hand,
 * valid or broken, from a small model of what the IUT must hold (the
 * mirror at the last CP, the highest transfer ID, the last CP and digest).
 *
 * Every refusal case checks the whole of 3.4: the named error in an ERROR
 * frame, the session's end and the exit code of 10.3, and I4 - the image
 * unchanged and, after a restart, a HELLO_ACK that reports the same
 * durable_tid, last_cp and last_digest as before the bad frame.
 */
#include "mk_conform.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_file.h"
#include "mk_logstore.h"
#include "mk_merkle.h"
#include "mk_prng.h"
#include "mk_source.h"

#define VOLUME_ID UINT64_C(0x6d6b2d636f6e666f) /* "mk-confo" */
#define SOURCE_ID UINT64_C(0x00000000c0ffee01)
#define MAX_PEND 4096

/* The steps of a case run in order until the first that does not pass: its
 * verdict (and the reason mkc_fail recorded) stands, the rest are skipped. */
#define STEP(x)              \
    do {                     \
        if (v == MKC_PASS)   \
            v = (x);         \
    } while (0)

/* What the runner, as source, believes the IUT holds, and the CP it is
 * building. */
typedef struct peer {
    mkc *c;
    mkc_proc *p;
    mkc_link *l;
    char image[PATH_MAX], log[PATH_MAX];
    uint64_t nblocks, vid, sid;
    uint32_t bs;
    uint8_t mode;
    uint64_t seq, rseq;      /* next seq to send; next seq expected */
    uint64_t tid_hi, acked;  /* highest tid accepted; highest LOG_ACK seen */
    uint64_t cp, digest, covers;
    uint8_t *img;            /* the mirror at CP `cp` */
    uint8_t *nimg;           /* the mirror the open CP will give */
    struct pend { uint64_t block, hash; } *pend;
    size_t npend;
    int adopted;             /* a HELLO was accepted: the image is sized */
    const uint8_t *pre;      /* before adoption, the image's bytes (I4) */
    size_t npre;
    mk_hello_ack ack;
    mk_buf out;
} peer;

/* ---- the model ------------------------------------------------------------------ */

static uint64_t vbytes(const peer *P) { return P->nblocks * P->bs; }

static mkc_verdict peer_init(mkc *c, peer *P, uint64_t nblocks, uint32_t bs)
{
    memset(P, 0, sizeof *P);
    P->c = c;
    P->nblocks = nblocks;
    P->bs = bs;
    P->vid = VOLUME_ID;
    P->sid = SOURCE_ID;
    P->mode = MK_MODE_SYNC;
    mkc_path(c, "image", P->image, sizeof P->image);
    mkc_path(c, "log", P->log, sizeof P->log);
    mk_buf_init(&P->out);
    P->img = calloc(nblocks, bs);
    P->nimg = calloc(nblocks, bs);
    P->pend = calloc(MAX_PEND, sizeof *P->pend);
    if (!P->img || !P->nimg || !P->pend)
        return mkc_error(c, "MK_ENOMEM");
    return MKC_PASS;
}

static void peer_free(peer *P)
{
    free(P->img);
    free(P->nimg);
    free(P->pend);
    mk_buf_free(&P->out);
}

/* The open CP will write data to block: the expected image and the
 * (block, hash) pair of the digest (7.5). */
static void stage(peer *P, uint64_t block, const uint8_t *data)
{
    memcpy(P->nimg + block * P->bs, data, P->bs);
    for (size_t i = 0; i < P->npend; i++)
        if (P->pend[i].block == block) {
            P->pend[i].hash = mk_block_hash(data, P->bs);
            return;
        }
    if (P->npend < MAX_PEND) {
        P->pend[P->npend].block = block;
        P->pend[P->npend].hash = mk_block_hash(data, P->bs);
        P->npend++;
    }
}

static int pend_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct pend *)a)->block, y = ((const struct pend *)b)->block;
    return (x > y) - (x < y);
}

static uint64_t pend_digest(peer *P)
{
    qsort(P->pend, P->npend, sizeof *P->pend, pend_cmp);
    uint64_t d = 0;
    for (size_t i = 0; i < P->npend; i++)
        d = mk_digest_step(d, P->pend[i].block, P->pend[i].hash);
    return d;
}

/* The Merkle root (9.7) of an image, computed by the reference tree. */
static int image_root(const uint8_t *img, uint64_t nblocks, uint32_t bs, mk_h128 *root)
{
    mk_file *f = NULL, *t = NULL;
    mk_merkle *m = NULL;
    int rc = mk_file_mem("conform/root-image", &f);
    if (!rc)
        rc = mk_file_pwrite(f, img, nblocks * bs, 0);
    if (!rc)
        rc = mk_file_mem("conform/root-tree", &t);
    if (!rc)
        rc = mk_merkle_open(t, nblocks, &m);
    if (!rc)
        rc = mk_merkle_rebuild(m, f, bs);
    if (!rc)
        rc = mk_merkle_root(m, root);
    mk_merkle_free(m);
    if (t)
        mk_file_close(t);
    if (f)
        mk_file_close(f);
    return rc;
}

/* The IUT's image file against an expected image. */
static mkc_verdict check_image(peer *P, const uint8_t *want, const char *when)
{
    uint8_t *got;
    size_t n;
    if (mkc_read_file(P->image, &got, &n))
        return mkc_fail(P->c, "%s: cannot read the image %s (10.1)", when, P->image);
    mkc_verdict v = MKC_PASS;
    if (n != vbytes(P)) {
        v = mkc_fail(P->c, "%s: the image has %zu bytes, not N*B = %llu (10.1)", when, n,
                     (unsigned long long)vbytes(P));
    } else if (memcmp(got, want, n)) {
        uint64_t b = 0;
        while (memcmp(got + b * P->bs, want + b * P->bs, P->bs) == 0)
            b++;
        v = mkc_fail(P->c, "%s: image block %llu differs from the CP image (I1)", when,
                     (unsigned long long)b);
    }
    free(got);
    return v;
}

/* Before adoption the image is absent or empty, or holds exactly the
 * bytes the case put there (2.3, I4). */
static mkc_verdict check_no_image(peer *P, const char *when)
{
    uint8_t *got;
    size_t n;
    if (mkc_read_file(P->image, &got, &n))
        return P->npre ? mkc_fail(P->c, "%s: the image is gone (2.3: MUST NOT wipe it)", when) : MKC_PASS;
    int same = n == P->npre && (!n || memcmp(got, P->pre, n) == 0);
    free(got);
    if (!same)
        return mkc_fail(P->c, "%s: the image changed, %zu bytes now, %zu before (I4, 2.3)", when, n, P->npre);
    return MKC_PASS;
}

/* ---- the process and its stream -------------------------------------------------- */

static mkc_verdict spawn(peer *P)
{
    const char *args[] = {"--stdio", "--image", P->image, "--log", P->log, NULL};
    if (mkc_spawn(P->c, args, &P->p))
        return mkc_error(P->c, "cannot start the implementation");
    P->l = mkc_link_proc(P->c, P->p);
    if (!P->l)
        return mkc_error(P->c, "too many streams");
    P->seq = P->rseq = 0;
    return MKC_PASS;
}

static const char *exit_note(peer *P, char *buf, size_t n)
{
    int code;
    if (mkc_proc_wait(P->c, P->p, 200, &code) == 0)
        snprintf(buf, n, "; it exited with code %d", code);
    else
        snprintf(buf, n, "; it is still running");
    return buf;
}

static mkc_verdict flush_buf(peer *P, mk_buf *b)
{
    int rc = mkc_send_buf(P->c, P->l, b);
    char note[64];
    if (rc == MK_ECLOSED)
        return mkc_fail(P->c, "the destination stopped reading its input%s", exit_note(P, note, sizeof note));
    if (rc)
        return mkc_fail(P->c, "the destination did not read its input within %d ms (%s)",
                        mkc_timeout_ms(P->c), mk_errname(rc));
    return MKC_PASS;
}

static mkc_verdict flush(peer *P) { return flush_buf(P, &P->out); }

/* The next frame, with the 3.5 check of its sequence number. */
static mkc_verdict next(peer *P, mk_frame *f, const char *waiting_for)
{
    char note[64];
    int rc = mkc_recv_frame(P->c, P->l, mkc_timeout_ms(P->c), f);
    if (rc == MK_ETIMEOUT)
        return mkc_fail(P->c, "no frame within %d ms while waiting for %s", mkc_timeout_ms(P->c), waiting_for);
    if (rc == MK_ECLOSED)
        return mkc_fail(P->c, "the destination closed its output while %s was due%s", waiting_for,
                        exit_note(P, note, sizeof note));
    if (rc)
        return mkc_fail(P->c, "the destination sent a malformed frame: %s (3.4)", mk_errname(rc));
    if (f->seq != P->rseq)
        return mkc_fail(P->c, "%s frame with seq %llu, expected %llu (3.5)", mk_ftype_name(f->type),
                        (unsigned long long)f->seq, (unsigned long long)P->rseq);
    P->rseq++;
    return MKC_PASS;
}

static mkc_verdict note_log_ack(peer *P, const mk_frame *f)
{
    uint64_t tid;
    if (mk_log_ack_decode(f, &tid))
        return mkc_fail(P->c, "malformed LOG_ACK (4.4)");
    if (tid < P->acked || tid > P->tid_hi)
        return mkc_fail(P->c, "LOG_ACK(%llu) after LOG_ACK(%llu), highest tid sent %llu (4.4)",
                        (unsigned long long)tid, (unsigned long long)P->acked,
                        (unsigned long long)P->tid_hi);
    P->acked = tid;
    return MKC_PASS;
}

static mkc_verdict unexpected(peer *P, const mk_frame *f, const char *want)
{
    mk_error_frame e;
    if (f->type == MK_F_ERROR && mk_error_decode(f, &e) == 0)
        return mkc_fail(P->c, "refused with %s (\"%.*s\") where %s was due", mk_errname(e.code),
                        (int)e.msglen, (const char *)e.msg, want);
    return mkc_fail(P->c, "sent %s where %s was due", mk_ftype_name(f->type), want);
}

/* The next frame of the given type; LOG_ACKs on the way are noted. */
static mkc_verdict expect(peer *P, int type, mk_frame *f)
{
    const char *want = mk_ftype_name(type);
    for (;;) {
        if (next(P, f, want))
            return MKC_FAIL;
        if (f->type == type)
            return MKC_PASS;
        if (f->type != MK_F_LOG_ACK)
            return unexpected(P, f, want);
        if (note_log_ack(P, f))
            return MKC_FAIL;
    }
}

static mkc_verdict hello_as(peer *P, uint64_t vid, uint64_t n, uint32_t bs, uint64_t sid)
{
    mk_hello h = {vid, n, bs, P->mode, sid};
    mk_frame f;
    if (mk_hello_encode(&P->out, P->seq++, &h) || flush(P) || expect(P, MK_F_HELLO_ACK, &f))
        return MKC_FAIL;
    mk_hello_ack *a = &P->ack;
    if (mk_hello_ack_decode(&f, a))
        return mkc_fail(P->c, "malformed HELLO_ACK (2.2)");
    if (a->volume_id != P->vid || a->nblocks != P->nblocks || a->block_size != P->bs ||
        a->source_id != P->sid)
        return mkc_fail(P->c, "HELLO_ACK identity (%llx, %llu, %u, %llx) is not the HELLO's (2.2)",
                        (unsigned long long)a->volume_id, (unsigned long long)a->nblocks,
                        a->block_size, (unsigned long long)a->source_id);
    if (a->last_cp != P->cp || a->durable_tid != P->tid_hi || a->last_digest != P->digest)
        return mkc_fail(P->c,
                        "HELLO_ACK reports last_cp %llu, durable_tid %llu, last_digest %016llx; "
                        "the destination accepted up to CP %llu (digest %016llx) and tid %llu (2.2)",
                        (unsigned long long)a->last_cp, (unsigned long long)a->durable_tid,
                        (unsigned long long)a->last_digest, (unsigned long long)P->cp,
                        (unsigned long long)P->digest, (unsigned long long)P->tid_hi);
    P->acked = a->durable_tid;
    P->adopted = 1;
    return MKC_PASS;
}

static mkc_verdict hello(peer *P) { return hello_as(P, P->vid, P->nblocks, P->bs, P->sid); }

/* A fresh IUT (new files) that has accepted HELLO. */
static mkc_verdict start(mkc *c, peer *P, uint64_t nblocks, uint32_t bs)
{
    if (peer_init(c, P, nblocks, bs) || spawn(P) || hello(P))
        return MKC_FAIL;
    return check_image(P, P->img, "after adoption (2.3)");
}

/* Ends the session by EOF: the IUT must exit 0 (10.1). */
static mkc_verdict end_session(peer *P)
{
    int code;
    mkc_link_close(P->l);
    if (!mkc_link_eof(P->c, P->l, mkc_timeout_ms(P->c)))
        return mkc_fail(P->c, "the destination did not end the session at EOF (2.4, 10.1)");
    if (mkc_proc_wait(P->c, P->p, mkc_timeout_ms(P->c), &code))
        return mkc_fail(P->c, "the destination did not exit after EOF on stdin (10.1)");
    if (code != 0)
        return mkc_fail(P->c, "the destination exited %d after an orderly session, not 0 (10.1)", code);
    return MKC_PASS;
}

/* A new process on the same files, and a HELLO that must report the
 * model's state (2.2, 7.6). */
static mkc_verdict restart(peer *P)
{
    if (P->p && !mkc_proc_exited(P->p, NULL))
        mkc_proc_kill(P->p);
    if (spawn(P) || hello(P))
        return MKC_FAIL;
    return check_image(P, P->img, "after a restart (7.6)");
}

/*
 * The bad frame has been queued in P->out: refusal() sends it and checks
 * 3.4 - an ERROR with exactly err, nothing but LOG_ACKs before it, the end
 * of the session and the exit code of 10.3; refused() then checks I4: the
 * image as it was and, after a restart, the same HELLO_ACK state.
 */
static mkc_verdict refusal(peer *P, int err)
{
    mk_frame f;
    mk_error_frame e;
    int code;
    char note[64];
    int rc = mkc_send_buf(P->c, P->l, &P->out);
    if (rc && rc != MK_ECLOSED)
        return mkc_fail(P->c, "the destination did not read the frame within %d ms", mkc_timeout_ms(P->c));
    for (;;) {
        rc = mkc_recv_frame(P->c, P->l, mkc_timeout_ms(P->c), &f);
        if (rc == MK_ETIMEOUT)
            return mkc_fail(P->c, "no ERROR within %d ms: the destination accepted what SPEC refuses with %s",
                            mkc_timeout_ms(P->c), mk_errname(err));
        if (rc == MK_ECLOSED)
            return mkc_fail(P->c, "the destination closed without an ERROR %s (3.4)%s", mk_errname(err),
                            exit_note(P, note, sizeof note));
        if (rc)
            return mkc_fail(P->c, "the destination sent a malformed frame: %s (3.4)", mk_errname(rc));
        if (f.seq != P->rseq)
            return mkc_fail(P->c, "%s frame with seq %llu, expected %llu (3.5)", mk_ftype_name(f.type),
                            (unsigned long long)f.seq, (unsigned long long)P->rseq);
        P->rseq++;
        if (f.type == MK_F_ERROR)
            break;
        if (f.type != MK_F_LOG_ACK || note_log_ack(P, &f))
            return mkc_fail(P->c, "sent %s instead of refusing with %s (3.4)", mk_ftype_name(f.type),
                            mk_errname(err));
    }
    if (mk_error_decode(&f, &e))
        return mkc_fail(P->c, "malformed ERROR frame (3.6)");
    if (e.code != err)
        return mkc_fail(P->c, "refused with %s (\"%.*s\"), SPEC says %s", mk_errname(e.code),
                        (int)e.msglen, (const char *)e.msg, mk_errname(err));
    if (mkc_recv_frame(P->c, P->l, mkc_timeout_ms(P->c), &f) != MK_ECLOSED)
        return mkc_fail(P->c, "the destination went on after its ERROR (3.4: no further input, session ends)");
    if (mkc_proc_wait(P->c, P->p, mkc_timeout_ms(P->c), &code))
        return mkc_fail(P->c, "with --stdio the destination must exit when its session ends (10.1)");
    if (code != mk_exit_code(err))
        return mkc_fail(P->c, "exit code %d after %s, 10.3 says %d", code, mk_errname(err), mk_exit_code(err));
    return MKC_PASS;
}

static mkc_verdict refused(peer *P, int err)
{
    if (refusal(P, err))
        return MKC_FAIL;
    if (P->adopted) {
        if (check_image(P, P->img, "after the refused frame (I4)"))
            return MKC_FAIL;
        return restart(P);
    }
    return check_no_image(P, "after the refused HELLO");
}

/* ---- frames ------------------------------------------------------------------------ */

/* Any frame, valid or not, by the header fields of 3.1.  A checksum of 0
 * is computed; `bad_sum` flips it.  Built through a write cursor like
 * every encoder, only without their checks. */
typedef struct raw {
    uint32_t magic;
    uint8_t version, type;
    uint16_t flags;
    uint32_t len;       /* the header's length field */
    uint64_t seq;
    const uint8_t *payload;
    size_t plen;        /* bytes of payload actually written */
    int bad_sum, no_trailer;
} raw;

static int raw_frame(mk_buf *b, const raw *r)
{
    size_t n = MK_HDR_LEN + r->plen + MK_TRAILER_LEN;
    mk_wcur w;
    int rc = mk_buf_reserve(b, n, &w);
    if (rc)
        return rc;
    uint8_t *start;
    if ((rc = mk_wcur_reserve(&w, MK_HDR_LEN + r->plen, &start)))
        return rc;
    mk_wcur hw;
    mk_wcur_init(&hw, start, MK_HDR_LEN + r->plen);
    mk_wcur_u32(&hw, r->magic);
    mk_wcur_u8(&hw, r->version);
    mk_wcur_u8(&hw, r->type);
    mk_wcur_u16(&hw, r->flags);
    mk_wcur_u32(&hw, r->len);
    mk_wcur_u64(&hw, r->seq);
    if (r->plen)
        mk_wcur_bytes(&hw, r->payload, r->plen);
    uint64_t sum = XXH3_64bits(start, MK_HDR_LEN + r->plen) ^ (r->bad_sum ? 1 : 0);
    if (!r->no_trailer)
        mk_wcur_u64(&w, sum);
    mk_buf_commit(b, r->no_trailer ? n - MK_TRAILER_LEN : n);
    return 0;
}

/* A well-formed frame of any type and payload. */
static int frame(peer *P, uint8_t type, const uint8_t *payload, size_t len)
{
    raw r = {MK_FRAME_MAGIC, MK_PROTO_VERSION, type, 0, (uint32_t)len, P->seq++, payload, len, 0, 0};
    return raw_frame(&P->out, &r);
}

/* A LOG of data at off, which the destination must accept. */
static mkc_verdict send_log(peer *P, uint64_t tid, uint64_t off, const uint8_t *data, uint32_t len)
{
    mk_log g = {tid, off, len, data};
    if (mk_log_encode(&P->out, P->seq++, &g))
        return mkc_error(P->c, "LOG encode");
    if (tid > P->tid_hi)
        P->tid_hi = tid;
    return flush(P);
}

static mkc_verdict wait_log_ack(peer *P, uint64_t tid)
{
    mk_frame f;
    while (P->acked < tid)
        if (expect(P, MK_F_LOG_ACK, &f) || note_log_ack(P, &f))
            return MKC_FAIL;
    return MKC_PASS;
}

static mkc_verdict send_begin(peer *P, uint64_t cp, uint64_t nrec, uint64_t covers)
{
    mk_cp_begin b = {cp, nrec, covers};
    memcpy(P->nimg, P->img, vbytes(P));
    P->npend = 0;
    if (mk_cp_begin_encode(&P->out, P->seq++, &b))
        return mkc_error(P->c, "CP_BEGIN encode");
    return flush(P);
}

static mkc_verdict send_data(peer *P, uint64_t cp, uint64_t block, const uint8_t *data)
{
    mk_cp_data d = {cp, block, data};
    if (mk_cp_data_encode(&P->out, P->seq++, &d, P->bs))
        return mkc_error(P->c, "CP_DATA encode");
    if (block < P->nblocks)
        stage(P, block, data);
    return flush(P);
}

static mkc_verdict send_refs(peer *P, uint64_t cp, const mk_ref *refs, uint32_t n)
{
    if (mk_cp_ref_encode(&P->out, P->seq++, cp, refs, n))
        return mkc_error(P->c, "CP_REF encode");
    return flush(P);
}

static mkc_verdict send_commit(peer *P, uint64_t cp, uint64_t nrec)
{
    mk_cp_commit m = {cp, nrec};
    if (mk_cp_commit_encode(&P->out, P->seq++, &m))
        return mkc_error(P->c, "CP_COMMIT encode");
    return flush(P);
}

/* CP_ACK of the open CP: its fields (7.5), and the image file holding the
 * CP image when it arrives (7.4 step 6, 10.1). */
static mkc_verdict expect_cp_ack(peer *P, uint64_t cp, uint64_t covers)
{
    mk_frame f;
    mk_cp_ack a;
    mk_h128 root;
    if (expect(P, MK_F_CP_ACK, &f))
        return MKC_FAIL;
    if (mk_cp_ack_decode(&f, &a))
        return mkc_fail(P->c, "malformed CP_ACK (7.5)");
    uint64_t digest = pend_digest(P);
    if (a.cp != cp || a.napplied != P->npend)
        return mkc_fail(P->c, "CP_ACK(cp %llu, napplied %llu), expected cp %llu with %zu blocks (7.5)",
                        (unsigned long long)a.cp, (unsigned long long)a.napplied,
                        (unsigned long long)cp, P->npend);
    if (a.digest != digest)
        return mkc_fail(P->c, "CP_ACK digest %016llx, the CP's digest is %016llx (7.5)",
                        (unsigned long long)a.digest, (unsigned long long)digest);
    if (check_image(P, P->nimg, "when CP_ACK arrived (7.4 step 6)"))
        return MKC_FAIL;
    if (image_root(P->nimg, P->nblocks, P->bs, &root))
        return mkc_error(P->c, "cannot compute the Merkle root");
    if (a.root_lo != root.lo || a.root_hi != root.hi)
        return mkc_fail(P->c, "CP_ACK root %016llx%016llx, the mirror's Merkle root is %016llx%016llx (7.5, 9.7)",
                        (unsigned long long)a.root_hi, (unsigned long long)a.root_lo,
                        (unsigned long long)root.hi, (unsigned long long)root.lo);
    memcpy(P->img, P->nimg, vbytes(P));
    P->cp = cp;
    P->digest = digest;
    P->covers = covers;
    P->npend = 0;
    return MKC_PASS;
}

static mkc_verdict expect_nak(peer *P, uint64_t cp, uint64_t block, int reason)
{
    mk_frame f;
    mk_nak k;
    if (expect(P, MK_F_NAK, &f))
        return MKC_FAIL;
    if (mk_nak_decode(&f, &k))
        return mkc_fail(P->c, "malformed NAK (8.1)");
    if (k.cp != cp || k.block != block || k.reason != reason)
        return mkc_fail(P->c, "NAK(cp %llu, block %llu, %s), expected NAK(cp %llu, block %llu, %s) (7.2)",
                        (unsigned long long)k.cp, (unsigned long long)k.block, mk_errname(k.reason),
                        (unsigned long long)cp, (unsigned long long)block, mk_errname(reason));
    return MKC_PASS;
}

/* Nothing (but LOG_ACKs) arrives for a while: the frames sent so far
 * needed no answer. */
static mkc_verdict quiet(peer *P, int ms)
{
    mk_frame f;
    for (;;) {
        int rc = mkc_recv_frame(P->c, P->l, ms, &f);
        if (rc == MK_ETIMEOUT)
            return MKC_PASS;
        if (rc)
            return mkc_fail(P->c, "the stream ended or broke (%s) where nothing was due", mk_errname(rc));
        if (f.seq != P->rseq++)
            return mkc_fail(P->c, "frame seq %llu out of order (3.5)", (unsigned long long)f.seq);
        if (f.type != MK_F_LOG_ACK)
            return unexpected(P, &f, "nothing");
        if (note_log_ack(P, &f))
            return MKC_FAIL;
    }
}

/* A block of one repeated byte pattern derived from v. */
static void pattern(uint8_t *b, size_t n, uint64_t v)
{
    mk_prng r;
    mk_prng_seed(&r, v * 0x9E3779B97F4A7C15u + 1);
    mk_prng_fill(&r, b, n);
}

/* ---- valid traffic from the reference source ------------------------------------------ */

/* One step of a workload: a write of len bytes at off, a CP, or the end
 * of the session (EOF, or SIGKILL) and a restart of the IUT. */
typedef struct op {
    char kind; /* 'w' write, 'c' CP, 'e' EOF + restart, 'k' kill + restart */
    uint64_t off;
    uint32_t len;
} op;

static uint64_t now_ns(void) { return mkc_now_ms() * 1000000u; }

/* Sends what the source queued and feeds it what the IUT answered, once. */
static mkc_verdict pump(peer *P, mk_source *s, int wait_ms)
{
    mk_buf *o = mk_source_out(s);
    const uint8_t *p;
    size_t n;
    if (mk_buf_len(o) && flush_buf(P, o))
        return MKC_FAIL;
    int rc = mkc_recv_bytes(P->c, P->l, wait_ms, &p, &n);
    if (rc == MK_ETIMEOUT)
        return MKC_PASS;
    if (rc)
        return mkc_fail(P->c, "the destination closed its output in the middle of the session");
    rc = mk_source_recv(s, p, n, now_ns());
    if (rc) {
        const char *msg = NULL;
        if (rc == MK_EREMOTE && mk_source_remote_error(s, &msg))
            return mkc_fail(P->c, "the destination refused valid traffic with %s (\"%s\")",
                            mk_errname(mk_source_remote_error(s, &msg)), msg ? msg : "");
        return mkc_fail(P->c, "the reference source refused the destination's stream: %s", mk_errname(rc));
    }
    return MKC_PASS;
}

/* Waits, pumping, until done(s) holds: the reference source's progress. */
static mkc_verdict pump_until(peer *P, mk_source *s, int (*done)(mk_source *, uint64_t), uint64_t arg,
                              const char *what)
{
    uint64_t end = mkc_now_ms() + (uint64_t)mkc_timeout_ms(P->c);
    while (!done(s, arg)) {
        if (mkc_now_ms() > end)
            return mkc_fail(P->c, "no progress within %d ms waiting for %s", mkc_timeout_ms(P->c), what);
        if (pump(P, s, 20))
            return MKC_FAIL;
    }
    return MKC_PASS;
}

static int writes_acked(mk_source *s, uint64_t wid) { return mk_source_acked(s) >= wid; }
static int cp_acked(mk_source *s, uint64_t k) { return mk_source_cp_acked(s) >= k; }
static int session_up(mk_source *s, uint64_t unused) { (void)unused; return mk_source_ready(s); }

/*
 * Runs ops through the reference source against the IUT, and after every
 * CP compares the IUT's image with the source's store, which then holds
 * exactly the CP image (no write runs while a CP is in flight).  The
 * source also checks every CP_ACK's digest and Merkle root (7.5): a wrong
 * one fails the case with the source's error.
 */
static mkc_verdict run_workload(mkc *c, uint64_t nblocks, uint32_t bs, int mode, const op *ops,
                                size_t nops)
{
    peer P;
    mk_file *store = NULL, *tree = NULL;
    mk_source *s = NULL;
    uint8_t *data = NULL, *want = malloc(nblocks * bs);
    uint64_t last_wid = 0;
    char what[64];
    mkc_verdict v = peer_init(c, &P, nblocks, bs);
    P.mode = (uint8_t)mode;
    if (v == MKC_PASS && (!want || mk_file_mem("conform/store", &store) || mk_file_mem("conform/tree", &tree) ||
                          mk_file_truncate(store, nblocks * bs)))
        v = mkc_error(c, "MK_ENOMEM");
    mk_source_config cfg = {P.vid, nblocks, P.sid, bs, mode, 0, tree};
    if (v == MKC_PASS && mk_source_new(&cfg, store, &s))
        v = mkc_error(c, "cannot create the reference source");
    if (v == MKC_PASS)
        v = spawn(&P);
    if (v == MKC_PASS && mk_source_connect(s, now_ns()))
        v = mkc_error(c, "source connect");
    if (v == MKC_PASS)
        v = pump_until(&P, s, session_up, 0, "HELLO_ACK");
    for (size_t i = 0; i < nops && v == MKC_PASS; i++) {
        const op *o = &ops[i];
        if (o->kind == 'w') {
            free(data);
            if (!(data = malloc(o->len))) {
                v = mkc_error(c, "MK_ENOMEM");
                break;
            }
            pattern(data, o->len, i);
            uint64_t end = mkc_now_ms() + (uint64_t)mkc_timeout_ms(c);
            int rc;
            while ((rc = mk_source_write(s, o->off, data, o->len, now_ns(), &last_wid)) == MK_EAGAIN &&
                   mkc_now_ms() < end && (v = pump(&P, s, 20)) == MKC_PASS)
                ;
            if (v == MKC_PASS && rc)
                v = mkc_fail(c, "the reference source could not write (%s): acknowledgements stopped",
                             mk_errname(rc));
            if (v == MKC_PASS)
                v = pump(&P, s, 0);
        } else if (o->kind == 'c') {
            uint64_t k = mk_source_cp_acked(s) + 1, end = mkc_now_ms() + (uint64_t)mkc_timeout_ms(c);
            int rc;
            while ((rc = mk_source_cp(s, now_ns())) == MK_EAGAIN && mkc_now_ms() < end &&
                   (v = pump(&P, s, 20)) == MKC_PASS)
                ;
            if (v == MKC_PASS && rc)
                v = mkc_fail(c, "CP %llu could not start (%s): LOG_ACKs missing (4.4)",
                             (unsigned long long)k, mk_errname(rc));
            snprintf(what, sizeof what, "CP_ACK of CP %llu", (unsigned long long)k);
            if (v == MKC_PASS)
                v = pump_until(&P, s, cp_acked, k, what);
            if (v == MKC_PASS && mk_file_read_block(store, want, nblocks * bs, 0))
                v = mkc_error(c, "store read");
            snprintf(what, sizeof what, "after CP %llu", (unsigned long long)k);
            if (v == MKC_PASS)
                v = check_image(&P, want, what);
        } else {
            if (o->kind == 'e')
                v = end_session(&P);
            else
                mkc_proc_kill(P.p);
            mk_source_disconnect(s);
            if (v == MKC_PASS)
                v = spawn(&P);
            if (v == MKC_PASS && mk_source_connect(s, now_ns()))
                v = mkc_error(c, "source connect");
            if (v == MKC_PASS)
                v = pump_until(&P, s, session_up, 0, "HELLO_ACK after a restart");
        }
    }
    if (v == MKC_PASS)
        v = pump_until(&P, s, writes_acked, last_wid, "the acknowledgement of every write");
    if (v == MKC_PASS && mk_source_get_stats(s)->lost_transfers)
        v = mkc_fail(c, "the destination lost acknowledged transfers over a restart (8.3, I2)");
    if (v == MKC_PASS)
        v = end_session(&P);
    mk_source_free(s);
    if (store)
        mk_file_close(store);
    if (tree)
        mk_file_close(tree);
    free(data);
    free(want);
    peer_free(&P);
    return v;
}

#define NOPS(a) (sizeof(a) / sizeof((a)[0]))

static mkc_verdict c_valid_sync(mkc *c)
{
    static const op ops[] = {{'w', 0, 8192},         {'w', 100, 50},       {'w', 5 * 4096, 4096},
                             {'c', 0, 0},            {'w', 5 * 4096, 3 * 4096}, {'w', 6 * 4096 + 7, 10},
                             {'c', 0, 0},            {'w', 4096, 20 * 4096}, {'w', 3, 4096},
                             {'c', 0, 0}};
    return run_workload(c, 64, 4096, MK_MODE_SYNC, ops, NOPS(ops));
}

static mkc_verdict c_valid_semi(mkc *c)
{
    static const op ops[] = {{'w', 0, 512 * 40},  {'w', 700, 100}, {'c', 0, 0},
                             {'w', 512 * 3, 512}, {'w', 512 * 3 + 1, 511}, {'w', 512 * 10, 512 * 5},
                             {'c', 0, 0},         {'c', 0, 0}};
    return run_workload(c, 128, 512, MK_MODE_SEMI, ops, NOPS(ops));
}

static mkc_verdict c_valid_async(mkc *c)
{
    static const op ops[] = {{'w', 0, 65536 * 2}, {'w', 65536 * 3 + 9, 1000}, {'c', 0, 0},
                             {'w', 65536 * 2, 65536}, {'c', 0, 0}};
    return run_workload(c, 8, 65536, MK_MODE_ASYNC, ops, NOPS(ops));
}

/* Removes what an IUT left in the case's directory (its stderr stays):
 * the next run meets a fresh destination, wherever the IUT keeps its
 * files there. */
static void fresh_dir(mkc *c)
{
    DIR *d = opendir(mkc_dir(c));
    struct dirent *e;
    char path[PATH_MAX];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, "stderr") != 0)
            remove(mkc_path(c, e->d_name, path, sizeof path));
    if (d)
        closedir(d);
}

/* Every block size of 1.1, 512 to 65536, each in a fresh destination:
 * whole blocks (REFs), a head and a tail fragment (DATA), two CPs. */
static mkc_verdict c_valid_block_sizes(mkc *c)
{
    mkc_verdict v = MKC_PASS;
    for (uint32_t bs = MK_MIN_BLOCK; bs <= MK_MAX_BLOCK && v == MKC_PASS; bs <<= 1) {
        const op ops[] = {{'w', 0, 3 * bs}, {'w', bs + 7, bs}, {'c', 0, 0},
                          {'w', 2 * bs, bs},  {'w', 5, 10},      {'c', 0, 0}};
        mkc_log(c, "block size %u", bs);
        fresh_dir(c);
        v = run_workload(c, 8, bs, MK_MODE_SYNC, ops, NOPS(ops));
    }
    return v;
}

/* A write over MK_MAX_TRANSFER_DATA is split into transfers (4.2); its
 * blocks come back as REFs into several of them. */
static mkc_verdict c_valid_split(mkc *c)
{
    static const op ops[] = {{'w', 100, (5u << 19) + 3000}, {'c', 0, 0}, {'w', 0, 4096}, {'c', 0, 0}};
    return run_workload(c, 1024, 4096, MK_MODE_SYNC, ops, NOPS(ops));
}

/* More than MK_MAX_REFS_PER_FRAME REFs: several CP_REF frames (7.2). */
static mkc_verdict c_valid_many_refs(mkc *c)
{
    static const op ops[] = {{'w', 0, 3000 * 512}, {'c', 0, 0}};
    return run_workload(c, 4096, 512, MK_MODE_SEMI, ops, NOPS(ops));
}

/* A CP with no records is begun, committed and acknowledged (7.1). */
static mkc_verdict c_valid_empty_cp(mkc *c)
{
    static const op ops[] = {{'c', 0, 0}, {'w', 0, 4096}, {'c', 0, 0}, {'c', 0, 0}};
    return run_workload(c, 16, 4096, MK_MODE_SYNC, ops, NOPS(ops));
}

/* Sessions end by EOF and the IUT restarts on its files: the log, the
 * index and the CPs survive (2.4, 4.4, 7.6) and the source resumes. */
static mkc_verdict c_resume_eof(mkc *c)
{
    static const op ops[] = {{'w', 0, 8 * 4096}, {'e', 0, 0},          {'c', 0, 0},
                             {'w', 4096, 4096},  {'w', 9 * 4096, 100}, {'e', 0, 0},
                             {'c', 0, 0},        {'e', 0, 0},          {'w', 0, 4096},
                             {'c', 0, 0}};
    return run_workload(c, 32, 4096, MK_MODE_SYNC, ops, NOPS(ops));
}

/* SIGKILL between steps: acknowledged transfers and CPs survive it (4.4,
 * 7.4, 7.6) and the source resumes. */
static mkc_verdict c_resume_kill(mkc *c)
{
    static const op ops[] = {{'w', 0, 8 * 4096}, {'k', 0, 0},          {'c', 0, 0},
                             {'k', 0, 0},        {'w', 4096, 3 * 4096}, {'w', 50, 10},
                             {'k', 0, 0},        {'c', 0, 0},          {'k', 0, 0},
                             {'c', 0, 0}};
    return run_workload(c, 32, 4096, MK_MODE_SYNC, ops, NOPS(ops));
}

/* ---- hand-made frames: sessions (2) ------------------------------------------------- */

#define NB 64
#define BS 4096u

/* A HELLO payload with every field chosen, reserved bytes included. */
static void hello_payload(uint8_t p[MK_HELLO_LEN], const peer *P, uint64_t n, uint32_t bs, uint8_t mode,
                          uint8_t reserved)
{
    mk_wcur w;
    mk_wcur_init(&w, p, MK_HELLO_LEN);
    mk_wcur_u64(&w, P->vid);
    mk_wcur_u64(&w, n);
    mk_wcur_u32(&w, bs);
    mk_wcur_u8(&w, mode);
    mk_wcur_u8(&w, reserved);
    mk_wcur_u16(&w, 0);
    mk_wcur_u64(&w, P->sid);
}

/* A fresh IUT sent one bad HELLO. */
static mkc_verdict bad_hello(mkc *c, size_t len, uint64_t n, uint32_t bs, uint8_t mode, uint8_t res, int err)
{
    peer P;
    uint8_t p[MK_HELLO_LEN + 1] = {0};
    mkc_verdict v = peer_init(c, &P, NB, BS);
    STEP(spawn(&P));
    hello_payload(p, &P, n, bs, mode, res);
    if (!v && frame(&P, MK_F_HELLO, p, len))
        v = mkc_error(c, "encode");
    STEP(refused(&P, err));
    /* Nothing was adopted: a good HELLO is still the first. */
    STEP(spawn(&P));
    STEP(hello(&P));
    peer_free(&P);
    return v;
}

static mkc_verdict c_hello_length(mkc *c) { return bad_hello(c, 31, NB, BS, 1, 0, MK_ELENGTH); }
static mkc_verdict c_hello_reserved(mkc *c) { return bad_hello(c, 32, NB, BS, 1, 1, MK_ERESERVED); }
static mkc_verdict c_hello_blocksize(mkc *c) { return bad_hello(c, 32, NB, 1000, 1, 0, MK_EBLOCKSIZE); }
static mkc_verdict c_hello_mode(mkc *c) { return bad_hello(c, 32, NB, BS, 4, 0, MK_EINVAL); }
static mkc_verdict c_hello_nblocks(mkc *c) { return bad_hello(c, 32, 0, BS, 1, 0, MK_ERANGE); }

/* Before HELLO only HELLO: a LOG, a TREE_QUERY, an ERROR (2.3). */
static mkc_verdict before_hello(mkc *c, int what)
{
    peer P;
    uint8_t buf[64];
    mkc_verdict v = peer_init(c, &P, NB, BS);
    STEP(spawn(&P));
    if (!v) {
        int rc;
        if (what == 0) {
            memset(buf, 7, sizeof buf);
            mk_log g = {1, 0, 16, buf};
            rc = mk_log_encode(&P.out, P.seq++, &g);
        } else if (what == 1) {
            uint64_t idx = 0;
            rc = mk_tree_query_encode(&P.out, P.seq++, 1, &idx, 1);
        } else {
            rc = mk_error_encode(&P.out, P.seq++, MK_EIO, "nothing before HELLO");
        }
        v = rc ? mkc_error(c, "encode") : refused(&P, MK_ESTATE);
    }
    peer_free(&P);
    return v;
}

static mkc_verdict c_first_log(mkc *c) { return before_hello(c, 0); }
static mkc_verdict c_first_tree_query(mkc *c) { return before_hello(c, 1); }
static mkc_verdict c_first_error(mkc *c) { return before_hello(c, 2); }

static mkc_verdict c_hello_twice(mkc *c)
{
    peer P;
    mkc_verdict v = start(c, &P, NB, BS);
    mk_hello h = {P.vid, P.nblocks, P.bs, P.mode, P.sid};
    if (!v && mk_hello_encode(&P.out, P.seq++, &h))
        v = mkc_error(c, "encode");
    STEP(refused(&P, MK_ESTATE));
    peer_free(&P);
    return v;
}

/* A fresh log with a non-empty image: MK_EDIVERGED, image untouched. */
static mkc_verdict c_adopt_nonempty(mkc *c)
{
    peer P;
    static uint8_t junk[1000];
    memset(junk, 0xAB, sizeof junk);
    mkc_verdict v = peer_init(c, &P, NB, BS);
    FILE *f = v ? NULL : fopen(P.image, "wb");
    if (!v && (!f || fwrite(junk, 1, sizeof junk, f) != sizeof junk))
        v = mkc_error(c, "cannot write %s", P.image);
    if (f)
        fclose(f);
    P.pre = junk;
    P.npre = sizeof junk;
    mk_hello h = {P.vid, P.nblocks, P.bs, P.mode, P.sid};
    STEP(spawn(&P));
    if (!v && mk_hello_encode(&P.out, P.seq++, &h))
        v = mkc_error(c, "encode");
    STEP(refused(&P, MK_EDIVERGED));
    peer_free(&P);
    return v;
}

/* Adoption: a zero HELLO_ACK, and the image sized to N*B of zeros (2.2,
 * 2.3) - start() checks both - and still so after a restart. */
static mkc_verdict c_adopt_fresh(mkc *c)
{
    peer P;
    mkc_verdict v = start(c, &P, 100, 512);
    STEP(end_session(&P));
    STEP(restart(&P));
    peer_free(&P);
    return v;
}

/* The recorded identity: another volume, another source (2.3). */
static mkc_verdict recorded(mkc *c, int field)
{
    peer P;
    mkc_verdict v = start(c, &P, NB, BS);
    STEP(end_session(&P));
    STEP(spawn(&P));
    mk_hello h = {P.vid, P.nblocks, P.bs, P.mode, P.sid};
    if (field == 0)
        h.nblocks++;
    else if (field == 1)
        h.volume_id++;
    else
        h.source_id++;
    if (!v && mk_hello_encode(&P.out, P.seq++, &h))
        v = mkc_error(c, "encode");
    STEP(refused(&P, field == 2 ? MK_EPEER : MK_EVOLUME));
    peer_free(&P);
    return v;
}

static mkc_verdict c_recorded_nblocks(mkc *c) { return recorded(c, 0); }
static mkc_verdict c_recorded_volume(mkc *c) { return recorded(c, 1); }
static mkc_verdict c_recorded_source(mkc *c) { return recorded(c, 2); }

/* A received ERROR ends the session with no ERROR in reply (3.6); the
 * destination exits with MK_EREMOTE's code (10.1, 10.3). */
static mkc_verdict c_recv_error(mkc *c)
{
    peer P;
    mk_frame f;
    int code;
    mkc_verdict v = start(c, &P, NB, BS);
    if (!v && mk_error_encode(&P.out, P.seq++, MK_EIO, "the source gives up"))
        v = mkc_error(c, "encode");
    STEP(flush(&P));
    if (!v) {
        int rc = mkc_recv_frame(c, P.l, mkc_timeout_ms(c), &f);
        if (rc == 0)
            v = mkc_fail(c, "answered a received ERROR with %s (3.6: MUST NOT answer with an ERROR)",
                         mk_ftype_name(f.type));
        else if (rc != MK_ECLOSED)
            v = mkc_fail(c, "the session did not end after a received ERROR (%s) (2.4)", mk_errname(rc));
    }
    if (!v && mkc_proc_wait(c, P.p, mkc_timeout_ms(c), &code))
        v = mkc_fail(c, "did not exit after a received ERROR (10.1)");
    if (!v && code != EXIT_IO)
        v = mkc_fail(c, "exit code %d after a received ERROR, 10.1 says 3 (MK_EREMOTE)", code);
    STEP(restart(&P));
    peer_free(&P);
    return v;
}

/* ---- framing (3) -------------------------------------------------------------------- */

/* After HELLO, one frame with a header field broken. */
static mkc_verdict bad_header(mkc *c, int field, int err)
{
    peer P;
    uint8_t pay[24 + 16];
    mkc_verdict v = start(c, &P, NB, BS);
    mk_wcur w;
    mk_wcur_init(&w, pay, sizeof pay);
    mk_wcur_u64(&w, 1);
    mk_wcur_u64(&w, 0);
    mk_wcur_u32(&w, 16);
    mk_wcur_u32(&w, 0);
    mk_wcur_bytes(&w, "sixteen bytes!!!", 16);
    raw r = {MK_FRAME_MAGIC, MK_PROTO_VERSION, MK_F_LOG, 0, sizeof pay, P.seq, pay, sizeof pay, 0, 0};
    switch (field) {
    case 0: r.magic = 0x52464B4Eu; break;
    case 1: r.version = 2; break;
    case 2: r.flags = 1; break;
    case 3: r.bad_sum = 1; break;
    case 4: r.seq = P.seq + 5; break;
    case 5: r.type = 0x20; break;
    case 6: r.type = MK_F_LOG_ACK; r.len = r.plen = 8; break;
    case 7: r.len = MK_MAX_PAYLOAD + 1; r.plen = 0; r.no_trailer = 1; break;
    }
    if (!v && raw_frame(&P.out, &r))
        v = mkc_error(c, "encode");
    STEP(refused(&P, err));
    peer_free(&P);
    return v;
}

static mkc_verdict c_frame_magic(mkc *c) { return bad_header(c, 0, MK_EMAGIC); }
static mkc_verdict c_frame_version(mkc *c) { return bad_header(c, 1, MK_EVERSION); }
static mkc_verdict c_frame_flags(mkc *c) { return bad_header(c, 2, MK_ERESERVED); }
static mkc_verdict c_frame_checksum(mkc *c) { return bad_header(c, 3, MK_ECHECKSUM); }
static mkc_verdict c_frame_seq(mkc *c) { return bad_header(c, 4, MK_ESEQ); }
static mkc_verdict c_frame_unknown_type(mkc *c) { return bad_header(c, 5, MK_ETYPE); }
static mkc_verdict c_frame_wrong_direction(mkc *c) { return bad_header(c, 6, MK_ETYPE); }
/* Only the header is sent: the refusal must not wait for the body. */
static mkc_verdict c_frame_oversize(mkc *c) { return bad_header(c, 7, MK_ELENGTH); }

/* EOF inside a frame: discarded, nothing applied, an orderly end (3.4). */
static mkc_verdict c_frame_eof_partial(mkc *c)
{
    peer P;
    uint8_t data[4096];
    mk_buf whole;
    mk_buf_init(&whole);
    pattern(data, sizeof data, 1);
    mkc_verdict v = start(c, &P, NB, BS);
    mk_log g = {1, 0, sizeof data, data};
    if (!v && mk_log_encode(&whole, P.seq++, &g))
        v = mkc_error(c, "encode");
    if (!v && mkc_send(c, P.l, mk_buf_peek(&whole), mk_buf_len(&whole) - 5))
        v = mkc_fail(c, "the destination did not read its input");
    STEP(end_session(&P));
    if (!v)
        v = restart(&P); /* durable_tid must still be 0 */
    mk_buf_free(&whole);
    peer_free(&P);
    return v;
}

/* ---- LOG (4) ------------------------------------------------------------------------ */

/* A LOG payload with every field chosen. */
static mkc_verdict bad_log(mkc *c, uint64_t tid, uint64_t off, uint32_t len, uint32_t reserved,
                           size_t datalen, uint64_t first_tid, int err)
{
    peer P;
    uint8_t pay[24 + 256];
    uint8_t d[256];
    pattern(d, sizeof d, 2);
    mkc_verdict v = start(c, &P, NB, BS);
    if (!v && first_tid) {
        v = send_log(&P, first_tid, 0, d, 100);
        STEP(wait_log_ack(&P, first_tid));
    }
    mk_wcur w;
    mk_wcur_init(&w, pay, sizeof pay);
    mk_wcur_u64(&w, tid);
    mk_wcur_u64(&w, off);
    mk_wcur_u32(&w, len);
    mk_wcur_u32(&w, reserved);
    mk_wcur_bytes(&w, d, datalen);
    if (!v && frame(&P, MK_F_LOG, pay, 24 + datalen))
        v = mkc_error(c, "encode");
    STEP(refused(&P, err));
    peer_free(&P);
    return v;
}

static mkc_verdict c_log_zero(mkc *c) { return bad_log(c, 1, 0, 0, 0, 0, 0, MK_EZEROLEN); }
static mkc_verdict c_log_reserved(mkc *c) { return bad_log(c, 1, 0, 16, 1, 16, 0, MK_ERESERVED); }
static mkc_verdict c_log_length(mkc *c) { return bad_log(c, 1, 0, 100, 0, 50, 0, MK_ELENGTH); }
static mkc_verdict c_log_tid0(mkc *c) { return bad_log(c, 0, 0, 16, 0, 16, 0, MK_ETID); }
static mkc_verdict c_log_tid_repeat(mkc *c) { return bad_log(c, 5, 0, 16, 0, 16, 5, MK_ETID); }
static mkc_verdict c_log_tid_back(mkc *c) { return bad_log(c, 4, 0, 16, 0, 16, 5, MK_ETID); }
static mkc_verdict c_log_range(mkc *c) { return bad_log(c, 1, NB * BS - 10, 20, 0, 20, 0, MK_ERANGE); }

/* Transfer IDs stay increasing across sessions and restarts (4.5). */
static mkc_verdict c_log_tid_restart(mkc *c)
{
    peer P;
    uint8_t d[100];
    pattern(d, sizeof d, 3);
    mkc_verdict v = start(c, &P, NB, BS);
    STEP(send_log(&P, 7, 0, d, sizeof d));
    STEP(wait_log_ack(&P, 7));
    STEP(end_session(&P));
    STEP(restart(&P));
    mk_log g = {6, 0, sizeof d, d};
    if (!v && mk_log_encode(&P.out, P.seq++, &g))
        v = mkc_error(c, "encode");
    STEP(refused(&P, MK_ETID));
    peer_free(&P);
    return v;
}

/* LOG_ACK(t) only once t is durable: SIGKILL right after it loses
 * nothing (4.4, I2). */
static mkc_verdict c_log_ack_durable(mkc *c)
{
    peer P;
    uint8_t d[3 * BS];
    pattern(d, sizeof d, 4);
    mkc_verdict v = start(c, &P, NB, BS);
    for (uint64_t t = 1; t <= 20 && !v; t++) {
        v = send_log(&P, t, (t % 8) * BS + t, d, sizeof d - (uint32_t)t);
        STEP(wait_log_ack(&P, t));
        if (!v && t % 5 == 0)
            v = restart(&P); /* SIGKILL, then HELLO_ACK must report t */
    }
    peer_free(&P);
    return v;
}

/* ---- CP (7) ------------------------------------------------------------------------ */

/* A started IUT holding transfer 1: blocks 2..5 wholly (slots 0..3), a
 * head fragment of block 1 and a tail fragment of block 6 (4.2). */
static mkc_verdict with_transfer(mkc *c, peer *P, uint8_t *data)
{
    pattern(data, 5 * BS, 10);
    mkc_verdict v = start(c, P, NB, BS);
    STEP(send_log(P, 1, 2 * BS - 100, data, 4 * BS + 200));
    STEP(wait_log_ack(P, 1));
    return v;
}

/* The block content of slot i of transfer 1 of with_transfer. */
static const uint8_t *slot_of(const uint8_t *data, uint32_t i) { return data + 100 + i * BS; }

static mk_ref ref_to(const uint8_t *data, uint64_t block, uint64_t tid, uint32_t slot)
{
    mk_ref r = {block, tid, slot, mk_block_hash(slot_of(data, slot), BS)};
    return r;
}

/* A CP control frame with a broken field. */
static mkc_verdict bad_cp(mkc *c, int which)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t blk[BS + 1];
    pattern(blk, sizeof blk, 11);
    mkc_verdict v = with_transfer(c, &P, data);
    int err = 0;
    switch (which) {
    case 0: /* CP_BEGIN of the wrong CP */
        v = v ? v : send_begin(&P, 2, 1, 1), err = MK_ECP;
        break;
    case 1: /* covers_tid beyond what was received */
        v = v ? v : send_begin(&P, 1, 1, 2), err = MK_ETID;
        break;
    case 2: /* a second CP_BEGIN while one is open */
        STEP(send_begin(&P, 1, 1, 1));
        STEP(send_begin(&P, 1, 1, 1));
        err = MK_ESTATE;
        break;
    case 3: /* more records than blocks */
        v = v ? v : send_begin(&P, 1, NB + 1, 1), err = MK_ECOUNT;
        break;
    case 4: /* CP_DATA with no CP open */
        v = v ? v : send_data(&P, 1, 0, blk), err = MK_ESTATE;
        break;
    case 5: /* CP_DATA of another CP */
        STEP(send_begin(&P, 1, 1, 1));
        v = v ? v : send_data(&P, 2, 0, blk), err = MK_ECP;
        break;
    case 6: /* a block outside the volume */
        STEP(send_begin(&P, 1, 1, 1));
        v = v ? v : send_data(&P, 1, NB, blk), err = MK_ERANGE;
        break;
    case 7: /* the same block twice */
        STEP(send_begin(&P, 1, 2, 1));
        STEP(send_data(&P, 1, 3, blk));
        v = v ? v : send_data(&P, 1, 3, blk), err = MK_EDUPBLOCK;
        break;
    case 8: /* more distinct blocks than nrecords */
        STEP(send_begin(&P, 1, 1, 1));
        STEP(send_data(&P, 1, 3, blk));
        v = v ? v : send_data(&P, 1, 4, blk), err = MK_ECOUNT;
        break;
    case 9: /* CP_COMMIT with fewer blocks staged than nrecords */
        STEP(send_begin(&P, 1, 2, 1));
        STEP(send_data(&P, 1, 3, blk));
        v = v ? v : send_commit(&P, 1, 2), err = MK_ECOUNT;
        break;
    case 10: /* CP_COMMIT with another nrecords than CP_BEGIN's */
        STEP(send_begin(&P, 1, 1, 1));
        STEP(send_data(&P, 1, 3, blk));
        v = v ? v : send_commit(&P, 1, 2), err = MK_ECOUNT;
        break;
    case 11: /* CP_COMMIT with no CP open */
        v = v ? v : send_commit(&P, 1, 0), err = MK_ESTATE;
        break;
    case 12: { /* CP_DATA one byte short */
        STEP(send_begin(&P, 1, 1, 1));
        uint8_t pay[16 + BS];
        mk_wcur w;
        mk_wcur_init(&w, pay, sizeof pay);
        mk_wcur_u64(&w, 1);
        mk_wcur_u64(&w, 0);
        mk_wcur_bytes(&w, blk, BS - 1);
        if (!v && frame(&P, MK_F_CP_DATA, pay, 16 + BS - 1))
            v = mkc_error(c, "encode");
        err = MK_ELENGTH;
        break;
    }
    case 13: { /* a CP_REF whose second entry fails admission: no NAK for the first (7.2) */
        STEP(send_begin(&P, 1, 2, 1));
        mk_ref r[2] = {ref_to(data, 3, 1, 1), ref_to(data, 3, 1, 1)};
        r[0].hash ^= 1; /* would be a NAK if it were resolved first */
        if (!v && mk_cp_ref_encode(&P.out, P.seq++, 1, r, 2))
            v = mkc_error(c, "encode");
        err = MK_EDUPBLOCK;
        break;
    }
    case 14: { /* a REF for a block already NAKed */
        STEP(send_begin(&P, 1, 2, 1));
        mk_ref r = ref_to(data, 3, 1, 1);
        r.hash ^= 1;
        STEP(send_refs(&P, 1, &r, 1));
        STEP(expect_nak(&P, 1, 3, MK_EREFHASH));
        r.hash ^= 1;
        if (!v && mk_cp_ref_encode(&P.out, P.seq++, 1, &r, 1))
            v = mkc_error(c, "encode");
        err = MK_EDUPBLOCK;
        break;
    }
    case 15: { /* a REF after CP_COMMIT, while a NAKed block is outstanding */
        STEP(send_begin(&P, 1, 2, 1));
        mk_ref r = ref_to(data, 3, 1, 1);
        r.hash ^= 1;
        STEP(send_refs(&P, 1, &r, 1));
        STEP(expect_nak(&P, 1, 3, MK_EREFHASH));
        STEP(send_data(&P, 1, 9, blk));
        STEP(send_commit(&P, 1, 2));
        mk_ref r2 = ref_to(data, 4, 1, 2);
        if (!v && mk_cp_ref_encode(&P.out, P.seq++, 1, &r2, 1))
            v = mkc_error(c, "encode");
        err = MK_ESTATE;
        break;
    }
    }
    STEP(refused(&P, err));
    peer_free(&P);
    return v;
}

static mkc_verdict c_cp_begin_number(mkc *c) { return bad_cp(c, 0); }
static mkc_verdict c_cp_begin_covers(mkc *c) { return bad_cp(c, 1); }
static mkc_verdict c_cp_begin_open(mkc *c) { return bad_cp(c, 2); }
static mkc_verdict c_cp_begin_count(mkc *c) { return bad_cp(c, 3); }
static mkc_verdict c_cp_data_no_cp(mkc *c) { return bad_cp(c, 4); }
static mkc_verdict c_cp_data_wrong_cp(mkc *c) { return bad_cp(c, 5); }
static mkc_verdict c_cp_data_range(mkc *c) { return bad_cp(c, 6); }
static mkc_verdict c_cp_dup_block(mkc *c) { return bad_cp(c, 7); }
static mkc_verdict c_cp_over_count(mkc *c) { return bad_cp(c, 8); }
static mkc_verdict c_cp_commit_short(mkc *c) { return bad_cp(c, 9); }
static mkc_verdict c_cp_commit_count(mkc *c) { return bad_cp(c, 10); }
static mkc_verdict c_cp_commit_no_cp(mkc *c) { return bad_cp(c, 11); }
static mkc_verdict c_cp_data_length(mkc *c) { return bad_cp(c, 12); }
static mkc_verdict c_ref_two_pass(mkc *c) { return bad_cp(c, 13); }
static mkc_verdict c_ref_naked_twice(mkc *c) { return bad_cp(c, 14); }
static mkc_verdict c_ref_after_commit(mkc *c) { return bad_cp(c, 15); }

/*
 * A CP of REFs into transfer 1 and one DATA block, every REF resolved from
 * the right slot: the image must show each block's own slot (7.2; a
 * destination that ignores the block number or the slot fails here).
 */
static mkc_verdict c_ref_resolve(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t blk[BS];
    pattern(blk, sizeof blk, 12);
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r[3] = {ref_to(data, 5, 1, 3), ref_to(data, 2, 1, 0), ref_to(data, 4, 1, 2)};
    STEP(send_begin(&P, 1, 4, 1));
    STEP(send_refs(&P, 1, r, 3));
    for (int i = 0; i < 3; i++)
        stage(&P, r[i].block, slot_of(data, r[i].slot));
    STEP(send_data(&P, 1, 40, blk));
    STEP(send_commit(&P, 1, 4));
    STEP(expect_cp_ack(&P, 1, 1));
    STEP(end_session(&P));
    STEP(restart(&P));
    peer_free(&P);
    return v;
}

/* A block rewritten by a later transfer: each REF names its own transfer
 * and the image takes the slot named, not the newest copy (7.2). */
static mkc_verdict c_ref_two_transfers(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t d2[BS];
    pattern(d2, sizeof d2, 13);
    mkc_verdict v = with_transfer(c, &P, data);
    STEP(send_log(&P, 2, 3 * BS, d2, BS));
    STEP(wait_log_ack(&P, 2));
    mk_ref r[2] = {ref_to(data, 2, 1, 0), {3, 2, 0, mk_block_hash(d2, BS)}};
    STEP(send_begin(&P, 1, 2, 2));
    STEP(send_refs(&P, 1, r, 2));
    stage(&P, 2, slot_of(data, 0));
    stage(&P, 3, d2);
    STEP(send_commit(&P, 1, 2));
    STEP(expect_cp_ack(&P, 1, 2));
    peer_free(&P);
    return v;
}

/* One REF that fails a resolution rule: NAK with the reason, then the
 * DATA resend, and the CP applies with the resent bytes (7.2, 8.1). */
static mkc_verdict nak_case(mkc *c, int rule)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t blk[BS], other[100];
    pattern(blk, sizeof blk, 14);
    pattern(other, sizeof other, 15);
    mkc_verdict v = with_transfer(c, &P, data);
    uint64_t covers = 1;
    mk_ref r = ref_to(data, 3, 1, 1);
    int reason = 0;
    switch (rule) {
    case 1: /* tid beyond covers_tid */
        STEP(send_log(&P, 2, 30 * BS, blk, BS));
        STEP(wait_log_ack(&P, 2));
        r = (mk_ref){30, 2, 0, mk_block_hash(blk, BS)};
        reason = MK_ETID;
        break;
    case 2: /* a tid the log does not hold (IDs may skip) */
        STEP(send_log(&P, 3, 50 * BS, other, sizeof other));
        STEP(wait_log_ack(&P, 3));
        covers = 3;
        r.tid = 2;
        reason = MK_ENOTID;
        break;
    case 3: /* slot beyond the transfer's slots */
        r.slot = 4;
        reason = MK_ESLOT;
        break;
    case 4: /* the slot holds another block */
        r = ref_to(data, 3, 1, 0);
        reason = MK_ESLOT;
        break;
    case 5: /* the hash is not the slot's */
        r.hash ^= 0x100;
        reason = MK_EREFHASH;
        break;
    case 6: /* a fragment is never a slot: transfer 2 holds only part of block 50 */
        STEP(send_log(&P, 2, 50 * BS + 100, other, sizeof other));
        STEP(wait_log_ack(&P, 2));
        covers = 2;
        r = (mk_ref){50, 2, 0, mk_block_hash(blk, BS)};
        reason = MK_ESLOT;
        break;
    }
    STEP(send_begin(&P, 1, 2, covers));
    STEP(send_refs(&P, 1, &r, 1));
    STEP(expect_nak(&P, 1, r.block, reason));
    if (!v)
        v = send_data(&P, 1, r.block, blk); /* the resend */
    mk_ref good = ref_to(data, 5, 1, 3);
    STEP(send_refs(&P, 1, &good, 1));
    stage(&P, 5, slot_of(data, 3));
    STEP(send_commit(&P, 1, 2));
    STEP(expect_cp_ack(&P, 1, covers));
    peer_free(&P);
    return v;
}

static mkc_verdict c_ref_beyond_covers(mkc *c) { return nak_case(c, 1); }
static mkc_verdict c_ref_unknown_tid(mkc *c) { return nak_case(c, 2); }
static mkc_verdict c_ref_bad_slot(mkc *c) { return nak_case(c, 3); }
static mkc_verdict c_ref_wrong_block(mkc *c) { return nak_case(c, 4); }
static mkc_verdict c_ref_bad_hash(mkc *c) { return nak_case(c, 5); }
static mkc_verdict c_ref_fragment(mkc *c) { return nak_case(c, 6); }

/* CP_COMMIT before the resend: no CP_ACK until the DATA arrives (7.4,
 * 8.1), then the CP applies with it. */
static mkc_verdict c_nak_resend_after_commit(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t blk[BS];
    pattern(blk, sizeof blk, 16);
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r = ref_to(data, 4, 1, 2);
    r.hash ^= 1;
    STEP(send_begin(&P, 1, 1, 1));
    STEP(send_refs(&P, 1, &r, 1));
    STEP(expect_nak(&P, 1, 4, MK_EREFHASH));
    STEP(send_commit(&P, 1, 1));
    STEP(quiet(&P, 300));
    STEP(check_image(&P, P.img, "while a NAKed block is outstanding (7.4)"));
    STEP(send_data(&P, 1, 4, blk));
    STEP(expect_cp_ack(&P, 1, 1));
    peer_free(&P);
    return v;
}

/* The CP digest test vector of 7.5: block 0 all zero, block 5 all 0xFF. */
static mkc_verdict c_cp_digest_vector(mkc *c)
{
    peer P;
    static uint8_t zero[BS], ff[BS];
    memset(ff, 0xFF, sizeof ff);
    mkc_verdict v = start(c, &P, NB, BS);
    STEP(send_begin(&P, 1, 2, 0));
    STEP(send_data(&P, 1, 5, ff));
    STEP(send_data(&P, 1, 0, zero));
    if (!v && pend_digest(&P) != UINT64_C(0xFCE83EFC4151A1B0))
        v = mkc_error(c, "the runner's digest disagrees with SPEC 7.5's test vector");
    STEP(send_commit(&P, 1, 2));
    STEP(expect_cp_ack(&P, 1, 0));
    peer_free(&P);
    return v;
}

/* LOG is allowed while a CP is open and after its CP_COMMIT (4.3). */
static mkc_verdict c_log_during_cp(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t d[300];
    pattern(d, sizeof d, 17);
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r = ref_to(data, 3, 1, 1);
    r.hash ^= 1;
    STEP(send_begin(&P, 1, 1, 1));
    STEP(send_log(&P, 2, 0, d, sizeof d));
    STEP(send_refs(&P, 1, &r, 1));
    STEP(expect_nak(&P, 1, 3, MK_EREFHASH));
    STEP(send_commit(&P, 1, 1));
    STEP(send_log(&P, 3, BS, d, sizeof d));
    STEP(wait_log_ack(&P, 3));
    STEP(send_data(&P, 1, 3, slot_of(data, 1)));
    STEP(expect_cp_ack(&P, 1, 1));
    STEP(end_session(&P));
    STEP(restart(&P));
    peer_free(&P);
    return v;
}

/*
 * Transfers logged while a CP is open are newer than its covers_tid: the
 * apply of that CP must not reclaim them (7.7), and the next CP's REFs
 * resolve into them - in the same session, and after a restart, from an
 * index rebuilt from the log (4.4).
 */
static mkc_verdict c_ref_after_reclaim(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t d2[2 * BS], d3[BS];
    pattern(d2, sizeof d2, 22);
    pattern(d3, sizeof d3, 23);
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r1 = ref_to(data, 2, 1, 0);
    mk_ref r2 = {11, 2, 1, mk_block_hash(d2 + BS, BS)};
    mk_ref r3 = {20, 3, 0, mk_block_hash(d3, BS)};
    STEP(send_begin(&P, 1, 1, 1));
    if (!v)
        v = send_log(&P, 2, 10 * BS, d2, sizeof d2); /* newer than covers_tid 1 */
    STEP(send_refs(&P, 1, &r1, 1));
    stage(&P, 2, slot_of(data, 0));
    STEP(send_commit(&P, 1, 1));
    STEP(expect_cp_ack(&P, 1, 1));
    STEP(send_begin(&P, 2, 1, 2));
    STEP(send_log(&P, 3, 20 * BS, d3, sizeof d3));
    STEP(send_refs(&P, 2, &r2, 1));
    stage(&P, 11, d2 + BS);
    STEP(send_commit(&P, 2, 1));
    STEP(expect_cp_ack(&P, 2, 2));
    STEP(wait_log_ack(&P, 3));
    STEP(end_session(&P));
    STEP(restart(&P));
    STEP(send_begin(&P, 3, 1, 3));
    STEP(send_refs(&P, 3, &r3, 1));
    stage(&P, 20, d3);
    STEP(send_commit(&P, 3, 1));
    STEP(expect_cp_ack(&P, 3, 3));
    peer_free(&P);
    return v;
}

/*
 * A torn tail (7.6): the cut a crash in the middle of an append leaves.
 * The runner can make one only in a log of the 7.3 format, which an IUT
 * may use or not (10.1): other formats are UNSUPPORTED here.  After it,
 * the acknowledged transfers are intact, the next transfer lands after
 * them (not after the torn bytes), and a second restart still recovers
 * everything, REFs into the new transfer included.
 */
static mkc_verdict c_recovery_torn_tail(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t d2[BS], *log = NULL;
    size_t n = 0;
    pattern(d2, sizeof d2, 24);
    mkc_verdict v = with_transfer(c, &P, data);
    STEP(end_session(&P));
    if (!v && (mkc_read_file(P.log, &log, &n) || n < 8))
        v = mkc_fail(c, "cannot read the log %s", P.log);
    if (!v && memcmp(log, "MKLG", 4) != 0)
        v = mkc_unsupported(c, "the log is not in the 7.3 format: no torn tail can be made from outside");
    free(log);
    if (!v) {
        /* A record header with its body missing: a frame of the log's
         * framing (7.3) cut 30 bytes in. */
        uint8_t body[32] = {0};
        raw r = {MK_FRAME_MAGIC, MK_PROTO_VERSION, MK_R_TRANSFER, 0, 24 + BS, 999, body, sizeof body, 0, 0};
        mk_buf torn;
        mk_buf_init(&torn);
        FILE *f = fopen(P.log, "ab");
        if (raw_frame(&torn, &r) || !f || fwrite(mk_buf_peek(&torn), 1, 30, f) != 30)
            v = mkc_error(c, "cannot append to %s", P.log);
        if (f && fclose(f))
            v = mkc_error(c, "cannot append to %s", P.log);
        mk_buf_free(&torn);
    }
    STEP(restart(&P));
    STEP(send_log(&P, 2, 30 * BS, d2, BS));
    STEP(wait_log_ack(&P, 2));
    STEP(end_session(&P));
    STEP(restart(&P));
    mk_ref r2 = {30, 2, 0, mk_block_hash(d2, BS)};
    STEP(send_begin(&P, 1, 1, 2));
    STEP(send_refs(&P, 1, &r2, 1));
    stage(&P, 30, d2);
    STEP(send_commit(&P, 1, 1));
    STEP(expect_cp_ack(&P, 1, 2));
    peer_free(&P);
    return v;
}

/*
 * Redo (7.4, 7.6 step 9): the crash that loses the mirror's writes of an
 * applied CP and the R_CP_APPLIED record after them, made from outside in
 * a 7.3 log (other formats are UNSUPPORTED here): the last record is cut
 * and the image put back to CP k-1.  The restart must redo CP k from its
 * durable redo record.  A transfer logged during the CP keeps the log from
 * being reclaimed (7.7), so the redo record is still there to redo.
 */
static mkc_verdict c_recovery_redo(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t d2[300], blk[BS], *log = NULL, *old = NULL;
    size_t n = 0, last = 0;
    int last_type = -1;
    pattern(d2, sizeof d2, 25);
    pattern(blk, sizeof blk, 26);
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r = ref_to(data, 2, 1, 0);
    if (!v && !(old = malloc(vbytes(&P))))
        v = mkc_error(c, "MK_ENOMEM");
    if (!v) {
        memcpy(old, P.img, vbytes(&P));
        v = send_begin(&P, 1, 2, 1);
    }
    STEP(send_log(&P, 2, 0, d2, sizeof d2));
    STEP(send_refs(&P, 1, &r, 1));
    stage(&P, 2, slot_of(data, 0));
    STEP(send_data(&P, 1, 40, blk));
    STEP(send_commit(&P, 1, 2));
    STEP(expect_cp_ack(&P, 1, 1));
    STEP(wait_log_ack(&P, 2));
    STEP(end_session(&P));
    if (!v && (mkc_read_file(P.log, &log, &n) || n < MK_LOG_DATA_START))
        v = mkc_fail(c, "cannot read the log %s", P.log);
    if (!v && memcmp(log, "MKLG", 4) != 0)
        v = mkc_unsupported(c, "the log is not in the 7.3 format: the crash cannot be made from outside");
    for (size_t off = MK_LOG_DATA_START; !v && off < n;) {
        mk_frame f;
        size_t used;
        if (mk_frame_decode(log + off, n - off, UINT32_MAX, MK_FRAME_MAGIC, &f, &used))
            break;
        last = off;
        last_type = f.type;
        off += used;
    }
    if (!v && last_type != MK_R_CP_APPLIED)
        v = mkc_fail(c, "the log's last record is type 0x%02x, not R_CP_APPLIED (7.4 step 7)", last_type);
    if (!v && truncate(P.log, (off_t)last))
        v = mkc_error(c, "cannot cut %s", P.log);
    FILE *f = v ? NULL : fopen(P.image, "r+b");
    if (!v && (!f || fwrite(old, 1, vbytes(&P), f) != vbytes(&P)))
        v = mkc_error(c, "cannot rewrite %s", P.image);
    if (f && fclose(f))
        v = mkc_error(c, "cannot rewrite %s", P.image);
    if (!v)
        v = restart(&P); /* last_cp 1, and the image CP 1's again */
    free(log);
    free(old);
    peer_free(&P);
    return v;
}

/* Session end discards the open CP, committed-but-waiting included (2.4):
 * after a restart last_cp and the image are as before, and the same CP
 * number is accepted again. */
static mkc_verdict discard_case(mkc *c, int committed)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t blk[BS];
    pattern(blk, sizeof blk, 18);
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r = ref_to(data, 3, 1, 1);
    r.hash ^= 1;
    STEP(send_begin(&P, 1, 2, 1));
    STEP(send_data(&P, 1, 7, blk));
    if (!v && committed) {
        v = send_refs(&P, 1, &r, 1);
        STEP(expect_nak(&P, 1, 3, MK_EREFHASH));
        STEP(send_commit(&P, 1, 2));
        STEP(quiet(&P, 100));
    }
    STEP(end_session(&P));
    STEP(restart(&P));
    STEP(send_begin(&P, 1, 1, 1));
    STEP(send_data(&P, 1, 8, blk));
    STEP(send_commit(&P, 1, 1));
    STEP(expect_cp_ack(&P, 1, 1));
    peer_free(&P);
    return v;
}

static mkc_verdict c_session_end_open_cp(mkc *c) { return discard_case(c, 0); }
static mkc_verdict c_session_end_waiting_cp(mkc *c) { return discard_case(c, 1); }

/* HELLO_ACK after a restart in which the CP may or may not have survived:
 * last_cp is k-1 or k, and the image is exactly that CP's (I3). */
static mkc_verdict hello_either(peer *P, uint64_t k, uint64_t covers, int *applied)
{
    mk_frame f;
    mk_hello_ack *a = &P->ack;
    mk_hello h = {P->vid, P->nblocks, P->bs, P->mode, P->sid};
    if (mk_hello_encode(&P->out, P->seq++, &h) || flush(P) || expect(P, MK_F_HELLO_ACK, &f))
        return MKC_FAIL;
    if (mk_hello_ack_decode(&f, a))
        return mkc_fail(P->c, "malformed HELLO_ACK (2.2)");
    uint64_t digest = pend_digest(P);
    if (a->last_cp == k && a->last_digest == digest) {
        *applied = 1;
        if (check_image(P, P->nimg, "after a kill, with CP k reported (I3)"))
            return MKC_FAIL;
        memcpy(P->img, P->nimg, vbytes(P));
        P->cp = k;
        P->digest = digest;
        P->covers = covers;
        return MKC_PASS;
    }
    if (a->last_cp == k - 1 && a->last_digest == P->digest) {
        *applied = 0;
        return check_image(P, P->img, "after a kill, with CP k-1 reported (I3)");
    }
    return mkc_fail(P->c, "after a kill during CP %llu HELLO_ACK reports CP %llu digest %016llx (7.4, I3)",
                    (unsigned long long)k, (unsigned long long)a->last_cp,
                    (unsigned long long)a->last_digest);
}

/*
 * SIGKILL at growing delays after CP_COMMIT of a CP that rewrites every
 * block: on restart the image is wholly CP k-1 or wholly CP k, as the
 * HELLO_ACK says (7.4 atomicity, I3).  Rounds go on until both outcomes
 * were seen or the delays run out.
 */
static mkc_verdict c_cp_atomic_kill(mkc *c)
{
    peer P;
    uint8_t *blk = malloc(BS);
    static const int delay_us[] = {0, 200, 500, 1000, 2000, 3000, 5000, 8000, 12000, 20000, 40000};
    int seen[2] = {0, 0};
    mkc_verdict v = blk ? start(c, &P, 256, BS) : mkc_error(c, "MK_ENOMEM");
    uint64_t k = 1;
    for (size_t i = 0; i < NOPS(delay_us) && !v; i++) {
        v = send_begin(&P, k, 256, 0);
        for (uint64_t b = 0; b < 256 && !v; b++) {
            pattern(blk, BS, k * 1000 + b);
            v = send_data(&P, k, b, blk);
        }
        STEP(send_commit(&P, k, 256));
        if (v)
            break;
        struct timespec ts = {0, delay_us[i] * 1000L};
        nanosleep(&ts, NULL);
        mkc_proc_kill(P.p);
        int applied = 0;
        v = spawn(&P);
        STEP(hello_either(&P, k, 0, &applied));
        seen[applied] = 1;
        mkc_log(c, "kill %d us after CP_COMMIT: CP %llu %s", delay_us[i], (unsigned long long)k,
                applied ? "survived" : "was lost");
        if (applied)
            k++;
    }
    if (!v)
        mkc_log(c, "outcomes: %s%s", seen[0] ? "CP k-1 " : "", seen[1] ? "CP k" : "");
    free(blk);
    peer_free(&P);
    return v;
}

/* TREE_QUERY is answered at once with the children of each node asked,
 * equal to the tree of the mirror (9.7), with a CP open too (2.3). */
static mkc_verdict c_tree_query(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    mk_file *f = NULL, *t = NULL;
    mk_merkle *m = NULL;
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r[2] = {ref_to(data, 2, 1, 0), ref_to(data, 5, 1, 3)};
    STEP(send_begin(&P, 1, 2, 1));
    STEP(send_refs(&P, 1, r, 2));
    stage(&P, 2, slot_of(data, 0));
    stage(&P, 5, slot_of(data, 3));
    STEP(send_commit(&P, 1, 2));
    STEP(expect_cp_ack(&P, 1, 1));
    if (!v && (mk_file_mem("conform/q-image", &f) || mk_file_pwrite(f, P.img, vbytes(&P), 0) ||
               mk_file_mem("conform/q-tree", &t) || mk_merkle_open(t, P.nblocks, &m) ||
               mk_merkle_rebuild(m, f, P.bs)))
        v = mkc_error(c, "cannot build the expected tree");
    if (!v)
        v = send_begin(&P, 2, 1, 1); /* the queries run with a CP open */
    uint32_t H = v ? 0 : mk_merkle_height(m);
    for (uint32_t level = 1; level <= H && !v; level++) {
        uint64_t idx[2] = {0, (P.nblocks >> level) - 1};
        uint32_t n = idx[1] ? 2 : 1;
        mk_frame fr;
        uint32_t lv, cnt;
        if (mk_tree_query_encode(&P.out, P.seq++, level, idx, n)) {
            v = mkc_error(c, "encode");
            break;
        }
        if ((v = flush(&P)) || (v = expect(&P, MK_F_TREE_NODES, &fr)))
            break;
        if (mk_tree_nodes_decode(&fr, &lv, &cnt) || lv != level || cnt != n) {
            v = mkc_fail(c, "TREE_NODES for level %u has level %u, %u nodes; asked %u (9.7)", level, lv, cnt, n);
            break;
        }
        for (uint32_t i = 0; i < n && !v; i++) {
            mk_tree_node tn;
            mk_h128 l, rr;
            if (mk_tree_nodes_at(&fr, i, &tn) || mk_merkle_node(m, level - 1, 2 * idx[i], &l) ||
                mk_merkle_node(m, level - 1, 2 * idx[i] + 1, &rr)) {
                v = mkc_error(c, "tree read");
                break;
            }
            if (tn.index != idx[i] || tn.left_lo != l.lo || tn.left_hi != l.hi || tn.right_lo != rr.lo ||
                tn.right_hi != rr.hi)
                v = mkc_fail(c, "TREE_NODES level %u node %llu differs from the mirror's tree (9.7)", level,
                             (unsigned long long)idx[i]);
        }
    }
    mk_merkle_free(m);
    if (t)
        mk_file_close(t);
    if (f)
        mk_file_close(f);
    peer_free(&P);
    return v;
}

/* ---- promotion (8.4) ------------------------------------------------------------------ */

/* Runs CMD --promote on the IUT's files: its exit code, or -1 (a failed
 * case) if it did not exit in time. */
static int promote(peer *P)
{
    int code;
    const char *args[] = {"--promote", "--image", P->image, "--log", P->log, NULL};
    if (mkc_spawn(P->c, args, &P->p)) {
        mkc_error(P->c, "cannot start the implementation");
        return -1;
    }
    mkc_proc_close_stdin(P->p);
    if (mkc_proc_wait(P->c, P->p, mkc_timeout_ms(P->c), &code)) {
        mkc_fail(P->c, "--promote did not exit within %d ms", mkc_timeout_ms(P->c));
        return -1;
    }
    if (code == 127)
        mkc_unsupported(P->c, "--promote is not supported (exit 127)");
    return code;
}

/*
 * CP 1, then transfers 2 and 3 (overlapping, acknowledged, in no CP):
 * promotion gives the CP image plus both transfers in tid order, and
 * retires the log, so the next HELLO meets a fresh log and a non-empty
 * image: MK_EDIVERGED (8.4, 2.3).
 */
static mkc_verdict c_promote(mkc *c)
{
    peer P;
    static uint8_t data[5 * BS];
    uint8_t t2[5000], t3[300];
    pattern(t2, sizeof t2, 20);
    pattern(t3, sizeof t3, 21);
    mkc_verdict v = with_transfer(c, &P, data);
    mk_ref r = ref_to(data, 4, 1, 2);
    STEP(send_begin(&P, 1, 1, 1));
    STEP(send_refs(&P, 1, &r, 1));
    stage(&P, 4, slot_of(data, 2));
    STEP(send_commit(&P, 1, 1));
    STEP(expect_cp_ack(&P, 1, 1));
    STEP(send_log(&P, 2, 10, t2, sizeof t2));
    STEP(send_log(&P, 3, 4000, t3, sizeof t3));
    STEP(wait_log_ack(&P, 3));
    STEP(end_session(&P));
    int code = v ? -1 : promote(&P);
    if (code > 0 && code != 127)
        v = mkc_fail(c, "--promote exited %d (8.4)", code);
    else if (code < 0 || code == 127)
        v = v ? v : MKC_FAIL;
    memcpy(P.img + 10, t2, sizeof t2);
    memcpy(P.img + 4000, t3, sizeof t3);
    STEP(check_image(&P, P.img, "after --promote (8.4: CP 1 plus transfers 2 and 3 in tid order)"));
    mk_hello h = {P.vid, P.nblocks, P.bs, P.mode, P.sid};
    STEP(spawn(&P));
    if (!v && mk_hello_encode(&P.out, P.seq++, &h))
        v = mkc_error(c, "encode");
    if (!v)
        v = refusal(&P, MK_EDIVERGED); /* the log was retired, the image kept */
    STEP(check_image(&P, P.img, "after the HELLO that met the promoted image (2.3)"));
    peer_free(&P);
    return v;
}

/* A destination that never adopted a volume cannot be promoted (8.4). */
static mkc_verdict c_promote_fresh(mkc *c)
{
    peer P;
    mkc_verdict v = peer_init(c, &P, NB, BS);
    int code = v ? -1 : promote(&P);
    if (code >= 0 && code != 127 && code != mk_exit_code(MK_ESTATE))
        v = mkc_fail(c, "--promote of a fresh destination exited %d, not %d (MK_ESTATE, 8.4, 10.3)", code,
                     mk_exit_code(MK_ESTATE));
    else if (code < 0 || code == 127)
        v = v ? v : MKC_FAIL;
    STEP(check_no_image(&P, "after --promote of a fresh destination"));
    peer_free(&P);
    return v;
}

/* ---- one connection at a time (2.3), over --listen ------------------------------------ */

/* A second connection during a session gets ERROR MK_EPEER with seq 0
 * and is closed; the first session goes on undisturbed (2.3, 10.1). */
static mkc_verdict c_second_connection(mkc *c)
{
    peer P;
    uint16_t port = 0;
    char addr[32];
    int fd1, fd2;
    mk_frame f;
    mk_error_frame e;
    uint8_t d[BS];
    pattern(d, sizeof d, 19);
    mkc_verdict v = peer_init(c, &P, NB, BS);
    if (!v && mkc_free_port(c, &port))
        v = mkc_error(c, "no free port");
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    const char *args[] = {"--listen", addr, "--image", P.image, "--log", P.log, NULL};
    if (!v && mkc_spawn(c, args, &P.p))
        v = mkc_error(c, "cannot start the implementation");
    if (!v && mkc_connect(c, port, mkc_timeout_ms(c), &fd1)) {
        int code;
        v = mkc_proc_exited(P.p, &code) && code == 127
                ? mkc_unsupported(c, "--listen is not supported (exit 127)")
                : mkc_fail(c, "nothing listens on %s (10.1)", addr);
    }
    if (!v) {
        P.l = mkc_link_fd(c, fd1);
        v = hello(&P);
    }
    STEP(send_log(&P, 1, 0, d, sizeof d));
    if (!v && mkc_connect(c, port, mkc_timeout_ms(c), &fd2))
        v = mkc_fail(c, "a second connection was not accepted at all (2.3: send it ERROR MK_EPEER)");
    if (!v) {
        mkc_link *l2 = mkc_link_fd(c, fd2);
        int rc = mkc_recv_frame(c, l2, mkc_timeout_ms(c), &f);
        if (rc)
            v = mkc_fail(c, "the second connection got %s, not ERROR MK_EPEER (2.3)", mk_errname(rc));
        else if (f.type != MK_F_ERROR || mk_error_decode(&f, &e) || e.code != MK_EPEER || f.seq != 0)
            v = mkc_fail(c, "the second connection got %s seq %llu, not ERROR MK_EPEER seq 0 (2.3)",
                         mk_ftype_name(f.type), (unsigned long long)f.seq);
        else if (!mkc_link_eof(c, l2, mkc_timeout_ms(c)))
            v = mkc_fail(c, "the second connection was not closed after its ERROR (2.3)");
    }
    if (!v)
        v = wait_log_ack(&P, 1); /* the first session is undisturbed */
    STEP(send_begin(&P, 1, 1, 1));
    STEP(send_data(&P, 1, 0, d));
    STEP(send_commit(&P, 1, 1));
    STEP(expect_cp_ack(&P, 1, 1));
    peer_free(&P);
    return v;
}

/* ---- the catalogue ------------------------------------------------------------------ */

const mkc_case mkc_dest_cases[] = {
    {"dest-valid-sync", "7.4", MKC_MUST, "sync mode, B=4096: partial and whole writes, 3 CPs, image and root after each", c_valid_sync},
    {"dest-valid-semi", "7.4", MKC_MUST, "semi-sync mode, B=512: REFs, DATA and an empty CP", c_valid_semi},
    {"dest-valid-async", "7.4", MKC_MUST, "async mode, B=65536: CPs of DATA only", c_valid_async},
    {"dest-valid-block-sizes", "1.1", MKC_MUST, "every block size from 512 to 65536: REFs, fragments, two CPs each", c_valid_block_sizes},
    {"dest-valid-split", "4.2", MKC_MUST, "a 2.5 MiB write split into transfers at block boundaries, REFs into each", c_valid_split},
    {"dest-valid-many-refs", "7.2", MKC_MUST, "3000 REFs in several CP_REF frames", c_valid_many_refs},
    {"dest-valid-empty-cp", "7.1", MKC_MUST, "a CP with no records is begun, committed and acknowledged", c_valid_empty_cp},
    {"dest-resume-eof", "7.6", MKC_MUST, "sessions end at EOF and the restarted destination resumes from its log", c_resume_eof},
    {"dest-resume-kill", "7.6", MKC_MUST, "SIGKILL between steps: acknowledged transfers and CPs survive", c_resume_kill},
    {"dest-adopt-fresh", "2.3", MKC_MUST, "a fresh destination adopts: zero HELLO_ACK, image of N*B zero bytes", c_adopt_fresh},
    {"dest-adopt-nonempty-image", "2.3", MKC_MUST, "fresh log, non-empty image: MK_EDIVERGED, image untouched", c_adopt_nonempty},
    {"dest-hello-length", "2.1", MKC_MUST, "HELLO of 31 bytes: MK_ELENGTH", c_hello_length},
    {"dest-hello-reserved", "2.1", MKC_MUST, "HELLO with a reserved byte set: MK_ERESERVED", c_hello_reserved},
    {"dest-hello-block-size", "2.1", MKC_MUST, "HELLO with block size 1000: MK_EBLOCKSIZE", c_hello_blocksize},
    {"dest-hello-mode", "2.1", MKC_MUST, "HELLO with mode 4: MK_EINVAL", c_hello_mode},
    {"dest-hello-nblocks", "2.1", MKC_MUST, "HELLO with N = 0: MK_ERANGE", c_hello_nblocks},
    {"dest-hello-twice", "2.3", MKC_MUST, "a second HELLO in a session: MK_ESTATE", c_hello_twice},
    {"dest-first-log", "2.3", MKC_MUST, "LOG before HELLO: MK_ESTATE", c_first_log},
    {"dest-first-tree-query", "2.3", MKC_MUST, "TREE_QUERY before HELLO: MK_ESTATE", c_first_tree_query},
    {"dest-first-error", "2.3", MKC_MUST, "ERROR before HELLO: MK_ESTATE", c_first_error},
    {"dest-recorded-nblocks", "2.3", MKC_MUST, "HELLO with another N than recorded: MK_EVOLUME", c_recorded_nblocks},
    {"dest-recorded-volume", "2.3", MKC_MUST, "HELLO with another volume_id than recorded: MK_EVOLUME", c_recorded_volume},
    {"dest-recorded-source", "2.3", MKC_MUST, "HELLO from another source_id: MK_EPEER", c_recorded_source},
    {"dest-second-connection", "2.3", MKC_MUST, "--listen: a second connection gets ERROR MK_EPEER seq 0; the session goes on", c_second_connection},
    {"dest-recv-error", "3.6", MKC_MUST, "a received ERROR ends the session without an ERROR reply; exit 3", c_recv_error},
    {"dest-frame-magic", "3.4", MKC_MUST, "bad magic: MK_EMAGIC", c_frame_magic},
    {"dest-frame-version", "3.4", MKC_MUST, "version 2: MK_EVERSION", c_frame_version},
    {"dest-frame-flags", "3.4", MKC_MUST, "header flags set: MK_ERESERVED", c_frame_flags},
    {"dest-frame-oversize", "3.3", MKC_MUST, "length > MK_MAX_PAYLOAD refused from the header alone: MK_ELENGTH", c_frame_oversize},
    {"dest-frame-checksum", "3.2", MKC_MUST, "LOG with a wrong checksum: MK_ECHECKSUM, not stored", c_frame_checksum},
    {"dest-frame-seq", "3.5", MKC_MUST, "a frame with a skipped seq: MK_ESEQ", c_frame_seq},
    {"dest-frame-unknown-type", "3.7", MKC_MUST, "type 0x20: MK_ETYPE", c_frame_unknown_type},
    {"dest-frame-wrong-direction", "3.7", MKC_MUST, "a LOG_ACK sent to the destination: MK_ETYPE", c_frame_wrong_direction},
    {"dest-frame-eof-partial", "3.4", MKC_MUST, "EOF inside a LOG frame: discarded, nothing stored, exit 0", c_frame_eof_partial},
    {"dest-log-zero-length", "4.3", MKC_MUST, "LOG with length 0: MK_EZEROLEN", c_log_zero},
    {"dest-log-reserved", "4.3", MKC_MUST, "LOG with reserved set: MK_ERESERVED", c_log_reserved},
    {"dest-log-length", "4.3", MKC_MUST, "LOG whose length is not the payload's: MK_ELENGTH", c_log_length},
    {"dest-log-tid-zero", "4.5", MKC_MUST, "LOG with tid 0: MK_ETID", c_log_tid0},
    {"dest-log-tid-repeat", "4.5", MKC_MUST, "LOG reusing a tid: MK_ETID", c_log_tid_repeat},
    {"dest-log-tid-back", "4.5", MKC_MUST, "LOG with a lower tid: MK_ETID", c_log_tid_back},
    {"dest-log-tid-restart", "4.5", MKC_MUST, "a lower tid after a restart: MK_ETID (tids hold across sessions)", c_log_tid_restart},
    {"dest-log-range", "4.3", MKC_MUST, "LOG past the end of the volume: MK_ERANGE, nothing written", c_log_range},
    {"dest-log-ack-durable", "4.4", MKC_MUST, "SIGKILL right after LOG_ACK(t): HELLO_ACK reports t after restart", c_log_ack_durable},
    {"dest-log-during-cp", "4.3", MKC_MUST, "LOG accepted and acknowledged while a CP is open and after CP_COMMIT", c_log_during_cp},
    {"dest-cp-begin-number", "7.1", MKC_MUST, "CP_BEGIN of CP 2 after CP 0: MK_ECP", c_cp_begin_number},
    {"dest-cp-begin-covers", "7.1", MKC_MUST, "covers_tid beyond the highest tid received: MK_ETID", c_cp_begin_covers},
    {"dest-cp-begin-open", "7.1", MKC_MUST, "CP_BEGIN while a CP is open: MK_ESTATE", c_cp_begin_open},
    {"dest-cp-begin-count", "7.1", MKC_MUST, "nrecords > N: MK_ECOUNT", c_cp_begin_count},
    {"dest-cp-data-no-cp", "7.2", MKC_MUST, "CP_DATA with no CP open: MK_ESTATE", c_cp_data_no_cp},
    {"dest-cp-data-wrong-cp", "7.2", MKC_MUST, "CP_DATA of another CP: MK_ECP", c_cp_data_wrong_cp},
    {"dest-cp-data-range", "7.2", MKC_MUST, "CP_DATA for block N: MK_ERANGE", c_cp_data_range},
    {"dest-cp-data-length", "7.2", MKC_MUST, "CP_DATA one byte short: MK_ELENGTH", c_cp_data_length},
    {"dest-cp-dup-block", "7.2", MKC_MUST, "the same block twice in a CP: MK_EDUPBLOCK", c_cp_dup_block},
    {"dest-cp-over-count", "7.2", MKC_MUST, "more distinct blocks than nrecords: MK_ECOUNT", c_cp_over_count},
    {"dest-cp-commit-short", "7.4", MKC_MUST, "CP_COMMIT with fewer blocks staged than nrecords: MK_ECOUNT", c_cp_commit_short},
    {"dest-cp-commit-count", "7.4", MKC_MUST, "CP_COMMIT with another nrecords than CP_BEGIN: MK_ECOUNT", c_cp_commit_count},
    {"dest-cp-commit-no-cp", "7.4", MKC_MUST, "CP_COMMIT with no CP open: MK_ESTATE", c_cp_commit_no_cp},
    {"dest-cp-digest-vector", "7.5", MKC_MUST, "CP_ACK digest of SPEC's test vector (blocks 0 and 5)", c_cp_digest_vector},
    {"dest-cp-atomic-kill", "7.4", MKC_MUST, "SIGKILL at growing delays after CP_COMMIT: image wholly CP k-1 or CP k", c_cp_atomic_kill},
    {"dest-recovery-torn-tail", "7.6", MKC_MUST, "a torn record at the end of a 7.3 log is cut; later transfers land and recover", c_recovery_torn_tail},
    {"dest-recovery-redo", "7.6", MKC_MUST, "mirror writes and R_CP_APPLIED lost after the commit point: the restart redoes the CP", c_recovery_redo},
    {"dest-session-end-open-cp", "2.4", MKC_MUST, "EOF with a CP open: discarded, the same CP number accepted again", c_session_end_open_cp},
    {"dest-session-end-waiting-cp", "2.4", MKC_MUST, "EOF with a committed CP waiting for a resend: discarded", c_session_end_waiting_cp},
    {"dest-ref-resolve", "7.2", MKC_MUST, "REFs resolve to their own slots of a transfer (block numbers honoured)", c_ref_resolve},
    {"dest-ref-two-transfers", "7.2", MKC_MUST, "REFs into an older and a newer transfer of overlapping blocks", c_ref_two_transfers},
    {"dest-ref-after-reclaim", "7.7", MKC_MUST, "transfers logged during a CP survive its apply; later REFs resolve, also after a restart", c_ref_after_reclaim},
    {"dest-ref-two-pass", "7.2", MKC_MUST, "a CP_REF whose 2nd entry fails admission: MK_EDUPBLOCK, no NAK first", c_ref_two_pass},
    {"dest-ref-beyond-covers", "7.2", MKC_MUST, "REF to a tid beyond covers_tid: NAK MK_ETID, DATA resend applied", c_ref_beyond_covers},
    {"dest-ref-unknown-tid", "7.2", MKC_MUST, "REF to a tid never received: NAK MK_ENOTID, DATA resend applied", c_ref_unknown_tid},
    {"dest-ref-bad-slot", "7.2", MKC_MUST, "REF to a slot beyond the transfer: NAK MK_ESLOT", c_ref_bad_slot},
    {"dest-ref-wrong-block", "7.2", MKC_MUST, "REF to a slot holding another block: NAK MK_ESLOT", c_ref_wrong_block},
    {"dest-ref-bad-hash", "7.2", MKC_MUST, "REF whose hash is not the slot's: NAK MK_EREFHASH, resend applied", c_ref_bad_hash},
    {"dest-ref-fragment", "7.2", MKC_MUST, "REF to a transfer holding only a fragment of the block: NAK MK_ESLOT", c_ref_fragment},
    {"dest-ref-naked-twice", "7.2", MKC_MUST, "a REF for a block already NAKed: MK_EDUPBLOCK", c_ref_naked_twice},
    {"dest-ref-after-commit", "7.2", MKC_MUST, "a CP_REF after CP_COMMIT: MK_ESTATE", c_ref_after_commit},
    {"dest-nak-resend-after-commit", "8.1", MKC_MUST, "CP_COMMIT before the resend: no CP_ACK until the DATA, then applied", c_nak_resend_after_commit},
    {"dest-promote", "8.4", MKC_MUST, "--promote: CP image plus later transfers in tid order; the log retired", c_promote},
    {"dest-promote-fresh", "8.4", MKC_MUST, "--promote of a destination with no identity: MK_ESTATE, exit 2", c_promote_fresh},
    {"dest-tree-query", "9.7", MKC_MUST, "TREE_QUERY answered with the mirror's tree nodes, with a CP open", c_tree_query},
};
const size_t mkc_dest_ncases = sizeof mkc_dest_cases / sizeof mkc_dest_cases[0];
