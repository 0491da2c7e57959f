#!/bin/sh
# The scenario library, the simulator and crash-point enumeration, run as
# a user runs them (fault/SCENARIOS.md, README "Fault injection"):
# - every scenario of fault/scenarios/ passes, together they hit every
#   catalogued fault point, and TAP and JUnit reports are well formed;
# - `mirrorkit sim --seeds 200 --determinism` passes on the reference: every
#   invariant of SPEC.md section 9 (I1-I5) holds under crashes at protocol
#   events and fault points, torn writes, link faults and failover, and the
#   same seed gives the same trace;
# - the planted bug of `make mutant-build` (recovery skips the redo of a
#   committed CP, SPEC 7.6 step 9) is found by sim and shrunk to a script
#   of a few lines that fails on the mutant and passes on the reference;
# - `mirrorkit crashpoints` crashes the destination at every hit of its
#   fault points in a small scenario and every recovery holds (7.6, I3);
#   on the mutant some do not;
# - bad arguments and broken scenario files get named errors and exit 2.
#
# Needs the fault build (build/fault, make fault-build) and the mutant
# (build/mutant, make mutant-build); `make check` builds both first.
set -u
M=${MIRRORKIT:-build/mirrorkit}
# The fault build: $MIRRORKIT itself when it has the points (check-asan
# runs the library and the simulator under ASan+UBSan that way).
F=build/fault/mirrorkit
"$M" faults --list 2>/dev/null | grep -q "compiled in" && F=$M
X=build/mutant/mirrorkit
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -x $F ] || fail "$F missing: run make fault-build"
[ -x $X ] || fail "$X missing: run make mutant-build"

# The library, with coverage of the catalogue of fault points.
$F scenario --coverage --junit "$d/junit.xml" fault/scenarios/*.scn > "$d/lib.out" 2>&1 ||
    { cat "$d/lib.out"; fail "the scenario library does not pass (or a fault point is never hit)"; }
n=$(ls fault/scenarios/*.scn | wc -l)
[ "$n" -ge 40 ] || fail "only $n scenarios in fault/scenarios (want at least 40)"
grep -q "^coverage: \([0-9]*\) of \1 points hit" "$d/lib.out" || fail "coverage line missing"
python3 -c "import sys, xml.etree.ElementTree as E; t = E.parse(sys.argv[1]).getroot(); \
assert t.tag == 'testsuite' and int(t.get('tests')) == $n and int(t.get('failures')) == 0" \
    "$d/junit.xml" || fail "JUnit report malformed"
for f in fault/scenarios/*.scn; do
    head -1 "$f" | grep -q "^# models: " || fail "$f does not start with '# models: ...'"
done
$F scenario --tap fault/scenarios/*.scn > "$d/tap" || fail "TAP run failed"
head -2 "$d/tap" | tail -1 | grep -qx "1\.\.$n" || fail "TAP plan line"
[ "$(grep -c '^ok ' "$d/tap")" -eq "$n" ] || fail "TAP: not every scenario ok"

# A failing expectation: exit 1 and the reason; TAP says not ok.
cat > "$d/bad.scn" <<'EOF'
scenario wrong-expectation
volume blocks=16
writes 5
cp
expect error MK_ENOSPC
EOF
$F scenario "$d/bad.scn" > "$d/o"; rc=$?
[ $rc -eq 1 ] || fail "a failed expectation must exit 1, got $rc"
grep -q "FAIL  wrong-expectation.*expect error MK_ENOSPC: the run ended with no error" "$d/o" ||
    fail "failed expectation not explained: $(cat "$d/o")"
$F scenario --tap "$d/bad.scn" | grep -q "^not ok 1 - wrong-expectation" || fail "TAP not ok"

# Broken files: FILE:LINE:COL and exit 2; a normal build refuses fault points.
printf 'scenario x\nvolume blocks=8\nwrites 3\nlink latencyy ms=3\n' > "$d/broken.scn"
$F scenario "$d/broken.scn" > "$d/o"; rc=$?
[ $rc -eq 2 ] || fail "a broken scenario must exit 2, got $rc"
grep -q "broken.scn:4:6: MK_EUSAGE: unknown link kind 'latencyy'" "$d/o" || fail "parse error position: $(cat "$d/o")"
$M scenario fault/scenarios/dest-enospc-during-cp.scn > "$d/o" 2>&1; rc=$?
if ! $M faults --list | grep -q "compiled in"; then
    [ $rc -eq 2 ] && grep -q "needs fault points: run the fault build" "$d/o" ||
        fail "a normal build must refuse fault steps by name (rc $rc): $(cat "$d/o")"
fi
$F scenario "$d/missing.scn" > "$d/o"; [ $? -eq 2 ] || fail "missing file must exit 2"
grep -q "missing.scn: MK_EINVAL" "$d/o" || fail "missing file not named"
for args in "sim --seeds 0" "sim --jobs 65" "sim --seeds x" "sim --out /nonexistent" \
            "crashpoints" "crashpoints --role both x.scn" "scenario" "scenario --bogus x"; do
    $F $args > /dev/null 2> "$d/e"; rc=$?
    [ $rc -eq 2 ] || fail "'$args' must exit 2, got $rc"
    grep -q "MK_EUSAGE" "$d/e" || fail "'$args': no named error"
done

# The reference survives 200 random seeds, deterministically.
$F sim --seeds 200 --determinism --jobs 2 --out "$d" > "$d/sim.out" ||
    { grep -v "^ " "$d/sim.out" | head -40; fail "sim --seeds 200 failed on the reference"; }
grep -q "^sim: 200 seeds from 1, 0 failed, 0 errors" "$d/sim.out" || fail "sim summary: $(tail -1 "$d/sim.out")"

# The planted bug is found and shrunk.
mkdir "$d/mut"
$X sim --seeds 100 --out "$d/mut" > "$d/mut.out"; rc=$?
[ $rc -eq 1 ] || fail "sim did not find the planted bug (exit $rc)"
ls "$d/mut"/*.min.scn > /dev/null 2>&1 || fail "no shrunk script written"
best=$(wc -l "$d/mut"/*.min.scn | grep -v total | sort -n | head -1 | awk '{print $2}')
lines=$(grep -cv '^#' "$best")
[ "$lines" -le 12 ] || fail "shrunk script has $lines statements (want at most 12): $best"
$X scenario --unfired-ok "$best" > /dev/null; [ $? -eq 1 ] || fail "shrunk script passes on the mutant"
$F scenario --unfired-ok "$best" > /dev/null || fail "shrunk script fails on the reference"

# Crash at every destination fault-point hit of a small scenario.
cat > "$d/small.scn" <<'EOF'
# models: a destination that crashes anywhere while taking two CPs
scenario crashpoints-small
volume blocks=16 block-size=4096
seed 11
writes 12
cp
writes 12
cp
expect verify-every-cp
expect no-acked-write-lost
expect mirror-equals cp=2
EOF
$F crashpoints "$d/small.scn" > "$d/cp.out" || { tail -5 "$d/cp.out"; fail "a crash point did not recover"; }
grep -q "^crashpoints: \([0-9]*\) crash points, \1 crashed and recovered, 0 failed" "$d/cp.out" ||
    fail "crashpoints summary: $(tail -1 "$d/cp.out")"
$X crashpoints "$d/small.scn" > "$d/cpx.out"; [ $? -eq 1 ] || fail "crashpoints passes the mutant"
echo "ok: $n scenarios pass and hit every fault point; sim 200 seeds deterministic; planted bug found and shrunk to $lines statements; crash points all recover"
