/*
 * mk_err.h - the one error table of mirrorkit.
 *
 * Every failure in mirrorkit is a negative int drawn from MK_ERRNO_MAP, so a
 * code can cross module boundaries, appear in a NAK or ERROR frame on the
 * wire, and be printed by name.  The table is an X-macro so that the enum,
 * the names and the messages can never drift apart (libuv's UV_ERRNO_MAP).
 * On the wire (NAK reasons, ERROR frames) a code travels as its positive
 * wire value, the number in the table; those numbers are fixed forever:
 * append new entries, never renumber.
 */
#ifndef MK_ERR_H
#define MK_ERR_H

/* X(name, wire value, message) */
#define MK_ERRNO_MAP(X)                                                        \
    X(EINVAL, 1, "invalid argument")                                           \
    X(ENOMEM, 2, "out of memory")                                              \
    X(EIO, 3, "I/O error")                                                     \
    X(ENOSPC, 4, "no space left on device")                                    \
    X(EMAGIC, 5, "bad magic: not a mirrorkit stream or file")                  \
    X(EVERSION, 6, "unsupported protocol or file format version")              \
    X(ETYPE, 7, "unknown frame or record type")                                \
    X(ELENGTH, 8, "length field out of range or inconsistent with its type")   \
    X(ECHECKSUM, 9, "integrity checksum mismatch")                             \
    X(ESEQ, 10, "frame sequence number out of order")                          \
    X(ERESERVED, 11, "reserved field or flag is not zero")                     \
    X(ETRUNC, 12, "input ends inside a frame or record")                       \
    X(ESTATE, 13, "frame not allowed in this session state")                   \
    X(EPEER, 14, "peer is not the source of this session")                     \
    X(EVOLUME, 15, "volume identity (id, block count, block size) mismatch")   \
    X(ERANGE, 16, "offset or block number outside the volume")                 \
    X(EZEROLEN, 17, "zero-length write")                                       \
    X(ETID, 18, "transfer ID not greater than the previous one")               \
    X(ENOTID, 19, "unknown transfer ID")                                       \
    X(ESLOT, 20, "block slot out of range for the transfer")                   \
    X(EREFHASH, 21, "referenced block does not match the REF checksum")        \
    X(ECP, 22, "consistency point number is not the expected one")             \
    X(EDUPBLOCK, 23, "block appears twice in one consistency point")           \
    X(ECOUNT, 24, "consistency point record count mismatch")                   \
    X(EMODE, 25, "not allowed in this mirroring mode")                         \
    X(EAGAIN, 26, "lag bound reached: wait for acknowledgements")              \
    X(ECLOSED, 27, "peer closed the connection")                               \
    X(ETORN, 28, "torn record at the log tail")                                \
    X(ELOGLOST, 29, "destination lost log entries it had acknowledged")        \
    X(EDIVERGED, 30, "destination state diverged: full resync required")       \
    X(EDIGEST, 31, "CP acknowledgement digest differs from the source's")      \
    X(EUSAGE, 32, "bad command-line usage")                                    \
    X(EVERIFY, 33, "verification failed: mirror differs from source")          \
    X(ETIMEOUT, 34, "timed out")                                               \
    X(EREMOTE, 35, "peer reported a fatal error")                              \
    X(EBLOCKSIZE, 36, "block size is not a power of two in 512..65536")        \
    X(ECORRUPT, 37, "file is corrupt")                                        \
    X(ECPFULL, 38, "one CP cannot hold more dirty blocks: take a CP first")

enum mk_err {
    MK_OK = 0,
#define MK_ERR_ENUM(name, num, msg) MK_##name = -(num),
    MK_ERRNO_MAP(MK_ERR_ENUM)
#undef MK_ERR_ENUM
};

/* Returns a static message for an error code; never NULL. */
const char *mk_strerror(int err);
/* Returns the static symbolic name, e.g. "MK_ECHECKSUM"; never NULL. */
const char *mk_errname(int err);
/* Looks a name up ("MK_ECHECKSUM" or "ECHECKSUM"); 0 if unknown. */
int mk_errbyname(const char *name);
/* 1 if err is what damaged bytes on a connection produce when frames are
 * decoded (section 3.4): the session is over, the engine is not; the
 * source reconnects and resumes (section 8.2). */
int mk_err_is_damage(int err);
/* Maps an errno value from a system call to the nearest mk code. */
int mk_from_errno(int e);

#endif
