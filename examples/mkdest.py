#!/usr/bin/python3
"""mkdest.py - a minimal mirrorkit DESTINATION, written from SPEC.md alone.

    mkdest.py --listen 127.0.0.1:PORT --image PATH --log PATH [--once]
    mkdest.py --stdio                 --image PATH --log PATH
    mkdest.py --promote               --image PATH --log PATH

Optional, as the reference accepts them (10.1): --tree F (default: image path
+ ".mkt"), --port-file F, --blocks N, --block-size B, --volume-id X.

The log store uses the reference's file format (7.3), so `mirrorkit dump` can
read it, and the Merkle tree file uses the reference's layout (9.7).
Section numbers in comments are those of SPEC.md.
"""
import bisect, errno, mmap, os, select, socket, struct, sys
import xxhash

# ---- constants (1.4, 3.3, 3.7, 12) ------------------------------------------
MAGIC, LOG_MAGIC, U64 = 0x52464B4D, 0x474C4B4D, 2**64 - 1
MAX_XFER = 1 << 20                        # MK_MAX_TRANSFER_DATA
MAX_PAYLOAD = MAX_XFER + 24               # MK_MAX_PAYLOAD
MAX_REFS = MAX_TREE = 1024                # MK_MAX_REFS_PER_FRAME, MK_MAX_TREE_NODES
MAX_CP_BLOCKS = (2**32 - 1 - 32) // 16    # MK_MAX_CP_BLOCKS
DATA_START = 256                          # records start after two header slots
HELLO, LOG, CP_BEGIN, CP_DATA, CP_REF, CP_COMMIT, TREE_QUERY, ERROR = 1, 2, 3, 4, 5, 6, 7, 0x7F
HELLO_ACK, LOG_ACK, NAK, CP_ACK, TREE_NODES = 0x81, 0x82, 0x83, 0x84, 0x85
R_TRANSFER, R_CP_DATA, R_CP_COMMIT, R_CP_APPLIED = 0x10, 0x11, 0x12, 0x13

ERRNAMES = ("EINVAL ENOMEM EIO ENOSPC EMAGIC EVERSION ETYPE ELENGTH ECHECKSUM ESEQ "
            "ERESERVED ETRUNC ESTATE EPEER EVOLUME ERANGE EZEROLEN ETID ENOTID ESLOT "
            "EREFHASH ECP EDUPBLOCK ECOUNT EMODE EAGAIN ECLOSED ETORN ELOGLOST EDIVERGED "
            "EDIGEST EUSAGE EVERIFY ETIMEOUT EREMOTE EBLOCKSIZE ECORRUPT ECPFULL").split()
(EINVAL, ENOMEM, EIO, ENOSPC, EMAGIC, EVERSION, ETYPE, ELENGTH, ECHECKSUM, ESEQ,
 ERESERVED, ETRUNC, ESTATE, EPEER, EVOLUME, ERANGE, EZEROLEN, ETID, ENOTID, ESLOT,
 EREFHASH, ECP, EDUPBLOCK, ECOUNT, EMODE, EAGAIN, ECLOSED, ETORN, ELOGLOST, EDIVERGED,
 EDIGEST, EUSAGE, EVERIFY, ETIMEOUT, EREMOTE, EBLOCKSIZE, ECORRUPT, ECPFULL) = range(1, 39)


def errname(code):
    return "MK_" + ERRNAMES[code - 1] if 1 <= code <= len(ERRNAMES) else "MK_EUNKNOWN"


def note(msg):                              # diagnostics go to stderr only (10.1)
    print(f"mkdest: {msg}", file=sys.stderr)


def exit_code(code):
    """10.3: the process exit code of an error."""
    if code in (EVERIFY, EDIGEST, EDIVERGED, ELOGLOST):
        return 1
    if code in (EIO, ENOSPC, ENOMEM, ECLOSED, ETIMEOUT, EREMOTE):
        return 3
    return 2


class MkError(Exception):
    """A session error (8.5): answered with ERROR unless reply is False."""
    def __init__(self, code, msg="", reply=True):
        super().__init__(f"{errname(code)}: {msg}")
        self.code, self.msg, self.reply = code, msg, reply


def reject(bad, code, msg="", reply=True):
    """One check of SPEC.md's ordered lists: "condition -> MK_error"."""
    if bad:
        raise MkError(code, msg, reply)


class EngineError(MkError):
    """A storage failure or read-back mismatch (8.5): the engine stops."""


# ---- codec (1.4, 3.1, 3.2, 3.4) ---------------------------------------------
HDR = struct.Struct("<IBBHIQ")             # magic version type flags length seq
ZERO16 = bytes(16)


def H(data):                                # XXH3-64, seed 0
    return xxhash.xxh3_64_intdigest(data)


def H128(data):                             # XXH3-128 serialised low 64 then high 64 (9.7)
    return xxhash.xxh3_128_intdigest(data).to_bytes(16, "little")


