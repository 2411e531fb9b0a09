/*
 * archive.h - the encrypted backup file (docs/internals/backup.md): a header, then chunks, each
 * sealed with authenticated encryption under the backup's data key, then the manifest, sealed
 * the same way as the last record. Each record's associated data binds it to the backup (its
 * random id), to its place (its index) and to its kind, so a chunk that is altered, moved,
 * dropped or taken from another backup fails to open, and a file without its manifest (a
 * backup killed half-way, a truncated copy) is refused as incomplete.
 *
 *   "CUSTODIA-BACKUP\n"  16 bytes
 *   version              1 byte (1)
 *   backup id            16 bytes
 *   records              u32 big-endian length, then that many sealed bytes (crypto/seal.h),
 *                        index 0, 1, ...; the last one is the manifest
 *
 * The manifest (a JSON object of the caller's) gets "chunks" (their count) and "bytes" (their
 * plaintext total) added by the writer, and the reader checks both. This layer knows nothing of
 * what the chunks hold, nor how the data key is kept: the backup service does.
 */
#ifndef CU_BACKUP_ARCHIVE_H
#define CU_BACKUP_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "crypto/seal.h"

#define CU_ARCHIVE_MAGIC "CUSTODIA-BACKUP\n"
#define CU_ARCHIVE_VERSION 1
#define CU_ARCHIVE_ID_BYTES 16
#define CU_ARCHIVE_CHUNK_MAX (4u << 20)     /* plaintext bytes of one chunk */
#define CU_ARCHIVE_MANIFEST_MAX (16u << 20) /* plaintext bytes of the manifest */

struct cu_archive_writer;
struct cu_archive_reader;

/* cu_archive_writer_new(f, key, key_id, alg, out): writes the header to f (the caller's, open
 * for writing) with a fresh backup id. key: CU_KEY_BYTES, borrowed until the writer is freed. */
CU_WUR enum cu_err cu_archive_writer_new(FILE *f, const struct cu_secret *key, uint32_t key_id,
                                         enum cu_aead alg, struct cu_archive_writer **out);

/* cu_archive_write(w, data, len): one chunk (1..CU_ARCHIVE_CHUNK_MAX bytes). CU_E_IO (a full
 * disk: CU_E_STORE_FULL) when f refuses it. */
CU_WUR enum cu_err cu_archive_write(struct cu_archive_writer *w, const void *data, size_t len);

/* cu_archive_finish(w, manifest): the manifest (an object, borrowed; "chunks" and "bytes" set
 * here) as the last record, then f flushed and synced. A writer not finished leaves a file that
 * no reader takes as whole. */
CU_WUR enum cu_err cu_archive_finish(struct cu_archive_writer *w, json_t *manifest);

/* cu_archive_writer_id(w, out): the backup's id. */
void cu_archive_writer_id(const struct cu_archive_writer *w, uint8_t out[CU_ARCHIVE_ID_BYTES]);

void cu_archive_writer_free(struct cu_archive_writer *w);

/* cu_archive_reader_new(f, key, key_id, out): reads and checks the header. CU_E_CORRUPT for a
 * file that is not a backup, CU_E_SCHEMA_NEWER for one of a newer format. */
CU_WUR enum cu_err cu_archive_reader_new(FILE *f, const struct cu_secret *key, uint32_t key_id,
                                         struct cu_archive_reader **out);

/* cu_archive_read(r, buf, cap, len, manifest): the next record: a chunk into buf (cap at least
 * CU_ARCHIVE_CHUNK_MAX), *len its size; or, at the end, *manifest (the caller decrefs) and
 * *len 0, after which nothing may follow. CU_E_CRYPTO for a record that does not open (altered,
 * moved, of another backup, a wrong key), CU_E_CORRUPT for a file cut short or with bytes after
 * the manifest, or whose manifest does not count what was read, CU_E_KEY_MISSING for a record
 * sealed under another key id. */
CU_WUR enum cu_err cu_archive_read(struct cu_archive_reader *r, uint8_t *buf, size_t cap,
                                   size_t *len, json_t **manifest);

void cu_archive_reader_free(struct cu_archive_reader *r);

#endif
