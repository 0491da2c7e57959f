#!/usr/bin/python3
"""Tests of examples/mkdest.py.

    /usr/bin/python3 examples/test_mkdest.py [-v] [-k PATTERN]

1. SPEC.md's test vectors, byte for byte (frames, digests, Merkle tree).
2. The engine in-process: sessions, validation order, NAK/resend, recovery.
3. End to end against the reference source `build/mirrorkit source`
   (skipped when the binary is missing): script runs over block sizes and
   modes, a restart, a concurrent connection, a Merkle descent, SIGKILL
   crashes, and log-file compatibility with `mirrorkit dump` / `dest`.
"""
import os, random, shutil, signal, socket, struct, subprocess, sys, tempfile, time, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mkdest as M  # noqa: E402

M.note = lambda msg: None                   # quiet in-process engines

MKDEST = os.path.join(HERE, "mkdest.py")
MIRRORKIT = os.path.join(os.path.dirname(HERE), "build", "mirrorkit")
PY = "/usr/bin/python3"
SEED = int(os.environ.get("MKDEST_SEED", "12"))
need_ref = unittest.skipUnless(os.access(MIRRORKIT, os.X_OK), "build/mirrorkit not built")


def hx(s):
    return bytes.fromhex("".join(s.split()))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def frames(buf):
    """Decode every frame of a destination's output: [(type, seq, payload)]."""
    out, pos = [], 0
    while pos < len(buf):
        t, seq, p, pos = M.decode(buf, pos)
        out.append((t, seq, p))
    return out


# ---- payload builders (the source side) -------------------------------------
def hello(vid=7, n=16, bs=512, mode=1, sid=9):
    return struct.pack("<QQIB3sQ", vid, n, bs, mode, bytes(3), sid)


def log(tid, off, data):
    return struct.pack("<QQII", tid, off, len(data), 0) + data


def begin(k, n, covers):
    return struct.pack("<QQQ", k, n, covers)


def cpdata(k, block, data):
    return struct.pack("<QQ", k, block) + data


def cpref(k, refs):
    return struct.pack("<QII", k, len(refs), 0) + b"".join(
        struct.pack("<QQIIQ", b, tid, slot, 0, h) for b, tid, slot, h in refs)


def commit(k, n):
    return struct.pack("<QQ", k, n)


def tquery(level, idx):
    return struct.pack("<II", level, len(idx)) + b"".join(struct.pack("<Q", i) for i in idx)


class Peer:
    """Drives a Dest engine in-process as a source would."""
    def __init__(self, d):
        self.d, self.seq = d, 0
        d.begin_session()

    def send(self, t, payload, seq=None):
        f = M.encode(t, self.seq if seq is None else seq, payload)
        self.seq += 1
        return frames(self.d.feed(f))

    def error_code(self, out):
        assert out and out[-1][0] == M.ERROR, out
        return struct.unpack_from("<I", out[-1][2])[0]


