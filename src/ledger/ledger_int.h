/*
 * ledger_int.h - what the ledger's files share: the service's layout, the columns read, the
 * row readers and the movement digest. Not for use outside src/ledger/.
 */
#ifndef CU_LEDGER_LEDGER_INT_H
#define CU_LEDGER_LEDGER_INT_H

#include "base/buf.h"
#include "ledger/ledger.h"

struct cu_ledger {
    struct cu_ledger_hook hook;
};

#define CU_LEDGER_DAY_MS 86400000LL

/* The columns of an account, in the order account_read takes them. */
#define LEDGER_ACCOUNT_COLS                                                                        \
    "id, customer, purpose, currency, status, freeze_reason, frozen_until, overdraft, "            \
    "limit_per_transfer, limit_daily, day, day_debits, debits_posted, credits_posted, "            \
    "debits_pending, credits_pending, created_at, closed_at"

/* The columns of a transfer with its pending state (FROM ledger_transfers t LEFT JOIN
 * ledger_pending p ON p.transfer = t.id), in the order transfer_read takes them. */
#define LEDGER_TRANSFER_COLS                                                                       \
    "t.id, t.seq, t.movement, t.kind, t.debit_account, t.credit_account, t.amount, t.currency, "   \
    "t.code, t.external_ref, t.metadata, t.pending, t.parent, t.decision, t.reasons, t.actor, "    \
    "t.channel, t.at, p.status, p.amount, p.expires_at"

/* cu_ledger_account_read(st, out): the account of st's row (LEDGER_ACCOUNT_COLS from column 0). */
void cu_ledger_account_read(struct cu_stmt *st, struct cu_ledger_account *out);

/* cu_ledger_transfer_read(st, out): the transfer of st's row (LEDGER_TRANSFER_COLS). CU_E_NOMEM
 * when its metadata cannot be copied. */
CU_WUR enum cu_err cu_ledger_transfer_read(struct cu_stmt *st, struct cu_ledger_transfer *out);

/* cu_ledger_status_parse(s): the status named (CU_LEDGER_CLOSED for an unknown name: the
 * safest reading). cu_ledger_kind_parse: the kind named (-1 for none). */
enum cu_ledger_status cu_ledger_status_parse(const char *s);
int cu_ledger_kind_parse(const char *s);

/* cu_ledger_new_id(prefix, out): prefix ("acc_", "trf_", "bat_") and 16 random hex digits. */
void cu_ledger_new_id(const char *prefix, char out[CU_LEDGER_ID_BYTES]);

/* cu_ledger_digest_add(b, t): appends the line of transfer t to the text a movement's digest is
 * taken over: each field as its length, ':', its bytes, then ';' (so no field's content can
 * pass for another's); cu_ledger_digest_hex(b, out): SHA-256 of the text, hex (65 bytes). */
CU_WUR enum cu_err cu_ledger_digest_add(struct cu_buf *b, const struct cu_ledger_transfer *t);
void cu_ledger_digest_hex(const struct cu_buf *b, char out[65]);

/* cu_ledger_day(ms): the UTC day of a time, days since 1970-01-01. */
int64_t cu_ledger_day(int64_t ms);

#endif
