/*
 * notify.c - the notification service: its configuration checked, its keys read, notices
 * queued on every configured channel, and the webhook signature (notify.h).
 */
#include "notify/notify_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "notify/outbox.h"

const unsigned cu_notify_latency_le_ms[CU_NOTIFY_LATENCY_BUCKETS] = {10,  50,   100,  250,
                                                                     500, 1000, 5000, 60000};

void cu_notify_sign(const uint8_t *key, size_t keylen, int64_t ts, const char *body, size_t len,
                    char out[CU_NOTIFY_SIG_BYTES])
{
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    char t[24], hex[2 * sizeof mac + 1];
    int tn = snprintf(t, sizeof t, "%" PRId64 ".", ts);

    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)t, (unsigned long long)tn);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, (unsigned long long)len);
    crypto_auth_hmacsha256_final(&st, mac);
    cu_hex_encode(mac, sizeof mac, hex);
    snprintf(out, CU_NOTIFY_SIG_BYTES, "t=%" PRId64 ",v1=%s", ts, hex);
    sodium_memzero(&st, sizeof st);
}

/* read_small(path, buf, cap, n, why, what): a file of at most cap - 1 bytes that only its owner
 * may read. */
static enum cu_err read_small(const char *path, char *buf, size_t cap, size_t *n,
                              char why[CU_NOTIFY_WHY_BYTES], const char *what)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t got;

    if (fd < 0) {
        snprintf(why, CU_NOTIFY_WHY_BYTES, "[notify] %s: cannot open %.160s: %s", what, path,
                 strerror(errno));
        return CU_E_CONFIG;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0) {
        close(fd);
        snprintf(why, CU_NOTIFY_WHY_BYTES,
                 "[notify] %s: %.160s must be a regular file only its owner may read (chmod 600)",
                 what, path);
        return CU_E_CONFIG;
    }
    got = read(fd, buf, cap - 1);
    close(fd);
    if (got < 0 || (size_t)got > cap - 2) {
        snprintf(why, CU_NOTIFY_WHY_BYTES, "[notify] %s: %.160s is unreadable or too long", what,
                 path);
        return CU_E_CONFIG;
    }
    buf[got] = '\0';
    *n = (size_t)got;
    return CU_OK;
}

/* chomp(buf, n): the text's line break at its end taken off. */
static size_t chomp(char *buf, size_t n)
{
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return n;
}

/* load_key(n, path, why): the webhook key, as hex (64..128 digits) or raw bytes. */
static enum cu_err load_key(struct cu_notify *n, const char *path, char why[CU_NOTIFY_WHY_BYTES])
{
    char buf[2 * CU_NOTIFY_KEY_MAX + 8];
    size_t len = 0, bin = 0, hexlen = 0;
    const char *end = NULL;
    enum cu_err rc = read_small(path, buf, sizeof buf, &len, why, "webhook_secret_file");

    if (rc == CU_OK) {
        /* hexadecimal, with a line break at its end or not; else the bytes as they are */
        char hex[sizeof buf];
        memcpy(hex, buf, len + 1);
        hexlen = chomp(hex, len);
        if (sodium_hex2bin(n->key, sizeof n->key, hex, hexlen, NULL, &bin, &end) == 0 &&
            end == hex + hexlen && bin >= CU_NOTIFY_KEY_MIN) {
            n->keylen = bin;
        } else if (len >= CU_NOTIFY_KEY_MIN && len <= CU_NOTIFY_KEY_MAX) {
            memcpy(n->key, buf, len);
            n->keylen = len;
        } else {
            snprintf(why, CU_NOTIFY_WHY_BYTES,
                     "[notify] webhook_secret_file: %.160s must hold %d to %d bytes (or twice as "
                     "many hexadecimal digits)",
                     path, CU_NOTIFY_KEY_MIN, CU_NOTIFY_KEY_MAX);
            rc = CU_E_CONFIG;
        }
        sodium_memzero(hex, sizeof hex);
    }
    sodium_memzero(buf, sizeof buf);
    return rc;
}

/* check_url(url, schemes, loopback_http, why, key): url parses, with a host, and a scheme of
 * schemes (NULL-terminated); "http" also when loopback_http and the host is a loopback
 * address. */