class TmpDir(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mkdest-")
        self.img, self.log = os.path.join(self.dir, "img"), os.path.join(self.dir, "log")

    def tearDown(self):
        for srv in Server.live:                 # never leave a destination running
            if srv.p.poll() is None:
                srv.kill()
        Server.live.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def dest(self, config=(0, 0, 0)):
        d = M.Dest(self.img, self.log, self.img + ".mkt", config)
        d.start()
        return d


# ---- 1. SPEC.md test vectors -------------------------------------------------
class Vectors(TmpDir):
    def test_log_ack_3_2(self):
        v = hx("4d4b4652 01 82 0000 08000000 0100000000000000 0700000000000000 09c75912e6097167")
        self.assertEqual(M.encode(M.LOG_ACK, 1, struct.pack("<Q", 7)), v)
        self.assertEqual(M.decode(v, 0), (M.LOG_ACK, 1, struct.pack("<Q", 7), 36))

    def test_hello_ack_2_2(self):
        v = hx("""4d4b4652 01 81 0000 38000000 0200000000000000 8877665544332211
            0000010000000000 00020000 00000000 0700000000000000 0200000001000000
            a8a7a6a5a4a3a2a1 78695a4b3c2d1e0f fb3c4e6299951839""")
        p = struct.pack("<QQIIQQQQ", 0x1122334455667788, 65536, 512, 0, 7, 0x100000002,
                        0xA1A2A3A4A5A6A7A8, 0x0F1E2D3C4B5A6978)
        self.assertEqual(M.encode(M.HELLO_ACK, 2, p), v)

    def test_error_3_6(self):
        v = hx("4d4b4652 01 7f 0000 0b000000 0b00000000000000 09000000 03000000 626164 a4e8333c1eb636f1")
        self.assertEqual(M.encode(M.ERROR, 11, struct.pack("<II", M.ECHECKSUM, 3) + b"bad"), v)

    def test_cp_ack_7_5(self):
        v = hx("""4d4b4652 01 84 0000 28000000 0a00000000000000 0900000000000000
            0300000000000000 78695a4b3c2d1e0f 8877665544332211 00ffeeddccbbaa99 d01161c9b241053f""")
        p = struct.pack("<QQQQQ", 9, 3, 0x0F1E2D3C4B5A6978, 0x1122334455667788, 0x99AABBCCDDEEFF00)
        self.assertEqual(M.encode(M.CP_ACK, 10, p), v)

    def test_nak_8_1(self):
        v = hx("""4d4b4652 01 83 0000 18000000 0900000000000000 0900000000000000
            1000000000000000 15000000 00000000 6e10533b9bddc9a8""")
        self.assertEqual(M.encode(M.NAK, 9, struct.pack("<QQII", 9, 0x10, M.EREFHASH, 0)), v)

    def test_digest_7_5(self):
        z, ff = M.H(bytes(4096)), M.H(b"\xff" * 4096)
        self.assertEqual((z, ff), (0x93D76FE148C689BA, 0x074CFAC273851DD6))
        self.assertEqual(M.cp_digest([(0, z)]), 0xD1A0C2555E210F23)
        self.assertEqual(M.cp_digest([(0, z), (5, ff)]), 0xFCE83EFC4151A1B0)
        self.assertEqual(M.cp_digest([]), 0)

    def test_geometry_4_2(self):
        for o, ln, want in [(0, 8192, (0, 2, 0)), (100, 10000, (3996, 1, 1)),
                            (100, 50, (50, 0, None)), (4096, 100, (0, 0, None))]:
            h, s, f = M.geometry(o, ln, 4096)
            self.assertEqual((h, s), want[:2])
            if want[2] is not None:
                self.assertEqual(f, want[2])

    def test_merkle_9_7_and_session(self):
        """The 9.7 vectors, produced by a real session: HELLO, LOG of block 0
        = 512 x 0x01, CP 1 with one REF; then the TREE_QUERY vector."""
        blk = b"\x01" * 512
        self.assertEqual(M.Tree.leaf(blk), hx("0fcc03336f6c91e3 5e97669d8ed8b7c6"))
        d = self.dest()
        s = Peer(d)
        self.assertEqual(s.send(M.HELLO, hello(n=2))[0][:2], (M.HELLO_ACK, 0))
        self.assertEqual(s.send(M.LOG, log(1, 0, blk)), [(M.LOG_ACK, 1, struct.pack("<Q", 1))])
        self.assertEqual(s.send(M.CP_BEGIN, begin(1, 1, 1)), [])
        self.assertEqual(s.send(M.CP_REF, cpref(1, [(0, 1, 0, M.H(blk))])), [])
        out = d.feed(M.encode(M.CP_COMMIT, 4, commit(1, 1)))
        self.assertEqual(out, hx("""4d4b4652 01 84 0000 28000000 0200000000000000 0100000000000000
            0100000000000000 e9ecea3cd6738dd6 38448678435b3fc5 ea5547f0a182af5d d8b5973dd5b009c7"""))
        q = hx("""4d4b4652 01 07 0000 10000000 0500000000000000 01000000 01000000
            0000000000000000 1883d8e65363abaa""")
        self.assertEqual(M.encode(M.TREE_QUERY, 5, tquery(1, [0])), q)
        self.assertEqual(d.feed(q), hx("""4d4b4652 01 85 0000 30000000 0300000000000000 01000000 01000000
            0000000000000000 0fcc03336f6c91e3 5e97669d8ed8b7c6 0000000000000000
            0000000000000000 9008c764b007517f"""))
        with open(self.img + ".mkt", "rb") as f:
            self.assertEqual(f.read(), hx("""0fcc03336f6c91e35e97669d8ed8b7c6 00000000000000000000000000000000
                38448678435b3fc5ea5547f0a182af5d"""))
        with open(self.img, "rb") as f:
            self.assertEqual(f.read(), blk + bytes(512))


# ---- 2a. framing, 3.4 ----------------------------------------------------------
class Framing(unittest.TestCase):
    def code(self, buf):
        with self.assertRaises(M.MkError) as c:
            M.decode(buf, 0)
        return c.exception.code

    def test_order(self):
        good = M.encode(M.LOG_ACK, 1, struct.pack("<Q", 7))
        self.assertIsNone(M.decode(good[:3], 0))               # magic not complete yet
        self.assertEqual(self.code(b"MKFX"), M.EMAGIC)
        self.assertEqual(self.code(b"MKFR\x02"), M.EVERSION)
        self.assertIsNone(M.decode(good[:19], 0))
        self.assertEqual(self.code(good[:6] + b"\x01\x00" + good[8:20]), M.ERESERVED)
        big = M.HDR.pack(M.MAGIC, 1, M.LOG, 0, M.MAX_PAYLOAD + 1, 0)
        self.assertEqual(self.code(big), M.ELENGTH)            # before any body byte
        self.assertIsNone(M.decode(good[:-1], 0))              # MK_ETRUNC: wait
        self.assertEqual(self.code(good[:-1] + b"\x00"), M.ECHECKSUM)


# ---- 2b. the engine -----------------------------------------------------------
class Engine(TmpDir):
    def session(self, **kw):
        d = self.dest()
        s = Peer(d)
        out = s.send(M.HELLO, hello(**kw))
        self.assertEqual(out[0][0], M.HELLO_ACK, out)
        return d, s

    def test_nothing_before_hello(self):
        d = self.dest()
        for t, p in [(M.LOG, log(1, 0, b"x")), (M.ERROR, struct.pack("<II", 1, 0)),
                     (M.TREE_QUERY, tquery(1, [0])), (0x55, b"")]:
            s = Peer(d)
            out = s.send(t, p)
            self.assertEqual(out[0][:2], (M.ERROR, 0))
            self.assertEqual(s.error_code(out), M.ESTATE)
            self.assertTrue(d.ended)
        self.assertEqual(os.path.getsize(self.log), 0)         # I4: still fresh

    def test_hello_checks_2_1(self):
        d = self.dest()
        for p, code in [(hello()[:31], M.ELENGTH), (hello()[:21] + b"\x01\0\0" + hello()[24:], M.ERESERVED),
                        (hello(bs=1000), M.EBLOCKSIZE), (hello(mode=4), M.EINVAL),
                        (hello(n=0), M.ERANGE), (hello(n=2**64 // 512), M.ERANGE)]:
            self.assertEqual(Peer(d).error_code(Peer(d).send(M.HELLO, p)), code)
        s = Peer(d)
        self.assertEqual(s.error_code(s.send(M.HELLO, hello(), seq=1)), M.ESEQ)

    def test_second_hello_unknown_type_received_error(self):
        d, s = self.session()
        self.assertEqual(s.error_code(s.send(M.HELLO, hello())), M.ESTATE)
        d, s = self.session()
        self.assertEqual(s.error_code(s.send(M.R_TRANSFER, b"")), M.ETYPE)
        d, s = self.session()
        self.assertEqual(s.send(M.ERROR, struct.pack("<II", 99, 2) + b"hi"), [])   # no answer
        self.assertEqual((d.ended, d.outcome), (True, M.EREMOTE))
        d, s = self.session()
        self.assertEqual(s.send(M.ERROR, struct.pack("<II", 99, 3) + b"hi"), [])
        self.assertEqual(d.outcome, M.ELENGTH)

    def test_log_checks_4_3(self):
        for p, code in [(log(1, 0, b"x")[:23], M.ELENGTH),
                        (struct.pack("<QQII", 1, 0, 1, 1) + b"x", M.ERESERVED),
                        (struct.pack("<QQII", 1, 0, 0, 0), M.EZEROLEN),
                        (struct.pack("<QQII", 1, 0, 2, 0) + b"x", M.ELENGTH),
                        (log(0, 0, b"x"), M.ETID), (log(1, 8192, b"x"), M.ERANGE),
                        (log(1, 8191, b"xy"), M.ERANGE)]:
            d, s = self.session()
            size = os.path.getsize(self.log)
            self.assertEqual(s.error_code(s.send(M.LOG, p)), code)
            self.assertEqual(os.path.getsize(self.log), size)   # I4
        d, s = self.session()
        self.assertEqual(s.send(M.LOG, log(5, 8191, b"x"))[0][0], M.LOG_ACK)
        self.assertEqual(s.error_code(s.send(M.LOG, log(5, 0, b"x"))), M.ETID)
        d, s = self.session()                                   # any session: still ETID
        self.assertEqual(s.error_code(s.send(M.LOG, log(4, 0, b"x"))), M.ETID)

    def test_nak_resend_after_commit_7_2_8_1(self):
        d, s = self.session()
        a, b, c = b"\xaa" * 512, b"\xbb" * 512, b"\xcc" * 512
        s.send(M.LOG, log(1, 0, a + b))                         # slots: block 0, block 1
        s.send(M.LOG, log(2, 1024 + 100, b"zz"))                # a head fragment only
        self.assertEqual(s.send(M.CP_BEGIN, begin(1, 4, 2)), [])
        out = s.send(M.CP_REF, cpref(1, [(0, 1, 0, M.H(a)), (1, 1, 1, 123), (2, 2, 0, 1)]))
        self.assertEqual([(t, struct.unpack("<QQII", p)) for t, _, p in out],
                         [(M.NAK, (1, 1, M.EREFHASH, 0)), (M.NAK, (1, 2, M.ESLOT, 0))])
        self.assertEqual(s.send(M.CP_DATA, cpdata(1, 3, c)), [])
        self.assertEqual(s.send(M.CP_COMMIT, commit(1, 4)), [])      # waits for resends
        self.assertEqual(s.send(M.CP_DATA, cpdata(1, 1, b)), [])
        c2 = bytearray(512)
        c2[100:102] = b"zz"
        out = s.send(M.CP_DATA, cpdata(1, 2, bytes(c2)))
        self.assertEqual(out[0][0], M.CP_ACK)
        k, n, dg = struct.unpack_from("<QQQ", out[0][2])
        want = M.cp_digest([(0, M.H(a)), (1, M.H(b)), (2, M.H(bytes(c2))), (3, M.H(c))])
        self.assertEqual((k, n, dg), (1, 4, want))
        with open(self.img, "rb") as f:
            self.assertEqual(f.read(2048), a + b + bytes(c2) + c)
        self.assertEqual(out[0][2][24:], d.tree.root())

    def test_ref_rules_7_2(self):
        d, s = self.session()
        a = b"\x11" * 1024
        s.send(M.LOG, log(2, 512, a))                           # slots: block 1, block 2
        s.send(M.LOG, log(5, 4096, b"\x22" * 512))
        s.send(M.CP_BEGIN, begin(1, 5, 2))
        out = s.send(M.CP_REF, cpref(1, [(8, 5, 0, M.H(b"\x22" * 512)),   # tid > covers_tid
                                         (3, 1, 0, 0),                     # not in the index
                                         (4, 2, 2, 0),                     # slot >= nslots
                                         (5, 2, 0, M.H(a[:512])),          # slot holds block 1
                                         (1, 2, 0, M.H(a[:512]))]))        # resolves
        self.assertEqual([struct.unpack("<QQII", p)[1:3] for _, _, p in out],
                         [(8, M.ETID), (3, M.ENOTID), (4, M.ESLOT), (5, M.ESLOT)])
        self.assertEqual(s.error_code(s.send(M.CP_REF, cpref(1, [(8, 1, 0, 0)]))), M.EDUPBLOCK)

    def test_admission_before_resolution_7_2(self):
        d, s = self.session()
        s.send(M.LOG, log(1, 0, b"\x01" * 512))
        s.send(M.CP_BEGIN, begin(1, 2, 1))
        size = os.path.getsize(self.log)
        out = s.send(M.CP_REF, cpref(1, [(0, 1, 0, 5), (16, 1, 0, 0)]))   # bad hash, then block >= N
        self.assertEqual([t for t, _, _ in out], [M.ERROR])               # no NAK
        self.assertEqual(s.error_code(out), M.ERANGE)
        self.assertEqual(os.path.getsize(self.log), size)
        for refs, code in [([(0, 1, 0, 5), (0, 1, 0, 5)], M.EDUPBLOCK),
                           ([(0, 1, 0, 5), (1, 1, 0, 5), (2, 1, 0, 5)], M.ECOUNT)]:
            d, s = self.session()
            s.send(M.CP_BEGIN, begin(1, 2, 1))
            out = s.send(M.CP_REF, cpref(1, refs))
            self.assertEqual(([t for t, _, _ in out], s.error_code(out)), ([M.ERROR], code))

    def test_cp_state_errors(self):
        blk = bytes(512)
        cases = [
            ([(M.CP_DATA, cpdata(1, 0, blk))], M.ESTATE),
            ([(M.CP_BEGIN, begin(2, 1, 0))], M.ECP),
            ([(M.CP_BEGIN, begin(1, 1, 9))], M.ETID),
            ([(M.CP_BEGIN, begin(1, 17, 0))], M.ECOUNT),
            ([(M.CP_BEGIN, begin(1, 1, 0)), (M.CP_BEGIN, begin(1, 1, 0))], M.ESTATE),
            ([(M.CP_BEGIN, begin(1, 1, 0)), (M.CP_DATA, cpdata(2, 0, blk))], M.ECP),
            ([(M.CP_BEGIN, begin(1, 1, 0)), (M.CP_DATA, cpdata(1, 0, blk[:-1]))], M.ELENGTH),
            ([(M.CP_BEGIN, begin(1, 2, 0)), (M.CP_DATA, cpdata(1, 0, blk)),
              (M.CP_DATA, cpdata(1, 0, blk))], M.EDUPBLOCK),
            ([(M.CP_BEGIN, begin(1, 1, 0)), (M.CP_DATA, cpdata(1, 0, blk)),
              (M.CP_DATA, cpdata(1, 1, blk))], M.ECOUNT),
            ([(M.CP_BEGIN, begin(1, 2, 0)), (M.CP_DATA, cpdata(1, 0, blk)),
              (M.CP_COMMIT, commit(1, 2))], M.ECOUNT),
            ([(M.CP_BEGIN, begin(1, 2, 0)), (M.CP_DATA, cpdata(1, 0, blk)),
              (M.CP_COMMIT, commit(1, 1))], M.ECOUNT),
            ([(M.CP_COMMIT, commit(1, 0))], M.ESTATE),
            ([(M.CP_BEGIN, begin(1, 0, 0)), (M.CP_COMMIT, commit(2, 0))], M.ECP),
            ([(M.CP_BEGIN, begin(1, 1, 0)), (M.CP_REF, cpref(1, [(0, 1, 0, 0)])[:-1])], M.ELENGTH),
            ([(M.CP_BEGIN, begin(1, 1, 0)), (M.CP_REF, struct.pack("<QII", 1, 0, 0))], M.ELENGTH),
            ([(M.CP_BEGIN, begin(1, 1, 0)), (M.CP_REF, struct.pack("<QII", 1, 1, 1) + bytes(32))], M.ERESERVED),
        ]
        for seq, code in cases:
            d, s = self.session()
            for t, p in seq:
                out = s.send(t, p)
            self.assertEqual(s.error_code(out), code, seq)
        # after CP_COMMIT (waiting for a resend): CP_REF and a new block are MK_ESTATE
        for t, p in [(M.CP_REF, cpref(1, [(3, 1, 0, 0)])), (M.CP_DATA, cpdata(1, 3, blk)),
                     (M.CP_COMMIT, commit(1, 1))]:
            d, s = self.session()
            s.send(M.CP_BEGIN, begin(1, 1, 0))
            self.assertEqual(s.send(M.CP_REF, cpref(1, [(0, 0, 0, 0)]))[0][0], M.NAK)  # MK_ENOTID
            s.send(M.CP_COMMIT, commit(1, 1))
            self.assertEqual(s.error_code(s.send(t, p)), M.ESTATE)

    def test_empty_cp_and_discarded_cp_2_4(self):
        d, s = self.session()
        out = s.send(M.CP_BEGIN, begin(1, 0, 0)) + s.send(M.CP_COMMIT, commit(1, 0))
        self.assertEqual(out[0][2], struct.pack("<QQQ", 1, 0, 0) + bytes(16))
        s.send(M.LOG, log(1, 0, b"\x05" * 512))
        s.send(M.CP_BEGIN, begin(2, 1, 1))
        s.send(M.CP_DATA, cpdata(2, 3, b"\x06" * 512))
        s.send(M.CP_COMMIT, commit(2, 1))                       # CP 2 commits
        d.eof()
        s = Peer(d)
        ack = s.send(M.HELLO, hello())[0][2]
        self.assertEqual(struct.unpack_from("<QQ", ack, 24), (2, 1))   # last_cp 2, durable_tid 1
        s.send(M.CP_BEGIN, begin(3, 1, 1))
        s.send(M.CP_DATA, cpdata(3, 4, b"\x07" * 512))
        d.eof()                                                 # CP 3 not committed: discarded
        s = Peer(d)
        self.assertEqual(struct.unpack_from("<Q", s.send(M.HELLO, hello())[0][2], 24)[0], 2)
        self.assertEqual(s.send(M.CP_BEGIN, begin(3, 0, 1)), [])

    def test_restart_identity_2_3(self):
        d, s = self.session()
        s.send(M.LOG, log(1, 0, b"\x05" * 1024))
        s.send(M.LOG, log(2, 0, b"\x06" * 10))
        s.send(M.CP_BEGIN, begin(1, 2, 2))
        s.send(M.CP_REF, cpref(1, [(1, 1, 1, M.H(b"\x05" * 512))]))
        s.send(M.CP_DATA, cpdata(1, 0, b"\x06" * 10 + b"\x05" * 502))
        ack = s.send(M.CP_COMMIT, commit(1, 2))[0][2]
        s.send(M.LOG, log(3, 600, b"\x07" * 10))
        root = d.tree.root()
        d = self.dest()                                         # a restart
        s = Peer(d)
        out = s.send(M.HELLO, hello())
        self.assertEqual(out[0][2], struct.pack("<QQIIQQQQ", 7, 16, 512, 0, 1, 3, 9,
                                                struct.unpack_from("<Q", ack, 16)[0]))
        self.assertEqual(d.tree.root(), root)
        for p, code in [(hello(sid=8), M.EPEER), (hello(vid=8), M.EVOLUME),
                        (hello(n=17), M.EVOLUME), (hello(bs=1024), M.EVOLUME)]:
            s = Peer(d)
            self.assertEqual(s.error_code(s.send(M.HELLO, p)), code)
        with self.assertRaises(M.MkError) as c:
            self.dest(config=(0, 32, 0))                        # 7.6 step 7
        self.assertEqual(c.exception.code, M.EVOLUME)
        d = self.dest(config=(7, 16, 512))
        self.assertEqual(Peer(d).send(M.HELLO, hello())[0][0], M.HELLO_ACK)

    def test_configured_identity_and_fresh_with_image_2_3(self):
        d = self.dest(config=(0, 0, 4096))
        s = Peer(d)
        self.assertEqual(s.error_code(s.send(M.HELLO, hello())), M.EVOLUME)
        with open(self.img, "wb") as f:
            f.write(b"old data")
        d = self.dest()
        s = Peer(d)
        self.assertEqual(s.error_code(s.send(M.HELLO, hello())), M.EDIVERGED)
        self.assertEqual(read(self.img), b"old data")
        self.assertEqual(os.path.getsize(self.log), 0)

    def test_tree_query_checks_9_7(self):
        d, s = self.session(n=5)                                # P = 8, H = 3
        for p, code in [(b"\0" * 7, M.ELENGTH), (tquery(0, [0]), M.ERANGE), (tquery(65, [0]), M.ERANGE),
                        (tquery(1, []), M.ELENGTH), (tquery(1, [0])[:-1], M.ELENGTH),
                        (tquery(4, [0]), M.ERANGE), (tquery(1, [4]), M.ERANGE)]:
            d, s = self.session(n=5)
            self.assertEqual(s.error_code(s.send(M.TREE_QUERY, p)), code)
        d, s = self.session(n=5)
        out = s.send(M.TREE_QUERY, tquery(1, [3, 0]))           # padding node: children 0
        self.assertEqual(out[0][2], struct.pack("<IIQ", 1, 2, 3) + bytes(32) + struct.pack("<Q", 0) + bytes(32))
        self.tearDown()
        self.setUp()
        d, s = self.session(n=1)
        self.assertEqual(s.error_code(s.send(M.TREE_QUERY, tquery(1, [0]))), M.ERANGE)


# ---- 2c. recovery, 7.6 / 7.7 ---------------------------------------------------
class Recovery(TmpDir):
    def run_cp(self, blocks=(1, 2)):
        d = self.dest()
        s = Peer(d)
        s.send(M.HELLO, hello())
        s.send(M.LOG, log(1, 512, b"\x33" * 1024))
        s.send(M.CP_BEGIN, begin(1, len(blocks), 1))
        s.send(M.CP_REF, cpref(1, [(b, 1, b - 1, M.H(b"\x33" * 512)) for b in blocks]))
        return d, s

    def test_torn_tail_cut(self):
        d, s = self.run_cp()
        s.send(M.LOG, log(2, 0, b"\x44" * 100))                 # LOG_ACK 2: durable
        size = os.path.getsize(self.log)
        rec = M.encode(M.R_TRANSFER, d.log.rseq, log(3, 0, b"\x55" * 100))
        for torn in (rec[:10], rec[:40], rec[:-1], rec[:-8] + b"\0" * 8):
            with open(self.log, "r+b") as f:
                f.truncate(size)
                f.seek(size)
                f.write(torn)
            d = self.dest()
            self.assertEqual(os.path.getsize(self.log), size)
            self.assertEqual((d.log.durable_tid, d.log.last_cp), (2, 0))

    def test_damage_inside_refuses_to_open(self):
        d, s = self.run_cp()
        s.send(M.LOG, log(2, 0, b"\x44" * 100))                 # a valid record after the damage
        with open(self.log, "r+b") as f:                        # 1st record's payload, 2nd is valid
            f.seek(256 + 20 + 30)
            f.write(b"\xff")
        before = read(self.log)
        with self.assertRaises(M.MkError) as c:
            self.dest()
        self.assertEqual(c.exception.code, M.ECORRUPT)
        self.assertEqual(read(self.log), before)

    def test_scan_rule_error_leaves_file(self):
        d, s = self.run_cp()
        with open(self.log, "r+b") as f:                        # append a valid R_CP_APPLIED(5)
            f.seek(0, 2)
            f.write(M.encode(M.R_CP_APPLIED, d.log.rseq, struct.pack("<Q", 5)))
        before = read(self.log)
        with self.assertRaises(M.MkError) as c:
            self.dest()
        self.assertEqual((c.exception.code, read(self.log)), (M.ECP, before))

    def test_redo_after_crash_past_commit_point(self):
        d, s = self.run_cp()

        class Crash(Exception):
            pass

        def crash(*a, **k):
            raise Crash()
        d.apply_blocks = crash                                  # die right after step 4
        with self.assertRaises(Crash):
            s.send(M.CP_COMMIT, commit(1, 2))
        self.assertEqual(read(self.img), bytes(8192))    # still CP 0
        d = self.dest()                                         # recovery redoes CP 1
        self.assertEqual((d.log.last_cp, d.log.applied_cp), (1, 1))
        self.assertEqual(read(self.img)[:1536], bytes(512) + b"\x33" * 1024)
        ack = Peer(d).send(M.HELLO, hello())[0][2]
        self.assertEqual(struct.unpack_from("<QQ", ack, 24), (1, 1))
        self.assertEqual(struct.unpack_from("<Q", ack, 48)[0],
                         M.cp_digest([(1, M.H(b"\x33" * 512)), (2, M.H(b"\x33" * 512))]))
        t = M.Tree(self.dir + "/t2", 16)
        t.rebuild(d.mirror, 16, 512)
        self.assertEqual(t.root(), d.tree.root())

    def test_redo_refuses_damaged_log(self):
        d, s = self.run_cp()
        d.apply_blocks = lambda *a: (_ for _ in ()).throw(KeyboardInterrupt)
        with self.assertRaises(KeyboardInterrupt):
            s.send(M.CP_COMMIT, commit(1, 2))
        off = d.log.index[1][0]
        with open(self.log, "r+b") as f:                        # damage the slot bytes under a
            f.seek(off)                                         # record whose checksum we fix
            f.write(b"\x34")
        raw = bytearray(read(self.log))
        length = struct.unpack_from("<I", raw, 256 + 8)[0]
        raw[256 + 20 + length:256 + 28 + length] = struct.pack("<Q", M.H(bytes(raw[256:256 + 20 + length])))
        write(self.log, raw)
        with self.assertRaises(M.MkError) as c:
            self.dest()
        self.assertEqual(c.exception.code, M.ECORRUPT)
        self.assertEqual(read(self.img), bytes(8192))

    def test_reclaim_and_stale_records_7_7(self):
        d, s = self.run_cp()
        old = read(self.log)
        s.send(M.CP_COMMIT, commit(1, 2))
        self.assertEqual(os.path.getsize(self.log), 256)        # reclaimed
        new = read(self.log)
        # a crash between reclaim steps 2 and 3: new header, old records
        write(self.log, new + old[256:])
        d = self.dest()
        self.assertEqual(os.path.getsize(self.log), 256)
        self.assertEqual((d.log.last_cp, d.log.durable_tid, d.log.rseq), (1, 1, 4))
        s = Peer(d)
        s.send(M.HELLO, hello())
        self.assertEqual(s.send(M.LOG, log(2, 0, b"x"))[0][0], M.LOG_ACK)
        d = self.dest()
        self.assertEqual(d.log.durable_tid, 2)

    def test_fresh_and_bad_headers_7_3(self):
        d = self.dest()
        Peer(d).send(M.HELLO, hello())
        hdr = read(self.log)
        for torn in (hdr[:6], hdr[:100] + bytes(28), b"", bytes(256), bytes(100)):
            write(self.log, torn)
            self.assertTrue(self.dest().log.fresh, torn[:8])
        for bad, code in [(b"XXXX" + bytes(300), M.EMAGIC), (hdr[:4] + b"\x02" + bytes(251), M.EVERSION),
                          (hdr[:120] + bytes(8) + bytes(138), M.ECORRUPT)]:
            write(self.log, bad)
            with self.assertRaises(M.MkError) as c:
                self.dest()
            self.assertEqual(c.exception.code, code)


# ---- 3. end to end against the reference source -------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    live = []

    def __init__(self, d, port=None, once=False, extra=()):
        self.d, self.port = d, port or free_port()
        self.args = [PY, MKDEST, "--listen", f"127.0.0.1:{self.port}", "--image", d + "/img",
                     "--log", d + "/log", "--port-file", d + "/port"] + (["--once"] if once else []) + list(extra)
        self.start()

    def start(self):
        self.err = open(self.d + "/dest.err", "ab")
        if os.path.exists(self.d + "/port"):
            os.unlink(self.d + "/port")
        self.p = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.err)
        Server.live.append(self)
        for _ in range(200):                    # listening once the port file is written
            if os.path.exists(self.d + "/port") and os.path.getsize(self.d + "/port"):
                return
            time.sleep(0.025)
        raise RuntimeError("mkdest did not start")

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        self.p.wait()
        self.err.close()


def source(port, n, bs, mode, script, vid=0x77, sid=0x99, timeout=600):
    r = subprocess.run([MIRRORKIT, "source", "--connect", f"127.0.0.1:{port}", "--blocks", str(n),
                        "--block-size", str(bs), "--mode", mode, "--volume-id", hex(vid),
                        "--source-id", hex(sid), "--script", "-"],
                       input=script.encode(), capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode().split("\n")[:-1], r.stderr.decode()


def make_script(rng, n, bs, cps, writes):
    """Random writes (whole blocks, partial, unaligned spans, overwrites of the
    same blocks within one CP) with CPs; returns (script, images after each CP)."""
    vol, lines, images, hot = bytearray(n * bs), [], [], rng.sample(range(n), min(4, n))
    for _ in range(cps):
        for _ in range(writes):
            kind = rng.random()
            if kind < 0.3:                                       # whole block(s), often hot
                b = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(n)
                cnt = min(rng.randint(1, 3), n - b)
                off, ln = b * bs, cnt * bs
            elif kind < 0.6:                                     # partial, inside a block
                b = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(n)
                off = b * bs + rng.randrange(bs - 1)
                ln = rng.randint(1, bs * b + bs - off)
            else:                                                # unaligned span
                off = rng.randrange(n * bs - 1)
                ln = rng.randint(1, min(n * bs - off, 3 * bs))
            data = rng.randbytes(ln)
            vol[off:off + ln] = data
            lines.append(f"write {off} {data.hex()}")
        lines.append("cp")
        images.append(bytes(vol))
    return "\n".join(lines + ["quit"]) + "\n", images


@need_ref
class EndToEnd(TmpDir):
    def check_run(self, bs, mode, n=64, cps=4, writes=40, seed=1):
        rng = random.Random(seed)
        script, images = make_script(rng, n, bs, cps, writes)
        srv = Server(self.dir)
        try:
            rc, out, err = source(srv.port, n, bs, mode, script)
        finally:
            srv.kill(signal.SIGTERM)
        msg = f"B={bs} mode={mode}: {out[-3:]} {err[-800:]}"
        self.assertEqual(rc, 0, msg)
        self.assertFalse([x for x in out if x.startswith("error")], msg)
        self.assertEqual([x for x in out if x.startswith("cp-ack")], [f"cp-ack {k}" for k in range(1, cps + 1)])
        self.assertEqual(len([x for x in out if x.startswith("ack ")]), cps * writes)
        self.assertEqual(read(self.img), images[-1], msg)
        rows = [x.split() for x in err.splitlines() if x[:4].strip().isdigit()]
        data, refs = sum(int(r[3]) for r in rows), sum(int(r[4]) for r in rows)
        self.assertGreater(data, 0)                             # both CP paths were taken
        self.assertTrue(refs > 0 if mode != "async" else refs == 0, (data, refs))
        return srv

    def test_block_sizes_and_modes(self):
        for bs, mode in [(512, "sync"), (4096, "semi-sync"), (4096, "async"), (65536, "sync"),
                         (1024, "async"), (2048, "semi-sync")]:
            with self.subTest(bs=bs, mode=mode):
                self.tearDown()
                self.setUp()
                self.check_run(bs, mode, n=24 if bs == 65536 else 64, seed=bs)
                r = subprocess.run([MIRRORKIT, "dump", self.log], capture_output=True)
                self.assertEqual(r.returncode, 0, r.stdout[-500:] + r.stderr)   # the 7.3 format

    def test_large_write_split_4_2(self):
        bs, n = 4096, 1000
        data = random.Random(3).randbytes(3 * (1 << 20) + 777)
        script = f"write 1000 {data.hex()}\ncp\nwrite 0 {data[:5000].hex()}\ncp\nquit\n"
        srv = Server(self.dir)
        rc, out, err = source(srv.port, n, bs, "sync", script)
        srv.kill(signal.SIGTERM)
        self.assertEqual((rc, out), (0, ["ack 1", "cp-ack 1", "ack 2", "cp-ack 2"]), err[-500:])
        img = bytearray(n * bs)
        img[1000:1000 + len(data)] = data
        img[0:5000] = data[:5000]
        self.assertEqual(read(self.img), bytes(img))

    def test_restart_between_runs_8_2(self):
        """A restarted dest keeps its history; a new source process against it
        gets MK_EDIVERGED (8.2); the same source resumes across a dest restart."""
        self.check_run(4096, "sync", cps=2).port
        srv = Server(self.dir)
        rc, out, _ = source(srv.port, 64, 4096, "sync", "write 0 00\ncp\n")
        self.assertEqual((rc, out[-1]), (1, "error MK_EDIVERGED"))
        rc, out, _ = source(srv.port, 64, 4096, "sync", "cp\n", sid=0x98)   # another source
        self.assertEqual((rc, out[-1]), (2, "error MK_EREMOTE"))
        srv.kill()

    def test_resume_across_restart(self):
        n, bs = 32, 512
        script, images = make_script(random.Random(5), n, bs, 4, 30)
        parts = script.split("cp\n")
        srv = Server(self.dir)
        p = subprocess.Popen([MIRRORKIT, "source", "--connect", f"127.0.0.1:{srv.port}", "--blocks", str(n),
                              "--block-size", str(bs), "--mode", "semi-sync", "--script", "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k, part in enumerate(parts[:-1], 1):
            p.stdin.write(part + "cp\n")
            p.stdin.flush()
            while (line := p.stdout.readline().strip()) != f"cp-ack {k}":
                self.assertTrue(line.startswith("ack"), line)
            srv.kill()                                          # SIGKILL between CPs
            srv.start()
            with open(self.img, "rb") as f:
                self.assertEqual(f.read(), images[k - 1])
        p.stdin.write(parts[-1])
        p.stdin.close()
        rest = p.stdout.read()
        self.assertEqual(p.wait(timeout=120), 0, rest + p.stderr.read()[-500:])
        p.stdout.close()
        p.stderr.close()
        srv.kill()

    def test_concurrent_connection_refused_2_3(self):
        srv = Server(self.dir)
        a = socket.create_connection(("127.0.0.1", srv.port))
        a.sendall(M.encode(M.HELLO, 0, hello()))
        self.assertEqual(frames(a.recv(1000))[0][0], M.HELLO_ACK)
        b = socket.create_connection(("127.0.0.1", srv.port))
        t, seq, p = frames(b.recv(1000))[0]
        self.assertEqual((t, seq, struct.unpack_from("<I", p)[0]), (M.ERROR, 0, M.EPEER))
        a.sendall(M.encode(M.LOG, 1, log(1, 0, b"x")))         # the active session goes on
        self.assertEqual(frames(a.recv(1000))[0][0], M.LOG_ACK)
        a.close()
        c = socket.create_connection(("127.0.0.1", srv.port))   # served once the old one ended
        c.sendall(M.encode(M.HELLO, 0, hello()))
        self.assertEqual(struct.unpack_from("<Q", frames(c.recv(1000))[0][2], 32)[0], 1)
        c.close()
        b.close()
        srv.kill()

    def test_merkle_descent_9_7(self):
        """Damage the tree behind the destination's back after CP 1: the next
        CP_ACK root differs and the reference source descends with TREE_QUERY
        down to the damaged leaf."""
        srv = Server(self.dir)
        p = subprocess.Popen([MIRRORKIT, "source", "--connect", f"127.0.0.1:{srv.port}", "--blocks", "64",
                              "--block-size", "512", "--mode", "sync", "--script", "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdin.write(f"write 0 {'ab' * 512 * 64}\ncp\n")
        p.stdin.flush()
        self.assertEqual([p.stdout.readline().strip() for _ in range(2)], ["ack 1", "cp-ack 1"])
        with open(self.img + ".mkt", "r+b") as f:           # leaf 37; CP 2 writes its sibling
            f.seek(16 * 37)
            f.write(b"\x01" * 16)
        p.stdin.write(f"write {36 * 512} {'cd' * 512}\ncp\nwrite 1024 {'ef' * 512}\ncp\nquit\n")
        p.stdin.close()
        out = p.stdout.read().split()
        p.wait(timeout=60)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        self.assertIn("MK_EVERIFY", " ".join(out), err)
        self.assertIn("37", err)                                # the damaged block is named
        self.assertIn("VIOLATED I1", err)
        srv.kill()

    def test_stdio_and_once_exit_codes_10(self):
        d = self.dir
        args = ["--image", d + "/img", "--log", d + "/log"]
        r = subprocess.run([PY, MKDEST, "--stdio"] + args, input=M.encode(M.HELLO, 0, hello()), capture_output=True)
        self.assertEqual((r.returncode, frames(r.stdout)[0][0]), (0, M.HELLO_ACK))
        r = subprocess.run([PY, MKDEST, "--stdio"] + args, input=b"XKFR\x01\x02\0\0", capture_output=True)
        self.assertEqual((r.returncode, struct.unpack_from("<I", frames(r.stdout)[0][2])[0]), (2, M.EMAGIC))
        r = subprocess.run([PY, MKDEST, "--stdio"] + args,
                           input=M.encode(M.HELLO, 0, hello()) + M.encode(M.ERROR, 1, struct.pack("<II", 3, 0)),
                           capture_output=True)
        self.assertEqual((r.returncode, len(frames(r.stdout))), (3, 1))
        r = subprocess.run([PY, MKDEST, "--stdio", "--frobnicate"] + args, capture_output=True)
        self.assertEqual(r.returncode, 127)
        r = subprocess.run([PY, MKDEST, "--stdio"], capture_output=True)
        self.assertEqual(r.returncode, 2)
        os.unlink(d + "/log")                                   # fresh log, image with data
        srv = Server(d, once=True)
        rc, out, _ = source(srv.port, 16, 512, "sync", "write 0 00\n")
        self.assertEqual((rc, out[-1], srv.p.wait(10)), (1, "error MK_EREMOTE", 1))
        srv.err.close()

    def test_reference_log_compatibility(self):
        """Files written by the reference dest open in mkdest, and vice versa."""
        port = free_port()
        ref = subprocess.Popen([MIRRORKIT, "dest", "--listen", f"127.0.0.1:{port}", "--image", self.img,
                                "--log", self.log], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        script, images = make_script(random.Random(9), 32, 1024, 2, 20)
        script = script.replace("quit\n", "write 5 0102\nwrite 2048 " + "11" * 2048 + "\nquit\n")
        rc, out, err = source(port, 32, 1024, "sync", script)
        ref.terminate()
        ref.wait()
        self.assertEqual(rc, 0, err[-500:])
        d = self.dest()
        self.assertEqual((d.log.last_cp, d.log.durable_tid, d.log.fresh), (2, 42, False))
        t = M.Tree(self.dir + "/t2", 32)
        t.rebuild(d.mirror, 32, 1024)
        self.assertEqual(t.root(), d.tree.root())
        s = Peer(d)
        s.send(M.HELLO, hello(vid=0x77, n=32, bs=1024, sid=0x99))
        s.send(M.CP_BEGIN, begin(3, 2, 42))
        out = s.send(M.CP_REF, cpref(3, [(2, 42, 0, M.H(b"\x11" * 1024))]))
        out += s.send(M.CP_DATA, cpdata(3, 0, images[-1][:5] + b"\x01\x02" + images[-1][7:1024]))
        self.assertEqual(out, [])
        self.assertEqual(s.send(M.CP_COMMIT, commit(3, 2))[0][0], M.CP_ACK)
        d.eof()
        r = subprocess.run([MIRRORKIT, "dest", "--stdio", "--image", self.img, "--log", self.log],
                           input=M.encode(M.HELLO, 0, hello(vid=0x77, n=32, bs=1024, sid=0x99)),
                           capture_output=True)
        ack = frames(r.stdout)[0][2]
        self.assertEqual(struct.unpack_from("<QQ", ack, 24), (3, 42))


@need_ref
class Crash(TmpDir):
    def test_sigkill_during_runs(self):
        """SIGKILL the destination at random moments of a workload run; restart
        it; the reference source resumes (8.2) and verifies every CP. After
        each kill, recovery of a copy must give exactly the image of some CP,
        with HELLO_ACK fields that match it."""
        n, bs, cps = 512, 4096, 30
        script, images = make_script(random.Random(11), n, bs, cps, 120)
        srv = Server(self.dir)
        write(self.dir + "/script", script.encode())
        with open(self.dir + "/script", "rb") as sin, open(self.dir + "/out", "wb") as sout, \
                open(self.dir + "/err", "wb") as serr:
            p = subprocess.Popen([MIRRORKIT, "source", "--connect", f"127.0.0.1:{srv.port}", "--blocks",
                                  str(n), "--block-size", str(bs), "--mode", "semi-sync", "--script", "-"],
                                 stdin=sin, stdout=sout, stderr=serr)
        rng, kills, seen, redo, cut = random.Random(SEED), 0, set(), 0, 0
        while p.poll() is None and kills < 12:
            time.sleep(rng.uniform(0.02, 0.4))
            if p.poll() is not None:
                break
            srv.kill()
            kills += 1
            cp = os.path.join(self.dir, "copy")
            shutil.rmtree(cp, ignore_errors=True)
            os.mkdir(cp)
            for f in ("img", "img.mkt", "log"):
                if os.path.exists(os.path.join(self.dir, f)):
                    shutil.copy(os.path.join(self.dir, f), cp)
            shutil.copy(cp + "/log", cp + "/log2")
            lg = M.Log(cp + "/log2")
            lg.open()
            if not lg.fresh and lg.last_cp != lg.applied_cp:
                redo += 1                           # killed between commit point and R_CP_APPLIED
            cut += lg.cut > 0
            d = M.Dest(cp + "/img", cp + "/log", cp + "/img.mkt", (0, 0, 0))
            d.start()
            if not d.log.fresh:
                img = read(cp + "/img")
                k = d.log.last_cp
                self.assertEqual(img, images[k - 1] if k else bytes(n * bs), f"kill {kills}: CP {k}")
                t = M.Tree(cp + "/t2", n)
                t.rebuild(d.mirror, n, bs)
                self.assertEqual(t.root(), d.tree.root())
                seen.add(k)
            srv.start()
        p.wait(timeout=300)
        srv.kill(signal.SIGTERM)
        out, err = read(self.dir + "/out"), read(self.dir + "/err")
        self.assertEqual(p.returncode, 0, err[-800:])
        self.assertIn(f"cp-ack {cps}".encode(), out)
        self.assertEqual(read(self.img), images[-1])
        sys.stderr.write(f"[{kills} kills, recovered at CPs {sorted(seen)}, {redo} redone, {cut} tails cut] ")

    def test_sigkill_workload_verify_image(self):
        """The reference source's own workload, comparing the image after every
        CP (--verify-image), while the destination is killed and restarted."""
        srv, rng, kills = Server(self.dir), random.Random(13), 0
        with open(self.dir + "/out", "wb") as sout:
            p = subprocess.Popen([MIRRORKIT, "source", "--connect", f"127.0.0.1:{srv.port}", "--blocks", "2048",
                                  "--block-size", "4096", "--mode", "sync", "--cps", "25", "--writes", "300",
                                  "--verify-image", self.img], stdout=sout, stderr=subprocess.STDOUT)
        while p.poll() is None and kills < 10:
            time.sleep(rng.uniform(0.05, 0.5))
            if p.poll() is None:
                srv.kill()
                kills += 1
                srv.start()
        p.wait(timeout=300)
        srv.kill(signal.SIGTERM)
        out = read(self.dir + "/out").decode()
        self.assertEqual(p.returncode, 0, out[-1500:])
        self.assertIn("result: ok, every CP verified", out)
        sys.stderr.write(f"[{kills} kills; {out.splitlines()[-2].strip()}] ")


if __name__ == "__main__":
    unittest.main()
