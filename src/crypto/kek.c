/*
 * kek.c - KEK sources: the dispatch through struct cu_kek_source_ops, and the root key file
 * source.
 *
 * The root key file source wraps a DEK by sealing it (src/crypto/seal.c) with the current KEK
 * of a loaded keyring, the KEK version as key id, XChaCha20-Poly1305 as algorithm. The key id
 * sits in the authenticated header of the sealed value, so unwrapping picks the KEK by that
 * version and a value whose version was altered fails to open. The source only reads the
 * keyring, which never changes once loaded, so it needs no lock.
 *
 * The file-following variant (cu_kek_source_keyring_file) keeps the keyring in use behind an
 * atomic pointer: wraps and unwraps read it without a lock; a reload, under a mutex, loads the
 * file into a new keyring and publishes it. Keyrings once published stay until the source is
 * freed, since a thread may still be using one.
 */
#include "crypto/kek.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/seal.h"

#define WRAP_TRIES 4

#define KEK_KEYRING_ALG CU_AEAD_XCHACHA20POLY1305

_Static_assert(CU_KEK_WRAPPED_KEYRING_BYTES <= CU_KEK_WRAPPED_MAX, "every source fits the maximum");

struct cu_kek_source {
    const struct cu_kek_source_ops *ops;
    void *state;
};

/* The state of the root key file source. */
struct keyring_state {
    const struct cu_keyring *kr;
};

/* cu_kek_source_new(ops, state, out): a source running ops (which must outlive it) on state,
 * which it owns from now on: cu_kek_source_free passes it to ops->free. Every operation but
 * free must be set. On failure (CU_E_NOMEM) state is not freed. Caller frees *out with
 * cu_kek_source_free(). */
enum cu_err cu_kek_source_new(const struct cu_kek_source_ops *ops, void *state,
                              struct cu_kek_source **out)
{
    struct cu_kek_source *s = NULL;

    CU_ASSERT_MSG(ops != NULL && ops->name != NULL && ops->wrap != NULL && ops->unwrap != NULL &&
                      ops->current_version != NULL && ops->wrapped_version != NULL,
                  "a KEK source needs every operation but free");
    *out = NULL;
    s = cu_malloc(sizeof *s);
    if (s == NULL) {
        return CU_E_NOMEM;
    }
    s->ops = ops;
    s->state = state;
    *out = s;
    return CU_OK;
}

/* seal_current(kr, ...): seals the DEK with kr's current KEK. */
static enum cu_err seal_current(const struct cu_keyring *kr, const uint8_t *dek, size_t dek_len,
                                const uint8_t *ad, size_t ad_len, uint8_t *out, size_t cap,
                                size_t *out_len)
{
    uint32_t version = cu_keyring_current_kek(kr);
    const struct cu_secret *kek = cu_keyring_kek(kr, version);

    CU_ASSERT(kek != NULL); /* a loaded keyring always has its current KEK */
    return cu_crypto_seal(kek, version, KEK_KEYRING_ALG, dek, dek_len, ad, ad_len, out, cap,
                          out_len);
}

/* open_named(kr, version, ...): opens the DEK with kr's KEK of that version (the one the value
 * names). */
static enum cu_err open_named(const struct cu_keyring *kr, uint32_t version, const uint8_t *wrapped,
                              size_t len, const uint8_t *ad, size_t ad_len, uint8_t *dek,
                              size_t cap, size_t *dek_len)
{
    const struct cu_secret *kek = cu_keyring_kek(kr, version);
    if (kek == NULL) {
        return CU_E_KEY_MISSING;
    }
    return cu_crypto_open(kek, version, wrapped, len, ad, ad_len, dek, cap, dek_len);
}

/* keyring_wrap(state, ...): seals the DEK with the current KEK. */
static enum cu_err keyring_wrap(void *state, const uint8_t *dek, size_t dek_len, const uint8_t *ad,
                                size_t ad_len, uint8_t *out, size_t cap, size_t *out_len)
{
    return seal_current(((struct keyring_state *)state)->kr, dek, dek_len, ad, ad_len, out, cap,
                        out_len);
}

