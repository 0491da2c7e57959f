/*
 * mk_proxy.h - `mirrorkit proxy`: a loopback TCP fault proxy (issue 4,
 * item 2).  It sits between a real source and a real destination and
 * passes each direction's bytes through an mk_lf fault pipe on the
 * monotonic clock, so the link faults the simulator injects (drop,
 * latency, reset_peer, timeout, ...) can be put in front of the two real
 * processes, as Toxiproxy would.
 */
#ifndef MK_PROXY_H
#define MK_PROXY_H

/* argv[0] is "proxy"; returns a process exit code (mk_cli.h). */
int mk_cmd_proxy(int argc, char **argv);

#endif
