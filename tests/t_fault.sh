#!/bin/sh
# libfiu fault points (fault/POINTS.md) driven from outside, as a user
# would: a storage failure of the destination is an engine error that ends
# the run with a named error and exit code 3, never a crash (SPEC.md 8.5);
# a CP whose mirror write failed is redone from its redo record when the
# destination restarts (7.4, 7.6 step 9); an allocation failure is
# MK_ENOMEM, and under the ASan build (make check-asan, also a fault build)
# it leaks nothing; a reset link is resumed (8.2).  Also: the committed
# fault/POINTS.md is the one the code generates, and a build without the
# points ignores MK_FIU.
#
# The points need a fault build: $MIRRORKIT if it has them (check-asan),
# else build/fault/mirrorkit, which `make check` builds first (make
# fault-build).
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
dpid=
kd=
trap '[ -n "$dpid" ] && kill -9 $dpid 2>/dev/null; rm -rf "$d" $kd' EXIT
fail() { echo "FAIL: $*"; exit 1; }
has_points() { [ -x "$1" ] && "$1" faults --list | grep -q "compiled in"; }
keptdir() { sed -n 's/^destination files kept in //p' "$1"; }
small="--blocks 256 --cps 2 --writes 20"

# The catalogue: fault/POINTS.md is generated from the table in code.
$M faults --list --markdown | cmp -s - fault/POINTS.md ||
    fail "fault/POINTS.md differs from 'mirrorkit faults --list --markdown': run make fault/POINTS.md"

if has_points "$M"; then
    F=$M
else
    # Points compiled away: MK_FIU is ignored with a warning and the run is
    # the normal, passing one.
    MK_FIU=ref/dest/log/sync $M demo $small >"$d/nofiu.txt" 2>&1 ||
        fail "normal build with MK_FIU set: exit $?: $(tail -2 "$d/nofiu.txt")"
    grep -q "MK_FIU is set, but this build has no fault points" "$d/nofiu.txt" ||
        fail "normal build did not say MK_FIU is ignored"
    F=build/fault/mirrorkit
    has_points "$F" || { echo "SKIP: no fault build at $F (make fault-build)"; exit 0; }
fi
echo "fault build: $F"

# (a) The destination's log sync fails: named engine error, exit 3.
MK_FIU=ref/dest/log/sync $F demo $small >"$d/a.txt" 2>&1
rc=$?
[ $rc -eq 3 ] || fail "(a) log sync EIO: exit $rc, want 3: $(tail -3 "$d/a.txt")"
grep -q "destination reported MK_EIO" "$d/a.txt" || fail "(a) no named error: $(tail -2 "$d/a.txt")"
# ... the same point enabled by libfiu's own launcher, where it can run:
# fiu-run preloads a library, which an ASan binary refuses.
R=$F
grep -qa __asan_init "$R" && R=build/fault/mirrorkit
if command -v fiu-run >/dev/null && has_points "$R" && ! grep -qa __asan_init "$R"; then
    fiu-run -f '' -x -c 'enable name=ref/dest/log/sync' $R demo $small >"$d/a2.txt" 2>&1
    rc=$?
    [ $rc -eq 3 ] || fail "(a) fiu-run log sync: exit $rc, want 3: $(tail -3 "$d/a2.txt")"
    grep -q "destination reported MK_EIO" "$d/a2.txt" || fail "(a) fiu-run: no named error"
    # failinfo=2: ENOSPC (BYTES * 10 + KIND, fault/POINTS.md)
    fiu-run -f '' -x -c 'enable name=ref/dest/log/write,failinfo=2' $R demo $small >"$d/a3.txt" 2>&1
    rc=$?
    [ $rc -eq 3 ] || fail "(a) fiu-run log write ENOSPC: exit $rc, want 3"
    grep -q "destination reported MK_ENOSPC" "$d/a3.txt" || fail "(a) fiu-run failinfo=2: $(tail -1 "$d/a3.txt")"
else
    echo "(fiu-run case skipped: no fiu-run or no non-ASan fault build)"
