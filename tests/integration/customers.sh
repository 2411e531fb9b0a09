#!/bin/sh
# The customer vault through the API: create, read masked and unmasked (audited with the fields
# revealed), search by blind index, change, uniqueness, every kind of bad input naming the
# field, no plaintext in the database file or its WAL, and erasure that leaves nothing to read.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

req POST /v1/apikeys -H "$AUTH" -H "$JSONH" \
    --data '{"name": "support desk", "scopes": ["customers.read", "customers.write"]}'
DESK="Authorization: Bearer $(json "j['key']")"

JANE='{"given_name": "Jorunn", "family_name": "Quillfeather", "email": " Jorunn.Q@Example.COM ",
 "phone": "+44 (0)7911 123456", "birth_date": "1984-05-06", "national_id": "qz-918273-x",
 "address_line1": "17 Zanzibar Mews", "city": "Tumbledown", "postal_code": "ZX9 8QQ",
 "country": "gb", "language": "en-gb", "external_ref": "crm:88231", "tags": ["vip"]}'
JANE=$(echo "$JANE" | sed 's/(0)//')
req POST /v1/customers -H "$DESK" -H "$JSONH" --data "$JANE"
check_eq "create answers 201" 201 "$STATUS"
ID=$(json "j['id']")
check_eq "a key without unmask sees the e-mail masked" "j***@example.com" "$(json "j['email']")"
check_eq "and the phone masked" "+44*******456" "$(json "j['phone']")"
check_eq "and only the birth year" "1984-**-**" "$(json "j['birth_date']")"
check_eq "and the last 4 of the national id" "****273X" "$(json "j['national_id']")"
check_eq "plain fields in full" "GB" "$(json "j['country']")"

req GET "/v1/customers/$ID" -H "$AUTH"
check_eq "read answers 200" 200 "$STATUS"
check_eq "a key with customers.unmask sees the normalised e-mail" "jorunn.q@example.com" "$(json "j['email']")"
check_eq "and the E.164 phone" "+447911123456" "$(json "j['phone']")"
check_eq "masked says so" False "$(json "j['masked']")"
check "the unmasked read is audited with the fields revealed" sh -c "'$DBQ' '$D' \
    \"SELECT details FROM audit_log WHERE action = 'customer.read' ORDER BY seq DESC LIMIT 1\" | grep -q national_id"
check "audit records hold no personal value" absent_out "'$DBQ' '$D' 'SELECT * FROM audit_log'" \
    -i -e jorunn -e quillfeather -e 7911123456

# A read is answered once its record is committed, from a suspended connection: keep-alive
# connections carry on, and reads made at once are each answered and audited.
reads() {
    "$DBQ" "$D" "SELECT count(*) FROM audit_log WHERE action = 'customer.read'"
}
before=$(reads)
out=$(curl -s --cacert "$CA" -H "$AUTH" -w '%{http_code} %{num_connects}\n' -o /dev/null \
    -o /dev/null -o /dev/null "$URL/v1/customers/$ID" "$URL/v1/customers/$ID" "$URL/v1/customers/$ID")
check_eq "three reads over one keep-alive connection" "200 1 200 0 200 0" "$(echo $out)"
seq 40 | xargs -P 20 -I{} curl -s --cacert "$CA" -H "$AUTH" -o /dev/null -w '%{http_code}\n' \
    "$URL/v1/customers/$ID" >"$TMP/codes"
check_eq "40 reads from 20 clients at once all answer 200" 40 "$(grep -c '^200$' "$TMP/codes")"
check_eq "and each is audited" $((before + 43)) "$(reads)"

# Lookups by blind index, with the value normalised first.
req GET "/v1/customers?email=JORUNN.q@example.com" -H "$DESK"
check_eq "find by e-mail" "$ID" "$(json "j['items'][0]['id']")"
req GET "/v1/customers?phone=00447911123456" -H "$DESK"
check_eq "find by phone" "$ID" "$(json "j['items'][0]['id']")"
req GET "/v1/customers?external_ref=crm:88231" -H "$DESK"
check_eq "find by external reference" "$ID" "$(json "j['items'][0]['id']")"
check "a search is audited on the customer it found" sh -c "'$DBQ' '$D' \
    \"SELECT target || ' ' || details FROM audit_log WHERE action = 'customer.search' ORDER BY seq DESC LIMIT 1\" \
    | grep -q 'customer:$ID .*\"customers\":\[\"$ID\"\]'"
