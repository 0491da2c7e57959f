#!/bin/sh
# mirrorkit conform --dest (SPEC.md 10.1, 10.3): the reference destination,
# run as an external process, passes every case; broken implementations
# fail or are UNSUPPORTED, a hung one times out, no process is left behind;
# reports come as lines, TAP and JUnit; bad arguments get MK_EUSAGE, exit 2.
# The source half is tests/t_conform_source.sh; the mutants are make mutants.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
bad=0
fail() { echo "FAIL: $*"; bad=1; }

# ---- the reference passes everything, MUST and SHOULD ------------------------
"$M" conform --dest "$M dest" --strict --junit "$d/all.xml" >"$d/out" 2>"$d/err"; rc=$?
[ $rc -eq 0 ] || { fail "reference dest: exit $rc"; grep -v '^PASS' "$d/out"; cat "$d/err"; }
n=$(grep -c '^PASS ' "$d/out")
[ "$n" -ge 60 ] || fail "only $n dest cases passed (the catalogue has at least 60)"
grep -q "^conform: $n passed, 0 failed" "$d/out" || fail "summary: $(tail -1 "$d/out")"
python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); s = d.documentElement
assert s.tagName == "testsuite" and s.getAttribute("failures") == "0", s.toxml()[:200]
assert len(d.getElementsByTagName("testcase")) == int(s.getAttribute("tests"))' "$d/all.xml" ||
    fail "JUnit XML of the reference run"

# ---- the catalogue: every case names a SPEC section and a level ----------------
"$M" conform --list --dest "$M dest" >"$d/list" || fail "--list exit"
awk 'NF && !/cases$/ && ($3 != "MUST" && $3 != "SHOULD") { print; bad = 1 } END { exit bad }' "$d/list" ||
    fail "a catalogue line without MUST/SHOULD"
awk 'NF && !/cases$/ && $2 !~ /^[0-9]+(\.[0-9]+)*$/ { print; bad = 1 } END { exit bad }' "$d/list" ||
    fail "a catalogue line without a SPEC section"
"$M" conform --list >"$d/both"
total=$(sed -n 's/^\([0-9]*\) cases$/\1/p' "$d/both")
[ "${total:-0}" -ge 60 ] || fail "the whole catalogue has ${total:-0} cases, fewer than 60"

# CONFORMANCE.md lists every case of the catalogue, with the same section.
awk 'NF == 0 || /cases$/ { next } { print $1, $2 }' "$d/both" | while read -r id sec; do
    grep -q "^| \`$id\` | $sec |" CONFORMANCE.md || echo "$id"
done >"$d/undocumented"
[ -s "$d/undocumented" ] && fail "cases missing from CONFORMANCE.md: $(tr '\n' ' ' <"$d/undocumented")"

# ---- selection, TAP ----------------------------------------------------------------
"$M" conform --dest "$M dest" --section 2.1 --tap >"$d/tap"; rc=$?
[ $rc -eq 0 ] || fail "--section 2.1 --tap: exit $rc"
head -1 "$d/tap" | grep -q '^TAP version 13$' || fail "TAP header"
k=$(grep -c '^ok ' "$d/tap")
grep -q "^1\.\.$k\$" "$d/tap" || fail "TAP plan does not match $k results"
grep '^ok ' "$d/tap" | grep -qv '\[2\.1 ' && fail "--section 2.1 ran a case of another section"
"$M" conform --dest "$M dest" --case 'dest-ref-*' >"$d/refs" || fail "--case glob"
grep -q '^PASS  *dest-ref-bad-hash ' "$d/refs" || fail "--case dest-ref-* missed dest-ref-bad-hash"
grep -q '^PASS  *dest-hello' "$d/refs" && fail "--case dest-ref-* ran a hello case"

# ---- broken implementations ----------------------------------------------------------
"$M" conform --dest 'sh -c "exit 1"' --section 2.1 >"$d/out" 2>&1; rc=$?
[ $rc -eq 1 ] || fail "an implementation that exits 1: exit $rc, want 1"
grep -q '^FAIL  *dest-hello-length .*MK_ELENGTH' "$d/out" || fail "no FAIL line naming MK_ELENGTH"
"$M" conform --dest 'sh -c "exit 127"' --section 2.1 >"$d/out" 2>&1; rc=$?
[ $rc -eq 0 ] || fail "an unsupported implementation (exit 127): exit $rc, want 0"
grep -q '^UNSUPPORTED ' "$d/out" || fail "exit 127 is not reported UNSUPPORTED"
# A hung implementation fails by timeout, and nothing of it survives.
start=$(date +%s)
"$M" conform --dest 'sh -c "sleep 300"' --timeout 300 --case dest-hello-length --case dest-valid-sync \
    >"$d/out" 2>&1; rc=$?
[ $rc -eq 1 ] || fail "a hung implementation: exit $rc, want 1"
[ $(( $(date +%s) - start )) -lt 20 ] || fail "a hung implementation held the runner"
grep -q 'within 300 ms' "$d/out" || fail "no timeout reason: $(cat "$d/out")"
pgrep -f 'sleep 300' >/dev/null && fail "a hung implementation's process survived the run"
# A destination that reads everything and never answers passes nothing.
cat >"$d/liar.sh" <<'EOF'
#!/bin/sh
# Echoes nothing and exits 0 at EOF: every case that needs an answer fails.
cat >/dev/null
EOF
chmod +x "$d/liar.sh"
"$M" conform --dest "$d/liar.sh" --timeout 200 >"$d/out" 2>&1; rc=$?
[ $rc -eq 1 ] || fail "a mute destination: exit $rc, want 1"
grep -q '^PASS' "$d/out" && fail "a mute destination passed a case: $(grep '^PASS' "$d/out" | head -3)"

# ---- usage errors --------------------------------------------------------------------
for args in "" "--dest" "--dest x --source y" "--bogus" "--dest $M --timeout 0" \
            "--dest $M --case nomatch" "--dest /nonexistent/prog"; do
    # shellcheck disable=SC2086
    "$M" conform $args >"$d/out" 2>"$d/err"; rc=$?
    [ $rc -eq 2 ] && grep -q 'MK_EUSAGE' "$d/err" || fail "conform $args: exit $rc, $(cat "$d/err")"
done
"$M" conform --help | grep -q -- '--strict' || fail "--help"

exit $bad
