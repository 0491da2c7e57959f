#include "mk_cli.h"
#include "mk_err.h"

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

int mk_exit_code(int err)
{
    switch (err) {
    case 0: return EXIT_OK;
    case MK_EVERIFY: case MK_EDIGEST: case MK_EDIVERGED: case MK_ELOGLOST:
        return EXIT_VERIFY;
    case MK_EIO: case MK_ENOSPC: case MK_ENOMEM: case MK_ECLOSED:
    case MK_ETIMEOUT: case MK_EREMOTE:
        return EXIT_IO;
    }
    return EXIT_USAGE;
}

void mk_xml_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t')
                fputc(*s, f);
        }
    }
}
