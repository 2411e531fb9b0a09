/*
 * keyring.c - the root key file: creating it, loading it, deriving sub-keys from it, and
 * adding and retiring key-encryption keys (KEK rotation).
 *
 * It is over 800 lines because the file format, its locking and atomic rewrite, and the KEK
 * life cycle must stay together: each change of the file is checked against the format here.
 *
 * The file is a few lines of text (docs/internals/keyfile.md):
 *
 *   custodia-keyring 1
 *   master <base64url of 32 bytes>
 *   kek <version> <created, RFC 3339 UTC> <base64url of 32 bytes>
 *   current <version>
 *
 * Its bytes are secret, so they are read into guarded memory and wiped once parsed; every key
 * ends up in its own struct cu_secret. Error messages name the file and the line and say what
 * is wrong, but never repeat anything from the line, which could be key material. A file that
 * group or others may read or write is refused before a byte of it is read.
 *
 * Adding or retiring a KEK rewrites the whole file from the parsed keys, never edits it in
 * place: under an advisory lock on the file, the old file is loaded and checked, the new text
 * goes to "<path>.tmp" (mode 0600, O_EXCL), is loaded back and compared with what was meant,
 * then renamed over the old file. A crash leaves either the old file or the new one.
 */
#include "crypto/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "base/clock.h"
#include "base/mem.h"

#define KEYRING_MAGIC "custodia-keyring"
#define KEYRING_FORMAT "1"
#define KEYRING_MAX_KEKS 1024
#define KEYRING_MAX_LINE 512                  /* bytes per line, without the newline */
#define KEYRING_MAX_FILE ((off_t)1024 * 1024) /* bytes per file */
#define KEYRING_MAX_VERSION 2147483648ULL     /* 2^31 */
#define KEYRING_MAX_FIELDS 4
#define KEYRING_B64_KEY (CU_B64URL_LEN(CU_KEY_BYTES) + 1)
#define KEYRING_HEADER                                                                             \
    "# custodia root key file - keep it secret; without it the data cannot be "                    \
    "read.\n" KEYRING_MAGIC " " KEYRING_FORMAT "\n"
#define KEYRING_TEXT_FIXED 256     /* bytes of text for the header, master and current lines */
#define KEYRING_TEXT_PER_KEK 128   /* bytes of text for a kek line, with room to spare */
#define KEYRING_TEMP_SUFFIX ".tmp" /* the new file is written beside the old one, then renamed */
#define KEYRING_LOCK_TRIES 1024    /* each retry means another rewrite finished */

struct kek {
    uint32_t version;
    int64_t created_ms;
    struct cu_secret *key;
};

struct cu_keyring {
    struct cu_secret *master;
    struct kek *keks;
    size_t nkeks;
    size_t cap;
    uint32_t current;
};

/* State while parsing one file. */
struct parse {
    struct cu_keyring *kr;
    const char *path;
    char *err;
    unsigned line;
    bool magic;
    unsigned current_line; /* 0 until a `current` line is seen */
};

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* set_err(err, fmt, ...): formats a message into err (CU_KEYRING_ERR_BYTES), if err. */
static void set_err(char *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, CU_KEYRING_ERR_BYTES, fmt, ap);
    va_end(ap);
}

/* line_err(p, what): CU_E_CORRUPT with "path:line: what" in p->err. */
static enum cu_err line_err(const struct parse *p, const char *what)
{
    set_err(p->err, "%s:%u: %s", p->path, p->line, what);
    return CU_E_CORRUPT;
}