/* keyring_unwrap(state, ...): opens the DEK with the KEK whose version the value names. */
static enum cu_err keyring_unwrap(void *state, const uint8_t *wrapped, size_t len,
                                  const uint8_t *ad, size_t ad_len, uint8_t *dek, size_t cap,
                                  size_t *dek_len)
{
    uint32_t version = 0;
    enum cu_err rc = cu_crypto_sealed_key_id(wrapped, len, &version);

    *dek_len = 0;
    if (rc != CU_OK) {
        return rc;
    }
    return open_named(((struct keyring_state *)state)->kr, version, wrapped, len, ad, ad_len, dek,
                      cap, dek_len);
}

/* keyring_current_version(state): the keyring's current KEK version. */
static uint32_t keyring_current_version(void *state)
{
    return cu_keyring_current_kek(((struct keyring_state *)state)->kr);
}

/* keyring_wrapped_version(state, wrapped, len, version): the key id of the sealed value. */
static enum cu_err keyring_wrapped_version(void *state, const uint8_t *wrapped, size_t len,
                                           uint32_t *version)
{
    (void)state;
    return cu_crypto_sealed_key_id(wrapped, len, version);
}

/* keyring_free(state): frees the state; the keyring belongs to the caller. */
static void keyring_free(void *state)
{
    cu_free(state);
}

static const struct cu_kek_source_ops keyring_ops = {
    .name = "keyring",
    .wrap = keyring_wrap,
    .unwrap = keyring_unwrap,
    .current_version = keyring_current_version,
    .wrapped_version = keyring_wrapped_version,
    .free = keyring_free,
};

/* cu_kek_source_keyring(kr, out): the root-key-file source: wrap = cu_crypto_seal with the
 * current KEK (key id = KEK version, algorithm XChaCha20-Poly1305), unwrap = open with the KEK
 * the wrapped value names (CU_E_KEY_MISSING if the keyring lacks it). kr must outlive the
 * source; the source may be used from several threads at once. Caller frees *out with
 * cu_kek_source_free(). */
enum cu_err cu_kek_source_keyring(const struct cu_keyring *kr, struct cu_kek_source **out)
{
    struct keyring_state *st = NULL;
    enum cu_err rc;

    CU_ASSERT(kr != NULL);
    *out = NULL;
    st = cu_malloc(sizeof *st);
    if (st == NULL) {
        return CU_E_NOMEM;
    }
    st->kr = kr;
    rc = cu_kek_source_new(&keyring_ops, st, out);
    if (rc != CU_OK) {
        cu_free(st);
    }
    return rc;
}

/* ---- the root key file, followed while the process runs ---- */

/* What identifies one version of the file: a rewrite (cu_keyring_add_kek, _retire_kek) renames
 * a new file over it, so the inode changes; size and time catch an edit in place. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    mode_t mode;
    struct timespec mtime, ctime; /* ctime moves on chmod too (a refused mode, then fixed) */
};

struct file_state {
    const struct cu_keyring *_Atomic cur;          /* the keyring wraps and unwraps use */
    struct cu_keyring *loaded[CU_KEK_RELOADS_MAX]; /* keyrings loaded here, freed with the source */
    size_t nloaded;
    char *path;
    pthread_mutex_t mu; /* held while the file is looked at and reloaded */
    struct file_id id;  /* the file as last looked at (zero until then) */
    bool have_id;
    _Atomic uint64_t next_check_ns; /* when the file may next be looked at */
    uint64_t check_ns;
};

