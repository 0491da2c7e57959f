#!/bin/sh
# SPEC.md 10.2 and 7.5: when a CP_ACK's Merkle root differs (a destination
# whose tree was damaged between CPs), `mirrorkit source --script -` prints
# `cp-ack K` for that CP, which was acknowledged, then `error MK_EVERIFY`
# once the descent of 9.7 has named the block, exits 1, and its report
# names CP_ACK K - not K-1.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$d"' EXIT
bad=0
fail() { echo "FAIL: $*"; bad=1; }
"$M" dest --listen 127.0.0.1:0 --port-file "$d/port" --image "$d/m.img" --log "$d/m.log" >/dev/null 2>"$d/dest.err" &
pid=$!
for _ in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.05; done
hex=$(python3 -c 'print(bytes((i * 7 + 1) % 256 for i in range(4096)).hex())')
{
    echo "write 0 $hex"; echo cp
    # Wait for CP 1's ack line, then damage leaf 3 - the sibling of the
    # block CP 2 writes - in the destination's tree file (9.7 layout).
    for _ in $(seq 100); do grep -q '^cp-ack 1$' "$d/out" 2>/dev/null && break; sleep 0.05; done
    python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(3 * 16); f.write(b"\x55" * 16)' "$d/m.img.mkt"
    echo "write 8192 $hex"; echo cp; echo quit
} | "$M" source --connect "127.0.0.1:$(cat "$d/port")" --blocks 64 --block-size 4096 --mode sync \
    --volume-id 1 --source-id 2 --script - >"$d/out" 2>"$d/err"
rc=$?
[ $rc -eq 1 ] || fail "exit $rc, want 1"
printf 'ack 1\ncp-ack 1\nack 2\ncp-ack 2\nerror MK_EVERIFY\n' | cmp -s - "$d/out" ||
    fail "stdout: $(tr '\n' '|' <"$d/out")"
grep -q 'Merkle root in CP_ACK 2): 1 differing blocks' "$d/err" || fail "report: $(grep VIOLATED "$d/err")"
grep -q '  block 3 ' "$d/err" || fail "the descent did not name block 3"
exit $bad
