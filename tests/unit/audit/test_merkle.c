/*
 * test_merkle.c - RFC 6962 Merkle trees: known roots of the Certificate Transparency test
 * leaves, every transparency-dev/merkle proof vector in $CU_TEST_DATA/vectors/merkle/testdata
 * (inclusion/ and consistency/; upstream's subtree* directories hold proofs for arbitrary
 * subtrees, which merkle.h does not offer, and are not copied), round trips of made proofs for
 * every tree up to 70 leaves with every way of spoiling them rejected, and the streaming builder
 * against two other ways of computing a root.
 */
#include "cu_test.h"

#include <errno.h>
#include <ftw.h>

#include "audit/merkle.h"
#include "base/json.h"
#include "base/mem.h"
#include "crypto/crypto.h"

#define HB CU_MERKLE_HASH_BYTES

/* C11 does not convert cu_merkle_hash * to const cu_merkle_hash * by itself (a pointer to an
 * array of uint8_t to a pointer to an array of const uint8_t; C23 does), so callers cast. */
#define CH(p) ((const cu_merkle_hash *)(p))

/* Trees in the round trips have up to RT_MAX leaves; sizes a little past it are tried too. */
#define RT_MAX 70
#define LEAVES 320

static cu_merkle_hash leaves[LEAVES];    /* leaf hashes of the 8-byte big-endian numbers 0.. */
static cu_merkle_hash roots[LEAVES + 1]; /* roots[n]: the root of leaves[0..n) */

static void hex_hash(const char *hex, cu_merkle_hash out)
{
    assert_int_equal(strlen(hex), 2 * HB);
    for (size_t i = 0; i < HB; i++) {
        char byte[3] = {hex[2 * i], hex[2 * i + 1], 0};
        char *end;

        out[i] = (uint8_t)strtoul(byte, &end, 16);
        assert_true(*end == '\0');
    }
}

/* An independent root: hash the nodes of each level in pairs, an odd last node goes up as it
 * is. For RFC 6962 trees this gives MTH without splitting at powers of two. */
static void level_root(const cu_merkle_hash *in, size_t n, cu_merkle_hash out)
{
    cu_merkle_hash *lvl = cu_calloc(n > 0 ? n : 1, sizeof *lvl);

    assert_non_null(lvl);
    memcpy(lvl, in, n * sizeof *lvl);
    while (n > 1) {
        size_t k = 0;

        for (size_t i = 0; i + 1 < n; i += 2) {
            cu_merkle_node_hash(lvl[i], lvl[i + 1], lvl[k++]);
        }
        if (n % 2 == 1) {
            memcpy(lvl[k++], lvl[n - 1], HB);
        }
        n = k;
    }
    if (n == 0) {
        cu_crypto_sha256("", 0, out);
    } else {
        memcpy(out, lvl[0], HB);
    }
    cu_free(lvl);
}

static int setup(void **state)
{
    (void)state;
    if (cu_crypto_init() != CU_OK) {
        return -1;
    }
    for (uint64_t i = 0; i < LEAVES; i++) {
        uint8_t be[8];

        for (int b = 0; b < 8; b++) {
            be[b] = (uint8_t)(i >> (56 - 8 * b));
        }
        cu_merkle_leaf_hash(be, sizeof be, leaves[i]);
    }
    for (size_t n = 0; n <= LEAVES; n++) {
        level_root(CH(leaves), n, roots[n]);
    }
    return 0;
}

/* --- hashes and known roots ------------------------------------------------------------- */

/* The leaves of the RFC 6962 / certificate-transparency reference tests. */
static const struct {
    const char *data;
    size_t len;
} ct_leaves[8] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

/* Roots of the first n CT leaves, n = 1..8, computed with Python's hashlib by the recursive MTH
 * of RFC 6962 section 2.1 (leaf = sha256(b"\0" + d), node = sha256(b"\1" + l + r), split at
 * the largest power of two below n); they match the roots published with the CT tests. */
