#include "mk_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mk_err.h"
#include "mk_fiu.h"
#include "mk_map.h"

/*
 * Fault points (mk_fiu.h).  Every storage call of every engine passes the
 * public entry points below, so the points sit here and nowhere else:
 * "<file name>/<op>" for op read, write, sync and truncate.  They fire only
 * for the two backends.  A wrapper (the verifier's write witness and bounds
 * check, the tests' watching files) passes its calls on to the file it
 * wraps, which carries the same name; checking the points at every layer
 * would count one call several times and would fail the observer instead
 * of the disk under it.  In a normal build FILE_POINT is empty, so not even
 * the name is built.
 */
#ifdef FIU_ENABLE
static int is_backend(const mk_file *f);
static const char *point_name(char *buf, const mk_file *f, const char *op);
static int fault_write(mk_file *f, const void *buf, size_t n, uint64_t off);
static int fault_error(int usual);
#define FILE_POINT(f, op, action)                                              \
    do {                                                                       \
        char pn_[MK_FAULT_NAME_MAX];                                           \
        if (is_backend(f))                                                     \
            fiu_do_on(point_name(pn_, f, op), action);                         \
    } while (0)
#else
#define FILE_POINT(f, op, action) fiu_do_on(op, action) /* nothing at all */
#endif

/* The seam's public entry points: one place where every storage call of
 * every engine passes, so fault injection and accounting need no changes
 * in the engines. */
long mk_file_pread(mk_file *f, void *buf, size_t n, uint64_t off)
{
    FILE_POINT(f, "read", return fault_error(MK_EIO));
    return f->ops->pread(f, buf, n, off);
}
int mk_file_pwrite(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    FILE_POINT(f, "write", return fault_write(f, buf, n, off));
    return f->ops->pwrite(f, buf, n, off);
}
int mk_file_sync(mk_file *f)
{
    FILE_POINT(f, "sync", return fault_error(MK_EIO));
    return f->ops->sync(f);
}
int mk_file_truncate(mk_file *f, uint64_t size)
{
    FILE_POINT(f, "truncate", return fault_error(MK_EIO));
    return f->ops->truncate(f, size);
}
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

static int copy_through(mk_file *dst, uint64_t dst_off, mk_file *src, uint64_t src_off,
                        uint64_t n, void *buf, size_t bufsize)
{
    while (n) {
        size_t k = n < bufsize ? (size_t)n : bufsize;
        int rc = mk_file_read_exact(src, buf, k, src_off);
        if (rc == 0)
            rc = mk_file_pwrite(dst, buf, k, dst_off);
        if (rc)
            return rc;
        src_off += k;
        dst_off += k;
        n -= k;
    }
    return 0;
}

#ifndef FIU_ENABLE
static int kernel_copy(mk_file *dst, uint64_t dst_off, mk_file *src, uint64_t src_off,
                       uint64_t *n);
#endif

int mk_file_copy(mk_file *dst, uint64_t dst_off, mk_file *src, uint64_t src_off, uint64_t n,
                 void *buf, size_t bufsize)
{
#ifndef FIU_ENABLE
    uint64_t left = n;
    int rc = kernel_copy(dst, dst_off, src, src_off, &left);
    if (rc <= 0)
        return rc;
    dst_off += n - left; /* the kernel may stop part way */
    src_off += n - left;
    n = left;
#endif
    return copy_through(dst, dst_off, src, src_off, n, buf, bufsize);
}

static void set_name(mk_file *f, const char *name)
{
    snprintf(f->name, sizeof f->name, "%s", name ? name : "file");
}

/* ---- memory backend --------------------------------------------------- */

