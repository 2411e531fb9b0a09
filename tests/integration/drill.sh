#!/bin/sh
# Incident drills (docs/playbooks.md, "Drills"): custodia drill run PLAYBOOK makes a drill
# customer (marked, with an empty account), sends a synthetic sign-in through monitoring,
# follows the incident to its case and the playbook's steps (confirming those that wait), waits
# for the notices to reach a real HTTPS receiver, and reports the time to detect, to contain and
# to notify; a receiver that is away makes the drill fail, naming what was not delivered; the
# drill's customer and case never mix with real ones.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/d.rules" <<'EOF2'
rule takeover
  when event.type == "login_succeeded" and event.device == "stolen-phone"
  then alert critical, reason "a sign-in from a device reported stolen"
EOF2
cat >"$D/d.playbooks" <<'EOF2'
playbook account_takeover
  when rule takeover
  step freeze_accounts 2h
  step revoke_sessions
  step notify_customer accounts_frozen
    step page_oncall
  step force_password_reset confirm
  step lock_sign_in 30m
  step hold_transfers
EOF2
RPORT=$(free_port)
RPID=
trap 'kill -KILL $RPID 2>/dev/null; cleanup' EXIT
mkdir -p "$TMP/rcv"
python3 "$SRC/tests/integration/webhook_receiver.py" "$TMP/rcv" "$D/tls.crt" "$D/tls.key" \
    "$D/webhook.secret" --port "$RPORT" &
RPID=$!
i=0
while [ ! -e "$TMP/rcv/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
drill() {
    env CUSTODIA_MONITOR_RULES=d.rules CUSTODIA_CASES_PLAYBOOKS=d.playbooks \
        CUSTODIA_NOTIFY_WEBHOOK_URL="https://127.0.0.1:$RPORT/hook" \
        CUSTODIA_NOTIFY_WEBHOOK_CA_FILE=tls.crt CUSTODIA_NOTIFY_RETRY_BASE_MS=100 \
        CUSTODIA_NOTIFY_MAX_ATTEMPTS=3 CUSTODIA_NOTIFY_TIMEOUT_MS=1000 \
        "$BIN" drill run --dir "$D" "$@"
}

drill account_takeover >"$TMP/drill.out" 2>"$TMP/drill.err"
check_eq "a drill passes" "0 1" "$? $(grep -c '^result: passed$' "$TMP/drill.out")"
check "reporting the time to detect" grep -Eq '^  detected +[0-9]+ ms' "$TMP/drill.out"
check "to contain, with the step it confirmed" grep -Eq '^  contained +[0-9]+ ms  \(7 steps, 1 confirmed by the drill\)' "$TMP/drill.out"
check "sign-in locked, pending transfers held" sh -c "grep -Eq '^  step 6 lock_sign_in +done +\{\"until\":' '$TMP/drill.out' && grep -Eq '^  step 7 hold_transfers +done +\{\"transfers\":0\}' '$TMP/drill.out'"
check "and to notify" grep -Eq '^  notified +[0-9]+ ms  \(2 of 2 notices delivered\)' "$TMP/drill.out"
check "each step with its result" grep -Eq '^  step 1 freeze_accounts +done +\{"accounts":1' "$TMP/drill.out"
check_eq "the receiver had both notices, signed" 2 \
    "$(python3 -c "import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)['valid'] and json.loads(l)['status'] == 204))" "$TMP/rcv/requests.jsonl")"

drill account_takeover --json >"$TMP/drill.json" 2>/dev/null
check_eq "--json says the same, with the numbers" "passed True 5 True" \
    "$(python3 -c "
import json,sys
j=json.load(open(sys.argv[1]))
print(j['result'], j['injected'], len(j['steps']) - 2, 0 <= j['detect_ms'] <= j['contain_ms'] <= j['notify_ms'])" "$TMP/drill.json")"
DC=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['customer'])" "$TMP/drill.json")
DCASE=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['case'])" "$TMP/drill.json")
check_eq "its customer is marked as a drill's, its case as a drill" "1 1 drill" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM drill_customers WHERE customer = '$DC'") $("$DBQ" "$D" "SELECT drill FROM cases WHERE id = '$DCASE'") $("$DBQ" "$D" "SELECT source FROM cases WHERE id = '$DCASE'")"
check_eq "each drill has a customer of its own" 2 "$("$DBQ" "$D" "SELECT COUNT(*) FROM drill_customers")"
"$BIN" case list --dir "$D" >"$TMP/list.out" 2>&1
"$BIN" case list --drills --dir "$D" >"$TMP/list_all.out" 2>&1
check_eq "drills' cases are left out of the list unless asked for" "0 2" \
    "$(grep -c '^cas_' "$TMP/list.out") $(grep -c '^cas_' "$TMP/list_all.out")"
check_eq "the drill is audited, its outcome too" "2 2" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'drill.start'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'drill.end' AND outcome = 'success'")"

# a receiver that is away: the drill fails, saying what was not delivered
kill -KILL "$RPID"
wait "$RPID" 2>/dev/null
RPID=
drill account_takeover --timeout 3 >"$TMP/drill.out" 2>&1
check_eq "a drill whose notices are not delivered fails" "1 1" \
    "$? $(grep -c '^result: failed (0 steps not done, 2 notices not delivered)' "$TMP/drill.out")"
drill no_such_playbook >"$TMP/drill.out" 2>&1
check_eq "an unknown playbook is a usage error" "2 1" \
    "$? $(grep -c 'no_such_playbook: no playbook of that name' "$TMP/drill.out")"
finish
