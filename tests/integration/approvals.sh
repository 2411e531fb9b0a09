#!/bin/sh
# Four-eyes approval: an action the policy marks 'approve' is held as a pending request bound
# to the exact action; other staff members holding the permission, signed in with a second
# factor, approve it (the requester never), and custodia runs it itself, once, as the
# requester, keeping its answer for the requester; a rejection or a cancellation ends it; a
# request for another body is another request; two approvals racing run it once.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/access.policy" <<'POLICY'
version 1
approve apikeys.write by 1 within 10m
approve customers.erase by 2 within 1h
POLICY
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

# staff: ann asks, bob, cat and dan approve (dan lacks customers.erase), eve holds neither
mk() {
    req POST /v1/staff -H "$AUTH" -H "$JSONH" --data \
        "{\"email\": \"$1@example.com\", \"name\": \"$1\", \"scopes\": $2}"
    ID=$(json "j['id']")
    staff_signin "$ID" "$1@example.com" 'velvet tunnel harbor 64' || exit 1
}
mk ann '["apikeys.write", "apikeys.read", "metrics.read"]'; ANN="$STOK"
mk bob '["apikeys.write", "customers.erase"]'; BOB="$STOK"; BOB_ID=$ID
mk cat '["apikeys.write", "customers.erase"]'; CAT="$STOK"
mk dan '["apikeys.write"]'; DAN="$STOK"
mk eve '["customers.read"]'; EVE="$STOK"

req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "billing", "scopes": ["metrics.read"]}'
check_eq "an action that needs approval is not run: it waits" "202 pending" \
    "$STATUS $(json "j['status']")"
A1=$(json "j['id']")
check "its answer says where it waits" sh -c "grep -qi '^location: /v1/approvals/$A1' '$TMP/headers'"
check_eq "how many must approve, for which permission, and who asked" "1 apikeys.write apikey" \
    "$(json "j['needed']") $(json "j['permission']") $(json "j['requester']['kind']")"
req GET /v1/apikeys -H "$AUTH"
check_eq "nothing was made meanwhile" 1 "$(json "len(j['items'])")"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "billing", "scopes": ["metrics.read"]}'
check_eq "the same request again is refused while one is pending" 409 "$STATUS"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "billing2", "scopes": ["metrics.read"]}'
check_eq "another body is another request" 202 "$STATUS"
A2=$(json "j['id']")
req POST "/v1/apikeys?note=%ff" -H "$AUTH" -H "$JSONH" --data '{"name": "billing3", "scopes": ["metrics.read"]}'
check_eq "an action whose query is not UTF-8 is not held (it could not be run as asked)" 400 "$STATUS"
check "saying so" contains "$TMP/body" "must be UTF-8"

req POST "/v1/approvals/$A1/approve" -H "$AUTH"
check_eq "an API key cannot approve" 403 "$STATUS"
req GET "/v1/approvals/$A1" -H "$EVE"
check_eq "one who could not approve it does not see it" 404 "$STATUS"
req POST "/v1/approvals/$A1/approve" -H "$EVE"
check_eq "nor approve it" 404 "$STATUS"
req GET "/v1/approvals/$A1" -H "$BOB"
check_eq "an approver sees the exact action" "200 billing" "$STATUS $(json "j['action']['body']['name']")"
req GET "/v1/approvals?status=pending" -H "$BOB"
check_eq "and lists what waits" 2 "$(json "len(j['items'])")"

req POST "/v1/approvals/$A1/approve" -H "$BOB"
check_eq "one approval of the one needed runs it" "200 executed 201" \
    "$STATUS $(json "j['status']") $(json "j['result']['status']")"
req POST "/v1/approvals/$A1/approve" -H "$CAT"
check_eq "a request that ran takes no more votes" 409 "$STATUS"
check "saying so" contains "$TMP/body" "the request is executed"
req GET "/v1/approvals/$A1/result" -H "$BOB"
check_eq "the answer is the requester's alone" 403 "$STATUS"
req GET "/v1/approvals/$A1/result" -H "$AUTH"
check_eq "the requester gets the action's answer" "200 201 billing" \
    "$STATUS $(json "j['status']") $(json "j['body']['name']")"
