#!/bin/sh
# Monitoring at sign-in: each customer's sign-in, failed sign-in and failed second factor
# decided in its step's unit of work. The default pack locks an account after five failures
# in fifteen minutes, though the right password then comes; a rule's deny refuses a right
# password exactly as a wrong one is refused (answer, lockout count, audit record with the
# decision); so does a step-up asked of a customer without a second factor; failures of a
# login that names no account are counted under a keyed form of it, never the login itself;
# changes of contact details and passwords are events too; the state is rebuilt at start.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
# the identity's own lockout is out of the way (a high threshold): what locks here is monitoring
start_server "$D" CUSTODIA_IDENTITY_LOCKOUT_THRESHOLD=1000 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
PW="amber violin harbour 77"
login() {
    req POST /v1/auth/login -H "$JSONH" \
        --data "{\"login\": \"$1\", \"password\": \"$2\", \"kind\": \"customer\"${3:+, \"device_id\": \"$3\"}}"
}

req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com"}'
ADA=$(json "j['id']")
req PUT "/v1/customers/$ADA/password" -H "$AUTH" -H "$JSONH" --data "{\"password\": \"$PW\"}"
login ada@example.com "$PW"
check_eq "a sign-in is let through" "200 signed_in False" "$STATUS $(json "j['status']") $(json "j['mfa_enrolment_required']")"
for i in 1 2 3 4; do login ada@example.com "wrong password $i"; done
login ada@example.com "$PW"
check_eq "four failures lock nothing" 200 "$STATUS"
login ada@example.com "wrong password 5"
check_eq "the fifth failure in fifteen minutes (a success between them forgets none)" 401 "$STATUS"
login ada@example.com "$PW"
check_eq "locks the account, the right password too" 429 "$STATUS"
check "for the rule's fifteen minutes" sh -c "r=\$(tr -d '\r' <'$TMP/headers' | awk -F': ' 'tolower(\$1) == \"retry-after\" {print \$2}'); [ \"\$r\" -gt 850 ] && [ \"\$r\" -le 900 ]"
check_eq "the failure that locked it names its decision in the audit log" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'auth.login' AND outcome = 'failure' AND details LIKE '%\"decision\":\"dec_%' AND details LIKE '%\"locked_for_ms\":900000%'")"
check_eq "each step is a monitoring event of the customer, none while locked" "2 5 " \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE source = 'signin' AND customer = '$ADA' AND type = 'login_succeeded'") $("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE source = 'signin' AND customer = '$ADA' AND type = 'login_failed'") "
req DELETE "/v1/customers/$ADA/lockout" -H "$AUTH"
login ada@example.com "$PW"
check_eq "staff clear the lock" 200 "$STATUS"

