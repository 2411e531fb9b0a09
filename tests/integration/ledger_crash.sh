#!/bin/sh
# A crash under load: 8 clients send transfers over HTTPS, each with its own Idempotency-Key,
# and the server is killed (SIGKILL) in the middle. After a restart every acknowledged transfer
# is there, none is half-applied (custodia ledger check and custodia audit verify pass, and
# the balances are the journal's), the change stream is in commit order without a gap, and a
# retry of every transfer that was not acknowledged, with its key, applies it once.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
LIMITS="CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0 CUSTODIA_LIMITS_WRITES_PER_MINUTE=0"
# shellcheck disable=SC2086
start_server "$D" $LIMITS || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
mk() {
    req POST /v1/customers -H "$AUTH" -H "$JSONH" --data "{\"given_name\": \"$1\"}"
    req POST "/v1/customers/$(json "j['id']")/accounts" -H "$AUTH" -H "$JSONH" --data '{"currency": "EUR"}'
    json "j['id']"
}
A=$(mk Ada)
B=$(mk Bob)
req POST /v1/deposits -H "$AUTH" -H "$JSONH" -H 'Idempotency-Key: seed' \
    --data "{\"account\": \"$A\", \"amount\": 1000000, \"currency\": \"EUR\"}"

# the load: each client numbers its keys; acknowledged ones are written with their transfer
cat >"$TMP/load.py" <<'PY'
import http.client, json, ssl, sys, threading, time
port, key, ca, a, b, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
acked, sent, lock = [], [], threading.Lock()
def client(c):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    for i in range(100000):
        k = "crash-%d-%d" % (c, i)
        with lock:
            sent.append(k)
        try:
            conn.request("POST", "/v1/transfers", json.dumps({"debit_account": a, "credit_account": b,
                         "amount": 1, "currency": "EUR", "code": "crash"}),
                         {"Authorization": "Bearer " + key, "Content-Type": "application/json",
                          "Idempotency-Key": k})
            r = conn.getresponse()
            body = r.read()
            if r.status == 201:
                with lock:
                    acked.append((k, json.loads(body)["transfer"]["id"]))
        except Exception:
            return
ts = [threading.Thread(target=client, args=(c,)) for c in range(8)]
for t in ts: t.start()
for t in ts: t.join()
with open(out, "w") as f:
    json.dump({"acked": acked, "sent": sent}, f)
PY
python3 "$TMP/load.py" "$PORT" "$KEY" "$CA" "$A" "$B" "$TMP/load.json" &
LOAD=$!
sleep 2
kill -KILL "$PID"
wait "$PID" 2>/dev/null
wait $LOAD
ACKED=$(python3 -c "import json; print(len(json.load(open('$TMP/load.json'))['acked']))")
SENT=$(python3 -c "import json; print(len(json.load(open('$TMP/load.json'))['sent']))")
check "the load had transfers acknowledged before the kill" test "$ACKED" -gt 50
echo "# $ACKED acknowledged of $SENT sent before SIGKILL"

"$BIN" ledger check --dir "$D" >"$TMP/check.out" 2>&1
check_eq "after the crash the ledger's invariants hold" 0 "$?"
"$BIN" audit verify --dir "$D" >"$TMP/verify.out" 2>&1
check_eq "and so does the audit log" 0 "$?"
# shellcheck disable=SC2086
start_server "$D" $LIMITS || exit 1
python3 - "$PORT" "$KEY" "$CA" "$A" "$B" "$TMP/load.json" >"$TMP/after.out" <<'PY'
import http.client, json, ssl, sys
port, key, ca, a, b, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
load = json.load(open(path))
missing = 0
for k, t in load["acked"]:
    c.request("GET", "/v1/transfers/" + t, headers=h)
    r = c.getresponse(); r.read()
    missing += r.status != 200
acked = {k for k, _ in load["acked"]}
applied = replayed = bad = 0
for k in load["sent"]:
    c.request("POST", "/v1/transfers", json.dumps({"debit_account": a, "credit_account": b,
              "amount": 1, "currency": "EUR", "code": "crash"}), dict(h, **{"Idempotency-Key": k}))
    r = c.getresponse(); r.read()
    if r.status != 201:
        bad += 1
    elif r.getheader("Idempotent-Replayed") == "true":
        replayed += 1
    else:
        applied += 1
    if k in acked and r.getheader("Idempotent-Replayed") != "true":
        bad += 1
c.request("GET", "/v1/accounts/" + b, headers=h)
posted = json.loads(c.getresponse().read())["balance"]["posted"]
seqs, after = [], 0
while True:
    c.request("GET", "/v1/ledger/changes?limit=1000&after=%d" % after, headers=h)
    j = json.loads(c.getresponse().read())
    if not j["items"]:
        break
    seqs += [t["seq"] for t in j["items"]]
    after = j["next_after"]
print(missing, bad, posted == len(load["sent"]), seqs == list(range(1, len(seqs) + 1)), replayed >= len(acked))
PY
check_eq "every acknowledged transfer is there, every retry with its key answered 201, each key applied once, the stream gapless" \
    "0 0 True True True" "$(cat "$TMP/after.out")"
stop_server
"$BIN" ledger check --dir "$D" >"$TMP/check.out" 2>&1
check_eq "and the invariants still hold after the retries" 0 "$?"
finish
