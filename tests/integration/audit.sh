#!/bin/sh
# The audit log through the real server: what gets recorded (init, start, configuration,
# changes, failed sign-ins, denials, reads of the log), signed checkpoints that Go's reference
# transparency-log code accepts, proofs that an independent verifier accepts, fail-closed
# behaviour when the log cannot be written, and the CLI's verify, export, tail and hash.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" CUSTODIA_AUDIT_CHECKPOINT_SECONDS=1 CUSTODIA_SERVER_AUTH_FAILURES_PER_MINUTE=4 || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

# Some activity: a change, a failed sign-in, a denial, a revocation.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "reader", "scopes": ["metrics.read"]}'
READER=$(json "j['key']")
RID=$(json "j['id']")
req GET /metrics -H "Authorization: Bearer cuk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
req GET /v1/apikeys -H "Authorization: Bearer $READER"
check_eq "a denial is still 403" 403 "$STATUS"
req DELETE "/v1/apikeys/$RID" -H "$AUTH"

req GET "/v1/audit?limit=100" -H "$AUTH"
check_eq "the audit log reads" 200 "$STATUS"
actions=$(json "' '.join(sorted(set(i['action'] for i in j['items'])))")
for a in system.init apikey.create config.loaded system.start auth.failed access.denied apikey.revoke; do
    check "the log has $a" sh -c "echo '$actions' | grep -qw '$a'"
done
check "records never hold a key" absent cuk_ "$TMP/body"
check "client addresses are hashed" test "$(json "all(i['source'].startswith('hk:') or i['source'] == '' for i in j['items'])")" = True
check_eq "the change names its actor" "apikey" \
    "$(json "[i for i in j['items'] if i['action'] == 'apikey.revoke'][0]['actor']['type']")"
check_eq "newest first" True "$(json "j['items'][0]['seq'] > j['items'][-1]['seq']")"
req GET "/v1/audit?action=apikey.create&limit=1" -H "$AUTH"
check_eq "filter by action" "apikey.create" "$(json "j['items'][0]['action']")"
check_eq "a cursor to the next page" True "$(json "j['next_before'] is not None")"
req GET "/v1/audit?since=yesterday" -H "$AUTH"
check_eq "a bad time is 400" 400 "$STATUS"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "metrics", "scopes": ["metrics.read"]}'
req GET "/v1/audit" -H "Authorization: Bearer $(json "j['key']")"
check_eq "reading the log needs audit.read" 403 "$STATUS"

# Checkpoints: signed, accepted by Go's golang.org/x/mod/sumdb/note and tlog.
sleep 2.2
req GET /v1/audit/checkpoints/latest -H "$AUTH"
check_eq "latest checkpoint" 200 "$STATUS"
json "j['note']" | head -c -1 >"$TMP/note"
SIZE=$(json "j['tree_size']")
req GET /v1/audit/public-key -H "$AUTH"
json "j['verifier_key']" >"$TMP/vkey"
check_eq "the key is ed25519" ed25519 "$(json "j['algorithm']")"
sh "$SRC/tests/interop/note_interop.sh" "$TMP/vkey" "$TMP/note" >"$TMP/go.out" 2>&1
check_eq "Go's signed-note verifier accepts the checkpoint" 0 $?
check "Go reads the same tree size" sh -c "sed -n 2p '$TMP/go.out' | grep -qx '$SIZE'"
python3 -c "
import sys
lines = open('$TMP/note').read().split('\n')
lines[1] = str(int(lines[1]) + 1)
open('$TMP/note.bad', 'w').write('\n'.join(lines))"
sh "$SRC/tests/interop/note_interop.sh" "$TMP/vkey" "$TMP/note.bad" >/dev/null 2>&1
check_eq "Go rejects the checkpoint with its size changed" 1 $?

# Proofs, checked by an independent verifier.
req GET "/v1/audit/3/proof?checkpoint=$SIZE" -H "$AUTH"
check_eq "inclusion proof" 200 "$STATUS"
cp "$TMP/body" "$TMP/proof.json"
check "the inclusion proof holds (independent verifier)" python3 "$SRC/tests/integration/prooftool.py" inclusion "$TMP/proof.json"
python3 -c "import json; p=json.load(open('$TMP/proof.json')); p['leaf_index'] += 1; json.dump(p, open('$TMP/bad.json','w'))"
# prooftool exits 1 for a proof that does not hold, 2 when it cannot check: only 1 passes.
python3 "$SRC/tests/integration/prooftool.py" inclusion "$TMP/bad.json" >"$TMP/bad.out" 2>&1
check_eq "a moved leaf does not" 1 $?
req GET "/v1/audit?before=4&limit=1" -H "$AUTH"
json "j['items'][0]" >/dev/null
python3 -c "import json; json.dump(json.load(open('$TMP/body'))['items'][0], open('$TMP/rec.json','w'))"
check "the proof's leaf is record 3's hash" python3 "$SRC/tests/integration/prooftool.py" record "$TMP/rec.json" "$TMP/proof.json"
FIRST=$("$DBQ" "$D" "SELECT min(tree_size) FROM audit_checkpoints")
req GET "/v1/audit/consistency?from=$FIRST&to=$SIZE" -H "$AUTH"
check_eq "consistency proof" 200 "$STATUS"
check "the consistency proof holds" python3 "$SRC/tests/integration/prooftool.py" consistency "$TMP/body"
req GET "/v1/audit/3/proof?checkpoint=999999" -H "$AUTH"
check_eq "a proof against a missing checkpoint is 404" 404 "$STATUS"
req GET "/v1/audit/0/proof?checkpoint=$SIZE" -H "$AUTH"
check_eq "record 0 is 400" 400 "$STATUS"

