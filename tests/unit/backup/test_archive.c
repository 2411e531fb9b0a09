/*
 * test_archive.c - the encrypted backup file (backup/archive.h): chunks and the manifest come
 * back as written; a chunk altered, two chunks swapped, a file cut short before its manifest,
 * bytes after it, a wrong key, another key id, a newer format, a file that is no backup: each
 * refused with its error.
 */
#include "cu_test.h"

#include "backup/archive.h"

struct fixture {
    struct cu_secret *key, *other;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(cu_crypto_init(), CU_OK);
    f->key = cu_secret_new(CU_KEY_BYTES);
    f->other = cu_secret_new(CU_KEY_BYTES);
    assert_non_null(f->key);
    assert_non_null(f->other);
    cu_crypto_random(cu_secret_data(f->key), CU_KEY_BYTES);
    cu_crypto_random(cu_secret_data(f->other), CU_KEY_BYTES);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_secret_free(f->key);
    cu_secret_free(f->other);
    free(f);
    return 0;
}

/* make(f, chunks, n, finish): a backup of n chunks of 1,000 bytes ("A…", "B…" …) in a memory
 * file; its bytes and length returned (the caller frees). */
static uint8_t *make(struct fixture *f, int n, bool finish, size_t *len)
{
    struct cu_archive_writer *w = NULL;
    uint8_t chunk[1000];
    FILE *fp = tmpfile();
    assert_non_null(fp);
    assert_int_equal(cu_archive_writer_new(fp, f->key, 7, CU_AEAD_XCHACHA20POLY1305, &w), CU_OK);
    for (int i = 0; i < n; i++) {
        memset(chunk, 'A' + i, sizeof(chunk));
        assert_int_equal(cu_archive_write(w, chunk, sizeof(chunk)), CU_OK);
    }
    if (finish) {
        json_t *m = json_pack("{s:s, s:i}", "kind", "test", "schema", 13);
        assert_int_equal(cu_archive_finish(w, m), CU_OK);
        json_decref(m);
        assert_int_equal(cu_archive_write(w, chunk, 1), CU_E_INVALID); /* nothing after */
    } else
        fflush(fp);
    cu_archive_writer_free(w);
    long end = ftell(fp);
    uint8_t *b = malloc((size_t)end);
    rewind(fp);
    assert_int_equal(fread(b, 1, (size_t)end, fp), (size_t)end);
    fclose(fp);
    *len = (size_t)end;
    return b;
}

/* readback(key, id, b, len, chunks, manifest): reads the whole file; the first error, or CU_OK
 * with *chunks read and the manifest. */
static enum cu_err readback(const struct cu_secret *key, uint32_t id, const uint8_t *b, size_t len,
                            int *chunks, json_t **manifest)
{
    struct cu_archive_reader *r = NULL;
    uint8_t *buf = malloc(CU_ARCHIVE_CHUNK_MAX);
    FILE *fp = fmemopen((void *)b, len, "rb");
    size_t n = 0;
    enum cu_err rc;

    assert_non_null(fp);
    *chunks = 0;
    *manifest = NULL;
    rc = cu_archive_reader_new(fp, key, id, &r);
    while (rc == CU_OK && *manifest == NULL) {
        rc = cu_archive_read(r, buf, CU_ARCHIVE_CHUNK_MAX, &n, manifest);
        if (rc == CU_OK && *manifest == NULL) {
            assert_int_equal(n, 1000);
            assert_int_equal(buf[0], 'A' + *chunks);
            (*chunks)++;
        }
    }
    cu_archive_reader_free(r);
    fclose(fp);
    free(buf);
    return rc;
}

/* the offset of record i (0: the first chunk) in b */
static size_t record_at(const uint8_t *b, int i)
{
    size_t at = 16 + 1 + CU_ARCHIVE_ID_BYTES;
    for (int k = 0; k < i; k++)
        at += 4 +
              ((size_t)b[at] << 24 | (size_t)b[at + 1] << 16 | (size_t)b[at + 2] << 8 | b[at + 3]);
    return at;
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    int chunks = 0;
    json_t *m = NULL;
    uint8_t *b = make(f, 3, true, &len);

    assert_int_equal(readback(f->key, 7, b, len, &chunks, &m), CU_OK);
    assert_int_equal(chunks, 3);
    assert_string_equal(json_string_value(json_object_get(m, "kind")), "test");
    assert_int_equal(json_integer_value(json_object_get(m, "chunks")), 3);
    assert_int_equal(json_integer_value(json_object_get(m, "bytes")), 3000);
    json_decref(m);
    /* no plaintext in the file */
    uint8_t plain[64];
    memset(plain, 'B', sizeof(plain));
    assert_null(memmem(b, len, plain, sizeof(plain)));
    free(b);
}

