/*
 * outbox.c - the notification outbox (outbox.h).
 */
#include "notify/outbox.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "base/text.h"

#include "crypto/crypto.h"

enum cu_err cu_outbox_add(struct cu_db *db, int64_t now, const char *channel, const char *customer,
                          const char *template_name, const char *data, char id[CU_OUTBOX_ID_BYTES])
{
    static const char sql[] =
        "INSERT INTO notify_outbox (id, created_at, customer, template, data, status, attempts, "
        "next_at, channel) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $2, $6)";
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
        const struct cu_val p[] = {CU_VT(nid),           CU_VI(now),  CU_VT(customer),
                                   CU_VT(template_name), CU_VT(data), CU_VT(channel)};
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    }
    if (rc == CU_OK && id != NULL)
        memcpy(id, nid, sizeof(nid));
    return rc;
}

#define ITEM_COLUMNS                                                                               \
    "id, created_at, next_at, COALESCE(sent_at, 0), customer, template, channel, status, "         \
    "attempts, COALESCE(last_error, ''), data"

bool cu_outbox_status_known(const char *s)
{
    return s != NULL && (strcmp(s, "pending") == 0 || strcmp(s, "sending") == 0 ||
                         strcmp(s, "sent") == 0 || strcmp(s, "dead") == 0);
}

static void text(struct cu_stmt *st, int col, char *dst, size_t cap)
{
    size_t n = 0;
    const char *s = cu_stmt_text(st, col, &n);

    cu_text_copy(dst, cap, s, n);
}

static void item_of(struct cu_stmt *st, struct cu_outbox_item *it)
{
    memset(it, 0, sizeof(*it));
    text(st, 0, it->id, sizeof(it->id));
    it->created_at = cu_stmt_int(st, 1);
    it->next_at = cu_stmt_int(st, 2);
    it->sent_at = cu_stmt_int(st, 3);
    text(st, 4, it->customer, sizeof(it->customer));
    text(st, 5, it->template_name, sizeof(it->template_name));
    text(st, 6, it->channel, sizeof(it->channel));
    text(st, 7, it->status, sizeof(it->status));
    it->attempts = cu_stmt_int(st, 8);
    text(st, 9, it->last_error, sizeof(it->last_error));
    text(st, 10, it->data, sizeof(it->data));
}

enum cu_err cu_outbox_list(struct cu_db *db, const char *status, const char *customer,
                           const char *after, size_t limit, struct cu_outbox_item **items,
                           size_t *n)
{
    static const char sql[] =
        "SELECT " ITEM_COLUMNS " FROM notify_outbox WHERE ($1 = '' OR status = $1) AND "
        "($2 = '' OR customer = $2) AND ($3 = '' OR created_at < (SELECT created_at FROM "
        "notify_outbox WHERE id = $3) OR (created_at = (SELECT created_at FROM notify_outbox "
        "WHERE id = $3) AND id < $3)) ORDER BY created_at DESC, id DESC LIMIT $4";
    const struct cu_val p[] = {CU_VT(status ? status : ""), CU_VT(customer ? customer : ""),
                               CU_VT(after ? after : ""), CU_VI((int64_t)limit)};
    struct cu_outbox_item *out;
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t k = 0;
    enum cu_err rc;

    *items = NULL;
    *n = 0;
    if (limit == 0 || limit > CU_OUTBOX_LIST_MAX)
        return CU_E_INVALID;
    if (after != NULL && after[0]) {
        struct cu_outbox_item cursor;
        rc = cu_outbox_get(db, after, &cursor);
        if (rc != CU_OK)
            return rc; /* CU_E_NOT_FOUND: a cursor that names no notice */
    }
    out = cu_calloc(limit, sizeof(*out));
    if (out == NULL)
        return CU_E_NOMEM;
    rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);
    while (rc == CU_OK && k < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        item_of(st, &out[k++]);
    cu_stmt_done(st);
    if (rc != CU_OK) {
        cu_free(out);
        return rc;
    }
    *items = out;
    *n = k;
    return CU_OK;
}

enum cu_err cu_outbox_get(struct cu_db *db, const char *id, struct cu_outbox_item *out)
{
    static const char sql[] = "SELECT " ITEM_COLUMNS " FROM notify_outbox WHERE id = $1";
    const struct cu_val p[] = {CU_VT(id)};
    struct cu_stmt *st = NULL;
    bool row = false;
    enum cu_err rc = cu_db_query(db, sql, p, CU_NVALS(p), &st);

    if (rc == CU_OK && (rc = cu_stmt_next(st, &row)) == CU_OK && !row)
        rc = CU_E_NOT_FOUND;
    if (rc == CU_OK)
        item_of(st, out);
    cu_stmt_done(st);
    return rc;
}

enum cu_err cu_outbox_replay(struct cu_db *db, const char *id, int64_t now,
                             struct cu_outbox_item *out)
{
    static const char sql[] =
        "UPDATE notify_outbox SET status = 'pending', attempts = 0, next_at = $1, sent_at = NULL, "
        "last_error = NULL WHERE id = $2 AND status IN ('sent', 'dead')";
    const struct cu_val p[] = {CU_VI(now), CU_VT(id)};
    enum cu_err rc = cu_outbox_get(db, id, out);

    if (rc == CU_OK)
        rc = cu_db_exec(db, sql, p, CU_NVALS(p));
    if (rc == CU_OK && cu_db_changes(db) != 1)
        rc = CU_E_EXISTS;
    return rc;
}

enum cu_err cu_outbox_replay_dead(struct cu_db *db, int64_t now, int64_t before, size_t limit,
                                  char (*ids)[CU_OUTBOX_ID_BYTES], size_t *n)
{
    static const char pick[] = "SELECT id FROM notify_outbox WHERE status = 'dead' AND "
                               "next_at <= $1 ORDER BY id LIMIT $2";
    const struct cu_val p[] = {CU_VI(before), CU_VI((int64_t)limit)};
    struct cu_outbox_item it;
    struct cu_stmt *st = NULL;
    bool row = false;
    size_t k = 0;
    enum cu_err rc = cu_db_query(db, pick, p, CU_NVALS(p), &st);

    *n = 0;
    while (rc == CU_OK && k < limit && (rc = cu_stmt_next(st, &row)) == CU_OK && row)
        text(st, 0, ids[k++], CU_OUTBOX_ID_BYTES);
    cu_stmt_done(st);
    for (size_t i = 0; rc == CU_OK && i < k; i++)
        rc = cu_outbox_replay(db, ids[i], now, &it);
    if (rc == CU_OK)
        *n = k;
    return rc;
}

enum cu_err cu_outbox_forget(struct cu_db *db, int64_t before, int64_t *n)
{
    static const char sql[] = "DELETE FROM notify_outbox WHERE id IN (SELECT id FROM notify_outbox "
                              "WHERE status = 'sent' AND created_at < $1 LIMIT 10000)";
    const struct cu_val p[] = {CU_VI(before)};
    enum cu_err rc = cu_db_exec(db, sql, p, CU_NVALS(p));

    *n = rc == CU_OK ? cu_db_changes(db) : 0;
    return rc;
}
