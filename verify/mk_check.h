/*
 * mk_check.h - the invariant checker of SPEC.md section 9.
 *
 * A pair run feeds it what happened - each CP's records as the source sent
 * them, which client writes were acknowledged, when the destination crashed
 * - and asks it, after every CP and every recovery, whether I1..I5 still
 * hold.  It answers with a report a person can act on: the differing
 * blocks, their byte offsets, both XXH3-128 checksums, the CP and the
 * record (REF tid/slot or DATA) that last wrote each block, and the first
 * differing bytes.
 *
 * Memory is bounded by the blocks of one CP: the CP images it keeps for
 * I3 are checksums of the CP's blocks only (the rest of the two images is
 * equal by I1), the acknowledged writes for I2 are block sets reset at
 * each CP, and per-block provenance lives in a sparse mk_file the caller
 * supplies, not in RAM.
 *
 * Ownership: the checker borrows every mk_file it is given.
 */
#ifndef MK_CHECK_H
#define MK_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <xxhash.h>

#include "mk_file.h"
#include "mk_source.h"

#define MK_CHECK_MAX_DIFFS 16

/* What last wrote a block on the destination, as the source sent it. */
enum { MK_PROV_NONE, MK_PROV_REF, MK_PROV_DATA, MK_PROV_REF_NAKED };
typedef struct mk_prov {
    uint64_t cp, tid;
    uint32_t slot;
    uint8_t kind;
} mk_prov;

typedef struct mk_block_diff {
    uint64_t block, offset;
    XXH128_hash_t src, dst;
    mk_prov prov;
    uint32_t at;                 /* first differing byte within the block */
    uint32_t nbytes;             /* bytes shown from there */
    uint8_t src_bytes[16], dst_bytes[16];
} mk_block_diff;

typedef struct mk_check_report {
    int invariant;               /* the first broken one (1..5), 0 if all held */
    const char *what;            /* what was checked, e.g. "incremental" */
    uint64_t cp;                 /* the CP checked against */
    uint64_t compared, differing;
    uint64_t image_cp;           /* I3: the CP image the mirror equals */
    size_t ndiffs;
    mk_block_diff diffs[MK_CHECK_MAX_DIFFS];
} mk_check_report;

/*
 * A write witness: a wrapper at the mirror's storage seam, below the
 * destination engine, that hashes every whole block as it is written (the
 * bytes are hot in cache then) and remembers the XXH3-64 of the last write
 * to each block since the last check.  The incremental check compares those
 * with the source's checksums instead of reading every block back; blocks
 * written only in part are read back, and a block written that the CP did
 * not name is a stray write, checked against the source.  Damage that
 * happens after a write (a disk, a stray process) is what the rolling scrub
 * and the final full check read back for.  Memory: one entry per block
 * written since the last check.
 */
typedef struct mk_witness mk_witness;
/* Wraps inner (owned by the wrapper from now on). */
int mk_file_witness(mk_file *inner, uint32_t block_size, mk_witness **w, mk_file **out);

typedef struct mk_checker_config {
    uint64_t nblocks;
    uint32_t block_size;
    uint64_t scrub_per_cp;       /* blocks of rolling full scrub per CP */
    mk_file *prov;               /* sparse provenance table, or NULL */
    int atomicity;               /* keep both images' checksums for I3 */
    mk_witness *witness;         /* the mirror's write witness, or NULL */
} mk_checker_config;

typedef struct mk_checker mk_checker;

int mk_checker_new(const mk_checker_config *cfg, mk_checker **out);
void mk_checker_free(mk_checker *ck);

/* CP k is about to be applied: the source's CP image is in src, the
 * mirror still holds CP k-1.  Remembers both checksums of the CP's blocks
 * (for I3) and the records' provenance.  Call before the destination can
 * have applied it (right after mk_source_cp). */
int mk_checker_cp_begin(mk_checker *ck, uint64_t cp, const mk_source *s, mk_file *src,
                        mk_file *mirror);

/* I1, incremental (section 9): after CP k's CP_ACK, compare the CP's blocks
 * and the next scrub window, and record each block's provenance as the
 * source's final records say (a NAK may have turned a REF into DATA).
 * 0 if equal, MK_EVERIFY with rep filled. */
int mk_checker_cp_acked(mk_checker *ck, const mk_source *s, mk_file *src, mk_file *mirror,
                        mk_check_report *rep);
/* I1, every block. */
int mk_checker_full(mk_checker *ck, mk_file *src, mk_file *mirror, mk_check_report *rep);

/* I3: after a destination crash and recovery, the mirror must equal the
 * CP image of the last CP begun or the one before it, exactly; rep says
 * which (image_cp), or which blocks mix them.  Needs cfg.atomicity (the
 * two checksums per CP block cost a read and a hash of each side at
 * every CP, which a run without crashes need not pay); MK_ESTATE else. */
int mk_checker_atomic(mk_checker *ck, mk_file *mirror, mk_check_report *rep);

/* I2: a client write was acknowledged (acked) or issued and then lost
 * with the source unacknowledged (!acked).  Forgotten when a CP starts
 * (mk_checker_cp_begin, or mk_checker_cp_taken when the run checks no
 * CP), since the CP holds every write before it: the history grows with
 * the blocks written between two CPs, never with the volume. */
int mk_checker_write(mk_checker *ck, uint64_t off, uint32_t len, int acked);
/* A CP started that the run does not check (--verify off, or no mirror
 * to read): only the write history of I2 is reset. */
void mk_checker_cp_taken(mk_checker *ck);
/* I2: after the source was lost and the destination promoted, every block
 * whose last write was acknowledged holds the source's bytes. */
int mk_checker_promoted(mk_checker *ck, mk_file *src, mk_file *mirror,
                        mk_check_report *rep);

/* I4: a fingerprint of a whole file (XXH3-128 of its bytes and size), to
 * prove that rejected input changed nothing. */
int mk_file_fingerprint(mk_file *f, XXH128_hash_t *out);

/* I5: wraps a mirror so every write outside [0, limit) is counted (and
 * still refused with MK_ERANGE, never performed).  The wrapper owns inner
 * and closes it. */
int mk_file_bounded(mk_file *inner, uint64_t limit, uint64_t *violations,
                    mk_file **out);

/* What last wrote block, as far as the checker knows, and its words. */
void mk_checker_provenance(mk_checker *ck, uint64_t block, mk_prov *p);
void mk_prov_text(FILE *o, const mk_prov *p);

/* Reports: one readable paragraph, or one JSON object. */
void mk_check_report_text(FILE *o, const mk_check_report *rep, uint32_t block_size);
void mk_check_report_json(FILE *o, const mk_check_report *rep);

#endif
