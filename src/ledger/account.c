/*
 * account.c - the ledger's accounts: currencies, making, reading, freezing, closing, and the
 * pieces every file of the ledger shares (ids, names, the movement digest).
 */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "ledger/ledger_int.h"

/* ---- the service ---- */

enum cu_err cu_ledger_new(const struct cu_ledger_opts *opts, struct cu_ledger **out)
{
    struct cu_ledger *l = cu_calloc(1, sizeof(*l));

    *out = NULL;
    if (l == NULL)
        return CU_E_NOMEM;
    if (opts != NULL)
        l->hook = opts->hook;
    *out = l;
    return CU_OK;
}

void cu_ledger_free(struct cu_ledger *l)
{
    cu_free(l);
}

void cu_ledger_set_hook(struct cu_ledger *l, const struct cu_ledger_hook *hook)
{
    l->hook = *hook;
}

void cu_ledger_hook_memo_free(const struct cu_ledger *l, void *memo)
{
    if (memo != NULL && l->hook.memo_free != NULL)
        l->hook.memo_free(memo);
}

/* ---- currencies ---- */

/* ISO 4217 codes in use (funds and metals without minor units left out), with their minor
 * unit digits where they are not 2. */
static const char currencies[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD "
    "EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD "
    "IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL "
    "MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN "
    "PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN "
    "SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES "
    "VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";
static const char exponent0[] =
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
static const char exponent3[] = "BHD IQD JOD KWD LYD OMR TND";
static const char exponent4[] = "CLF UYW";

static bool listed(const char *list, const char *code)
{
    for (const char *p = list; *p; p += 4) {
        if (memcmp(p, code, 3) == 0)
            return true;
        if (p[3] == '\0')
            break;
    }
    return false;
}

bool cu_currency_valid(const char *code, int *exponent)
{
    if (code == NULL || strlen(code) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z')
            return false;
    if (!listed(currencies, code))
        return false;
    if (exponent != NULL)
        *exponent = listed(exponent0, code)   ? 0
                    : listed(exponent3, code) ? 3
                    : listed(exponent4, code) ? 4
                                              : 2;
    return true;
}

/* ---- names, ids ---- */

static const char *const status_names[] = {"active", "frozen", "closed"};
static const char *const kind_names[] = {"transfer", "post", "void", "reverse", "expire"};
static const char *const verdict_names[] = {"allow", "hold", "step_up", "deny"};

const char *cu_ledger_status_name(enum cu_ledger_status s)
{
    return (unsigned)s < 3 ? status_names[s] : "closed";
}

const char *cu_ledger_kind_name(enum cu_ledger_kind k)
{
    return (unsigned)k < 5 ? kind_names[k] : "transfer";
}

const char *cu_ledger_verdict_name(enum cu_ledger_verdict v)
{
    return (unsigned)v < 4 ? verdict_names[v] : "deny";
}

enum cu_ledger_status cu_ledger_status_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, status_names[i]) == 0)
            return (enum cu_ledger_status)i;
    return CU_LEDGER_CLOSED;
}

int cu_ledger_kind_parse(const char *s)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(s, kind_names[i]) == 0)
            return i;
    return -1;
}

void cu_ledger_new_id(const char *prefix, char out[CU_LEDGER_ID_BYTES])
{
    uint8_t raw[8];

    cu_crypto_random(raw, sizeof(raw));
    memcpy(out, prefix, 4);
    cu_hex_encode(raw, sizeof(raw), out + 4);
}

