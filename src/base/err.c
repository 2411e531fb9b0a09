/*
 * err.c - the one table behind enum cu_err.
 *
 * Each code has a short message for logs and the CLI, the HTTP status a request failing with
 * it answers, the stable problem code that becomes the RFC 9457 problem type, and that
 * type's title. Codes that must not tell an outsider more than "something broke on our side"
 * (allocation, I/O, configuration, permissions, TLS) share the problem code "internal".
 */
#include "base/err.h"

struct err_info {
    const char *msg;
    int status;
    const char *code;
    const char *title;
};

#define INTERNAL_TITLE "Internal error"

static const struct err_info err_table[] = {
    [CU_OK] = {"ok", 200, "ok", "OK"},
    [CU_E_NOMEM] = {"out of memory", 500, "internal", INTERNAL_TITLE},
    [CU_E_INVALID] = {"invalid input", 400, "invalid_request", "Invalid request"},
    [CU_E_TOO_LARGE] = {"input too large", 413, "too_large", "Content too large"},
    [CU_E_NOT_FOUND] = {"not found", 404, "not_found", "Not found"},
    [CU_E_EXISTS] = {"already exists", 409, "conflict", "Conflict"},
    [CU_E_UNAUTHENTICATED] = {"not authenticated", 401, "unauthenticated",
                              "Authentication required"},
    [CU_E_FORBIDDEN] = {"forbidden", 403, "forbidden", "Forbidden"},
    [CU_E_METHOD] = {"method not allowed", 405, "method_not_allowed", "Method not allowed"},
    [CU_E_MEDIA_TYPE] = {"unsupported media type", 415, "unsupported_media_type",
                         "Unsupported media type"},
    [CU_E_RATE_LIMITED] = {"rate limited", 429, "rate_limited", "Too many requests"},
    [CU_E_IO] = {"input/output error", 500, "internal", INTERNAL_TITLE},
    [CU_E_CONFIG] = {"bad configuration", 500, "internal", INTERNAL_TITLE},
    [CU_E_PERM] = {"unsafe or denied file permissions", 500, "internal", INTERNAL_TITLE},
    [CU_E_CRYPTO] = {"cryptographic verification failed", 500, "crypto_failure",
                     "Cryptographic check failed"},
    [CU_E_KEY_MISSING] = {"key version missing from the keyring", 500, "key_missing",
                          "Key missing"},
    [CU_E_STORE] = {"store failure", 503, "store_unavailable", "Store unavailable"},
    [CU_E_BUSY] = {"store busy", 503, "store_busy", "Store busy"},
    [CU_E_STORE_FULL] = {"the store's disk is full", 503, "store_full", "Store full"},
    [CU_E_SCHEMA_NEWER] = {"database written by a newer custodia", 503, "schema_newer",
                           "Database schema is newer than this server"},
    [CU_E_CORRUPT] = {"stored data failed an integrity check", 500, "data_corrupt", "Data corrupt"},
    [CU_E_TLS] = {"TLS setup failed", 500, "internal", INTERNAL_TITLE},
    [CU_E_UNAVAILABLE] = {"a dependency is unavailable", 503, "unavailable", "Service unavailable"},
    [CU_E_AUDIT] = {"the audit log cannot be written", 503, "audit_unavailable",
                    "Audit log unavailable"},
    [CU_E_BAD_CREDENTIALS] = {"invalid credentials", 401, "invalid_credentials",
                              "Invalid credentials"},
    [CU_E_STEP_UP] = {"step-up authentication required", 401, "step_up_required",
                      "Step-up authentication required"},
    [CU_E_MFA_ENROL] = {"second factor enrolment required", 403, "mfa_enrolment_required",
                        "Second factor enrolment required"},
    [CU_E_INTERNAL] = {"internal error", 500, "internal", INTERNAL_TITLE},
};

_Static_assert(sizeof err_table / sizeof err_table[0] == CU_E__COUNT,
               "err_table must have one entry per enum cu_err code");

/* lookup(e): the entry for e; out-of-range values read as CU_E_INTERNAL. */
static const struct err_info *lookup(enum cu_err e)
{
    if ((unsigned)e >= (unsigned)CU_E__COUNT) {
        e = CU_E_INTERNAL;
    }
    return &err_table[e];
}

/* cu_err_str(e): a short English message for e; static storage, never NULL. */
const char *cu_err_str(enum cu_err e)
{
    return lookup(e)->msg;
}

/* cu_err_http_status(e): the HTTP status a request failing with e answers. */
int cu_err_http_status(enum cu_err e)
{
    return lookup(e)->status;
}

/* cu_err_problem_code(e): the stable snake_case code behind the problem type of e. */
const char *cu_err_problem_code(enum cu_err e)
{
    return lookup(e)->code;
}

/* cu_err_title(e): the RFC 9457 title of the problem type of e; static storage. */
const char *cu_err_title(enum cu_err e)
{
    return lookup(e)->title;
}
