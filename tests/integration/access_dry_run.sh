#!/bin/sh
# A dry-run policy beside the live one ([access] dry_run_policy): every route is decided by
# both, each difference is logged and counted, and nothing changes; it is followed while the
# server runs like the live one, and a bad one stops the start. And a reload of the live policy
# under load changes decisions with no request failing.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

printf 'version 1\nforbid customers.read when no such thing\n' >"$D/dry.policy"
env CUSTODIA_ACCESS_DRY_RUN_POLICY=dry.policy "$BIN" serve --dir "$D" >/dev/null 2>"$TMP/bad.log"
check_eq "a dry-run policy that does not parse stops the start" 2 "$?"
check "naming the file, line and column" contains "$TMP/bad.log" "dry.policy:2:28: unknown attribute"

printf 'version 1\nforbid customers.read to apikey\n' >"$D/dry.policy"
start_server "$D" CUSTODIA_ACCESS_DRY_RUN_POLICY=dry.policy || exit 1
check "the dry-run policy is loaded beside the live one" contains "$LOG" '"access.dry_run_policy_loaded"'
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Ada"}'
CID=$(json "j['id']")
req GET "/v1/customers/$CID" -H "$AUTH"
check_eq "the live policy decides: the read is allowed" 200 "$STATUS"
check "and the difference is logged" wait_for \
    '"access.dry_run_difference".*"permission":"customers.read","live":"allow","dry_run":"deny"'
check "with the dry run's reason" wait_for '"why":"customers.read denied by forbid at dry.policy:2"'
req GET /metrics -H "$AUTH"
check "and counted as stricter" contains "$TMP/body" \
    'custodia_access_dry_run_differences_total{kind="stricter"} 1'
check "while the same decisions are not differences" grep -q \
    'custodia_access_dry_run_differences_total{kind="looser"} 0' "$TMP/body"

req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "metrics", "scopes": ["metrics.read"]}'
MK="Authorization: Bearer $(json "j['key']")"
MKID=$(json "j['id']")
printf 'version 1\ngrant admin to apikey:%s\n' "$MKID" >"$D/dry.policy.new"
mv "$D/dry.policy.new" "$D/dry.policy"
check "a new dry-run policy is taken while running" wait_for \
    '"access.dry_run_policy_loaded".*"sha256":"'"$(sha256sum "$D/dry.policy" | cut -d' ' -f1)"
req GET "/v1/customers/$CID" -H "$MK"
check_eq "what it would allow stays denied" 403 "$STATUS"
req GET /metrics -H "$AUTH"
check "and is counted as looser" contains "$TMP/body" \
    'custodia_access_dry_run_differences_total{kind="looser"} 1'
check "nothing of a dry run is audited as a decision" sh -c \
    "\"$BIN\" audit export --dir \"$D\" | grep -c '\"access.denied\"' | grep -qx 1"

# The live policy reloaded under load: four clients read on while it changes; every answer is
# 200 before and 403 after, none fails.
load() {
    end=$(($(date +%s) + $2))
    while [ "$(date +%s)" -lt "$end" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --cacert "$CA" -H "$AUTH" "$URL/v1/customers/$CID"
    done >"$TMP/load.$1"
}
LOADERS=""
for n in 1 2 3 4; do
    load $n 7 &
    LOADERS="$LOADERS $!"
done
sleep 2
KID=$("$BIN" apikey list --dir "$D" 2>/dev/null | awk '/initial-admin/ {print $1; exit}')
printf 'version 1\nforbid customers.read to apikey:%s\n' "$KID" >"$D/access.policy.new"
policy_now "$D"
wait $LOADERS
cat "$TMP"/load.* >"$TMP/load.all"
check "the clients made many requests" sh -c "[ \$(wc -l <'$TMP/load.all') -gt 100 ]"
check "every answer was 200 or 403" sh -c "! grep -qv '^\\(200\\|403\\)\$' '$TMP/load.all'"
check "both were seen" sh -c "grep -qx 200 '$TMP/load.all' && grep -qx 403 '$TMP/load.all'"
for n in 1 2 3 4; do
    check "client $n saw the change once, from 200 to 403" sh -c \
        "uniq '$TMP/load.$n' | tr '\\n' ' ' | grep -qx '200 403 '"
done
stop_server
finish
