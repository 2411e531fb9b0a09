/*
 * keyring.h - the root key file and the keys derived from it.
 *
 * The root key file (made by `custodia init`, mode 0600) holds a master secret, from which
 * sub-keys for named purposes are derived, and versioned key-encryption keys (KEKs), one of
 * them current. Its format is in docs/internals/keyfile.md. The keyring refuses a file that is
 * readable or writable by group or others. All key material lives in guarded memory.
 */
#ifndef CU_CRYPTO_KEYRING_H
#define CU_CRYPTO_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/crypto.h"

/* Bytes for an error message from the keyring. */
#define CU_KEYRING_ERR_BYTES 512

/* Derivation purposes are exactly 8 characters (libsodium's KDF context). */
#define CU_PURPOSE_BYTES 8

struct cu_keyring;

/* cu_keyring_create(path, err): writes a new root key file at path with a fresh master
 * secret and KEK version 1, mode 0600, refusing to overwrite (CU_E_EXISTS). */
CU_WUR enum cu_err cu_keyring_create(const char *path, char err[CU_KEYRING_ERR_BYTES]);

/* cu_keyring_load(path, out, err): loads the root key file. CU_E_IO when it cannot be read,
 * CU_E_PERM when group or others may read or write it, CU_E_CORRUPT when it is malformed
 * (err names the file and line). Caller frees *out with cu_keyring_free(). */
CU_WUR enum cu_err cu_keyring_load(const char *path, struct cu_keyring **out,
                                   char err[CU_KEYRING_ERR_BYTES]);

/* cu_keyring_free(kr): wipes and frees kr; NULL does nothing. */
void cu_keyring_free(struct cu_keyring *kr);

/* cu_keyring_current_kek(kr): the version number of the current KEK. */
uint32_t cu_keyring_current_kek(const struct cu_keyring *kr);

/* cu_keyring_kek(kr, version): the KEK with that version (owned by kr), or NULL when the
 * keyring has none. */
const struct cu_secret *cu_keyring_kek(const struct cu_keyring *kr, uint32_t version);

/* cu_keyring_derive(kr, purpose, id, out): derives the sub-key number id for purpose (exactly
 * CU_PURPOSE_BYTES characters, e.g. "apikey__") from the master secret. Caller frees *out
 * with cu_secret_free(). */
CU_WUR enum cu_err cu_keyring_derive(const struct cu_keyring *kr, const char *purpose, uint64_t id,
                                     struct cu_secret **out);

/* One KEK as cu_keyring_kek_info describes it. */
struct cu_kek_info {
    int64_t created_ms; /* when it was made, Unix milliseconds */
    uint32_t version;
    bool current; /* it wraps new data keys */
};

/* cu_keyring_add_kek(path, out_version, err): appends a new KEK (32 random bytes, the next
 * version number, created now) to the root key file at path and makes it current; the file is
 * rewritten atomically (write a temp file in the same directory with mode 0600 and O_EXCL,
 * fsync it, rename over, fsync the directory) and only after re-loading and checking the old
 * contents. */
CU_WUR enum cu_err cu_keyring_add_kek(const char *path, uint32_t *out_version,
                                      char err[CU_KEYRING_ERR_BYTES]);

/* cu_keyring_retire_kek(path, version, err): removes KEK version from the file (atomically as
 * above). CU_E_INVALID when it is the current one or does not exist. The caller must have
 * checked that nothing is wrapped by it. */
CU_WUR enum cu_err cu_keyring_retire_kek(const char *path, uint32_t version,
                                         char err[CU_KEYRING_ERR_BYTES]);

/* cu_keyring_kek_info(kr, out, cap, n): the KEK versions in the keyring, ascending, and their
 * creation times (Unix ms) into out (cap entries); *n is how many KEKs there are.
 * CU_E_TOO_LARGE, with nothing written to out, when cap is smaller than *n. */
CU_WUR enum cu_err cu_keyring_kek_info(const struct cu_keyring *kr, struct cu_kek_info *out,
                                       size_t cap, size_t *n);

/* How a newly loaded keyring stands to the one in use (cu_keyring_compare). */
enum cu_keyring_change {
    CU_KEYRING_SAME,     /* the same master secret, KEKs and current version */
    CU_KEYRING_NEWER,    /* the same master secret, a current KEK version no lower, and every
                          * KEK version both hold has the same key and creation time: versions
                          * were added or retired */
    CU_KEYRING_CONFLICT, /* not a later state of the same file: another master secret, a
                          * version whose key differs, or an older copy (a lower current
                          * version) */
};

/* cu_keyring_compare(old, new): what new is to old (in constant time as to the key bytes). */
enum cu_keyring_change cu_keyring_compare(const struct cu_keyring *old,
                                          const struct cu_keyring *new);

#endif
