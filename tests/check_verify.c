/*
 * check_verify.c - the invariant checker of SPEC.md 9.6 (verify/mk_check).
 *
 * A checker that cannot fail is a defect, so every test here breaks an
 * invariant on purpose - a byte flipped in the mirror, a mirror mixing two
 * CP images, an acknowledged write missing after promotion, a write outside
 * the volume - and asserts that the checker names the right invariant, the
 * right block, its offset, both checksums and the record that last wrote it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_check.h"
#include "mk_dest.h"
#include "mk_err.h"
#include "mk_merkle.h"
#include "mk_pair.h"
#include "mk_source.h"
#include "mk_test.h"
#include "mk_wire.h"
#include "mk_workload.h"

#define BS 512u
#define NB 64u

/* A source and a destination joined by a tiny in-process link; the
 * destination's mirror is the checker's view of it (through a write
 * witness when asked).  Tests then damage that mirror on purpose. */
typedef struct fixture {
    mk_file *store, *mirror, *log, *prov, *stree, *dtree;
    mk_source *src;
    mk_dest *dst;
    mk_checker *ck;
    mk_witness *w;
} fixture;

static void pump(fixture *f)
{
    for (int moved = 1; moved;) {
        mk_buf *a = mk_source_out(f->src), *b = mk_dest_out(f->dst);
        moved = mk_buf_len(a) || mk_buf_len(b);
        if (mk_buf_len(a)) {
            ck_assert_int_eq(mk_dest_recv(f->dst, mk_buf_peek(a), mk_buf_len(a), 0), 0);
            mk_buf_consume(a, mk_buf_len(a));
        }
        if (mk_buf_len(b)) {
            ck_assert_int_eq(mk_source_recv(f->src, mk_buf_peek(b), mk_buf_len(b), 0), 0);
            mk_buf_consume(b, mk_buf_len(b));
        }
    }
}

static void fx_open2(fixture *f, uint64_t scrub, int atomicity, int witness)
{
    mk_source_config sc = {1, NB, 2, BS, MK_MODE_SEMI, 0, NULL};
    mk_dest_config dc = {0};
    memset(f, 0, sizeof *f);
    ck_assert_int_eq(mk_file_mem("stree", &f->stree), 0);
    ck_assert_int_eq(mk_file_mem("dtree", &f->dtree), 0);
    sc.tree = f->stree;
    dc.tree = f->dtree;
    ck_assert_int_eq(mk_file_mem("store", &f->store), 0);
    ck_assert_int_eq(mk_file_mem("mirror", &f->mirror), 0);
    ck_assert_int_eq(mk_file_mem("log", &f->log), 0);
    ck_assert_int_eq(mk_file_mem("prov", &f->prov), 0);
    if (witness) {
        mk_file *raw = f->mirror;
        ck_assert_int_eq(mk_file_witness(raw, BS, &f->w, &f->mirror), 0);
    }
    ck_assert_int_eq(mk_source_new(&sc, f->store, &f->src), 0);
    ck_assert_int_eq(mk_dest_open(&dc, f->mirror, f->log, &f->dst), 0);
    mk_checker_config cc = {NB, BS, scrub, f->prov, atomicity, f->w};
    ck_assert_int_eq(mk_checker_new(&cc, &f->ck), 0);
    ck_assert_int_eq(mk_source_connect(f->src, 0), 0);
    pump(f);
    ck_assert(mk_source_ready(f->src));
}

static void fx_open(fixture *f, uint64_t scrub, int atomicity)
{
    fx_open2(f, scrub, atomicity, 0);
}

static void fx_close(fixture *f)
{
    mk_checker_free(f->ck);
    mk_source_free(f->src);
    mk_dest_free(f->dst);
    mk_file_close(f->store);
    mk_file_close(f->mirror);
    mk_file_close(f->log);
    mk_file_close(f->prov);
    mk_file_close(f->stree);
    mk_file_close(f->dtree);
}

