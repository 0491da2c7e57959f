#include "mk_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mk_err.h"

/* The seam's public entry points: one place where every storage call of
 * every engine passes, so fault injection and accounting need no changes
 * in the engines. */
long mk_file_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    return f->ops->pread(f, buf, n, off);
}
int mk_file_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    return f->ops->pwrite(f, buf, n, off);
}
int mk_file_sync(mk_file *f) { return f->ops->sync(f); }
int mk_file_truncate(mk_file *f, uint64_t size) { return f->ops->truncate(f, size); }
int mk_file_size(mk_file *f, uint64_t *size) { return f->ops->size(f, size); }
void mk_file_close(mk_file *f)
{
    if (f)
        f->ops->close(f);
}

int mk_file_read_block(mk_file *f, void *buf, size_t n, uint64_t off)
{
    long got = mk_file_pread(f, buf, n, off);
    if (got < 0)
        return (int)got;
    if ((size_t)got < n)
        memset((uint8_t *)buf + got, 0, n - (size_t)got);
    return 0;
}

int mk_file_read_exact(mk_file *f, void *buf, size_t n, uint64_t off)
{
    long got = mk_file_pread(f, buf, n, off);
    if (got < 0)
        return (int)got;
    return (size_t)got == n ? 0 : MK_ETRUNC;
}

static void set_name(mk_file *f, const char *name)
{
    snprintf(f->name, sizeof f->name, "%s", name ? name : "file");
}

/* ---- memory backend --------------------------------------------------- */

typedef struct mem_file {
    mk_file base;
    uint8_t *data;
    uint64_t size, cap, written;
    mk_crash_clock *clk;
    uint8_t *durable; /* contents as of the last sync, when crashable */
    uint64_t dsize;
} mem_file;

/* Ticks the crash clock for one mutating call: 0 to go ahead, MK_EIO when
 * the simulated process is (now) dead. */
static int mem_tick(mem_file *m)
{
    if (!m->clk)
        return 0;
    if (m->clk->dead)
        return MK_EIO;
    /* Every call counts, limit or not, so a run with limit 0 measures how
     * many crash points a scenario has. */
    m->clk->ticks++;
    if (m->clk->limit && m->clk->ticks >= m->clk->limit) {
        m->clk->dead = 1;
        return MK_EIO;
    }
    return 0;
}

static long mem_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    mem_file *m = (mem_file *)f;
    if (off >= m->size)
        return 0;
    uint64_t avail = m->size - off;
    size_t take = n < avail ? n : (size_t)avail;
    memcpy(buf, m->data + off, take);
    return (long)take;
}

/* A memory file is a simulation aid; anything past 2^48 bytes is a bug or
 * a hostile offset, refused before the doubling below could overflow. */
#define MEM_FILE_MAX (1ull << 48)

static int grow_buf(uint8_t **p, uint64_t *cap, uint64_t need)
{
    if (need <= *cap)
        return 0;
    if (need > MEM_FILE_MAX)
        return MK_ENOSPC;
    uint64_t ncap = *cap ? *cap : 65536;
    while (ncap < need)
        ncap *= 2;
    uint8_t *q = realloc(*p, ncap);
    if (!q)
        return MK_ENOMEM;
    memset(q + *cap, 0, ncap - *cap);
    *p = q;
    *cap = ncap;
    return 0;
}

static int mem_write_raw(mem_file *m, const void *buf, size_t n, uint64_t off)
{
    int rc = grow_buf(&m->data, &m->cap, off + n);
    if (rc)
        return rc;
    memcpy(m->data + off, buf, n);
    if (off + n > m->size)
        m->size = off + n;
    m->written += n;
    return 0;
}

/* Writes straight into the durable image (what a crash keeps). */
static void durable_write(mem_file *m, const void *buf, size_t n, uint64_t off)
{
    if (off + n > m->dsize) {
        uint8_t *d = realloc(m->durable, off + n);
        if (!d)
            return;
        memset(d + m->dsize, 0, off + n - m->dsize);
        m->durable = d;
        m->dsize = off + n;
    }
    memcpy(m->durable + off, buf, n);
}

