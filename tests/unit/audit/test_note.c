/*
 * test_note.c - signed checkpoint notes (C2SP signed-note + tlog-checkpoint): known answers
 * from independent implementations, round trips, tampering, foreign signature lines, every
 * kind of malformed note, name rules, and - when Go and golang.org/x/mod are installed - that
 * the Go reference implementation (tests/interop/note_interop.sh) accepts what we write and
 * agrees on the Merkle root.
 */
#include "cu_test.h"

#include <sys/wait.h>

#include "audit/merkle.h"
#include "audit/note.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "crypto/sign.h"

/* RFC 8032 section 7.1 TEST 1: seed and public key. */
#define SEED1 "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define KEY_NAME "custodia.example/audit"
#define ORIGIN "custodia.example/log"
#define ROOT_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0x00..0x1f */

/* Key id and verifier key of (KEY_NAME, RFC 8032 TEST 1 public key), computed with Python:
 *   pub = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
 *   h = hashlib.sha256(b"custodia.example/audit" + b"\n\x01" + pub).digest()[:4]
 *   vkey = name + "+" + h.hex() + "+" + base64.b64encode(b"\x01" + pub).decode()
 * and the same vkey from Go's note.NewEd25519VerifierKey. */
#define KEY_ID 0xc4570443u
#define VKEY KEY_NAME "+c4570443+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"

/* The checkpoint (ORIGIN, 5, bytes 0x00..0x1f) signed by Go's note.Sign (golang.org/x/mod
 * 0.7.0) with the signer key "PRIVATE+KEY+" KEY_NAME "+c4570443+" base64(0x01 || SEED1). */
#define GO_NOTE                                                                                    \
    ORIGIN "\n5\n" ROOT_B64 "\n\n"                                                                 \
           "\xe2\x80\x94 " KEY_NAME                                                                \
           " xFcEQ9OS7C3Rf3NGUwdOIloJgtJ2TVmxNKz5JqjOCxrOsV1DBx++8Z7SP19T"                         \
           "5sNX0isHq4Vx35P2jV3zKOSwKFe87Qo=\n"

#define EM_DASH "\xe2\x80\x94 "

static struct cu_signer *signer;  /* SEED1 */
static struct cu_signer *witness; /* a random other key */
static uint8_t pub[CU_SIGN_PUBLIC_BYTES];
static cu_merkle_hash root0to31;

/* new_signer(hex): a signer for a hex seed, or a random one when hex is NULL. */
static struct cu_signer *new_signer(const char *hex)
{
    struct cu_secret *seed = cu_secret_new(CU_KEY_BYTES);
    struct cu_signer *s = NULL;

    if (seed == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < CU_KEY_BYTES; i++) {
        unsigned int b = 0;

        if (hex != NULL && sscanf(hex + 2 * i, "%2x", &b) != 1) {
            break;
        }
        cu_secret_data(seed)[i] = (uint8_t)b;
    }
    if (hex == NULL) {
        cu_crypto_random(cu_secret_data(seed), CU_KEY_BYTES);
    }
    if (cu_signer_new(seed, &s) != CU_OK) {
        s = NULL;
    }
    cu_secret_free(seed);
    return s;
}

