#!/bin/sh
# The ledger over HTTPS: an account opened for a customer, a deposit, a transfer and a
# withdrawal with the balances they leave; each bad input a 4xx problem with a stable type and
# nothing changed; a two-phase transfer posted in part; a reversal once; a freeze, and its
# end by four-eyes approval; a batch with a linked chain; a customer's daily limit; a retry with
# the same Idempotency-Key answered the first answer again, another body with it a 409 naming
# the fields; a customer's own session on their own accounts only; the change stream in order;
# and custodia ledger check passing on what was done.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
# a fresh key each time (called in a subshell: a counter would not move)
idem() { echo "Idempotency-Key: k-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; }

req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com", "given_name": "Ada"}'
ADA=$(json "j['id']")
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "bob@example.com", "given_name": "Bob"}'
BOB=$(json "j['id']")

req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" \
    --data '{"currency": "EUR", "limits": {"per_transfer": 50000}}'
check_eq "an account is opened for a customer" "201 EUR active 0" \
    "$STATUS $(json "j['currency']") $(json "j['status']") $(json "j['balance']['posted']")"
A=$(json "j['id']")
check "its answer says where it is" sh -c "grep -qi '^location: /v1/accounts/$A' '$TMP/headers'"
req POST "/v1/customers/$BOB/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
B=$(json "j['id']")
req POST "/v1/customers/$BOB/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "USD"}'
BU=$(json "j['id']")
req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "XXQ"}'
check_eq "an unknown currency is refused" 400 "$STATUS"
req POST "/v1/customers/cus_0000000000000000/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
check_eq "so is an unknown customer" 404 "$STATUS"

# money in, across, out
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$A\", \"amount\": 100000, \"currency\": \"EUR\", \"external_ref\": \"dep-1\"}"
check_eq "a deposit answers with the transfer and the balances it left" "201 deposit 100000" \
    "$STATUS $(json "j['transfer']['code']") $(json "[a for a in j['accounts'] if a['id'] == '$A'][0]['balance']['posted']")"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: pay-1" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 30000, \"currency\": \"EUR\", \"code\": \"rent\", \"metadata\": {\"invoice\": 7}}"
check_eq "a transfer" "201 30000 rent 7" \
    "$STATUS $(json "j['transfer']['amount']") $(json "j['transfer']['code']") $(json "j['transfer']['metadata']['invoice']")"
T1=$(json "j['transfer']['id']")
FIRST=$(cat "$TMP/body")
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: pay-1" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 30000, \"currency\": \"EUR\", \"code\": \"rent\", \"metadata\": {\"invoice\": 7}}"
check_eq "a retry with the same key gets the first answer again" "201 $T1" \
    "$STATUS $(json "j['transfer']['id']")"
check "saying it is a replay" sh -c "grep -qi '^idempotent-replayed: true' '$TMP/headers'"
check_eq "word for word" "$FIRST" "$(cat "$TMP/body")"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: pay-1" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 31000, \"currency\": \"EUR\", \"code\": \"rent\"}"
check_eq "the same key with another body is refused" "409 urn:custodia:problem:idempotency_key_reused" \
    "$STATUS $(json "j['type']")"
check "naming the fields that differ" contains "$TMP/body" "amount, metadata"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 1, \"currency\": \"EUR\"}"
check_eq "a movement without a key is refused" 400 "$STATUS"
check "saying what it needs" contains "$TMP/body" "Idempotency-Key"
req POST /v1/withdrawals -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$B\", \"amount\": 5000, \"currency\": \"EUR\"}"
check_eq "a withdrawal" 201 "$STATUS"
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "the balances add up" "70000 0 70000" \
    "$(json "j['balance']['posted']") $(json "j['balance']['pending']") $(json "j['balance']['available']")"
req GET "/v1/accounts/$B" -H "$AUTH"
check_eq "on both sides" 25000 "$(json "j['balance']['posted']")"

