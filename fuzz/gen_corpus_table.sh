#!/usr/bin/env bash
# gen_corpus_table.sh - regenerates fuzz/corpus/fuzz_table/, the seed corpus
# of fuzz/fuzz_table.c: checksum tables (verify/FORMAT.md) written by
# `mirrorkit verify --table` for small images.
#
#   fuzz/gen_corpus_table.sh            (from the repository root)
#
# Needs build/mirrorkit (make) and python3.  The images follow the rule the
# harness uses to build an image back from a table - block i is either all
# zero or filled with the byte (151 i + 89) | 1, the last block cut to the
# volume's size - so each seed compares equal to the harness's image and a
# mutated checksum shows up as a differing block.  Images are written dense,
# and some also sparse (zero blocks left as holes, which `verify --table`
# skips with SEEK_HOLE: the table must come out the same).  Derived seeds:
# the trailer set to 0 (the harness then fills in the real one, so
# mutations get past MK_ECHECKSUM), a truncated and an overlong table, and
# headers that break each field in turn.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=fuzz/corpus/fuzz_table
MK=build/mirrorkit
[ -x "$MK" ] || { echo "gen_corpus_table: $MK missing (make)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT" "$TMP/img" "$TMP/tab"

# name size block_size zero-pattern (which blocks are zero: none, all,
# even, every3, first, last), dense or sparse
python3 - "$TMP/img" <<'EOF'
import os, sys
d = sys.argv[1]
specs = [
    ("empty", 0, 4096, "none"),
    ("one-byte", 1, 512, "none"),
    ("bs512-1", 512, 512, "none"),
    ("bs512-partial", 1300, 512, "even"),
    ("bs512-16", 8192, 512, "every3"),
    ("bs1k-zero", 4096, 1024, "all"),
    ("bs4k-4", 16384, 4096, "even"),
    ("bs4k-partial", 16385, 4096, "last"),
    ("bs4k-16", 65536, 4096, "every3"),
    ("bs8k-3", 24576, 8192, "first"),
    ("bs64k-2", 100000, 65536, "none"),
    ("bs512-64", 32768, 512, "even"),
]
for name, size, bs, zp in specs:
    n = (size + bs - 1) // bs
    img = bytearray()
    zero_blocks = []
    for i in range(n):
        ln = min(bs, size - i * bs)
        zero = {"none": False, "all": True, "even": i % 2 == 0, "every3": i % 3 == 1,
                "first": i == 0, "last": i == n - 1}[zp]
        img += bytes(ln) if zero else bytes([((i * 151 + 89) & 0xff) | 1]) * ln
        zero_blocks.append(zero)
    with open(os.path.join(d, f"{name}@{bs}"), "wb") as f:
        f.write(img)
    # the same image sparse: zero blocks are holes
    if any(zero_blocks) and size >= bs:
        with open(os.path.join(d, f"sparse-{name}@{bs}"), "wb") as f:
            f.truncate(size)
            for i in range(n):
                if not zero_blocks[i]:
                    f.seek(i * bs)
                    f.write(img[i * bs:(i + 1) * bs])
EOF

for img in "$TMP"/img/*; do
    base=$(basename "$img")
    name=${base%@*}
    bs=${base#*@}
    "$MK" verify --table "$img" --block-size "$bs" --output "$TMP/tab/$name"
done
# A sparse image's table is its dense image's table.
for t in "$TMP"/tab/sparse-*; do
    cmp -s "$t" "$TMP/tab/$(basename "$t" | sed 's/^sparse-//')" ||
        { echo "gen_corpus_table: $(basename "$t") differs from its dense image's table" >&2; exit 1; }
    rm "$t"
done

python3 - "$TMP/tab" "$OUT" <<'EOF'
import os, struct, sys
src, out = sys.argv[1], sys.argv[2]
seen = set()
def emit(name, b):
    b = bytes(b)
    if b in seen:
        return
    seen.add(b)
    open(os.path.join(out, name), "wb").write(b)
def zt(b):
    b = bytearray(b)
    if len(b) >= 40:
        b[-8:] = bytes(8)
    return b
tabs = {n: open(os.path.join(src, n), "rb").read() for n in sorted(os.listdir(src))}
for n, b in tabs.items():
    emit(n, b)
    emit("zt-" + n, zt(b))
    if len(b) > 40:
        # one checksum changed: a differing block (trailer repaired by the harness)
        c = zt(b); c[32] ^= 1; emit("diff-" + n, c)
# many differing blocks, more ranges than the harness's caps keep
c = zt(tabs["bs512-64"])
for i in range(0, 64, 2):
    c[32 + 16 * i + 5] ^= 0x10
emit("many-diffs-bs512-64", c)
b = tabs["bs4k-4"]
emit("short", b[:-1])
emit("long", b + b"\0")
emit("header-only", b[:32])
emit("magic-prefix", b[:3])
emit("not-magic", b"MKSX")
for name, off, val in [("version-2", 4, b"\x02\x00"), ("reserved", 8, b"\x01"),
                       ("bs-1000", 12, struct.pack("<I", 1000)),
                       ("nblocks-wrong", 24, struct.pack("<Q", 5)),
                       ("nblocks-huge", 24, struct.pack("<Q", 1 << 55)),
                       ("volume-huge", 16, struct.pack("<Q", (1 << 64) - 1))]:
    c = zt(b); c[off:off + len(val)] = val; emit(name, c)
emit("bad-trailer", b[:-8] + b"\x01" * 8)
EOF
echo "gen_corpus_table: $(ls "$OUT" | wc -l) files in $OUT"
