#!/bin/sh
# custodia serve over HTTPS: TLS versions, health, problem documents for 404/405/413/415/400,
# limits, security headers, authentication, metrics, access log, slow clients, and a clean
# stop on SIGTERM that lets a request in flight finish.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" CUSTODIA_SERVER_IDLE_TIMEOUT=2 || exit 1

# TLS 1.3 and 1.2 accepted, 1.1 refused.
curl -sv --tlsv1.3 --cacert "$CA" -o "$TMP/body" "$URL/v1/health" 2>"$TMP/tls13.err"
check "health over TLS 1.3" contains "$TMP/tls13.err" "SSL connection using TLSv1.3"
check_eq "health status ok" ok "$(json "j['status']")"
check_eq "health store ok" ok "$(json "j['store']")"
check "health names the version" test -n "$(json "j['version']")"
curl -sv --tlsv1.2 --tls-max 1.2 --cacert "$CA" -o /dev/null "$URL/v1/health" 2>"$TMP/tls12.err"
check "TLS 1.2 accepted" contains "$TMP/tls12.err" "SSL connection using TLSv1.2"
echo | openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' \
    >"$TMP/tls11.out" 2>&1
check "TLS 1.1 refused" grep -q 'Cipher is (NONE)' "$TMP/tls11.out"
check "and no certificate sent" absent 'BEGIN CERTIFICATE' "$TMP/tls11.out"
echo | openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 >"$TMP/tls12s.out" 2>&1
check "the same probe gets through with TLS 1.2" contains "$TMP/tls12s.out" "Protocol  : TLSv1.2"

# A store that cannot serve makes health answer 503 with the reason (checked once a second).
tamper "$D" "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future', 0)"
sleep 1.1
req GET /v1/health
check_eq "health 503 when the schema is from a newer custodia" 503 "$STATUS"
check_eq "health says failing" failing "$(json "j['status']")"
check_eq "health gives the reason" "['store: schema_newer']" "$(json "j['reasons']")"
tamper "$D" "DELETE FROM schema_migrations WHERE version = 999"
sleep 1.1
req GET /v1/health
check_eq "health recovers" 200 "$STATUS"

# Security headers and request ids.
req GET /v1/health
check_eq "health answers 200" 200 "$STATUS"
check_eq "HSTS header" "max-age=31536000" "$(header Strict-Transport-Security)"
check_eq "nosniff header" "nosniff" "$(header X-Content-Type-Options)"
check_eq "no-store header" "no-store" "$(header Cache-Control)"
check "request id header" sh -c "test \"\$(echo '$(header X-Request-Id)' | wc -c)\" -eq 33"

# Problems.
req GET /v1/nope
check_eq "unknown route 404" 404 "$STATUS"
check_eq "404 is problem+json" "application/problem+json" "$(header Content-Type)"
check_eq "404 problem type" "urn:custodia:problem:not_found" "$(json "j['type']")"
check_eq "404 problem status" 404 "$(json "j['status']")"
check_eq "problem carries the request id" "$(header X-Request-Id)" "$(json "j['request_id']")"
req POST /v1/health
check_eq "wrong method 405" 405 "$STATUS"
check_eq "405 problem type" "urn:custodia:problem:method_not_allowed" "$(json "j['type']")"
check_eq "405 names the allowed methods" "GET" "$(header Allow)"
head -c 2000000 /dev/zero | tr '\0' 'a' >"$TMP/big"
req POST /v1/apikeys -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary @"$TMP/big"
check_eq "oversize body 413" 413 "$STATUS"
check_eq "413 problem type" "urn:custodia:problem:too_large" "$(json "j['type']")"
req POST /v1/apikeys -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big"
check_eq "oversize chunked body 413" 413 "$STATUS"
req POST /v1/apikeys -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data '{"name": "x", '
check_eq "malformed JSON 400" 400 "$STATUS"
check "the 400 says where" sh -c "python3 -c \"import json; d=json.load(open('$TMP/body'))['detail']; assert 'line 1' in d, d\""
req POST /v1/apikeys -H "Authorization: Bearer $KEY" -H 'Content-Type: text/plain' --data 'hi'
check_eq "wrong content type 415" 415 "$STATUS"
req POST /v1/apikeys -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json; charset=utf-16' --data '{"name": "x"}'
check_eq "JSON in another charset 415" 415 "$STATUS"
check "the 415 says the body must be UTF-8" contains "$TMP/body" "must be JSON in UTF-8"
req POST /v1/apikeys -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json;charset="UTF-8"' --data '{"name": "x"}'
check_eq "charset \"UTF-8\" is read (then the body is refused: no scopes)" 400 "$STATUS"
req POST /v1/apikeys -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data '{"name": "a", "name": "b", "scopes": ["metrics.read"]}'
check_eq "duplicate JSON keys 400" 400 "$STATUS"
check_eq "big header refused" "HTTP/1.1 431 Request Header Fields Too Large" \
    "$(python3 "$SRC/tests/integration/rawtls.py" bigheader "$PORT" "$CA" 40000)"
