#!/bin/sh
# Events decided over HTTPS: POST /v1/events from 64 keep-alive clients (wrk -t2 -c64 -d10s,
# median of 3 runs), durable (synchronous=FULL), through the default rule pack: each request
# is parsed, decided on the committer's thread, and its event, decision and audit record
# committed in one unit of work before the answer. The events are a mix over 10,000
# customers: sign-ins (one in ten failed), transfers with amounts and payees, withdrawals,
# from addresses and devices of their own. Prints decisions/s, p50 and p99, the engine's mean
# time per event, and the mean group size the committer's metrics saw.
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
cat >"$TMP/events.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local c = math.random(10000)
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local base = '{"time": "' .. now .. '", "customer": "c' .. c .. '", "ip": "10.' .. (c % 250) ..
      '.' .. (c % 13) .. '.' .. (c % 200 + 1) .. '", "device": "d' .. c .. '", "country": "GB"'
  local r = math.random(100)
  local body
  if r <= 45 then
    body = base .. ', "type": "login_succeeded"}'
  elseif r <= 50 then
    body = base .. ', "type": "login_failed"}'
  elseif r <= 90 then
    body = base .. ', "type": "transfer", "amount": ' .. math.random(100, 250000) ..
        ', "currency": "GBP", "payee": "p' .. (c * 7 + math.random(3)) .. '"}'
  else
    body = base .. ', "type": "withdrawal", "amount": ' .. math.random(1000, 50000) ..
        ', "currency": "GBP"}'
  end
  return wrk.format(nil, "/v1/events", nil, body)
end
LUA

# metric NAME: a value from /metrics.
metrics() { curl -s --cacert "$TMP/d/tls.crt" -H "Authorization: Bearer $KEY" "$URL/metrics"; }
stats() {
    metrics | awk '/^custodia_commit_group_units_sum/ {s = $2} /^custodia_commit_group_units_count/ {c = $2}
        /^custodia_monitor_decide_seconds_total/ {t = $2} /^custodia_monitor_decisions_total/ {d += $2}
        END {print s, c, t, d}'
}
before=$(stats)
for run in 1 2 3; do
    wrk -t2 -c64 -d10s --latency -s "$TMP/events.lua" "$URL" >"$TMP/wrk.$run"
    printf '%s %s %s %s\n' "$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.$run")" \
        "$(awk '$1 == "50%" {print $2}' "$TMP/wrk.$run")" \
        "$(awk '$1 == "99%" {print $2}' "$TMP/wrk.$run")" \
        "$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$TMP/wrk.$run")"
done | sort -n >"$TMP/runs"
after=$(stats)
all=$(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $1}' "$TMP/runs")
mean=$(echo "$before $after" | awk '{u = $5 - $1; g = $6 - $2; printf "%.1f", (g > 0 ? u / g : 0)}')
engine=$(echo "$before $after" | awk '{t = $7 - $3; d = $8 - $4; printf "%.1f", (d > 0 ? t * 1e6 / d : 0)}')
sed -n 2p "$TMP/runs" | awk -v all="$all" -v mean="$mean" -v engine="$engine" '{errs = ""; for (i = 4; i <= NF; i++) errs = errs " " $i;
    printf "http POST /v1/events (default pack; event, decision and audit record in one unit; synchronous=FULL; 64 clients): %s decisions/s, p50 %s, p99 %s, engine %s us an event, %s units a commit on average (median of 3 runs: %s)%s\n",
    $1, $2, $3, engine, mean, all, errs ? " (" errs " )" : ""}'