static void fill(uint8_t *b, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

static void src_write(fixture *f, uint64_t off, uint32_t len, uint8_t seed)
{
    uint8_t *b = malloc(len);
    uint64_t wid;
    fill(b, len, seed);
    ck_assert_int_eq(mk_source_write(f->src, off, b, len, 0, &wid), 0);
    free(b);
    pump(f);
}

/* Copies blocks from the source store straight into the mirror, below the
 * destination (to build mirrors that mix CP images). */
static void copy_blocks(fixture *f, const uint64_t *blocks, size_t n)
{
    uint8_t b[BS];
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(mk_file_read_block(f->store, b, BS, blocks[i] * BS), 0);
        ck_assert_int_eq(mk_file_pwrite(f->mirror, b, BS, blocks[i] * BS), 0);
    }
}

static void flip(mk_file *m, uint64_t off)
{
    uint8_t b;
    ck_assert_int_eq(mk_file_read_block(m, &b, 1, off), 0);
    b ^= 0x10;
    ck_assert_int_eq(mk_file_pwrite(m, &b, 1, off), 0);
}

/* CP k begins (the checker snapshots while the mirror holds CP k-1). */
static void cp_begin(fixture *f, uint64_t cp)
{
    ck_assert_int_eq(mk_source_cp(f->src, 0), 0);
    ck_assert_int_eq(mk_checker_cp_begin(f->ck, cp, f->src, f->store, f->mirror), 0);
}

/* One CP through the real destination, then the acknowledged check;
 * damage(f) runs after the destination applied it. */
static int run_cp(fixture *f, uint64_t cp, void (*damage)(fixture *f), mk_check_report *rep)
{
    cp_begin(f, cp);
    pump(f);
    ck_assert_uint_eq(mk_source_cp_acked(f->src), cp);
    if (damage)
        damage(f);
    return mk_checker_cp_acked(f->ck, f->src, f->store, f->mirror, rep);
}

/* I1: a correct CP passes; the checker counts what it compared. */
START_TEST(test_s9_i1_correct_cp_holds)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 0, 0);
    src_write(&f, 0, 2 * BS, 1);        /* blocks 0,1 whole: REFs */
    src_write(&f, 5 * BS + 10, 20, 2);  /* block 5 partial: DATA */
    ck_assert_int_eq(run_cp(&f, 1, NULL, &rep), 0);
    ck_assert_int_eq(rep.invariant, 0);
    ck_assert_uint_eq(rep.compared, 3);
    ck_assert_int_eq(mk_checker_full(f.ck, f.store, f.mirror, &rep), 0);
    ck_assert_uint_eq(rep.compared, NB);
    fx_close(&f);
}
END_TEST

static void damage_block9(fixture *f) { flip(f->mirror, 9 * BS + 77); }

/* I1: a CP block the destination got wrong is reported with its block,
 * offset, checksums, first differing byte and the record (REF tid/slot). */
