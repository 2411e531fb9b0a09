/*
 * config.c - configuration: one INI file plus environment overrides.
 *
 * It is over 800 lines because the table of every key, with its default, help and limits, is
 * here: one place describes each setting.
 *
 * The key table below is the single description of every setting: it drives parsing and
 * validation of custodia.conf (through inih), the CUSTODIA_<SECTION>_<KEY> overrides, the
 * commented file cu_config_write_template writes, and cu_config_keys() that the
 * documentation test walks. Each entry's `allowed` text is both the "Allowed:" comment of
 * the template and the "must be ..." of an error, so the two cannot drift apart.
 *
 * inih is fed through our own line reader. The reader counts lines (inih r55 does not pass
 * line numbers to the handler), strips a UTF-8 byte order mark and leading whitespace (so an
 * indented key is a key, not a continuation of the previous value), rejects lines longer than
 * inih's line buffer instead of letting inih split them, and checks section names, so an unknown
 * section is reported even when it holds no keys. Parsing stops at the first error.
 */
#include "base/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "base/buf.h"

#define CONF_FILE "custodia.conf"
#define ECHO_MAX 64 /* longest value quoted back in an error */
#define ECHO_BYTES (ECHO_MAX + 6)
#define WHY_BYTES 256      /* room for the reason part of an error */
#define TEMPLATE_MAX 65536 /* cap on the template text */

enum kind {
    K_ADDR,   /* IP address literal, stored as a string */
    K_STR,    /* non-empty string */
    K_CHOICE, /* one of choices[], stored as a string */
    K_UINT,   /* decimal integer in [min, max], stored by field width */
    K_SIZE,   /* K_UINT plus a k/K or m/M suffix */
    K_BOOL,
    K_LEVEL, /* log level name */
    K_NAME,  /* printable ASCII without spaces or '+' (a signed-note key name) */
};

struct key_def {
    struct cu_config_key_info info;
    const char *allowed; /* completes "must be ..." */
    enum kind kind;
    size_t offset; /* of the field in struct cu_config */
    size_t size;   /* of the field */
    unsigned long long min, max;
    const char *const *choices; /* NULL-terminated, K_CHOICE */
};

#define FIELD(f) offsetof(struct cu_config, f), sizeof(((struct cu_config *)0)->f)
#define PATH_ALLOWED "a non-empty path of at most 1023 bytes"

static const char *const backends[] = {"sqlite", "postgres", NULL};
static const char *const sync_modes[] = {"full", "normal", NULL};
static const char *const algorithms[] = {"xchacha20poly1305", "aes256gcm", NULL};
static const char *const reason_modes[] = {"staff", "all", "none", NULL};

