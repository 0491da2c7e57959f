#!/bin/sh
# bench_verify.sh - how fast `mirrorkit verify` compares two 1 GiB images,
# side by side with cmp and xxhsum -H3 on the same files in the same run.
#
#   verify/bench_verify.sh [ROUNDS]        (default 3; needs ~3.2 GiB in /dev/shm)
#
# The images live in /dev/shm so that the page cache, not a disk, feeds
# every tool alike.  Each round runs every command once, in turn, so a
# machine that speeds up or slows down during the run affects all of them;
# the report is the median of the rounds.  GB/s is volume bytes (10^9)
# compared per second: one 1 GiB volume against the other, so every tool
# reads 2 GiB.  The ratio is the median time over cmp's median time on the
# same pair (below 1 is faster than cmp).
set -eu
M=${MIRRORKIT:-build/mirrorkit}
ROUNDS=${1:-3}
SIZE=$((1 << 30))
for t in cmp xxhsum python3; do
    command -v $t >/dev/null || { echo "bench_verify: needs $t" >&2; exit 2; }
done
[ -x "$M" ] || { echo "bench_verify: build $M first (make)" >&2; exit 2; }
d=$(mktemp -d /dev/shm/mk_bench_verify.XXXXXX)
trap 'rm -rf "$d"' EXIT INT TERM

echo "creating two equal 1 GiB images (and one with a single differing byte) in $d"
head -c $SIZE /dev/urandom >"$d/a.img"
cp "$d/a.img" "$d/b.img"
cp "$d/a.img" "$d/c.img"
# One byte in the middle of the volume differs.
printf '\001' | dd of="$d/c.img" bs=1 seek=$((SIZE / 2 + 12345)) conv=notrunc 2>/dev/null
cmp -s "$d/a.img" "$d/c.img" && { echo "bench_verify: c.img does not differ" >&2; exit 2; }
"$M" verify --table --output "$d/a.sum" "$d/a.img"
truncate -s $SIZE "$d/s1.img" "$d/s2.img"

# Every case: its name, the exit code it must end with, and the command.
run_case() {
    case $1 in
    "cmp equal") cmp "$d/a.img" "$d/b.img" ;;
    "xxhsum -H3 equal") xxhsum -H3 "$d/a.img" "$d/b.img" ;;
    "verify equal") "$M" verify "$d/a.img" "$d/b.img" ;;
    "cmp 1 byte differs") cmp "$d/a.img" "$d/c.img" ;;
    "verify 1 byte differs") "$M" verify "$d/a.img" "$d/c.img" ;;
    "verify table vs image") "$M" verify "$d/a.sum" "$d/b.img" ;;
    "verify --table") "$M" verify --table --output "$d/out.sum" "$d/a.img" ;;
    "cmp sparse equal") cmp "$d/s1.img" "$d/s2.img" ;;
    "verify sparse equal") "$M" verify "$d/s1.img" "$d/s2.img" ;;
    esac
}
cases='cmp equal|0
xxhsum -H3 equal|0
verify equal|0
cmp 1 byte differs|1
verify 1 byte differs|1
verify table vs image|0
verify --table|0
cmp sparse equal|0
verify sparse equal|0'

: >"$d/times"
r=1
while [ $r -le "$ROUNDS" ]; do
    echo "$cases" | while IFS='|' read -r name want; do
        t0=$(date +%s%N)
        set +e
        run_case "$name" >/dev/null 2>&1
        rc=$?
        set -e
        t1=$(date +%s%N)
        if [ $rc -ne "$want" ]; then
            echo "bench_verify: '$name' exited $rc, want $want" >&2
            exit 1
        fi
        echo "$name|$(( (t1 - t0) / 1000 ))" >>"$d/times"
    done
    r=$((r + 1))
done

echo
echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -m), median of $ROUNDS rounds, 1 GiB volumes in /dev/shm:"
python3 - "$d/times" "$SIZE" <<'EOF'
import statistics, sys
size = int(sys.argv[2])
times = {}
order = []
for line in open(sys.argv[1]):
    name, us = line.rstrip("\n").split("|")
    if name not in times:
        times[name] = []
        order.append(name)
    times[name].append(int(us) / 1e6)
med = {n: statistics.median(v) for n, v in times.items()}
base = {"equal": med["cmp equal"], "differs": med["cmp 1 byte differs"],
        "sparse": med["cmp sparse equal"]}
print(f"{'case':26} {'median s':>9} {'GB/s':>7} {'vs cmp':>7}   rounds")
for n in order:
    kind = "differs" if "differs" in n else "sparse" if "sparse" in n else "equal"
    ratio = med[n] / base[kind]
    rate = size / 1e9 / med[n] if med[n] > 0 else float("inf")
    print(f"{n:26} {med[n]:9.3f} {rate:7.2f} {ratio:7.2f}   " +
          " ".join(f"{t:.3f}" for t in times[n]))
EOF
