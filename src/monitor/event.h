/*
 * event.h - the monitoring event (docs/monitoring.md, "Events"): its shape, a strict parser of
 * its JSON text and the canonical text it is stored and replayed as.
 *
 * One shape serves POST /v1/events, the replay tool (custodia rules test) and the events
 * custodia emits itself:
 *
 *   {"type": "transfer", "time": "2026-01-05T02:14:09Z", "customer": "c000123",
 *    "ip": "81.2.69.160", "device": "d0001230", "country": "GB", "lat": 51.51, "lon": -0.13,
 *    "amount": 125000, "currency": "GBP", "payee": "p0001231", "channel": "app",
 *    "fields": ["email"], "attributes": {"merchant_category": "6011"}}
 *
 * Only type, time and customer are required. The parser is hand-written rather than jansson's:
 * an event is a flat object of known keys, and the replay of a million events a second parses
 * each one. It refuses unknown and duplicate keys, values of the wrong type or past their
 * limits, malformed UTF-8, and anything after the object; its error names the field.
 */
#ifndef CU_MONITOR_EVENT_H
#define CU_MONITOR_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define CU_MON_EVENT_MAX 8192                /* bytes of one event's JSON text */
#define CU_MON_REF_MAX 128                   /* customer, device, payee: bytes */
#define CU_MON_NAME_MAX 32                   /* a type, channel, field name, attribute key, label */
#define CU_MON_FIELDS_MAX 16                 /* names in "fields" */
#define CU_MON_ATTRS_MAX 16                  /* entries of "attributes" */
#define CU_MON_ATTR_VALUE_MAX 128            /* bytes of an attribute's value */
#define CU_MON_TYPES_MAX 64                  /* event types, built-in and custom together */
#define CU_MON_AMOUNT_MAX 1000000000000000LL /* 10^15 minor units, the ledger's cap */
#define CU_MON_ERR_BYTES 192
#define CU_MON_TIME_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* The built-in event types, in this order; custom types (configuration) follow. */
enum cu_mon_type {
    CU_EV_LOGIN_SUCCEEDED,
    CU_EV_LOGIN_FAILED,
    CU_EV_MFA_FAILED,
    CU_EV_PASSWORD_CHANGED,
    CU_EV_MFA_CHANGED,
    CU_EV_DEVICE_ADDED,
    CU_EV_PROFILE_CHANGED,
    CU_EV_TRANSFER,
    CU_EV_WITHDRAWAL,
    CU_EV_DEPOSIT,
    CU_EV_PAYEE_ADDED,
    CU_EV_BUILTIN_COUNT
};

/* The event types an installation knows: the built-in ones, then its custom ones. */
struct cu_mon_types {
    size_t n; /* CU_EV_BUILTIN_COUNT + custom */
    char name[CU_MON_TYPES_MAX][CU_MON_NAME_MAX + 1];
};

/* cu_mon_types_init(t): the built-in types alone. */
void cu_mon_types_init(struct cu_mon_types *t);

/* cu_mon_types_add(t, name, err): adds a custom type: [a-z][a-z0-9_]{0,31}, not a built-in
 * one, at most CU_MON_TYPES_MAX in all. */
CU_WUR enum cu_err cu_mon_types_add(struct cu_mon_types *t, const char *name,
                                    char err[CU_MON_ERR_BYTES]);

/* cu_mon_types_find(t, name): the type's number, or -1. */
int cu_mon_types_find(const struct cu_mon_types *t, const char *name);

struct cu_mon_attr {
    char key[CU_MON_NAME_MAX + 1];
    char value[CU_MON_ATTR_VALUE_MAX + 1];
};

/* What an event may lack: a bit per optional field. */
enum {
    CU_EVF_IP = 1u << 0,
    CU_EVF_DEVICE = 1u << 1,
    CU_EVF_COUNTRY = 1u << 2,
    CU_EVF_LOCATION = 1u << 3, /* lat and lon, always together */
    CU_EVF_AMOUNT = 1u << 4,   /* amount and currency, always together */
    CU_EVF_PAYEE = 1u << 5,
    CU_EVF_CHANNEL = 1u << 6,
    CU_EVF_LABEL = 1u << 7,
};

struct cu_mon_event {
    int type;     /* a number of struct cu_mon_types */
    unsigned has; /* CU_EVF_* */
    int64_t time_ms;
    char customer[CU_MON_REF_MAX + 1];
    char ip[48]; /* as written; ip_bin is the address, IPv4 as IPv4-mapped IPv6 */
    uint8_t ip_bin[16];
    /* What the state keeps the address (and its network) by: ip_bin as parsed; the server sets
     * the address's pseudonym here when addresses are kept hashed (docs/monitoring.md,
     * "Addresses"), so that stored events, which carry the pseudonym, rebuild the same state. */
    uint8_t key_ip[16];
    char device[CU_MON_REF_MAX + 1];
    char country[3]; /* ISO 3166-1 alpha-2, upper case */
    double lat, lon;
    int64_t amount;   /* minor units, 0 .. CU_MON_AMOUNT_MAX */
    char currency[4]; /* ISO 4217, upper case */
    char payee[CU_MON_REF_MAX + 1];
    char channel[CU_MON_NAME_MAX + 1];
    size_t nfields;
    char fields[CU_MON_FIELDS_MAX][CU_MON_NAME_MAX + 1];
    size_t nattrs;
    struct cu_mon_attr attrs[CU_MON_ATTRS_MAX];
    char label[CU_MON_NAME_MAX + 1]; /* replay files only: "legit" or an attack's name */
};

struct cu_mon_parse_opts {
    const struct cu_mon_types *types;
    bool allow_label;       /* a replay file's lines may carry "label" */
    int64_t min_ms, max_ms; /* the times accepted; both 0: any */
};

/* cu_mon_event_parse(text, len, opts, out, err): parses one event. CU_E_INVALID (or
 * CU_E_TOO_LARGE past CU_MON_EVENT_MAX or a field's limit) with err naming the field and what
 * it must be. */
CU_WUR enum cu_err cu_mon_event_parse(const char *text, size_t len,
                                      const struct cu_mon_parse_opts *opts,
                                      struct cu_mon_event *out, char err[CU_MON_ERR_BYTES]);

/* cu_mon_event_write(ev, types, out): appends the event's canonical JSON text: the keys in the
 * order of the shape above, only those present, the time with milliseconds. Parsing the text
 * gives the same event. */
CU_WUR enum cu_err cu_mon_event_write(const struct cu_mon_event *ev,
                                      const struct cu_mon_types *types, struct cu_buf *out);

/* cu_mon_ref_ok(s, n): whether the n bytes at s are a reference an event may carry (a
 * customer, device or payee): non-empty, without control characters. */
bool cu_mon_ref_ok(const char *s, size_t n);

/* cu_mon_event_attr(ev, key): the attribute's value, or NULL. */
const char *cu_mon_event_attr(const struct cu_mon_event *ev, const char *key);

#endif