NEWKEY=$(json "j['body']['key']")
req GET /metrics -H "Authorization: Bearer $NEWKEY"
check_eq "and the key it made works" 200 "$STATUS"
req GET "/v1/approvals/$A1/result" -H "$AUTH"
check_eq "the answer is given once" 404 "$STATUS"
req GET /v1/apikeys -H "$AUTH"
check_eq "the action ran once" 1 "$(json "len([k for k in j['items'] if k['name'] == 'billing'])")"

# the requester never approves their own; a cancelled request never runs
req POST /v1/apikeys -H "$ANN" -H "$JSONH" --data '{"name": "anns", "scopes": ["metrics.read"]}'
check_eq "a staff member's request waits too" 202 "$STATUS"
A3=$(json "j['id']")
req POST "/v1/approvals/$A3/approve" -H "$ANN"
check_eq "the requester cannot approve it" 403 "$STATUS"
req POST "/v1/approvals/$A3/cancel" -H "$BOB"
check_eq "only the requester may cancel" 403 "$STATUS"
req POST "/v1/approvals/$A3/cancel" -H "$ANN"
check_eq "the requester cancels" "200 cancelled" "$STATUS $(json "j['status']")"
req POST "/v1/approvals/$A3/approve" -H "$BOB"
check_eq "a cancelled request takes no vote" 409 "$STATUS"

# a key made through approval by a key belongs to that key's owner, as one made directly would
req GET /v1/staff -H "$AUTH"
ANN_ID=$(json "[s['id'] for s in j['items'] if s['email'] == 'ann@example.com'][0]")
req POST /v1/apikeys -H "$ANN" -H "$JSONH" --data \
    '{"name": "anns-maker", "scopes": ["apikeys.write", "metrics.read"], "networks": ["127.0.0.0/8"]}'
AK1=$(json "j['id']")
req POST "/v1/approvals/$AK1/approve" -H "$BOB"
req GET "/v1/approvals/$AK1/result" -H "$ANN"
check_eq "a staff member's key is made on approval, owned by them" "201 $ANN_ID" \
    "$(json "j['status']") $(json "j['body']['owner']")"
ANNKEY="Authorization: Bearer $(json "j['body']['key']")"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "peek", "scopes": ["metrics.read"]}'
AP=$(json "j['id']")
req GET "/v1/approvals/$AP" -H "$ANNKEY"
check_eq "another's key holding the permission sees the request, not its action" "200 null" \
    "$STATUS $(json "json.dumps(j['action'])")"
req GET "/v1/approvals/$AP" -H "$AUTH"
check_eq "which its requester sees" "peek" "$(json "j['action']['body']['name']")"
req POST "/v1/approvals/$AP/cancel" -H "$AUTH"
req POST /v1/apikeys -H "$ANNKEY" -H "$JSONH" --data '{"name": "anns-child", "scopes": ["metrics.read"]}'
check_eq "the key's own request names its owner" "202 $ANN_ID" \
    "$STATUS $(json "j['requester']['owner']")"
AK2=$(json "j['id']")
req POST "/v1/approvals/$AK2/approve" -H "$ANN"
check_eq "whom it cannot approve" 403 "$STATUS"
req POST "/v1/approvals/$AK2/approve" -H "$BOB"
req GET "/v1/approvals/$AK2/result" -H "$ANNKEY"
check_eq "the key it makes on approval has the same owner and allow-list" \
    "201 $ANN_ID ['127.0.0.0/8']" \
    "$(json "j['status']") $(json "j['body']['owner']") $(json "j['body']['networks']")"
CHILD="Authorization: Bearer $(json "j['body']['key']")"
req GET /metrics -H "$CHILD"
check_eq "and works" 200 "$STATUS"

# it runs as the requester stands when approved: one disabled meanwhile gets nothing done
req POST /v1/apikeys -H "$ANN" -H "$JSONH" --data '{"name": "anns2", "scopes": ["metrics.read"]}'
A7=$(json "j['id']")
req PATCH "/v1/staff/$ANN_ID" -H "$AUTH" -H "$JSONH" --data '{"status": "disabled"}'
req GET /metrics -H "$CHILD"
check_eq "the key made on approval stops with its owner" 401 "$STATUS"
req POST "/v1/approvals/$A7/approve" -H "$BOB"
check_eq "a request of one disabled since fails when approved" "200 failed 403" \
    "$STATUS $(json "j['status']") $(json "j['result']['status']")"