START_TEST(test_s9_i1_wrong_block_reported_with_record)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 0, 0);
    src_write(&f, 8 * BS, 3 * BS, 3); /* blocks 8,9,10 in one transfer, slots 0..2 */
    ck_assert_int_eq(run_cp(&f, 1, damage_block9, &rep), MK_EVERIFY);
    ck_assert_int_eq(rep.invariant, 1);
    ck_assert_uint_eq(rep.differing, 1);
    ck_assert_uint_eq(rep.ndiffs, 1);
    const mk_block_diff *d = &rep.diffs[0];
    ck_assert_uint_eq(d->block, 9);
    ck_assert_uint_eq(d->offset, 9 * BS);
    ck_assert_uint_eq(d->at, 77);
    ck_assert_uint_eq(d->src_bytes[0] ^ d->dst_bytes[0], 0x10);
    ck_assert(!XXH128_isEqual(d->src, d->dst));
    ck_assert_uint_eq(d->prov.cp, 1);
    ck_assert_uint_eq(d->prov.kind, MK_PROV_REF);
    ck_assert_uint_eq(d->prov.tid, 1);
    ck_assert_uint_eq(d->prov.slot, 1);
    /* The text report carries all of it. */
    char *txt = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&txt, &len);
    mk_check_report_text(o, &rep, BS);
    fclose(o);
    ck_assert_ptr_nonnull(strstr(txt, "VIOLATED I1"));
    ck_assert_ptr_nonnull(strstr(txt, "block 9 (byte offset 4608)"));
    ck_assert_ptr_nonnull(strstr(txt, "last written in CP 1 by REF tid 1 slot 1"));
    ck_assert_ptr_nonnull(strstr(txt, "first difference at byte 77"));
    free(txt);
    o = open_memstream(&txt, &len);
    mk_check_report_json(o, &rep);
    fclose(o);
    ck_assert_ptr_nonnull(strstr(txt, "\"invariant\":\"I1\""));
    ck_assert_ptr_nonnull(strstr(txt, "\"block\":9,\"offset\":4608"));
    ck_assert_ptr_nonnull(strstr(txt, "\"record\":\"REF\",\"tid\":1,\"slot\":1"));
    free(txt);
    fx_close(&f);
}
END_TEST

static void unwrite_block3(fixture *f)
{
    uint8_t zero[BS] = {0};
    ck_assert_int_eq(mk_file_pwrite(f->mirror, zero, BS, 3 * BS), 0);
}

/* I1: a block the destination never wrote is caught too (the mirror
 * still holds its CP k-1 content). */
START_TEST(test_s9_i1_missing_block_caught)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 0, 0);
    src_write(&f, 3 * BS + 1, 5, 4);
    src_write(&f, 4 * BS, BS, 5);
    ck_assert_int_eq(run_cp(&f, 1, unwrite_block3, &rep), MK_EVERIFY);
    ck_assert_uint_eq(rep.diffs[0].block, 3);
    ck_assert_uint_eq(rep.diffs[0].prov.kind, MK_PROV_DATA);
    fx_close(&f);
}
END_TEST

/* I1: damage outside the CP's blocks is found by the rolling scrub within
 * nblocks/scrub CPs, and by a full check at once. */
START_TEST(test_s9_i1_scrub_finds_damage_outside_the_cp)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 8, 0);
    flip(f.mirror, 45 * BS + 3); /* block 45: the scrub reaches it in CP 6 */
    int found_at = 0;
    for (uint64_t cp = 1; cp <= 8 && !found_at; cp++) {
        src_write(&f, 0, BS, (uint8_t)cp);
        if (run_cp(&f, cp, NULL, &rep) == MK_EVERIFY) {
            found_at = (int)cp;
            ck_assert_uint_eq(rep.diffs[0].block, 45);
            ck_assert_uint_eq(rep.diffs[0].prov.kind, MK_PROV_NONE);
        }
    }
    ck_assert_int_eq(found_at, 6);
    fx_close(&f);
}
END_TEST

/* I3: after a crash the mirror must be CP k-1 or CP k exactly. */
START_TEST(test_s9_i3_atomicity_says_which_image_or_catches_a_mix)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 0, 1);
    src_write(&f, 0, 4 * BS, 1);
    uint64_t all[] = {0, 1, 2, 3};
    ck_assert_int_eq(run_cp(&f, 1, NULL, &rep), 0); /* CP 1 applied */
    src_write(&f, 0, 4 * BS, 2);                    /* CP 2 rewrites all four */
    cp_begin(&f, 2); /* ... and is never delivered: the destination "crashed" */
    /* Crash before apply: the CP 1 image. */
    ck_assert_int_eq(mk_checker_atomic(f.ck, f.mirror, &rep), 0);
    ck_assert_uint_eq(rep.image_cp, 1);
    /* Half applied: a mix - I3 broken. */
    uint64_t half[] = {0, 1};
    copy_blocks(&f, half, 2);
    ck_assert_int_eq(mk_checker_atomic(f.ck, f.mirror, &rep), MK_EVERIFY);
    ck_assert_int_eq(rep.invariant, 3);
    ck_assert_uint_eq(rep.ndiffs, 2); /* the blocks that moved on */
    ck_assert_uint_eq(rep.diffs[0].block, 0);
    /* Fully applied: the CP 2 image. */
    copy_blocks(&f, all, 4);
    ck_assert_int_eq(mk_checker_atomic(f.ck, f.mirror, &rep), 0);
    ck_assert_uint_eq(rep.image_cp, 2);
    /* A block from neither image. */
    flip(f.mirror, 2 * BS);
    ck_assert_int_eq(mk_checker_atomic(f.ck, f.mirror, &rep), MK_EVERIFY);
    ck_assert_int_eq(rep.invariant, 3);
    ck_assert_uint_eq(rep.diffs[0].block, 2);
    fx_close(&f);
}
END_TEST

