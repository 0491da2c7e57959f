#!/usr/bin/env bash
# gen_corpus_logstore.sh - regenerates fuzz/corpus/fuzz_logstore/, the seed
# corpus of fuzz/fuzz_logstore.c: destination log store files (SPEC.md 7.3).
#
#   fuzz/gen_corpus_logstore.sh            (from the repository root)
#
# Needs build/mirrorkit (make) and build/fault/mirrorkit (make fault-build),
# and python3.  Every file is at most 64 KiB.  The corpus holds:
#
#   - real logs of small volumes from `mirrorkit demo --transport pipe --keep`,
#     the destination's files kept after the run: clean runs (reclaimed to the
#     header), and fault-build runs that stop the destination with
#     a committed-but-unapplied CP (ref/dest/mirror/write, .../tree/write,
#     .../mirror/sync), a torn or short record at the tail
#     (ref/dest/log/write torn/short), transfers never covered by a CP
#     (ref/dest/log/sync), stale records after a reclaim whose truncate
#     failed (ref/dest/log/truncate);
#   - variants derived from those: tails cut inside the last record, a
#     record damaged in the middle, record trailers set to 0 (accepted by the
#     fuzz builds), header checksums set to the "FIXSUM!!" marker the harness
#     replaces with the real checksum, torn and empty headers, a header that
#     lost its records' sequence (stale), and slot 1 the newer one.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=fuzz/corpus/fuzz_logstore
MK=build/mirrorkit
FK=build/fault/mirrorkit
[ -x "$MK" ] || { echo "gen_corpus_logstore: $MK missing (make)" >&2; exit 1; }
[ -x "$FK" ] || { echo "gen_corpus_logstore: $FK missing (make fault-build)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/raw"
rm -rf "$OUT"
mkdir -p "$OUT"

# run NAME FIU SEED DEMO-ARGS...: one pipe demo, keep the destination's log.
run() {
    local name=$1 fiu=$2 seed=$3
    shift 3
    local out dir bin=$MK
    [ -n "$fiu" ] && bin=$FK
    out=$(cd "$TMP" && FIU_PRNG_SEED=$seed MK_FIU=$fiu "$OLDPWD/$bin" demo --transport pipe --keep \
          --seed "$seed" "$@" 2>&1 || true)
    dir=$(printf '%s\n' "$out" | sed -n 's/^destination files kept in //p')
    if [ -z "$dir" ] || [ ! -f "$dir/dest.log" ]; then
        echo "gen_corpus_logstore: $name: no log kept" >&2
        return 0
    fi
    head -c 65536 "$dir/dest.log" > "$TMP/raw/$name"
    rm -rf "$dir"
}

small=(--blocks 32 --block-size 512 --cps 2 --writes 5)
run clean-512        ''                                   1 "${small[@]}"
run clean-4k         ''                                   2 --blocks 16 --block-size 4096 --cps 2 --writes 3
run clean-async      ''                                   3 "${small[@]}" --mode async
run redo-mixed       'ref/dest/mirror/write:once'         1 "${small[@]}"
run redo-whole       'ref/dest/mirror/write:once'         2 "${small[@]}" --workload whole
run redo-partial     'ref/dest/mirror/write:once'         3 "${small[@]}" --workload partial
run redo-seq         'ref/dest/mirror/write:once'         4 "${small[@]}" --workload seq --writes 2
run redo-hot         'ref/dest/mirror/write:once'         5 "${small[@]}" --workload hot --mode semi-sync
run redo-1k          'ref/dest/mirror/write:once'         6 --blocks 16 --block-size 1024 --cps 2 --writes 3
run redo-4k          'ref/dest/mirror/write:once'         7 --blocks 8 --block-size 4096 --cps 2 --writes 2
run redo-cp2         'ref/dest/mirror/write:p=0.5'        8 "${small[@]}"
run redo-tree        'ref/dest/tree/write:p=0.3'          3 "${small[@]}"
run redo-msync       'ref/dest/mirror/sync:p=0.3'         3 "${small[@]}" --workload hot
run torn-1           'ref/dest/log/write:torn:p=0.1'      3 "${small[@]}"
run torn-2           'ref/dest/log/write:torn:100:p=0.2'  4 "${small[@]}" --workload partial
run torn-3           'ref/dest/log/write:torn:30:p=0.1'   9 "${small[@]}" --workload whole
run short-1          'ref/dest/log/write:short:p=0.1'     5 "${small[@]}"
run unsynced-1       'ref/dest/log/sync:p=0.2'            3 "${small[@]}"
run unsynced-2       'ref/dest/log/sync:p=0.3'            6 "${small[@]}" --workload hot --mode async
run stale-1          'ref/dest/log/truncate:p=0.5'        3 "${small[@]}"
run stale-2          'ref/dest/log/truncate:p=0.5'        7 "${small[@]}" --workload hot

python3 - "$TMP/raw" "$OUT" <<'EOF'
import os, struct, sys

raw, out = sys.argv[1], sys.argv[2]
FIXSUM = b"FIXSUM!!"
MAXLEN = 65536
seen = set()

def emit(name, data):
    data = bytes(data[:MAXLEN])
    if data in seen:
        return
    seen.add(data)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)