/*
 * A memory file is sparse.  Its bytes live in 4 KiB pages, and only pages
 * that were written exist, so memory grows with the bytes written and never
 * with the file's size: the simulator's 1 TiB volume with a few MiB written
 * costs a few MiB.  A page is as large as a volume block, so a lone block
 * write allocates no more than itself.  Pages are grouped sixteen to a
 * chunk (a 64 KiB span of the file), and a hash map from chunk number to
 * chunk finds them, so a large sequential transfer pays one lookup per
 * 64 KiB and stays at memcpy speed.
 *
 * A crashable file also keeps its durable image (what a power loss leaves)
 * as a second chunk map.  Pages are reference-counted and shared between
 * the two images copy-on-write: sync points the durable image at the live
 * pages instead of copying them, and the first later write to such a page
 * copies that one page.  The chunks whose live pages may differ from the
 * durable ones since the last sync form a dirty set, so sync costs the
 * pages dirtied since the previous sync and never the size of the file.
 */

#define PAGE_SHIFT 12
#define PAGE_SIZE ((size_t)1 << PAGE_SHIFT)
#define CHUNK_BITS 4
#define CHUNK_PAGES (1u << CHUNK_BITS)
#define CHUNK_SHIFT (PAGE_SHIFT + CHUNK_BITS)
#define CHUNK_SIZE ((uint64_t)1 << CHUNK_SHIFT)

typedef struct page {
    size_t refs; /* images (live, durable) holding the page; 1 = private */
    uint8_t data[PAGE_SIZE];
} page;

typedef struct chunk {
    page *pg[CHUNK_PAGES]; /* NULL is a hole, which reads as zeros */
} chunk;

/* A small open-addressing hash map from u64 keys to non-NULL pointers.
 * mk_map cannot serve here: truncation and sync must delete entries, so
 * that the tables too stay proportional to the pages that exist. */
typedef struct pslot {
    uint64_t key;
    void *val; /* NULL marks an empty slot */
} pslot;

typedef struct pmap {
    pslot *slot;
    size_t cap, count; /* cap is 0 or a power of two */
} pmap;

/* The dirty set stores only keys; every member maps to this marker. */
static char dirty_mark;

static size_t pmap_home(uint64_t key, size_t cap)
{
    return (size_t)mk_hash64(key) & (cap - 1);
}

/* The slot holding key, or SIZE_MAX when it is absent. */
static size_t pmap_find(const pmap *t, uint64_t key)
{
    if (!t->count)
        return SIZE_MAX;
    size_t mask = t->cap - 1;
    for (size_t i = pmap_home(key, t->cap);; i = (i + 1) & mask) {
        if (!t->slot[i].val)
            return SIZE_MAX;
        if (t->slot[i].key == key)
            return i;
    }
}

static void *pmap_get(const pmap *t, uint64_t key)
{
    size_t i = pmap_find(t, key);
    return i == SIZE_MAX ? NULL : t->slot[i].val;
}

/* Inserts a key known to be absent into a table known to have room. */
static void pmap_insert_new(pmap *t, uint64_t key, void *val)
{
    size_t mask = t->cap - 1, i = pmap_home(key, t->cap);
    while (t->slot[i].val)
        i = (i + 1) & mask;
    t->slot[i].key = key;
    t->slot[i].val = val;
    t->count++;
}

/* The table size that holds n keys under the 3/4 load limit, which keeps
 * probe runs short and guarantees an empty slot to end every probe. */
static size_t pmap_cap_for(size_t n)
{
    size_t cap = 16;
    while (n * 4 > cap * 3)
        cap *= 2;
    return cap;
}

static int pmap_rehash(pmap *t, size_t ncap)
{
    pmap n = {calloc(ncap, sizeof(pslot)), ncap, 0};
    if (!n.slot)
        return MK_ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i].val)
            pmap_insert_new(&n, t->slot[i].key, t->slot[i].val);
    free(t->slot);
    *t = n;
    return 0;
}

/* Makes room for `extra` more keys, so that inserting up to that many new
 * keys afterwards cannot fail: callers reserve before they change anything
 * and so never leave a half-done update behind on MK_ENOMEM. */
