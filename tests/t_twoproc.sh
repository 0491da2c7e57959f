#!/bin/sh
# Process faults in the two-process mode (issue 4): `mirrorkit dest --listen`
# and `mirrorkit source --connect` as two processes on loopback TCP.
#
# 1. SIGSTOP/SIGCONT (SPEC.md 8.2, 8.5, 10.1).
#  a. The destination is stopped for longer than the 5 s a real connection
#     may go without progress (8.5; MK_PAIR_IDLE_NS in ref/mk_pair.c), then
#     continued.  The source drops the stalled session and reconnects; once
#     the destination runs again it ends the dead session and serves the new
#     one, so the source resumes (8.2): exit 0, every CP verified,
#     reconnects >= 1.  The destination is left serving (10.1).
#  b. The source is stopped for as long, then continued: nothing is lost,
#     the run ends with every CP verified.
# 2. libfiu points of a fault build (fault/POINTS.md) switched at run time
#    with fiu-ctrl in a destination started by fiu-run, while the pair runs.
#  a. ref/dest/log/sync (EIO) and ref/dest/mirror/write with failinfo=2
#     (ENOSPC): a storage failure is an engine error (8.5).  The destination
#     sends ERROR and `mirrorkit dest` exits 3 with "storage failed:
#     MK_EIO|MK_ENOSPC".  The ERROR is fatal to the source (8.5 "Source": a
#     received ERROR, MK_EREMOTE, is not a damaged-bytes code), which exits 3
#     with "destination reported MK_..." (10.3) and does not resume.  A
#     restarted destination recovers from its log (7.6): its last CP is the
#     source's last acknowledged CP, or the next one if that one was
#     committed (exactly the next one, redone by 7.6 step 9, when the mirror
#     write of a committed CP failed, 7.4).  Its mirror is then that CP's
#     image: the image of a fault-free run of as many CPs, same seed.
#  b. ref/link/send enabled at random, then disabled: lost connections cost
#     sessions, not data (8.2).  The destination keeps serving, the source
#     reconnects and resumes, every CP verifies.
#
# The fiu checks need fiu-run/fiu-ctrl (Debian: fiu-utils) and a non-ASan
# fault build (make fault-build): without them they are skipped with a
# SKIP line, as in t_fault.sh (tests/run.sh counts exit 0 as passed).
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
pids=
kept=
trap 'for p in $pids; do kill -s CONT $p 2>/dev/null; kill -9 $p 2>/dev/null; done
      wait 2>/dev/null; rm -rf "$d" $kept' EXIT
trap 'exit 1' INT TERM
bad=0
no() { echo "FAIL: $*"; bad=$((bad + 1)); return 1; }
# The workload of every run: 12 CPs of 400 writes each, sync mode.
CPS=12
W=400
wl="--blocks 4096 --mode sync --writes $W"

# up PID: the process has not exited (a stopped one counts).
up() { kill -0 "$1" 2>/dev/null; }
# reap PID: wait for it, with its exit status; the trap leaves it alone.
reap() {
    wait "$1"
    set -- "$1" $?
    pids=$(echo " $pids " | sed "s/ $1 / /")
    return $2
}
# await FILE PID SECONDS: wait until FILE is non-empty, while PID runs.
await() {
    i=0
    while [ ! -s "$1" ]; do
        up "$2" || return 1
        i=$((i + 1))
        [ $i -gt $(($3 * 20)) ] && return 1
        sleep 0.05
    done
}
# dest NAME CMD...: start CMD (a mirrorkit binary, maybe behind fiu-run)
# as a destination on a port of its own with files $d/NAME.*; sets dpid
# and port.
dest() {
    n=$1
    shift
    "$@" dest --listen 127.0.0.1:0 --port-file "$d/$n.port" --image "$d/$n.img" \
        --log "$d/$n.log" >/dev/null 2>"$d/$n.dest.err" &
    dpid=$!
    pids="$pids $dpid"
    await "$d/$n.port" $dpid 5 && port=$(cat "$d/$n.port") && [ -n "$port" ] ||
        { no "$n: destination did not start: $(cat "$d/$n.dest.err")"; return; }
}
# source NAME BIN: start the source against $port in the background.
source_() {
    $2 source --connect 127.0.0.1:$port $wl --cps $CPS --verify-image "$d/$1.img" \
        --reconnect-timeout 30 >"$d/$1.src" 2>&1 &
    spid=$!
    pids="$pids $spid"
}
# cp1 NAME PID: wait until the destination has applied CP 1 (it writes the
# mirror's Merkle tree file, empty until then; 7.4 step 6), so that a fault
# lands mid-run however fast the disk is.
cp1() { await "$d/$1.img.mkt" $2 30 || no "$1: CP 1 was never applied: $(tail -3 "$d/$1.src")"; }
verified() { sed -n 's/^summary: \([0-9]*\)\/.*/\1/p' "$1"; }
issued() { sed -n 's/^summary: [0-9]*\/[0-9]* CPs verified, \([0-9]*\) writes.*/\1/p' "$1"; }
reconnects() { sed -n 's/.*reconnects \([0-9]*\).*/\1/p' "$1"; }
# stop_all: end whatever a check left running (after a failure).
stop_all() {
    for p in $pids; do kill -s CONT $p; kill -9 $p; wait $p; done 2>/dev/null
    pids=
}
srcfail() { grep -E "^summary|reconnects|^result" "$1" | sed 's/^/    /'; }

