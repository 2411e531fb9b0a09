#!/bin/sh
# Monitoring over HTTPS: events posted to POST /v1/events decided by the default pack, with
# the decision, the rules that fired and their reasons in the answer; a burst of failed
# sign-ins locking the account on the fifth; the decision read back with what its rules read
# and the event as stored; the event, the decision and the audit record committed together;
# addresses kept as pseudonyms that still count by network; every bad input a 4xx naming the
# field; permissions; a rule file and a shadow set from [monitor], and a rule file that does
# not compile stopping the start with its line and column.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
now() { python3 -c "import datetime,sys; print((datetime.datetime.now(datetime.timezone.utc)+datetime.timedelta(seconds=int(sys.argv[1]))).strftime('%Y-%m-%dT%H:%M:%SZ'))" "${1:-0}"; }

T=$(now)
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"c000123\", \"ip\": \"81.2.69.160\", \"device\": \"d1\"}"
check_eq "an event is decided" "201 allow 0 []" \
    "$STATUS $(json "j['decision']") $(json "j['score']") $(json "j['rules']")"
FIRST=$(json "j['id']")
check "with the decision's id" sh -c "echo '$FIRST' | grep -Eq '^dec_[0-9a-f]{16}$'"
check "and where to read it" sh -c "grep -qi '^location: /v1/decisions/$FIRST' '$TMP/headers'"
check "and the engine's time" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert isinstance(j['took_us'], int) and 0 <= j['took_us'] < 1000000" "$TMP/body"

for i in 2 3 4; do
    req POST /v1/events -H "$AUTH" -H "$JSONH" \
        --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"c000123\", \"ip\": \"81.2.69.160\"}"
done
check_eq "the fourth failure alone locks nothing" "201 []" "$STATUS $(json "j['actions']")"
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"mfa_failed\", \"time\": \"$T\", \"customer\": \"c000123\", \"ip\": \"81.2.69.160\"}"
check_eq "the fifth (a second factor) locks sign-in for 15 minutes, with an alert" \
    "201 ['failed_sign_ins_per_account'] ['lock_login', 'alert'] 900 medium" \
    "$STATUS $(json "[r['name'] for r in j['rules']]") $(json "j['actions']") $(json "j['lock_seconds']") $(json "j['alert']")"
check "with the rule's reason" python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['rules'][0]['reason']" "$TMP/body"
LOCKED=$(json "j['id']")
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"c000999\"}"
check_eq "another customer's window is its own" "201 []" "$STATUS $(json "j['rules']")"

req GET "/v1/decisions/$LOCKED" -H "$AUTH"
check_eq "the decision is read back" "200 $LOCKED api c000123 mfa_failed ['failed_sign_ins_per_account']" \
    "$STATUS $(json "j['id']") $(json "j['source']") $(json "j['customer']") $(json "j['type']") $(json "[r['name'] for r in j['rules']]")"
check "with what its rule read: five failures of this customer" python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
assert list(j['reads'].values()) == [5], j['reads']
assert 'count(customer, 15m' in list(j['reads'])[0], j['reads']" "$TMP/body"
check_eq "and the event as stored" "mfa_failed c000123" "$(json "j['event']['type']") $(json "j['event']['customer']")"
PSEUDO=$(json "j['event']['ip']")
check "its address kept as a pseudonym, not as sent" sh -c "echo '$PSEUDO' | grep -Eq '^fd[0-9a-f]{2}:' && ! echo '$PSEUDO' | grep -q '81.2.69.160'"
req GET "/v1/decisions/dec_0000000000000000" -H "$AUTH"
check_eq "an unknown decision is 404 with its type" "404 urn:custodia:problem:unknown_decision" "$STATUS $(json "j['type']")"
req GET "/v1/decisions/nonsense" -H "$AUTH"
check_eq "so is a malformed id" 404 "$STATUS"

check_eq "each event is stored once, with its decision" "6 6" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE type IN ('login_failed', 'mfa_failed')") $("$DBQ" "$D" "SELECT COUNT(DISTINCT decision_id) FROM monitor_events")"
check_eq "the decision is kept with its event" "mfa_failed" \
    "$("$DBQ" "$D" "SELECT type FROM monitor_events WHERE decision_id = '$LOCKED'")"