static const char *const ct_roots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static cu_merkle_hash ct_hashes[8];

static void ct_leaf_hashes(void)
{
    for (size_t i = 0; i < 8; i++) {
        cu_merkle_leaf_hash(ct_leaves[i].data, ct_leaves[i].len, ct_hashes[i]);
    }
}

static void test_ct_roots(void **state)
{
    cu_merkle_hash want, got;
    struct cu_merkle_builder b;

    (void)state;
    ct_leaf_hashes();
    cu_merkle_builder_init(&b);
    for (size_t n = 1; n <= 8; n++) {
        hex_hash(ct_roots[n - 1], want);
        cu_merkle_root(CH(ct_hashes), n, got);
        assert_memory_equal(got, want, HB);
        cu_merkle_builder_add(&b, ct_hashes[n - 1]);
        cu_merkle_builder_root(&b, got);
        assert_memory_equal(got, want, HB);
    }
}

static void test_empty_tree(void **state)
{
    cu_merkle_hash want, got;
    struct cu_merkle_builder b;

    (void)state;
    /* SHA-256 of the empty string (FIPS 180-4 examples) */
    hex_hash("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
    cu_merkle_root(NULL, 0, got);
    assert_memory_equal(got, want, HB);
    cu_merkle_builder_init(&b);
    cu_merkle_builder_root(&b, got);
    assert_memory_equal(got, want, HB);
    assert_int_equal(b.size, 0);
}

/* Long leaves go past the stack buffer of cu_merkle_leaf_hash; the expected values are
 * hashlib.sha256(b"\0" + bytes(i % 251 for i in range(n))). */
static void test_leaf_hash_lengths(void **state)
{
    static const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        {4096, "c46b7e9f32bd7ac69139854bf809012fd58ea09765b26f84425175557b080a31"},
        {4097, "9d5ae94f390ef550d5e4f5fd28f9a4847217eef5b23796061823c25c3925cd52"},
        {10000, "28512e5626220268b84046d2806a958cf2e37f6291bce7a6a598aa1e2861e2ab"},
    };
    uint8_t *data = cu_malloc(10000);
    cu_merkle_hash want, got;

    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < 10000; i++) {
        data[i] = (uint8_t)(i % 251);
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hex_hash(cases[c].hex, want);
        cu_merkle_leaf_hash(data, cases[c].n, got);
        assert_memory_equal(got, want, HB);
    }
    cu_free(data);
}

static void test_node_hash_aliasing(void **state)
{
    cu_merkle_hash want, a, b;

    (void)state;
    cu_merkle_node_hash(leaves[0], leaves[1], want);
    memcpy(a, leaves[0], HB);
    cu_merkle_node_hash(a, leaves[1], a);
    assert_memory_equal(a, want, HB);
    memcpy(b, leaves[1], HB);
    cu_merkle_node_hash(leaves[0], b, b);
    assert_memory_equal(b, want, HB);
    hex_hash(ct_roots[1], want);
    ct_leaf_hashes();
    cu_merkle_node_hash(ct_hashes[0], ct_hashes[1], a);
    assert_memory_equal(a, want, HB);
}

/* The builder, cu_merkle_root and the level-by-level root agree for every size 0..300. */
static void test_builder_matches_root(void **state)
{
    struct cu_merkle_builder b;
    cu_merkle_hash got, want;

    (void)state;
    cu_merkle_builder_init(&b);
    for (uint64_t n = 0; n <= 300; n++) {
        if (n > 0) {
            cu_merkle_builder_add(&b, leaves[n - 1]);
        }
        assert_int_equal(b.size, n);
        cu_merkle_builder_root(&b, got);
        cu_merkle_root(CH(leaves), n, want);
        assert_memory_equal(got, want, HB);
        assert_memory_equal(want, roots[n], HB);
    }
}

/* --- the transparency-dev vectors --------------------------------------------------------- */

#define VEC_MAX_FILES 1024
#define VEC_MAX_PROOF 256