req GET "/v1/customers?email=JORUNN.q@example.com" -H "$AUTH"
check "an unmasked search names the fields it revealed" sh -c "'$DBQ' '$D' \
    \"SELECT details FROM audit_log WHERE action = 'customer.search' ORDER BY seq DESC LIMIT 1\" \
    | grep -q '\"revealed\":\[.*\"national_id\"'"
req GET "/v1/customers?email=nobody@example.com" -H "$DESK"
check_eq "no match is an empty list" 0 "$(json "len(j['items'])")"
req GET "/v1/customers?email=" -H "$DESK"
check_eq "an empty filter is 400" 400 "$STATUS"
req GET "/v1/customers?email=JORUNN.q@example.com&phone=00447911123456" -H "$DESK"
check_eq "a search by two fields is 400, not a search by the first" 400 "$STATUS"
check_eq "the detail names both" True \
    "$(json "'email' in j['detail'] and 'phone' in j['detail'] and 'national_id' not in j['detail'].split(':')[-1]")"
req GET "/v1/customers?external_ref=crm:88231&national_id=QZ918273X&phone=" -H "$DESK"
check_eq "a search by three fields is 400" 400 "$STATUS"
check "the detail names the three" contains "$TMP/body" "names 3: phone, national_id, external_ref"
req GET "/v1/customers" -H "$DESK"
check_eq "the list shows no personal field" "[]" "$(json "[k for k in j['items'][0] if k in ('email','phone','given_name')]")"

# Changes: field names audited, values not.
req PATCH "/v1/customers/$ID" -H "$DESK" -H "$JSONH" --data '{"city": "Frogmore", "phone": null}'
check_eq "patch answers 200" 200 "$STATUS"
check_eq "a removed field is gone" None "$(json "j.get('phone')")"
check "the change names the fields" sh -c "'$DBQ' '$D' \
    \"SELECT details FROM audit_log WHERE action = 'customer.update'\" | grep -q '\"changed\":\[\"phone\",\"city\"\]'"
req GET "/v1/customers?phone=%2B447911123456" -H "$DESK"
check_eq "a removed phone is no longer found" 0 "$(json "len(j['items'])")"

# A PATCH answers with what is stored now, which is a read: a key that may write but not read
# gets no personal field back; one that may read and unmask gets them, and that read is audited.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" \
    --data '{"name": "writer", "scopes": ["customers.write", "customers.unmask"]}'
WRITER="Authorization: Bearer $(json "j['key']")"
before=$(reads)
req PATCH "/v1/customers/$ID" -H "$WRITER" -H "$JSONH" --data '{}'
check_eq "a writer without customers.read gets no personal field back" "[] GB" \
    "$(json "str([k for k in j if k in ('email', 'given_name', 'national_id')]) + ' ' + j['country']")"
check_eq "and no read is recorded for it" "$before" "$(reads)"
req PATCH "/v1/customers/$ID" -H "$DESK" -H "$JSONH" --data '{}'
check_eq "a key that may read but not unmask gets the record masked" "j***@example.com" \
    "$(json "j['email']")"
check "and that read is recorded as masked" sh -c "'$DBQ' '$D' \
    \"SELECT details FROM audit_log WHERE action = 'customer.read' ORDER BY seq DESC LIMIT 1\" \
    | grep -qx '{\"masked\":true}'"
before=$(reads)
req PATCH "/v1/customers/$ID" -H "$AUTH" -H "$JSONH" --data '{"city": "Frogmore"}'
check_eq "a key that may read and unmask gets the record in full" "jorunn.q@example.com" \
    "$(json "j['email']")"
check_eq "and that read is audited" $((before + 1)) "$(reads)"

# Uniqueness and bad input.
req POST /v1/customers -H "$DESK" -H "$JSONH" --data '{"email": "jorunn.q@EXAMPLE.com"}'
check_eq "a taken e-mail is 409" 409 "$STATUS"
check "the 409 names the field" contains "$TMP/body" "email"
bad() {
    req POST /v1/customers -H "$DESK" -H "$JSONH" --data "$1"
    check_eq "$2: 400" 400 "$STATUS"
    check "$2: the detail names '$3'" contains "$TMP/body" "$3"
}
bad '{"email": "not-an-email"}' "bad e-mail" "email"
bad '{"phone": "12345"}' "bad phone" "phone"
bad '{"birth_date": "1984-02-30"}' "impossible date" "birth_date"
bad '{"birth_date": "2999-01-01"}' "future date" "birth_date"
bad '{"country": "XX"}' "unassigned country" "country"
bad '{"language": "english"}' "bad language" "language"
bad '{"favourite_colour": "blue"}' "unknown field" "favourite_colour"
bad "{\"given_name\": \"$(head -c 300 /dev/zero | tr '\0' a)\"}" "oversize name" "given_name"
bad '{"given_name": 5}' "not a string" "given_name"
bad '{"tags": ["Not OK"]}' "bad tag" "tags"
bad '{}' "a creation naming no field" "names no field"
bad '{"tags": ["vip"], "status": "active"}' "a creation of tags and status alone" "names no field"