check_eq "and has its audit record" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.decide' AND target = 'decision:$LOCKED'")"
check_eq "each read of a decision is audited" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.decision_read' AND target = 'decision:$LOCKED'")"
db_dump "$D" "$TMP/db.bytes"
check "the address sent is nowhere in the database" absent -aF '81.2.69.160' "$TMP/db.bytes"
check "nor the customer's reference in the audit log" sh -c "[ -z \"\$('$DBQ' '$D' \"SELECT seq FROM audit_log WHERE details LIKE '%c000123%'\")\" ]"

# Alerts: the decision that locked the account named `alert medium`: an alert opened with it
ALR="alr_${LOCKED#dec_}"
req GET "/v1/alerts?status=open" -H "$AUTH"
check_eq "the alert is in the open queue, with its decision, severity and rules" \
    "200 $LOCKED medium ['failed_sign_ins_per_account'] c000123" \
    "$STATUS $(json "[a for a in j['items'] if a['id'] == '$ALR'][0]['decision']") $(json "[a for a in j['items'] if a['id'] == '$ALR'][0]['severity']") $(json "[a for a in j['items'] if a['id'] == '$ALR'][0]['rules']") $(json "[a for a in j['items'] if a['id'] == '$ALR'][0]['customer']")"
req POST "/v1/alerts/$ALR/assign" -H "$AUTH" -H "$JSONH" --data '{"assignee": "stf_00000000000000aa"}'
check_eq "it is assigned" "200 assigned stf_00000000000000aa" "$STATUS $(json "j['status']") $(json "j['assignee']")"
req POST "/v1/alerts/$ALR/comments" -H "$AUTH" -H "$JSONH" --data '{"text": "called the customer: a forgotten password"}'
check_eq "commented" 200 "$STATUS"
req POST "/v1/alerts/$ALR/resolve" -H "$AUTH" -H "$JSONH" --data '{"resolution": "maybe"}'
check_eq "a resolution must be true_positive or false_positive" 400 "$STATUS"
req POST "/v1/alerts/$ALR/resolve" -H "$AUTH" -H "$JSONH" --data '{"resolution": "false_positive"}'
check_eq "and resolved as a false positive, the label kept" "200 resolved false_positive" \
    "$STATUS $(json "j['status']") $(json "j['resolution']")"
req POST "/v1/alerts/$ALR/assign" -H "$AUTH" -H "$JSONH" --data '{"assignee": "stf_00000000000000bb"}'
check_eq "a resolved alert changes no more" "409 urn:custodia:problem:alert_resolved" "$STATUS $(json "j['type']")"
req GET "/v1/alerts/$ALR" -H "$AUTH"
check_eq "read back with its comment and who wrote it" "1 a forgotten password apikey:" \
    "$(json "len(j['comments'])") $(json "j['comments'][0]['text'].split(': ')[1]") $(json "j['comments'][0]['author'].split(':')[0] + ':'")"
req GET "/v1/alerts?status=resolved" -H "$AUTH"
check_eq "the resolved queue has it" "True" "$(json "any(a['id'] == '$ALR' for a in j['items'])")"
req GET "/v1/alerts/alr_0000000000000000" -H "$AUTH"
check_eq "an unknown alert is 404" "404 urn:custodia:problem:unknown_alert" "$STATUS $(json "j['type']")"
req GET "/v1/alerts?limit=0" -H "$AUTH"
check_eq "a bad limit is 400" 400 "$STATUS"
check_eq "each change of an alert is audited" "1 1 1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'alert.assign' AND target = 'alert:$ALR'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'alert.comment' AND target = 'alert:$ALR'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'alert.resolve' AND target = 'alert:$ALR'")"
check "and the comment's text is not in the audit log" sh -c "[ -z \"\$('$DBQ' '$D' \"SELECT seq FROM audit_log WHERE details LIKE '%forgotten%'\")\" ]"

# A vault customer's events are kept under its id: one posted with its external_ref joins
# the windows of its internal events.
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "vera@example.com", "external_ref": "crm-4471"}'
VERA=$(json "j['id']")
req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"time\": \"$T\", \"customer\": \"crm-4471\"}"
req GET "/v1/decisions/$(json "j['id']")" -H "$AUTH"
check_eq "an event about a vault customer's external_ref is kept under the customer's id" "$VERA $VERA" \
    "$(json "j['customer']") $(json "j['event']['customer']")"
check "and the reference itself is not stored" sh -c "[ -z \"\$('$DBQ' '$D' \"SELECT seq FROM monitor_events WHERE body LIKE '%crm-4471%'\")\" ]"