/* The key table: section, key, default, help; allowed values; how to parse and store. */
static const struct key_def keys[] = {
    {{"server", "listen_address", "127.0.0.1",
      "Address the HTTPS server listens on; 0.0.0.0 or :: listens on every interface."},
     "an IPv4 or IPv6 address literal such as 127.0.0.1 or ::1",
     K_ADDR,
     FIELD(server.listen_address),
     0,
     0,
     NULL},
    {{"server", "port", "8443", "TCP port of the HTTPS server."},
     "an integer from 1 to 65535",
     K_UINT,
     FIELD(server.port),
     1,
     65535,
     NULL},
    {{"server", "threads", "0",
      "Worker threads serving requests; a request that waits for its commit holds none, "
      "but refusals and TLS work do, so there are several per core."},
     "0 (eight per CPU core) or an integer from 1 to 256",
     K_UINT,
     FIELD(server.threads),
     0,
     256,
     NULL},
    {{"server", "max_connections", "1024", "Most client connections served at once."},
     "an integer from 1 to 100000",
     K_UINT,
     FIELD(server.max_connections),
     1,
     100000,
     NULL},
    {{"server", "per_ip_connections", "256",
      "Most connections served at once from one client IP address."},
     "0 (no limit) or an integer from 1 to 100000",
     K_UINT,
     FIELD(server.per_ip_connections),
     0,
     100000,
     NULL},
    {{"server", "idle_timeout", "30",
      "Seconds an idle connection is kept open before it is closed."},
     "an integer number of seconds from 1 to 3600",
     K_UINT,
     FIELD(server.idle_timeout),
     1,
     3600,
     NULL},
    {{"server", "header_timeout", "10",
      "Seconds a client has to send a request's line and headers, however steadily it sends "
      "them; the connection is closed without an answer when they run out. A new connection's "
      "TLS handshake counts; on a kept-alive connection the time starts with the next "
      "request's first byte (until then idle_timeout, counted from the previous answer, "
      "applies as a whole)."},
     "an integer number of seconds from 1 to 3600",
     K_UINT,
     FIELD(server.header_timeout),
     1,
     3600,
     NULL},
    {{"server", "body_timeout", "60",
      "Seconds a client has to send a request's body once its headers are in; the connection "
      "is closed without an answer when they run out."},
     "an integer number of seconds from 1 to 86400",
     K_UINT,
     FIELD(server.body_timeout),
     1,
     86400,
     NULL},
    {{"server", "max_header_bytes", "16384",
      "Largest request line plus headers accepted; larger requests are refused."},
     "a size from 1024 to 1048576 bytes, optionally with suffix k or m (KiB, MiB), e.g. 16k",
     K_SIZE,
     FIELD(server.max_header_bytes),
     1024,
     1048576,
     NULL},
    {{"server", "max_body_bytes", "1048576",
      "Largest request body accepted; larger bodies are refused with status 413."},
     "a size from 1024 to 1073741824 bytes, optionally with suffix k or m (KiB, MiB), e.g. 1m",
     K_SIZE,
     FIELD(server.max_body_bytes),
     1024,
     1073741824,
     NULL},
    {{"server", "tls_cert", "tls.crt",
      "TLS certificate chain (PEM), relative to the data directory unless absolute."},
     PATH_ALLOWED,
     K_STR,
     FIELD(server.tls_cert),
     0,
     0,
     NULL},
    {{"server", "tls_key", "tls.key",
      "TLS private key (PEM), relative to the data directory unless absolute."},
     PATH_ALLOWED,
     K_STR,
     FIELD(server.tls_key),
     0,
     0,
     NULL},
    {{"server", "tls_priorities",
      "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
      "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE",
      "GnuTLS priority string choosing the TLS versions and cipher suites offered."},
     "a non-empty GnuTLS priority string of at most 511 bytes",
     K_STR,
     FIELD(server.tls_priorities),
     0,
     0,
     NULL},
    {{"server", "access_log", "true", "Whether to log one line per HTTP request."},
     "true or false (also yes/no, on/off, 1/0)",
     K_BOOL,
     FIELD(server.access_log),
     0,
     0,
     NULL},
    {{"server", "auth_failures_per_minute", "20",
      "Failed authentications one client address may make in a minute; past that it gets 429 "
      "and its failures are summed into one audit record instead of one each (0: no limit)."},
     "an integer from 0 to 100000",
     K_UINT,
     FIELD(server.auth_failures_per_minute),
     0,
     100000,
     NULL},
    {{"store", "backend", "sqlite",
      "Storage backend: sqlite, the embedded database in the data directory (one node), or "
      "postgres, a PostgreSQL database named by url (one node or several)."},
     "sqlite or postgres",
     K_CHOICE,
     FIELD(store.backend),
     0,
     0,
     backends},
    {{"store", "path", "custodia.db",
      "SQLite database file, relative to the data directory unless absolute."},
     PATH_ALLOWED,
     K_STR,
     FIELD(store.path),
     0,
     0,
     NULL},
    {{"store", "url", "env",
      "postgres: the connection string, a postgres:// URL or key=value pairs (libpq's), for "
      "example postgresql://custodia@db.internal/custodia?sslmode=verify-full; env: libpq's "
      "PG* environment variables and service file alone. Keep the password out of it: use a "
      "password file (PGPASSFILE) or a client certificate."},
     "a connection string of at most 1023 bytes, or env",
     K_STR,
     FIELD(store.url),
     0,
     0,
     NULL},
    {{"store", "busy_timeout_ms", "5000",
      "Milliseconds to wait for a locked database before failing with store_busy."},
     "an integer from 0 to 600000",
     K_UINT,
     FIELD(store.busy_timeout_ms),
     0,
     600000,
     NULL},
    {{"store", "connections", "16",
      "Connections to the database the request threads share for reads (the group committer "
      "has one more of its own); a request waits up to busy_timeout_ms for one."},
     "an integer from 1 to 1024",
     K_UINT,
     FIELD(store.connections),
     1,
     1024,
     NULL},
    {{"store", "synchronous", "full",
      "SQLite synchronous mode: full survives power loss; normal is faster but a power loss "
      "may undo the last commits."},
     "full or normal",
     K_CHOICE,
     FIELD(store.synchronous),
     0,
     0,
     sync_modes},
    {{"keys", "root_key_file", "root.key",
      "Root key file holding the key-encryption keys (written by custodia init, mode 0600), "
      "relative to the data directory unless absolute."},
     PATH_ALLOWED,
     K_STR,
     FIELD(keys.root_key_file),
     0,
     0,
     NULL},
    {{"keys", "algorithm", "xchacha20poly1305",
      "AEAD algorithm for new ciphertexts; stored ciphertexts name their own."},
     "xchacha20poly1305 or aes256gcm",
     K_CHOICE,
     FIELD(keys.algorithm),
     0,
     0,
     algorithms},
    {{"audit", "origin", "localhost/custodia/audit",
      "The audit log's name in its signed checkpoints (C2SP tlog-checkpoint origin and key "
      "name); make it unique to this deployment, e.g. bank.example/custodia/audit."},
     "1 to 128 printable ASCII characters without spaces or '+'",
     K_NAME,
     FIELD(audit.origin),
     0,
     0,
     NULL},
    {{"audit", "hash_source_ip", "true",
      "Keep clients' IP addresses as keyed hashes (custodia audit hash --kind ip finds them) "
      "instead "
      "of in the clear, everywhere custodia keeps one: audit records, the access log, sign-in "
      "events and sessions."},
     "true or false (also yes/no, on/off, 1/0)",
     K_BOOL,
     FIELD(audit.hash_source_ip),
     0,
     0,
     NULL},
    {{"audit", "checkpoint_records", "1000",
      "Sign a checkpoint of the audit log at least every this many records."},
     "an integer from 1 to 1000000",
     K_UINT,
     FIELD(audit.checkpoint_records),
     1,
     1000000,
     NULL},
    {{"audit", "checkpoint_seconds", "60",
      "And at least this often, in seconds, while records arrive."},
     "an integer from 1 to 86400",
     K_UINT,
     FIELD(audit.checkpoint_seconds),
     1,
     86400,
     NULL},
    {{"identity", "password_time_cost", "2",
      "Argon2id passes (t) for new password hashes; stored hashes are re-hashed at the next "
      "sign-in when this or the memory cost changes."},
     "an integer from 1 to 10",
     K_UINT,
     FIELD(identity.password_time_cost),
     1,
     10,
     NULL},
    {{"identity", "password_memory_kib", "19456",
      "Argon2id memory (m) per password hash, in KiB (19456 = 19 MiB)."},
     "an integer from 8192 to 4194304",
     K_UINT,
     FIELD(identity.password_memory_kib),
     8192,
     4194304,
     NULL},
    {{"identity", "password_hash_concurrency", "0",
      "Most password hashes computed at once; more sign-ins wait (0: one per core, lowered to fit "
      "half the available memory)."},
     "0 (automatic) or an integer from 1 to 256",
     K_UINT,
     FIELD(identity.password_hash_concurrency),
     0,
     256,
     NULL},
    {{"identity", "password_hash_wait_ms", "5000",
      "Milliseconds a request that hashes a password waits for a hashing thread and slot "
      "before it is answered 503 unavailable."},
     "an integer from 1 to 60000",
     K_UINT,
     FIELD(identity.password_hash_wait_ms),
     1,
     60000,
     NULL},
    {{"identity", "common_passwords", "/usr/share/john/password.lst",
      "List of common passwords (one per line) that are refused, relative to the data directory "
      "unless absolute; the default comes with the Debian package john-data."},
     PATH_ALLOWED,
     K_STR,
     FIELD(identity.common_passwords),
     0,
     0,
     NULL},
    {{"identity", "totp_issuer", "custodia",
      "Issuer name that authenticator apps show next to the account in TOTP enrolment."},
     "1 to 63 printable ASCII characters without spaces or '+'",
     K_NAME,
     FIELD(identity.totp_issuer),
     0,
     0,
     NULL},
    {{"identity", "customer_mfa_required", "false",
      "Whether customers must enrol TOTP before their sessions may do anything else (staff "
      "always must)."},
     "true or false (also yes/no, on/off, 1/0)",
     K_BOOL,
     FIELD(identity.customer_mfa_required),
     0,
     0,
     NULL},
    {{"identity", "session_idle_minutes", "30",
      "Minutes of inactivity after which a session ends."},
     "an integer from 1 to 10080",
     K_UINT,
     FIELD(identity.session_idle_minutes),
     1,
     10080,
     NULL},
    {{"identity", "session_absolute_hours", "12",
      "Hours after sign-in at which a session ends, however active."},
     "an integer from 1 to 8760",
     K_UINT,
     FIELD(identity.session_absolute_hours),
     1,
     8760,
     NULL},
    {{"identity", "step_up_minutes", "5",
      "How recent a sign-in or step-up must be for operations that demand one (changing "
      "credentials)."},
     "an integer from 1 to 1440",
     K_UINT,
     FIELD(identity.step_up_minutes),
     1,
     1440,
     NULL},
    {{"identity", "mfa_challenge_seconds", "300",
      "Seconds a sign-in waits for its second factor after the password was accepted."},
     "an integer from 30 to 3600",
     K_UINT,
     FIELD(identity.mfa_challenge_seconds),
     30,
     3600,
     NULL},
    {{"identity", "lockout_threshold", "5",
      "Consecutive failed sign-ins on one account before it must wait."},
     "an integer from 1 to 1000",
     K_UINT,
     FIELD(identity.lockout_threshold),
     1,
     1000,
     NULL},
    {{"identity", "lockout_base_seconds", "30",
      "The first wait after the threshold; each further failure doubles it."},
     "an integer from 1 to 86400",
     K_UINT,
     FIELD(identity.lockout_base_seconds),
     1,
     86400,
     NULL},
    {{"identity", "lockout_max_seconds", "900", "The longest wait; lockout is never permanent."},
     "an integer from 1 to 604800",
     K_UINT,
     FIELD(identity.lockout_max_seconds),
     1,
     604800,
     NULL},
    {{"identity", "lockout_reset_minutes", "60",
      "Minutes without a failure after which an account's failures are forgotten."},
     "an integer from 1 to 525600",
     K_UINT,
     FIELD(identity.lockout_reset_minutes),
     1,
     525600,
     NULL},
    {{"access", "policy", "access.policy",
      "The access policy (docs/access.md): roles, grants, conditions and forbids; relative to "
      "the data directory unless absolute. Followed while running; made with the built-in "
      "roles alone when missing."},
     PATH_ALLOWED,
     K_STR,
     FIELD(access.policy),
     0,
     0,
     NULL},
    {{"access", "dry_run_policy", "none",
      "An access policy to run in dry run beside the one in force (docs/access.md): every "
      "route's decision is made by both, and each difference is logged "
      "(access.dry_run_difference) and counted (custodia_access_dry_run_differences_total); it "
      "changes nothing. Relative to the data directory unless absolute; followed while "
      "running. none: no dry run."},
     PATH_ALLOWED ", or none",
     K_STR,
     FIELD(access.dry_run_policy),
     0,
     0,
     NULL},
    {{"access", "unmask_reason", "staff",
      "Who must give a reason (the Custodia-Reason header) to see customers' personal fields "
      "in full: staff (staff members' sessions and their API keys), all (the installation's "
      "keys too) or none. Without one the "
      "answer is masked; the audit record keeps the reason."},
     "staff, all or none",
     K_CHOICE,
     FIELD(access.unmask_reason),
     0,
     0,
     reason_modes},
    {{"access", "unmask_limit_per_hour", "200",
      "Customers a staff member may see unmasked in any hour; past it, answers are masked and "
      "an alert is raised (log line access.unmask_limit, audit record, metric). 0: no limit."},
     "an integer from 0 to 1000000",
     K_UINT,
     FIELD(access.unmask_limit_per_hour),
     0,
     1000000,
     NULL},
    {{"limits", "ip_per_minute", "60000",
      "Requests one client (an IPv4 address, or an IPv6 /64) may make in a minute, all routes "
      "together; past that it gets "
      "429 with Retry-After (0: no limit)."},
     "an integer from 0 to 10000000",
     K_UINT,
     FIELD(limits.ip_per_minute),
     0,
     10000000,
     NULL},
    {{"limits", "ip_burst", "2000",
      "Requests one client address may make at once before ip_per_minute paces it."},
     "an integer from 1 to 1000000",
     K_UINT,
     FIELD(limits.ip_burst),
     1,
     1000000,
     NULL},
    {{"limits", "principal_per_minute", "60000",
      "Requests one API key, staff member or customer may make in a minute, from any address (0: "
      "no limit)."},
     "an integer from 0 to 10000000",
     K_UINT,
     FIELD(limits.principal_per_minute),
     0,
     10000000,
     NULL},
    {{"limits", "principal_burst", "2000",
      "Requests one principal may make at once before principal_per_minute paces it."},
     "an integer from 1 to 1000000",
     K_UINT,
     FIELD(limits.principal_burst),
     1,
     1000000,
     NULL},
    {{"limits", "writes_per_minute", "30000",
      "Of those, requests that change something (POST, PUT, PATCH, DELETE) one principal may make "
      "in a minute (0: no limit)."},
     "an integer from 0 to 10000000",
     K_UINT,
     FIELD(limits.writes_per_minute),
     0,
     10000000,
     NULL},
    {{"limits", "writes_burst", "1000",
      "Changing requests one principal may make at once before writes_per_minute paces it."},
     "an integer from 1 to 1000000",
     K_UINT,
     FIELD(limits.writes_burst),
     1,
     1000000,
     NULL},
    {{"limits", "signin_per_minute", "10",
      "Sign-in attempts (POST /v1/auth/login) for one login name in a minute, from any address, "
      "whatever their outcome (0: no limit)."},
     "an integer from 0 to 100000",
     K_UINT,
     FIELD(limits.signin_per_minute),
     0,
     100000,
     NULL},
    {{"limits", "signin_burst", "10",
      "Sign-in attempts for one login name at once before signin_per_minute paces them."},
     "an integer from 1 to 100000",
     K_UINT,
     FIELD(limits.signin_burst),
     1,
     100000,
     NULL},
    {{"ledger", "step_up_above", "100000",
      "A customer's own transfer of more than this many minor units (of any currency) needs a "
      "session signed in with a second factor (aal2): below it the session's sign-in is "
      "enough. 0: every transfer of a customer needs aal2."},
     "an integer from 0 to 1000000000000000",
     K_UINT,
     FIELD(ledger.step_up_above),
     0,
     1000000000000000ULL,
     NULL},
    {{"ledger", "idempotency_hours", "24",
      "How long the Idempotency-Key of a movement and its answer are kept: a retry within it "
      "gets the first answer; after it the key may be used again."},
     "an integer from 1 to 720",
     K_UINT,
     FIELD(ledger.idempotency_hours),
     1,
     720,
     NULL},
    {{"monitor", "rules", "builtin",
      "The rule set that decides about events (docs/rules.md): a rule file, relative to the "
      "data directory unless absolute, or builtin for the default pack built into custodia. "
      "Checked when the server starts; custodia rules check FILE checks one beforehand."},
     PATH_ALLOWED ", or builtin",
     K_STR,
     FIELD(monitor.rules),
     0,
     0,
     NULL},
    {{"monitor", "shadow_rules", "none",
      "A rule file run in shadow beside the rule set in force: its decisions are stored with "
      "each decision and the differences counted (custodia_monitor_shadow_differences_total); "
      "it changes nothing. none: no shadow set."},
     PATH_ALLOWED ", or none",
     K_STR,
     FIELD(monitor.shadow_rules),
     0,
     0,
     NULL},
    {{"monitor", "event_types", "none",
      "Event types of the company's own, besides the built-in ones, separated by spaces (each "
      "[a-z][a-z0-9_]*, at most 32 bytes; 53 at most, in at most 1023 bytes). none: the built-in "
      "types alone."},
     "names separated by spaces, or none",
     K_STR,
     FIELD(monitor.event_types),
     0,
     0,
     NULL},
    {{"monitor", "future_seconds", "300",
      "How far ahead of the server's clock the time of an event posted to POST /v1/events may "
      "be, for clocks that run a little fast."},
     "an integer from 0 to 86400",
     K_UINT,
     FIELD(monitor.future_seconds),
     0,
     86400,
     NULL},
    {{"monitor", "past_days", "30",
      "How far in the past the time of a posted event may be. The longest window is 30 days: an "
      "older event would count in none; replay old events with custodia rules test."},
     "an integer from 1 to 30",
     K_UINT,
     FIELD(monitor.past_days),
     1,
     30,
     NULL},
    {{"notify", "webhook_url", "none",
      "Where notifications are posted, signed (docs/notifications.md): the company's HTTPS "
      "receiver, for example https://app.example.com/custodia/webhook. none: no webhooks."},
     "an https:// URL of at most 511 bytes, or none",
     K_STR,
     FIELD(notify.webhook_url),
     0,
     0,
     NULL},
    {{"notify", "webhook_secret_file", "webhook.secret",
      "The file holding the key that signs every webhook (HMAC-SHA256), relative to the data "
      "directory unless absolute; custodia init writes one. The receiver checks signatures "
      "with the same key."},
     PATH_ALLOWED,
     K_STR,
     FIELD(notify.webhook_secret_file),
     0,
     0,
     NULL},
    {{"notify", "webhook_ca_file", "system",
      "The CA certificates the receiver's certificate is checked against (PEM), or system for "
      "the system's store."},
     PATH_ALLOWED ", or system",
     K_STR,
     FIELD(notify.webhook_ca_file),
     0,
     0,
     NULL},
    {{"notify", "email_url", "none",
      "The SMTP server customers' e-mails go through: smtp://host:587 (STARTTLS, required) or "
      "smtps://host:465. none: no e-mail."},
     "an smtp:// or smtps:// URL of at most 511 bytes, or none",
     K_STR,
     FIELD(notify.email_url),
     0,
     0,
     NULL},
    {{"notify", "email_from", "security@example.com", "The sender's address of every e-mail."},
     "an e-mail address of at most 255 bytes",
     K_STR,
     FIELD(notify.email_from),
     0,
     0,
     NULL},
    {{"notify", "email_user", "none",
      "The user name custodia signs in to the SMTP server with, or none to send without "
      "signing in."},
     "a user name of at most 127 bytes, or none",
     K_STR,
     FIELD(notify.email_user),
     0,
     0,
     NULL},
    {{"notify", "email_password_file", "none",
      "The file holding that user's password (mode 0600), relative to the data directory "
      "unless absolute, or none."},
     PATH_ALLOWED ", or none",
     K_STR,
     FIELD(notify.email_password_file),
     0,
     0,
     NULL},
    {{"notify", "email_ca_file", "system",
      "The CA certificates the SMTP server's certificate is checked against (PEM), or system."},
     PATH_ALLOWED ", or system",
     K_STR,
     FIELD(notify.email_ca_file),
     0,
     0,
     NULL},
    {{"notify", "staff_email", "none",
      "Where staff notifications (high-severity alerts and cases) are e-mailed, besides the "
      "webhook: the on-call team's address, or none."},
     "an e-mail address of at most 255 bytes, or none",
     K_STR,
     FIELD(notify.staff_email),
     0,
     0,
     NULL},
    {{"notify", "allow_loopback_http", "false",
      "Allow webhook_url to be a plain http:// URL to 127.0.0.1 or ::1 (for tests; never on "
      "the network)."},
     "true or false (also yes/no, on/off, 1/0)",
     K_BOOL,
     FIELD(notify.allow_loopback_http),
     0,
     0,
     NULL},
    {{"notify", "timeout_ms", "5000",
      "How long one delivery may take, connection included, before it counts as failed."},
     "an integer from 100 to 60000",
     K_UINT,
     FIELD(notify.timeout_ms),
     100,
     60000,
     NULL},
    {{"notify", "max_attempts", "10",
      "Attempts of one notification before it is dead (kept, listed, and sent again only by "
      "custodia notify replay)."},
     "an integer from 1 to 100",
     K_UINT,
     FIELD(notify.max_attempts),
     1,
     100,
     NULL},
    {{"notify", "retry_base_ms", "1000",
      "The pause before the first retry; each later one doubles it, up to retry_max_ms, with a "
      "random part (jitter) so that retries do not arrive together."},
     "an integer from 10 to 3600000",
     K_UINT,
     FIELD(notify.retry_base_ms),
     10,
     3600000,
     NULL},
    {{"notify", "retry_max_ms", "3600000", "The longest pause between two attempts."},
     "an integer from 10 to 86400000",
     K_UINT,
     FIELD(notify.retry_max_ms),
     10,
     86400000,
     NULL},
    {{"notify", "keep_days", "30",
      "How long a sent notice stays in the outbox (listed, replayable) before it is deleted. "
      "Dead ones stay until they are replayed."},
     "an integer from 1 to 3650",
     K_UINT,
     FIELD(notify.keep_days),
     1,
     3650,
     NULL},
    {{"notify", "concurrency", "16", "Deliveries in flight at once."},
     "an integer from 1 to 256",
     K_UINT,
     FIELD(notify.concurrency),
     1,
     256,
     NULL},
    {{"cases", "group_minutes", "60",
      "An alert joins the open case that shares one of its observables (group_by) and saw an "
      "alert within this many minutes; otherwise it opens a case of its own. 0: every alert "
      "opens its own case."},
     "an integer from 0 to 10080",
     K_UINT,
     FIELD(cases.group_minutes),
     0,
     10080,
     NULL},
    {{"cases", "group_by", "customer ip device payee",
      "What an alert joins a case by, separated by spaces: the customer, the address, the device, "
      "the payee. none: by nothing (every alert opens its own case)."},
     "customer, ip, device and payee separated by spaces, or none",
     K_STR,
     FIELD(cases.group_by),
     0,
     0,
     NULL},
    {{"cases", "playbooks", "none",
      "The playbook file (docs/playbooks.md), relative to the data directory unless absolute; "
      "checked when the server starts (custodia playbooks check FILE beforehand). none: no "
      "playbooks."},
     PATH_ALLOWED ", or none",
     K_STR,
     FIELD(cases.playbooks),
     0,
     0,
     NULL},
    {{"cases", "self_unfreeze_minutes", "60",
      "How long a customer's own unfreeze (POST /v1/me/unfreeze, after a step-up) waits before "
      "their accounts are unfrozen: a thief with the phone cannot undo the freeze at once."},
     "an integer from 0 to 10080",
     K_UINT,
     FIELD(cases.self_unfreeze_minutes),
     0,
     10080,
     NULL},
    {{"log", "level", "info", "Lowest level of log lines written to stderr."},
     "debug, info, warn, error or off",
     K_LEVEL,
     FIELD(log.level),
     0,
     0,
     NULL},
};