# bad input: a stable type each, nothing changed
bad() { # bad BODY STATUS TYPE WHAT
    req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" --data "$1"
    check_eq "$4" "$2 urn:custodia:problem:$3" "$STATUS $(json "j['type']")"
}
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 70001, \"currency\": \"EUR\"}" \
    409 insufficient_funds "more than is there"
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 50001, \"currency\": \"EUR\"}" \
    409 limit_exceeded "over the account's per-transfer limit" 
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$BU\", \"amount\": 5, \"currency\": \"EUR\"}" \
    400 currency_mismatch "between currencies"
bad "{\"debit_account\": \"$A\", \"credit_account\": \"acc_ffffffffffffffff\", \"amount\": 5, \"currency\": \"EUR\"}" \
    404 unknown_account "to an unknown account"
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 0, \"currency\": \"EUR\"}" \
    400 invalid_request "an amount of 0"
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 1.5, \"currency\": \"EUR\"}" \
    400 invalid_request "a fractional amount"
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 99999999999999999999, \"currency\": \"EUR\"}" \
    400 invalid_request "an amount beyond 64 bits"
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 1000000000000001, \"currency\": \"EUR\"}" \
    400 invalid_request "an amount past 10^15 minor units"
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "and nothing changed" 70000 "$(json "j['balance']['posted']")"

# two phases
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 20000, \"currency\": \"EUR\", \"pending\": true, \"timeout_seconds\": 3600}"
check_eq "a pending transfer reserves" "201 pending 20000" \
    "$STATUS $(json "j['transfer']['pending_state']['status']") $(json "[a for a in j['accounts'] if a['id'] == '$A'][0]['balance']['available'] and 70000 - [a for a in j['accounts'] if a['id'] == '$A'][0]['balance']['available']")"
P=$(json "j['transfer']['id']")
req POST "/v1/transfers/$P/post" -H "$AUTH" -H "$JSONH" -H "$(idem)" --data '{"amount": 20001}'
check_eq "a post above what it reserves is refused" "409 urn:custodia:problem:amount_exceeds_pending" "$STATUS $(json "j['type']")"
req POST "/v1/transfers/$P/post" -H "$AUTH" -H "$JSONH" -H "$(idem)" --data '{"amount": 12000}'
check_eq "posted in part" "201 post 12000" "$STATUS $(json "j['transfer']['kind']") $(json "j['transfer']['amount']")"
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "the rest is released" "58000 58000" "$(json "j['balance']['posted']") $(json "j['balance']['available']")"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 10, \"currency\": \"EUR\", \"pending\": true}"
P2=$(json "j['transfer']['id']")
req POST "/v1/transfers/$P2/void" -H "$AUTH" -H 'Idempotency-Key: act-1'
check_eq "a void" "201 void" "$STATUS $(json "j['transfer']['kind']")"
req POST "/v1/transfers/$P/void" -H "$AUTH" -H 'Idempotency-Key: act-1'
check_eq "the same key on another transfer is refused, not replayed" \
    "409 urn:custodia:problem:idempotency_key_reused" "$STATUS $(json "j['type']")"
req POST "/v1/transfers/$P/void" -H "$AUTH" -H "$(idem)"
check_eq "a posted transfer cannot be voided" "409 urn:custodia:problem:transfer_posted" "$STATUS $(json "j['type']")"

# reversal
req POST "/v1/transfers/$T1/reverse" -H "$AUTH" -H "$(idem)"
check_eq "a reversal names what it reverses" "201 reverse $T1" \
    "$STATUS $(json "j['transfer']['kind']") $(json "j['transfer']['parent']")"
R=$(json "j['transfer']['id']")
req POST "/v1/transfers/$T1/reverse" -H "$AUTH" -H "$(idem)"
check_eq "once" "409 urn:custodia:problem:already_reversed" "$STATUS $(json "j['type']")"
req POST "/v1/transfers/$R/reverse" -H "$AUTH" -H "$(idem)"
check_eq "and a reversal is not reversed" "409 urn:custodia:problem:not_reversible" "$STATUS $(json "j['type']")"