check_eq "a header just over [server] max_header_bytes (16384) refused" \
    "HTTP/1.1 431 Request Header Fields Too Large" \
    "$(python3 "$SRC/tests/integration/rawtls.py" bigheader "$PORT" "$CA" 16500)"
check_eq "headers within the limit pass" "HTTP/1.1 200 OK" \
    "$(python3 "$SRC/tests/integration/rawtls.py" bigheader "$PORT" "$CA" 15000)"

# An unauthenticated upload is refused before its body is read: 401, not 413.
req POST /v1/apikeys -H 'Content-Type: application/json' --data-binary @"$TMP/big"
check_eq "a body without a key is refused unread" 401 "$STATUS"
req POST /v1/apikeys -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
    --data-binary @"$TMP/big"
check_eq "a chunked body without a key too" 401 "$STATUS"
# A path that cannot go into an audit record as it is does not break the audit log.
req POST /v1/apikeys -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data '{"name": "metrics only", "scopes": ["metrics.read"]}'
LIMITED_EARLY=$(json "j['key']")
req GET "/v1/apikeys/a%C3b%FF%22%27" -H "Authorization: Bearer $LIMITED_EARLY"
check_eq "a denial with a strange path is 403" 403 "$STATUS"
req GET "/v1/apikeys/a%0Ab%FF" -H "Authorization: Bearer $LIMITED_EARLY"
check_eq "a path with an encoded control byte is refused before routing" 400 "$STATUS"
req GET /v1/health
check_eq "and the audit log stays healthy" 200 "$STATUS"

# Authentication.
req GET /metrics
check_eq "metrics without a key 401" 401 "$STATUS"
check_eq "401 problem type" "urn:custodia:problem:unauthenticated" "$(json "j['type']")"
check "401 says how to authenticate" test -n "$(header WWW-Authenticate)"
req GET /metrics -H "Authorization: Bearer cuk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
check_eq "unknown key 401" 401 "$STATUS"
req POST /v1/apikeys -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data '{"name": "health only", "scopes": ["apikeys.read"]}'
check_eq "key made over the API" 201 "$STATUS"
LIMITED=$(json "j['key']")
req GET /metrics -H "Authorization: Bearer $LIMITED"
check_eq "key without the scope 403" 403 "$STATUS"
check_eq "403 problem type" "urn:custodia:problem:forbidden" "$(json "j['type']")"

# Metrics.
req GET /metrics -H "Authorization: Bearer $KEY"
check_eq "metrics 200" 200 "$STATUS"
check "metrics count health by status" \
    contains "$TMP/body" 'custodia_http_requests_total{route="/v1/health",method="GET",status="200"}'
check "metrics count 404s" contains "$TMP/body" 'route="unmatched",method="",status="404"'
check "metrics have a latency histogram" \
    contains "$TMP/body" 'custodia_http_request_duration_seconds_bucket{route="/v1/health",method="GET",le="+Inf"}'

# A client that stops sending is cut off after the idle timeout (2 s here).
secs=$(python3 "$SRC/tests/integration/rawtls.py" idle "$PORT" "$CA")
check "a stalled client is disconnected within the idle timeout ($secs s)" \
    python3 -c "import sys; sys.exit(0 if 1.0 <= float('$secs') <= 10 else 1)"

# The access log: one JSON object per line, no key text.
check "access log lines are JSON" python3 -c "
import json, sys
n = 0
for line in open('$LOG'):
    d = json.loads(line)
    n += d.get('msg') == 'http.request'
sys.exit(0 if n >= 10 else 1)"
check "the log never holds a key" absent cuk_ "$LOG"

# SIGTERM while a request is half sent: it is answered, then the server exits 0.
line=$(CU_KEY=$KEY python3 "$SRC/tests/integration/rawtls.py" halfbody "$PORT" "$CA" "$PID")
check_eq "a request in flight at SIGTERM is answered" "HTTP/1.1 201 Created" "$line"
wait "$PID"
check_eq "serve exits 0 on SIGTERM" 0 $?
PID=
check "the log says it stopped" contains "$LOG" '"msg":"server.stopped"'

# An answer given before the body is read (here a refused key, 401, with Connection: close)
# reaches the client whole while the client is still sending the body: the server does not
# drop the answer because its HTTP side stopped taking the body (one in three was lost so).
start_server "$D" CUSTODIA_LIMITS_IP_PER_MINUTE=0 CUSTODIA_SERVER_AUTH_FAILURES_PER_MINUTE=0 || exit 1
check_eq "every early answer arrives while the body is still sent" "{401: 60}" "$(python3 - "$PORT" "$CA" <<'PY'
import http.client, json, ssl, sys
from collections import Counter
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
seen = Counter()
for i in range(60):
    try:
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        c.request("POST", "/v1/customers", json.dumps({"given_name": "x" * (i * 500)}),
                  {"Authorization": "Bearer cuk_refused", "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        seen[r.status] += 1
        c.close()
    except OSError as e:
        seen[type(e).__name__] += 1
print(dict(seen))
PY
)"
stop_server

finish
