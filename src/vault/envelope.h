/*
 * envelope.h - the keys of a subject, for every kind of subject (a customer, a staff member):
 * envelope encryption in one place.
 *
 * Each subject has a data-encryption key (DEK) of 32 random bytes, stored only wrapped by the
 * current key-encryption key (KEK) of a KEK source (crypto/kek.h), with associated data
 * "<dek_ad>|<subject id>|<KEK version>". Values are sealed under the DEK in custodia's
 * ciphertext format, key id = the DEK's version, with associated data "<table>|<column>|<id>",
 * and kept as base64url text. Besides the values its owner seals (a customer's fields, a staff
 * member's e-mail), a subject may hold named secrets (a TOTP secret) in a table of their own.
 * Rotating the KEK re-wraps DEKs in batches and touches no value; destroying a DEK makes every
 * value sealed under it unreadable for good (crypto-shredding).
 *
 * The service that owns a kind of subject describes where its keys live with
 * CU_ENVELOPE_KIND; the module runs the same statements on every kind, so customers and staff
 * are wrapped, re-wrapped, counted and shredded by one algorithm. Every function that reads or
 * writes takes the caller's connection and runs in the caller's transaction; none audits
 * (its callers do). docs/internals/keys.md describes the formats and the re-wrap.
 */
#ifndef CU_VAULT_ENVELOPE_H
#define CU_VAULT_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "crypto/kek.h"
#include "crypto/seal.h"
#include "store/store.h"

#define CU_ENVELOPE_ID_MAX 32      /* the longest subject id, in bytes */
#define CU_ENVELOPE_AD_BYTES 128   /* associated data, NUL included */
#define CU_ENVELOPE_VALUE_MAX 1024 /* the longest value sealed under a DEK */
#define CU_ENVELOPE_SEALED_MAX (CU_ENVELOPE_VALUE_MAX + 64)
#define CU_ENVELOPE_TEXT_BYTES (CU_B64URL_LEN(CU_ENVELOPE_SEALED_MAX) + 1)
#define CU_ENVELOPE_SECRET_NAME_MAX 32 /* a secret's name: 1 to 32 of [a-z0-9_], a-z first */
#define CU_ENVELOPE_SECRET_MAX 1024    /* the longest secret (a customer's report) */
#define CU_ENVELOPE_SECRETS_MAX 48     /* secrets per subject (reports count: cases.h) */
#define CU_ENVELOPE_REWRAP_MAX 100000  /* the largest batch of one cu_envelope_rewrap */
_Static_assert(CU_ENVELOPE_AD_BYTES <= CU_KEK_AD_MAX, "a DEK's associated data fits the KEK's");

/* Where a kind of subject keeps its keys: its name (for logs), the prefixes of its associated
 * data, and the statements the module runs, all made by CU_ENVELOPE_KIND. The strings are
 * literals: the store caches statements by the address of their text. */
struct cu_envelope_kind {
    const char *name;      /* "customer", "staff" */
    const char *dek_ad;    /* a wrapped DEK's: "<dek_ad>|<id>|<KEK version>" */
    const char *secret_ad; /* a secret's: "<secret_ad>|<name>|<id>" */
    const char *dek_get_sql, *stale_sql, *rewrap_sql, *usage_sql, *shred_sql;
    const char *secret_put_sql, *secret_get_sql, *secret_drop_sql, *secret_all_sql;
    const char *secret_shred_sql;
};

/* CU_ENVELOPE_KIND(name, dek_ad, table, id, dek_version, secrets, owner): the kind whose
 * subjects are rows of table keyed by column id, each with the columns dek_wrapped (BLOB, NULL
 * once destroyed) and kek_version (INTEGER, NULL once destroyed, indexed), the DEK's version
 * in the SQL expression dek_version (a column, or 1 for a kind whose DEK never changes), and
 * whose secrets are rows (owner, name, value) of the table secrets, keyed by (owner, name), with
 * associated data "<secrets>|<name>|<id>". Every argument is a string literal. */
