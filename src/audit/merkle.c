/*
 * merkle.c - RFC 6962 Merkle trees over SHA-256: roots, inclusion and consistency proofs.
 *
 * Roots and proofs are made with the recursive definitions of RFC 6962 section 2.1 (MTH, PATH,
 * SUBPROOF), splitting a tree of n leaves at the largest power of two below n; the recursion is
 * at most 64 deep. Proofs are checked with the algorithms of RFC 9162 sections 2.1.3.2 and
 * 2.1.4.2, which walk the proof once and reject any proof of the wrong length. The builder keeps
 * the roots of the perfect subtrees that make up a growing tree, like the digits of its size in
 * binary. SHA-256 comes from src/crypto, the only place that includes a crypto library.
 */
#include "audit/merkle.h"

#include <string.h>

#include "base/mem.h"
#include "crypto/crypto.h"

/* Leaf data up to this many bytes is hashed from a stack buffer; longer data is copied to the
 * heap to put the 0x00 prefix in front of it. */
#define LEAF_STACK_BYTES 4096

/* cu_merkle_leaf_hash(data, len, out): SHA-256(0x00 || data). */
void cu_merkle_leaf_hash(const void *data, size_t len, cu_merkle_hash out)
{
    uint8_t stack[1 + LEAF_STACK_BYTES];
    uint8_t *buf = stack;

    if (len > LEAF_STACK_BYTES) {
        CU_ASSERT_MSG(len < SIZE_MAX, "leaf too large");
        buf = cu_malloc(len + 1);
        CU_ASSERT_MSG(buf != NULL, "out of memory hashing a Merkle leaf");
    }
    buf[0] = 0x00;
    if (len > 0) {
        memcpy(buf + 1, data, len);
    }
    cu_crypto_sha256(buf, len + 1, out);
    if (buf != stack) {
        cu_free(buf);
    }
}

/* cu_merkle_node_hash(left, right, out): SHA-256(0x01 || left || right). */
void cu_merkle_node_hash(const cu_merkle_hash left, const cu_merkle_hash right, cu_merkle_hash out)
{
    uint8_t buf[1 + 2 * CU_MERKLE_HASH_BYTES];

    /* out may be left or right: both are copied before out is written */
    buf[0] = 0x01;
    memcpy(buf + 1, left, CU_MERKLE_HASH_BYTES);
    memcpy(buf + 1 + CU_MERKLE_HASH_BYTES, right, CU_MERKLE_HASH_BYTES);
    cu_crypto_sha256(buf, sizeof buf, out);
}

/* The largest power of two smaller than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;

    while (k < n - k) {
        k <<= 1;
    }
    return k;
}

/* cu_merkle_root(leaves, n, out): the root of the tree whose leaf hashes are leaves[0..n);
 * for n == 0 the hash of the empty string. */
// NOLINTNEXTLINE(misc-no-recursion): at most 64 deep, each level halves the tree
void cu_merkle_root(const cu_merkle_hash *leaves, uint64_t n, cu_merkle_hash out)
{
    cu_merkle_hash left, right;
    uint64_t k;

    if (n == 0) {
        cu_crypto_sha256("", 0, out);
    } else if (n == 1) {
        memcpy(out, leaves[0], CU_MERKLE_HASH_BYTES);
    } else {
        k = split_point(n);
        cu_merkle_root(leaves, k, left);
        cu_merkle_root(leaves + k, n - k, right);
        cu_merkle_node_hash(left, right, out);
    }
}

/* Appends the root of leaves[0..n) to proof. */
static void push_root(const cu_merkle_hash *leaves, uint64_t n, cu_merkle_hash *proof, size_t *len)
{
    CU_ASSERT(*len < CU_MERKLE_MAX_PROOF);
    cu_merkle_root(leaves, n, proof[*len]);
    (*len)++;
}

/* PATH(m, D[0:n]) of RFC 6962 section 2.1.1, appended to proof; m < n. */
// NOLINTNEXTLINE(misc-no-recursion): at most 64 deep, each level halves the tree
static void path(const cu_merkle_hash *leaves, uint64_t n, uint64_t m, cu_merkle_hash *proof,
                 size_t *len)
{
    uint64_t k;

    if (n == 1) {
        return;
    }
    k = split_point(n);
    if (m < k) {
        path(leaves, k, m, proof, len);
        push_root(leaves + k, n - k, proof, len);
    } else {
        path(leaves + k, n - k, m - k, proof, len);
        push_root(leaves, k, proof, len);
    }
}