static int pmap_reserve(pmap *t, size_t extra)
{
    size_t need = t->count + extra;
    if (need * 4 <= t->cap * 3)
        return 0;
    return pmap_rehash(t, pmap_cap_for(need));
}

/* Inserts or overwrites; 0 or MK_ENOMEM. */
static int pmap_put(pmap *t, uint64_t key, void *val)
{
    size_t i = pmap_find(t, key);
    if (i != SIZE_MAX) {
        t->slot[i].val = val;
        return 0;
    }
    int rc = pmap_reserve(t, 1);
    if (rc == 0)
        pmap_insert_new(t, key, val);
    return rc;
}

/* Removes key and returns its value (NULL if absent).  Deletion shifts the
 * rest of the probe run back instead of leaving a tombstone, so a table
 * that loses entries does not fill up with dead slots. */
static void *pmap_del(pmap *t, uint64_t key)
{
    size_t i = pmap_find(t, key);
    if (i == SIZE_MAX)
        return NULL;
    void *val = t->slot[i].val;
    size_t mask = t->cap - 1;
    for (size_t j = (i + 1) & mask; t->slot[j].val; j = (j + 1) & mask) {
        size_t home = pmap_home(t->slot[j].key, t->cap);
        /* The entry at j may move into the hole at i unless its home lies
         * cyclically in (i, j], where a probe for it would start after i. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slot[i] = t->slot[j];
            i = j;
        }
    }
    t->slot[i].val = NULL;
    t->count--;
    return val;
}

static void pmap_free(pmap *t)
{
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* Empties the map, and releases a table that had grown large so that a
 * burst of dirty chunks does not pin memory until the file is closed. */
static void pmap_clear(pmap *t)
{
    if (t->cap > 1024)
        pmap_free(t);
    else if (t->count) {
        memset(t->slot, 0, t->cap * sizeof *t->slot);
        t->count = 0;
    }
}

static void page_unref(page *p)
{
    if (p && --p->refs == 0)
        free(p);
}

static void chunk_free(chunk *c)
{
    for (unsigned i = 0; i < CHUNK_PAGES; i++)
        page_unref(c->pg[i]);
    free(c);
}

static int chunk_empty(const chunk *c)
{
    for (unsigned i = 0; i < CHUNK_PAGES; i++)
        if (c->pg[i])
            return 0;
    return 1;
}

/* Releases an image: its chunks, its references to pages, and its table. */
static void image_free(pmap *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i].val)
            chunk_free(t->slot[i].val);
    pmap_free(t);
}

/* Copies n bytes at off out of image t; holes read as zeros. */
static void image_read(const pmap *t, uint8_t *buf, size_t n, uint64_t off)
{
    while (n) {
        const chunk *c = pmap_get(t, off >> CHUNK_SHIFT);
        do {
            size_t in = (size_t)(off & (PAGE_SIZE - 1));
            size_t k = PAGE_SIZE - in < n ? PAGE_SIZE - in : n;
            const page *p = c ? c->pg[(off >> PAGE_SHIFT) & (CHUNK_PAGES - 1)] : NULL;
            if (p)
                memcpy(buf, p->data + in, k);
            else
                memset(buf, 0, k);
            buf += k;
            off += k;
            n -= k;
        } while (n && (off & (CHUNK_SIZE - 1)));
    }
}

/*
 * Makes page i of chunk cno (*cp, NULL if the chunk is absent) private to
 * image t, ready to be written: a hole becomes a zeroed page, and a page
 * shared with the other image is copied.  When dirty is given (the live
 * image of a crashable file), the chunk joins the dirty set first, since
 * the page is about to differ from the durable one.  Changes no byte that
 * a read could see, so a caller may give up after any failure.
 */
