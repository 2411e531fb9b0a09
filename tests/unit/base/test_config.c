/*
 * test_config.c - configuration: every key's validation error with its exact message, file
 * structure errors with their line numbers, environment overrides and their precedence,
 * the data directory rules, the template loading back to the defaults, and the manual
 * (docs/configuration.md) documenting every key.
 */
#include "cu_test.h"

#include <ctype.h>
#include <sys/stat.h>

#include "base/config.h"

static char dir[256];
static char conf[300];

/* env_name(section, key, out): CUSTODIA_<SECTION>_<KEY>, built here independently. */
static void env_name(const char *section, const char *key, char out[128])
{
    int n = snprintf(out, 128, "CUSTODIA_%s_%s", section, key);

    assert_true(n > 0 && n < 128);
    for (char *p = out; *p; p++) {
        *p = (char)toupper((unsigned char)*p);
    }
}

static void clear_env(void)
{
    size_t n;
    const struct cu_config_key_info *k = cu_config_keys(&n);
    char name[128];

    for (size_t i = 0; i < n; i++) {
        env_name(k[i].section, k[i].key, name);
        unsetenv(name);
    }
}

static int setup(void **state)
{
    clear_env();
    cu_test_tmpdir(dir, sizeof dir);
    snprintf(conf, sizeof conf, "%s/custodia.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    clear_env();
    cu_test_rmrf(dir);
    return 0;
}

/* load_text(text, cfg, err): defaults, then text as an INI file. */
static enum cu_err load_text(const char *text, struct cu_config *cfg, char *err)
{
    cu_config_defaults(cfg, dir);
    cu_test_write_file(conf, text);
    err[0] = '\0';
    return cu_config_load_file(cfg, conf, err);
}

/* expect_file_error(text, line, msg): text fails with "<conf>:<line>: <msg>". */
static void expect_file_error(const char *text, int line, const char *msg)
{
    char err[CU_CONFIG_ERR_BYTES], want[2 * CU_CONFIG_ERR_BYTES];
    struct cu_config cfg;

    snprintf(want, sizeof want, "%s:%d: %s", conf, line, msg);
    assert_int_equal(load_text(text, &cfg, err), CU_E_CONFIG);
    assert_string_equal(err, want);
}

/* A bad value for a key and the reason the error must give. */
struct bad_case {
    const char *section, *key, *value, *why;
};

#define ADDR_WHY "must be an IPv4 or IPv6 address literal such as 127.0.0.1 or ::1, got "
#define PATH_WHY "must be a non-empty path of at most 1023 bytes, got \"\""
#define HDR_WHY                                                                                    \
    "must be a size from 1024 to 1048576 bytes, optionally with suffix k or m (KiB, MiB), e.g. "   \
    "16k, got "
#define BODY_WHY                                                                                   \
    "must be a size from 1024 to 1073741824 bytes, optionally with suffix k or m (KiB, MiB), "     \
    "e.g. 1m, got "
#define LONG_ADDR "1234567890123456789012345678901234567890123456789012345678901234"

static const struct bad_case bad_cases[] = {
    {"server", "listen_address", "localhost", ADDR_WHY "\"localhost\""},
    {"server", "listen_address", "127.0.0.256", ADDR_WHY "\"127.0.0.256\""},
    {"server", "listen_address", "::1%eth0", ADDR_WHY "\"::1%eth0\""},
    {"server", "listen_address", LONG_ADDR, "longer than 63 bytes"},
    {"server", "port", "abc", "must be an integer from 1 to 65535, got \"abc\""},
    {"server", "port", "0", "must be an integer from 1 to 65535, got \"0\""},
    {"server", "port", "65536", "must be an integer from 1 to 65535, got \"65536\""},
    {"server", "port", "-1", "must be an integer from 1 to 65535, got \"-1\""},
    {"server", "port", "+80", "must be an integer from 1 to 65535, got \"+80\""},
    {"server", "port", "80x", "must be an integer from 1 to 65535, got \"80x\""},
    {"server", "port", "8k", "must be an integer from 1 to 65535, got \"8k\""},
    {"server", "port", "", "must be an integer from 1 to 65535, got \"\""},
    {"server", "port", "99999999999999999999999",
     "must be an integer from 1 to 65535, got \"99999999999999999999999\""},
    {"server", "threads", "257",
     "must be 0 (eight per CPU core) or an integer from 1 to 256, got \"257\""},
    {"server", "max_connections", "0", "must be an integer from 1 to 100000, got \"0\""},
    {"server", "max_connections", "100001", "must be an integer from 1 to 100000, got \"100001\""},
    {"server", "per_ip_connections", "100001",
     "must be 0 (no limit) or an integer from 1 to 100000, got \"100001\""},
    {"server", "idle_timeout", "0",
     "must be an integer number of seconds from 1 to 3600, got \"0\""},
    {"server", "idle_timeout", "3601",
     "must be an integer number of seconds from 1 to 3600, got \"3601\""},
    {"server", "header_timeout", "0",
     "must be an integer number of seconds from 1 to 3600, got \"0\""},
    {"server", "header_timeout", "3601",
     "must be an integer number of seconds from 1 to 3600, got \"3601\""},
    {"server", "body_timeout", "0",
     "must be an integer number of seconds from 1 to 86400, got \"0\""},
    {"server", "body_timeout", "86401",
     "must be an integer number of seconds from 1 to 86400, got \"86401\""},
    {"server", "max_header_bytes", "1023", HDR_WHY "\"1023\""},
    {"server", "max_header_bytes", "1048577", HDR_WHY "\"1048577\""},
    {"server", "max_header_bytes", "2m", HDR_WHY "\"2m\""},
    {"server", "max_header_bytes", "k", HDR_WHY "\"k\""},
    {"server", "max_header_bytes", "1kk", HDR_WHY "\"1kk\""},
    {"server", "max_body_bytes", "1023", BODY_WHY "\"1023\""},
    {"server", "max_body_bytes", "1073741825", BODY_WHY "\"1073741825\""},
    {"server", "max_body_bytes", "1025m", BODY_WHY "\"1025m\""},
    {"server", "max_body_bytes", "1g", BODY_WHY "\"1g\""},
    {"server", "max_body_bytes", "1.5m", BODY_WHY "\"1.5m\""},
    {"server", "max_body_bytes", "18014398509481984m", BODY_WHY "\"18014398509481984m\""},
    {"server", "tls_cert", "", PATH_WHY},
    {"server", "tls_key", "", PATH_WHY},
    {"server", "tls_priorities", "",
     "must be a non-empty GnuTLS priority string of at most 511 bytes, got \"\""},
    {"server", "access_log", "maybe",
     "must be true or false (also yes/no, on/off, 1/0), got \"maybe\""},
    {"server", "access_log", "2", "must be true or false (also yes/no, on/off, 1/0), got \"2\""},
    {"server", "auth_failures_per_minute", "100001",
     "must be an integer from 0 to 100000, got \"100001\""},
    {"store", "backend", "mysql", "must be sqlite or postgres, got \"mysql\""},
    {"store", "url", "", "must be a connection string of at most 1023 bytes, or env, got \"\""},
    {"store", "path", "", PATH_WHY},
    {"store", "busy_timeout_ms", "600001", "must be an integer from 0 to 600000, got \"600001\""},
    {"store", "connections", "0", "must be an integer from 1 to 1024, got \"0\""},
    {"store", "connections", "1025", "must be an integer from 1 to 1024, got \"1025\""},
    {"store", "synchronous", "off", "must be full or normal, got \"off\""},
    {"store", "synchronous", "FULL", "must be full or normal, got \"FULL\""},
    {"keys", "root_key_file", "", PATH_WHY},
    {"access", "policy", "", PATH_WHY},
    {"limits", "ip_per_minute", "10000001",
     "must be an integer from 0 to 10000000, got \"10000001\""},
    {"limits", "ip_burst", "1000001", "must be an integer from 1 to 1000000, got \"1000001\""},
    {"limits", "ip_burst", "0", "must be an integer from 1 to 1000000, got \"0\""},
    {"limits", "principal_per_minute", "10000001",
     "must be an integer from 0 to 10000000, got \"10000001\""},
    {"limits", "principal_burst", "1000001",
     "must be an integer from 1 to 1000000, got \"1000001\""},
    {"limits", "principal_burst", "0", "must be an integer from 1 to 1000000, got \"0\""},
    {"limits", "writes_per_minute", "10000001",
     "must be an integer from 0 to 10000000, got \"10000001\""},
    {"limits", "writes_burst", "1000001", "must be an integer from 1 to 1000000, got \"1000001\""},
    {"limits", "writes_burst", "0", "must be an integer from 1 to 1000000, got \"0\""},
    {"limits", "signin_per_minute", "100001",
     "must be an integer from 0 to 100000, got \"100001\""},
    {"limits", "signin_burst", "100001", "must be an integer from 1 to 100000, got \"100001\""},
    {"limits", "signin_burst", "0", "must be an integer from 1 to 100000, got \"0\""},
    {"ledger", "step_up_above", "1000000000000001",
     "must be an integer from 0 to 1000000000000000, got \"1000000000000001\""},
    {"ledger", "step_up_above", "-1", "must be an integer from 0 to 1000000000000000, got \"-1\""},
    {"ledger", "idempotency_hours", "0", "must be an integer from 1 to 720, got \"0\""},
    {"ledger", "idempotency_hours", "721", "must be an integer from 1 to 720, got \"721\""},
    {"monitor", "rules", "",
     "must be a non-empty path of at most 1023 bytes, or builtin, got \"\""},
    {"monitor", "shadow_rules", "",
     "must be a non-empty path of at most 1023 bytes, or none, got \"\""},
    {"monitor", "event_types", "", "must be names separated by spaces, or none, got \"\""},
    {"monitor", "future_seconds", "86401", "must be an integer from 0 to 86400, got \"86401\""},
    {"monitor", "past_days", "0", "must be an integer from 1 to 30, got \"0\""},
    {"monitor", "past_days", "31", "must be an integer from 1 to 30, got \"31\""},
    {"notify", "webhook_url", "",
     "must be an https:// URL of at most 511 bytes, or none, got \"\""},
    {"notify", "webhook_secret_file", "",
     "must be a non-empty path of at most 1023 bytes, got \"\""},
    {"notify", "webhook_ca_file", "",
     "must be a non-empty path of at most 1023 bytes, or system, got \"\""},
    {"notify", "email_url", "",
     "must be an smtp:// or smtps:// URL of at most 511 bytes, or none, got \"\""},
    {"notify", "email_from", "", "must be an e-mail address of at most 255 bytes, got \"\""},
    {"notify", "email_user", "", "must be a user name of at most 127 bytes, or none, got \"\""},
    {"notify", "email_password_file", "",
     "must be a non-empty path of at most 1023 bytes, or none, got \"\""},
    {"notify", "email_ca_file", "",
     "must be a non-empty path of at most 1023 bytes, or system, got \"\""},
    {"notify", "staff_email", "",
     "must be an e-mail address of at most 255 bytes, or none, got \"\""},
    {"notify", "allow_loopback_http", "maybe",
     "must be true or false (also yes/no, on/off, 1/0), got \"maybe\""},
    {"notify", "timeout_ms", "99", "must be an integer from 100 to 60000, got \"99\""},
    {"notify", "max_attempts", "0", "must be an integer from 1 to 100, got \"0\""},
    {"notify", "retry_base_ms", "9", "must be an integer from 10 to 3600000, got \"9\""},
    {"notify", "retry_max_ms", "86400001",
     "must be an integer from 10 to 86400000, got \"86400001\""},
    {"notify", "concurrency", "257", "must be an integer from 1 to 256, got \"257\""},
    {"notify", "keep_days", "0", "must be an integer from 1 to 3650, got \"0\""},
    {"access", "unmask_reason", "some", "must be staff, all or none, got \"some\""},
    {"cases", "group_minutes", "10081", "must be an integer from 0 to 10080, got \"10081\""},
    {"cases", "group_by", "",
     "must be customer, ip, device and payee separated by spaces, or "
     "none, got \"\""},
    {"cases", "playbooks", "", "must be a non-empty path of at most 1023 bytes, or none, got \"\""},
    {"cases", "self_unfreeze_minutes", "-1", "must be an integer from 0 to 10080, got \"-1\""},
    {"access", "dry_run_policy", "",
     "must be a non-empty path of at most 1023 bytes, or none, got \"\""},
    {"access", "unmask_limit_per_hour", "1000001",
     "must be an integer from 0 to 1000000, got \"1000001\""},
    {"keys", "algorithm", "aes128gcm", "must be xchacha20poly1305 or aes256gcm, got \"aes128gcm\""},
    {"audit", "origin", "has space",
     "must be 1 to 128 printable ASCII characters without spaces or '+', got \"has space\""},
    {"audit", "origin", "a+b",
     "must be 1 to 128 printable ASCII characters without spaces or '+', got \"a+b\""},
    {"audit", "origin", "",
     "must be 1 to 128 printable ASCII characters without spaces or '+', "
     "got \"\""},
    {"audit", "hash_source_ip", "sometimes",
     "must be true or false (also yes/no, on/off, 1/0), got \"sometimes\""},
    {"audit", "checkpoint_records", "0", "must be an integer from 1 to 1000000, got \"0\""},
    {"audit", "checkpoint_records", "1000001",
     "must be an integer from 1 to 1000000, got \"1000001\""},
    {"audit", "checkpoint_seconds", "0", "must be an integer from 1 to 86400, got \"0\""},
    {"audit", "checkpoint_seconds", "86401", "must be an integer from 1 to 86400, got \"86401\""},
    {"identity", "password_time_cost", "0", "must be an integer from 1 to 10, got \"0\""},
    {"identity", "password_time_cost", "11", "must be an integer from 1 to 10, got \"11\""},
    {"identity", "password_memory_kib", "8191",
     "must be an integer from 8192 to 4194304, got \"8191\""},
    {"identity", "password_memory_kib", "4194305",
     "must be an integer from 8192 to 4194304, got \"4194305\""},
    {"identity", "password_hash_concurrency", "x",
     "must be 0 (automatic) or an integer from 1 to 256, got \"x\""},
    {"identity", "password_hash_concurrency", "257",
     "must be 0 (automatic) or an integer from 1 to 256, got \"257\""},
    {"identity", "password_hash_wait_ms", "0", "must be an integer from 1 to 60000, got \"0\""},
    {"identity", "password_hash_wait_ms", "60001",
     "must be an integer from 1 to 60000, got \"60001\""},
    {"identity", "common_passwords", "", PATH_WHY},
    {"identity", "totp_issuer", "has space",
     "must be 1 to 63 printable ASCII characters without spaces or '+', got \"has space\""},
    {"identity", "customer_mfa_required", "maybe",
     "must be true or false (also yes/no, on/off, 1/0), got \"maybe\""},
    {"identity", "session_idle_minutes", "0", "must be an integer from 1 to 10080, got \"0\""},
    {"identity", "session_idle_minutes", "10081",
     "must be an integer from 1 to 10080, got \"10081\""},
    {"identity", "session_absolute_hours", "0", "must be an integer from 1 to 8760, got \"0\""},
    {"identity", "session_absolute_hours", "8761",
     "must be an integer from 1 to 8760, got \"8761\""},
    {"identity", "step_up_minutes", "0", "must be an integer from 1 to 1440, got \"0\""},
    {"identity", "step_up_minutes", "1441", "must be an integer from 1 to 1440, got \"1441\""},
    {"identity", "mfa_challenge_seconds", "29", "must be an integer from 30 to 3600, got \"29\""},
    {"identity", "mfa_challenge_seconds", "3601",
     "must be an integer from 30 to 3600, got \"3601\""},
    {"identity", "lockout_threshold", "0", "must be an integer from 1 to 1000, got \"0\""},
    {"identity", "lockout_threshold", "1001", "must be an integer from 1 to 1000, got \"1001\""},
    {"identity", "lockout_base_seconds", "0", "must be an integer from 1 to 86400, got \"0\""},
    {"identity", "lockout_base_seconds", "86401",
     "must be an integer from 1 to 86400, got \"86401\""},
    {"identity", "lockout_max_seconds", "0", "must be an integer from 1 to 604800, got \"0\""},
    {"identity", "lockout_max_seconds", "604801",
     "must be an integer from 1 to 604800, got \"604801\""},
    {"identity", "lockout_reset_minutes", "0", "must be an integer from 1 to 525600, got \"0\""},
    {"identity", "lockout_reset_minutes", "525601",
     "must be an integer from 1 to 525600, got \"525601\""},
    {"log", "level", "verbose", "must be debug, info, warn, error or off, got \"verbose\""},
};

#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

static void test_every_key_has_a_bad_case(void **state)
{
    size_t n;
    const struct cu_config_key_info *k = cu_config_keys(&n);

    for (size_t i = 0; i < n; i++) {
        bool found = false;

        for (size_t j = 0; j < N_BAD && !found; j++) {
            found = strcmp(bad_cases[j].section, k[i].section) == 0 &&
                    strcmp(bad_cases[j].key, k[i].key) == 0;
        }
        if (!found) {
            fail_msg("no bad-value case for [%s] %s", k[i].section, k[i].key);
        }
    }
}

static void test_bad_values_in_file(void **state)
{
    char text[512], msg[512];

    for (size_t i = 0; i < N_BAD; i++) {
        const struct bad_case *c = &bad_cases[i];

        snprintf(text, sizeof text, "# comment\n[%s]\n%s = %s\n", c->section, c->key, c->value);
        snprintf(msg, sizeof msg, "[%s] %s: %s", c->section, c->key, c->why);
        expect_file_error(text, 3, msg);
    }
}

/* The lockout settings must make sense together: a first wait no longer than the longest,
 * and a longest wait no longer than the time after which failures are forgotten. */
static void test_lockout_rules(void **state)
{
    char err[CU_CONFIG_ERR_BYTES];
    struct cu_config cfg;

    (void)state;
    cu_test_write_file(conf,
                       "[identity]\nlockout_base_seconds = 1000\nlockout_max_seconds = 900\n");
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_CONFIG);
    assert_non_null(strstr(err, "[identity] lockout_base_seconds: must not be larger than"));
    cu_test_write_file(conf,
                       "[identity]\nlockout_max_seconds = 7200\nlockout_reset_minutes = 60\n");
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_CONFIG);
    assert_non_null(strstr(err, "[identity] lockout_max_seconds: must not be longer than"));
    /* [cases] group_by: known words, each once */
    cu_test_write_file(conf, "[cases]\ngroup_by = customer planet\n");
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_CONFIG);
    assert_non_null(strstr(err, "[cases] group_by: must be customer, ip, device and payee"));
    cu_test_write_file(conf, "[cases]\ngroup_by = ip ip\n");
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_CONFIG);
    cu_test_write_file(conf, "[cases]\ngroup_by = device payee\n");
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_OK);
    cu_test_write_file(conf,
                       "[identity]\nlockout_max_seconds = 3600\nlockout_reset_minutes = 60\n");
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_OK);
}