# a login that names no account: counted under a keyed form, not the login
login nobody@example.com "whatever it is"
check_eq "an unknown login fails as ever" 401 "$STATUS"
check "and is counted without the login itself" sh -c "
    [ \"\$('$DBQ' '$D' \"SELECT COUNT(*) FROM monitor_events WHERE source = 'signin' AND type = 'login_failed' AND customer <> '$ADA'\")\" = 1 ] &&
    [ -z \"\$('$DBQ' '$D' \"SELECT seq FROM monitor_events WHERE customer LIKE '%nobody%' OR body LIKE '%nobody%'\")\" ]"

# the state is rebuilt from the stored events at start: four failures before a restart and one
# after it are five in fifteen minutes
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "bob@example.com"}'
BOB=$(json "j['id']")
req PUT "/v1/customers/$BOB/password" -H "$AUTH" -H "$JSONH" --data "{\"password\": \"$PW\"}"
for i in 1 2 3 4; do login bob@example.com "wrong again $i"; done
login bob@example.com "$PW"
check_eq "four failures of another customer lock nothing" 200 "$STATUS"
stop_server
start_server "$D" CUSTODIA_IDENTITY_LOCKOUT_THRESHOLD=1000 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 || exit 1
check "the start rebuilt the state from the stored events" grep -q '"msg":"monitor.rebuilt","events":[1-9]' "$LOG"
login bob@example.com "wrong again 5"
login bob@example.com "$PW"
check_eq "four failures before a restart and one after it lock the account" 429 "$STATUS"

# a change of contact details is an event too: money leaving within two days of it is stopped
# by the default pack (a step-up, which an API key cannot make: the withdrawal is held)
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "cy@example.com"}'
CY=$(json "j['id']")
req POST "/v1/customers/$CY/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
BA=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: dep-cy" \
    --data "{\"account\": \"$BA\", \"amount\": 50000, \"currency\": \"EUR\"}"
req POST /v1/withdrawals -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: wd-cy-1" \
    --data "{\"account\": \"$BA\", \"amount\": 20000, \"currency\": \"EUR\"}"
check_eq "a withdrawal before any change is let through" "201 False" "$STATUS $(json "j['transfer']['held']")"
req PATCH "/v1/customers/$CY" -H "$AUTH" -H "$JSONH" --data '{"email": "cy.new@example.com"}'
check_eq "the e-mail is changed" 200 "$STATUS"
check_eq "as a profile_changed event naming the field" '["email"]' \
    "$("$DBQ" "$D" "SELECT body FROM monitor_events WHERE source = 'profile' AND customer = '$CY'" | python3 -c 'import json, sys; print(json.dumps(json.loads(sys.stdin.read())["fields"], separators=(",", ":")))')"
req POST /v1/withdrawals -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: wd-cy-2" \
    --data "{\"account\": \"$BA\", \"amount\": 20000, \"currency\": \"EUR\"}"
check_eq "money leaving within two days of it is held" "201 True" "$STATUS $(json "j['transfer']['held']")"
check "by the rule written for it" sh -c "grep -q contact_change_then_withdrawal '$TMP/body'"
req PUT "/v1/customers/$CY/password" -H "$AUTH" -H "$JSONH" --data '{"password": "a brand new passphrase 88"}'
check_eq "a new password is an event too" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE type = 'password_changed' AND customer = '$CY'")"
check_eq "and money leaving within a day of both is refused (the scores add up to deny)" 403 "$(
    req POST /v1/withdrawals -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: wd-cy-3" \
        --data "{\"account\": \"$BA\", \"amount\": 10000, \"currency\": \"EUR\"}"; echo "$STATUS")"
stop_server

cat >"$D/signin.rules" <<'RULES'
rule evil_device
  when event.type == "login_succeeded" and event.device == "d-evil"
  then deny, reason "a device known to be stolen"

rule no_phone_changes
  when event.type == "profile_changed" and "phone" in event.fields
  then deny, reason "phone numbers change at a branch"

rule new_laptop
  when event.type == "login_succeeded" and event.device == "d-new"
  then step_up, reason "a device to prove with a second factor"
RULES
start_server "$D" CUSTODIA_MONITOR_RULES=signin.rules CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 || exit 1
login ada@example.com "$PW" d-evil
check_eq "a rule's deny refuses the right password, answered as wrong credentials" \
    "401 urn:custodia:problem:invalid_credentials" "$STATUS $(json "j['type']")"
DENIED=$(cat "$TMP/body")
login ada@example.com "not her password" d-usual
check_eq "word for word as a wrong password is (but the request id)" \
    "$(echo "$DENIED" | sed 's/"request_id":"[^"]*"//')" "$(sed 's/"request_id":"[^"]*"//' "$TMP/body")"
check_eq "and counted toward the lockout as one: two failures" "2" \
    "$("$DBQ" "$D" "SELECT failures FROM lockouts WHERE subject = 'customer:$ADA'")"
check_eq "the refusal is a failure in the audit log, naming its decision" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log a JOIN monitor_events e ON a.details LIKE '%\"decision\":\"' || e.decision_id || '\"%' WHERE a.action = 'auth.login' AND a.outcome = 'failure' AND e.decision = 'deny'")"
req DELETE "/v1/customers/$ADA/lockout" -H "$AUTH"
login ada@example.com "$PW" d-new
check_eq "a step-up asked of a customer without a second factor refuses the sign-in (the password alone could enrol one)" \
    "401 urn:custodia:problem:invalid_credentials" "$STATUS $(json "j['type']")"
req DELETE "/v1/customers/$ADA/lockout" -H "$AUTH"
req PATCH "/v1/customers/$ADA" -H "$AUTH" -H "$JSONH" --data '{"phone": "+441234567890"}'
check_eq "a change a rule denies is refused, naming the decision" "403 urn:custodia:problem:change_denied" \
    "$STATUS $(json "j['type']")"
check "with its id" sh -c "grep -Eq 'decision dec_[0-9a-f]{16}' '$TMP/body'"
req GET "/v1/customers/$ADA" -H "$AUTH" -H "Custodia-Reason: test"
check_eq "and changes nothing" "None" "$(json "j.get('phone')")"
login ada@example.com "$PW" d-usual
check_eq "another device signs in as ever" 200 "$STATUS"
TOK2="Authorization: Bearer $(json "j['token']")"
req GET "/v1/customers/$ADA/accounts" -H "$TOK2"
check_eq "and acts" 200 "$STATUS"
stop_server
finish
