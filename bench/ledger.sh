#!/bin/sh
# The ledger over HTTPS, durable (synchronous=FULL), through the group committer:
# - single transfers, POST /v1/transfers, from 64 keep-alive clients (wrk -t2 -c64 -d10s,
#   median of 3 runs), each with its own Idempotency-Key, at random between 1,000 accounts;
# - the same, every transfer out of one hot account (into the 1,000);
# - POST /v1/transfers/batch of 1,000 transfers, from 4 clients (-d10s), counted in transfers/s.
# Each movement commits its transfers, balances, idempotency key, audit record and events in
# one unit of work. Prints transfers/s, p50 and p99 and the mean group size the committer saw.
# The rate limits ([limits]) are off: a benchmark measures the server, not its pacing.
export CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0
export CUSTODIA_LIMITS_WRITES_PER_MINUTE=0 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0
export CUSTODIA_SERVER_MAX_BODY_BYTES=4m
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
# 1,000 accounts (of 100 customers), each with 10^12 minor units
python3 - "$PORT" "$KEY" "$TMP/d/tls.crt" 1000 >"$TMP/ids.txt" <<'PY'
import http.client, json, ssl, sys
port, key, ca, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
def call(method, path, body, extra=None):
    c.request(method, path, json.dumps(body), dict(h, **(extra or {})))
    r = c.getresponse()
    return json.loads(r.read())
cus = None
for i in range(n):
    if i % 10 == 0:
        cus = call("POST", "/v1/customers", {"given_name": "Holder %d" % i})["id"]
    acc = call("POST", "/v1/customers/%s/accounts" % cus, {"currency": "EUR"})["id"]
    call("POST", "/v1/deposits", {"account": acc, "amount": 10**12, "currency": "EUR"},
         {"Idempotency-Key": "seed-%d" % i})
    print(acc)