check "saying why" contains "$TMP/body" "the action was not run: the staff member is disabled"
req GET /v1/apikeys -H "$AUTH"
check_eq "and nothing was made" 0 "$(json "len([k for k in j['items'] if k['name'] == 'anns2'])")"

# a rejection ends it
req POST "/v1/approvals/$A2/reject" -H "$DAN"
check_eq "one rejection ends a request" "200 rejected" "$STATUS $(json "j['status']")"
req POST "/v1/approvals/$A2/approve" -H "$BOB"
check_eq "and it never runs" 409 "$STATUS"
req GET "/v1/approvals/$A2" -H "$BOB"
check_eq "nor is its action kept" "null" "$(json "json.dumps(j['action'])")"

# two approvers, each counted once; the erasure runs when the second approves
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Ada"}'
CID=$(json "j['id']")
req DELETE "/v1/customers/$CID" -H "$AUTH"
check_eq "an erasure waits for two approvals" "202 2" "$STATUS $(json "j['needed']")"
A4=$(json "j['id']")
req POST "/v1/approvals/$A4/approve" -H "$DAN"
check_eq "one without the permission cannot approve it" 404 "$STATUS"
req POST "/v1/approvals/$A4/approve" -H "$BOB"
check_eq "the first approval is counted" "200 pending 1" \
    "$STATUS $(json "j['status']") $(json "j['approvals']")"
req POST "/v1/approvals/$A4/approve" -H "$BOB"
check_eq "the same approver twice is refused" 409 "$STATUS"
check "saying so" contains "$TMP/body" "voted on this request already"
req GET "/v1/customers/$CID" -H "$AUTH"
check_eq "the customer is still there" 200 "$STATUS"
req POST "/v1/approvals/$A4/approve" -H "$CAT"
check_eq "the second runs the erasure" "200 executed" "$STATUS $(json "j['status']")"
check_eq "with both approvers recorded" "2 $BOB_ID" "$(json "j['approvals']") $(json "j['votes'][0]['staff_id']")"
req GET "/v1/customers/$CID" -H "$AUTH"
check_eq "and the customer is erased" "erased" "$(json "j.get('status', 'gone')")"

# two approvals racing: the action runs once
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "raced", "scopes": ["metrics.read"]}'
A5=$(json "j['id']")
curl -s -o /dev/null -w '%{http_code}\n' --cacert "$CA" -X POST -H "$BOB" \
    "$URL/v1/approvals/$A5/approve" >"$TMP/race1" &
R1=$!
curl -s -o /dev/null -w '%{http_code}\n' --cacert "$CA" -X POST -H "$CAT" \
    "$URL/v1/approvals/$A5/approve" >"$TMP/race2" &
R2=$!
wait $R1 $R2
check_eq "of two racing approvals one runs it and one is refused" "200 409" \
    "$(sort "$TMP/race1" "$TMP/race2" | tr '\n' ' ' | sed 's/ $//')"
req GET /v1/apikeys -H "$AUTH"
check_eq "and the key is made once" 1 "$(json "len([k for k in j['items'] if k['name'] == 'raced'])")"

# a request not approved in time never runs: its time is moved into the past by hand (the
# shortest a policy allows is a minute)
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "late", "scopes": ["metrics.read"]}'
A6=$(json "j['id']")
tamper "$D" \
    "UPDATE approvals SET expires_at = expires_at - 600000 WHERE id = '$A6'"
req POST "/v1/approvals/$A6/approve" -H "$BOB"
check_eq "an approval after the request's time is refused" 409 "$STATUS"
check "saying it expired" contains "$TMP/body" "the request has expired; it will never run"
i=0
while [ $i -lt 80 ]; do
    req GET "/v1/approvals/$A6" -H "$BOB"
    [ "$(json "j['status']")" = expired ] && break
    sleep 0.1
    i=$((i + 1))
done
check_eq "the server marks it expired within seconds" "expired null" \
    "$(json "j['status']") $(json "json.dumps(j['action'])")"
req GET /v1/apikeys -H "$AUTH"
check_eq "and it never ran" 0 "$(json "len([k for k in j['items'] if k['name'] == 'late'])")"

