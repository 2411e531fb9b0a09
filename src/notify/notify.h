/*
 * notify.h - notifications (docs/notifications.md): notices to customers and staff, queued in
 * the unit of work that causes them (outbox.h) and delivered after the commit by a worker, on
 * the channels [notify] configures:
 *
 *   webhook  a POST of a JSON body to the company's HTTPS receiver, signed with HMAC-SHA256
 *            over "<timestamp>.<body>" under the key of [notify] webhook_secret_file
 *            (header Custodia-Signature: t=<unix seconds>,v1=<hex>);
 *   email    a plain-text message through the SMTP server of [notify] email_url (STARTTLS
 *            required on smtp://), to the customer's address from the vault or to
 *            [notify] staff_email, rendered from the built-in templates in the customer's
 *            language (English, or Simplified Chinese for a language tag starting with zh).
 *
 * A failed delivery is retried with exponential back-off and jitter; after [notify]
 * max_attempts it is dead, kept and listed, and sent again only on request (replay). A notice
 * carries ids and types, never a secret, a token or personal data beyond the recipient's own
 * address and the greeting of an e-mail.
 */
#ifndef CU_NOTIFY_NOTIFY_H
#define CU_NOTIFY_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "base/err.h"
#include "store/store.h"
#include "store/work.h"

struct cu_vault;

#define CU_NOTIFY_WEBHOOK 1u
#define CU_NOTIFY_EMAIL 2u

#define CU_NOTIFY_WHY_BYTES 256
#define CU_NOTIFY_KEY_MIN 32 /* bytes of the webhook key, at least */
#define CU_NOTIFY_KEY_MAX 64
/* "t=<20 digits>,v1=<64 hex digits>" and its NUL */
#define CU_NOTIFY_SIG_BYTES 96

struct cu_notify;

/* cu_notify_new(cfg, vault, out, why): the notification service of cfg's [notify]: the
 * channels checked (a webhook URL that is https://, or http:// to a loopback address when
 * allow_loopback_http; an smtp:// or smtps:// URL), the webhook key read from its file (hex or
 * raw, CU_NOTIFY_KEY_MIN..CU_NOTIFY_KEY_MAX bytes) and the SMTP password from its own.
 * CU_E_CONFIG with why naming the key and the reason. vault (may be NULL: no e-mail to
 * customers) must outlive the service. Caller frees with cu_notify_free. */
CU_WUR enum cu_err cu_notify_new(const struct cu_config *cfg, struct cu_vault *vault,
                                 struct cu_notify **out, char why[CU_NOTIFY_WHY_BYTES]);

/* cu_notify_free(n): stops the worker if it runs, wipes the keys, frees; NULL does nothing. */
void cu_notify_free(struct cu_notify *n);

/* cu_notify_channels(n): the channels configured (CU_NOTIFY_*), 0 when none or n is NULL. */
unsigned cu_notify_channels(const struct cu_notify *n);

/* cu_notify_queue(n, w, db, customer, template, data): queues the notice (customer "" for
 * staff) on every configured channel, in w's transaction on db, and wakes the worker once w is
 * durable. template must be one of the built-in templates; data is a JSON object's text of
 * string and integer values naming the template's variables (outbox.h). CU_OK and nothing
 * queued when no channel is configured (the start said so in the log), or when this run of w
 * queued the same template to the same customer already (a batch of transfers of one
 * customer: one notice of each kind). On the committer's thread only. */
CU_WUR enum cu_err cu_notify_queue(struct cu_notify *n, struct cu_work *w, struct cu_db *db,
                                   const char *customer, const char *template_name,
                                   const char *data);

/* cu_notify_start(n, st, committer): starts the delivery worker (thread "cu-notify"), which
 * claims due notices through units of work on committer, delivers them, and records each
 * outcome with its audit record. Every node runs one: a claim is a conditional update, so a
 * notice is delivered by one of them. */
CU_WUR enum cu_err cu_notify_start(struct cu_notify *n, struct cu_store *st,
                                   struct cu_committer *committer);

/* cu_notify_wake(n): the worker looks for due notices now (after a replay); NULL: nothing. */
void cu_notify_wake(struct cu_notify *n);

/* cu_notify_stop(n): stops the worker after its deliveries in flight (each bounded by
 * timeout_ms) and their outcomes are recorded. */
void cu_notify_stop(struct cu_notify *n);

/* Figures for /metrics, since the start. */
#define CU_NOTIFY_LATENCY_BUCKETS 8
extern const unsigned cu_notify_latency_le_ms[CU_NOTIFY_LATENCY_BUCKETS];
struct cu_notify_stats {
    uint64_t sent[2];   /* by channel: webhook, email */
    uint64_t failed[2]; /* attempts that failed (and will be retried or are dead) */
    uint64_t dead[2];
    uint64_t latency_count, latency_sum_ms; /* from the notice's commit to its delivery */
    uint64_t latency_le[CU_NOTIFY_LATENCY_BUCKETS];
};
void cu_notify_stats(const struct cu_notify *n, struct cu_notify_stats *out);

struct cu_buf;
/* cu_notify_metrics(n, out): the figures in the Prometheus text format (custodia_notify_*);
 * the outbox's counts are those the worker last saw (at most a second old). */
CU_WUR enum cu_err cu_notify_metrics(const struct cu_notify *n, struct cu_buf *out);

/* cu_notify_sign(key, keylen, ts, body, len, out): the Custodia-Signature header's value,
 * "t=<ts>,v1=<hex of HMAC-SHA256(key, "<ts>.<body>")>". */
void cu_notify_sign(const uint8_t *key, size_t keylen, int64_t ts, const char *body, size_t len,
                    char out[CU_NOTIFY_SIG_BYTES]);

/* Templates. */
#define CU_NOTIFY_RENDER_MAX 4096

/* cu_notify_template_known(name): whether name is a built-in template. */
bool cu_notify_template_known(const char *name);

/* cu_notify_render(name, lang, data, subject, scap, body, bcap, why): the template name in the
 * language for lang ("zh…": Simplified Chinese, anything else: English) with the {{variables}}
 * taken from data (a JSON object's text): CU_E_NOT_FOUND for an unknown template,
 * CU_E_INVALID with why naming a variable data lacks, CU_E_TOO_LARGE past the caps. */
CU_WUR enum cu_err cu_notify_render(const char *name, const char *lang, const char *data,
                                    char *subject, size_t scap, char *body, size_t bcap,
                                    char why[CU_NOTIFY_WHY_BYTES]);

/* cu_notify_templates_check(why): every template in both languages names only the variables
 * its kind declares, and each language has every template: CU_OK, or CU_E_INVALID with why. */
CU_WUR enum cu_err cu_notify_templates_check(char why[CU_NOTIFY_WHY_BYTES]);

#endif