/* cu_merkle_inclusion_proof(leaves, n, index, proof, len): the proof that leaf index is in the
 * tree of the n leaf hashes, written into proof (CU_MERKLE_MAX_PROOF entries), its length in
 * *len. CU_E_INVALID when index >= n. */
enum cu_err cu_merkle_inclusion_proof(const cu_merkle_hash *leaves, uint64_t n, uint64_t index,
                                      cu_merkle_hash *proof, size_t *len)
{
    enum cu_err rc = CU_OK;

    *len = 0;
    if (index >= n) {
        rc = CU_E_INVALID;
        goto out;
    }
    path(leaves, n, index, proof, len);
out:
    return rc;
}

/* SUBPROOF(m, D[0:n], whole) of RFC 6962 section 2.1.2, appended to proof; 0 < m <= n. whole
 * says that the tree of the first m leaves is one the verifier already knows the root of. */
// NOLINTNEXTLINE(misc-no-recursion): at most 64 deep, each level halves the tree
static void subproof(const cu_merkle_hash *leaves, uint64_t n, uint64_t m, int whole,
                     cu_merkle_hash *proof, size_t *len)
{
    uint64_t k;

    if (m == n) {
        if (!whole) {
            push_root(leaves, n, proof, len);
        }
        return;
    }
    k = split_point(n);
    if (m <= k) {
        subproof(leaves, k, m, whole, proof, len);
        push_root(leaves + k, n - k, proof, len);
    } else {
        subproof(leaves + k, n - k, m - k, 0, proof, len);
        push_root(leaves, k, proof, len);
    }
}

/* cu_merkle_consistency_proof(leaves, size1, size2, proof, len): the proof that the tree of the
 * first size1 leaves is a prefix of the tree of the first size2 (leaves holds at least size2).
 * Empty when size1 == size2 or size1 == 0. CU_E_INVALID when size1 > size2. */
enum cu_err cu_merkle_consistency_proof(const cu_merkle_hash *leaves, uint64_t size1,
                                        uint64_t size2, cu_merkle_hash *proof, size_t *len)
{
    enum cu_err rc = CU_OK;

    *len = 0;
    if (size1 > size2) {
        rc = CU_E_INVALID;
        goto out;
    }
    if (size1 > 0) {
        subproof(leaves, size2, size1, 1, proof, len);
    }
out:
    return rc;
}