/* parse_version(s, out): a KEK version, 1..2^31 in plain decimal; false when s is not one. */
static bool parse_version(const char *s, uint32_t *out)
{
    size_t n = strlen(s);
    unsigned long long v;

    if (n == 0 || n > 10 || s[0] == '0' || strspn(s, "0123456789") != n) {
        return false;
    }
    v = strtoull(s, NULL, 10);
    if (v > KEYRING_MAX_VERSION) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* parse_key(p, text, out): decodes a base64url key of exactly CU_KEY_BYTES into a new secret
 * that the caller frees with cu_secret_free. */
static enum cu_err parse_key(const struct parse *p, const char *text, struct cu_secret **out)
{
    struct cu_secret *key = cu_secret_new(CU_KEY_BYTES);
    size_t got = 0;
    enum cu_err rc;

    *out = NULL;
    if (key == NULL) {
        return CU_E_NOMEM;
    }
    rc = cu_b64url_decode(text, strlen(text), cu_secret_data(key), CU_KEY_BYTES, &got);
    if (rc == CU_E_INVALID) {
        rc = line_err(p, "the key is not valid base64url");
    } else if (rc == CU_E_TOO_LARGE || (rc == CU_OK && got != CU_KEY_BYTES)) {
        rc = line_err(p, "the key is not 32 bytes long");
    }
    if (rc != CU_OK) {
        cu_secret_free(key);
        return rc;
    }
    *out = key;
    return CU_OK;
}

/* find_kek(kr, version): the entry for version, or NULL. */
static struct kek *find_kek(const struct cu_keyring *kr, uint32_t version)
{
    for (size_t i = 0; i < kr->nkeks; i++) {
        if (kr->keks[i].version == version) {
            return &kr->keks[i];
        }
    }
    return NULL;
}

/* add_kek(kr, version, created_ms, key): appends a KEK, taking key on success. */
static enum cu_err add_kek(struct cu_keyring *kr, uint32_t version, int64_t created_ms,
                           struct cu_secret *key)
{
    if (kr->nkeks == kr->cap) {
        size_t cap = kr->cap == 0 ? 4 : kr->cap * 2;
        struct kek *grown = cu_reallocarray(kr->keks, cap, sizeof *grown);

        if (grown == NULL) {
            return CU_E_NOMEM;
        }
        kr->keks = grown;
        kr->cap = cap;
    }
    kr->keks[kr->nkeks].version = version;
    kr->keks[kr->nkeks].created_ms = created_ms;
    kr->keks[kr->nkeks].key = key;
    kr->nkeks++;
    return CU_OK;
}

/* do_master(p, f, n): a `master <key>` line. */
static enum cu_err do_master(struct parse *p, char **f, size_t n)
{
    if (n != 2) {
        return line_err(p, "expected 'master <key>'");
    }
    if (p->kr->master != NULL) {
        return line_err(p, "a second master line");
    }
    return parse_key(p, f[1], &p->kr->master);
}

/* do_kek(p, f, n): a `kek <version> <created> <key>` line. */
static enum cu_err do_kek(struct parse *p, char **f, size_t n)
{
    struct cu_secret *key = NULL;
    uint32_t version = 0;
    int64_t created = 0;
    enum cu_err rc;

    if (n != 4) {
        return line_err(p, "expected 'kek <version> <created> <key>'");
    }
    if (!parse_version(f[1], &version)) {
        return line_err(p, "the kek version is not a whole number from 1 to 2147483648");
    }
    if (find_kek(p->kr, version) != NULL) {
        return line_err(p, "a second kek with this version");
    }
    if (p->kr->nkeks == KEYRING_MAX_KEKS) {
        return line_err(p, "more than 1024 kek lines");
    }
    if (cu_clock_parse(f[2], &created) != CU_OK) {
        return line_err(p, "the kek creation time is not an RFC 3339 time");
    }
    rc = parse_key(p, f[3], &key);
    if (rc == CU_OK) {
        rc = add_kek(p->kr, version, created, key);
    }
    if (rc != CU_OK) {
        cu_secret_free(key);
    }
    return rc;
}

/* do_current(p, f, n): a `current <version>` line; checked against the KEKs at the end. */
static enum cu_err do_current(struct parse *p, char **f, size_t n)
{
    if (n != 2) {
        return line_err(p, "expected 'current <version>'");
    }
    if (p->current_line != 0) {
        return line_err(p, "a second current line");
    }
    if (!parse_version(f[1], &p->kr->current)) {
        return line_err(p, "the current version is not a whole number from 1 to 2147483648");
    }
    p->current_line = p->line;
    return CU_OK;
}

/* split(line, f): splits line in place at spaces, tabs and carriage returns into at most
 * KEYRING_MAX_FIELDS + 1 fields; returns how many it found. */
static size_t split(char *line, char **f)
{
    size_t n = 0;
    char *s = line;

    while (n <= KEYRING_MAX_FIELDS) {
        s += strspn(s, " \t\r");
        if (*s == '\0') {
            break;
        }
        f[n++] = s;
        s += strcspn(s, " \t\r");
        if (*s != '\0') {
            *s++ = '\0';
        }
    }
    return n;
}

/* parse_line(p, line): one NUL-terminated line. */
static enum cu_err parse_line(struct parse *p, char *line)
{
    char *f[KEYRING_MAX_FIELDS + 1] = {0};
    size_t n = split(line, f);

    if (n == 0 || f[0][0] == '#') {
        return CU_OK;
    }
    if (n > KEYRING_MAX_FIELDS) {
        return line_err(p, "too many fields");
    }
    if (!p->magic) {
        if (n != 2 || strcmp(f[0], KEYRING_MAGIC) != 0) {
            return line_err(p, "expected 'custodia-keyring 1' before anything else");
        }
        if (strcmp(f[1], KEYRING_FORMAT) != 0) {
            return line_err(p, "unsupported keyring format version (this custodia reads 1)");
        }
        p->magic = true;
        return CU_OK;
    }
    if (strcmp(f[0], "master") == 0) {
        return do_master(p, f, n);
    }
    if (strcmp(f[0], "kek") == 0) {
        return do_kek(p, f, n);
    }
    if (strcmp(f[0], "current") == 0) {
        return do_current(p, f, n);
    }
    return line_err(p, strcmp(f[0], KEYRING_MAGIC) == 0 ? "a second 'custodia-keyring' line"
                                                        : "unknown directive");
}

/* parse_text(p, text, len): every line of text (len bytes, NUL at text[len]), in place. */
static enum cu_err parse_text(struct parse *p, char *text, size_t len)
{
    enum cu_err rc = CU_OK;
    char *s = text;
    char *end = text + len;

    while (rc == CU_OK && s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);

        p->line++;
        if (n > KEYRING_MAX_LINE) {
            rc = line_err(p, "line longer than 512 bytes");
        } else if (memchr(s, '\0', n) != NULL) {
            rc = line_err(p, "line contains a NUL byte");
        } else {
            s[n] = '\0';
            rc = parse_line(p, s);
        }
        s += n + 1;
    }
    return rc;
}

