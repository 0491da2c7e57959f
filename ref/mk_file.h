/*
 * mk_file.h - the storage seam (after SQLite's os_unix.c aSyscall[] table).
 *
 * Every byte mirrorkit persists - source volume, destination mirror image,
 * destination log store - goes through an mk_file, an ops table plus state.
 * Backends: a memory file (deterministic, for the simulator and tests) and a
 * POSIX file (pread/pwrite/fdatasync; sparse files are fine).  Faults come
 * in through libfiu points in the entry points below, named
 * "<file name>/<op>", e.g. "ref/dest/log/write" (ref/mk_fiu.h,
 * fault/POINTS.md): a call fails, writes part of its bytes or tears.  They
 * fire at the two backends only, never at a wrapper, so one call is one
 * hit; lost unsynced writes come from the memory backend's crash clock.
 *
 * Ownership: mk_file_close frees the file and everything it owns; a file is
 * used by one engine at a time.
 */
#ifndef MK_FILE_H
#define MK_FILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mk_file mk_file;

typedef struct mk_file_ops {
    /* Reads up to n bytes at off; returns bytes read (short only at end of
     * file) or a negative mk_err. */
    long (*pread)(mk_file *f, void *buf, size_t n, uint64_t off);
    /* Writes all n bytes at off, extending the file; 0 or mk_err. */
    int (*pwrite)(mk_file *f, const void *buf, size_t n, uint64_t off);
    /* Makes every completed write durable. */
    int (*sync)(mk_file *f);
    int (*truncate)(mk_file *f, uint64_t size);
    int (*size)(mk_file *f, uint64_t *size);
    void (*close)(mk_file *f);
} mk_file_ops;

struct mk_file {
    const mk_file_ops *ops;
    char name[48]; /* fault-point prefix, e.g. "ref/dest/log" */
};

/* A memory file; starts empty.  It is sparse: its memory grows with the
 * bytes written, never with its size or the highest offset written, so the
 * simulator can hold a 1 TiB volume of which a few MiB were written. */
int mk_file_mem(const char *name, mk_file **out);
/*
 * Crash simulation for the memory backend.  Files that share a crash clock
 * share one notion of "now": each mutating call (pwrite, truncate, sync)
 * ticks it, and the call with number `limit` (1-based, 0 = never) and every
 * call after it fail with MK_EIO as if the process had died there.  If
 * `tear` is set, the dying pwrite first persists its first `tear` bytes (a
 * torn write).  mk_file_mem_crash then throws away whatever was written
 * since the file's last successful sync, as a power loss would.
 */
typedef struct mk_crash_clock {
    uint64_t ticks, limit;
    uint32_t tear;
    int dead;
} mk_crash_clock;
int mk_file_mem_crashable(const char *name, mk_crash_clock *clk, mk_file **out);
void mk_file_mem_crash(mk_file *f);
/* Bytes written through a memory file so far (for accounting in tests). */
uint64_t mk_file_mem_written(mk_file *f);

/* A POSIX file opened (created if absent when create is set) at path.
 * Unlike a crashable memory file it cannot lose unsynced writes at a
 * simulated crash: they sit in the kernel's page cache, which outlives the
 * process (fault/POINTS.md, "Lost unsynced writes at a crash"). */
int mk_file_open(const char *path, int create, const char *name, mk_file **out);

long mk_file_pread(mk_file *f, void *buf, size_t n, uint64_t off);
int mk_file_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off);
int mk_file_sync(mk_file *f);
int mk_file_truncate(mk_file *f, uint64_t size);
int mk_file_size(mk_file *f, uint64_t *size);
void mk_file_close(mk_file *f);

/* Reads exactly n bytes; bytes past the end of the file read as zero (a
 * volume image is sparse, never short). */
int mk_file_read_block(mk_file *f, void *buf, size_t n, uint64_t off);
/* Reads exactly n bytes or fails with MK_ETRUNC (a log must not be short). */
int mk_file_read_exact(mk_file *f, void *buf, size_t n, uint64_t off);

/*
 * Copies n bytes of src at src_off to dst at dst_off (src must hold them all,
 * else MK_ETRUNC).  Between two POSIX files the kernel copies them
 * (copy_file_range), so the bytes never pass through this process: that is
 * how the destination moves a CP's blocks from its log into its mirror.
 * Otherwise - a memory file, a wrapper, a kernel that cannot - and in every
 * fault build, the bytes go through buf (bufsize bytes, at least 1) with
 * mk_file_pread and mk_file_pwrite, a read and a write per bufsize bytes, so
 * the fault points of both files fire as for any other read and write.
 */
int mk_file_copy(mk_file *dst, uint64_t dst_off, mk_file *src, uint64_t src_off, uint64_t n,
                 void *buf, size_t bufsize);

#endif
