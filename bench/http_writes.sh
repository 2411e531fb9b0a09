#!/bin/sh
# Audited writes over HTTPS through the group committer: PATCH /v1/customers/{id} changing one
# tag, from 64 keep-alive clients (wrk -t2 -c64 -d10s, median of 3 runs), durable
# (synchronous=FULL), spread at random over 2,000 customers; each PATCH commits its change, its
# customer.update record and its customer.read record in one unit of work. Prints writes/s,
# p50 and p99, and the mean group size the committer's metrics saw during the runs.
# The rate limits ([limits]) are off: a benchmark measures the server, not its pacing.
export CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0
export CUSTODIA_LIMITS_WRITES_PER_MINUTE=0 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0
set -eu
BIN=${CU_BINARY:?}
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -TERM $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$BIN" init --dir "$TMP/d" ${CU_BENCH_PG_DB:+--store "$CU_BENCH_PG_DB"} >/dev/null 2>&1
KEY=$(cat "$TMP/d/initial-api-key")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CUSTODIA_SERVER_PORT=$PORT CUSTODIA_SERVER_ACCESS_LOG=false "$BIN" serve --dir "$TMP/d" 2>"$TMP/serve.log" &
PID=$!
URL="https://127.0.0.1:$PORT"
i=0
until curl -s -o /dev/null --cacert "$TMP/d/tls.crt" "$URL/v1/health"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "server did not start" >&2; exit 1; }; sleep 0.1
done
python3 - "$PORT" "$KEY" "$TMP/d/tls.crt" 2000 >"$TMP/ids.txt" <<'PY'
import http.client, json, ssl, sys
port, key, ca, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
for i in range(n):
    body = {"given_name": "Jane", "family_name": "Doe %d" % i, "email": "jane%d@example.com" % i,
            "city": "London", "country": "GB", "tags": ["new"]}
    c.request("POST", "/v1/customers", json.dumps(body),
              {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = c.getresponse()
    print(json.loads(r.read())["id"])
PY
{
    echo "local ids = {"
    sed 's/.*/"&",/' "$TMP/ids.txt"
    echo "}"
    echo "wrk.method = \"PATCH\""
    echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""
    echo "wrk.headers[\"Content-Type\"] = \"application/json\""
    echo 'local n = 0'
    echo 'request = function() n = n + 1; return wrk.format(nil, "/v1/customers/" .. ids[math.random(#ids)], nil, "{\"tags\": [\"t" .. n .. "\"]}") end'
} >"$TMP/patch.lua"

# groups(): "units groups" of the committer so far, from /metrics.
groups() {
    curl -s --cacert "$TMP/d/tls.crt" -H "Authorization: Bearer $KEY" "$URL/metrics" |
        awk '/^custodia_commit_group_units_sum/ {s = $2} /^custodia_commit_group_units_count/ {c = $2} END {print s, c}'
}
before=$(groups)
for run in 1 2 3; do
    wrk -t2 -c64 -d10s --latency -s "$TMP/patch.lua" "$URL" >"$TMP/wrk.$run"
    printf '%s %s %s %s\n' "$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.$run")" \
        "$(awk '$1 == "50%" {print $2}' "$TMP/wrk.$run")" \
        "$(awk '$1 == "99%" {print $2}' "$TMP/wrk.$run")" \
        "$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$TMP/wrk.$run")"
done | sort -n >"$TMP/runs"
after=$(groups)
all=$(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $1}' "$TMP/runs")
mean=$(echo "$before $after" | awk '{u = $3 - $1; g = $4 - $2; printf "%.1f", (g > 0 ? u / g : 0)}')
sed -n 2p "$TMP/runs" | awk -v all="$all" -v mean="$mean" '{errs = ""; for (i = 4; i <= NF; i++) errs = errs " " $i;
    printf "http PATCH /v1/customers/{id} (one tag; change, update and read records in one unit; synchronous=FULL; 64 clients): %s writes/s, p50 %s, p99 %s, %s units a commit on average (median of 3 runs: %s)%s\n",
    $1, $2, $3, mean, all, errs ? " (" errs " )" : ""}'