/* check_complete(p): after the last line, everything required is there. */
static enum cu_err check_complete(const struct parse *p)
{
    const char *missing = NULL;

    if (!p->magic) {
        missing = "no 'custodia-keyring 1' line";
    } else if (p->kr->master == NULL) {
        missing = "no master line";
    } else if (p->kr->nkeks == 0) {
        missing = "no kek line";
    } else if (p->current_line == 0) {
        missing = "no current line";
    }
    if (missing != NULL) {
        set_err(p->err, "%s: %s", p->path, missing);
        return CU_E_CORRUPT;
    }
    if (find_kek(p->kr, p->kr->current) == NULL) {
        set_err(p->err, "%s:%u: current names kek version %u, which the file does not have",
                p->path, p->current_line, (unsigned)p->kr->current);
        return CU_E_CORRUPT;
    }
    return CU_OK;
}

/* check_file(path, fd, size, err): the opened file is a regular file no one else may touch. */
static enum cu_err check_file(const char *path, int fd, size_t *size, char *err)
{
    struct stat st;

    if (fstat(fd, &st) != 0) {
        set_err(err, "%s: cannot stat: %s", path, strerror(errno));
        return CU_E_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, "%s: not a regular file", path);
        return CU_E_IO;
    }
    if ((st.st_mode & 077) != 0) {
        set_err(err,
                "%s: mode 0%03o lets group or others read or write the root key; run chmod 600 %s",
                path, (unsigned)(st.st_mode & 0777), path);
        return CU_E_PERM;
    }
    if (st.st_size > KEYRING_MAX_FILE) {
        set_err(err, "%s: larger than 1 MiB; not a root key file", path);
        return CU_E_CORRUPT;
    }
    *size = (size_t)st.st_size;
    return CU_OK;
}

/* read_all(fd, buf, n): reads exactly n bytes; false on error or early end of file. */
static bool read_all(int fd, uint8_t *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = read(fd, buf + done, n - done);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        done += (size_t)r;
    }
    return true;
}

/* read_key_file(path, out, err): the file's bytes, NUL-terminated, in a new secret that the
 * caller frees with cu_secret_free; its length is cu_secret_len(*out) - 1. */
