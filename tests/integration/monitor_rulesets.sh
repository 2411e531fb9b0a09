#!/bin/sh
# Rule sets in the store: a proposal is compiled (errors with their line and column) and kept
# as a version; putting one in force, live or in shadow, is held for another staff member's
# approval and refused outright when the policy would not hold it; once approved the version
# decides from the next event, over windows fed from the stored events (what was counted under
# the set before still counts); a shadow set is recorded without effect; the sets in force come
# back after a restart; a shadow set is retired the same way; a backtest replays stored events
# through a version or a text and counts the alerts' resolutions as labels.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
check "the policy custodia init writes holds rules.activate for approval" \
    grep -q '^approve rules.activate by 1 within 24h' "$D/access.policy"
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
ago() { date -u -d "@$(( $(date +%s) - $1 ))" +%Y-%m-%dT%H:%M:%SZ; }
event() {
    req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"$1\", \"time\": \"$(now)\", \"customer\": \"$2\"}"
}
mk() {
    req POST /v1/staff -H "$AUTH" -H "$JSONH" --data \
        "{\"email\": \"$1@example.com\", \"name\": \"$1\", \"scopes\": $2}"
    ID=$(json "j['id']")
    staff_signin "$ID" "$1@example.com" 'velvet tunnel harbor 64' || exit 1
}
mk ann '["rules.write", "rules.activate", "monitor.read"]'; ANN="$STOK"
mk bob '["rules.activate", "monitor.read"]'; BOB="$STOK"
# approve(ID): bob approves a pending request, which then runs
approve() {
    req POST "/v1/approvals/$1/approve" -H "$BOB"
}
propose() {
    req POST /v1/monitor/rulesets -H "$ANN" -H "$JSONH" \
        --data "$(python3 -c 'import json,sys; print(json.dumps({"rules": sys.argv[1], "note": sys.argv[2]}))' "$1" "$2")"
}
activate() {
    req POST "/v1/monitor/rulesets/$1/activate" -H "$ANN" -H "$JSONH" --data "{\"as\": \"$2\"}"
}

req GET /v1/monitor/rulesets -H "$ANN"
check_eq "at first the set of the configuration is in force, none stored" "200 configuration None 0" \
    "$STATUS $(json "j['in_force']['live']") $(json "j['in_force']['shadow']") $(json "len(j['items'])")"
propose 'rule broken
  when event.type == "transfer" and
  then deny, reason "x"' "a typo"
check_eq "a proposal that does not compile, with its line and column" "400 True" \
    "$STATUS $(json "j['detail'].startswith('rules:3:3: ')")"
propose 'rule third_failure
  when event.type == "login_failed" and count(customer, 1h, "login_failed") >= 3
  then deny, alert high, reason "a third failed sign-in in an hour"' "failures count"
check_eq "a proposal is kept as a version" "201 1 proposed 1" \
    "$STATUS $(json "j['version']") $(json "j['status']") $(json "j['rules']")"
SHA1=$(json "j['sha256']")
req GET /v1/monitor/rulesets/1 -H "$ANN"
check_eq "with its text, digest and who proposed it" "200 $SHA1 True failures count" \
    "$STATUS $(json "j['sha256']") $(json "'third_failure' in j['rules'] and j['created_by'].startswith('staff:')") $(json "j['note']")"

# two failures before the change: the new set's window must see them
event login_failed c-w
event login_failed c-w
check_eq "under the configuration's set" "201 allow" "$STATUS $(json "j['decision']")"

activate 1 live
check_eq "putting a version in force waits for approval" "202 pending rules.activate" \
    "$STATUS $(json "j['status']") $(json "j['permission']")"
A1=$(json "j['id']")
req POST "/v1/approvals/$A1/approve" -H "$ANN"
check_eq "the one who asked cannot approve it" 403 "$STATUS"
event login_failed c-other
check_eq "nothing changed meanwhile" "201 allow" "$STATUS $(json "j['decision']")"
approve "$A1"
check_eq "another staff member's approval puts it in force" "200 executed 200" \
    "$STATUS $(json "j['status']") $(json "j['result']['status']")"
event login_failed c-w
check_eq "it decides from the next event, over windows that kept the events before it" \
    "201 deny third_failure" "$STATUS $(json "j['decision']") $(json "j['rules'][0]['name']")"
DEC_A=$(json "j['id']")
req GET /v1/monitor/rulesets -H "$ANN"
check_eq "the list says which is in force" "1 live" "$(json "j['in_force']['live']") $(json "j['items'][0]['status']")"
check_eq "the change is audited with its digest" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.ruleset_activate' AND target = 'ruleset:1' AND details LIKE '%$SHA1%'")"

# a shadow set beside it
propose 'rule every_failure
  when event.type == "login_failed"
  then step_up, reason "any failed sign-in"' "stricter"
activate 2 shadow
A2=$(json "j['id']")
approve "$A2"
check_eq "a version goes in shadow the same way" "200 executed" "$STATUS $(json "j['status']")"
event login_failed c-s
check_eq "a shadow set has no effect" "201 allow" "$STATUS $(json "j['decision']")"
req GET "/v1/decisions/$(json "j['id']")" -H "$AUTH"
check_eq "and its verdict is recorded" "step_up" "$(json "j['shadow']['decision']")"
activate 2 shadow
approve "$(json "j['id']")"
check_eq "a version in shadow already" "200 failed 409" "$STATUS $(json "j['status']") $(json "j['result']['status']")"

