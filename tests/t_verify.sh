#!/bin/sh
# mirrorkit verify (SPEC.md 9, invariant I1 checked from outside the pair;
# exit codes of SPEC.md 10.3): images, checksum tables and their
# combinations compare block by block; differing blocks come out as ranges
# and details; bad input gets a named error and exit 2, a failed read exit 3.
# Behaviour only: timings are mirrorkit bench's business (--section verify).
set -u
M=${MIRRORKIT:-build/mirrorkit}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
bad=0
fail() { echo "FAIL: $*"; bad=1; }
# expect CODE PATTERN -- ARGS...: exit code and a pattern in stdout or stderr.
expect() {
    code=$1; pat=$2; shift 3
    "$M" verify "$@" >"$d/out" 2>"$d/err"; rc=$?
    if [ $rc -ne "$code" ] || ! grep -q -- "$pat" "$d/err" "$d/out"; then
        fail "mirrorkit verify $* -> exit $rc, want $code and '$pat'"
        cat "$d/err"
    fi
}
# json EXPR: python3 asserts EXPR about the JSON object j in $d/out.
json() {
    python3 -m json.tool "$d/out" >/dev/null || { fail "not JSON: $(cat "$d/out")"; return; }
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert $1, j" "$d/out" ||
        fail "json: $1"
}
# pattern FILE SIZE: deterministic bytes, never 0xff (so a poke always
# changes the byte it hits).
pattern() { python3 -c "import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) % 251 for i in range(int(sys.argv[1]))))" "$2" >"$1"; }
# poke FILE OFFSET: overwrite one byte with 0xff.
poke() { printf '\377' | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }

# ---- usage ----------------------------------------------------------------
expect 0 "usage: mirrorkit verify" -- --help
"$M" --help | grep -q "^  verify " || fail "main help does not list verify"
pattern "$d/a.img" 65536
cp "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: expects two files A B, got none" --
expect 2 "MK_EUSAGE: expects two files A B, got one" -- "$d/a.img"
expect 2 "MK_EUSAGE: unexpected argument 'extra'" -- "$d/a.img" "$d/b.img" extra
expect 2 "MK_EUSAGE: --block-size must be a power of two" -- --block-size 1000 "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: --block-size must be a power of two" -- --block-size 131072 "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: --block-size must be a power of two" -- --block-size -4096 "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: --max-diffs needs an integer" -- --max-diffs x "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: --max-diffs needs an integer" -- --max-diffs 99999999 "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: unknown or incomplete option '--bogus'" -- --bogus "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: unknown or incomplete option '--max-diffs'" -- "$d/a.img" "$d/b.img" --max-diffs
expect 2 "MK_EUSAGE: --output applies only to --table" -- --output "$d/x" "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: --table expects one IMAGE, got none" -- --table
expect 2 "MK_EUSAGE: unexpected argument '$d/b.img' (--table takes one IMAGE)" -- --table "$d/a.img" "$d/b.img"
expect 2 "MK_EUSAGE: --max-diffs does not apply to --table" -- --table --max-diffs 3 "$d/a.img"
expect 2 "MK_EUSAGE: --table --json needs --output" -- --table --json "$d/a.img"
expect 2 "MK_EUSAGE: --output '$d/a.img' is the input image" -- --table --output "$d/a.img" "$d/a.img"
cmp -s "$d/a.img" "$d/b.img" || fail "a refused --table --output changed the input"
[ -e "$d/x" ] && fail "a rejected command created its --output"

# ---- equal and differing images --------------------------------------------
expect 0 "equal: 16 blocks of 4096 bytes (65536 bytes)" -- "$d/a.img" "$d/b.img"
expect 0 "equal: 128 blocks of 512 bytes" -- --block-size 512 "$d/a.img" "$d/b.img"
poke "$d/b.img" 10           # block 0
poke "$d/b.img" 24575        # last byte of block 5
poke "$d/b.img" 24576        # first byte of block 6
poke "$d/b.img" 65535        # last byte of the last block, 15
expect 1 "4 of 16 blocks differ" -- "$d/a.img" "$d/b.img"
grep -q "\[0,0\] \[5,6\] \[15,15\]" "$d/out" || fail "ranges: $(cat "$d/out")"
grep -q "^block 6 offset 24576: a [0-9a-f]\{32\} b [0-9a-f]\{32\}$" "$d/out" || fail "block line: $(cat "$d/out")"
grep -q "first difference at byte 4095 of the block (offset 24575)" "$d/out" || fail "first byte: $(cat "$d/out")"
# The checksums printed are XXH3-128 of the blocks, as xxhsum -H2 prints them.
if command -v xxhsum >/dev/null; then
    want=$(dd if="$d/b.img" bs=4096 skip=6 count=1 2>/dev/null | xxhsum -H2 | cut -d' ' -f1)
    grep -q "^block 6 offset 24576: a [0-9a-f]* b $want\$" "$d/out" || fail "block 6 checksum is not $want"