#define KEY_COUNT (sizeof keys / sizeof keys[0])

/* The keys whose values are paths resolved against data_dir. */
static const size_t path_offsets[] = {offsetof(struct cu_config, server.tls_cert),
                                      offsetof(struct cu_config, server.tls_key),
                                      offsetof(struct cu_config, store.path),
                                      offsetof(struct cu_config, keys.root_key_file),
                                      offsetof(struct cu_config, identity.common_passwords),
                                      offsetof(struct cu_config, notify.webhook_secret_file),
                                      offsetof(struct cu_config, notify.webhook_ca_file),
                                      offsetof(struct cu_config, notify.email_password_file),
                                      offsetof(struct cu_config, notify.email_ca_file)};

/* set_err(err, fmt, ...): formats an error message into err (CU_CONFIG_ERR_BYTES). */
__attribute__((format(printf, 2, 3))) static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, CU_CONFIG_ERR_BYTES, fmt, ap);
    va_end(ap);
}

/* echo(v, quote, out): v made safe for an error message: at most ECHO_MAX bytes (then
 * "..."), bytes that are not printable ASCII shown as '?', in double quotes if quote. */
static void echo(const char *v, bool quote, char out[ECHO_BYTES])
{
    size_t i = 0, n;

    if (quote) {
        out[i++] = '"';
    }
    for (n = 0; n < ECHO_MAX && v[n] != '\0'; n++) {
        unsigned char c = (unsigned char)v[n];

        out[i++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
    }
    if (v[n] != '\0') {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    if (quote) {
        out[i++] = '"';
    }
    out[i] = '\0';
}

/* find_key(section, key): the table entry, or NULL. */
static const struct key_def *find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (strcmp(keys[i].info.section, section) == 0 && strcmp(keys[i].info.key, key) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* known_section(name, n): whether some key lives in the section named by n bytes at name. */
static bool known_section(const char *name, size_t n)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (strlen(keys[i].info.section) == n && memcmp(keys[i].info.section, name, n) == 0) {
            return true;
        }
    }
    return false;
}

/* parse_uint(v, suffix, out): a plain decimal integer (digits only), with an optional
 * k/K or m/M multiplier when suffix is set. */
static bool parse_uint(const char *v, bool suffix, unsigned long long *out)
{
    size_t n = strlen(v);
    unsigned long long mult = 1, x;
    char digits[32];

    if (suffix && n > 0 && strchr("kKmM", v[n - 1]) != NULL) {
        mult = tolower((unsigned char)v[n - 1]) == 'k' ? 1024ULL : 1024ULL * 1024ULL;
        n--;
    }
    if (n == 0 || strspn(v, "0123456789") < n) {
        return false;
    }
    while (n > 1 && *v == '0') { /* leading zeros do not count against the digit buffer */
        v++;
        n--;
    }
    if (n >= sizeof digits) {
        return false;
    }
    memcpy(digits, v, n);
    digits[n] = '\0';
    errno = 0;
    x = strtoull(digits, NULL, 10);
    if (errno == ERANGE || __builtin_mul_overflow(x, mult, out)) {
        return false;
    }
    return true;
}

/* store_uint(field, size, x): writes x into an integer field of the given width. */
static void store_uint(void *field, size_t size, unsigned long long x)
{
    if (size == sizeof(uint16_t)) {
        uint16_t v = (uint16_t)x;
        memcpy(field, &v, sizeof v);
    } else if (size == sizeof(unsigned)) {
        unsigned v = (unsigned)x;
        memcpy(field, &v, sizeof v);
    } else {
        CU_ASSERT(size == sizeof(size_t));
        size_t v = (size_t)x;
        memcpy(field, &v, sizeof v);
    }
}

/* parse_bool(v, out): true/yes/on/1 or false/no/off/0, any case. */
static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

/* valid_string(k, v): whether v is acceptable text for a string-stored key (length
 * already checked). */
static bool valid_string(const struct key_def *k, const char *v)
{
    unsigned char addr[sizeof(struct in6_addr)];

    switch (k->kind) {
    case K_ADDR:
        return inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1;
    case K_CHOICE:
        for (size_t i = 0; k->choices[i] != NULL; i++) {
            if (strcmp(v, k->choices[i]) == 0) {
                return true;
            }
        }
        return false;
    case K_NAME:
        for (const char *p = v; *p; p++) {
            if (*p <= ' ' || *p == '+' || *p >= 0x7f)
                return false;
        }
        return *v != '\0';
    default:
        return *v != '\0';
    }
}

/* set_string(cfg, k, v, why): validates and stores a string-stored key. */
static bool set_string(struct cu_config *cfg, const struct key_def *k, const char *v, char *why)
{
    char shown[ECHO_BYTES];
    size_t len = strlen(v);

    /* A choice longer than its field is simply not one of the choices: say which are. */
    if (k->kind != K_CHOICE && len >= k->size) {
        snprintf(why, WHY_BYTES, "longer than %zu bytes", k->size - 1);
        return false;
    }
    if (!valid_string(k, v)) {
        echo(v, true, shown);
        snprintf(why, WHY_BYTES, "must be %s, got %s", k->allowed, shown);
        return false;
    }
    memcpy((char *)cfg + k->offset, v, len + 1);
    return true;
}

/* set_value(cfg, k, v, why): parses v for key k into cfg; false with the reason in why
 * (WHY_BYTES) when v is not acceptable. */
static bool set_value(struct cu_config *cfg, const struct key_def *k, const char *v, char *why)
{
    char shown[ECHO_BYTES];
    void *field = (char *)cfg + k->offset;
    unsigned long long x;
    enum cu_log_level level;
    bool b;

    switch (k->kind) {
    case K_UINT:
    case K_SIZE:
        if (parse_uint(v, k->kind == K_SIZE, &x) && x >= k->min && x <= k->max) {
            store_uint(field, k->size, x);
            return true;
        }
        break;
    case K_BOOL:
        if (parse_bool(v, &b)) {
            memcpy(field, &b, sizeof b);
            return true;
        }
        break;
    case K_LEVEL:
        if (cu_log_parse_level(v, &level)) {
            memcpy(field, &level, sizeof level);
            return true;
        }
        break;
    default:
        return set_string(cfg, k, v, why);
    }
    echo(v, true, shown);
    snprintf(why, WHY_BYTES, "must be %s, got %s", k->allowed, shown);
    return false;
}

/* cu_config_defaults(cfg, data_dir): fills cfg with the built-in defaults. A data_dir that
 * does not fit is cut short here; cu_config_load refuses it. */
void cu_config_defaults(struct cu_config *cfg, const char *data_dir)
{
    char why[WHY_BYTES];

    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data_dir ? data_dir : "");
    for (size_t i = 0; i < KEY_COUNT; i++) {
        CU_ASSERT(set_value(cfg, &keys[i], keys[i].info.default_value, why));
    }
}