# freeze
req POST "/v1/accounts/$A/freeze" -H "$AUTH" -H "$JSONH" --data '{"reason": "card reported stolen"}'
check_eq "an account is frozen" "200 frozen" "$STATUS $(json "j['status']")"
bad "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 5, \"currency\": \"EUR\"}" \
    409 account_frozen "nothing leaves a frozen account"
req POST "/v1/accounts/$A/unfreeze" -H "$AUTH"
check_eq "unfreezing waits for another's approval (the default policy)" "202 pending accounts.unfreeze" \
    "$STATUS $(json "j['status']") $(json "j['permission']")"
APR=$(json "j['id']")
req POST /v1/staff -H "$AUTH" -H "$JSONH" \
    --data '{"email": "fran@example.com", "name": "Fran", "scopes": ["accounts.unfreeze", "accounts.read"]}'
staff_signin "$(json "j['id']")" fran@example.com 'silver meadow lantern 42' || exit 1
req POST "/v1/approvals/$APR/approve" -H "$STOK"
check_eq "approved, it runs" "200 executed 200" "$STATUS $(json "j['status']") $(json "j['result']['status']")"
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "and the account is active" active "$(json "j['status']")"

# time: a pending transfer's timeout and a freeze's end pass by themselves
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 700, \"currency\": \"EUR\", \"pending\": true, \"timeout_seconds\": 1}"
PX=$(json "j['transfer']['id']")
UNTIL=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
req POST "/v1/accounts/$B/freeze" -H "$AUTH" -H "$JSONH" --data "{\"reason\": \"review\", \"until\": \"$UNTIL\"}"
check_eq "a freeze with an end" "200 frozen" "$STATUS $(json "j['status']")"
i=0
while [ $i -lt 60 ]; do
    req GET "/v1/transfers/$PX" -H "$AUTH"
    s1=$(json "j['pending_state']['status']")
    req GET "/v1/accounts/$B" -H "$AUTH"
    s2=$(json "j['status']")
    [ "$s1" = expired ] && [ "$s2" = active ] && break
    sleep 0.2
    i=$((i + 1))
done
check_eq "the expired transfer's funds came back and the freeze ended" "expired active" "$s1 $s2"
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "all of them (the reversal gave 30000 back)" "88000 0" "$(json "j['balance']['available']") $(json "j['balance']['pending']")"

# look-ups, entries, the change stream
req GET "/v1/transfers?external_ref=dep-1" -H "$AUTH"
check_eq "transfers by external reference" "1 100000" "$(json "len(j['items'])") $(json "j['items'][0]['amount']")"
req GET "/v1/accounts/$A/entries?limit=2" -H "$AUTH"
check_eq "an account's entries, a page" "2 True" "$(json "len(j['items'])") $(json "j['next_after'] is not None")"
req GET "/v1/accounts/$A/entries?after=$(json "j['next_after']")" -H "$AUTH"
check_eq "and the next" 200 "$STATUS"
req GET "/v1/accounts/$A/entries" -H "$AUTH" -H 'Accept: text/csv'
check_eq "entries as CSV" "200 seq,id,created_at,kind,side,amount,currency,code,counterparty,external_ref,transfer_amount" \
    "$STATUS $(head -1 "$TMP/body" | tr -d '\r')"
check "typed text/csv" sh -c "grep -qi '^content-type: text/csv' '$TMP/headers'"
check_eq "one line per entry, the account's side signed" "-30000 rent" \
    "$(grep ",$T1," "$TMP/body" | cut -d, -f6,8 | tr ',' ' ')"
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$A\", \"amount\": 1, \"currency\": \"EUR\", \"external_ref\": \"=HYPERLINK(1,2)\"}"
req GET "/v1/accounts/$A/entries" -H "$AUTH" -H 'Accept: text/csv'
check "a value a spreadsheet would run is written as text, quoted" \
    contains "$TMP/body" "\"'=HYPERLINK(1,2)\""
req GET "/v1/ledger/changes?after=0" -H "$AUTH"
check_eq "the change stream holds every transfer in commit order" "True" \
    "$(json "[t['seq'] for t in j['items']] == list(range(1, len(j['items']) + 1)) and len(j['items']) == 11")"
