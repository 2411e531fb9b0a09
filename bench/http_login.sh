#!/bin/sh
# Password sign-ins over HTTPS (POST /v1/auth/login, wrk -t2 -c8, ten customers in turn, all
# with the right password) next to raw Argon2id hashes at the same parameters on one thread per
# core (bench/identity_bench.c), measured right before and right after the load in the same
# run: the ratio is the sign-in rate over the mean of the two. To tell a slow server from a
# busy machine it also prints the CPU time per sign-in and per raw hash, how the cores were
# used during the load (idle, wrk, other programs) and how many of the server's worker threads
# served the connections. Then GET /v1/me with a session token (wrk -t2 -c64 -d10s). All on
# 127.0.0.1; the server is stopped on every exit. The hashing parameters are the server's
# defaults unless CUSTODIA_IDENTITY_PASSWORD_TIME_COST / _MEMORY_KIB say otherwise;
# LOGIN_SECONDS and LOGIN_CONNECTIONS set the length of the sign-in load and its connections
# (default 15 and 8).
# The rate limits ([limits]) are off: a benchmark measures the server, not its pacing.
export CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0
export CUSTODIA_LIMITS_WRITES_PER_MINUTE=0 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0
set -eu
BIN=${CU_BINARY:?}
BENCH=$(dirname "$BIN")/bench
T=${CUSTODIA_IDENTITY_PASSWORD_TIME_COST:-2}
M=${CUSTODIA_IDENTITY_PASSWORD_MEMORY_KIB:-19456}
export CUSTODIA_IDENTITY_PASSWORD_TIME_COST="$T" CUSTODIA_IDENTITY_PASSWORD_MEMORY_KIB="$M"
PW='Tr0ub4dor&3-blue-kettle'
CUSTOMERS=10
SECS=${LOGIN_SECONDS:-15}
CONNS=${LOGIN_CONNECTIONS:-8}
TMP=$(mktemp -d)
PID=
stop_server() {
    [ -n "$PID" ] || return 0
    kill -TERM "$PID" 2>/dev/null || true
    i=0
    while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP PIPE

"$BIN" init --dir "$TMP/d" >"$TMP/init.log" 2>&1 || { cat "$TMP/init.log" >&2; exit 1; }
KEY=$(cat "$TMP/d/initial-api-key")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
CUSTODIA_SERVER_LISTEN_ADDRESS=127.0.0.1 CUSTODIA_SERVER_PORT=$PORT \
    "$BIN" serve --dir "$TMP/d" 2>"$TMP/serve.log" &
PID=$!
URL="https://127.0.0.1:$PORT"
i=0
until curl -s -o /dev/null --cacert "$TMP/d/tls.crt" "$URL/v1/health"; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "server did not start" >&2; cat "$TMP/serve.log" >&2; exit 1; }
    sleep 0.1
done

