# lib.sh - shared by the integration tests: a private temp dir, a data directory made by the
# real `custodia init`, a server on a free port of 127.0.0.1, assertions, and a summary line.
# Each test sources it, calls its functions, and ends with `finish`.
set -u

BIN=${CU_BINARY:?CU_BINARY must name the custodia binary}
# The tests read what a data directory's database holds through the store interface, as the
# server does (integration/dbq.c: `$DBQ DIR SQL`, rows as "a|b|c"), not through a backend's own
# client, so that they hold for every backend. Only what tampers with the file itself (a
# trigger that fails appends, a changed ciphertext, a schema version from the future, a reader
# holding the write-ahead log) uses SQLite's client, on purpose.
DBQ=${CU_DBQ:?CU_DBQ must name the tests query helper}
SRC=${CU_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cu-it-XXXXXX")
PASS=0
FAIL=0
PID=
# Sanitizer builds start more slowly.
WAIT_TRIES=${CU_WAIT_TRIES:-300}

# With CU_TEST_BACKEND=postgres and CU_TEST_PG (a PostgreSQL server's URL without a database,
# as scripts/pgtest.sh prints it), the tests run on the PostgreSQL backend: each data directory
# keeps its data in a
# database of its own on that server, made here (through the environment, which wins over
# custodia.conf: CUSTODIA_STORE_BACKEND and CUSTODIA_STORE_URL) and dropped at the end.
# BACKEND says which backend runs, for the few checks that differ.
BACKEND=sqlite
PG_DBS=
PG_FRESH=
# pg_new_db: a new, empty database for the next data directory.
pg_new_db() {
    PG_N=$((${PG_N:-0} + 1))
    PG_NAME="$(basename "$TMP" | tr 'A-Z-' 'a-z_')_$PG_N"
    psql -q -X -v ON_ERROR_STOP=1 "$CU_TEST_PG/postgres" -c "CREATE DATABASE $PG_NAME" >/dev/null ||
        return 1
    PG_DBS="$PG_DBS $PG_NAME"
    PG_FRESH=1
    export CUSTODIA_STORE_BACKEND=postgres CUSTODIA_STORE_URL="$CU_TEST_PG/$PG_NAME"
}
# pg_url DIR: the URL of DIR's database (PostgreSQL).
pg_url() {
    if [ -f "$1.pgurl" ]; then cat "$1.pgurl"; else echo "$CUSTODIA_STORE_URL"; fi
}
# tamper DIR SQL [PG-SQL]: runs SQL with the backend's own client (sqlite3, psql) behind
# custodia's back, for the tests of what custodia notices or survives; PG-SQL, when given, is
# what runs on PostgreSQL instead.
tamper() {
    if [ "$BACKEND" = postgres ]; then
        psql -q -X -A -t -v ON_ERROR_STOP=1 "$(pg_url "$1")" -c "${3:-$2}" >/dev/null
    else
        sqlite3 -cmd ".timeout 10000" "$1/custodia.db" "$2"
    fi
}
# db_dump DIR FILE: everything DIR's database holds, as bytes to search: the SQLite files
# (the database and its write-ahead log) or a pg_dump of the PostgreSQL database.
db_dump() {
    if [ "$BACKEND" = postgres ]; then
        pg_dump "$(pg_url "$1")" >"$2" 2>/dev/null || return 1
    else
        cat "$1"/custodia.db* >"$2"
    fi
}
# db_digest DIR: a digest of what DIR's database holds, to show it unchanged.
db_digest() {
    if [ "$BACKEND" = postgres ]; then
        # pg_dump's \restrict lines carry a random key of each run
        pg_dump "$(pg_url "$1")" 2>/dev/null | grep -Ev '^\\(un)?restrict ' | sha256sum
    else
        sha256sum <"$1/custodia.db"
    fi
}
# sqlite_only REASON: ends a test that checks the embedded backend's files, on PostgreSQL, as
# skipped (exit 77, which meson and make check report by name).
sqlite_only() {
    if [ "$BACKEND" = postgres ]; then
        echo "# skipped on postgres: $1"
        exit 77
    fi
}
if [ "${CU_TEST_BACKEND:-sqlite}" = postgres ]; then
    [ -n "${CU_TEST_PG:-}" ] || { echo "CU_TEST_BACKEND=postgres needs CU_TEST_PG"; exit 1; }
    BACKEND=postgres
    pg_new_db || { echo "cannot make a test database on $CU_TEST_PG"; exit 1; }
fi

cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null
    fi
    for pg_db in $PG_DBS; do
        [ -n "${CU_KEEP_TMP:-}" ] ||
            psql -q -X "$CU_TEST_PG/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" \
                >/dev/null 2>&1
    done
    [ -n "${CU_KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

ok() {
    PASS=$((PASS + 1))
    echo "ok - $*"
}

not_ok() {
    FAIL=$((FAIL + 1))
    echo "not ok - $*"
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
    desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}

# contains FILE TEXT: whether FILE contains TEXT literally.
contains() {
    grep -qF -- "$2" "$1"
}

# Negative checks. "! grep PATTERN FILE" also passes when FILE is missing or unreadable, when
# the pattern is malformed, or, behind a pipe, when the command that should have fed grep
# failed: a probe that could not look is then taken for proof of absence. These helpers pass
# only when the probe looked and found nothing; what went wrong is printed as a "# " line.

# absent GREP-ARGS... FILE...: passes only when grep, given GREP-ARGS (options and patterns, as
# in `absent -aF "$secret" "$D"/custodia.db*` or `absent -i -e one -e two "$TMP/body"`), read
# every FILE and found no match. Fails on a match; when the last argument is not a readable
# regular file (so that a forgotten FILE cannot turn into reading stdin); when an argument is
# empty (an empty pattern, as an empty "$(cat missing-file)" gives, matches nothing in an
# empty file); and when grep reports an error (status 2: a bad pattern, another FILE missing).
absent() {
    for absent_arg in "$@"; do
        if [ -z "$absent_arg" ]; then
            echo "# absent: an empty argument (a pattern that came out empty?)"
            return 1
        fi
    done
    eval "absent_file=\${$#}"
    if [ ! -f "$absent_file" ] || [ ! -r "$absent_file" ]; then
        echo "# absent: $absent_file is not a readable file"
        return 1
    fi
    grep -q "$@"
    case $? in
    1) return 0 ;;
    0)
        echo "# absent: a match for grep $*"
        return 1
        ;;
    *)
        echo "# absent: grep could not search (status 2)"
        return 1
        ;;
    esac
}

