#!/bin/sh
# The PostgreSQL backend from the outside, on the server CU_TEST_PG names (make check starts a
# private one), whichever backend the other tests run on: `custodia init --store URL` makes a
# ready installation in an empty database and refuses anything else, writing nothing; the
# server keeps its data there across a restart; a database made by a newer custodia is
# refused; the database going away under load gives 503s with nothing half-written, and
# service comes back by itself; the connection string's password is never printed or logged.
. "$(dirname "$0")/lib.sh"
if [ -z "${CU_TEST_PG:-}" ]; then
    echo "# skipped: CU_TEST_PG names no PostgreSQL server"
    exit 77
fi
PGN=0
# newdb: makes an empty database and sets DBN (its name) and DBU (its URL, with a password
# the server, trusting 127.0.0.1, does not check).
newdb() {
    PGN=$((PGN + 1))
    DBN="$(basename "$TMP" | tr 'A-Z-' 'a-z_')_s$PGN"
    psql -q -X -v ON_ERROR_STOP=1 "$CU_TEST_PG/postgres" -c "CREATE DATABASE $DBN" >/dev/null
    PG_DBS="$PG_DBS $DBN"
    DBU=$(echo "$CU_TEST_PG/$DBN" | sed 's|://custodia@|://custodia:pw-0f-the-db@|')
}
# Whatever the other tests run on, this one names its store itself.
unset CUSTODIA_STORE_BACKEND CUSTODIA_STORE_URL

"$BIN" init --dir "$TMP/bad" --store "mysql://x@127.0.0.1/db" >"$TMP/bad.out" 2>&1
check_eq "init --store takes a postgres URL only" 2 "$?"
check "saying so" contains "$TMP/bad.out" "postgres:// or postgresql:// URL"
check "and makes nothing" test ! -e "$TMP/bad"

newdb
MISSING=$(echo "$DBU" | sed "s|/$DBN\$|/${DBN}_missing|")
"$BIN" init --dir "$TMP/missing" --store "$MISSING" >"$TMP/missing.out" 2>&1
check_eq "init into a database that does not exist fails" 1 "$?"
check "naming the database" contains "$TMP/missing.out" "${DBN}_missing"
check "without the password" absent -F "pw-0f-the-db" "$TMP/missing.out"
check "and leaves no data directory" test ! -e "$TMP/missing"

D="$TMP/data"
"$BIN" init --dir "$D" --store "$DBU" >"$TMP/init.out" 2>&1
check_eq "init --store into an empty database exits 0" 0 "$?"
check "the configuration names the backend" grep -qx "backend = postgres" "$D/custodia.conf"
check "and the URL" grep -qxF "url = $DBU" "$D/custodia.conf"
check_eq "the configuration is 0600" 600 "$(stat -c %a "$D/custodia.conf")"
check "no database file in the directory" test ! -e "$D/custodia.db"
check "init prints no password" absent -F "pw-0f-the-db" "$TMP/init.out"
check_eq "the database is migrated" 1 \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT COUNT(*) FROM schema_migrations WHERE version = 1")"
KEY=$(cat "$D/initial-api-key")

"$BIN" init --dir "$TMP/again" --store "$DBU" >"$TMP/again.out" 2>&1
check_eq "init into a database that holds an installation fails" 1 "$?"
check "saying so" contains "$TMP/again.out" "already holds a custodia installation"
check "and leaves no data directory" test ! -e "$TMP/again"

FIRST_DBU=$DBU
newdb
psql -q -X "$CU_TEST_PG/$DBN" -c "CREATE TABLE someone_elses (x int)"
"$BIN" init --dir "$TMP/other" --store "$DBU" >"$TMP/other.out" 2>&1
check_eq "init into a database holding another's tables fails" 1 "$?"
check "saying it is not empty" contains "$TMP/other.out" "is not empty"
check_eq "and makes nothing there" 1 \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()")"
newdb
CUSTODIA_STORE_URL="$FIRST_DBU" "$BIN" init --dir "$TMP/flag" --store "$DBU" >"$TMP/flag.out" 2>&1
check_eq "--store wins over CUSTODIA_STORE_URL" "0 1" \
    "$? $(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT COUNT(*) FROM schema_migrations WHERE version = 1")"