static int setup(void **state)
{
    (void)state;
    if (cu_crypto_init() != CU_OK) {
        return -1;
    }
    signer = new_signer(SEED1);
    witness = new_signer(NULL);
    if (signer == NULL || witness == NULL) {
        return -1;
    }
    cu_signer_public_key(signer, pub);
    for (size_t i = 0; i < CU_MERKLE_HASH_BYTES; i++) {
        root0to31[i] = (uint8_t)i;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cu_signer_free(signer);
    cu_signer_free(witness);
    return 0;
}

/* open_note(note): opens the NUL-terminated note with (KEY_NAME, pub). */
static enum cu_err open_note(const char *note)
{
    char origin[CU_NOTE_NAME_MAX + 1];
    cu_merkle_hash root;
    uint64_t size = 0;

    return cu_note_open_checkpoint(note, strlen(note), KEY_NAME, pub, origin, &size, root);
}

/* sig_line(s, name, id, text, siglen, out, cap): a signature line by s over text, with key id
 * id and the signature cut to siglen bytes (CU_SIGN_BYTES for a proper one). Built here, apart
 * from note.c, so tests can sign bodies that cu_note_checkpoint would never write. */
static void sig_line(const struct cu_signer *s, const char *name, uint32_t id, const char *text,
                     size_t siglen, char *out, size_t cap)
{
    uint8_t blob[4 + CU_SIGN_BYTES];
    char b64[CU_B64_LEN(sizeof blob) + 1];

    blob[0] = (uint8_t)(id >> 24);
    blob[1] = (uint8_t)(id >> 16);
    blob[2] = (uint8_t)(id >> 8);
    blob[3] = (uint8_t)id;
    cu_signer_sign(s, text, strlen(text), blob + 4);
    assert_int_equal(cu_b64_encode(blob, 4 + siglen, b64, sizeof b64), CU_OK);
    assert_true((size_t)snprintf(out, cap, EM_DASH "%s %s\n", name, b64) < cap);
}

/* signed_note(body, out, cap): body, a blank line and our proper signature of body. */
static void signed_note(const char *body, char *out, size_t cap)
{
    char line[256];

    sig_line(signer, KEY_NAME, KEY_ID, body, CU_SIGN_BYTES, line, sizeof line);
    assert_true((size_t)snprintf(out, cap, "%s\n%s", body, line) < cap);
}

static void test_key_id_and_vkey_known_answer(void **state)
{
    char vkey[CU_NOTE_VKEY_BYTES];

    (void)state;
    assert_int_equal(cu_note_key_id(KEY_NAME, pub), KEY_ID);
    assert_int_equal(cu_note_verifier_key(KEY_NAME, pub, vkey), CU_OK);
    assert_string_equal(vkey, VKEY);
}

static void test_checkpoint_known_answer(void **state)
{
    char note[CU_NOTE_BYTES];
    char origin[CU_NOTE_NAME_MAX + 1];
    cu_merkle_hash root;
    uint64_t size = 0;

    (void)state;
    assert_int_equal(cu_note_checkpoint(ORIGIN, 5, root0to31, signer, KEY_NAME, note), CU_OK);
    assert_string_equal(note, GO_NOTE);
    assert_int_equal(
        cu_note_open_checkpoint(GO_NOTE, strlen(GO_NOTE), KEY_NAME, pub, origin, &size, root),
        CU_OK);
    assert_string_equal(origin, ORIGIN);
    assert_int_equal(size, 5);
    assert_memory_equal(root, root0to31, CU_MERKLE_HASH_BYTES);
}

static void test_round_trip(void **state)
{
    static const uint64_t sizes[] = {0, 1, 7, 1000000, UINT64_MAX};

    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char note[CU_NOTE_BYTES], origin[CU_NOTE_NAME_MAX + 1];
        cu_merkle_hash root, got;
        uint64_t size = 0;

        cu_crypto_random(root, sizeof root);
        assert_int_equal(
            cu_note_checkpoint("log.example.com/a b", sizes[i], root, signer, KEY_NAME, note),
            CU_OK);
        assert_int_equal(
            cu_note_open_checkpoint(note, strlen(note), KEY_NAME, pub, origin, &size, got), CU_OK);
        assert_string_equal(origin, "log.example.com/a b");
        assert_int_equal(size, sizes[i]);
        assert_memory_equal(got, root, CU_MERKLE_HASH_BYTES);
    }
}

/* replace(note, from, to, out): note with the first from replaced by to. */
static void replace(const char *note, const char *from, const char *to, char *out, size_t cap)
{
    const char *at = strstr(note, from);

    assert_non_null(at);
    assert_true((size_t)snprintf(out, cap, "%.*s%s%s", (int)(at - note), note, to,
                                 at + strlen(from)) < cap);
}

