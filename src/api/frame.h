/*
 * frame.h - the framing of the request stream a client sends, checked before libmicrohttpd
 * reads it (frame.c): request heads (request line and header lines), bodies by
 * Content-Length, chunked bodies and their trailers.
 *
 * The checker passes a request's bytes on only once they are known to frame as the library
 * will frame them; what it cannot frame unambiguously it refuses, with the status and detail
 * of the problem document the front answers instead (src/api/front.c). It accepts a subset of
 * what libmicrohttpd 0.9.75 accepts, so the library never has to refuse a request itself.
 */
#ifndef CU_API_FRAME_H
#define CU_API_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most header lines of one head, and of one chunked body's trailer. */
#define CU_FRAME_FIELDS_MAX 128
/* The longest chunk-size line (with its extensions). */
#define CU_FRAME_CHUNK_LINE_MAX 1024
/* The most query arguments (as head.c), and empty lines before a request line. */
#define CU_FRAME_QUERY_ARGS_MAX 32
#define CU_FRAME_BLANK_LINES_MAX 8
/* What one header line, cookie or query argument costs libmicrohttpd's connection pool, beyond
 * its bytes (a record of about 56 bytes), as the budget counts it. */
#define CU_FRAME_FIELD_COST 64
/* The most decimal digits of a Content-Length (below 10^18) and hex digits of a chunk size. */
#define CU_FRAME_LENGTH_DIGITS 18
#define CU_FRAME_CHUNK_DIGITS 15

struct cu_frame {
    int state;        /* where in a request the stream is (frame.c) */
    size_t head_max;  /* most bytes of a head, and of a trailer */
    size_t budget;    /* most a head may cost the library\'s pool (CU_FRAME_FIELD_COST) */
    unsigned blanks;  /* empty lines before the current request line */
    size_t scanned;   /* bytes of the pending head, line or trailer already searched */
    size_t trailer;   /* bytes of the trailer so far */
    unsigned fields;  /* trailer lines so far */
    uint64_t left;    /* body or chunk bytes still to pass */
    uint64_t heads;   /* request heads passed so far */
    int status;       /* 0, or the status of the refusal of what follows the passed bytes */
    bool in_body;     /* the refusal came inside a request whose head was passed */
    char detail[160]; /* the refusal's detail (printable ASCII) */
};

/* cu_frame_init(f, head_max, budget): a stream at its start; heads (request line and headers,
 * with their line ends) longer than head_max bytes are refused with 431, and so are those
 * whose bytes plus CU_FRAME_FIELD_COST for each header line, cookie and query argument pass
 * budget (what libmicrohttpd's connection pool holds of a head). */
void cu_frame_init(struct cu_frame *f, size_t head_max, size_t budget);

/* cu_frame_scan(f, p, n, end): of the n bytes at p (the stream's bytes after those passed
 * before), how many may be passed on now. It passes no more than the rest of one request:
 * *end is true when the returned bytes finish a request (the caller scans the next one after
 * its answer). It returns fewer than n when the rest is incomplete (more bytes are needed), or
 * when it is refused: then f->status is set (400, 431 or 505) with f->detail, and stays. */
size_t cu_frame_scan(struct cu_frame *f, const uint8_t *p, size_t n, bool *end);

/* cu_frame_at_head(f): whether the stream is between requests (what comes next is a head). */
bool cu_frame_at_head(const struct cu_frame *f);

#endif
