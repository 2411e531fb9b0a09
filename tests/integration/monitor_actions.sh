#!/bin/sh
# Monitoring's actions on the customer, applied in the deciding unit of work: a transfer whose
# rule freezes the account is refused as frozen (naming the decision), freezes every account of
# the customer until the rule's time (credits still arrive, nothing leaves), queues a notice in
# the outbox and opens an alert; a posted event whose rule ends sessions and locks sign-in ends
# the customer's live session and refuses the right password; the decision says what was done;
# a reference that is no vault customer is decided but nothing is done to it.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/actions.rules" <<'EOF2'
rule freeze_big
  when event.type == "transfer" and event.amount >= 90000
  then freeze_account 2h, notify_customer, alert high, reason "a transfer of 900.00 or more"

rule new_device_takeover
  when event.type == "device_added"
  then revoke_sessions, lock_login 10m, reason "a device added from outside"
EOF2
# a webhook receiver that is not there: the notice is queued, and its deliveries fail
start_server "$D" CUSTODIA_MONITOR_RULES=actions.rules CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 \
    CUSTODIA_NOTIFY_WEBHOOK_URL="https://127.0.0.1:$(free_port)/hook" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
PW="amber violin harbour 77"
idem() { echo "Idempotency-Key: k-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; }
status_of() { req GET "/v1/accounts/$1" -H "$AUTH"; json "j['status']"; }

req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com", "external_ref": "crm-ada"}'
ADA=$(json "j['id']")
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "bob@example.com"}'
BOB=$(json "j['id']")
req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
A=$(json "j['id']")
req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
A2=$(json "j['id']")
req POST "/v1/customers/$BOB/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
B=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$A\", \"amount\": 200000, \"currency\": \"EUR\"}"
check_eq "a deposit" 201 "$STATUS"

xfer() {
    req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
        --data "{\"debit_account\": \"$1\", \"credit_account\": \"$2\", \"amount\": $3, \"currency\": \"EUR\", \"code\": \"payment\"}"
}
xfer "$A" "$B" 95000
check_eq "a transfer whose rule freezes the account is refused as frozen" \
    "409 urn:custodia:problem:account_frozen" "$STATUS $(json "j['type']")"
DEC=$(json "__import__('re').search(r'dec_[0-9a-f]{16}', j['detail']).group(0)")
check "naming its decision" sh -c "echo '$DEC' | grep -Eq '^dec_[0-9a-f]{16}$'"
check_eq "every account of the customer is frozen, the other customer's not" "frozen frozen active" \
    "$(status_of "$A") $(status_of "$A2") $(status_of "$B")"
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "for the rule's two hours, with the decision as the reason" "True monitoring decision $DEC" \
    "$(json "7170 <= (__import__('datetime').datetime.fromisoformat(j['freeze']['until'].replace('Z','+00:00')).timestamp() - __import__('time').time()) <= 7200") $(json "j['freeze']['reason']")"
check_eq "and nothing moved" 200000 "$(json "j['balance']['posted']")"
xfer "$A" "$B" 100
check_eq "a small transfer from it is refused too" "409 urn:custodia:problem:account_frozen" "$STATUS $(json "j['type']")"
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$A\", \"amount\": 500, \"currency\": \"EUR\"}"
check_eq "credits still arrive" 201 "$STATUS"
req GET "/v1/decisions/$DEC" -H "$AUTH"
check_eq "the decision says what was done" "2 True" \
    "$(json "j['applied']['freeze_account']['accounts']") $(json "j['applied']['notify_customer']['queued']")"
check_eq "a notice is in the outbox for the webhook, with ids and no personal data" \
    "1|security_notice|webhook|{\"decision\":\"$DEC\",\"event_type\":\"transfer\"}" \
    "$("$DBQ" "$D" "SELECT COUNT(*), template, channel, data FROM notify_outbox WHERE customer = '$ADA' GROUP BY template, channel, data")"