# A valid field and then an invalid one: 400 naming the invalid field, nothing changed, and the
# server still up (the fields parsed before the bad one were once freed twice).
alive() {
    req GET /v1/health
    check_eq "$1: the server still answers /v1/health" 200 "$STATUS"
}
bad '{"city": "London", "email": "not-an-email"}' "create, a valid then an invalid field" "email"
alive "after the create"
for target in cus_0000000000000000 "$ID"; do
    req PATCH "/v1/customers/$target" -H "$DESK" -H "$JSONH" \
        --data '{"city": "London", "email": "not-an-email"}'
    check_eq "patch $target, a valid then an invalid field: 400" 400 "$STATUS"
    check "patch $target: the detail names 'email'" sh -c "python3 -c \
        'import json,sys; sys.exit(\"email\" not in json.load(open(sys.argv[1]))[\"detail\"])' '$TMP/body'"
    alive "after the patch of $target"
done
req GET "/v1/customers/$ID" -H "$AUTH"
check_eq "the refused patch changed nothing" "Frogmore jorunn.q@example.com" \
    "$(json "j['city'] + ' ' + j['email']")"
req GET "/v1/customers/not-an-id" -H "$DESK"
check_eq "a malformed id is 400" 400 "$STATUS"
req GET "/v1/customers/cus_0000000000000000" -H "$DESK"
check_eq "an unknown id is 404" 404 "$STATUS"
req DELETE "/v1/customers/$ID" -H "$DESK"
check_eq "erasure needs customers.erase" 403 "$STATUS"

# Nothing personal in the database (SQLite: its file and its write-ahead log), in any form we
# wrote.
db_dump "$D" "$TMP/db.bytes"
for v in Jorunn Quillfeather jorunn.q@example.com 447911123456 1984-05-06 QZ918273X "Zanzibar Mews" Tumbledown "ZX9 8QQ" crm:88231; do
    check "no plaintext '$v' in the database or WAL" absent -aF "$v" "$TMP/db.bytes"
done

[ "$BACKEND" = postgres ] ||
    check "there is no rollback journal beside the database" test ! -e "$D/custodia.db-journal"

# A damaged ciphertext is a 500 with a stable type and an alert in the log, never garbage.
req POST /v1/customers -H "$DESK" -H "$JSONH" --data '{"given_name": "Brittle"}'
BID=$(json "j['id']")
tamper "$D" "UPDATE customer_fields SET value = substr(value, 1, 29) || CASE substr(value, 30, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(value, 31) WHERE customer_id = '$BID'"
req GET "/v1/customers/$BID" -H "$DESK"
check_eq "a damaged field is 500" 500 "$STATUS"
check_eq "with the crypto_failure type" "urn:custodia:problem:crypto_failure" "$(json "j['type']")"
check "and an alert in the log" sh -c "grep 'vault.field_open_failed' '$LOG' | grep -q '\"alert\":true'"

# Erasure: the DEK, the fields and the index entries go; a tombstone stays.
req DELETE "/v1/customers/$ID" -H "$AUTH"
check_eq "erase answers 200" 200 "$STATUS"
check_eq "the tombstone says erased" erased "$(json "j['status']")"
check_eq "the DEK is gone" 0 "$("$DBQ" "$D" "SELECT count(*) FROM customers WHERE id = '$ID' AND dek_wrapped IS NOT NULL")"
check_eq "the fields are gone" 0 "$("$DBQ" "$D" "SELECT count(*) FROM customer_fields WHERE customer_id = '$ID'")"
check_eq "the index entries are gone" 0 "$("$DBQ" "$D" "SELECT count(*) FROM customer_index WHERE customer_id = '$ID'")"
req GET "/v1/customers/$ID" -H "$AUTH"
check_eq "an erased customer reads as a tombstone" "erased" "$(json "j['status']")"
check_eq "with no personal field" None "$(json "j.get('email')")"
req GET "/v1/customers?email=jorunn.q@example.com" -H "$AUTH"
check_eq "and cannot be found" 0 "$(json "len(j['items'])")"
req PATCH "/v1/customers/$ID" -H "$AUTH" -H "$JSONH" --data '{"city": "Back"}'
check_eq "nor changed" 404 "$STATUS"
req DELETE "/v1/customers/$ID" -H "$AUTH"
check_eq "nor erased twice" 404 "$STATUS"
req POST /v1/customers -H "$DESK" -H "$JSONH" --data '{"email": "jorunn.q@example.com"}'
check_eq "its e-mail is free again" 201 "$STATUS"

