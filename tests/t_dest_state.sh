#!/bin/sh
# The destination's files as an operator meets them, driven through the
# source-under-test interface of SPEC.md 10.2 (client commands on stdin,
# "ack N" / "cp-ack K" / "error MK_NAME" answers on stdout).
#  - SPEC.md 8.4 / I2: in sync mode every acknowledged write survives the
#    loss of the source: promotion replays the log after the last CP onto
#    the image, which then equals everything the source acknowledged.
#  - SPEC.md 2.3 / 8.3: a non-empty image with a new (lost) log is refused
#    with MK_EDIVERGED and left untouched.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'kill $dpid 2>/dev/null; rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
start_dest() {
    rm -f "$d/port"
    $M dest --listen 127.0.0.1:0 --port-file "$d/port" --image "$d/m.img" --log "$d/d.log" --once \
        >/dev/null 2>>"$d/dest.err" &
    dpid=$!
    for i in $(seq 50); do [ -s "$d/port" ] && break; sleep 0.1; done
    port=$(cat "$d/port")
}
hex() { python3 -c "import sys; print(sys.argv[1] * int(sys.argv[2]))" "$1" "$2"; }

# Client writes: CP 1 covers the first two; the last three are only logged.
start_dest
{
    echo "write 0 $(hex aa 4096)"
    echo "write 4196 $(hex bb 50)"
    echo "cp"
    echo "write 8192 $(hex cc 8192)"
    echo "write 10 $(hex dd 5)"
    echo "write 61440 $(hex ee 4096)"
    echo "quit"
} | $M source --connect 127.0.0.1:$port --blocks 16 --mode sync --script - >"$d/acks" 2>"$d/src.err" ||
    fail "source: $(tail -2 "$d/src.err")"
wait $dpid
[ "$(grep -c '^ack ' "$d/acks")" = 5 ] || fail "acks: $(cat "$d/acks")"
grep -q '^cp-ack 1$' "$d/acks" || fail "no cp-ack"
# The source is now lost.  Promote the destination.
$M dest --promote --image "$d/m.img" --log "$d/d.log" 2>"$d/promote.err" ||
    fail "promote: $(cat "$d/promote.err")"
python3 - "$d/want.img" <<'PY'
import sys
v = bytearray(16 * 4096)
def w(off, b): v[off:off + len(b)] = b
w(0, b"\xaa" * 4096); w(4196, b"\xbb" * 50); w(8192, b"\xcc" * 8192)
w(10, b"\xdd" * 5); w(61440, b"\xee" * 4096)
open(sys.argv[1], "wb").write(v)
PY
cmp "$d/want.img" "$d/m.img" || fail "promoted image differs from the acknowledged writes"
[ "$(stat -c %s "$d/d.log")" = 0 ] || fail "log not retired after promotion"
echo "ok: promotion holds every acknowledged write (I2)"

# The log is gone but the image holds data: refused, image untouched.
sum=$(cksum <"$d/m.img")
start_dest
$M source --connect 127.0.0.1:$port --blocks 16 --cps 1 --writes 3 >"$d/src2.out" 2>&1; rc=$?
wait $dpid
[ $rc -ne 0 ] || fail "source against a diverged destination exited 0"
grep -q "destination reported MK_EDIVERGED" "$d/src2.out" || fail "$(tail -2 "$d/src2.out")"
[ "$(cksum <"$d/m.img")" = "$sum" ] || fail "refused session changed the image"
echo "ok: non-empty image with a new log refused with MK_EDIVERGED, untouched"

# SPEC.md 10.2: a malformed command line is answered "error MK_EUSAGE",
# exit 2, after the writes before it were acknowledged.
rm -f "$d/m.img" "$d/d.log"
start_dest
printf 'write 0 %s\nwrite 512 zz\ncp\n' "$(hex 11 512)" |
    $M source --connect 127.0.0.1:$port --blocks 16 --script - >"$d/acks" 2>"$d/src.err"; rc=$?
wait $dpid
[ $rc -eq 2 ] || fail "bad script line: exit $rc, want 2"
[ "$(cat "$d/acks")" = "$(printf 'ack 1\nerror MK_EUSAGE')" ] || fail "answers: $(cat "$d/acks")"
grep -q "script line 2: MK_EUSAGE" "$d/src.err" || fail "$(cat "$d/src.err")"
echo "ok: a bad script line is named with its line number, exit 2"
