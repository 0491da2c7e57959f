/*
 * fuzz_sync - a destination (ref/mk_dest) whose log store already holds a
 * set of transfers, fed the input as the CP stream: CP_BEGIN, CP_REF,
 * CP_DATA, CP_COMMIT (and anything else a source may send), mutated: REFs
 * to unknown, reclaimed or uncovered transfer IDs, out-of-range and
 * duplicate blocks, wrong slots and checksums, missing and duplicate
 * commits, DATA resends before and after CP_COMMIT.
 *
 * Before the input, every iteration replays one of the recorded prefixes
 * of fuzz/mk_fuzz_sync_prefix.h (picked by byte 0): a HELLO, LOG transfers
 * and possibly earlier CPs of a `mirrorkit demo --record` stream, cut
 * before a CP_BEGIN, all of which must be accepted.  The input continues
 * that stream (its sequence numbers follow the prefix's), in recv calls
 * sized by the control bytes (fuzz/mk_fuzz_util.h); an op frame of type
 * 0xF0 ends the session and starts another with a new HELLO (seq 1 next).
 *
 * Oracles (abort() when broken), beyond no crash, hang, leak or sanitizer
 * report - the same as fuzz_log's (fuzz/mk_fuzz_util.c):
 *   O1  I5: the mirror, written through mk_file_bounded, is never written
 *       or truncated outside the volume.
 *   O2  I4: a refused frame leaves mirror, log and tree byte-identical,
 *       with exactly the error SPEC names; the destination refuses
 *       exactly what SPEC refuses (no wrong acceptance).
 *   O3  differential: every NAK (with its reason), CP_ACK (digest, Merkle
 *       root), TREE_NODES and ERROR, and the mirror after every CP, equal
 *       what the independent model of SPEC.md (fuzz/mk_fuzz_model.c)
 *       computes: REF resolution (7.2 rules 1-5 against the transfers the
 *       log holds, after 7.7 reclaims), staging, the NAK/resend protocol
 *       (8.1) and atomic apply (7.4); reopened, the destination recovers
 *       the model's last CP, digest and mirror.
 *   O4  memory and file sizes stay linear in the bytes fed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mk_fuzz_sync_prefix.h"
#include "mk_fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned v = (size ? data[0] : 0) % (sizeof mkfs_prefixes / sizeof mkfs_prefixes[0]);
    mkfu_dest_setup su = {0};
    size_t h = mkfu_hello_geometry(mkfs_prefixes[v].p, mkfs_prefixes[v].n, &su.nblocks,
                                   &su.block_size, &su.mode);
    if (!h)
        abort(); /* the generated prefixes start with HELLO */
    su.prefix = mkfs_prefixes[v].p + h;
    su.prefix_len = mkfs_prefixes[v].n - h;
    mkfu_dest_run(&su, data, size);
    return 0;
}
