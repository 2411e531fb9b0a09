/*
 * worker.c - the delivery worker (notify.h, cu_notify_start; docs/notifications.md).
 *
 * One thread, "cu-notify", in rounds:
 *   1. a look, on a pool connection, at when the next notice falls due;
 *   2. when one is due, a unit of work on the committer claims up to BATCH_MAX of them: each a
 *      conditional update (status and next_at as read) to status "sending", attempts + 1,
 *      next_at the lease's end; what another node claimed first does not match and is left to
 *      it. The same unit reads the e-mail address and language of each customer to be
 *      e-mailed (the address stays in memory for the delivery and is wiped after it);
 *   3. the claimed notices go out at once through one libcurl multi handle (at most
 *      [notify] concurrency at a time, connections kept alive between rounds);
 *   4. a second unit records each outcome (sent; or pending again at its back-off; or dead)
 *      with one audit record, notify.deliver, naming the notices.
 * A process that dies between 2 and 4 leaves its claims "sending" until their lease ends; they
 * then fall due again and are delivered once more (so a receiver may see a notice twice, and
 * tells by its id, which never changes).
 */
#include "notify/notify_int.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "cu_version.h"
#include "notify/outbox.h"
#include "vault/fields.h"
#include "vault/vault.h"

#define BATCH_MAX 64
#define IDLE_MS 1000
#define ERR_BYTES 200
#define RESPONSE_MAX 65536 /* bytes of a receiver's answer read (and dropped) */

enum { CH_WEBHOOK, CH_EMAIL };

struct job {
    char id[CU_OUTBOX_ID_BYTES];
    char customer[CU_CUSTOMER_ID_BYTES + 8];
    char tpl[40];
    char *data;
    int channel;
    int64_t attempts; /* counting this one */
    int64_t created_at;
    char lang[40];
    char *rcpt; /* e-mail: the address, wiped after */
    /* the delivery */
    CURL *easy;
    struct curl_slist *hdrs, *rcpts;
    char *payload;
    size_t plen, pos, got;
    bool ok, permanent, started, recorded;
    char curl_err[CURL_ERROR_SIZE];
    char err[ERR_BYTES];
};

struct round {
    struct cu_notify *n;
    struct job jobs[BATCH_MAX];
    size_t njobs;
    int64_t now;
    int64_t lease; /* the claims' next_at: the outcome updates only rows still so claimed */
};

static void job_clear(struct job *j)
{
    if (j->easy)
        curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->hdrs);
    for (struct curl_slist *l = j->rcpts; l; l = l->next)
        sodium_memzero(l->data, strlen(l->data));
    curl_slist_free_all(j->rcpts);
    if (j->rcpt) {
        sodium_memzero(j->rcpt, strlen(j->rcpt));
        free(j->rcpt);
    }
    if (j->payload) {
        sodium_memzero(j->payload, j->plen);
        free(j->payload);
    }
    free(j->data);
    memset(j, 0, sizeof *j);
}

static void round_clear(struct round *r)
{
    for (size_t i = 0; i < r->njobs; i++)
        job_clear(&r->jobs[i]);
    r->njobs = 0;
}

__attribute__((format(printf, 3, 4))) static void fail(struct job *j, bool permanent,
                                                       const char *fmt, ...)
{
    va_list ap;

    j->ok = false;
    j->permanent = j->permanent || permanent;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof j->err, fmt, ap);
    va_end(ap);
}

