/*
 * test_policy.c - the access policy: a table of decisions over roles, grants, permits with
 * conditions and forbids, at the edges (a minute either side of a window of hours, across a
 * change to summer time, the first and last address of a CIDR block), the explanation of each,
 * and a table of policies that must be refused at a given line and column.
 */
#include "cu_test.h"

#include <time.h>

#include "access/policy.h"
#include "identity/apikey.h"

static const char policy_text[] =
    "# a company's policy\n"
    "version 1\n"
    "network office 10.20.0.0/16 2001:db8:1::/48\n"
    "hours working mon-fri 08:00-18:00 Europe/London\n"
    "hours night daily 22:00-06:00 UTC\n"
    "region emea GB IE FR DE\n"
    "region amer US CA\n"
    "role regional_support\n"
    "permit regional_support customers.read masked\n"
    "    when customer.region == staff.region and ip in office and time in working\n"
    "permit regional_support customers.credentials when session.aal >= 2 and session.age < 15m\n"
    "role support_agent customers.read\n"
    "role night_ops metrics.read\n"
    "permit night_ops audit.read when time in night\n"
    "grant regional_support to staff when staff.department == \"support\"\n"
    "grant auditor to staff:stf_00000000000000ad when staff.training_valid_until > now\n"
    "grant night_ops to apikey:ak_00000000000000f0\n"
    "forbid customers.unmask when session.aal < 2\n"
    "forbid customers.read when \"blocked\" in customer.tags\n"
    "forbid * to apikey when not ip in office\n"
    "approve customers.erase by 2 within 24h\n";

