/*
 * merkle.h - Merkle trees as RFC 6962 defines them, over SHA-256:
 *
 *   leaf hash = SHA-256(0x00 || leaf data)      node hash = SHA-256(0x01 || left || right)
 *
 * the root of a tree of any size, inclusion proofs (a leaf is in a tree) and consistency proofs
 * (a tree of size m is a prefix of a tree of size n), both made and checked. Hashes are
 * CU_MERKLE_HASH_BYTES; a proof is an array of hashes, at most CU_MERKLE_MAX_PROOF long.
 * Making a proof takes the leaf hashes in memory; a builder computes the root of a growing
 * tree in O(log n) memory for callers that stream the leaves.
 */
#ifndef CU_AUDIT_MERKLE_H
#define CU_AUDIT_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CU_MERKLE_HASH_BYTES 32
/* Enough for any tree of up to 2^63 leaves (an inclusion or consistency proof holds at most
 * about two hashes per level). */
#define CU_MERKLE_MAX_PROOF 128

typedef uint8_t cu_merkle_hash[CU_MERKLE_HASH_BYTES];

/* cu_merkle_leaf_hash(data, len, out): SHA-256(0x00 || data). */
void cu_merkle_leaf_hash(const void *data, size_t len, cu_merkle_hash out);

/* cu_merkle_node_hash(left, right, out): SHA-256(0x01 || left || right). */
void cu_merkle_node_hash(const cu_merkle_hash left, const cu_merkle_hash right, cu_merkle_hash out);

/* cu_merkle_root(leaves, n, out): the root of the tree whose leaf hashes are leaves[0..n);
 * for n == 0 the hash of the empty string. */
void cu_merkle_root(const cu_merkle_hash *leaves, uint64_t n, cu_merkle_hash out);

/* cu_merkle_inclusion_proof(leaves, n, index, proof, len): the proof that leaf index is in the
 * tree of the n leaf hashes, written into proof (CU_MERKLE_MAX_PROOF entries), its length in
 * *len. CU_E_INVALID when index >= n. */
CU_WUR enum cu_err cu_merkle_inclusion_proof(const cu_merkle_hash *leaves, uint64_t n,
                                             uint64_t index, cu_merkle_hash *proof, size_t *len);

/* cu_merkle_verify_inclusion(index, size, leaf, proof, len, root): CU_OK when proof shows that
 * leaf (a leaf hash) is at index in the tree of that size with that root; CU_E_CRYPTO when it
 * does not (wrong hashes, wrong length, index >= size). */
CU_WUR enum cu_err cu_merkle_verify_inclusion(uint64_t index, uint64_t size,
                                              const cu_merkle_hash leaf,
                                              const cu_merkle_hash *proof, size_t len,
                                              const cu_merkle_hash root);

/* cu_merkle_consistency_proof(leaves, size1, size2, proof, len): the proof that the tree of the
 * first size1 leaves is a prefix of the tree of the first size2 (leaves holds at least size2).
 * Empty when size1 == size2 or size1 == 0. CU_E_INVALID when size1 > size2. */
CU_WUR enum cu_err cu_merkle_consistency_proof(const cu_merkle_hash *leaves, uint64_t size1,
                                               uint64_t size2, cu_merkle_hash *proof, size_t *len);

/* cu_merkle_verify_consistency(size1, size2, root1, root2, proof, len): CU_OK when proof shows
 * that the tree (size1, root1) is a prefix of (size2, root2); CU_E_CRYPTO otherwise, including
 * every malformed proof. size1 == 0 is rejected: a proof from the empty tree proves nothing. */
CU_WUR enum cu_err cu_merkle_verify_consistency(uint64_t size1, uint64_t size2,
                                                const cu_merkle_hash root1,
                                                const cu_merkle_hash root2,
                                                const cu_merkle_hash *proof, size_t len);

/* A tree that grows one leaf at a time and knows its root at every size. */
struct cu_merkle_builder {
    cu_merkle_hash stack[64]; /* roots of the perfect subtrees, largest first */
    uint64_t size;
};

/* cu_merkle_builder_init(b): an empty tree. */
void cu_merkle_builder_init(struct cu_merkle_builder *b);

/* cu_merkle_builder_add(b, leaf): appends a leaf hash. */
void cu_merkle_builder_add(struct cu_merkle_builder *b, const cu_merkle_hash leaf);

/* cu_merkle_builder_root(b, out): the root of the tree so far. */
void cu_merkle_builder_root(const struct cu_merkle_builder *b, cu_merkle_hash out);

#endif