static void test_bad_values_in_env(void **state)
{
    char err[CU_CONFIG_ERR_BYTES], want[2 * CU_CONFIG_ERR_BYTES], name[128];
    struct cu_config cfg;

    for (size_t i = 0; i < N_BAD; i++) {
        const struct bad_case *c = &bad_cases[i];

        env_name(c->section, c->key, name);
        assert_int_equal(setenv(name, c->value, 1), 0);
        cu_config_defaults(&cfg, dir);
        assert_int_equal(cu_config_apply_env(&cfg, err), CU_E_CONFIG);
        snprintf(want, sizeof want, "%s: [%s] %s: %s", name, c->section, c->key, c->why);
        assert_string_equal(err, want);
        unsetenv(name);
    }
}

static void test_good_values(void **state)
{
    char err[CU_CONFIG_ERR_BYTES];
    struct cu_config cfg;

    assert_int_equal(load_text("[server]\n"
                               "listen_address = ::\n"
                               "port = 65535\n"
                               "threads = 0\n"
                               "max_connections = 100000\n"
                               "per_ip_connections = 0\n"
                               "idle_timeout = 3600\n"
                               "header_timeout = 3600\n"
                               "body_timeout = 86400\n"
                               "max_header_bytes = 1k\n"
                               "max_body_bytes = 1M\n"
                               "tls_cert = /etc/custodia/cert.pem\n"
                               "tls_key = k.pem\n"
                               "tls_priorities = NORMAL\n"
                               "access_log = Off\n"
                               "[store]\n"
                               "backend = sqlite\n"
                               "path = data/c.db\n"
                               "busy_timeout_ms = 0\n"
                               "synchronous = normal\n"
                               "[keys]\n"
                               "root_key_file = keys/root.key\n"
                               "algorithm = aes256gcm\n"
                               "[log]\n"
                               "level = debug\n",
                               &cfg, err),
                     CU_OK);
    assert_string_equal(cfg.server.listen_address, "::");
    assert_int_equal(cfg.server.port, 65535);
    assert_int_equal(cfg.server.threads, 0);
    assert_int_equal(cfg.server.max_connections, 100000);
    assert_int_equal(cfg.server.per_ip_connections, 0);
    assert_int_equal(cfg.server.idle_timeout, 3600);
    assert_int_equal(cfg.server.header_timeout, 3600);
    assert_int_equal(cfg.server.body_timeout, 86400);
    assert_int_equal(cfg.server.max_header_bytes, 1024);
    assert_int_equal(cfg.server.max_body_bytes, 1048576);
    assert_string_equal(cfg.server.tls_cert, "/etc/custodia/cert.pem");
    assert_string_equal(cfg.server.tls_key, "k.pem");
    assert_string_equal(cfg.server.tls_priorities, "NORMAL");
    assert_false(cfg.server.access_log);
    assert_string_equal(cfg.store.backend, "sqlite");
    assert_string_equal(cfg.store.path, "data/c.db");
    assert_int_equal(cfg.store.busy_timeout_ms, 0);
    assert_string_equal(cfg.store.synchronous, "normal");
    assert_string_equal(cfg.keys.root_key_file, "keys/root.key");
    assert_string_equal(cfg.keys.algorithm, "aes256gcm");
    assert_int_equal(cfg.log.level, CU_LOG_DEBUG);
}

