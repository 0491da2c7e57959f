#include "mk_faults.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_fiu.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#endif

const mk_fault_point mk_fault_points[] = {
#define MK_FP_ENTRY(name, seam, kinds, what) {name, seam, kinds, what},
    MK_FAULT_POINTS(MK_FP_ENTRY)
#undef MK_FP_ENTRY
};
const size_t mk_fault_npoints = sizeof mk_fault_points / sizeof mk_fault_points[0];

typedef struct kind_info {
    int code;
    const char *name, *what;
} kind_info;

static const kind_info kinds[] = {
#define MK_FK_ENTRY(sym, code, name, what) {code, name, what},
    MK_FAULT_KINDS(MK_FK_ENTRY)
#undef MK_FK_ENTRY
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

int mk_faults_compiled_in(void)
{
#ifdef FIU_ENABLE
    return 1;
#else
    return 0;
#endif
}

/* 1 if w is one of the space-separated words of list. */
static int has_word(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return 1;
    return 0;
}

static const mk_fault_point *find_point(const char *name)
{
    for (size_t i = 0; i < mk_fault_npoints; i++)
        if (strcmp(mk_fault_points[i].name, name) == 0)
            return &mk_fault_points[i];
    return NULL;
}

/* Catalogued points a name covers: one for an exact name, every point
 * with the prefix for a libfiu wildcard "prefix*". */
static size_t covered(const char *name)
{
    size_t n = strlen(name), count = 0;
    if (n && name[n - 1] == '*') {
        for (size_t i = 0; i < mk_fault_npoints; i++)
            count += strncmp(mk_fault_points[i].name, name, n - 1) == 0;
        return count;
    }
    return find_point(name) != NULL;
}

static int entry_error(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, arg);
    return MK_EUSAGE;
}

int mk_faults_enable(const char *entry, char *err, size_t errlen)
{
    char buf[256], *save = NULL;
    if (strlen(entry) >= sizeof buf)
        return entry_error(err, errlen, "entry longer than %s characters", "255");
    memcpy(buf, entry, strlen(entry) + 1);
    char *name = strtok_r(buf, ":", &save);
    if (!name || buf[0] == ':')
        return entry_error(err, errlen, "no point name in '%s'", entry);
    if (!covered(name))
        return entry_error(err, errlen,
                           "no fault point '%s' (mirrorkit faults --list names them all)", name);
    const kind_info *kind = &kinds[0];
    uint64_t bytes = 0;
    double prob = -1;
    int once = 0;
    for (char *f; (f = strtok_r(NULL, ":", &save)) != NULL;) {
        const kind_info *k = NULL;
        for (size_t i = 0; i < NKINDS; i++)
            if (strcmp(kinds[i].name, f) == 0)
                k = &kinds[i];
        if (k) {
            kind = k;
        } else if (strcmp(f, "once") == 0) {
            once = 1;
        } else if (strncmp(f, "p=", 2) == 0) {
            char *end;
            prob = strtod(f + 2, &end);
            if (end == f + 2 || *end || !(prob > 0 && prob <= 1))
                return entry_error(err, errlen, "probability must be in (0, 1], not '%s'", f + 2);
        } else if (mk_parse_u64(f, &bytes) == 0) {
            /* A byte count larger than any request is harmless but is
             * surely a mistake; 2^32 keeps failinfo far from overflow. */
            if (bytes == 0 || bytes > UINT32_MAX)
                return entry_error(err, errlen, "byte count must be in 1..4294967295, not '%s'", f);
        } else {
            return entry_error(err, errlen,
                               "unknown field '%s' (a kind: default eio enospc short torn "
                               "enomem, a byte count, once, or p=P)", f);
        }
    }
    if (bytes && kind->code != MK_FK_SHORT && kind->code != MK_FK_TORN)
        return entry_error(err, errlen, "a byte count goes with short or torn, in '%s'", entry);
    const mk_fault_point *pt = find_point(name);
    if (pt && kind->code != MK_FK_DEFAULT && !has_word(pt->kinds, kind->name)) {
        char what[160];
        snprintf(what, sizeof what, "%s knows no %s failure; it takes: default %s", pt->name,
                 kind->name, pt->kinds);
        return entry_error(err, errlen, "%s", what);
    }
#ifdef FIU_ENABLE
    /* libfiu must be initialised before a point is enabled; fiu-run's
     * preload library has done it already, and a second call is a no-op. */
    void *info = MK_FAULT_INFO((unsigned)kind->code, bytes);
    unsigned flags = once ? FIU_ONETIME : 0;
    int rc = fiu_init(0);
    /* Enabling a point that is enabled already replaces it, and libfiu
     * 1.1 leaks the entry it replaces; disabling it first frees it. */
    if (rc == 0)
        fiu_disable(name);
    if (rc == 0)
        rc = prob > 0 ? fiu_enable_random(name, 1, info, flags, (float)prob)
                      : fiu_enable(name, 1, info, flags);
    if (rc)
        return entry_error(err, errlen, "libfiu refused to enable '%s'", name);
#else
    (void)once;
#endif
    return 0;
}

