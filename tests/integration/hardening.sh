#!/bin/sh
# Hardening of the HTTPS face: every stop is clean however many signals come; slow clients
# are cut off at the header and body deadlines while health stays up; ambiguous framing, a
# control byte in the target, a repeated query argument or header, a header name with a
# space and a missing Host are refused with problem documents.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
RAW="$SRC/tests/integration/rawtls.py"

# stopped_cleanly LOG: the log says the server stopped, the last audit record is system.stop
# (clean), and the newest checkpoint covers the whole log.
stopped_cleanly() {
    contains "$1" '"msg":"server.stopped"' || return 1
    last=$("$BIN" audit tail -n 1 --dir "$D" 2>/dev/null)
    case $last in *'"action":"system.stop"'*'"clean":true'*) ;; *) return 1 ;; esac
    n=$("$DBQ" "$D" 'SELECT count(*) FROM audit_log')
    cp=$("$DBQ" "$D" 'SELECT max(tree_size) FROM audit_checkpoints')
    [ "$n" = "$cp" ]
}

# Two signals, then ten, in a loop: each stop is clean. The signals come as fast as the shell
# sends them, while the server is at its busiest moment of the stop.
for signals in 2 10; do
    clean=0
    rounds=5
    r=0
    while [ $r -lt $rounds ]; do
        start_server "$D" || exit 1
        i=0
        while [ $i -lt $signals ]; do
            kill -TERM "$PID" 2>/dev/null
            i=$((i + 1))
        done
        wait "$PID"
        code=$?
        PID=
        if [ "$code" -eq 0 ] && stopped_cleanly "$LOG"; then clean=$((clean + 1)); fi
        r=$((r + 1))
    done
    check_eq "$signals SIGTERMs at once: every stop is clean ($clean of $rounds)" "$rounds" "$clean"
done

# The same with SIGINT to the whole process group, as a terminal's Ctrl-C (twice) does.
clean=0
r=0
while [ $r -lt 3 ]; do
    PORT=$(free_port)
    LOG="$D.serve.log"
    setsid sh -c "CUSTODIA_SERVER_PORT=$PORT exec '$BIN' serve --dir '$D' 2>'$LOG'" &
    sid=$!
    i=0
    while [ $i -lt 300 ] && ! curl -s -o /dev/null --cacert "$D/tls.crt" "https://127.0.0.1:$PORT/v1/health"; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -INT "-$sid" 2>/dev/null
    kill -INT "-$sid" 2>/dev/null
    wait "$sid"
    code=$?
    if [ "$code" -eq 0 ] && stopped_cleanly "$LOG"; then clean=$((clean + 1)); fi
    r=$((r + 1))
done
check_eq "two SIGINTs to the process group: every stop is clean ($clean of 3)" 3 "$clean"

# SIGHUP and SIGQUIT stop cleanly too; SIGUSR1 and SIGUSR2 are ignored.
for sig in HUP QUIT; do
    start_server "$D" || exit 1
    kill -USR1 "$PID"
    kill -USR2 "$PID"
    kill -"$sig" "$PID"
    wait "$PID"
    code=$?
    PID=
    check "SIG$sig (after SIGUSR1 and SIGUSR2) stops the server cleanly" \
        sh -c "[ $code -eq 0 ] && grep -q '\"signal\":\"SIG$sig\"' '$LOG'"
    check "SIG$sig: the stop is recorded and checkpointed" stopped_cleanly "$LOG"
done

start_server "$D" CUSTODIA_SERVER_HEADER_TIMEOUT=2 CUSTODIA_SERVER_BODY_TIMEOUT=2 \
    CUSTODIA_SERVER_IDLE_TIMEOUT=30 || exit 1

# A client that sends a header line every half second is never idle, but is cut off at the
# header deadline; one that sends its body a byte at a time, at the body deadline.
python3 "$RAW" slowhead "$PORT" "$CA" 0.5 >"$TMP/slowhead" &
slow=$!
sleep 0.5
req GET /v1/health
check_eq "health answers while a slow client sends headers" 200 "$STATUS"
wait $slow
secs=$(cat "$TMP/slowhead")
check "a client sending a header line every 0.5 s is cut off at the 2 s deadline ($secs s)" \
    python3 -c "import sys; sys.exit(0 if 1.5 <= float('$secs') <= 6 else 1)"
