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
    uint64_t size, cap;
} mem_file;

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

static int mem_grow(mem_file *m, uint64_t need)
{
    if (need <= m->cap)
        return 0;
    uint64_t cap = m->cap ? m->cap : 65536;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(m->data, cap);
    if (!p)
        return MK_ENOMEM;
    memset(p + m->cap, 0, cap - m->cap);
    m->data = p;
    m->cap = cap;
    return 0;
}

static int mem_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    mem_file *m = (mem_file *)f;
    if (off + n < off)
        return MK_ERANGE;
    int rc = mem_grow(m, off + n);
    if (rc)
        return rc;
    memcpy(m->data + off, buf, n);
    if (off + n > m->size)
        m->size = off + n;
    return 0;
}

static int mem_sync(mk_file *f)
{
    (void)f;
    return 0;
}

static int mem_truncate(mk_file *f, uint64_t size)
{
    mem_file *m = (mem_file *)f;
    int rc = mem_grow(m, size);
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