/* ms(y, mo, d, h, mi): that UTC instant in Unix ms. */
static int64_t ms(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

struct row {
    const char *name;
    const char *subject; /* st_sup st_us st_aud st_none st_admin ak_legacy ak_ops */
    uint64_t permission;
    const char *country; /* NULL: no customer */
    const char *tag;     /* one tag of the customer, or NULL */
    const char *ip;      /* NULL: none */
    int at[5];           /* UTC: year, month, day, hour, minute */
    int aal;             /* for staff */
    int64_t age_min;     /* session age, minutes */
    int64_t training;    /* st_aud's training_valid_until relative to now, minutes; 0 unset */
    enum cu_access_effect want;
    const char *by;     /* a part of decided_by */
    const char *failed; /* a part of failed, or NULL for "" */
};

#define FRI(h, m)                                                                                  \
    {                                                                                              \
        2026, 3, 27, h, m                                                                          \
    } /* London on GMT: UTC = local */
#define MON(h, m)                                                                                  \
    {                                                                                              \
        2026, 3, 30, h, m                                                                          \
    } /* London on BST since the 29th: local = UTC + 1 */
#define R CU_SCOPE_CUSTOMERS_READ
#define MASKED CU_ACCESS_ALLOW_MASKED

static const struct row rows[] = {
    {"in region, office, working hours", "st_sup", R, "GB", NULL, "10.20.1.1", FRI(8, 0), 2, 5, 0,
     MASKED, "role regional_support, permit at test.policy:9", NULL},
    {"a minute before the window", "st_sup", R, "GB", NULL, "10.20.1.1", FRI(7, 59), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support",
     "time in working (test.policy:10:63): time is "
     "2026-03-27 07:59 Europe/London"},
    {"the window's last minute", "st_sup", R, "GB", NULL, "10.20.1.1", FRI(17, 59), 2, 5, 0, MASKED,
     "regional_support", NULL},
    {"the window's end is outside it", "st_sup", R, "GB", NULL, "10.20.1.1", FRI(18, 0), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support", "time in working"},
    {"Saturday",
     "st_sup",
     R,
     "GB",
     NULL,
     "10.20.1.1",
     {2026, 3, 28, 12, 0},
     2,
     5,
     0,
     CU_ACCESS_DENY,
     "regional_support",
     "time in working"},
    {"summer time: 08:00 BST is 07:00 UTC", "st_sup", R, "GB", NULL, "10.20.1.1", MON(7, 0), 2, 5,
     0, MASKED, "regional_support", NULL},
    {"summer time: 07:59 BST is outside", "st_sup", R, "GB", NULL, "10.20.1.1", MON(6, 59), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support", "time is 2026-03-30 07:59 Europe/London"},
    {"summer time: 17:59 BST is 16:59 UTC", "st_sup", R, "GB", NULL, "10.20.1.1", MON(16, 59), 2, 5,
     0, MASKED, "regional_support", NULL},
    {"summer time: 18:00 BST is 17:00 UTC", "st_sup", R, "GB", NULL, "10.20.1.1", MON(17, 0), 2, 5,
     0, CU_ACCESS_DENY, "regional_support", "time in working"},
    {"another region's customer", "st_sup", R, "US", NULL, "10.20.1.1", FRI(9, 0), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support",
     "customer.region == staff.region (test.policy:10:10): customer.region did not match, "
     "staff.region is \"emea\""},
    {"a customer of no region", "st_sup", R, "JP", NULL, "10.20.1.1", FRI(9, 0), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support", "customer.region is not known"},
    {"the other region's agent", "st_us", R, "US", NULL, "10.20.1.1", FRI(9, 0), 2, 5, 0, MASKED,
     "regional_support", NULL},
    {"first address of the block", "st_sup", R, "GB", NULL, "10.20.0.0", FRI(9, 0), 2, 5, 0, MASKED,
     "regional_support", NULL},
    {"last address of the block", "st_sup", R, "GB", NULL, "10.20.255.255", FRI(9, 0), 2, 5, 0,
     MASKED, "regional_support", NULL},
    {"just below the block", "st_sup", R, "GB", NULL, "10.19.255.255", FRI(9, 0), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support", "ip in office (test.policy:10:46): ip did not match"},
    {"just above the block", "st_sup", R, "GB", NULL, "10.21.0.0", FRI(9, 0), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support", "ip in office"},
    {"IPv6, first of the block", "st_sup", R, "GB", NULL, "2001:db8:1::", FRI(9, 0), 2, 5, 0,
     MASKED, "regional_support", NULL},
    {"IPv6, last of the block", "st_sup", R, "GB", NULL, "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
     FRI(9, 0), 2, 5, 0, MASKED, "regional_support", NULL},
    {"IPv6, next block", "st_sup", R, "GB", NULL, "2001:db8:2::", FRI(9, 0), 2, 5, 0,
     CU_ACCESS_DENY, "regional_support", "ip in office"},
    {"no address known", "st_sup", R, "GB", NULL, NULL, FRI(9, 0), 2, 5, 0, CU_ACCESS_DENY,
     "regional_support", "ip is not known"},
    {"no customer yet: a forbid on customers holds until one is known", "st_sup", R, NULL, NULL,
     "10.20.1.1", FRI(9, 0), 2, 5, 0, CU_ACCESS_DENY, "forbid at test.policy:19", NULL},
    {"a blocked customer: forbid wins over admin", "st_admin", R, "GB", "blocked", "10.20.1.1",
     FRI(9, 0), 2, 5, 0, CU_ACCESS_DENY, "forbid at test.policy:19", NULL},
    {"credentials at aal2 in a young session", "st_sup", CU_SCOPE_CUSTOMERS_CREDENTIALS, NULL, NULL,
     "10.20.1.1", FRI(9, 0), 2, 14, 0, CU_ACCESS_ALLOW, "permit at test.policy:11", NULL},
    {"credentials in a session 15 minutes old", "st_sup", CU_SCOPE_CUSTOMERS_CREDENTIALS, NULL,
     NULL, "10.20.1.1", FRI(9, 0), 2, 15, 0, CU_ACCESS_DENY, "regional_support",
     "session.age < 15m (test.policy:11:73): session.age is 900s"},
    {"credentials at aal1", "st_sup", CU_SCOPE_CUSTOMERS_CREDENTIALS, NULL, NULL, "10.20.1.1",
     FRI(9, 0), 1, 5, 0, CU_ACCESS_DENY, "regional_support", "session.aal >= 2"},
    {"unmask at aal1: forbidden even to admin", "st_admin", CU_SCOPE_CUSTOMERS_UNMASK, "GB", NULL,
     "10.20.1.1", FRI(9, 0), 1, 5, 0, CU_ACCESS_DENY, "forbid at test.policy:18", NULL},
    {"unmask at aal2 for admin", "st_admin", CU_SCOPE_CUSTOMERS_UNMASK, "GB", NULL, "10.20.1.1",
     FRI(9, 0), 2, 5, 0, CU_ACCESS_ALLOW, "role admin (built in)", NULL},
    {"erase needs two approvers", "st_admin", CU_SCOPE_CUSTOMERS_ERASE, "GB", NULL, "10.20.1.1",
     FRI(9, 0), 2, 5, 0, CU_ACCESS_NEEDS_APPROVAL, "role admin", NULL},
    {"a key's own permission from the office", "ak_legacy", R, "GB", NULL, "10.20.9.9", FRI(3, 0),
     0, 0, 0, CU_ACCESS_ALLOW, "the principal's own permissions", NULL},
    {"a key from outside the office", "ak_legacy", R, "GB", NULL, "192.0.2.1", FRI(3, 0), 0, 0, 0,
     CU_ACCESS_DENY, "forbid at test.policy:20", NULL},
    {"a key with no address: the forbid applies", "ak_legacy", R, "GB", NULL, NULL, FRI(3, 0), 0, 0,
     0, CU_ACCESS_DENY, "forbid at test.policy:20", NULL},
    {"night role at night",
     "ak_ops",
     CU_SCOPE_AUDIT_READ,
     NULL,
     NULL,
     "10.20.0.5",
     {2026, 3, 27, 22, 0},
     0,
     0,
     0,
     CU_ACCESS_ALLOW,
     "role night_ops, permit at test.policy:14",
     NULL},
    {"night ends at 06:00",
     "ak_ops",
     CU_SCOPE_AUDIT_READ,
     NULL,
     NULL,
     "10.20.0.5",
     {2026, 3, 28, 6, 0},
     0,
     0,
     0,
     CU_ACCESS_DENY,
     "night_ops",
     "time in night"},
    {"night's last minute",
     "ak_ops",
     CU_SCOPE_AUDIT_READ,
     NULL,
     NULL,
     "10.20.0.5",
     {2026, 3, 28, 5, 59},
     0,
     0,
     0,
     CU_ACCESS_ALLOW,
     "night_ops",
     NULL},
    {"before night",
     "ak_ops",
     CU_SCOPE_AUDIT_READ,
     NULL,
     NULL,
     "10.20.0.5",
     {2026, 3, 27, 21, 59},
     0,
     0,
     0,
     CU_ACCESS_DENY,
     "night_ops",
     "time in night"},
    {"a role line without a condition", "ak_ops", CU_SCOPE_METRICS_READ, NULL, NULL, "10.20.0.5",
     FRI(12, 0), 0, 0, 0, CU_ACCESS_ALLOW, "role night_ops, permit at test.policy:13", NULL},
    {"a grant by id to the other kind does not hold", "st_ops", CU_SCOPE_METRICS_READ, NULL, NULL,
     "10.20.0.5", FRI(12, 0), 2, 5, 0, CU_ACCESS_DENY, "no grant",
     "neither the principal nor a role it holds has metrics.read"},
    {"auditor while trained", "st_aud", CU_SCOPE_AUDIT_READ, NULL, NULL, "10.20.0.5", FRI(12, 0), 2,
     5, 60, CU_ACCESS_ALLOW, "role auditor (built in)", NULL},
    {"auditor whose training lapsed", "st_aud", CU_SCOPE_AUDIT_READ, NULL, NULL, "10.20.0.5",
     FRI(12, 0), 2, 5, -1, CU_ACCESS_DENY, "no grant",
     "neither the principal nor a role it holds has"},
    {"auditor with no training on record", "st_aud", CU_SCOPE_AUDIT_READ, NULL, NULL, "10.20.0.5",
     FRI(12, 0), 2, 5, 0, CU_ACCESS_DENY, "no grant", NULL},
    {"a role lists only what it lists", "st_aud", CU_SCOPE_CUSTOMERS_READ, "GB", NULL, "10.20.0.5",
     FRI(12, 0), 2, 5, 60, CU_ACCESS_DENY, "no grant", NULL},
    {"nothing held, nothing allowed", "st_none", CU_SCOPE_METRICS_READ, NULL, NULL, "10.20.0.5",
     FRI(12, 0), 2, 5, 0, CU_ACCESS_DENY, "no grant", NULL},
    {"a redefined built-in role", "st_agent", R, "US", NULL, "192.0.2.9", FRI(12, 0), 2, 5, 0,
     CU_ACCESS_ALLOW, "role support_agent, permit at test.policy:12", NULL},
    {"the redefined role loses what it no longer lists", "st_agent", CU_SCOPE_CUSTOMERS_CREDENTIALS,
     NULL, NULL, "192.0.2.9", FRI(12, 0), 2, 5, 0, CU_ACCESS_DENY, "no grant", NULL},
};

static void subject_of(const struct row *rw, int64_t now, struct cu_access_subject *s)
{

    memset(s, 0, sizeof(*s));
    s->id = strcmp(rw->subject, "st_aud") == 0   ? "stf_00000000000000ad"
            : strcmp(rw->subject, "ak_ops") == 0 ? "ak_00000000000000f0"
            : strcmp(rw->subject, "st_ops") == 0 ? "stf_00000000000000f0"
                                                 : rw->subject;
    s->kind = strncmp(rw->subject, "ak_", 3) == 0 ? CU_ACCESS_APIKEY : CU_ACCESS_STAFF;
    if (s->kind == CU_ACCESS_STAFF) {
        s->aal = rw->aal;
        s->session_started_at = now - rw->age_min * 60000;
    }
    if (strcmp(rw->subject, "st_sup") == 0 || strcmp(rw->subject, "st_us") == 0) {
        s->department = "support";
        s->region = strcmp(rw->subject, "st_sup") == 0 ? "emea" : "amer";
    } else if (strcmp(rw->subject, "st_admin") == 0) {
        s->roles = "admin";
    } else if (strcmp(rw->subject, "st_agent") == 0) {
        s->roles = "support_agent";
        s->department = "sales";
    } else if (strcmp(rw->subject, "ak_legacy") == 0) {
        s->permissions = CU_SCOPE_CUSTOMERS_READ;
    } else if (strcmp(rw->subject, "st_aud") == 0 && rw->training != 0) {
        s->training_valid_until = now + rw->training * 60000;
    }
}

static void test_decisions(void **state)
{
    struct cu_policy *p = NULL;
    struct cu_policy_error err;
    (void)state;

    if (cu_policy_parse("test.policy", policy_text, strlen(policy_text), &p, &err) != CU_OK) {
        char msg[512];
        cu_policy_error_format(&err, msg, sizeof msg);
        fail_msg("%s", msg);
    }
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *rw = &rows[i];
        struct cu_access_subject s;
        struct cu_access_resource r = {.id = "cus_1", .country = rw->country, .status = "active"};
        const char *tags[1] = {rw->tag};
        int64_t now = ms(rw->at[0], rw->at[1], rw->at[2], rw->at[3], rw->at[4]);
        struct cu_access_env e = {.now_ms = now};
        struct cu_access_why why;
        enum cu_access_effect got, fast;

        subject_of(rw, now, &s);
        if (rw->tag) {
            r.tags = tags;
            r.ntags = 1;
        }
        if (rw->ip) {
            e.has_ip = true;
            assert_int_equal(cu_ip_parse(rw->ip, &e.ip), CU_OK);
        }
        got = cu_policy_decide(p, &s, rw->permission, rw->country ? &r : NULL, &e, &why);
        fast = cu_policy_decide(p, &s, rw->permission, rw->country ? &r : NULL, &e, NULL);
        if (got != rw->want || fast != got || why.effect != got ||
            strstr(why.decided_by, rw->by) == NULL ||
            (rw->failed && strstr(why.failed, rw->failed) == NULL))
            fail_msg("%s: got %s (fast %s) by \"%s\", failed \"%s\"; want %s by \"%s\" failed "
                     "\"%s\"",
                     rw->name, cu_access_effect_name(got), cu_access_effect_name(fast),
                     why.decided_by, why.failed, cu_access_effect_name(rw->want), rw->by,
                     rw->failed ? rw->failed : "");
        if (got == CU_ACCESS_ALLOW || got == CU_ACCESS_ALLOW_MASKED)
            assert_string_equal(why.failed, "");
        if (got == CU_ACCESS_NEEDS_APPROVAL) {
            assert_int_equal(why.approvals, 2);
            assert_int_equal(why.approval_ms, 24 * 3600 * 1000LL);
        }
    }
    cu_policy_free(p);
}

/* Before the customer is read: whether a permit could hold for some customer. */
static void test_could(void **state)
{
    struct cu_policy *p = NULL;
    struct cu_policy_error err;
    struct cu_access_subject s = {.kind = CU_ACCESS_STAFF,
                                  .id = "st_sup",
                                  .department = "support",
                                  .region = "emea",
                                  .aal = 2};
    struct cu_access_env e = {.now_ms = ms(2026, 3, 27, 9, 0), .has_ip = true};
    (void)state;

    assert_int_equal(cu_policy_parse("test.policy", policy_text, strlen(policy_text), &p, &err),
                     CU_OK);
    s.session_started_at = e.now_ms - 60000;
    assert_int_equal(cu_ip_parse("10.20.3.4", &e.ip), CU_OK);
    assert_true(cu_policy_could(p, &s, CU_SCOPE_CUSTOMERS_READ, &e));
    /* outside the office the permit is false whatever the customer */
    assert_int_equal(cu_ip_parse("192.0.2.1", &e.ip), CU_OK);
    assert_false(cu_policy_could(p, &s, CU_SCOPE_CUSTOMERS_READ, &e));
    assert_false(cu_policy_could(p, &s, CU_SCOPE_AUDIT_READ, &e));
    cu_policy_free(p);
}

/* A grant whose condition reads the customer counts before the customer is known (could),
 * and is decided once it is; the grant rule (may_give) needs a permission on every customer,
 * but a forbid binding every principal binds the one given it too, so it does not count. */
static void test_customer_grants(void **state)
{
    static const char text[] = "version 1\n"
                               "region emea GB FR\n"
                               "role viewer\n"
                               "permit viewer customers.read\n"
                               "grant viewer to staff when customer.region == staff.region\n"
                               "role opener customers.unmask customers.write\n"
                               "forbid customers.unmask when \"vip\" in customer.tags\n"
                               "forbid customers.write to staff:stf_0000000000000001 when "
                               "customer.status == \"closed\"\n";
    struct cu_policy *p = NULL;
    struct cu_policy_error err;
    struct cu_access_subject s = {
        .kind = CU_ACCESS_STAFF, .id = "stf_0000000000000001", .region = "emea", .aal = 2};
    struct cu_access_env e = {.now_ms = ms(2026, 3, 27, 9, 0)};
    const char *vip[] = {"vip"};
    struct cu_access_resource gb = {.id = "cus_1", .country = "GB", .status = "active"};
    struct cu_access_resource us = {.id = "cus_2", .country = "US", .status = "active"};
    struct cu_access_resource gb_vip = {
        .id = "cus_3", .country = "GB", .status = "active", .tags = vip, .ntags = 1};
    (void)state;

    assert_int_equal(cu_policy_parse("t.policy", text, strlen(text), &p, &err), CU_OK);
    assert_true(cu_policy_could(p, &s, CU_SCOPE_CUSTOMERS_READ, &e));
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_READ, &gb, &e, NULL),
                     CU_ACCESS_ALLOW);
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_READ, &us, &e, NULL),
                     CU_ACCESS_DENY);
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_READ, NULL, &e, NULL),
                     CU_ACCESS_DENY);
    /* the grant holds for some customers only: not enough to give customers.read */
    assert_int_equal(cu_policy_may_give(p, &s, CU_SCOPE_CUSTOMERS_READ, &e), CU_ACCESS_DENY);

    s.roles = "opener";
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_UNMASK, &gb, &e, NULL),
                     CU_ACCESS_ALLOW);
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_UNMASK, &gb_vip, &e, NULL),
                     CU_ACCESS_DENY);
    /* a forbid for everyone binds the one given unmask too: it may be given */
    assert_int_equal(cu_policy_may_give(p, &s, CU_SCOPE_CUSTOMERS_UNMASK, &e), CU_ACCESS_ALLOW);
    /* a forbid on this staff member alone does not bind another: write may not be given */
    assert_int_equal(cu_policy_may_give(p, &s, CU_SCOPE_CUSTOMERS_WRITE, &e), CU_ACCESS_DENY);
    assert_true(cu_policy_could(p, &s, CU_SCOPE_CUSTOMERS_WRITE, &e));
    s.id = "stf_0000000000000002";
    assert_int_equal(cu_policy_may_give(p, &s, CU_SCOPE_CUSTOMERS_WRITE, &e), CU_ACCESS_ALLOW);
    cu_policy_free(p);
}