static int own_page(pmap *t, pmap *dirty, uint64_t cno, chunk **cp, unsigned i)
{
    chunk *c = *cp;
    page *old = c ? c->pg[i] : NULL;
    if (old && old->refs == 1)
        return 0;
    if (dirty && pmap_put(dirty, cno, &dirty_mark))
        return MK_ENOMEM;
    page *p = malloc(sizeof *p);
    if (!p)
        return MK_ENOMEM;
    p->refs = 1;
    if (old)
        memcpy(p->data, old->data, PAGE_SIZE);
    else
        memset(p->data, 0, PAGE_SIZE);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c || pmap_put(t, cno, c)) {
            free(c);
            free(p);
            return MK_ENOMEM;
        }
        *cp = c;
    }
    c->pg[i] = p;
    if (old)
        old->refs--; /* the other image still holds it */
    return 0;
}

/* Makes pages first..last of image t private (see own_page). */
static int image_own(pmap *t, pmap *dirty, uint64_t first, uint64_t last)
{
    for (uint64_t pno = first; pno <= last;) {
        uint64_t cno = pno >> CHUNK_BITS;
        chunk *c = pmap_get(t, cno);
        do {
            int rc = own_page(t, dirty, cno, &c, (unsigned)(pno & (CHUNK_PAGES - 1)));
            if (rc)
                return rc;
            pno++;
        } while (pno <= last && (pno & (CHUNK_PAGES - 1)));
    }
    return 0;
}

/*
 * Writes n bytes at off into image t; 0 or MK_ENOMEM.  A write is all or
 * nothing, as the flat buffer's was: one that spans pages first makes every
 * page private, which may fail, and only then copies, which cannot.  A
 * write within one page needs no such pass since it allocates before it
 * copies.  The caller has checked off + n against MEM_FILE_MAX.
 */
static int image_write(pmap *t, pmap *dirty, const uint8_t *buf, size_t n, uint64_t off)
{
    if (n == 0)
        return 0;
    uint64_t first = off >> PAGE_SHIFT, last = (off + n - 1) >> PAGE_SHIFT;
    int rc;
    if (first != last && (rc = image_own(t, dirty, first, last)))
        return rc;
    while (n) {
        uint64_t cno = off >> CHUNK_SHIFT;
        chunk *c = pmap_get(t, cno);
        do {
            unsigned i = (unsigned)(off >> PAGE_SHIFT) & (CHUNK_PAGES - 1);
            size_t in = (size_t)(off & (PAGE_SIZE - 1));
            size_t k = PAGE_SIZE - in < n ? PAGE_SIZE - in : n;
            if ((rc = own_page(t, dirty, cno, &c, i)))
                return rc;
            memcpy(c->pg[i]->data + in, buf, k);
            buf += k;
            off += k;
            n -= k;
        } while (n && (off & (CHUNK_SIZE - 1)));
    }
    return 0;
}

/*
 * Cuts image t, whose pages all lie below old, down to size < old: pages
 * wholly past the cut are released and the tail of the page the cut falls
 * in is zeroed, so a later regrowth reads zeros and no dropped byte can
 * come back.  Every chunk it changes joins dirty when that is given, so
 * the next sync drops the same pages from the durable image.  All that can
 * fail (reservations, the one page copy) happens before the first change.
 */