PY
HOT=$(head -1 "$TMP/ids.txt")
lua_ids() {
    echo "local ids = {"
    sed 's/.*/"&",/' "$TMP/ids.txt"
    echo "}"
    echo "wrk.method = \"POST\""
    echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""
    echo "wrk.headers[\"Content-Type\"] = \"application/json\""
    echo 'local n = 0'
    echo 'local tid = 0'
    echo 'setup = function(thread) tid = tid + 1; thread:set("tid", tid) end'
}
{
    lua_ids
    echo 'request = function() n = n + 1; local a = ids[math.random(#ids)]; local b = ids[math.random(#ids)]; while b == a do b = ids[math.random(#ids)] end
        wrk.headers["Idempotency-Key"] = "s-" .. tostring(tid) .. "-" .. n .. "-" .. math.random(1e9)
        return wrk.format(nil, "/v1/transfers", nil, "{\"debit_account\": \"" .. a .. "\", \"credit_account\": \"" .. b .. "\", \"amount\": 1, \"currency\": \"EUR\"}") end'
} >"$TMP/spread.lua"
{
    lua_ids
    echo "local hot = \"$HOT\""
    echo 'request = function() n = n + 1; local b = ids[math.random(2, #ids)]
        wrk.headers["Idempotency-Key"] = "h-" .. tostring(tid) .. "-" .. n .. "-" .. math.random(1e9)
        return wrk.format(nil, "/v1/transfers", nil, "{\"debit_account\": \"" .. hot .. "\", \"credit_account\": \"" .. b .. "\", \"amount\": 1, \"currency\": \"EUR\"}") end'
} >"$TMP/hot.lua"
{
    lua_ids
    echo 'request = function() n = n + 1; local t = {}
        for i = 1, 1000 do local a = ids[math.random(#ids)]; local b = ids[math.random(#ids)]; while b == a do b = ids[math.random(#ids)] end
            t[i] = "{\"debit_account\": \"" .. a .. "\", \"credit_account\": \"" .. b .. "\", \"amount\": 1, \"currency\": \"EUR\"}" end
        wrk.headers["Idempotency-Key"] = "b-" .. tostring(tid) .. "-" .. n .. "-" .. math.random(1e9)
        return wrk.format(nil, "/v1/transfers/batch", nil, "{\"transfers\": [" .. table.concat(t, ",") .. "]}") end'
} >"$TMP/batch.lua"

groups() {
    curl -s --cacert "$TMP/d/tls.crt" -H "Authorization: Bearer $KEY" "$URL/metrics" |
        awk '/^custodia_commit_group_units_sum/ {s = $2} /^custodia_commit_group_units_count/ {c = $2} END {print s, c}'
}
# run NAME SCRIPT CLIENTS PER: three runs; prints the median's transfers/s (requests x PER)
run() {
    before=$(groups)
    for r in 1 2 3; do
        wrk -t2 -c"$3" -d10s --latency -s "$2" "$URL" >"$TMP/wrk.$r"
        printf '%s %s %s %s\n' "$(awk -v per="$4" '/^Requests\/sec/ {printf "%.0f", $2 * per}' "$TMP/wrk.$r")" \
            "$(awk '$1 == "50%" {print $2}' "$TMP/wrk.$r")" \
            "$(awk '$1 == "99%" {print $2}' "$TMP/wrk.$r")" \
            "$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$TMP/wrk.$r")"
    done | sort -n >"$TMP/runs"
    after=$(groups)
    all=$(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $1}' "$TMP/runs")
    mean=$(echo "$before $after" | awk '{u = $3 - $1; g = $4 - $2; printf "%.1f", (g > 0 ? u / g : 0)}')
    sed -n 2p "$TMP/runs" | awk -v name="$1" -v all="$all" -v mean="$mean" '{errs = ""; for (i = 4; i <= NF; i++) errs = errs " " $i;
        printf "ledger %s: %s transfers/s, p50 %s, p99 %s, %s units a commit on average (median of 3 runs: %s)%s\n",
        name, $1, $2, $3, mean, all, errs ? " (" errs " )" : ""}'
}
# A fresh database runs at about half the rate of one that has taken load for a while (the
# first 10 s of transfers ran at ~5,000/s, the fourth 10 s at ~11,000/s), and the effect
# survives a restart of the server: it is in the files, not in the process. The measured runs
# follow 30 s of the same load, whose rate is printed too.
warm() {
    wrk -t2 -c"$3" -d"$4" -s "$2" "$URL" >"$TMP/wrk.warm"
    awk -v name="$1" -v per="$5" '/^Requests\/sec/ {printf "ledger warm-up, %s: %.0f transfers/s\n", name, $2 * per}' "$TMP/wrk.warm"
}
warm "POST /v1/transfers, the first 30 s on a fresh database" "$TMP/spread.lua" 64 30s 1
run "POST /v1/transfers, 1,000 accounts, 64 clients, synchronous=FULL" "$TMP/spread.lua" 64 1
# The hot runs climb the same way after the change of pattern (six 8 s runs after 20 s of the
# spread load: 5,454, 9,182, 10,308, 13,174, 13,758, 14,514/s, while the disk's writes fell
# from 300 to 25 MB/s): so they too follow 30 s of their own load.
warm "POST /v1/transfers, one hot account, the first 30 s" "$TMP/hot.lua" 64 30s 1
run "POST /v1/transfers, all out of one hot account, 64 clients" "$TMP/hot.lua" 64 1
warm "POST /v1/transfers/batch of 1,000, the first 10 s" "$TMP/batch.lua" 4 10s 1000
run "POST /v1/transfers/batch of 1,000, 4 clients" "$TMP/batch.lua" 4 1000
kill -TERM $PID
wait $PID 2>/dev/null || true
PID=
if "$BIN" ledger check --dir "$TMP/d" >"$TMP/check" 2>&1; then
    echo "ledger check after the runs: $(cat "$TMP/check")"
else
    echo "ledger check after the runs FAILED: $(cat "$TMP/check")"
    exit 1
fi
