/*
 * head.h - the checks of a request's head that libmicrohttpd does not make (head.c).
 */
#ifndef CU_API_HEAD_H
#define CU_API_HEAD_H

#include "api/http.h"

/* Not an enum cu_err: the one refusal that has its own status (431) but the problem type of
 * CU_E_TOO_LARGE. */
#define CU_E_HEADERS_TOO_LARGE ((enum cu_err)(CU_E__COUNT + 1))

/* cu_head_target_error(t): why the raw request target t (as sent, before percent-decoding) is
 * refused, or NULL: a byte that is not visible ASCII, a malformed or control-byte percent
 * escape, or an encoded '/' or '\\' in the path. Static storage. */
const char *cu_head_target_error(const char *t);
/* cu_head_target_error_n(t, n): the same for the n bytes at t (no terminator needed). */
const char *cu_head_target_error_n(const char *t, size_t n);

/* cu_head_error(req, resp, target_err, version): CU_OK when the head of req may be served;
 * CU_E_HEADERS_TOO_LARGE when its headers pass [server] max_header_bytes, or CU_E_INVALID with
 * the detail set in resp for a refused target (target_err, from cu_head_target_error), a
 * framing header repeated, conflicting or folded, a header name that is not a token, a control
 * byte in a value, a transfer coding other than chunked (or any outside HTTP/1.1), an HTTP/1.1
 * request without Host, too many or repeated query arguments. */
CU_WUR enum cu_err cu_head_error(struct cu_req *req, struct cu_resp *resp, const char *target_err,
                                 const char *version);

#endif
