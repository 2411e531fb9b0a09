#!/bin/sh
# One node against two on one PostgreSQL database, on the same data in the same run: audited
# writes (PATCH /v1/customers/{id}), single transfers (POST /v1/transfers, 1,000 accounts),
# batches of 1,000 transfers and POST /v1/events (the mix of http_events.sh, shorter). A fresh
# database runs at a fraction of its later rate (ledger.sh says so of SQLite; on PostgreSQL the
# first 30 s of transfers ran at 627/s, the next at 2,700/s): so each workload first runs 30 s
# on one node, unmeasured, then is measured for 10 s on one node, then, after 10 s more of
# warm-up, for 10 s on two:
# - one node: wrk -t2 against node a (64 clients; 4 for batches);
# - two nodes: two wrk -t1 at once, half the clients each, against nodes a and b; the rate is
#   the sum of both.
# Node b has node a's configuration and reads node a's root key file. PostgreSQL runs with
# its durable defaults (scripts/pgtest.sh, PGTEST_DURABLE=1). Prints the rates, their ratio,
# p99 of each run, the mean group size each node's committer saw, and where the CPU time of
# the run went: custodia's processes, PostgreSQL's, and the rest (wrk, the kernel's idle).
# All of it shares the machine's cores: a second node adds no hardware here, only a second
# committer, so the figure says what the database's serialisation of groups costs.
export CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_LIMITS_PRINCIPAL_PER_MINUTE=0
export CUSTODIA_LIMITS_WRITES_PER_MINUTE=0 CUSTODIA_LIMITS_SIGNIN_PER_MINUTE=0
export CUSTODIA_SERVER_MAX_BODY_BYTES=4m CUSTODIA_SERVER_ACCESS_LOG=false
set -eu
BIN=${CU_BINARY:?}
SRC=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/cu-benchpg-XXXXXX")
PIDA= PIDB=
trap 'kill -TERM $PIDA $PIDB 2>/dev/null; wait 2>/dev/null; "$SRC/scripts/pgtest.sh" stop "$PGDIR"; rm -rf "$TMP"' EXIT
PG=$(PGTEST_DURABLE=1 "$SRC/scripts/pgtest.sh" start "$PGDIR")
VERSION=$(psql -X -A -t "$PG/postgres" -c 'SHOW server_version' | cut -d' ' -f1)
psql -q -X "$PG/postgres" -c "CREATE DATABASE bench_nodes" >/dev/null
"$BIN" init --dir "$TMP/a" --store "$PG/bench_nodes" >/dev/null 2>&1
KEY=$(cat "$TMP/a/initial-api-key")
mkdir -m 0700 "$TMP/b"
cp -p "$TMP/a/custodia.conf" "$TMP/a/tls.crt" "$TMP/a/tls.key" "$TMP/a/access.policy" "$TMP/b/"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PA=$(free_port)
PB=$(free_port)
CUSTODIA_SERVER_PORT=$PA "$BIN" serve --dir "$TMP/a" 2>"$TMP/a.log" &
PIDA=$!
CUSTODIA_SERVER_PORT=$PB CUSTODIA_KEYS_ROOT_KEY_FILE="$TMP/a/root.key" "$BIN" serve --dir "$TMP/b" 2>"$TMP/b.log" &
PIDB=$!
for p in $PA $PB; do
    i=0
    until curl -s -o /dev/null --cacert "$TMP/a/tls.crt" "https://127.0.0.1:$p/v1/health"; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "a node did not start" >&2; exit 1; }; sleep 0.1
    done
done
# 1,000 customers with one account each, of 10^12 minor units
python3 - "$PA" "$KEY" "$TMP/a/tls.crt" 1000 >"$TMP/ids.txt" <<'PY'
import http.client, json, ssl, sys
port, key, ca, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
def call(method, path, body, extra=None):
    c.request(method, path, json.dumps(body), dict(h, **(extra or {})))
    return json.loads(c.getresponse().read())
for i in range(n):
    cus = call("POST", "/v1/customers", {"given_name": "Holder", "family_name": "N%d" % i,
                                         "tags": ["new"]})["id"]
    acc = call("POST", "/v1/customers/%s/accounts" % cus, {"currency": "EUR"})["id"]
    call("POST", "/v1/deposits", {"account": acc, "amount": 10**12, "currency": "EUR"},
         {"Idempotency-Key": "seed-%d" % i})
    print(cus, acc)