static char *vec_paths[VEC_MAX_FILES];
static size_t vec_count;

static int collect(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    size_t n = strlen(path);

    (void)sb;
    (void)ftw;
    if (type != FTW_F || n < 5 || strcmp(path + n - 5, ".json") != 0) {
        return 0;
    }
    if (vec_count == VEC_MAX_FILES) {
        return 1;
    }
    vec_paths[vec_count] = cu_strdup(path);
    return vec_paths[vec_count++] == NULL ? 1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the .json files under testdata/<kind>, sorted, into vec_paths. */
static void list_vectors(const char *kind)
{
    const char *data = getenv("CU_TEST_DATA");
    char dir[4096];
    int n;

    assert_non_null(data); /* tests/meson.build sets it; a missing directory is a failure */
    n = snprintf(dir, sizeof dir, "%s/vectors/merkle/testdata/%s", data, kind);
    assert_true(n > 0 && (size_t)n < sizeof dir);
    vec_count = 0;
    assert_int_equal(nftw(dir, collect, 16, FTW_PHYS), 0);
    qsort(vec_paths, vec_count, sizeof vec_paths[0], cmp_str);
}

static void free_vectors(void)
{
    for (size_t i = 0; i < vec_count; i++) {
        cu_free(vec_paths[i]);
    }
    vec_count = 0;
}

/* The text of a vector file, NUL-terminated. Caller frees with cu_free(). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = cu_malloc(65536);
    size_t n;

    assert_non_null(f);
    assert_non_null(text);
    n = fread(text, 1, 65535, f);
    assert_true(feof(f));
    assert_int_equal(fclose(f), 0);
    text[n] = '\0';
    return text;
}

/* Reads the unsigned integer of "key" from the text with strtoull and overwrites it with a 0
 * padded by spaces: jansson keeps integers in a signed 64-bit type, and some vectors hold
 * 2^64 - 1. The caller checks that jansson then sees 0 at key, so the right text was taken. */
static uint64_t take_u64(char *text, const char *key)
{
    char pat[64], *p, *end;
    unsigned long long v;

    assert_true(snprintf(pat, sizeof pat, "\"%s\":", key) < (int)sizeof pat);
    p = strstr(text, pat);
    assert_non_null(p);
    assert_null(strstr(p + 1, pat));
    p += strlen(pat);
    while (*p == ' ') {
        p++;
    }
    assert_true(*p >= '0' && *p <= '9');
    errno = 0;
    v = strtoull(p, &end, 10);
    assert_int_equal(errno, 0);
    *p = '0';
    memset(p + 1, ' ', (size_t)(end - p - 1));
    return v;
}

static void check_taken(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), 0);
}

static unsigned odd_length_hashes; /* hashes in the vectors that are not 32 bytes long */

/* Decodes a standard base64 hash. The API takes only 32-byte hashes (a caller refuses any other
 * length when it parses one), so a value of another length becomes a stand-in 32 bytes long,
 * SHA-256(role || bytes): equal values of one role (roots: "r", the leaf: "l", proof entries:
 * "p") stay equal and all others differ, as a verifier that checks lengths would see them. */
static void b64_hash(const json_t *s, char role, cu_merkle_hash out)
{
    char text[128];
    uint8_t bin[96];
    size_t n, binlen;

    assert_true(json_is_string(s));
    n = json_string_length(s);
    assert_true(n < sizeof text);
    memcpy(text, json_string_value(s), n);
    for (size_t i = 0; i < n; i++) {
        text[i] = (char)(text[i] == '+' ? '-' : text[i] == '/' ? '_' : text[i]);
    }
    while (n > 0 && text[n - 1] == '=') {
        n--;
    }
    assert_int_equal(cu_b64url_decode(text, n, bin + 1, sizeof bin - 1, &binlen), CU_OK);
    if (binlen == HB) {
        memcpy(out, bin + 1, HB);
    } else {
        bin[0] = (uint8_t)role;
        cu_crypto_sha256(bin, 1 + binlen, out);
        odd_length_hashes++;
    }
}