def records(b):
    """(offset, type, length, seq) of every whole record after the headers."""
    recs, off = [], 256
    while off + 28 <= len(b):
        magic, ver, typ, flags, plen, seq = struct.unpack_from("<IBBHIQ", b, off)
        if magic != 0x52464B4D or off + 28 + plen > len(b):
            break
        recs.append((off, typ, plen, seq))
        off += 28 + plen
    return recs

def fix_slot(b, slot, **fields):
    """Rewrites header fields of a slot; its checksum becomes the marker."""
    base = slot * 128
    layout = {"generation": 8, "volume_id": 16, "nblocks": 24, "source_id": 40,
              "base_cp": 48, "base_tid": 56, "next_seq": 64, "base_digest": 72}
    for k, v in fields.items():
        if k == "block_size":
            struct.pack_into("<I", b, base + 32, v)
        elif k == "version":
            struct.pack_into("<H", b, base + 4, v)
        else:
            struct.pack_into("<Q", b, base + layout[k], v & (2**64 - 1))
    b[base + 120:base + 128] = FIXSUM

def slot_u64(b, slot, off):
    return struct.unpack_from("<Q", b, slot * 128 + off)[0]

logs = {n: open(os.path.join(raw, n), "rb").read() for n in sorted(os.listdir(raw))}
for name, b in logs.items():
    emit(name, b)
    recs = records(b)
    cur = 0 if slot_u64(b, 0, 8) >= slot_u64(b, 1, 8) else 1
    # Header checksums replaced by the marker: header mutations survive.
    m = bytearray(b); fix_slot(m, 0); fix_slot(m, 1); emit("fix-" + name, m)
    if not recs:
        continue
    # Record trailers zeroed (accepted by the fuzz builds).
    z = bytearray(b)
    for off, typ, plen, seq in recs:
        z[off + 20 + plen:off + 28 + plen] = bytes(8)
    emit("zt-" + name, z)
    last = recs[-1]
    # Torn tails: inside the last record's body, its header, its trailer.
    emit("cut-body-" + name, b[:last[0] + 28 + last[2] // 2])
    emit("cut-hdr-" + name, b[:last[0] + 11])
    emit("cut-trailer-" + name, b[:last[0] + 20 + last[2] + 3])
    if len(recs) >= 3:
        off, typ, plen, seq = recs[len(recs) // 2]
        # Damage in the middle, valid records after it: MK_ECORRUPT.
        d = bytearray(b); d[off + 20 + plen // 2] ^= 0x40; emit("mid-" + name, d)
        # A record missing from the middle: a sequence gap.
        emit("gap-" + name, b[:off] + b[off + 28 + plen:])
        # A record of an unknown type, its trailer zeroed: MK_ETYPE.
        t = bytearray(z); t[off + 5] = 0x1f; emit("type-" + name, t)
    # Stale records: the current header already past their sequence.
    s = bytearray(b)
    fix_slot(s, cur, next_seq=recs[-1][3] + 1000)
    emit("stale-" + name, s)
    # The other slot newer (generation + 1) with the same contents.
    n = bytearray(b)
    n[(1 - cur) * 128:(2 - cur) * 128] = b[cur * 128:(cur + 1) * 128]
    fix_slot(n, 1 - cur, generation=slot_u64(b, cur, 8) + 1)
    emit("newer-" + name, n)
    commits = [r for r in recs if r[1] == 0x12]
    if commits:
        off, typ, plen, seq = commits[-1]
        # A CP digest that its blocks do not match: the redo fails with
        # MK_ECORRUPT after the scan accepted the log.
        c = bytearray(z); c[off + 20 + 16] ^= 1; emit("badredo-" + name, c)
        # An entry naming bytes that are not its block's: MK_ERANGE.
        if plen >= 48:
            e = bytearray(z)
            o = struct.unpack_from("<Q", e, off + 20 + 40)[0]
            struct.pack_into("<Q", e, off + 20 + 40, o + 1)
            emit("badoff-" + name, e)

# Headers alone.
base = logs["clean-512"]
emit("empty", b"")
emit("zeros-256", bytes(256))
emit("zeros-100", bytes(100))
emit("torn-hdr-60", base[:60] + bytes(196))
emit("torn-hdr-119", base[:119])
emit("slot0-only", base[:128])
h = bytearray(base[:256]); fix_slot(h, 0, version=2); fix_slot(h, 1, version=2); emit("version-2", h)
h = bytearray(base[:256]); h[0] ^= 1; h[128] ^= 1; emit("magic-both", h)
h = bytearray(base[:256]); h[130] ^= 1; h[40] ^= 1; emit("checksum-both", h)
h = bytearray(base[:256]); fix_slot(h, 0, block_size=1000); fix_slot(h, 1, nblocks=0); emit("fields-bad", h)
h = bytearray(base[:256]); fix_slot(h, 0, nblocks=1 << 40, block_size=65536); emit("huge-volume", h)
EOF
echo "gen_corpus_logstore: $(ls "$OUT" | wc -l) files in $OUT"
