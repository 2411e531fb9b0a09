/*
 * note.c - signed notes (c2sp.org/signed-note) carrying tree checkpoints
 * (c2sp.org/tlog-checkpoint), written and checked byte for byte as the Go reference
 * implementation (golang.org/x/mod/sumdb/note) does, so that standard transparency-log
 * tooling verifies custodia's audit checkpoints.
 *
 * A note is UTF-8 text without control characters other than newline. Its last "\n\n"
 * splits it into the signed text (up to and including the first of the two newlines) and
 * one or more signature lines "— <name> <base64(key id || signature)>\n". Parsing first
 * checks the whole note's form (CU_E_INVALID), then the signatures (CU_E_CRYPTO): lines by
 * other keys are only checked for form, every line by our key must verify, and at least one
 * must be there. Any Unicode white space or '+' in a name is rejected, as Go rejects it.
 */
#include "audit/note.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

#define NOTE_MAX_PARSE 4096        /* longest note cu_note_open_checkpoint reads */
#define NOTE_MAX_SIGS 16           /* most signature lines it reads */
#define SIG_PREFIX "\xe2\x80\x94 " /* U+2014 EM DASH, space */
#define SIG_PREFIX_LEN 4
#define ALG_ED25519 0x01
#define SIG_BLOB_BYTES (4 + CU_SIGN_BYTES)

/* utf8_len(b): the length of the UTF-8 sequence that lead byte b starts; 0 when b cannot
 * start one (a continuation byte, an overlong C0/C1 lead, or past U+10FFFF). */
static size_t utf8_len(uint8_t b)
{
    if (b < 0x80) {
        return 1;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        return 2;
    }
    if (b >= 0xe0 && b <= 0xef) {
        return 3;
    }
    return b >= 0xf0 && b <= 0xf4 ? 4 : 0;
}

/* utf8_next(s, n, cp): the length of the well-formed UTF-8 sequence at s (n > 0 bytes
 * available) and its code point in *cp; 0 when it is malformed, overlong, a surrogate or
 * past U+10FFFF (the sequences Go's utf8.DecodeRune also refuses). */
static size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint8_t mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    size_t len = utf8_len(s[0]);
    uint32_t c;

    if (len == 0 || len > n) {
        return 0;
    }
    c = s[0] & mask[len];
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3fu);
    }
    if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *cp = c;
    return len;
}

/* is_space(c): whether c is Unicode white space (Go's unicode.IsSpace). */
static bool is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* text_ok(s, n, name): whether s is well-formed UTF-8 without control characters other than
 * newline; when name is set, also without newline, white space or '+'. */
static bool text_ok(const char *s, size_t n, bool name)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;

    while (i < n) {
        uint32_t c = 0;
        size_t len = utf8_next(p + i, n - i, &c);

        if (len == 0 || (c < 0x20 && c != '\n')) {
            return false;
        }
        if (name && (is_space(c) || c == '+')) {
            return false;
        }
        i += len;
    }
    return true;
}

/* name_ok(name, key): whether name may be a key name (key) or an origin custodia writes:
 * 1 to CU_NOTE_NAME_MAX bytes of one line of text; a key name also without white space or
 * '+'. */
static bool name_ok(const char *name, bool key)
{
    size_t n = name == NULL ? 0 : strnlen(name, CU_NOTE_NAME_MAX + 1);

    return n > 0 && n <= CU_NOTE_NAME_MAX && text_ok(name, n, key) && memchr(name, '\n', n) == NULL;
}