void cu_notify_wake(struct cu_notify *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->woken = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

/* ---- 2. the claim ---- */

/* recipient(n, db, j): the e-mail address and language of j's customer (or the staff's),
 * read on the worker's thread from a pool connection (the vault's decryption stays off the
 * committer's thread). */
static void recipient(struct cu_notify *n, struct cu_db *db, struct job *j)
{
    size_t nf = 0;
    const struct cu_field_def *fields = cu_fields(&nf);
    const struct cu_field_def *email = cu_field_find("email"), *lang = cu_field_find("language");
    struct cu_customer c;
    enum cu_err rc;

    if (!j->customer[0]) {
        if (n->o.staff_email[0])
            j->rcpt = strdup(n->o.staff_email);
        else
            fail(j, true, "%s", "no [notify] staff_email");
        return;
    }
    if (!n->vault) {
        fail(j, true, "%s", "no vault to read the address from");
        return;
    }
    memset(&c, 0, sizeof c);
    rc = db ? cu_vault_get(n->vault, db, j->customer, true, &c) : CU_E_STORE;
    if (rc == CU_E_NOT_FOUND || (rc == CU_OK && strcmp(c.status, "erased") == 0)) {
        fail(j, true, "%s", "the customer is gone or erased");
    } else if (rc != CU_OK) {
        fail(j, false, "the customer's address cannot be read: %s", cu_err_str(rc));
    } else if (!c.values[email - fields] || !c.values[email - fields][0]) {
        fail(j, true, "%s", "the customer has no e-mail address");
    } else {
        j->rcpt = strdup(c.values[email - fields]);
        if (c.values[lang - fields])
            snprintf(j->lang, sizeof j->lang, "%s", c.values[lang - fields]);
    }
    cu_customer_clear(&c);
}

/* live(n, db, j): whether j's customer may still be told anything (not erased, not gone). */
static void live(struct cu_notify *n, struct cu_db *db, struct job *j)
{
    char status[CU_VAULT_STATUS_BYTES] = "";
    enum cu_err rc;

    if (!j->customer[0] || !n->vault)
        return;
    rc = cu_vault_customer_state(n->vault, db, j->customer, status);
    if (rc == CU_E_NOT_FOUND || (rc == CU_OK && strcmp(status, "erased") == 0))
        fail(j, true, "%s", "the customer is gone or erased");
}

/* channel_values(n, p): the channels a query may take ("-" for one not configured). */
static void channel_values(const struct cu_notify *n, const char *p[2])
{
    p[0] = n->channels & CU_NOTIFY_WEBHOOK ? "webhook" : "-";
    p[1] = n->channels & CU_NOTIFY_EMAIL ? "email" : "-";
}

static enum cu_err claim_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    static const char pick[] =
        "SELECT id, customer, template, data, channel, attempts, created_at, status, next_at "
        "FROM notify_outbox WHERE status IN ('pending', 'sending') AND next_at <= $1 "
        "AND channel IN ($3, $4) ORDER BY next_at LIMIT $2";
    static const char take[] =
        "UPDATE notify_outbox SET status = 'sending', attempts = attempts + 1, next_at = $1 "
        "WHERE id = $2 AND status = $3 AND next_at = $4";
    /* a claim whose lease ended with max_attempts used: its process died during the last one
     * (perhaps because of it): dead, not tried for ever at each start */
    static const char bury[] =
        "UPDATE notify_outbox SET status = 'dead', next_at = $1, last_error = 'the process "
        "delivering it stopped during its last attempt' WHERE id = $2 AND status = $3 AND "
        "next_at = $4";
    struct round *r = arg;
    struct cu_notify *n = r->n;
    char status[BATCH_MAX][12] = {{0}};
    int64_t next_at[BATCH_MAX] = {0};
    int64_t lease =
        r->now + 2 * (int64_t)n->o.timeout_ms + 2000; /* the delivery, then its outcome */
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t k = 0;
    json_t *buried = NULL;
    const char *ch[2];
    enum cu_err rc;

    round_clear(r); /* a run again after CU_E_BUSY starts over */
    r->lease = lease;
    channel_values(n, ch);
    {
        const struct cu_val p[] = {CU_VI(r->now), CU_VI(BATCH_MAX), CU_VT(ch[0]), CU_VT(ch[1])};
        rc = cu_db_query(db, pick, p, CU_NVALS(p), &st);
    }
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && r->njobs < BATCH_MAX) {
        struct job *j = &r->jobs[r->njobs];
        size_t len = 0;
        const char *chan = cu_stmt_text(st, 4, &len);

        snprintf(j->id, sizeof j->id, "%s", cu_stmt_text(st, 0, &len));
        snprintf(j->customer, sizeof j->customer, "%s", cu_stmt_text(st, 1, &len));
        snprintf(j->tpl, sizeof j->tpl, "%s", cu_stmt_text(st, 2, &len));
        j->data = strdup(cu_stmt_text(st, 3, &len));
        j->channel = strcmp(chan, "email") == 0 ? CH_EMAIL : CH_WEBHOOK;
        j->attempts = cu_stmt_int(st, 5) + 1;
        j->created_at = cu_stmt_int(st, 6);
        snprintf(status[r->njobs], sizeof status[0], "%s", cu_stmt_text(st, 7, &len));
        next_at[r->njobs] = cu_stmt_int(st, 8);
        r->njobs++;
        if (!j->data)
            rc = CU_E_NOMEM;
    }
    cu_stmt_done(st);
    for (size_t i = 0; rc == CU_OK && i < r->njobs; i++) {
        bool spent =
            strcmp(status[i], "sending") == 0 && r->jobs[i].attempts > (int64_t)n->o.max_attempts;
        const struct cu_val p[] = {CU_VI(spent ? r->now : lease), CU_VT(r->jobs[i].id),
                                   CU_VT(status[i]), CU_VI(next_at[i])};
        rc = cu_db_exec(db, spent ? bury : take, p, CU_NVALS(p));
        if (rc == CU_OK && spent && cu_db_changes(db) == 1) {
            if (!buried)
                buried = json_array();
            json_array_append_new(buried, json_string(r->jobs[i].id));
            atomic_fetch_add(&n->dead[r->jobs[i].channel], 1);
            cu_log(CU_LOG_ERROR, "notify.dead", CU_LS("id", r->jobs[i].id),
                   CU_LS("error", "the process delivering it stopped during its last attempt"));
        }
        if (rc != CU_OK || spent || cu_db_changes(db) != 1) {
            job_clear(&r->jobs[i]); /* another node's now, or dead */
            continue;
        }
        if (k != i) {
            r->jobs[k] = r->jobs[i];
            memset(&r->jobs[i], 0, sizeof r->jobs[i]);
        }
        k++;
    }
    if (rc == CU_OK)
        r->njobs = k;
    for (size_t i = 0; rc == CU_OK && i < r->njobs; i++)
        live(n, db, &r->jobs[i]);
    if (rc == CU_OK && buried)
        rc = cu_work_audit(w, "notify.deliver", "", "failure",
                           json_pack("{s:[], s:[], s:O}", "sent", "retrying", "dead", buried));
    json_decref(buried);
    return rc;
}

