#!/bin/sh
# Bad command lines get a named error and exit 2, and change nothing
# (SPEC.md 10.3; the volume rules of SPEC.md 1.1: block size a power of two
# in 512..65536, at least one block);
# every subcommand has --help (exit 0).
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
bad=0
expect() { # expect CODE PATTERN -- ARGS...
    code=$1; pat=$2; shift 3
    "$M" "$@" >"$d/out" 2>"$d/err"; rc=$?
    if [ $rc -ne "$code" ] || ! grep -q -- "$pat" "$d/err" "$d/out"; then
        echo "FAIL: mirrorkit $* -> exit $rc, want $code and '$pat'"; cat "$d/err"; bad=1
    fi
}
for c in demo source dest dump; do expect 0 "usage: mirrorkit $c" -- $c --help; done
expect 0 "usage: mirrorkit COMMAND" -- --help
expect 2 "usage: mirrorkit COMMAND" --
expect 2 "MK_EUSAGE: unknown command 'frobnicate'" -- frobnicate
expect 2 "MK_EUSAGE: --blocks needs a positive integer, not 'abc'" -- demo --blocks abc
expect 2 "MK_EUSAGE: --blocks needs a positive integer, not '0'" -- demo --blocks 0
expect 2 "MK_EUSAGE: --block-size must be a power of two" -- demo --block-size 1000
expect 2 "MK_EUSAGE: --block-size must be a power of two" -- demo --block-size 131072
expect 2 "MK_EUSAGE: --mode must be" -- demo --mode fast
expect 2 "MK_EUSAGE: --workload must be" -- demo --workload nope
expect 2 "MK_EUSAGE: --transport must be" -- demo --transport carrier-pigeon
expect 2 "MK_EUSAGE: unknown or incomplete option '--bogus'" -- demo --bogus
expect 2 "MK_EUSAGE: unexpected argument 'extra'" -- demo extra
expect 2 "MK_EUSAGE: --connect HOST:PORT is required" -- source
expect 2 "MK_EUSAGE: unknown option '--connect'" -- demo --connect 127.0.0.1:1
expect 2 "MK_EUSAGE: --image and --log are required" -- dest --listen 127.0.0.1:0
expect 2 "exactly one of --listen" -- dest --image "$d/i" --log "$d/l"
expect 2 "MK_EUSAGE: --connect needs IPV4:PORT" -- source --connect localhost
expect 2 "MK_EUSAGE: --listen needs IPV4:PORT" -- dest --listen 127.0.0.1:99999 --image "$d/i" --log "$d/l"
expect 2 "MK_EUSAGE: expects exactly one FILE, got none" -- dump
# The rejected dest invocations created no files.
[ -e "$d/i" ] || [ -e "$d/l" ] && { echo "FAIL: a rejected command created files"; bad=1; }
# Bad script input to the source: named error with the line number.
printf 'write 0 zz\n' | "$M" source --connect 127.0.0.1:1 --reconnect-timeout 0 --script - \
    >"$d/out" 2>"$d/err"; rc=$?
[ $rc -ne 0 ] || { echo "FAIL: source against a closed port exited 0"; bad=1; }
[ $bad -eq 0 ] && echo "ok: CLI errors are named, exit 2, and change nothing"
exit $bad
