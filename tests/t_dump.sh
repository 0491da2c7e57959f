#!/bin/sh
# mirrorkit dump (SPEC.md 3, 7.3): a recorded stream and a destination log
# decode frame by frame; malformed input is reported at its exact offset
# with a named error and exit 2.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

$M demo --blocks 1024 --cps 2 --writes 50 --record "$d/s.rec" >/dev/null || fail "demo --record"
$M dump "$d/s.rec" >"$d/s.txt" || fail "dump of a recorded stream exited $?"
for t in HELLO LOG CP_BEGIN CP_REF CP_DATA CP_COMMIT; do
    grep -q " $t " "$d/s.txt" || fail "no $t frame in the dump"
done
frames=$(grep -c '^@' "$d/s.txt")
tail -1 "$d/s.txt" | grep -q "^# $frames frames, $(stat -c %s "$d/s.rec") bytes" ||
    fail "frame count line wrong: $(tail -1 "$d/s.txt")"
head -1 "$d/s.txt" | grep -q "^@0 seq=0 HELLO .*nblocks=1024 block_size=4096 mode=sync" ||
    fail "first line: $(head -1 "$d/s.txt")"

# One flipped byte inside the third frame: reported at that frame's offset.
off3=$(sed -n 3p "$d/s.txt" | sed 's/^@\([0-9]*\).*/\1/')
cp "$d/s.rec" "$d/bad.rec"
printf '\377' | dd of="$d/bad.rec" bs=1 seek=$((off3 + 30)) conv=notrunc 2>/dev/null
$M dump "$d/bad.rec" >/dev/null 2>"$d/err"; rc=$?
[ $rc -eq 2 ] || fail "corrupt stream: exit $rc, want 2"
grep -q "offset $off3: MK_ECHECKSUM" "$d/err" || fail "corrupt stream: $(cat "$d/err")"

# Cut in the middle of a frame: MK_ETRUNC at the start of that frame.
head -c $((off3 + 10)) "$d/s.rec" >"$d/cut.rec"
$M dump "$d/cut.rec" >/dev/null 2>"$d/err"; rc=$?
[ $rc -eq 2 ] && grep -q "offset $off3: MK_ETRUNC" "$d/err" || fail "truncated stream: $rc $(cat "$d/err")"

# Not ours at all, and a missing file.
echo "hello world" >"$d/junk"
$M dump "$d/junk" 2>"$d/err"; rc=$?
[ $rc -eq 2 ] && grep -q "offset 0: MK_EMAGIC" "$d/err" || fail "junk: $rc $(cat "$d/err")"
$M dump "$d/nope" 2>"$d/err"; rc=$?
[ $rc -eq 2 ] && grep -q "nope" "$d/err" || fail "missing file: $rc $(cat "$d/err")"

# A destination log from a real pair run (kept with --keep).
$M demo --transport pipe --blocks 512 --cps 2 --writes 30 --keep >"$d/keep.txt" || fail "pipe demo"
kd=$(sed -n 's/^destination files kept in //p' "$d/keep.txt")
$M dump "$kd/dest.log" >"$d/log.txt" || fail "dump of a log exited $?"
grep -q "^@0 header slot 0: generation=" "$d/log.txt" || fail "log header: $(head -2 "$d/log.txt")"
grep -q "^# open: ok: last CP 2" "$d/log.txt" || fail "open verdict: $(tail -1 "$d/log.txt")"
# A log with live records: replay the first half of the recorded stream
# into a fresh destination.  Then tear its last record: dump reports
# MK_ETORN where the valid records end, exit 2, the open verdict says the
# tail would be cut, and the file itself is not changed.
half=$(( $(stat -c %s "$d/s.rec") / 2 ))
head -c $half "$d/s.rec" | $M dest --stdio --image "$d/h.img" --log "$d/h.log" >/dev/null 2>&1
$M dump "$d/h.log" >"$d/h.txt" || fail "dump of a live log exited $?"
grep -q " R_TRANSFER " "$d/h.txt" || fail "no transfer records in the live log"
size=$(stat -c %s "$d/h.log")
head -c $((size - 5)) "$d/h.log" >"$d/torn.log"
$M dump "$d/torn.log" >"$d/torn.txt" 2>"$d/err"; rc=$?
[ $rc -eq 2 ] && grep -q "MK_ETORN: valid records end here" "$d/err" &&
    grep -q "tail bytes would be cut" "$d/torn.txt" || fail "torn log: $rc $(cat "$d/err")"
[ "$(stat -c %s "$d/torn.log")" = $((size - 5)) ] || fail "dump changed the file"
rm -rf "$kd"
echo "ok: dump decodes streams and logs, reports bad input at its offset"
