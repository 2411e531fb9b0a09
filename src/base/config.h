/*
 * config.h - configuration: one INI file plus environment overrides.
 *
 * Every key lives in one table in config.c that drives parsing, validation, the
 * CUSTODIA_<SECTION>_<KEY> environment overrides, the commented file `custodia init` writes,
 * and the documentation test. Unknown sections and keys are errors. Every error message names
 * the file (or variable), the section and key, and why the value is wrong.
 */
#ifndef CU_BASE_CONFIG_H
#define CU_BASE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/log.h"

#define CU_CONFIG_ERR_BYTES 512
#define CU_CONFIG_PATH_BYTES 1024

struct cu_config {
    /* The data directory; set by cu_config_load from its argument, not from the file. */
    char data_dir[CU_CONFIG_PATH_BYTES];

    struct {
        char listen_address[64];             /* IPv4 or IPv6 literal */
        uint16_t port;                       /* 1..65535 */
        unsigned threads;                    /* 0 = eight per core; else 1..256 */
        unsigned max_connections;            /* 1..100000 */
        unsigned per_ip_connections;         /* 0 = no limit; else 1..100000 */
        unsigned idle_timeout;               /* seconds, 1..3600 */
        unsigned header_timeout;             /* seconds, 1..3600 */
        unsigned body_timeout;               /* seconds, 1..86400 */
        size_t max_header_bytes;             /* 1024..1048576 */
        size_t max_body_bytes;               /* 1024..1073741824 */
        char tls_cert[CU_CONFIG_PATH_BYTES]; /* relative to data_dir unless absolute */
        char tls_key[CU_CONFIG_PATH_BYTES];
        char tls_priorities[512]; /* GnuTLS priority string */
        bool access_log;
        unsigned auth_failures_per_minute; /* 0 = no limit; else 1..100000 */
    } server;

    struct {
        char backend[16];                /* "sqlite" or "postgres" */
        char path[CU_CONFIG_PATH_BYTES]; /* sqlite: database file, relative to data_dir */
        char url[CU_CONFIG_PATH_BYTES];  /* postgres: connection string, or "env" */
        unsigned busy_timeout_ms;        /* 0..600000 */
        unsigned connections;            /* 1..1024: the read pool (cu_store_acquire) */
        char synchronous[8];             /* "full" or "normal" */
    } store;

    struct {
        char root_key_file[CU_CONFIG_PATH_BYTES]; /* relative to data_dir unless absolute */
        char algorithm[24];                       /* "xchacha20poly1305" or "aes256gcm" */
    } keys;

    struct {
        char origin[129];            /* signed-note name: printable, no space or '+' */
        bool hash_source_ip;         /* store client IPs as keyed hashes */
        unsigned checkpoint_records; /* 1..1000000 */
        unsigned checkpoint_seconds; /* 1..86400 */
    } audit;

    struct {
        unsigned password_time_cost;                 /* Argon2id passes, 1..10 */
        unsigned password_memory_kib;                /* Argon2id memory, 8192..4194304 KiB */
        unsigned password_hash_concurrency;          /* 0 = from cores and memory; else 1..256 */
        unsigned password_hash_wait_ms;              /* 1..60000 */
        char common_passwords[CU_CONFIG_PATH_BYTES]; /* the common-password list */
        char totp_issuer[64];                        /* shown by authenticator apps */
        bool customer_mfa_required;
        unsigned session_idle_minutes;   /* 1..10080 */
        unsigned session_absolute_hours; /* 1..8760 */
        unsigned step_up_minutes;        /* 1..1440 */
        unsigned mfa_challenge_seconds;  /* 30..3600 */
        unsigned lockout_threshold;      /* 1..1000 */
        unsigned lockout_base_seconds;   /* 1..86400 */
        unsigned lockout_max_seconds;    /* 1..604800 */
        unsigned lockout_reset_minutes;  /* 1..525600 */
    } identity;

    struct {
        char policy[CU_CONFIG_PATH_BYTES]; /* the access policy file, relative to data_dir */
        char dry_run_policy[CU_CONFIG_PATH_BYTES]; /* one decided beside it; "none" */
        char unmask_reason[8];                     /* "staff", "all" or "none": who must give one */
        unsigned unmask_limit_per_hour; /* a staff member's unmasked reads; 0: no limit */
    } access;

    struct {
        unsigned ip_per_minute;
        unsigned ip_burst;
        unsigned principal_per_minute;
        unsigned principal_burst;
        unsigned writes_per_minute;
        unsigned writes_burst;
        unsigned signin_per_minute;
        unsigned signin_burst;
    } limits; /* token buckets (api/bucket.h); a *_per_minute of 0 turns one off */

    struct {
        size_t step_up_above;       /* a customer's transfer above this needs aal2; 0: never */
        unsigned idempotency_hours; /* how long a movement's Idempotency-Key is kept */
    } ledger;

