#!/bin/sh
# Sign-in through the API: passwords and their policy, TOTP enrolment with codes made by the
# real client (oathtool), the second step with a code or a recovery code, replays, step-up,
# sessions and their revocation, staff who must enrol, lockout with Retry-After and its
# clearing, exact counting of concurrent failures, timing parity of unknown and known logins,
# and nothing secret in the database or the audit log.
. "$(dirname "$0")/lib.sh"

command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
# A high threshold first: the timing and concurrency checks fail many times on purpose. The
# sign-in rate limit (tests/integration/rate_limits.sh) is off: this tests what lies behind it.
# So are monitoring's rules (an empty rule file): the default pack locks an account after five
# failures in fifteen minutes, which tests/integration/monitor_signin.sh checks.
: >"$D/none.rules"
export CUSTODIA_MONITOR_RULES=none.rules
start_server "$D" CUSTODIA_IDENTITY_LOCKOUT_THRESHOLD=1000 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
PW='quiet harbour lantern 42'

login() { # login LOGIN PASSWORD [KIND]
    req POST /v1/auth/login -H "$JSONH" \
        --data "{\"login\": \"$1\", \"password\": \"$2\", \"kind\": \"${3:-customer}\", \"device_id\": \"it-device\"}"
}
secret_of() { # the base32 secret in the otpauth URI of the last answer
    json "j['otpauth_uri']" | sed 's/.*secret=\([A-Z2-7]*\).*/\1/'
}

req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "mira.k@example.com", "external_ref": "app:7"}'
ID=$(json "j['id']")

# Passwords: policy errors name the rule, never the password.
req PUT "/v1/customers/$ID/password" -H "$AUTH" -H "$JSONH" --data '{"password": "sunshine12345"}'
check_eq "a common password is refused" 400 "$STATUS"
check_eq "with the rule named" "field 'password': the password is too common" "$(json "j['detail']")"
req PUT "/v1/customers/$ID/password" -H "$AUTH" -H "$JSONH" --data '{"password": "x mira.k@example.com"}'
check_eq "a password holding the e-mail is refused" 400 "$STATUS"
check_eq "with the rule named" "field 'password': the password must not contain the e-mail address" \
    "$(json "j['detail']")"
req PUT "/v1/customers/$ID/password" -H "$AUTH" -H "$JSONH" --data '{"password": "Mira.K rides a bike"}'
check_eq "a password holding the part of the e-mail before the @ is refused" 400 "$STATUS"
check_eq "with that part named, not spelt out" \
    "field 'password': the password must not contain the part of the e-mail address before the @" \
    "$(json "j['detail']")"
req PUT "/v1/customers/$ID/password" -H "$AUTH" -H "$JSONH" --data '{"password": "short"}'
check_eq "a short password is refused" 400 "$STATUS"
req PUT "/v1/customers/$ID/password" -H "$AUTH" -H "$JSONH" --data '{"password": "'"$PW"'", "x": 1}'
check_eq "an unknown field is refused" 400 "$STATUS"
req PUT "/v1/customers/$ID/password" -H "$AUTH" -H "$JSONH" --data '{"password": "'"$PW"'"}'
check_eq "a good password is set" 204 "$STATUS"
req PUT "/v1/customers/cus_0000000000000000/password" -H "$AUTH" -H "$JSONH" --data '{"password": "'"$PW"'"}'
check_eq "an unknown customer is 404" 404 "$STATUS"

# Sign-in: e-mail (any case) or external reference; failures say nothing about the account.
login "MIRA.K@example.com" "$PW"
check_eq "sign-in by e-mail" "signed_in" "$(json "j['status']")"
TOK=$(json "j['token']")
check_eq "at aal1" "aal1" "$(json "j['session']['aal']")"
login "app:7" "$PW"
check_eq "sign-in by external reference" 200 "$STATUS"
login "mira.k@example.com" "wrong but long enough"
check_eq "a wrong password is 401" 401 "$STATUS"
check_eq "typed invalid_credentials" "urn:custodia:problem:invalid_credentials" "$(json "j['type']")"
WRONG=$(json "j['detail']")
login "nobody@example.com" "wrong but long enough"
check_eq "an unknown login is 401 too" 401 "$STATUS"
check_eq "with the same detail" "$WRONG" "$(json "j['detail']")"
req POST /v1/auth/login -H "$JSONH" --data '{"login": "a@b.c"}'
check_eq "a missing password is 400" 400 "$STATUS"
req POST /v1/auth/login -H 'Content-Type: text/plain' --data '{}'
check_eq "a wrong content type is 415" 415 "$STATUS"
LONGPW=$(python3 -c 'print("p" * 1100)')
login "mira.k@example.com" "$LONGPW"
check_eq "an oversize password is 400" 400 "$STATUS"