secs=$(python3 "$RAW" silent "$PORT" "$CA")
check "a client that never starts its TLS handshake is cut off at the 2 s deadline ($secs s)" \
    python3 -c "import sys; sys.exit(0 if 1.5 <= float('$secs') <= 6 else 1)"
secs=$(python3 "$RAW" slowbody "$PORT" "$CA" 0.5)
check "a client sending its body a byte every 0.5 s is cut off at the 2 s deadline ($secs s)" \
    python3 -c "import sys; sys.exit(0 if 1.5 <= float('$secs') <= 6 else 1)"
req GET /metrics -H "Authorization: Bearer $KEY"
check "metrics count a connection closed at the header deadline" \
    grep -q '^custodia_http_deadline_closed_total{phase="header"} [1-9]' "$TMP/body"
check "metrics count a connection closed at the body deadline" \
    grep -q '^custodia_http_deadline_closed_total{phase="body"} [1-9]' "$TMP/body"

# Many slow clients do not keep a fresh one out: 20 of them, then health.
i=0
slow=
while [ $i -lt 20 ]; do
    python3 "$RAW" slowhead "$PORT" "$CA" 0.5 >/dev/null &
    slow="$slow $!"
    i=$((i + 1))
done
sleep 1
req GET /v1/health
check_eq "health answers beside 20 slow clients" 200 "$STATUS"
# shellcheck disable=SC2086
wait $slow

# raw_status REQUEST: the status line of the server's answer to REQUEST (printf format).
# The whole answer is in $TMP/raw.
raw_status() {
    # shellcheck disable=SC2059
    printf "$1" | python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
    head -n 1 "$TMP/raw" | tr -d '\r'
}

# problem STATUS DESCRIPTION: the last raw answer was one answer, with STATUS, a problem
# document, the security headers and a request id, and it closed the connection.
problem() {
    st=$(head -n 1 "$TMP/raw" | tr -d '\r')
    check_eq "$2: $1" "HTTP/1.1 $1" "$st"
    check "$2: a problem document" grep -q '^Content-Type: application/problem+json' "$TMP/raw"
    check "$2: HSTS and a request id" sh -c \
        "grep -q '^Strict-Transport-Security:' '$TMP/raw' && grep -q '^X-Request-Id:' '$TMP/raw'"
    check_eq "$2: one status line" 1 "$(grep -c '^HTTP/1.1 ' "$TMP/raw")"
}

raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}{}\r\n0\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' >/dev/null
problem "400 Bad Request" "Content-Length with Transfer-Encoding"
check "Content-Length with Transfer-Encoding: no second answer" absent '"status":"ok"' "$TMP/raw"
check "Content-Length with Transfer-Encoding: the connection closes" \
    grep -qi '^Connection: close' "$TMP/raw"
check "the refusal names the framing" grep -q 'both Content-Length and Transfer-Encoding' "$TMP/raw"

raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\n{}' >/dev/null
problem "400 Bad Request" "two Content-Length headers"
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n' >/dev/null
problem "400 Bad Request" "a transfer coding other than chunked"
raw_status 'GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n' >/dev/null
problem "400 Bad Request" "a space before a header's colon"
raw_status 'GET /v1/health HTTP/1.1\r\n\r\n' >/dev/null
problem "400 Bad Request" "HTTP/1.1 without Host"
# libmicrohttpd 0.9.75 glues a folded line to the header's name, so the framing it carried
# would vanish and the body be read as the next request.
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding:\r\n chunked\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >/dev/null
problem "400 Bad Request" "a folded Transfer-Encoding"
check "a folded Transfer-Encoding: the body is not served as a request" \
    absent '"status":"ok"' "$TMP/raw"
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n 2\r\n\r\n{}{}' >/dev/null
problem "400 Bad Request" "a folded Content-Length"
raw_status 'POST /v1/auth/login HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nGET /v1/health HTTP/1.0\r\n\r\n' >/dev/null
problem "400 Bad Request" "Transfer-Encoding on HTTP/1.0"
raw_status 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n' >/dev/null
problem "400 Bad Request" "a bare CR in a header value"
raw_status 'GET /v1/health HTTP/1.0\r\n\r\n' >/dev/null
check_eq "HTTP/1.0 without Host is served" "HTTP/1.1 200 OK" "$(head -n 1 "$TMP/raw" | tr -d '\r')"

