#!/bin/sh
# Incident cases (docs/cases.md) and playbooks (docs/playbooks.md): alerts open a case or join
# the open one that shares their customer, address, device or payee; the stage machine refuses
# skipped stages, stages gone back to, and closing without a resolution (or, at high, without a
# review); tasks, notes and observables land in the timeline and the audit log (never a note's
# text); cases sharing an observable are linked; the export is JSON or a self-contained HTML
# report with every value escaped; an account-takeover playbook freezes the accounts, ends the
# sessions and queues the notices in the same request as the decision, each step in the
# timeline, and its waiting step runs once confirmed; playbook files with mistakes stop the
# start naming the line and the column.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/c.rules" <<'EOF2'
rule big_withdrawal
  when event.type == "withdrawal" and event.amount >= 500000
  then alert high, reason "a large withdrawal"

rule small_withdrawal
  when event.type == "withdrawal" and event.amount < 500000
  then alert low, reason "a withdrawal"

rule takeover
  when event.type == "login_succeeded" and event.device == "stolen-phone"
  then alert critical, reason "a sign-in from a device reported stolen"
EOF2
cat >"$D/c.playbooks" <<'EOF2'
# contain an account takeover in the request that detects it
playbook account_takeover
  when rule takeover
  step freeze_accounts 2h
  step revoke_sessions
  step notify_customer accounts_frozen
  step page_oncall
  step force_password_reset confirm

playbook big_money
  when severity critical
  step hold_transfers confirm
  step page_oncall
EOF2
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
PW="amber violin harbour 77"

# playbook files with mistakes stop the start, naming the line and the column
bad_playbook() {
    printf '%b' "$1" >"$D/bad.playbooks"
    env CUSTODIA_SERVER_PORT="$(free_port)" CUSTODIA_MONITOR_RULES=c.rules \
        CUSTODIA_CASES_PLAYBOOKS=bad.playbooks "$BIN" serve --dir "$D" >"$TMP/bad.out" 2>&1
    echo "$? $(grep -o 'bad.playbooks:[0-9]*:[0-9]*: [^"]*' "$TMP/bad.out" | head -1)"
}
check_eq "an unknown action" \
    "2 bad.playbooks:3:8: unknown action 'freeze_everything' (one of freeze_accounts, hold_transfers, revoke_sessions, lock_sign_in, force_password_reset, notify_customer, page_oncall)" \
    "$(bad_playbook 'playbook p\n  when rule takeover\n  step freeze_everything\n')"
check_eq "an unknown rule" \
    "2 bad.playbooks:2:13: unknown rule 'no_such_rule' (no rule of that name in the rules in force raises an alert)" \
    "$(bad_playbook 'playbook p\n  when rule no_such_rule\n  step page_oncall\n')"
check_eq "a bad duration" \
    "2 bad.playbooks:3:24: '90x' is not a duration (a number and s, m, h or d; 1s to 30d)" \
    "$(bad_playbook 'playbook p\n  when severity high\n  step freeze_accounts 90x\n')"
check_eq "a playbook without a when" \
    "2 bad.playbooks:1:1: playbook p has no 'when': it needs a rule or a severity that starts it" \
    "$(bad_playbook 'playbook p\n  step page_oncall\n')"

# the notices go to a receiver that is not there: queued, and their deliveries fail
start_server "$D" CUSTODIA_MONITOR_RULES=c.rules CUSTODIA_CASES_PLAYBOOKS=c.playbooks \
    CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 \
    CUSTODIA_NOTIFY_WEBHOOK_URL="https://127.0.0.1:$(free_port)/hook" || exit 1
check "the playbooks are loaded" grep -q '"cases.playbooks_loaded".*"playbooks":2' "$LOG"
customer() {
    req POST /v1/customers -H "$AUTH" -H "$JSONH" --data "{\"email\": \"$1@example.com\"}"
    json "j['id']"
}
ADA=$(customer ada)
BOB=$(customer bob)
CAT=$(customer cat)
withdraw() { # CUSTOMER AMOUNT DEVICE IP
    req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"withdrawal\", \"customer\": \"$1\", \"time\": \"$NOW\", \"amount\": $2, \"currency\": \"EUR\", \"device\": \"$3\", \"ip\": \"$4\"}"
    json "j['id']"
}
case_of() { "$DBQ" "$D" "SELECT case_id FROM case_alerts WHERE decision_id = '$1'"; }

