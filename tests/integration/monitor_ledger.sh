#!/bin/sh
# Monitoring inside the ledger: each new transfer decided in its movement's unit of work by
# the rule set in force. A denied transfer answers 403 naming its decision and moves nothing;
# a held one is a pending hold carrying the decision's id and rules; a step-up is asked of the
# customer's own session and, for an API key, holds the transfer for review; a chain with a
# held link is held whole; withdrawals count in windows of their own; the decision is read
# back with the event as the ledger described it; and the ledger's invariants hold.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/ledger.rules" <<'EOF'
rule deny_big
  when event.type == "transfer" and event.amount >= 50000
  then deny, reason "a transfer of 500.00 or more"

rule hold_mid
  when event.type == "transfer" and event.amount >= 20000 and event.amount < 50000
  then hold, reason "a transfer from 200.00 to 500.00"

rule step_small
  when event.type == "transfer" and event.amount >= 10000 and event.amount < 20000
  then step_up, reason "a transfer from 100.00 to 200.00"

rule third_withdrawal
  when event.type == "withdrawal" and count(customer, 1h, "withdrawal") >= 3
  then deny, reason "a third withdrawal in an hour"

rule rent_code
  when event.attributes.code == "rent" and event.channel == "api"
  then score 1, reason "rent, by API"
EOF
start_server "$D" CUSTODIA_MONITOR_RULES=ledger.rules || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
idem() { echo "Idempotency-Key: k-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; }
bal() { req GET "/v1/accounts/$1" -H "$AUTH"; json "j['balance']['posted'], j['balance']['pending'], j['balance']['available']"; }

req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com"}'
ADA=$(json "j['id']")
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "bob@example.com"}'
BOB=$(json "j['id']")
req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
A=$(json "j['id']")
req POST "/v1/customers/$BOB/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
B=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$A\", \"amount\": 200000, \"currency\": \"EUR\"}"
check_eq "a deposit is let through" 201 "$STATUS"

xfer() {
    req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
        --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": $1, \"currency\": \"EUR\", \"code\": \"${2:-payment}\"}"
}
xfer 60000
check_eq "a transfer the rules deny is refused" "403 urn:custodia:problem:transfer_denied" "$STATUS $(json "j['type']")"
DEC=$(json "__import__('re').search(r'dec_[0-9a-f]{16}', j['detail']).group(0)")
check "naming its decision" sh -c "echo '$DEC' | grep -Eq '^dec_[0-9a-f]{16}$'"
check_eq "and moves nothing" "200000 0 200000" "$(bal "$A")"
req GET "/v1/decisions/$DEC" -H "$AUTH"
check_eq "the decision is read back, made in the ledger" "200 ledger $ADA transfer deny ['deny_big']" \
    "$STATUS $(json "j['source']") $(json "j['customer']") $(json "j['type']") $(json "j['decision']") $(json "[r['name'] for r in j['rules']]")"
check_eq "with the event as the ledger described it" "60000 EUR $B api payment" \
    "$(json "j['event']['amount']") $(json "j['event']['currency']") $(json "j['event']['payee']") $(json "j['event']['channel']") $(json "j['event']['attributes']['code']")"
check_eq "an API key's address is not the customer's: none is kept" "None" "$(json "j['event'].get('ip')")"

xfer 25000
check_eq "a transfer the rules hold is made a pending hold" "201 True pending" \
    "$STATUS $(json "j['transfer']['held']") $(json "j['transfer']['pending_state']['status']")"
HELD=$(json "j['transfer']['id']")
check "carrying its decision and rule" python3 -c "
import json,sys,re
j=json.load(open(sys.argv[1]))
assert re.match(r'^dec_[0-9a-f]{16}: hold_mid$', j['transfer']['reasons']), j['transfer']['reasons']" "$TMP/body"
check_eq "its money reserved, not moved" "200000 -25000 175000" "$(bal "$A")"

xfer 15000
check_eq "a step-up asked of an API key holds the transfer for review" "201 True" \
    "$STATUS $(json "j['transfer']['held']")"

xfer 500 rent
check_eq "a rule may read the transfer's code and channel" "201 False" "$STATUS $(json "j['transfer']['held']")"
req GET "/v1/transfers/$(json "j['transfer']['id']")" -H "$AUTH"
check "its decision is named in the reasons, for staff" sh -c "grep -q 'rent_code' '$TMP/body'"