# A NUL or another control byte in the path, raw or encoded, is refused; it used to cut the
# path short and serve another route.
for t in '/v1/health%%00junk' '/v1/customers%%00/cus_0000000000000000' '/v1/health%%0a' \
    '/v1/health%%7f' '/v1/health%%zz' '/v1/he alth' '/v1/customers/cus_x%%2Fcredentials' \
    '/v1/customers/cus_x%%5ccredentials'; do
    raw_status "GET $t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $KEY\r\n\r\n" >/dev/null
    problem "400 Bad Request" "the target $t"
done
req GET '/v1/health%00junk'
check_eq "curl: %00 in the path is 400" 400 "$STATUS"
check "the detail says why" contains "$TMP/body" 'control byte'

# A repeated query argument is refused rather than the first silently taken.
req GET '/v1/customers?email=a@example.com&email=b@example.com' -H "Authorization: Bearer $KEY"
check_eq "a repeated query argument is 400" 400 "$STATUS"
check "the detail names it" contains "$TMP/body" "'email' is repeated"
req GET '/v1/apikeys?LIMIT=1&limit=2' -H "Authorization: Bearer $KEY"
check_eq "names differing only in case are one argument, repeated" 400 "$STATUS"
req GET '/v1/customers?after=x%2Fy' -H "Authorization: Bearer $KEY"
check_eq "an encoded slash in the query is no path segment: the handler judges it" 400 "$STATUS"
check "and its refusal is not about a slash" absent slash "$TMP/body"

# What libmicrohttpd once answered with an HTML page of its own (no security headers, no
# request id, its status line twice) the front now refuses with a problem document.
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n' >/dev/null
problem "400 Bad Request" "a negative Content-Length"
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n' >/dev/null
problem "400 Bad Request" "a Content-Length that is not a number"
raw_status 'GET /v1/health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n' >/dev/null
problem "400 Bad Request" "a header line without a colon"
check "the detail says why" grep -q 'has no colon' "$TMP/raw"
raw_status 'GET /v1/health HTTP/2.0\r\nHost: x\r\n\r\n' >/dev/null
problem "505 HTTP Version Not Supported" "HTTP/2.0 in a request line"
check "505: its own problem type" grep -q 'problem:http_version_not_supported' "$TMP/raw"
raw_status 'GET /v1/health HTTP/1.1 extra\r\nHost: x\r\n\r\n' >/dev/null
problem "400 Bad Request" "a request line with more than three parts"
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\nzz\r\n' >/dev/null
problem "400 Bad Request" "a malformed chunk size after a good chunk"
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n' >/dev/null
problem "400 Bad Request" "a chunk longer than its size"
# Heads far past the connection's memory, by size and by number of lines: 431.
printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: %0200000d\r\n\r\n' 0 |
    python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
problem "431 Request Header Fields Too Large" "a 200 KB head"
python3 -c "import sys; sys.stdout.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n' + 'A: b\r\n' * 200 + '\r\n')" |
    python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
problem "431 Request Header Fields Too Large" "200 header lines"
# At the most the front lets through (max_header_bytes + 4 KiB, 128 lines), the library still
# holds the head: the request is served (or refused by custodia, never by the library).
python3 -c "import sys; sys.stdout.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n' + ''.join('X-%03d: %s\r\n' % (i, 'v' * 100) for i in range(126)) + 'Connection: close\r\n\r\n')" |
    python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
check_eq "128 header lines of 100 bytes: served" "HTTP/1.1 200 OK" "$(head -n 1 "$TMP/raw" | tr -d '\r')"
printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: %020380d\r\n\r\n' 0 |
    python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
problem "431 Request Header Fields Too Large" "a head just under the front's limit: custodia's 431"
# A good request, then a malformed one, pipelined: the first is answered, then the refusal,
# each once, in order.
raw_status 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n' >/dev/null
check_eq "pipelined: the good request is answered first" "HTTP/1.1 200 OK" \
    "$(grep '^HTTP/1.1 ' "$TMP/raw" | head -n 1 | tr -d '\r')"
