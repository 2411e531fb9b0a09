/*
 * archive.c - the encrypted backup file (archive.h).
 */
#include "backup/archive.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"

#define MAGIC_LEN 16
#define HEAD_LEN (MAGIC_LEN + 1 + CU_ARCHIVE_ID_BYTES)
#define SEAL_OVERHEAD 128 /* more than any algorithm's header, nonce and tag */
#define RECORD_MAX (CU_ARCHIVE_MANIFEST_MAX + SEAL_OVERHEAD)

struct cu_archive_writer {
    FILE *f;
    const struct cu_secret *key;
    uint32_t key_id;
    enum cu_aead alg;
    uint8_t id[CU_ARCHIVE_ID_BYTES];
    uint64_t index, bytes;
    uint8_t *buf; /* a sealed record */
    bool done;
};

struct cu_archive_reader {
    FILE *f;
    const struct cu_secret *key;
    uint32_t key_id;
    uint8_t id[CU_ARCHIVE_ID_BYTES];
    uint64_t index, bytes;
    uint8_t *buf;
    bool ended;
};

/* ad(id, index, kind, out): "custodia-backup|1|<id hex>|<index>|<kind>". */
static size_t ad(const uint8_t id[CU_ARCHIVE_ID_BYTES], uint64_t index, const char *kind,
                 char out[96])
{
    char hex[CU_ARCHIVE_ID_BYTES * 2 + 1];
    cu_hex_encode(id, CU_ARCHIVE_ID_BYTES, hex);
    int n = snprintf(out, 96, "custodia-backup|%d|%s|%llu|%s", CU_ARCHIVE_VERSION, hex,
                     (unsigned long long)index, kind);
    return n > 0 && n < 96 ? (size_t)n : 0;
}

static enum cu_err io_err(void)
{
    return errno == ENOSPC || errno == EDQUOT ? CU_E_STORE_FULL : CU_E_IO;
}

enum cu_err cu_archive_writer_new(FILE *f, const struct cu_secret *key, uint32_t key_id,
                                  enum cu_aead alg, struct cu_archive_writer **out)
{
    struct cu_archive_writer *w = cu_calloc(1, sizeof(*w));
    uint8_t head[HEAD_LEN];

    *out = NULL;
    if (w == NULL || (w->buf = cu_malloc(RECORD_MAX)) == NULL) {
        cu_free(w);
        return CU_E_NOMEM;
    }
    w->f = f;
    w->key = key;
    w->key_id = key_id;
    w->alg = alg;
    cu_crypto_random(w->id, sizeof(w->id));
    for (size_t i = 0; i < MAGIC_LEN; i++) /* the magic's bytes, without its NUL */
        head[i] = (uint8_t)CU_ARCHIVE_MAGIC[i];
    head[MAGIC_LEN] = CU_ARCHIVE_VERSION;
    memcpy(head + MAGIC_LEN + 1, w->id, CU_ARCHIVE_ID_BYTES);
    if (fwrite(head, 1, sizeof(head), f) != sizeof(head)) {
        enum cu_err rc = io_err();
        cu_archive_writer_free(w);
        return rc;
    }
    *out = w;
    return CU_OK;
}

void cu_archive_writer_id(const struct cu_archive_writer *w, uint8_t out[CU_ARCHIVE_ID_BYTES])
{
    memcpy(out, w->id, CU_ARCHIVE_ID_BYTES);
}

static enum cu_err put(struct cu_archive_writer *w, const char *kind, const void *data, size_t len)
{
    char a[96];
    size_t alen = ad(w->id, w->index, kind, a), n = 0;
    enum cu_err rc = alen ? CU_OK : CU_E_INTERNAL;
    uint8_t hdr[4];

    if (rc == CU_OK)
        rc = cu_crypto_seal(w->key, w->key_id, w->alg, data, len, (const uint8_t *)a, alen, w->buf,
                            RECORD_MAX, &n);
    if (rc != CU_OK)
        return rc;
    hdr[0] = (uint8_t)(n >> 24);
    hdr[1] = (uint8_t)(n >> 16);
    hdr[2] = (uint8_t)(n >> 8);
    hdr[3] = (uint8_t)n;
    if (fwrite(hdr, 1, 4, w->f) != 4 || fwrite(w->buf, 1, n, w->f) != n)
        return io_err();
    w->index++;
    return CU_OK;
}

enum cu_err cu_archive_write(struct cu_archive_writer *w, const void *data, size_t len)
{
    enum cu_err rc;
    if (w->done || len == 0 || len > CU_ARCHIVE_CHUNK_MAX)
        return CU_E_INVALID;
    if ((rc = put(w, "chunk", data, len)) == CU_OK)
        w->bytes += len;
    return rc;
}