/* The proof of a vector (null or an array) into proof; returns its length. */
static size_t b64_proof(const json_t *obj, cu_merkle_hash *proof)
{
    const json_t *arr = json_object_get(obj, "proof");
    size_t n = 0;

    assert_non_null(arr);
    if (json_is_null(arr)) {
        return 0;
    }
    assert_true(json_is_array(arr));
    n = json_array_size(arr);
    assert_true(n <= VEC_MAX_PROOF);
    for (size_t i = 0; i < n; i++) {
        b64_hash(json_array_get(arr, i), 'p', proof[i]);
    }
    return n;
}

/* One vector file parsed: the integers are taken out of the text before jansson sees it. */
struct vec {
    json_t *obj;
    uint64_t a, b; /* leafIdx and treeSize, or size1 and size2 */
    bool want_err;
    cu_merkle_hash h1, h2; /* root and leafHash, or root1 and root2 */
    cu_merkle_hash proof[VEC_MAX_PROOF];
    size_t len;
};

static void vec_load(const char *path, const char *ka, const char *kb, const char *kh1,
                     const char *kh2, struct vec *v)
{
    char *text = slurp(path), err[CU_JSON_ERR_BYTES];
    int want_err;

    v->a = take_u64(text, ka);
    v->b = take_u64(text, kb);
    if (cu_json_parse_object(text, strlen(text), &v->obj, err) != CU_OK) {
        fail_msg("%s: %s", path, err);
    }
    cu_free(text);
    check_taken(v->obj, ka);
    check_taken(v->obj, kb);
    want_err = json_is_true(json_object_get(v->obj, "wantErr"));
    assert_true(want_err || json_is_false(json_object_get(v->obj, "wantErr")));
    v->want_err = want_err;
    b64_hash(json_object_get(v->obj, kh1), 'r', v->h1);
    b64_hash(json_object_get(v->obj, kh2), strcmp(kh2, "leafHash") == 0 ? 'l' : 'r', v->h2);
    v->len = b64_proof(v->obj, v->proof);
}

struct vec_counts {
    unsigned ok, err, same_as_made;
};

/* A happy vector over the CT leaves must be exactly the proof we make. */
static void inclusion_same_as_made(const struct vec *v, struct vec_counts *c)
{
    cu_merkle_hash want, proof[CU_MERKLE_MAX_PROOF];
    size_t len;

    if (v->want_err || v->b > 8 || v->b == 0) {
        return;
    }
    hex_hash(ct_roots[v->b - 1], want);
    if (memcmp(want, v->h1, HB) != 0) {
        return;
    }
    assert_int_equal(cu_merkle_inclusion_proof(CH(ct_hashes), v->b, v->a, proof, &len), CU_OK);
    assert_int_equal(len, v->len);
    assert_memory_equal(proof, v->proof, len * HB);
    c->same_as_made++;
}

static void test_vectors_inclusion(void **state)
{
    struct vec *v = cu_calloc(1, sizeof *v);
    struct vec_counts c = {0, 0, 0};

    (void)state;
    assert_non_null(v);
    ct_leaf_hashes();
    odd_length_hashes = 0;
    list_vectors("inclusion");
    for (size_t i = 0; i < vec_count; i++) {
        enum cu_err rc;

        vec_load(vec_paths[i], "leafIdx", "treeSize", "root", "leafHash", v);
        rc = cu_merkle_verify_inclusion(v->a, v->b, v->h2, CH(v->proof), v->len, v->h1);
        if (rc != (v->want_err ? CU_E_CRYPTO : CU_OK)) {
            fail_msg("%s: verify gave %d", vec_paths[i], (int)rc);
        }
        *(v->want_err ? &c.err : &c.ok) += 1;
        inclusion_same_as_made(v, &c);
        json_decref(v->obj);
    }
    free_vectors();
    cu_free(v);
    /* counted from the files: 98 in all, 6 happy; 27 hashes of other lengths than 32 */
    assert_int_equal(c.ok, 6);
    assert_int_equal(c.err, 92);
    assert_int_equal(c.same_as_made, 5);
    assert_int_equal(odd_length_hashes, 27);
}