int mk_faults_init(void)
{
    const char *env = getenv("MK_FIU");
    if (!env || !*env)
        return 0;
    if (!mk_faults_compiled_in()) {
        fprintf(stderr, "mirrorkit: MK_FIU is set, but this build has no fault points "
                        "(make fault-build builds build/fault/mirrorkit with them); ignored\n");
        return 0;
    }
    char *copy = strdup(env), *save = NULL;
    if (!copy)
        return MK_ENOMEM;
    int rc = 0;
    for (char *e = strtok_r(copy, " \t\n;", &save); e && rc == 0;
         e = strtok_r(NULL, " \t\n;", &save)) {
        char err[256];
        if ((rc = mk_faults_enable(e, err, sizeof err)))
            fprintf(stderr, "mirrorkit: MK_FIU: %s: MK_EUSAGE: %s\n", e, err);
    }
    free(copy);
    return rc;
}

/* ---- the catalogue as text and as fault/POINTS.md ---------------------- */

static void list_text(FILE *o)
{
    fprintf(o, "%-26s %-10s %-29s %s\n", "POINT", "SEAM", "KINDS", "SIMULATES");
    for (size_t i = 0; i < mk_fault_npoints; i++) {
        const mk_fault_point *p = &mk_fault_points[i];
        fprintf(o, "%-26s %-10s %-29s %s\n", p->name, p->seam, p->kinds, p->what);
    }
    fprintf(o, "\nfailure kinds, chosen by the failinfo a point is enabled with "
               "(BYTES * 10 + KIND):\n");
    for (size_t i = 0; i < NKINDS; i++)
        fprintf(o, "  %d %-8s %s\n", kinds[i].code, kinds[i].name, kinds[i].what);
    if (mk_faults_compiled_in())
        fprintf(o, "\nthis build: fault points compiled in (FIU_ENABLE); enable with\n"
                   "  MK_FIU='POINT[:KIND][:BYTES][:once][:p=P] ...' mirrorkit ...\n"
                   "  fiu-run -x -c 'enable name=POINT,failinfo=N' mirrorkit ...\n");
    else
        fprintf(o, "\nthis build: fault points compiled out; 'make fault-build' builds "
                   "build/fault/mirrorkit with them\n");
}