# from the shell: list, show, and the operator's veto
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "vetoed", "scopes": ["metrics.read"]}'
A8=$(json "j['id']")
db_dump "$D" "$TMP/db.bytes"
check "a pending action's body is not kept in the clear" absent -aF "vetoed" "$TMP/db.bytes"
"$BIN" approvals list --dir "$D" --status pending >"$TMP/cli.out" 2>"$TMP/cli.err"
check_eq "the CLI lists the pending requests" "0 1" "$? $(grep -c '^apr_' "$TMP/cli.out")"
check "with their permission and path" grep -q "$A8 *pending *apikeys.write *POST *\/v1\/apikeys" \
    "$TMP/cli.out"
"$BIN" approvals show --dir "$D" "$A8" >"$TMP/cli.json" 2>"$TMP/cli.err"
check_eq "and shows one, with the action it would run" "0 vetoed" \
    "$? $(python3 -c "import json; print(json.load(open('$TMP/cli.json'))['action']['body']['name'])")"
"$BIN" approvals reject --dir "$D" "$A8" >/dev/null 2>"$TMP/cli.err"
check_eq "the operator rejects a pending request" 0 "$?"
req POST "/v1/approvals/$A8/approve" -H "$BOB"
check_eq "which then never runs" 409 "$STATUS"
"$BIN" approvals reject --dir "$D" "$A8" >/dev/null 2>"$TMP/cli.err"
check_eq "rejecting it again fails" 1 "$?"
check "saying why" contains "$TMP/cli.err" "only a pending request can be rejected"
"$BIN" approvals list --dir "$D" --status maybe >/dev/null 2>&1
check_eq "an unknown status is misuse" 2 "$?"

# an answer left unread is dropped after 7 days (the run's time moved back by hand, and the
# server restarted: it drops them at start, then hourly)
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "unread", "scopes": ["metrics.read"]}'
A9=$(json "j['id']")
req POST "/v1/approvals/$A9/approve" -H "$BOB"
check_eq "a run whose answer nobody reads" "200 True" "$STATUS $(json "j['result']['waiting']")"
stop_server
tamper "$D" \
    "UPDATE approvals SET decided_at = decided_at - 8 * 86400000 WHERE id = '$A9'"
start_server "$D" || exit 1
i=0
while [ $i -lt 80 ]; do
    req GET "/v1/approvals/$A9" -H "$AUTH"
    [ "$(json "j['result']['waiting']")" = False ] && break
    sleep 0.1
    i=$((i + 1))
done
check_eq "is dropped with its key once past its time" False "$(json "j['result']['waiting']")"
req GET "/v1/approvals/$A9/result" -H "$AUTH"
check_eq "and the requester gets nothing" 404 "$STATUS"

# an earlier approval counts only while its approver may still approve
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Cy"}'
CID2=$(json "j['id']")
req DELETE "/v1/customers/$CID2" -H "$AUTH"
A10=$(json "j['id']")
req POST "/v1/approvals/$A10/approve" -H "$BOB"
req PATCH "/v1/staff/$BOB_ID" -H "$AUTH" -H "$JSONH" --data '{"scopes": ["apikeys.write"]}'
check_eq "an approver loses the permission" 200 "$STATUS"
req POST "/v1/approvals/$A10/approve" -H "$CAT"
check_eq "then the second approval does not run it: the first no longer counts" "200 pending" \
    "$STATUS $(json "j['status']")"
req GET /v1/staff -H "$AUTH"
DAN_ID=$(json "[s['id'] for s in j['items'] if s['email'] == 'dan@example.com'][0]")
req PATCH "/v1/staff/$DAN_ID" -H "$AUTH" -H "$JSONH" --data '{"scopes": ["apikeys.write", "customers.erase"]}'
req POST "/v1/approvals/$A10/approve" -H "$DAN"
check_eq "a third who holds it does" "200 executed" "$STATUS $(json "j['status']")"

# every step is in the audit log
"$BIN" audit export --dir "$D" >"$TMP/audit.jsonl" 2>/dev/null
for action in approval.request approval.approve approval.reject approval.cancel approval.executed \
    approval.result approval.expired approval.results_dropped; do
    check "the audit log has $action" contains "$TMP/audit.jsonl" "\"$action\""
done
stop_server
finish