check "timing: unknown and known logins cost the same" \
    python3 "$SRC/tests/integration/timing.py" "$PORT" "$CA" "mira.k@example.com" "nobody@example.com" 30

# Concurrent failures on one account are all counted.
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "cc@example.com"}'
CC=$(json "j['id']")
req PUT "/v1/customers/$CC/password" -H "$AUTH" -H "$JSONH" --data '{"password": "'"$PW"'"}'
seq 1 16 | xargs -P 16 -I{} curl -s -o /dev/null --cacert "$CA" -H "$JSONH" \
    --data '{"login": "cc@example.com", "password": "wrong password {}"}' "$URL/v1/auth/login"
req GET "/v1/customers/$CC/credentials" -H "$AUTH"
check_eq "16 concurrent failures count 16" 16 "$(json "j['failed_sign_ins']")"

# Sessions.
req GET /v1/me -H "Authorization: Bearer $TOK"
check_eq "/v1/me with the session" "$ID" "$(json "j['id']")"
check_eq "a customer's scopes are an empty array" "[]" "$(json "j['scopes']")"
req GET /v1/customers -H "Authorization: Bearer $TOK"
check_eq "a customer session cannot use key routes" 403 "$STATUS"
req GET /v1/me -H "$AUTH"
check_eq "an API key cannot use /v1/me" 403 "$STATUS"
req GET /v1/me -H "Authorization: Bearer css_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
check_eq "an unknown session token is 401" 401 "$STATUS"

# TOTP enrolment with the real client.
req POST /v1/me/mfa/totp -H "Authorization: Bearer $TOK"
check_eq "enrolment starts" 200 "$STATUS"
SECRET=$(secret_of)
check "with an SVG QR code" sh -c "python3 -c \"import json,sys; j=json.load(open('$TMP/body')); sys.exit(0 if j['qr_svg'].startswith('<svg') else 1)\""
req POST /v1/me/mfa/totp/confirm -H "Authorization: Bearer $TOK" -H "$JSONH" --data '{"code": "000000"}'
check_eq "a wrong first code does not confirm" 401 "$STATUS"
req POST /v1/me/mfa/totp/confirm -H "Authorization: Bearer $TOK" -H "$JSONH" \
    --data "{\"code\": \"$(oathtool --totp -b "$SECRET")\"}"
check_eq "oathtool's code confirms" 200 "$STATUS"
check_eq "ten recovery codes" 10 "$(json "len(set(j['recovery_codes']))")"
RC1=$(json "j['recovery_codes'][0]")
RC2=$(json "j['recovery_codes'][1]")

# The enrolling session is aal1 on an account that now has TOTP: fresh-auth routes step up.
req POST /v1/me/recovery-codes -H "Authorization: Bearer $TOK"
check_eq "regenerating codes needs a step-up" 401 "$STATUS"
check_eq "typed step_up_required" "urn:custodia:problem:step_up_required" "$(json "j['type']")"
req POST /v1/auth/step-up -H "Authorization: Bearer $TOK" -H "$JSONH" --data '{"password": "'"$PW"'"}'
check_eq "an account with TOTP steps up with a code, not a password" 400 "$STATUS"
NEXT=$(oathtool --totp -b "$SECRET" -N "now + 30 seconds")
req POST /v1/auth/step-up -H "Authorization: Bearer $TOK" -H "$JSONH" --data "{\"code\": \"$NEXT\"}"
check_eq "step-up with the next code" 200 "$STATUS"
check_eq "makes the session aal2" "aal2" "$(json "j['session']['aal']")"
req POST /v1/me/recovery-codes -H "Authorization: Bearer $TOK"
check_eq "then the codes are made" 200 "$STATUS"
RC1=$(json "j['recovery_codes'][0]")
RC2=$(json "j['recovery_codes'][1]")

