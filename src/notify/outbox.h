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

#include <stdint.h>

#include "base/err.h"
#include "store/store.h"

#define CU_OUTBOX_ID_BYTES 21   /* "ntf_" and 16 hex digits, NUL */
#define CU_OUTBOX_DATA_MAX 1024 /* a notice's parameters, as JSON text */

/* cu_outbox_add(db, now, customer, template, data, id): queues a notice (pending, due now) to
 * the customer on db, in the caller's transaction; data is a JSON object's text of at most
 * CU_OUTBOX_DATA_MAX bytes. id (may be NULL) gets the notice's id. */
CU_WUR enum cu_err cu_outbox_add(struct cu_db *db, int64_t now, const char *customer,
                                 const char *template_name, const char *data,
                                 char id[CU_OUTBOX_ID_BYTES]);

#endif