# ---- 1a. The destination stopped past the source's idle timeout (8.5) ----
check_dest_stop() {
    dest stop "$M" || return
    source_ stop "$M"
    cp1 stop $spid || return
    kill -s STOP $dpid
    # Longer than the 5 s idle timeout, and shorter than two of them: the
    # source drops the stalled session once and waits in its new one.
    sleep 6.5
    kill -s CONT $dpid
    reap $spid
    rc=$?
    [ $rc -eq 0 ] && grep -q "^summary: $CPS/$CPS CPs verified" "$d/stop.src" ||
        { no "1a: destination stopped 6.5 s: source exit $rc, want 0 and $CPS/$CPS CPs verified:"
          srcfail "$d/stop.src"; return; }
    n=$(reconnects "$d/stop.src")
    [ "${n:-0}" -ge 1 ] || { no "1a: want reconnects >= 1 (the stall resumed), got '${n:-}'"; return; }
    # The destination is still serving (10.1) and ends in order.
    up $dpid || { no "1a: the destination exited: $(cat "$d/stop.dest.err")"; return; }
    kill $dpid
    reap $dpid
    rc=$?
    [ $rc -eq 0 ] || { no "1a: destination exit $rc after SIGTERM: $(cat "$d/stop.dest.err")"; return; }
    echo "ok: 1a destination SIGSTOPped 6.5 s: source resumed (reconnects $n), $CPS/$CPS CPs verified"
}

# ---- 1b. The source stopped, then continued ----
check_source_stop() {
    dest sstop "$M" || return
    source_ sstop "$M"
    cp1 sstop $spid || return
    kill -s STOP $spid
    sleep 6
    kill -s CONT $spid
    reap $spid
    rc=$?
    [ $rc -eq 0 ] && grep -q "^summary: $CPS/$CPS CPs verified" "$d/sstop.src" ||
        { no "1b: source stopped 6 s: exit $rc, want 0 and $CPS/$CPS CPs verified:"
          srcfail "$d/sstop.src"; return; }
    up $dpid || { no "1b: the destination exited: $(cat "$d/sstop.dest.err")"; return; }
    kill $dpid
    reap $dpid || { no "1b: destination exit $? after SIGTERM"; return; }
    echo "ok: 1b source SIGSTOPped 6 s: $CPS/$CPS CPs verified (reconnects $(reconnects "$d/sstop.src"))"
}

# ---- 2. fiu-ctrl against a running destination ----
# ctl PID CMD: send one libfiu remote-control command.  fiu-ctrl exits 0
# even when it fails, and says so on stdout.  It then waits for the reply
# on a FIFO, which a process that the fault ended at once may never write:
# that wait is cut short (timeout kills fiu-ctrl's process group), and
# what the fault did is checked afterwards.
ctl() {
    out=$(timeout 5 fiu-ctrl -f "$d/fiu" -c "$2" "$1" 2>&1)
    [ $? -eq 124 ] && ! up "$1" && return 0
    [ -z "$out" ] || { no "fiu-ctrl -c '$2' $1: $out"; return; }
}

