/*
 * identity_bench.c - identity figures measured in-process:
 *   - raw Argon2id hashes per second (cu_pwhash_raw, no semaphore) at given parameters, on one
 *     thread per core: the yardstick for password sign-ins over HTTPS (bench/http_login.sh
 *     runs this mode right before and right after its load);
 *   - session-token validations per second (cu_identity_session_check) over a set of sessions
 *     made by signing customers in on a temporary SQLite store, one thread per core; and the
 *     same with the subject's state read as well, which is what a request with a session does.
 *
 * usage: identity_bench pwhash TIME_COST MEMORY_KIB [SECONDS [THREADS]]  (5 s, one per core)
 *        identity_bench sessions [SESSIONS] [SECONDS]            (default 1000 sessions, 5 s)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/pwhash.h"
#include "identity/identity.h"
#include "vault/vault.h"

#define WORDLIST "/usr/share/john/password.lst"
#define PASSWORD "Tr0ub4dor&3-blue-kettle"
#define MAX_THREADS 256

/* What one worker thread of a timed loop is given and gives back. */
struct worker {
    pthread_t thread;
    uint64_t deadline_ns;
    const struct cu_pwhash_params *params; /* pwhash mode */
    struct sessions *set;                  /* sessions mode */
    long done;
    unsigned index;
    enum cu_err rc;
    bool with_state; /* sessions mode: read the subject's state too */
};

/* The sessions mode's world: a store, the services and the tokens of live sessions. */
struct sessions {
    char dir[64];
    struct cu_keyring *kr;
    struct cu_kek_source *kek;
    struct cu_vault *v;
    struct cu_store *st;
    struct cu_identity *idn;
    char (*tokens)[CU_SESSION_TOKEN_BYTES];
    size_t n;
};

/* cpu_seconds(): the user and system time this process has used. */
static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double since(uint64_t t)
{
    return (double)(cu_clock_mono_ns() - t) / 1e9;
}

static int fail(const char *what, enum cu_err rc)
{
    fprintf(stderr, "identity_bench: %s: %s\n", what, cu_err_str(rc));
    return 1;
}

static unsigned cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

/* run_workers(w, n, main_fn, seconds, total): runs main_fn on n threads until seconds have
 * passed; *total gets the operations they completed. Returns the wall time taken, or a
 * negative number when a thread failed. */