static enum cu_err check_url(const char *url, const char *const *schemes, bool loopback_http,
                             char why[CU_NOTIFY_WHY_BYTES], const char *key)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL;
    enum cu_err rc = CU_E_CONFIG;
    bool ok = false;

    if (!u)
        return CU_E_NOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, CU_NOTIFY_WHY_BYTES, "[notify] %s: not a URL with a host", key);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        /* it would sit in the configuration and in error messages */
        snprintf(why, CU_NOTIFY_WHY_BYTES,
                 "[notify] %s: must not hold a user name or password (user@host)", key);
        goto out;
    }
    for (size_t i = 0; schemes[i]; i++)
        ok = ok || strcmp(scheme, schemes[i]) == 0;
    if (!ok && loopback_http && strcmp(scheme, "http") == 0)
        ok = strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0;
    if (!ok) {
        snprintf(why, CU_NOTIFY_WHY_BYTES, "[notify] %s: must be %s://%s, not %.16s://", key,
                 schemes[0], schemes[1] ? " (or the scheme's TLS variant)" : "", scheme);
        goto out;
    }
    rc = CU_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

/* path_of(cfg, rel, out, why, key): rel against the data directory. */
static enum cu_err path_of(const struct cu_config *cfg, const char *rel,
                           char out[CU_CONFIG_PATH_BYTES], char why[CU_NOTIFY_WHY_BYTES],
                           const char *key)
{
    if (cu_config_path(cfg, rel, out, CU_CONFIG_PATH_BYTES) != CU_OK) {
        snprintf(why, CU_NOTIFY_WHY_BYTES, "[notify] %s: the path is too long", key);
        return CU_E_CONFIG;
    }
    return CU_OK;
}

static bool address_ok(const char *a)
{
    const char *at = strchr(a, '@');

    if (!at || at == a || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == ',')
            return false;
    return true;
}

static enum cu_err setup(struct cu_notify *n, const struct cu_config *cfg,
                         char why[CU_NOTIFY_WHY_BYTES])
{
    static const char *const web[] = {"https", NULL};
    static const char *const mail[] = {"smtp", "smtps", NULL};
    char path[CU_CONFIG_PATH_BYTES];
    enum cu_err rc = CU_OK;

    n->o.loopback_http = cfg->notify.allow_loopback_http;
    n->o.timeout_ms = cfg->notify.timeout_ms;
    n->o.max_attempts = cfg->notify.max_attempts;
    n->o.retry_base_ms = cfg->notify.retry_base_ms;
    n->o.retry_max_ms = cfg->notify.retry_max_ms;
    n->o.concurrency = cfg->notify.concurrency;
    if (strcmp(cfg->notify.webhook_url, "none") != 0) {
        rc = check_url(cfg->notify.webhook_url, web, cfg->notify.allow_loopback_http, why,
                       "webhook_url");
        if (rc == CU_OK)
            rc = path_of(cfg, cfg->notify.webhook_secret_file, path, why, "webhook_secret_file");
        if (rc == CU_OK)
            rc = load_key(n, path, why);
        if (rc == CU_OK && strcmp(cfg->notify.webhook_ca_file, "system") != 0)
            rc = path_of(cfg, cfg->notify.webhook_ca_file, n->o.webhook_ca, why, "webhook_ca_file");
        if (rc != CU_OK)
            return rc;
        snprintf(n->o.webhook_url, sizeof n->o.webhook_url, "%s", cfg->notify.webhook_url);
        n->channels |= CU_NOTIFY_WEBHOOK;
    }
    if (strcmp(cfg->notify.staff_email, "none") != 0) {
        if (!address_ok(cfg->notify.staff_email)) {
            snprintf(why, CU_NOTIFY_WHY_BYTES, "[notify] staff_email: not an e-mail address");
            return CU_E_CONFIG;
        }
        snprintf(n->o.staff_email, sizeof n->o.staff_email, "%s", cfg->notify.staff_email);
    }
    if (strcmp(cfg->notify.email_url, "none") != 0) {
        size_t len = 0;
        rc = check_url(cfg->notify.email_url, mail, false, why, "email_url");
        if (rc == CU_OK && !address_ok(cfg->notify.email_from)) {
            snprintf(why, CU_NOTIFY_WHY_BYTES, "[notify] email_from: not an e-mail address");
            rc = CU_E_CONFIG;
        }
        if (rc == CU_OK && strcmp(cfg->notify.email_password_file, "none") != 0) {
            rc = path_of(cfg, cfg->notify.email_password_file, path, why, "email_password_file");
            if (rc == CU_OK)
                rc = read_small(path, n->password, sizeof n->password, &len, why,
                                "email_password_file");
            if (rc == CU_OK)
                len = chomp(n->password, len);
        }
        if (rc == CU_OK && strcmp(cfg->notify.email_ca_file, "system") != 0)
            rc = path_of(cfg, cfg->notify.email_ca_file, n->o.email_ca, why, "email_ca_file");
        if (rc != CU_OK)
            return rc;
        snprintf(n->o.email_url, sizeof n->o.email_url, "%s", cfg->notify.email_url);
        snprintf(n->o.email_from, sizeof n->o.email_from, "%s", cfg->notify.email_from);
        if (strcmp(cfg->notify.email_user, "none") != 0)
            snprintf(n->o.email_user, sizeof n->o.email_user, "%s", cfg->notify.email_user);
        n->channels |= CU_NOTIFY_EMAIL;
    }
    return CU_OK;
}