check_eq "pipelined: then the refusal" "HTTP/1.1 400 Bad Request" \
    "$(grep '^HTTP/1.1 ' "$TMP/raw" | sed -n 2p | tr -d '\r')"
check_eq "pipelined: two answers in all" 2 "$(grep -c '^HTTP/1.1 ' "$TMP/raw")"
# Three good requests pipelined, the last closing: three answers in order.
raw_status 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >/dev/null
check_eq "three pipelined requests: three answers, in order" "200 404 200" \
    "$(grep '^HTTP/1.1 ' "$TMP/raw" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"
# Empty lines before a request line are skipped (RFC 9112 section 2.2).
raw_status '\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >/dev/null
check_eq "empty lines before the request line" "HTTP/1.1 200 OK" "$(head -n 1 "$TMP/raw" | tr -d '\r')"
# A client that sends its requests, then a FIN without close_notify, gets every answer.
printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' |
    python3 "$RAW" rawfin "$PORT" "$CA" >"$TMP/raw"
check_eq "three pipelined requests, then a FIN: three answers, in order" "200 404 200" \
    "$(grep '^HTTP/1.1 ' "$TMP/raw" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"
# What libmicrohttpd 0.9.75 would still have refused itself: whitespace after a framing value,
# a head of many cookies or query arguments (its pool), empty lines without end.
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2 \r\n\r\n{}' >/dev/null
problem "400 Bad Request" "a space after the Content-Length"
python3 -c "import sys; sys.stdout.write('GET /v1/health HTTP/1.1\r\nHost: x\r\nCookie: ' + 'a;' * 600 + 'a\r\n\r\n')" |
    python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
problem "431 Request Header Fields Too Large" "600 cookies"
python3 -c "import sys; sys.stdout.write('GET /v1/health?' + 'a&' * 600 + 'a HTTP/1.1\r\nHost: x\r\n\r\n')" |
    python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
problem "400 Bad Request" "600 query arguments"
python3 -c "import sys; sys.stdout.write('\r\n' * 20000 + 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n')" |
    python3 "$RAW" raw "$PORT" "$CA" >"$TMP/raw"
problem "400 Bad Request" "20,000 empty lines before a request"
# Expect: 100-continue, then a malformed chunk: the interim answer, then the refusal.
raw_status 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' >/dev/null
check_eq "Expect: 100-continue and a malformed chunk: 100, then 400" "100 400" \
    "$(grep '^HTTP/1.1 ' "$TMP/raw" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')"
# On a kept-alive connection the header deadline counts from the next head's first byte.
secs=$(python3 "$RAW" keptslow "$PORT" "$CA" 0.5)
check "a kept-alive client sending its next head a byte every 0.5 s is cut off at the 2 s deadline ($secs s)" \
    python3 -c "import sys; sys.exit(0 if 1.5 <= float('$secs') <= 6 else 1)"
# Plain HTTP to the TLS port: the handshake fails, and is counted.
printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' |
    python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1', $PORT)); s.sendall(sys.stdin.buffer.read()); s.settimeout(5); s.recv(100)" 2>/dev/null || true
req GET /metrics -H "Authorization: Bearer $KEY"
check "metrics count the requests the front refused" \
    grep -q '^custodia_http_malformed_total [1-9]' "$TMP/body"
check "metrics count the failed handshake" \
    grep -q '^custodia_tls_handshake_failed_total [1-9]' "$TMP/body"
check "the front's refusals are logged with their status" \
    grep -q '"msg":"http.malformed".*"status":505' "$LOG"
check "libmicrohttpd refused nothing itself" absent 'http.library_refused' "$LOG"

stop_server
check_eq "the server stops cleanly after all this" 0 "$STOP_STATUS"

