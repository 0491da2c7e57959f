#!/bin/sh
# SPEC.md 1.3, 2.3: a destination takes frames only from the one source of its
# session.  A second connection during a session is sent ERROR MK_EPEER and
# closed; a source whose source_id differs from the one in the destination's
# log is refused with MK_EPEER; and neither changes the mirror or the log.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'kill $dpid $spid 2>/dev/null; rm -rf "$d"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
$M dest --listen 127.0.0.1:0 --port-file "$d/port" --image "$d/m.img" --log "$d/d.log" \
    >/dev/null 2>"$d/dest.err" &
dpid=$!
for i in $(seq 50); do [ -s "$d/port" ] && break; sleep 0.1; done
port=$(cat "$d/port")
# A long session from the rightful source...
$M source --connect 127.0.0.1:$port --blocks 1024 --cps 40 --writes 200 --mode sync \
    >"$d/src.out" 2>&1 &
spid=$!
# The session is under way once the source reports CP 1 (a fixed sleep
# would race a fast machine to the end of the run).
for i in $(seq 200); do
    grep -q "^   1 " "$d/src.out" 2>/dev/null && break
    sleep 0.05
done
# ...and an intruder connecting meanwhile: it must get ERROR MK_EPEER.
python3 - "$port" "$d/intruder.bin" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
data = b""
while True:
    try:
        b = s.recv(4096)
    except socket.timeout:
        break
    if not b:
        break
    data += b
open(sys.argv[2], "wb").write(data)
PY
$M dump "$d/intruder.bin" >"$d/intruder.txt" || fail "intruder got no valid frame"
grep -q "ERROR .*code=MK_EPEER" "$d/intruder.txt" || fail "intruder got: $(cat "$d/intruder.txt")"
wait $spid || fail "the rightful source failed: $(tail -3 "$d/src.out")"
grep -q "^summary: 40/40 CPs verified" "$d/src.out" || fail "source: $(tail -3 "$d/src.out")"
# A different source against the same log: refused, nothing changed.
sum_before=$(cat "$d/m.img" "$d/d.log" | cksum)
$M source --connect 127.0.0.1:$port --blocks 1024 --source-id 42 --cps 1 --writes 5 \
    >"$d/src2.out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "foreign source exit $rc, want 2"
grep -q "destination reported MK_EPEER" "$d/src2.out" || fail "foreign source: $(tail -2 "$d/src2.out")"
[ "$(cat "$d/m.img" "$d/d.log" | cksum)" = "$sum_before" ] || fail "refused source changed the mirror or log"
echo "ok: second connection and foreign source refused with MK_EPEER, nothing changed"