static enum cu_err read_key_file(const char *path, struct cu_secret **out, char *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    struct cu_secret *text = NULL;
    size_t size = 0;
    enum cu_err rc;

    *out = NULL;
    if (fd < 0) {
        set_err(err, "%s: cannot open: %s", path,
                errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        return CU_E_IO;
    }
    rc = check_file(path, fd, &size, err);
    if (rc != CU_OK) {
        goto out;
    }
    text = cu_secret_new(size + 1);
    if (text == NULL) {
        rc = CU_E_NOMEM;
        goto out;
    }
    errno = 0;
    if (!read_all(fd, cu_secret_data(text), size)) {
        set_err(err, "%s: cannot read: %s", path, errno != 0 ? strerror(errno) : "short read");
        rc = CU_E_IO;
        goto out;
    }
    *out = text;
    text = NULL;
out:
    cu_secret_free(text);
    close(fd);
    return rc;
}

/* cu_keyring_load(path, out, err): loads the root key file. CU_E_IO when it cannot be read,
 * CU_E_PERM when group or others may read or write it, CU_E_CORRUPT when it is malformed
 * (err names the file and line). Caller frees *out with cu_keyring_free(). */
enum cu_err cu_keyring_load(const char *path, struct cu_keyring **out,
                            char err[CU_KEYRING_ERR_BYTES])
{
    struct parse p = {.path = path, .err = err};
    struct cu_secret *text = NULL;
    enum cu_err rc;

    *out = NULL;
    set_err(err, "%s", "");
    rc = read_key_file(path, &text, err);
    if (rc != CU_OK) {
        goto out;
    }
    p.kr = cu_calloc(1, sizeof *p.kr);
    if (p.kr == NULL) {
        rc = CU_E_NOMEM;
        goto out;
    }
    rc = parse_text(&p, (char *)cu_secret_data(text), cu_secret_len(text) - 1);
    if (rc == CU_OK) {
        rc = check_complete(&p);
    }
out:
    if (rc == CU_E_NOMEM) {
        set_err(err, "%s: out of memory", path);
    }
    if (rc == CU_OK) {
        *out = p.kr;
    } else {
        cu_keyring_free(p.kr);
    }
    cu_secret_free(text);
    return rc;
}

/* cu_keyring_free(kr): wipes and frees kr; NULL does nothing. */
void cu_keyring_free(struct cu_keyring *kr)
{
    if (kr == NULL) {
        return;
    }
    for (size_t i = 0; i < kr->nkeks; i++) {
        cu_secret_free(kr->keks[i].key);
    }
    cu_free(kr->keks);
    cu_secret_free(kr->master);
    cu_free(kr);
}

/* cu_keyring_current_kek(kr): the version number of the current KEK. */
uint32_t cu_keyring_current_kek(const struct cu_keyring *kr)
{
    return kr->current;
}

/* cu_keyring_kek(kr, version): the KEK with that version (owned by kr), or NULL when the
 * keyring has none. */
const struct cu_secret *cu_keyring_kek(const struct cu_keyring *kr, uint32_t version)
{
    const struct kek *k = find_kek(kr, version);

    return k != NULL ? k->key : NULL;
}

/* cu_keyring_derive(kr, purpose, id, out): derives the sub-key number id for purpose (exactly
 * CU_PURPOSE_BYTES characters, e.g. "apikey__") from the master secret. Caller frees *out
 * with cu_secret_free(). */
enum cu_err cu_keyring_derive(const struct cu_keyring *kr, const char *purpose, uint64_t id,
                              struct cu_secret **out)
{
    struct cu_secret *key = NULL;
    int r;

    *out = NULL;
    if (purpose == NULL || strnlen(purpose, CU_PURPOSE_BYTES + 1) != CU_PURPOSE_BYTES) {
        return CU_E_INVALID;
    }
    key = cu_secret_new(CU_KEY_BYTES);
    if (key == NULL) {
        return CU_E_NOMEM;
    }
    r = crypto_kdf_derive_from_key(cu_secret_data(key), CU_KEY_BYTES, id, purpose,
                                   cu_secret_data(kr->master));
    CU_ASSERT(r == 0);
    *out = key;
    return CU_OK;
}

/* fsync_dir(path): makes the directory entry of path durable. */
static bool fsync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (size_t)(slash - path);
    bool ok;
    int fd;

    if (n >= sizeof dir) {
        return false;
    }
    if (slash == NULL) {
        dir[n++] = '.';
    } else if (n == 0) {
        dir[n++] = '/';
    } else {
        memcpy(dir, path, n);
    }
    dir[n] = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* write_all(fd, buf, n): writes exactly n bytes; false on error. */
static bool write_all(int fd, const uint8_t *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        done += (size_t)w;
    }
    return true;
}

/* finish_file(fd, data, n): writes data to the new file fd, makes it durable and closes fd;
 * false with errno set on failure. */
static bool finish_file(int fd, const uint8_t *data, size_t n)
{
    bool ok = write_all(fd, data, n) && fsync(fd) == 0;
    int e = errno;

    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    errno = e;
    return ok;
}

/* write_new_file(path, data, n, err): creates path with mode 0600, never over an existing
 * file or through a symbolic link, writes data and makes it durable. On failure no file is
 * left behind. */