START_TEST(test_s9_i3_needs_the_snapshots)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 0, 0);
    ck_assert_int_eq(mk_checker_atomic(f.ck, f.mirror, &rep), MK_ESTATE);
    fx_close(&f);
}
END_TEST

/* I2: after promotion every block whose last write was acknowledged holds
 * the source's bytes; a block whose last write was never acknowledged may
 * hold either. */
START_TEST(test_s9_i2_promotion_checks_acknowledged_writes_only)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 0, 0);
    src_write(&f, 2 * BS, BS, 7);
    src_write(&f, 6 * BS, BS, 8);
    ck_assert_int_eq(mk_checker_write(f.ck, 2 * BS, BS, 1), 0);
    ck_assert_int_eq(mk_checker_write(f.ck, 6 * BS, BS, 0), 0);
    /* The source is lost before any CP; the destination is promoted. */
    ck_assert_int_eq(mk_dest_promote(f.dst), 0);
    ck_assert_int_eq(mk_checker_promoted(f.ck, f.store, f.mirror, &rep), 0);
    ck_assert_uint_eq(rep.compared, 1);
    /* Lose the acknowledged one. */
    flip(f.mirror, 2 * BS + 100);
    ck_assert_int_eq(mk_checker_promoted(f.ck, f.store, f.mirror, &rep), MK_EVERIFY);
    ck_assert_int_eq(rep.invariant, 2);
    ck_assert_uint_eq(rep.diffs[0].block, 2);
    fx_close(&f);
}
END_TEST

/* I4: a fingerprint changes with any byte and with the size. */
START_TEST(test_s9_i4_fingerprint)
{
    mk_file *a;
    XXH128_hash_t h1, h2, h3;
    ck_assert_int_eq(mk_file_mem("a", &a), 0);
    uint8_t b[3000];
    fill(b, sizeof b, 9);
    ck_assert_int_eq(mk_file_pwrite(a, b, sizeof b, 0), 0);
    ck_assert_int_eq(mk_file_fingerprint(a, &h1), 0);
    ck_assert_int_eq(mk_file_fingerprint(a, &h2), 0);
    ck_assert(XXH128_isEqual(h1, h2));
    flip(a, 2999);
    ck_assert_int_eq(mk_file_fingerprint(a, &h2), 0);
    ck_assert(!XXH128_isEqual(h1, h2));
    flip(a, 2999);
    ck_assert_int_eq(mk_file_truncate(a, 3001), 0); /* two zero bytes more */
    ck_assert_int_eq(mk_file_fingerprint(a, &h3), 0);
    ck_assert(!XXH128_isEqual(h1, h3));
    mk_file_close(a);
}
END_TEST