#define CU_ENVELOPE_KIND(name_, dek_ad_, table, id, dek_version, secrets, owner)                   \
    {                                                                                              \
        .name = (name_), .dek_ad = (dek_ad_), .secret_ad = (secrets),                              \
        .dek_get_sql = "SELECT dek_wrapped, " dek_version " FROM " table " WHERE " id              \
                       " = $1 AND dek_wrapped IS NOT NULL",                                        \
        .stale_sql = "SELECT " id ", dek_wrapped FROM " table " WHERE dek_wrapped IS NOT NULL "    \
                     "AND (kek_version < $1 OR kek_version > $1) LIMIT $2",                        \
        .rewrap_sql = "UPDATE " table " SET dek_wrapped = $2, kek_version = $3 WHERE " id          \
                      " = $1 AND dek_wrapped = $4",                                                \
        .usage_sql = "SELECT count(*) FROM " table " WHERE kek_version = $1 AND dek_wrapped IS "   \
                     "NOT NULL",                                                                   \
        .shred_sql = "UPDATE " table " SET dek_wrapped = NULL, kek_version = NULL WHERE " id       \
                     " = $1 AND dek_wrapped IS NOT NULL",                                          \
        .secret_put_sql = "INSERT INTO " secrets " (" owner ", name, value) VALUES ($1, $2, $3) "  \
                          "ON CONFLICT (" owner ", name) DO UPDATE SET value = excluded.value",    \
        .secret_get_sql = "SELECT value FROM " secrets " WHERE " owner " = $1 AND name = $2",      \
        .secret_drop_sql = "DELETE FROM " secrets " WHERE " owner " = $1 AND name = $2",           \
        .secret_all_sql = "SELECT name, value FROM " secrets " WHERE " owner " = $1 ORDER BY "     \
                          "name",                                                                  \
        .secret_shred_sql = "DELETE FROM " secrets " WHERE " owner " = $1",                        \
    }

/* The keys of one kind of subject: the kind, the KEK source, the AEAD that seals values. */
struct cu_envelope;

/* A DEK as the store keeps it: wrapped, and the version of the KEK that wraps it. */
struct cu_envelope_wrapped {
    uint8_t data[CU_KEK_WRAPPED_MAX];
    size_t len;
    uint32_t kek_version;
};

/* cu_envelope_new(kind, kek, alg, out): the keys of the subjects of kind, their DEKs wrapped
 * through kek, values sealed with alg; kind and kek must outlive them. Caller frees *out with
 * cu_envelope_free. */
CU_WUR enum cu_err cu_envelope_new(const struct cu_envelope_kind *kind, struct cu_kek_source *kek,
                                   enum cu_aead alg, struct cu_envelope **out);

/* cu_envelope_free(env): frees env (it holds no key); NULL does nothing. */
void cu_envelope_free(struct cu_envelope *env);

/* cu_envelope_kind(env): the kind env was made for (owned by its service). */
const struct cu_envelope_kind *cu_envelope_kind(const struct cu_envelope *env);

/* ---- DEKs ---- */

/* cu_envelope_dek_new(env, id, dek, w): a fresh DEK for subject id (version 1 by convention)
 * and, in w, its form wrapped under the current KEK, for the caller to store in the subject's
 * row (dek_wrapped, kek_version). Caller frees *dek with cu_secret_free. CU_E_INVALID for an
 * id longer than CU_ENVELOPE_ID_MAX; the KEK source's errors. */
CU_WUR enum cu_err cu_envelope_dek_new(struct cu_envelope *env, const char *id,
                                       struct cu_secret **dek, struct cu_envelope_wrapped *w);

/* cu_envelope_dek_unwrap(env, id, wrapped, len, dek): unwraps subject id's DEK from its stored
 * form into dek (guarded memory of CU_KEY_BYTES, the caller's or cu_envelope_dek_borrow's).
 * CU_E_KEY_MISSING (its KEK version is gone), CU_E_CRYPTO (altered, or another subject's),
 * CU_E_CORRUPT (malformed), each logged as an alert; on failure dek is not written. */
CU_WUR enum cu_err cu_envelope_dek_unwrap(struct cu_envelope *env, const char *id,
                                          const void *wrapped, size_t len, struct cu_secret *dek);

/* cu_envelope_dek_load(env, db, id, dek, dek_version): reads subject id's wrapped DEK and
 * unwraps it into dek (as cu_envelope_dek_unwrap); *dek_version gets the DEK's version, the
 * key id of the values sealed under it. CU_E_NOT_FOUND for an unknown subject or one whose DEK
 * was destroyed. */
CU_WUR enum cu_err cu_envelope_dek_load(struct cu_envelope *env, struct cu_db *db, const char *id,
                                        struct cu_secret *dek, uint32_t *dek_version);

/* cu_envelope_dek_borrow(): a guarded buffer of CU_KEY_BYTES for a DEK: this thread's own
 * (made on first use, freed when the thread ends), or a new one while the thread's is lent.
 * NULL when out of memory. The borrower gives it back with cu_envelope_dek_return. Guarded
 * memory costs mmap, mprotect and munmap, which would dominate a read that allocated it. */
CU_WUR struct cu_secret *cu_envelope_dek_borrow(void);

/* cu_envelope_dek_return(dek): wipes a buffer from cu_envelope_dek_borrow and takes it back;
 * NULL does nothing. */
void cu_envelope_dek_return(struct cu_secret *dek);

/* cu_envelope_rewrap(env, db, batch, done): re-wraps under the current KEK the DEKs of up to
 * batch (at most CU_ENVELOPE_REWRAP_MAX) subjects that another KEK version wraps; *done gets
 * how many were taken (0: none is left). The DEKs do not change, so no value is touched. For
 * `custodia keys rotate`: call it, one transaction each, until *done is 0; an interrupted
 * rotation resumes by calling it again. A row that changed since it was read (its DEK rotated
 * or destroyed meanwhile) is left as it is. On error *done is 0 and the caller rolls back. */
