#!/bin/sh
# Key management from the shell: status, KEK rotation (with a resumed run), retirement of the
# old KEK once nothing uses it, one customer's DEK rotation; customers read the same after.
# Then a rotation and a retirement while the server runs: it follows the root key file, and
# reads, sign-ins and new customers go on without a restart.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
for i in 1 2 3 4 5 6 7; do
    req POST /v1/customers -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data "{\"email\": \"k$i@example.com\", \"given_name\": \"Kay $i\"}"
done
ID=$(json "j['id']")
stop_server

"$BIN" keys status --dir "$D" >"$TMP/st1" 2>&1
check_eq "status exits 0" 0 $?
# 7 customers' DEKs and the first administrator's.
check "status shows KEK 1 wrapping 8 DEKs" sh -c "grep -E '^1 +yes .* 8 ' '$TMP/st1'"
"$BIN" keys rotate --dir "$D" --batch 3 >"$TMP/rot" 2>&1
check_eq "rotate exits 0" 0 $?
check "rotate says what it did" contains "$TMP/rot" "re-wrapped 8 DEKs under KEK version 2"
"$BIN" keys status --dir "$D" >"$TMP/st2" 2>&1
check "KEK 2 is current and wraps all 8" sh -c "grep -E '^2 +yes .* 8 ' '$TMP/st2'"
check "KEK 1 wraps none and can be retired" sh -c "grep -E '^1 .* 0 +unused' '$TMP/st2'"
"$BIN" keys retire 2 --dir "$D" >"$TMP/ret2" 2>&1
check_eq "the current KEK cannot be retired" 1 $?
# A short busy timeout: retire waits a second plus that after the current KEK was made.
CUSTODIA_STORE_BUSY_TIMEOUT_MS=0 "$BIN" keys retire 1 --dir "$D" >"$TMP/ret1" 2>&1
check_eq "the old KEK retires" 0 $?
check "the root key file no longer holds KEK 1" absent '^kek 1 ' "$D/root.key"
check_eq "the root key file stays 0600" 600 "$(stat -c %a "$D/root.key")"
"$BIN" keys rotate-dek "$ID" --dir "$D" >/dev/null 2>&1
check_eq "one customer's DEK rotates" 0 $?
check_eq "its DEK version moved on" 2 "$("$DBQ" "$D" "SELECT dek_version FROM customers WHERE id = '$ID'")"
"$BIN" keys rotate-dek cus_0000000000000000 --dir "$D" >/dev/null 2>&1
check_eq "an unknown customer is refused" 1 $?

start_server "$D" || exit 1
req GET "/v1/customers/$ID" -H "Authorization: Bearer $KEY"
check_eq "the customer reads after rotation and retirement" "k7@example.com" "$(json "j['email']")"
req GET "/v1/customers?email=k1@example.com" -H "Authorization: Bearer $KEY"
check_eq "and every other one" "Kay 1" "$(json "j['items'][0]['given_name']")"
req POST /v1/auth/login -H 'Content-Type: application/json' --data \
    "{\"login\": \"admin@custodia.localhost\", \"password\": \"$(cat "$D/initial-admin-password")\", \"kind\": \"staff\"}"
check_eq "the administrator, whose DEK was re-wrapped too, signs in" 200 "$STATUS"
req GET /v1/staff -H "Authorization: Bearer $KEY"
check_eq "and their e-mail still decrypts" "admin@custodia.localhost" "$(json "j['items'][0]['email']")"

"$BIN" keys rotate --dir "$D" >"$TMP/rot3" 2>&1
check_eq "rotate runs beside the running server" 0 $?
check "every DEK went to KEK 3" contains "$TMP/rot3" "under KEK version 3"
req GET "/v1/customers/$ID" -H "Authorization: Bearer $KEY"
check_eq "a customer re-wrapped under a KEK the server had not loaded reads at once" \
    "k7@example.com" "$(json "j['email']")"
req POST /v1/auth/login -H 'Content-Type: application/json' --data \
    "{\"login\": \"admin@custodia.localhost\", \"password\": \"$(cat "$D/initial-admin-password")\", \"kind\": \"staff\"}"
check_eq "so does a staff member's sign-in" 200 "$STATUS"
req POST /v1/customers -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data '{"email": "k8@example.com", "given_name": "Kay 8"}'
NEW=$(json "j['id']")
check_eq "a customer made after the rotation is wrapped under KEK 3" 3 \
    "$("$DBQ" "$D" "SELECT kek_version FROM customers WHERE id = '$NEW'")"
CUSTODIA_STORE_BUSY_TIMEOUT_MS=0 "$BIN" keys retire 2 --dir "$D" >"$TMP/ret3" 2>&1
check_eq "KEK 2 retires while the server runs" 0 $?
check "after waiting until the server cannot wrap under it any more" \
    contains "$TMP/ret3" "waiting"
sleep 1.2 # the server looks at the file at most once a second
req GET "/v1/customers/$NEW" -H "Authorization: Bearer $KEY"
check_eq "and customers still read" "k8@example.com" "$(json "j['email']")"
check "the server logged that it took the new keys" grep -q '"msg":"keys.reloaded".*"current_kek":3' "$LOG"
check "and no unwrap failed" absent unwrap_failed "$LOG"
stop_server
"$BIN" audit verify --dir "$D" >/dev/null 2>&1
check_eq "the audit log verifies" 0 $?
check "the rotations are audited" test "$("$DBQ" "$D" "SELECT count(*) FROM audit_log WHERE action IN ('keys.kek_added', 'keys.rotated', 'keys.kek_retired', 'keys.dek_rotated')")" -eq 7
finish
