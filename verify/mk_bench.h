/*
 * mk_bench.h - `mirrorkit bench`: measurements of the pair next to a
 * baseline taken in the same run on the same machine (README.md,
 * "Performance").  Every figure is a ratio against its baseline, and every
 * timing the median of repeated runs with their minimum and maximum.
 *
 * Sections: throughput (the pair against the raw transport and against the
 * storage floor), latency (sync acknowledgements against the raw round
 * trip, CP commit time), bandwidth (SPEC.md section 11's byte counts
 * against rsync), verify (the verifier against cmp and xxhsum, and what the
 * per-CP check costs a run), scale (memory against volume size, time per CP
 * against dirty data) and speed (simulator seeds/s, fuzz execs/s).
 */
#ifndef MK_BENCH_H
#define MK_BENCH_H

int mk_cmd_bench(int argc, char **argv);

#endif
