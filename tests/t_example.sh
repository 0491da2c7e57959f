#!/bin/sh
# examples/mkdest.py, the destination written in Python from SPEC.md's text
# alone (CONFORMANCE.md section 6): its own tests (SPEC.md test vectors,
# 3.4 validation order, 7.6 recovery, runs against the reference source),
# then every conformance case of SPEC.md 10.1, MUST and SHOULD.
set -u
M=${MIRRORKIT:-build/mirrorkit}
PY=/usr/bin/python3
bad=0
fail() { echo "FAIL: $*"; bad=1; }
$PY -c 'import xxhash' 2>/dev/null || { fail "python3-xxhash is missing (make deps installs it)"; exit 1; }
MIRRORKIT=$M $PY examples/test_mkdest.py >/tmp/t_example.$$ 2>&1 || { fail "examples/test_mkdest.py"; tail -20 /tmp/t_example.$$; }
rm -f /tmp/t_example.$$
out=$("$M" conform --dest "$PY examples/mkdest.py" --strict 2>&1); rc=$?
[ $rc -eq 0 ] || { fail "conform --dest examples/mkdest.py: exit $rc"; echo "$out" | grep -v '^PASS'; }
echo "$out" | tail -1
exit $bad