fi
# A bad entry is a usage error, before anything runs.
MK_FIU=ref/dest/log/fsync $F demo $small >"$d/bad.txt" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "MK_EUSAGE: no fault point 'ref/dest/log/fsync'" "$d/bad.txt" ||
    fail "bad MK_FIU entry: exit $rc: $(cat "$d/bad.txt")"

# (b) The mirror write of CP 1 fails after its redo record is durable; a
# restarted destination redoes CP 1 and its mirror equals that of a run
# that stopped after CP 1 without a fault.
MK_FIU=ref/dest/mirror/write $F demo --transport pipe --keep $small >"$d/b.txt" 2>&1
rc=$?
kd=$(keptdir "$d/b.txt")
[ $rc -eq 3 ] || fail "(b) mirror write EIO: exit $rc, want 3: $(tail -3 "$d/b.txt")"
grep -q "destination reported MK_EIO: applying CP" "$d/b.txt" || fail "(b): $(tail -1 "$d/b.txt")"
[ -n "$kd" ] && [ -f "$kd/dest.log" ] || fail "(b) no kept destination files"
$F dest --stdio --image "$kd/mirror.img" --log "$kd/dest.log" --tree "$kd/mirror.mkt" \
    </dev/null >/dev/null 2>"$d/b.err" || fail "(b) restart: exit $?: $(cat "$d/b.err")"
grep -q "last CP 1, .* 1 CP redone" "$d/b.err" || fail "(b) no redo: $(cat "$d/b.err")"
$F dump "$kd/dest.log" | grep -q "R_CP_APPLIED len=8 cp=1" || fail "(b) no R_CP_APPLIED for CP 1"
$F demo --transport pipe --keep --blocks 256 --cps 1 --writes 20 >"$d/b1.txt" 2>&1 ||
    fail "(b) fault-free run of CP 1: $(tail -2 "$d/b1.txt")"
kd="$kd $(keptdir "$d/b1.txt")"
set -- $kd
cmp -s "$1/mirror.img" "$2/mirror.img" || fail "(b) redone mirror differs from CP 1's"

# (c) Allocation failures: MK_ENOMEM named, exit 3, nothing leaked (under
# ASan a leak changes the exit code).
for p in ref/alloc/source/transfer ref/alloc/source/cp ref/alloc/dest/staging ref/alloc/dest/redo; do
    MK_FIU=$p $F demo $small >"$d/c.txt" 2>&1
    rc=$?
    [ $rc -eq 3 ] || fail "(c) $p: exit $rc, want 3: $(tail -5 "$d/c.txt")"
    grep -q "MK_ENOMEM" "$d/c.txt" || fail "(c) $p: no MK_ENOMEM: $(tail -1 "$d/c.txt")"
done

# (d) The destination's first receive is cut short and the connection
# reset: the source reconnects and resumes, and every CP verifies.
MK_FIU='ref/link/recv:short:once' $F dest --listen 127.0.0.1:0 --port-file "$d/port" \
    --image "$d/m.img" --log "$d/d.log" >/dev/null 2>"$d/dest.err" &
dpid=$!
for i in $(seq 50); do [ -s "$d/port" ] && break; sleep 0.1; done
[ -s "$d/port" ] || fail "(d) destination did not start: $(cat "$d/dest.err")"
$F source --connect 127.0.0.1:$(cat "$d/port") --blocks 512 --cps 3 --writes 40 \
    --verify-image "$d/m.img" --reconnect-timeout 20 >"$d/src.txt" 2>&1 ||
    fail "(d) source after a reset link: exit $?: $(tail -3 "$d/src.txt")"
grep -q "^summary: 3/3 CPs verified" "$d/src.txt" || fail "(d): $(grep summary "$d/src.txt")"
grep -qE "reconnects [1-9]" "$d/src.txt" || fail "(d) the reset did not make the source reconnect"
kill $dpid
wait $dpid 2>/dev/null
dpid=

echo "ok: storage faults named (exit 3), CP redone after a failed mirror write, ENOMEM clean, reset link resumed"
