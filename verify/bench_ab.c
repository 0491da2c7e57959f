/*
 * bench_ab.c - one pair run of mirrorkit bench's throughput configuration,
 * built against any revision's libmirrorkit.a (verify/bench_ab.sh links it
 * to two revisions and runs them in turn).  It uses only the mk_pair
 * interface every revision since the pair existed has, so a revision from
 * before an optimisation can be measured side by side with one after it.
 *
 *   bench_ab MODE LOAD DIR [TRANSPORT [CPS]]
 *
 * MODE sync|semi-sync|async, LOAD seq|block, TRANSPORT tcp (default) or any
 * other the revision knows (sim for a run callgrind can count), CPS 4 by
 * default.  Prints the client MB/s of one run (64 MiB volume, 4 KiB blocks,
 * files in DIR), or exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_pair.h"
#include "mk_wire.h"
#include "mk_workload.h"

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: bench_ab MODE LOAD DIR [TRANSPORT [CPS]]\n");
        return 2;
    }
    mk_pair_config cfg;
    mk_pair_result res;
    mk_pair_defaults(&cfg);
    cfg.nblocks = 16384;
    cfg.block_size = 4096;
    cfg.mode = mk_mode_parse(argv[1]);
    cfg.workload = mk_workload_parse(argv[2]);
    if (cfg.mode < 0 || (cfg.workload != MK_WL_SEQ && cfg.workload != MK_WL_BLOCK)) {
        fprintf(stderr, "bench_ab: MODE is sync, semi-sync or async; LOAD seq or block\n");
        return 2;
    }
    cfg.transport = mk_transport_parse(argc > 4 ? argv[4] : "tcp");
    cfg.cps = argc > 5 ? (uint32_t)atoi(argv[5]) : 4;
    if (cfg.transport < 0 || cfg.cps == 0) {
        fprintf(stderr, "bench_ab: unknown transport or no CPs\n");
        return 2;
    }
    cfg.writes_per_cp = cfg.workload == MK_WL_SEQ ? 1024 : 8192;
    cfg.verify = MK_VERIFY_OFF;
    cfg.workdir = argv[3];
    cfg.store_dir = argv[3];
    cfg.out = NULL;
    int rc = mk_pair_run(&cfg, &res);
    if (rc || res.run_ns == 0)
        return 1;
    printf("%.1f\n", (double)res.stats.client_bytes / ((double)res.run_ns / 1e9) / 1e6);
    return 0;
}
