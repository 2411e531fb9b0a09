/*
 * note.h - signed notes and checkpoints in the C2SP formats (c2sp.org/signed-note,
 * c2sp.org/tlog-checkpoint), so standard transparency-log tooling can check custodia's audit
 * checkpoints.
 *
 * A checkpoint body is three lines: the origin, the tree size in decimal, the root hash in
 * standard base64. A signed note is the body, an empty line, and one signature line per
 * signer: "— <name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>", where the key
 * id is the first 4 bytes of SHA-256(<name> || "\n" || 0x01 || public key). The verifier key
 * is written "<name>+<key id in 8 hex digits>+<base64(0x01 || public key)>".
 */
#ifndef CU_AUDIT_NOTE_H
#define CU_AUDIT_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "audit/merkle.h"
#include "base/err.h"
#include "crypto/sign.h"

/* Longest origin / key name custodia writes or accepts. */
#define CU_NOTE_NAME_MAX 128
/* Bytes that hold any checkpoint note custodia makes (body plus one signature). */
#define CU_NOTE_BYTES 512
/* Bytes for a verifier key string, with NUL. */
#define CU_NOTE_VKEY_BYTES (CU_NOTE_NAME_MAX + 80)

/* cu_note_key_id(name, pub): the 4-byte key id as a big-endian integer. */
uint32_t cu_note_key_id(const char *name, const uint8_t pub[CU_SIGN_PUBLIC_BYTES]);

/* cu_note_verifier_key(name, pub, out): the verifier key string into out
 * (CU_NOTE_VKEY_BYTES). CU_E_INVALID when name is empty, longer than CU_NOTE_NAME_MAX, or has
 * a space, '+' or a control character. */
CU_WUR enum cu_err cu_note_verifier_key(const char *name, const uint8_t pub[CU_SIGN_PUBLIC_BYTES],
                                        char out[CU_NOTE_VKEY_BYTES]);

/* cu_note_checkpoint(origin, size, root, signer, key_name, out): the signed checkpoint note
 * for a tree, NUL-terminated, into out (CU_NOTE_BYTES). */
CU_WUR enum cu_err cu_note_checkpoint(const char *origin, uint64_t size, const cu_merkle_hash root,
                                      const struct cu_signer *signer, const char *key_name,
                                      char out[CU_NOTE_BYTES]);

/* cu_note_open_checkpoint(note, len, key_name, pub, origin, size, root): checks that note is
 * a well-formed signed note carrying a valid signature by (key_name, pub) over a well-formed
 * checkpoint body, and returns what the body says. origin (CU_NOTE_NAME_MAX + 1 bytes) gets
 * the origin line. Signature lines by other keys are ignored; a note with no valid signature
 * by this key is CU_E_CRYPTO; a malformed note or body is CU_E_INVALID; a note longer than
 * 4096 bytes is CU_E_TOO_LARGE. */
CU_WUR enum cu_err cu_note_open_checkpoint(const char *note, size_t len, const char *key_name,
                                           const uint8_t pub[CU_SIGN_PUBLIC_BYTES], char *origin,
                                           uint64_t *size, cu_merkle_hash root);

#endif