fi
expect 1 "2 more differing blocks not described; --max-diffs 2" -- --max-diffs 2 "$d/a.img" "$d/b.img"
expect 1 "4 of 128 blocks differ" -- --block-size 512 "$d/a.img" "$d/b.img"
grep -q "\[0,0\] \[47,48\] \[127,127\]" "$d/out" || fail "512-byte ranges: $(cat "$d/out")"

# ---- --json ------------------------------------------------------------------
expect 1 '"equal":false' -- --json "$d/a.img" "$d/b.img"
json 'j["equal"] is False and j["block_size"] == 4096 and j["volume_bytes"] == 65536'
json 'j["blocks"] == 16 and j["differing_blocks"] == 4'
json 'j["ranges"] == [[0,0],[5,6],[15,15]]'
json 'len(j["diffs"]) == 4 and [x["block"] for x in j["diffs"]] == [0,5,6,15]'
json 'j["diffs"][2]["offset"] == 24576 and len(j["diffs"][2]["a"]) == 32 and j["diffs"][2]["a"] != j["diffs"][2]["b"]'
json 'j["diffs"][2]["hexdiff"]["offset"] == 0 and j["diffs"][2]["hexdiff"]["b"][:2] == "ff"'
json 'j["diffs"][0]["hexdiff"]["offset"] == 10 and j["diffs"][0]["hexdiff"]["start"] == 2'
json 'j["diffs"][0]["hexdiff"]["b"][16:18] == "ff" and len(j["diffs"][0]["hexdiff"]["a"]) == 32'
json 'j["bytes_read"] == 131072 and isinstance(j["seconds"], float)'
[ "$(wc -l <"$d/out")" -eq 1 ] || fail "--json printed more than one line"
expect 1 '"equal":false' -- --json --max-diffs 1 "$d/a.img" "$d/b.img"
json 'len(j["diffs"]) == 1 and j["differing_blocks"] == 4'
expect 1 '"equal":false' -- --json --max-diffs 0 "$d/a.img" "$d/b.img"
json 'j["diffs"] == [] and len(j["ranges"]) == 3'
expect 0 '"equal":true' -- --json "$d/a.img" "$d/a.img"
json 'j["equal"] is True and j["ranges"] == [] and j["diffs"] == [] and j["differing_blocks"] == 0'

# ---- tables ------------------------------------------------------------------
"$M" verify --table "$d/a.img" >"$d/a.sum" || fail "--table to stdout exited $?"
[ "$(stat -c %s "$d/a.sum")" -eq $((32 + 16 * 16 + 8)) ] || fail "table size $(stat -c %s "$d/a.sum")"
[ "$(head -c 4 "$d/a.sum")" = MKST ] || fail "table magic"
"$M" verify --table --output "$d/b.sum" "$d/b.img" || fail "--table --output exited $?"
"$M" verify --table --output "$d/a2.sum" "$d/a.img" && cmp -s "$d/a.sum" "$d/a2.sum" ||
    fail "--output and stdout tables differ"
ls "$d" | grep -q tmp- && fail "--output left a temporary file"
expect 0 "equal" -- "$d/a.sum" "$d/a.img"
expect 0 "equal" -- "$d/a.img" "$d/a.sum"
expect 0 "equal" -- "$d/a.sum" "$d/a2.sum"
for pair in "a.sum b.img" "a.img b.sum" "a.sum b.sum"; do
    set -- $pair
    expect 1 '"differing_blocks":4' -- --json "$d/$1" "$d/$2"
    json 'j["ranges"] == [[0,0],[5,6],[15,15]] and [x["block"] for x in j["diffs"]] == [0,5,6,15]'
    json 'all(x["hexdiff"] is None for x in j["diffs"])'
done
# The checksums agree whichever way they were obtained.
"$M" verify --json "$d/a.img" "$d/b.img" >"$d/ii.json"
"$M" verify --json "$d/a.sum" "$d/b.sum" >"$d/tt.json"
python3 -c "
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert [(x['a'], x['b']) for x in a['diffs']] == [(x['a'], x['b']) for x in b['diffs']]
" "$d/ii.json" "$d/tt.json" || fail "image and table checksums disagree"
expect 2 "MK_EUSAGE: the table has block size 4096" -- --block-size 512 "$d/a.sum" "$d/b.img"
"$M" verify --table --block-size 512 --output "$d/a512.sum" "$d/a.img" || fail "--table --block-size"
expect 2 "MK_EVOLUME: block sizes differ: $d/a.sum has 4096, $d/a512.sum has 512" -- "$d/a.sum" "$d/a512.sum"
expect 0 '"table":true,"block_size":4096' -- --table --json --output "$d/a3.sum" "$d/a.img"
json 'j["blocks"] == 16 and j["volume_bytes"] == 65536'