    struct {
        char rules[CU_CONFIG_PATH_BYTES];        /* a rule file, or "builtin" */
        char shadow_rules[CU_CONFIG_PATH_BYTES]; /* a rule file run in shadow, or "none" */
        char event_types[1024];                  /* custom event types, or "none" */
        unsigned future_seconds;                 /* 0..86400 */
        unsigned past_days;                      /* 1..30 */
    } monitor;

    struct {
        char webhook_url[512]; /* the company's HTTPS receiver, or "none" */
        char webhook_secret_file[CU_CONFIG_PATH_BYTES]; /* the HMAC key of the signatures */
        char webhook_ca_file[CU_CONFIG_PATH_BYTES];     /* CAs of the receiver, or "system" */
        char email_url[512];                            /* smtp:// or smtps://, or "none" */
        char email_from[256];                           /* the sender's address */
        char email_user[128];                           /* SMTP user name, or "none" */
        char email_password_file[CU_CONFIG_PATH_BYTES]; /* its password, or "none" */
        char email_ca_file[CU_CONFIG_PATH_BYTES];       /* CAs of the SMTP server, or "system" */
        char staff_email[256];                          /* staff notices by e-mail, or "none" */
        bool allow_loopback_http;                       /* http:// to 127.0.0.1 or ::1 (tests) */
        unsigned timeout_ms;                            /* one delivery attempt */
        unsigned max_attempts;                          /* then the notice is dead */
        unsigned retry_base_ms; /* the first retry's pause, doubled each time */
        unsigned retry_max_ms;  /* and its cap */
        unsigned concurrency;   /* deliveries in flight */
        unsigned keep_days;     /* sent notices kept this long, then deleted */
    } notify;

    struct {
        unsigned group_minutes;               /* an alert joins a case this recent; 0: never */
        char group_by[64];                    /* customer ip device payee, or none */
        char playbooks[CU_CONFIG_PATH_BYTES]; /* a playbook file, or "none" */
        unsigned self_unfreeze_minutes;       /* a customer's unfreeze waits this long */
    } cases;

    struct {
        enum cu_log_level level;
    } log;
};

/* cu_config_defaults(cfg, data_dir): fills cfg with the built-in defaults. */
void cu_config_defaults(struct cu_config *cfg, const char *data_dir);

/* cu_config_load(cfg, data_dir, err): defaults, then data_dir/custodia.conf (which must
 * exist), then CUSTODIA_<SECTION>_<KEY> variables, then validation. On error writes a
 * message naming the file or variable, section, key and reason into err
 * (CU_CONFIG_ERR_BYTES) and returns CU_E_CONFIG (CU_E_IO when the file cannot be read). */
CU_WUR enum cu_err cu_config_load(struct cu_config *cfg, const char *data_dir,
                                  char err[CU_CONFIG_ERR_BYTES]);

/* cu_config_load_file(cfg, path, err): applies one INI file over cfg without reading the
 * environment or validating cross-key rules; for tests and cu_config_load. */
CU_WUR enum cu_err cu_config_load_file(struct cu_config *cfg, const char *path,
                                       char err[CU_CONFIG_ERR_BYTES]);

/* cu_config_apply_env(cfg, err): applies CUSTODIA_<SECTION>_<KEY> variables over cfg. */
CU_WUR enum cu_err cu_config_apply_env(struct cu_config *cfg, char err[CU_CONFIG_ERR_BYTES]);

/* cu_config_write_template(path): writes a custodia.conf holding every key, each with its
 * comment and its default, uncommented so the file works as written. Fails with CU_E_EXISTS
 * if path exists. Mode 0600. */
CU_WUR enum cu_err cu_config_write_template(const char *path);

/* A value init writes in place of a key's default. */
struct cu_config_set {
    const char *section, *key, *value;
};

/* cu_config_write_template_with(path, sets, n): cu_config_write_template with the values of
 * sets in place of their keys' defaults. CU_E_INVALID for an unknown key or a value with a
 * line break. */
CU_WUR enum cu_err cu_config_write_template_with(const char *path, const struct cu_config_set *sets,
                                                 size_t nsets);

/* cu_config_path(cfg, rel, out, outlen): rel itself if absolute, else data_dir/rel.
 * CU_E_TOO_LARGE if it does not fit. */
CU_WUR enum cu_err cu_config_path(const struct cu_config *cfg, const char *rel, char *out,
                                  size_t outlen);

/* Iteration over the key table, for documentation checks. */
struct cu_config_key_info {
    const char *section;
    const char *key;
    const char *default_value;
    const char *help;
};

/* cu_config_keys(n): the key table and its length in *n; static storage. */
const struct cu_config_key_info *cu_config_keys(size_t *n);

#endif
