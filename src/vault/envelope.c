/*
 * envelope.c - the keys of a subject (a customer, a staff member): DEKs wrapped by the KEK,
 * re-wrapped on rotation, destroyed on erasure, counted per KEK version; values and named
 * secrets sealed under them.
 *
 * The statements come from the subject's kind (CU_ENVELOPE_KIND), so every kind runs the same
 * code. Associated data is built by copying, not by snprintf: a customer read builds one for
 * every field. DEKs sit in guarded memory, one buffer per thread for the paths that unwrap
 * one DEK at a time, wiped after every use. docs/internals/keys.md describes the re-wrap.
 */
#include "vault/envelope.h"

#include <pthread.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/text.h"

#define REWRAP_CHUNK 256 /* rows read by one statement of a re-wrap */

struct cu_envelope {
    const struct cu_envelope_kind *kind;
    struct cu_kek_source *kek;
    enum cu_aead alg;
};

/* cu_envelope_new(kind, kek, alg, out): the keys of the subjects of kind, their DEKs wrapped
 * through kek, values sealed with alg; kind and kek must outlive them. Caller frees *out with
 * cu_envelope_free. */
enum cu_err cu_envelope_new(const struct cu_envelope_kind *kind, struct cu_kek_source *kek,
                            enum cu_aead alg, struct cu_envelope **out)
{
    struct cu_envelope *env = cu_calloc(1, sizeof(*env));
    enum cu_err rc = env != NULL ? CU_OK : CU_E_NOMEM;

    if (rc == CU_OK) {
        env->kind = kind;
        env->kek = kek;
        env->alg = alg;
        *out = env;
    }
    return rc;
}

/* cu_envelope_free(env): frees env (it holds no key); NULL does nothing. */
void cu_envelope_free(struct cu_envelope *env)
{
    cu_free(env);
}

/* cu_envelope_kind(env): the kind env was made for (owned by its service). */
const struct cu_envelope_kind *cu_envelope_kind(const struct cu_envelope *env)
{
    return env->kind;
}

/* ---- associated data ---- */

/* cu_envelope_ad(a, b, c, ad): the associated data "<a>|<b>|<c>" into ad. CU_E_INVALID (ad
 * left empty) when it would not fit; an id from outside is refused, never cut. */
enum cu_err cu_envelope_ad(const char *a, const char *b, const char *c,
                           char ad[CU_ENVELOPE_AD_BYTES])
{
    size_t al = strnlen(a, CU_ENVELOPE_AD_BYTES), bl = strnlen(b, CU_ENVELOPE_AD_BYTES);
    size_t cl = strnlen(c, CU_ENVELOPE_AD_BYTES);
    enum cu_err rc = al + bl + cl + 3 <= CU_ENVELOPE_AD_BYTES ? CU_OK : CU_E_INVALID;

    ad[0] = '\0';
    if (rc == CU_OK) {
        memcpy(ad, a, al);
        ad[al] = '|';
        memcpy(ad + al + 1, b, bl);
        ad[al + 1 + bl] = '|';
        memcpy(ad + al + 2 + bl, c, cl);
        ad[al + 2 + bl + cl] = '\0';
    }
    return rc;
}

/* What a DEK's associated data is made of, for dek_ad_fn. */
struct dek_ad_arg {
    const char *prefix, *id;
};

/* dek_ad(prefix, id, version, ad): "<prefix>|<id>|<version>". */
static enum cu_err dek_ad(const char *prefix, const char *id, uint32_t version,
                          char ad[CU_ENVELOPE_AD_BYTES])
{
    char v[CU_I64_TEXT_BYTES + 1];
    v[cu_text_i64(v, version)] = '\0';
    return cu_envelope_ad(prefix, id, v, ad);
}

/* dek_ad as a cu_kek_ad_fn; callers check the id's length first, so it always fits. */
static void dek_ad_fn(const void *arg, uint32_t version, char *ad, size_t cap)
{
    const struct dek_ad_arg *a = arg;
    enum cu_err rc;

    CU_ASSERT(cap >= CU_ENVELOPE_AD_BYTES);
    rc = dek_ad(a->prefix, a->id, version, ad);
    CU_ASSERT(rc == CU_OK);
}

static bool id_ok(const char *id)
{
    size_t n = strnlen(id, CU_ENVELOPE_ID_MAX + 1);
    return n > 0 && n <= CU_ENVELOPE_ID_MAX;
}