/* cu_note_key_id(name, pub): the 4-byte key id as a big-endian integer. */
uint32_t cu_note_key_id(const char *name, const uint8_t pub[CU_SIGN_PUBLIC_BYTES])
{
    uint8_t buf[CU_NOTE_NAME_MAX + 2 + CU_SIGN_PUBLIC_BYTES];
    uint8_t h[CU_HASH_BYTES];
    size_t n = strnlen(name, CU_NOTE_NAME_MAX + 1);

    CU_ASSERT_MSG(n <= CU_NOTE_NAME_MAX, "key name too long");
    memcpy(buf, name, n);
    buf[n] = '\n';
    buf[n + 1] = ALG_ED25519;
    memcpy(buf + n + 2, pub, CU_SIGN_PUBLIC_BYTES);
    cu_crypto_sha256(buf, n + 2 + CU_SIGN_PUBLIC_BYTES, h);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

/* cu_note_verifier_key(name, pub, out): the verifier key string into out
 * (CU_NOTE_VKEY_BYTES). CU_E_INVALID when name is empty, longer than CU_NOTE_NAME_MAX, or has
 * a space, '+' or a control character. */
enum cu_err cu_note_verifier_key(const char *name, const uint8_t pub[CU_SIGN_PUBLIC_BYTES],
                                 char out[CU_NOTE_VKEY_BYTES])
{
    uint8_t key[1 + CU_SIGN_PUBLIC_BYTES];
    char b64[CU_B64_LEN(sizeof key) + 1];
    enum cu_err rc;
    int n;

    if (!name_ok(name, true)) {
        return CU_E_INVALID;
    }
    key[0] = ALG_ED25519;
    memcpy(key + 1, pub, CU_SIGN_PUBLIC_BYTES);
    rc = cu_b64_encode(key, sizeof key, b64, sizeof b64);
    if (rc != CU_OK) {
        return rc;
    }
    n = snprintf(out, CU_NOTE_VKEY_BYTES, "%s+%08" PRIx32 "+%s", name, cu_note_key_id(name, pub),
                 b64);
    return n > 0 && n < CU_NOTE_VKEY_BYTES ? CU_OK : CU_E_INTERNAL;
}

/* sig_line(signer, key_name, text, len, out, cap): the signature line of text into out. */
static enum cu_err sig_line(const struct cu_signer *signer, const char *key_name, const char *text,
                            size_t len, char *out, size_t cap)
{
    uint8_t pub[CU_SIGN_PUBLIC_BYTES];
    uint8_t blob[SIG_BLOB_BYTES];
    char b64[CU_B64_LEN(SIG_BLOB_BYTES) + 1];
    uint32_t id;
    enum cu_err rc;
    int n;

    cu_signer_public_key(signer, pub);
    id = cu_note_key_id(key_name, pub);
    blob[0] = (uint8_t)(id >> 24);
    blob[1] = (uint8_t)(id >> 16);
    blob[2] = (uint8_t)(id >> 8);
    blob[3] = (uint8_t)id;
    cu_signer_sign(signer, text, len, blob + 4);
    rc = cu_b64_encode(blob, sizeof blob, b64, sizeof b64);
    if (rc != CU_OK) {
        return rc;
    }
    n = snprintf(out, cap, SIG_PREFIX "%s %s\n", key_name, b64);
    return n > 0 && (size_t)n < cap ? CU_OK : CU_E_INTERNAL;
}

/* cu_note_checkpoint(origin, size, root, signer, key_name, out): the signed checkpoint note
 * for a tree, NUL-terminated, into out (CU_NOTE_BYTES). */
enum cu_err cu_note_checkpoint(const char *origin, uint64_t size, const cu_merkle_hash root,
                               const struct cu_signer *signer, const char *key_name,
                               char out[CU_NOTE_BYTES])
{
    char b64[CU_B64_LEN(CU_MERKLE_HASH_BYTES) + 1];
    enum cu_err rc = CU_E_INVALID;
    int n;

    out[0] = '\0';
    if (!name_ok(origin, false) || !name_ok(key_name, true)) {
        goto out;
    }
    rc = cu_b64_encode(root, CU_MERKLE_HASH_BYTES, b64, sizeof b64);
    if (rc != CU_OK) {
        goto out;
    }
    /* the body, then the blank line that ends it */
    n = snprintf(out, CU_NOTE_BYTES, "%s\n%" PRIu64 "\n%s\n\n", origin, size, b64);
    if (n <= 0 || n >= CU_NOTE_BYTES) {
        rc = CU_E_INTERNAL;
        goto out;
    }
    rc = sig_line(signer, key_name, out, (size_t)n - 1, out + n, CU_NOTE_BYTES - (size_t)n);
out:
    if (rc != CU_OK) {
        out[0] = '\0';
    }
    return rc;
}

/* A signature line, split. */
struct sig {
    const char *name;
    size_t name_len;
    uint8_t blob[SIG_BLOB_BYTES];
    size_t blob_len;
    bool ours;
};

/* parse_sig(line, len, key_name, id, sig): checks the form of one signature line (without its
 * newline) and whether it claims to be by (key_name, id); CU_E_INVALID when malformed. */
static enum cu_err parse_sig(const char *line, size_t len, const char *key_name, uint32_t id,
                             struct sig *sig)
{
    uint8_t blob[NOTE_MAX_PARSE];
    const char *space;
    size_t b64_len;

    if (len < SIG_PREFIX_LEN || memcmp(line, SIG_PREFIX, SIG_PREFIX_LEN) != 0) {
        return CU_E_INVALID;
    }
    line += SIG_PREFIX_LEN;
    len -= SIG_PREFIX_LEN;
    space = memchr(line, ' ', len);
    if (space == NULL) {
        return CU_E_INVALID;
    }
    sig->name = line;
    sig->name_len = (size_t)(space - line);
    b64_len = len - sig->name_len - 1;
    if (sig->name_len == 0 || !text_ok(line, sig->name_len, true) ||
        cu_b64_decode(space + 1, b64_len, blob, sizeof blob, &sig->blob_len) != CU_OK ||
        sig->blob_len < 5) {
        return CU_E_INVALID; /* a key id and at least one byte of signature */
    }
    sig->ours =
        sig->name_len == strlen(key_name) && memcmp(sig->name, key_name, sig->name_len) == 0 &&
        ((uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3]) ==
            id;
    if (sig->ours && sig->blob_len != SIG_BLOB_BYTES) {
        return CU_E_INVALID; /* our key is Ed25519: the signature must be 64 bytes */
    }
    memcpy(sig->blob, blob, sig->ours ? SIG_BLOB_BYTES : 0);
    return CU_OK;
}

/* check_sigs(sigs, len, text, text_len, key_name, pub): checks every signature line in sigs
 * (which ends with a newline); CU_E_INVALID on a malformed or 17th line, CU_E_CRYPTO unless at
 * least one line is ours and every line of ours verifies over text. */
static enum cu_err check_sigs(const char *sigs, size_t len, const char *text, size_t text_len,
                              const char *key_name, const uint8_t pub[CU_SIGN_PUBLIC_BYTES])
{
    uint32_t id = cu_note_key_id(key_name, pub);
    size_t count = 0, good = 0, bad = 0;
    enum cu_err rc = CU_OK;

    while (len > 0 && rc == CU_OK) {
        const char *nl = memchr(sigs, '\n', len);
        size_t line_len = (size_t)(nl - sigs);
        struct sig sig;

        rc = ++count > NOTE_MAX_SIGS ? CU_E_INVALID : parse_sig(sigs, line_len, key_name, id, &sig);
        if (rc == CU_OK && sig.ours) {
            if (cu_crypto_verify(pub, text, text_len, sig.blob + 4)) {
                good++;
            } else {
                bad++;
            }
        }
        sigs += line_len + 1;
        len -= line_len + 1;
    }
    if (rc == CU_OK && (good == 0 || bad > 0)) {
        rc = CU_E_CRYPTO;
    }
    return rc;
}

/* parse_size(s, n, out): a tree size in decimal without leading zeros; false when it is not. */
static bool parse_size(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 20 || (s[0] == '0' && n > 1)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* A checkpoint body, parsed. */
struct body {
    char origin[CU_NOTE_NAME_MAX + 1];
    uint64_t size;
    cu_merkle_hash root;
};

/* parse_body(text, len, b): the checkpoint in text (which ends with a newline); extension
 * lines after the root are accepted and ignored, empty lines are not. CU_E_INVALID when
 * malformed. */
static enum cu_err parse_body(const char *text, size_t len, struct body *b)
{
    const char *line[3];
    size_t line_len[3], got = 0, i = 0, root_len = 0;

    for (size_t n = 0; i < len; n++) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t l = (size_t)(nl - (text + i));

        if (l == 0) {
            return CU_E_INVALID;
        }
        if (n < 3) {
            line[n] = text + i;
            line_len[n] = l;
        }
        i += l + 1;
        got = n + 1;
    }
    if (got < 3 || line_len[0] > CU_NOTE_NAME_MAX || !parse_size(line[1], line_len[1], &b->size) ||
        cu_b64_decode(line[2], line_len[2], b->root, CU_MERKLE_HASH_BYTES, &root_len) != CU_OK ||
        root_len != CU_MERKLE_HASH_BYTES) {
        return CU_E_INVALID;
    }
    memcpy(b->origin, line[0], line_len[0]);
    b->origin[line_len[0]] = '\0';
    return CU_OK;
}

/* cu_note_open_checkpoint(note, len, key_name, pub, origin, size, root): checks that note is
 * a well-formed signed note carrying a valid signature by (key_name, pub) over a well-formed
 * checkpoint body, and returns what the body says. origin (CU_NOTE_NAME_MAX + 1 bytes) gets
 * the origin line. Signature lines by other keys are ignored; a note with no valid signature
 * by this key is CU_E_CRYPTO; a malformed note or body is CU_E_INVALID; a note longer than
 * 4096 bytes is CU_E_TOO_LARGE. */
enum cu_err cu_note_open_checkpoint(const char *note, size_t len, const char *key_name,
                                    const uint8_t pub[CU_SIGN_PUBLIC_BYTES], char *origin,
                                    uint64_t *size, cu_merkle_hash root)
{
    struct body b;
    size_t split = len;
    enum cu_err rc = CU_E_TOO_LARGE;

    if (len > NOTE_MAX_PARSE) {
        goto out;
    }
    rc = CU_E_INVALID;
    if (!name_ok(key_name, true) || !text_ok(note, len, false)) {
        goto out;
    }
    /* the last blank line ends the text; what follows it must be lines ending in newline */
    while (split >= 2 && !(note[split - 2] == '\n' && note[split - 1] == '\n')) {
        split--;
    }
    if (split < 2 || split == len || note[len - 1] != '\n') {
        goto out;
    }
    rc = parse_body(note, split - 1, &b);
    if (rc != CU_OK) {
        goto out;
    }
    rc = check_sigs(note + split, len - split, note, split - 1, key_name, pub);
    if (rc != CU_OK) {
        goto out;
    }
    memcpy(origin, b.origin, strlen(b.origin) + 1);
    *size = b.size;
    memcpy(root, b.root, CU_MERKLE_HASH_BYTES);
out:
    return rc;
}