static void test_tampering_fails(void **state)
{
    static const char *edits[][2] = {
        {"\n5\n", "\n6\n"},                               /* size */
        {"\nAAECAwQF", "\nAQECAwQF"},                     /* root */
        {"custodia.example/log", "custodia.example/lag"}, /* origin */
        {"xFcEQ9OS7C3R", "xFcEQ9OS7C3S"},                 /* signature */
        {"xFcEQ9", "xFcEQ8"},                             /* key id */
        {"audit xFc", "audiT xFc"},                       /* key name in the signature line */
    };
    char note[CU_NOTE_BYTES];
    char origin[CU_NOTE_NAME_MAX + 1] = "untouched";
    cu_merkle_hash root;
    uint64_t size = 42;
    uint8_t other[CU_SIGN_PUBLIC_BYTES];

    (void)state;
    assert_int_equal(open_note(GO_NOTE), CU_OK);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        replace(GO_NOTE, edits[i][0], edits[i][1], note, sizeof note);
        assert_int_equal(
            cu_note_open_checkpoint(note, strlen(note), KEY_NAME, pub, origin, &size, root),
            CU_E_CRYPTO);
        assert_string_equal(origin, "untouched");
        assert_int_equal(size, 42);
    }
    /* the right note, the wrong key or key name */
    cu_signer_public_key(witness, other);
    assert_int_equal(
        cu_note_open_checkpoint(GO_NOTE, strlen(GO_NOTE), KEY_NAME, other, origin, &size, root),
        CU_E_CRYPTO);
    assert_int_equal(cu_note_open_checkpoint(GO_NOTE, strlen(GO_NOTE), "custodia.example/other",
                                             pub, origin, &size, root),
                     CU_E_CRYPTO);
}

static void test_foreign_signatures_ignored(void **state)
{
    char note[1024], wline[256], longer[256], ours_other_id[256], bad[256];
    const char *body = ORIGIN "\n5\n" ROOT_B64 "\n";
    const char *ours = strstr(GO_NOTE, EM_DASH);
    uint8_t wpub[CU_SIGN_PUBLIC_BYTES];

    (void)state;
    cu_signer_public_key(witness, wpub);
    sig_line(witness, "witness.example", cu_note_key_id("witness.example", wpub), body,
             CU_SIGN_BYTES, wline, sizeof wline);
    /* another algorithm: a signature of another length under another name */
    snprintf(longer, sizeof longer, EM_DASH "pq.example %s\n",
             "AAAAAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
             "AQEBAQEBAQEBAQEBAQEBAQE=");
    /* our name under another key id: another key of ours, e.g. before a rotation */
    sig_line(witness, KEY_NAME, KEY_ID ^ 1u, body, CU_SIGN_BYTES, ours_other_id,
             sizeof ours_other_id);

    snprintf(note, sizeof note, "%s\n%s%s%s%s", body, wline, longer, ours_other_id, ours);
    assert_int_equal(open_note(note), CU_OK);
    snprintf(note, sizeof note, "%s\n%s%s%s", body, ours, wline, longer);
    assert_int_equal(open_note(note), CU_OK);
    /* only foreign signatures: not signed by us */
    snprintf(note, sizeof note, "%s\n%s%s%s", body, wline, longer, ours_other_id);
    assert_int_equal(open_note(note), CU_E_CRYPTO);
    /* a good and a bad signature by our key: the bad one sinks the note */
    sig_line(witness, KEY_NAME, KEY_ID, body, CU_SIGN_BYTES, bad, sizeof bad);
    snprintf(note, sizeof note, "%s\n%s%s", body, ours, bad);
    assert_int_equal(open_note(note), CU_E_CRYPTO);
}