/* ---- DEKs ---- */

static enum cu_err wrap(struct cu_envelope *env, const char *id, const struct cu_secret *dek,
                        struct cu_envelope_wrapped *w)
{
    const struct dek_ad_arg arg = {env->kind->dek_ad, id};
    enum cu_err rc = id_ok(id) ? CU_OK : CU_E_INVALID;

    w->len = 0;
    if (rc == CU_OK)
        rc = cu_kek_wrap_versioned(env->kek, cu_secret_data(dek), cu_secret_len(dek), dek_ad_fn,
                                   &arg, w->data, sizeof(w->data), &w->len, &w->kek_version);
    return rc;
}

/* cu_envelope_dek_new(env, id, dek, w): a fresh DEK for subject id (version 1 by convention)
 * and, in w, its form wrapped under the current KEK, for the caller to store in the subject's
 * row (dek_wrapped, kek_version). Caller frees *dek with cu_secret_free. CU_E_INVALID for an
 * id longer than CU_ENVELOPE_ID_MAX; the KEK source's errors. */
enum cu_err cu_envelope_dek_new(struct cu_envelope *env, const char *id, struct cu_secret **dek,
                                struct cu_envelope_wrapped *w)
{
    struct cu_secret *d = cu_secret_new(CU_KEY_BYTES);
    enum cu_err rc = d != NULL ? CU_OK : CU_E_NOMEM;

    if (rc == CU_OK) {
        cu_crypto_random(cu_secret_data(d), CU_KEY_BYTES);
        rc = wrap(env, id, d, w);
    }
    if (rc == CU_OK) {
        *dek = d;
        d = NULL;
    }
    cu_secret_free(d);
    return rc;
}

/* cu_envelope_dek_unwrap(env, id, wrapped, len, dek): unwraps subject id's DEK from its stored
 * form into dek (guarded memory of CU_KEY_BYTES, the caller's or cu_envelope_dek_borrow's).
 * CU_E_KEY_MISSING (its KEK version is gone), CU_E_CRYPTO (altered, or another subject's),
 * CU_E_CORRUPT (malformed), each logged as an alert; on failure dek is not written. */
enum cu_err cu_envelope_dek_unwrap(struct cu_envelope *env, const char *id, const void *wrapped,
                                   size_t len, struct cu_secret *dek)
{
    char ad[CU_ENVELOPE_AD_BYTES];
    uint32_t version = 0;
    size_t n = 0;
    enum cu_err rc = cu_kek_wrapped_version(env->kek, wrapped, len, &version);

    CU_ASSERT(cu_secret_len(dek) == CU_KEY_BYTES);
    if (rc == CU_OK)
        rc = dek_ad(env->kind->dek_ad, id, version, ad);
    if (rc == CU_OK)
        rc = cu_kek_unwrap(env->kek, wrapped, len, (const uint8_t *)ad, strlen(ad),
                           cu_secret_data(dek), CU_KEY_BYTES, &n);
    if (rc == CU_OK && n != CU_KEY_BYTES) {
        cu_crypto_wipe(cu_secret_data(dek), CU_KEY_BYTES);
        rc = CU_E_CORRUPT;
    }
    if (rc != CU_OK)
        cu_log(CU_LOG_ERROR, "envelope.dek_unwrap_failed", CU_LS("kind", env->kind->name),
               CU_LS("subject", id), CU_LS("error", cu_err_str(rc)), CU_LB("alert", true));
    return rc;
}

/* cu_envelope_dek_load(env, db, id, dek, dek_version): reads subject id's wrapped DEK and
 * unwraps it into dek (as cu_envelope_dek_unwrap); *dek_version gets the DEK's version, the
 * key id of the values sealed under it. CU_E_NOT_FOUND for an unknown subject or one whose DEK
 * was destroyed. */
enum cu_err cu_envelope_dek_load(struct cu_envelope *env, struct cu_db *db, const char *id,
                                 struct cu_secret *dek, uint32_t *dek_version)
{
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, env->kind->dek_get_sql, p, CU_NVALS(p), &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t wl = 0;
        const void *w = cu_stmt_blob(st, 0, &wl);
        *dek_version = (uint32_t)cu_stmt_int(st, 1);
        rc = cu_envelope_dek_unwrap(env, id, w, wl, dek);
    }
    cu_stmt_done(st);
    return rc;
}

