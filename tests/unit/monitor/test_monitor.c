/*
 * test_monitor.c - the monitoring service through the group committer over SQLite, with the
 * real audit log: an event, its decision and the decision's audit record committed together
 * (and none of them when the unit fails); a unit run again after CU_E_BUSY keeping its first
 * decision, so the state counts the event once; what the rules that fired read, named as the
 * rule file writes it; addresses kept as pseudonyms that keep networks together, while lists
 * match the address sent; a rule file that does not compile refused with its position.
 */
#include "cu_test.h"

#include <arpa/inet.h>

#include "audit/audit.h"
#include "base/buf.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "monitor/events.h"
#include "monitor/monitor.h"
#include "store/store.h"
#include "store/work.h"

#define T0 1800000000000LL /* 2027-01-15, a fixed clock */

static const char rules_text[] =
    "list blocked = [\"198.51.100.0/24\"]\n"
    "rule second_failure\n"
    "  when event.type == \"login_failed\"\n"
    "       and count(customer,   1h, \"login_failed\") >= 2\n"
    "  then score 10, reason \"two failures in an hour\"\n"
    "rule three_from_one_network\n"
    "  when count(ip_block, 10m) >= 3\n"
    "  then score 20, reason \"three events from one network\"\n"
    "rule big_sum\n"
    "  when sum(customer, 1d, # a comment: not part of the feature's name\n"
    "           \"transfer\") >= 99999990\n"
    "  then score 1, reason \"big\"\n"
    "rule blocked_network\n"
    "  when event.ip in blocked\n"
    "  then deny, reason \"a blocked network\"\n";

struct fixture {
    char dir[256], key[300], path[300], rules[300];
    struct cu_store *st;
    struct cu_db *conn;
    struct cu_keyring *kr;
    struct cu_audit *log;
    struct cu_committer *c;
    struct cu_monitor *m;
};

/* A keyed hash stand-in: FNV-1a over kind and text (the tests check its use, not its
 * strength). */
