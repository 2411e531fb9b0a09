/*
 * outbox.c - the notification outbox (outbox.h).
 */
#include "notify/outbox.h"

#include <string.h>

#include "crypto/crypto.h"

enum cu_err cu_outbox_add(struct cu_db *db, int64_t now, const char *customer,
                          const char *template_name, const char *data, char id[CU_OUTBOX_ID_BYTES])
{
    static const char sql[] =
        "INSERT INTO notify_outbox (id, created_at, customer, template, data, status, attempts, "
        "next_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $2)";
    char nid[CU_OUTBOX_ID_BYTES];
    uint8_t raw[8];
    enum cu_err rc;

    if (strlen(data) > CU_OUTBOX_DATA_MAX)
        return CU_E_TOO_LARGE;
    cu_crypto_random(raw, sizeof(raw));
    nid[0] = 'n';
    nid[1] = 't';
    nid[2] = 'f';
    nid[3] = '_';
    cu_hex_encode(raw, sizeof(raw), nid + 4);
    {
        const struct cu_val p[] = {CU_VT(nid), CU_VI(now), CU_VT(customer), CU_VT(template_name),
                                   CU_VT(data)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    if (rc == CU_OK && id != NULL)
        memcpy(id, nid, sizeof(nid));
    return rc;
}