/* State of one INI file parse. */
struct parse_ctx {
    struct cu_config *cfg;
    const char *path;
    FILE *f;
    char *err;
    int max_line; /* longest line inih can take */
    int lineno;
    int err_line; /* line of the first error found by the reader or handler; 0 if none */
    int seen_line[KEY_COUNT];
};

/* ctx_fail(ctx, fmt, ...): records the first error as "path:line: message". */
__attribute__((format(printf, 2, 3))) static void ctx_fail(struct parse_ctx *ctx, const char *fmt,
                                                           ...)
{
    char msg[CU_CONFIG_ERR_BYTES];
    va_list ap;

    if (ctx->err_line != 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->err_line = ctx->lineno;
    set_err(ctx->err, "%s:%d: %s", ctx->path, ctx->lineno, msg);
}

/* check_line(ctx, line, too_long, has_nul): the reader's own checks on one stripped line. */
static void check_line(struct parse_ctx *ctx, const char *line, bool too_long, bool has_nul)
{
    char shown[ECHO_BYTES];
    const char *end;

    if (*line == ';' || *line == '#') {
        return; /* comments may be any length */
    }
    if (has_nul) {
        ctx_fail(ctx, "NUL byte in line");
    } else if (too_long) {
        ctx_fail(ctx, "line longer than %d bytes; set long values through the environment",
                 ctx->max_line);
    } else if (*line == '[' && (end = strchr(line, ']')) != NULL &&
               !known_section(line + 1, (size_t)(end - line - 1))) {
        char name[ECHO_MAX + 2];

        snprintf(name, sizeof name, "%.*s", (int)(end - line - 1), line + 1);
        echo(name, false, shown);
        ctx_fail(ctx, "unknown section [%s]", shown);
    }
}

/* read_line(str, num, stream): inih's reader. Reads one line without its newline and with
 * leading whitespace removed; a line longer than num-1 bytes is cut and reported. Returns
 * NULL at end of file or once an error is recorded, which ends the parse. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse_ctx *ctx = stream;
    size_t len = 0, skip;
    bool any = false, too_long = false, has_nul = false;
    int c;

    if (ctx->err_line != 0) {
        return NULL;
    }
    while ((c = getc(ctx->f)) != EOF && c != '\n') {
        any = true;
        has_nul |= c == '\0';
        if (len + 1 < (size_t)num) {
            str[len++] = (char)c;
        } else {
            too_long = true;
        }
    }
    if (!any && c == EOF) {
        return NULL;
    }
    str[len] = '\0';
    ctx->lineno++;
    ctx->max_line = num - 1;
    skip = ctx->lineno == 1 && strncmp(str, "\xef\xbb\xbf", 3) == 0 ? 3 : 0; /* UTF-8 BOM */
    skip += strspn(str + skip, " \t\r\f\v");
    memmove(str, str + skip, len - skip + 1);
    check_line(ctx, str, too_long, has_nul);
    if (ctx->err_line != 0) {
        str[0] = '\0';
    }
    return str;
}