/* ---- 3. the deliveries ---- */

static size_t drop_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct job *j = arg;
    size_t n = size * nmemb;

    (void)p;
    j->got += n;
    return j->got > RESPONSE_MAX ? 0 : n; /* a receiver that talks on and on is cut off */
}

static size_t read_payload(char *buf, size_t size, size_t nmemb, void *arg)
{
    struct job *j = arg;
    size_t room = size * nmemb, left = j->plen - j->pos;
    size_t n = left < room ? left : room;

    memcpy(buf, j->payload + j->pos, n);
    j->pos += n;
    return n;
}

/* data_with_time(j, out): the notice's data with "time" (when it was queued, RFC 3339 UTC). */
static char *data_with_time(const struct job *j)
{
    char t[CU_RFC3339_BYTES];
    json_t *d = json_loads(j->data, JSON_REJECT_DUPLICATES, NULL);
    char *s = NULL;

    if (!json_is_object(d)) {
        json_decref(d);
        return NULL;
    }
    cu_clock_format(j->created_at, t);
    json_object_set_new(d, "time", json_string(t));
    s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(d);
    return s;
}

static enum cu_err webhook_prepare(struct cu_notify *n, struct job *j, int64_t now)
{
    char created[CU_RFC3339_BYTES], sig[CU_NOTIFY_SIG_BYTES], h[160];
    json_t *data = json_loads(j->data, JSON_REJECT_DUPLICATES, NULL), *body;
    int64_t ts = now / 1000;

