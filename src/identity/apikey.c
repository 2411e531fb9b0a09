/*
 * apikey.c - API keys: making, authenticating, listing and revoking them.
 *
 * Only a keyed hash of a key's text reaches the store, so a copy of the database does not let
 * anyone call the API. Authentication hashes the presented text and looks the hash up; the
 * lookup is by a keyed hash the caller cannot choose, so its timing tells nothing useful, and
 * the stored hash is compared again in constant time before the key is accepted.
 */
#include "identity/apikey.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/text.h"

struct cu_apikey_service {
    struct cu_secret *hash_key;
};

static const char *const scope_names[] = {
    "apikeys.read",          "apikeys.write",   "metrics.read",     "audit.read",
    "customers.read",        "customers.write", "customers.unmask", "customers.erase",
    "customers.credentials", "staff.read",      "staff.write",      "access.read",
    "access.write",          "accounts.read",   "accounts.write",   "accounts.freeze",
    "accounts.unfreeze",     "transfers.read",  "transfers.write",  "transfers.approve",
    "ledger.read",           "events.write",    "decisions.read",   "alerts.read",
    "alerts.write",          "monitor.read",    "lists.write",      "rules.write",
    "rules.activate",        "notify.read",     "notify.write",     "cases.read",
    "cases.write",           "cases.contain",
};
#define SCOPE_COUNT (sizeof(scope_names) / sizeof(scope_names[0]))
#define PREFIX_LEN (sizeof(CU_APIKEY_PREFIX) - 1)

uint64_t cu_apikey_scope_parse(const char *name, size_t len)
{
    for (size_t i = 0; i < SCOPE_COUNT; i++) {
        if (strlen(scope_names[i]) == len && memcmp(scope_names[i], name, len) == 0)
            return (uint64_t)1 << i;
    }
    return 0;
}

const char *cu_apikey_scope_name(uint64_t bit)
{
    for (size_t i = 0; i < SCOPE_COUNT; i++) {
        if (bit == ((uint64_t)1 << i))
            return scope_names[i];
    }
    return NULL;
}

uint64_t cu_apikey_all_scopes(void)
{
    return ((uint64_t)1 << SCOPE_COUNT) - 1;
}

enum cu_err cu_apikey_scopes_format(uint64_t scopes, char *out, size_t outlen)
{
    size_t used = 0;
    CU_ASSERT(outlen > 0);
    out[0] = '\0';
    for (size_t i = 0; i < SCOPE_COUNT; i++) {
        if (!(scopes & ((uint64_t)1 << i)))
            continue;
        int n = snprintf(out + used, outlen - used, "%s%s", used ? " " : "", scope_names[i]);
        if (n < 0 || (size_t)n >= outlen - used)
            return CU_E_TOO_LARGE;
        used += (size_t)n;
    }
    return CU_OK;
}

/* Parses the space-separated scope list stored with a key; unknown names (from a newer
 * build) are dropped rather than granted. */
static uint64_t scopes_parse_stored(const char *s)
{
    uint64_t bits = 0;
    while (*s) {
        size_t len = strcspn(s, " ");
        bits |= cu_apikey_scope_parse(s, len);
        s += len;
        s += strspn(s, " ");
    }
    return bits;
}

enum cu_err cu_apikey_service_new(const struct cu_keyring *kr, struct cu_apikey_service **out)
{
    enum cu_err rc;
    struct cu_apikey_service *svc = cu_calloc(1, sizeof(*svc));
    if (svc == NULL)
        return CU_E_NOMEM;
    rc = cu_keyring_derive(kr, "apikey__", 1, &svc->hash_key);
    if (rc != CU_OK) {
        cu_free(svc);
        return rc;
    }
    *out = svc;
    return CU_OK;
}

void cu_apikey_service_free(struct cu_apikey_service *svc)
{
    if (svc == NULL)
        return;
    cu_secret_free(svc->hash_key);
    cu_free(svc);
}

enum cu_err cu_apikey_check_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > CU_APIKEY_NAME_MAX || name[0] == ' ' || name[len - 1] == ' ')
        return CU_E_INVALID;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == ' ' || c == '.' || c == '-' || c == '_';
        if (!ok)
            return CU_E_INVALID;
    }
    return CU_OK;
}

