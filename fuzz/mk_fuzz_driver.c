/*
 * mk_fuzz_driver.c - the main() of every fuzz harness that is not built
 * for libFuzzer (which brings its own).  One harness source, three builds
 * (fuzz/README.md):
 *
 *   AFL++ persistent mode (afl-clang-fast defines __AFL_FUZZ_TESTCASE_LEN),
 *     when run without arguments: test cases come through shared memory,
 *     100000 per fork.
 *   replay (any compiler): every FILE, or every file of every DIRECTORY, is
 *     run once through LLVMFuzzerTestOneInput - how `make fuzz-smoke`
 *     replays corpora and regressions under ASan+UBSan, and how a crash is
 *     reproduced under Valgrind.  With no argument, one input on stdin.
 *
 * A harness reports a broken oracle with abort(), so every build turns it
 * into a crash that the fuzzer saves and the replay driver's exit shows.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Inputs are capped where libFuzzer's default -max_len would cap them: a
 * harness must bound its memory whatever an input claims, but reading a
 * multi-gigabyte file into memory first would test nothing. */
#define MK_FUZZ_MAX_INPUT (1u << 22)

static uint8_t *read_all(FILE *f, size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0 || len == MK_FUZZ_MAX_INPUT)
            break;
        if (len == cap) {
            size_t nc = cap * 2 > MK_FUZZ_MAX_INPUT ? MK_FUZZ_MAX_INPUT : cap * 2;
            uint8_t *g = realloc(b, nc);
            if (!g) {
                free(b);
                return NULL;
            }
            b = g;
            cap = nc;
        }
    }
    *n = len;
    return b;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz replay: cannot open %s\n", path);
        return -1;
    }
    size_t n = 0;
    uint8_t *b = read_all(f, &n);
    fclose(f);
    if (!b) {
        fprintf(stderr, "fuzz replay: out of memory reading %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(b, n);
    free(b);
    return 1;
}

static long run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st)) {
        fprintf(stderr, "fuzz replay: cannot stat %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4096];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(p) < 0) {
                closedir(d);
                return -1;
            }
            count++;
        }
    }
    closedir(d);
    return count;
}

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
#ifdef __AFL_FUZZ_TESTCASE_LEN
    /* Without arguments: persistent mode with shared-memory test cases
     * (afl-fuzz, afl-showmap, afl-cmin, afl-tmin run it so); with FILE
     * arguments the AFL build replays like the plain one. */
    if (argc < 2) {
        __AFL_INIT();
        unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
        while (__AFL_LOOP(100000))
            LLVMFuzzerTestOneInput(buf, (size_t)__AFL_FUZZ_TESTCASE_LEN);
        return 0;
    }
#endif
    if (argc < 2) {
        size_t n = 0;
        uint8_t *b = read_all(stdin, &n);
        if (!b)
            return 2;
        LLVMFuzzerTestOneInput(b, n);
        free(b);
        return 0;
    }
    long total = 0;
    for (int i = 1; i < argc; i++) {
        long n = run_path(argv[i]);
        if (n < 0)
            return 2;
        total += n;
    }
    fprintf(stderr, "fuzz replay: %ld inputs ran clean\n", total);
    return 0;
}