    if (!json_is_object(data)) {
        json_decref(data);
        fail(j, true, "%s", "the notice's data is not a JSON object");
        return CU_E_INVALID;
    }
    cu_clock_format(j->created_at, created);
    body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "id", j->id, "type", j->tpl, "created_at",
                     created, "audience", j->customer[0] ? "customer" : "staff", "attempt",
                     (json_int_t)j->attempts, "data", data);
    if (body && j->customer[0])
        json_object_set_new(body, "customer", json_string(j->customer));
    j->payload = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(body);
    if (!j->payload)
        return CU_E_NOMEM;
    j->plen = strlen(j->payload);
    cu_notify_sign(n->key, n->keylen, ts, j->payload, j->plen, sig);
    j->hdrs = curl_slist_append(j->hdrs, "Content-Type: application/json");
    snprintf(h, sizeof h, "Custodia-Id: %s", j->id);
    j->hdrs = curl_slist_append(j->hdrs, h);
    snprintf(h, sizeof h, "Custodia-Timestamp: %" PRId64, ts);
    j->hdrs = curl_slist_append(j->hdrs, h);
    snprintf(h, sizeof h, "Custodia-Signature: %s", sig);
    j->hdrs = curl_slist_append(j->hdrs, h);
    j->hdrs = curl_slist_append(j->hdrs, "Expect:");
    if (!j->hdrs)
        return CU_E_NOMEM;
    curl_easy_setopt(j->easy, CURLOPT_URL, n->o.webhook_url);
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, n->o.loopback_http ? "https,http" : "https");
    curl_easy_setopt(j->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->payload);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE, (long)j->plen);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "custodia/" CU_VERSION);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, drop_body);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
    if (n->o.webhook_ca[0]) { /* that file's CAs alone, not the system's directory besides */
        curl_easy_setopt(j->easy, CURLOPT_CAINFO, n->o.webhook_ca);
        curl_easy_setopt(j->easy, CURLOPT_CAPATH, NULL);
    }
    return CU_OK;
}

/* header_text(s, out, cap): s as an RFC 2047 encoded word when it is not plain ASCII. */
static void header_text(const char *s, char *out, size_t cap)
{
    bool ascii = true;

    for (const char *p = s; *p; p++)
        ascii = ascii && (unsigned char)*p < 0x80;
    if (ascii) {
        snprintf(out, cap, "%s", s);
        return;
    }
    char b64[1024];
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)s, strlen(s) > 700 ? 700 : strlen(s),
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, cap, "=?UTF-8?B?%s?=", b64);
}

static enum cu_err email_prepare(struct cu_notify *n, struct job *j, int64_t now)
{
    char subject[512], enc[1100], rcpt[300], when[64], why[CU_NOTIFY_WHY_BYTES];
    char *body = cu_malloc(CU_NOTIFY_RENDER_MAX), *b64 = NULL, *data = data_with_time(j);
    size_t b64cap;
    enum cu_err rc;
    struct tm tm;
    time_t t = (time_t)(now / 1000);