static void test_extension_lines_accepted(void **state)
{
    char note[1024], origin[CU_NOTE_NAME_MAX + 1];
    cu_merkle_hash root;
    uint64_t size = 0;

    (void)state;
    signed_note(ORIGIN "\n5\n" ROOT_B64 "\nTimestamp: 1700000000\nanother extension\n", note,
                sizeof note);
    assert_int_equal(
        cu_note_open_checkpoint(note, strlen(note), KEY_NAME, pub, origin, &size, root), CU_OK);
    assert_string_equal(origin, ORIGIN);
    assert_int_equal(size, 5);
    assert_memory_equal(root, root0to31, CU_MERKLE_HASH_BYTES);
}

/* Bodies that are signed properly but are no checkpoint. */
static const char *bad_bodies[] = {
    "\n5\n" ROOT_B64 "\n",                           /* empty origin */
    ORIGIN "\n05\n" ROOT_B64 "\n",                   /* leading zero */
    ORIGIN "\n00\n" ROOT_B64 "\n",                   /* leading zero */
    ORIGIN "\n\n" ROOT_B64 "\n",                     /* empty size */
    ORIGIN "\n+5\n" ROOT_B64 "\n",                   /* sign */
    ORIGIN "\n-1\n" ROOT_B64 "\n",                   /* negative */
    ORIGIN "\n5a\n" ROOT_B64 "\n",                   /* not a number */
    ORIGIN "\n 5\n" ROOT_B64 "\n",                   /* space */
    ORIGIN "\n18446744073709551616\n" ROOT_B64 "\n", /* 2^64 */
    ORIGIN "\n5\n"
           "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n", /* 31 bytes */
    ORIGIN "\n5\n"
           "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n", /* 33 bytes */
    ORIGIN "\n5\n"
           "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", /* no padding */
    ORIGIN "\n5\n"
           "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-=\n", /* URL alphabet */
    ORIGIN "\n5\n",                                          /* no root */
    ORIGIN "\n",                                             /* origin only */
    ORIGIN "\n5\n" ROOT_B64 "\n\nextension\n",               /* empty line in the body */
    ORIGIN "\tx\n5\n" ROOT_B64 "\n",                         /* control character */
    ORIGIN "\r\n5\n" ROOT_B64 "\n",                          /* CR */
    ORIGIN "\xff\n5\n" ROOT_B64 "\n",                        /* not UTF-8 */
    ORIGIN "\xc0\xaf\n5\n" ROOT_B64 "\n",                    /* overlong UTF-8 */
    ORIGIN "\xed\xa0\x80\n5\n" ROOT_B64 "\n",                /* UTF-8 surrogate */
    /* origin of 129 bytes */
    "0123456789012345678901234567890123456789012345678901234567890123"
    "45678901234567890123456789012345678901234567890123456789012345678\n5\n" ROOT_B64 "\n",
};

static void test_malformed_bodies(void **state)
{
    char note[1024];

    (void)state;
    for (size_t i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
        signed_note(bad_bodies[i], note, sizeof note);
        assert_int_equal(open_note(note), CU_E_INVALID);
    }
    /* the largest size there is, and 128-byte origins, are fine */
    signed_note(ORIGIN "\n18446744073709551615\n" ROOT_B64 "\n", note, sizeof note);
    assert_int_equal(open_note(note), CU_OK);
    signed_note("0123456789012345678901234567890123456789012345678901234567890123"
                "4567890123456789012345678901234567890123456789012345678901234567\n5\n" ROOT_B64
                "\n",
                note, sizeof note);
    assert_int_equal(open_note(note), CU_OK);
}