def encode(ftype, seq, payload):
    head = HDR.pack(MAGIC, 1, ftype, 0, len(payload), seq) + payload
    return head + struct.pack("<Q", H(head))


def decode(buf, pos):
    """3.4 steps 1-6 on buf[pos:]. Returns None while incomplete (MK_ETRUNC),
    else (type, seq, payload, next_pos); raises MkError for steps 1-4 and 6.
    Each field is judged as soon as all of its bytes are present."""
    n = len(buf) - pos
    reject(n >= 4 and struct.unpack_from("<I", buf, pos)[0] != MAGIC, EMAGIC, "frame magic")
    reject(n >= 5 and buf[pos + 4] != 1, EVERSION, "frame version")
    if n < 20:
        return None
    _, _, ftype, flags, length, seq = HDR.unpack_from(buf, pos)
    reject(flags, ERESERVED, "frame flags")
    if length > MAX_PAYLOAD:                # judged before the body arrives (3.3)
        raise MkError(ELENGTH, "frame length")
    end = pos + 20 + length
    if len(buf) < end + 8:
        return None
    reject(struct.unpack_from("<Q", buf, end)[0] != H(buf[pos:end]), ECHECKSUM, "frame checksum")
    return ftype, seq, bytes(buf[pos + 20:end]), end + 8


def block_size_ok(b):                       # 1.1
    return 512 <= b <= 65536 and b & (b - 1) == 0


def geometry(off, length, bs):
    """4.2: (head_len, nslots, first_block) of a transfer."""
    h = min((bs - off % bs) % bs, length)
    return h, (length - h) // bs, (off + h) // bs


def cp_digest(pairs):
    """7.5: the seeded chain over (block, hash) in ascending block order."""
    d = 0
    for block, hsh in pairs:
        d = xxhash.xxh3_64_intdigest(struct.pack("<QQ", block, hsh), seed=d)
    return d


def fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- the log store (7.3, 7.6, 7.7) ------------------------------------------
SLOT = struct.Struct("<IHHQQQIIQQQQQ40s")   # header slot bytes 0..119; checksum at 120


def decode_slot(raw):
    """7.3 header rules: returns (error or 0, fields)."""
    (magic, ver, r1, gen, vid, n, bs, r2, sid, base_cp, base_tid, next_seq,
     base_digest, r3) = SLOT.unpack_from(raw)
    f = dict(gen=gen, ident=(vid, n, bs), sid=sid, base_cp=base_cp, base_tid=base_tid,
             next_seq=next_seq, base_digest=base_digest)
    if magic != LOG_MAGIC:
        return EMAGIC, f
    if ver != 1:
        return EVERSION, f
    if struct.unpack_from("<Q", raw, 120)[0] != H(raw[:120]):
        return ECHECKSUM, f
    if r1 or r2 or any(r3):
        return ERESERVED, f
    if not block_size_ok(bs) or not 1 <= n <= U64 // bs or gen == U64:
        return ECORRUPT, f
    return 0, f


def frame_at(buf, off, size):
    """A validly framed record at off (7.6 step 4, without the seq check):
    (type, seq, length) or None."""
    if size - off < 28:
        return None
    magic, ver, t, flags, length, seq = HDR.unpack_from(buf, off)
    if magic != MAGIC or ver != 1 or flags or length > size - off - 28:
        return None
    if struct.unpack_from("<Q", buf, off + 20 + length)[0] != H(buf[off:off + 20 + length]):
        return None
    return t, seq, length