# Fail closed: when the audit log cannot be written, a change is refused and not made.
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Ottoline", "email": "ottoline@example.com"}'
CID=$(json "j['id']")
tamper "$D" "CREATE TRIGGER fault BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'injected fault'); END;" \
    "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'injected fault'; END \$\$; CREATE TRIGGER fault BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION fault()"
before=$("$DBQ" "$D" "SELECT count(*) FROM api_keys")
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "during fault", "scopes": ["metrics.read"]}'
check_eq "a change whose audit fails is refused" 503 "$STATUS"
check_eq "with the audit problem type" "urn:custodia:problem:audit_unavailable" "$(json "j['type']")"
check_eq "and nothing was changed" "$before" "$("$DBQ" "$D" "SELECT count(*) FROM api_keys")"
req GET /v1/apikeys -H "$AUTH"
check_eq "a read whose audit record fails is refused too" 503 "$STATUS"
check_eq "with the audit problem type as well" "urn:custodia:problem:audit_unavailable" "$(json "j['type']")"
# Customer reads wait for their record on a suspended connection; its failure reaches them.
req GET "/v1/customers/$CID" -H "$AUTH"
check_eq "a customer read whose audit record fails is refused" 503 "$STATUS"
check_eq "with the audit problem type" "urn:custodia:problem:audit_unavailable" "$(json "j['type']")"
check "and the customer's data is not in the answer" absent -i -e ottoline -e 'o\*\*\*@' "$TMP/body"
req GET "/v1/customers?email=ottoline@example.com" -H "$AUTH"
check_eq "a search whose audit record fails is refused" 503 "$STATUS"
check "and finds nothing for the client" absent -F "$CID" "$TMP/body"
req GET "/v1/customers" -H "$AUTH"
check_eq "a list whose audit record fails is refused" 503 "$STATUS"
check "and lists nothing for the client" absent -F "$CID" "$TMP/body"
req GET /v1/health
check_eq "health reports the audit log failing" 503 "$STATUS"
check_eq "health names the audit" failing "$(json "j['audit']")"
tamper "$D" "DROP TRIGGER fault" "DROP TRIGGER fault ON audit_log"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "after fault", "scopes": ["metrics.read"]}'
check_eq "after the fault changes work again" 201 "$STATUS"
req GET "/v1/customers/$CID" -H "$AUTH"
check_eq "and customer reads answer again" "Ottoline" "$(json "j['given_name']")"
req GET /v1/health
check_eq "and health recovers" 200 "$STATUS"

# Failed authentications past the per-minute limit get 429 and are not written one by one.
before=$("$DBQ" "$D" "SELECT count(*) FROM audit_log WHERE action = 'auth.failed'")
codes=""
for i in 1 2 3 4 5 6; do
    req GET /metrics -H "Authorization: Bearer cuk_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
    codes="$codes $STATUS"
done
check_eq "the limit answers 429 past 4 failures a minute" " 401 401 401 429 429 429" "$codes"
check_eq "with Retry-After" 60 "$(header Retry-After)"
after=$("$DBQ" "$D" "SELECT count(*) FROM audit_log WHERE action = 'auth.failed'")
check_eq "only the failures within the limit are records" 3 "$((after - before))"
req GET /metrics -H "$AUTH"
check_eq "a good key from the same address still works" 200 "$STATUS"

stop_server
check_eq "serve exits 0" 0 "$STOP_STATUS"
"$BIN" audit tail --dir "$D" -n 2 >"$TMP/tail.out" 2>&1
check "the stop is recorded" contains "$TMP/tail.out" '"action":"system.stop"'
"$BIN" audit verify --dir "$D" >"$TMP/verify.out" 2>&1
check_eq "the whole log verifies" 0 $?
check "verify says so" contains "$TMP/verify.out" "audit log intact"
"$BIN" audit export --dir "$D" --since 2000-01-01T00:00:00Z --format jsonl >"$TMP/export.jsonl"
check_eq "export writes every record as a JSON line" \
    "$("$DBQ" "$D" "SELECT count(*) FROM audit_log")" \
    "$(python3 -c "import json,sys; print(sum(1 for l in open('$TMP/export.jsonl') if json.loads(l)['seq']))")"
"$BIN" audit export --dir "$D" >"$TMP/export-all.jsonl" 2>/dev/null
check_eq "export without --since exits 0" 0 $?
check "and writes every record, as --since 2000 does" cmp -s "$TMP/export.jsonl" "$TMP/export-all.jsonl"
"$BIN" audit checkpoint --dir "$D" >"$TMP/cp.out" 2>&1
check "a checkpoint when everything is covered says so" contains "$TMP/cp.out" "already covers"
finish