CU_WUR enum cu_err cu_envelope_rewrap(struct cu_envelope *env, struct cu_db *db, size_t batch,
                                      size_t *done);

/* cu_envelope_destroy(kind, db, id): crypto-shreds subject id: its wrapped DEK and KEK version
 * become NULL and its secrets are deleted, so nothing sealed under the DEK can be opened again.
 * The owner deletes its own sealed values. CU_E_NOT_FOUND for an unknown subject or one whose
 * DEK is already gone. */
CU_WUR enum cu_err cu_envelope_destroy(const struct cu_envelope_kind *kind, struct cu_db *db,
                                       const char *id);

/* cu_envelope_kek_usage(kind, db, version, count): how many subjects of kind have a DEK that
 * KEK version wraps. */
CU_WUR enum cu_err cu_envelope_kek_usage(const struct cu_envelope_kind *kind, struct cu_db *db,
                                         uint32_t version, int64_t *count);

/* ---- values sealed under a DEK ---- */

/* cu_envelope_ad(a, b, c, ad): the associated data "<a>|<b>|<c>" into ad. CU_E_INVALID (ad
 * left empty) when it would not fit; an id from outside is refused, never cut. */
CU_WUR enum cu_err cu_envelope_ad(const char *a, const char *b, const char *c,
                                  char ad[CU_ENVELOPE_AD_BYTES]);

/* cu_envelope_seal(env, dek, dek_version, ad, plain, len, text): seals the len bytes at plain
 * (at most CU_ENVELOPE_VALUE_MAX) under dek with key id dek_version and associated data ad,
 * and writes the base64url text of the sealed value, NUL-terminated, into text. */
CU_WUR enum cu_err cu_envelope_seal(const struct cu_envelope *env, const struct cu_secret *dek,
                                    uint32_t dek_version, const char *ad, const void *plain,
                                    size_t len, char text[CU_ENVELOPE_TEXT_BYTES]);

/* cu_envelope_open(dek, dek_version, ad, text, tlen, out, cap, len): opens the tlen bytes of
 * base64url text sealed by cu_envelope_seal into out (cap bytes; tlen is always enough), *len
 * the plaintext's length. CU_E_CORRUPT for text that is not base64url or too long,
 * CU_E_CRYPTO when the value or ad was altered, CU_E_KEY_MISSING when it names another DEK
 * version; nothing is logged (the caller knows what the value is). On failure out is not
 * written. */
CU_WUR enum cu_err cu_envelope_open(const struct cu_secret *dek, uint32_t dek_version,
                                    const char *ad, const char *text, size_t tlen, void *out,
                                    size_t cap, size_t *len);

/* ---- named secrets ---- */

/* cu_envelope_secret_put(env, db, id, name, data, len): stores (or replaces) subject id's
 * secret name (1 to CU_ENVELOPE_SECRET_NAME_MAX of [a-z_]), len bytes at most
 * CU_ENVELOPE_SECRET_MAX, sealed under its DEK. CU_E_INVALID for a bad name, CU_E_TOO_LARGE
 * for a long secret, CU_E_NOT_FOUND for a subject without a DEK. */
CU_WUR enum cu_err cu_envelope_secret_put(struct cu_envelope *env, struct cu_db *db, const char *id,
                                          const char *name, const void *data, size_t len);

/* cu_envelope_secret_get(env, db, id, name, out, cap, len): opens subject id's secret name
 * into out (cap bytes), *len its length; the caller wipes out after use. CU_E_NOT_FOUND when
 * there is none (or no DEK); a secret that fails to open is logged as an alert. */
CU_WUR enum cu_err cu_envelope_secret_get(struct cu_envelope *env, struct cu_db *db, const char *id,
                                          const char *name, void *out, size_t cap, size_t *len);

/* cu_envelope_secret_drop(kind, db, id, name): deletes a secret; CU_OK whether or not it
 * existed. */
CU_WUR enum cu_err cu_envelope_secret_drop(const struct cu_envelope_kind *kind, struct cu_db *db,
                                           const char *id, const char *name);

/* cu_envelope_secrets_reseal(env, db, id, old, old_version, dek, version): re-seals every
 * secret of subject id from the DEK old (of old_version) to dek (of version), for the owner's
 * DEK rotation, which stores the new DEK itself. CU_E_CORRUPT past CU_ENVELOPE_SECRETS_MAX. */
CU_WUR enum cu_err cu_envelope_secrets_reseal(struct cu_envelope *env, struct cu_db *db,
                                              const char *id, const struct cu_secret *old,
                                              uint32_t old_version, const struct cu_secret *dek,
                                              uint32_t version);

#endif