class Log:
    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.fresh, self.dirty, self.cut = True, False, 0
        self.index, self.xoffs, self.xtids = {}, [], []   # tid -> (data_off, offset, length)
        self.redo = None

    # 7.6 recovery: steps 1-6 (7-9 need the mirror; Dest.start does them)
    def open(self):
        size = os.fstat(self.fd).st_size
        head = os.pread(self.fd, DATA_START, 0).ljust(DATA_START, b"\0")
        r0, f0 = decode_slot(head[:128])
        r1, f1 = decode_slot(head[128:])
        # Step 1 / 7.3: empty, or a creation cut short (slot 1 all zero, slot 0
        # all zero or a torn prefix whose magic or checksum fails): fresh.
        if size == 0 or (size <= DATA_START and not any(head[128:]) and r0 in (EMAGIC, ECHECKSUM)):
            return
        if r0 == 0 and (r1 != 0 or f0["gen"] >= f1["gen"]):
            self.slot, f = 0, f0
        elif r1 == 0:
            self.slot, f = 1, f1
        else:                               # step 2: no valid slot, do not start
            raise MkError(EMAGIC if r0 == r1 == EMAGIC else
                          EVERSION if EVERSION in (r0, r1) else ECORRUPT, "log header")
        self.fresh = False
        self.gen, self.ident, self.sid = f["gen"], f["ident"], f["sid"]
        self.bs, self.n = self.ident[2], self.ident[1]
        # step 3
        self.last_cp = self.applied_cp = f["base_cp"]
        self.covers_tid = self.durable_tid = f["base_tid"]
        self.last_digest = f["base_digest"]
        seq, off, self.cpdata = f["next_seq"], DATA_START, {}
        m = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ) if size else b""
        try:                                # step 4: scan
            while off < size:
                fr = frame_at(m, off, size)
                if fr is None or fr[1] != seq:
                    self.probe(m, off, size, seq)
                    break
                self.scan_rule(m, fr[0], off, fr[2])    # step 5
                off += 28 + fr[2]
                seq += 1
        finally:
            if size:
                m.close()
        self.end, self.rseq, self.cpdata = max(off, DATA_START), seq, None
        if off < size or size < DATA_START:            # step 6: cut the tail
            self.cut = max(size - off, 0)
            os.ftruncate(self.fd, self.end)
            os.fsync(self.fd)

    def probe(self, m, off, size, seq):
        """7.6 step 4 a-c: is the failed record a torn/stale tail, or damage
        inside the log (valid records of the current sequence after it)?"""
        intact = size - off >= 20 and HDR.unpack_from(m, off)[:2] == (MAGIC, 1)
        if intact:
            length = HDR.unpack_from(m, off)[4]
            if off + 28 + length > size:
                return                      # a: the torn tail itself
            q = off + 28 + length
        else:
            q = off + 1
        while True:                         # b: try every offset (only "MKFR\1" can start a frame)
            q = m.find(b"MKFR\x01", q)
            if q < 0:
                return                      # c: a tail, cut by step 6
            fr = frame_at(m, q, size)
            if fr is None:
                q += 1
            elif fr[1] >= seq:
                raise MkError(ECORRUPT, f"log damaged at offset {off}, valid record at {q}")
            else:
                q += 28 + fr[2]             # a stale record of an older generation (7.7)

    def scan_rule(self, m, t, off, length):
        """7.6 step 5: the rule of each validly framed record."""
        p, bs, n = off + 20, self.bs, self.n
        if t == R_TRANSFER:
            reject(length < 24, ELENGTH, "R_TRANSFER length")
            tid, o, ln, res = struct.unpack_from("<QQII", m, p)
            reject(res, ERESERVED, "R_TRANSFER reserved")
            reject(ln == 0, EZEROLEN, "R_TRANSFER length 0")
            reject(ln > MAX_XFER or ln != length - 24, ELENGTH, "R_TRANSFER data length")
            reject(tid == 0 or tid <= self.durable_tid, ETID, f"R_TRANSFER tid {tid}")
            reject(o > n * bs or ln > n * bs - o, ERANGE, "R_TRANSFER range")
            self.add_transfer(tid, p + 24, o, ln)
        elif t == R_CP_DATA:
            reject(length != 16 + bs, ELENGTH, "R_CP_DATA length")
            cp, block = struct.unpack_from("<QQ", m, p)
            reject(cp != self.last_cp + 1, ECP, "R_CP_DATA cp")
            reject(block >= n, ERANGE, "R_CP_DATA block")
            self.cpdata[p + 16] = block
        elif t == R_CP_COMMIT:
            reject(length < 32, ELENGTH, "R_CP_COMMIT length")
            cp, covers, digest, cnt = struct.unpack_from("<QQQQ", m, p)
            reject(cnt > n or length != 32 + 16 * cnt, ELENGTH, "R_CP_COMMIT length")
            reject(cp != self.last_cp + 1, ECP, "R_CP_COMMIT cp")
            reject(not self.durable_tid >= covers >= self.covers_tid, ETID, "R_CP_COMMIT covers_tid")
            entries, prev = [], -1
            for i in range(cnt):
                block, boff = struct.unpack_from("<QQ", m, p + 32 + 16 * i)
                if block >= n or block <= prev or not self.names_block(boff, block):
                    raise MkError(ERANGE, f"R_CP_COMMIT entry {i}")
                entries.append((block, boff, None))
                prev = block
            self.last_cp, self.covers_tid, self.last_digest = cp, covers, digest
            self.redo, self.cpdata = (cp, digest, entries), {}
        elif t == R_CP_APPLIED:
            reject(length != 8, ELENGTH, "R_CP_APPLIED length")
            cp, = struct.unpack_from("<Q", m, p)
            reject(cp != self.last_cp, ECP, "R_CP_APPLIED cp")
            self.applied_cp = cp
        else:
            raise MkError(ETYPE, f"record type {t:#x} at offset {off}")

    def names_block(self, boff, block):
        """Does file offset boff hold exactly block's bytes (an R_CP_DATA of
        this CP, or slot s of an indexed transfer with first_block+s = block)?"""
        if self.cpdata.get(boff) == block:
            return True
        i = bisect.bisect_right(self.xoffs, boff) - 1
        if i < 0:
            return False
        data_off, o, ln = self.index[self.xtids[i]]
        h, s, f = geometry(o, ln, self.bs)
        rel = boff - data_off - h
        return rel >= 0 and rel % self.bs == 0 and rel // self.bs < s and f + rel // self.bs == block

    def add_transfer(self, tid, data_off, offset, length):    # 4.4 index
        self.durable_tid = tid              # highest tid in the log ("received")
        self.index[tid] = (data_off, offset, length)
        self.xoffs.append(data_off)
        self.xtids.append(tid)

    def write_header(self, slot, gen, base_cp, base_tid, next_seq, base_digest):
        vid, n, bs = self.ident
        raw = SLOT.pack(LOG_MAGIC, 1, 0, gen, vid, n, bs, 0, self.sid, base_cp,
                        base_tid, next_seq, base_digest, bytes(40))
        os.pwrite(self.fd, raw + struct.pack("<Q", H(raw)), 128 * slot)
        os.fsync(self.fd)
        self.slot, self.gen = slot, gen

    def create(self, ident, sid):
        """2.3 / 7.3: a fresh log: 256 zero bytes, then slot 0 with generation 1."""
        os.ftruncate(self.fd, 0)
        os.ftruncate(self.fd, DATA_START)
        self.ident, self.sid, self.n, self.bs = ident, sid, ident[1], ident[2]
        self.write_header(0, 1, 0, 0, 1, 0)
        fsync_dir(self.path)
        self.fresh, self.end, self.rseq = False, DATA_START, 1
        self.last_cp = self.applied_cp = self.covers_tid = self.durable_tid = self.last_digest = 0

    def append(self, rtype, payload):
        """Append one record (framed as 3.1); returns its file offset."""
        off = self.end
        os.pwrite(self.fd, encode(rtype, self.rseq, payload), off)
        self.end += 28 + len(payload)
        self.rseq += 1
        self.dirty = True
        return off

    def sync(self):
        if self.dirty:
            os.fdatasync(self.fd)
            self.dirty = False

    def read(self, off, n):
        data = os.pread(self.fd, n, off)
        if len(data) != n or off + n > self.end:
            raise EngineError(EIO, f"log read at {off} outside the valid log")
        return data

    def reclaim(self):
        """7.7: header first, then truncate."""
        if not (self.applied_cp == self.last_cp and self.durable_tid == self.covers_tid
                and self.end > DATA_START):
            return
        self.sync()
        if self.gen + 1 >= U64:
            raise EngineError(ECORRUPT, "log header generation exhausted")
        self.write_header(1 - self.slot, self.gen + 1, self.last_cp, self.covers_tid,
                          self.rseq, self.last_digest)
        os.ftruncate(self.fd, DATA_START)
        os.fsync(self.fd)
        self.end = DATA_START
        self.index, self.xoffs, self.xtids = {}, [], []