# absent_out COMMAND GREP-ARGS...: runs COMMAND, one shell command line (sh -c; make it a
# simple command, as in a pipeline only the last command's status counts), with its output in
# a file, and passes only when COMMAND exited 0 and `absent GREP-ARGS... that-file` passes.
# For what is not a file as it stands: a query's answer, a hex dump of a binary file.
absent_out() {
    absent_cmd=$1
    shift
    if ! sh -c "$absent_cmd" >"$TMP/absent.out" 2>"$TMP/absent.err"; then
        echo "# absent_out: the probe failed: $absent_cmd"
        sed 's/^/#   /' "$TMP/absent.err"
        return 1
    fi
    absent "$@" "$TMP/absent.out"
}

# empty FILE: passes when FILE exists and is empty (`test ! -s` also passes when it is missing).
empty() {
    [ -f "$1" ] && [ ! -s "$1" ]
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# init_dir DIR: runs custodia init and sets KEY to the first API key.
init_dir() {
    if [ "$BACKEND" = postgres ]; then
        [ -n "$PG_FRESH" ] || pg_new_db || return 1
        PG_FRESH=
    fi
    "$BIN" init --dir "$1" >"$1.init.out" 2>&1 || { cat "$1.init.out"; return 1; }
    [ "$BACKEND" = sqlite ] || echo "$CUSTODIA_STORE_URL" >"$1.pgurl"
    KEY=$(cat "$1/initial-api-key")
}

# start_server DIR [VAR=VALUE...]: serves DIR on a free port; sets PORT, URL, PID, LOG.
start_server() {
    dir=$1
    shift
    PORT=$(free_port)
    URL="https://127.0.0.1:$PORT"
    LOG="$dir.serve.log"
    env CUSTODIA_SERVER_PORT="$PORT" "$@" "$BIN" serve --dir "$dir" 2>"$LOG" &
    PID=$!
    CA="$dir/tls.crt"
    i=0
    while [ $i -lt "$WAIT_TRIES" ]; do
        if curl -s -o /dev/null --cacert "$CA" "$URL/v1/health" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "server exited early:"
            cat "$LOG"
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "server did not answer in time"
    return 1
}

# stop_server: SIGTERM, then waits; sets STOP_STATUS to the exit status.
stop_server() {
    kill -TERM "$PID"
    wait "$PID"
    STOP_STATUS=$?
    PID=
}

# req METHOD PATH [curl args...]: one HTTPS request; body in $TMP/body, headers in
# $TMP/headers, status in STATUS.
req() {
    m=$1
    p=$2
    shift 2
    STATUS=$(curl -s -X "$m" --cacert "$CA" -D "$TMP/headers" -o "$TMP/body" -w '%{http_code}' \
        "$@" "$URL$p")
}

# json EXPR: evaluates a Python expression over the last body parsed as JSON (as `j`).
json() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($1)" "$TMP/body"
}