# grouping: the same customer, then another customer on the same device, join one case
D1=$(withdraw "$ADA" 100 dev-a 192.0.2.1)
C1=$(case_of "$D1")
check "an alert opens a case" test -n "$C1"
D2=$(withdraw "$ADA" 200 dev-b 192.0.2.2)
D3=$(withdraw "$BOB" 300 dev-a 198.51.100.7)
D4=$(withdraw "$CAT" 400 dev-c 203.0.113.9)
check_eq "an alert of the same customer, and one from the same device, join it; another opens its own" \
    "$C1 $C1 yes" "$(case_of "$D2") $(case_of "$D3") $([ "$(case_of "$D4")" != "$C1" ] && echo yes)"
C4=$(case_of "$D4")
req GET "/v1/cases/$C1" -H "$AUTH"
check_eq "the case has its three alerts, stage detected, severity low" "200 3 detected low alert" \
    "$STATUS $(json "j['alerts_count']") $(json "j['stage']") $(json "j['severity']") $(json "j['source']")"
check_eq "and the observables of all three, the addresses as custodia keeps them (pseudonyms)" \
    "$(printf '%s\n' "customer:$ADA" "customer:$BOB" | sort | tr '\n' ' ')device:dev-a device:dev-b ip:fd ip:fd ip:fd" \
    "$(json "' '.join(sorted(o['kind'] + ':' + (o['value'][:2] if o['kind'] == 'ip' else o['value']) for o in j['observables']))")"
check "no address in the clear" absent -e 192.0.2.1 -e 198.51.100.7 "$TMP/body"
D5=$(withdraw "$ADA" 900000 dev-a 192.0.2.1)
req GET "/v1/cases/$C1" -H "$AUTH"
check_eq "a high alert joins it and raises its severity, in the timeline" "$C1 high 1" \
    "$(case_of "$D5") $(json "j['severity']") $(json "len([e for e in j['timeline'] if e['kind'] == 'severity' and e['details']['to'] == 'high'])")"
check_eq "the opening and each alert are audited" "1 3" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'case.open' AND target = 'case:$C1'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'case.alert' AND target = 'case:$C1'")"
req GET "/v1/cases?stage=open&customer=$ADA" -H "$AUTH"
check_eq "the list filters by customer" "200 $C1" "$STATUS $(json "','.join(i['id'] for i in j['items'])")"
req GET "/v1/cases?observable=device:dev-c" -H "$AUTH"
check_eq "and by observable" "200 $C4" "$STATUS $(json "','.join(i['id'] for i in j['items'])")"
req GET "/v1/cases?stage=sideways" -H "$AUTH"
check_eq "an unknown stage in a filter is 400" 400 "$STATUS"

# the stage machine
stage() { # CASE BODY
    req POST "/v1/cases/$1/stage" -H "$AUTH" -H "$JSONH" --data "$2"
    echo "$STATUS $(json "j.get('stage') or j.get('type')")"
}
check_eq "a skipped stage is refused" "409 urn:custodia:problem:stage_refused" \
    "$(stage "$C1" '{"stage": "contained"}')"
check "saying which stage comes next" grep -q 'moves to assessing (or false_positive), not to contained' "$TMP/body"
check_eq "an unknown stage is 400" "400 urn:custodia:problem:invalid_request" "$(stage "$C1" '{"stage": "done"}')"
check_eq "the next stage is taken" "200 assessing" "$(stage "$C1" '{"stage": "assessing"}')"
check_eq "a stage gone back to is refused" "409 urn:custodia:problem:stage_refused" \
    "$(stage "$C1" '{"stage": "detected"}')"
check_eq "closing from assessing is a skip" "409 urn:custodia:problem:stage_refused" \
    "$(stage "$C1" '{"stage": "closed", "resolution": "done"}')"
