#!/bin/sh
# bench_cpcheck.sh - what the per-CP incremental check adds to a demo run,
# measured side by side: `mirrorkit demo` with --verify off and with the
# default incremental check, alternated ROUNDS times, medians compared.
# Also prints the run's own breakdown (time inside the per-CP checks and
# inside the final full check), which the demo measures with a monotonic
# clock around each check.
#
#   verify/bench_cpcheck.sh [ROUNDS]     (default 11)
set -eu
M=${MIRRORKIT:-build/mirrorkit}
ROUNDS=${1:-11}
now() { date +%s%N; }
off=""; inc=""
for i in $(seq "$ROUNDS"); do
    t0=$(now); $M demo --verify off >/dev/null; t1=$(now)
    $M demo >/tmp/mk_bench_demo.$$; t2=$(now)
    off="$off $(( (t1 - t0) / 1000 ))"; inc="$inc $(( (t2 - t1) / 1000 ))"
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mo=$(median "$off"); mi=$(median "$inc")
echo "demo --verify off:          median $((mo / 1000)) ms over $ROUNDS runs"
echo "demo (incremental + final): median $((mi / 1000)) ms"
awk -v a="$mo" -v b="$mi" 'BEGIN { printf "checking adds %.1f%% to the run (per-CP checks and the final full check)\n", 100 * (b - a) / a }'
grep "verification:" /tmp/mk_bench_demo.$$ | sed 's/^ */last run: /'
rm -f /tmp/mk_bench_demo.$$
