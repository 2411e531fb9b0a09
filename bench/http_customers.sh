#!/bin/sh
# GET /v1/customers/{id} over HTTPS keep-alive with every personal field decrypted and the read
# audited (wrk -t2 -c64 -d10s, median of 3 runs) with a key that may unmask: the same customer
# read again and again, then reads spread at random over 2,000 customers (each read then
# touches other pages, and its audit record lands elsewhere in the target index).
# The rate limits ([limits]) are off: a benchmark measures the server, not its pacing.
export CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0
export CUSTODIA_LIMITS_WRITES_PER_MINUTE=0 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0
set -eu
BIN=${CU_BINARY:?}
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -TERM $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$BIN" init --dir "$TMP/d" >/dev/null 2>&1
KEY=$(cat "$TMP/d/initial-api-key")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CUSTODIA_SERVER_PORT=$PORT "$BIN" serve --dir "$TMP/d" 2>"$TMP/serve.log" &
PID=$!
URL="https://127.0.0.1:$PORT"
i=0
until curl -s -o /dev/null --cacert "$TMP/d/tls.crt" "$URL/v1/health"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "server did not start" >&2; exit 1; }; sleep 0.1
done
ID=$(curl -s --cacert "$TMP/d/tls.crt" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"given_name": "Jane", "family_name": "Doe", "email": "jane@example.com", "phone": "+447911123456",
         "birth_date": "1984-05-06", "national_id": "AB123456C", "address_line1": "1 High Street",
         "city": "London", "postal_code": "SW1A 1AA", "country": "GB", "external_ref": "crm-1"}' \
    "$URL/v1/customers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cat >"$TMP/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
LUA

# measure SCRIPT URL: three wrk runs of 10 s; prints the median run's reads/s and p99, then
# all three (this VM's speed drifts by a third from minute to minute).
measure() {
    for run in 1 2 3; do
        wrk -t2 -c64 -d10s --latency -s "$1" "$2" >"$TMP/wrk.$run"
        printf '%s %s %s\n' "$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.$run")" \
            "$(awk '$1 == "99%" {print $2}' "$TMP/wrk.$run")" \
            "$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$TMP/wrk.$run")"
    done | sort -n >"$TMP/runs"
    all=$(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $1}' "$TMP/runs")
    sed -n 2p "$TMP/runs" | awk -v all="$all" '{errs = ""; for (i = 3; i <= NF; i++) errs = errs " " $i;
        printf "%s reads/s, p99 %s (median of 3 runs: %s)%s\n", $1, $2, all, errs ? " (" errs " )" : ""}'
}
echo "http GET /v1/customers/{id}, 8 personal fields decrypted, unmasked, each read audited (synchronous=FULL): $(measure "$TMP/auth.lua" "$URL/v1/customers/$ID")"

# 2,000 more customers over one keep-alive connection, then random reads among them.
python3 - "$PORT" "$KEY" "$TMP/d/tls.crt" 2000 >"$TMP/ids.txt" <<'PY'
import http.client, json, ssl, sys
port, key, ca, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
for i in range(n):
    body = {"given_name": "Jane", "family_name": "Doe %d" % i, "email": "jane%d@example.com" % i,
            "phone": "+4479111%05d" % i, "birth_date": "1984-05-06", "national_id": "AB%06dC" % i,
            "address_line1": "1 High Street", "city": "London", "postal_code": "SW1A 1AA",
            "country": "GB", "external_ref": "crm-x%d" % i}
    c.request("POST", "/v1/customers", json.dumps(body),
              {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = c.getresponse()
    print(json.loads(r.read())["id"])
PY
{
    echo "local ids = {"
    sed 's/.*/"&",/' "$TMP/ids.txt"
    echo "}"
    echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""
    echo 'request = function() return wrk.format("GET", "/v1/customers/" .. ids[math.random(#ids)]) end'
} >"$TMP/spread.lua"
echo "http GET /v1/customers/{id}, the same, spread at random over 2,000 customers: $(measure "$TMP/spread.lua" "$URL")"