static void test_size_suffixes_and_booleans(void **state)
{
    static const struct {
        const char *text;
        size_t body;
        bool access_log;
    } cases[] = {
        {"[server]\nmax_body_bytes = 1k\naccess_log = yes\n", 1024, true},
        {"[server]\nmax_body_bytes = 1K\naccess_log = 0\n", 1024, false},
        {"[server]\nmax_body_bytes = 1m\naccess_log = ON\n", 1048576, true},
        {"[server]\nmax_body_bytes = 1024m\naccess_log = no\n", 1073741824, false},
        {"[server]\nmax_body_bytes = 1073741824\naccess_log = 1\n", 1073741824, true},
        {"[server]\nmax_body_bytes = 000002048\naccess_log = FALSE\n", 2048, false},
    };
    char err[CU_CONFIG_ERR_BYTES];
    struct cu_config cfg;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(load_text(cases[i].text, &cfg, err), CU_OK);
        assert_int_equal(cfg.server.max_body_bytes, cases[i].body);
        assert_int_equal(cfg.server.access_log, cases[i].access_log);
    }
}

static void test_defaults(void **state)
{
    struct cu_config cfg;

    cu_config_defaults(&cfg, "/var/lib/custodia");
    assert_string_equal(cfg.data_dir, "/var/lib/custodia");
    assert_string_equal(cfg.server.listen_address, "127.0.0.1");
    assert_int_equal(cfg.server.port, 8443);
    assert_int_equal(cfg.server.threads, 0);
    assert_int_equal(cfg.server.max_connections, 1024);
    assert_int_equal(cfg.server.per_ip_connections, 256);
    assert_int_equal(cfg.server.idle_timeout, 30);
    assert_int_equal(cfg.server.header_timeout, 10);
    assert_int_equal(cfg.server.body_timeout, 60);
    assert_int_equal(cfg.server.max_header_bytes, 16384);
    assert_int_equal(cfg.server.max_body_bytes, 1048576);
    assert_string_equal(cfg.server.tls_cert, "tls.crt");
    assert_string_equal(cfg.server.tls_key, "tls.key");
    assert_string_equal(cfg.server.tls_priorities,
                        "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:"
                        "+AES-128-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:"
                        "+ECDHE-RSA:%SERVER_PRECEDENCE");
    assert_true(cfg.server.access_log);
    assert_string_equal(cfg.store.backend, "sqlite");
    assert_string_equal(cfg.store.path, "custodia.db");
    assert_int_equal(cfg.store.busy_timeout_ms, 5000);
    assert_string_equal(cfg.store.synchronous, "full");
    assert_string_equal(cfg.keys.root_key_file, "root.key");
    assert_string_equal(cfg.keys.algorithm, "xchacha20poly1305");
    assert_int_equal(cfg.log.level, CU_LOG_INFO);
}