static void consistency_same_as_made(const struct vec *v, struct vec_counts *c)
{
    cu_merkle_hash want1, want2, proof[CU_MERKLE_MAX_PROOF];
    size_t len;

    if (v->want_err || v->b > 8 || v->a == 0) {
        return;
    }
    hex_hash(ct_roots[v->a - 1], want1);
    hex_hash(ct_roots[v->b - 1], want2);
    if (memcmp(want1, v->h1, HB) != 0 || memcmp(want2, v->h2, HB) != 0) {
        return;
    }
    assert_int_equal(cu_merkle_consistency_proof(CH(ct_hashes), v->a, v->b, proof, &len), CU_OK);
    assert_int_equal(len, v->len);
    assert_memory_equal(proof, v->proof, len * HB);
    c->same_as_made++;
}

static void test_vectors_consistency(void **state)
{
    struct vec *v = cu_calloc(1, sizeof *v);
    struct vec_counts c = {0, 0, 0};

    (void)state;
    assert_non_null(v);
    ct_leaf_hashes();
    odd_length_hashes = 0;
    list_vectors("consistency");
    for (size_t i = 0; i < vec_count; i++) {
        enum cu_err rc;

        vec_load(vec_paths[i], "size1", "size2", "root1", "root2", v);
        rc = cu_merkle_verify_consistency(v->a, v->b, v->h1, v->h2, CH(v->proof), v->len);
        if (rc != (v->want_err ? CU_E_CRYPTO : CU_OK)) {
            fail_msg("%s: verify gave %d", vec_paths[i], (int)rc);
        }
        *(v->want_err ? &c.err : &c.ok) += 1;
        consistency_same_as_made(v, &c);
        json_decref(v->obj);
    }
    free_vectors();
    cu_free(v);
    /* counted from the files: 98 in all, 6 happy; 35 hashes of other lengths than 32 */
    assert_int_equal(c.ok, 6);
    assert_int_equal(c.err, 92);
    assert_int_equal(c.same_as_made, 5);
    assert_int_equal(odd_length_hashes, 35);
}

/* --- round trips and spoiled proofs ------------------------------------------------------ */

/* proof without entry k, into out; returns its length */
static size_t without(const cu_merkle_hash *proof, size_t len, size_t k, cu_merkle_hash *out)
{
    memcpy(out, proof, k * HB);
    memcpy(out + k, proof + k + 1, (len - k - 1) * HB);
    return len - 1;
}

/* proof with h inserted before entry k, into out; returns its length */
static size_t with(const cu_merkle_hash *proof, size_t len, size_t k, const cu_merkle_hash h,
                   cu_merkle_hash *out)
{
    memcpy(out, proof, k * HB);
    memcpy(out[k], h, HB);
    memcpy(out + k + 1, proof + k, (len - k) * HB);
    return len + 1;
}

/* Which bytes of proof hashes are flipped: every byte in trees of up to 16 leaves; above that
 * every 8th, from an offset that moves with the index and the position in the proof, so the
 * flips still land on every byte offset (flipping all 32 bytes of every proof up to 70 leaves
 * takes minutes under valgrind). */
static size_t flip_step(uint64_t n)
{
    return n <= 16 ? 1 : 8;
}

/* Which other indexes and sizes are tried in place of the real one: every one in trees of up
 * to 16 leaves; above that the near neighbours, half and double, and the ends of the range. */
static bool tried(uint64_t v, uint64_t real, uint64_t n)
{
    return n <= 16 || v <= 1 || v + 2 >= n || (v + 3 >= real && v <= real + 3) || v == real / 2 ||
           v == real * 2;
}