/* This thread's DEK buffer and whether it is lent. */
struct thread_dek {
    struct cu_secret *dek;
    bool lent;
};

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_dek_free(void *p)
{
    struct thread_dek *t = p;
    cu_secret_free(t->dek);
    cu_free(t);
}

static void thread_key_make(void)
{
    CU_ASSERT(pthread_key_create(&thread_key, thread_dek_free) == 0);
}

static struct thread_dek *thread_dek(void)
{
    struct thread_dek *t;

    pthread_once(&thread_once, thread_key_make);
    t = pthread_getspecific(thread_key);
    if (t == NULL && (t = cu_calloc(1, sizeof(*t))) != NULL) {
        t->dek = cu_secret_new(CU_KEY_BYTES);
        if (t->dek == NULL || pthread_setspecific(thread_key, t) != 0) {
            thread_dek_free(t);
            t = NULL;
        }
    }
    return t;
}

/* cu_envelope_dek_borrow(): a guarded buffer of CU_KEY_BYTES for a DEK: this thread's own
 * (made on first use, freed when the thread ends), or a new one while the thread's is lent.
 * NULL when out of memory. The borrower gives it back with cu_envelope_dek_return. Guarded
 * memory costs mmap, mprotect and munmap, which would dominate a read that allocated it. */
struct cu_secret *cu_envelope_dek_borrow(void)
{
    struct thread_dek *t = thread_dek();
    struct cu_secret *d = NULL;

    if (t != NULL && !t->lent) {
        t->lent = true;
        d = t->dek;
    } else {
        d = cu_secret_new(CU_KEY_BYTES);
    }
    return d;
}

/* cu_envelope_dek_return(dek): wipes a buffer from cu_envelope_dek_borrow and takes it back;
 * NULL does nothing. */
void cu_envelope_dek_return(struct cu_secret *dek)
{
    struct thread_dek *t = dek != NULL ? pthread_getspecific(thread_key) : NULL;

    if (t != NULL && dek == t->dek) {
        cu_crypto_wipe(cu_secret_data(dek), cu_secret_len(dek));
        t->lent = false;
    } else {
        cu_secret_free(dek);
    }
}

/* ---- rotation ---- */

/* One subject whose DEK another KEK version wraps, as read by stale_rows. */
struct stale {
    char id[CU_ENVELOPE_ID_MAX + 1];
    struct cu_envelope_wrapped old;
};

/* Reads up to want (at most REWRAP_CHUNK) subjects whose DEK a KEK version other than current
 * wraps into rows; *n gets how many. The statement is finished before any row is re-wrapped,
 * so no update runs under an open read of the same table. */
static enum cu_err stale_rows(struct cu_envelope *env, struct cu_db *db, uint32_t current,
                              size_t want, struct stale *rows, size_t *n)
{
    const struct cu_val p[] = {CU_VI(current), CU_VI(want)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, env->kind->stale_sql, p, CU_NVALS(p), &st);

    *n = 0;
    while (rc == CU_OK && *n < want && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t il = 0, wl = 0;
        const char *id = cu_stmt_text(st, 0, &il);
        const void *w = cu_stmt_blob(st, 1, &wl);
        if (il == 0 || il > CU_ENVELOPE_ID_MAX || wl > CU_KEK_WRAPPED_MAX) {
            rc = CU_E_CORRUPT;
            cu_log(CU_LOG_ERROR, "envelope.row_corrupt", CU_LS("kind", env->kind->name),
                   CU_LB("alert", true));
        } else {
            cu_text_copy(rows[*n].id, sizeof(rows[*n].id), id, il);
            memcpy(rows[*n].old.data, w, wl);
            rows[*n].old.len = wl;
            (*n)++;
        }
    }
    cu_stmt_done(st);
    return rc;
}

/* Re-wraps one subject's DEK (unwrapped into dek, which it wipes) and stores it, unless the
 * row changed since stale_rows read it. */
static enum cu_err rewrap_row(struct cu_envelope *env, struct cu_db *db, struct cu_secret *dek,
                              const struct stale *s)
{
    struct cu_envelope_wrapped w;
    enum cu_err rc = cu_envelope_dek_unwrap(env, s->id, s->old.data, s->old.len, dek);

    if (rc == CU_OK)
        rc = wrap(env, s->id, dek, &w);
    cu_crypto_wipe(cu_secret_data(dek), CU_KEY_BYTES);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(s->id), CU_VB(w.data, w.len), CU_VI(w.kek_version),
                                   CU_VB(s->old.data, s->old.len)};
        rc = cu_db_exec(db, env->kind->rewrap_sql, p, CU_NVALS(p));
    }
    return rc;
}