static void test_faults(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    int chunks = 0;
    json_t *m = NULL;
    uint8_t *b = make(f, 3, true, &len), *c = malloc(len);

    /* a byte of the second chunk altered */
    memcpy(c, b, len);
    c[record_at(c, 1) + 40] ^= 1;
    assert_int_equal(readback(f->key, 7, c, len, &chunks, &m), CU_E_CRYPTO);
    assert_int_equal(chunks, 1);
    /* the first two chunks swapped (same length) */
    size_t r0 = record_at(b, 0), r1 = record_at(b, 1), r2 = record_at(b, 2);
    memcpy(c, b, len);
    memcpy(c + r0, b + r1, r2 - r1);
    memcpy(c + r0 + (r2 - r1), b + r0, r1 - r0);
    assert_int_equal(readback(f->key, 7, c, len, &chunks, &m), CU_E_CRYPTO);
    assert_int_equal(chunks, 0);
    /* cut short before the manifest, and in the middle of a record */
    assert_int_equal(readback(f->key, 7, b, record_at(b, 3), &chunks, &m), CU_E_CORRUPT);
    assert_int_equal(chunks, 3);
    assert_int_equal(readback(f->key, 7, b, record_at(b, 2) + 10, &chunks, &m), CU_E_CORRUPT);
    /* a chunk dropped: the manifest opens at no index but its own */
    memcpy(c, b, r1);
    memcpy(c + r1, b + r2, len - r2);
    assert_int_equal(readback(f->key, 7, c, len - (r2 - r1), &chunks, &m), CU_E_CRYPTO);
    /* bytes after the manifest */
    uint8_t *d = malloc(len + 1);
    memcpy(d, b, len);
    d[len] = 0;
    assert_int_equal(readback(f->key, 7, d, len + 1, &chunks, &m), CU_E_CORRUPT);
    assert_null(m);
    free(d);
    /* a wrong key, another key id */
    assert_int_equal(readback(f->other, 7, b, len, &chunks, &m), CU_E_CRYPTO);
    assert_int_equal(readback(f->key, 8, b, len, &chunks, &m), CU_E_KEY_MISSING);
    /* a newer format, and a file that is no backup */
    memcpy(c, b, len);
    c[16] = CU_ARCHIVE_VERSION + 1;
    assert_int_equal(readback(f->key, 7, c, len, &chunks, &m), CU_E_SCHEMA_NEWER);
    c[0] = 'X';
    assert_int_equal(readback(f->key, 7, c, len, &chunks, &m), CU_E_CORRUPT);
    free(c);
    free(b);
    /* a writer killed before its manifest leaves a file no reader takes as whole */
    b = make(f, 2, false, &len);
    assert_int_equal(readback(f->key, 7, b, len, &chunks, &m), CU_E_CORRUPT);
    assert_int_equal(chunks, 2);
    free(b);
}

static void test_limits(void **state)
{
    struct fixture *f = *state;
    struct cu_archive_writer *w = NULL;
    FILE *fp = tmpfile();
    uint8_t one = 1;

    assert_int_equal(cu_archive_writer_new(fp, f->key, 1, CU_AEAD_XCHACHA20POLY1305, &w), CU_OK);
    assert_int_equal(cu_archive_write(w, &one, 0), CU_E_INVALID);
    assert_int_equal(cu_archive_write(w, &one, CU_ARCHIVE_CHUNK_MAX + 1), CU_E_INVALID);
    json_t *notobj = json_array();
    assert_int_equal(cu_archive_finish(w, notobj), CU_E_INVALID);
    json_decref(notobj);
    cu_archive_writer_free(w);
    fclose(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