# Stopping while reads wait for their records: each is answered or refused, none is lost.
NID=$(json "j['id']")
seq 400 | xargs -P 16 -I{} curl -s --cacert "$CA" -H "$AUTH" -o /dev/null -w '%{http_code}\n' \
    "$URL/v1/customers/$NID" >"$TMP/codes" 2>/dev/null &
LOAD=$!
sleep 0.5
stop_server
wait $LOAD
check_eq "serve exits 0 while reads are in flight" 0 "$STOP_STATUS"
check "reads were answered until the stop" grep -q '^200$' "$TMP/codes"
answered=$(grep -c '^200$' "$TMP/codes")
audited=$("$DBQ" "$D" "SELECT count(*) FROM audit_log WHERE action = 'customer.read' AND target = 'customer:$NID'")
check "every read answered 200 was audited ($answered answered, $audited audited)" test "$audited" -ge "$answered"
"$BIN" audit verify --dir "$D" >/dev/null 2>&1
check_eq "the audit log verifies" 0 $?

# On PostgreSQL an erasure's purge is a VACUUM of the tables that held the customer (the
# write-ahead log below is SQLite's): health says it is done, and the database no longer holds
# the wrapped DEK.
if [ "$BACKEND" = postgres ]; then
    start_server "$D" || exit 1
    req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "purge.me@example.com"}'
    PID2=$(json "j['id']")
    DEK=$("$DBQ" "$D" "SELECT dek_wrapped FROM customers WHERE id = '$PID2'")
    req DELETE "/v1/customers/$PID2" -H "$AUTH"
    check_eq "the erasure answers 200" 200 "$STATUS"
    i=0
    until req GET /v1/health && [ "$(json "j['erasure_purge']")" = ok ] || [ $i -ge 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    check_eq "the purge is done" ok "$(json "j['erasure_purge']")"
    db_dump "$D" "$TMP/db.bytes"
    check "and the database no longer holds the wrapped DEK" absent -aiF "$DEK" "$TMP/db.bytes"
    stop_server
    finish
    exit
fi

# An erasure whose purge meets a reader holding the write-ahead log: the purge is retried until
# it succeeds, /v1/health says so meanwhile, and then the log holds nothing of the customer.
start_server "$D" || exit 1
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "purge.me@example.com"}'
PID2=$(json "j['id']")
DEK=$("$DBQ" "$D" "SELECT dek_wrapped FROM customers WHERE id = '$PID2'")
python3 -c "
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN'); c.execute('SELECT count(*) FROM customers').fetchall()
open(sys.argv[2], 'w').close()
deadline = time.monotonic() + 60
while os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.05)
c.execute('COMMIT')" "$D/custodia.db" "$TMP/holding" &
HOLDER=$!
i=0; while [ ! -e "$TMP/holding" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
req DELETE "/v1/customers/$PID2" -H "$AUTH"
check_eq "the erasure answers 200 while a reader holds the log" 200 "$STATUS"
req GET /v1/health
check_eq "health says the purge is pending" pending "$(json "j['erasure_purge']")"
check "the server logged the deferral" grep -q '"msg":"vault.purge_deferred"' "$LOG"
sleep 1.5 # a retry or two meet the reader too
req GET /v1/health
check_eq "still pending while the reader stays" pending "$(json "j['erasure_purge']")"
rm -f "$TMP/holding" # the reader ends
wait $HOLDER
i=0 # the retries back off to one every 30 s at most
until req GET /v1/health && [ "$(json "j['erasure_purge']")" = ok ] || [ $i -ge 350 ]; do
    sleep 0.1; i=$((i + 1))
done
check_eq "once the reader is gone, the purge is done" ok "$(json "j['erasure_purge']")"
# basenc writes the whole file as one line of hex, so no match is cut by a line break.
check "and the log no longer holds the wrapped DEK" \
    absent_out "basenc --base16 -w 0 '$D/custodia.db-wal'" -i "$DEK"
stop_server
finish
