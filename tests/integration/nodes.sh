#!/bin/sh
# Two nodes on one PostgreSQL database (the server CU_TEST_PG names), sharing one root key
# file: failed sign-ins spread over both are one burst to monitoring (each node's state is fed
# the other's events); a transfer retried on the other node with its Idempotency-Key applies
# once; a session revoked on one node is refused by the other at once; a managed list changed
# through one node is used by the other's decisions; a key rotation through one node's shell is
# followed by the other, reading the same root key file; one node killed with
# SIGKILL under load leaves the other serving, and nothing acknowledged is lost: every
# acknowledged deposit is there once, and `custodia ledger check` and `custodia audit verify`
# pass. The jobs every node shares (checkpoints, expiries) run on one node, and move to the
# other when that one dies.
. "$(dirname "$0")/lib.sh"
if [ -z "${CU_TEST_PG:-}" ]; then
    echo "# skipped: CU_TEST_PG names no PostgreSQL server"
    exit 77
fi
unset CUSTODIA_STORE_BACKEND CUSTODIA_STORE_URL
DBN="$(basename "$TMP" | tr 'A-Z-' 'a-z_')_nodes"
psql -q -X -v ON_ERROR_STOP=1 "$CU_TEST_PG/postgres" -c "CREATE DATABASE $DBN" >/dev/null || exit 1
PG_DBS="$PG_DBS $DBN"
A="$TMP/a"
B="$TMP/b"
"$BIN" init --dir "$A" --store "$CU_TEST_PG/$DBN" >"$TMP/init.out" 2>&1 || { cat "$TMP/init.out"; exit 1; }
KEY=$(cat "$A/initial-api-key")
# the default pack's rule on failed sign-ins, and a managed list
cat >"$A/nodes.rules" <<'EOF2'
thresholds review 30, step_up 50, hold 70, deny 90
list blocked_networks managed addresses

rule failed_sign_ins_per_account
  when event.type in ["login_failed", "mfa_failed"]
       and count(customer, 15m, ["login_failed", "mfa_failed"]) >= 5
  then score 60, lock_login 15m, alert medium,
       reason "five failed sign-ins to one account in fifteen minutes"

rule blocked_network
  when event.ip in blocked_networks
  then deny, reason "an address of a blocked network"
