/*
 * mk_faults.h - the catalogue of mirrorkit's fault points, and how to
 * enable them.
 *
 * The points themselves live at the seams of ref/ (see ref/mk_fiu.h):
 * storage in ref/mk_file.c, transport in ref/mk_net.c, a few allocation
 * sites in the engines.  This table is the one list of them: `mirrorkit
 * faults --list` prints it and fault/POINTS.md is generated from it (make
 * fault/POINTS.md), so a point added to the code is added here too.
 */
#ifndef MK_FAULTS_H
#define MK_FAULTS_H

#include <stddef.h>
#include <stdio.h>

/*
 * X(name, seam, kinds, what it simulates).  kinds lists the failure kinds
 * (ref/mk_fiu.h) that mean something at the point; "default" is always
 * accepted.  Storage points exist for every mk_file and op, but only these
 * are reached by the reference; a point nobody reaches is not listed.
 */
#define MK_FAULT_POINTS(X)                                                     \
    X("ref/dest/log/read", "storage", "eio enomem",                            \
      "reading the destination's log store: the recovery scan at open "        \
      "(7.6), a REF's slot (7.2; an engine error, not a NAK) and a CP's "      \
      "blocks read back before apply (7.4 step 5)")                            \
    X("ref/dest/log/write", "storage", "eio enospc short torn enomem",         \
      "appending to the log store: transfers (4.4), R_CP_DATA (7.2), the "     \
      "redo record R_CP_COMMIT (7.4 step 3), R_CP_APPLIED, header slots "      \
      "(7.3); a short or torn append leaves a partial record that recovery "   \
      "cuts as a torn tail (7.6)")                                             \
    X("ref/dest/log/sync", "storage", "eio enospc enomem",                     \
      "making the log durable: before LOG_ACK (4.4), the commit point (7.4 "   \
      "steps 2 and 4), after a tail cut or reclaim (7.6 step 6, 7.7)")         \
    X("ref/dest/log/truncate", "storage", "eio enomem",                        \
      "cutting the log: a fresh log's first header (7.3), a torn tail at "     \
      "open (7.6 step 6), reclaim after a CP (7.7), promotion (8.4)")          \
    X("ref/dest/mirror/read", "storage", "eio enomem",                         \
      "reading the mirror image to rebuild a missing tree at open (7.6 step "  \
      "8); in one process (demo --transport sim) the verifier reads the "      \
      "mirror through the same file, so its checks fail too")                  \
    X("ref/dest/mirror/write", "storage", "eio enospc short torn enomem",      \
      "writing a committed CP's blocks to the mirror (7.4 step 5, redo 7.6 "   \
      "step 9, promotion 8.4): the engine stops and a restart redoes the CP")  \
    X("ref/dest/mirror/sync", "storage", "eio enospc enomem",                  \
      "making the mirror durable after apply (7.4 step 6) or after sizing "    \
      "it (2.3)")                                                              \
    X("ref/dest/mirror/truncate", "storage", "eio enospc enomem",              \
      "sizing the mirror image to N·B bytes at the first HELLO or at open "   \
      "(2.3, 7.6 step 8)")                                                     \
    X("ref/dest/tree/read", "storage", "eio enomem",                           \
      "reading the mirror's Merkle tree: committing leaves (7.4 step 6) and "  \
      "answering TREE_QUERY (9.7)")                                            \
    X("ref/dest/tree/write", "storage", "eio enospc short torn enomem",        \
      "writing the Merkle tree after apply (7.4 step 6) or in a rebuild "      \
      "(7.6 step 8); a restart redoes the CP, which repairs the tree")         \
    X("ref/dest/tree/sync", "storage", "eio enospc enomem",                    \
      "making the tree durable before R_CP_APPLIED (7.4 step 6)")              \
    X("ref/dest/tree/truncate", "storage", "eio enomem",                       \
      "emptying a stale tree file when a fresh log adopts a volume (2.3) "     \
      "and at promotion (8.4)")                                                \
    X("ref/source/store/read", "storage", "eio enomem",                        \
      "reading the source volume: copy-on-write of a dirty block (6.2) and "   \
      "a CP's DATA blocks (7.2); the source stops with the error (8.5)")       \
    X("ref/source/store/write", "storage", "eio enospc short torn enomem",     \
      "a client write reaching the source volume (1.2): the write fails "      \
      "and the source stops with the error (8.5)")                             \
    X("ref/source/store/sync", "storage", "eio enospc enomem",                 \
      "making the source volume durable when a CP starts (7.1)")               \
    X("ref/source/tree/read", "storage", "eio enomem",                         \
      "reading the source's Merkle tree of its CP image (9.7)")                \
    X("ref/source/tree/write", "storage", "eio enospc short torn enomem",      \
      "writing the source's Merkle tree when a CP starts (9.7)")               \
    X("ref/link/send", "transport", "eio short enomem",                        \
      "sending on a socket or pipe (mk_io_pump2): the connection is reset, "   \
      "after part of the bytes for short; the source reconnects and resumes "  \
      "(8.2), the destination ends the session")                               \
    X("ref/link/recv", "transport", "eio short enomem",                        \
      "receiving from a socket or pipe (mk_io_pump2): the connection is "      \
      "reset, after passing part of the bytes read for short")                 \
    X("ref/alloc/dest/staging", "allocation", "enomem",                        \
      "no memory to stage a CP record (CP_DATA or CP_REF entry, 7.2): an "     \
      "engine error (8.5), the CP is not committed")                           \
    X("ref/alloc/dest/redo", "allocation", "enomem",                           \
      "no memory for the redo record once CP_COMMIT is accepted (7.4 step "    \
      "3): the CP is not committed and the mirror stays at CP k-1")            \
    X("ref/alloc/source/transfer", "allocation", "enomem",                     \
      "no memory for the copy of a transfer the source keeps until it is "     \
      "acknowledged (6.1): the write fails and the source stops (8.5)")        \
    X("ref/alloc/source/cp", "allocation", "enomem",                           \
      "no memory for a CP's records when it starts (7.1): the source stops "   \
      "(8.5) before anything of the CP is sent")

typedef struct mk_fault_point {
    const char *name, *seam, *kinds, *what;
} mk_fault_point;

extern const mk_fault_point mk_fault_points[];
extern const size_t mk_fault_npoints;

/* 1 in a fault build (FIU_ENABLE), 0 when the points are compiled away. */
int mk_faults_compiled_in(void);

/*
 * Enables the points of one MK_FIU entry, "POINT[:FIELD]...", where a
 * FIELD is a failure kind (eio, enospc, short, torn, enomem), a byte count
 * for short and torn, "once" (fail the first hit only) or "p=P" (fail each
 * hit with probability P).  POINT is a catalogued name or a prefix ending
 * in '*' that covers at least one.  0, or MK_EUSAGE with a message in err.
 * In a build without fault points the entry is checked and nothing is
 * enabled: the points are not there to enable.
 */
int mk_faults_enable(const char *entry, char *err, size_t errlen);

/* Enables every entry of the MK_FIU environment variable (entries are
 * separated by spaces or ';').  Prints what is wrong and returns MK_EUSAGE
 * for a bad entry; in a build without points it warns that MK_FIU is
 * ignored.  0 if MK_FIU is unset. */
int mk_faults_init(void);

/* fault/POINTS.md, as generated. */
void mk_faults_markdown(FILE *o);

/* `mirrorkit faults`. */
int mk_cmd_faults(int argc, char **argv);

#endif
