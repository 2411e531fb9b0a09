/*
 * log.c - JSON-lines logging.
 *
 * Each line is built in an 8 KiB stack buffer and leaves in one write(), so lines from
 * several threads never interleave and logging never allocates. Strings go through the JSON
 * escaper of json.c; a string longer than CU_LOG_VALUE_MAX bytes is cut at a character
 * boundary and marked with "…". Fields that would overflow the line are dropped and the line
 * says so with "log_truncated":true. The level and the output fd are process-wide atomics.
 */
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/json.h"
#include "base/text.h"

#define LOG_LINE_BYTES 8192
#define LOG_VALUE_MAX 1024
/* Room kept free for `,"log_truncated":true}` and the newline. */
#define LOG_TAIL_BYTES 32

static atomic_int log_level = CU_LOG_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

struct line {
    char buf[LOG_LINE_BYTES];
    size_t len;
    size_t cap; /* LOG_LINE_BYTES - LOG_TAIL_BYTES while adding fields */
};

/* put(l, s, n): appends n raw bytes; false (and nothing written) when they do not fit. */
static bool put(struct line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len) {
        return false;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/* put_str(l, s): appends s as a JSON string literal, cut to LOG_VALUE_MAX bytes. */
static bool put_str(struct line *l, const char *s)
{
    size_t n = strlen(s), used;
    bool cut = n > LOG_VALUE_MAX;

    if (cut) {
        n = LOG_VALUE_MAX;
        /* back up to the start of a UTF-8 character so the cut does not make a U+FFFD */
        for (int i = 0; i < 3 && ((unsigned char)s[n] & 0xC0) == 0x80; i++) {
            n--;
        }
    }
    if (!put(l, "\"", 1)) {
        return false;
    }
    l->len += cu_json_escape_chars(l->buf + l->len, l->cap - l->len, s, n, &used);
    return used == n && (!cut || put(l, "\xe2\x80\xa6", 3)) && put(l, "\"", 1);
}

/* put_field(l, f): appends `,"key":value` for f; false when it does not fit. */
static bool put_field(struct line *l, const struct cu_log_field *f)
{
    char num[CU_I64_TEXT_BYTES];

    if (!put(l, ",", 1) || !put_str(l, f->key ? f->key : "") || !put(l, ":", 1)) {
        return false;
    }
    switch (f->type) {
    case CU_LOG_T_STR:
        return f->s ? put_str(l, f->s) : put(l, "null", 4);
    case CU_LOG_T_BOOL:
        return f->i ? put(l, "true", 4) : put(l, "false", 5);
    case CU_LOG_T_INT:
    default:
        return put(l, num, cu_text_i64(num, f->i));
    }
}

/* put_head(l, level, msg): `{"ts":…,"level":…,"msg":…`; always fits. */
static void put_head(struct line *l, enum cu_log_level level, const char *msg)
{
    char ts[CU_RFC3339_BYTES];

    cu_clock_format(cu_clock_now_ms(), ts);
    put(l, "{\"ts\":\"", 7);
    put(l, ts, strlen(ts));
    put(l, "\",\"level\":\"", 11);
    put(l, level_names[level], strlen(level_names[level]));
    put(l, "\",\"msg\":", 8);
    CU_ASSERT(put_str(l, msg ? msg : ""));
}

/* write_all(p, n): writes n bytes to the log fd, retrying on EINTR and short writes. */
static void write_all(const char *p, size_t n)
{
    int fd = atomic_load(&log_fd);
    size_t off = 0;

    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* nowhere left to report a logging failure */
        }
        off += (size_t)w;
    }
}

/* Buffered mode (the server's): lines gather in a buffer that a flusher thread writes out
 * every LOG_FLUSH_MS, or sooner when it fills or a warning or error arrives, so a busy server
 * pays one write() per batch instead of one per request. Order is kept: every line passes
 * through the buffer while buffering is on. */
#define LOG_BUFFER_BYTES ((size_t)256 * 1024)
#define LOG_FLUSH_MS 100

static pthread_mutex_t buf_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held around every write() of a batch, taken after buf_lock, so batches leave in order and a
 * large write never interleaves with another. */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t buf_cond = PTHREAD_COND_INITIALIZER;
/* Two buffers: writers fill the active one under the lock; the flusher swaps them under the
 * lock and writes the full one outside it, so writers never wait on the flusher's write(). */
static char log_buffers[2][LOG_BUFFER_BYTES];
static size_t buf_len;
static int buf_active;
static atomic_bool buffering;
static bool flusher_stop;
static pthread_t flusher;