/* I5: writes outside the volume are counted and never performed. */
START_TEST(test_s9_i5_bounded_mirror)
{
    mk_file *raw, *m;
    uint64_t v = 0, size;
    ck_assert_int_eq(mk_file_mem("m", &raw), 0);
    ck_assert_int_eq(mk_file_bounded(raw, NB * BS, &v, &m), 0);
    uint8_t b[BS] = {1};
    ck_assert_int_eq(mk_file_pwrite(m, b, BS, (NB - 1) * BS), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(mk_file_pwrite(m, b, BS, NB * BS), MK_ERANGE);
    ck_assert_int_eq(mk_file_pwrite(m, b, 2, NB * BS - 1), MK_ERANGE);
    ck_assert_int_eq(mk_file_truncate(m, NB * BS + 1), MK_ERANGE);
    ck_assert_uint_eq(v, 3);
    ck_assert_int_eq(mk_file_size(m, &size), 0);
    ck_assert_uint_eq(size, NB * BS);
    mk_file_close(m);
}
END_TEST

/* The write witness: what reaches storage is checked without reading it
 * back; a wrong write and a stray write outside the CP are both caught. */
static void wrong_write10(fixture *f)
{
    uint8_t junk[BS];
    fill(junk, BS, 99);
    ck_assert_int_eq(mk_file_pwrite(f->mirror, junk, BS, 10 * BS), 0);
}

static void stray_write33(fixture *f)
{
    uint8_t junk[7];
    fill(junk, sizeof junk, 98);
    ck_assert_int_eq(mk_file_pwrite(f->mirror, junk, sizeof junk, 33 * BS + 5), 0);
}

START_TEST(test_s9_i1_witness_catches_wrong_and_stray_writes)
{
    fixture f;
    mk_check_report rep;
    fx_open2(&f, 0, 0, 1);
    src_write(&f, 10 * BS, 2 * BS, 1);
    ck_assert_int_eq(run_cp(&f, 1, NULL, &rep), 0);
    ck_assert_uint_eq(rep.compared, 2);
    src_write(&f, 10 * BS, BS, 2);
    ck_assert_int_eq(run_cp(&f, 2, wrong_write10, &rep), MK_EVERIFY);
    ck_assert_uint_eq(rep.diffs[0].block, 10);
    uint64_t b10[] = {10};
    copy_blocks(&f, b10, 1);
    src_write(&f, 20 * BS, BS, 3);
    ck_assert_int_eq(run_cp(&f, 3, stray_write33, &rep), MK_EVERIFY);
    ck_assert_uint_eq(rep.ndiffs, 1);
    ck_assert_uint_eq(rep.diffs[0].block, 33);
    fx_close(&f);
}
END_TEST

/* End to end: a pair run whose mirror is damaged behind the destination's
 * back after CP 2 fails, at the right block, naming the CP and record that
 * last wrote it; an undamaged run passes every check. */
START_TEST(test_s9_i1_pair_run_reports_damage)
{
    mk_pair_config c;
    mk_pair_result r;
    mk_pair_defaults(&c);
    c.nblocks = 1024;
    c.cps = 4;
    c.writes_per_cp = 80;
    c.workload = MK_WL_WHOLE;
    ck_assert_int_eq(mk_pair_run(&c, &r), 0);
    ck_assert_uint_eq(r.cps_verified, 4);
    ck_assert_uint_gt(r.blocks_checked, 1024);
    /* Find a block written in CP 2 and never after, from a clean run's
     * provenance: rerun with damage there. */
    c.corrupt_cp = 2;
    for (c.corrupt_block = 0; c.corrupt_block < 1024; c.corrupt_block++) {
        ck_assert_int_eq(mk_pair_run(&c, &r), MK_EVERIFY);
        if (r.report.diffs[0].prov.cp == 2)
            break;
    }
    ck_assert_uint_lt(c.corrupt_block, 1024);
    ck_assert_int_eq(r.report.invariant, 1);
    ck_assert_uint_eq(r.report.ndiffs, 1);
    ck_assert_uint_eq(r.report.diffs[0].block, c.corrupt_block);
    ck_assert_uint_eq(r.report.diffs[0].offset, c.corrupt_block * 4096);
    ck_assert_uint_eq(r.report.diffs[0].prov.kind, MK_PROV_REF);
    ck_assert_uint_gt(r.report.diffs[0].prov.tid, 0);
}
END_TEST

/* Section 9.7: a destination whose mirror (and its own idea of it) went
 * wrong reports a Merkle root in CP_ACK that the source's differs from;
 * the source descends the two trees and names exactly the bad blocks,
 * asking O(d log N) nodes. */
START_TEST(test_s9_7_merkle_root_mismatch_found_by_descent)
{
    fixture f;
    mk_check_report rep;
    fx_open(&f, 0, 0);
    src_write(&f, 0, 8 * BS, 1);
    ck_assert_int_eq(run_cp(&f, 1, NULL, &rep), 0);
    /* A destination bug: blocks 5 and 40 of its mirror change and its tree
     * follows, as if it had applied something the source never sent. */
    mk_merkle *t;
    uint8_t junk[BS];
    fill(junk, BS, 77);
    ck_assert_int_eq(mk_merkle_open(f.dtree, NB, &t), 0);
    uint64_t bad[] = {5, 40};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(mk_file_pwrite(f.mirror, junk, BS, bad[i] * BS), 0);
        ck_assert_int_eq(mk_merkle_set(t, bad[i], mk_leaf_hash(junk, BS)), 0);
    }
    ck_assert_int_eq(mk_merkle_commit(t), 0);
    mk_merkle_free(t);
    /* The next CP's CP_ACK carries the wrong root. */
    src_write(&f, 20 * BS, BS, 2);
    ck_assert_int_eq(mk_source_cp(f.src, 0), 0);
    mk_buf *a = mk_source_out(f.src), *b = mk_dest_out(f.dst);
    int rc = 0;
    for (int round = 0; round < 100 && rc == 0 && (mk_buf_len(a) || mk_buf_len(b)); round++) {
        if (mk_buf_len(a)) {
            ck_assert_int_eq(mk_dest_recv(f.dst, mk_buf_peek(a), mk_buf_len(a), 0), 0);
            mk_buf_consume(a, mk_buf_len(a));
        }
        if (mk_buf_len(b)) {
            rc = mk_source_recv(f.src, mk_buf_peek(b), mk_buf_len(b), 0);
            mk_buf_consume(b, mk_buf_len(b));
        }
    }
    ck_assert_int_eq(rc, MK_EVERIFY);
    ck_assert_int_eq(mk_source_error(f.src), MK_EVERIFY);
    size_t n;
    uint64_t queries;
    int more;
    const uint64_t *d = mk_source_diff_blocks(f.src, &n, &queries, &more);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(d[0], 5);
    ck_assert_uint_eq(d[1], 40);
    ck_assert_int_eq(more, 0);
    ck_assert_uint_le(queries, 2 * (6 + 1)); /* d (H+1), H = log2 64 */
    fx_close(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("verify");
    TCase *t = tcase_create("invariants");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_s9_i1_correct_cp_holds);
    tcase_add_test(t, test_s9_i1_wrong_block_reported_with_record);
    tcase_add_test(t, test_s9_i1_missing_block_caught);
    tcase_add_test(t, test_s9_i1_scrub_finds_damage_outside_the_cp);
    tcase_add_test(t, test_s9_i1_witness_catches_wrong_and_stray_writes);
    tcase_add_test(t, test_s9_i3_atomicity_says_which_image_or_catches_a_mix);
    tcase_add_test(t, test_s9_i3_needs_the_snapshots);
    tcase_add_test(t, test_s9_i2_promotion_checks_acknowledged_writes_only);
    tcase_add_test(t, test_s9_i4_fingerprint);
    tcase_add_test(t, test_s9_i5_bounded_mirror);
    tcase_add_test(t, test_s9_i1_pair_run_reports_damage);
    tcase_add_test(t, test_s9_7_merkle_root_mismatch_found_by_descent);
    suite_add_tcase(s, t);
    return mk_test_run(s);
}