# header NAME: the value of a response header of the last request.
header() {
    tr -d '\r' <"$TMP/headers" | awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" \
        'BEGIN{FS=": "} tolower($1)==n {sub(/^[^:]*: /, ""); print; exit}'
}

# staff_signin ID EMAIL PASSWORD: sets the staff member's password (with $KEY), enrols TOTP
# and signs in with it (aal2); sets STOK to the Authorization header of the session.
staff_signin() {
    req PUT "/v1/staff/$1/password" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' --data "{\"password\": \"$3\"}"
    [ "$STATUS" = 204 ] || { echo "staff_signin: the password was not set ($STATUS)"; return 1; }
    req POST /v1/auth/login -H 'Content-Type: application/json' \
        --data "{\"login\": \"$2\", \"password\": \"$3\", \"kind\": \"staff\"}"
    t=$(json "j['token']")
    req POST /v1/me/mfa/totp -H "Authorization: Bearer $t"
    s=$(json "j['otpauth_uri']" | sed 's/.*secret=\([A-Z2-7]*\).*/\1/')
    req POST /v1/me/mfa/totp/confirm -H "Authorization: Bearer $t" \
        -H 'Content-Type: application/json' --data "{\"code\": \"$(oathtool --totp -b "$s")\"}"
    req POST /v1/auth/login -H 'Content-Type: application/json' \
        --data "{\"login\": \"$2\", \"password\": \"$3\", \"kind\": \"staff\"}"
    c=$(json "j['challenge']")
    req POST /v1/auth/mfa -H 'Content-Type: application/json' --data \
        "{\"challenge\": \"$c\", \"code\": \"$(oathtool --totp -b "$s" -N 'now + 30 seconds')\"}"
    [ "$STATUS" = 200 ] || { echo "staff_signin: the second factor failed ($STATUS)"; return 1; }
    STOK="Authorization: Bearer $(json "j['token']")"
}

# wait_for TEXT: until the server's log has TEXT (a grep pattern), at most 5 s (the access
# policy file is checked once a second).
wait_for() {
    i=0
    while ! grep -q "$1" "$LOG" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    grep -q "$1" "$LOG"
}

# until_eq WANT CMD...: until CMD prints WANT, at most 30 s (a loaded machine, a sanitizer
# build); the check that follows says whether it did.
until_eq() {
    until_want=$1
    shift
    until_i=0
    while [ "$("$@")" != "$until_want" ] && [ $until_i -lt 300 ]; do
        sleep 0.1
        until_i=$((until_i + 1))
    done
}

# policy_now DIR: puts DIR/access.policy.new in place and waits until the server runs it.
policy_now() {
    mv "$1/access.policy.new" "$1/access.policy"
    wait_for '"access.policy_loaded".*"sha256":"'"$(sha256sum "$1/access.policy" | cut -d' ' -f1)"
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
