#!/bin/sh
# GET /v1/health over HTTPS keep-alive on 127.0.0.1 for 10 s with wrk: requests/s and p99,
# next to the same run against bare libmicrohttpd (bench/mhd_bare.c) with the same TLS set-up.
# The server runs with its defaults (eight workers per core, access log on, written to a file).
# The rate limits ([limits]) are off: a benchmark measures the server, not its pacing.
export CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0
export CUSTODIA_LIMITS_WRITES_PER_MINUTE=0 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0
set -eu
BIN=${CU_BINARY:?}
BENCH=$(dirname "$BIN")/bench
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill -TERM $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$BIN" init --dir "$TMP/d" >/dev/null 2>&1
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_up() {
    i=0
    until curl -s -o /dev/null --cacert "$TMP/d/tls.crt" "$1"; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "server did not start" >&2; exit 1; }; sleep 0.1
    done
}
run_wrk() {
    wrk -t2 -c64 -d10s --latency "$1" >"$TMP/wrk.out"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' "$TMP/wrk.out")
}

PORT=$(free_port)
CUSTODIA_SERVER_PORT=$PORT "$BIN" serve --dir "$TMP/d" 2>"$TMP/serve.log" &
PID=$!
wait_up "https://127.0.0.1:$PORT/v1/health"
run_wrk "https://127.0.0.1:$PORT/v1/health"
ours=$rps
echo "http GET /v1/health (TLS 1.3, keep-alive, wrk -t2 -c64 -d10s): $rps requests/s, p99 $p99${errs:+ ($errs)}"
kill -TERM $PID; wait $PID 2>/dev/null || true; PID=

PORT=$(free_port)
"$BENCH/mhd_bare" "$TMP/d/tls.crt" "$TMP/d/tls.key" "$PORT" 15 &
PID=$!
wait_up "https://127.0.0.1:$PORT/"
run_wrk "https://127.0.0.1:$PORT/"
echo "bare libmicrohttpd, same TLS and pool (bench/mhd_bare.c): $rps requests/s, p99 $p99;" \
     "custodia reaches $(python3 -c "print(round(100 * $ours / $rps))")% of it"
