#!/bin/sh
# SPEC.md 7.6, 8.2: the pair as two processes over loopback TCP.  The
# destination is killed with SIGKILL in the middle of the run and started
# again on the same files; it must recover from its log, the source must
# reconnect and resume, and every CP must still verify against the image.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'kill -9 $dpid 2>/dev/null; rm -rf "$d"' EXIT
$M dest --listen 127.0.0.1:0 --port-file "$d/port" --image "$d/m.img" --log "$d/d.log" \
    2>"$d/dest1.err" >/dev/null &
dpid=$!
for i in $(seq 50); do [ -s "$d/port" ] && break; sleep 0.1; done
port=$(cat "$d/port")
[ -n "$port" ] || { echo "FAIL: destination did not start"; cat "$d/dest1.err"; exit 1; }
$M source --connect 127.0.0.1:$port --blocks 4096 --mode sync --cps 12 --writes 400 \
    --verify-image "$d/m.img" --reconnect-timeout 30 >"$d/src.out" 2>&1 &
spid=$!
# Kill once CP 2 is verified, not after a fixed sleep: a faster build or
# machine finished the whole run inside 1.5 s and the kill missed it.  Ten
# CPs remain, so the kill lands mid-run however fast the pair is.
for i in $(seq 300); do
    grep -q "^   2 " "$d/src.out" 2>/dev/null && break
    kill -0 $spid 2>/dev/null || break
    sleep 0.05
done
grep -q "^   2 " "$d/src.out" || { echo "FAIL: source never reported CP 2"; cat "$d/src.out"; exit 1; }
kill -9 $dpid
wait $dpid 2>/dev/null
sleep 0.5
$M dest --listen 127.0.0.1:$port --image "$d/m.img" --log "$d/d.log" --once \
    2>"$d/dest2.err" >/dev/null &
dpid=$!
wait $spid
rc=$?
# The restarted destination ends with its one session; one that never got
# a session (the source gave up or finished first) must not hang the test.
for i in $(seq 50); do kill -0 $dpid 2>/dev/null || break; sleep 0.1; done
kill $dpid 2>/dev/null && echo "restarted destination had no session to end"
wait $dpid
drc=$?
fail=0
grep -q "^summary: 12/12 CPs verified" "$d/src.out" || fail=1
grep -qE "reconnects [1-9]" "$d/src.out" || { echo "FAIL: the kill did not land mid-run"; fail=1; }
grep -q "mirrorkit dest: log .*: last CP" "$d/dest2.err" || fail=1
if [ $rc -ne 0 ] || [ $drc -ne 0 ] || [ $fail -ne 0 ]; then
    echo "FAIL: source exit $rc, restarted destination exit $drc"
    tail -6 "$d/src.out"; cat "$d/dest1.err" "$d/dest2.err"
    exit 1
fi
grep -E "^summary|NAKs" "$d/src.out"
head -1 "$d/dest2.err"
echo "ok: destination SIGKILLed mid-run, recovered, source resumed, 12 CPs verified"
