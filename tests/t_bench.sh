#!/bin/sh
# mirrorkit bench, bandwidth section (SPEC.md 11; the scale section takes
# about a minute and is make bench's): a small run prints the
# table for every workload and writes CSV whose counts add up (wire covers
# the CP phase, REF bytes are part of it, rsync sent at least its literal
# bytes); bad arguments get MK_EUSAGE and exit 2.  Figures are counts, so
# the same seed gives the same counts twice.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
bad=0
fail() { echo "FAIL: $*"; bad=1; }
command -v rsync >/dev/null || { fail "rsync is missing (make deps installs it)"; exit 1; }
"$M" bench --section bandwidth --blocks 1024 --cps 2 --writes 50 --csv "$d/a" >"$d/out" 2>&1; rc=$?
[ $rc -le 1 ] || { fail "bench exit $rc"; cat "$d/out"; }
for w in seq block small mixed hot; do
    grep -q "^$w " "$d/out" || fail "no table row for $w"
done
python3 - "$d/a/bandwidth.csv" <<'PY' || fail "CSV"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["workload"] for r in rows] == ["seq", "block", "small", "mixed", "hot"], rows
for r in rows:
    n = {k: int(v) for k, v in r.items() if k.endswith("_bytes")}
    assert n["client_bytes"] > 0 and n["wire_bytes"] >= n["cp_phase_bytes"] >= n["ref_bytes"], r
    assert n["rsync_sent_bytes"] >= n["rsync_literal_bytes"] > 0, r
    assert n["ref_bytes"] <= n["ref_naive_bytes"] <= n["naive_bytes"], r
PY
"$M" bench --section bandwidth --blocks 1024 --cps 2 --writes 50 --csv "$d/b" >/dev/null 2>&1
# rsync's total varies by a few bytes of its own metadata; every other
# column is a count of the run and must repeat exactly.
[ "$(cut -d, -f1-9 "$d/a/bandwidth.csv")" = "$(cut -d, -f1-9 "$d/b/bandwidth.csv")" ] || fail "the same seed gave other counts"
for args in "--cps 0" "--blocks x" "--bogus" "extra" "--section bogus"; do
    # shellcheck disable=SC2086
    "$M" bench $args >/dev/null 2>"$d/err"; rc=$?
    [ $rc -eq 2 ] && grep -q MK_EUSAGE "$d/err" || fail "bench $args: exit $rc"
done
exit $bad
