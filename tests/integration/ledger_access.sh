#!/bin/sh
# The ledger's routes decided on the account's customer: a key whose permit holds only for
# customers of one region reads and freezes their accounts and no others, and never the
# company's system accounts (no customer to satisfy the condition: the permit does not hold).
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/access.policy" <<'POLICY'
version 1
region emea GB FR DE
role emea_teller
permit emea_teller accounts.read,accounts.freeze when customer.region == "emea"
POLICY
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
acct() { # acct COUNTRY: a customer of that country and an account of theirs, with 100
    req POST /v1/customers -H "$AUTH" -H "$JSONH" --data "{\"given_name\": \"X\", \"country\": \"$1\"}"
    req POST "/v1/customers/$(json "j['id']")/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
    ACC=$(json "j['id']")
    req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: dep-$1" \
        --data "{\"account\": \"$ACC\", \"amount\": 100, \"currency\": \"EUR\"}"
    SYS=$(json "[a['id'] for a in j['accounts'] if a['id'] != '$ACC'][0]")
}
acct GB
GB=$ACC
acct US
US=$ACC
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "teller", "roles": ["emea_teller"]}'
T="Authorization: Bearer $(json "j['key']")"

req GET "/v1/accounts/$GB" -H "$T"
check_eq "the key reads an account of a customer its permit names" 200 "$STATUS"
req GET "/v1/accounts/$US" -H "$T"
check_eq "not one of another region" 403 "$STATUS"
req GET "/v1/accounts/$US/entries" -H "$T"
check_eq "nor its entries" 403 "$STATUS"
req GET "/v1/accounts/$SYS/entries" -H "$T"
check_eq "nor the system account's, which would list every customer's deposits" 403 "$STATUS"
req POST "/v1/accounts/$SYS/freeze" -H "$T" -H "$JSONH" --data '{"reason": "x"}'
check_eq "nor may it freeze the system account (every deposit would stop)" 403 "$STATUS"
req POST "/v1/accounts/$GB/freeze" -H "$T" -H "$JSONH" --data '{"reason": "review"}'
check_eq "it freezes one of its region's" "200 frozen" "$STATUS $(json "j['status']")"
req GET "/v1/accounts/$SYS/entries" -H "$AUTH"
check_eq "the installation's key reads the system account" 200 "$STATUS"
stop_server
finish