# The second step.
login "mira.k@example.com" "$PW"
check_eq "a password now asks for the second factor" "mfa_required" "$(json "j['status']")"
CH=$(json "j['challenge']")
req POST /v1/auth/mfa -H "$JSONH" --data "{\"challenge\": \"$CH\", \"code\": \"$NEXT\"}"
check_eq "a code already used is refused (replay)" 401 "$STATUS"
# Every code in the window is now at or before the step used: a recovery code it is.
req POST /v1/auth/mfa -H "$JSONH" --data "{\"challenge\": \"$CH\", \"code\": \"$(echo "$RC1" | tr a-z A-Z)\"}"
check_eq "a recovery code signs in (any case)" 200 "$STATUS"
check_eq "at aal2" "aal2" "$(json "j['session']['aal']")"
TOK2=$(json "j['token']")
req POST /v1/auth/mfa -H "$JSONH" --data "{\"challenge\": \"$CH\", \"code\": \"$RC2\"}"
check_eq "a challenge works once" 401 "$STATUS"
login "mira.k@example.com" "$PW"
CH=$(json "j['challenge']")
req POST /v1/auth/mfa -H "$JSONH" --data "{\"challenge\": \"$CH\", \"code\": \"$RC1\"}"
check_eq "a recovery code works only once" 401 "$STATUS"

req GET /v1/me/sessions -H "Authorization: Bearer $TOK2"
HK_LOCAL=$("$BIN" audit hash --kind ip 127.0.0.1 --dir "$D")
check "the sessions are listed with their device's address, hashed as the audit log hashes it" sh -c \
    "python3 -c \"import json; j=json.load(open('$TMP/body')); assert len(j['items']) >= 2 and j['items'][0]['ip'] == '$HK_LOCAL'\""
SID=$(json "[s['id'] for s in j['items'] if not s['current']][0]")
req DELETE "/v1/me/sessions/$SID" -H "Authorization: Bearer $TOK2"
check_eq "another session is revoked" 204 "$STATUS"
req DELETE "/v1/me/sessions/$SID" -H "Authorization: Bearer $TOK2"
check_eq "twice is 404" 404 "$STATUS"
req POST /v1/auth/logout -H "Authorization: Bearer $TOK2"
check_eq "logout" 204 "$STATUS"
req GET /v1/me -H "Authorization: Bearer $TOK2"
check_eq "a logged-out token is refused" 401 "$STATUS"
for i in $(seq 1 24); do req GET /v1/me -H "Authorization: Bearer $TOK2"; done
check_eq "ended sessions do not count against the address (25 tries, still 401)" 401 "$STATUS"

# The first administrator, made by custodia init, signs in with the password it left.
login "admin@custodia.localhost" "$(cat "$D/initial-admin-password")" staff
check_eq "the initial administrator signs in" "signed_in" "$(json "j['status']")"
check_eq "and must enrol TOTP" True "$(json "j['mfa_enrolment_required']")"

# Staff must enrol TOTP before anything else, and need aal2 for scoped routes.
SPW=$(printf '%s\n' 'staff lantern harbour 99' | "$BIN" staff add --dir "$D" --email ops@example.com \
    --name "Oda Ops" --scope customers.read --password-stdin 2>/dev/null)
check "custodia staff add prints the id" sh -c "echo '$SPW' | grep -q '^stf_'"
login "ops@example.com" 'staff lantern harbour 99' staff
check_eq "staff sign in" 200 "$STATUS"
check_eq "and are told to enrol" True "$(json "j['mfa_enrolment_required']")"
STOK=$(json "j['token']")
req GET /v1/customers -H "Authorization: Bearer $STOK"
check_eq "before enrolment, scoped routes are closed" 403 "$STATUS"
check_eq "typed mfa_enrolment_required" "urn:custodia:problem:mfa_enrolment_required" "$(json "j['type']")"
req POST /v1/me/mfa/totp -H "Authorization: Bearer $STOK"
SSECRET=$(secret_of)
req POST /v1/me/mfa/totp/confirm -H "Authorization: Bearer $STOK" -H "$JSONH" \
    --data "{\"code\": \"$(oathtool --totp -b "$SSECRET")\"}"