static void fake_pseudonym(void *arg, const char *kind, const char *text, uint8_t out[8])
{
    uint64_t h = 1469598103934665603ull;
    (void)arg;
    for (const char *p = kind; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    for (const char *p = text; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    memcpy(out, &h, 8);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[CU_STORE_ERR_BYTES], kerr[CU_KEYRING_ERR_BYTES], rerr[CU_RULES_ERR_BYTES];
    const struct cu_audit_opts ao = {
        .origin = "test.example/monitor", .checkpoint_records = 100000, .checkpoint_seconds = 3600};
    FILE *fp;

    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    cu_test_tmpdir(f->dir, sizeof(f->dir));
    snprintf(f->key, sizeof(f->key), "%s/root.key", f->dir);
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    snprintf(f->rules, sizeof(f->rules), "%s/t.rules", f->dir);
    assert_non_null(fp = fopen(f->rules, "w"));
    assert_int_equal(fputs(rules_text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(cu_keyring_create(f->key, kerr), CU_OK);
    assert_int_equal(cu_keyring_load(f->key, &f->kr, kerr), CU_OK);
    struct cu_store_opts o = {.backend = "sqlite",
                              .path = f->path,
                              .busy_timeout_ms = 10000,
                              .synchronous_full = false,
                              .create = true,
                              .pool_connections = 4};
    assert_int_equal(cu_store_open(&o, &f->st, err), CU_OK);
    assert_int_equal(cu_store_migrate(f->st, err), CU_OK);
    assert_int_equal(cu_store_acquire(f->st, &f->conn), CU_OK);
    assert_int_equal(cu_audit_new(f->kr, &ao, &f->log), CU_OK);
    struct cu_committer_opts co = {.audit = cu_audit_sink(f->log), .events = cu_events_sink()};
    assert_int_equal(cu_committer_new(f->st, &co, &f->c), CU_OK);
    struct cu_monitor_opts mo = {.rules_path = f->rules,
                                 .future_ms = 300000,
                                 .past_ms = 30LL * 86400000,
                                 .pseudonym = fake_pseudonym};
    assert_int_equal(cu_monitor_new(&mo, &f->m, rerr), CU_OK);
    cu_clock_set_fake(T0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_committer_free(f->c);
    cu_monitor_free(f->m);
    cu_audit_free(f->log);
    cu_store_release(f->conn);
    cu_store_close(f->st);
    cu_keyring_free(f->kr);
    cu_test_rmrf(f->dir);
    free(f);
    cu_clock_use_real();
    return 0;
}

/* One unit deciding one event; busy_runs: how many of its first runs then say CU_E_BUSY;
 * fail: the unit then fails with it. */
struct job {
    struct cu_monitor *m;
    struct cu_mon_event ev;
    struct cu_monitor_decision d;
    int runs, busy_runs;
    enum cu_err fail;
};

static enum cu_err job_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct job *j = arg;
    enum cu_err rc = cu_monitor_decide(j->m, w, db, &j->ev, "api", &j->d);
    j->runs++;
    if (rc == CU_OK && j->runs <= j->busy_runs)
        return CU_E_BUSY;
    return rc == CU_OK ? j->fail : rc;
}

static void event_of(struct fixture *f, struct cu_mon_event *ev, const char *type,
                     const char *customer, const char *ip)
{
    char text[512], err[CU_MON_ERR_BYTES], when[CU_RFC3339_BYTES];
    struct cu_mon_parse_opts o = {.types = cu_monitor_types(f->m)};
    cu_clock_format(T0, when);
    snprintf(text, sizeof(text), "{\"type\":\"%s\",\"time\":\"%s\",\"customer\":\"%s\"%s%s%s}",
             type, when, customer, ip ? ",\"ip\":\"" : "", ip ? ip : "", ip ? "\"" : "");
    assert_int_equal(cu_mon_event_parse(text, strlen(text), &o, ev, err), CU_OK);
}

static enum cu_err decide(struct fixture *f, struct job *j)
{
    struct cu_work *w = NULL;
    enum cu_err rc;
    j->m = f->m;
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_work_add(w, job_apply, j), CU_OK);
    rc = cu_committer_run(f->c, w);
    cu_work_free(w);
    return rc;
}

/* count_of(f, sql, arg): the count a query answers, with arg as $1 when not NULL. */
static int64_t count_of(struct fixture *f, const char *sql, const char *arg)
{
    const struct cu_val p[] = {CU_VT(arg ? arg : "")};
    struct cu_stmt *s = NULL;
    bool row = false;
    int64_t n;
    assert_int_equal(cu_db_query(f->conn, sql, p, arg ? 1 : 0, &s), CU_OK);
    assert_int_equal(cu_stmt_next(s, &row), CU_OK);
    assert_true(row);
    n = cu_stmt_int(s, 0);
    cu_stmt_done(s);
    return n;
}

static int64_t events_of(struct fixture *f, const char *customer)
{
    return count_of(f, "SELECT COUNT(*) FROM monitor_events WHERE customer = $1", customer);
}

static bool fired(const struct cu_monitor_decision *d, const char *reason)
{
    return d->verdict != NULL && strstr(d->verdict, reason) != NULL;
}

static void commits_event_decision_and_record(void **state)
{
    struct fixture *f = *state;
    struct job a = {0}, b = {0};
    struct cu_buf out;

    event_of(f, &a.ev, "login_failed", "c1", NULL);
    assert_int_equal(decide(f, &a), CU_OK);
    assert_int_equal(a.d.v.decision, CU_DEC_ALLOW);
    event_of(f, &b.ev, "login_failed", "c1", NULL);
    assert_int_equal(decide(f, &b), CU_OK);
    assert_true(fired(&b.d, "two failures in an hour"));
    assert_int_equal(b.d.v.score, 10);
    assert_int_equal(count_of(f, "SELECT COUNT(*) FROM monitor_events", NULL), 2);
    assert_int_equal(count_of(f, "SELECT COUNT(DISTINCT decision_id) FROM monitor_events", NULL),
                     2);
    assert_int_equal(
        count_of(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.decide'", NULL), 2);
    /* read back: the verdict, what the rule read (named as written, spaces made one), the event */
    cu_buf_init(&out, 1 << 16);
    assert_int_equal(cu_monitor_decision_get(f->conn, b.d.id, &out), CU_OK);
    assert_non_null(
        strstr(cu_buf_cstr(&out), "\"reads\":{\"count(customer, 1h, \\\"login_failed\\\")\":2}"));
    assert_non_null(strstr(cu_buf_cstr(&out), "\"source\":\"api\""));
    assert_non_null(strstr(cu_buf_cstr(&out), "\"event\":{\"type\":\"login_failed\""));
    cu_buf_reset(&out);
    assert_int_equal(cu_monitor_decision_get(f->conn, "dec_0000000000000000", &out),
                     CU_E_NOT_FOUND);
    cu_buf_free(&out);
    cu_monitor_decision_clear(&a.d);
    cu_monitor_decision_clear(&b.d);
}

/* What a rule read is shown exactly, named without the comments of the rule file. */
static void reads_exact_and_named(void **state)
{
    struct fixture *f = *state;
    struct job a = {0};
    char text[256], err[CU_MON_ERR_BYTES], when[CU_RFC3339_BYTES];
    struct cu_mon_parse_opts o = {.types = cu_monitor_types(f->m)};

    cu_clock_format(T0, when);
    snprintf(text, sizeof(text),
             "{\"type\":\"transfer\",\"time\":\"%s\",\"customer\":\"c9\",\"amount\":99999999,"
             "\"currency\":\"EUR\"}",
             when);
    assert_int_equal(cu_mon_event_parse(text, strlen(text), &o, &a.ev, err), CU_OK);
    assert_int_equal(decide(f, &a), CU_OK);
    assert_true(fired(&a.d, "big"));
    assert_string_equal(a.d.reads_doc, "{\"sum(customer, 1d, \\\"transfer\\\")\":99999999}");
    cu_monitor_decision_clear(&a.d);
}

static void failed_unit_keeps_nothing(void **state)
{
    struct fixture *f = *state;
    struct job a = {.fail = CU_E_INVALID};

    event_of(f, &a.ev, "login_failed", "c1", NULL);
    assert_int_equal(decide(f, &a), CU_E_INVALID);
    assert_int_equal(count_of(f, "SELECT COUNT(*) FROM monitor_events", NULL), 0);
    assert_int_equal(count_of(f, "SELECT COUNT(DISTINCT decision_id) FROM monitor_events", NULL),
                     0);
    assert_int_equal(
        count_of(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.decide'", NULL), 0);
    cu_monitor_decision_clear(&a.d);
}

static void run_again_counts_once(void **state)
{
    struct fixture *f = *state;
    struct job a = {.busy_runs = 2}, b = {0};
    char id[CU_DECISION_ID_BYTES];

    event_of(f, &a.ev, "login_failed", "c2", NULL);
    assert_int_equal(decide(f, &a), CU_OK);
    assert_int_equal(a.runs, 3);
    memcpy(id, a.d.id, sizeof(id));
    /* three runs, one decision: had the state counted each run, the first event would already
     * have been the second failure */
    assert_false(fired(&a.d, "two failures"));
    assert_int_equal(count_of(f, "SELECT COUNT(*) FROM monitor_events", NULL), 1);
    assert_int_equal(count_of(f, "SELECT COUNT(DISTINCT decision_id) FROM monitor_events", NULL),
                     1);
    event_of(f, &b.ev, "login_failed", "c2", NULL);
    assert_int_equal(decide(f, &b), CU_OK);
    assert_true(fired(&b.d, "two failures"));
    assert_int_equal(b.d.reads.n, 1);
    assert_true(b.d.reads.value[0] == 2.0);
    assert_string_not_equal(id, b.d.id);
    cu_monitor_decision_clear(&a.d);
    cu_monitor_decision_clear(&b.d);
}

/* A busy store at each statement of the unit in turn (its savepoint, the event, the
 * decision, the audit record, the group's commit ...): whatever the committer runs again, the
 * state counts the event once, and the store keeps it at most once. */
static void faults_count_once(void **state)
{
    struct fixture *f = *state;

    for (long n = 1; n <= 16; n++) {
        struct job a = {0}, b = {0};
        char cust[16];
        snprintf(cust, sizeof(cust), "f%ld", n);
        event_of(f, &a.ev, "login_failed", cust, NULL);
        cu_store_fail_next_with(f->st, n, CU_E_BUSY);
        enum cu_err rc = decide(f, &a);
        cu_store_fail_next(f->st, 0);
        assert_true(rc == CU_OK || rc == CU_E_BUSY);
        event_of(f, &b.ev, "login_failed", cust, NULL);
        assert_int_equal(decide(f, &b), CU_OK);
        if (b.d.reads.n != 1 || b.d.reads.value[0] != 2.0)
            fail_msg("a fault at statement %ld: the second event counted %g", n,
                     b.d.reads.n ? b.d.reads.value[0] : -1.0);
        int64_t kept = events_of(f, cust);
        assert_true(kept >= 1 && kept <= 2);
        cu_monitor_decision_clear(&a.d);
        cu_monitor_decision_clear(&b.d);
    }
}

static void pseudonyms_keep_networks(void **state)
{
    struct fixture *f = *state;
    struct job j[4];
    const char *ips[4] = {"203.0.113.1", "203.0.113.2", "203.0.113.3", "198.51.100.9"};
    uint8_t stored[4][16];
    struct cu_buf out;

    memset(j, 0, sizeof(j));
    for (int i = 0; i < 4; i++) {
        char cust[8];
        snprintf(cust, sizeof(cust), "n%d", i);
        event_of(f, &j[i].ev, "login_succeeded", cust, ips[i]);
        assert_int_equal(decide(f, &j[i]), CU_OK);
        /* stored as an address of fd00::/8, not as sent */
        const char *p = strstr(j[i].d.event_doc, "\"ip\":\"");
        char text[64];
        assert_non_null(p);
        snprintf(text, sizeof(text), "%.*s", (int)strcspn(p + 6, "\""), p + 6);
        assert_int_equal(inet_pton(AF_INET6, text, stored[i]), 1);
        assert_int_equal(stored[i][0], 0xfd);
        assert_null(strstr(j[i].d.event_doc, ips[i]));
    }
    /* one network, one network half; each address its own host half */
    assert_memory_equal(stored[0], stored[1], 8);
    assert_memory_equal(stored[0], stored[2], 8);
    assert_memory_not_equal(stored[0] + 8, stored[1] + 8, 8);
    assert_memory_not_equal(stored[0], stored[3], 8);
    /* so the third address of the network is counted as the third of it */
    assert_false(fired(&j[1].d, "three events from one network"));
    assert_true(fired(&j[2].d, "three events from one network"));
    assert_false(fired(&j[3].d, "three events from one network"));
    /* and the list matched the address sent, which the pseudonym is not in */
    assert_true(fired(&j[3].d, "a blocked network"));
    assert_int_equal(j[3].d.v.decision, CU_DEC_DENY);
    assert_false(fired(&j[0].d, "a blocked network"));
    cu_buf_init(&out, 1 << 16);
    assert_int_equal(cu_monitor_decision_get(f->conn, j[3].d.id, &out), CU_OK);
    assert_null(strstr(cu_buf_cstr(&out), "198.51.100.9"));
    cu_buf_free(&out);
    for (int i = 0; i < 4; i++)
        cu_monitor_decision_clear(&j[i].d);
}

/* A state rebuilt from the stored events decides as the one before it: the windows of a
 * customer and of a network (kept by their pseudonyms) count what came before the restart. */
static void rebuilt_state_decides_the_same(void **state)
{
    struct fixture *f = *state;
    struct job a = {0}, b = {0}, c = {0}, x = {0}, y = {0};
    struct cu_monitor_rebuilt r;
    struct cu_monitor *m2 = NULL;
    char err[CU_RULES_ERR_BYTES];

    event_of(f, &a.ev, "login_failed", "r1", NULL);
    event_of(f, &b.ev, "login_succeeded", "r2", "203.0.113.7");
    event_of(f, &c.ev, "login_succeeded", "r3", "203.0.113.8");
    assert_int_equal(decide(f, &a), CU_OK);
    assert_int_equal(decide(f, &b), CU_OK);
    assert_int_equal(decide(f, &c), CU_OK);
    /* the restart: a new service, its state empty, then rebuilt */
    struct cu_monitor_opts mo = {.rules_path = f->rules,
                                 .future_ms = 300000,
                                 .past_ms = 30LL * 86400000,
                                 .pseudonym = fake_pseudonym};
    assert_int_equal(cu_monitor_new(&mo, &m2, err), CU_OK);
    assert_int_equal(cu_monitor_rebuild(m2, f->conn, T0, &r), CU_OK);
    assert_int_equal(r.events, 3);
    assert_int_equal(r.skipped, 0);
    struct cu_monitor *m1 = f->m;
    f->m = m2;
    event_of(f, &x.ev, "login_failed", "r1", NULL);
    event_of(f, &y.ev, "login_succeeded", "r4", "203.0.113.9");
    assert_int_equal(decide(f, &x), CU_OK);
    assert_int_equal(decide(f, &y), CU_OK);
    assert_true(fired(&x.d, "two failures in an hour"));
    assert_true(fired(&y.d, "three events from one network"));
    /* and events older than the rebuild's reach are left out */
    struct cu_monitor *m3 = NULL;
    assert_int_equal(cu_monitor_new(&mo, &m3, err), CU_OK);
    assert_int_equal(cu_monitor_rebuild(m3, f->conn, T0 + CU_MONITOR_REBUILD_MS + 1, &r), CU_OK);
    assert_int_equal(r.events, 0);
    cu_monitor_free(m3);
    f->m = m1;
    cu_monitor_free(m2);
    struct job *all[] = {&a, &b, &c, &x, &y};
    for (size_t i = 0; i < 5; i++)
        cu_monitor_decision_clear(&all[i]->d);
}

static void bad_rules_and_times(void **state)
{
    struct fixture *f = *state;
    char path[300], err[CU_RULES_ERR_BYTES], terr[CU_MON_ERR_BYTES];
    struct cu_monitor *m = NULL;
    struct cu_mon_event ev;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/bad.rules", f->dir);
    assert_non_null(fp = fopen(path, "w"));
    assert_int_equal(
        fputs("rule x\n  when event.amount >=\n  then score 1, reason \"r\"\n", fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    struct cu_monitor_opts mo = {.rules_path = path};
    assert_int_equal(cu_monitor_new(&mo, &m, err), CU_E_INVALID);
    assert_null(m);
    assert_non_null(strstr(err, "bad.rules:3:"));
    mo.rules_path = "/nonexistent/x.rules";
    assert_int_equal(cu_monitor_new(&mo, &m, err), CU_E_IO);
    assert_non_null(strstr(err, "cannot open"));
    mo.rules_path = NULL;
    mo.types = "card_added login_failed";
    assert_int_equal(cu_monitor_new(&mo, &m, err), CU_E_INVALID);
    assert_non_null(strstr(err, "event_types"));

    event_of(f, &ev, "login_failed", "c1", NULL);
    assert_int_equal(cu_monitor_check_time(f->m, &ev, T0, terr), CU_OK);
    assert_int_equal(cu_monitor_check_time(f->m, &ev, T0 - 300001, terr), CU_E_INVALID);
    assert_non_null(strstr(terr, "300 seconds ahead"));
    assert_int_equal(cu_monitor_check_time(f->m, &ev, T0 + 30LL * 86400000 + 1, terr),
                     CU_E_INVALID);
    assert_non_null(strstr(terr, "30 days in the past"));
}

/* ---- actions ---- */

/* Effect doubles: each writes a row naming itself in the unit's transaction; fail_freeze makes
 * the freeze fail. */
static bool fail_freeze;

static enum cu_err log_fx(struct cu_db *db, const char *kind, const char *customer)
{
    static const char sql[] = "INSERT INTO fx_log (kind, customer) VALUES ($1, $2)";
    const struct cu_val p[] = {CU_VT(kind), CU_VT(customer)};
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

static bool fx_is_customer(void *arg, struct cu_db *db, const char *customer)
{
    (void)arg;
    (void)db;
    return strncmp(customer, "cus_", 4) == 0;
}

static enum cu_err fx_freeze(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                             const char *reason, int64_t until, int64_t *n)
{
    (void)arg;
    (void)w;
    assert_non_null(strstr(reason, "monitoring decision dec_"));
    assert_true(until == T0 + 3600000);
    *n = 2;
    return fail_freeze ? CU_E_IO : log_fx(db, "freeze", customer);
}

static enum cu_err fx_lock(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                           int64_t until)
{
    (void)arg;
    (void)w;
    assert_true(until == T0 + 1800000);
    return log_fx(db, "lock", customer);
}

static enum cu_err fx_revoke(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                             int64_t *n)
{
    (void)arg;
    (void)w;
    *n = 3;
    return log_fx(db, "revoke", customer);
}

static enum cu_err fx_notify(void *arg, struct cu_work *w, struct cu_db *db, const char *customer,
                             const struct cu_monitor_notice *nt)
{
    (void)arg;
    (void)w;
    assert_int_equal(strncmp(nt->decision, "dec_", 4), 0);
    assert_string_equal(nt->event_type, "transfer");
    assert_string_equal(nt->template_name, "security_notice");
    assert_non_null(nt->event);
    return log_fx(db, "notify", customer);
}

/* The actions on the customer are applied in the deciding unit: with the event, its decision
 * and its audit record, or (a freeze that fails) none of them; and only to a vault customer. */
static void actions_applied_in_unit(void **state)
{
    struct fixture *f = *state;
    static const char text[] = "rule takeover\n"
                               "  when event.type == \"transfer\"\n"
                               "  then freeze_account 1h, lock_login 30m, revoke_sessions,\n"
                               "       notify_customer, hold, reason \"looks like a takeover\"\n";
    const struct cu_monitor_effects fx = {.freeze = fx_freeze,
                                          .lock = fx_lock,
                                          .revoke = fx_revoke,
                                          .notify = fx_notify,
                                          .is_customer = fx_is_customer};
    char path[320], err[CU_RULES_ERR_BYTES];
    struct cu_monitor_opts mo = {.rules_path = path, .future_ms = 300000, .past_ms = 86400000};
    struct job a = {0}, b = {0}, c = {0};
    FILE *fp;

    snprintf(path, sizeof(path), "%s/fx.rules", f->dir);
    assert_non_null(fp = fopen(path, "w"));
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    cu_monitor_free(f->m);
    assert_int_equal(cu_monitor_new(&mo, &f->m, err), CU_OK);
    cu_monitor_set_effects(f->m, &fx);
    assert_int_equal(cu_db_exec(f->conn, "CREATE TABLE fx_log (kind TEXT, customer TEXT)", NULL, 0),
                     CU_OK);

    /* a freeze that fails: the unit fails, and nothing of it is kept */
    fail_freeze = true;
    event_of(f, &a.ev, "transfer", "cus_1", NULL);
    assert_int_equal(decide(f, &a), CU_E_IO);
    assert_int_equal(events_of(f, "cus_1"), 0);
    assert_int_equal(count_of(f, "SELECT COUNT(*) FROM fx_log", NULL), 0);
    assert_int_equal(
        count_of(f, "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.decide'", NULL), 0);

    /* they all apply, in the one unit, and the decision says what they did */
    fail_freeze = false;
    event_of(f, &b.ev, "transfer", "cus_1", NULL);
    assert_int_equal(decide(f, &b), CU_OK);
    assert_int_equal(events_of(f, "cus_1"), 1);
    assert_int_equal(count_of(f, "SELECT COUNT(*) FROM fx_log WHERE customer = $1", "cus_1"), 4);
    assert_non_null(strstr(b.d.verdict, "\"applied\":{\"freeze_account\":{\"accounts\":2,"
                                        "\"until\":\"2027-01-15T09:00:00.000Z\"},"));
    assert_non_null(strstr(b.d.verdict, "\"revoke_sessions\":{\"sessions\":3},"
                                        "\"notify_customer\":{\"queued\":true}}"));
    assert_non_null(strstr(b.d.verdict, "\"lock_login\":{\"locked\":true"));

    /* a reference that is no vault customer: decided, nothing done to it */
    event_of(f, &c.ev, "transfer", "c-outside", NULL);
    assert_int_equal(decide(f, &c), CU_OK);
    assert_int_equal(c.d.v.decision, CU_DEC_HOLD);
    assert_int_equal(count_of(f, "SELECT COUNT(*) FROM fx_log WHERE customer = $1", "c-outside"),
                     0);
    assert_non_null(strstr(c.d.verdict, "\"applied\":{\"skipped\":"));
    cu_monitor_decision_clear(&a.d);
    cu_monitor_decision_clear(&b.d);
    cu_monitor_decision_clear(&c.d);
}

/* ---- rule sets: two changes in one group ---- */

struct act {
    struct cu_monitor *m;
    int64_t version;
    const char *as;
    struct cu_monitor_swap *swap;
    enum cu_err swapped;
};

static enum cu_err propose_two(struct cu_work *w, struct cu_db *db, void *arg)
{
    static const char a[] = "rule big when event.amount > 100 then hold, reason \"big\"\n";
    static const char b[] = "rule tiny when event.amount > 1 then review, reason \"tiny\"\n";
    struct cu_monitor *m = arg;
    int64_t v;
    char sha[65];
    enum cu_err rc = cu_rulesets_propose(m, w, db, a, strlen(a), "", 1, &v, sha);
    if (rc == CU_OK)
        rc = cu_rulesets_propose(m, w, db, b, strlen(b), "", 1, &v, sha);
    return rc;
}

static void act_effect(void *arg, struct cu_db *db)
{
    struct act *x = arg;
    x->swapped = cu_monitor_swap_commit(x->m, x->swap, db);
}

static enum cu_err act_apply(struct cu_work *w, struct cu_db *db, void *arg)
{
    struct act *x = arg;
    char why[CU_RULES_ERR_BYTES];
    enum cu_err rc = cu_rulesets_activate(x->m, w, db, x->version, x->as, &x->swap, why);
    if (rc == CU_OK)
        rc = cu_work_after(w, act_effect, x);
    return rc;
}

/* Two changes of the sets in force prepared in one group (two approvals at once) are both in
 * force after it, as the store's statuses say; neither keeps what the other freed. */
static void two_changes_in_one_group(void **state)
{
    struct fixture *f = *state;
    struct cu_work *w = NULL;
    struct act a = {f->m, 1, "live", NULL, CU_OK}, b = {f->m, 2, "shadow", NULL, CU_OK};
    struct job j = {0};
    char text[256], err[CU_MON_ERR_BYTES], when[CU_RFC3339_BYTES];
    struct cu_mon_parse_opts o = {.types = cu_monitor_types(f->m)};
    int64_t live = 0, shadow = 0;

    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_work_add(w, propose_two, f->m), CU_OK);
    assert_int_equal(cu_committer_run(f->c, w), CU_OK);
    cu_work_free(w);
    assert_int_equal(cu_work_new(NULL, &w), CU_OK);
    assert_int_equal(cu_work_add(w, act_apply, &a), CU_OK);
    assert_int_equal(cu_work_add(w, act_apply, &b), CU_OK);
    assert_int_equal(cu_committer_run(f->c, w), CU_OK);
    cu_work_free(w);
    cu_monitor_swap_free(a.swap);
    cu_monitor_swap_free(b.swap);
    assert_int_equal(a.swapped, CU_OK);
    assert_int_equal(b.swapped, CU_OK);
    cu_monitor_in_force(f->m, &live, &shadow);
    assert_int_equal(live, 1);
    assert_int_equal(shadow, 2);
    /* the next event: decided by version 1, with version 2 in shadow */
    cu_clock_format(T0, when);
    snprintf(text, sizeof(text),
             "{\"type\":\"transfer\",\"time\":\"%s\",\"customer\":\"c1\",\"amount\":500,"
             "\"currency\":\"EUR\"}",
             when);
    assert_int_equal(cu_mon_event_parse(text, strlen(text), &o, &j.ev, err), CU_OK);
    assert_int_equal(decide(f, &j), CU_OK);
    assert_int_equal(j.d.v.decision, CU_DEC_HOLD);
    assert_true(j.d.has_shadow);
    assert_int_equal(j.d.shadow.decision, CU_DEC_REVIEW);
    cu_monitor_decision_clear(&j.d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(commits_event_decision_and_record, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_unit_keeps_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_exact_and_named, setup, teardown),
        cmocka_unit_test_setup_teardown(run_again_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(faults_count_once, setup, teardown),
        cmocka_unit_test_setup_teardown(pseudonyms_keep_networks, setup, teardown),
        cmocka_unit_test_setup_teardown(rebuilt_state_decides_the_same, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_rules_and_times, setup, teardown),
        cmocka_unit_test_setup_teardown(actions_applied_in_unit, setup, teardown),
        cmocka_unit_test_setup_teardown(two_changes_in_one_group, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