/* flush_locked(): writes the active buffer out while holding the lock (the rare path: a full
 * buffer, a warning, or stopping). */
static void flush_locked(void)
{
    pthread_mutex_lock(&write_lock);
    write_all(log_buffers[buf_active], buf_len);
    pthread_mutex_unlock(&write_lock);
    buf_len = 0;
}

static void *flusher_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "cu-log");
    pthread_mutex_lock(&buf_lock);
    while (!flusher_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += LOG_FLUSH_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&buf_cond, &buf_lock, &ts);
        if (buf_len == 0)
            continue;
        int full = buf_active;
        size_t len = buf_len;
        buf_active = 1 - buf_active;
        buf_len = 0;
        pthread_mutex_lock(&write_lock);
        pthread_mutex_unlock(&buf_lock);
        write_all(log_buffers[full], len);
        pthread_mutex_unlock(&write_lock);
        pthread_mutex_lock(&buf_lock);
    }
    pthread_mutex_unlock(&buf_lock);
    return NULL;
}

/* cu_log_buffer_start(): turns buffered mode on; false if the flusher cannot start. */
bool cu_log_buffer_start(void)
{
    if (atomic_load(&buffering))
        return true;
    flusher_stop = false;
    if (pthread_create(&flusher, NULL, flusher_main, NULL) != 0)
        return false;
    atomic_store(&buffering, true);
    return true;
}

/* cu_log_buffer_stop(): writes out what is buffered and returns to one write() per line. */
void cu_log_buffer_stop(void)
{
    if (!atomic_load(&buffering))
        return;
    pthread_mutex_lock(&buf_lock);
    atomic_store(&buffering, false);
    flusher_stop = true;
    pthread_cond_signal(&buf_cond);
    pthread_mutex_unlock(&buf_lock);
    pthread_join(flusher, NULL);
    pthread_mutex_lock(&buf_lock);
    flush_locked();
    pthread_mutex_unlock(&buf_lock);
}

/* emit(l, level): writes the finished line: at once with one write(), or into the buffer. */
static void emit(const struct line *l, enum cu_log_level level)
{
    if (!atomic_load(&buffering)) {
        write_all(l->buf, l->len);
        return;
    }
    pthread_mutex_lock(&buf_lock);
    if (!atomic_load(&buffering)) {
        pthread_mutex_unlock(&buf_lock);
        write_all(l->buf, l->len);
        return;
    }
    if (buf_len + l->len > LOG_BUFFER_BYTES)
        flush_locked();
    memcpy(log_buffers[buf_active] + buf_len, l->buf, l->len);
    buf_len += l->len;
    if (level >= CU_LOG_WARN)
        flush_locked();
    pthread_mutex_unlock(&buf_lock);
}

/* cu_log_fields(level, msg, fields, n): logs msg with n fields, if level is enabled. */
void cu_log_fields(enum cu_log_level level, const char *msg, const struct cu_log_field *fields,
                   size_t n)
{
    struct line l;
    bool truncated = false;

    if (!cu_log_enabled(level)) {
        return;
    }
    l.len = 0;
    l.cap = LOG_LINE_BYTES - LOG_TAIL_BYTES;
    put_head(&l, level, msg);
    for (size_t i = 0; i < n && !truncated; i++) {
        size_t mark = l.len;

        if (!put_field(&l, &fields[i])) {
            l.len = mark;
            truncated = true;
        }
    }
    l.cap = LOG_LINE_BYTES;
    if (truncated) {
        put(&l, ",\"log_truncated\":true", 21);
    }
    put(&l, "}\n", 2);
    emit(&l, level);
}

/* cu_log_msg(level, msg): logs msg with no fields. */
void cu_log_msg(enum cu_log_level level, const char *msg)
{
    cu_log_fields(level, msg, NULL, 0);
}

/* cu_log_enabled(level): whether a line at level would be written. */
bool cu_log_enabled(enum cu_log_level level)
{
    return level < CU_LOG_OFF && (int)level >= atomic_load(&log_level);
}

/* cu_log_set_level(level): the lowest level written (default CU_LOG_INFO). */
void cu_log_set_level(enum cu_log_level level)
{
    CU_ASSERT(level <= CU_LOG_OFF);
    atomic_store(&log_level, (int)level);
}

/* cu_log_set_fd(fd): where lines go (default 2). */
void cu_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

/* cu_log_parse_level(s, out): a level name to a level; false when s is none of them. */
bool cu_log_parse_level(const char *s, enum cu_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (s != NULL && strcmp(s, level_names[i]) == 0) {
            *out = (enum cu_log_level)i;
            return true;
        }
    }
    return false;
}
