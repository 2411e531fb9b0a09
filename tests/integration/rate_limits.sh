#!/bin/sh
# Rate limits at the edge ([limits]): past a bucket's burst a client address, a principal, a
# principal's changes and a login name each get 429 with Retry-After, counted in the metrics
# and not audited; the bucket refills at its rate and the requests pass again. A sign-in
# limit holds for one login name whatever else is asked, and not for another name.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
# principal: 5 at once, one a second back (60 a minute); writes: 2 at once; sign-in: 3 at once
start_server "$D" CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=60 CUSTODIA_LIMITS_PRINCIPAL_BURST=5 \
    CUSTODIA_LIMITS_WRITES_PER_MINUTE=60 CUSTODIA_LIMITS_WRITES_BURST=2 \
    CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=60 CUSTODIA_LIMITS_SIGNIN_BURST=3 || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

codes=""
for i in 1 2 3 4 5 6; do
    req GET /v1/apikeys -H "$AUTH"
    codes="$codes $STATUS"
done
check_eq "a principal spends its burst, then gets 429" " 200 200 200 200 200 429" "$codes"
check "with Retry-After" sh -c "[ \"$(header Retry-After)\" -ge 1 ]"
check_eq "and the rate_limited type" "urn:custodia:problem:rate_limited" "$(json "j['type']")"
req GET /v1/health
check_eq "another principal (here: none) is not held back" 200 "$STATUS"
sleep 2
req GET /v1/apikeys -H "$AUTH"
check_eq "once the bucket refills, the principal passes again" 200 "$STATUS"

sleep 5
codes=""
for i in 1 2 3; do
    req POST /v1/customers -H "$AUTH" -H "$JSONH" --data "{\"given_name\": \"N$i\"}"
    codes="$codes $STATUS"
done
check_eq "changes have a bucket of their own" " 201 201 429" "$codes"
check "which the detail names" contains "$TMP/body" "that change something"

codes=""
for i in 1 2 3 4; do
    req POST /v1/auth/login -H "$JSONH" \
        --data '{"login": "nobody@example.com", "password": "wrong wrong wrong 1", "kind": "staff"}'
    codes="$codes $STATUS"
done
check_eq "sign-ins for one login name: 3, then 429" " 401 401 401 429" "$codes"
check "the detail says so" contains "$TMP/body" "too many sign-in attempts for this login"
req POST /v1/auth/login -H "$JSONH" \
    --data '{"login": "NOBODY@example.com", "password": "wrong wrong wrong 1", "kind": "staff"}'
check_eq "the same name in other case is the same bucket" 429 "$STATUS"
req POST /v1/auth/login -H "$JSONH" \
    --data '{"login": "someone@example.com", "password": "wrong wrong wrong 1", "kind": "staff"}'
check_eq "another name has its own" 401 "$STATUS"

sleep 5
req GET /metrics -H "$AUTH"
check "the metrics count the principal's 429" grep -q '^custodia_rate_limited_total{limit="principal"} 1$' "$TMP/body"
check "the writes'" grep -q '^custodia_rate_limited_total{limit="writes"} 1$' "$TMP/body"
check "and the sign-ins'" grep -q '^custodia_rate_limited_total{limit="signin"} 2$' "$TMP/body"
req GET "/v1/audit?action=auth.login&limit=1000" -H "$AUTH"
check_eq "a 429 is not audited: only the four sign-ins that were answered are" 4 "$(json "len(j['items'])")"
stop_server

# The address's bucket, checked before anything else.
start_server "$D" CUSTODIA_LIMITS_IP_PER_MINUTE=60 CUSTODIA_LIMITS_IP_BURST=3 || exit 1
sleep 3 # the bucket refills from what start_server's polling took
codes=""
for i in 1 2 3 4; do
    req GET /v1/health
    codes="$codes $STATUS"
done
check_eq "an address spends its burst, then gets 429, even on a public route" " 200 200 200 429" "$codes"
check_eq "which says so" "too many requests from this address; retry in 1 s" "$(json "j['detail']")"
req GET /v1/nowhere
check_eq "before routing" 429 "$STATUS"
sleep 2
req GET /v1/health
check_eq "and it recovers" 200 "$STATUS"
stop_server
finish
