/*
 * mk_bench.h - `mirrorkit bench`: measurements of the pair next to a
 * baseline taken in the same run on the same machine (README.md,
 * "Performance").  Every figure is a ratio against its baseline.
 *
 * Measured so far: the bandwidth saving of SPEC.md section 11 - bytes on
 * the wire per client byte and CP-phase bytes against a naive full-block
 * CP, per workload, next to rsync resyncing the same CP images.
 */
#ifndef MK_BENCH_H
#define MK_BENCH_H

int mk_cmd_bench(int argc, char **argv);

#endif
