/*
 * err.h - the one error enum of custodia.
 *
 * Every function that can fail returns an enum cu_err. The table in err.c is the only
 * place that maps a code to its message, its HTTP status and its RFC 9457 problem type.
 */
#ifndef CU_BASE_ERR_H
#define CU_BASE_ERR_H

#include <stdio.h>
#include <stdlib.h>

#define CU_WUR __attribute__((warn_unused_result))

enum cu_err {
    CU_OK = 0,
    CU_E_NOMEM,           /* allocation failed */
    CU_E_INVALID,         /* bad input from a caller: malformed, out of range */
    CU_E_TOO_LARGE,       /* input over its size limit */
    CU_E_NOT_FOUND,       /* no such thing */
    CU_E_EXISTS,          /* conflicts with something that exists */
    CU_E_UNAUTHENTICATED, /* no, unknown, revoked or expired credential */
    CU_E_FORBIDDEN,       /* authenticated, but not allowed */
    CU_E_METHOD,          /* HTTP method not allowed on the route */
    CU_E_MEDIA_TYPE,      /* wrong content type */
    CU_E_RATE_LIMITED,    /* too many requests */
    CU_E_IO,              /* file or socket error */
    CU_E_CONFIG,          /* bad configuration */
    CU_E_PERM,            /* file permissions unsafe or denied */
    CU_E_CRYPTO,          /* authentication of a ciphertext or signature failed */
    CU_E_KEY_MISSING,     /* a key version needed is not in the keyring */
    CU_E_STORE,           /* the store failed */
    CU_E_BUSY,            /* the store stayed locked past the busy timeout, or a unit of work
                             lost a serialisation race: it may be run again */
    CU_E_STORE_FULL,      /* the store's disk (or quota) is full */
    CU_E_SCHEMA_NEWER,    /* the database was written by a newer custodia */
    CU_E_CORRUPT,         /* stored data failed an integrity check */
    CU_E_TLS,             /* TLS setup failed */
    CU_E_UNAVAILABLE,     /* a dependency is down; try later */
    CU_E_AUDIT,           /* the audit record could not be written: fail closed */
    CU_E_BAD_CREDENTIALS, /* sign-in refused: wrong login, password or code (never says which) */
    CU_E_STEP_UP,         /* the operation needs a recent, stronger sign-in */
    CU_E_MFA_ENROL,       /* the account must enrol a second factor first */
    CU_E_INTERNAL,        /* a bug or an unexpected state */
    CU_E__COUNT
};

/* cu_err_str(e): a short English message for e; static storage, never NULL. */
const char *cu_err_str(enum cu_err e);

/* cu_err_http_status(e): the HTTP status a request failing with e answers. */
int cu_err_http_status(enum cu_err e);

/* cu_err_problem_code(e): the stable snake_case code behind the problem type of e,
 * e.g. "not_found"; static storage. The problem type URI is CU_PROBLEM_PREFIX + code. */
const char *cu_err_problem_code(enum cu_err e);

/* cu_err_title(e): the RFC 9457 title of the problem type of e; static storage. */
const char *cu_err_title(enum cu_err e);

#define CU_PROBLEM_PREFIX "urn:custodia:problem:"

/* CU_ASSERT(x): always-on check for programmer misuse; aborts with file and line. */
#define CU_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "custodia: assertion failed: %s (%s:%d)\n", #x, __FILE__, __LINE__);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* CU_ASSERT_MSG(x, why): CU_ASSERT with a reason for the reader of the abort message. */
#define CU_ASSERT_MSG(x, why)                                                                      \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "custodia: assertion failed: %s: %s (%s:%d)\n", #x, why, __FILE__,     \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
