#!/bin/sh
# `mirrorkit conform --source` (SPEC.md 10.2): the reference source passes
# every case of the source catalogue, MUST and SHOULD; the TAP and JUnit
# reports are well formed; and an implementation that cannot run is
# judged as it should be: one that exits 1 at once FAILs (exit 1), one
# that exits 127 is UNSUPPORTED (exit 0), never a hang or a harness error.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The whole catalogue against the reference.
$M conform --source "$M source" --strict >"$d/all.txt" 2>"$d/all.err"
rc=$?
[ $rc -eq 0 ] || fail "reference source: exit $rc: $(grep -v '^PASS' "$d/all.txt" | head -5) $(cat "$d/all.err")"
n=$($M conform --list --source "$M source" | sed -n 's/^\([0-9][0-9]*\) cases$/\1/p')
[ "${n:-0}" -ge 28 ] || fail "the source catalogue has ${n:-0} cases, want at least 28"
np=$(grep -c '^PASS ' "$d/all.txt")
[ "$np" = "$n" ] || fail "$np of $n cases passed: $(grep -v '^PASS' "$d/all.txt" | head -5)"
grep -q "^conform: $n passed, 0 failed" "$d/all.txt" || fail "summary: $(tail -1 "$d/all.txt")"

# One case as TAP and as JUnit.
$M conform --source "$M source" --case src-nak-resend --tap --junit "$d/j.xml" >"$d/tap.txt" ||
    fail "TAP run: exit $?: $(cat "$d/tap.txt")"
[ "$(sed -n 1p "$d/tap.txt")" = "TAP version 13" ] || fail "TAP header: $(sed -n 1p "$d/tap.txt")"
[ "$(sed -n 2p "$d/tap.txt")" = "1..1" ] || fail "TAP plan: $(sed -n 2p "$d/tap.txt")"
grep -q '^ok 1 - src-nak-resend \[8.1 MUST\]' "$d/tap.txt" || fail "TAP line: $(cat "$d/tap.txt")"
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import xml.dom.minidom,sys; d=xml.dom.minidom.parse(sys.argv[1]); s=d.documentElement; assert s.tagName=="testsuite" and s.getAttribute("tests")=="1" and s.getAttribute("failures")=="0", s.toxml()' "$d/j.xml" ||
        fail "JUnit XML is not well formed: $(cat "$d/j.xml")"
else
    grep -q '<testsuite ' "$d/j.xml" && grep -q '</testsuite>' "$d/j.xml" || fail "JUnit XML: $(cat "$d/j.xml")"
fi

# An implementation that exits 1 at once fails its case, exit 1.
$M conform --source 'sh -c "exit 1"' --case src-ref-whole --timeout 2000 >"$d/f.txt" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "'exit 1' implementation: exit $rc, want 1: $(cat "$d/f.txt")"
grep -q '^FAIL  *src-ref-whole ' "$d/f.txt" || fail "'exit 1' implementation not FAIL: $(cat "$d/f.txt")"

# One that exits 127 does not support the invocation: UNSUPPORTED, exit 0.
$M conform --source 'sh -c "exit 127"' --case src-ref-whole --case src-hello-ack-peer \
    --timeout 2000 >"$d/u.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "'exit 127' implementation: exit $rc, want 0: $(cat "$d/u.txt")"
[ "$(grep -c '^UNSUPPORTED ' "$d/u.txt")" = 2 ] || fail "'exit 127' not UNSUPPORTED: $(cat "$d/u.txt")"

# One that hangs fails within the timeout instead of hanging the runner.
$M conform --source 'sleep 30 #' --case src-semi-ack-local --timeout 500 >"$d/h.txt" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "hanging implementation: exit $rc, want 1: $(cat "$d/h.txt")"
grep -q '^FAIL  *src-semi-ack-local .*timed out' "$d/h.txt" || fail "hang: $(cat "$d/h.txt")"

echo "ok: conform --source: the reference passes all $n cases; TAP and JUnit well formed; exit 1 is FAIL, exit 127 UNSUPPORTED, a hang times out"