# Connection limits hold at the front: past per_ip_connections a connection is closed at once
# (before its handshake) and counted; once the held ones close, the address is served again.
start_server "$D" CUSTODIA_SERVER_PER_IP_CONNECTIONS=4 || exit 1
python3 "$RAW" hold "$PORT" "$CA" 6 4 >"$TMP/held" &
holder=$!
i=0
while [ ! -s "$TMP/held" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check_eq "per_ip_connections=4: four of six connections are served" 4 "$(cat "$TMP/held")"
check_eq "a fifth connection from the address is refused while they are held" 000 \
    "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "https://127.0.0.1:$PORT/v1/health")"
wait $holder
sleep 0.3
req GET /metrics -H "Authorization: Bearer $KEY"
check_eq "once they close, the address is served again" 200 "$STATUS"
check "the refused connections are counted" \
    grep -q '^custodia_http_connections_refused_total [3-9]' "$TMP/body"
stop_server

# Client addresses: one setting, the same everywhere. Hashed (the default): no table and no
# log line holds 127.0.0.1, and each holds the hash `audit hash` prints; clear: they all do.
JSONH='Content-Type: application/json'
# sign_in EMAIL: makes a customer with a password and signs them in (a session, an event).
sign_in() {
    req POST /v1/customers -H "Authorization: Bearer $KEY" -H "$JSONH" --data "{\"email\": \"$1\"}"
    cid=$(python3 -c "import json; print(json.load(open('$TMP/body'))['id'])")
    req PUT "/v1/customers/$cid/password" -H "Authorization: Bearer $KEY" -H "$JSONH" \
        --data '{"password": "lantern harbour quietly 42"}'
    req POST /v1/auth/login -H "$JSONH" --data "{\"login\": \"$1\", \"password\": \"lantern harbour quietly 42\"}"
}
# kept WHERE: the addresses the last sign-in left, one per line: session, event, audit, log.
kept() {
    "$DBQ" "$D" "SELECT ip FROM sessions ORDER BY created_at DESC LIMIT 1"
    "$DBQ" "$D" "SELECT ip FROM auth_events ORDER BY seq DESC LIMIT 1"
    "$DBQ" "$D" "SELECT source FROM audit_log WHERE source <> '' ORDER BY seq DESC LIMIT 1"
    grep '"msg":"http.request"' "$LOG" | tail -n 1 | python3 -c "import json,sys; print(json.loads(sys.stdin.read())['remote_ip'])"
}
HK=$("$BIN" audit hash --kind ip 127.0.0.1 --dir "$D")
start_server "$D" || exit 1
sign_in hashed.ip@example.com
check_eq "signed in (hashed addresses)" 200 "$STATUS"
check_eq "session, sign-in event, audit record and access log hold the same hash" \
    "$HK $HK $HK $HK" "$(kept | tr '\n' ' ' | sed 's/ $//')"
check "the address is not in the clear in the access log" absent -F '"remote_ip":"127.0.0.1' "$LOG"
check "nor in the database" absent_out "'$DBQ' '$D' 'SELECT ip FROM sessions UNION ALL
    SELECT ip FROM auth_events UNION ALL SELECT ip FROM auth_challenges UNION ALL
    SELECT source FROM audit_log'" -F 127.0.0.1
stop_server
start_server "$D" CUSTODIA_AUDIT_HASH_SOURCE_IP=false || exit 1
sign_in clear.ip@example.com
check_eq "signed in (clear addresses)" 200 "$STATUS"
check_eq "with the setting off, all four hold the address itself" \
    "127.0.0.1 127.0.0.1 127.0.0.1 127.0.0.1" "$(kept | tr '\n' ' ' | sed 's/ $//')"
stop_server

# Slow uploads of authenticated requests do not hold the store's read connections: more of
# them than [store] connections (4 here) stall their bodies while other requests are served.
start_server "$D" CUSTODIA_STORE_CONNECTIONS=4 CUSTODIA_STORE_BUSY_TIMEOUT_MS=2000 || exit 1
python3 - "$PORT" "$KEY" "$CA" <<'PY' &
import socket, ssl, sys, time
port, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
conns = []
for i in range(8):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(("PATCH /v1/customers/cus_0123456789abcdef HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
               "Content-Length: 100\r\n\r\n{" % key).encode())
    conns.append(s)
time.sleep(6)
PY
SLOW=$!
sleep 1.5
req GET /v1/apikeys -H "Authorization: Bearer $KEY"
check_eq "a key is served while 8 uploads stall (4 read connections)" 200 "$STATUS"
req GET /v1/customers -H "Authorization: Bearer $KEY"
check_eq "and a customer list too" 200 "$STATUS"
wait $SLOW
stop_server
finish