check_eq "the freeze is audited, once for the customer's accounts" "1 1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.customer_freeze' AND target = 'customer:$ADA' AND details LIKE '%\"accounts\":2%'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'ledger.customer_freeze'")"
req GET /v1/alerts -H "$AUTH"
check_eq "and the alert is open" "1 high $DEC" "$(json "len(j['items'])") $(json "j['items'][0]['severity']") $(json "j['items'][0]['decision']")"

# a customer with many accounts: all frozen, in one record
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "cy@example.com"}'
CY=$(json "j['id']")
for i in $(seq 1 20); do
    req POST "/v1/customers/$CY/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
    [ $i = 1 ] && CY1=$(json "j['id']")
done
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$CY1\", \"amount\": 100000, \"currency\": \"EUR\"}"
xfer "$CY1" "$B" 95000
check_eq "twenty accounts of one customer are frozen by one decision" "409 20" \
    "$STATUS $("$DBQ" "$D" "SELECT COUNT(*) FROM ledger_accounts WHERE customer = '$CY' AND status = 'frozen'")"

# a batch that would freeze more customers than its unit can audit: no failure, the rest denied
BATCH="$TMP/batch.json"
printf '{"transfers": [' >"$BATCH"
for i in $(seq 1 18); do
    req POST /v1/customers -H "$AUTH" -H "$JSONH" --data "{\"email\": \"m$i@example.com\"}"
    M=$(json "j['id']")
    req POST "/v1/customers/$M/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
    MA=$(json "j['id']")
    req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
        --data "{\"account\": \"$MA\", \"amount\": 100000, \"currency\": \"EUR\"}"
    [ $i -gt 1 ] && printf ',' >>"$BATCH"
    printf '{"debit_account": "%s", "credit_account": "%s", "amount": 95000, "currency": "EUR", "code": "payment"}' "$MA" "$B" >>"$BATCH"
done
printf ']}' >>"$BATCH"
req POST /v1/transfers/batch -H "$AUTH" -H "$JSONH" -H "$(idem)" --data @"$BATCH"
check_eq "a batch freezing eighteen customers commits: each transfer frozen or, past the unit's room, denied" \
    "200 18 0" "$STATUS $(json "len([r for r in j['results'] if r.get('type') in ('account_frozen', 'transfer_denied')])") $(json "len([r for r in j['results'] if r['status'] == 201])")"
check "and those denied say the freeze was not applied" python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
kinds=[r['type'] for r in j['results']]
assert 'account_frozen' in kinds and 'transfer_denied' in kinds, kinds" "$TMP/body"

# a posted event ending the customer's sessions and locking sign-in
req PUT "/v1/customers/$ADA/password" -H "$AUTH" -H "$JSONH" --data "{\"password\": \"$PW\"}"
req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"ada@example.com\", \"password\": \"$PW\", \"kind\": \"customer\"}"
check_eq "the customer signs in" 200 "$STATUS"
SESS="Authorization: Bearer $(json "j['token']")"
req GET /v1/me -H "$SESS"
check_eq "and the session works" 200 "$STATUS"
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"device_added\", \"time\": \"$NOW\", \"customer\": \"crm-ada\", \"device\": \"d-new-1\"}"
check_eq "a posted event whose rule ends sessions and locks sign-in" "201 1 True" \
    "$STATUS $(json "j['applied']['revoke_sessions']['sessions']") $(json "j['applied']['lock_login']['locked']")"
req GET /v1/me -H "$SESS"
check_eq "ends the customer's session at once" 401 "$STATUS"
req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"ada@example.com\", \"password\": \"$PW\", \"kind\": \"customer\"}"
check_eq "and refuses the right password while locked" 429 "$STATUS"
check_eq "the end of the sessions is audited" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'session.revoked' AND target LIKE '%$ADA%'")"

# a reference that is not a vault customer: decided, nothing done
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"device_added\", \"time\": \"$NOW\", \"customer\": \"someone-else\", \"device\": \"d-new-2\"}"
check_eq "a reference outside the vault is decided, nothing done to it" "201 True" \
    "$STATUS $(json "'skipped' in j['applied']")"
finish