/* Shifts fn and sn right together until fn is odd or zero. */
static void shift_to_odd(uint64_t *fn, uint64_t *sn)
{
    while (*fn != 0 && (*fn & 1) == 0) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

/* cu_merkle_verify_inclusion(index, size, leaf, proof, len, root): CU_OK when proof shows that
 * leaf (a leaf hash) is at index in the tree of that size with that root; CU_E_CRYPTO when it
 * does not (wrong hashes, wrong length, index >= size). */
enum cu_err cu_merkle_verify_inclusion(uint64_t index, uint64_t size, const cu_merkle_hash leaf,
                                       const cu_merkle_hash *proof, size_t len,
                                       const cu_merkle_hash root)
{
    enum cu_err rc = CU_E_CRYPTO;
    uint64_t fn = index, sn = size - 1;
    cu_merkle_hash r;

    if (index >= size || len > CU_MERKLE_MAX_PROOF) {
        goto out;
    }
    memcpy(r, leaf, CU_MERKLE_HASH_BYTES);
    for (size_t i = 0; i < len; i++) {
        if (sn == 0) {
            goto out; /* more hashes than the path has levels */
        }
        if ((fn & 1) == 1 || fn == sn) {
            cu_merkle_node_hash(proof[i], r, r);
            shift_to_odd(&fn, &sn);
        } else {
            cu_merkle_node_hash(r, proof[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn == 0 && memcmp(r, root, CU_MERKLE_HASH_BYTES) == 0) {
        rc = CU_OK;
    }
out:
    return rc;
}

/* The proof of RFC 9162 section 2.1.4.2 with root1 in front when size1 is a power of two. */
struct cons_path {
    const uint8_t *root1;
    const cu_merkle_hash *proof;
    size_t len;     /* entries, counting root1 if it is in front */
    size_t skipped; /* 1 when root1 is in front */
};

static const uint8_t *cons_at(const struct cons_path *p, size_t i)
{
    return i < p->skipped ? p->root1 : p->proof[i - p->skipped];
}

/* Walks a consistency path of length >= 1 for 0 < size1 < size2; CU_OK when it rebuilds both
 * roots. */
static enum cu_err cons_walk(const struct cons_path *p, uint64_t size1, uint64_t size2,
                             const cu_merkle_hash root1, const cu_merkle_hash root2)
{
    enum cu_err rc = CU_E_CRYPTO;
    uint64_t fn = size1 - 1, sn = size2 - 1;
    cu_merkle_hash fr, sr;

    while ((fn & 1) == 1) {
        fn >>= 1;
        sn >>= 1;
    }
    memcpy(fr, cons_at(p, 0), CU_MERKLE_HASH_BYTES);
    memcpy(sr, fr, CU_MERKLE_HASH_BYTES);
    for (size_t i = 1; i < p->len; i++) {
        const uint8_t *c = cons_at(p, i);

        if (sn == 0) {
            goto out; /* more hashes than the path has levels */
        }
        if ((fn & 1) == 1 || fn == sn) {
            cu_merkle_node_hash(c, fr, fr);
            cu_merkle_node_hash(c, sr, sr);
            shift_to_odd(&fn, &sn);
        } else {
            cu_merkle_node_hash(sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn == 0 && memcmp(fr, root1, CU_MERKLE_HASH_BYTES) == 0 &&
        memcmp(sr, root2, CU_MERKLE_HASH_BYTES) == 0) {
        rc = CU_OK;
    }
out:
    return rc;
}

/* cu_merkle_verify_consistency(size1, size2, root1, root2, proof, len): CU_OK when proof shows
 * that the tree (size1, root1) is a prefix of (size2, root2); CU_E_CRYPTO otherwise, including
 * every malformed proof. size1 == 0 is rejected: a proof from the empty tree proves nothing. */
enum cu_err cu_merkle_verify_consistency(uint64_t size1, uint64_t size2, const cu_merkle_hash root1,
                                         const cu_merkle_hash root2, const cu_merkle_hash *proof,
                                         size_t len)
{
    enum cu_err rc = CU_E_CRYPTO;
    struct cons_path p = {root1, proof, len, 0};

    if (size1 == 0 || size1 > size2 || len > CU_MERKLE_MAX_PROOF) {
        goto out;
    }
    if (size1 == size2) {
        if (len == 0 && memcmp(root1, root2, CU_MERKLE_HASH_BYTES) == 0) {
            rc = CU_OK;
        }
        goto out;
    }
    if (len == 0) {
        goto out;
    }
    if ((size1 & (size1 - 1)) == 0) {
        p.skipped = 1;
        p.len = len + 1;
    }
    rc = cons_walk(&p, size1, size2, root1, root2);
out:
    return rc;
}

/* cu_merkle_builder_init(b): an empty tree. */
void cu_merkle_builder_init(struct cu_merkle_builder *b)
{
    memset(b, 0, sizeof *b);
}

/* The number of perfect subtrees in a tree of size n: the 1 bits of n. */
static unsigned subtree_count(uint64_t n)
{
    unsigned c = 0;

    for (; n != 0; n &= n - 1) {
        c++;
    }
    return c;
}

/* cu_merkle_builder_add(b, leaf): appends a leaf hash. */
void cu_merkle_builder_add(struct cu_merkle_builder *b, const cu_merkle_hash leaf)
{
    unsigned top = subtree_count(b->size);

    CU_ASSERT_MSG(b->size < UINT64_MAX, "Merkle tree full");
    memcpy(b->stack[top], leaf, CU_MERKLE_HASH_BYTES);
    top++;
    /* each trailing 1 bit of the old size is a subtree as large as the new one: merge them */
    for (uint64_t s = b->size; (s & 1) == 1; s >>= 1) {
        cu_merkle_node_hash(b->stack[top - 2], b->stack[top - 1], b->stack[top - 2]);
        top--;
    }
    b->size++;
}

/* cu_merkle_builder_root(b, out): the root of the tree so far. */
void cu_merkle_builder_root(const struct cu_merkle_builder *b, cu_merkle_hash out)
{
    unsigned top = subtree_count(b->size);

    if (top == 0) {
        cu_crypto_sha256("", 0, out);
    } else {
        memcpy(out, b->stack[top - 1], CU_MERKLE_HASH_BYTES);
        for (unsigned i = top - 1; i > 0; i--) {
            cu_merkle_node_hash(b->stack[i - 1], out, out);
        }
    }
}
