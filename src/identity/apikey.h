/*
 * apikey.h - API keys, the first kind of principal.
 *
 * A key is "cuk_" followed by 32 random bytes in base64url. It is shown once, when it is made;
 * the store keeps only a keyed BLAKE2b hash of it (key derived from the root key for the
 * purpose "apikey__"), its name, its scopes, and its life times. A request presents it as
 * `Authorization: Bearer cuk_…`; unknown, revoked and expired keys all fail the same way.
 */
#ifndef CU_IDENTITY_APIKEY_H
#define CU_IDENTITY_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/keyring.h"
#include "store/store.h"

#define CU_APIKEY_PREFIX "cuk_"
/* Length of a key's text, without NUL: prefix + base64url of 32 bytes. */
#define CU_APIKEY_TOKEN_LEN (4 + 43)
#define CU_APIKEY_TOKEN_BYTES (CU_APIKEY_TOKEN_LEN + 1)
/* Key ids are "ak_" + 16 hex digits. */
#define CU_APIKEY_ID_BYTES 20
#define CU_APIKEY_NAME_MAX 64

/* Scopes: each a bit. cu_apikey_scope_name() and cu_apikey_scope_parse() translate. */
enum cu_scope {
    CU_SCOPE_APIKEYS_READ = 1u << 0,     /* "apikeys.read": list API keys */
    CU_SCOPE_APIKEYS_WRITE = 1u << 1,    /* "apikeys.write": create and revoke API keys */
    CU_SCOPE_METRICS_READ = 1u << 2,     /* "metrics.read": read /metrics */
    CU_SCOPE_AUDIT_READ = 1u << 3,       /* "audit.read": read the audit log, checkpoints, proofs */
    CU_SCOPE_CUSTOMERS_READ = 1u << 4,   /* "customers.read": read customers, masked */
    CU_SCOPE_CUSTOMERS_WRITE = 1u << 5,  /* "customers.write": create and change customers */
    CU_SCOPE_CUSTOMERS_UNMASK = 1u << 6, /* "customers.unmask": see personal fields in full */
    CU_SCOPE_CUSTOMERS_ERASE = 1u << 7,  /* "customers.erase": erase a customer for good */
    CU_SCOPE_CUSTOMERS_CREDENTIALS = 1u << 8, /* "customers.credentials": set passwords, see and
                                                 clear lockouts, end sessions of customers */
    CU_SCOPE_STAFF_READ = 1u << 9,            /* "staff.read": list staff members */
    CU_SCOPE_STAFF_WRITE = 1u << 10,  /* "staff.write": add, change and disable staff members */
    CU_SCOPE_ACCESS_READ = 1u << 11,  /* "access.read": read the access policy, explain decisions */
    CU_SCOPE_ACCESS_WRITE = 1u << 12, /* "access.write": change roles and grants */
    CU_SCOPE_ACCOUNTS_READ = 1u << 13,     /* "accounts.read": read accounts and their entries */
    CU_SCOPE_ACCOUNTS_WRITE = 1u << 14,    /* "accounts.write": open and close accounts, limits */
    CU_SCOPE_ACCOUNTS_FREEZE = 1u << 15,   /* "accounts.freeze": freeze an account */
    CU_SCOPE_ACCOUNTS_UNFREEZE = 1u << 16, /* "accounts.unfreeze": unfreeze one (four-eyes) */
    CU_SCOPE_TRANSFERS_READ = 1u << 17,    /* "transfers.read": read transfers */
    CU_SCOPE_TRANSFERS_WRITE = 1u << 18,   /* "transfers.write": move money: transfers, deposits,
                                              withdrawals, posts, voids, reversals */
    CU_SCOPE_TRANSFERS_APPROVE = 1u << 19, /* "transfers.approve": release transfers held for
                                              review (post or void them) */
    CU_SCOPE_LEDGER_READ = 1u << 20,       /* "ledger.read": the change stream of every movement */
    CU_SCOPE_EVENTS_WRITE = 1u << 21,      /* "events.write": post events for a decision */
    CU_SCOPE_DECISIONS_READ = 1u << 22,    /* "decisions.read": read monitoring decisions, with
                                              the events and what their rules read */
    CU_SCOPE_ALERTS_READ = 1u << 23,       /* "alerts.read": read the alerts queue */
    CU_SCOPE_ALERTS_WRITE = 1u << 24,      /* "alerts.write": assign, comment, resolve alerts */
    CU_SCOPE_MONITOR_READ = 1u << 25,      /* "monitor.read": read rule sets, managed lists,
                                              snoozes; run backtests */
    CU_SCOPE_LISTS_WRITE = 1u << 26,       /* "lists.write": change managed lists and snoozes */
    CU_SCOPE_RULES_WRITE = 1u << 27,       /* "rules.write": propose rule sets */
    CU_SCOPE_RULES_ACTIVATE = 1u << 28,    /* "rules.activate": put a rule set in force or in
                                              shadow (four-eyes) */
    CU_SCOPE_NOTIFY_READ = 1u << 29,       /* "notify.read": list notifications */
    CU_SCOPE_NOTIFY_WRITE = 1u << 30,      /* "notify.write": replay notifications */
};
/* Scopes past the 31 an enum constant holds. */
#define CU_SCOPE_CASES_READ (1ull << 31)  /* "cases.read": read cases and export them */
#define CU_SCOPE_CASES_WRITE (1ull << 32) /* "cases.write": open and work cases, answer reports */
#define CU_SCOPE_CASES_CONTAIN                                                                     \
    (1ull << 33) /* "cases.contain": confirm or decline the waiting                                \
                    steps of playbooks (four-eyes if the policy says) */

