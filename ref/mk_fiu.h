/*
 * mk_fiu.h - libfiu fault points in the reference, and how a point that
 * fires chooses what goes wrong.
 *
 * The points sit at the seams only: the storage seam (mk_file.c, named
 * "<file name>/<op>", e.g. "ref/dest/log/write"), the transport seam
 * (mk_net.c: "ref/link/send", "ref/link/recv") and a few allocation sites
 * of the engines ("ref/alloc/..."). fault/POINTS.md lists every one.
 *
 * A normal build compiles every point away: fiu-local.h turns fiu_do_on()
 * into nothing unless FIU_ENABLE is defined, so the points cost nothing and
 * libfiu is not linked.  A fault build (make fault-build) defines
 * FIU_ENABLE and links -lfiu; a point then fails only once it is enabled,
 * with fiu_enable() (tests), `fiu-run -c 'enable name=POINT'` or the MK_FIU
 * environment variable (fault/mk_faults.c).
 *
 * The failinfo a point is enabled with selects the failure, as the decimal
 * number BYTES * 10 + KIND, so that fiu-run's `failinfo=N` can say it:
 * the last digit is the kind below, the digits before it a byte count for
 * the kinds that write part of a request (0: half of it).  failinfo 0, the
 * default, is the point's usual failure (EIO for storage, a connection
 * reset for the link, MK_ENOMEM for allocation).  For example failinfo=2 is
 * ENOSPC, failinfo=1004 a torn write that persists 100 bytes.
 */
#ifndef MK_FIU_H
#define MK_FIU_H

#include <fiu-local.h>
#include <stdint.h>

/* X(enum suffix, code, name in MK_FIU, what it does) */
#define MK_FAULT_KINDS(X)                                                      \
    X(DEFAULT, 0, "default", "the point's usual failure: EIO for storage, "   \
                             "a reset for the link, MK_ENOMEM for allocation") \
    X(EIO, 1, "eio", "the call fails with MK_EIO and changes nothing; on "     \
                     "the link, a reset")                                      \
    X(ENOSPC, 2, "enospc", "the call fails with MK_ENOSPC and changes nothing") \
    X(SHORT, 3, "short", "a write stores its first BYTES (default half) "      \
                         "unsynced, then fails with MK_EIO; a link send or "   \
                         "receive passes its first BYTES, then resets")        \
    X(TORN, 4, "torn", "a write persists its first BYTES (default half) and " \
                       "fails with MK_EIO; on a crashable memory file the "    \
                       "crash clock tears it, so the process is dead from "    \
                       "then on and the prefix survives mk_file_mem_crash")    \
    X(ENOMEM, 5, "enomem", "the call fails with MK_ENOMEM and changes nothing")

enum mk_fault_kind {
#define MK_FK_ENUM(sym, code, name, what) MK_FK_##sym = code,
    MK_FAULT_KINDS(MK_FK_ENUM)
#undef MK_FK_ENUM
};

/* The failinfo value for a kind and a byte count. */
#define MK_FAULT_INFO(kind, bytes) ((void *)(uintptr_t)((uint64_t)(bytes) * 10u + (kind)))

/* The longest point name: a file name (mk_file.name, 47 characters) plus
 * "/truncate" and the terminating zero. */
#define MK_FAULT_NAME_MAX 64

#ifdef FIU_ENABLE
/* The failure the point that just fired was enabled with.  Must be called
 * right after fiu_fail() returned nonzero, in the same thread. */
static inline enum mk_fault_kind mk_fault_kind_now(uint64_t *bytes)
{
    uint64_t v = (uint64_t)(uintptr_t)fiu_failinfo();
    *bytes = v / 10;
    return v % 10 <= MK_FK_ENOMEM ? (enum mk_fault_kind)(v % 10) : MK_FK_DEFAULT;
}

/* How much of an n-byte request a short or torn failure passes on: the
 * byte count asked for, or half by default, and always less than all of
 * it - a failure that stored the whole request would be no failure. */
static inline uint64_t mk_fault_part(uint64_t bytes, uint64_t n)
{
    uint64_t part = bytes ? bytes : n / 2;
    return part < n ? part : (n ? n - 1 : 0);
}
#endif

#endif