static int mem_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    mem_file *m = (mem_file *)f;
    if (off + n < off)
        return MK_ERANGE;
    int rc = mem_tick(m);
    if (rc) {
        /* A torn write: part of the dying write reached the medium, and
         * survives the crash even if the file was never synced. */
        if (m->clk->tear && m->clk->ticks == m->clk->limit) {
            size_t part = n < m->clk->tear ? n : m->clk->tear;
            if (mem_write_raw(m, buf, part, off) == 0)
                durable_write(m, buf, part, off);
        }
        return rc;
    }
    return mem_write_raw(m, buf, n, off);
}

static int mem_sync(mk_file *f)
{
    mem_file *m = (mem_file *)f;
    int rc = mem_tick(m);
    if (rc || !m->clk)
        return rc;
    uint8_t *d = realloc(m->durable, m->size ? m->size : 1);
    if (!d)
        return MK_ENOMEM;
    memcpy(d, m->data, m->size);
    m->durable = d;
    m->dsize = m->size;
    return 0;
}

static int mem_truncate(mk_file *f, uint64_t size)
{
    mem_file *m = (mem_file *)f;
    int rc = mem_tick(m);
    if (rc == 0)
        rc = grow_buf(&m->data, &m->cap, size);
    if (rc)
        return rc;
    if (size < m->size)
        memset(m->data + size, 0, m->size - size);
    m->size = size;
    return 0;
}

static int mem_size(mk_file *f, uint64_t *size)
{
    *size = ((mem_file *)f)->size;
    return 0;
}

static void mem_close(mk_file *f)
{
    free(((mem_file *)f)->data);
    free(((mem_file *)f)->durable);
    free(f);
}

static const mk_file_ops mem_ops = {mem_pread, mem_pwrite, mem_sync,
                                    mem_truncate, mem_size, mem_close};

int mk_file_mem(const char *name, mk_file **out)
{
    mem_file *m = calloc(1, sizeof *m);
    if (!m)
        return MK_ENOMEM;
    m->base.ops = &mem_ops;
    set_name(&m->base, name);
    *out = &m->base;
    return 0;
}

int mk_file_mem_crashable(const char *name, mk_crash_clock *clk, mk_file **out)
{
    int rc = mk_file_mem(name, out);
    if (rc == 0)
        ((mem_file *)*out)->clk = clk;
    return rc;
}

void mk_file_mem_crash(mk_file *f)
{
    mem_file *m = (mem_file *)f;
    if (!m->clk)
        return;
    memset(m->data, 0, m->size);
    m->size = 0;
    if (m->dsize)
        mem_write_raw(m, m->durable, m->dsize, 0);
}

uint64_t mk_file_mem_written(mk_file *f) { return ((mem_file *)f)->written; }

/* ---- POSIX backend ---------------------------------------------------- */

typedef struct fd_file {
    mk_file base;
    int fd;
} fd_file;

static long fd_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    int fd = ((fd_file *)f)->fd;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return mk_from_errno(errno);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (long)done;
}

static int fd_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    int fd = ((fd_file *)f)->fd;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const uint8_t *)buf + done, n - done,
                           (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return mk_from_errno(errno);
        }
        done += (size_t)r;
    }
    return 0;
}

static int fd_sync(mk_file *f)
{
    return fdatasync(((fd_file *)f)->fd) == 0 ? 0 : mk_from_errno(errno);
}

static int fd_truncate(mk_file *f, uint64_t size)
{
    return ftruncate(((fd_file *)f)->fd, (off_t)size) == 0 ? 0 : mk_from_errno(errno);
}

static int fd_size(mk_file *f, uint64_t *size)
{
    struct stat st;
    if (fstat(((fd_file *)f)->fd, &st) != 0)
        return mk_from_errno(errno);
    *size = (uint64_t)st.st_size;
    return 0;
}

static void fd_close(mk_file *f)
{
    close(((fd_file *)f)->fd);
    free(f);
}

static const mk_file_ops fd_ops = {fd_pread, fd_pwrite, fd_sync,
                                   fd_truncate, fd_size, fd_close};

int mk_file_open(const char *path, int create, const char *name, mk_file **out)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd < 0)
        return errno == ENOENT ? MK_EINVAL : mk_from_errno(errno);
    fd_file *ff = calloc(1, sizeof *ff);
    if (!ff) {
        close(fd);
        return MK_ENOMEM;
    }
    ff->base.ops = &fd_ops;
    ff->fd = fd;
    set_name(&ff->base, name);
    *out = &ff->base;
    return 0;
}
