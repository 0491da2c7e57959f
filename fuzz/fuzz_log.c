/*
 * fuzz_log - a fresh destination (ref/mk_dest) after a valid HELLO, fed the
 * input as the rest of the source->destination byte stream: LOG transfers,
 * and everything else a source may send (CP frames, TREE_QUERY, ERROR),
 * mutated.  The stream is fed in recv calls whose sizes come from the
 * input's control bytes, so reassembly of frames split across reads and
 * group commit over several frames per read are fuzzed too.
 *
 * Input: 10 control bytes, then the stream (fuzz/mk_fuzz_util.h).  Byte 0
 * picks the volume (N x B) the harness's HELLO announces; the recorded
 * demo streams of fuzz/corpus/fuzz_log were made with the same volumes and
 * the CLI's default identities.  An op frame of type 0xF0 ends the session
 * and starts another with a new HELLO.
 *
 * Oracles (abort() when broken), beyond no crash, hang, leak or sanitizer
 * report - see fuzz/mk_fuzz_util.c for the details:
 *   O1  I5: the mirror is written through mk_file_bounded; no write or
 *       truncation outside the N*B volume, ever.
 *   O2  I4: a frame the destination refuses leaves mirror, log and tree
 *       byte-identical (fingerprints and write counters), with exactly
 *       the error SPEC 3.4 and the per-type check orders name; it refuses
 *       exactly what SPEC refuses.
 *   O3  differential: the destination's output (HELLO_ACK, LOG_ACK, NAK,
 *       CP_ACK digest and Merkle root, TREE_NODES, ERROR) and its mirror
 *       after every CP equal what the independent model of SPEC.md
 *       (fuzz/mk_fuzz_model.c) computes from the same frames; reopened
 *       from its files, the destination recovers the model's state.
 *   O4  memory and file sizes stay linear in the bytes fed, whatever
 *       lengths the input claims.
 */
#include <stdint.h>
#include <stddef.h>

#include "mk_fuzz_util.h"
#include "mk_wire.h"

/* Volumes the HELLO can announce: small, so a whole-image comparison per
 * CP is cheap; odd sizes for the edges of 4.2, 7.2 and 9.7. */
static const struct {
    uint64_t nblocks;
    uint32_t bs;
} geo[] = {
#define VOLUME(n, b) {n, b},
    MKFU_LOG_VOLUMES(VOLUME)
#undef VOLUME
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t v = size ? data[0] : 0;
    unsigned g = v % (sizeof geo / sizeof geo[0]);
    mkfu_dest_setup su = {geo[g].nblocks, geo[g].bs, (uint8_t)(1 + (v / 8) % 3), NULL, 0, 0};
    mkfu_dest_run(&su, data, size);
    return 0;
}