static void test_default_policy(void **state)
{
    struct cu_policy *p = NULL;
    struct cu_access_subject s = {.kind = CU_ACCESS_STAFF, .id = "st_1", .aal = 2};
    struct cu_access_env e = {.now_ms = ms(2026, 3, 27, 9, 0)};
    (void)state;

    assert_int_equal(cu_policy_default(&p), CU_OK);
    assert_string_equal(cu_policy_source(p), "built-in");
    assert_int_equal(strlen(cu_policy_digest(p)), 64);
    s.roles = "admin";
    for (uint64_t b = 1; b <= cu_apikey_all_scopes(); b <<= 1)
        assert_int_equal(cu_policy_decide(p, &s, b, NULL, &e, NULL), CU_ACCESS_ALLOW);
    s.roles = "support_agent";
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_READ, NULL, &e, NULL),
                     CU_ACCESS_ALLOW);
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_WRITE, NULL, &e, NULL),
                     CU_ACCESS_DENY);
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_UNMASK, NULL, &e, NULL),
                     CU_ACCESS_DENY);
    s.roles = "nobody auditor";
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_AUDIT_READ, NULL, &e, NULL), CU_ACCESS_ALLOW);
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_CUSTOMERS_READ, NULL, &e, NULL),
                     CU_ACCESS_DENY);
    s.roles = "nobody auditorx audito";
    assert_int_equal(cu_policy_decide(p, &s, CU_SCOPE_AUDIT_READ, NULL, &e, NULL), CU_ACCESS_DENY);
    /* two bits at once, and a bit no permission has, decide nothing */
    s.roles = "admin";
    assert_int_equal(
        cu_policy_decide(p, &s, CU_SCOPE_AUDIT_READ | CU_SCOPE_METRICS_READ, NULL, &e, NULL),
        CU_ACCESS_DENY);
    assert_int_equal(cu_policy_decide(p, &s, 1ull << 50, NULL, &e, NULL), CU_ACCESS_DENY);
    assert_true(cu_policy_has_role(p, "compliance_officer"));
    assert_false(cu_policy_has_role(p, "nobody"));
    assert_int_equal(cu_policy_role_permissions(p, "support_agent"),
                     CU_SCOPE_CUSTOMERS_READ | CU_SCOPE_CUSTOMERS_CREDENTIALS);
    cu_policy_free(p);
    cu_policy_free(NULL);
}