enum cu_err cu_archive_finish(struct cu_archive_writer *w, json_t *manifest)
{
    char *text;
    enum cu_err rc;

    if (w->done || !json_is_object(manifest))
        return CU_E_INVALID;
    if (json_object_set_new(manifest, "chunks", json_integer((json_int_t)w->index)) != 0 ||
        json_object_set_new(manifest, "bytes", json_integer((json_int_t)w->bytes)) != 0)
        return CU_E_NOMEM;
    if ((text = json_dumps(manifest, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
        return CU_E_NOMEM;
    rc = strlen(text) > CU_ARCHIVE_MANIFEST_MAX ? CU_E_TOO_LARGE
                                                : put(w, "manifest", text, strlen(text));
    free(text);
    if (rc == CU_OK && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
        rc = io_err();
    if (rc == CU_OK)
        w->done = true;
    return rc;
}

void cu_archive_writer_free(struct cu_archive_writer *w)
{
    if (w == NULL)
        return;
    cu_free(w->buf);
    cu_free(w);
}

enum cu_err cu_archive_reader_new(FILE *f, const struct cu_secret *key, uint32_t key_id,
                                  struct cu_archive_reader **out)
{
    struct cu_archive_reader *r;
    uint8_t head[HEAD_LEN];

    *out = NULL;
    if (fread(head, 1, sizeof(head), f) != sizeof(head) ||
        memcmp(head, CU_ARCHIVE_MAGIC, MAGIC_LEN) != 0)
        return CU_E_CORRUPT;
    if (head[MAGIC_LEN] > CU_ARCHIVE_VERSION)
        return CU_E_SCHEMA_NEWER;
    if (head[MAGIC_LEN] != CU_ARCHIVE_VERSION)
        return CU_E_CORRUPT;
    if ((r = cu_calloc(1, sizeof(*r))) == NULL || (r->buf = cu_malloc(RECORD_MAX)) == NULL) {
        cu_free(r);
        return CU_E_NOMEM;
    }
    r->f = f;
    r->key = key;
    r->key_id = key_id;
    memcpy(r->id, head + MAGIC_LEN + 1, CU_ARCHIVE_ID_BYTES);
    *out = r;
    return CU_OK;
}

/* open_as(r, n, kind, out, cap, len): the record of n sealed bytes in r->buf, as kind. */
static enum cu_err open_as(struct cu_archive_reader *r, size_t n, const char *kind, uint8_t *out,
                           size_t cap, size_t *len)
{
    char a[96];
    size_t alen = ad(r->id, r->index, kind, a);
    return alen ? cu_crypto_open(r->key, r->key_id, r->buf, n, (const uint8_t *)a, alen, out, cap,
                                 len)
                : CU_E_INTERNAL;
}

enum cu_err cu_archive_read(struct cu_archive_reader *r, uint8_t *buf, size_t cap, size_t *len,
                            json_t **manifest)
{
    uint8_t hdr[4];
    size_t n;
    enum cu_err rc;

    *len = 0;
    *manifest = NULL;
    if (r->ended)
        return CU_E_INVALID;
    if (fread(hdr, 1, 4, r->f) != 4)
        return CU_E_CORRUPT; /* cut short: no manifest */
    n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    if (n == 0 || n > RECORD_MAX || fread(r->buf, 1, n, r->f) != n)
        return CU_E_CORRUPT;
    /* a chunk, or else the manifest: each opens only as what it was sealed as, where it was */
    rc = open_as(r, n, "chunk", buf, cap, len);
    if (rc == CU_OK) {
        r->index++;
        r->bytes += *len;
        return CU_OK;
    }
    if (rc != CU_E_CRYPTO)
        return rc;
    uint8_t *text = cu_malloc(CU_ARCHIVE_MANIFEST_MAX);
    size_t tl = 0;
    if (text == NULL)
        return CU_E_NOMEM;
    rc = open_as(r, n, "manifest", text, CU_ARCHIVE_MANIFEST_MAX, &tl);
    json_t *m =
        rc == CU_OK ? json_loadb((const char *)text, tl, JSON_REJECT_DUPLICATES, NULL) : NULL;
    cu_free(text);
    if (rc != CU_OK)
        return rc;
    r->ended = true;
    int extra = fgetc(r->f);
    if (m == NULL || !json_is_object(m) ||
        json_integer_value(json_object_get(m, "chunks")) != (json_int_t)r->index ||
        json_integer_value(json_object_get(m, "bytes")) != (json_int_t)r->bytes || extra != EOF) {
        json_decref(m);
        return CU_E_CORRUPT;
    }
    *manifest = m;
    *len = 0;
    return CU_OK;
}

void cu_archive_reader_free(struct cu_archive_reader *r)
{
    if (r == NULL)
        return;
    cu_free(r->buf);
    cu_free(r);
}