    if (!body || !data) {
        cu_free(body);
        free(data);
        fail(j, !!body, "%s", body ? "the notice's data is not a JSON object" : "out of memory");
        return CU_E_INVALID;
    }
    for (const char *p = j->rcpt; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>') {
            cu_free(body);
            free(data);
            fail(j, true, "%s", "the recipient's address is not one an e-mail can carry");
            return CU_E_INVALID;
        }
    rc = cu_notify_render(j->tpl, j->customer[0] ? j->lang : "en", data, subject, sizeof subject,
                          body, CU_NOTIFY_RENDER_MAX, why);
    free(data);
    if (rc != CU_OK) {
        cu_free(body);
        fail(j, true, "%s", why);
        return rc;
    }
    b64cap = sodium_base64_ENCODED_LEN(strlen(body), sodium_base64_VARIANT_ORIGINAL);
    b64 = cu_malloc(b64cap);
    j->payload = cu_malloc(b64cap + (b64cap / 76 + 1) * 2 + 4096);
    if (!b64 || !j->payload) {
        cu_free(body);
        cu_free(b64);
        return CU_E_NOMEM;
    }
    sodium_bin2base64(b64, b64cap, (const unsigned char *)body, strlen(body),
                      sodium_base64_VARIANT_ORIGINAL);
    cu_free(body);
    header_text(subject, enc, sizeof enc);
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    int o =
        snprintf(j->payload, 4096,
                 "Date: %s\r\nFrom: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@custodia>\r\n"
                 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                 "Content-Transfer-Encoding: base64\r\nContent-Language: %s\r\n\r\n",
                 when, n->o.email_from, j->rcpt, enc, j->id,
                 strncmp(j->lang, "zh", 2) == 0 && j->customer[0] ? "zh-Hans" : "en");
    if (o < 0 || o >= 4096) {
        cu_free(b64);
        fail(j, true, "%s", "the message's header is too long");
        return CU_E_TOO_LARGE;
    }
    size_t pos = (size_t)o, len = strlen(b64);
    for (size_t i = 0; i < len; i += 76) {
        size_t k = len - i < 76 ? len - i : 76;
        memcpy(j->payload + pos, b64 + i, k);
        pos += k;
        memcpy(j->payload + pos, "\r\n", 2);
        pos += 2;
    }
    cu_free(b64);
    j->plen = pos;
    snprintf(rcpt, sizeof rcpt, "<%s>", j->rcpt);
    j->rcpts = curl_slist_append(NULL, rcpt);
    if (!j->rcpts)
        return CU_E_NOMEM;
    snprintf(rcpt, sizeof rcpt, "<%s>", n->o.email_from);
    curl_easy_setopt(j->easy, CURLOPT_URL, n->o.email_url);
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(j->easy, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    curl_easy_setopt(j->easy, CURLOPT_MAIL_FROM, rcpt);
    curl_easy_setopt(j->easy, CURLOPT_MAIL_RCPT, j->rcpts);
    curl_easy_setopt(j->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(j->easy, CURLOPT_READFUNCTION, read_payload);
    curl_easy_setopt(j->easy, CURLOPT_READDATA, j);
    curl_easy_setopt(j->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)j->plen);
    sodium_memzero(rcpt, sizeof rcpt);
    if (n->o.email_user[0]) {
        curl_easy_setopt(j->easy, CURLOPT_USERNAME, n->o.email_user);
        curl_easy_setopt(j->easy, CURLOPT_PASSWORD, n->password);
    }
    if (n->o.email_ca[0]) {
        curl_easy_setopt(j->easy, CURLOPT_CAINFO, n->o.email_ca);
        curl_easy_setopt(j->easy, CURLOPT_CAPATH, NULL);
    }
    return CU_OK;
}

/* start(n, multi, j): j's transfer prepared and added to multi; false when it failed. */
static bool start(struct cu_notify *n, CURLM *multi, struct job *j, int64_t now)
{
    enum cu_err rc;

    j->easy = curl_easy_init();
    if (!j->easy) {
        fail(j, false, "%s", "out of memory");
        return false;
    }
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)n->o.timeout_ms);
    curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)n->o.timeout_ms);
    curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->curl_err);
    curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 0L);
    /* no proxy from the environment (http_proxy would see a loopback test's body in clear) */
    curl_easy_setopt(j->easy, CURLOPT_PROXY, "");
    /* one request a connection: [notify] concurrency is what is in flight */
    curl_easy_setopt(j->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    rc = j->channel == CH_EMAIL ? email_prepare(n, j, now) : webhook_prepare(n, j, now);
    if (rc != CU_OK) {
        if (!j->err[0])
            fail(j, false, "cannot prepare the delivery: %s", cu_err_str(rc));
        return false;
    }
    if (curl_multi_add_handle(multi, j->easy) != CURLM_OK) {
        fail(j, false, "%s", "cannot start the delivery");
        return false;
    }
    j->started = true;
    return true;
}

/* deliver(n, multi, r): every job of r that is ready, at most [notify] concurrency at a time
 * (a transfer added beyond it would wait for a connection inside its own timeout); each ends
 * ok or with err. */
