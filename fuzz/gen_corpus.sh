#!/bin/sh
# fuzz/gen_corpus.sh - regenerates the seed corpora of fuzz_log, fuzz_sync
# and fuzz_source, and fuzz_sync's recorded prefixes (fuzz/mk_fuzz_sync_prefix.h).
#
#   fuzz/gen_corpus.sh            (from the top of the repository)
#
# 1. Records source->destination streams with `mirrorkit demo --record`:
#    small volumes, every mode, several block sizes and workloads.
# 2. fuzz/tools/seedgen.c cuts them into inputs of each harness (input
#    layout: fuzz/mk_fuzz_util.h): fuzz_log gets each stream after its
#    HELLO, whole and cut after a CP, plus variants in which a REF fails
#    (bad hash, slot or tid, with the DATA resend a source would send), a
#    reconnect, a resume in the middle of a CP, TREE_QUERYs and an ERROR.
#    fuzz_sync gets recordings cut before a CP_BEGIN: the part before is
#    compiled into the harness as its prefix, CP K onward are the inputs.
#    fuzz_source's seeds come from ref/'s two engines run against each
#    other (a recording holds only the source->destination direction):
#    plain CPs, a NAK, a NAK for a block rewritten after the CP started,
#    a resume with a lost CP_ACK, a lost log tail and a Merkle descent.
# 3. Builds the AFL++ harnesses and minimises each corpus with afl-cmin
#    into fuzz/corpus/<target> (the replay of `make fuzz-replay` then
#    checks every seed against the oracles).
set -eu
cd "$(dirname "$0")/.."
# afl-cmin refuses to work in /tmp, so the scratch space is under build/.
mkdir -p build
TMP=$(mktemp -d "$PWD/build/gen-corpus.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

make -s build/mirrorkit build/libmirrorkit.a
MK=build/mirrorkit
mkdir -p build/fuzz-tools
cc -std=c11 -Wall -Wextra -Werror -D_DEFAULT_SOURCE -D_GNU_SOURCE \
   $(pkg-config --cflags libxxhash 2>/dev/null) -Iref -Iverify -Ifuzz -O1 -g \
   -o build/fuzz-tools/seedgen fuzz/tools/seedgen.c build/libmirrorkit.a \
   $(pkg-config --libs libxxhash 2>/dev/null || echo -lxxhash)
SEEDGEN=build/fuzz-tools/seedgen

rec() { # rec NAME ARGS...: a demo run recorded into $TMP/NAME.rec
    name=$1; shift
    $MK demo "$@" --record "$TMP/$name.rec" > "$TMP/$name.out" ||
        { cat "$TMP/$name.out"; exit 1; }
}

# fuzz_log: variant = volume index (MKFU_LOG_VOLUMES) + 8 * (mode - 1)
mkdir -p "$TMP/raw/fuzz_log" "$TMP/raw/fuzz_sync" "$TMP/raw/fuzz_source"
rec l_semi64  --blocks 64  --block-size 512  --mode semi-sync --workload mixed   --seed 1 --cps 3 --writes 10
rec l_sync64  --blocks 64  --block-size 512  --mode sync      --workload whole   --seed 2 --cps 3 --writes 8
rec l_async64 --blocks 64  --block-size 512  --mode async     --workload mixed   --seed 3 --cps 2 --writes 10
rec l_hot16   --blocks 16  --block-size 1024 --mode semi-sync --workload hot     --seed 4 --cps 3 --writes 8
rec l_part8   --blocks 8   --block-size 4096 --mode sync      --workload partial --seed 5 --cps 2 --writes 4
rec l_one     --blocks 1   --block-size 512  --mode sync      --workload whole   --seed 6 --cps 3 --writes 4
rec l_three   --blocks 3   --block-size 512  --mode semi-sync --workload mixed   --seed 7 --cps 3 --writes 6
rec l_seq100  --blocks 100 --block-size 512  --mode semi-sync --workload seq     --seed 8 --cps 2 --writes 6
rec l_mix33   --blocks 33  --block-size 2048 --mode sync      --workload mixed   --seed 9 --cps 2 --writes 6
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" semi64  8  "$TMP/l_semi64.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" sync64  0  "$TMP/l_sync64.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" async64 16 "$TMP/l_async64.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" hot16   9  "$TMP/l_hot16.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" part8   2  "$TMP/l_part8.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" one     3  "$TMP/l_one.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" three   12 "$TMP/l_three.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" seq100  13 "$TMP/l_seq100.rec"
SEEDGEN_MAX=32768 $SEEDGEN log "$TMP/raw/fuzz_log" mix33   6  "$TMP/l_mix33.rec"

# fuzz_sync: prefixes (kept small: every iteration replays one)
rec s_semi64  --blocks 64 --block-size 512  --mode semi-sync --workload mixed --seed 11 --cps 3 --writes 4
rec s_sync64  --blocks 64 --block-size 512  --mode sync      --workload whole --seed 12 --cps 2 --writes 4
rec s_hot16   --blocks 16 --block-size 1024 --mode semi-sync --workload hot   --seed 13 --cps 3 --writes 4
rec s_three   --blocks 3  --block-size 512  --mode sync      --workload mixed --seed 14 --cps 3 --writes 4
rec s_async64 --blocks 64 --block-size 512  --mode async     --workload mixed --seed 15 --cps 2 --writes 6
SEEDGEN_MAX=24576 $SEEDGEN sync fuzz/mk_fuzz_sync_prefix.h "$TMP/raw/fuzz_sync" \
    semi64_cp1="$TMP/s_semi64.rec:1" semi64_cp2="$TMP/s_semi64.rec:2" \
    sync64_cp1="$TMP/s_sync64.rec:1" hot16_cp2="$TMP/s_hot16.rec:2" \
    three_cp2="$TMP/s_three.rec:2" async64_cp1="$TMP/s_async64.rec:1"

# fuzz_source: the engines against each other
SEEDGEN_MAX=40960 $SEEDGEN source "$TMP/raw/fuzz_source"

# Build the AFL++ harnesses as `make fuzz-build` does, then minimise.
for t in fuzz_log fuzz_sync fuzz_source; do
    make -s B=build/fuzz-afl CC=afl-clang-fast CFLAGS="-O2 -g" \
        EXTRA_CFLAGS=-DMK_FUZZ_ANY_CHECKSUM build/fuzz-afl/fuzz/$t
    rm -rf "$TMP/min-$t"
    AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 afl-cmin -i "$TMP/raw/$t" -o "$TMP/min-$t" \
        -- build/fuzz-afl/fuzz/$t > "$TMP/cmin-$t.log" 2>&1 ||
        { tail -20 "$TMP/cmin-$t.log"; exit 1; }
    rm -rf fuzz/corpus/$t
    mkdir -p fuzz/corpus/$t
    cp "$TMP/min-$t"/* fuzz/corpus/$t/
    echo "gen_corpus: $t: $(ls "$TMP/raw/$t" | wc -l) seeds, $(ls fuzz/corpus/$t | wc -l) after afl-cmin"
done
