#!/bin/sh
# bench_ab.sh - the pair's throughput in this tree against an earlier
# revision's, side by side on the same machine in the same minutes: both
# libraries are built, linked to verify/bench_ab.c (mirrorkit bench's
# throughput configuration over loopback TCP, files in $TMPDIR or
# /dev/shm) and run in turn, old then new, ROUNDS times per mode and load.
# Prints the medians and their ratio: how much faster this tree is.
#
#   verify/bench_ab.sh REV [ROUNDS]      (make bench-ab REV=bb57e14)
#
# REV is any revision with the pair (mk_pair_run); ROUNDS defaults to 3.
set -eu
[ $# -ge 1 ] || { echo "usage: verify/bench_ab.sh REV [ROUNDS]" >&2; exit 2; }
REV=$1
ROUNDS=${2:-3}
case $ROUNDS in '' | *[!0-9]*) echo "bench_ab: ROUNDS must be a number" >&2; exit 2 ;; esac
root=$(git rev-parse --show-toplevel)
cd "$root"
git rev-parse --verify -q "$REV^{commit}" >/dev/null || { echo "bench_ab: no revision $REV" >&2; exit 2; }
tmp=${TMPDIR:-}
[ -n "$tmp" ] || { [ -d /dev/shm ] && tmp=/dev/shm || tmp=/tmp; }
w=$(mktemp -d "$tmp/mk-ab.XXXXXX")
cleanup() { git worktree remove --force "$w/old" >/dev/null 2>&1 || true; rm -rf "$w"; }
trap cleanup EXIT INT TERM
git worktree add --detach -q "$w/old" "$REV"
echo "building $REV and this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', with changes'))"
make -s -C "$w/old" build/libmirrorkit.a >/dev/null
make -s build/libmirrorkit.a >/dev/null
FLAGS="-std=c11 -O2 -D_DEFAULT_SOURCE -D_GNU_SOURCE $(pkg-config --cflags libxxhash 2>/dev/null)"
LIBS="$(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash)"
# shellcheck disable=SC2086
cc $FLAGS -I"$w/old/ref" -I"$w/old/verify" -I"$w/old/fault" -o "$w/ab_old" verify/bench_ab.c \
    "$w/old/build/libmirrorkit.a" $LIBS -lpthread
# shellcheck disable=SC2086
cc $FLAGS -Iref -Iverify -Ifault -o "$w/ab_new" verify/bench_ab.c build/libmirrorkit.a $LIBS -lpthread
mkdir -p "$w/run"
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, loopback TCP, 64 MiB volume, 4 KiB blocks,"
echo "4 CPs a run, files in $w/run; client MB/s, median of $ROUNDS runs each, alternated"
printf '%-10s %-6s %12s %12s %8s\n' mode load "$REV" "this tree" ratio
for m in sync semi-sync async; do
    for l in seq block; do
        old=""
        new=""
        i=0
        while [ $i -lt "$ROUNDS" ]; do
            rm -f "$w/run"/*
            old="$old $("$w/ab_old" $m $l "$w/run")"
            rm -f "$w/run"/*
            new="$new $("$w/ab_new" $m $l "$w/run")"
            i=$((i + 1))
        done
        mo=$(echo "$old" | median)
        mn=$(echo "$new" | median)
        printf '%-10s %-6s %12s %12s %8s\n' $m $l "$mo" "$mn" "$(echo "$mn $mo" | awk '{printf "%.2f", $1 / $2}')"
    done
done