static void spoil_inclusion(uint64_t i, uint64_t n, cu_merkle_hash *proof, size_t len)
{
    cu_merkle_hash alt[CU_MERKLE_MAX_PROOF + 1], bad;
    const uint8_t *leaf = leaves[i], *root = roots[n];
    size_t k, m;

    for (k = 0; k < len; k++) {
        for (size_t b = (i + k) % flip_step(n); b < HB; b += flip_step(n)) {
            proof[k][b] ^= (uint8_t)(1u << (b % 8));
            assert_int_equal(cu_merkle_verify_inclusion(i, n, leaf, CH(proof), len, root),
                             CU_E_CRYPTO);
            proof[k][b] ^= (uint8_t)(1u << (b % 8));
        }
        m = without(CH(proof), len, k, alt);
        assert_int_equal(cu_merkle_verify_inclusion(i, n, leaf, CH(alt), m, root), CU_E_CRYPTO);
    }
    for (k = 0; k <= len; k++) {
        m = with(CH(proof), len, k, root, alt);
        assert_int_equal(cu_merkle_verify_inclusion(i, n, leaf, CH(alt), m, root), CU_E_CRYPTO);
        m = with(CH(proof), len, k, leaves[n], alt);
        assert_int_equal(cu_merkle_verify_inclusion(i, n, leaf, CH(alt), m, root), CU_E_CRYPTO);
    }
    /* another index, the same or the next leaf; the tree of another size, with its own root */
    for (uint64_t j = 0; j <= n; j++) {
        if (j != i && tried(j, i, n)) {
            assert_int_equal(cu_merkle_verify_inclusion(j, n, leaf, CH(proof), len, root),
                             CU_E_CRYPTO);
        }
    }
    for (uint64_t s = 0; s <= n + 8; s++) {
        if (s != n && tried(s, n, n)) {
            assert_int_equal(cu_merkle_verify_inclusion(i, s, leaf, CH(proof), len, roots[s]),
                             CU_E_CRYPTO);
        }
    }
    assert_int_equal(cu_merkle_verify_inclusion(i, UINT64_MAX, leaf, CH(proof), len, root),
                     CU_E_CRYPTO);
    assert_int_equal(cu_merkle_verify_inclusion(UINT64_MAX, n, leaf, CH(proof), len, root),
                     CU_E_CRYPTO);
    assert_int_equal(cu_merkle_verify_inclusion(i, n, leaves[i + 1], CH(proof), len, root),
                     CU_E_CRYPTO);
    memcpy(bad, root, HB);
    bad[HB - 1] ^= 1;
    assert_int_equal(cu_merkle_verify_inclusion(i, n, leaf, CH(proof), len, bad), CU_E_CRYPTO);
}

static void test_inclusion_round_trip(void **state)
{
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF];
    size_t len;

    (void)state;
    for (uint64_t n = 1; n <= RT_MAX; n++) {
        for (uint64_t i = 0; i < n; i++) {
            assert_int_equal(cu_merkle_inclusion_proof(CH(leaves), n, i, proof, &len), CU_OK);
            assert_int_equal(cu_merkle_verify_inclusion(i, n, leaves[i], CH(proof), len, roots[n]),
                             CU_OK);
            spoil_inclusion(i, n, proof, len);
        }
    }
}

static enum cu_err vc(uint64_t m, uint64_t n, const cu_merkle_hash *proof, size_t len)
{
    return cu_merkle_verify_consistency(m, n, roots[m], roots[n], proof, len);
}