/* on_value(user, section, name, value): inih's handler; applies one key. */
static int on_value(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    const struct key_def *k = find_key(section, name);
    char why[WHY_BYTES], shown[ECHO_BYTES];
    size_t i;

    echo(name, false, shown);
    if (*section == '\0') {
        ctx_fail(ctx, "key %s is outside any [section]", shown);
        return 0;
    }
    if (k == NULL) {
        ctx_fail(ctx, "unknown key [%s] %s", section, shown);
        return 0;
    }
    i = (size_t)(k - keys);
    if (ctx->seen_line[i] != 0) {
        ctx_fail(ctx, "[%s] %s: set twice (first on line %d)", section, name, ctx->seen_line[i]);
        return 0;
    }
    ctx->seen_line[i] = ctx->lineno;
    if (!set_value(ctx->cfg, k, value, why)) {
        ctx_fail(ctx, "[%s] %s: %s", section, name, why);
        return 0;
    }
    return 1;
}

/* cu_config_load_file(cfg, path, err): applies one INI file over cfg. CU_E_IO when it
 * cannot be read, CU_E_CONFIG for anything wrong inside it. */
enum cu_err cu_config_load_file(struct cu_config *cfg, const char *path,
                                char err[CU_CONFIG_ERR_BYTES])
{
    struct parse_ctx ctx = {.cfg = cfg, .path = path, .err = err};
    enum cu_err rc = CU_OK;
    int line;

    ctx.f = fopen(path, "re");
    if (ctx.f == NULL) {
        set_err(err, "cannot open %s: %s", path, strerror(errno));
        rc = CU_E_IO;
        goto out;
    }
    line = ini_parse_stream(read_line, &ctx, on_value, &ctx);
    if (ferror(ctx.f)) {
        set_err(err, "cannot read %s: %s", path, strerror(errno));
        rc = CU_E_IO;
    } else if (line > 0 && (ctx.err_line == 0 || line < ctx.err_line)) {
        set_err(err, "%s:%d: syntax error: expected [section], key = value or a comment", path,
                line);
        rc = CU_E_CONFIG;
    } else if (ctx.err_line != 0) {
        rc = CU_E_CONFIG; /* err already written by ctx_fail */
    } else if (line != 0) {
        set_err(err, "%s: inih failed (%d)", path, line);
        rc = CU_E_INTERNAL;
    }
    fclose(ctx.f);
out:
    return rc;
}

