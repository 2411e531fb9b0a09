#!/bin/sh
# Notifications delivered to a local webhook receiver (bench/webhook_sink.go, HTTPS, checking
# every signature), from POST /v1/events whose rule notifies the customer (one notice an event,
# queued in the event's unit of work, delivered by the worker after the commit), durable
# (synchronous=FULL), SQLite:
# - about 1,000 notices/s (10 clients, each pausing 10 ms between events) for 20 s: the time
#   from each notice's created_at (its unit's clock, just before the commit) to its arrival,
#   p50, p99 and max, as the receiver measured them;
# - as fast as it goes (64 clients, 10 s): notices delivered per second, from the first event
#   to the last delivery.
# The plan: p99 <= 1 s at 1,000 notifications/s. Prints the figures and the worker's figures
# from /metrics. The receiver, custodia and wrk share the machine's cores.
export CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0
export CUSTODIA_LIMITS_WRITES_PER_MINUTE=0 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0
export CUSTODIA_SERVER_ACCESS_LOG=false
set -eu
BIN=${CU_BINARY:?}
SRC=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
PID= SINK=
trap 'kill -TERM $PID $SINK 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$BIN" init --dir "$TMP/d" >/dev/null 2>&1
KEY=$(cat "$TMP/d/initial-api-key")
GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath" go build -o "$TMP/sink" "$SRC/bench/webhook_sink.go"
"$TMP/sink" "$TMP/d/tls.crt" "$TMP/d/tls.key" "$TMP/d/webhook.secret" "$TMP/sink.port" 2>"$TMP/sink.log" &
SINK=$!
i=0
while [ ! -e "$TMP/sink.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
SPORT=$(cat "$TMP/sink.port")
cat >"$TMP/d/n.rules" <<'EOF'
rule notify_every_sign_in
  when event.type == "login_succeeded"
  then notify_customer, reason "a sign-in"
EOF
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CUSTODIA_SERVER_PORT=$PORT CUSTODIA_MONITOR_RULES=n.rules \
    CUSTODIA_NOTIFY_WEBHOOK_URL="https://127.0.0.1:$SPORT/hook" CUSTODIA_NOTIFY_WEBHOOK_CA_FILE=tls.crt \
    "$BIN" serve --dir "$TMP/d" 2>"$TMP/serve.log" &
PID=$!
URL="https://127.0.0.1:$PORT"
i=0
until curl -s -o /dev/null --cacert "$TMP/d/tls.crt" "$URL/v1/health"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "server did not start" >&2; exit 1; }; sleep 0.1
done
python3 - "$PORT" "$KEY" "$TMP/d/tls.crt" 1000 >"$TMP/ids.txt" <<'PY'
import http.client, json, ssl, sys
port, key, ca, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
for i in range(n):
    c.request("POST", "/v1/customers", json.dumps({"given_name": "N%d" % i}),
              {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    print(json.loads(c.getresponse().read())["id"])
PY
lua() {
    echo "local ids = {"
    sed 's/.*/"&",/' "$TMP/ids.txt"
    echo "}"
    echo "wrk.method = \"POST\""
    echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""
    echo "wrk.headers[\"Content-Type\"] = \"application/json\""
    echo 'request = function() return wrk.format(nil, "/v1/events", nil, "{\"type\": \"login_succeeded\", \"customer\": \"" .. ids[math.random(#ids)] .. "\", \"time\": \"" .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. "\"}") end'
    [ "$1" = paced ] && echo 'delay = function() return 10 end'
    return 0
}
lua paced >"$TMP/paced.lua"
lua full >"$TMP/full.lua"
stats() { curl -s --cacert "$TMP/d/tls.crt" "https://127.0.0.1:$SPORT/stats"; }
pending() {
    curl -s --cacert "$TMP/d/tls.crt" -H "Authorization: Bearer $KEY" "$URL/metrics" |
        awk '$1 == "custodia_notify_outbox{status=\"pending\"}" || $1 == "custodia_notify_outbox{status=\"sending\"}" {s += $2} END {print s + 0}'
}
sent() {
    curl -s --cacert "$TMP/d/tls.crt" -H "Authorization: Bearer $KEY" "$URL/metrics" |
        awk '$1 == "custodia_notify_sent_total{channel=\"webhook\"}" {print $2}'
}
# drain: until the outbox is empty (at most 60 s); prints the seconds it took
drain() {
    t0=$(date +%s.%N)
    i=0
    sleep 1.2 # the worker counts once a second
    while [ "$(pending)" != 0 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}'
}
# warm-up, not measured
wrk -t2 -c10 -d5s -s "$TMP/paced.lua" "$URL" >/dev/null
drain >/dev/null
stats >/dev/null
wrk -t2 -c10 -d20s -s "$TMP/paced.lua" "$URL" >"$TMP/wrk.paced"
drain >/dev/null
rate=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$TMP/wrk.paced")
echo "notify, paced (10 clients, 10 ms apart, 20 s): $rate events/s, each one notice; delivered: $(stats)" |
    sed 's/{"count": \([0-9]*\), "bad": \([0-9]*\), "p50_ms": \([0-9.]*\), "p99_ms": \([0-9.]*\), "max_ms": \([0-9.]*\)}/\1 notices (\2 bad signatures), commit to delivery p50 \3 ms, p99 \4 ms, max \5 ms/'
s0=$(sent)
t0=$(date +%s.%N)
wrk -t2 -c64 -d10s -s "$TMP/full.lua" "$URL" >"$TMP/wrk.full"
drain >/dev/null
t1=$(date +%s.%N)
s1=$(sent)
rate=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$TMP/wrk.full")
st=$(stats)
echo "$s0 $s1 $t0 $t1" | awk -v rate="$rate" -v st="$st" '{n = $2 - $1; d = $4 - $3;
    printf "notify, as fast as it goes (64 clients, 10 s): %s events/s; %d notices delivered in %.1f s from the first event to the last delivery: %.0f notices/s; receiver: %s\n", rate, n, d, n / d, st}'
curl -s --cacert "$TMP/d/tls.crt" -H "Authorization: Bearer $KEY" "$URL/metrics" |
    grep -E '^custodia_notify_(sent|failed|dead)_total\{channel="webhook"\}|^custodia_notify_delivery_seconds_(bucket\{le="(0.050|0.250|1.000)"\}|count)' |
    tr '\n' ' ' | sed 's/^/notify, the worker: /; s/ $/\n/'
