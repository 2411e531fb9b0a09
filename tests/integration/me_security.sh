#!/bin/sh
# The customer's own security page (docs/api.md, "The customer's security page"): sessions,
# devices, sign-ins with device and country, events, notices and reports; forgetting a device
# ends its sessions; a report of suspicious activity opens an alert and a case, answers with a
# reference, queues report_received, and the customer sees its status and the staff's answer;
# the report's text is a secret of the customer's (never in the audit log); the customer
# freezes their own accounts at once, and unfreezing needs a step-up and waits the cool-down.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 CUSTODIA_CASES_SELF_UNFREEZE_MINUTES=30 \
    CUSTODIA_NOTIFY_WEBHOOK_URL="https://127.0.0.1:$(free_port)/hook" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
PW="amber violin harbour 77"
idem() { echo "Idempotency-Key: k-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; }

req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com", "language": "en"}'
ADA=$(json "j['id']")
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "bob@example.com"}'
BOB=$(json "j['id']")
req PUT "/v1/customers/$ADA/password" -H "$AUTH" -H "$JSONH" --data "{\"password\": \"$PW\"}"
req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
A=$(json "j['id']")
req POST "/v1/customers/$BOB/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
B=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "$(idem)" --data "{\"account\": \"$A\", \"amount\": 10000, \"currency\": \"EUR\"}"
req POST /v1/transfers -H "$AUTH" -H "$JSONH" -H "$(idem)" --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 100, \"currency\": \"EUR\", \"code\": \"payment\"}"
T=$(json "j['transfer']['id']")
login() { # DEVICE
    req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"ada@example.com\", \"password\": \"$PW\", \"kind\": \"customer\", \"device_id\": \"$1\"}"
    echo "Authorization: Bearer $(json "j['token']")"
}
PHONE=$(login phone-1)
LAPTOP=$(login laptop-2)

req GET /v1/me/security -H "$AUTH"
check_eq "an API key has no security page of its own" 403 "$STATUS"
req GET /v1/me/security -H "$PHONE"
check_eq "the customer's page" "200 $ADA 2" "$STATUS $(json "j['customer']") $(json "len(j['sessions'])")"
check_eq "names its devices, and which session is this one" "laptop-2 phone-1 phone-1" \
    "$(json "' '.join(sorted(d['device'] for d in j['devices'])) + ' ' + [s for s in j['sessions'] if s['current']][0]['device']")"
check_eq "lists its sign-ins with their device" "2 login_succeeded laptop-2" \
    "$(json "len(j['sign_ins'])") $(json "j['sign_ins'][0]['type']") $(json "j['sign_ins'][0]['device']")"
check "and shows no address, score or rule" absent -e '"ip"' -e '"score"' -e '"rules"' "$TMP/body"
SIGNIN=$(json "j['sign_ins'][0]['id']")

# forgetting a device ends its sessions
req DELETE /v1/me/devices/laptop-2 -H "$PHONE"
check_eq "forgetting a device ends its session" "200 1 0" \
    "$STATUS $(json "j['sessions_ended']") $(json "j['sessions_left']")"
req GET /v1/me/security -H "$PHONE"
check_eq "and it leaves the page, its sign-ins with it" "phone-1 phone-1" \
    "$(json "' '.join(d['device'] for d in j['devices'])") $(json "' '.join(s['device'] for s in j['sign_ins'])")"
req GET /v1/me -H "$LAPTOP"
check_eq "which no longer works" 401 "$STATUS"
req GET /v1/me -H "$PHONE"
check_eq "while the others do" 200 "$STATUS"
check_eq "audited" 1 "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'customer.device_forget' AND target = 'customer:$ADA'")"

# a report of suspicious activity
report() { req POST /v1/me/reports -H "$PHONE" -H "$JSONH" --data "$1"; }
report "{\"text\": \"I did not make this payment: my card number was in a fake shop\", \"transfer\": \"$T\"}"
check_eq "a report answers with a reference" "201 received transfer" \
    "$STATUS $(json "j['status']") $(json "list(j['concerns'])[0]")"