static void test_structure_errors(void **state)
{
    char text[1024], dots[600];

    expect_file_error("[server]\nport = 9000\n\nprot = 1\n", 4, "unknown key [server] prot");
    expect_file_error("[server]\nport = 9000\n[foo]\n", 3, "unknown section [foo]");
    expect_file_error("[foo]\nx = 1\n", 1, "unknown section [foo]");
    expect_file_error("port = 1\n", 1, "key port is outside any [section]");
    expect_file_error("[server]\nport = 1\nthreads = 2\nport = 2\n", 4,
                      "[server] port: set twice (first on line 2)");
    expect_file_error("[server]\nport 8443\n", 2,
                      "syntax error: expected [section], key = value or a comment");
    expect_file_error("[server\nport = 1\n", 1,
                      "syntax error: expected [section], key = value or a comment");
    /* the first problem is the one reported */
    expect_file_error("[server]\nport = x\nprot = 1\n", 2,
                      "[server] port: must be an integer from 1 to 65535, got \"x\"");
    expect_file_error("[server]\nbogus\nport = x\n", 2,
                      "syntax error: expected [section], key = value or a comment");
    /* a value too long for inih's line buffer is refused, not split */
    memset(dots, 'x', sizeof dots - 1);
    dots[sizeof dots - 1] = '\0';
    snprintf(text, sizeof text, "[server]\n\ntls_cert = %.300s\n", dots);
    expect_file_error(text, 3,
                      "line longer than 199 bytes; set long values through the environment");
    /* an unknown section or key is shown cut short and without control characters */
    snprintf(text, sizeof text, "[%.100s]\n", dots);
    expect_file_error(text, 1,
                      "unknown section "
                      "[xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...]");
    expect_file_error("[server]\npo\x1brt = 1\n", 2, "unknown key [server] po?rt");
    /* a UTF-8 byte order mark does not hide the first line from the checks */
    expect_file_error("\xef\xbb\xbf[foo]\n", 1, "unknown section [foo]");
}