static void test_malformed_notes(void **state)
{
    const char *body = ORIGIN "\n5\n" ROOT_B64 "\n";
    const char *ours = strstr(GO_NOTE, EM_DASH);
    char note[1024], line[256];

    (void)state;
    /* no blank line */
    snprintf(note, sizeof note, "%s%s", body, ours);
    assert_int_equal(open_note(note), CU_E_INVALID);
    /* no final newline */
    snprintf(note, sizeof note, "%.*s", (int)strlen(GO_NOTE) - 1, GO_NOTE);
    assert_int_equal(open_note(note), CU_E_INVALID);
    /* no signature */
    snprintf(note, sizeof note, "%s\n", body);
    assert_int_equal(open_note(note), CU_E_INVALID);
    /* a blank line among the signatures */
    snprintf(note, sizeof note, "%s\n%s\n", body, ours);
    assert_int_equal(open_note(note), CU_E_INVALID);
    /* our signature cut to 63 bytes */
    sig_line(signer, KEY_NAME, KEY_ID, body, CU_SIGN_BYTES - 1, line, sizeof line);
    snprintf(note, sizeof note, "%s\n%s", body, line);
    assert_int_equal(open_note(note), CU_E_INVALID);
    /* a foreign signature of only a key id */
    snprintf(note, sizeof note, "%s\n%s" EM_DASH "w AAAAAA==\n", body, ours);
    assert_int_equal(open_note(note), CU_E_INVALID);
    /* a NUL byte inside */
    assert_int_equal(cu_note_open_checkpoint("o\n5\0" ROOT_B64, 49, KEY_NAME, pub, note,
                                             &(uint64_t){0}, (uint8_t[32]){0}),
                     CU_E_INVALID);
}

static void test_malformed_signature_lines(void **state)
{
    static const char *bad[] = {
        "-- " KEY_NAME " xFcE\n",              /* not an em dash */
        "\xe2\x80\x94" KEY_NAME " xFcEQ9OS\n", /* no space after the dash */
        EM_DASH KEY_NAME "\n",                 /* no signature */
        EM_DASH KEY_NAME " \n",                /* empty signature */
        EM_DASH " xFcEQ9OS\n",                 /* empty name */
        EM_DASH "a b xFcEQ9OS\n",              /* space in the signature */
        EM_DASH "w!ness !!!!!!!!\n",           /* not base64 */
        EM_DASH "w xFcEQ9OS7C3Rf3N\n",         /* base64 without padding */
        EM_DASH "w+x xFcEQ9OS\n",              /* '+' in the name */
        EM_DASH "w\xc2\xa0x xFcEQ9OS\n",       /* U+00A0 in the name */
        EM_DASH "w xFcEQ9OS \n",               /* trailing space */
    };
    const char *ours = strstr(GO_NOTE, EM_DASH);
    char note[1024];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(note, sizeof note, ORIGIN "\n5\n" ROOT_B64 "\n\n%s%s", ours, bad[i]);
        assert_int_equal(open_note(note), CU_E_INVALID);
    }
}

/* long_note(total, out, cap): a properly signed note of exactly total bytes, padded with an
 * extension line. */
static void long_note(size_t total, char *out, size_t cap)
{
    const char *prefix = ORIGIN "\n5\n" ROOT_B64 "\n";
    size_t sig_len = strlen(strstr(GO_NOTE, EM_DASH)); /* all our lines are this long */
    size_t ext = total - strlen(prefix) - 1 - 1 - sig_len;
    char *body = cu_malloc(total + 1);

    assert_non_null(body);
    memcpy(body, prefix, strlen(prefix));
    memset(body + strlen(prefix), 'x', ext);
    body[strlen(prefix) + ext] = '\n';
    body[strlen(prefix) + ext + 1] = '\0';
    signed_note(body, out, cap);
    assert_int_equal(strlen(out), total);
    cu_free(body);
}

static void test_limits(void **state)
{
    const char *body = ORIGIN "\n5\n" ROOT_B64 "\n";
    const char *ours = strstr(GO_NOTE, EM_DASH);
    char note[8192], wline[256];
    size_t n;

    (void)state;
    sig_line(witness, "w", 1, body, CU_SIGN_BYTES, wline, sizeof wline);
    /* 16 signature lines are read, 17 are not */
    n = (size_t)snprintf(note, sizeof note, "%s\n%s", body, ours);
    for (int i = 0; i < 15; i++) {
        n += (size_t)snprintf(note + n, sizeof note - n, "%s", wline);
    }
    assert_int_equal(open_note(note), CU_OK);
    snprintf(note + n, sizeof note - n, "%s", wline);
    assert_int_equal(open_note(note), CU_E_INVALID);
    /* 4096 bytes are read, 4097 are not */
    long_note(4096, note, sizeof note);
    assert_int_equal(open_note(note), CU_OK);
    long_note(4097, note, sizeof note);
    assert_int_equal(open_note(note), CU_E_TOO_LARGE);
}

