#include "mk_err.h"

#include <errno.h>
#include <string.h>

const char *mk_strerror(int err)
{
    switch (err) {
    case MK_OK: return "success";
#define MK_ERR_MSG(name, num, msg) case MK_##name: return msg;
    MK_ERRNO_MAP(MK_ERR_MSG)
#undef MK_ERR_MSG
    }
    return "unknown error";
}

const char *mk_errname(int err)
{
    switch (err) {
    case MK_OK: return "MK_OK";
#define MK_ERR_NAME(name, num, msg) case MK_##name: return "MK_" #name;
    MK_ERRNO_MAP(MK_ERR_NAME)
#undef MK_ERR_NAME
    }
    return "MK_EUNKNOWN";
}

int mk_errbyname(const char *name)
{
    if (strncmp(name, "MK_", 3) == 0)
        name += 3;
#define MK_ERR_LOOKUP(n, num, msg) if (strcmp(name, #n) == 0) return MK_##n;
    MK_ERRNO_MAP(MK_ERR_LOOKUP)
#undef MK_ERR_LOOKUP
    return 0;
}

int mk_err_is_damage(int err)
{
    switch (err) {
    case MK_EMAGIC: case MK_EVERSION: case MK_ERESERVED: case MK_ELENGTH:
    case MK_ECHECKSUM: case MK_ESEQ: case MK_ETRUNC:
        return 1;
    }
    return 0;
}

int mk_from_errno(int e)
{
    switch (e) {
    case ENOSPC: case EDQUOT: return MK_ENOSPC;
    case ENOMEM: return MK_ENOMEM;
    case EINVAL: return MK_EINVAL;
    case EPIPE: case ECONNRESET: return MK_ECLOSED;
    case ETIMEDOUT: return MK_ETIMEOUT;
    case EAGAIN: return MK_EAGAIN;
    default: return MK_EIO;
    }
}
