#!/bin/sh
# SPEC.md 9 (I1) over every transport: the pair verifies after every CP in
# each mode over the simulated link, a socketpair to a forked destination,
# and loopback TCP to a forked destination.
set -u
M=${MIRRORKIT:-build/mirrorkit}
fail=0
for t in sim pipe tcp; do
    for mode in sync semi-sync async; do
        out=$($M demo --transport $t --mode $mode --blocks 2048 --cps 3 --writes 150 --seed 7 2>&1)
        rc=$?
        if [ $rc -ne 0 ] || ! echo "$out" | grep -q "^summary: 3/3 CPs verified"; then
            echo "FAIL: transport $t mode $mode (exit $rc)"; echo "$out" | tail -5; fail=1
        else
            echo "ok: transport $t mode $mode"
        fi
    done
done
exit $fail