DBU=$FIRST_DBU
DBN=$(echo "$DBU" | sed 's|.*/||')
AUTH="Authorization: Bearer $KEY"
JSONH="Content-Type: application/json"
start_server "$D" || exit 1
req GET /v1/health
check_eq "health names the backend" "200 postgres" "$STATUS $(json "j['store_backend']")"
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Petronella", "email": "p@example.com"}'
check_eq "a customer is made" 201 "$STATUS"
CID=$(json "j['id']")
stop_server
start_server "$D" || exit 1
req GET "/v1/customers/$CID" -H "$AUTH"
check_eq "and is there after a restart" "200 Petronella" "$STATUS $(json "j['given_name']")"
"$BIN" audit verify --dir "$D" >"$TMP/verify.out" 2>&1
check_eq "the audit log verifies" 0 "$?"

# The database goes away under load: every session is ended and no new one may start. Requests
# fail with 503 meanwhile, and once it is back the server serves again by itself.
python3 - "$PORT" "$KEY" "$D/tls.crt" "$TMP/load" <<'PY' &
import http.client, json, ssl, sys, time
port, key, ca, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
codes, made = {}, []
end = time.monotonic() + 6
i = 0
while time.monotonic() < end:
    i += 1
    try:
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        c.request("POST", "/v1/customers", json.dumps({"given_name": "Load %d" % i}),
                  {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        codes[r.status] = codes.get(r.status, 0) + 1
        if r.status == 201:
            made.append(json.loads(body)["id"])
        c.close()
    except OSError:
        codes["error"] = codes.get("error", 0) + 1
    time.sleep(0.01)
json.dump({"codes": codes, "made": made}, open(out, "w"))
PY
LOADER=$!
sleep 1.5
psql -q -X "$CU_TEST_PG/postgres" -c "ALTER DATABASE $DBN ALLOW_CONNECTIONS false" \
    -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$DBN'" >/dev/null
sleep 2
req GET /v1/health
check_eq "health answers 503 while the database is away" 503 "$STATUS"
psql -q -X "$CU_TEST_PG/postgres" -c "ALTER DATABASE $DBN ALLOW_CONNECTIONS true" >/dev/null
wait $LOADER
check "the load saw 201s and 503s, nothing else" python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))['codes']
sys.exit(0 if set(c) == {'201', '503'} else 1)" "$TMP/load"
i=0
until req GET /v1/health && [ "$STATUS" = 200 ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
check_eq "health recovers by itself" 200 "$STATUS"
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "After"}'
check_eq "and changes are taken again" 201 "$STATUS"
check "every customer acknowledged during the outage is there" python3 -c "
import json, subprocess, sys
made = json.load(open(sys.argv[1]))['made']
rows = subprocess.run([sys.argv[2], sys.argv[3], 'SELECT id FROM customers'], capture_output=True,
                      text=True, check=True).stdout.split()
sys.exit(0 if made and set(made) <= set(rows) else 1)" "$TMP/load" "$DBQ" "$D"
stop_server
"$BIN" audit verify --dir "$D" >"$TMP/verify.out" 2>&1
check_eq "the audit log still verifies" 0 "$?"
"$BIN" ledger check --dir "$D" >"$TMP/check.out" 2>&1
check_eq "and the ledger checks" 0 "$?"
check "the server's log holds no password" absent -F "pw-0f-the-db" "$LOG"

# A database made by a newer custodia is refused, and left as it was.
psql -q -X "$CU_TEST_PG/$DBN" -c "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future', 0)"
env CUSTODIA_SERVER_PORT="$(free_port)" "$BIN" serve --dir "$D" >"$TMP/newer.out" 2>&1
check_eq "the server refuses a newer schema" 1 "$?"
check "saying so" contains "$TMP/newer.out" "newer than this custodia"
check_eq "and leaves it" 1 \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT COUNT(*) FROM schema_migrations WHERE version = 999")"
# custodia store copy: an embedded installation, with customers, money, sign-ins and decided
# events, into an empty PostgreSQL database; proven; then served from there.
E="$TMP/embedded"
CUSTODIA_STORE_BACKEND=sqlite "$BIN" init --dir "$E" >"$TMP/e.init" 2>&1 || { cat "$TMP/e.init"; exit 1; }
EKEY=$(cat "$E/initial-api-key")
EAUTH="Authorization: Bearer $EKEY"
CUSTODIA_STORE_BACKEND=sqlite start_server "$E" || exit 1
req POST /v1/customers -H "$EAUTH" -H "$JSONH" --data '{"given_name": "Ottilie", "email": "ottilie@example.com"}'
OID=$(json "j['id']")
req PUT "/v1/customers/$OID/password" -H "$EAUTH" -H "$JSONH" --data '{"password": "copper lantern meadow 41"}'
req POST /v1/auth/login -H "$JSONH" --data '{"login": "ottilie@example.com", "password": "wrong one", "kind": "customer"}'
req POST "/v1/customers/$OID/accounts" -H "$EAUTH" -H "$JSONH" --data '{"currency": "EUR"}'
OACC=$(json "j['id']")
req POST /v1/deposits -H "$EAUTH" -H "$JSONH" -H "Idempotency-Key: copy-dep-1" \
    --data "{\"account\": \"$OACC\", \"amount\": 7000, \"currency\": \"EUR\"}"