# ---- the mirror's Merkle tree (9.7), in the reference's file layout ---------
class Tree:
    def __init__(self, path, n):
        self.path, self.fd, self.P = path, os.open(path, os.O_RDWR | os.O_CREAT, 0o644), 1
        while self.P < n:
            self.P <<= 1
        self.H = self.P.bit_length() - 1

    def pos(self, level, i):
        return 16 * (2 * self.P - (2 * self.P >> level) + i)

    def node(self, level, i):               # bytes past the end read as zero
        return os.pread(self.fd, 16, self.pos(level, i)).ljust(16, b"\0")

    def root(self):
        return self.node(self.H, 0)

    @staticmethod
    def inner(level, left, right):
        return ZERO16 if left == right == ZERO16 else H128(bytes([level]) + left + right)

    @staticmethod
    def leaf(data):
        return ZERO16 if not any(data) else H128(data)

    def commit(self, leaves):
        """7.4 step 6: write the staged leaves, recompute their ancestors, sync."""
        cur = dict(leaves)
        for level in range(self.H + 1):
            if level:
                nxt = {}
                for p in {i >> 1 for i in cur}:
                    kids = [cur[c] if c in cur else self.node(level - 1, c) for c in (2 * p, 2 * p + 1)]
                    nxt[p] = self.inner(level, *kids)
                cur = nxt
            for i, v in cur.items():
                os.pwrite(self.fd, v, self.pos(level, i))
        os.fsync(self.fd)

    def rebuild(self, image_fd, n, bs):
        """7.6 step 8: derive the tree from the image; written to a temporary
        file and renamed, so a crash never leaves a half tree to be trusted."""
        level, chunk = bytearray(), max(bs, (1 << 20) // bs * bs)
        for off in range(0, n * bs, chunk):
            data = os.pread(image_fd, min(chunk, n * bs - off), off).ljust(min(chunk, n * bs - off), b"\0")
            for b in range(0, len(data), bs):
                level += self.leaf(data[b:b + bs])
        level += bytes(16 * (self.P - n))
        out = [bytes(level)]
        for lv in range(1, self.H + 1):
            prev = out[-1]
            out.append(b"".join(self.inner(lv, prev[32 * i:32 * i + 16], prev[32 * i + 16:32 * i + 32])
                                for i in range(len(prev) // 32)))
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(out))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR)


# ---- the destination engine -------------------------------------------------
class OpenCP:
    def __init__(self, k, nrecords, covers):
        self.k, self.nrecords, self.covers = k, nrecords, covers
        self.staged, self.naked, self.committed = {}, set(), False   # block -> (off, hash)

    def blocks(self):
        return len(self.staged) + len(self.naked)


class Dest:
    def __init__(self, image, log, tree_path, config):
        self.image_path, self.tree_path, self.config = image, tree_path, config
        self.mirror = os.open(image, os.O_RDWR | os.O_CREAT, 0o644)
        self.log, self.tree, self.fatal = Log(log), None, 0
        self.begin_session()

    def start(self):
        """7.6: recover before serving any session."""
        log = self.log
        log.open()                                          # steps 1-6
        if log.cut:
            note(f"recovery cut {log.cut} bytes of torn tail")
        if log.fresh:
            return
        self.check_config(log.ident)                        # step 7
        n, bs = log.n, log.bs
        if os.fstat(self.mirror).st_size < n * bs:          # step 8
            os.ftruncate(self.mirror, n * bs)
            os.fsync(self.mirror)
        self.tree = Tree(self.tree_path, n)
        if os.fstat(self.tree.fd).st_size == 0:
            self.tree.rebuild(self.mirror, n, bs)
        if log.last_cp != log.applied_cp:                   # step 9: redo
            cp, digest, entries = log.redo
            self.apply_blocks(cp, entries, digest)
            log.sync()

    def check_config(self, ident):
        for want, have in zip(self.config, ident):
            reject(want and want != have, EVOLUME, "volume differs from the configuration")

    def begin_session(self):
        self.inbuf, self.out = bytearray(), []
        self.rx_seq = self.tx_seq = 0
        self.hello, self.cp, self.ack_pending = False, None, False
        self.ended, self.outcome = False, 0

    def send(self, ftype, payload):
        self.out.append(encode(ftype, self.tx_seq, payload))
        self.tx_seq += 1

    def send_error(self, code, msg):                        # 3.6
        m = msg.encode()[:256]
        self.send(ERROR, struct.pack("<II", code, len(m)) + m)

    def feed(self, data):
        """One read from the connection (a batch, 4.4). Returns bytes to send."""
        self.inbuf += data
        pos = 0
        try:
            while not self.ended:
                fr = decode(self.inbuf, pos)
                if fr is None:
                    break
                pos = fr[3]
                self.on_frame(*fr[:3])
            if not self.ended and self.ack_pending:         # group commit (4.4)
                self.flush_acks()
        except OSError as e:
            self.end(EngineError(ENOSPC if e.errno == errno.ENOSPC else EIO, str(e)))
        except MemoryError:
            self.end(EngineError(ENOMEM, "out of memory"))
        except MkError as e:
            self.end(e)
        del self.inbuf[:pos]
        out, self.out = b"".join(self.out), []
        return out

    def end(self, e):
        """3.4 / 8.5: send ERROR (unless the peer sent one), end the session."""
        note(f"session ended: {errname(e.code)}: {e.msg}")
        if e.reply:
            self.send_error(e.code, e.msg)
        self.ended, self.outcome, self.cp = True, e.code, None
        if isinstance(e, EngineError):
            self.fatal = e.code

    def eof(self):
        """2.4: the stream ended; a partial frame and an open CP are discarded."""
        self.ended, self.cp, self.inbuf = True, None, bytearray()

    def flush_acks(self):                                   # 4.4
        self.log.sync()
        self.send(LOG_ACK, struct.pack("<Q", self.log.durable_tid))
        self.ack_pending = False

    def on_frame(self, ftype, seq, p):
        if seq != self.rx_seq:                              # 3.4 step 7, 3.5
            raise MkError(ESEQ, f"frame seq {seq}, expected {self.rx_seq}")
        self.rx_seq += 1
        if not self.hello:                                  # step 8, 2.3
            reject(ftype != HELLO, ESTATE, "frame before HELLO")
            return self.on_hello(p)
        reject(ftype == HELLO, ESTATE, "second HELLO")
        if ftype == ERROR:                                  # 3.6: never answered
            ok = len(p) >= 8 and struct.unpack_from("<I", p, 4)[0] <= 256 \
                and struct.unpack_from("<I", p, 4)[0] == len(p) - 8
            reject(not ok, ELENGTH, "malformed ERROR frame", reply=False)
            code = struct.unpack_from("<I", p)[0]
            raise MkError(EREMOTE, f"source reported {errname(code)}: "
                          f"{p[8:].decode(errors='replace')}", reply=False)
        handler = {LOG: self.on_log, CP_BEGIN: self.on_cp_begin, CP_DATA: self.on_cp_data,
                   CP_REF: self.on_cp_ref, CP_COMMIT: self.on_cp_commit,
                   TREE_QUERY: self.on_tree_query}.get(ftype)
        if handler is None:                                 # step 9, 3.7
            raise MkError(ETYPE, f"frame type {ftype:#x}")
        handler(p)

    def on_hello(self, p):                                  # 2.1, 2.3
        reject(len(p) != 32, ELENGTH, "HELLO length")
        vid, n, bs, mode, res, sid = struct.unpack("<QQIB3sQ", p)
        reject(any(res), ERESERVED, "HELLO reserved")
        reject(not block_size_ok(bs), EBLOCKSIZE, f"HELLO block size {bs}")
        reject(mode not in (1, 2, 3), EINVAL, f"HELLO mode {mode}")
        reject(n == 0 or n > U64 // bs, ERANGE, "HELLO nblocks")
        self.check_config((vid, n, bs))
        log = self.log
        if log.fresh:                                       # adoption
            if os.fstat(self.mirror).st_size != 0:
                raise MkError(EDIVERGED, "the log is fresh but the mirror image is not empty")
            self.tree = Tree(self.tree_path, n)             # the all-zero tree: an empty file
            os.ftruncate(self.tree.fd, 0)
            os.fsync(self.tree.fd)
            log.create((vid, n, bs), sid)
            os.ftruncate(self.mirror, n * bs)
            os.fsync(self.mirror)
            fsync_dir(self.image_path)
        reject((vid, n, bs) != log.ident, EVOLUME, "HELLO volume differs from the log's")
        reject(sid != log.sid, EPEER, "HELLO from a source other than the log's")
        log.sync()                                          # 2.2: durable_tid is true
        self.hello = True
        self.send(HELLO_ACK, struct.pack("<QQIIQQQQ", vid, n, bs, 0, log.last_cp,
                                         log.durable_tid, sid, log.last_digest))

    def on_log(self, p):                                    # 4.3, 4.4
        reject(len(p) < 24, ELENGTH, "LOG length")
        tid, off, length, res = struct.unpack_from("<QQII", p)
        reject(res, ERESERVED, "LOG reserved")
        reject(length == 0, EZEROLEN, "LOG length 0")
        reject(length > MAX_XFER or length != len(p) - 24, ELENGTH, "LOG data length")
        reject(tid == 0 or tid <= self.log.durable_tid, ETID, f"LOG tid {tid} not increasing")
        v = self.log.n * self.log.bs
        reject(off > v or length > v - off, ERANGE, "LOG range")
        rec = self.log.append(R_TRANSFER, p)
        self.log.add_transfer(tid, rec + 44, off, length)
        self.ack_pending = True

    def on_cp_begin(self, p):                               # 7.1
        reject(len(p) != 24, ELENGTH, "CP_BEGIN length")
        reject(self.cp, ESTATE, "CP_BEGIN inside an open CP")
        k, nrec, covers = struct.unpack("<QQQ", p)
        reject(k != self.log.last_cp + 1, ECP, f"CP_BEGIN cp {k}, expected {self.log.last_cp + 1}")
        reject(covers > self.log.durable_tid or covers < self.log.covers_tid, ETID, "CP_BEGIN covers_tid")
        reject(nrec > self.log.n or nrec > MAX_CP_BLOCKS, ECOUNT, "CP_BEGIN nrecords")
        self.cp = OpenCP(k, nrec, covers)

    def check_cp(self, k, what):                            # 7.2 state checks
        reject(not self.cp, ESTATE, f"{what} without an open CP")
        reject(k != self.cp.k, ECP, f"{what} cp {k}")

    def admit(self, block, is_data, extra=()):
        """7.2 admission; extra = blocks admitted earlier in the same CP_REF."""
        cp = self.cp
        reject(block >= self.log.n, ERANGE, f"block {block}")
        if block in cp.staged or block in cp.naked or block in extra:
            if is_data and block in cp.naked:
                return                                      # the resend of 8.1
            raise MkError(EDUPBLOCK, f"block {block} twice in CP {cp.k}")
        reject(cp.committed, ESTATE, "new block after CP_COMMIT")
        reject(cp.blocks() + len(extra) >= cp.nrecords, ECOUNT, f"more than {cp.nrecords} blocks")

    def on_cp_data(self, p):
        bs = self.log.bs
        reject(len(p) != 16 + bs, ELENGTH, "CP_DATA length")
        k, block = struct.unpack_from("<QQ", p)
        self.check_cp(k, "CP_DATA")
        self.admit(block, True)
        rec = self.log.append(R_CP_DATA, p)
        self.cp.staged[block] = (rec + 36, H(p[16:]))
        self.cp.naked.discard(block)
        self.maybe_apply()

    def on_cp_ref(self, p):
        reject(len(p) < 16, ELENGTH, "CP_REF length")
        k, count, res = struct.unpack_from("<QII", p)
        reject(res, ERESERVED, "CP_REF reserved")
        reject(count == 0 or count > MAX_REFS or len(p) != 16 + 32 * count, ELENGTH, "CP_REF count")
        refs = [struct.unpack_from("<QQIIQ", p, 16 + 32 * i) for i in range(count)]
        reject(any(r[3] for r in refs), ERESERVED, "CP_REF entry reserved")
        self.check_cp(k, "CP_REF")
        reject(self.cp.committed, ESTATE, "CP_REF after CP_COMMIT")
        seen = set()                                        # pass 1: admit every entry
        for block, *_ in refs:
            self.admit(block, False, seen)
            seen.add(block)
        for block, tid, slot, _, hsh in refs:               # pass 2: resolve in order
            try:
                self.cp.staged[block] = (self.resolve(block, tid, slot, hsh), hsh)
            except EngineError:
                raise
            except MkError as e:                            # a NAK, not a session error (8.1)
                self.cp.naked.add(block)
                self.send(NAK, struct.pack("<QQII", k, block, e.code, 0))

    def resolve(self, block, tid, slot, hsh):
        """7.2: the five rules, in order; returns the slot's file offset."""
        reject(tid > self.cp.covers, ETID, "REF tid above covers_tid")
        x = self.log.index.get(tid)
        reject(x is None, ENOTID, f"REF tid {tid} not in the log")
        data_off, off, length = x
        h, s, f = geometry(off, length, self.log.bs)
        reject(slot >= s or f + slot != block, ESLOT, f"REF slot {slot} of tid {tid}")
        boff = data_off + h + slot * self.log.bs
        reject(H(self.log.read(boff, self.log.bs)) != hsh, EREFHASH, f"REF hash of block {block}")
        return boff

    def on_cp_commit(self, p):                              # 7.4 checks
        reject(len(p) != 16, ELENGTH, "CP_COMMIT length")
        k, nrec = struct.unpack("<QQ", p)
        reject(not self.cp or self.cp.committed, ESTATE, "CP_COMMIT without an open CP")
        reject(k != self.cp.k, ECP, f"CP_COMMIT cp {k}")
        reject(nrec != self.cp.nrecords or self.cp.blocks() != nrec, ECOUNT, "CP_COMMIT nrecords")
        self.cp.committed = True
        self.maybe_apply()

    def maybe_apply(self):
        if self.cp.committed and not self.cp.naked:
            self.apply_cp()

    def apply_cp(self):
        """7.4 apply order, steps 1-9."""
        cp, log = self.cp, self.log
        if self.ack_pending:                                # 1
            self.flush_acks()
        log.sync()                                          # 2
        entries = [(b, off, h) for b, (off, h) in sorted(cp.staged.items())]
        digest = cp_digest((b, h) for b, _, h in entries)   # 3
        log.append(R_CP_COMMIT, struct.pack("<QQQQ", cp.k, cp.covers, digest, len(entries))
                   + b"".join(struct.pack("<QQ", b, off) for b, off, _ in entries))
        log.sync()                                          # 4: the commit point
        log.last_cp, log.covers_tid, log.last_digest = cp.k, cp.covers, digest
        self.cp = None
        self.apply_blocks(cp.k, entries)                    # 5, 6, 7
        log.reclaim()                                       # 8
        self.send(CP_ACK, struct.pack("<QQQ", cp.k, len(entries), digest) + self.tree.root())  # 9

    def apply_blocks(self, k, entries, digest=None):
        """7.4 steps 5-7 (and the redo of 7.6 step 9, which passes digest).
        Every block is read and checked before any byte of the mirror is
        written, so a mismatch leaves the mirror at CP k-1."""
        bs, log, hashes = self.log.bs, self.log, []
        for b, off, h in entries:
            got = H(log.read(off, bs))
            if h is not None and got != h:
                raise EngineError(ECORRUPT, f"block {b} at log offset {off} damaged")
            hashes.append(got)
        if digest is not None and cp_digest((e[0], h) for e, h in zip(entries, hashes)) != digest:
            raise EngineError(ECORRUPT, f"redo of CP {k}: digest mismatch")
        leaves = {}
        for (b, off, _), h in zip(entries, hashes):
            data = log.read(off, bs)
            if H(data) != h:
                raise EngineError(ECORRUPT, f"block {b} changed while applied")
            os.pwrite(self.mirror, data, b * bs)
            leaves[b] = Tree.leaf(data)
        os.fsync(self.mirror)                               # 6
        self.tree.commit(leaves)
        log.append(R_CP_APPLIED, struct.pack("<Q", k))      # 7 (no sync needed)
        log.applied_cp = k

    def on_tree_query(self, p):                             # 9.7
        reject(len(p) < 8, ELENGTH, "TREE_QUERY length")
        level, count = struct.unpack_from("<II", p)
        reject(level == 0 or level > 64, ERANGE, "TREE_QUERY level")
        reject(count == 0 or count > MAX_TREE or len(p) != 8 + 8 * count, ELENGTH, "TREE_QUERY count")
        reject(level > self.tree.H, ERANGE, "TREE_QUERY level above the tree height")
        idx = struct.unpack_from(f"<{count}Q", p, 8)
        reject(any(i >= self.tree.P >> level for i in idx), ERANGE, "TREE_QUERY index")
        self.send(TREE_NODES, struct.pack("<II", level, count) + b"".join(
            struct.pack("<Q", i) + self.tree.node(level - 1, 2 * i) + self.tree.node(level - 1, 2 * i + 1)
            for i in idx))

    def promote(self):
        """8.4: replay the transfers after the last CP, then retire the log."""
        log = self.log
        reject(log.fresh, ESTATE, "a fresh destination cannot be promoted")
        for tid in sorted(t for t in log.index if t > log.covers_tid):
            data_off, off, length = log.index[tid]
            os.pwrite(self.mirror, log.read(data_off, length), off)
        os.fsync(self.mirror)
        os.ftruncate(log.fd, 0)
        os.fsync(log.fd)
        os.ftruncate(self.tree.fd, 0)
        os.fsync(self.tree.fd)


# ---- transports (10.1) ------------------------------------------------------
def serve_stdio(dest):
    while not dest.ended:
        data = os.read(0, 1 << 20)
        out = dest.feed(data) if data else dest.eof() or b""
        try:
            while out:
                out = out[os.write(1, out):]
        except BrokenPipeError:             # the source went away: the session ended
            dest.eof()
    return dest.fatal or dest.outcome


def refuse(conn):
    """2.3: an ERROR MK_EPEER with seq 0, without reading, then close."""
    try:
        conn.settimeout(0.5)
        msg = b"a session with another source is active"
        conn.sendall(encode(ERROR, 0, struct.pack("<II", EPEER, len(msg)) + msg))
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    conn.close()


def serve_listen(dest, addr, once, port_file):
    host, _, port = addr.rpartition(":")
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(8)
    if port_file:
        with open(port_file, "w") as f:
            f.write(f"{ls.getsockname()[1]}\n")
    conn = None
    while True:
        ready = select.select([ls] + ([conn] if conn else []), [], [])[0]
        if conn is not None and conn in ready:   # the active session first: its close
            try:                                 # is read before a new connection
                data = conn.recv(1 << 20)
            except OSError:
                data = b""
            out = dest.feed(data) if data else dest.eof() or b""
            try:
                conn.sendall(out)
            except OSError:
                dest.eof()
            if dest.ended:
                conn.close()
                conn = None
                if dest.fatal:
                    return dest.fatal
                if once:
                    return dest.outcome
            continue
        if conn is not None and select.select([conn], [], [], 0)[0]:
            continue                             # 2.3: read the old session's end first
        if ls in ready:
            c, _ = ls.accept()
            if conn is not None:
                refuse(c)
            else:
                conn = c
                dest.begin_session()


USAGE = ("usage: mkdest.py (--listen HOST:PORT [--once] | --stdio | --promote) --image F --log F\n"
         "                 [--tree F] [--port-file F] [--blocks N] [--block-size B] [--volume-id X]\n")


def main(argv):
    flags, values = {"--stdio", "--once", "--promote"}, {
        "--listen", "--image", "--log", "--tree", "--port-file", "--blocks", "--block-size", "--volume-id"}
    opt, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if a in flags:
            opt[a] = True
        elif a in values and i + 1 < len(argv):
            opt[a] = argv[i + 1]
            i += 1
        else:
            sys.stderr.write(f"mkdest: unsupported option or argument {a!r}\n" + USAGE)
            return 127                      # 10.3: unsupported invocation
        i += 1
    modes = [m for m in ("--listen", "--stdio", "--promote") if m in opt]
    try:
        config = tuple(int(opt.get(k, "0"), 0) for k in ("--volume-id", "--blocks", "--block-size"))
        if "--listen" in opt:
            int(opt["--listen"].rpartition(":")[2])
    except ValueError:
        config = None
    if len(modes) != 1 or "--image" not in opt or "--log" not in opt or config is None \
            or (config[2] and not block_size_ok(config[2])):
        sys.stderr.write("mkdest: MK_EUSAGE: bad command line\n" + USAGE)
        return 2
    try:
        dest = Dest(opt["--image"], opt["--log"], opt.get("--tree", opt["--image"] + ".mkt"), config)
        dest.start()
        if "--promote" in opt:
            dest.promote()
            return 0
        rc = serve_stdio(dest) if "--stdio" in opt else \
            serve_listen(dest, opt["--listen"], "--once" in opt, opt.get("--port-file"))
    except MkError as e:
        sys.stderr.write(f"mkdest: {errname(e.code)}: {e.msg}\n")
        return exit_code(e.code)
    except (OSError, MemoryError) as e:
        code = ENOMEM if isinstance(e, MemoryError) else ENOSPC if e.errno == errno.ENOSPC else EIO
        sys.stderr.write(f"mkdest: {errname(code)}: {e}\n")
        return exit_code(code)
    return exit_code(rc) if rc else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