api() { # api METHOD PATH BODY: the answer's body; fails on an HTTP error
    curl -sf --cacert "$TMP/d/tls.crt" -X "$1" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' -d "$3" "$URL$2"
}
n=0
while [ $n -lt $CUSTOMERS ]; do
    id=$(api POST /v1/customers "{\"email\": \"signin$n@example.com\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    api PUT "/v1/customers/$id/password" "{\"password\": \"$PW\"}" >/dev/null
    n=$((n + 1))
done

cat >"$TMP/login.lua" <<LUA
local logins, next_thread, n = {}, 0, 0
for i = 0, $CUSTOMERS - 1 do logins[#logins + 1] = "signin" .. i .. "@example.com" end
function setup(thread)
    thread:set("first", next_thread * 5)
    next_thread = next_thread + 1
end
function init(args) n = first or 0 end
function request()
    n = n + 1
    local body = '{"login": "' .. logins[n % #logins + 1] .. '", "password": "$PW"}'
    return wrk.format("POST", "/v1/auth/login", {["Content-Type"] = "application/json"}, body)
end
LUA

raw_rate() { # "CPU ms per hash" "hashes/s"
    "$BENCH/identity_bench" pwhash "$T" "$M" 5 |
        sed -n 's/.*: \([0-9.]*\) ms CPU per hash, \([0-9.]*\) hashes\/s$/\1 \2/p'
}
ticks() { # CPU ticks of the server, and busy and idle ticks of the machine
    awk '{print $14 + $15}' "/proc/$PID/stat"
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat
}
worker_ticks() { # "tid:ticks" of each of the server's libmicrohttpd worker threads
    for t in /proc/"$PID"/task/*; do
        [ "$(cat "$t/comm")" = MHD-worker ] && awk '{printf "%s:%d ", $1, $14 + $15}' "$t/stat"
    done
    echo
}
wrk_figures() { # requests, rps, p99, count of non-2xx answers, and socket errors
    reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$TMP/wrk.out")
    sockerr=$(awk '/Socket errors/ {sub(/^ */, ""); print}' "$TMP/wrk.out")
}

child_cpu() { # user + system seconds of this shell's finished children ("times" must not
    # run in a subshell, whose counts start at zero)
    awk 'NR == 2 {n = 0; for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); n += a[1] * 60 + a[2]}
         print n}' "$TMP/times"
}

before=$(raw_rate)
times >"$TMP/times"
c0=$(child_cpu)
t0=$(ticks)
w0=$(worker_ticks)
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$TMP/login.lua" "$URL/v1/auth/login" \
    >"$TMP/wrk.out"
t1=$(ticks)
w1=$(worker_ticks)
times >"$TMP/times"
c1=$(child_cpu)
after=$(raw_rate)
wrk_figures
echo "http POST /v1/auth/login (Argon2id t=$T, m=$M KiB; wrk -t2 -c$CONNS -d${SECS}s," \
     "$CUSTOMERS customers in turn): $rps sign-ins/s, p99 $p99," \
     "non-2xx ${non2xx:-0}${sockerr:+ ($sockerr)}"
# shellcheck disable=SC2086 # $t0 and $t1 are three numbers each
python3 - "$before" "$after" "$rps" "$reqs" "$(getconf CLK_TCK)" "$(nproc)" $t0 $t1 \
    "$w0" "$w1" "$CONNS" "$c0" "$c1" <<'PY'
import sys
b_cpu, b_rate = map(float, sys.argv[1].split())
a_cpu, a_rate = map(float, sys.argv[2].split())
rps, reqs, hz, cores = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
s0, busy0, idle0, s1, busy1, idle1 = map(int, sys.argv[7:13])
mean = (b_rate + a_rate) / 2
print(f"raw Argon2id on {cores} threads, same parameters: {b_rate:.1f} hashes/s before, "
      f"{a_rate:.1f} after; sign-ins reach {100 * rps / mean:.0f}% of the mean")
login_ms = 1000 * (s1 - s0) / hz / reqs
hash_ms = (b_cpu + a_cpu) / 2
total = max(1, busy1 - busy0 + idle1 - idle0)
idle = 100 * (idle1 - idle0) / total
wrk_ticks = (float(sys.argv[17]) - float(sys.argv[16])) * hz
others = max(0.0, 100 * (busy1 - busy0 - (s1 - s0) - wrk_ticks) / total)
print(f"CPU per sign-in in the server {login_ms:.2f} ms, per raw hash {hash_ms:.2f} ms "
      f"({100 * hash_ms / login_ms:.0f}%); during the load the cores were {idle:.0f}% idle, "
      f"{100 * wrk_ticks / total:.0f}% wrk, {others:.0f}% other programs")
# A connection stays on the worker thread that accepted it: count the threads that worked.
w0 = dict(map(int, x.split(":")) for x in sys.argv[13].split())
w1 = dict(map(int, x.split(":")) for x in sys.argv[14].split())
used = [w1[t] - w0.get(t, 0) for t in w1]
busy = sum(1 for u in used if u > 0.05 * max(used + [1]))
print(f"{busy} of the server's {len(w1)} worker threads served the {sys.argv[15]} connections")
PY

TOKEN=$(curl -sf --cacert "$TMP/d/tls.crt" -H 'Content-Type: application/json' \
    -d "{\"login\": \"signin0@example.com\", \"password\": \"$PW\"}" "$URL/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
cat >"$TMP/me.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
wrk -t2 -c64 -d10s --latency -s "$TMP/me.lua" "$URL/v1/me" >"$TMP/wrk.out"
wrk_figures
echo "http GET /v1/me with a session token (wrk -t2 -c64 -d10s): $rps requests/s, p99 $p99," \
     "non-2xx ${non2xx:-0}${sockerr:+ ($sockerr)}"