/* env_name(k, out, outlen): CUSTODIA_<SECTION>_<KEY> for k. */
static void env_name(const struct key_def *k, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "CUSTODIA_%s_%s", k->info.section, k->info.key);

    CU_ASSERT(n > 0 && (size_t)n < outlen);
    for (char *p = out; *p != '\0'; p++) {
        *p = (char)toupper((unsigned char)*p);
    }
}

/* cu_config_apply_env(cfg, err): applies CUSTODIA_<SECTION>_<KEY> variables over cfg. */
enum cu_err cu_config_apply_env(struct cu_config *cfg, char err[CU_CONFIG_ERR_BYTES])
{
    enum cu_err rc = CU_OK;
    char name[128], why[WHY_BYTES];

    for (size_t i = 0; i < KEY_COUNT; i++) {
        const char *v;

        env_name(&keys[i], name, sizeof name);
        v = getenv(name);
        if (v != NULL && !set_value(cfg, &keys[i], v, why)) {
            set_err(err, "%s: [%s] %s: %s", name, keys[i].info.section, keys[i].info.key, why);
            rc = CU_E_CONFIG;
            goto out;
        }
    }
out:
    return rc;
}

/* group_by_ok(s): "none", or some of customer ip device payee, each once. */
static bool group_by_ok(const char *s)
{
    static const char *const words[] = {"customer", "ip", "device", "payee"};
    unsigned seen = 0;

    if (strcmp(s, "none") == 0)
        return true;
    while (*s) {
        size_t n = strcspn(s, " "), i;
        if (n == 0) {
            s++;
            continue;
        }
        for (i = 0; i < 4; i++)
            if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
                break;
        if (i == 4 || (seen & (1u << i)))
            return false;
        seen |= 1u << i;
        s += n;
    }
    return seen != 0;
}

