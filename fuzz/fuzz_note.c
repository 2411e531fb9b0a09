/*
 * fuzz_note.c - signed checkpoint notes (audit/note.c), which `custodia audit verify
 * --checkpoint` reads from files an outsider may hand over.
 */
#include <stdint.h>

#include "audit/note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t pub[CU_SIGN_PUBLIC_BYTES] = {1, 2, 3};
    char origin[CU_NOTE_NAME_MAX + 1];
    uint64_t tree = 0;
    cu_merkle_hash root;

    /* No input can carry a valid signature by this made-up key. */
    if (cu_note_open_checkpoint((const char *)data, size, "example.com/log", pub, origin, &tree,
                                root) == CU_OK)
        __builtin_trap();
    return 0;
}