static const char md_head[] =
    "# Fault points\n"
    "\n"
    "<!-- Generated by `mirrorkit faults --list --markdown` (`make fault/POINTS.md`)\n"
    "     from the table in fault/mk_faults.h. Edit the table, not this file. -->\n"
    "\n"
    "mirrorkit's reference (`ref/`) carries [libfiu](https://blitiri.com.ar/p/libfiu/)\n"
    "fault points at its seams: every storage call passes the `mk_file` entry points\n"
    "(`ref/mk_file.c`), every byte on a socket or pipe passes `mk_io_pump2`\n"
    "(`ref/mk_net.c`), and a few allocation sites of the engines that matter carry a\n"
    "point of their own. A point is named `<file name>/<op>` for storage (the name\n"
    "the engine gave the file, e.g. `ref/dest/log`, and one of `read`, `write`,\n"
    "`sync`, `truncate`), `ref/link/send|recv` for the transport and\n"
    "`ref/alloc/<engine>/<what>` for memory.\n"
    "\n"
    "## Builds\n"
    "\n"
    "A normal build compiles every point away: `ref/mk_fiu.h` includes libfiu's\n"
    "`fiu-local.h`, whose macros are empty unless `FIU_ENABLE` is defined, so the\n"
    "points cost nothing and libfiu is not linked. A fault build defines\n"
    "`FIU_ENABLE` and links `-lfiu`:\n"
    "\n"
    "    make fault-build      # = make B=build/fault EXTRA_CFLAGS=-DFIU_ENABLE LDFLAGS_EXTRA=-lfiu all\n"
    "\n"
    "`make check-asan` builds its ASan build with the points too, so the failure\n"
    "paths are checked for leaks and memory errors. `mirrorkit faults --list` ends\n"
    "by saying whether the binary has them. A point does nothing until enabled.\n"
    "\n"
    "## Enabling a point\n"
    "\n"
    "With the `MK_FIU` environment variable, read by every subcommand of a fault\n"
    "build at start (entries separated by spaces or `;`):\n"
    "\n"
    "    MK_FIU='ref/dest/log/sync' build/fault/mirrorkit demo --blocks 256 --cps 2 --writes 20\n"
    "    MK_FIU='ref/dest/log/write:torn:100:once ref/link/recv:p=0.01' build/fault/mirrorkit ...\n"
    "\n"
    "An entry is `POINT[:FIELD]...`; a field is a failure kind (below), a byte count\n"
    "for `short` and `torn`, `once` (fail the first hit only, libfiu's\n"
    "`FIU_ONETIME`) or `p=P` (fail each hit with probability P; set\n"
    "`FIU_PRNG_SEED` for a repeatable run). POINT is a name of the table below or a\n"
    "prefix ending in `*` (libfiu's wildcard), e.g. `ref/dest/*`. A bad entry is\n"
    "refused with `MK_EUSAGE` and exit code 2; a build without points warns that\n"
    "`MK_FIU` is ignored.\n"
    "\n"
    "With libfiu's own tools, which need no support from the program beyond the\n"
    "points (`-x` also loads libfiu's POSIX wrappers, whose points stay off unless\n"
    "enabled too; `-f ''` turns off the remote-control pipes):\n"
    "\n"
    "    fiu-run -x -c 'enable name=ref/dest/log/sync' build/fault/mirrorkit demo --blocks 256 --cps 2 --writes 20\n"
    "    fiu-run -x -c 'enable name=ref/dest/log/write,failinfo=1004,onetime' build/fault/mirrorkit dest ...\n"
    "    fiu-ctrl -c 'enable name=ref/link/recv' PID      # a process started by fiu-run\n"
    "\n"
    "From C (the Check suites): `fiu_init(0)`, then\n"
    "`fiu_enable(\"ref/dest/log/write\", 1, MK_FAULT_INFO(MK_FK_TORN, 100), FIU_ONETIME)`.\n"
    "\n"
    "## Failure kinds\n"
    "\n"
    "The failinfo a point is enabled with chooses the failure, as the decimal number\n"
    "`BYTES * 10 + KIND` so that fiu-run's `failinfo=N` can say it: the last digit\n"
    "is the kind, the digits before it a byte count for `short` and `torn` (0: half\n"
    "the request; always less than all of it). `failinfo=0`, fiu-run's default, is\n"
    "the point's usual failure. The failnum must be nonzero (fiu-run's default is\n"
    "1); mirrorkit does not read it.\n"
    "\n"
    "| KIND | name | what happens |\n"
    "|---|---|---|\n";