static void deliver(struct cu_notify *n, CURLM *multi, struct round *r)
{
    struct cu_db *db = NULL;
    size_t next = 0;
    int running = 0, inflight = 0;

    /* the e-mail addresses, on this thread, from a pool connection */
    for (size_t i = 0; i < r->njobs; i++) {
        if (r->jobs[i].channel != CH_EMAIL || r->jobs[i].err[0])
            continue;
        if (!db && cu_store_acquire(n->st, &db) != CU_OK)
            db = NULL;
        recipient(n, db, &r->jobs[i]);
    }
    cu_store_release(db);
    do {
        CURLMsg *m;
        int left = 0;

        while (next < r->njobs && inflight < (int)n->o.concurrency) {
            struct job *j = &r->jobs[next++];
            if (j->err[0])
                continue; /* failed before it started (no address, erased) */
            if (j->channel == CH_EMAIL && !j->rcpt) {
                fail(j, false, "%s", "out of memory");
                continue;
            }
            if (start(n, multi, j, r->now))
                inflight++;
        }
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            struct job *j = NULL;
            long code = 0;

            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            if (m->data.result != CURLE_OK) {
                fail(j, false, "%s",
                     j->curl_err[0] ? j->curl_err : curl_easy_strerror(m->data.result));
            } else if (j->channel == CH_WEBHOOK && (code < 200 || code > 299)) {
                char c[16];
                snprintf(c, sizeof c, "%ld", code);
                fail(j, false, "the receiver answered HTTP %s", c);
            } else {
                j->ok = true;
            }
            curl_multi_remove_handle(multi, m->easy_handle);
            j->started = false;
            inflight--;
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    } while (running > 0 || (next < r->njobs && inflight < (int)n->o.concurrency));
    for (size_t i = 0; i < r->njobs; i++) {
        if (r->jobs[i].started) {
            curl_multi_remove_handle(multi, r->jobs[i].easy);
            fail(&r->jobs[i], false, "%s", "the delivery did not finish");
        }
        if (r->jobs[i].rcpt) {
            sodium_memzero(r->jobs[i].rcpt, strlen(r->jobs[i].rcpt));
            free(r->jobs[i].rcpt);
            r->jobs[i].rcpt = NULL;
        }
    }
}

/* ---- 4. the outcomes ---- */

/* backoff(n, attempts): the pause after the attempts-th failure: base * 2^(attempts - 1), at
 * most retry_max_ms, less a random part of up to half of it. */
static int64_t backoff(const struct cu_notify *n, int64_t attempts)
{
    uint64_t d = n->o.retry_base_ms;

    for (int64_t i = 1; i < attempts && d < n->o.retry_max_ms; i++)
        d *= 2;
    if (d > n->o.retry_max_ms)
        d = n->o.retry_max_ms;
    return (int64_t)(d - randombytes_uniform((uint32_t)(d / 2 + 1)));
}

static enum cu_err outcome_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    /* only rows still under this round's claim: one whose lease ended and that another
     * worker took is that worker's to record */
    static const char sent[] = "UPDATE notify_outbox SET status = 'sent', sent_at = $1, "
                               "last_error = NULL WHERE id = $2 AND status = 'sending' AND "
                               "next_at = $3";
    static const char again[] = "UPDATE notify_outbox SET status = $1, next_at = $2, "
                                "last_error = $3 WHERE id = $4 AND status = 'sending' AND "
                                "next_at = $5";
    struct round *r = arg;
    struct cu_notify *n = r->n;
    int64_t now = cu_work_context_of(w)->now_ms;
    json_t *ok = json_array(), *retry = json_array(), *dead = json_array();
    enum cu_err rc = ok && retry && dead ? CU_OK : CU_E_NOMEM;

    for (size_t i = 0; rc == CU_OK && i < r->njobs; i++) {
        struct job *j = &r->jobs[i];
        bool is_dead = j->permanent || j->attempts >= (int64_t)n->o.max_attempts;
        if (j->ok) {
            const struct cu_val p[] = {CU_VI(now), CU_VT(j->id), CU_VI(r->lease)};
            rc = cu_db_exec(db, sent, p, CU_NVALS(p));
        } else {
            const struct cu_val p[] = {CU_VT(is_dead ? "dead" : "pending"),
                                       CU_VI(now + (is_dead ? 0 : backoff(n, j->attempts))),
                                       CU_VT(j->err), CU_VT(j->id), CU_VI(r->lease)};
            rc = cu_db_exec(db, again, p, CU_NVALS(p));
        }
        j->recorded = rc == CU_OK && cu_db_changes(db) == 1;
        if (j->recorded)
            json_array_append_new(j->ok ? ok : is_dead ? dead : retry, json_string(j->id));
    }
    if (rc == CU_OK && json_array_size(ok) + json_array_size(retry) + json_array_size(dead) > 0)
        rc = cu_work_audit(
            w, "notify.deliver", "", json_array_size(dead) ? "failure" : "success",
            json_pack("{s:O, s:O, s:O}", "sent", ok, "retrying", retry, "dead", dead));
    json_decref(ok);
    json_decref(retry);
    json_decref(dead);
    return rc;
}

