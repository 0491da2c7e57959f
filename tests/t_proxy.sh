#!/bin/sh
# SPEC.md 8.2, 8.5 through `mirrorkit proxy`, the loopback TCP fault proxy.  A real
# source talks to a real destination through it; link faults cost sessions,
# never data: with dropped frames and latency every CP still verifies, and a
# reset_peer makes the source reconnect through the proxy and resume.  A bad
# --link spec is a usage error (exit 2, MK_EUSAGE).
set -u
M=${MIRRORKIT:-build/mirrorkit}
D=$(mktemp -d)
dpid=; ppid_=
trap 'kill $dpid $ppid_ 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
wait_port() { for i in $(seq 50); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }

# run NAME LINK: a fresh destination, a proxy with LINK in front of it, and
# a source through the proxy that must verify every CP.
run() {
    rm -f "$D/dport" "$D/pport" "$D/m.img" "$D/m.img.mkt" "$D/d.log"
    $M dest --listen 127.0.0.1:0 --port-file "$D/dport" --image "$D/m.img" --log "$D/d.log" \
        >/dev/null 2>"$D/dest.$1.err" &
    dpid=$!
    wait_port "$D/dport" || fail "$1: dest wrote no port: $(cat "$D/dest.$1.err")"
    DPORT=$(cat "$D/dport")
    $M proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:$DPORT --link "$2" \
        --port-file "$D/pport" >/dev/null 2>"$D/proxy.$1.err" &
    ppid_=$!
    wait_port "$D/pport" || fail "$1: proxy wrote no port: $(cat "$D/proxy.$1.err")"
    PPORT=$(cat "$D/pport")
    $M source --connect 127.0.0.1:$PPORT --blocks 1024 --cps 4 --writes 100 --mode semi-sync \
        --verify-image "$D/m.img" --reconnect-timeout 10 >"$D/src.$1.out" 2>&1 ||
        fail "$1: source exit $?: $(tail -5 "$D/src.$1.out"; tail -3 "$D/proxy.$1.err")"
    grep -q "4/4 CPs verified" "$D/src.$1.out" || fail "$1: $(tail -5 "$D/src.$1.out")"
    kill $ppid_ $dpid; wait $ppid_ $dpid 2>/dev/null; ppid_=; dpid=
}

# Drops both ways (SPEC.md 8.5): a lost frame to the destination shows as a
# sequence gap and ends the session; a lost reply leaves the source waiting,
# and after 5 s without progress it drops the stalled session and resumes.
run drop 'drop prob=1/300; latency ms=1'
grep -q "frames dropped" "$D/proxy.drop.err" || fail "drop: proxy logged no connection"

run reset 'reset_peer after=200000'
n=$(sed -n 's/.*reconnects \([0-9]*\).*/\1/p' "$D/src.reset.out")
[ "${n:-0}" -ge 1 ] || fail "reset: want reconnects >= 1, got '${n:-}': $(grep reconnects "$D/src.reset.out")"
grep -q "reset by link fault" "$D/proxy.reset.err" || fail "reset: proxy: $(cat "$D/proxy.reset.err")"

# A bad spec, and a listen address off loopback: usage errors, exit 2.
$M proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:$DPORT --link 'latencyy ms=1' \
    >/dev/null 2>"$D/bad.err"; rc=$?
[ $rc -eq 2 ] || fail "bad --link exit $rc, want 2"
grep -q "MK_EUSAGE" "$D/bad.err" || fail "bad --link: $(cat "$D/bad.err")"
$M proxy --listen 0.0.0.0:0 --upstream 127.0.0.1:$DPORT >/dev/null 2>"$D/any.err"; rc=$?
[ $rc -eq 2 ] && grep -q "MK_EUSAGE.*loopback" "$D/any.err" || fail "non-loopback listen: exit $rc: $(cat "$D/any.err")"
echo "ok: proxy drops/latency and reset_peer cost sessions, not data; bad specs refused"
