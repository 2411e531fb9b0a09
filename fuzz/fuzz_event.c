/*
 * fuzz_event.c - the monitoring event's parser (monitor/event.c), which reads every event
 * posted to POST /v1/events and every line of a replay file. An event that parses must write
 * a canonical text that parses again to the same text.
 */
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "monitor/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cu_mon_types types;
    static int ready;
    struct cu_mon_event a, b;
    char err[CU_MON_ERR_BYTES];
    struct cu_buf t1, t2;

    if (!ready) {
        cu_mon_types_init(&types);
        if (cu_mon_types_add(&types, "card_swipe", err) != CU_OK)
            __builtin_trap();
        ready = 1;
    }
    struct cu_mon_parse_opts o = {&types, size > 0 && (data[0] & 1), 0, 0};
    if (cu_mon_event_parse((const char *)data, size, &o, &a, err) != CU_OK) {
        if (err[0] == '\0' || strlen(err) >= CU_MON_ERR_BYTES)
            __builtin_trap();
        return 0;
    }
    cu_buf_init(&t1, 1 << 16);
    cu_buf_init(&t2, 1 << 16);
    o.allow_label = true;
    if (cu_mon_event_write(&a, &types, &t1) != CU_OK ||
        cu_mon_event_parse(cu_buf_cstr(&t1), strlen(cu_buf_cstr(&t1)), &o, &b, err) != CU_OK ||
        cu_mon_event_write(&b, &types, &t2) != CU_OK ||
        strcmp(cu_buf_cstr(&t1), cu_buf_cstr(&t2)) != 0 || a.time_ms != b.time_ms ||
        a.amount != b.amount || strcmp(a.customer, b.customer) != 0)
        __builtin_trap();
    cu_buf_free(&t1);
    cu_buf_free(&t2);
    return 0;
}