static void info_from_row(struct cu_stmt *st, struct cu_apikey_info *info)
{
    size_t len;
    const char *s;

    memset(info, 0, sizeof(*info));
    s = cu_stmt_text(st, 0, &len);
    cu_text_copy(info->id, sizeof(info->id), s, len);
    s = cu_stmt_text(st, 1, &len);
    cu_text_copy(info->name, sizeof(info->name), s, len);
    info->scopes = scopes_parse_stored(cu_stmt_text(st, 2, &len));
    info->created_at = cu_stmt_int(st, 3);
    info->expires_at = cu_stmt_null(st, 4) ? 0 : cu_stmt_int(st, 4);
    info->revoked_at = cu_stmt_null(st, 5) ? 0 : cu_stmt_int(st, 5);
    s = cu_stmt_text(st, 6, &len);
    cu_text_copy(info->roles, sizeof(info->roles), s, len);
    s = cu_stmt_text(st, 7, &len);
    cu_text_copy(info->owner, sizeof(info->owner), s, len);
    s = cu_stmt_text(st, 8, &len);
    cu_text_copy(info->networks, sizeof(info->networks), s, len);
}

#define INFO_COLUMNS "id, name, scopes, created_at, expires_at, revoked_at, roles, owner, networks"

enum cu_err cu_apikey_set_owner(struct cu_db *db, const char *id, const char *owner)
{
    static const char sql[] = "UPDATE api_keys SET owner = $2 WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id), CU_VT(owner)};
    bool staff = strlen(owner) == 20 && strncmp(owner, "stf_", 4) == 0;
    enum cu_err rc;

    if (!staff && strcmp(owner, CU_APIKEY_INSTALLATION) != 0)
        return CU_E_INVALID;
    rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_NOT_FOUND;
    return rc;
}

enum cu_err cu_apikey_set_networks(struct cu_db *db, const char *id, const char *networks)
{
    static const char sql[] = "UPDATE api_keys SET networks = $2 WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id), CU_VT(networks)};
    enum cu_err rc;

    if (strlen(networks) >= CU_APIKEY_NETWORKS_BYTES)
        return CU_E_INVALID;
    rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_NOT_FOUND;
    return rc;
}

enum cu_err cu_apikey_set_roles(struct cu_db *db, const char *id, const char *roles)
{
    static const char sql[] = "UPDATE api_keys SET roles = $2 WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id), CU_VT(roles)};
    enum cu_err rc;

    if (strlen(roles) >= CU_APIKEY_ROLES_BYTES)
        return CU_E_INVALID;
    rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_NOT_FOUND;
    return rc;
}

enum cu_err cu_apikey_create(struct cu_apikey_service *svc, struct cu_db *db, const char *name,
                             uint64_t scopes, int64_t expires_at, struct cu_apikey_info *info,
                             char token[CU_APIKEY_TOKEN_BYTES])
{
    static const char sql[] = "INSERT INTO api_keys (id, name, token_hash, scopes, created_at, "
                              "expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)";
    uint8_t raw[CU_TOKEN_BYTES], idraw[8], hash[CU_HASH_BYTES];
    char scope_text[512];
    int64_t now = cu_clock_now_ms();
    enum cu_err rc;

    if (cu_apikey_check_name(name) != CU_OK || (scopes & ~cu_apikey_all_scopes()) ||
        (expires_at != 0 && expires_at <= now))
        return CU_E_INVALID;
    rc = cu_apikey_scopes_format(scopes, scope_text, sizeof(scope_text));
    if (rc != CU_OK)
        return rc;

    cu_crypto_random(raw, sizeof(raw));
    memcpy(token, CU_APIKEY_PREFIX, sizeof(CU_APIKEY_PREFIX)); /* the encoder overwrites the NUL */
    rc = cu_b64url_encode(raw, sizeof(raw), token + PREFIX_LEN, CU_APIKEY_TOKEN_BYTES - PREFIX_LEN);
    cu_crypto_wipe(raw, sizeof(raw));
    if (rc != CU_OK)
        goto out;
    cu_crypto_keyed_hash(svc->hash_key, token, CU_APIKEY_TOKEN_LEN, hash);

    memset(info, 0, sizeof(*info));
    cu_crypto_random(idraw, sizeof(idraw));
    memcpy(info->id, "ak_", 3);
    cu_hex_encode(idraw, sizeof(idraw), info->id + 3);
    snprintf(info->name, sizeof(info->name), "%s", name);
    info->scopes = scopes;
    info->created_at = now;
    info->expires_at = expires_at;
    snprintf(info->owner, sizeof(info->owner), "%s", CU_APIKEY_INSTALLATION);

    const struct cu_val params[] = {
        CU_VT(info->id),   CU_VT(name), CU_VB(hash, sizeof(hash)),
        CU_VT(scope_text), CU_VI(now),  expires_at ? CU_VI(expires_at) : CU_VNULL,
    };
    rc = cu_db_exec(db, sql, params, CU_NVALS(params));
out:
    if (rc != CU_OK)
        cu_crypto_wipe(token, CU_APIKEY_TOKEN_BYTES);
    return rc;
}