/* validate(cfg, err): rules across keys: every path resolved against data_dir must fit. */
static enum cu_err validate(const struct cu_config *cfg, char *err)
{
    enum cu_err rc = CU_OK;
    char path[CU_CONFIG_PATH_BYTES];

    for (size_t i = 0; i < sizeof path_offsets / sizeof path_offsets[0]; i++) {
        const char *rel = (const char *)cfg + path_offsets[i];

        if (cu_config_path(cfg, rel, path, sizeof path) != CU_OK) {
            const struct key_def *k = keys;

            while (k->offset != path_offsets[i]) {
                k++;
            }
            set_err(err, "[%s] %s: joined to the data directory, the path is longer than %d bytes",
                    k->info.section, k->info.key, CU_CONFIG_PATH_BYTES - 1);
            rc = CU_E_CONFIG;
            break;
        }
    }
    if (rc == CU_OK && (uint64_t)cfg->identity.lockout_max_seconds >
                           (uint64_t)cfg->identity.lockout_reset_minutes * 60) {
        set_err(err,
                "[identity] lockout_max_seconds: must not be longer than "
                "[identity] lockout_reset_minutes (%u minutes), or a lockout would be "
                "forgotten before it ends",
                cfg->identity.lockout_reset_minutes);
        rc = CU_E_CONFIG;
    }
    if (rc == CU_OK && cfg->notify.retry_base_ms > cfg->notify.retry_max_ms) {
        set_err(err, "[notify] retry_base_ms: must not be larger than [notify] retry_max_ms (%u)",
                cfg->notify.retry_max_ms);
        rc = CU_E_CONFIG;
    }
    if (rc == CU_OK && !group_by_ok(cfg->cases.group_by)) {
        set_err(err, "[cases] group_by: must be customer, ip, device and payee separated by "
                     "spaces (each once), or none");
        rc = CU_E_CONFIG;
    }
    if (rc == CU_OK && cfg->identity.lockout_base_seconds > cfg->identity.lockout_max_seconds) {
        set_err(err,
                "[identity] lockout_base_seconds: must not be larger than "
                "[identity] lockout_max_seconds (%u)",
                cfg->identity.lockout_max_seconds);
        rc = CU_E_CONFIG;
    }
    return rc;
}