# storage NAME POINT-COMMAND ERROR: an engine error in the middle of a run.
storage() {
    n=$1 cmd=$2 err=$3
    dest $n fiu-run -x -f "$d/fiu" $F || return
    source_ $n "$M"
    cp1 $n $spid || return
    ctl $dpid "$cmd" || return
    reap $spid
    rc=$?
    reap $dpid
    drc=$?
    # The source stops with the destination's error, named, exit 3 (8.5, 10.3).
    [ $rc -eq 3 ] && grep -q "^result: FAILED: destination reported $err" "$d/$n.src" ||
        { no "2a $n: source exit $rc, want 3 and 'destination reported $err':"
          srcfail "$d/$n.src"; return; }
    a=$(verified "$d/$n.src")
    w=$(issued "$d/$n.src")
    [ -n "$a" ] && [ "$a" -lt $CPS ] || { no "2a $n: the fault did not land mid-run"; return; }
    # The destination stops on the engine error, named, exit 3 (8.5).
    [ $drc -eq 3 ] && grep -q "^mirrorkit dest: storage failed: $err" "$d/$n.dest.err" ||
        { no "2a $n: destination exit $drc, want 3 and 'storage failed: $err':"
          cat "$d/$n.dest.err"; return; }
    # A restart recovers from the log (7.6) and serves an (empty) session.
    $M dest --stdio --image "$d/$n.img" --log "$d/$n.log" </dev/null >/dev/null \
        2>"$d/$n.restart.err" ||
        { no "2a $n: restarted destination exit $?: $(cat "$d/$n.restart.err")"; return; }
    line=$(grep "^mirrorkit dest: log .*: last CP" "$d/$n.restart.err")
    k=$(echo "$line" | sed -n 's/.*last CP \([0-9]*\),.*/\1/p')
    t=$(echo "$line" | sed -n 's/.*durable transfer \([0-9]*\),.*/\1/p')
    redone=$(echo "$line" | sed -n 's/.* \([0-9]*\) CP redone.*/\1/p')
    [ -n "$k" ] && [ -n "$t" ] || { no "2a $n: no recovery line: $(cat "$d/$n.restart.err")"; return; }
    # Every acknowledged CP and transfer survived; nothing the source never
    # sent appeared (I1, 4.4, 7.4).
    [ "$k" -ge "$a" ] && [ "$k" -le $((a + 1)) ] ||
        { no "2a $n: recovered last CP $k, source acknowledged $a: want $a or $((a + 1))"; return; }
    [ "$t" -ge $((a * W)) ] && [ "$t" -le "$w" ] ||
        { no "2a $n: recovered durable transfer $t, want $((a * W))..$w"; return; }
    if [ "${4:-}" = redo ]; then
        # The mirror write of a committed CP failed: the restart redoes it.
        [ "$k" -eq $((a + 1)) ] && [ "$redone" = 1 ] ||
            { no "2a $n: want CP $((a + 1)) redone, got: $line"; return; }
    fi
    # The recovered mirror is CP k's image: that of a fault-free run of k CPs.
    $M demo --transport pipe --keep $wl --cps $k >"$d/$n.ref" 2>&1 ||
        { no "2a $n: fault-free run of $k CPs: exit $?: $(tail -2 "$d/$n.ref")"; return; }
    r=$(sed -n 's/^destination files kept in //p' "$d/$n.ref")
    kept="$kept $r"
    $M verify "$d/$n.img" "$r/mirror.img" >"$d/$n.verify" 2>&1 ||
        { no "2a $n: recovered mirror is not CP $k's image:"; head -8 "$d/$n.verify"; return; }
    echo "ok: 2a fiu-ctrl '$cmd' mid-run: both exit 3 naming $err; source had $a/$CPS CPs;" \
        "restart recovered CP $k (redone $redone), durable transfer $t, mirror = CP $k image"
}

check_link() {
    dest link fiu-run -x -f "$d/fiu" $F || return
    source_ link "$M"
    cp1 link $spid || return
    ctl $dpid 'enable_random name=ref/link/send,probability=0.02' || return
    sleep 0.5
    ctl $dpid 'disable name=ref/link/send' || return
    reap $spid
    rc=$?
    [ $rc -eq 0 ] && grep -q "^summary: $CPS/$CPS CPs verified" "$d/link.src" ||
        { no "2b: link resets: source exit $rc, want 0 and $CPS/$CPS CPs verified:"
          srcfail "$d/link.src"; return; }
    n=$(reconnects "$d/link.src")
    [ "${n:-0}" -ge 1 ] || { no "2b: want reconnects >= 1, got '${n:-}'"; return; }
    up $dpid || { no "2b: the destination exited: $(cat "$d/link.dest.err")"; return; }
    kill $dpid
    reap $dpid || { no "2b: destination exit $? after SIGTERM: $(cat "$d/link.dest.err")"; return; }
    ! grep -q "storage failed" "$d/link.dest.err" || { no "2b: $(cat "$d/link.dest.err")"; return; }
    echo "ok: 2b fiu-ctrl ref/link/send resets for 0.5 s then disabled: source resumed" \
        "(reconnects $n), $CPS/$CPS CPs verified, destination still serving"
}

check_dest_stop; stop_all
check_source_stop; stop_all

has_points() { [ -x "$1" ] && "$1" faults --list | grep -q "compiled in"; }
F=$M
has_points "$F" && ! grep -qa __asan_init "$F" || F=build/fault/mirrorkit
if ! command -v fiu-run >/dev/null || ! command -v fiu-ctrl >/dev/null ||
    ! command -v timeout >/dev/null; then
    fiu="SKIP: 2 (fiu-run/fiu-ctrl checks): no fiu-run, fiu-ctrl or timeout (Debian: apt-get install fiu-utils)"
elif ! has_points "$F" || grep -qa __asan_init "$F"; then
    fiu="SKIP: 2 (fiu-run/fiu-ctrl checks): no non-ASan fault build at $F (make fault-build)"
else
    fiu=
    storage eio 'enable name=ref/dest/log/sync' MK_EIO; stop_all
    storage enospc 'enable name=ref/dest/mirror/write,failinfo=2' MK_ENOSPC redo; stop_all
    check_link; stop_all
fi

[ $bad -eq 0 ] || { echo "FAIL: $bad check(s) of tests/t_twoproc.sh failed"; exit 1; }
if [ -n "$fiu" ]; then
    echo "$fiu"
    echo "ok: two-process faults: SIGSTOP of either process resumed (fiu checks skipped)"
else
    echo "ok: two-process faults: SIGSTOP of either process resumed; fiu-ctrl storage" \
        "faults named and recovered; link resets resumed"
fi