static void test_echo_is_cut_and_cleaned(void **state)
{
    char text[512], err[CU_CONFIG_ERR_BYTES], name[128];
    struct cu_config cfg;

    snprintf(text, sizeof text, "[server]\nport = %0100d\n", 7);
    assert_int_equal(load_text(text, &cfg, err), CU_OK); /* leading zeros are fine */
    snprintf(text, sizeof text, "[server]\nport = %0100dx\n", 7);
    assert_int_equal(load_text(text, &cfg, err), CU_E_CONFIG);
    assert_non_null(strstr(err, "got \"0000000000000000000000000000000000000000000000000000000000"
                                "000000...\""));
    env_name("log", "level", name);
    setenv(name, "red\x1b[31m\n", 1);
    assert_int_equal(cu_config_apply_env(&cfg, err), CU_E_CONFIG);
    assert_string_equal(err, "CUSTODIA_LOG_LEVEL: [log] level: must be debug, info, warn, error "
                             "or off, got \"red?[31m?\"");
}

static void test_overlong_values(void **state)
{
    char err[CU_CONFIG_ERR_BYTES], name[128], *big = malloc(2001);
    struct cu_config cfg;

    memset(big, 'a', 2000);
    big[2000] = '\0';
    cu_config_defaults(&cfg, dir);
    env_name("server", "tls_cert", name);
    setenv(name, big, 1);
    assert_int_equal(cu_config_apply_env(&cfg, err), CU_E_CONFIG);
    assert_string_equal(err, "CUSTODIA_SERVER_TLS_CERT: [server] tls_cert: longer than 1023 bytes");
    unsetenv(name);
    big[512] = '\0';
    env_name("server", "tls_priorities", name);
    setenv(name, big, 1);
    assert_int_equal(cu_config_apply_env(&cfg, err), CU_E_CONFIG);
    assert_string_equal(
        err, "CUSTODIA_SERVER_TLS_PRIORITIES: [server] tls_priorities: longer than 511 bytes");
    big[511] = '\0';
    setenv(name, big, 1);
    assert_int_equal(cu_config_apply_env(&cfg, err), CU_OK);
    assert_int_equal(strlen(cfg.server.tls_priorities), 511);
    unsetenv(name);
    /* a choice longer than its field still says what the choices are */
    big[40] = '\0';
    env_name("store", "synchronous", name);
    setenv(name, big, 1);
    assert_int_equal(cu_config_apply_env(&cfg, err), CU_E_CONFIG);
    assert_non_null(strstr(err, "must be full or normal, got \"aaaa"));
    free(big);
}