static double run_workers(struct worker *w, unsigned n, void *(*main_fn)(void *), double seconds,
                          long *total)
{
    uint64_t t = cu_clock_mono_ns();
    bool ok = true;

    *total = 0;
    for (unsigned i = 0; i < n; i++) {
        w[i].index = i;
        w[i].deadline_ns = t + (uint64_t)(seconds * 1e9);
        w[i].done = 0;
        w[i].rc = CU_OK;
        if (pthread_create(&w[i].thread, NULL, main_fn, &w[i]) != 0) {
            fprintf(stderr, "identity_bench: cannot start a thread\n");
            exit(1);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        pthread_join(w[i].thread, NULL);
        *total += w[i].done;
        ok = ok && w[i].rc == CU_OK;
    }
    return ok ? since(t) : -1.0;
}

/* ---- raw password hashing ---- */

static void *pwhash_main(void *arg)
{
    struct worker *w = arg;
    char out[CU_PWHASH_STR_BYTES];

    while (w->rc == CU_OK && cu_clock_mono_ns() < w->deadline_ns) {
        w->rc = cu_pwhash_raw(w->params, PASSWORD, strlen(PASSWORD), out);
        w->done++;
    }
    return NULL;
}

static int pwhash_rate(unsigned long t_cost, unsigned long m_kib, double seconds, unsigned n)
{
    const struct cu_pwhash_params p = {.opslimit = t_cost, .memlimit = (size_t)m_kib * 1024};
    struct worker w[MAX_THREADS];
    long total = 0;

    memset(w, 0, sizeof(w));
    for (unsigned i = 0; i < n; i++)
        w[i].params = &p;
    double cpu = cpu_seconds();
    double s = run_workers(w, n, pwhash_main, seconds, &total);
    if (s < 0)
        return fail("cu_pwhash_raw", CU_E_INVALID);
    cpu = cpu_seconds() - cpu;
    /* The CPU time per hash does not move when other programs take the cores: the script
     * compares it with the server's CPU time per sign-in. */
    printf("raw Argon2id (cu_pwhash_raw), t=%lu, m=%lu KiB, %u threads, %.1f s: %.2f ms CPU "
           "per hash, %.1f hashes/s\n",
           t_cost, m_kib, n, s, 1000.0 * cpu / (double)total, (double)total / s);
    return 0;
}

/* ---- session checks ---- */

static void *session_main(void *arg)
{
    struct worker *w = arg;
    struct sessions *set = w->set;
    struct cu_session_info info;
    struct cu_db *db = NULL;
    bool touch = false;
    size_t i = w->index * (set->n / cores() + 1);

    w->rc = cu_store_acquire(set->st, &db);
    while (w->rc == CU_OK && cu_clock_mono_ns() < w->deadline_ns) {
        /* The clock is read once per 64 validations. */
        for (int k = 0; k < 64 && w->rc == CU_OK; k++, i++) {
            const char *tok = set->tokens[i % set->n];
            w->rc =
                cu_identity_session_check(set->idn, db, tok, CU_SESSION_TOKEN_LEN, &info, &touch);
            if (w->rc == CU_OK && w->with_state) {
                uint64_t scopes = 0;
                bool active = false, totp = false;
                w->rc = cu_identity_subject_state(set->idn, db, info.kind, info.subject_id, &scopes,
                                                  &active, &totp);
                if (w->rc == CU_OK && !active)
                    w->rc = CU_E_UNAUTHENTICATED;
            }
            w->done++;
        }
    }
    cu_store_release(db);
    return NULL;
}

/* Services with cheap hashing parameters: the hash is not what the sessions mode measures. */
static enum cu_err open_services(struct sessions *s)
{
    char kerr[CU_KEYRING_ERR_BYTES] = "", serr[CU_STORE_ERR_BYTES] = "", key[96], db[96];
    const int64_t min = 60000;
    const struct cu_identity_opts o = {.pwhash = {.opslimit = 1, .memlimit = 8192},
                                       .hash_concurrency = 0,
                                       .hash_wait_ms = 5000,
                                       .common_passwords = WORDLIST,
                                       .totp_issuer = "custodia",
                                       .customer_mfa_required = false,
                                       .session_idle_ms = 30 * min,
                                       .session_absolute_ms = min * 60 * 12,
                                       .step_up_ms = 5 * min,
                                       .challenge_ms = 5 * min,
                                       .lockout_threshold = 5,
                                       .lockout_base_ms = 30000,
                                       .lockout_max_ms = 900000,
                                       .lockout_reset_ms = 60 * min};
    const struct cu_store_opts so = {.backend = "sqlite",
                                     .path = db,
                                     .busy_timeout_ms = 5000,
                                     .synchronous_full = true,
                                     .create = true};
    enum cu_err rc;

    snprintf(key, sizeof(key), "%s/root.key", s->dir);
    snprintf(db, sizeof(db), "%s/custodia.db", s->dir);
    rc = cu_keyring_create(key, kerr);
    if (rc == CU_OK)
        rc = cu_keyring_load(key, &s->kr, kerr);
    if (rc == CU_OK)
        rc = cu_kek_source_keyring(s->kr, &s->kek);
    if (rc == CU_OK)
        rc = cu_vault_new(s->kr, s->kek, CU_AEAD_XCHACHA20POLY1305, &s->v);
    if (rc == CU_OK)
        rc = cu_store_open(&so, &s->st, serr);
    if (rc == CU_OK)
        rc = cu_store_migrate(s->st, serr);
    if (rc == CU_OK)
        rc = cu_identity_new(s->kr, s->kek, CU_AEAD_XCHACHA20POLY1305, s->v, &o, &s->idn);
    if (rc != CU_OK)
        fprintf(stderr, "identity_bench: %s%s\n", kerr, serr);
    return rc;
}

/* add_customers(s, ids): s->n customers with an e-mail each, in one transaction. */
static enum cu_err add_customers(struct sessions *s, char (*ids)[CU_CUSTOMER_ID_BYTES])
{
    char why[CU_VAULT_WHY_BYTES];
    struct cu_db *db = NULL;
    enum cu_err rc = cu_store_db(s->st, &db);

    if (rc == CU_OK)
        rc = cu_db_begin(db, CU_TXN_WRITE);
    for (size_t i = 0; rc == CU_OK && i < s->n; i++) {
        struct cu_customer c;
        char email[64];

        snprintf(email, sizeof(email), "bench%zu@example.com", i);
        json_t *in = json_pack("{s:s}", "email", email);
        rc = in == NULL ? CU_E_NOMEM : cu_vault_create(s->v, db, in, &c, why);
        json_decref(in);
        if (rc == CU_OK) {
            snprintf(ids[i], CU_CUSTOMER_ID_BYTES, "%s", c.id);
            cu_customer_clear(&c);
        }
    }
    return rc == CU_OK ? cu_db_commit(db) : (cu_db_rollback(db), rc);
}

/* make_sessions(s): s->n customers with a password, each signed in once; the tokens go to
 * s->tokens. */
static enum cu_err make_sessions(struct sessions *s)
{
    const struct cu_auth_ctx ctx = {
        .ip = "127.0.0.1", .raw_ip = "127.0.0.1", .user_agent = "identity_bench"};
    char(*ids)[CU_CUSTOMER_ID_BYTES] = cu_calloc(s->n, sizeof(*ids));
    char why[CU_IDENTITY_WHY_BYTES];
    enum cu_err rc;

    s->tokens = cu_calloc(s->n, sizeof(*s->tokens));
    if (ids == NULL || s->tokens == NULL) {
        cu_free(ids);
        return CU_E_NOMEM;
    }
    struct cu_db *db = NULL;
    rc = add_customers(s, ids);
    if (rc == CU_OK)
        rc = cu_store_db(s->st, &db);
    /* The setup runs the check and record halves in transactions of its own (no audit log):
     * the figure measured is the validation of the sessions made. */
    for (size_t i = 0; rc == CU_OK && i < s->n; i++) {
        struct cu_identity_password pw = {.kind = CU_SUBJECT_CUSTOMER};
        struct cu_identity_login op = {.kind = CU_SUBJECT_CUSTOMER, .ctx = ctx};

        snprintf(pw.id, sizeof(pw.id), "%s", ids[i]);
        snprintf(op.login, sizeof(op.login), "bench%zu@example.com", i);
        rc = cu_identity_password_check(s->idn, db, &pw, PASSWORD, strlen(PASSWORD), why);
        if (rc == CU_OK && (rc = cu_db_begin(db, CU_TXN_WRITE)) == CU_OK) {
            rc = cu_identity_password_record(s->idn, NULL, db, &pw);
            rc = rc == CU_OK ? cu_db_commit(db) : (cu_db_rollback(db), rc);
        }
        if (rc == CU_OK)
            rc = cu_identity_login_check(s->idn, db, &op, PASSWORD, strlen(PASSWORD));
        if (rc == CU_OK && (rc = cu_db_begin(db, CU_TXN_WRITE)) == CU_OK) {
            rc = cu_identity_login_record(s->idn, NULL, db, &op);
            rc = rc == CU_OK ? cu_db_commit(db) : (cu_db_rollback(db), rc);
        }
        if (rc == CU_OK && (op.result != CU_OK || op.out.status != CU_LOGIN_OK))
            rc = CU_E_INTERNAL;
        if (rc == CU_OK)
            memcpy(s->tokens[i], op.out.token, CU_SESSION_TOKEN_BYTES);
        cu_identity_password_clear(&pw);
        cu_identity_login_clear(&op);
    }
    cu_free(ids);
    return rc;
}

static void close_services(struct sessions *s)
{
    static const char *const names[] = {"root.key", "root.key.lock", "custodia.db",
                                        "custodia.db-wal", "custodia.db-shm"};
    char path[128];

    if (s->tokens != NULL)
        cu_crypto_wipe(s->tokens, s->n * sizeof(*s->tokens));
    cu_free(s->tokens);
    cu_identity_free(s->idn);
    cu_store_close(s->st);
    cu_vault_free(s->v);
    cu_kek_source_free(s->kek);
    cu_keyring_free(s->kr);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", s->dir, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(s->dir);
}

static int session_rates(size_t n, double seconds)
{
    struct sessions s = {.dir = "/tmp/cu-ibench-XXXXXX", .n = n};
    struct worker w[MAX_THREADS];
    unsigned threads = cores();
    long total = 0;
    int code = 1;

    if (mkdtemp(s.dir) == NULL) {
        fprintf(stderr, "identity_bench: cannot make a temporary directory\n");
        return 1;
    }
    enum cu_err rc = open_services(&s);
    uint64_t t = cu_clock_mono_ns();
    if (rc == CU_OK)
        rc = make_sessions(&s);
    if (rc != CU_OK) {
        code = fail("set-up", rc);
        goto out;
    }
    printf("made %zu customers with a password and one session each: %.1f s\n", n, since(t));
    for (int with_state = 0; with_state <= 1; with_state++) {
        memset(w, 0, sizeof(w));
        for (unsigned i = 0; i < threads; i++) {
            w[i].set = &s;
            w[i].with_state = with_state;
        }
        double secs = run_workers(w, threads, session_main, seconds, &total);
        if (secs < 0) {
            code = fail("cu_identity_session_check", CU_E_UNAUTHENTICATED);
            goto out;
        }
        printf("session-token validation%s, %zu sessions, %u threads, %.1f s: %.0f "
               "validations/s\n",
               with_state ? " and subject state (what a request does)" : " (session_check)", n,
               threads, secs, (double)total / secs);
    }
    code = 0;
out:
    close_services(&s);
    return code;
}

int main(int argc, char **argv)
{
    if (cu_crypto_init() != CU_OK)
        return 2;
    if (argc >= 4 && strcmp(argv[1], "pwhash") == 0) {
        unsigned long t = strtoul(argv[2], NULL, 10), m = strtoul(argv[3], NULL, 10);
        double secs = argc > 4 ? strtod(argv[4], NULL) : 5.0;
        long n = argc > 5 ? strtol(argv[5], NULL, 10) : (long)cores();
        return t < 1 || m < 8 || secs <= 0 || n < 1 || n > MAX_THREADS
                   ? 2
                   : pwhash_rate(t, m, secs, (unsigned)n);
    }
    if (argc >= 2 && strcmp(argv[1], "sessions") == 0) {
        long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
        double secs = argc > 3 ? strtod(argv[3], NULL) : 5.0;
        return n < 1 || secs <= 0 ? 2 : session_rates((size_t)n, secs);
    }
    fprintf(stderr, "usage: identity_bench pwhash TIME_COST MEMORY_KIB [SECONDS [THREADS]]\n"
                    "       identity_bench sessions [SESSIONS] [SECONDS]\n");
    return 2;
}