static enum cu_err write_new_file(const char *path, const uint8_t *data, size_t n, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    int e = errno;

    if (fd < 0) {
        set_err(err, "%s: %s", path,
                e == EEXIST ? "already exists; refusing to overwrite a root key file"
                            : strerror(e));
        return e == EEXIST ? CU_E_EXISTS : CU_E_IO;
    }
    if (!finish_file(fd, data, n) || !fsync_dir(path)) {
        set_err(err, "%s: cannot write: %s", path, strerror(errno));
        unlink(path);
        return CU_E_IO;
    }
    return CU_OK;
}

static enum cu_err appendf(struct cu_secret *text, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* appendf(text, used, fmt, ...): appends to the NUL-terminated text held in text, of which
 * *used bytes are taken; CU_E_INTERNAL when it does not fit. */
static enum cu_err appendf(struct cu_secret *text, size_t *used, const char *fmt, ...)
{
    size_t room = cu_secret_len(text) - *used;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf((char *)cu_secret_data(text) + *used, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        return CU_E_INTERNAL;
    }
    *used += (size_t)n;
    return CU_OK;
}

/* append_kek(text, used, k): one `kek <version> <created> <key>` line. */
static enum cu_err append_kek(struct cu_secret *text, size_t *used, const struct kek *k)
{
    char created[CU_RFC3339_BYTES];
    char k64[KEYRING_B64_KEY];
    enum cu_err rc;

    cu_clock_format(k->created_ms, created);
    rc = cu_b64url_encode(cu_secret_data(k->key), CU_KEY_BYTES, k64, sizeof k64);
    if (rc == CU_OK) {
        rc = appendf(text, used, "kek %u %s %s\n", (unsigned)k->version, created, k64);
    }
    sodium_memzero(k64, sizeof k64);
    return rc;
}

/* format_keyring(kr, out): the text of the root key file holding kr, NUL-terminated, in a
 * new secret that the caller frees with cu_secret_free. KEKs keep their order in kr. */
static enum cu_err format_keyring(const struct cu_keyring *kr, struct cu_secret **out)
{
    struct cu_secret *text = cu_secret_new(KEYRING_TEXT_FIXED + kr->nkeks * KEYRING_TEXT_PER_KEK);
    char m64[KEYRING_B64_KEY];
    size_t used = 0;
    enum cu_err rc;

    *out = NULL;
    if (text == NULL) {
        return CU_E_NOMEM;
    }
    rc = cu_b64url_encode(cu_secret_data(kr->master), CU_KEY_BYTES, m64, sizeof m64);
    if (rc == CU_OK) {
        rc = appendf(text, &used, KEYRING_HEADER "master %s\n", m64);
    }
    for (size_t i = 0; rc == CU_OK && i < kr->nkeks; i++) {
        rc = append_kek(text, &used, &kr->keks[i]);
    }
    if (rc == CU_OK) {
        rc = appendf(text, &used, "current %u\n", (unsigned)kr->current);
    }
    sodium_memzero(m64, sizeof m64);
    if (rc != CU_OK) {
        cu_secret_free(text);
        return rc;
    }
    *out = text;
    return CU_OK;
}

/* random_key(out): CU_KEY_BYTES fresh random bytes in a new secret that the caller frees
 * with cu_secret_free. */
static enum cu_err random_key(struct cu_secret **out)
{
    *out = cu_secret_new(CU_KEY_BYTES);
    if (*out == NULL) {
        return CU_E_NOMEM;
    }
    randombytes_buf(cu_secret_data(*out), CU_KEY_BYTES);
    return CU_OK;
}

/* new_keyring(out): a keyring with a fresh master secret and KEK version 1, created now,
 * current. Caller frees *out with cu_keyring_free. */
static enum cu_err new_keyring(struct cu_keyring **out)
{
    struct cu_keyring *kr = cu_calloc(1, sizeof *kr);
    struct cu_secret *kek = NULL;
    enum cu_err rc;

    *out = NULL;
    if (kr == NULL) {
        return CU_E_NOMEM;
    }
    rc = random_key(&kr->master);
    if (rc == CU_OK) {
        rc = random_key(&kek);
    }
    if (rc == CU_OK) {
        rc = add_kek(kr, 1, cu_clock_now_ms(), kek);
    }
    if (rc != CU_OK) {
        cu_secret_free(kek);
        cu_keyring_free(kr);
        return rc;
    }
    kr->current = 1;
    *out = kr;
    return CU_OK;
}

/* cu_keyring_create(path, err): writes a new root key file at path with a fresh master
 * secret and KEK version 1, mode 0600, refusing to overwrite (CU_E_EXISTS). */
enum cu_err cu_keyring_create(const char *path, char err[CU_KEYRING_ERR_BYTES])
{
    struct cu_keyring *kr = NULL;
    struct cu_secret *text = NULL;
    enum cu_err rc;

    set_err(err, "%s", "");
    rc = new_keyring(&kr);
    if (rc == CU_OK) {
        rc = format_keyring(kr, &text);
    }
    if (rc != CU_OK) {
        set_err(err, "%s: %s", path,
                rc == CU_E_NOMEM ? "out of memory" : "cannot format the key file");
        goto out;
    }
    rc = write_new_file(path, cu_secret_data(text), strlen((char *)cu_secret_data(text)), err);
out:
    cu_secret_free(text);
    cu_keyring_free(kr);
    return rc;
}

/* lock_wait(fd): takes an exclusive advisory lock on fd, waiting for it; 0 or -1. */
static int lock_wait(int fd)
{
    int r;

    do {
        r = flock(fd, LOCK_EX);
    } while (r != 0 && errno == EINTR);
    return r;
}

/* lock_key_file(path, fd, st, err): opens path and locks it, so that rewrites of the file
 * take turns; a rewrite that replaced the file while this one waited makes it try again on
 * the new file. *st receives the locked file's status. The caller closes *fd, which releases
 * the lock. */
static enum cu_err lock_key_file(const char *path, int *fd, struct stat *st, char *err)
{
    struct stat now;

    for (int tries = 0; tries < KEYRING_LOCK_TRIES; tries++) {
        int f = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

        if (f < 0) {
            set_err(err, "%s: cannot open: %s", path,
                    errno == ELOOP ? "it is a symbolic link" : strerror(errno));
            return CU_E_IO;
        }
        if (lock_wait(f) != 0 || fstat(f, st) != 0 || lstat(path, &now) != 0) {
            set_err(err, "%s: cannot lock: %s", path, strerror(errno));
            close(f);
            return CU_E_IO;
        }
        if (st->st_dev == now.st_dev && st->st_ino == now.st_ino) {
            *fd = f;
            return CU_OK;
        }
        close(f);
    }
    set_err(err, "%s: replaced again and again while waiting for its lock", path);
    return CU_E_BUSY;
}

/* temp_path(path, out, err): the temporary file beside path (path + ".tmp") into out, which
 * holds PATH_MAX bytes. */
static enum cu_err temp_path(const char *path, char *out, char *err)
{
    int n = snprintf(out, PATH_MAX, "%s%s", path, KEYRING_TEMP_SUFFIX);

    if (n < 0 || n >= PATH_MAX) {
        set_err(err, "%s: path too long", path);
        return CU_E_INVALID;
    }
    return CU_OK;
}

/* keep_owner(fd, st): gives the new file fd the owner and group of the key file st, when it
 * differs (a rotation run as root must not leave a file the service cannot read). */
static bool keep_owner(int fd, const struct stat *st)
{
    struct stat mine;

    if (fstat(fd, &mine) != 0) {
        return false;
    }
    if (mine.st_uid == st->st_uid && mine.st_gid == st->st_gid) {
        return true;
    }
    return fchown(fd, st->st_uid, st->st_gid) == 0 || mine.st_uid == st->st_uid;
}

/* write_temp(tmp, text, owner, err): writes the NUL-terminated text to tmp, a new file of
 * mode 0600 owned like the key file (owner), and makes it durable. A file that a crashed
 * rewrite left at tmp is removed first: the caller holds the key file's lock, so no rewrite
 * is using it. On failure nothing is left at tmp. */
static enum cu_err write_temp(const char *tmp, const struct cu_secret *text,
                              const struct stat *owner, char *err)
{
    const uint8_t *data = cu_secret_data(text);
    bool ok = false;
    int fd;

    if (unlink(tmp) != 0 && errno != ENOENT) {
        set_err(err, "%s: cannot remove a leftover temporary file: %s", tmp, strerror(errno));
        return CU_E_IO;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd >= 0) {
        if (fchmod(fd, 0600) == 0 && keep_owner(fd, owner)) {
            ok = finish_file(fd, data, strlen((const char *)data));
        } else {
            int e = errno;

            close(fd);
            errno = e;
        }
    }
    if (!ok) {
        set_err(err, "%s: cannot write: %s", tmp, strerror(errno));
        if (fd >= 0) {
            unlink(tmp);
        }
        return CU_E_IO;
    }
    return CU_OK;
}

/* same_keyring(a, b): a and b hold the same master secret, the same KEKs (version, creation
 * time, key bytes) and the same current version. */
static bool same_keyring(const struct cu_keyring *a, const struct cu_keyring *b)
{
    bool same =
        a->nkeks == b->nkeks && a->current == b->current &&
        sodium_memcmp(cu_secret_data(a->master), cu_secret_data(b->master), CU_KEY_BYTES) == 0;

    for (size_t i = 0; same && i < a->nkeks; i++) {
        const struct kek *k = find_kek(b, a->keks[i].version);

        same = k != NULL && k->created_ms == a->keks[i].created_ms &&
               sodium_memcmp(cu_secret_data(k->key), cu_secret_data(a->keks[i].key),
                             CU_KEY_BYTES) == 0;
    }
    return same;
}

/* cu_keyring_compare(old, new): what new is to old (in constant time as to the key bytes). */
enum cu_keyring_change cu_keyring_compare(const struct cu_keyring *old,
                                          const struct cu_keyring *new)
{
    if (sodium_memcmp(cu_secret_data(old->master), cu_secret_data(new->master), CU_KEY_BYTES) != 0)
        return CU_KEYRING_CONFLICT;
    /* Versions only grow, so a later state never has an older current KEK (an older copy put
     * back does). It may lack the old current one: rotated twice, then retired. */
    if (new->current < old->current)
        return CU_KEYRING_CONFLICT;
    for (size_t i = 0; i < old->nkeks; i++) {
        const struct kek *k = find_kek(new, old->keks[i].version);
        if (k != NULL && (k->created_ms != old->keks[i].created_ms ||
                          sodium_memcmp(cu_secret_data(k->key), cu_secret_data(old->keks[i].key),
                                        CU_KEY_BYTES) != 0))
            return CU_KEYRING_CONFLICT;
    }
    return same_keyring(old, new) ? CU_KEYRING_SAME : CU_KEYRING_NEWER;
}

/* check_written(tmp, want, err): the file at tmp loads and holds exactly want. */
static enum cu_err check_written(const char *tmp, const struct cu_keyring *want, char *err)
{
    struct cu_keyring *got = NULL;
    enum cu_err rc = cu_keyring_load(tmp, &got, err);

    if (rc == CU_OK && !same_keyring(want, got)) {
        set_err(err, "%s: the new key file does not read back as written", tmp);
        rc = CU_E_INTERNAL;
    }
    cu_keyring_free(got);
    return rc;
}

/* replace_file(tmp, path, err): renames tmp over path and makes the rename durable. */
static enum cu_err replace_file(const char *tmp, const char *path, char *err)
{
    if (rename(tmp, path) != 0) {
        set_err(err, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        return CU_E_IO;
    }
    if (!fsync_dir(path)) {
        set_err(err, "%s: replaced, but its directory could not be synced: %s", path,
                strerror(errno));
        return CU_E_IO;
    }
    return CU_OK;
}

/* An edit of a loaded keyring: add_edit or retire_edit. */
typedef enum cu_err edit_fn(struct cu_keyring *kr, const char *path, void *arg, char *err);

/* rewrite_key_file(path, edit, arg, err): under the file's lock, loads the root key file at
 * path (checking its permissions and every line), applies edit, writes the result to a
 * temporary file, loads that back and checks that it holds exactly the edited keyring, then
 * renames it over path. On failure the file at path is as it was. */
static enum cu_err rewrite_key_file(const char *path, edit_fn *edit, void *arg, char *err)
{
    char tmp[PATH_MAX];
    struct cu_keyring *kr = NULL;
    struct cu_secret *text = NULL;
    struct stat st;
    bool wrote = false;
    int fd = -1;
    enum cu_err rc;

    set_err(err, "%s", "");
    rc = temp_path(path, tmp, err);
    if (rc == CU_OK) {
        rc = lock_key_file(path, &fd, &st, err);
    }
    if (rc == CU_OK) {
        rc = cu_keyring_load(path, &kr, err);
    }
    if (rc == CU_OK) {
        rc = edit(kr, path, arg, err);
    }
    if (rc == CU_OK) {
        rc = format_keyring(kr, &text);
        if (rc != CU_OK) {
            set_err(err, "%s: %s", path,
                    rc == CU_E_NOMEM ? "out of memory" : "cannot format the key file");
        }
    }
    if (rc == CU_OK) {
        rc = write_temp(tmp, text, &st, err);
        wrote = rc == CU_OK;
    }
    if (rc == CU_OK) {
        rc = check_written(tmp, kr, err);
    }
    if (rc == CU_OK) {
        rc = replace_file(tmp, path, err);
    }
    if (rc != CU_OK && wrote) {
        unlink(tmp);
    }
    if (fd >= 0) {
        close(fd);
    }
    cu_secret_free(text);
    cu_keyring_free(kr);
    return rc;
}

/* add_edit(kr, path, arg, err): adds a fresh KEK, created now, with the version after the
 * highest in kr, and makes it current; its version goes to *(uint32_t *)arg. */
static enum cu_err add_edit(struct cu_keyring *kr, const char *path, void *arg, char *err)
{
    struct cu_secret *key = NULL;
    uint32_t top = 0;
    enum cu_err rc;

    for (size_t i = 0; i < kr->nkeks; i++) {
        top = kr->keks[i].version > top ? kr->keks[i].version : top;
    }
    if (kr->nkeks >= KEYRING_MAX_KEKS || top >= KEYRING_MAX_VERSION) {
        set_err(err, "%s: %s", path,
                kr->nkeks >= KEYRING_MAX_KEKS
                    ? "already holds 1024 keks; retire unused ones first"
                    : "kek version 2147483648 exists; no version is left");
        return CU_E_TOO_LARGE;
    }
    rc = random_key(&key);
    if (rc == CU_OK) {
        rc = add_kek(kr, top + 1, cu_clock_now_ms(), key);
    }
    if (rc != CU_OK) {
        cu_secret_free(key);
        set_err(err, "%s: out of memory", path);
        return rc;
    }
    kr->current = top + 1;
    *(uint32_t *)arg = top + 1;
    return CU_OK;
}

/* cu_keyring_add_kek(path, out_version, err): appends a new KEK (32 random bytes, the next
 * version number, created now) to the root key file at path and makes it current; the file is
 * rewritten atomically (write a temp file in the same directory with mode 0600 and O_EXCL,
 * fsync it, rename over, fsync the directory) and only after re-loading and checking the old
 * contents. */
enum cu_err cu_keyring_add_kek(const char *path, uint32_t *out_version,
                               char err[CU_KEYRING_ERR_BYTES])
{
    uint32_t version = 0;
    enum cu_err rc = rewrite_key_file(path, add_edit, &version, err);

    *out_version = rc == CU_OK ? version : 0;
    return rc;
}

/* retire_edit(kr, path, arg, err): removes the KEK whose version is *(uint32_t *)arg, unless
 * it is the current one or missing (CU_E_INVALID). */
static enum cu_err retire_edit(struct cu_keyring *kr, const char *path, void *arg, char *err)
{
    uint32_t version = *(const uint32_t *)arg;
    struct kek *k = find_kek(kr, version);
    size_t i;

    if (k == NULL || version == kr->current) {
        set_err(err,
                k == NULL ? "%s: has no kek version %u"
                          : "%s: kek version %u is the current one; add a new kek first",
                path, (unsigned)version);
        return CU_E_INVALID;
    }
    i = (size_t)(k - kr->keks);
    cu_secret_free(k->key);
    memmove(k, k + 1, (kr->nkeks - i - 1) * sizeof *k);
    kr->nkeks--;
    return CU_OK;
}

/* cu_keyring_retire_kek(path, version, err): removes KEK version from the file (atomically as
 * above). CU_E_INVALID when it is the current one or does not exist. The caller must have
 * checked that nothing is wrapped by it. */
enum cu_err cu_keyring_retire_kek(const char *path, uint32_t version,
                                  char err[CU_KEYRING_ERR_BYTES])
{
    return rewrite_key_file(path, retire_edit, &version, err);
}

/* info_cmp(a, b): orders struct cu_kek_info by version. */
static int info_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct cu_kek_info *)a)->version;
    uint32_t y = ((const struct cu_kek_info *)b)->version;

    return (x > y) - (x < y);
}

/* cu_keyring_kek_info(kr, out, cap, n): the KEK versions in the keyring, ascending, and their
 * creation times (Unix ms) into out (cap entries); *n is how many KEKs there are.
 * CU_E_TOO_LARGE, with nothing written to out, when cap is smaller than *n. */
enum cu_err cu_keyring_kek_info(const struct cu_keyring *kr, struct cu_kek_info *out, size_t cap,
                                size_t *n)
{
    *n = kr->nkeks;
    if (cap < kr->nkeks) {
        return CU_E_TOO_LARGE;
    }
    for (size_t i = 0; i < kr->nkeks; i++) {
        out[i].version = kr->keks[i].version;
        out[i].created_ms = kr->keks[i].created_ms;
        out[i].current = kr->keks[i].version == kr->current;
    }
    qsort(out, kr->nkeks, sizeof *out, info_cmp);
    return CU_OK;
}