check_eq "staff enrol" 200 "$STATUS"
login "ops@example.com" 'staff lantern harbour 99' staff
CH=$(json "j['challenge']")
req POST /v1/auth/mfa -H "$JSONH" --data "{\"challenge\": \"$CH\", \"code\": \"$(oathtool --totp -b "$SSECRET" -N 'now + 30 seconds')\"}"
STOK=$(json "j['token']")
req GET /v1/customers -H "Authorization: Bearer $STOK"
check_eq "an aal2 staff session uses its scope" 200 "$STATUS"
req GET /v1/me -H "Authorization: Bearer $STOK"
check_eq "/v1/me gives a staff member's scopes as an array of names" "['customers.read']" \
    "$(json "j['scopes']")"
req POST /v1/staff -H "Authorization: Bearer $STOK" -H "$JSONH" \
    --data '{"email": "x@example.com", "name": "X", "scopes": ["customers.read"]}'
check_eq "but not a scope it lacks" 403 "$STATUS"
req POST /v1/staff -H "$AUTH" -H "$JSONH" --data '{"email": "OPS@example.com", "name": "Dup", "scopes": ["customers.read"]}'
check_eq "a staff e-mail is unique" 409 "$STATUS"

# Nothing secret at rest or in the audit log.
db_dump "$D" "$TMP/db.bytes"
check "no password in the database" absent -a -e 'quiet harbour' -e 'staff lantern' "$TMP/db.bytes"
check "no TOTP secret in the database" absent -a -e "$SECRET" -e "$SSECRET" "$TMP/db.bytes"
check "no staff e-mail in the clear" absent_out "'$DBQ' '$D' 'SELECT * FROM staff'" ops@example
check "the audit log has no login e-mail, password or code" \
    absent_out "'$DBQ' '$D' 'SELECT details FROM audit_log'" \
    -e mira.k -e 'quiet harbour' -e "$RC1" -e "$NEXT"
check "sign-ins are audited" sh -c "[ \$('$DBQ' '$D' \"SELECT count(*) FROM audit_log WHERE action = 'auth.login'\") -gt 50 ]"
check "sign-in events carry the device" sh -c \
    "'$DBQ' '$D' \"SELECT device_id FROM auth_events WHERE kind = 'login_failed'\" | grep -q it-device"
# Unknown session tokens do count against the address (last: it blocks 127.0.0.1 a minute).
for i in $(seq 1 21); do req GET /v1/me -H "Authorization: Bearer css_$(printf '%043d' "$i")"; done
check_eq "unknown session tokens count against the address" 429 "$STATUS"
stop_server

# Lockout with the default schedule: 5 failures, then 30 s, doubling; unknown logins too.
start_server "$D" CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 || exit 1
req DELETE "/v1/customers/$ID/lockout" -H "$AUTH"
check_eq "an admin clears the failures of the first part" 204 "$STATUS"
for i in 1 2 3 4 5; do login "app:7" "wrong password number $i"; done
check_eq "the fifth failure is still 401" 401 "$STATUS"
login "app:7" "$PW"
check_eq "then even the right password waits" 429 "$STATUS"
check_eq "with Retry-After" 30 "$(header Retry-After)"
for i in 1 2 3 4 5 6; do login "ghost@example.com" "wrong password number $i"; done
check_eq "an unknown login locks out the same way" 429 "$STATUS"
req GET "/v1/customers/$ID/credentials" -H "$AUTH"
check "an admin sees the lockout" sh -c "python3 -c \"import json; j=json.load(open('$TMP/body')); assert j['locked_until'] and j['failed_sign_ins'] == 5\""
req DELETE "/v1/customers/$ID/lockout" -H "$AUTH"
check_eq "and clears it" 204 "$STATUS"
check "the clearing is audited" sh -c "'$DBQ' '$D' \"SELECT count(*) FROM audit_log WHERE action = 'lockout.cleared'\" | grep -q 2"
login "app:7" "$PW"
check_eq "then the right password works" "mfa_required" "$(json "j['status']")"