bool cu_ledger_id_valid(const char *id, const char *prefix)
{
    if (id == NULL || strlen(id) != CU_LEDGER_ID_BYTES - 1 || strncmp(id, prefix, 4) != 0)
        return false;
    for (size_t i = 4; i < CU_LEDGER_ID_BYTES - 1; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

int64_t cu_ledger_day(int64_t ms)
{
    return ms >= 0 ? ms / CU_LEDGER_DAY_MS : -((-ms + CU_LEDGER_DAY_MS - 1) / CU_LEDGER_DAY_MS);
}

static enum cu_err digest_field(struct cu_buf *b, const char *s)
{
    return cu_buf_printf(b, "%zu:%s;", strlen(s), s);
}

enum cu_err cu_ledger_digest_add(struct cu_buf *b, const struct cu_ledger_transfer *t)
{
    enum cu_err rc = cu_buf_printf(b, "%lld;%s;", (long long)t->seq, cu_ledger_kind_name(t->kind));

    if (rc == CU_OK)
        rc = digest_field(b, t->id);
    if (rc == CU_OK)
        rc = digest_field(b, t->debit);
    if (rc == CU_OK)
        rc = digest_field(b, t->credit);
    if (rc == CU_OK)
        rc = cu_buf_printf(b, "%lld;%s;%d;", (long long)t->amount, t->currency, t->pending ? 1 : 0);
    if (rc == CU_OK)
        rc = digest_field(b, t->code);
    if (rc == CU_OK)
        rc = digest_field(b, t->external_ref);
    if (rc == CU_OK)
        rc = digest_field(b, t->parent);
    if (rc == CU_OK)
        rc = digest_field(b, t->metadata ? t->metadata : "");
    if (rc == CU_OK)
        rc = cu_buf_append_str(b, "\n");
    return rc;
}

void cu_ledger_digest_hex(const struct cu_buf *b, char out[65])
{
    uint8_t h[CU_HASH_BYTES];

    cu_crypto_sha256(b->len ? b->data : "", b->len, h);
    cu_hex_encode(h, sizeof(h), out);
}

/* ---- balances ---- */

enum cu_err cu_ledger_balance_of(const struct cu_ledger_account *a, struct cu_ledger_balance *out)
{
    int64_t posted, pending, avail;

    if (__builtin_sub_overflow(a->t.credits_posted, a->t.debits_posted, &posted) ||
        __builtin_sub_overflow(a->t.credits_pending, a->t.debits_pending, &pending) ||
        __builtin_sub_overflow(posted, a->t.debits_pending, &avail))
        return CU_E_INVALID;
    out->posted = posted;
    out->pending = pending;
    /* without bound, or past what 64 bits hold: as much as may be */
    if (a->overdraft < 0 || __builtin_add_overflow(avail, a->overdraft, &out->available))
        out->available = INT64_MAX;
    return CU_OK;
}

/* ---- reading ---- */

static void copy_text(struct cu_stmt *st, int col, char *out, size_t cap)
{
    size_t n = 0;
    const char *s = cu_stmt_text(st, col, &n);

    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

void cu_ledger_account_read(struct cu_stmt *st, struct cu_ledger_account *out)
{
    char status[12];

    memset(out, 0, sizeof(*out));
    copy_text(st, 0, out->id, sizeof(out->id));
    copy_text(st, 1, out->customer, sizeof(out->customer));
    copy_text(st, 2, out->purpose, sizeof(out->purpose));
    copy_text(st, 3, out->currency, sizeof(out->currency));
    copy_text(st, 4, status, sizeof(status));
    out->status = cu_ledger_status_parse(status);
    copy_text(st, 5, out->freeze_reason, sizeof(out->freeze_reason));
    out->frozen_until = cu_stmt_int(st, 6);
    out->overdraft = cu_stmt_int(st, 7);
    out->limit_per_transfer = cu_stmt_int(st, 8);
    out->limit_daily = cu_stmt_int(st, 9);
    out->day = cu_stmt_int(st, 10);
    out->day_debits = cu_stmt_int(st, 11);
    out->t.debits_posted = cu_stmt_int(st, 12);
    out->t.credits_posted = cu_stmt_int(st, 13);
    out->t.debits_pending = cu_stmt_int(st, 14);
    out->t.credits_pending = cu_stmt_int(st, 15);
    out->created_at = cu_stmt_int(st, 16);
    out->closed_at = cu_stmt_int(st, 17);
}

enum cu_err cu_ledger_transfer_read(struct cu_stmt *st, struct cu_ledger_transfer *out)
{
    char kind[12], decision[12];
    size_t n = 0;
    const char *meta;
    int k;

    memset(out, 0, sizeof(*out));
    copy_text(st, 0, out->id, sizeof(out->id));
    out->seq = cu_stmt_int(st, 1);
    copy_text(st, 2, out->movement, sizeof(out->movement));
    copy_text(st, 3, kind, sizeof(kind));
    k = cu_ledger_kind_parse(kind);
    out->kind = k < 0 ? CU_LEDGER_TRANSFER : (enum cu_ledger_kind)k;
    copy_text(st, 4, out->debit, sizeof(out->debit));
    copy_text(st, 5, out->credit, sizeof(out->credit));
    out->amount = cu_stmt_int(st, 6);
    copy_text(st, 7, out->currency, sizeof(out->currency));
    copy_text(st, 8, out->code, sizeof(out->code));
    copy_text(st, 9, out->external_ref, sizeof(out->external_ref));
    if (!cu_stmt_null(st, 10)) {
        meta = cu_stmt_text(st, 10, &n);
        if ((out->metadata = cu_malloc(n + 1)) == NULL)
            return CU_E_NOMEM;
        memcpy(out->metadata, meta, n);
        out->metadata[n] = '\0';
    }
    out->pending = cu_stmt_int(st, 11) != 0;
    copy_text(st, 12, out->parent, sizeof(out->parent));
    copy_text(st, 13, decision, sizeof(decision));
    out->hold = strcmp(decision, "hold") == 0;
    copy_text(st, 14, out->reasons, sizeof(out->reasons));
    copy_text(st, 15, out->actor, sizeof(out->actor));
    copy_text(st, 16, out->channel, sizeof(out->channel));
    out->at = cu_stmt_int(st, 17);
    if (!cu_stmt_null(st, 18)) {
        copy_text(st, 18, out->state, sizeof(out->state));
        out->reserved = cu_stmt_int(st, 19);
        out->expires_at = cu_stmt_int(st, 20);
    }
    return CU_OK;
}

void cu_ledger_transfer_clear(struct cu_ledger_transfer *t)
{
    cu_free(t->metadata);
    t->metadata = NULL;
}

void cu_ledger_transfers_free(struct cu_ledger_transfer *t, size_t n)
{
    for (size_t i = 0; t != NULL && i < n; i++)
        cu_ledger_transfer_clear(&t[i]);
    cu_free(t);
}

static enum cu_err one_account(struct cu_db *db, const char *sql, const struct cu_val *p, size_t n,
                               struct cu_ledger_account *out)
{
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, n, &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        cu_ledger_account_read(st, out);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_ledger_account_get(struct cu_db *db, const char *id, struct cu_ledger_account *out)
{
    static const char sql[] = "SELECT " LEDGER_ACCOUNT_COLS " FROM ledger_accounts WHERE id = $1";
    struct cu_val p[] = {CU_VT(id)};

    if (!cu_ledger_id_valid(id, "acc_"))
        return CU_E_NOT_FOUND;
    return one_account(db, sql, p, CU_NVALS(p), out);
}

enum cu_err cu_ledger_accounts_of(struct cu_db *db, const char *customer, const char *after,
                                  size_t limit, struct cu_ledger_account **out, size_t *n)
{
    static const char sql[] = "SELECT " LEDGER_ACCOUNT_COLS " FROM ledger_accounts "
                              "WHERE customer = $1 AND id > $2 ORDER BY id LIMIT $3";
    struct cu_val p[] = {CU_VT(customer), CU_VT(after ? after : ""), CU_VI(limit)};
    struct cu_stmt *st = NULL;
    struct cu_ledger_account *v = NULL;
    bool row = false;
    enum cu_err rc;

    *out = NULL;
    *n = 0;
    if (limit == 0 || limit > 1000)
        return CU_E_INVALID;
    if ((v = cu_calloc(limit, sizeof(*v))) == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && *n < limit)
        cu_ledger_account_read(st, &v[(*n)++]);
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return CU_OK;
}

/* ---- writing ---- */

static enum cu_err account_insert(struct cu_db *db, const struct cu_ledger_account *a)
{
    static const char sql[] =
        "INSERT INTO ledger_accounts (id, customer, purpose, currency, status, freeze_reason, "
        "frozen_until, overdraft, limit_per_transfer, limit_daily, day, day_debits, "
        "debits_posted, credits_posted, debits_pending, credits_pending, created_at, closed_at) "
        "VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $8, $9, 0, 0, 0, 0, 0, $10, NULL)";
    struct cu_val p[] = {
        CU_VT(a->id),
        a->customer[0] ? CU_VT(a->customer) : CU_VNULL,
        CU_VT(a->purpose),
        CU_VT(a->currency),
        CU_VT(cu_ledger_status_name(a->status)),
        CU_VI(a->overdraft),
        a->limit_per_transfer ? CU_VI(a->limit_per_transfer) : CU_VNULL,
        a->limit_daily ? CU_VI(a->limit_daily) : CU_VNULL,
        CU_VI(a->day),
        CU_VI(a->created_at),
    };
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

static json_t *account_details(const struct cu_ledger_account *a)
{
    return json_pack("{s:s, s:s, s:s}", "customer", a->customer[0] ? a->customer : "", "currency",
                     a->currency, "status", cu_ledger_status_name(a->status));
}

static void target_of(char out[64], const char *id)
{
    snprintf(out, 64, "account:%s", id);
}

enum cu_err cu_ledger_account_create(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                     const struct cu_ledger_account_in *in,
                                     struct cu_ledger_account *out, char detail[256])
{
    char target[64];
    int64_t now = cu_work_context(w)->now_ms;
    enum cu_err rc;

    (void)l;
    memset(out, 0, sizeof(*out));
    detail[0] = '\0';
    if (!cu_currency_valid(in->currency, NULL)) {
        snprintf(detail, 256, "currency must be an ISO 4217 code custodia knows, e.g. EUR");
        return CU_E_INVALID;
    }
    if (in->overdraft < 0 || in->limit_per_transfer < 0 || in->limit_daily < 0) {
        snprintf(detail, 256, "overdraft and limits must be at least 0");
        return CU_E_INVALID;
    }
    cu_ledger_new_id("acc_", out->id);
    snprintf(out->customer, sizeof(out->customer), "%s", in->customer);
    snprintf(out->purpose, sizeof(out->purpose), "customer");
    memcpy(out->currency, in->currency, 4);
    out->status = CU_LEDGER_ACTIVE;
    out->overdraft = in->overdraft;
    out->limit_per_transfer = in->limit_per_transfer;
    out->limit_daily = in->limit_daily;
    out->day = cu_ledger_day(now);
    out->created_at = now;
    rc = account_insert(db, out);
    if (rc == CU_E_EXISTS)
        rc = CU_E_BUSY; /* an id drawn twice: draw again */
    target_of(target, out->id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "ledger.account_create", target, "success", account_details(out));
    return rc;
}

static bool system_purpose(const char *p)
{
    return p != NULL && (strcmp(p, "cash_in") == 0 || strcmp(p, "cash_out") == 0 ||
                         strcmp(p, "fees") == 0 || strcmp(p, "suspense") == 0);
}

enum cu_err cu_ledger_system_account(struct cu_db *db, const char *purpose, const char *currency,
                                     bool create, struct cu_ledger_account *out)
{
    static const char sql[] = "SELECT " LEDGER_ACCOUNT_COLS " FROM ledger_accounts "
                              "WHERE customer IS NULL AND purpose = $1 AND currency = $2";
    struct cu_val p[] = {CU_VT(purpose), CU_VT(currency)};
    enum cu_err rc;

    if (!system_purpose(purpose) || !cu_currency_valid(currency, NULL))
        return CU_E_INVALID;
    rc = one_account(db, sql, p, CU_NVALS(p), out);
    if (rc != CU_E_NOT_FOUND || !create)
        return rc;
    memset(out, 0, sizeof(*out));
    cu_ledger_new_id("acc_", out->id);
    snprintf(out->purpose, sizeof(out->purpose), "%s", purpose);
    memcpy(out->currency, currency, 4);
    out->status = CU_LEDGER_ACTIVE;
    out->overdraft = -1;
    out->created_at = cu_clock_now_ms();
    out->day = cu_ledger_day(out->created_at);
    rc = account_insert(db, out);
    return rc == CU_E_EXISTS ? CU_E_BUSY : rc;
}

/* lock_account(db, id, out): the account, locked for the rest of the transaction. */
static enum cu_err lock_account(struct cu_db *db, const char *id, struct cu_ledger_account *out)
{
    static const char sql[] =
        "SELECT " LEDGER_ACCOUNT_COLS " FROM ledger_accounts WHERE id = $1 FOR UPDATE";
    struct cu_val p[] = {CU_VT(id)};

    if (!cu_ledger_id_valid(id, "acc_"))
        return CU_E_NOT_FOUND;
    return one_account(db, sql, p, CU_NVALS(p), out);
}

static enum cu_err set_status(struct cu_db *db, const struct cu_ledger_account *a)
{
    static const char sql[] = "UPDATE ledger_accounts SET status = $2, freeze_reason = $3, "
                              "frozen_until = $4, closed_at = $5 WHERE id = $1";
    struct cu_val p[] = {
        CU_VT(a->id),
        CU_VT(cu_ledger_status_name(a->status)),
        a->freeze_reason[0] ? CU_VT(a->freeze_reason) : CU_VNULL,
        a->frozen_until ? CU_VI(a->frozen_until) : CU_VNULL,
        a->closed_at ? CU_VI(a->closed_at) : CU_VNULL,
    };
    return cu_db_exec(db, sql, p, CU_NVALS(p));
}

enum cu_err cu_ledger_freeze(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                             const char *id, const char *reason, int64_t until,
                             struct cu_ledger_account *out, char detail[256])
{
    char target[64];
    int64_t now = cu_work_context(w)->now_ms;
    enum cu_err rc = lock_account(db, id, out);

    (void)l;
    detail[0] = '\0';
    if (rc != CU_OK)
        return rc;
    if (out->status == CU_LEDGER_CLOSED) {
        snprintf(detail, 256, "the account is closed");
        return CU_E_EXISTS;
    }
    if (until != 0 && until <= now) {
        snprintf(detail, 256, "until must be in the future");
        return CU_E_INVALID;
    }
    if (strcmp(reason, CU_LEDGER_SELF_FREEZE) == 0) {
        snprintf(detail, 256, "the reason '%s' is the customer's own freeze's", reason);
        return CU_E_INVALID;
    }
    out->status = CU_LEDGER_FROZEN;
    snprintf(out->freeze_reason, sizeof(out->freeze_reason), "%s", reason);
    out->frozen_until = until;
    rc = set_status(db, out);
    target_of(target, out->id);
    /* the reason is staff's free text: it may name a person, so the record keeps its length */
    if (rc == CU_OK)
        rc = cu_work_audit(w, "ledger.account_freeze", target, "success",
                           json_pack("{s:I, s:I}", "until", (json_int_t)until, "reason_length",
                                     (json_int_t)strlen(reason)));
    return rc;
}

enum cu_err cu_ledger_freeze_customer(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                      const char *customer, const char *reason, int64_t until,
                                      int64_t *n)
{
    /* a page of the accounts still to freeze: one frozen here drops out of the next page */
    static const char sql[] =
        "SELECT id FROM ledger_accounts WHERE customer = $1 AND (status = 'active' OR (status = "
        "'frozen' AND frozen_until IS NOT NULL AND frozen_until < $2) OR (status = 'frozen' AND "
        "frozen_until IS NULL AND freeze_reason = $4 AND $4 <> $5)) ORDER BY id LIMIT $3";
    enum { PAGE = 64, NAMED = 32 };
    /* until 0: the customer's own freeze, until unfrozen (the active accounts alone) */
    /* $4, $5: a freeze that is not the customer's own takes their own freeze's accounts over
     * (the customer's freeze comes back when it ends: cu_ledger_unfreeze_due) */
    static const char own[] = "SELECT id FROM ledger_accounts WHERE customer = $1 AND status = "
                              "'active' ORDER BY id LIMIT $2";
    const struct cu_val p[] = {CU_VT(customer), CU_VI(until), CU_VI(PAGE),
                               CU_VT(CU_LEDGER_SELF_FREEZE), CU_VT(reason)};
    const struct cu_val po[] = {CU_VT(customer), CU_VI(PAGE)};
    char ids[PAGE][CU_LEDGER_ID_BYTES], target[64];
    json_t *named = json_array();
    size_t k;
    enum cu_err rc = CU_OK;

    (void)l;
    *n = 0;
    if (named == NULL)
        return CU_E_NOMEM;
    if (until != 0 && until <= cu_work_context(w)->now_ms) {
        json_decref(named);
        return CU_E_INVALID;
    }
    do {
        struct cu_stmt *st = NULL;
        bool row = false;
        k = 0;
        /* the customer's own freeze (until 0) takes the active accounts alone */
        rc = until ? cu_db_query(db, sql, p, CU_NVALS(p), &st)
                   : cu_db_query(db, own, po, CU_NVALS(po), &st);
        while (rc == CU_OK && k < PAGE && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
            copy_text(st, 0, ids[k++], sizeof(ids[0]));
        cu_stmt_done(st);
        for (size_t i = 0; rc == CU_OK && i < k; i++) {
            struct cu_ledger_account a;
            if ((rc = lock_account(db, ids[i], &a)) != CU_OK)
                break;
            /* the customer's own freeze (until 0) leaves an account frozen by another as it
             * is: once that freeze ends, the account stays frozen while the customer's holds
             * (cu_ledger_unfreeze_due), and the customer's unfreeze lifts it */
            if (until == 0 && a.status == CU_LEDGER_FROZEN)
                continue;
            a.status = CU_LEDGER_FROZEN;
            snprintf(a.freeze_reason, sizeof(a.freeze_reason), "%s", reason);
            a.frozen_until = until;
            if ((rc = set_status(db, &a)) != CU_OK)
                break;
            if (*n < NAMED && json_array_append_new(named, json_string(a.id)) != 0)
                rc = CU_E_NOMEM;
            ++*n;
        }
    } while (rc == CU_OK && k == PAGE);
    if (rc != CU_OK || *n == 0) {
        json_decref(named);
        return rc;
    }
    /* one record for the customer's accounts (a unit's records are few): how many, the first
     * ones by id, until when; the reason by its length, as for a freeze by staff */
    snprintf(target, sizeof(target), "customer:%s", customer);
    return cu_work_audit(w, "ledger.customer_freeze", target, "success",
                         json_pack("{s:I, s:o, s:I, s:I}", "accounts", (json_int_t)*n, "ids", named,
                                   "until", (json_int_t)until, "reason_length",
                                   (json_int_t)strlen(reason)));
}

enum cu_err cu_ledger_unfreeze_customer(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                        const char *customer, const char *reason, int64_t *n)
{
    /* the customer's own freeze, and freezes by others whose time ended while it held */
    static const char sql[] =
        "SELECT id FROM ledger_accounts WHERE customer = $1 AND status = 'frozen' AND "
        "(freeze_reason = $2 OR (frozen_until IS NOT NULL AND frozen_until <= $4)) ORDER BY id "
        "LIMIT $3";
    enum { PAGE = 64 };
    const struct cu_val p[] = {CU_VT(customer), CU_VT(reason), CU_VI(PAGE),
                               CU_VI(cu_work_context(w)->now_ms)};
    char ids[PAGE][CU_LEDGER_ID_BYTES], target[64];
    size_t k;
    enum cu_err rc = CU_OK;

    (void)l;
    *n = 0;
    do {
        struct cu_stmt *st = NULL;
        bool row = false;
        k = 0;
        rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
        while (rc == CU_OK && k < PAGE && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
            copy_text(st, 0, ids[k++], sizeof(ids[0]));
        cu_stmt_done(st);
        for (size_t i = 0; rc == CU_OK && i < k; i++) {
            struct cu_ledger_account a;
            if ((rc = lock_account(db, ids[i], &a)) != CU_OK)
                break;
            /* as it is once locked: a freeze written meanwhile stays */
            if (a.status != CU_LEDGER_FROZEN ||
                (strcmp(a.freeze_reason, reason) != 0 &&
                 !(a.frozen_until != 0 && a.frozen_until <= cu_work_context(w)->now_ms)))
                continue;
            a.status = CU_LEDGER_ACTIVE;
            a.freeze_reason[0] = '\0';
            a.frozen_until = 0;
            if ((rc = set_status(db, &a)) != CU_OK)
                break;
            ++*n;
        }
    } while (rc == CU_OK && k == PAGE);
    if (rc != CU_OK || *n == 0)
        return rc;
    snprintf(target, sizeof(target), "customer:%s", customer);
    return cu_work_audit(w, "ledger.customer_unfreeze", target, "success",
                         json_pack("{s:I, s:I}", "accounts", (json_int_t)*n, "reason_length",
                                   (json_int_t)strlen(reason)));
}

enum cu_err cu_ledger_hold_customer(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                    const char *customer, int64_t *n)
{
    static const char sql[] =
        "UPDATE ledger_pending SET hold = 1 WHERE status = 'pending' AND hold = 0 AND transfer IN "
        "(SELECT t.id FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.debit_account "
        "WHERE a.customer = $1)";
    const struct cu_val p[] = {CU_VT(customer)};
    char target[64];
    enum cu_err rc = cu_db_exec(db, sql, p, 1);

    (void)l;
    *n = rc == CU_OK ? cu_db_changes(db) : 0;
    if (rc != CU_OK || *n == 0)
        return rc;
    snprintf(target, sizeof(target), "customer:%s", customer);
    return cu_work_audit(w, "ledger.customer_hold", target, "success",
                         json_pack("{s:I}", "transfers", (json_int_t)*n));
}

enum cu_err cu_ledger_unfreeze(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                               const char *id, struct cu_ledger_account *out, char detail[256])
{
    char target[64];
    enum cu_err rc = lock_account(db, id, out);

    (void)l;
    detail[0] = '\0';
    if (rc != CU_OK)
        return rc;
    if (out->status != CU_LEDGER_FROZEN) {
        snprintf(detail, 256, "the account is not frozen (it is %s)",
                 cu_ledger_status_name(out->status));
        return CU_E_EXISTS;
    }
    out->status = CU_LEDGER_ACTIVE;
    out->freeze_reason[0] = '\0';
    out->frozen_until = 0;
    rc = set_status(db, out);
    target_of(target, out->id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "ledger.account_unfreeze", target, "success", NULL);
    return rc;
}

enum cu_err cu_ledger_close(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                            const char *id, struct cu_ledger_account *out, char detail[256])
{
    char target[64];
    enum cu_err rc = lock_account(db, id, out);

    (void)l;
    detail[0] = '\0';
    if (rc != CU_OK)
        return rc;
    if (out->status == CU_LEDGER_CLOSED) {
        snprintf(detail, 256, "the account is closed already");
        return CU_E_EXISTS;
    }
    if (out->customer[0] == '\0') {
        snprintf(detail, 256, "a system account cannot be closed");
        return CU_E_EXISTS;
    }
    if (out->t.debits_posted != out->t.credits_posted || out->t.debits_pending != 0 ||
        out->t.credits_pending != 0) {
        snprintf(detail, 256,
                 "only an account with a zero balance and nothing pending can be "
                 "closed");
        return CU_E_EXISTS;
    }
    out->status = CU_LEDGER_CLOSED;
    out->closed_at = cu_work_context(w)->now_ms;
    out->freeze_reason[0] = '\0';
    out->frozen_until = 0;
    rc = set_status(db, out);
    target_of(target, out->id);
    if (rc == CU_OK)
        rc = cu_work_audit(w, "ledger.account_close", target, "success", NULL);
    return rc;
}

enum cu_err cu_ledger_unfreeze_due(struct cu_ledger *l, struct cu_work *w, struct cu_db *db,
                                   int64_t now, size_t max, size_t *done)
{
    static const char sql[] =
        "SELECT id FROM ledger_accounts WHERE status = 'frozen' AND "
        "frozen_until IS NOT NULL AND frozen_until <= $1 AND (customer IS NULL OR customer NOT IN "
        "(SELECT customer FROM self_freezes)) ORDER BY id LIMIT $2";
    struct cu_val p[] = {CU_VI(now), CU_VI(max)};
    char(*ids)[CU_LEDGER_ID_BYTES] = NULL;
    struct cu_stmt *st = NULL;
    struct cu_ledger_account a;
    char target[64];
    size_t n = 0;
    bool row = false;
    enum cu_err rc;

    *done = 0;
    if (max == 0)
        return CU_OK;
    if ((ids = cu_calloc(max, sizeof(*ids))) == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row && n < max)
        copy_text(st, 0, ids[n++], CU_LEDGER_ID_BYTES);
    cu_stmt_done(st);
    for (size_t i = 0; rc == CU_OK && i < n; i++) {
        rc = lock_account(db, ids[i], &a);
        if (rc == CU_OK &&
            (a.status != CU_LEDGER_FROZEN || a.frozen_until == 0 || a.frozen_until > now))
            continue;
        a.status = CU_LEDGER_ACTIVE;
        a.freeze_reason[0] = '\0';
        a.frozen_until = 0;
        if (rc == CU_OK)
            rc = set_status(db, &a);
        target_of(target, a.id);
        if (rc == CU_OK)
            rc = cu_work_audit(w, "ledger.account_unfreeze", target, "success",
                               json_pack("{s:s}", "reason", "the freeze ran out"));
        if (rc == CU_OK)
            (*done)++;
    }
    (void)l;
    cu_free(ids);
    return rc;
}

static int64_t saturating_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* What left the customer's accounts in currency today so far, as their own daily counts have
 * it (reserves counted, releases given back, reversals not): the count a customer limit set
 * mid-day starts from. The accounts are locked in the order movements lock them, so none moves
 * between the sum and the limit's row. */
static enum cu_err customer_day_debits(struct cu_db *db, const char *customer, const char *currency,
                                       int64_t day, int64_t *out)
{
    static const char sql[] = "SELECT day, day_debits FROM ledger_accounts "
                              "WHERE customer = $1 AND currency = $2 ORDER BY id FOR UPDATE";
    struct cu_val p[] = {CU_VT(customer), CU_VT(currency)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *out = 0;
    while (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && row) {
        if (cu_stmt_int(st, 0) == day)
            *out = saturating_add(*out, cu_stmt_int(st, 1));
    }
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_ledger_customer_limit_set(struct cu_work *w, struct cu_db *db, const char *customer,
                                         const char *currency, int64_t daily)
{
    static const char sql[] =
        "INSERT INTO ledger_customer_limits (customer, currency, daily_limit, day, day_debits) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer, currency) DO UPDATE SET "
        "daily_limit = $3";
    int64_t day = cu_ledger_day(cu_work_context(w)->now_ms), used = 0;
    char target[64];
    enum cu_err rc;

    if (!cu_currency_valid(currency, NULL) || daily < 0)
        return CU_E_INVALID;
    /* A new limit counts what already left today; an existing one has counted it all along. */
    rc = customer_day_debits(db, customer, currency, day, &used);
    struct cu_val p[] = {CU_VT(customer), CU_VT(currency), daily > 0 ? CU_VI(daily) : CU_VNULL,
                         CU_VI(day), CU_VI(used)};
    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    snprintf(target, sizeof(target), "customer:%s", customer);
    if (rc == CU_OK)
        rc = cu_work_audit(
            w, "ledger.customer_limit", target, "success",
            json_pack("{s:s, s:I}", "currency", currency, "daily", (json_int_t)daily));
    return rc;
}

enum cu_err cu_ledger_open_accounts(struct cu_db *db, const char *customer, int64_t *n)
{
    static const char sql[] =
        "SELECT COUNT(*) FROM ledger_accounts WHERE customer = $1 AND status <> 'closed'";
    const struct cu_val p[] = {CU_VT(customer)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    *n = 0;
    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    if (rc == CU_OK && row)
        *n = cu_stmt_int(st, 0);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_ledger_customer_frozen(struct cu_db *db, const char *customer, int64_t *n)
{
    static const char sql[] =
        "SELECT COUNT(*) FROM ledger_accounts WHERE customer = $1 AND status = 'frozen'";
    const struct cu_val p[] = {CU_VT(customer)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, 1, &st);

    if (rc == CU_OK)
        rc = cu_stmt_next(st, &row);
    *n = rc == CU_OK && row ? cu_stmt_int(st, 0) : 0;
    cu_stmt_done(st);
    return rc;
}