EOF2
# the second node: the same configuration, certificate and rules, and the same root key file
# (node a's, named by its absolute path: one file both read)
mkdir -m 0700 "$B"
cp -p "$A/custodia.conf" "$A/tls.crt" "$A/tls.key" "$A/access.policy" "$A/nodes.rules" "$B/"
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
NODEENV="CUSTODIA_MONITOR_RULES=nodes.rules CUSTODIA_IDENTITY_LOCKOUT_THRESHOLD=1000 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0 CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0 CUSTODIA_LIMITS_WRITES_PER_MINUTE=0"
# shellcheck disable=SC2086
start_server "$A" $NODEENV || exit 1
PA=$PORT PIDA=$PID LOGA=$LOG
trap 'kill -KILL "$PIDA" 2>/dev/null; cleanup' EXIT
# shellcheck disable=SC2086
start_server "$B" $NODEENV CUSTODIA_KEYS_ROOT_KEY_FILE="$A/root.key" || exit 1
PB=$PORT PIDB=$PID LOGB=$LOG
on() { # on a|b: the next req goes to that node
    if [ "$1" = a ]; then URL="https://127.0.0.1:$PA"; else URL="https://127.0.0.1:$PB"; fi
}
# in_log FILE TEXT: until FILE holds TEXT (at most 5 s)
in_log() {
    i=0
    while ! grep -q "$2" "$1" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    grep -q "$2" "$1"
}
check "the first node leads the shared jobs" in_log "$LOGA" '"msg":"jobs.leading"'
sleep 1.2 # a round of the second node's jobs
check "and the second does not" absent -F '"msg":"jobs.leading"' "$LOGB"
check "each node tails the shared events" sh -c "grep -q '\"monitor.tail_started\"' '$LOGA' && grep -q '\"monitor.tail_started\"' '$LOGB'"
# tail_caught_up NODE: until the node's state has seen every event committed (at most 5 s)
tail_caught_up() {
    on "$1"
    head=$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT seq FROM monitor_head")
    i=0
    while [ $i -lt 100 ]; do
        req GET /metrics -H "$AUTH"
        [ "$(awk '$1 == "custodia_monitor_tail_seq" {print $2}' "$TMP/body")" -ge "$head" ] && return 0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# Failed sign-ins spread over both nodes: the fifth, on node a after three on a and two on b,
# fires the rule that counts five in fifteen minutes, and locks the account on both.
PW="amber violin harbour 77"
on a
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com"}'
ADA=$(json "j['id']")
req PUT "/v1/customers/$ADA/password" -H "$AUTH" -H "$JSONH" --data "{\"password\": \"$PW\"}"
for n in a b a b; do
    on $n
    req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"ada@example.com\", \"password\": \"wrong $n\", \"kind\": \"customer\"}"
    [ $n = a ] && other=b || other=a
    tail_caught_up $other || not_ok "node $other caught up with node $n's events"
done
check_eq "four failures over two nodes lock nothing" 0 \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT COUNT(*) FROM monitor_events WHERE type = 'login_failed' AND verdict LIKE '%failed_sign_ins_per_account%'")"
on a
req POST /v1/auth/login -H "$JSONH" --data '{"login": "ada@example.com", "password": "wrong 5", "kind": "customer"}'
check_eq "the fifth failure, on a, counts the two node b saw" 1 \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT COUNT(*) FROM monitor_events WHERE type = 'login_failed' AND verdict LIKE '%failed_sign_ins_per_account%'")"
on b
req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"ada@example.com\", \"password\": \"$PW\", \"kind\": \"customer\"}"
check_eq "and the account is locked on node b too, the right password refused" 429 "$STATUS"
on a
req GET /metrics -H "$AUTH"
check "node a counts the events it was fed" awk '$1 == "custodia_monitor_tail_events_total" && $2 >= 2 {f = 1} END {exit !f}' "$TMP/body"
check "and exports the tail's lag" grep -q '^custodia_monitor_tail_lag_seconds ' "$TMP/body"
req DELETE "/v1/customers/$ADA/lockout" -H "$AUTH"

# A managed list changed on one node is followed by the other: its decisions use it within
# a moment, and stop when the item is removed.
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
event_on_b() {
    on b
    req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"login_succeeded\", \"time\": \"$(now)\", \"customer\": \"c-1\", \"ip\": \"198.51.100.7\"}"
    json "j['decision']"
}
# until_b DECISION: until an event on b is decided so (at most 3 s)
until_b() {
    i=0
    while [ "$(event_on_b)" != "$1" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(event_on_b)" = "$1" ]
}
check_eq "an address no list holds, on node b" allow "$(event_on_b)"
on a
req POST /v1/monitor/lists/blocked_networks/items -H "$AUTH" -H "$JSONH" \
    --data '{"value": "198.51.100.0/24", "note": "from node a"}'
check_eq "a block is added on node a" 201 "$STATUS"
check "node b decides with it within a moment" until_b deny
on a
req POST /v1/monitor/lists/blocked_networks/remove -H "$AUTH" -H "$JSONH" \
    --data '{"value": "198.51.100.0/24"}'
check_eq "and the block is removed on node a" 200 "$STATUS"
check "node b lets the address through again" until_b allow

# A key rotation through one node's shell is followed by the other, which reads the same root
# key file: a customer made on a under the new KEK reads on b.
"$BIN" keys rotate --dir "$A" >"$TMP/rotate.out" 2>&1
check_eq "keys rotate on node a's directory" 0 "$?"
on a
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Rotated"}'
ROT=$(json "j['id']")
check_eq "a customer made under the new KEK" 2 \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT kek_version FROM customers WHERE id = '$ROT'")"
on b
req GET "/v1/customers/$ROT" -H "$AUTH"
check_eq "reads on node b" "200 Rotated" "$STATUS $(json "j['given_name']")"

# A session made on a, used on b, revoked on a: refused on b at its next request.
on a
req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"ada@example.com\", \"password\": \"$PW\", \"kind\": \"customer\"}"
TOK=$(json "j['token']")
on b
req GET /v1/me -H "Authorization: Bearer $TOK"
check_eq "a session made on node a works on node b" 200 "$STATUS"
on a
req DELETE "/v1/customers/$ADA/sessions" -H "$AUTH"
check_eq "the sessions are ended on node a" 204 "$STATUS"
on b
req GET /v1/me -H "Authorization: Bearer $TOK"
check_eq "and node b refuses the session at once" 401 "$STATUS"

# A deposit retried on the other node with its key applies once.
on a
req POST "/v1/customers/$ADA/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
ACC=$(json "j['id']")
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: dep-1" \
    --data "{\"account\": \"$ACC\", \"amount\": 5000, \"currency\": \"EUR\"}"
check_eq "a deposit on node a" 201 "$STATUS"
FIRST=$(json "j['transfer']['id']")
on b
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H "Idempotency-Key: dep-1" \
    --data "{\"account\": \"$ACC\", \"amount\": 5000, \"currency\": \"EUR\"}"
check_eq "retried on node b, it answers the first result" "201 $FIRST" "$STATUS $(json "j['transfer']['id']")"
req GET "/v1/accounts/$ACC" -H "$AUTH"
check_eq "and applied once" 5000 "$(json "j['balance']['posted']")"

# Deposits to both nodes; node a is killed with SIGKILL in the middle; node b goes on.
python3 - "$PA" "$PB" "$KEY" "$A/tls.crt" "$ACC" "$TMP/load" <<'PY' &
import http.client, json, ssl, sys, threading, time
pa, pb, key, ca, acc, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
acked, errors, lock = [], {}, threading.Lock()
end = time.monotonic() + 5
# four clients at once, on both nodes: two deposit, two make customers (each unit writes the
# audit chain; the deposits also the ledger's head: the locks of two nodes' groups meet)
def client(k):
    i = 0
    while time.monotonic() < end:
        i += 1
        port = pa if (i + k) % 2 else pb
        if k < 2:
            path, body = "/v1/deposits", {"account": acc, "amount": 1, "currency": "EUR"}
        else:
            path, body = "/v1/customers", {"given_name": "Load %d %d" % (k, i)}
        try:
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            c.request("POST", path, json.dumps(body),
                      {"Authorization": "Bearer " + key, "Content-Type": "application/json",
                       "Idempotency-Key": "load-%d-%d" % (k, i)})
            r = c.getresponse()
            answer = json.loads(r.read())
            with lock:
                if r.status == 201 and k < 2:
                    acked.append([port, answer["transfer"]["id"]])
                elif r.status != 201:
                    errors[str(r.status)] = errors.get(str(r.status), 0) + 1
            c.close()
        except OSError as e:
            with lock:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump({"acked": acked, "errors": errors, "pa": pa, "pb": pb}, open(out, "w"))
PY
LOADER=$!
sleep 2
kill -KILL "$PIDA"
wait "$PIDA" 2>/dev/null
check "the other node leads the shared jobs within seconds" in_log "$LOGB" '"msg":"jobs.leading"'
wait $LOADER
check "node b took deposits after node a died" python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
after = [t for p, t in d['acked'] if p == d['pb']]
sys.exit(0 if len(after) > 20 and len([t for p, t in d['acked'] if p == d['pa']]) > 5 else 1)" "$TMP/load"
check "no request failed for a lock (no deadlock between the nodes' groups)" python3 -c "
import json, sys
e = json.load(open(sys.argv[1]))['errors']
print('# errors:', e)
sys.exit(0 if '503' not in e and '500' not in e else 1)" "$TMP/load"
check "every acknowledged deposit is there, once" python3 -c "
import json, subprocess, sys
d = json.load(open(sys.argv[1]))
ids = [t for p, t in d['acked']]
rows = subprocess.run(['psql', '-X', '-A', '-t', sys.argv[2], '-c',
                       \"SELECT id FROM ledger_transfers WHERE code = 'deposit'\"],
                      capture_output=True, text=True, check=True).stdout.split()
sys.exit(0 if len(set(ids)) == len(ids) and set(ids) <= set(rows) else 1)" "$TMP/load" "$CU_TEST_PG/$DBN"
on b
req GET "/v1/accounts/$ACC" -H "$AUTH"
check_eq "the balance is the first deposit and every one applied" \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT SUM(amount) FROM ledger_transfers WHERE code = 'deposit' AND credit_account = '$ACC'")" \
    "$(json "j['balance']['posted']")"
PID=$PIDB
stop_server
CUSTODIA_KEYS_ROOT_KEY_FILE="$A/root.key" "$BIN" ledger check --dir "$B" >"$TMP/check.out" 2>&1
check_eq "custodia ledger check passes" 0 "$?"
CUSTODIA_KEYS_ROOT_KEY_FILE="$A/root.key" "$BIN" audit verify --dir "$B" >"$TMP/verify.out" 2>&1
check_eq "custodia audit verify passes on one node" 0 "$?"
"$BIN" audit verify --dir "$A" >"$TMP/verify.out" 2>&1
check_eq "and on the other" 0 "$?"
finish