static void test_name_rules(void **state)
{
    static const char *bad[] = {
        "",
        "a b",
        "a+b",
        "a\tb",
        "a\nb",
        "a\xc2\xa0"
        "b",             /* U+00A0 */
        "a\xe3\x80\x80", /* U+3000 */
        "a\xe2\x80\xa8", /* U+2028 */
        "a\xff",
        "a\x01",
        /* 129 bytes */
        "0123456789012345678901234567890123456789012345678901234567890123"
        "45678901234567890123456789012345678901234567890123456789012345678",
    };
    const char *max = "0123456789012345678901234567890123456789012345678901234567890123"
                      "45678901234567890123456789012345678901234567890123456789012345\xc3\xa9";
    char vkey[CU_NOTE_VKEY_BYTES], note[CU_NOTE_BYTES], origin[CU_NOTE_NAME_MAX + 1];
    cu_merkle_hash root;
    uint64_t size = 0;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cu_note_verifier_key(bad[i], pub, vkey), CU_E_INVALID);
        assert_int_equal(cu_note_checkpoint(ORIGIN, 1, root0to31, signer, bad[i], note),
                         CU_E_INVALID);
        assert_string_equal(note, "");
        assert_int_equal(
            cu_note_open_checkpoint(GO_NOTE, strlen(GO_NOTE), bad[i], pub, origin, &size, root),
            CU_E_INVALID);
    }
    /* origins may hold spaces and '+', but must be one line of 1 to 128 bytes */
    assert_int_equal(cu_note_checkpoint("", 1, root0to31, signer, KEY_NAME, note), CU_E_INVALID);
    assert_int_equal(cu_note_checkpoint("a\nb", 1, root0to31, signer, KEY_NAME, note),
                     CU_E_INVALID);
    assert_int_equal(cu_note_checkpoint("a\rb", 1, root0to31, signer, KEY_NAME, note),
                     CU_E_INVALID);
    assert_int_equal(cu_note_checkpoint(bad[sizeof bad / sizeof bad[0] - 1], 1, root0to31, signer,
                                        KEY_NAME, note),
                     CU_E_INVALID);
    assert_int_equal(cu_note_checkpoint("a +b", 1, root0to31, signer, KEY_NAME, note), CU_OK);
    /* the longest names and the largest size fit CU_NOTE_BYTES and open again */
    assert_int_equal(strlen(max), CU_NOTE_NAME_MAX);
    assert_int_equal(cu_note_verifier_key(max, pub, vkey), CU_OK);
    assert_int_equal(cu_note_checkpoint(max, UINT64_MAX, root0to31, signer, max, note), CU_OK);
    assert_int_equal(cu_note_open_checkpoint(note, strlen(note), max, pub, origin, &size, root),
                     CU_OK);
    assert_string_equal(origin, max);
    assert_int_equal(size, UINT64_MAX);
}

/* run_checker(dir, expect): runs tests/interop/note_interop.sh on dir/{vkey,note,leaves} and
 * returns its exit status; its output goes into expect's comparison when status is 0. */
