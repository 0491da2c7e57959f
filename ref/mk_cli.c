#include "mk_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int mk_usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "mirrorkit %s: MK_EUSAGE: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'mirrorkit %s --help')\n", cmd);
    return EXIT_USAGE;
}

int mk_parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 0);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}