# Damaged tables: each a named error, exit 2, naming the file.
cp "$d/a.sum" "$d/bad.sum"; poke "$d/bad.sum" 100
expect 2 "$d/bad.sum: MK_ECHECKSUM" -- "$d/bad.sum" "$d/a.img"
cp "$d/a.sum" "$d/bad.sum"; poke "$d/bad.sum" 4
expect 2 "$d/bad.sum: MK_EVERSION" -- "$d/a.img" "$d/bad.sum"
cp "$d/a.sum" "$d/bad.sum"; poke "$d/bad.sum" 9
expect 2 "$d/bad.sum: MK_ERESERVED" -- "$d/bad.sum" "$d/a.img"
cp "$d/a.sum" "$d/bad.sum"; poke "$d/bad.sum" 13
expect 2 "$d/bad.sum: MK_EBLOCKSIZE" -- "$d/bad.sum" "$d/a.img"
head -c 200 "$d/a.sum" >"$d/cut.sum"
expect 2 "$d/cut.sum: MK_ETRUNC" -- "$d/cut.sum" "$d/a.img"
cat "$d/a.sum" "$d/a.sum" >"$d/long.sum"
expect 2 "$d/long.sum: MK_ELENGTH" -- "$d/long.sum" "$d/a.img"

# ---- sizes, partial blocks, missing files ---------------------------------------
head -c 65537 /dev/zero >"$d/c.img"
expect 2 "$d/c.img: MK_EVOLUME: volume sizes differ: $d/a.img has 65536 bytes, $d/c.img has 65537 bytes" -- "$d/a.img" "$d/c.img"
expect 2 "MK_EVOLUME: volume sizes differ" -- "$d/a.sum" "$d/c.img"
# A partial last block is compared as a block padded with zeros.
pattern "$d/p1.img" 12388; cp "$d/p1.img" "$d/p2.img"
expect 0 "equal: 4 blocks of 4096 bytes (12388 bytes)" -- "$d/p1.img" "$d/p2.img"
poke "$d/p2.img" 12387
expect 1 "1 of 4 blocks differ" -- "$d/p1.img" "$d/p2.img"
grep -q "\[3,3\]" "$d/out" || fail "partial block range: $(cat "$d/out")"
"$M" verify --table "$d/p1.img" >"$d/p1.sum"
expect 1 "1 of 4 blocks differ" -- "$d/p1.sum" "$d/p2.img"
expect 2 "$d/nope.img: MK_EINVAL: no such file" -- "$d/a.img" "$d/nope.img"
expect 2 "$d/nope.img: MK_EINVAL: no such file" -- --table "$d/nope.img"
expect 2 "$d: MK_EINVAL: not a regular file or block device" -- "$d" "$d/a.img"
: >"$d/empty.img"
expect 0 "equal: 0 blocks" -- "$d/empty.img" "$d/empty.img"

# ---- sparse images ------------------------------------------------------------------
truncate -s 8M "$d/s1.img" "$d/s2.img"
head -c 8388608 /dev/zero >"$d/z.img"
expect 0 "equal" -- "$d/s1.img" "$d/z.img"
expect 0 '"equal":true' -- --json "$d/s1.img" "$d/s2.img"
# Two sparse images share their holes: nothing is read (where the file
# system reports holes at all).
probe=$(python3 -c "import os,sys; f=os.open(sys.argv[1],os.O_RDONLY); print(os.lseek(f,0,os.SEEK_HOLE) < os.fstat(f).st_size or os.fstat(f).st_size == 0)" "$d/s1.img" 2>/dev/null)
if [ "$probe" = True ]; then
    json 'j["bytes_read"] == 0'
fi
"$M" verify --table "$d/s1.img" >"$d/s1.sum"
"$M" verify --table "$d/z.img" >"$d/z.sum"
cmp -s "$d/s1.sum" "$d/z.sum" || fail "tables of a sparse and a dense zero image differ"
poke "$d/s2.img" 5000000
expect 1 "1 of 2048 blocks differ" -- "$d/s1.img" "$d/s2.img"
grep -q "\[1220,1220\]" "$d/out" || fail "sparse difference: $(cat "$d/out")"

# ---- I/O errors -------------------------------------------------------------------------
# A full output device: exit 3, naming stdout.
if [ -w /dev/full ]; then
    "$M" verify --table "$d/a.img" >/dev/full 2>"$d/err"; rc=$?
    [ $rc -eq 3 ] && grep -q "stdout: MK_ENOSPC" "$d/err" || fail "--table >/dev/full: $rc $(cat "$d/err")"
fi
# A failing read (libfiu's POSIX preload makes pread fail with EIO): exit 3.
# A sanitizer build is left out: its runtime and the preload both wrap
# pread, and the pair does not start.
if command -v fiu-run >/dev/null && ! ldd "$M" 2>/dev/null | grep -q 'lib[alt]san'; then
    fiu-run -x -c 'enable name=posix/io/rw/pread,failinfo=5' "$M" verify "$d/a.img" "$d/b.img" \
        >/dev/null 2>"$d/err"; rc=$?
    [ $rc -eq 3 ] && grep -q "MK_EIO" "$d/err" || fail "failing pread: exit $rc $(cat "$d/err")"
fi

[ $bad -eq 0 ] && echo "ok: verify compares images and tables, names every bad input"
exit $bad