static const char md_seams[] =
    "\n"
    "## What a failing point does\n"
    "\n"
    "- **storage**: the `mk_file` call returns the error and, for `short` and\n"
    "  `torn`, first writes a prefix. The points fire only at the two backends\n"
    "  (memory and POSIX files), not at wrappers such as the verifier's write\n"
    "  witness and bounds check, which pass their calls on to a file of the same\n"
    "  name: each call counts once, and the disk fails, not the observer above it.\n"
    "  `size` and `close` carry no point. A destination that meets a storage\n"
    "  failure stops with an engine error (SPEC.md 8.5): it sends ERROR, and\n"
    "  `mirrorkit dest` exits 3 naming the error; `demo` and `source` exit 3 with\n"
    "  `destination reported MK_EIO` (or the error met). A restart recovers by 7.6.\n"
    "  A source's storage failure stops the source with the error (8.5).\n"
    "- **transport**: the connection is reset: the socket is shut down both ways\n"
    "  (the peer sees the end of the stream) and the pump reports `MK_ECLOSED`, so\n"
    "  each side takes its path for a lost connection: the source reconnects and\n"
    "  resumes (8.2), the destination ends the session. `short` first passes part\n"
    "  of the bytes, so the peer sees a frame cut in the middle. `enomem` returns\n"
    "  `MK_ENOMEM` and leaves the connection alone. The in-process link of `demo\n"
    "  --transport sim` has no points; its faults are the simulated link's.\n"
    "- **allocation**: the site fails as if `malloc` had returned NULL: an engine\n"
    "  error `MK_ENOMEM` (8.5), exit code 3.\n"
    "\n"
    "## Lost unsynced writes at a crash (LazyFS `clear-cache`)\n"
    "\n"
    "A power cut loses what was written but not yet synced. For memory files the\n"
    "reference simulates that exactly: files made with `mk_file_mem_crashable`\n"
    "share a crash clock, and `mk_file_mem_crash` throws away everything written\n"
    "since a file's last successful sync (a `torn` write on such a file runs the\n"
    "clock out on that very call, so its prefix is all that survives of it). For\n"
    "POSIX files it does not: unsynced writes sit in the kernel's page cache, which\n"
    "survives the death of the process, so killing `mirrorkit dest` (even with\n"
    "SIGKILL) loses nothing the kernel holds, and the reference builds no page\n"
    "cache of its own to drop. To lose unsynced writes of real files, run the\n"
    "destination's files on a [LazyFS](https://github.com/dsrhaslab/lazyfs) mount\n"
    "and send it `clear-cache` after killing the process, or run the pair on memory\n"
    "files in one process. Note also that after a failed `fsync` Linux may already\n"
    "have dropped the dirty pages; the reference treats every failed sync as an\n"
    "engine error and trusts nothing unsynced on restart, which is the safe answer.\n";

void mk_faults_markdown(FILE *o)
{
    fputs(md_head, o);
    for (size_t i = 0; i < NKINDS; i++)
        fprintf(o, "| %d | `%s` | %s |\n", kinds[i].code, kinds[i].name, kinds[i].what);
    fprintf(o, "\n## Points\n\n%zu points. Kinds lists the failures that mean something at "
               "the point; `default` is always accepted.\n\n",
            mk_fault_npoints);
    fprintf(o, "| point | seam | kinds | simulates |\n|---|---|---|---|\n");
    for (size_t i = 0; i < mk_fault_npoints; i++) {
        const mk_fault_point *p = &mk_fault_points[i];
        fprintf(o, "| `%s` | %s | %s | %s |\n", p->name, p->seam, p->kinds, p->what);
    }
    fputs(md_seams, o);
}

static void faults_help(void)
{
    printf("usage: mirrorkit faults --list [--markdown]\n\n"
           "Lists every libfiu fault point of the reference: its name, its seam, the\n"
           "failure kinds it takes and what it simulates, then the failure kinds and\n"
           "whether this build has the points (make fault-build builds them in).\n"
           "With --markdown prints fault/POINTS.md instead.\n\n"
           "Enable points in a fault build with MK_FIU='POINT[:KIND][:BYTES][:once][:p=P]'\n"
           "or fiu-run -x -c 'enable name=POINT,failinfo=N'.\n\n"
           "Exit: 0 ok, 2 usage.\n");
}

int mk_cmd_faults(int argc, char **argv)
{
    int list = 0, markdown = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            faults_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--list") == 0) {
            list = 1;
        } else if (strcmp(argv[i], "--markdown") == 0) {
            markdown = 1;
        } else {
            return mk_usage_error("faults", "unknown option or argument '%s'", argv[i]);
        }
    }
    if (!list)
        return mk_usage_error("faults", "%s is required", "--list");
    if (markdown)
        mk_faults_markdown(stdout);
    else
        list_text(stdout);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_IO;
}