# a chain with a held link is held whole: the fee waits with the payment it belongs to
req POST /v1/transfers/batch -H "$AUTH" -H "$JSONH" -H "$(idem)" --data "{\"transfers\": [
    {\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 30000, \"currency\": \"EUR\", \"code\": \"payment\", \"linked\": true},
    {\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 100, \"currency\": \"EUR\", \"code\": \"fee\"}]}"
check_eq "a chain with a held link is held whole" "200 [True, True]" \
    "$STATUS $(json "[r['transfer']['held'] for r in j['results']]")"
check "the fee says why" python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
assert j['results'][1]['transfer']['reasons'].startswith('held with linked transfer 1: dec_'), j['results'][1]" "$TMP/body"
CH_PAY=$(json "j['results'][0]['transfer']['id']")
CH_FEE=$(json "j['results'][1]['transfer']['id']")

# a chain that cannot be held whole (its held link spends what an earlier link brings, which
# pending brings nothing yet) fails whole, saying so
req POST "/v1/customers/$BOB/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
C=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$C\", \"amount\": 5000, \"currency\": \"EUR\"}"
req POST /v1/transfers/batch -H "$AUTH" -H "$JSONH" -H "$(idem)" --data "{\"transfers\": [
    {\"debit_account\": \"$A\", \"credit_account\": \"$C\", \"amount\": 9000, \"currency\": \"EUR\", \"code\": \"payment\", \"linked\": true},
    {\"debit_account\": \"$C\", \"credit_account\": \"$B\", \"amount\": 12000, \"currency\": \"EUR\", \"code\": \"payment\"}]}"
check_eq "a chain that cannot be held whole fails whole" \
    "200 ['linked_transfer_failed', 'transfer_held']" "$STATUS $(json "[r['type'] for r in j['results']]")"
check "the failing link saying why" python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
assert 'cannot be held whole' in j['results'][1]['detail'], j['results'][1]" "$TMP/body"
check_eq "and nothing of it moved" "5000 0 5000" "$(bal "$C")"

for i in 1 2 3; do
    req POST /v1/withdrawals -H "$AUTH" -H "$JSONH" -H "$(idem)" \
        --data "{\"account\": \"$B\", \"amount\": 100, \"currency\": \"EUR\"}"
    eval "W$i=$STATUS"
done
check_eq "withdrawals count in their own window: the third in an hour is denied" "201 201 403" "$W1 $W2 $W3"

# a customer's own session below aal2 is asked to step up, naming the decision; the address
# and device of her session are hers, and kept (the address as a pseudonym)
req PUT "/v1/customers/$ADA/password" -H "$AUTH" -H "$JSONH" --data '{"password": "amber violin harbour 77"}'
req POST /v1/auth/login -H "$JSONH" \
    --data '{"login": "ada@example.com", "password": "amber violin harbour 77", "kind": "customer"}'
CUS="Authorization: Bearer $(json "j['token']")"
req POST /v1/transfers -H "$CUS" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 15000, \"currency\": \"EUR\", \"code\": \"payment\"}"
check_eq "her session is asked to step up" "401 urn:custodia:problem:step_up_required" "$STATUS $(json "j['type']")"
DEC=$(json "__import__('re').search(r'dec_[0-9a-f]{16}', j['detail']).group(0)")
req GET "/v1/decisions/$DEC" -H "$AUTH"
check_eq "by the rule that asked it" "step_up ['step_small'] session" \
    "$(json "j['decision']") $(json "[r['name'] for r in j['rules']]") $(json "j['event']['channel']")"
check "with her session's address, as a pseudonym" python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
assert j['event']['ip'].startswith('fd'), j['event']" "$TMP/body"

check_eq "every transfer asked about is a monitoring event of the ledger (two deposits, nine transfers, three withdrawals)" "14" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE source = 'ledger'")"
check_eq "and the deposit among them" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE type = 'deposit' AND customer = '$ADA'")"

# the held transfer released by a staff member with transfers.approve (the admin key)
req POST "/v1/transfers/$HELD/post" -H "$AUTH" -H "$(idem)"
check_eq "a held transfer is released by review" "201 post" "$STATUS $(json "j['transfer']['kind']")"

# a held chain is released whole: posting its payment posts its fee with it
req POST "/v1/transfers/$CH_PAY/post" -H "$AUTH" -H "$(idem)"
check_eq "posting a held link posts the chain's other held links with it" "201 post $CH_PAY 1 $CH_FEE" \
    "$STATUS $(json "j['transfer']['kind']") $(json "j['transfer']['parent']") $(json "len(j['released_with'])") $(json "j['released_with'][0]['parent']")"
req GET "/v1/transfers/$CH_FEE" -H "$AUTH"
check_eq "and the fee is posted too" posted "$(json "j['pending_state']['status']")"
req POST "/v1/transfers/$CH_FEE/void" -H "$AUTH" -H "$(idem)"
check_eq "it is released once" "409 urn:custodia:problem:transfer_posted" "$STATUS $(json "j['type']")"

stop_server
"$BIN" ledger check --dir "$D" >"$TMP/check.out" 2>&1
check_eq "custodia ledger check passes" 0 "$?"
"$BIN" audit verify --dir "$D" >/dev/null 2>&1
check_eq "and so does the audit log's" 0 "$?"
finish
