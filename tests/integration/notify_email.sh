#!/bin/sh
# Notifications by e-mail (docs/notifications.md), through an SMTP server on 127.0.0.1
# (smtp_server.py, Debian's python3-aiosmtpd) that requires STARTTLS and a password: a notice
# to a customer whose language is Simplified Chinese is written in Chinese, one to a customer
# in English in English, each to the customer's own address from the vault, with no other
# personal data; a server that refuses the recipient makes the notice retried, then dead, with
# the server's answer as the reason; a wrong password is refused the same way.
. "$(dirname "$0")/lib.sh"
if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "python3-aiosmtpd is missing (scripts/deps.sh installs it)"
    exit 1
fi

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/n.rules" <<'EOF2'
rule notify_failed_sign_in
  when event.type == "login_failed"
  then notify_customer, reason "a failed sign-in"
EOF2
printf 'correct horse battery\n' >"$D/smtp.password"
chmod 600 "$D/smtp.password"
SPID=
trap 'kill -KILL $SPID 2>/dev/null; cleanup' EXIT
# smtp NAME PASSWORD [ARGS...]: an SMTP server writing into $TMP/NAME; sets SPORT
smtp() {
    sd="$TMP/$1"
    mkdir -p "$sd"
    /usr/bin/python3 "$SRC/tests/integration/smtp_server.py" "$sd" "$D/tls.crt" "$D/tls.key" \
        custodia "$2" ${3:+"$3"} &
    # shellcheck disable=SC2034
    SPID=$!
    i=0
    while [ ! -e "$sd/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    SPORT=$(cat "$sd/port")
}
row() { "$DBQ" "$D" "SELECT status, attempts FROM notify_outbox WHERE customer = '$1' AND channel = 'email'"; }
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
event() {
    req POST /v1/events -H "$AUTH" -H "$JSONH" \
        --data "{\"type\": \"login_failed\", \"customer\": \"$1\", \"time\": \"$NOW\"}"
}
serve() {
    start_server "$D" CUSTODIA_MONITOR_RULES=n.rules CUSTODIA_NOTIFY_EMAIL_URL="smtp://127.0.0.1:$SPORT" \
        CUSTODIA_NOTIFY_EMAIL_USER=custodia CUSTODIA_NOTIFY_EMAIL_PASSWORD_FILE=smtp.password \
        CUSTODIA_NOTIFY_EMAIL_CA_FILE=tls.crt CUSTODIA_NOTIFY_EMAIL_FROM=security@bank.example \
        CUSTODIA_NOTIFY_RETRY_BASE_MS=200 CUSTODIA_NOTIFY_MAX_ATTEMPTS=3
}

smtp mail "correct horse battery"
serve || exit 1
req POST /v1/customers -H "$AUTH" -H "$JSONH" \
    --data '{"email": "li.wei@example.cn", "given_name": "Wei", "family_name": "Li", "language": "zh-Hans"}'
LI=$(json "j['id']")
req POST /v1/customers -H "$AUTH" -H "$JSONH" \
    --data '{"email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace", "language": "en-GB"}'
ADA=$(json "j['id']")
event "$LI"
until_eq "sent|1" row "$LI"
event "$ADA"
until_eq "sent|1" row "$ADA"
check_eq "both e-mails are sent" "sent|1 sent|1" "$(row "$LI") $(row "$ADA")"
# read_mail N: "to|subject|language|first line of the body" of the N-th message
read_mail() {
    python3 - "$TMP/mail/mail-$1.eml" "$TMP/mail/mail-$1.json" <<'PY'
import email, email.header, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
env = json.load(open(sys.argv[2]))
body = m.get_content()
print("|".join([",".join(env["to"]), str(m["Subject"]), m["Content-Language"],
                body.split("\n")[0], m["From"], str("我们绝不会" in body or "We will never ask" in body)]))
PY
}
check_eq "the first, in Simplified Chinese, to the customer's own address" \
    "li.wei@example.cn|您的账户安全提醒|zh-Hans|您好：|security@bank.example|True" "$(read_mail 1)"
check_eq "the second in English" \
    "ada@example.com|A security check on your account|en|Hello,|security@bank.example|True" "$(read_mail 2)"
check "no name, no other personal data" absent -e "Wei" -e "Lovelace" -e "Ada" "$TMP/mail/mail-1.eml" "$TMP/mail/mail-2.eml"
check "the body is base64-encoded UTF-8 text" grep -q "^Content-Transfer-Encoding: base64" "$TMP/mail/mail-1.eml"
check "nor the address in the log" absent -e "li.wei@example.cn" -e "ada@example.com" "$LOG"
stop_server
kill -KILL "$SPID"
wait "$SPID" 2>/dev/null

# a server that refuses the recipient: retried, then dead, with its answer
smtp refusing "correct horse battery" --refuse
serve || exit 1
event "$ADA"
until_eq "dead|3" sh -c "\"$DBQ\" \"$D\" \"SELECT status, attempts FROM notify_outbox WHERE customer = '$ADA' AND channel = 'email' AND status <> 'sent'\""
check_eq "a refused recipient is retried, then the notice is dead" "dead|3" \
    "$("$DBQ" "$D" "SELECT status, attempts FROM notify_outbox WHERE customer = '$ADA' AND channel = 'email' AND status <> 'sent'")"
"$DBQ" "$D" "SELECT last_error FROM notify_outbox WHERE customer = '$ADA' AND status = 'dead'" >"$TMP/err"
check "with the server's refusal as the reason" grep -qi "recipient\|RCPT\|550" "$TMP/err"
stop_server
kill -KILL "$SPID"
wait "$SPID" 2>/dev/null

# a server that offers no STARTTLS: nothing goes out in clear
smtp plain "correct horse battery" --plain
serve || exit 1
event "$ADA"
until_eq "pending" sh -c "\"$DBQ\" \"$D\" \"SELECT status FROM notify_outbox WHERE customer = '$ADA' AND status = 'pending' AND attempts >= 1\""
"$DBQ" "$D" "SELECT last_error FROM notify_outbox WHERE customer = '$ADA' AND status = 'pending'" >"$TMP/err"
sed 's/^/# last error: /' "$TMP/err"
check "a server without STARTTLS is refused" grep -qi "TLS\|SSL\|upgrade" "$TMP/err"
check_eq "and receives nothing" 0 "$(ls "$TMP/plain" | grep -c '\.eml$')"
stop_server
kill -KILL "$SPID"
wait "$SPID" 2>/dev/null

# a wrong password
smtp strict "another password"
serve || exit 1
event "$LI"
until_eq "pending" sh -c "\"$DBQ\" \"$D\" \"SELECT status FROM notify_outbox WHERE customer = '$LI' AND status <> 'sent' AND attempts >= 1\""
"$DBQ" "$D" "SELECT last_error FROM notify_outbox WHERE customer = '$LI' AND status <> 'sent'" >"$TMP/err"
sed 's/^/# last error: /' "$TMP/err"
check "a refused password fails the delivery, saying so" grep -qi "login\|auth" "$TMP/err"
check "and never shows the password" absent -e "correct horse" "$TMP/err" "$LOG"
check_eq "nothing reached the strict server" 0 "$(ls "$TMP/strict" | grep -c '\.eml$')"
stop_server
finish