# Pseudonyms keep networks: a spray over one /24 is counted as one network (20 addresses on
# 20 accounts in an hour holds).
i=1
while [ $i -le 20 ]; do
    req POST /v1/events -H "$AUTH" -H "$JSONH" \
        --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"s$i\", \"ip\": \"203.0.113.$i\"}"
    i=$((i + 1))
done
check_eq "twenty addresses of one network on twenty accounts are held" "201 hold ['password_spraying_one_block']" \
    "$STATUS $(json "j['decision']") $(json "[r['name'] for r in j['rules']]")"
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"s99\", \"ip\": \"198.51.100.7\"}"
check_eq "an address of another network is not" "201 allow" "$STATUS $(json "j['decision']")"

# Bad input: each a 4xx naming what is wrong, and nothing stored.
before=$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events")
bad() {
    want=$1
    what=$2
    shift 2
    req POST /v1/events -H "$AUTH" "$@"
    check_eq "$what" "$want" "$STATUS"
}
bad 400 "an unknown field is refused" -H "$JSONH" --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"c1\", \"colour\": \"red\"}"
check "naming it" grep -q "colour" "$TMP/body"
bad 400 "an unknown type" -H "$JSONH" --data "{\"type\": \"teleport\", \"time\": \"$T\", \"customer\": \"c1\"}"
bad 400 "an amount without its currency" -H "$JSONH" --data "{\"type\": \"transfer\", \"time\": \"$T\", \"customer\": \"c1\", \"amount\": 100}"
bad 400 "a fractional amount" -H "$JSONH" --data "{\"type\": \"transfer\", \"time\": \"$T\", \"customer\": \"c1\", \"amount\": 1.5, \"currency\": \"EUR\"}"
bad 400 "no customer" -H "$JSONH" --data "{\"type\": \"login_failed\", \"time\": \"$T\"}"
bad 400 "a time an hour ahead" -H "$JSONH" --data "{\"type\": \"login_failed\", \"time\": \"$(now 3600)\", \"customer\": \"c1\"}"
check "saying how far ahead a time may be" grep -q "300 seconds ahead" "$TMP/body"
bad 400 "a time 31 days back" -H "$JSONH" --data "{\"type\": \"login_failed\", \"time\": \"$(now -2678400)\", \"customer\": \"c1\"}"
check "pointing to the replay for older events" grep -q "rules test" "$TMP/body"
big=$(python3 -c "print('x' * 9000)")
bad 413 "an event over 8 KiB" -H "$JSONH" --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"c1\", \"device\": \"$big\"}"
bad 415 "a body that is not JSON" -H 'Content-Type: text/plain' --data "{}"
bad 400 "malformed JSON" -H "$JSONH" --data "{\"type\": "
bad 400 "an empty body" -H "$JSONH"
check_eq "and nothing of them stored" "$before" "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events")"
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"login_failed\", \"time\": \"$(now 200)\", \"customer\": \"c1\"}"
check_eq "a time a little ahead (a fast clock) is taken" 201 "$STATUS"

# Permissions: events.write posts, decisions.read reads; neither gives the other.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "poster", "scopes": ["events.write"]}'
POSTER="Authorization: Bearer $(json "j['key']")"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "reader", "scopes": ["decisions.read"]}'
READER="Authorization: Bearer $(json "j['key']")"
req POST /v1/events -H "$POSTER" -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"time\": \"$T\", \"customer\": \"c2\"}"
check_eq "a key with events.write posts" 201 "$STATUS"
ID=$(json "j['id']")
req GET "/v1/decisions/$ID" -H "$POSTER"
check_eq "but does not read decisions" 403 "$STATUS"
req GET "/v1/decisions/$ID" -H "$READER"
check_eq "a key with decisions.read does" 200 "$STATUS"
req GET /v1/alerts -H "$POSTER"
check_eq "nor alerts" 403 "$STATUS"
req POST /v1/events -H "$READER" -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"time\": \"$T\", \"customer\": \"c2\"}"
check_eq "and posts none" 403 "$STATUS"
req POST /v1/events -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"time\": \"$T\", \"customer\": \"c2\"}"
check_eq "without a key: 401" 401 "$STATUS"
stop_server

# A rule file of the company's and a shadow set, from [monitor].
cat >"$D/mine.rules" <<'EOF'
list blocked_networks = ["198.51.100.0/24"]

rule from_blocked_network
  when event.ip in blocked_networks
  then deny, reason "an address of a blocked network"