static void test_lenient_layout(void **state)
{
    char text[2048], long_comment[600], err[CU_CONFIG_ERR_BYTES];
    struct cu_config cfg;

    memset(long_comment, 'c', sizeof long_comment - 1);
    long_comment[sizeof long_comment - 1] = '\0';
    snprintf(text, sizeof text,
             "# %s\r\n; %s\n\n[server]\r\n  port = 9001 ; inline comment\r\n"
             "\tthreads = 4\n[log]\nlevel=warn\n",
             long_comment, long_comment);
    assert_int_equal(load_text(text, &cfg, err), CU_OK);
    assert_int_equal(cfg.server.port, 9001);
    assert_int_equal(cfg.server.threads, 4);
    assert_int_equal(cfg.log.level, CU_LOG_WARN);
    assert_int_equal(load_text("\xef\xbb\xbf[server]\nport = 9002\n", &cfg, err), CU_OK);
    assert_int_equal(cfg.server.port, 9002);
    /* an empty file changes nothing */
    assert_int_equal(load_text("", &cfg, err), CU_OK);
    assert_int_equal(cfg.server.port, 8443);
}

static void test_nul_byte_refused(void **state)
{
    char err[CU_CONFIG_ERR_BYTES], want[2 * CU_CONFIG_ERR_BYTES];
    struct cu_config cfg;
    FILE *f = fopen(conf, "w");

    assert_non_null(f);
    assert_int_equal(fwrite("[server]\nport = 80\0"
                            "81\n",
                            1, 21, f),
                     21);
    assert_int_equal(fclose(f), 0);
    cu_config_defaults(&cfg, dir);
    assert_int_equal(cu_config_load_file(&cfg, conf, err), CU_E_CONFIG);
    snprintf(want, sizeof want, "%s:2: NUL byte in line", conf);
    assert_string_equal(err, want);
}

