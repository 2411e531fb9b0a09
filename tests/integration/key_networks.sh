#!/bin/sh
# Where a credential may be used from: an API key may carry an IP allow-list (checked on every
# request, given by the API or the CLI, never wider than the allow-list of the key that makes
# it), and staff routes may be held to an office network by the access policy.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

req POST /v1/apikeys -H "$AUTH" -H "$JSONH" \
    --data '{"name": "office only", "scopes": ["metrics.read"], "networks": ["10.0.0.0/8"]}'
check_eq "a key is made with an allow-list" 201 "$STATUS"
check_eq "which its record shows" '["10.0.0.0/8"]' "$(json "json.dumps(j['networks'])")"
FAR="Authorization: Bearer $(json "j['key']")"
req GET /metrics -H "$FAR"
check_eq "from an address outside it the key does not work" 401 "$STATUS"
check "and the answer says why" contains "$TMP/body" "may not be used from this address"

req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data \
    '{"name": "here", "scopes": ["metrics.read", "apikeys.write"], "networks": ["127.0.0.0/8", "::1/128"]}'
check_eq "a key for this host" 201 "$STATUS"
NEAR="Authorization: Bearer $(json "j['key']")"
req GET /metrics -H "$NEAR"
check_eq "works from it" 200 "$STATUS"
req POST /v1/apikeys -H "$NEAR" -H "$JSONH" \
    --data '{"name": "wider", "scopes": ["metrics.read"], "networks": ["10.0.0.0/8"]}'
check_eq "a key cannot make a key usable from where it may not be used" 403 "$STATUS"
check "saying so" contains "$TMP/body" "not within the calling key's own allow-list"
req POST /v1/apikeys -H "$NEAR" -H "$JSONH" \
    --data '{"name": "wider", "scopes": ["metrics.read"], "networks": ["0.0.0.0/0"]}'
check_eq "nor one usable from everywhere" 403 "$STATUS"
req POST /v1/apikeys -H "$NEAR" -H "$JSONH" \
    --data '{"name": "narrower", "scopes": ["metrics.read"], "networks": ["127.0.0.1"]}'
check_eq "a narrower list is given" "201 [\"127.0.0.1\"]" "$STATUS $(json "json.dumps(j['networks'])")"
req POST /v1/apikeys -H "$NEAR" -H "$JSONH" --data '{"name": "child", "scopes": ["metrics.read"]}'
check_eq "and without one the new key inherits the maker's" \
    '201 ["127.0.0.0/8", "::1/128"]' "$STATUS $(json "json.dumps(j['networks'])")"

for bad in '"10.0.0.1/8"' '"10.0.0.0/33"' '"office"' '""' '7' '"10.0.0.0/8 "'; do
    req POST /v1/apikeys -H "$AUTH" -H "$JSONH" \
        --data "{\"name\": \"bad\", \"scopes\": [\"metrics.read\"], \"networks\": [$bad]}"
    check_eq "a bad block ($bad) is refused" 400 "$STATUS"
done
check "naming the fault" contains "$TMP/body" "field 'networks' item 0"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data \
    '{"name": "bad", "scopes": ["metrics.read"], "networks": []}'
check_eq "an empty list is refused" 400 "$STATUS"
many=$(python3 -c 'import json; print(json.dumps(["10.%d.0.0/16" % i for i in range(17)]))')
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data \
    "{\"name\": \"bad\", \"scopes\": [\"metrics.read\"], \"networks\": $many}"
check_eq "and so are 17 blocks" 400 "$STATUS"

CLIKEY=$("$BIN" apikey create --dir "$D" --name cli --scope metrics.read --network 192.0.2.0/24 \
    2>"$TMP/cli.err")
check "the CLI gives an allow-list" contains "$TMP/cli.err" "may be used only from: 192.0.2.0/24"
req GET /metrics -H "Authorization: Bearer $CLIKEY"
check_eq "which holds" 401 "$STATUS"
"$BIN" apikey create --dir "$D" --name cli --scope metrics.read --network 192.0.2.1/24 \
    >/dev/null 2>"$TMP/cli.err"
check_eq "the CLI refuses a bad block" 2 "$?"
check "saying why" contains "$TMP/cli.err" "has bits set past its prefix"

# Staff routes held to a network by the policy: staff reach nothing from elsewhere.
req POST /v1/staff -H "$AUTH" -H "$JSONH" --data \
    '{"email": "sam@example.com", "name": "Sam", "scopes": ["customers.read"]}'
SID=$(json "j['id']")
staff_signin "$SID" sam@example.com 'velvet tunnel harbor 64' || exit 1
req GET /v1/customers -H "$STOK"
check_eq "a staff member reads customers" 200 "$STATUS"
printf 'version 1\nnetwork office 10.0.0.0/8\nforbid * to staff when not ip in office\n' \
    >"$D/access.policy.new"
check "a policy holding staff to the office is taken" policy_now "$D"
req GET /v1/customers -H "$STOK"
check_eq "then not from outside the office" 403 "$STATUS"
check "and the answer names the forbid" contains "$TMP/body" "denied by forbid at access.policy:3"
req GET /v1/customers -H "$AUTH"
check_eq "while keys are not held by it" 200 "$STATUS"
stop_server
finish
