/*
 * fuzz_password.c - the password policy (identity/password.c): UTF-8 decoding, length in
 * code points, the common-list lookups with stripping, and the e-mail containment.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "identity/password.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cu_password_policy *policy(void)
{
    static struct cu_password_policy *p;
    char path[] = "/tmp/cu-fuzz-list-XXXXXX";
    int fd;
    FILE *f;

    if (p != NULL)
        return p;
    fd = mkstemp(path);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
        abort();
    fputs("# a small list\npassword\nsunshine\ndragon\nletmein\n", f);
    fclose(f);
    if (cu_password_policy_new(path, &p) != CU_OK)
        abort();
    unlink(path);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[CU_PASSWORD_WHY_BYTES];
    enum cu_err with =
        cu_password_check(policy(), (const char *)data, size, "ada.l@example.com", why);
    enum cu_err without = cu_password_check(policy(), (const char *)data, size, NULL, why);
    /* Naming the account's e-mail can only refuse more. */
    if (with == CU_OK && without != CU_OK)
        __builtin_trap();
    return 0;
}