rule big_payment
  when event.type == "transfer" and event.amount >= 100000
  then score 95, reason "a payment of 1,000.00 or more"
EOF
cat >"$D/shadow.rules" <<'EOF'
rule every_payment
  when event.type == "transfer"
  then score 50, reason "every payment, in shadow"
EOF
start_server "$D" CUSTODIA_MONITOR_RULES=mine.rules CUSTODIA_MONITOR_SHADOW_RULES=shadow.rules \
    CUSTODIA_MONITOR_EVENT_TYPES="card_added gift_card" || exit 1
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"transfer\", \"time\": \"$T\", \"customer\": \"c3\", \"amount\": 150000, \"currency\": \"EUR\"}"
check_eq "the configured rule set decides" "201 deny ['big_payment']" \
    "$STATUS $(json "j['decision']") $(json "[r['name'] for r in j['rules']]")"
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"transfer\", \"time\": \"$T\", \"customer\": \"c3\", \"amount\": 500, \"currency\": \"EUR\"}"
check_eq "a small payment passes: the shadow set changes nothing" "201 allow" "$STATUS $(json "j['decision']")"
req GET "/v1/decisions/$(json "j['id']")" -H "$AUTH"
check_eq "but its decision is kept beside the live one" "step_up ['every_payment']" \
    "$(json "j['shadow']['decision']") $(json "[r['name'] for r in j['shadow']['rules']]")"
req POST /v1/events -H "$AUTH" -H "$JSONH" \
    --data "{\"type\": \"login_succeeded\", \"time\": \"$T\", \"customer\": \"c4\", \"ip\": \"198.51.100.20\"}"
check_eq "a list of networks matches the address sent, not its pseudonym" "201 deny ['from_blocked_network']" \
    "$STATUS $(json "j['decision']") $(json "[r['name'] for r in j['rules']]")"
req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"gift_card\", \"time\": \"$T\", \"customer\": \"c3\"}"
check_eq "a custom event type of [monitor] event_types is taken" 201 "$STATUS"
# an Idempotency-Key: a retry gets the first decision, counted once; another event under it, 409
EV="{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"c-idem\"}"
req POST /v1/events -H "$AUTH" -H "$JSONH" -H 'Idempotency-Key: ev-0001' --data "$EV"
check_eq "an event with an Idempotency-Key" 201 "$STATUS"
FIRST=$(json "j['id']")
FIRST_BODY=$(cat "$TMP/body")
req POST /v1/events -H "$AUTH" -H "$JSONH" -H 'Idempotency-Key: ev-0001' \
    --data "{\"customer\": \"c-idem\", \"time\": \"$T\", \"type\": \"login_failed\"}"
check_eq "its retry (the same event, written otherwise) answers the first decision" "201 $FIRST true" \
    "$STATUS $(json "j['id']") $(header idempotent-replayed)"
check_eq "word for word" "$FIRST_BODY" "$(cat "$TMP/body")"
check_eq "and is decided and stored once" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = 'c-idem'")"
req POST /v1/events -H "$AUTH" -H "$JSONH" -H 'Idempotency-Key: ev-0001' \
    --data "{\"type\": \"login_failed\", \"time\": \"$T\", \"customer\": \"c-other\"}"
check_eq "another event under the key is refused" "409 urn:custodia:problem:idempotency_key_reused" \
    "$STATUS $(json "j['type']")"
req POST /v1/events -H "$AUTH" -H "$JSONH" -H 'Idempotency-Key: has space' --data "$EV"
check_eq "a key with a space" 400 "$STATUS"

req GET /metrics -H "$AUTH"
check "the shadow's differences are counted (the two payments and the blocked address)" grep -q '^custodia_monitor_shadow_differences_total 3$' "$TMP/body"
check "the state's size is exported" grep -Eq '^custodia_monitor_state_keys [1-9]' "$TMP/body"
check "and the decisions by kind" grep -q '^custodia_monitor_decisions_total{decision="allow"} 3$' "$TMP/body"
stop_server

printf 'rule broken\n  when event.amount >= \n  then score 1, reason "x"\n' >"$D/broken.rules"
check "a rule file that does not compile stops the start, with its line and column" sh -c "
    ! env CUSTODIA_SERVER_PORT=$(free_port) CUSTODIA_MONITOR_RULES=broken.rules '$BIN' serve --dir '$D' 2>'$TMP/broken.err' &&
    grep -q 'broken.rules:3:' '$TMP/broken.err'"
finish