# without the policy's approval, never
cp "$D/access.policy" "$TMP/policy.keep"
printf 'version 1\n' >"$D/access.policy.new"
policy_now "$D"
activate 2 live
check_eq "with no approval in the policy, putting rules in force is refused" \
    "403 urn:custodia:problem:approval_required" "$STATUS $(json "j['type']")"
cp "$TMP/policy.keep" "$D/access.policy.new"
policy_now "$D"

# after a restart
stop_server
start_server "$D" || exit 1
req GET /v1/monitor/rulesets -H "$ANN"
check_eq "the sets in force come back after a restart" "1 2" "$(json "j['in_force']['live']") $(json "j['in_force']['shadow']")"
event login_failed c-w
check_eq "deciding as before it" "201 deny" "$STATUS $(json "j['decision']")"
DEC_B=$(json "j['id']")
req POST "/v1/monitor/rulesets/2/retire" -H "$ANN"
approve "$(json "j['id']")"
check_eq "a shadow set is retired through approval too" "200 executed" "$STATUS $(json "j['status']")"
req GET /v1/monitor/rulesets -H "$ANN"
check_eq "leaving no shadow" "None retired" "$(json "j['in_force']['shadow']") $(json "[i['status'] for i in j['items'] if i['version'] == 2][0]")"
# once the store decides, the configuration's shadow_rules are not read again
printf 'rule any when event.type == "login_failed" then deny, reason "any"\n' >"$D/shadow.rules"
stop_server
start_server "$D" CUSTODIA_MONITOR_SHADOW_RULES=shadow.rules || exit 1
req GET /v1/monitor/rulesets -H "$ANN"
check_eq "after a restart with a shadow file configured, the store's choice of none stands" "1 None" \
    "$(json "j['in_force']['live']") $(json "j['in_force']['shadow']")"

# backtests: the alerts' resolutions are labels
req GET /v1/alerts -H "$AUTH"
ALR_A="alr_${DEC_A#dec_}"; ALR_B="alr_${DEC_B#dec_}"
req POST "/v1/alerts/$ALR_A/resolve" -H "$AUTH" -H "$JSONH" --data '{"resolution": "true_positive"}'
check_eq "an alert resolved as an attack" 200 "$STATUS"
req POST "/v1/alerts/$ALR_B/resolve" -H "$AUTH" -H "$JSONH" --data '{"resolution": "false_positive"}'
req POST /v1/monitor/backtests -H "$ANN" -H "$JSONH" \
    --data "{\"version\": 1, \"from\": \"$(ago 3600)\", \"to\": \"$(date -u -d '+1 minute' +%Y-%m-%dT%H:%M:%SZ)\"}"
check_eq "a backtest of a version over the stored events" "200 6 2 4" \
    "$STATUS $(json "j['events']") $(json "j['decisions']['deny']") $(json "j['decisions']['allow']")"
check_eq "counting the labels, precision and recall" "1 1 1 1 0.5 1.0" \
    "$(json "j['labels']['legit']") $(json "j['labels']['attack']") $(json "j['confusion']['attack']['deny']") $(json "j['confusion']['legit']['deny']") $(json "j['precision']") $(json "j['recall']")"
check_eq "and how many decisions it would change" 0 "$(json "j['changed']")"
req POST /v1/monitor/backtests -H "$ANN" -H "$JSONH" \
    --data "{\"rules\": \"rule all when event.type == \\\"login_failed\\\" then deny, reason \\\"all\\\"\", \"from\": \"$(ago 3600)\", \"to\": \"$(now)\"}"
check_eq "a backtest of a text before it is proposed" "200 6 6 4" \
    "$STATUS $(json "j['events']") $(json "j['decisions']['deny']") $(json "j['changed']")"
req POST /v1/monitor/backtests -H "$ANN" -H "$JSONH" \
    --data "{\"version\": 1, \"from\": \"$(ago 9000000)\", \"to\": \"$(now)\"}"
check_eq "a range of more than 90 days" 400 "$STATUS"
req POST /v1/monitor/backtests -H "$ANN" -H "$JSONH" \
    --data "{\"version\": 9, \"from\": \"$(ago 60)\", \"to\": \"$(now)\"}"
check_eq "a version that does not exist" "404 urn:custodia:problem:unknown_ruleset" "$STATUS $(json "j['type']")"
# the same from the command line, on the data directory (the server running)
"$BIN" rules backtest --dir "$D" --from "$(ago 3600)" --to "$(date -u -d '+1 minute' +%Y-%m-%dT%H:%M:%SZ)" >"$TMP/bt.json" 2>"$TMP/bt.err"
check_eq "custodia rules backtest reports the set in force over the stored events" "0 1 6 2 0.5" \
    "$? $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["version"], j["events"], j["decisions"]["deny"], j["precision"])' "$TMP/bt.json")"
printf 'rule all when event.type == "login_failed" then deny, reason "all"\n' >"$TMP/all.rules"
"$BIN" rules backtest --dir "$D" --rules "$TMP/all.rules" --from "$(ago 3600)" --to "$(now)" >"$TMP/bt.json" 2>"$TMP/bt.err"
check_eq "or a rule file" "0 6" "$? $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["decisions"]["deny"])' "$TMP/bt.json")"
"$BIN" rules backtest --dir "$D" --from "$(now)" --to "$(ago 60)" >/dev/null 2>"$TMP/bt.err"
check_eq "a range backwards is a usage error" 2 "$?"
check "saying so" contains "$TMP/bt.err" "'to' must follow 'from'"
check_eq "backtests that ran are audited" 2 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.backtest'")"
finish