struct bad {
    const char *text;
    int line, col;
    const char *reason;
};

static const struct bad bads[] = {
    {"", 1, 1, "a policy starts with 'version 1'"},
    {"# nothing\n\n", 3, 1, "a policy starts with 'version 1'"},
    {"role r\n", 1, 1, "a policy starts with 'version 1'"},
    {"version 2\n", 1, 9, "this custodia reads policy version 1"},
    {"version 1\nversion 1\n", 2, 1, "'version' comes once"},
    {"version 1\nrole r customers.reed\n", 2, 8, "unknown permission 'customers.reed'"},
    {"version 1\nrole R\n", 2, 6, "expected the role's name"},
    {"version 1\nrole r\nrole r\n", 3, 6, "role 'r' is defined already"},
    {"version 1\nnetwork office 10.0.0.0/33\n", 2, 16, "no valid prefix length (0 to 32)"},
    {"version 1\nnetwork office 10.0.0.1/8\n", 2, 16, "bits set past its prefix"},
    {"version 1\nnetwork office 300.1.1.1\n", 2, 16, "'300.1.1.1' is not an IPv4 or IPv6 address"},
    {"version 1\nnetwork office 2001:db8::/129\n", 2, 16, "(0 to 128)"},
    {"version 1\nnetwork office\n", 2, 15, "at least one"},
    {"version 1\nnetwork a 10.0.0.0/8\nregion a GB\n", 3, 8, "'a' is defined already"},
    {"version 1\nhours h mon-fri 08:00-18:00 Europe/Nowhere\n", 2, 29, "no such time zone"},
    {"version 1\nhours h mon-fri 08:00-18:00 ../../etc/passwd\n", 2, 29, "no such time zone"},
    {"version 1\nhours h mon-fry 08:00-18:00 UTC\n", 2, 9, "'mon-fry' is not a day"},
    {"version 1\nhours h mon-fri 08:00-25:00 UTC\n", 2, 17, "not a window of local time"},
    {"version 1\nhours h mon-fri 8-18 UTC\n", 2, 17, "expected a window of local time"},
    {"version 1\nregion emea GBR\n", 2, 13, "expected a country code"},
    {"version 1\nrole r\npermit r customers.read when session.aal == \"two\"\n", 3, 30,
     "compares a number with a string"},
    {"version 1\nrole r\npermit r customers.read when staff.region < \"x\"\n", 3, 30,
     "strings compare only with == and !="},
    {"version 1\nrole r\npermit r customers.read when session.age > 5\n", 3, 30,
     "compares a duration with a number"},
    {"version 1\nrole r\npermit r customers.read when staff.colour == \"x\"\n", 3, 30,
     "unknown attribute or name 'staff.colour'"},
    {"version 1\nrole r\npermit r customers.read when ip in nowhere\n", 3, 36,
     "unknown attribute or name 'nowhere'"},
    {"version 1\nrole r\npermit r customers.read when ip in [\"10.0.0.1\"]\n", 3, 30,
     "'in' cannot test an address against a list"},
    {"version 1\nrole r\npermit r customers.read when 1 == 1\n", 3, 30, "names no attribute"},
    {"version 1\nrole r\npermit r customers.read when (session.aal > 1\n", 3, 46, "expected ')'"},
    {"version 1\nrole r\npermit r customers.read when session.aal = 2\n", 3, 42,
     "'=' alone is no operator"},
    {"version 1\nrole r\npermit r customers.read when session.aal > 1 xor ip in a\n", 3, 46,
     "expected 'and', 'or' or the end"},
    {"version 1\nrole r\npermit r customers.read\n    when session.aal > \"x\"\n", 4, 10,
     "compares a number with a string"},
    {"version 1\nrole r\npermit r customers.read when staff.region == \"emea\n", 3, 46,
     "a string that does not end on its line"},
    {"version 1\npermit support_agent customers.read\n", 2, 8,
     "built-in role 'support_agent' is fixed"},
    {"version 1\npermit nobody customers.read\n", 2, 8, "expected a role"},
    {"version 1\ngrant nobody to staff\n", 2, 7, "expected a role"},
    {"version 1\ngrant auditor staff\n", 2, 15, "expected 'to'"},
    {"version 1\ngrant auditor to staff:\n", 2, 18, "expected a principal's id"},
    {"version 1\ngrant auditor to staff:st_1\n", 2, 18, "is not a staff member's id"},
    {"version 1\ngrant auditor to apikey:stf_0123456789abcdef\n", 2, 18, "is not a key's id"},
    {"version 1\ngrant auditor to staff:stf_0123456789ABCDEF\n", 2, 18, "16 lower-case hex"},
    {"version 1\nrole r\npermit r customers.write masked\n", 3, 26,
     "'masked' goes with customers.read alone"},
    {"version 1\nrole r\npermit r * masked\n", 3, 12, "'masked' goes with customers.read alone"},
    {"version 1\nhours h daily 09:00-09:00 UTC\n", 2, 15, "not a window of local time"},
    {"version 1\nforbid * when session.age < 213503982336d\n", 2, 29,
     "unknown attribute or name '213503982336d'"},
    {"version 1\napprove customers.erase by 2 within 36501d\n", 2, 37, "from 1m to 30d"},
    {"version 1\nrole r customers.read", 2, 1, "does not end with a newline"},
    {"version 1\nrole r \xff\n", 1, 1, "not UTF-8"},
    {"version 1\ngrant auditor to people\n", 2, 18, "expected staff, apikey, any"},
    {"version 1\nforbid customers.read when\n", 2, 27, "expected an attribute"},
    {"version 1\napprove customers.erase by 9 within 1h\n", 2, 28, "1 to 5"},
    {"version 1\napprove customers.erase by 2 within 31d\n", 2, 37, "from 1m to 30d"},
    {"version 1\napprove * by 2 within 1h\n", 2, 9, "unknown permission '*'"},
    {"version 1\nfrobnicate all\n", 2, 1, "unknown statement 'frobnicate'"},
    {"version 1\nrole r $\n", 2, 8, "unexpected character '$'"},
    {"version 1\nrole r customers.read extra.thing\n", 2, 23, "unknown permission 'extra.thing'"},
};