# A right password does not forget wrong codes: password, 4 wrong codes, password, 1 wrong
# code makes 5 failures, and the account waits.
CH=$(json "j['challenge']")
for i in 1 2 3 4; do
    req POST /v1/auth/mfa -H "$JSONH" --data "{\"challenge\": \"$CH\", \"code\": \"00000$i\"}"
done
login "app:7" "$PW"
check_eq "four wrong codes, then the password again, still asks for a code" "mfa_required" "$(json "j['status']")"
CH=$(json "j['challenge']")
req POST /v1/auth/mfa -H "$JSONH" --data "{\"challenge\": \"$CH\", \"code\": \"000009\"}"
login "app:7" "$PW"
check_eq "the fifth wrong code locks the account although a password was right between" 429 "$STATUS"
req DELETE "/v1/customers/$ID/lockout" -H "$AUTH"

# Only a company's sign-in service (a key with customers.credentials) reports the client's
# address and agent; anyone may give a device id. A User-Agent that is not UTF-8 is dropped.
login "mira.k@example.com" "wrong but long enough"
req POST /v1/auth/login -H "$JSONH" --data '{"login": "x@example.com", "password": "abcdefghijkl", "client_ip": "203.0.113.9"}'
check_eq "an anonymous caller cannot set the client address" 403 "$STATUS"
req POST /v1/auth/login -H "$JSONH" -H "$AUTH" --data '{"login": "x@example.com", "password": "abcdefghijkl", "client_ip": "203.0.113.9"}'
check_eq "a sign-in service can" 401 "$STATUS"
HK_REPORTED=$("$BIN" audit hash --kind ip 203.0.113.9 --dir "$D")
check "and the event carries that address, hashed" sh -c \
    "'$DBQ' '$D' \"SELECT ip FROM auth_events ORDER BY seq DESC LIMIT 1\" | grep -qxF -- '$HK_REPORTED'"
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ua@example.com"}'
UA_ID=$(json "j['id']")
req PUT "/v1/customers/$UA_ID/password" -H "$AUTH" -H "$JSONH" --data '{"password": "'"$PW"'"}'
req POST /v1/auth/login -H "$JSONH" -H "$(printf 'User-Agent: Mozilla\377')" \
    --data '{"login": "ua@example.com", "password": "'"$PW"'"}'
check_eq "a User-Agent that is not UTF-8 does not break a sign-in" 200 "$STATUS"

# staff.write cannot reach scopes it lacks through another staff member's password or status.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "hr", "scopes": ["staff.read", "staff.write"]}'
HR="Authorization: Bearer $(json "j['key']")"
req GET /v1/staff -H "$AUTH"
ADMIN=$(json "[s['id'] for s in j['items'] if s['email'] == 'admin@custodia.localhost'][0]")
req PUT "/v1/staff/$ADMIN/password" -H "$HR" -H "$JSONH" --data '{"password": "a takeover attempt 1"}'
check_eq "staff.write cannot set a stronger staff member's password" 403 "$STATUS"
req PATCH "/v1/staff/$ADMIN" -H "$HR" -H "$JSONH" --data '{"status": "disabled"}'
check_eq "nor disable them" 403 "$STATUS"
req DELETE "/v1/staff/$ADMIN/lockout" -H "$HR"
check_eq "nor clear their lockout" 403 "$STATUS"

# Erasure forgets the customer's credentials, sessions and sign-in events.
req DELETE "/v1/customers/$ID" -H "$AUTH"
check_eq "the customer is erased" 200 "$STATUS"
check "nothing of their sign-in is left" sh -c "[ \$('$DBQ' '$D' \"SELECT \
    (SELECT count(*) FROM credentials WHERE subject_id = '$ID') + \
    (SELECT count(*) FROM sessions WHERE subject_id = '$ID') + \
    (SELECT count(*) FROM recovery_codes WHERE subject_id = '$ID') + \
    (SELECT count(*) FROM customer_secrets WHERE customer_id = '$ID') + \
    (SELECT count(*) FROM auth_events WHERE subject_id = '$ID')\") = 0 ]"
login "app:7" "$PW"
check_eq "and they cannot sign in" 401 "$STATUS"
stop_server
finish