RPT=$(json "j['id']")
CASE=$("$DBQ" "$D" "SELECT case_id FROM case_reports WHERE id = '$RPT'")
check_eq "and opens an alert and a case from the report" "1 report" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM alerts WHERE id = 'alr_${RPT#rpt_}' AND type = 'customer_report' AND customer = '$ADA'") $("$DBQ" "$D" "SELECT source FROM cases WHERE id = '$CASE'")"
check_eq "and queues the customer's notice" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE customer = '$ADA' AND template = 'report_received' AND data LIKE '%$RPT%'")"
req GET "/v1/cases/$CASE" -H "$AUTH"
check_eq "staff read it in the case" "$RPT I did not make this payment: my card number was in a fake shop" \
    "$(json "j['reports'][0]['report']") $(json "j['reports'][0]['text']")"
check "the text is sealed, not stored in the clear" sh -c "! \"$DBQ\" \"$D\" \"SELECT * FROM case_reports\" | grep -q 'fake shop'"
check_eq "and the audit log holds none of it" 0 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE details LIKE '%fake shop%'")"
report "{\"text\": \"a sign-in I do not know\", \"sign_in\": \"$SIGNIN\"}"
check_eq "a report may concern a sign-in, and joins the customer's open case" "201 $CASE" \
    "$STATUS $("$DBQ" "$D" "SELECT case_id FROM case_reports WHERE id = '$(json "j['id']")'")"
report '{"text": "x", "transfer": "trf_0123456789abcdef"}'
check_eq "a transfer that is not the customer's is refused" "400 urn:custodia:problem:unknown_transfer" \
    "$STATUS $(json "j['type']")"
report "{\"text\": \"x\", \"transfer\": \"$T\", \"sign_in\": \"$SIGNIN\"}"
check_eq "one thing at a time" 400 "$STATUS"
python3 -c 'print("{\"text\": \"" + "x" * 1001 + "\"}")' >"$TMP/long.json"
req POST /v1/me/reports -H "$PHONE" -H "$JSONH" --data @"$TMP/long.json"
check_eq "a report over 1,000 bytes is 413" 413 "$STATUS"
report '{"text": ""}'
check_eq "an empty one is 400" 400 "$STATUS"
req POST /v1/me/reports -H "$AUTH" -H "$JSONH" --data '{"text": "x"}'
check_eq "only a customer reports" 403 "$STATUS"

# the staff's answer, and the status the customer sees
req POST "/v1/cases/$CASE/reports/$RPT/answer" -H "$AUTH" -H "$JSONH" \
    --data '{"text": "We blocked the card and returned the money."}'
check_eq "staff answer the report" "200 We blocked the card and returned the money." \
    "$STATUS $(json "[r for r in j['reports'] if r['report'] == '$RPT'][0]['answer']")"
req POST "/v1/cases/$CASE/reports/rpt_0123456789abcdef/answer" -H "$AUTH" -H "$JSONH" --data '{"text": "x"}'
check_eq "an unknown report is 404" "404 urn:custodia:problem:unknown_report" "$STATUS $(json "j['type']")"
req POST "/v1/cases/$CASE/stage" -H "$AUTH" -H "$JSONH" --data '{"stage": "assessing"}'
req GET /v1/me/security -H "$PHONE"
check_eq "the customer sees the answer and that it is looked at" "investigating We blocked the card and returned the money." \
    "$(json "[r for r in j['reports'] if r['id'] == '$RPT'][0]['status']") $(json "[r for r in j['reports'] if r['id'] == '$RPT'][0]['answer']")"
check_eq "and the notices sent to them: the report's, and by the default rules the password set and the second device's sign-in" \
    "new_sign_in password_changed report_received" "$(json "' '.join(sorted(set(n['template'] for n in j['notifications'])))")"

# the customer's own freeze
req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
A2=$(json "j['id']")
req POST /v1/me/freeze -H "$PHONE"
check_eq "the customer freezes their accounts at once" "200 2 True" \
    "$STATUS $(json "j['frozen_accounts']") $(json "j['by_you']")"
