#!/bin/sh
# make mutants: builds every planted-bug variant of the reference listed in
# verify/MUTANTS.md ("mutant NAME ROLE SECTION" lines), runs
# `mirrorkit conform` against each in its role, and prints the kill table:
# the cases that failed on each mutant.  A mutant no case kills is a
# missing case: the run then exits 1.  So does a reference that does not
# pass its own catalogue.
#
#   verify/mutants.sh [NAME...]        (make mutants runs it with the
#                                       Makefile's flags and objects)
#
# A mutant differs from the reference only in the files that mention
# MK_MUTANT_<NAME>, so only those are compiled again, with the flag, and
# linked with the reference's other objects: seconds per mutant, not a
# whole build.  Needs MK_CFLAGS, MK_LIBS and MK_OBJS from the Makefile.
set -u
cd "$(dirname "$0")/.." || exit 2
M=${MIRRORKIT:-build/mirrorkit}
CC=${CC:-cc}
: "${MK_CFLAGS:?run it through make mutants}" "${MK_LIBS?}" "${MK_OBJS:?}"
B=${B:-build}
OUT=$B/mutants
TIMEOUT=${MUTANT_TIMEOUT:-3000}
list=verify/MUTANTS.md
entries=$(awk '$1 == "mutant" && $2 ~ /^[A-Z0-9_]+$/ && ($3 == "dest" || $3 == "source") { print $2, $3, $4 }' "$list")
[ -n "$entries" ] || { echo "mutants: no 'mutant' lines in $list" >&2; exit 2; }
want="$*"
mkdir -p "$OUT"

# The reference must pass, with the timeout the mutants get, before its
# mutants mean anything: a case that needs longer would "kill" them all.
for role in dest source; do
    "$M" conform --"$role" "$M $role" --timeout "$TIMEOUT" >"$OUT/reference-$role.out" 2>&1 ||
        { echo "mutants: the reference $role fails its own cases:"; grep -v '^PASS' "$OUT/reference-$role.out"; exit 1; }
done

lower() { printf '%s' "$1" | tr 'A-Z' 'a-z'; }
table=$OUT/kill-table.md
{
    echo "| mutant | role | SPEC | killed by |"
    echo "|---|---|---|---|"
} >"$table"
n=0; killed=0; survivors=""
while read -r name role sec; do
    if [ -n "$want" ]; then
        case " $want " in *" $name "*) ;; *) continue;; esac
    fi
    n=$((n + 1))
    dir=$OUT/$(lower "$name")
    mkdir -p "$dir"
    objs=" $MK_OBJS "
    files=$(grep -l "MK_MUTANT_$name\>" ref/*.c verify/*.c fault/*.c 2>/dev/null)
    [ -n "$files" ] || { echo "mutants: MK_MUTANT_$name appears in no source file" >&2; exit 2; }
    for f in $files; do
        o=$dir/$(basename "$f" .c).o
        # shellcheck disable=SC2086
        $CC $MK_CFLAGS -DMK_MUTANT_$name -c "$f" -o "$o" 2>"$dir/build.log" ||
            { cat "$dir/build.log"; echo "mutants: $name does not build" >&2; exit 2; }
        objs=$(printf '%s' "$objs" | sed "s| $B/${f%.c}.o | $o |")
    done
    # shellcheck disable=SC2086
    $CC -o "$dir/mirrorkit" $objs $MK_LIBS 2>>"$dir/build.log" ||
        { cat "$dir/build.log"; echo "mutants: $name does not link" >&2; exit 2; }
    "$M" conform --"$role" "$dir/mirrorkit $role" --timeout "$TIMEOUT" >"$dir/conform.out" 2>&1
    rc=$?
    cases=$(awk '$1 == "FAIL" { print $2 }' "$dir/conform.out")
    k=$(printf '%s\n' "$cases" | grep -c .)
    if [ "$rc" -eq 1 ] && [ "$k" -gt 0 ]; then
        killed=$((killed + 1))
        shown=$(printf '%s\n' "$cases" | head -4 | tr '\n' ' ' | sed 's/ $//; s/ /, /g')
        [ "$k" -gt 4 ] && shown="$shown (+$((k - 4)) more)"
        printf '%-26s %-6s %-5s KILLED by %s\n' "$name" "$role" "$sec" "$shown"
        echo "| $name | $role | $sec | $shown |" >>"$table"
    else
        survivors="$survivors $name"
        printf '%-26s %-6s %-5s SURVIVED (conform exit %d)\n' "$name" "$role" "$sec" "$rc"
        echo "| $name | $role | $sec | **survived** |" >>"$table"
    fi
done <<EOF
$entries
EOF
echo "mutants: $killed of $n killed${survivors:+; survivors:$survivors} (table: $table)"
[ -z "$survivors" ]