static void spoil_consistency(uint64_t m, uint64_t n, cu_merkle_hash *proof, size_t len)
{
    cu_merkle_hash alt[CU_MERKLE_MAX_PROOF + 1], bad;
    size_t k, l;

    for (k = 0; k < len; k++) {
        for (size_t b = (m + k) % flip_step(n); b < HB; b += flip_step(n)) {
            proof[k][b] ^= (uint8_t)(1u << (b % 8));
            assert_int_equal(vc(m, n, CH(proof), len), CU_E_CRYPTO);
            proof[k][b] ^= (uint8_t)(1u << (b % 8));
        }
        l = without(CH(proof), len, k, alt);
        assert_int_equal(vc(m, n, CH(alt), l), CU_E_CRYPTO);
    }
    for (k = 0; k <= len; k++) {
        l = with(CH(proof), len, k, roots[m], alt);
        assert_int_equal(vc(m, n, CH(alt), l), CU_E_CRYPTO);
        l = with(CH(proof), len, k, roots[n], alt);
        assert_int_equal(vc(m, n, CH(alt), l), CU_E_CRYPTO);
    }
    /* other sizes, each with the root of the tree of that size */
    for (uint64_t s = 0; s <= n + 1; s++) {
        if (s != m && tried(s, m, n)) {
            assert_int_equal(vc(s, n, CH(proof), len), CU_E_CRYPTO);
        }
    }
    for (uint64_t s = m > 0 ? m - 1 : 0; s <= n + 8; s++) {
        if (s != n && tried(s, n, n)) {
            assert_int_equal(vc(m, s, CH(proof), len), CU_E_CRYPTO);
        }
    }
    assert_int_equal(cu_merkle_verify_consistency(m, n, roots[n], roots[m], CH(proof), len),
                     m == n ? CU_OK : CU_E_CRYPTO);
    memcpy(bad, roots[m], HB);
    bad[0] ^= 0x80;
    assert_int_equal(cu_merkle_verify_consistency(m, n, bad, roots[n], CH(proof), len),
                     CU_E_CRYPTO);
    memcpy(bad, roots[n], HB);
    bad[HB - 1] ^= 0x01;
    assert_int_equal(cu_merkle_verify_consistency(m, n, roots[m], bad, CH(proof), len),
                     CU_E_CRYPTO);
}

static void test_consistency_round_trip(void **state)
{
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF];
    size_t len;

    (void)state;
    for (uint64_t n = 1; n <= RT_MAX; n++) {
        for (uint64_t m = 1; m <= n; m++) {
            assert_int_equal(cu_merkle_consistency_proof(CH(leaves), m, n, proof, &len), CU_OK);
            assert_int_equal(len == 0, m == n);
            assert_int_equal(vc(m, n, CH(proof), len), CU_OK);
            spoil_consistency(m, n, proof, len);
        }
    }
}

/* --- edges of the interface --------------------------------------------------------------- */

static void test_make_errors(void **state)
{
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF];
    size_t len = 99;

    (void)state;
    assert_int_equal(cu_merkle_inclusion_proof(CH(leaves), 5, 5, proof, &len), CU_E_INVALID);
    assert_int_equal(len, 0);
    assert_int_equal(cu_merkle_inclusion_proof(CH(leaves), 0, 0, proof, &len), CU_E_INVALID);
    assert_int_equal(cu_merkle_consistency_proof(CH(leaves), 6, 5, proof, &len), CU_E_INVALID);
    assert_int_equal(len, 0);
    len = 99;
    assert_int_equal(cu_merkle_consistency_proof(CH(leaves), 0, 5, proof, &len), CU_OK);
    assert_int_equal(len, 0);
    len = 99;
    assert_int_equal(cu_merkle_consistency_proof(CH(leaves), 5, 5, proof, &len), CU_OK);
    assert_int_equal(len, 0);
    assert_int_equal(cu_merkle_consistency_proof(CH(leaves), 0, 0, proof, &len), CU_OK);
    assert_int_equal(len, 0);
    /* a single leaf is its own root; its proof is empty */
    assert_int_equal(cu_merkle_inclusion_proof(CH(leaves), 1, 0, proof, &len), CU_OK);
    assert_int_equal(len, 0);
}