/* cu_envelope_rewrap(env, db, batch, done): re-wraps under the current KEK the DEKs of up to
 * batch (at most CU_ENVELOPE_REWRAP_MAX) subjects that another KEK version wraps; *done gets
 * how many were taken (0: none is left). The DEKs do not change, so no value is touched. For
 * `custodia keys rotate`: call it, one transaction each, until *done is 0; an interrupted
 * rotation resumes by calling it again. A row that changed since it was read (its DEK rotated
 * or destroyed meanwhile) is left as it is. On error *done is 0 and the caller rolls back. */
enum cu_err cu_envelope_rewrap(struct cu_envelope *env, struct cu_db *db, size_t batch,
                               size_t *done)
{
    struct stale *rows = NULL;
    struct cu_secret *dek = NULL;
    size_t taken = 0, n = 0;
    enum cu_err rc = batch <= CU_ENVELOPE_REWRAP_MAX ? CU_OK : CU_E_INVALID;

    *done = 0;
    if (rc != CU_OK || batch == 0)
        goto out;
    rows = cu_calloc(REWRAP_CHUNK, sizeof(*rows));
    dek = cu_envelope_dek_borrow();
    if (rows == NULL || dek == NULL)
        rc = CU_E_NOMEM;
    /* Each chunk takes the first rows still stale: the ones re-wrapped before have left the
     * set, so no cursor is kept, and a chunk shorter than asked for means none is left. */
    while (rc == CU_OK && taken < batch) {
        size_t want = batch - taken < REWRAP_CHUNK ? batch - taken : REWRAP_CHUNK;
        rc = stale_rows(env, db, cu_kek_current_version(env->kek), want, rows, &n);
        for (size_t i = 0; rc == CU_OK && i < n; i++)
            rc = rewrap_row(env, db, dek, &rows[i]);
        taken += n;
        if (n < want)
            break;
    }
    if (rc == CU_OK)
        *done = taken;
out:
    cu_envelope_dek_return(dek);
    cu_free(rows);
    return rc;
}

/* cu_envelope_destroy(kind, db, id): crypto-shreds subject id: its wrapped DEK and KEK version
 * become NULL and its secrets are deleted, so nothing sealed under the DEK can be opened again.
 * The owner deletes its own sealed values. CU_E_NOT_FOUND for an unknown subject or one whose
 * DEK is already gone. */
enum cu_err cu_envelope_destroy(const struct cu_envelope_kind *kind, struct cu_db *db,
                                const char *id)
{
    const struct cu_val p[] = {CU_VT(id)};
    enum cu_err rc = cu_db_exec(db, kind->shred_sql, p, CU_NVALS(p));

    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        rc = cu_db_exec(db, kind->secret_shred_sql, p, CU_NVALS(p));
    return rc;
}

/* cu_envelope_kek_usage(kind, db, version, count): how many subjects of kind have a DEK that
 * KEK version wraps. */
