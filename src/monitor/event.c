/*
 * event.c - the monitoring event's parser and canonical text (event.h).
 */
#include "monitor/event.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/policy.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/text.h"

static const char *const builtin[CU_EV_BUILTIN_COUNT] = {
    "login_succeeded", "login_failed", "mfa_failed",      "password_changed",
    "mfa_changed",     "device_added", "profile_changed", "transfer",
    "withdrawal",      "deposit",      "payee_added"};

void cu_mon_types_init(struct cu_mon_types *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < CU_EV_BUILTIN_COUNT; i++)
        snprintf(t->name[i], sizeof(t->name[i]), "%s", builtin[i]);
    t->n = CU_EV_BUILTIN_COUNT;
}

/* name_ok(s, first_alpha): [a-z0-9_]{1,32}, beginning with a letter when first_alpha. */
static bool name_ok(const char *s, size_t n, bool first_alpha)
{
    if (n == 0 || n > CU_MON_NAME_MAX || (first_alpha && !(s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

enum cu_err cu_mon_types_add(struct cu_mon_types *t, const char *name, char err[CU_MON_ERR_BYTES])
{
    if (!name_ok(name, strlen(name), true)) {
        snprintf(err, CU_MON_ERR_BYTES,
                 "an event type is a lower-case letter then up to 31 of [a-z0-9_]");
        return CU_E_INVALID;
    }
    if (cu_mon_types_find(t, name) >= 0) {
        snprintf(err, CU_MON_ERR_BYTES, "event type '%s' is declared twice or is built in", name);
        return CU_E_INVALID;
    }
    if (t->n >= CU_MON_TYPES_MAX) {
        snprintf(err, CU_MON_ERR_BYTES, "at most %d event types, built-in ones included",
                 CU_MON_TYPES_MAX);
        return CU_E_TOO_LARGE;
    }
    snprintf(t->name[t->n++], CU_MON_NAME_MAX + 1, "%s", name);
    return CU_OK;
}

int cu_mon_types_find(const struct cu_mon_types *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->name[i], name) == 0)
            return (int)i;
    return -1;
}

const char *cu_mon_event_attr(const struct cu_mon_event *ev, const char *key)
{
    for (size_t i = 0; i < ev->nattrs; i++)
        if (strcmp(ev->attrs[i].key, key) == 0)
            return ev->attrs[i].value;
    return NULL;
}

/* --- the reader ------------------------------------------------------------------------ */

struct rd {
    const char *p, *end, *start;
    char *err;
    enum cu_err rc;
};

static enum cu_err fail(struct rd *r, enum cu_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum cu_err fail(struct rd *r, enum cu_err rc, const char *fmt, ...)
{
    va_list ap;
    if (r->rc != CU_OK)
        return r->rc;
    va_start(ap, fmt);
    vsnprintf(r->err, CU_MON_ERR_BYTES, fmt, ap);
    va_end(ap);
    r->rc = rc;
    return rc;
}

static enum cu_err syntax(struct rd *r, const char *what)
{
    return fail(r, CU_E_INVALID, "the event is not valid JSON: %s at byte %zu", what,
                (size_t)(r->p - r->start));
}

static void ws(struct rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool eat(struct rd *r, char c)
{
    ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

static bool hex4(struct rd *r, unsigned *out)
{
    unsigned v = 0;
    if (r->end - r->p < 4)
        return false;
    for (int i = 0; i < 4; i++) {
        int h = cu_hex_digit(r->p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    r->p += 4;
    *out = v;
    return true;
}

/* str(r, out, cap, len): a JSON string into out (cap bytes with the NUL), escapes decoded,
 * UTF-8 checked; too long is CU_E_TOO_LARGE with *len past cap - 1 (the caller names it). */
static enum cu_err str(struct rd *r, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    bool over = false, wide = false;

    ws(r);
    if (r->p >= r->end || *r->p != '"')
        return syntax(r, "a string was expected");
    r->p++;
    for (;;) {
        char tmp[4];
        size_t k = 1;
        unsigned char c;
        /* the run of plain characters up to a quote, an escape or a control character */
        const char *q = r->p;
        while (q < r->end && (unsigned char)*q >= 0x20 && *q != '"' && *q != '\\') {
            wide |= (unsigned char)*q >= 0x80;
            q++;
        }
        if (n + (size_t)(q - r->p) >= cap)
            over = true;
        else
            memcpy(out + n, r->p, (size_t)(q - r->p));
        n += (size_t)(q - r->p);
        r->p = q;
        if (r->p >= r->end)
            return syntax(r, "a string is not closed");
        c = (unsigned char)*r->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return syntax(r, "a control character inside a string");
        tmp[0] = (char)c;
        if (c == '\\') {
            unsigned u;
            if (r->p >= r->end)
                return syntax(r, "a string is not closed");
            c = (unsigned char)*r->p++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                tmp[0] = (char)c;
                break;
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u':
                if (!hex4(r, &u))
                    return syntax(r, "a bad \\u escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    unsigned lo;
                    if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                        return syntax(r, "a lone surrogate");
                    r->p += 2;
                    if (!hex4(r, &lo) || lo < 0xdc00 || lo > 0xdfff)
                        return syntax(r, "a lone surrogate");
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                } else if (u >= 0xdc00 && u <= 0xdfff) {
                    return syntax(r, "a lone surrogate");
                }
                if (u == 0)
                    return fail(r, CU_E_INVALID, "a string of the event holds a NUL character");
                wide |= u >= 0x80;
                if (u < 0x80) {
                    tmp[0] = (char)u;
                } else if (u < 0x800) {
                    tmp[0] = (char)(0xc0 | u >> 6);
                    tmp[1] = (char)(0x80 | (u & 0x3f));
                    k = 2;
                } else if (u < 0x10000) {
                    tmp[0] = (char)(0xe0 | u >> 12);
                    tmp[1] = (char)(0x80 | ((u >> 6) & 0x3f));
                    tmp[2] = (char)(0x80 | (u & 0x3f));
                    k = 3;
                } else {
                    tmp[0] = (char)(0xf0 | u >> 18);
                    tmp[1] = (char)(0x80 | ((u >> 12) & 0x3f));
                    tmp[2] = (char)(0x80 | ((u >> 6) & 0x3f));
                    tmp[3] = (char)(0x80 | (u & 0x3f));
                    k = 4;
                }
                break;
            default:
                return syntax(r, "a bad escape");
            }
        }
        if (n + k >= cap)
            over = true;
        else
            memcpy(out + n, tmp, k);
        n += k;
    }
    *len = n;
    if (over) {
        out[0] = '\0';
        return CU_E_TOO_LARGE;
    }
    out[n] = '\0';
    if (wide && !cu_utf8_valid(out, n))
        return fail(r, CU_E_INVALID, "a string of the event is not valid UTF-8");
    return CU_OK;
}

/* number(r, buf): the text of a JSON number (grammar checked) into buf. */
static enum cu_err number(struct rd *r, char buf[40], bool *integer)
{
    const char *s;
    size_t n;

    ws(r);
    s = r->p;
    *integer = true;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p >= r->end || !(*r->p >= '0' && *r->p <= '9'))
        return syntax(r, "a value was expected");
    if (*r->p == '0')
        r->p++;
    else
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    if (r->p < r->end && *r->p == '.') {
        *integer = false;
        r->p++;
        if (r->p >= r->end || !(*r->p >= '0' && *r->p <= '9'))
            return syntax(r, "a bad number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        *integer = false;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p >= r->end || !(*r->p >= '0' && *r->p <= '9'))
            return syntax(r, "a bad number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    n = (size_t)(r->p - s);
    if (n >= 40)
        return CU_E_TOO_LARGE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return CU_OK;
}

static bool is_type(struct rd *r, char c)
{
    ws(r);
    return r->p < r->end && *r->p == c;
}

/* --- the fields ------------------------------------------------------------------------ */

enum key {
    K_TYPE,
    K_TIME,
    K_CUSTOMER,
    K_IP,
    K_DEVICE,
    K_COUNTRY,
    K_LAT,
    K_LON,
    K_AMOUNT,
    K_CURRENCY,
    K_PAYEE,
    K_CHANNEL,
    K_FIELDS,
    K_ATTRIBUTES,
    K_LABEL,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "type",   "time",     "customer", "ip",      "device", "country",    "lat",  "lon",
    "amount", "currency", "payee",    "channel", "fields", "attributes", "label"};

/* cu_mon_ref_ok (event.h): UTF-8 was checked by the reader. */
bool cu_mon_ref_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool upper(const char *s, size_t n, size_t want)
{
    if (n != want)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'A' && s[i] <= 'Z'))
            return false;
    return true;
}

/* a string field into out (cap with NUL), with the message for a bad one */
static enum cu_err str_field(struct rd *r, const char *key, char *out, size_t cap, size_t *len)
{
    enum cu_err rc;
    if (!is_type(r, '"'))
        return fail(r, CU_E_INVALID, "field '%s' must be a string", key);
    rc = str(r, out, cap, len);
    if (rc == CU_E_TOO_LARGE)
        return fail(r, CU_E_TOO_LARGE, "field '%s' is longer than %zu bytes", key, cap - 1);
    return rc;
}

static enum cu_err read_fields(struct rd *r, struct cu_mon_event *ev)
{
    if (!eat(r, '['))
        return fail(r, CU_E_INVALID, "field 'fields' must be an array of field names");
    if (eat(r, ']'))
        return CU_OK;
    do {
        char name[CU_MON_NAME_MAX + 1];
        size_t n = 0;
        enum cu_err rc;
        if (ev->nfields >= CU_MON_FIELDS_MAX)
            return fail(r, CU_E_TOO_LARGE, "field 'fields' holds more than %d names",
                        CU_MON_FIELDS_MAX);
        rc = str_field(r, "fields", name, sizeof(name), &n);
        if (rc != CU_OK)
            return rc;
        if (!name_ok(name, n, true))
            return fail(r, CU_E_INVALID,
                        "field 'fields' must hold field names ([a-z][a-z0-9_]*, up to 32)");
        for (size_t i = 0; i < ev->nfields; i++)
            if (strcmp(ev->fields[i], name) == 0)
                return fail(r, CU_E_INVALID, "field 'fields' names '%s' twice", name);
        memcpy(ev->fields[ev->nfields++], name, n + 1);
    } while (eat(r, ','));
    if (!eat(r, ']'))
        return syntax(r, "',' or ']' was expected");
    return CU_OK;
}

static enum cu_err read_attrs(struct rd *r, struct cu_mon_event *ev)
{
    if (!eat(r, '{'))
        return fail(r, CU_E_INVALID, "field 'attributes' must be an object of strings");
    if (eat(r, '}'))
        return CU_OK;
    do {
        struct cu_mon_attr *a;
        size_t n = 0;
        enum cu_err rc;
        if (ev->nattrs >= CU_MON_ATTRS_MAX)
            return fail(r, CU_E_TOO_LARGE, "field 'attributes' holds more than %d entries",
                        CU_MON_ATTRS_MAX);
        a = &ev->attrs[ev->nattrs];
        rc = str(r, a->key, sizeof(a->key), &n);
        if (rc == CU_E_TOO_LARGE || (rc == CU_OK && !name_ok(a->key, n, true)))
            return fail(r, CU_E_INVALID,
                        "the keys of 'attributes' are names ([a-z][a-z0-9_]*, up to 32)");
        if (rc != CU_OK)
            return rc;
        for (size_t i = 0; i < ev->nattrs; i++)
            if (strcmp(ev->attrs[i].key, a->key) == 0)
                return fail(r, CU_E_INVALID, "attribute '%s' is given twice", a->key);
        if (!eat(r, ':'))
            return syntax(r, "':' was expected");
        if (!is_type(r, '"'))
            return fail(r, CU_E_INVALID, "attribute '%s' must be a string", a->key);
        rc = str(r, a->value, sizeof(a->value), &n);
        if (rc == CU_E_TOO_LARGE)
            return fail(r, CU_E_TOO_LARGE, "attribute '%s' is longer than %d bytes", a->key,
                        CU_MON_ATTR_VALUE_MAX);
        if (rc != CU_OK)
            return rc;
        if (!cu_mon_ref_ok(a->value, n) && n != 0)
            return fail(r, CU_E_INVALID, "attribute '%s' holds a control character", a->key);
        ev->nattrs++;
    } while (eat(r, ','));
    if (!eat(r, '}'))
        return syntax(r, "',' or '}' was expected");
    return CU_OK;
}

static enum cu_err read_value(struct rd *r, enum key k, const struct cu_mon_parse_opts *o,
                              struct cu_mon_event *ev)
{
    char buf[CU_MON_REF_MAX + 1], num[40];
    size_t n = 0;
    bool integer = false;
    enum cu_err rc = CU_OK;
    const char *key = key_names[k];

    switch (k) {
    case K_TYPE:
        if ((rc = str_field(r, key, buf, CU_MON_NAME_MAX + 1, &n)) == CU_E_TOO_LARGE)
            return fail(r, CU_E_INVALID, "field 'type' names no known event type");
        if (rc == CU_OK && (ev->type = cu_mon_types_find(o->types, buf)) < 0)
            return fail(r, CU_E_INVALID,
                        "field 'type' names no known event type (built in, or declared in "
                        "[monitor] event_types)");
        return rc;
    case K_TIME:
        if (str_field(r, key, buf, 64, &n) != CU_OK)
            return fail(r, CU_E_INVALID, "field 'time' must be an RFC 3339 time");
        if (cu_clock_parse(buf, &ev->time_ms) != CU_OK)
            return fail(r, CU_E_INVALID, "field 'time' must be an RFC 3339 time");
        /* from 1970 (hours and weekdays count from there) to the end of 9999 (what the
         * canonical text can write), whatever the offset did */
        if (ev->time_ms < 0 || ev->time_ms > CU_MON_TIME_MAX_MS)
            return fail(r, CU_E_INVALID, "field 'time' must lie between 1970 and 9999");
        if ((o->min_ms || o->max_ms) && (ev->time_ms < o->min_ms || ev->time_ms > o->max_ms))
            return fail(r, CU_E_INVALID, "field 'time' is too far in the past or the future");
        return CU_OK;
    case K_CUSTOMER:
    case K_DEVICE:
    case K_PAYEE: {
        char *dst = k == K_CUSTOMER ? ev->customer : k == K_DEVICE ? ev->device : ev->payee;
        if ((rc = str_field(r, key, dst, CU_MON_REF_MAX + 1, &n)) != CU_OK)
            return rc;
        if (!cu_mon_ref_ok(dst, n))
            return fail(r, CU_E_INVALID,
                        "field '%s' must be a non-empty reference without control characters", key);
        ev->has |= k == K_DEVICE ? CU_EVF_DEVICE : k == K_PAYEE ? CU_EVF_PAYEE : 0;
        return CU_OK;
    }
    case K_IP: {
        struct cu_ip ip;
        if (str_field(r, key, ev->ip, sizeof(ev->ip), &n) != CU_OK ||
            cu_ip_parse(ev->ip, &ip) != CU_OK)
            return fail(r, CU_E_INVALID, "field 'ip' must be an IPv4 or IPv6 address");
        memcpy(ev->ip_bin, ip.b, sizeof(ev->ip_bin));
        memcpy(ev->key_ip, ip.b, sizeof(ev->key_ip));
        ev->has |= CU_EVF_IP;
        return CU_OK;
    }
    case K_COUNTRY:
        if (str_field(r, key, buf, 8, &n) != CU_OK || !upper(buf, n, 2))
            return fail(r, CU_E_INVALID,
                        "field 'country' must be an ISO 3166-1 alpha-2 code (e.g. \"GB\")");
        memcpy(ev->country, buf, 3);
        ev->has |= CU_EVF_COUNTRY;
        return CU_OK;
    case K_CURRENCY:
        if (str_field(r, key, buf, 8, &n) != CU_OK || !upper(buf, n, 3))
            return fail(r, CU_E_INVALID,
                        "field 'currency' must be an ISO 4217 code (e.g. \"EUR\")");
        memcpy(ev->currency, buf, 4);
        return CU_OK;
    case K_CHANNEL:
        if (str_field(r, key, buf, CU_MON_NAME_MAX + 1, &n) != CU_OK || !name_ok(buf, n, false))
            return fail(r, CU_E_INVALID, "field 'channel' must be up to 32 of [a-z0-9_]");
        memcpy(ev->channel, buf, n + 1);
        ev->has |= CU_EVF_CHANNEL;
        return CU_OK;
    case K_LABEL:
        if (!o->allow_label)
            return fail(r, CU_E_INVALID, "unknown field 'label' (only replay files carry it)");
        if (str_field(r, key, buf, CU_MON_NAME_MAX + 1, &n) != CU_OK || !name_ok(buf, n, false))
            return fail(r, CU_E_INVALID, "field 'label' must be up to 32 of [a-z0-9_]");
        memcpy(ev->label, buf, n + 1);
        ev->has |= CU_EVF_LABEL;
        return CU_OK;
    case K_AMOUNT: {
        char *end = NULL;
        long long v;
        if (!(is_type(r, '-') || (r->p < r->end && *r->p >= '0' && *r->p <= '9')))
            return fail(r, CU_E_INVALID, "field 'amount' must be an integer of minor units");
        rc = number(r, num, &integer);
        if (rc == CU_OK && !integer)
            return fail(r, CU_E_INVALID, "field 'amount' must be an integer of minor units");
        if (rc != CU_OK && r->rc != CU_OK)
            return rc;
        v = rc == CU_OK ? strtoll(num, &end, 10) : -1;
        if (rc != CU_OK || v < 0 || v > CU_MON_AMOUNT_MAX)
            return fail(r, CU_E_INVALID,
                        "field 'amount' must be an integer of minor units from 0 to 10^15");
        ev->amount = v;
        ev->has |= CU_EVF_AMOUNT;
        return CU_OK;
    }
    case K_LAT:
    case K_LON: {
        double v;
        double lim = k == K_LAT ? 90.0 : 180.0;
        if (!(is_type(r, '-') || (r->p < r->end && *r->p >= '0' && *r->p <= '9')))
            return fail(r, CU_E_INVALID, "field '%s' must be a number", key);
        rc = number(r, num, &integer);
        if (rc != CU_OK && r->rc != CU_OK)
            return rc;
        v = rc == CU_OK ? strtod(num, NULL) : NAN;
        if (!(v >= -lim && v <= lim))
            return fail(r, CU_E_INVALID, "field '%s' must be a number from %g to %g", key, -lim,
                        lim);
        if (k == K_LAT)
            ev->lat = v;
        else
            ev->lon = v;
        return CU_OK;
    }
    case K_FIELDS:
        return read_fields(r, ev);
    case K_ATTRIBUTES:
        return read_attrs(r, ev);
    case K_COUNT:
        break;
    }
    return CU_E_INVALID;
}

enum cu_err cu_mon_event_parse(const char *text, size_t len, const struct cu_mon_parse_opts *opts,
                               struct cu_mon_event *out, char err[CU_MON_ERR_BYTES])
{
    struct rd r = {text, text + len, text, err, CU_OK};
    unsigned seen = 0;

    memset(out, 0, sizeof(*out));
    out->type = -1;
    err[0] = '\0';
    if (len > CU_MON_EVENT_MAX)
        return fail(&r, CU_E_TOO_LARGE, "the event is longer than %d bytes", CU_MON_EVENT_MAX);
    if (!eat(&r, '{'))
        return syntax(&r, "an object was expected");
    if (!eat(&r, '}')) {
        do {
            char key[CU_MON_NAME_MAX + 1];
            size_t n = 0;
            int k = -1;
            enum cu_err rc = str(&r, key, sizeof(key), &n);
            if (rc == CU_E_TOO_LARGE)
                return fail(&r, CU_E_INVALID, "unknown field (a key longer than 32 bytes)");
            if (rc != CU_OK)
                return rc;
            for (int i = 0; i < K_COUNT; i++)
                if (strcmp(key, key_names[i]) == 0)
                    k = i;
            if (k < 0) {
                for (size_t i = 0; i < n; i++) /* no control characters into messages */
                    if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
                        key[i] = '?';
                return fail(&r, CU_E_INVALID, "unknown field '%s'", key);
            }
            if (seen & (1u << k))
                return fail(&r, CU_E_INVALID, "field '%s' is given twice", key);
            seen |= 1u << k;
            if (!eat(&r, ':'))
                return syntax(&r, "':' was expected");
            if (is_type(&r, 'n') && r.end - r.p >= 4 && memcmp(r.p, "null", 4) == 0)
                return fail(&r, CU_E_INVALID,
                            "field '%s' is null: leave out a field that has no value", key);
            if (read_value(&r, (enum key)k, opts, out) != CU_OK)
                return r.rc != CU_OK ? r.rc : fail(&r, CU_E_INVALID, "field '%s' is bad", key);
        } while (eat(&r, ','));
        if (!eat(&r, '}'))
            return syntax(&r, "',' or '}' was expected");
    }
    ws(&r);
    if (r.p != r.end)
        return syntax(&r, "data after the event");
    for (int k = K_TYPE; k <= K_CUSTOMER; k++)
        if (!(seen & (1u << k)))
            return fail(&r, CU_E_INVALID, "field '%s' is required", key_names[k]);
    if (!!(seen & (1u << K_LAT)) != !!(seen & (1u << K_LON)))
        return fail(&r, CU_E_INVALID, "fields 'lat' and 'lon' go together");
    if (seen & (1u << K_LAT))
        out->has |= CU_EVF_LOCATION;
    if ((seen & (1u << K_AMOUNT)) && !(seen & (1u << K_CURRENCY)))
        return fail(&r, CU_E_INVALID, "field 'amount' needs 'currency'");
    if (!(seen & (1u << K_AMOUNT)) && (seen & (1u << K_CURRENCY)))
        return fail(&r, CU_E_INVALID, "field 'currency' goes with 'amount'");
    if ((seen & (1u << K_FIELDS)) && out->type != CU_EV_PROFILE_CHANGED)
        return fail(&r, CU_E_INVALID, "field 'fields' belongs to profile_changed events");
    return CU_OK;
}

/* --- the canonical text ---------------------------------------------------------------- */

static enum cu_err put_str(struct cu_buf *b, const char *key, const char *v)
{
    enum cu_err rc = cu_buf_printf(b, ",\"%s\":", key);
    return rc == CU_OK ? cu_json_escape(b, v, strlen(v)) : rc;
}

/* shortest(v, out): the fewest digits (15 to 17) that read back as v exactly. */
static void shortest(double v, char out[32])
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(out, 32, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

enum cu_err cu_mon_event_write(const struct cu_mon_event *ev, const struct cu_mon_types *types,
                               struct cu_buf *out)
{
    char when[CU_RFC3339_BYTES];
    enum cu_err rc;

    if (ev->type < 0 || (size_t)ev->type >= types->n)
        return CU_E_INVALID;
    cu_clock_format(ev->time_ms, when);
    rc = cu_buf_printf(out, "{\"type\":\"%s\",\"time\":\"%s\"", types->name[ev->type], when);
    if (rc == CU_OK)
        rc = put_str(out, "customer", ev->customer);
    if (rc == CU_OK && (ev->has & CU_EVF_IP))
        rc = put_str(out, "ip", ev->ip);
    if (rc == CU_OK && (ev->has & CU_EVF_DEVICE))
        rc = put_str(out, "device", ev->device);
    if (rc == CU_OK && (ev->has & CU_EVF_COUNTRY))
        rc = put_str(out, "country", ev->country);
    if (rc == CU_OK && (ev->has & CU_EVF_LOCATION)) {
        char lat[32], lon[32];
        shortest(ev->lat, lat);
        shortest(ev->lon, lon);
        rc = cu_buf_printf(out, ",\"lat\":%s,\"lon\":%s", lat, lon);
    }
    if (rc == CU_OK && (ev->has & CU_EVF_AMOUNT))
        rc = cu_buf_printf(out, ",\"amount\":%lld,\"currency\":\"%s\"", (long long)ev->amount,
                           ev->currency);
    if (rc == CU_OK && (ev->has & CU_EVF_PAYEE))
        rc = put_str(out, "payee", ev->payee);
    if (rc == CU_OK && (ev->has & CU_EVF_CHANNEL))
        rc = put_str(out, "channel", ev->channel);
    if (rc == CU_OK && ev->nfields > 0) {
        rc = cu_buf_append_str(out, ",\"fields\":[");
        for (size_t i = 0; rc == CU_OK && i < ev->nfields; i++)
            rc = cu_buf_printf(out, "%s\"%s\"", i ? "," : "", ev->fields[i]);
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "]");
    }
    if (rc == CU_OK && ev->nattrs > 0) {
        rc = cu_buf_append_str(out, ",\"attributes\":{");
        for (size_t i = 0; rc == CU_OK && i < ev->nattrs; i++) {
            rc = cu_buf_printf(out, "%s\"%s\":", i ? "," : "", ev->attrs[i].key);
            if (rc == CU_OK)
                rc = cu_json_escape(out, ev->attrs[i].value, strlen(ev->attrs[i].value));
        }
        if (rc == CU_OK)
            rc = cu_buf_append_str(out, "}");
    }
    if (rc == CU_OK && (ev->has & CU_EVF_LABEL))
        rc = put_str(out, "label", ev->label);
    return rc == CU_OK ? cu_buf_append_str(out, "}") : rc;
}
