/*
 * mk_test.h - helpers shared by the Check suites in tests/.
 *
 * Each suite is one program, tests/check_<module>.c, whose main() calls
 * mk_test_run() with its Suite.  Test names carry the SPEC.md section they
 * check (e.g. test_s3_4_bad_checksum) so a failure points at the rule.
 */
#ifndef MK_TEST_H
#define MK_TEST_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Decodes a hex string (spaces ignored) into buf; returns the byte count. */
static inline size_t mk_test_unhex(const char *hex, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9') v = *p - '0';
        else if (*p >= 'a' && *p <= 'f') v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F') v = *p - 'A' + 10;
        else continue;
        if (hi < 0) {
            hi = v;
        } else {
            ck_assert_uint_lt(n, cap);
            buf[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

static inline int mk_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