stage "$C1" '{"stage": "contained"}' >/dev/null
stage "$C1" '{"stage": "eradicated"}' >/dev/null
check_eq "up to recovered" "200 recovered" "$(stage "$C1" '{"stage": "recovered"}')"
check_eq "closing needs a resolution" "400 urn:custodia:problem:invalid_request" \
    "$(stage "$C1" '{"stage": "closed"}')"
check_eq "and at high a review" "400 urn:custodia:problem:invalid_request" \
    "$(stage "$C1" '{"stage": "closed", "resolution": "card skimmed"}')"
check "which says what it needs" grep -q 'needs a review: cause, actions and changes' "$TMP/body"
check_eq "a review missing a part is refused" "400 urn:custodia:problem:invalid_request" \
    "$(stage "$C1" '{"stage": "closed", "resolution": "r", "review": {"cause": "c", "actions": "a"}}')"

# tasks, notes, observables
req POST "/v1/cases/$C1/tasks" -H "$AUTH" -H "$JSONH" --data '{"title": "call the customer"}'
check_eq "a task is added" "200 1 open" \
    "$STATUS $(json "j['tasks'][0]['task']") $(json "j['tasks'][0]['status']")"
req POST "/v1/cases/$C1/tasks/1" -H "$AUTH" -H "$JSONH" --data '{"status": "done"}'
check_eq "and done" "200 done" "$STATUS $(json "j['tasks'][0]['status']")"
req POST "/v1/cases/$C1/tasks/1" -H "$AUTH" -H "$JSONH" --data '{"status": "done"}'
check_eq "but not twice" "404 urn:custodia:problem:unknown_task" "$STATUS $(json "j['type']")"
req POST "/v1/cases/$C1/notes" -H "$AUTH" -H "$JSONH" \
    --data '{"text": "customer confirms <script>alert(1)</script> & the card is gone"}'
check_eq "a note is added" 200 "$STATUS"
python3 -c 'print("{\"text\": \"" + "x" * 4001 + "\"}")' >"$TMP/long.json"
req POST "/v1/cases/$C1/notes" -H "$AUTH" -H "$JSONH" --data @"$TMP/long.json"
check_eq "a note over 4,000 bytes is 413" 413 "$STATUS"
req POST "/v1/cases/$C1/observables" -H "$AUTH" -H "$JSONH" --data '{"kind": "device", "value": "dev-c"}'
check_eq "an observable is added, and links the case sharing it" "200 $C4" \
    "$STATUS $(json "[o for o in j['observables'] if o['value'] == 'dev-c'][0]['linked_cases'][0]")"
req POST "/v1/cases/$C1/observables" -H "$AUTH" -H "$JSONH" --data '{"kind": "planet", "value": "mars"}'
check_eq "an unknown kind is 400" 400 "$STATUS"
req POST /v1/staff -H "$AUTH" -H "$JSONH" --data '{"email": "eve@example.com", "name": "Eve", "scopes": ["cases.read"]}'
EVE=$(json "j['id']")
req POST "/v1/cases/$C1/assign" -H "$AUTH" -H "$JSONH" --data '{"assignee": "stf_0123456789abcdef"}'
check_eq "a staff member who does not exist is not assigned" "400 urn:custodia:problem:unknown_staff" \
    "$STATUS $(json "j['type']")"
req POST "/v1/cases/$C1/assign" -H "$AUTH" -H "$JSONH" --data "{\"assignee\": \"$EVE\"}"
check_eq "the case is assigned" "200 $EVE" "$STATUS $(json "j['assignee']")"
check_eq "close with a review" "200 closed" \
    "$(stage "$C1" '{"stage": "closed", "resolution": "card skimmed at an ATM", "review": {"cause": "a skimmer", "actions": "card blocked, money returned", "changes": "alert on ATM withdrawals abroad"}}')"
check_eq "its alerts are resolved with it" "4" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM alerts WHERE status = 'resolved' AND resolution = 'true_positive' AND id IN (SELECT alert_id FROM case_alerts WHERE case_id = '$C1')")"
check_eq "a closed case moves no more" "409 urn:custodia:problem:stage_refused" \
    "$(stage "$C1" '{"stage": "false_positive", "resolution": "x"}')"
