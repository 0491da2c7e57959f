#!/bin/sh
# Runs the unit suites given as arguments, then (unless --unit-only) every
# shell test tests/t_*.sh, and prints one "N passed, N failed" line.
# MK_WRAP (e.g. valgrind ...) prefixes each unit-suite command.
unit_only=0
[ "$1" = "--unit-only" ] && { unit_only=1; shift; }
pass=0; fail=0; failed=""
for t in "$@"; do
    if $MK_WRAP "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
if [ $unit_only = 0 ]; then
    for t in tests/t_*.sh; do
        [ -e "$t" ] || continue
        echo "== $t"
        if sh "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
    done
fi
[ -n "$failed" ] && echo "failed:$failed"
echo "check: $pass passed, $fail failed"
[ $fail = 0 ]
