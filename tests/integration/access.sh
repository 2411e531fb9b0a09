#!/bin/sh
# The access policy in the server: made with the built-in roles when missing (the first key
# keeps exactly its scopes); followed while running: a forbid takes effect without a restart
# and is explained in the 403; a version that does not parse is refused, logged with line and
# column, audited, and leaves the policy in force; masking by policy wins over the key's
# customers.unmask; a server does not start on a bad policy.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
check_eq "init writes the built-in policy" 600 "$(stat -c %a "$D/access.policy")"
rm "$D/access.policy"
start_server "$D" || exit 1
check_eq "the server writes the built-in policy when missing" 600 "$(stat -c %a "$D/access.policy")"
check "and says so" grep -q '"access.policy_created"' "$LOG"
AUTH="Authorization: Bearer $KEY"
req POST /v1/customers -H "$AUTH" -H 'Content-Type: application/json' \
    --data '{"email": "ada@example.com", "given_name": "Ada", "country": "GB"}'
check_eq "the first key keeps its scopes: it creates a customer" 201 "$STATUS"
ID=$(json "j['id']")
req GET "/v1/customers/$ID" -H "$AUTH"
check_eq "and reads it" 200 "$STATUS"
check_eq "unmasked (the key holds customers.unmask)" "ada@example.com" "$(json "j['email']")"

cat >"$D/access.policy.new" <<'POLICY'
version 1
network office 10.0.0.0/8
forbid customers.read to apikey when not ip in office
forbid customers.unmask
POLICY
mv "$D/access.policy.new" "$D/access.policy"
check "a new version is taken while running" wait_for '"access.policy_loaded".*"sha256":"'"$(sha256sum "$D/access.policy" | cut -d' ' -f1)"
req GET "/v1/customers/$ID" -H "$AUTH"
check_eq "a forbid denies the key from outside the office" 403 "$STATUS"
check "and the answer says which statement and why" \
    sh -c "grep -q 'customers.read denied by forbid at access.policy:3' '$TMP/body'"

printf 'version 1\nforbid customers.read when ip in nowhere\n' >"$D/access.policy.new"
mv "$D/access.policy.new" "$D/access.policy"
check "a version that does not parse is refused with line and column" \
    wait_for "\"access.policy_rejected\".*access.policy:2:34: unknown attribute or name 'nowhere'"
req GET "/v1/customers/$ID" -H "$AUTH"
check_eq "and the policy in force stays" 403 "$STATUS"

cat >"$D/access.policy.new" <<'POLICY'
version 1
network office 127.0.0.0/8 ::1
forbid customers.read to apikey when not ip in office
forbid customers.unmask
POLICY
mv "$D/access.policy.new" "$D/access.policy"
check "the next good version is taken" wait_for "$(sha256sum "$D/access.policy" | cut -d' ' -f1)"
req GET "/v1/customers/$ID" -H "$AUTH"
check_eq "from the office network the key reads again" 200 "$STATUS"
check_eq "masked: the policy forbids unmasking, whatever the key's scopes" "True" \
    "$(json "'@' in j['email'] and j['email'] != 'ada@example.com'")"
KID=$(req GET /v1/apikeys -H "$AUTH"; json "j['items'][0]['id']")
req POST /v1/access/explain -H "$AUTH" -H 'Content-Type: application/json' \
    --data "{\"principal\": \"$KID\", \"permission\": \"customers.read\", \"ip\": \"192.0.2.9\"}"
check_eq "explain: from outside the office the key would be denied" "deny" "$(json "j['effect']")"
check_eq "by the forbid" "forbid at access.policy:3" "$(json "j['decided_by']")"
req POST /v1/access/explain -H "$AUTH" -H 'Content-Type: application/json' \
    --data "{\"principal\": \"$KID\", \"permission\": \"customers.read\", \"ip\": \"127.0.0.1\", \"customer\": \"$ID\"}"
check_eq "and from the office allowed, on that customer" "allow" "$(json "j['effect']")"
check_eq "naming the policy it decided by" "$(sha256sum "$D/access.policy" | cut -d' ' -f1)" "$(json "j['policy']['sha256']")"
req POST /v1/access/explain -H "$AUTH" -H 'Content-Type: application/json' \
    --data '{"principal": "ak_0000000000000000", "permission": "customers.read"}'
check_eq "explain: an unknown principal is 404" 404 "$STATUS"
req POST /v1/access/explain -H "$AUTH" -H 'Content-Type: application/json' \
    --data "{\"principal\": \"$KID\", \"permission\": \"customers.reed\"}"
check_eq "explain: an unknown permission is 400" 400 "$STATUS"
req POST /v1/apikeys -H "$AUTH" -H 'Content-Type: application/json' \
    --data '{"name": "escape", "scopes": ["customers.read", "customers.unmask"]}'
check_eq "a key cannot give a permission the policy forbids it" 403 "$STATUS"
check "naming it" grep -q "lacks: customers.unmask" "$TMP/body"

# A version cut short (no final newline, as when read while being written) is refused.
printf 'version 1\nnetwork office 127.0.0.0/8 ::1\nforbid customers.read to apikey when not ip in office\nforbid customers.unmask' >"$D/access.policy.new"
mv "$D/access.policy.new" "$D/access.policy"
check "a file that does not end with a newline is refused" \
    wait_for "access.policy:4:1: the file does not end with a newline"
stop_server
check_eq "the server stops cleanly" 0 "$STOP_STATUS"
"$BIN" audit export --dir "$D" >"$TMP/audit.jsonl" 2>/dev/null
check "each version taken is audited" sh -c "grep -c '\"access.policy_load\"' '$TMP/audit.jsonl' | grep -qx 2"
check "the refused one too, with its error" \
    sh -c "grep '\"access.policy_reject\"' '$TMP/audit.jsonl' | grep -q 'unknown attribute or name'"

printf 'version 1\nrole r customers.reed\n' >"$D/access.policy"
env CUSTODIA_SERVER_PORT="$(free_port)" "$BIN" serve --dir "$D" 2>"$TMP/bad.log"
check_eq "a server does not start on a bad policy (a configuration error)" 2 $?
check "and names the file, line and column" \
    grep -q "\[access\] policy: $D/access.policy:2:8: unknown permission 'customers.reed'" "$TMP/bad.log"
env CUSTODIA_SERVER_PORT="$(free_port)" CUSTODIA_ACCESS_POLICY="$TMP/elsewhere.policy" \
    "$BIN" serve --dir "$D" 2>"$TMP/missing.log"
check_eq "a configured policy that is missing stops the start" 2 $?
check "and is named" grep -q "elsewhere.policy: cannot read the file" "$TMP/missing.log"
check "and is not invented" test ! -e "$TMP/elsewhere.policy"
finish