req POST "/v1/cases/$C1/assign" -H "$AUTH" -H "$JSONH" --data "{\"assignee\": \"$EVE\"}"
check_eq "nor is it assigned" "409 urn:custodia:problem:case_final" "$STATUS $(json "j['type']")"
check_eq "a low case goes to false_positive with a resolution alone" "200 false_positive" \
    "$(stage "$C4" '{"stage": "false_positive", "resolution": "the customer withdrew it"}')"
D6=$(withdraw "$CAT" 50 dev-c 203.0.113.9)
check "a new alert does not join a final case" test "$(case_of "$D6")" != "$C4"
check_eq "every change is audited" "1 1 1 2 5" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.note'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.assign'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.observable'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.task'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.stage'")"
"$DBQ" "$D" "SELECT details FROM audit_log WHERE target = 'case:$C1'" >"$TMP/case_audit"
check "and the audit log holds no note's text" absent -e "script" -e "card is gone" "$TMP/case_audit"

# export
req GET "/v1/cases/$C1/export?format=html" -H "$AUTH"
check_eq "the HTML report" "200 text/html; charset=utf-8" "$STATUS $(header Content-Type)"
check "escapes every value" grep -q 'customer confirms &lt;script&gt;alert(1)&lt;/script&gt; &amp; the card is gone' "$TMP/body"
check "has no script and loads nothing" absent -e '<script' -e 'src=' -e 'href=' "$TMP/body"
check "shows the review" grep -q 'alert on ATM withdrawals abroad' "$TMP/body"
check "is offered as a file" sh -c "grep -qi 'content-disposition: attachment; filename=\"$C1.html\"' '$TMP/headers'"
req GET "/v1/cases/$C1/export" -H "$AUTH"
check_eq "the JSON export is the case's document" "200 $C1 closed a skimmer" \
    "$STATUS $(json "j['id']") $(json "j['stage']") $(json "j['review']['cause']")"
check_eq "with its timeline in order" "opened alert" \
    "$(json "' '.join(e['kind'] for e in j['timeline'][:2])")"
req GET "/v1/cases/$C1/export?format=pdf" -H "$AUTH"
check_eq "an unknown format is 400" 400 "$STATUS"
req GET /v1/cases/cas_0123456789abcdef -H "$AUTH"
check_eq "an unknown case is 404" "404 urn:custodia:problem:unknown_case" "$STATUS $(json "j['type']")"
check_eq "reads and exports are audited" "2 2" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.read'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.export'")"

# an account takeover, contained in the request that detects it
DAN=$(customer dan)
req POST "/v1/customers/$DAN/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
DACC=$(json "j['id']")
req PUT "/v1/customers/$DAN/password" -H "$AUTH" -H "$JSONH" --data "{\"password\": \"$PW\"}"
login() { req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"dan@example.com\", \"password\": \"$PW\", \"kind\": \"customer\"}"; }
login
SESS="Authorization: Bearer $(json "j['token']")"
req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"customer\": \"$DAN\", \"time\": \"$NOW\", \"device\": \"stolen-phone\", \"ip\": \"203.0.113.66\"}"
check_eq "the decision" 201 "$STATUS"
DEC=$(json "j['id']")
TC=$(case_of "$DEC")
req GET "/v1/accounts/$DACC" -H "$AUTH"
check_eq "has frozen the account by the time it answers" "frozen case:$TC" \
    "$(json "j['status']") $(json "j['freeze']['reason']")"
req GET /v1/me -H "$SESS"
check_eq "and ended the session" 401 "$STATUS"
check_eq "and queued the customer's notice and the on-call page" "1 1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE customer = '$DAN' AND template = 'accounts_frozen'") $("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE template = 'staff_case' AND data LIKE '%$TC%'")"
req GET "/v1/cases/$TC" -H "$AUTH"
check_eq "each step is in the case with its result" \
        "freeze_accounts:done revoke_sessions:done notify_customer:done page_oncall:done force_password_reset:waiting hold_transfers:waiting page_oncall:done" \
    "$(json "' '.join(s['action'] + ':' + s['status'] for s in j['steps'])")"
