/*
 * outbox.h - the notification outbox: a notice to a customer is written in the unit of work
 * that causes it, so that none is queued for a change that rolled back and none is lost when
 * the process dies; a worker delivers it after the commit.
 *
 * What is queued carries no secret, token or personal data: a template's name and its
 * parameters (ids and types), which the worker renders for the customer's channel.
 */
#ifndef CU_NOTIFY_OUTBOX_H
#define CU_NOTIFY_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "store/store.h"

#define CU_OUTBOX_ID_BYTES 21   /* "ntf_" and 16 hex digits, NUL */
#define CU_OUTBOX_DATA_MAX 1024 /* a notice's parameters, as JSON text */

/* cu_outbox_add(db, now, channel, customer, template, data, id): queues a notice (pending, due
 * now) on one channel ("webhook" or "email") to the customer ("" for staff) on db, in the
 * caller's transaction; data is a JSON object's text of at most CU_OUTBOX_DATA_MAX bytes. id
 * (may be NULL) gets the notice's id. Services queue through cu_notify_queue (notify.h), which
 * adds one row per configured channel. */
CU_WUR enum cu_err cu_outbox_add(struct cu_db *db, int64_t now, const char *channel,
                                 const char *customer, const char *template_name, const char *data,
                                 char id[CU_OUTBOX_ID_BYTES]);

/* One notice of the outbox, as listed. */
struct cu_outbox_item {
    char id[CU_OUTBOX_ID_BYTES];
    int64_t created_at, next_at, sent_at; /* sent_at 0: not sent */
    char customer[32];                    /* "" for staff */
    char template_name[40];
    char channel[12];
    char status[12]; /* pending, sending, sent, dead */
    int64_t attempts;
    char last_error[256];
    char data[CU_OUTBOX_DATA_MAX + 1];
};

#define CU_OUTBOX_LIST_MAX 500

/* cu_outbox_status_known(s): whether s is a status of the outbox. */
bool cu_outbox_status_known(const char *s);

/* cu_outbox_list(db, status, customer, after, limit, items, n): notices newest first, of one
 * status and one customer when they are not NULL, after the notice whose id is after ("" from
 * the first; CU_E_NOT_FOUND when no notice has that id); at most limit (1..CU_OUTBOX_LIST_MAX).
 * Caller frees *items with cu_free. */
CU_WUR enum cu_err cu_outbox_list(struct cu_db *db, const char *status, const char *customer,
                                  const char *after, size_t limit, struct cu_outbox_item **items,
                                  size_t *n);

/* cu_outbox_get(db, id, out): one notice; CU_E_NOT_FOUND. */
CU_WUR enum cu_err cu_outbox_get(struct cu_db *db, const char *id, struct cu_outbox_item *out);

/* cu_outbox_replay(db, id, now, out): a sent or dead notice due again now, its attempts from 0
 * (the receiver sees the same id again). CU_E_NOT_FOUND; CU_E_EXISTS when it is pending or
 * being sent (already on its way). out gets the notice as it was. */
CU_WUR enum cu_err cu_outbox_replay(struct cu_db *db, const char *id, int64_t now,
                                    struct cu_outbox_item *out);

/* cu_outbox_replay_dead(db, now, before, limit, ids, n): up to limit dead notices that died
 * at or before before (so that one dying again is not taken again) due again now, their ids
 * into ids (limit of them, caller's) and their count into n. */
CU_WUR enum cu_err cu_outbox_replay_dead(struct cu_db *db, int64_t now, int64_t before,
                                         size_t limit, char (*ids)[CU_OUTBOX_ID_BYTES], size_t *n);

/* cu_outbox_forget(db, before, n): deletes up to 10,000 sent notices queued before before; n
 * gets how many. */
CU_WUR enum cu_err cu_outbox_forget(struct cu_db *db, int64_t before, int64_t *n);

#endif