/* account(n, r, now): the round's figures and log lines, once its outcome is durable. */
static void account(struct cu_notify *n, const struct round *r, int64_t now)
{
    for (size_t i = 0; i < r->njobs; i++) {
        const struct job *j = &r->jobs[i];
        int c = j->channel;

        if (!j->recorded)
            continue; /* its row was no longer this round's (erased, or taken after the lease) */
        if (j->ok) {
            int64_t ms = now > j->created_at ? now - j->created_at : 0;
            atomic_fetch_add(&n->sent[c], 1);
            atomic_fetch_add(&n->latency_count, 1);
            atomic_fetch_add(&n->latency_sum_ms, (unsigned long long)ms);
            for (int b = 0; b < CU_NOTIFY_LATENCY_BUCKETS; b++)
                if (ms <= (int64_t)cu_notify_latency_le_ms[b])
                    atomic_fetch_add(&n->latency_le[b], 1);
            continue;
        }
        atomic_fetch_add(&n->failed[c], 1);
        bool is_dead = j->permanent || j->attempts >= (int64_t)n->o.max_attempts;
        if (is_dead)
            atomic_fetch_add(&n->dead[c], 1);
        cu_log(is_dead ? CU_LOG_ERROR : CU_LOG_WARN, is_dead ? "notify.dead" : "notify.retrying",
               CU_LS("id", j->id), CU_LS("channel", c == CH_EMAIL ? "email" : "webhook"),
               CU_LS("template", j->tpl), CU_LI("attempts", (long long)j->attempts),
               CU_LS("error", j->err));
    }
}

/* ---- the thread ---- */

/* count(n, db): the outbox's notices by status, for /metrics. */
static enum cu_err count(struct cu_notify *n, struct cu_db *db)
{
    static const char sql[] = "SELECT status, COUNT(*) FROM notify_outbox WHERE status IN "
                              "('pending', 'sending', 'dead') GROUP BY status";
    struct cu_stmt *st = NULL;
    bool row = false;
    long long c[3] = {0, 0, 0};
    enum cu_err rc = cu_db_query(db, sql, NULL, 0, &st);

    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        size_t len = 0;
        const char *s = cu_stmt_text(st, 0, &len);
        c[strcmp(s, "pending") == 0 ? 0 : strcmp(s, "sending") == 0 ? 1 : 2] = cu_stmt_int(st, 1);
    }
    cu_stmt_done(st);
    if (rc == CU_OK) {
        atomic_store(&n->pending, c[0]);
        atomic_store(&n->sending, c[1]);
        atomic_store(&n->dead_now, c[2]);
    }
    return rc;
}

/* next_due(n, out): when the first notice falls due (INT64_MAX: none); the counts for
 * /metrics once a second. */
static enum cu_err next_due(struct cu_notify *n, int64_t *out)
{
    static const char sql[] = "SELECT next_at FROM notify_outbox WHERE status IN ('pending', "
                              "'sending') AND channel IN ($1, $2) ORDER BY next_at LIMIT 1";
    struct cu_db *db = NULL;
    struct cu_stmt *st = NULL;
    bool row = false;
    int64_t now = cu_clock_now_ms();
    const char *ch[2];
    enum cu_err rc = cu_store_acquire(n->st, &db);

    *out = INT64_MAX;
    channel_values(n, ch);
    const struct cu_val p[] = {CU_VT(ch[0]), CU_VT(ch[1])};
    if (rc == CU_OK)
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        *out = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    if (rc == CU_OK && (now - n->counted_at >= 1000 || now < n->counted_at)) {
        rc = count(n, db);
        n->counted_at = now;
    }
    cu_store_release(db);
    return rc;
}