/* Whether text has the shape of a key: the prefix and 43 base64url characters. */
static bool cu_identity_token_shape_ok(const char *token, size_t len)
{
    if (len != CU_APIKEY_TOKEN_LEN || memcmp(token, CU_APIKEY_PREFIX, PREFIX_LEN) != 0)
        return false;
    for (size_t i = PREFIX_LEN; i < len; i++) {
        char c = token[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

enum cu_err cu_apikey_authenticate(struct cu_apikey_service *svc, struct cu_db *db,
                                   const char *token, size_t len, struct cu_apikey_info *info)
{
    static const char sql[] =
        "SELECT " INFO_COLUMNS ", token_hash FROM api_keys WHERE token_hash = $1";
    uint8_t hash[CU_HASH_BYTES];
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc;

    if (!cu_identity_token_shape_ok(token, len))
        return CU_E_UNAUTHENTICATED;
    cu_crypto_keyed_hash(svc->hash_key, token, len, hash);
    const struct cu_val params[] = {CU_VB(hash, sizeof(hash))};
    rc = cu_db_query(db, sql, params, CU_NVALS(params), &st);
    if (rc != CU_OK)
        return rc;
    rc = cu_stmt_next(st, &row);
    if (rc != CU_OK)
        goto out;
    if (!row) {
        rc = CU_E_UNAUTHENTICATED;
        goto out;
    }
    size_t hlen = 0;
    const void *stored = cu_stmt_blob(st, 9, &hlen);
    if (hlen != sizeof(hash) || !cu_crypto_memeq(stored, hash, sizeof(hash))) {
        rc = CU_E_UNAUTHENTICATED;
        goto out;
    }
    info_from_row(st, info);
    int64_t now = cu_clock_now_ms();
    if (info->revoked_at != 0 || (info->expires_at != 0 && info->expires_at <= now))
        rc = CU_E_UNAUTHENTICATED;
out:
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_apikey_get(struct cu_db *db, const char *id, struct cu_apikey_info *info)
{
    static const char sql[] = "SELECT " INFO_COLUMNS " FROM api_keys WHERE id = $1";
    struct cu_stmt *st = NULL;
    bool row = false;
    const struct cu_val params[] = {CU_VT(id)};
    enum cu_err rc = cu_db_query(db, sql, params, CU_NVALS(params), &st);
    if (rc != CU_OK)
        return rc;
    rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        info_from_row(st, info);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_apikey_list(struct cu_db *db, const char *after, size_t limit,
                           struct cu_apikey_info **out, size_t *n)
{
    static const char sql[] =
        "SELECT " INFO_COLUMNS " FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2";
    struct cu_apikey_info *items = NULL;
    struct cu_stmt *st = NULL;
    size_t count = 0;
    bool row = false;
    enum cu_err rc;

    if (limit == 0 || limit > 1000)
        return CU_E_INVALID;
    items = cu_calloc(limit, sizeof(*items));
    if (items == NULL)
        return CU_E_NOMEM;
    const struct cu_val params[] = {CU_VT(after ? after : ""), CU_VI(limit)};
    rc = cu_db_query(db, sql, params, CU_NVALS(params), &st);
    if (rc != CU_OK)
        goto out;
    while ((rc = cu_stmt_next(st, &row)) == CU_OK && row && count < limit)
        info_from_row(st, &items[count++]);
out:
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_free(items);
        return rc;
    }
    *out = items;
    *n = count;
    return CU_OK;
}

enum cu_err cu_apikey_revoke(struct cu_db *db, const char *id)
{
    static const char sql[] =
        "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    struct cu_apikey_info info;
    enum cu_err rc = cu_apikey_get(db, id, &info);
    if (rc != CU_OK)
        return rc;
    const struct cu_val params[] = {CU_VT(id), CU_VI(cu_clock_now_ms())};
    return cu_db_exec(db, sql, params, CU_NVALS(params));
}