static int image_cut(pmap *t, pmap *dirty, uint64_t size, uint64_t old)
{
    if (!t->count)
        return 0;
    uint64_t keep = (size + PAGE_SIZE - 1) >> PAGE_SHIFT; /* pages kept */
    uint64_t kchunks = (keep + CHUNK_PAGES - 1) >> CHUNK_BITS;
    uint64_t ochunks = (old + CHUNK_SIZE - 1) >> CHUNK_SHIFT;
    uint64_t span = ochunks - kchunks; /* chunk numbers dropped whole */
    /* Dropping a few chunks visits them by number; dropping more chunk
     * numbers than the table holds (a 1 TiB file cut to nothing) walks
     * the table instead and rebuilds it with the survivors. */
    int walk = span > t->count;
    pmap kept = {NULL, 0, 0};
    int rc;

    if (dirty && (rc = pmap_reserve(dirty, (walk ? t->count : (size_t)span) + 1)))
        return rc;
    if (walk) {
        size_t survivors = 0;
        for (size_t s = 0; s < t->cap; s++)
            if (t->slot[s].val && t->slot[s].key < kchunks)
                survivors++;
        if (survivors) {
            kept.cap = pmap_cap_for(survivors);
            if (!(kept.slot = calloc(kept.cap, sizeof(pslot))))
                return MK_ENOMEM;
        }
    }
    if (size & (PAGE_SIZE - 1)) {
        uint64_t pno = size >> PAGE_SHIFT, cno = pno >> CHUNK_BITS;
        unsigned i = (unsigned)(pno & (CHUNK_PAGES - 1));
        chunk *c = pmap_get(t, cno);
        if (c && c->pg[i]) {
            if ((rc = own_page(t, dirty, cno, &c, i))) {
                free(kept.slot);
                return rc;
            }
            size_t in = (size_t)(size & (PAGE_SIZE - 1));
            memset(c->pg[i]->data + in, 0, PAGE_SIZE - in);
        }
    }
    /* From here on nothing can fail: dirty has room for every chunk. */
    if (keep & (CHUNK_PAGES - 1)) {
        uint64_t cno = keep >> CHUNK_BITS;
        chunk *c = pmap_get(t, cno);
        int dropped = 0;
        for (unsigned i = (unsigned)(keep & (CHUNK_PAGES - 1)); c && i < CHUNK_PAGES; i++) {
            if (c->pg[i]) {
                page_unref(c->pg[i]);
                c->pg[i] = NULL;
                dropped = 1;
            }
        }
        if (dropped && dirty)
            (void)pmap_put(dirty, cno, &dirty_mark);
        if (c && chunk_empty(c))
            free(pmap_del(t, cno));
    }
    if (walk) {
        for (size_t s = 0; s < t->cap; s++) {
            if (!t->slot[s].val)
                continue;
            if (t->slot[s].key < kchunks) {
                pmap_insert_new(&kept, t->slot[s].key, t->slot[s].val);
            } else {
                if (dirty)
                    (void)pmap_put(dirty, t->slot[s].key, &dirty_mark);
                chunk_free(t->slot[s].val);
            }
        }
        free(t->slot);
        *t = kept;
    } else {
        for (uint64_t cno = kchunks; cno < ochunks; cno++) {
            chunk *c = pmap_del(t, cno);
            if (c) {
                if (dirty)
                    (void)pmap_put(dirty, cno, &dirty_mark);
                chunk_free(c);
            }
        }
        /* A table left mostly empty shrinks, so memory follows the pages
         * that remain; if that fails the larger table simply stays. */
        if (t->cap > 64 && t->count * 8 < t->cap)
            (void)pmap_rehash(t, pmap_cap_for(t->count));
    }
    return 0;
}

typedef struct mem_file {
    mk_file base;
    pmap live; /* chunk number -> chunk: the contents now */
    uint64_t size, written;
    mk_crash_clock *clk;
    pmap durable; /* chunk number -> chunk: as of the last sync, if crashable */
    uint64_t dsize;
    pmap dirty; /* chunks whose live pages may differ from the durable ones */
} mem_file;

/* The dirty set to maintain: only a crashable file has a durable image. */
static pmap *mem_dirty(mem_file *m) { return m->clk ? &m->dirty : NULL; }

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
    image_read(&m->live, buf, take, off);
    return (long)take;
}

/* A memory file is a simulation aid; anything past 2^48 bytes is a bug or
 * a hostile offset, refused before any arithmetic on it could overflow. */
#define MEM_FILE_MAX (1ull << 48)

static int mem_write_raw(mem_file *m, const void *buf, size_t n, uint64_t off)
{
    if (off + n > MEM_FILE_MAX)
        return MK_ENOSPC;
    int rc = image_write(&m->live, mem_dirty(m), buf, n, off);
    if (rc)
        return rc;
    if (off + n > m->size)
        m->size = off + n;
    m->written += n;
    return 0;
}

