#!/bin/sh
# Password hashing runs on its own threads (the lane), not on the threads that serve requests:
# while slow sign-ins wait for the one hash slot, a customer read is answered before any of
# them; sign-ins that wait longer than identity.password_hash_wait_ms are refused with 503 and
# Retry-After, and the others are answered as usual.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1

# storm WAIT_MS N: N sign-ins to unknown accounts at once (each hashes against the dummy hash,
# made with the slow parameters below: about 0.6 s here), then, while they wait, one customer
# read. Prints one line per answer, in the order they completed: "read STATUS" or "login STATUS
# RETRY-AFTER".
storm() {
    start_server "$D" CUSTODIA_SERVER_THREADS=2 CUSTODIA_IDENTITY_PASSWORD_HASH_CONCURRENCY=1 \
        CUSTODIA_IDENTITY_PASSWORD_MEMORY_KIB=131072 CUSTODIA_IDENTITY_PASSWORD_TIME_COST=10 \
        CUSTODIA_IDENTITY_PASSWORD_HASH_WAIT_MS="$1" CUSTODIA_SERVER_AUTH_FAILURES_PER_MINUTE=1000 ||
        exit 1
    python3 - "$PORT" "$KEY" "$CA" "$2" <<'PY'
import http.client, json, ssl, sys, threading, time
port, key, ca, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
done, lock = [], threading.Lock()

def call(kind, method, path, body=None, headers=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=120)
    c.request(method, path, body, headers or {})
    r = c.getresponse()
    r.read()
    with lock:
        done.append("%s %d %s" % (kind, r.status, r.getheader("Retry-After", "-")))

logins = [threading.Thread(target=call, args=("login", "POST", "/v1/auth/login",
          json.dumps({"login": "nobody%d@example.com" % i, "password": "not the password %d" % i,
                      "kind": "staff"}), {"Content-Type": "application/json"}))
          for i in range(n)]
for t in logins:
    t.start()
time.sleep(0.05)  # the sign-ins are in the server now, one hashing, the rest waiting
call("read", "GET", "/v1/customers?limit=1", None, {"Authorization": "Bearer " + key})
for t in logins:
    t.join()
print("\n".join(done))
PY
    stop_server
}

# first_login FILE: the line number of the first sign-in answered with 401 (after its hash).
first_login() {
    grep -n '^login 401 ' "$1" | head -n 1 | cut -d: -f1
}

storm 60000 6 >"$TMP/patient"
check_eq "the read is answered before any sign-in" "read 200 -" "$(head -n 1 "$TMP/patient")"
check_eq "every sign-in is answered, as a wrong password" 6 "$(grep -c '^login 401 ' "$TMP/patient")"

storm 1000 10 >"$TMP/hurried"
check "the read is answered before any sign-in that hashed" \
    test "$(grep -n '^read 200 ' "$TMP/hurried" | cut -d: -f1)" -lt "$(first_login "$TMP/hurried")"
check "sign-ins that waited too long are refused with 503 and Retry-After" \
    grep -q '^login 503 1$' "$TMP/hurried"
check_eq "and every sign-in got an answer" 10 "$(grep -c '^login ' "$TMP/hurried")"
check "the server logged no failure" absent -F '"level":"error"' "$LOG"
finish
