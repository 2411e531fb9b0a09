#!/bin/sh
# GET /v1/health over HTTPS keep-alive on 127.0.0.1 for 10 s with wrk: requests/s and p99.
# The server runs with its defaults (one worker per core, access log on, written to a file).
set -eu
BIN=${CU_BINARY:?}
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -TERM $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$BIN" init --dir "$TMP/d" >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CUSTODIA_SERVER_PORT=$PORT "$BIN" serve --dir "$TMP/d" 2>"$TMP/serve.log" &
PID=$!
i=0
until curl -s -o /dev/null --cacert "$TMP/d/tls.crt" "https://127.0.0.1:$PORT/v1/health"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "server did not start" >&2; exit 1; }; sleep 0.1
done
wrk -t2 -c64 -d10s --latency "https://127.0.0.1:$PORT/v1/health" >"$TMP/wrk.out"
rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.out")
p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.out")
p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk.out")
errs=$(awk '/Non-2xx|Socket errors/ {print}' "$TMP/wrk.out")
echo "http GET /v1/health (TLS, keep-alive, wrk -t2 -c64 -d10s): $rps requests/s, p50 $p50, p99 $p99${errs:+ ($errs)}"
