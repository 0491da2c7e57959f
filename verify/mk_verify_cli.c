/*
 * mk_verify_cli.c - `mirrorkit verify`: compares two volume images block by
 * block, an image with a checksum table, or two tables (mk_sumtab.h), and
 * with --table writes an image's checksum table.
 *
 * Exit codes as for every subcommand (README.md, SPEC.md 10.3): 0 equal or
 * table written, 1 blocks differ, 2 usage or bad input (including a file
 * that is missing or cannot be opened, a malformed table and volumes of
 * different sizes), 3 an I/O error while reading or writing.  Errors go to
 * stderr as "mirrorkit verify: FILE: MK_NAME: message".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mk_cli.h"
#include "mk_err.h"
#include "mk_sumtab.h"
#include "mk_wire.h"

int mk_cmd_verify(int argc, char **argv);


/* The largest --max-diffs: every described block is kept until the report
 * is printed (the JSON lists the ranges first), so the count is bounded. */
#define MAX_DIFFS_LIMIT 1000000u

static const char cmd[] = "verify";

static int usage_error(const char *fmt, const char *arg)
{
    return mk_usage_error(cmd, fmt, arg);
}

/* Reports err about file with an optional detail instead of the table
 * message; returns the exit code for a failure that happened while
 * reading or writing (reading) or while opening and validating. */
static int file_error(const char *file, int err, const char *detail, int reading)
{
    fprintf(stderr, "mirrorkit %s: %s: %s: %s\n", cmd, file, mk_errname(err),
            detail ? detail : mk_strerror(err));
    if (err == MK_ENOMEM)
        return EXIT_IO;
    if (!reading)
        return EXIT_USAGE;
    return err == MK_EIO || err == MK_ENOSPC || err == MK_ECLOSED ? EXIT_IO : EXIT_USAGE;
}

/* Why a path could not be opened as an input, when the answer was
 * MK_EINVAL: it is missing, or it is a directory, a pipe or the like. */
static const char *einval_detail(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 ? "no such file" : "not a regular file or block device";
}


static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void verify_help(void)
{
    printf("usage: mirrorkit verify A B [--block-size B] [--json] [--max-diffs N]\n"
           "       mirrorkit verify --table IMAGE [--block-size B] [--output FILE]\n\n"
           "Compares two volume images block by block, an image with a checksum\n"
           "table, or two tables, and lists the differing blocks as ranges\n"
           "[first,last] with details (block, byte offset, both XXH3-128 checksums\n"
           "and, for two images, the first differing bytes) of the first few.\n"
           "A file that starts with the table magic \"MKST\" is read as a table;\n"
           "any other file (or block device) is an image.  Holes of sparse images\n"
           "are not read.  An image whose size is not a multiple of the block size\n"
           "ends in a partial block, compared as a block padded with zeros; images\n"
           "of different sizes are never equal (MK_EVOLUME).\n\n"
           "  --block-size B   block size, a power of two in 512..65536 (default\n"
           "                   4096); a table brings its own\n"
           "  --max-diffs N    describe at most N differing blocks (default 10)\n"
           "  --json           print one JSON object on stdout instead of text\n"
           "  --table          write the checksum table of IMAGE (verify/FORMAT.md)\n"
           "                   to stdout, or to FILE with --output\n"
           "  --output FILE    with --table: write the table to FILE (replaced\n"
           "                   only once the whole table is written)\n\n"
           "Exit: 0 equal (or table written), 1 blocks differ, 2 usage, missing or\n"
           "unreadable file, malformed table or different volume sizes, 3 I/O error\n"
           "while reading or writing.\n");
}

typedef struct verify_args {
    const char *a, *b;
    uint32_t block_size;
    int block_size_set, json, table;
    uint64_t max_diffs;
    int max_diffs_set;
    const char *output;
} verify_args;