static enum cu_err run_unit(struct cu_notify *n, cu_work_fn fn, struct round *r)
{
    struct cu_work *w = NULL;
    enum cu_err rc = cu_work_new(NULL, &w);

    if (rc == CU_OK) {
        r->now = cu_work_context_of(w)->now_ms;
        rc = cu_work_add(w, fn, r);
    }
    if (rc == CU_OK)
        rc = cu_committer_run(n->committer, w);
    cu_work_free(w);
    return rc;
}

/* one_round(n, multi, r, full): claims, delivers and records one batch. */
static enum cu_err one_round(struct cu_notify *n, CURLM *multi, struct round *r, bool *full)
{
    enum cu_err rc = run_unit(n, claim_apply, r);

    *full = false;
    if (rc != CU_OK || r->njobs == 0) {
        round_clear(r);
        return rc;
    }
    *full = r->njobs == BATCH_MAX;
    deliver(n, multi, r);
    /* the outcome, retried while the store is busy or away: the deliveries happened */
    for (int i = 0; i < 5; i++) {
        rc = run_unit(n, outcome_apply, r);
        if (rc == CU_OK)
            break;
        struct timespec ts = {0, 200000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == CU_OK)
        account(n, r, cu_clock_now_ms());
    else
        cu_log(CU_LOG_ERROR, "notify.outcome_lost", CU_LI("notices", (long long)r->njobs),
               CU_LS("error", cu_err_str(rc)));
    round_clear(r);
    return rc;
}

static void *worker_main(void *arg)
{
    struct cu_notify *n = arg;
    struct round *r = cu_calloc(1, sizeof *r);
    CURLM *multi = curl_multi_init();
    bool failing = false;

    pthread_setname_np(pthread_self(), "cu-notify");
    if (!r || !multi) {
        cu_log(CU_LOG_ERROR, "notify.worker_failed", CU_LS("error", "out of memory"));
        cu_free(r);
        curl_multi_cleanup(multi);
        return NULL;
    }
    r->n = n;
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n->o.concurrency);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)n->o.concurrency);
    pthread_mutex_lock(&n->mu);
    while (!n->stop) {
        int64_t due = INT64_MAX, now;
        bool full = false;
        enum cu_err rc;

        n->woken = false;
        pthread_mutex_unlock(&n->mu);
        rc = next_due(n, &due);
        now = cu_clock_now_ms();
        if (rc == CU_OK && due <= now)
            rc = one_round(n, multi, r, &full);
        if (rc != CU_OK && !failing)
            cu_log(CU_LOG_WARN, "notify.worker_failing", CU_LS("error", cu_err_str(rc)));
        else if (rc == CU_OK && failing)
            cu_log_msg(CU_LOG_INFO, "notify.worker_resumed");
        failing = rc != CU_OK;
        pthread_mutex_lock(&n->mu);
        if (n->stop || (rc == CU_OK && (full || (due <= now && due != INT64_MAX))))
            continue; /* more may be due at once */
        int64_t wait_ms = IDLE_MS;
        if (rc == CU_OK && due != INT64_MAX && due - now < wait_ms)
            wait_ms = due - now;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!n->stop && !n->woken && pthread_cond_timedwait(&n->cv, &n->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&n->mu);
    curl_multi_cleanup(multi);
    cu_free(r);
    return NULL;
}

enum cu_err cu_notify_start(struct cu_notify *n, struct cu_store *st,
                            struct cu_committer *committer)
{
    if (!n->channels) {
        cu_log(CU_LOG_WARN, "notify.no_channel",
               CU_LS("detail", "neither [notify] webhook_url nor email_url is set: notices are "
                               "not queued or sent"));
        return CU_OK;
    }
    n->st = st;
    n->committer = committer;
    if (pthread_create(&n->thread, NULL, worker_main, n) != 0)
        return CU_E_NOMEM;
    n->started = true;
    cu_log(CU_LOG_INFO, "notify.started", CU_LB("webhook", (n->channels & CU_NOTIFY_WEBHOOK) != 0),
           CU_LB("email", (n->channels & CU_NOTIFY_EMAIL) != 0));
    return CU_OK;
}

void cu_notify_stop(struct cu_notify *n)
{
    if (!n || !n->started)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    n->started = false;
}