check_eq "and in its timeline" "7 1 1" \
    "$(json "len([e for e in j['timeline'] if e['kind'] == 'step'])") $(json "[s for s in j['steps'] if s['action'] == 'freeze_accounts'][0]['result']['accounts']") $(json "[s for s in j['steps'] if s['action'] == 'revoke_sessions'][0]['result']['sessions']")"
check_eq "both playbooks ran (the takeover's rule, and the critical severity), audited" "2" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$TC' AND action = 'case.playbook'")"
req POST "/v1/cases/$TC/steps/5/confirm" -H "$AUTH"
check_eq "the waiting step runs once confirmed" "200 done True" \
    "$STATUS $(json "j['steps'][4]['status']") $(json "j['steps'][4]['result']['password_cleared']")"
req POST "/v1/cases/$TC/steps/5/confirm" -H "$AUTH"
check_eq "and only once" "409 urn:custodia:problem:case_final" "$STATUS $(json "j['type']")"
login
check_eq "the customer's password no longer signs in" 401 "$STATUS"
req POST "/v1/cases/$TC/steps/6/decline" -H "$AUTH"
check_eq "a declined step is skipped" "200 skipped" "$STATUS $(json "j['steps'][5]['status']")"
req POST "/v1/cases/$TC/steps/9/confirm" -H "$AUTH"
check_eq "an unknown step is 404" "404 urn:custodia:problem:unknown_step" "$STATUS $(json "j['type']")"
check_eq "confirmations are audited" "2" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$TC' AND action = 'case.step'")"

# a second customer's takeover from the same device joins the case: the playbook runs again,
# on that customer, not on the case's first one
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "fay@example.com"}'
FAY=$(json "j['id']")
req POST "/v1/customers/$FAY/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
FACC=$(json "j['id']")
req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"customer\": \"$FAY\", \"time\": \"$NOW\", \"device\": \"stolen-phone\", \"ip\": \"198.51.100.99\"}"
check_eq "the second customer's alert joins the case" "$TC" "$(case_of "$(json "j['id']")")"
req GET "/v1/accounts/$FACC" -H "$AUTH"
check_eq "and the playbook contains that customer" "frozen case:$TC" \
    "$(json "j['status']") $(json "j['freeze']['reason']")"
check_eq "each step naming the customer it acted on" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM case_steps WHERE case_id = '$TC' AND customer = '$FAY' AND action = 'freeze_accounts' AND status = 'done'")"
# closing the case skips what still waits, which then runs no more
"$DBQ" "$D" "SELECT n FROM case_steps WHERE case_id = '$TC' AND customer = '$FAY' AND action = 'force_password_reset'" >"$TMP/n"
req POST "/v1/cases/$TC/stage" -H "$AUTH" -H "$JSONH" --data '{"stage": "false_positive", "resolution": "a staff phone test"}'
check_eq "a case closed" "200 false_positive" "$STATUS $(json "j['stage']")"
check_eq "skips its waiting steps" "skipped" \
    "$("$DBQ" "$D" "SELECT status FROM case_steps WHERE case_id = '$TC' AND n = $(cat "$TMP/n")")"
req POST "/v1/cases/$TC/steps/$(cat "$TMP/n")/confirm" -H "$AUTH"
check_eq "which are not confirmed after it" 409 "$STATUS"

# a case opened by staff, and its playbook by severity
req POST /v1/cases -H "$AUTH" -H "$JSONH" --data "{\"title\": \"phishing wave\", \"severity\": \"medium\", \"customer\": \"$ADA\"}"
check_eq "staff open a case" "201 detected staff" "$STATUS $(json "j['stage']") $(json "j['source']")"
SC=$(json "j['id']")
req POST "/v1/cases/$SC/severity" -H "$AUTH" -H "$JSONH" --data '{"severity": "critical"}'
check_eq "raised to critical by staff, the severity's playbook waits for cases.contain, every step" \
    "200 critical hold_transfers:waiting page_oncall:waiting" \
    "$STATUS $(json "j['severity']") $(json "' '.join(s['action'] + ':' + s['status'] for s in j['steps'])")"