PY
# the Lua scripts: wrk's threads of both processes keep their idempotency keys apart
head_lua() {
    echo "local cus, acc = {}, {}"
    awk '{printf "cus[#cus + 1] = \"%s\"; acc[#acc + 1] = \"%s\"\n", $1, $2}' "$TMP/ids.txt"
    echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""
    echo "wrk.headers[\"Content-Type\"] = \"application/json\""
    echo 'local n, tid = 0, 0'
    echo 'local run = os.getenv("CU_RUN") or "0"'
    echo 'setup = function(thread) tid = tid + 1; thread:set("tid", tid) end'
    echo 'local function pair() local a = acc[math.random(#acc)]; local b = acc[math.random(#acc)]; while b == a do b = acc[math.random(#acc)] end
        return "{\"debit_account\": \"" .. a .. "\", \"credit_account\": \"" .. b .. "\", \"amount\": 1, \"currency\": \"EUR\"}" end'
    echo 'local function idem(p) n = n + 1; wrk.headers["Idempotency-Key"] = p .. run .. "-" .. tostring(tid) .. "-" .. n .. "-" .. math.random(1e9) end'
}
{
    head_lua
    echo 'wrk.method = "PATCH"'
    echo 'request = function() n = n + 1; return wrk.format(nil, "/v1/customers/" .. cus[math.random(#cus)], nil, "{\"tags\": [\"t" .. n .. "\"]}") end'
} >"$TMP/writes.lua"
{
    head_lua
    echo 'wrk.method = "POST"'
    echo 'request = function() idem("s"); return wrk.format(nil, "/v1/transfers", nil, pair()) end'
} >"$TMP/transfers.lua"
{
    head_lua
    echo 'wrk.method = "POST"'
    echo 'request = function() idem("b"); local t = {}; for i = 1, 1000 do t[i] = pair() end
        return wrk.format(nil, "/v1/transfers/batch", nil, "{\"transfers\": [" .. table.concat(t, ",") .. "]}") end'
} >"$TMP/batch.lua"
{
    head_lua
    echo 'wrk.method = "POST"'
    cat <<'LUA'
request = function()
  local c = math.random(10000)
  local base = '{"time": "' .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. '", "customer": "c' .. c ..
      '", "ip": "10.' .. (c % 250) .. '.' .. (c % 13) .. '.' .. (c % 200 + 1) .. '", "device": "d' .. c ..
      '", "country": "GB"'
  local r = math.random(100)
  local body
  if r <= 45 then body = base .. ', "type": "login_succeeded"}'
  elseif r <= 50 then body = base .. ', "type": "login_failed"}'
  else body = base .. ', "type": "transfer", "amount": ' .. math.random(100, 250000) ..
      ', "currency": "GBP", "payee": "p' .. (c * 7 + math.random(3)) .. '"}' end
  return wrk.format(nil, "/v1/events", nil, body)
end
LUA
} >"$TMP/events.lua"