static CURLcode curl_ready = CURLE_FAILED_INIT;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* curl_setup: libcurl's global state, once (its cleanup is left to the process's end). */
static void curl_setup(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT);
}

enum cu_err cu_notify_new(const struct cu_config *cfg, struct cu_vault *vault,
                          struct cu_notify **out, char why[CU_NOTIFY_WHY_BYTES])
{
    struct cu_notify *n;
    enum cu_err rc;

    *out = NULL;
    why[0] = '\0';
    pthread_once(&curl_once, curl_setup);
    if (curl_ready != CURLE_OK) {
        snprintf(why, CU_NOTIFY_WHY_BYTES, "libcurl cannot start");
        return CU_E_NOMEM;
    }
    rc = cu_notify_templates_check(why);
    if (rc != CU_OK)
        return rc;
    n = cu_calloc(1, sizeof *n);
    if (!n)
        return CU_E_NOMEM;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    n->vault = vault;
    rc = setup(n, cfg, why);
    if (rc != CU_OK) {
        cu_notify_free(n);
        return rc;
    }
    *out = n;
    return CU_OK;
}

void cu_notify_free(struct cu_notify *n)
{
    if (!n)
        return;
    cu_notify_stop(n);
    sodium_memzero(n->key, sizeof n->key);
    sodium_memzero(n->password, sizeof n->password);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    cu_free(n);
}

unsigned cu_notify_channels(const struct cu_notify *n)
{
    return n ? n->channels : 0;
}

static void wake_effect(void *arg, struct cu_db *db)
{
    (void)db;
    cu_notify_wake(arg);
}

enum cu_err cu_notify_queue(struct cu_notify *n, struct cu_work *w, struct cu_db *db,
                            const char *customer, const char *template_name, const char *data)
{
    static const struct {
        unsigned bit;
        const char *name;
    } chans[] = {{CU_NOTIFY_WEBHOOK, "webhook"}, {CU_NOTIFY_EMAIL, "email"}};
    enum cu_err rc = CU_OK;
    int64_t now = cu_work_context_of(w)->now_ms;

    if (!cu_notify_template_known(template_name))
        return CU_E_INVALID;
    if (!n || !n->channels)
        return CU_OK;
    bool same_run =
        n->woke_w == w && n->woke_run == cu_work_retries(w) && n->woke_txn == cu_db_txn_id(db);
    if (!same_run)
        n->nqueued = 0;
    for (size_t i = 0; i < n->nqueued; i++)
        if (strcmp(n->queued[i].customer, customer) == 0 &&
            strcmp(n->queued[i].template_name, template_name) == 0)
            return CU_OK; /* this run of the unit queued it already */
    for (size_t i = 0; rc == CU_OK && i < sizeof chans / sizeof chans[0]; i++) {
        if (!(n->channels & chans[i].bit))
            continue;
        /* a staff notice by e-mail only where staff_email says where */
        if (chans[i].bit == CU_NOTIFY_EMAIL && !customer[0] && !n->o.staff_email[0])
            continue;
        rc = cu_outbox_add(db, now, chans[i].name, customer, template_name, data, NULL);
    }
    /* one wake-up a run of a unit (a unit holds at most CU_WORK_EFFECTS_MAX effects, and a
     * batch may queue many notices): a unit that fails, or runs again, loses its effects, and
     * the next run or unit asks again. The worker also looks every second. */
    if (rc == CU_OK && !same_run) {
        rc = cu_work_after(w, wake_effect, n);
        if (rc == CU_OK) {
            n->woke_w = w;
            n->woke_run = cu_work_retries(w);
            n->woke_txn = cu_db_txn_id(db);
        }
    }
    if (rc == CU_OK && n->nqueued < sizeof n->queued / sizeof n->queued[0]) {
        snprintf(n->queued[n->nqueued].customer, sizeof n->queued[0].customer, "%s", customer);
        snprintf(n->queued[n->nqueued].template_name, sizeof n->queued[0].template_name, "%s",
                 template_name);
        n->nqueued++;
    }
    return rc;
}