enum { O_BS = 256, O_JSON, O_MAXD, O_TABLE, O_OUTPUT, O_HELP };

/* Returns -1 when the arguments are good, else the exit code. */
static int parse_args(int argc, char **argv, verify_args *va)
{
    static const struct option lo[] = {
        {"block-size", 1, 0, O_BS}, {"json", 0, 0, O_JSON}, {"max-diffs", 1, 0, O_MAXD},
        {"table", 0, 0, O_TABLE}, {"output", 1, 0, O_OUTPUT}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    uint64_t v;
    int o;
    memset(va, 0, sizeof *va);
    va->block_size = 4096;
    va->max_diffs = MK_SUMTAB_DEFAULT_MAX_DIFFS;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case O_HELP: verify_help(); return EXIT_OK;
        case O_BS:
            if (mk_parse_u64(optarg, &v) || v > UINT32_MAX || !mk_block_size_ok((uint32_t)v))
                return usage_error("--block-size must be a power of two in 512..65536, not '%s'",
                                   optarg);
            va->block_size = (uint32_t)v;
            va->block_size_set = 1;
            break;
        case O_JSON: va->json = 1; break;
        case O_MAXD:
            if (mk_parse_u64(optarg, &v) || v > MAX_DIFFS_LIMIT)
                return usage_error("--max-diffs needs an integer in 0..1000000, not '%s'", optarg);
            va->max_diffs = v;
            va->max_diffs_set = 1;
            break;
        case O_TABLE: va->table = 1; break;
        case O_OUTPUT:
            if (!*optarg)
                return usage_error("--output needs a file name%s", "");
            va->output = optarg;
            break;
        default:
            return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    if (va->table) {
        if (npos == 0)
            return usage_error("--table expects one IMAGE, got %s", "none");
        if (npos > 1)
            return usage_error("unexpected argument '%s' (--table takes one IMAGE)",
                               argv[optind + 1]);
        if (va->max_diffs_set)
            return usage_error("%s does not apply to --table", "--max-diffs");
        if (va->json && !va->output)
            return usage_error("%s needs --output FILE: the table itself goes to stdout",
                               "--table --json");
        va->a = argv[optind];
        return -1;
    }
    if (va->output)
        return usage_error("%s applies only to --table", "--output");
    if (npos < 2)
        return usage_error("expects two files A B, got %s", npos == 0 ? "none" : "one");
    if (npos > 2)
        return usage_error("unexpected argument '%s'", argv[optind + 2]);
    va->a = argv[optind];
    va->b = argv[optind + 1];
    return -1;
}

/* ---- --table ------------------------------------------------------------- */

/* The table's destination: remembers whether a failure was the output's,
 * so the error names the right file. */
typedef struct table_out {
    int fd;
    int failed;
} table_out;

static int table_out_fn(void *ctx, const void *buf, size_t n)
{
    table_out *to = ctx;
    int rc = mk_sumtab_out_fd(&to->fd, buf, n);
    if (rc)
        to->failed = 1;
    return rc;
}

/*
 * Writes the table of va->a to stdout or va->output.  A regular output
 * file is written under a temporary name in its directory and renamed into
 * place only when complete, so an interrupted run never leaves a
 * truncated table where a good one was.
 */
static int cmd_table(const verify_args *va)
{
    mk_sumtab_in *in = NULL;
    mk_sumtab_stats st = {0, 0, 0};
    table_out to = {1, 0};
    char *tmp = NULL;
    const char *out_name = va->output ? va->output : "stdout";
    int rc;
    double t0 = now_s();

    if (!va->output && isatty(1))
        return usage_error("refusing to write a binary table to a terminal: redirect stdout or use %s",
                           "--output FILE");
    if ((rc = mk_sumtab_in_open(va->a, &in)))
        return file_error(va->a, rc, rc == MK_EINVAL ? einval_detail(va->a) : NULL, 0);
    if (va->output) {
        struct stat os, is;
        int exists = stat(va->output, &os) == 0;
        /* Renaming over the input would destroy the image being read. */
        if (exists && stat(va->a, &is) == 0 && os.st_dev == is.st_dev && os.st_ino == is.st_ino) {
            mk_sumtab_in_close(in);
            return usage_error("--output '%s' is the input image", va->output);
        }
        if (exists && !S_ISREG(os.st_mode)) {
            /* A device or a pipe (e.g. /dev/null) cannot be renamed over:
             * it is written in place. */
            to.fd = open(va->output, O_WRONLY | O_CLOEXEC);
        } else {
            size_t len = strlen(va->output) + 16;
            if (!(tmp = malloc(len))) {
                mk_sumtab_in_close(in);
                return file_error(va->output, MK_ENOMEM, NULL, 1);
            }
            snprintf(tmp, len, "%s.tmp-XXXXXX", va->output);
            to.fd = mkstemp(tmp);
            if (to.fd >= 0) {
                /* mkstemp creates the file 0600; a table is as public as
                 * any other file the user creates. */
                mode_t um = umask(0);
                umask(um);
                (void)fchmod(to.fd, 0666 & ~um);
            }
        }
        if (to.fd < 0) {
            int e = errno;
            free(tmp);
            mk_sumtab_in_close(in);
            fprintf(stderr, "mirrorkit %s: %s: %s: cannot create: %s\n", cmd, va->output,
                    mk_errname(mk_from_errno(e)), strerror(e));
            return EXIT_USAGE;
        }
    }
    rc = mk_sumtab_write(in, va->block_size, table_out_fn, &to, &st);
    /* The table is made durable before it replaces the old one, so a crash
     * leaves the old table or the new one, never an empty file. */
    int orc = 0;
    if (rc == 0 && tmp && fsync(to.fd) != 0)
        orc = mk_from_errno(errno);
    if (to.fd != 1 && close(to.fd) != 0 && orc == 0)
        orc = mk_from_errno(errno);
    if (rc == 0 && orc == 0 && tmp && rename(tmp, va->output) != 0)
        orc = mk_from_errno(errno);
    if (rc == 0 && orc != 0) {
        rc = orc;
        to.failed = 1;
    }
    if (tmp && rc)
        unlink(tmp);
    free(tmp);
    uint64_t vol = mk_sumtab_in_size(in);
    mk_sumtab_in_close(in);
    if (rc)
        return file_error(to.failed ? out_name : va->a, rc, NULL, 1);
    if (va->json)
        printf("{\"table\":true,\"block_size\":%u,\"volume_bytes\":%" PRIu64
               ",\"blocks\":%" PRIu64 ",\"bytes_read\":%" PRIu64 ",\"seconds\":%.6f}\n",
               va->block_size, vol, mk_sumtab_nblocks(vol, va->block_size), st.bytes_read,
               now_s() - t0);
    return EXIT_OK;
}

/* ---- comparison ------------------------------------------------------------ */

static void print_hex(const uint8_t *p, size_t n, const char *sep)
{
    for (size_t i = 0; i < n; i++)
        printf("%s%02x", i ? sep : "", p[i]);
}

static void print_json(const mk_sumtab_result *r, double secs)
{
    printf("{\"equal\":%s,\"block_size\":%u,\"volume_bytes\":%" PRIu64 ",\"blocks\":%" PRIu64
           ",\"differing_blocks\":%" PRIu64 ",\"ranges\":[",
           r->differing ? "false" : "true", r->block_size, r->volume_bytes, r->nblocks,
           r->differing);
    for (size_t i = 0; i < r->nranges; i++)
        printf("%s[%" PRIu64 ",%" PRIu64 "]", i ? "," : "", r->ranges[i].first,
               r->ranges[i].last);
    printf("],\"ranges_complete\":%s,\"diffs\":[", r->ranges_complete ? "true" : "false");
    for (size_t i = 0; i < r->ndiffs; i++) {
        const mk_sumtab_diff *d = &r->diffs[i];
        char ha[33], hb[33];
        mk_sumtab_sum_hex(&d->a, ha);
        mk_sumtab_sum_hex(&d->b, hb);
        printf("%s{\"block\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"a\":\"%s\",\"b\":\"%s\","
               "\"hexdiff\":",
               i ? "," : "", d->block, d->offset, ha, hb);
        if (d->has_hexdiff) {
            printf("{\"offset\":%u,\"start\":%u,\"a\":\"", d->hex.first, d->hex.start);
            print_hex(d->hex.a, MK_SUMTAB_HEXDIFF_LEN, "");
            printf("\",\"b\":\"");
            print_hex(d->hex.b, MK_SUMTAB_HEXDIFF_LEN, "");
            printf("\"}}");
        } else {
            printf("null}");
        }
    }
    printf("],\"bytes_read\":%" PRIu64 ",\"seconds\":%.6f}\n", r->stats.bytes_read, secs);
}

static void print_text(const verify_args *va, const mk_sumtab_result *r, double secs)
{
    if (!r->differing) {
        printf("%s %s: equal: %" PRIu64 " blocks of %u bytes (%" PRIu64 " bytes)\n", va->a,
               va->b, r->nblocks, r->block_size, r->volume_bytes);
    } else {
        printf("%s %s: %" PRIu64 " of %" PRIu64 " blocks differ (block size %u, %" PRIu64
               " bytes)\n",
               va->a, va->b, r->differing, r->nblocks, r->block_size, r->volume_bytes);
        printf("ranges:");
        for (size_t i = 0; i < r->nranges; i++)
            printf("%s[%" PRIu64 ",%" PRIu64 "]", i % 8 ? " " : "\n  ", r->ranges[i].first,
                   r->ranges[i].last);
        printf("\n");
        if (!r->ranges_complete)
            printf("  (only the first %zu ranges are listed)\n", r->nranges);
        for (size_t i = 0; i < r->ndiffs; i++) {
            const mk_sumtab_diff *d = &r->diffs[i];
            char ha[33], hb[33];
            mk_sumtab_sum_hex(&d->a, ha);
            mk_sumtab_sum_hex(&d->b, hb);
            printf("block %" PRIu64 " offset %" PRIu64 ": a %s b %s\n", d->block, d->offset, ha,
                   hb);
            if (d->has_hexdiff) {
                printf("  first difference at byte %u of the block (offset %" PRIu64 ")\n",
                       d->hex.first, d->offset + d->hex.first);
                printf("  a +%-5u ", d->hex.start);
                print_hex(d->hex.a, MK_SUMTAB_HEXDIFF_LEN, " ");
                printf("\n  b +%-5u ", d->hex.start);
                print_hex(d->hex.b, MK_SUMTAB_HEXDIFF_LEN, " ");
                printf("\n");
            }
        }
        if (r->differing > r->ndiffs)
            printf("(%" PRIu64 " more differing block%s not described; --max-diffs %" PRIu64
                   ")\n",
                   r->differing - r->ndiffs, r->differing - r->ndiffs == 1 ? "" : "s",
                   va->max_diffs);
    }
    printf("read %" PRIu64 " bytes in %.3f s\n", r->stats.bytes_read, secs);
}

/* One side of a comparison, opened and, if a table, validated. */
typedef struct side {
    const char *name;
    mk_sumtab_in *in;
    mk_sumtab_reader *t; /* NULL for an image */
} side;

/* Opens a side; returns -1 when it is ready, else the exit code. */
static int open_side(side *s, mk_sumtab_stats *st)
{
    int rc = mk_sumtab_in_open(s->name, &s->in);
    if (rc)
        return file_error(s->name, rc, rc == MK_EINVAL ? einval_detail(s->name) : NULL, 0);
    int is = mk_sumtab_in_is_table(s->in);
    if (is < 0)
        return file_error(s->name, is, NULL, 1);
    if (is && (rc = mk_sumtab_reader_open(s->in, &s->t, st))) {
        /* A table that cannot be validated is bad input (exit 2) unless
         * the file could not be read at all. */
        char msg[96];
        snprintf(msg, sizeof msg, "not a valid checksum table: %s", mk_strerror(rc));
        return file_error(s->name, rc, rc == MK_EIO ? NULL : msg, rc == MK_EIO);
    }
    return -1;
}

static int cmd_compare(const verify_args *va)
{
    side a = {va->a, NULL, NULL}, b = {va->b, NULL, NULL};
    mk_sumtab_stats st = {0, 0, 0};
    mk_sumtab_result r;
    mk_sumtab_opts o;
    int code, rc;
    double t0 = now_s();

    memset(&r, 0, sizeof r);
    if ((code = open_side(&a, &st)) >= 0 || (code = open_side(&b, &st)) >= 0)
        goto out;
    mk_sumtab_opts_default(&o);
    o.block_size = va->block_size;
    o.max_diffs = (size_t)va->max_diffs;
    const side *tab = a.t ? &a : b.t ? &b : NULL;
    if (tab && va->block_size_set && mk_sumtab_reader_hdr(tab->t)->block_size != va->block_size) {
        char bs[24];
        snprintf(bs, sizeof bs, "%u", mk_sumtab_reader_hdr(tab->t)->block_size);
        fprintf(stderr, "mirrorkit %s: %s: MK_EUSAGE: the table has block size %s, not the "
                        "--block-size given\n", cmd, tab->name, bs);
        code = EXIT_USAGE;
        goto out;
    }
    if (a.t && b.t)
        rc = mk_sumtab_compare_tables(a.t, b.t, &o, &r);
    else if (a.t)
        rc = mk_sumtab_compare_table_image(a.t, b.in, 0, &o, &r);
    else if (b.t)
        rc = mk_sumtab_compare_table_image(b.t, a.in, 1, &o, &r);
    else
        rc = mk_sumtab_compare_images(a.in, b.in, &o, &r);
    r.stats.bytes_read += st.bytes_read;
    double secs = now_s() - t0;

    if (rc == MK_EVOLUME) {
        char msg[256];
        if (r.a_block_size != r.b_block_size)
            snprintf(msg, sizeof msg, "block sizes differ: %s has %u, %s has %u", a.name,
                     r.a_block_size, b.name, r.b_block_size);
        else
            snprintf(msg, sizeof msg,
                     "volume sizes differ: %s has %" PRIu64 " bytes, %s has %" PRIu64 " bytes", a.name,
                     r.a_bytes, b.name, r.b_bytes);
        code = file_error(b.name, rc, msg, 0);
    } else if (rc == 0 || rc == MK_EVERIFY) {
        if (va->json)
            print_json(&r, secs);
        else
            print_text(va, &r, secs);
        code = rc ? EXIT_VERIFY : EXIT_OK;
        if (fflush(stdout) != 0 || ferror(stdout))
            code = file_error("stdout", mk_from_errno(errno), NULL, 1);
    } else {
        const char *who = r.err_side == 2 ? b.name : r.err_side == 1 ? a.name : b.name;
        code = file_error(who, rc, NULL, 1);
    }
out:
    mk_sumtab_result_free(&r);
    mk_sumtab_reader_free(a.t);
    mk_sumtab_reader_free(b.t);
    mk_sumtab_in_close(a.in);
    mk_sumtab_in_close(b.in);
    return code;
}

int mk_cmd_verify(int argc, char **argv)
{
    verify_args va;
    int rc = parse_args(argc, argv, &va);
    if (rc >= 0)
        return rc;
    return va.table ? cmd_table(&va) : cmd_compare(&va);
}