LAST=$(json "j['next_after']")
START=$(date +%s)
req GET "/v1/ledger/changes?after=$LAST&wait=1" -H "$AUTH"
check_eq "a long poll with nothing new answers empty after its wait" "200 0 $LAST" \
    "$STATUS $(json "len(j['items'])") $(json "j['next_after']")"

# a batch: independent transfers and a linked chain, one result each
req GET "/v1/accounts/$A" -H "$AUTH"
BEFORE=$(json "j['balance']['posted']")
req POST /v1/transfers/batch -H "$AUTH" -H "$JSONH" -H "$(idem)" --data "{\"transfers\": [
    {\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 100, \"currency\": \"EUR\", \"linked\": true},
    {\"debit_account\": \"$A\", \"credit_account\": \"$BU\", \"amount\": 5, \"currency\": \"EUR\"},
    {\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 7, \"currency\": \"EUR\"}]}"
check_eq "a batch answers one result each" "200 3" "$STATUS $(json "len(j['results'])")"
check_eq "a chain with a bad link fails whole, naming why" \
    "409 linked_transfer_failed 400 currency_mismatch 201" \
    "$(json "j['results'][0]['status']") $(json "j['results'][0]['type']") $(json "j['results'][1]['status']") $(json "j['results'][1]['type']") $(json "j['results'][2]['status']")"
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "only the independent one moved" "$((BEFORE - 7))" "$(json "j['balance']['posted']")"
req POST /v1/transfers/batch -H "$AUTH" -H "$JSONH" -H "$(idem)" --data '{"transfers": []}'
check_eq "an empty batch is refused" 400 "$STATUS"
req POST /v1/transfers/batch -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"transfers\": [{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 1, \"currency\": \"EUR\"}, {\"amount\": -1}]}"
check_eq "a malformed item is refused whole, named" 400 "$STATUS"
check "by its index" contains "$TMP/body" "transfers[1]"

# a customer's daily limit over all their accounts (a customer with nothing moved today)
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "dan@example.com", "given_name": "Dan"}'
DAN=$(json "j['id']")
req POST "/v1/customers/$DAN/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
D1=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$D1\", \"amount\": 1000, \"currency\": \"EUR\"}"
req PUT "/v1/customers/$DAN/limits" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR", "daily": 300}'
check_eq "a customer's daily limit is set" "200 300" "$STATUS $(json "j['daily']")"
req POST "/v1/customers/$DAN/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
D2=$(json "j['id']")
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$D1\", \"credit_account\": \"$A\", \"amount\": 200, \"currency\": \"EUR\"}"
check_eq "within it" 201 "$STATUS"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$D1\", \"credit_account\": \"$D2\", \"amount\": 101, \"currency\": \"EUR\"}"
check_eq "past it, from any of the customer's accounts" "409 urn:custodia:problem:limit_exceeded" \
    "$STATUS $(json "j['type']")"
req PUT "/v1/customers/$DAN/limits" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR", "daily": null}'
check_eq "and lifted" "200 None" "$STATUS $(json "j['daily']")"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$D1\", \"credit_account\": \"$D2\", \"amount\": 101, \"currency\": \"EUR\"}"
check_eq "then it passes" 201 "$STATUS"
req PUT "/v1/customers/$BOB/limits" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR", "daily": 1.5}'
check_eq "a fractional limit is refused" 400 "$STATUS"
# A limit set mid-day counts what already left that day.
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "cleo@example.com", "given_name": "Cleo"}'
CLEO=$(json "j['id']")
req POST "/v1/customers/$CLEO/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
C1=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$C1\", \"amount\": 1000, \"currency\": \"EUR\"}"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$C1\", \"credit_account\": \"$A\", \"amount\": 300, \"currency\": \"EUR\"}"
check_eq "300 leave before any limit" 201 "$STATUS"
req PUT "/v1/customers/$CLEO/limits" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR", "daily": 500}'
check_eq "then a daily limit of 500 is set" 200 "$STATUS"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$C1\", \"credit_account\": \"$A\", \"amount\": 201, \"currency\": \"EUR\"}"
check_eq "the day's 300 count: 201 more is past it" "409 urn:custodia:problem:limit_exceeded" \
    "$STATUS $(json "j['type']")"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$C1\", \"credit_account\": \"$A\", \"amount\": 200, \"currency\": \"EUR\"}"
check_eq "200 more is within it" 201 "$STATUS"

# a customer with accounts not closed is not erased; once they are closed, the customer is
req DELETE "/v1/customers/$ADA" -H "$AUTH"
check_eq "erasing a customer with an open account is refused" 409 "$STATUS"
check "saying what to do first" contains "$TMP/body" "close it first"
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Cy"}'
CY=$(json "j['id']")
req POST "/v1/customers/$CY/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
req POST "/v1/accounts/$(json "j['id']")/close" -H "$AUTH"
check_eq "an empty account closes" "200 closed" "$STATUS $(json "j['status']")"
req DELETE "/v1/customers/$CY" -H "$AUTH"
check_eq "and then its customer may be erased" 200 "$STATUS"

# a customer's own session: their accounts only, step-up above [ledger] step_up_above
req PUT "/v1/customers/$ADA/password" -H "$AUTH" -H "$JSONH" --data '{"password": "amber violin harbour 77"}'
req POST /v1/auth/login -H "$JSONH" \
    --data '{"login": "ada@example.com", "password": "amber violin harbour 77", "kind": "customer"}'
check_eq "the customer signs in" 200 "$STATUS"
CUS="Authorization: Bearer $(json "j['token']")"
req GET "/v1/accounts/$A" -H "$CUS"
check_eq "and reads her account" "200 $ADA" "$STATUS $(json "j['customer']")"
check_eq "without staff's note on a freeze" "None" "$(json "j.get('freeze')")"
req GET "/v1/accounts/$B" -H "$CUS"
check_eq "not another's" 404 "$STATUS"
req GET "/v1/customers/$ADA/accounts" -H "$CUS"
check_eq "her accounts" "200 1" "$STATUS $(json "len(j['items'])")"
req GET "/v1/customers/$BOB/accounts" -H "$CUS"
check_eq "not another's list" 404 "$STATUS"
req POST /v1/transfers -H "$CUS" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 500, \"currency\": \"EUR\"}"
check_eq "she pays from her account" "201 session" "$STATUS $(json "j['transfer']['channel']")"
check_eq "and sees her own balance in the answer, not the payee's" "$A" \
    "$(json "' '.join(a['id'] for a in j['accounts'])")"
req POST /v1/transfers -H "$CUS" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$B\", \"credit_account\": \"$A\", \"amount\": 500, \"currency\": \"EUR\"}"
check_eq "not from another's" "404 urn:custodia:problem:unknown_account" "$STATUS $(json "j['type']")"
req POST /v1/transfers -H "$CUS" -H "$JSONH" -H "$(idem)" \
    --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 100001, \"currency\": \"EUR\"}"
check_eq "above the step-up amount she must step up" "urn:custodia:problem:step_up_required" "$(json "j['type']")"
req POST /v1/deposits -H "$CUS" -H "$JSONH" -H "$(idem)" \
    --data "{\"account\": \"$A\", \"amount\": 5, \"currency\": \"EUR\"}"
check_eq "and deposits are not hers to make" 403 "$STATUS"
req GET "/v1/ledger/changes" -H "$CUS"
check_eq "nor is the change stream hers to read" 403 "$STATUS"

stop_server
"$BIN" ledger check --dir "$D" >"$TMP/check.out" 2>&1
check_eq "custodia ledger check passes" 0 "$?"
check "and says what it checked" contains "$TMP/check.out" "transfers"
"$BIN" audit verify --dir "$D" >/dev/null 2>&1
check_eq "and so does the audit log's" 0 "$?"
tamper "$D" \
    "UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = '$B'"
"$BIN" ledger check --dir "$D" >"$TMP/check.out" 2>&1
check_eq "a balance changed behind the ledger's back fails the check" 1 "$?"
check "naming the account" contains "$TMP/check.out" "account $B"
finish