static void test_verify_edges(void **state)
{
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF + 1];
    size_t len;

    (void)state;
    /* nothing is in the empty tree, and nothing follows from it */
    assert_int_equal(cu_merkle_verify_inclusion(0, 0, leaves[0], NULL, 0, roots[0]), CU_E_CRYPTO);
    assert_int_equal(cu_merkle_verify_consistency(0, 0, roots[0], roots[0], NULL, 0), CU_E_CRYPTO);
    assert_int_equal(cu_merkle_verify_consistency(0, 5, roots[0], roots[5], NULL, 0), CU_E_CRYPTO);
    assert_int_equal(cu_merkle_verify_consistency(6, 5, roots[6], roots[5], NULL, 0), CU_E_CRYPTO);
    /* equal sizes: equal roots and no proof, nothing else */
    assert_int_equal(cu_merkle_verify_consistency(5, 5, roots[5], roots[5], NULL, 0), CU_OK);
    assert_int_equal(cu_merkle_verify_consistency(5, 5, roots[5], roots[4], NULL, 0), CU_E_CRYPTO);
    assert_int_equal(cu_merkle_verify_consistency(5, 5, roots[5], roots[5], CH(leaves), 1),
                     CU_E_CRYPTO);
    /* sizes that differ need a proof, whether or not size1 is a power of two */
    assert_int_equal(cu_merkle_verify_consistency(3, 5, roots[3], roots[5], NULL, 0), CU_E_CRYPTO);
    assert_int_equal(cu_merkle_verify_consistency(4, 5, roots[4], roots[5], NULL, 0), CU_E_CRYPTO);
    /* more hashes than any proof holds are refused before they are read */
    assert_int_equal(cu_merkle_consistency_proof(CH(leaves), 3, 7, proof, &len), CU_OK);
    assert_int_equal(
        cu_merkle_verify_consistency(3, 7, roots[3], roots[7], CH(proof), CU_MERKLE_MAX_PROOF + 1),
        CU_E_CRYPTO);
    assert_int_equal(cu_merkle_inclusion_proof(CH(leaves), 7, 3, proof, &len), CU_OK);
    assert_int_equal(
        cu_merkle_verify_inclusion(3, 7, leaves[3], CH(proof), CU_MERKLE_MAX_PROOF + 1, roots[7]),
        CU_E_CRYPTO);
}

/* Proofs in a large tree have the lengths RFC 6962 gives: ceil(log2 n) levels at most. */
static void test_proof_lengths(void **state)
{
    cu_merkle_hash proof[CU_MERKLE_MAX_PROOF];
    size_t len;

    (void)state;
    assert_int_equal(cu_merkle_inclusion_proof(CH(leaves), 256, 17, proof, &len), CU_OK);
    assert_int_equal(len, 8);
    assert_int_equal(cu_merkle_verify_inclusion(17, 256, leaves[17], CH(proof), len, roots[256]),
                     CU_OK);
    assert_int_equal(cu_merkle_inclusion_proof(CH(leaves), 257, 256, proof, &len), CU_OK);
    assert_int_equal(len, 1); /* the last leaf's sibling is the perfect tree of 256 */
    assert_memory_equal(proof[0], roots[256], HB);
    assert_int_equal(cu_merkle_consistency_proof(CH(leaves), 256, 300, proof, &len), CU_OK);
    assert_int_equal(cu_merkle_verify_consistency(256, 300, roots[256], roots[300], CH(proof), len),
                     CU_OK);
    assert_int_equal(cu_merkle_consistency_proof(CH(leaves), 255, 300, proof, &len), CU_OK);
    assert_int_equal(cu_merkle_verify_consistency(255, 300, roots[255], roots[300], CH(proof), len),
                     CU_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ct_roots),
        cmocka_unit_test(test_empty_tree),
        cmocka_unit_test(test_leaf_hash_lengths),
        cmocka_unit_test(test_node_hash_aliasing),
        cmocka_unit_test(test_builder_matches_root),
        cmocka_unit_test(test_vectors_inclusion),
        cmocka_unit_test(test_vectors_consistency),
        cmocka_unit_test(test_inclusion_round_trip),
        cmocka_unit_test(test_consistency_round_trip),
        cmocka_unit_test(test_make_errors),
        cmocka_unit_test(test_verify_edges),
        cmocka_unit_test(test_proof_lengths),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