enum cu_err cu_envelope_kek_usage(const struct cu_envelope_kind *kind, struct cu_db *db,
                                  uint32_t version, int64_t *count)
{
    const struct cu_val p[] = {CU_VI(version)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, kind->usage_sql, p, CU_NVALS(p), &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    *count = rc == CU_OK && row ? cu_stmt_int(st, 0) : 0;
    cu_stmt_done(st);
    return rc;
}

/* ---- values ---- */

/* cu_envelope_seal(env, dek, dek_version, ad, plain, len, text): seals the len bytes at plain
 * (at most CU_ENVELOPE_VALUE_MAX) under dek with key id dek_version and associated data ad,
 * and writes the base64url text of the sealed value, NUL-terminated, into text. */
enum cu_err cu_envelope_seal(const struct cu_envelope *env, const struct cu_secret *dek,
                             uint32_t dek_version, const char *ad, const void *plain, size_t len,
                             char text[CU_ENVELOPE_TEXT_BYTES])
{
    uint8_t sealed[CU_ENVELOPE_SEALED_MAX];
    size_t n = 0;
    enum cu_err rc = len <= CU_ENVELOPE_VALUE_MAX ? CU_OK : CU_E_TOO_LARGE;

    text[0] = '\0';
    if (rc == CU_OK)
        rc = cu_crypto_seal(dek, dek_version, env->alg, plain, len, (const uint8_t *)ad, strlen(ad),
                            sealed, sizeof(sealed), &n);
    if (rc == CU_OK)
        rc = cu_b64url_encode(sealed, n, text, CU_ENVELOPE_TEXT_BYTES);
    return rc;
}

/* cu_envelope_open(dek, dek_version, ad, text, tlen, out, cap, len): opens the tlen bytes of
 * base64url text sealed by cu_envelope_seal into out (cap bytes; tlen is always enough), *len
 * the plaintext's length. CU_E_CORRUPT for text that is not base64url or too long,
 * CU_E_CRYPTO when the value or ad was altered, CU_E_KEY_MISSING when it names another DEK
 * version; nothing is logged (the caller knows what the value is). On failure out is not
 * written. */
enum cu_err cu_envelope_open(const struct cu_secret *dek, uint32_t dek_version, const char *ad,
                             const char *text, size_t tlen, void *out, size_t cap, size_t *len)
{
    uint8_t sealed[CU_ENVELOPE_SEALED_MAX];
    size_t n = 0;
    enum cu_err rc = cu_b64url_decode_public(text, tlen, sealed, sizeof(sealed), &n);

    *len = 0;
    if (rc != CU_OK)
        rc = CU_E_CORRUPT;
    if (rc == CU_OK)
        rc = cu_crypto_open(dek, dek_version, sealed, n, (const uint8_t *)ad, strlen(ad), out, cap,
                            len);
    return rc;
}

/* ---- secrets ---- */

static bool secret_name_ok(const char *name)
{
    size_t n = strnlen(name, CU_ENVELOPE_SECRET_NAME_MAX + 1);
    return n > 0 && n <= CU_ENVELOPE_SECRET_NAME_MAX && name[0] >= 'a' && name[0] <= 'z' &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static enum cu_err secret_write(struct cu_envelope *env, struct cu_db *db,
                                const struct cu_secret *dek, uint32_t dek_version, const char *id,
                                const char *name, const void *data, size_t len)
{
    char ad[CU_ENVELOPE_AD_BYTES], text[CU_ENVELOPE_TEXT_BYTES];
    enum cu_err rc = cu_envelope_ad(env->kind->secret_ad, name, id, ad);

    if (rc == CU_OK)
        rc = cu_envelope_seal(env, dek, dek_version, ad, data, len, text);
    if (rc == CU_OK) {
        const struct cu_val p[] = {CU_VT(id), CU_VT(name), CU_VT(text)};
        rc = cu_db_exec(db, env->kind->secret_put_sql, p, CU_NVALS(p));
    }
    return rc;
}

static enum cu_err secret_open(struct cu_envelope *env, const struct cu_secret *dek,
                               uint32_t dek_version, const char *id, const char *name,
                               const char *text, size_t tlen, void *out, size_t cap, size_t *len)
{
    char ad[CU_ENVELOPE_AD_BYTES];
    enum cu_err rc = cu_envelope_ad(env->kind->secret_ad, name, id, ad);

    if (rc == CU_OK)
        rc = cu_envelope_open(dek, dek_version, ad, text, tlen, out, cap, len);
    if (rc != CU_OK)
        cu_log(CU_LOG_ERROR, "envelope.secret_open_failed", CU_LS("kind", env->kind->name),
               CU_LS("subject", id), CU_LS("secret", name), CU_LS("error", cu_err_str(rc)),
               CU_LB("alert", true));
    return rc;
}

/* cu_envelope_secret_put(env, db, id, name, data, len): stores (or replaces) subject id's
 * secret name (1 to CU_ENVELOPE_SECRET_NAME_MAX of [a-z0-9_], a letter first), len bytes at most
 * CU_ENVELOPE_SECRET_MAX, sealed under its DEK. CU_E_INVALID for a bad name, CU_E_TOO_LARGE
 * for a long secret, CU_E_NOT_FOUND for a subject without a DEK. */
enum cu_err cu_envelope_secret_put(struct cu_envelope *env, struct cu_db *db, const char *id,
                                   const char *name, const void *data, size_t len)
{
    struct cu_secret *dek = NULL;
    uint32_t dv = 0;
    enum cu_err rc = secret_name_ok(name) ? CU_OK : CU_E_INVALID;

    if (rc == CU_OK && len > CU_ENVELOPE_SECRET_MAX)
        rc = CU_E_TOO_LARGE;
    if (rc == CU_OK && (dek = cu_envelope_dek_borrow()) == NULL)
        rc = CU_E_NOMEM;
    if (rc == CU_OK)
        rc = cu_envelope_dek_load(env, db, id, dek, &dv);
    if (rc == CU_OK)
        rc = secret_write(env, db, dek, dv, id, name, data, len);
    cu_envelope_dek_return(dek);
    return rc;
}

/* cu_envelope_secret_get(env, db, id, name, out, cap, len): opens subject id's secret name
 * into out (cap bytes), *len its length; the caller wipes out after use. CU_E_NOT_FOUND when
 * there is none (or no DEK); a secret that fails to open is logged as an alert. */
enum cu_err cu_envelope_secret_get(struct cu_envelope *env, struct cu_db *db, const char *id,
                                   const char *name, void *out, size_t cap, size_t *len)
{
    const struct cu_val p[] = {CU_VT(id), CU_VT(name)};
    struct cu_secret *dek = cu_envelope_dek_borrow();
    struct cu_stmt *st = NULL;
    uint32_t dv = 0;
    bool row = false;
    enum cu_err rc = dek != NULL ? CU_OK : CU_E_NOMEM;

    *len = 0;
    if (rc == CU_OK)
        rc = cu_envelope_dek_load(env, db, id, dek, &dv);
    if (rc == CU_OK)
        rc = cu_db_query(db, env->kind->secret_get_sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK) {
        size_t tl = 0;
        const char *text = cu_stmt_text(st, 0, &tl);
        rc = secret_open(env, dek, dv, id, name, text, tl, out, cap, len);
    }
    cu_stmt_done(st);
    cu_envelope_dek_return(dek);
    return rc;
}

/* cu_envelope_secret_drop(kind, db, id, name): deletes a secret; CU_OK whether or not it
 * existed. */
enum cu_err cu_envelope_secret_drop(const struct cu_envelope_kind *kind, struct cu_db *db,
                                    const char *id, const char *name)
{
    const struct cu_val p[] = {CU_VT(id), CU_VT(name)};
    return cu_db_exec(db, kind->secret_drop_sql, p, CU_NVALS(p));
}

/* A subject's secrets in the clear, while they are re-sealed. */
struct opened {
    char name[CU_ENVELOPE_SECRET_NAME_MAX + 1];
    uint8_t data[CU_ENVELOPE_SECRET_MAX];
    size_t len;
};

/* cu_envelope_secrets_reseal(env, db, id, old, old_version, dek, version): re-seals every
 * secret of subject id from the DEK old (of old_version) to dek (of version), for the owner's
 * DEK rotation, which stores the new DEK itself. CU_E_CORRUPT past CU_ENVELOPE_SECRETS_MAX. */
enum cu_err cu_envelope_secrets_reseal(struct cu_envelope *env, struct cu_db *db, const char *id,
                                       const struct cu_secret *old, uint32_t old_version,
                                       const struct cu_secret *dek, uint32_t version)
{
    const struct cu_val p[] = {CU_VT(id)};
    struct opened *s = cu_calloc(CU_ENVELOPE_SECRETS_MAX, sizeof(*s));
    struct cu_stmt *st = NULL;
    size_t n = 0;
    bool row = false;
    enum cu_err rc = s != NULL ? CU_OK : CU_E_NOMEM;

    if (rc == CU_OK)
        rc = cu_db_query(db, env->kind->secret_all_sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t nl = 0, tl = 0;
        const char *name = cu_stmt_text(st, 0, &nl), *text = cu_stmt_text(st, 1, &tl);
        if (n == CU_ENVELOPE_SECRETS_MAX || nl > CU_ENVELOPE_SECRET_NAME_MAX) {
            rc = CU_E_CORRUPT;
            break;
        }
        cu_text_copy(s[n].name, sizeof(s[n].name), name, nl);
        rc = secret_open(env, old, old_version, id, s[n].name, text, tl, s[n].data,
                         sizeof(s[n].data), &s[n].len);
        n++;
    }
    cu_stmt_done(st);
    for (size_t i = 0; rc == CU_OK && i < n; i++)
        rc = secret_write(env, db, dek, version, id, s[i].name, s[i].data, s[i].len);
    if (s != NULL) {
        cu_crypto_wipe(s, CU_ENVELOPE_SECRETS_MAX * sizeof(*s));
        cu_free(s);
    }
    return rc;
}
