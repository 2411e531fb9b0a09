/*
 * fuzz_frame.c - the front's framing checker (api/frame.c), which reads every byte a client
 * sends before libmicrohttpd does. Whatever the bytes, and however they are split into reads,
 * the checker comes to the same verdict at the same byte: the same requests passed, the same
 * refusal, with a printable detail.
 */
#include <stdint.h>
#include <string.h>

#include "api/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct verdict {
    size_t passed;
    unsigned requests;
    int status;
};

/* Scans data, the bytes arriving in pieces of at most `piece` (0: whole); the caller keeps
 * what is not passed and gives it again with the next piece, as the front does. */
static struct verdict scan(const uint8_t *data, size_t size, size_t piece, size_t head_max,
                           struct cu_frame *f)
{
    struct verdict v = {0, 0, 0};
    size_t have = 0;
    cu_frame_init(f, head_max, head_max + (size > 2 ? data[2] % 32 : 0) * CU_FRAME_FIELD_COST);
    while (f->status == 0) {
        size_t more = piece == 0 ? size - have : piece;
        if (have == size)
            break;
        have = have + more > size ? size : have + more;
        for (;;) {
            bool end;
            size_t k = cu_frame_scan(f, data + v.passed, have - v.passed, &end);
            if (k > have - v.passed)
                __builtin_trap();
            v.passed += k;
            v.requests += end;
            if (!end || f->status != 0 || v.passed == have)
                break;
        }
    }
    v.status = f->status;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cu_frame f;
    size_t head_max = 256 + (size > 0 ? data[0] % 64 : 0) * 16;
    struct verdict whole = scan(data, size, 0, head_max, &f);
    if (whole.status != 0) {
        if (whole.status != 400 && whole.status != 431 && whole.status != 505)
            __builtin_trap();
        if (f.detail[0] == '\0')
            __builtin_trap();
        for (const char *p = f.detail; *p != '\0'; p++) {
            if (*p < 0x20 || *p > 0x7e)
                __builtin_trap();
        }
    }
    size_t pieces[] = {1, 2, 7, size > 1 ? data[1] % 29 + 1 : 3};
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        struct verdict v = scan(data, size, pieces[i], head_max, &f);
        if (v.passed != whole.passed || v.requests != whole.requests || v.status != whole.status)
            __builtin_trap();
    }
    return 0;
}
