/*
 * log.h - JSON-lines logging.
 *
 * One JSON object per line on stderr (or a chosen fd), written with a single write() so lines
 * from several threads never interleave: {"ts":"…","level":"info","msg":"…", fields…}.
 * Callers pass a stable event name as msg and typed fields. Never pass a secret, a token, a
 * password or plaintext personal data: there is no redaction layer to save you.
 */
#ifndef CU_BASE_LOG_H
#define CU_BASE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cu_log_level { CU_LOG_DEBUG = 0, CU_LOG_INFO, CU_LOG_WARN, CU_LOG_ERROR, CU_LOG_OFF };

enum cu_log_type { CU_LOG_T_STR, CU_LOG_T_INT, CU_LOG_T_BOOL };

struct cu_log_field {
    const char *key;
    enum cu_log_type type;
    const char *s; /* CU_LOG_T_STR; NULL prints null; long values are truncated */
    int64_t i;     /* CU_LOG_T_INT, CU_LOG_T_BOOL */
};

#define CU_LS(k, v) ((struct cu_log_field){.key = (k), .type = CU_LOG_T_STR, .s = (v)})
#define CU_LI(k, v) ((struct cu_log_field){.key = (k), .type = CU_LOG_T_INT, .i = (int64_t)(v)})
#define CU_LB(k, v) ((struct cu_log_field){.key = (k), .type = CU_LOG_T_BOOL, .i = !!(v)})

/* cu_log(level, msg, field, ...): logs msg with one or more fields. */
#define cu_log(lvl, msg, ...)                                                                      \
    cu_log_fields((lvl), (msg), (const struct cu_log_field[]){__VA_ARGS__},                        \
                  sizeof((const struct cu_log_field[]){__VA_ARGS__}) /                             \
                      sizeof(struct cu_log_field))

/* cu_log_fields(level, msg, fields, n): logs msg with n fields, if level is enabled. */
void cu_log_fields(enum cu_log_level level, const char *msg, const struct cu_log_field *fields,
                   size_t n);

/* cu_log_msg(level, msg): logs msg with no fields. */
void cu_log_msg(enum cu_log_level level, const char *msg);

/* cu_log_enabled(level): whether a line at level would be written. */
bool cu_log_enabled(enum cu_log_level level);

/* cu_log_set_level(level): the lowest level written (default CU_LOG_INFO). */
void cu_log_set_level(enum cu_log_level level);

/* cu_log_set_fd(fd): where lines go (default 2). */
void cu_log_set_fd(int fd);

/* cu_log_buffer_start(): from now on lines gather in a 256 KiB buffer that a background
 * thread writes out every 100 ms, or sooner when it fills or a warning or error arrives.
 * For the server, where one write() per request costs more than the request. false if the
 * thread cannot start (lines then keep going out one by one). */
bool cu_log_buffer_start(void);

/* cu_log_buffer_stop(): writes out what is buffered, stops the thread, and returns to one
 * write() per line. Call before exit. */
void cu_log_buffer_stop(void);

/* cu_log_parse_level(s, out): "debug", "info", "warn", "error" or "off" to a level; false
 * when s is none of them. */
bool cu_log_parse_level(const char *s, enum cu_log_level *out);

#endif