# groups PORT: "units groups" of that node's committer so far
groups() {
    curl -s --cacert "$TMP/a/tls.crt" -H "Authorization: Bearer $KEY" "https://127.0.0.1:$1/metrics" |
        awk '/^custodia_commit_group_units_sum/ {s = $2} /^custodia_commit_group_units_count/ {c = $2} END {print s, c}'
}
# ticks PIDS...: CPU ticks (user + system) of those processes and their threads so far
ticks() {
    for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{t += $14 + $15} END {print t + 0}'
}
pg_pids() { pm=$(head -1 "$PGDIR/data/postmaster.pid"); echo "$pm $(pgrep -P "$pm" | tr '\n' ' ')"; }
all_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }
# load SCRIPT CLIENTS SECONDS NODES: wrk against node a, or against a and b at once; prints
# "rate p99a p99b errors" (rate in requests/s)
load() {
    if [ "$4" = 1 ]; then
        CU_RUN=$RUN wrk -t2 -c"$2" -d"$3" --timeout 10s --latency -s "$1" "https://127.0.0.1:$PA" >"$TMP/wrk.a"
        : >"$TMP/wrk.b"
    else
        CU_RUN=${RUN}a wrk -t1 -c$(($2 / 2)) -d"$3" --timeout 10s --latency -s "$1" "https://127.0.0.1:$PA" >"$TMP/wrk.a" &
        w=$!
        CU_RUN=${RUN}b wrk -t1 -c$(($2 / 2)) -d"$3" --timeout 10s --latency -s "$1" "https://127.0.0.1:$PB" >"$TMP/wrk.b"
        wait $w
    fi
    RUN=$((RUN + 1))
    cat "$TMP/wrk.a" "$TMP/wrk.b" | awk '/^Requests\/sec/ {r += $2} $1 == "99%" {p[++k] = $2}
        /Non-2xx/ {e += $NF} /Socket errors/ {e += 1}
        END {printf "%.0f %s %s %d\n", r, p[1], (k > 1 ? p[2] : "-"), e}'
}
RUN=0
S=${CU_BENCH_SECONDS:-10} # seconds a run (and its warm-up)
M=0
# measure NAME SCRIPT CLIENTS PER: one node, then two, each after a warm-up of its own
measure() {
    M=$((M + 1))
    load "$2" "$3" "$((3 * S))s" 1 >/dev/null
    for nodes in 1 2; do
        [ "$nodes" = 1 ] || load "$2" "$3" "${S}s" "$nodes" >/dev/null
        ga0=$(groups "$PA") gb0=$(groups "$PB")
        c0=$(ticks $PIDA $PIDB) p0=$(ticks $(pg_pids)) t0=$(all_ticks)
        out=$(load "$2" "$3" "${S}s" "$nodes")
        c1=$(ticks $PIDA $PIDB) p1=$(ticks $(pg_pids)) t1=$(all_ticks)
        ga1=$(groups "$PA") gb1=$(groups "$PB")
        # nodes rate p99a p99b errors units-a units-b cpu-custodia% cpu-postgres%
        echo "$nodes $out $ga0 $ga1 $gb0 $gb1 $((c1 - c0)) $((p1 - p0)) $((t1 - t0))" | awk -v per="$4" '{
            ma = ($9 > $7) ? ($8 - $6) / ($9 - $7) : 0
            mb = ($13 > $11) ? ($12 - $10) / ($13 - $11) : 0
            printf "%s %.0f %s %s %s %.1f %.1f %.0f %.0f\n", $1, $2 * per, $3, $4, $5, ma, mb,
                100 * $14 / $16, 100 * $15 / $16 }' >>"$TMP/m$M.res"
    done
    awk -v name="$1" 'NR == 1 {split($0, o, " ")} NR == 2 {split($0, t, " ")}
        END {printf "postgres nodes, %s: one node %s/s (p99 %s, %s units a commit; CPU: custodia %s%%, PostgreSQL %s%%), two nodes %s/s (p99 %s and %s, %s and %s units a commit; CPU: custodia %s%%, PostgreSQL %s%%): two nodes = %.2f x one%s\n",
        name, o[2], o[3], o[6], o[8], o[9], t[2], t[3], t[4], t[6], t[7], t[8], t[9], (o[2] > 0 ? t[2] / o[2] : 0),
        (o[5] + t[5] > 0 ? sprintf(" (%d errors)", o[5] + t[5]) : "")}' "$TMP/m$M.res"
    return 0
}
echo "== postgres_nodes: PostgreSQL $VERSION, durable, one database; node b reads node a's root key file"
measure "audited writes (PATCH /v1/customers/{id}, 64 clients)" "$TMP/writes.lua" 64 1
measure "single transfers (POST /v1/transfers, 1,000 accounts, 64 clients)" "$TMP/transfers.lua" 64 1
measure "transfers in batches of 1,000 (4 clients; transfers/s)" "$TMP/batch.lua" 4 1000
measure "events (POST /v1/events, 64 clients)" "$TMP/events.lua" 64 1
kill -TERM $PIDA $PIDB
wait $PIDA $PIDB 2>/dev/null || true
PIDA= PIDB=
if "$BIN" ledger check --dir "$TMP/a" >"$TMP/check" 2>&1 && "$BIN" audit verify --dir "$TMP/a" >>"$TMP/check" 2>&1; then
    echo "postgres nodes: ledger check and audit verify after the runs: $(tr '\n' ' ' <"$TMP/check")"
else
    echo "postgres nodes: ledger check or audit verify FAILED after the runs: $(cat "$TMP/check")"
    exit 1
fi