static void test_load_precedence(void **state)
{
    char err[CU_CONFIG_ERR_BYTES], name[128];
    struct cu_config cfg;

    cu_test_write_file(conf, "[server]\nport = 9000\nthreads = 3\n[log]\nlevel = error\n");
    env_name("server", "port", name);
    setenv(name, "9100", 1);
    env_name("store", "path", name);
    setenv(name, "/srv/db.sqlite", 1);
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_OK);
    assert_string_equal(cfg.data_dir, dir);
    assert_int_equal(cfg.server.port, 9100);               /* environment beats file */
    assert_int_equal(cfg.server.threads, 3);               /* file beats default */
    assert_int_equal(cfg.log.level, CU_LOG_ERROR);         /* file beats default */
    assert_string_equal(cfg.store.path, "/srv/db.sqlite"); /* environment beats default */
    assert_int_equal(cfg.server.max_connections, 1024);    /* default */
    env_name("server", "port", name);
    setenv(name, "http", 1);
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_CONFIG);
    assert_string_equal(err, "CUSTODIA_SERVER_PORT: [server] port: must be an integer from 1 to "
                             "65535, got \"http\"");
}

static void test_load_file_errors(void **state)
{
    char err[CU_CONFIG_ERR_BYTES], want[2 * CU_CONFIG_ERR_BYTES];
    struct cu_config cfg;

    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_IO);
    snprintf(want, sizeof want, "cannot open %s: No such file or directory", conf);
    assert_string_equal(err, want);
    /* a directory where the file should be cannot be read */
    assert_int_equal(mkdir(conf, 0700), 0);
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_IO);
    assert_int_equal(strncmp(err, "cannot read ", 12), 0);
    assert_int_equal(rmdir(conf), 0);
    /* file errors from cu_config_load carry the full path and the line */
    cu_test_write_file(conf, "[server]\nport = 0\n");
    assert_int_equal(cu_config_load(&cfg, dir, err), CU_E_CONFIG);
    snprintf(want, sizeof want,
             "%s:2: [server] port: must be an integer from 1 to 65535, got \"0\"", conf);
    assert_string_equal(err, want);
}

static void test_data_dir_rules(void **state)
{
    char err[CU_CONFIG_ERR_BYTES], big[1100];
    struct cu_config cfg;

    assert_int_equal(cu_config_load(&cfg, "", err), CU_E_CONFIG);
    assert_string_equal(err, "the data directory must not be empty");
    memset(big, 'd', sizeof big - 1);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    assert_int_equal(cu_config_load(&cfg, big, err), CU_E_CONFIG);
    assert_string_equal(err, "the data directory is longer than 1023 bytes");
    big[1015] = '\0';
    assert_int_equal(cu_config_load(&cfg, big, err), CU_E_CONFIG);
    assert_string_equal(err, "the data directory is too long for custodia.conf to fit in "
                             "1023 bytes");
}

/* A data directory long enough that a relative path under it no longer fits is refused
 * after loading, naming the key. */
static void test_resolved_paths_must_fit(void **state)
{
    char deep[1024], err[CU_CONFIG_ERR_BYTES], part[201], path[1100];
    struct cu_config cfg;
    size_t len;

    /* a data directory of exactly 1000 bytes: custodia.conf fits under it, 60 more do not */
    memset(part, 'p', 200);
    part[200] = '\0';
    snprintf(deep, sizeof deep, "%s", dir);
    while ((len = strlen(deep)) < 1000) {
        size_t add = 1000 - len - 1 < 200 ? 1000 - len - 1 : 200;

        snprintf(deep + len, sizeof deep - len, "/%.*s", (int)add, part);
        assert_int_equal(mkdir(deep, 0700), 0);
    }
    assert_int_equal(strlen(deep), 1000);
    snprintf(path, sizeof path, "%s/custodia.conf", deep);
    cu_test_write_file(path,
                       "[store]\n"
                       "path = 123456789012345678901234567890123456789012345678901234567890\n");
    assert_int_equal(cu_config_load(&cfg, deep, err), CU_E_CONFIG);
    assert_string_equal(err, "[store] path: joined to the data directory, the path is longer "
                             "than 1023 bytes");
    cu_test_write_file(path, "[store]\npath = /abs/db\n");
    assert_int_equal(cu_config_load(&cfg, deep, err), CU_OK);
}