void cu_notify_stats(const struct cu_notify *n, struct cu_notify_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!n)
        return;
    for (int i = 0; i < 2; i++) {
        out->sent[i] = atomic_load(&n->sent[i]);
        out->failed[i] = atomic_load(&n->failed[i]);
        out->dead[i] = atomic_load(&n->dead[i]);
    }
    out->latency_count = atomic_load(&n->latency_count);
    out->latency_sum_ms = atomic_load(&n->latency_sum_ms);
    for (int i = 0; i < CU_NOTIFY_LATENCY_BUCKETS; i++)
        out->latency_le[i] = atomic_load(&n->latency_le[i]);
}

/* counter(out, name, help, v): one counter by channel, webhook and e-mail. */
static enum cu_err counter(struct cu_buf *out, const char *name, const char *help,
                           const uint64_t v[2])
{
    enum cu_err rc = cu_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);

    if (rc == CU_OK)
        rc = cu_buf_printf(out, "%s{channel=\"webhook\"} %llu\n%s{channel=\"email\"} %llu\n", name,
                           (unsigned long long)v[0], name, (unsigned long long)v[1]);
    return rc;
}

enum cu_err cu_notify_metrics(const struct cu_notify *n, struct cu_buf *out)
{
    struct cu_notify_stats s;
    enum cu_err rc;

    cu_notify_stats(n, &s);
    rc = counter(out, "custodia_notify_sent_total", "Notifications delivered, by channel.", s.sent);
    if (rc == CU_OK)
        rc = counter(out, "custodia_notify_failed_total",
                     "Delivery attempts that failed (each retried, or dead).", s.failed);
    if (rc == CU_OK)
        rc = counter(out, "custodia_notify_dead_total",
                     "Notifications given up after max_attempts, or that cannot be rendered.",
                     s.dead);
    if (rc == CU_OK)
        rc = cu_buf_printf(out, "# HELP custodia_notify_delivery_seconds From a notice's commit to "
                                "its delivery.\n"
                                "# TYPE custodia_notify_delivery_seconds histogram\n");
    for (int i = 0; rc == CU_OK && i < CU_NOTIFY_LATENCY_BUCKETS; i++)
        rc = cu_buf_printf(out, "custodia_notify_delivery_seconds_bucket{le=\"%u.%03u\"} %llu\n",
                           cu_notify_latency_le_ms[i] / 1000, cu_notify_latency_le_ms[i] % 1000,
                           (unsigned long long)s.latency_le[i]);
    if (rc == CU_OK)
        rc = cu_buf_printf(
            out,
            "custodia_notify_delivery_seconds_bucket{le=\"+Inf\"} %llu\n"
            "custodia_notify_delivery_seconds_sum %llu.%03llu\n"
            "custodia_notify_delivery_seconds_count %llu\n"
            "# HELP custodia_notify_outbox Notices in the outbox by status, as this node's worker "
            "last counted them.\n"
            "# TYPE custodia_notify_outbox gauge\n"
            "custodia_notify_outbox{status=\"pending\"} %lld\n"
            "custodia_notify_outbox{status=\"sending\"} %lld\n"
            "custodia_notify_outbox{status=\"dead\"} %lld\n",
            (unsigned long long)s.latency_count, (unsigned long long)(s.latency_sum_ms / 1000),
            (unsigned long long)(s.latency_sum_ms % 1000), (unsigned long long)s.latency_count,
            n ? (long long)atomic_load(&n->pending) : 0LL,
            n ? (long long)atomic_load(&n->sending) : 0LL,
            n ? (long long)atomic_load(&n->dead_now) : 0LL);
    return rc;
}