static bool same_id(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mode == b->mode &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* take(st, kr, cur): publishes kr, loaded from the changed file, if it is a later state of
 * cur; otherwise frees it, logging why when it is refused. Under st->mu. */
static void take(struct file_state *st, struct cu_keyring *kr, const struct cu_keyring *cur)
{
    enum cu_keyring_change c = cu_keyring_compare(cur, kr);

    if (c == CU_KEYRING_NEWER && st->nloaded < CU_KEK_RELOADS_MAX) {
        st->loaded[st->nloaded++] = kr;
        atomic_store_explicit(&st->cur, kr, memory_order_release);
        cu_log(CU_LOG_INFO, "keys.reloaded", CU_LS("file", st->path),
               CU_LI("current_kek", cu_keyring_current_kek(kr)));
        return;
    }
    if (c == CU_KEYRING_CONFLICT)
        cu_log(CU_LOG_ERROR, "keys.reload_refused", CU_LS("file", st->path),
               CU_LS("reason", "the file is not a later state of the one in use (another "
                               "master secret, another key under a version in use, or an older "
                               "copy, with a lower current version); the keys in use stay"),
               CU_LB("alert", true));
    else if (c == CU_KEYRING_NEWER)
        cu_log(CU_LOG_ERROR, "keys.reload_refused", CU_LS("file", st->path),
               CU_LS("reason", "the root key file changed too many times since the server "
                               "started; restart it to use the new keys"));
    cu_keyring_free(kr);
}

/* look(st): reloads the file if it changed since it was last looked at. Under st->mu. */
static void look(struct file_state *st)
{
    struct stat sb;
    char err[CU_KEYRING_ERR_BYTES];
    struct cu_keyring *kr = NULL;

    if (stat(st->path, &sb) != 0) {
        if (st->have_id)
            cu_log(CU_LOG_ERROR, "keys.reload_failed", CU_LS("file", st->path),
                   CU_LS("error", "the root key file cannot be found; the keys in use stay"));
        st->have_id = false;
        return;
    }
    struct file_id id = {sb.st_dev, sb.st_ino, sb.st_size, sb.st_mode, sb.st_mtim, sb.st_ctim};
    if (st->have_id && same_id(&id, &st->id))
        return;
    /* Remembered even when the load fails, so a broken file is reported once, not each time. */
    st->id = id;
    st->have_id = true;
    if (cu_keyring_load(st->path, &kr, err) != CU_OK) {
        cu_log(CU_LOG_ERROR, "keys.reload_failed", CU_LS("error", err),
               CU_LS("detail", "the keys in use stay"));
        return;
    }
    take(st, kr, atomic_load_explicit(&st->cur, memory_order_acquire));
}

/* refresh(st, now): looks at the file if check_ns has passed since the last look, or at once
 * when now is set (a wrapped DEK named a version the keyring lacks). Returns the keyring to
 * use. */
static const struct cu_keyring *refresh(struct file_state *st, bool now)
{
    uint64_t t = cu_clock_mono_ns();
    uint64_t next = atomic_load_explicit(&st->next_check_ns, memory_order_relaxed);

    if (now || (t >= next &&
                atomic_compare_exchange_strong(&st->next_check_ns, &next, t + st->check_ns))) {
        pthread_mutex_lock(&st->mu);
        look(st);
        pthread_mutex_unlock(&st->mu);
    }
    return atomic_load_explicit(&st->cur, memory_order_acquire);
}

static enum cu_err file_wrap(void *state, const uint8_t *dek, size_t dek_len, const uint8_t *ad,
                             size_t ad_len, uint8_t *out, size_t cap, size_t *out_len)
{
    return seal_current(refresh(state, false), dek, dek_len, ad, ad_len, out, cap, out_len);
}

static enum cu_err file_unwrap(void *state, const uint8_t *wrapped, size_t len, const uint8_t *ad,
                               size_t ad_len, uint8_t *dek, size_t cap, size_t *dek_len)
{
    uint32_t version = 0;
    enum cu_err rc = cu_crypto_sealed_key_id(wrapped, len, &version);
    const struct cu_keyring *kr = refresh(state, false);

    *dek_len = 0;
    if (rc != CU_OK)
        return rc;
    if (cu_keyring_kek(kr, version) == NULL)
        kr = refresh(state, true); /* a rotation may have begun since the last look */
    return open_named(kr, version, wrapped, len, ad, ad_len, dek, cap, dek_len);
}

static uint32_t file_current_version(void *state)
{
    return cu_keyring_current_kek(refresh(state, false));
}

static void file_free(void *state)
{
    struct file_state *st = state;

    for (size_t i = 0; i < st->nloaded; i++)
        cu_keyring_free(st->loaded[i]);
    pthread_mutex_destroy(&st->mu);
    cu_free(st->path);
    cu_free(st);
}

static const struct cu_kek_source_ops file_ops = {
    .name = "keyring",
    .wrap = file_wrap,
    .unwrap = file_unwrap,
    .current_version = file_current_version,
    .wrapped_version = keyring_wrapped_version,
    .free = file_free,
};

/* cu_kek_source_keyring_file(first, path, check_ms, out): the root-key-file source that follows
 * changes to the file (kek.h). */
enum cu_err cu_kek_source_keyring_file(const struct cu_keyring *first, const char *path,
                                       unsigned check_ms, struct cu_kek_source **out)
{
    struct file_state *st = cu_calloc(1, sizeof(*st));
    enum cu_err rc = CU_E_NOMEM;

    CU_ASSERT(first != NULL);
    *out = NULL;
    if (st != NULL && (st->path = cu_strdup(path)) != NULL) {
        atomic_init(&st->cur, first);
        atomic_init(&st->next_check_ns, 0);
        st->check_ns = (uint64_t)check_ms * 1000000u;
        pthread_mutex_init(&st->mu, NULL);
        rc = cu_kek_source_new(&file_ops, st, out);
        if (rc != CU_OK)
            pthread_mutex_destroy(&st->mu);
    }
    if (rc != CU_OK && st != NULL) {
        cu_free(st->path);
        cu_free(st);
    }
    return rc;
}

/* cu_kek_wrap(s, dek, dek_len, ad, ad_len, out, cap, out_len): wraps the DEK under the current
 * KEK, binding ad (which must be given again to unwrap). CU_E_TOO_LARGE when cap is too small
 * (CU_KEK_WRAPPED_MAX is enough for a 32-byte DEK). */
enum cu_err cu_kek_wrap(struct cu_kek_source *s, const uint8_t *dek, size_t dek_len,
                        const uint8_t *ad, size_t ad_len, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    return s->ops->wrap(s->state, dek, dek_len, ad, ad_len, out, cap, out_len);
}

/* cu_kek_wrap_versioned(s, dek, dek_len, make_ad, arg, out, cap, out_len, version): wraps under
 * the current KEK with associated data naming its version, again if the version moved (kek.h). */
enum cu_err cu_kek_wrap_versioned(struct cu_kek_source *s, const uint8_t *dek, size_t dek_len,
                                  cu_kek_ad_fn make_ad, const void *arg, uint8_t *out, size_t cap,
                                  size_t *out_len, uint32_t *version)
{
    char ad[CU_KEK_AD_MAX];

    for (int i = 0; i < WRAP_TRIES; i++) {
        uint32_t want = cu_kek_current_version(s), got = 0;
        make_ad(arg, want, ad, sizeof(ad));
        enum cu_err rc =
            cu_kek_wrap(s, dek, dek_len, (const uint8_t *)ad, strlen(ad), out, cap, out_len);
        if (rc == CU_OK)
            rc = cu_kek_wrapped_version(s, out, *out_len, &got);
        if (rc != CU_OK)
            return rc;
        if (got == want) {
            *version = want;
            return CU_OK;
        }
    }
    *out_len = 0;
    return CU_E_UNAVAILABLE;
}

/* cu_kek_unwrap(s, wrapped, len, ad, ad_len, dek, cap, dek_len): the DEK in wrapped, into dek
 * (cap bytes; the caller wipes it after use). CU_E_KEY_MISSING when the KEK version it names
 * is not available, CU_E_CRYPTO when it or ad was altered, CU_E_CORRUPT when malformed,
 * CU_E_TOO_LARGE when cap is too small. On failure nothing is written to dek. */
enum cu_err cu_kek_unwrap(struct cu_kek_source *s, const uint8_t *wrapped, size_t len,
                          const uint8_t *ad, size_t ad_len, uint8_t *dek, size_t cap,
                          size_t *dek_len)
{
    *dek_len = 0;
    return s->ops->unwrap(s->state, wrapped, len, ad, ad_len, dek, cap, dek_len);
}

/* cu_kek_current_version(s): the version of the KEK that new wraps use. */
uint32_t cu_kek_current_version(const struct cu_kek_source *s)
{
    return s->ops->current_version(s->state);
}

/* cu_kek_wrapped_version(s, wrapped, len, version): the KEK version that wrapped names,
 * without unwrapping it. CU_E_CORRUPT when wrapped is malformed. */
enum cu_err cu_kek_wrapped_version(const struct cu_kek_source *s, const uint8_t *wrapped,
                                   size_t len, uint32_t *version)
{
    return s->ops->wrapped_version(s->state, wrapped, len, version);
}

/* cu_kek_source_name(s): the source's name (static storage), e.g. "keyring". */
const char *cu_kek_source_name(const struct cu_kek_source *s)
{
    return s->ops->name;
}

/* cu_kek_source_free(s): frees s and its state; NULL does nothing. */
void cu_kek_source_free(struct cu_kek_source *s)
{
    if (s == NULL) {
        return;
    }
    if (s->ops->free != NULL) {
        s->ops->free(s->state);
    }
    cu_free(s);
}
