#!/bin/sh
# API keys have owners: a key made by a staff member (or by a key a staff member owns) holds at
# most what the owner may, checked on every request, so a demoted owner's keys lose what the
# owner lost and a disabled owner's keys stop at once; the keys custodia init and the CLI make
# belong to the installation and are not capped.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Ada"}'
CID=$(json "j['id']")
req GET /v1/apikeys -H "$AUTH"
check_eq "the installation's key belongs to the installation" "installation" "$(json "j['items'][0]['owner']")"

req POST /v1/staff -H "$AUTH" -H "$JSONH" --data \
    '{"email": "sam@example.com", "name": "Sam", "scopes": ["apikeys.write", "customers.read"]}'
SID=$(json "j['id']")
staff_signin "$SID" sam@example.com 'velvet tunnel harbor 64' || exit 1
req POST /v1/apikeys -H "$STOK" -H "$JSONH" \
    --data '{"name": "sams tool", "scopes": ["customers.read", "apikeys.write"]}'
check_eq "a staff member makes a key" 201 "$STATUS"
check_eq "which they own" "$SID" "$(json "j['owner']")"
SK="Authorization: Bearer $(json "j['key']")"
req POST /v1/apikeys -H "$SK" -H "$JSONH" --data '{"name": "child", "scopes": ["customers.read"]}'
check_eq "a key made by that key belongs to the same owner" "201 $SID" "$STATUS $(json "j['owner']")"
CK="Authorization: Bearer $(json "j['key']")"
req GET "/v1/customers/$CID" -H "$SK"
check_eq "the key reads a customer" 200 "$STATUS"

req PATCH "/v1/staff/$SID" -H "$AUTH" -H "$JSONH" --data '{"scopes": ["apikeys.write"]}'
req GET "/v1/customers/$CID" -H "$SK"
check_eq "once the owner loses customers.read, so does the key, at once" 403 "$STATUS"
check "and the detail says why" contains "$TMP/body" "the key's owner, who lacks customers.read"
req GET "/v1/customers/$CID" -H "$CK"
check_eq "and the key it made" 403 "$STATUS"
req POST /v1/apikeys -H "$SK" -H "$JSONH" --data '{"name": "kept", "scopes": ["apikeys.write"]}'
check_eq "what the owner still holds (apikeys.write), the key keeps" 201 "$STATUS"
req POST /v1/apikeys -H "$SK" -H "$JSONH" --data '{"name": "again", "scopes": ["customers.read"]}'
check_eq "nor can the key give what its owner lacks" 403 "$STATUS"

req PATCH "/v1/staff/$SID" -H "$AUTH" -H "$JSONH" --data '{"status": "disabled"}'
req POST /v1/apikeys -H "$SK" -H "$JSONH" --data '{"name": "more", "scopes": []}'
check_eq "a disabled owner's keys stop working" 401 "$STATUS"
check "saying so" contains "$TMP/body" "owner is disabled"
req GET "/v1/customers/$CID" -H "$CK"
check_eq "all of them" 401 "$STATUS"
req GET "/v1/customers/$CID" -H "$AUTH"
check_eq "the installation's key is unaffected" 200 "$STATUS"
stop_server
finish