/* Writes straight into the durable image (what a crash keeps).  Best
 * effort, as a torn write is: if memory runs out the tear is lost. */
static void durable_write(mem_file *m, const void *buf, size_t n, uint64_t off)
{
    if (image_write(&m->durable, NULL, buf, n, off) == 0 && off + n > m->dsize)
        m->dsize = off + n;
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

/*
 * Makes the durable image equal to the live one by visiting only the dirty
 * chunks: each durable page slot that differs takes a reference to the
 * live page (or becomes a hole).  The first pass does every allocation, so
 * a failure leaves the durable image's contents as they were.
 */
static int mem_sync(mk_file *f)
{
    mem_file *m = (mem_file *)f;
    int rc = mem_tick(m);
    if (rc || !m->clk)
        return rc;
    pmap *dirty = &m->dirty;
    if ((rc = pmap_reserve(&m->durable, dirty->count)))
        return rc;
    for (size_t s = 0; s < dirty->cap; s++) {
        uint64_t cno = dirty->slot[s].key;
        if (!dirty->slot[s].val || !pmap_get(&m->live, cno) || pmap_get(&m->durable, cno))
            continue;
        chunk *d = calloc(1, sizeof *d);
        if (!d)
            return MK_ENOMEM; /* empty chunks left behind read as holes */
        pmap_insert_new(&m->durable, cno, d);
    }
    for (size_t s = 0; s < dirty->cap; s++) {
        uint64_t cno = dirty->slot[s].key;
        chunk *d = dirty->slot[s].val ? pmap_get(&m->durable, cno) : NULL;
        if (!d)
            continue;
        const chunk *l = pmap_get(&m->live, cno);
        for (unsigned i = 0; i < CHUNK_PAGES; i++) {
            page *lp = l ? l->pg[i] : NULL;
            if (lp == d->pg[i])
                continue;
            if (lp)
                lp->refs++;
            page_unref(d->pg[i]);
            d->pg[i] = lp;
        }
        if (chunk_empty(d))
            free(pmap_del(&m->durable, cno));
    }
    m->dsize = m->size;
    pmap_clear(dirty);
    return 0;
}

static int mem_truncate(mk_file *f, uint64_t size)
{
    mem_file *m = (mem_file *)f;
    int rc = mem_tick(m);
    if (rc)
        return rc;
    if (size > MEM_FILE_MAX)
        return MK_ENOSPC;
    /* Growing needs no memory at all: the new bytes are a hole. */
    if (size < m->size && (rc = image_cut(&m->live, mem_dirty(m), size, m->size)))
        return rc;
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
    mem_file *m = (mem_file *)f;
    image_free(&m->live);
    image_free(&m->durable);
    pmap_free(&m->dirty);
    free(m);
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

/*
 * Replaces the live image with the durable one.  The live chunks become
 * copies of the durable chunks that share their pages, so a crash costs
 * the number of durable chunks, not a copy of the data.  As with the flat
 * buffer this replaces, restoring counts as writing the durable bytes, and
 * running out of memory leaves the file empty.
 */
void mk_file_mem_crash(mk_file *f)
{
    mem_file *m = (mem_file *)f;
    if (!m->clk)
        return;
    image_free(&m->live);
    pmap_clear(&m->dirty);
    m->size = 0;
    if (pmap_reserve(&m->live, m->durable.count))
        return;
    for (size_t s = 0; s < m->durable.cap; s++) {
        const chunk *d = m->durable.slot[s].val;
        if (!d)
            continue;
        chunk *c = malloc(sizeof *c);
        if (!c) {
            image_free(&m->live);
            return;
        }
        *c = *d;
        for (unsigned i = 0; i < CHUNK_PAGES; i++)
            if (c->pg[i])
                c->pg[i]->refs++;
        pmap_insert_new(&m->live, m->durable.slot[s].key, c);
    }
    m->size = m->dsize;
    m->written += m->dsize;
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

#ifndef FIU_ENABLE
/* copy_file_range between two POSIX files: 0 or an mk_err.  1 (not an
 * error), with *n the bytes still to copy, when either file is not a POSIX
 * one or the kernel cannot copy between them (another file system, an old
 * kernel): the caller copies the rest through a buffer. */
static int kernel_copy(mk_file *dst, uint64_t dst_off, mk_file *src, uint64_t src_off,
                       uint64_t *n)
{
    if (dst->ops != &fd_ops || src->ops != &fd_ops)
        return 1;
    int in = ((fd_file *)src)->fd, out = ((fd_file *)dst)->fd;
    while (*n) {
        loff_t i = (loff_t)src_off, o = (loff_t)dst_off;
        size_t want = *n < (1u << 30) ? (size_t)*n : (1u << 30);
        ssize_t r = copy_file_range(in, &i, out, &o, want, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP
                       ? 1
                       : mk_from_errno(errno);
        if (r == 0)
            return MK_ETRUNC; /* the source ends before n bytes */
        src_off += (uint64_t)r;
        dst_off += (uint64_t)r;
        *n -= (uint64_t)r;
    }
    return 0;
}
#endif

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

/* ---- fault points (fault builds only) --------------------------------- */

#ifdef FIU_ENABLE
static int is_backend(const mk_file *f) { return f->ops == &mem_ops || f->ops == &fd_ops; }

/* "<file name>/<op>" into buf, which holds MK_FAULT_NAME_MAX bytes; the
 * name field is at most 47 characters and op at most 8, so it fits. */
static const char *point_name(char *buf, const mk_file *f, const char *op)
{
    size_t a = strnlen(f->name, sizeof f->name), b = strlen(op);
    memcpy(buf, f->name, a);
    buf[a] = '/';
    memcpy(buf + a + 1, op, b + 1);
    return buf;
}

/* A failing call that changes nothing: read, sync and truncate know no
 * partial failure, so short and torn fail them as the usual error does. */
static int fault_error(int usual)
{
    uint64_t bytes;
    switch (mk_fault_kind_now(&bytes)) {
    case MK_FK_ENOSPC: return MK_ENOSPC;
    case MK_FK_ENOMEM: return MK_ENOMEM;
    case MK_FK_EIO: return MK_EIO;
    default: return usual;
    }
}

/*
 * A failing write.  Short stores a prefix as any completed write is stored
 * (visible, not yet durable) and fails.  Torn is the write a crash cuts: on
 * a crashable memory file the crash clock runs out on this very call with
 * the prefix as its tear, so the prefix is durable and every later call of
 * the simulated process fails; on a POSIX file the prefix is written, which
 * a process crash does not lose, and the call fails.  Neither loses the
 * unsynced writes a power cut would lose on a POSIX file - the page cache
 * is the kernel's (see the LazyFS note in fault/POINTS.md).
 */
static int fault_write(mk_file *f, const void *buf, size_t n, uint64_t off)
{
    uint64_t bytes;
    enum mk_fault_kind k = mk_fault_kind_now(&bytes);
    size_t part = (size_t)mk_fault_part(bytes, n);
    int rc;
    if (k == MK_FK_ENOSPC || k == MK_FK_ENOMEM)
        return k == MK_FK_ENOSPC ? MK_ENOSPC : MK_ENOMEM;
    if (k == MK_FK_TORN && f->ops == &mem_ops && ((mem_file *)f)->clk) {
        mk_crash_clock *clk = ((mem_file *)f)->clk;
        if (!clk->dead) {
            clk->limit = clk->ticks + 1;
            clk->tear = (uint32_t)(part < UINT32_MAX ? part : UINT32_MAX);
        }
        return f->ops->pwrite(f, buf, n, off);
    }
    if ((k == MK_FK_TORN || k == MK_FK_SHORT) && part &&
        (rc = f->ops->pwrite(f, buf, part, off)))
        return rc;
    return MK_EIO;
}
#endif
