#!/bin/sh
# Notifications by webhook (docs/notifications.md), against an HTTPS receiver on 127.0.0.1
# (webhook_receiver.py) that checks every signature: a notice queued by a monitoring decision
# is delivered after its commit, signed; a receiver that fails first gets it again with back-off
# until it answers, then the notice is sent; one that is away makes it dead after max_attempts,
# visible in the CLI, the API and the metrics, and replayed on request; a server killed with
# SIGKILL while a delivery is in flight delivers it once after its restart; a receiver with
# another key refuses the signature; a webhook URL that is not HTTPS, or a missing key file,
# stops the start with a clear error.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/n.rules" <<'EOF2'
rule notify_failed_sign_in
  when event.type == "login_failed"
  then notify_customer, reason "a failed sign-in"

rule tell_of_a_new_device
  when event.type == "login_succeeded" and first_seen(device)
  then notify_customer new_sign_in, reason "a sign-in from a new device"

rule big_withdrawal
  when event.type == "withdrawal" and event.amount >= 500000
  then alert high, reason "a large withdrawal"

rule odd_withdrawal
  when event.type == "withdrawal" and event.amount < 500000
  then alert medium, reason "a withdrawal"
EOF2
RPORT=$(free_port)
RPID=
trap 'kill -KILL $RPID 2>/dev/null; cleanup' EXIT
# receiver NAME [ARGS...]: a receiver on RPORT logging into $TMP/NAME
receiver() {
    rd="$TMP/$1"
    shift
    mkdir -p "$rd"
    rm -f "$rd/port"
    python3 "$SRC/tests/integration/webhook_receiver.py" "$rd" "$D/tls.crt" "$D/tls.key" \
        "${KEYFILE:-$D/webhook.secret}" --port "$RPORT" "$@" &
    RPID=$!
    i=0
    while [ ! -e "$rd/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
receiver_stop() {
    kill -KILL "$RPID" 2>/dev/null
    wait "$RPID" 2>/dev/null
    RPID=
}
# lines NAME CODE: how many requests NAME's receiver answered CODE (valid signatures)
lines() {
    python3 - "$TMP/$1/requests.jsonl" "$2" <<'PY'
import json, sys
try:
    rows = [json.loads(l) for l in open(sys.argv[1])]
except FileNotFoundError:
    rows = []
print(sum(1 for r in rows if r["status"] == int(sys.argv[2]) and r["valid"]))
PY
}
row() { "$DBQ" "$D" "SELECT status, attempts FROM notify_outbox WHERE id = '$1'"; }
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
SRV="CUSTODIA_MONITOR_RULES=n.rules CUSTODIA_NOTIFY_WEBHOOK_URL=https://127.0.0.1:$RPORT/hook CUSTODIA_NOTIFY_WEBHOOK_CA_FILE=tls.crt CUSTODIA_NOTIFY_RETRY_BASE_MS=200 CUSTODIA_NOTIFY_MAX_ATTEMPTS=4 CUSTODIA_NOTIFY_TIMEOUT_MS=2000"

# bad configurations stop the start, saying why
# shellcheck disable=SC2086
env CUSTODIA_SERVER_PORT="$(free_port)" CUSTODIA_NOTIFY_WEBHOOK_URL=http://example.com/hook \
    "$BIN" serve --dir "$D" >"$TMP/bad.out" 2>&1
check_eq "a webhook URL that is not HTTPS stops the start" \
    "2 1" "$? $(grep -c '\[notify\] webhook_url: must be https://' "$TMP/bad.out")"
env CUSTODIA_SERVER_PORT="$(free_port)" CUSTODIA_NOTIFY_WEBHOOK_URL="http://127.0.0.1:$RPORT/hook" \
    "$BIN" serve --dir "$D" >"$TMP/bad.out" 2>&1
check_eq "nor a plain one to a loopback address, unless allowed" \
    "2 1" "$? $(grep -c '\[notify\] webhook_url: must be https://' "$TMP/bad.out")"
env CUSTODIA_SERVER_PORT="$(free_port)" CUSTODIA_NOTIFY_WEBHOOK_URL="https://ops:hunter2@127.0.0.1:$RPORT/hook" \
    "$BIN" serve --dir "$D" >"$TMP/bad.out" 2>&1
check_eq "nor one with a password in it, which is not repeated" "2 1 0" \
    "$? $(grep -c 'must not hold a user name or password' "$TMP/bad.out") $(grep -c hunter2 "$TMP/bad.out")"
start_server "$D" CUSTODIA_NOTIFY_WEBHOOK_URL="http://127.0.0.1:$RPORT/hook" CUSTODIA_NOTIFY_ALLOW_LOOPBACK_HTTP=true || exit 1
check "a plain loopback URL starts when allowed" grep -q '"notify.started","webhook":true' "$LOG"
stop_server
env CUSTODIA_SERVER_PORT="$(free_port)" CUSTODIA_NOTIFY_WEBHOOK_URL="https://127.0.0.1:$RPORT/hook" \
    CUSTODIA_NOTIFY_WEBHOOK_SECRET_FILE=missing.secret "$BIN" serve --dir "$D" >"$TMP/bad.out" 2>&1
check_eq "a missing key file stops it, naming the key" \
    "2 1" "$? $(grep -c '\[notify\] webhook_secret_file: cannot open .*missing.secret' "$TMP/bad.out")"

# a receiver that fails twice, then answers
receiver first --fail 2
# shellcheck disable=SC2086
start_server "$D" $SRV || exit 1
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com", "given_name": "Ada"}'
ADA=$(json "j['id']")
event() {
    req POST /v1/events -H "$AUTH" -H "$JSONH" \
        --data "{\"type\": \"login_failed\", \"customer\": \"$1\", \"time\": \"$NOW\"}"
    DEC=$(json "j['id']")
}
event "$ADA"
check_eq "the decision queues a notice" "201 True" "$STATUS $(json "j['applied']['notify_customer']['queued']")"
N1=$("$DBQ" "$D" "SELECT id FROM notify_outbox WHERE customer = '$ADA'")
until_eq 1 lines first 204
check_eq "the receiver failed twice, then took it, every request signed" "2 1" \
    "$(lines first 500) $(lines first 204)"
until_eq "sent|3" row "$N1"
check_eq "the notice is sent, after three attempts" "sent|3" "$(row "$N1")"
python3 - "$TMP/first/requests.jsonl" "$N1" "$ADA" "$DEC" >"$TMP/body.check" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
b = rows[-1]["body"]
ok = (rows[-1]["id"] == sys.argv[2] and b["id"] == sys.argv[2] and b["type"] == "security_notice"
      and b["customer"] == sys.argv[3] and b["audience"] == "customer" and b["attempt"] == 3
      and b["data"] == {"decision": sys.argv[4], "event_type": "login_failed"}
      and [r["body"]["attempt"] for r in rows] == [1, 2, 3])
print("ok" if ok else rows)
PY
check_eq "its body names the notice, the customer and the decision, and each attempt" ok "$(cat "$TMP/body.check")"
check "and holds no personal data" absent -e "ada@example.com" -e '"Ada"' "$TMP/first/requests.jsonl"
check_eq "each outcome is audited" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'notify.deliver' AND details LIKE '%\"sent\":[\"$N1\"]%'")"
req GET /metrics -H "$AUTH"
check_eq "the metrics count the delivery and the failed attempts" "1 2" \
    "$(awk '$1 == "custodia_notify_sent_total{channel=\"webhook\"}" {print $2}' "$TMP/body") $(awk '$1 == "custodia_notify_failed_total{channel=\"webhook\"}" {print $2}' "$TMP/body")"
check "and the time from commit to delivery" grep -q '^custodia_notify_delivery_seconds_count 1$' "$TMP/body"

# a rule that names its notice: a sign-in from a new device, with the device and country only
# (what is not an id or a code in them shown as _), and not again for the same device
signin() {
    req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"customer\": \"$ADA\", \"time\": \"$NOW\", \"device\": \"$1\", \"country\": \"GB\"}"
}
signin 'phone <b>9</b>'
signin 'phone <b>9</b>'
until_eq 2 lines first 204
check_eq "a sign-in from a new device is told once, as new_sign_in, with the device and country" \
    "new_sign_in {'country': 'GB', 'device': 'phone__b_9__b_'} 1" \
    "$(python3 -c "
import json, sys
rows = [json.loads(l)['body'] for l in open(sys.argv[1]) if json.loads(l)['status'] == 204]
n = [r for r in rows if r['type'] == 'new_sign_in']
print(n[0]['type'], n[0]['data'], len(n))" "$TMP/first/requests.jsonl")"

# an alert of severity high tells the staff (and one of medium does not)
withdraw() {
    req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"withdrawal\", \"customer\": \"$ADA\", \"time\": \"$NOW\", \"amount\": $1, \"currency\": \"EUR\"}"
    WDEC=$(json "j['id']")
}
withdraw 900000
HIGH=$WDEC
withdraw 100
until_eq 3 lines first 204
sleep 0.5
check_eq "a high alert is told to the staff, with the alert, its severity and rule, and no customer" \
    "1 staff None {'alert': 'alr_${HIGH#dec_}', 'rule': 'big_withdrawal', 'severity': 'high'}" \
    "$(python3 -c "
import json, sys
rows = [json.loads(l)['body'] for l in open(sys.argv[1]) if json.loads(l)['status'] == 204]
n = [r for r in rows if r['type'] == 'staff_alert']
print(len(n), n[0]['audience'], n[0].get('customer'), n[0]['data'])" "$TMP/first/requests.jsonl")"

# a receiver that is away: dead after four attempts, then replayed
receiver_stop
event "$ADA"
N2=$("$DBQ" "$D" "SELECT id FROM notify_outbox WHERE customer = '$ADA' AND data LIKE '%$DEC%'")
until_eq "dead|4" row "$N2"
check_eq "a notice nobody takes is dead after max_attempts" "dead|4" "$(row "$N2")"
"$DBQ" "$D" "SELECT last_error FROM notify_outbox WHERE id = '$N2'" >"$TMP/last_error"
check "with the reason" grep -qi "connect" "$TMP/last_error"
check "logged as dead" grep -q "\"notify.dead\".*\"$N2\"" "$LOG"
"$BIN" notify list --status dead --dir "$D" >"$TMP/list.out" 2>/dev/null
check "custodia notify list --status dead shows it" grep -q "^$N2 .* webhook dead .*security_notice" "$TMP/list.out"
req GET "/v1/notifications?status=dead" -H "$AUTH"
check_eq "and GET /v1/notifications?status=dead" "200 $N2 4" \
    "$STATUS $(json "','.join(i['id'] for i in j['items'])") $(json "j['items'][0]['attempts']")"
sleep 1.2 # the worker counts the outbox once a second
req GET /metrics -H "$AUTH"
check_eq "and the metrics" "1 1" \
    "$(awk '$1 == "custodia_notify_dead_total{channel=\"webhook\"}" {print $2}' "$TMP/body") $(awk '$1 == "custodia_notify_outbox{status=\"dead\"}" {print $2}' "$TMP/body")"
# nobody takes them yet: a replayed notice is on its way (pending, its attempts failing)
req POST "/v1/notifications/$N1/replay" -H "$AUTH"
check_eq "a replay through the API of a sent notice is accepted" "202 pending 0" \
    "$STATUS $(json "j['status']") $(json "j['attempts']")"
req POST "/v1/notifications/$N1/replay" -H "$AUTH"
check_eq "but not twice while it is on its way" "409 urn:custodia:problem:notification_in_flight" \
    "$STATUS $(json "j['type']")"
req POST /v1/notifications/ntf_0123456789abcdef/replay -H "$AUTH"
check_eq "an unknown notice is 404" "404 urn:custodia:problem:unknown_notification" \
    "$STATUS $(json "j['type']")"
receiver second
"$BIN" notify replay "$N2" --dir "$D" >"$TMP/replay.out" 2>&1
check_eq "custodia notify replay makes the dead notice due again" "0 1" \
    "$? $(grep -c "$N2 (webhook, was dead) is due again" "$TMP/replay.out")"
# the first may have used its attempts up before the receiver came: every dead one again
i=0
while [ "$(lines second 204)" -lt 2 ] && [ $i -lt 30 ]; do
    "$BIN" notify replay --dead --dir "$D" >/dev/null 2>&1
    sleep 1
    i=$((i + 1))
done
check_eq "both are delivered again, with their ids" "$(printf '%s\n' "$N1" "$N2" | sort | tr '\n' ' ')" \
    "$(python3 -c "import json,sys; print(' '.join(sorted(set(json.loads(l)['id'] for l in open(sys.argv[1]) if json.loads(l)['status'] == 204))))" "$TMP/second/requests.jsonl") "
check "the replays are audited" test "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'notify.replay'")" -ge 2

# a receiver whose certificate another CA signed: refused, the notice retried
# (its certificate is all it is for: an embedded store, whatever the test's backend)
CUSTODIA_STORE_BACKEND=sqlite "$BIN" init --dir "$TMP/otherca" >/dev/null 2>&1
receiver_stop
rd="$TMP/wrongca"
mkdir -p "$rd"
python3 "$SRC/tests/integration/webhook_receiver.py" "$rd" "$TMP/otherca/tls.crt" "$TMP/otherca/tls.key" \
    "$D/webhook.secret" --port "$RPORT" &
RPID=$!
i=0
while [ ! -e "$rd/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
event "$ADA"
N3=$("$DBQ" "$D" "SELECT id FROM notify_outbox WHERE customer = '$ADA' AND data LIKE '%$DEC%'")
until_eq "pending" sh -c "\"$DBQ\" \"$D\" \"SELECT status FROM notify_outbox WHERE id = '$N3' AND attempts >= 1\""
"$DBQ" "$D" "SELECT last_error FROM notify_outbox WHERE id = '$N3'" >"$TMP/last_error"
sed 's/^/# last error: /' "$TMP/last_error"
check "a receiver with a certificate of another CA is refused" grep -qi "certificate\|SSL\|issuer" "$TMP/last_error"
check_eq "and sees nothing" 0 "$(cat "$rd/requests.jsonl" 2>/dev/null | wc -l | tr -d ' ')"

# another key: the receiver refuses every signature
receiver_stop
KEYFILE="$TMP/other.secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEYFILE"
receiver third
event "$ADA"
i=0
while [ "$(python3 -c "import sys; print(sum(1 for l in open(sys.argv[1])))" "$TMP/third/requests.jsonl" 2>/dev/null || echo 0)" = 0 ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
check_eq "a receiver with another key finds the signature wrong" "0 400" \
    "$(lines third 204) $(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['status'])" "$TMP/third/requests.jsonl")"
receiver_stop
unset KEYFILE

# SIGKILL while a delivery is in flight: delivered once after the restart
receiver fourth --stall
event "$ADA"
N4=$("$DBQ" "$D" "SELECT id FROM notify_outbox WHERE customer = '$ADA' AND data LIKE '%$DEC%'")
until_eq "sending|1" row "$N4"
check_eq "the notice is being sent" "sending|1" "$(row "$N4")"
kill -KILL "$PID"
wait "$PID" 2>/dev/null
PID=
receiver_stop
receiver fifth
# shellcheck disable=SC2086
start_server "$D" $SRV || exit 1
until_eq "sent" sh -c "\"$DBQ\" \"$D\" \"SELECT status FROM notify_outbox WHERE id = '$N4'\""
check_eq "after the restart, the notice whose delivery was cut is sent" "sent" \
    "$("$DBQ" "$D" "SELECT status FROM notify_outbox WHERE id = '$N4'")"
check_eq "once" 1 "$(python3 -c "import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)['id'] == sys.argv[2] and json.loads(l)['status'] == 204))" "$TMP/fifth/requests.jsonl" "$N4")"
# retention: a sent notice older than [notify] keep_days goes; a recent one and a dead one stay
OLD="INSERT INTO notify_outbox (id, created_at, customer, template, data, status, attempts, next_at, sent_at, channel) VALUES"
tamper "$D" "$OLD ('ntf_00000000000000a1', 1000, '$ADA', 'password_changed', '{}', 'sent', 1, 1000, 1000, 'webhook'), ('ntf_00000000000000a2', 1000, '$ADA', 'password_changed', '{}', 'dead', 4, 1000, NULL, 'webhook')"
until_eq 0 "$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE id = 'ntf_00000000000000a1'"
check_eq "housekeeping deletes sent notices past keep_days, and keeps the dead and the recent" "0 1 1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE id = 'ntf_00000000000000a1'") $("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE id = 'ntf_00000000000000a2'") $("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE id = '$N4'")"
check_eq "audited with the count" 1 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'notify.forget' AND details LIKE '%\"sent_notices\":1%'")"

# an erased customer's notices are gone: none is sent, retried or replayed
req DELETE "/v1/customers/$ADA" -H "$AUTH"
check_eq "the customer is erased" 200 "$STATUS"
check_eq "with every notice of theirs" 0 \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM notify_outbox WHERE customer = '$ADA'")"
req POST "/v1/notifications/$N1/replay" -H "$AUTH"
check_eq "so none can be replayed" 404 "$STATUS"
req GET "/v1/notifications?after=$N1" -H "$AUTH"
check_eq "and a cursor naming one is refused" "400" "$STATUS"
stop_server
check_eq "the server stops cleanly with its worker" 0 "$STOP_STATUS"
finish
