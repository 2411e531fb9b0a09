/*
 * fields.h - the customer record's fields, declared in one place: each field's name, type,
 * whether it is personal (encrypted at rest), whether it has a blind index (exact lookup
 * without decryption) and must be unique, its size limit, its normaliser, its validator and
 * how it is masked for display.
 *
 * Normalisation is byte-exact and documented in docs/internals/vault.md: a value is
 * normalised before it is validated, encrypted, blind-indexed or compared, so that
 * " Jane@Example.COM " and "jane@example.com" are the same e-mail.
 */
#ifndef CU_VAULT_FIELDS_H
#define CU_VAULT_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

enum cu_field_type {
    CU_FT_TEXT,        /* trimmed, valid UTF-8, no control characters, internal runs of white
                        * space kept as they are */
    CU_FT_EMAIL,       /* trimmed, lower-cased (ASCII), local@domain with a dot in the domain */
    CU_FT_PHONE,       /* E.164: '+' then 8 to 15 digits; spaces, dashes, dots, parentheses
                        * removed; a leading "00" becomes '+' */
    CU_FT_DATE,        /* ISO 8601 calendar date YYYY-MM-DD, a real date, 1900-01-01 to today */
    CU_FT_COUNTRY,     /* ISO 3166-1 alpha-2, upper-cased, an assigned code */
    CU_FT_LANGUAGE,    /* BCP 47 language tag: 2-3 letter language, optional -Script, -REGION;
                        * canonical case (en, en-GB, zh-Hant-TW) */
    CU_FT_REF,         /* an external reference: 1-64 of [A-Za-z0-9._:-], case kept */
    CU_FT_NATIONAL_ID, /* trimmed, upper-cased, spaces and dashes removed, 4-32 of [A-Z0-9] */
};

enum cu_mask {
    CU_MASK_NONE,    /* shown as is (not personal) */
    CU_MASK_EMAIL,   /* j***@example.com: first character of the local part, then *** */
    CU_MASK_PHONE,   /* +44*******123: the '+' and country digits (first 2 digits), stars,
                      * last 3 digits; as many stars as hidden digits */
    CU_MASK_LAST4,   /* ****1234: stars then the last 4 characters */
    CU_MASK_YEAR,    /* 1984-**-**: the year only */
    CU_MASK_INITIAL, /* J***: the first character (UTF-8 aware), then *** */
    CU_MASK_HIDDEN,  /* ***: nothing shown */
};

/* No field's name is this long (the vault builds associated data from it). */
#define CU_FIELD_NAME_MAX 24

struct cu_field_def {
    const char *name; /* JSON name, e.g. "email"; shorter than CU_FIELD_NAME_MAX */
    enum cu_field_type type;
    bool personal;    /* encrypted at rest, masked unless the caller may unmask */
    bool blind_index; /* has a blind index: exact lookup by normalised value */
    bool unique;      /* no two live customers share the value (via the blind index) */
    size_t max_bytes; /* limit on the normalised value */
    enum cu_mask mask;
};

/* The fields, in a fixed order (their index is their id); *n gets the count. Static. */
const struct cu_field_def *cu_fields(size_t *n);

/* cu_field_find(name): the field called name, or NULL (unknown fields are rejected). */
const struct cu_field_def *cu_field_find(const char *name);

/* Bytes for a reason from cu_field_normalize. */
#define CU_FIELD_WHY_BYTES 160

/* cu_field_normalize(f, in, len, out, outcap, outlen, why): normalises the len bytes at in
 * for field f into out (outcap bytes; NUL-terminated; *outlen its length) and validates the
 * result. CU_E_INVALID with a reason in why (CU_FIELD_WHY_BYTES, naming the rule broken,
 * never echoing the value) when it is not acceptable; CU_E_TOO_LARGE when the normalised
 * value passes f->max_bytes (or does not fit outcap), or the input passes 2 * f->max_bytes + 32
 * bytes (room for white space and separators such as "+1 (555) 123-4567"). */
CU_WUR enum cu_err cu_field_normalize(const struct cu_field_def *f, const char *in, size_t len,
                                      char *out, size_t outcap, size_t *outlen,
                                      char why[CU_FIELD_WHY_BYTES]);

/* cu_field_mask(f, value, out, outcap): the masked form of a normalised value for display,
 * NUL-terminated in out (never longer than the value plus 8 bytes; truncated to outcap). */
void cu_field_mask(const struct cu_field_def *f, const char *value, char *out, size_t outcap);

#endif