static void test_refused(void **state)
{
    int bad = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        struct cu_policy *p = (struct cu_policy *)&p;
        struct cu_policy_error err;
        enum cu_err rc =
            cu_policy_parse("bad.policy", bads[i].text, strlen(bads[i].text), &p, &err);
        if (rc != CU_E_INVALID || p != NULL || err.line != bads[i].line || err.col != bads[i].col ||
            strstr(err.reason, bads[i].reason) == NULL)
            print_error("policy %zu (%s): got %d at %d:%d \"%s\"; want %d:%d \"%s\"\n", i,
                        bads[i].text, rc, err.line, err.col, err.reason, bads[i].line, bads[i].col,
                        bads[i].reason),
                bad++;
        char msg[600];
        cu_policy_error_format(&err, msg, sizeof msg);
        assert_true(strncmp(msg, "bad.policy:", 11) == 0);
    }
    assert_int_equal(bad, 0);
}

static void test_limits(void **state)
{
    struct cu_policy *p = (struct cu_policy *)&p;
    struct cu_policy_error err;
    static const char nul[] = "version 1\nrole r\0x\n";
    char *big = malloc(CU_POLICY_MAX_BYTES + 2);
    (void)state;

    assert_non_null(big);
    memset(big, '#', CU_POLICY_MAX_BYTES + 1);
    assert_int_equal(cu_policy_parse("big", big, CU_POLICY_MAX_BYTES + 1, &p, &err),
                     CU_E_TOO_LARGE);
    assert_null(p);
    free(big);
    assert_int_equal(cu_policy_parse("nul", nul, sizeof(nul) - 1, &p, &err), CU_E_INVALID);
    assert_non_null(strstr(err.reason, "NUL"));
    assert_int_equal(cu_policy_load("/nonexistent/policy", &p, &err), CU_E_IO);
    assert_null(p);
}