/* cu_apikey_scope_parse(name): the bit of a scope name, or 0 when there is none. */
uint64_t cu_apikey_scope_parse(const char *name, size_t len);

/* cu_apikey_scope_name(bit): the name of one scope bit, or NULL. */
const char *cu_apikey_scope_name(uint64_t bit);

/* cu_apikey_all_scopes(): every scope this build knows. */
uint64_t cu_apikey_all_scopes(void);

/* cu_apikey_scopes_format(scopes, out, outlen): the scope names, space-separated, in bit
 * order. CU_E_TOO_LARGE if out is too small. */
CU_WUR enum cu_err cu_apikey_scopes_format(uint64_t scopes, char *out, size_t outlen);

/* What the store knows of one key. Times are Unix ms; 0 means "never". */
/* Bytes of a key's roles (names and one space between, as a staff member's), with the NUL. */
#define CU_APIKEY_ROLES_BYTES ((size_t)8 * 65)

/* The owner of the keys custodia init and the CLI make (and of every key made before owners):
 * the installation, which caps nothing. */
#define CU_APIKEY_INSTALLATION "installation"
#define CU_APIKEY_OWNER_BYTES 32

/* A key's IP allow-list: at most this many CIDR blocks, kept as text with one space between. */
#define CU_APIKEY_NETWORKS_MAX 16
#define CU_APIKEY_NETWORKS_BYTES ((size_t)CU_APIKEY_NETWORKS_MAX * 50)

struct cu_apikey_info {
    char id[CU_APIKEY_ID_BYTES];
    char name[CU_APIKEY_NAME_MAX + 1];
    uint64_t scopes;
    char roles[CU_APIKEY_ROLES_BYTES];       /* for the access policy; "" when none */
    char owner[CU_APIKEY_OWNER_BYTES];       /* a staff member's id, or CU_APIKEY_INSTALLATION */
    char networks[CU_APIKEY_NETWORKS_BYTES]; /* CIDR blocks it may be used from; "": anywhere */
    int64_t created_at;
    int64_t expires_at;
    int64_t revoked_at;
};

/* The API-key service: holds the token-hashing key. */
struct cu_apikey_service;

/* cu_apikey_service_new(kr, out): derives the hashing key from kr. Caller frees *out with
 * cu_apikey_service_free(). */
CU_WUR enum cu_err cu_apikey_service_new(const struct cu_keyring *kr,
                                         struct cu_apikey_service **out);

/* cu_apikey_service_free(svc): wipes and frees svc; NULL does nothing. */
void cu_apikey_service_free(struct cu_apikey_service *svc);

/* cu_apikey_check_name(name): CU_OK when name is 1..64 bytes of letters, digits, space,
 * '.', '-', '_' and does not start or end with a space. */
CU_WUR enum cu_err cu_apikey_check_name(const char *name);

/* cu_apikey_create(svc, db, name, scopes, expires_at, info, token): makes a key (inside the
 * caller's transaction on db). scopes must be known (0: none of its own, for a key given roles
 * with cu_apikey_set_roles); expires_at 0 (never) or in
 * the future. Writes the key's text into token (CU_APIKEY_TOKEN_BYTES), which the caller shows
 * once and wipes, and its record into info. */
CU_WUR enum cu_err cu_apikey_create(struct cu_apikey_service *svc, struct cu_db *db,
                                    const char *name, uint64_t scopes, int64_t expires_at,
                                    struct cu_apikey_info *info, char token[CU_APIKEY_TOKEN_BYTES]);

/* cu_apikey_authenticate(svc, db, token, len, info): the key whose text is token.
 * CU_E_UNAUTHENTICATED when it is malformed, unknown, revoked or expired. */
CU_WUR enum cu_err cu_apikey_authenticate(struct cu_apikey_service *svc, struct cu_db *db,
                                          const char *token, size_t len,
                                          struct cu_apikey_info *info);

/* cu_apikey_set_owner(db, id, owner): stores the owner of a key (a staff member's id, or
 * CU_APIKEY_INSTALLATION). CU_E_NOT_FOUND for an unknown id, CU_E_INVALID for an owner that
 * is neither. */
CU_WUR enum cu_err cu_apikey_set_owner(struct cu_db *db, const char *id, const char *owner);

/* cu_apikey_set_networks(db, id, networks): stores the key's IP allow-list (CIDR blocks checked
 * by the caller, one space between; "" for none). CU_E_NOT_FOUND for an unknown id. */
CU_WUR enum cu_err cu_apikey_set_networks(struct cu_db *db, const char *id, const char *networks);

/* cu_apikey_set_roles(db, id, roles): stores the roles of a key (checked by the caller, as
 * cu_identity_roles_check does). CU_E_NOT_FOUND for an unknown id. */
CU_WUR enum cu_err cu_apikey_set_roles(struct cu_db *db, const char *id, const char *roles);

/* cu_apikey_get(db, id, info): one key's record. CU_E_NOT_FOUND if there is none. */
CU_WUR enum cu_err cu_apikey_get(struct cu_db *db, const char *id, struct cu_apikey_info *info);

/* cu_apikey_list(db, after, limit, out, n): up to limit keys (1..1000) ordered by id, starting
 * after the id `after` (NULL for the start). Caller frees *out with cu_free(). */
CU_WUR enum cu_err cu_apikey_list(struct cu_db *db, const char *after, size_t limit,
                                  struct cu_apikey_info **out, size_t *n);

/* cu_apikey_revoke(db, id): marks the key revoked now. CU_E_NOT_FOUND if there is none;
 * revoking a revoked key is CU_OK and keeps the first time. */
CU_WUR enum cu_err cu_apikey_revoke(struct cu_db *db, const char *id);

#endif
