#!/bin/sh
# make fuzz-mutants: do the fuzz harnesses' oracles catch real bugs in the
# destination?  For every destination mutant of verify/MUTANTS.md (a
# planted bug behind -DMK_MUTANT_<NAME>), the files it touches are compiled
# again with the flag, the replay drivers of fuzz_log, fuzz_sync and
# fuzz_logstore are linked with them, and the checked-in corpora are
# replayed: an input that aborts is an oracle (the SPEC model, I4, I5)
# seeing the bug.  Prints, per mutant, how many inputs of each corpus
# catch it.  Finding them needs no campaign: the corpora already drive the
# paths; a campaign is for bugs nobody planted.
#
# Needs MK_CFLAGS, MK_LIBS, MK_LIB (the replay build's library) from the
# Makefile.  Exit 0 always: a mutant no harness sees is a fact to read (a
# bug only a process boundary shows, such as a second connection), not a
# failure.
set -u
cd "$(dirname "$0")/.." || exit 2
: "${MK_CFLAGS:?run it through make fuzz-mutants}" "${MK_LIBS?}" "${MK_LIB:?}"
CC=${CC:-cc}
OUT=build/fuzz-mutants
HARNESSES="fuzz_log fuzz_sync fuzz_logstore"
SHARED=$(ls fuzz/mk_*.c | grep -v -e fuzz/mk_fuzz_driver.c -e fuzz/mk_mutator.c)
mkdir -p "$OUT"
names=$(awk '$1 == "mutant" && $2 ~ /^[A-Z0-9_]+$/ && $3 == "dest" { print $2 }' verify/MUTANTS.md)
printf '%-24s' mutant
for t in $HARNESSES; do printf ' %14s' "$t"; done
printf '\n'
for name in ${MUTANT:-$names}; do
    dir=$OUT/$name
    mkdir -p "$dir"
    objs=""
    for f in $(grep -l "MK_MUTANT_$name\>" ref/*.c); do
        [ "$f" = ref/mirrorkit.c ] && continue # the CLI is not in a harness
        o=$dir/$(basename "$f" .c).o
        # shellcheck disable=SC2086
        $CC $MK_CFLAGS -DMK_MUTANT_$name -c "$f" -o "$o" || exit 2
        objs="$objs $o"
    done
    printf '%-24s' "$name"
    for t in $HARNESSES; do
        if [ -z "$objs" ]; then
            printf ' %14s' "-"
            continue
        fi
        # The mutated objects come first: the library's copies of them are
        # then never pulled in.
        # shellcheck disable=SC2086
        $CC $MK_CFLAGS -Ifuzz -o "$dir/$t" fuzz/$t.c $SHARED fuzz/mk_fuzz_driver.c $objs "$MK_LIB" $MK_LIBS || exit 2
        total=0; caught=0
        for input in fuzz/corpus/$t/* fuzz/regressions/$t/*; do
            [ -f "$input" ] || continue
            total=$((total + 1))
            ASAN_OPTIONS=detect_leaks=0 "$dir/$t" "$input" >/dev/null 2>&1 || caught=$((caught + 1))
        done
        printf ' %14s' "$caught/$total"
    done
    printf '\n'
done
