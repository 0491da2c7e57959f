/*
 * mk_cli.h - what every mirrorkit subcommand shares: the exit codes of
 * SPEC.md 10.3, the one way a bad argument is reported, and strict number
 * parsing.  Subcommands live in several modules (ref/mirrorkit.c,
 * verify/mk_verify_cli.c); they must not each grow their own.
 */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stdint.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_VERIFY = 1, EXIT_USAGE = 2, EXIT_IO = 3 };

/* Prints "mirrorkit CMD: MK_EUSAGE: <fmt with arg> (see 'mirrorkit CMD
 * --help')" on stderr and returns EXIT_USAGE. */
int mk_usage_error(const char *cmd, const char *fmt, const char *arg);

/* Parses a whole unsigned number, decimal or 0x hex, with nothing after
 * it and no sign; 0 on success, -1 otherwise (*v untouched). */
int mk_parse_u64(const char *s, uint64_t *v);

/* The exit code of a run that ended with err (SPEC.md 10.3). */
int mk_exit_code(int err);

/* Writes s as XML attribute or text content: the five markup characters
 * escaped, control characters other than newline and tab dropped (XML 1.0
 * cannot hold them).  For the JUnit reports of scenario and conform. */
void mk_xml_escaped(FILE *f, const char *s);

#endif