check_eq "the embedded installation takes a deposit" 201 "$STATUS"
stop_server
"$BIN" store copy --dir "$E" --to "mysql://x@127.0.0.1/db" >"$TMP/copy.bad" 2>&1
check_eq "store copy takes a postgres URL only" 2 "$?"
newdb
CUSTODIA_STORE_BACKEND=sqlite "$BIN" store copy --dir "$E" --to "$DBU" >"$TMP/copy.out" 2>&1
check_eq "store copy into an empty database exits 0" 0 "$?"
check "and says it proved the copy" contains "$TMP/copy.out" "copied and proven"
check "without the password" absent -F "pw-0f-the-db" "$TMP/copy.out"
check_eq "every audit record is there" \
    "$("$DBQ" "$E" "SELECT COUNT(*) FROM audit_log")" \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT COUNT(*) FROM audit_log")"
CUSTODIA_STORE_BACKEND=sqlite "$BIN" store copy --dir "$E" --to "$DBU" >"$TMP/copy.again" 2>&1
check_eq "a second copy into the same database is refused" 1 "$?"
check "the target is not empty" contains "$TMP/copy.again" "is not empty"
"$BIN" store copy --dir "$D" --to "$DBU" >"$TMP/copy.pg" 2>&1
check_eq "a directory already on PostgreSQL is not copied" 1 "$?"
# served from the copy: the same customer, balance and sign-in; new rows after the old ones
CUSTODIA_STORE_BACKEND=postgres CUSTODIA_STORE_URL="$DBU" start_server "$E" || exit 1
req GET "/v1/customers/$OID" -H "$EAUTH"
check_eq "the copy serves the customer" "200 Ottilie" "$STATUS $(json "j['given_name']")"
req GET "/v1/accounts/$OACC" -H "$EAUTH"
check_eq "and the balance" "200 7000" "$STATUS $(json "j['balance']['posted']")"
req POST /v1/auth/login -H "$JSONH" --data '{"login": "ottilie@example.com", "password": "copper lantern meadow 41", "kind": "customer"}'
check_eq "and the password" 200 "$STATUS"
req POST /v1/deposits -H "$EAUTH" -H "$JSONH" -H "Idempotency-Key: copy-dep-1" \
    --data "{\"account\": \"$OACC\", \"amount\": 7000, \"currency\": \"EUR\"}"
check_eq "and its idempotency keys: a retry applies nothing" "201 7000" "$STATUS $(json "[a for a in j['accounts'] if a['id'] == '$OACC'][0]['balance']['posted']")"
req POST /v1/deposits -H "$EAUTH" -H "$JSONH" -H "Idempotency-Key: copy-dep-2" \
    --data "{\"account\": \"$OACC\", \"amount\": 1000, \"currency\": \"EUR\"}"
check_eq "a new deposit" 201 "$STATUS"
stop_server
CUSTODIA_STORE_BACKEND=postgres CUSTODIA_STORE_URL="$DBU" "$BIN" audit verify --dir "$E" >"$TMP/verify.out" 2>&1
check_eq "the copy's audit log, grown, verifies" 0 "$?"
CUSTODIA_STORE_BACKEND=postgres CUSTODIA_STORE_URL="$DBU" "$BIN" ledger check --dir "$E" >"$TMP/check.out" 2>&1
check_eq "and its ledger checks" 0 "$?"
check "new sign-in events numbered after the copied ones" test \
    "$(psql -X -A -t "$CU_TEST_PG/$DBN" -c "SELECT MAX(seq) FROM auth_events")" -gt \
    "$(CUSTODIA_STORE_BACKEND=sqlite "$DBQ" "$E" "SELECT MAX(seq) FROM auth_events")"
finish