/* cu_config_load(cfg, data_dir, err): defaults, then data_dir/custodia.conf (which must
 * exist), then the environment, then validation. */
enum cu_err cu_config_load(struct cu_config *cfg, const char *data_dir,
                           char err[CU_CONFIG_ERR_BYTES])
{
    enum cu_err rc = CU_E_CONFIG;
    char path[CU_CONFIG_PATH_BYTES];

    if (data_dir == NULL || *data_dir == '\0') {
        set_err(err, "the data directory must not be empty");
        goto out;
    }
    if (strlen(data_dir) >= sizeof cfg->data_dir) {
        set_err(err, "the data directory is longer than %d bytes", CU_CONFIG_PATH_BYTES - 1);
        goto out;
    }
    cu_config_defaults(cfg, data_dir);
    if (cu_config_path(cfg, CONF_FILE, path, sizeof path) != CU_OK) {
        set_err(err, "the data directory is too long for %s to fit in %d bytes", CONF_FILE,
                CU_CONFIG_PATH_BYTES - 1);
        goto out;
    }
    rc = cu_config_load_file(cfg, path, err);
    if (rc == CU_OK) {
        rc = cu_config_apply_env(cfg, err);
    }
    if (rc == CU_OK) {
        rc = validate(cfg, err);
    }
out:
    return rc;
}

/* cu_config_path(cfg, rel, out, outlen): rel itself if absolute, else data_dir/rel.
 * CU_E_TOO_LARGE if it does not fit. */
enum cu_err cu_config_path(const struct cu_config *cfg, const char *rel, char *out, size_t outlen)
{
    size_t dlen = strlen(cfg->data_dir);
    const char *sep = dlen > 0 && cfg->data_dir[dlen - 1] != '/' ? "/" : "";
    int n;

    if (rel[0] == '/') {
        n = snprintf(out, outlen, "%s", rel);
    } else {
        n = snprintf(out, outlen, "%s%s%s", cfg->data_dir, sep, rel);
    }
    return n >= 0 && (size_t)n < outlen ? CU_OK : CU_E_TOO_LARGE;
}

/* template_text(b): the commented configuration file with every key at its default. */
static enum cu_err template_text(struct cu_buf *b, const struct cu_config_set *sets, size_t nsets)
{
    enum cu_err rc = cu_buf_append_str(
        b, "# custodia.conf - configuration of custodia, written by `custodia init`.\n"
           "#\n"
           "# Every key is listed with its default value. Relative paths are resolved against\n"
           "# the data directory (the directory holding this file). Each key can also be set\n"
           "# with an environment variable CUSTODIA_<SECTION>_<KEY>, which wins over this\n"
           "# file. Lines starting with # or ; are comments. See docs/configuration.md.\n");
    char name[128];

    for (size_t i = 0; i < KEY_COUNT && rc == CU_OK; i++) {
        const struct key_def *k = &keys[i];

        if (i == 0 || strcmp(k->info.section, keys[i - 1].info.section) != 0) {
            rc = cu_buf_printf(b, "\n[%s]\n", k->info.section);
        }
        const char *value = k->info.default_value;

        for (size_t j = 0; j < nsets; j++) {
            if (strcmp(sets[j].section, k->info.section) == 0 &&
                strcmp(sets[j].key, k->info.key) == 0)
                value = sets[j].value;
        }
        env_name(k, name, sizeof name);
        if (rc == CU_OK) {
            rc = cu_buf_printf(b, "\n# %s\n# Allowed: %s.\n# Environment: %s\n%s = %s\n",
                               k->info.help, k->allowed, name, k->info.key, value);
        }
    }
    return rc;
}

/* write_all(fd, p, n): writes n bytes, retrying short writes and EINTR. */
static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* cu_config_write_template(path): writes a custodia.conf holding every key with its comment
 * and default. CU_E_EXISTS if path exists; mode 0600. A failed write removes the file. */
enum cu_err cu_config_write_template(const char *path)
{
    return cu_config_write_template_with(path, NULL, 0);
}

/* cu_config_write_template_with(path, sets, n): the template with the values of sets in place
 * of the defaults of their keys. */
enum cu_err cu_config_write_template_with(const char *path, const struct cu_config_set *sets,
                                          size_t nsets)
{
    struct cu_buf b;
    enum cu_err rc;
    int fd = -1;

    for (size_t j = 0; j < nsets; j++) {
        /* a value is one line: a line break would write a second key */
        if (strpbrk(sets[j].value, "\r\n") != NULL || !find_key(sets[j].section, sets[j].key))
            return CU_E_INVALID;
    }
    cu_buf_init(&b, TEMPLATE_MAX);
    rc = template_text(&b, sets, nsets);
    if (rc != CU_OK) {
        goto out;
    }
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? CU_E_EXISTS : CU_E_IO;
        goto out;
    }
    if (!write_all(fd, b.data, b.len) || fsync(fd) != 0) {
        rc = CU_E_IO;
    }
    if (close(fd) != 0) {
        rc = CU_E_IO;
    }
    if (rc != CU_OK) {
        unlink(path);
    }
out:
    cu_buf_free(&b);
    return rc;
}

static struct cu_config_key_info key_infos[KEY_COUNT];
static pthread_once_t key_infos_once = PTHREAD_ONCE_INIT;

static void fill_key_infos(void)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        key_infos[i] = keys[i].info;
    }
}

/* cu_config_keys(n): the key table and its length in *n; static storage. */
const struct cu_config_key_info *cu_config_keys(size_t *n)
{
    CU_ASSERT(pthread_once(&key_infos_once, fill_key_infos) == 0);
    *n = KEY_COUNT;
    return key_infos;
}