req POST /v1/transfers -H "$PHONE" -H "$JSONH" -H "$(idem)" --data "{\"debit_account\": \"$A\", \"credit_account\": \"$B\", \"amount\": 100, \"currency\": \"EUR\", \"code\": \"payment\"}"
check_eq "nothing leaves them" "409 urn:custodia:problem:account_frozen" "$STATUS $(json "j['type']")"
check_eq "the freeze is audited and told" "1 1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'customer.self_freeze' AND target = 'customer:$ADA'") $("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE customer = '$ADA' AND template = 'accounts_frozen'")"
# a second factor, so that the session (aal1 after enrolment) must step up
req POST /v1/me/mfa/totp -H "$PHONE"
SECRET=$(json "j['otpauth_uri']" | sed 's/.*secret=\([A-Z2-7]*\).*/\1/')
req POST /v1/me/mfa/totp/confirm -H "$PHONE" -H "$JSONH" --data "{\"code\": \"$(oathtool --totp -b "$SECRET")\"}"
check_eq "the customer enrols a second factor" 200 "$STATUS"
req POST /v1/me/unfreeze -H "$PHONE"
check_eq "unfreezing needs a step-up" "401 urn:custodia:problem:step_up_required" "$STATUS $(json "j['type']")"
req POST /v1/auth/step-up -H "$PHONE" -H "$JSONH" --data "{\"code\": \"$(oathtool --totp -b "$SECRET" -N 'now + 30 seconds')\"}"
check_eq "the customer steps up" 200 "$STATUS"
# the company freezes one of them for a time, over the customer's own freeze
req POST "/v1/accounts/$A2/freeze" -H "$AUTH" -H "$JSONH" --data '{"reason": "frozen by the customer"}'
check_eq "the customer's own freeze's reason is no one else's" 400 "$STATUS"
req POST "/v1/accounts/$A2/freeze" -H "$AUTH" -H "$JSONH" \
    --data "{\"reason\": \"card fraud\", \"until\": \"$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)\"}"
check_eq "staff freeze an account the customer froze" 200 "$STATUS"
req POST /v1/me/unfreeze -H "$PHONE"
check_eq "then the unfreeze waits the cool-down" "202 2 True" \
    "$STATUS $(json "j['frozen_accounts']") $(json "j['unfreeze_at'] is not None")"
check_eq "thirty minutes" 1 "$(json "1 if 1790 <= (__import__('datetime').datetime.fromisoformat(j['unfreeze_at'].replace('Z', '+00:00')) - __import__('datetime').datetime.now(__import__('datetime').timezone.utc)).total_seconds() <= 1801 else 0")"
check_eq "and the customer is told at once" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE customer = '$ADA' AND template = 'unfreeze_requested'")"
req POST /v1/me/unfreeze -H "$PHONE"
check_eq "asking again changes nothing" "202 2" "$STATUS $(json "j['frozen_accounts']")"
sleep 1.5
req GET "/v1/accounts/$A" -H "$AUTH"
check_eq "still frozen during the cool-down" frozen "$(json "j['status']")"
# the cool-down over (moved into the past): the leading node lifts the customer's freeze
"$DBQ" "$D" "UPDATE self_freezes SET unfreeze_at = 1 WHERE customer = '$ADA'" >/dev/null
st() { req GET "/v1/accounts/$A" -H "$AUTH"; json "j['status']"; }
until_eq active st
check_eq "after it the customer's own freeze is lifted" active "$(st)"
req GET "/v1/accounts/$A2" -H "$AUTH"
check_eq "and the company's stays" "frozen card fraud" "$(json "j['status']") $(json "j['freeze']['reason']")"
check_eq "audited" 1 "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'customer.self_unfreeze' AND target = 'customer:$ADA'")"
req POST /v1/me/unfreeze -H "$PHONE"
check_eq "an unfreeze without the customer's own freeze is 409" "409 urn:custodia:problem:not_frozen_by_you" \
    "$STATUS $(json "j['type']")"

# erasure: the report's text goes with the customer's key, and the staff's answer with it
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "cat@example.com"}'
CAT=$(json "j['id']")
req PUT "/v1/customers/$CAT/password" -H "$AUTH" -H "$JSONH" --data "{\"password\": \"$PW\"}"
req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"cat@example.com\", \"password\": \"$PW\", \"kind\": \"customer\"}"
CATS="Authorization: Bearer $(json "j['token']")"
req POST /v1/me/reports -H "$CATS" -H "$JSONH" --data '{"text": "someone called me pretending to be you"}'
CRPT=$(json "j['id']")
CCASE=$("$DBQ" "$D" "SELECT case_id FROM case_reports WHERE id = '$CRPT'")
req POST "/v1/cases/$CCASE/reports/$CRPT/answer" -H "$AUTH" -H "$JSONH" --data '{"text": "Thank you, Cat: that was not us."}'
req DELETE "/v1/customers/$CAT" -H "$AUTH"
check_eq "the customer is erased" 200 "$STATUS"
req GET "/v1/cases/$CCASE" -H "$AUTH"
check_eq "and the report's text and the answer are gone from the case" "200 None None" \
    "$STATUS $(json "j['reports'][0]['text']") $(json "j['reports'][0]['answer']")"
finish