static void test_path_join(void **state)
{
    struct cu_config cfg;
    char out[64];

    cu_config_defaults(&cfg, "/data");
    assert_int_equal(cu_config_path(&cfg, "tls.crt", out, sizeof out), CU_OK);
    assert_string_equal(out, "/data/tls.crt");
    assert_int_equal(cu_config_path(&cfg, "/etc/x", out, sizeof out), CU_OK);
    assert_string_equal(out, "/etc/x");
    cu_config_defaults(&cfg, "/data/");
    assert_int_equal(cu_config_path(&cfg, "a/b", out, sizeof out), CU_OK);
    assert_string_equal(out, "/data/a/b");
    assert_int_equal(cu_config_path(&cfg, "a/b", out, 10), CU_OK);
    assert_int_equal(cu_config_path(&cfg, "a/bc", out, 10), CU_E_TOO_LARGE);
}

static void test_template_loads_back_to_defaults(void **state)
{
    char err[CU_CONFIG_ERR_BYTES], name[128], line[2048];
    struct cu_config loaded, defaults;
    const struct cu_config_key_info *k;
    struct stat st;
    size_t n;
    FILE *f;

    assert_int_equal(cu_config_write_template(conf), CU_OK);
    assert_int_equal(stat(conf, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(cu_config_write_template(conf), CU_E_EXISTS);
    assert_int_equal(cu_config_load(&loaded, dir, err), CU_OK);
    cu_config_defaults(&defaults, dir);
    assert_memory_equal(&loaded, &defaults, sizeof loaded);

    /* every key appears as "key = default" after a comment naming its variable */
    k = cu_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        char want[1024];

        env_name(k[i].section, k[i].key, name);
        snprintf(want, sizeof want, "%s = %s\n", k[i].key, k[i].default_value);
        f = fopen(conf, "r");
        assert_non_null(f);
        for (char prev[2048] = ""; !found && fgets(line, sizeof line, f) != NULL;) {
            found = strcmp(line, want) == 0 && prev[0] == '#' && strstr(prev, name) != NULL;
            snprintf(prev, sizeof prev, "%s", line);
        }
        fclose(f);
        if (!found) {
            fail_msg("template lacks \"%s\" after a comment naming %s", want, name);
        }
    }
    assert_int_equal(cu_config_write_template("/nonexistent-dir/custodia.conf"), CU_E_IO);
}

static void test_keys_table(void **state)
{
    size_t n;
    const struct cu_config_key_info *k = cu_config_keys(&n);

    assert_int_equal(n, 82);
    for (size_t i = 0; i < n; i++) {
        assert_true(strlen(k[i].section) > 0 && strlen(k[i].key) > 0);
        assert_true(strlen(k[i].default_value) > 0 && strlen(k[i].help) > 0);
        for (size_t j = 0; j < i; j++) {
            assert_false(strcmp(k[i].section, k[j].section) == 0 &&
                         strcmp(k[i].key, k[j].key) == 0);
        }
    }
}

/* read_doc(): docs/configuration.md from the source tree. Caller frees with free(). */
static char *read_doc(void)
{
    const char *root = getenv("CU_SOURCE_ROOT");
    char path[1024];
    char *text;
    long len;
    FILE *f;

    assert_non_null(root);
    snprintf(path, sizeof path, "%s/docs/configuration.md", root);
    f = fopen(path, "r");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return text;
}

/* Each key has a "### `section.key`" entry in the manual that names its variable and shows
 * its default, so the manual cannot fall behind the table. */
static void test_manual_documents_every_key(void **state)
{
    char *doc = read_doc();
    size_t n;
    const struct cu_config_key_info *k = cu_config_keys(&n);

    for (size_t i = 0; i < n; i++) {
        char heading[256], name[128], def[1024];
        const char *start, *end;
        char *entry;

        snprintf(heading, sizeof heading, "\n### `%s.%s`\n", k[i].section, k[i].key);
        start = strstr(doc, heading);
        if (start == NULL) {
            fail_msg("docs/configuration.md has no heading ### `%s.%s`", k[i].section, k[i].key);
        }
        start += strlen(heading);
        end = strstr(start, "\n#");
        entry = strndup(start, end ? (size_t)(end - start) : strlen(start));
        env_name(k[i].section, k[i].key, name);
        snprintf(heading, sizeof heading, "`%s`", name);
        snprintf(def, sizeof def, "Default: `%s`", k[i].default_value);
        if (strstr(entry, heading) == NULL || strstr(entry, def) == NULL) {
            fail_msg("entry for %s.%s must name %s and say %s", k[i].section, k[i].key, name, def);
        }
        free(entry);
    }
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_key_has_a_bad_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_in_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_in_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_suffixes_and_booleans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structure_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_is_cut_and_cleaned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lenient_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_byte_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_dir_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolved_paths_must_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_loads_back_to_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manual_documents_every_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
