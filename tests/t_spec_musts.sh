#!/bin/sh
# Every SPEC.md section that states a MUST has at least one test that names
# it: a Check test called test_s<major>_<minor>_..., or a test comment that
# cites "SPEC.md <major>.<minor>".  A MUST nobody tests is a failure here.
set -u
spec=${SPEC:-SPEC.md}
# Sections holding a MUST, as "N.M" (or "N" for a section without parts).
musts=$(awk '
    /^## [0-9]+ /  { sec = $2; next }
    /^### [0-9]+\.[0-9]+ / { sec = $2; next }
    /^## / { sec = ""; next }
    /MUST/ && sec != "" { print sec }
' "$spec" | sort -u -t. -k1,1n -k2,2n)
# Sections the tests name.
named=$( (grep -ohE 'test_s[0-9]+_[0-9]+' tests/*.c 2>/dev/null | sed 's/test_s//; s/_/./'
          grep -hE 'test_s[0-9]+_[a-zA-Z]' tests/*.c 2>/dev/null | grep -oE 'test_s[0-9]+_' | sed 's/test_s//; s/_//'
          grep -hE 'SPEC(\.md)?' tests/*.c tests/*.sh tests/*.h 2>/dev/null |
              sed 's/.*SPEC\(\.md\)\{0,1\}//' | grep -oE '\b[0-9]+(\.[0-9]+)?\b') | sort -u)
missing=0; total=0
for s in $musts; do
    total=$((total + 1))
    if ! echo "$named" | grep -qx "$s"; then
        echo "untested MUST: SPEC.md section $s"
        missing=$((missing + 1))
    fi
done
echo "spec coverage: $((total - missing)) of $total sections with a MUST are named by a test"
[ $missing -eq 0 ]