req POST /v1/cases -H "$AUTH" -H "$JSONH" --data '{"title": "x", "severity": "extreme"}'
check_eq "an unknown severity is 400" 400 "$STATUS"
req POST /v1/cases -H "$AUTH" -H "$JSONH" --data '{"title": "x", "severity": "low", "colour": "red"}'
check_eq "an unknown field is 400" 400 "$STATUS"

# four-eyes: a policy holding cases.contain for another staff member's approval
cp "$D/access.policy" "$D/access.policy.new"
echo "approve cases.contain by 1 within 1h" >>"$D/access.policy.new"
policy_now "$D"
req POST "/v1/cases/$SC/steps/1/confirm" -H "$AUTH"
check_eq "under four-eyes a confirmation waits for an approval" "202 pending cases.contain" \
    "$STATUS $(json "j['status']") $(json "j['permission']")"
APR=$(json "j['id']")
check_eq "and the step still waits" waiting \
    "$("$DBQ" "$D" "SELECT status FROM case_steps WHERE case_id = '$SC' AND n = 1")"
req POST /v1/staff -H "$AUTH" -H "$JSONH" --data '{"email": "gus@example.com", "name": "Gus", "scopes": ["cases.contain", "cases.read"]}'
staff_signin "$(json "j['id']")" gus@example.com 'velvet tunnel harbor 64' || exit 1
req POST "/v1/approvals/$APR/approve" -H "$STOK"
check_eq "another staff member's approval runs it" "200 executed 200" \
    "$STATUS $(json "j['status']") $(json "j['result']['status']")"
check_eq "the step is done, as the one who asked" "done apikey:" \
    "$("$DBQ" "$D" "SELECT status FROM case_steps WHERE case_id = '$SC' AND n = 1") $("$DBQ" "$D" "SELECT done_by FROM case_steps WHERE case_id = '$SC' AND n = 1" | cut -c1-7)"

# the command line

"$BIN" case list --stage open --dir "$D" >"$TMP/list.out" 2>&1
check "custodia case list shows the open cases" grep -q "^$SC .* critical .*phishing wave" "$TMP/list.out"
"$BIN" case note "$SC" "called the bank's fraud desk" --dir "$D" >/dev/null 2>&1
"$BIN" case show "$SC" --dir "$D" >"$TMP/show.out" 2>&1
check_eq "custodia case note adds a note, custodia case show has it" "0 1" \
    "$? $(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(len([e for e in j['timeline'] if e['kind'] == 'note' and e['details']['text'] == \"called the bank's fraud desk\" and e['actor'].startswith('operator')]))" "$TMP/show.out")"
"$BIN" case stage "$SC" contained --dir "$D" >"$TMP/stage.out" 2>&1
check_eq "custodia case stage refuses a skipped stage, saying why" "1 1" \
    "$? $(grep -c 'moves to assessing (or false_positive), not to contained' "$TMP/stage.out")"
"$BIN" case stage "$SC" assessing --dir "$D" >/dev/null 2>&1
check_eq "and takes the next one" 0 "$?"
"$BIN" case export "$C1" --format html --out "$TMP/c1.html" --dir "$D" >/dev/null 2>&1
check_eq "custodia case export writes the HTML report" "0 1" "$? $(grep -c '<h3>What caused it</h3><pre>a skimmer' "$TMP/c1.html")"
"$BIN" case export "$C1" --format html --out "$TMP/c1.html" --dir "$D" >"$TMP/export.out" 2>&1
check_eq "but never over a file" "1 1" "$? $(grep -c 'must not exist' "$TMP/export.out")"
check_eq "the operator's export is audited" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE target = 'case:$C1' AND action = 'case.export' AND actor_type = 'operator'")"
"$BIN" playbooks check "$D/c.playbooks" --rules "$D/c.rules" >"$TMP/pb.out" 2>&1
check_eq "custodia playbooks check passes a good file" "0 1" "$? $(grep -c '2 playbooks, OK' "$TMP/pb.out")"
"$BIN" playbooks check "$D/c.playbooks" >"$TMP/pb.out" 2>&1
check_eq "and names the rule the built-in pack lacks" "1 1" \
    "$? $(grep -c "c.playbooks:3:13: unknown rule 'takeover'" "$TMP/pb.out")"
finish