static int run_checker(const char *dir, const char *leaves, char *out, size_t cap)
{
    const char *src = getenv("CU_SOURCE_ROOT");
    char cmd[4096];
    FILE *p;
    size_t n;
    int status;

    assert_non_null(src);
    assert_true((size_t)snprintf(cmd, sizeof cmd,
                                 "'%s/tests/interop/note_interop.sh' '%s/vkey' '%s/note' %s%s%s",
                                 src, dir, dir, leaves ? "'" : "", leaves ? leaves : "",
                                 leaves ? "'" : "") < sizeof cmd);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* write_checkpoint(dir, origin, size, root, s, name): writes our vkey and note into dir. */
static void write_checkpoint(const char *dir, const char *origin, uint64_t size,
                             const cu_merkle_hash root, const struct cu_signer *s, const char *name)
{
    char path[4200], vkey[CU_NOTE_VKEY_BYTES + 1], note[CU_NOTE_BYTES];
    uint8_t spub[CU_SIGN_PUBLIC_BYTES];

    cu_signer_public_key(s, spub);
    assert_int_equal(cu_note_verifier_key(name, spub, vkey), CU_OK);
    assert_int_equal(cu_note_checkpoint(origin, size, root, s, name, note), CU_OK);
    snprintf(path, sizeof path, "%s/vkey", dir);
    cu_test_write_file(path, vkey);
    snprintf(path, sizeof path, "%s/note", dir);
    cu_test_write_file(path, note);
}

static void test_go_interop(void **state)
{
    char dir[4096], leaves[4200], path[4200], out[1024], expect[512], b64[CU_B64_LEN(32) + 1];
    char rec[32];
    cu_merkle_hash hashes[7], root;
    FILE *f;
    int rc;

    (void)state;
    if (getenv("CU_SOURCE_ROOT") == NULL) {
        fail_msg("CU_SOURCE_ROOT is not set: run this test with meson test");
    }
    cu_test_tmpdir(dir, sizeof dir);
    /* seven records, their RFC 6962 root by merkle.c, signed by note.c */
    snprintf(leaves, sizeof leaves, "%s/leaves", dir);
    f = fopen(leaves, "w");
    assert_non_null(f);
    for (int i = 0; i < 7; i++) {
        int n = snprintf(rec, sizeof rec, "audit record %d", i);

        cu_merkle_leaf_hash(rec, (size_t)n, hashes[i]);
        fprintf(f, "%s\n", rec);
    }
    assert_int_equal(fclose(f), 0);
    cu_merkle_root((const cu_merkle_hash *)hashes, 7, root);
    write_checkpoint(dir, "custodia.example/log", 7, root, signer, KEY_NAME);

    rc = run_checker(dir, leaves, out, sizeof out);
    if (rc == 77) {
        cu_test_rmrf(dir);
        /* scripts/deps.sh installs them; a run without them must not pass silently */
        fail_msg("Go or golang.org/x/mod is not installed (scripts/deps.sh installs them)");
    }
    assert_int_equal(rc, 0);
    assert_int_equal(cu_b64_encode(root, 32, b64, sizeof b64), CU_OK);
    snprintf(expect, sizeof expect, "custodia.example/log\n7\n%s\n", b64);
    assert_string_equal(out, expect);

    /* a random key, a long unicode name, an origin with a space: still accepted */
    write_checkpoint(dir, "log.example/ü a", 123456789, root0to31, witness, "wïtness.example/k1");
    assert_int_equal(run_checker(dir, NULL, out, sizeof out), 0);
    assert_string_equal(out, "log.example/ü a\n123456789\n" ROOT_B64 "\n");

    /* the checker does reject: another root for the same records, a tampered size */
    write_checkpoint(dir, "custodia.example/log", 7, root0to31, signer, KEY_NAME);
    assert_int_equal(run_checker(dir, leaves, out, sizeof out), 1);
    snprintf(path, sizeof path, "%s/note", dir);
    replace(GO_NOTE, "\n5\n", "\n6\n", out, sizeof out);
    cu_test_write_file(path, out);
    assert_int_equal(run_checker(dir, NULL, out, sizeof out), 1);
    cu_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_id_and_vkey_known_answer),
        cmocka_unit_test(test_checkpoint_known_answer),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tampering_fails),
        cmocka_unit_test(test_foreign_signatures_ignored),
        cmocka_unit_test(test_extension_lines_accepted),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_malformed_notes),
        cmocka_unit_test(test_malformed_signature_lines),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_go_interop),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