/* Allow-list blocks (API keys' networks): parsed alike for v4 and v6, first and last address
 * in, the ones either side out, and a narrower block within a wider one only. */
static void test_cidr(void **state)
{
    struct cu_cidr c, d, list[4];
    struct cu_ip ip;
    const char *why = NULL;
    size_t n = 0;
    (void)state;

    assert_int_equal(cu_cidr_parse("10.1.0.0/16", 11, &c, &why), CU_OK);
    assert_int_equal(cu_ip_parse("10.1.0.0", &ip), CU_OK);
    assert_true(cu_cidr_has(&c, &ip));
    assert_int_equal(cu_ip_parse("10.1.255.255", &ip), CU_OK);
    assert_true(cu_cidr_has(&c, &ip));
    assert_int_equal(cu_ip_parse("10.0.255.255", &ip), CU_OK);
    assert_false(cu_cidr_has(&c, &ip));
    assert_int_equal(cu_ip_parse("10.2.0.0", &ip), CU_OK);
    assert_false(cu_cidr_has(&c, &ip));
    assert_int_equal(cu_ip_parse("::ffff:10.1.2.3", &ip), CU_OK);
    assert_true(cu_cidr_has(&c, &ip)); /* the v4-mapped form is the same address */
    assert_int_equal(cu_cidr_parse("2001:db8::/127", 14, &d, &why), CU_OK);
    assert_int_equal(cu_ip_parse("2001:db8::1", &ip), CU_OK);
    assert_true(cu_cidr_has(&d, &ip));
    assert_int_equal(cu_ip_parse("2001:db8::2", &ip), CU_OK);
    assert_false(cu_cidr_has(&d, &ip));

    assert_int_equal(cu_cidr_parse("10.1.2.0/24", 11, &d, &why), CU_OK);
    assert_true(cu_cidr_within(&d, &c));
    assert_false(cu_cidr_within(&c, &d));
    assert_true(cu_cidr_within(&c, &c));
    assert_int_equal(cu_cidr_parse("0.0.0.0/0", 9, &d, &why), CU_OK);
    assert_false(cu_cidr_within(&d, &c));

    /* the length bounds the text: "10.1.0.0/16" cut to "10.1.0.0/1" has bits past /1 */
    assert_int_equal(cu_cidr_parse("10.1.0.0/16", 10, &c, &why), CU_E_INVALID);
    assert_non_null(strstr(why, "bits set past its prefix"));
    const char *const bad[] = {"",
                               "/8",
                               "10.0.0.0/",
                               "10.0.0.0/33",
                               "10.0.0.0/-1",
                               "10.0.0.0/8x",
                               "::/129",
                               "10.0.0.0/1000",
                               "10.0.0",
                               "example.com"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cu_cidr_parse(bad[i], strlen(bad[i]), &c, &why), CU_E_INVALID);

    assert_int_equal(cu_cidr_list_parse("10.0.0.0/8 ::1", list, 4, &n), CU_OK);
    assert_int_equal(n, 2);
    assert_int_equal(cu_cidr_list_parse("", list, 4, &n), CU_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cu_cidr_list_parse("10.0.0.0/8  ::1", list, 4, &n), CU_E_INVALID);
    assert_int_equal(cu_cidr_list_parse("10.0.0.0/8 ", list, 4, &n), CU_E_INVALID);
    assert_int_equal(cu_cidr_list_parse("1.1.1.1 2.2.2.2 3.3.3.3", list, 2, &n), CU_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_could),
        cmocka_unit_test(test_customer_grants),
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
