#!/bin/sh
# API keys over HTTPS: make one with limited scopes, use it, page through the list, revoke it
# and see it refused; bad input gets a 400 naming the field; a key made by the CLI while the
# server runs works at once.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "reader", "scopes": ["apikeys.read"]}'
check_eq "create answers 201" 201 "$STATUS"
READER=$(json "j['key']")
RID=$(json "j['id']")
check_eq "the record names the scopes" "['apikeys.read']" "$(json "j['scopes']")"
check_eq "no expiry" None "$(json "j['expires_at']")"

req GET "/v1/apikeys/$RID" -H "Authorization: Bearer $READER"
check_eq "the new key reads" 200 "$STATUS"
check "a read never returns the key text" absent cuk_ "$TMP/body"
req POST /v1/apikeys -H "Authorization: Bearer $READER" -H "$JSONH" \
    --data '{"name": "escalate", "scopes": ["apikeys.write"]}'
check_eq "a read-only key cannot make keys" 403 "$STATUS"

# Paging: 5 more keys, pages of 2.
for i in 1 2 3 4 5; do
    req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data "{\"name\": \"bulk $i\", \"scopes\": [\"metrics.read\"]}"
done
seen=0
after=
while :; do
    req GET "/v1/apikeys?limit=2${after:+&after=$after}" -H "$AUTH"
    n=$(json "len(j['items'])")
    seen=$((seen + n))
    after=$(json "j['next_after'] or ''")
    [ -n "$after" ] || break
done
check_eq "paging visits every key once" 7 "$seen"

# Bad input: each a 400 that names the problem.
bad() {
    req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data "$1"
    check_eq "$2: 400" 400 "$STATUS"
    check "$2: the detail names '$3'" contains "$TMP/body" "$3"
}
bad '{"scopes": ["metrics.read"]}' "missing name" "name"
bad '{"name": "x", "scopes": []}' "empty scopes" "scopes"
bad '{"name": "x", "scopes": ["root"]}' "unknown scope" "scopes"
bad '{"name": "x", "scopes": ["metrics.read"], "admin": true}' "unknown field" "admin"
bad '{"name": "x;y", "scopes": ["metrics.read"]}' "bad name" "name"
bad '{"name": 5, "scopes": ["metrics.read"]}' "name not a string" "name"
bad '{"name": "x", "scopes": ["metrics.read"], "expires_at": "2001-01-01T00:00:00Z"}' \
    "expiry in the past" "expires_at"
bad '{"name": "x", "scopes": ["metrics.read"], "expires_at": "tomorrow"}' "expiry not a time" \
    "expires_at"
bad '[1, 2]' "not an object" "object"
req GET "/v1/apikeys?limit=0" -H "$AUTH"
check_eq "limit 0 is refused" 400 "$STATUS"
req GET "/v1/apikeys/not-an-id" -H "$AUTH"
check_eq "a malformed id is refused" 400 "$STATUS"
req GET "/v1/apikeys/ak_0000000000000000" -H "$AUTH"
check_eq "an unknown id is 404" 404 "$STATUS"

# Revocation takes effect at once.
req DELETE "/v1/apikeys/$RID" -H "$AUTH"
check_eq "revoke answers 200" 200 "$STATUS"
check "the record shows the revocation" test "$(json "j['revoked_at'] is not None")" = True
req GET "/v1/apikeys/$RID" -H "Authorization: Bearer $READER"
check_eq "a revoked key gets 401" 401 "$STATUS"

# Least privilege: a key that may make keys cannot grant scopes it lacks, nor revoke keys
# with scopes it lacks.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "key maker", "scopes": ["apikeys.write"]}'
MAKER=$(json "j['key']")
req POST /v1/apikeys -H "Authorization: Bearer $MAKER" -H "$JSONH" \
    --data '{"name": "escalated", "scopes": ["apikeys.write", "audit.read"]}'
check_eq "a key cannot grant a scope it lacks" 403 "$STATUS"
check "the refusal names the scope" contains "$TMP/body" "audit.read"
req POST /v1/apikeys -H "Authorization: Bearer $MAKER" -H "$JSONH" \
    --data '{"name": "peer", "scopes": ["apikeys.write"]}'
check_eq "it can grant what it holds" 201 "$STATUS"
ADMIN_ID=$("$DBQ" "$D" "SELECT id FROM api_keys WHERE name = 'initial-admin'")
req DELETE "/v1/apikeys/$ADMIN_ID" -H "Authorization: Bearer $MAKER"
check_eq "it cannot revoke a key with more scopes" 403 "$STATUS"
req GET /metrics -H "$AUTH"
check_eq "the admin key still works" 200 "$STATUS"
check "the escalation attempts are audited" test "$("$DBQ" "$D" \
    "SELECT count(*) FROM audit_log WHERE outcome = 'denied' AND details LIKE '%escalation%'")" -eq 2

# A key made by a key that expires expires no later than it.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" \
    --data '{"name": "short maker", "scopes": ["apikeys.write"], "expires_at": "2099-01-01T00:00:00Z"}'
SHORT=$(json "j['key']")
req POST /v1/apikeys -H "Authorization: Bearer $SHORT" -H "$JSONH" \
    --data '{"name": "child", "scopes": ["apikeys.write"]}'
check_eq "a key made by an expiring key expires with it" "201 2099-01-01T00:00:00.000Z" \
    "$STATUS $(json "j['expires_at']")"
req POST /v1/apikeys -H "Authorization: Bearer $SHORT" -H "$JSONH" \
    --data '{"name": "child", "scopes": ["apikeys.write"], "expires_at": "2099-01-02T00:00:00Z"}'
check_eq "and may not outlive it" 400 "$STATUS"
check "saying so" contains "$TMP/body" "not be later than the calling key"

# A key made by the CLI while the server runs.
CLI_KEY=$("$BIN" apikey create --dir "$D" --name "from cli" --scope metrics.read 2>/dev/null)
req GET /metrics -H "Authorization: Bearer $CLI_KEY"
check_eq "a CLI-made key works on the running server" 200 "$STATUS"

stop_server
check_eq "serve exits 0" 0 "$STOP_STATUS"
finish
