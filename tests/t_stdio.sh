#!/bin/sh
# SPEC.md 10.1: the destination interface over stdin/stdout.  A stream
# recorded from a pair run over a socketpair, replayed into a fresh
# `mirrorkit dest --stdio`, must rebuild byte for byte the same mirror image
# and the same log as the destination of that run had: the destination is a
# deterministic function of the frames it is given.
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'rm -rf "$d" "$kd"' EXIT
kd=
fail() { echo "FAIL: $*"; exit 1; }
$M demo --transport pipe --blocks 1024 --cps 4 --writes 120 --mode semi-sync \
    --record "$d/s.rec" --keep >"$d/run.txt" || fail "pipe run: $(tail -2 "$d/run.txt")"
kd=$(sed -n 's/^destination files kept in //p' "$d/run.txt")
$M dest --stdio --image "$d/m.img" --log "$d/d.log" <"$d/s.rec" >"$d/replies.bin" 2>"$d/err" ||
    fail "dest --stdio exit $?: $(cat "$d/err")"
cmp "$kd/mirror.img" "$d/m.img" || fail "replayed mirror differs"
cmp "$kd/dest.log" "$d/d.log" || fail "replayed log differs"
$M dump "$d/replies.bin" >"$d/replies.txt" || fail "replies are not a valid stream"
[ "$(grep -c ' CP_ACK ' "$d/replies.txt")" = 4 ] || fail "want 4 CP_ACKs: $(grep -c CP_ACK "$d/replies.txt")"
grep -q ' HELLO_ACK ' "$d/replies.txt" || fail "no HELLO_ACK"
# Garbage on stdin: a named error, exit 2, and the files are untouched.
sum=$(cat "$d/m.img" "$d/d.log" | cksum)
head -c 100 /dev/urandom | $M dest --stdio --image "$d/m.img" --log "$d/d.log" >/dev/null 2>"$d/err"
rc=$?
[ $rc -eq 2 ] || fail "garbage on stdin: exit $rc, want 2"
grep -q "MK_EMAGIC" "$d/err" || fail "garbage: $(cat "$d/err")"
[ "$(cat "$d/m.img" "$d/d.log" | cksum)" = "$sum" ] || fail "rejected input changed the files"
echo "ok: dest --stdio replays a recorded stream to identical files; garbage refused"
