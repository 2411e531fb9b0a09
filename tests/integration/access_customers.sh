#!/bin/sh
# Decisions on the customer: permits and forbids whose conditions read the customer's region,
# status and tags hold in every customer route, per row in lists and searches (a customer the
# caller may not read is left out, one it may not unmask is masked), on the customer as it is
# and as a change leaves it, and on customers' credentials; a denial explains itself without
# telling the customer's attributes, and is audited.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/access.policy" <<'POLICY'
version 1
region emea GB FR DE
region amer US CA
role agent
permit agent customers.read masked when customer.region == staff.region
permit agent customers.write,customers.credentials when customer.region == staff.region and customer.status == "active"
role opener
permit opener customers.read,customers.unmask when customer.region == staff.region
forbid customers.unmask when "vip" in customer.tags
forbid customers.erase when "hold" in customer.tags
POLICY
"$BIN" access check "$D/access.policy" >"$TMP/check" 2>&1
check_eq "the policy checks" 0 $?
start_server "$D" CUSTODIA_ACCESS_UNMASK_LIMIT_PER_HOUR=4 || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'

mk() { # mk BODY: a customer made with the installation's key; prints its id
    req POST /v1/customers -H "$AUTH" -H "$JSONH" --data "$1"
    json "j['id']"
}
A=$(mk '{"email": "ada@example.com", "given_name": "Ada", "country": "GB"}')
B=$(mk '{"email": "bob@example.com", "given_name": "Bob", "country": "US"}')
V=$(mk '{"email": "vera@example.com", "given_name": "Vera", "country": "GB", "tags": ["vip"]}')
H=$(mk '{"email": "hal@example.com", "given_name": "Hal", "country": "FR", "tags": ["hold"]}')

req POST /v1/staff -H "$AUTH" -H "$JSONH" \
    --data '{"email": "rita@example.com", "name": "Rita", "roles": ["agent"], "region": "emea"}'
RID=$(json "j['id']")
req POST /v1/staff -H "$AUTH" -H "$JSONH" \
    --data '{"email": "otto@example.com", "name": "Otto", "roles": ["opener"], "region": "emea"}'
OID=$(json "j['id']")
staff_signin "$OID" otto@example.com 'amber harbour violin 71' || exit 1
OTTO=$STOK
staff_signin "$RID" rita@example.com 'quiet lantern orchard 58' || exit 1
RITA=$STOK

# One customer at a time.
req GET "/v1/customers/$A" -H "$RITA"
check_eq "an agent reads a customer of her region" 200 "$STATUS"
check_eq "masked, as her permit says" "True True" "$(json "j['masked'], j['email'] != 'ada@example.com'")"
req GET "/v1/customers/$B" -H "$RITA"
check_eq "but not one of another region" 403 "$STATUS"
check "the denial names the permit and the condition" \
    contains "$TMP/body" "customers.read denied by role agent, permit at access.policy:5"
check "and says the customer's region did not match" contains "$TMP/body" "customer.region did not match"
check "without telling the customer's country or region" absent -e US -e amer "$TMP/body"
check "nor anything of the customer's data" absent -i -e bob "$TMP/body"
req GET "/v1/audit?action=access.denied&target=customer:$B" -H "$AUTH"
check_eq "the denial is audited with the customer as its target" "1 $RID customers.read" \
    "$(json "len(j['items']), j['items'][0]['actor']['id'], j['items'][0]['details']['scope']")"

# Lists and searches: row by row.
req GET "/v1/customers" -H "$RITA"
check_eq "a list answers" 200 "$STATUS"
check_eq "with only the customers she may read" "$(printf '%s\n' "$A" "$V" "$H" | sort | tr '\n' ' ')" \
    "$(json "' '.join(sorted(i['id'] for i in j['items'])) + ' '")"
check_eq "each masked" "True" "$(json "all(i['masked'] for i in j['items'])")"
req GET "/v1/audit?action=customer.list&limit=1" -H "$AUTH"
check_eq "the list's record counts those answered and those withheld" "3 1" \
    "$(json "j['items'][0]['details']['count'], j['items'][0]['details']['withheld']")"
req GET "/v1/customers?limit=1" -H "$RITA"
N1=$(json "j['next_after']")
check_eq "a page follows the customers scanned" "$(printf '%s\n' "$A" "$B" "$V" "$H" | sort | head -1)" "$N1"
req GET "/v1/customers?email=bob@example.com" -H "$RITA"
check_eq "a search for a customer she may not read answers 200" 200 "$STATUS"
check_eq "with nothing: the answer does not tell the customer exists" "[]" "$(json "j['items']")"
req GET "/v1/audit?action=customer.search&limit=1" -H "$AUTH"
check_eq "the search's record counts it withheld" "0 1 []" \
    "$(json "j['items'][0]['details']['found'], j['items'][0]['details']['withheld'], j['items'][0]['details']['customers']")"
req GET "/v1/customers?email=ada@example.com" -H "$RITA"
check_eq "a search for one of her region finds it, masked" "1 True" \
    "$(json "len(j['items']), j['items'][0]['masked']")"

# Unmasking, decided on each customer, with a reason.
WHY='Custodia-Reason: ticket 4711: address change'
req GET "/v1/customers/$A" -H "$OTTO"
check_eq "without a reason, a staff member's read is masked" "200 True" "$STATUS $(json "j['masked']")"
check_eq "and the answer says why" "reason-required" "$(header Custodia-Masked)"
req GET "/v1/customers/$A" -H "$OTTO" -H 'Custodia-Reason;'
check_eq "an empty reason is refused" 400 "$STATUS"
req GET "/v1/customers/$A" -H "$OTTO" -H "Custodia-Reason: $(python3 -c "print('x' * 201)")"
check_eq "and one over 200 bytes" 400 "$STATUS"
req GET "/v1/customers/$A" -H "$OTTO" -H "$WHY"
check_eq "an opener reads a customer of his region in full, with a reason" "200 ada@example.com" \
    "$STATUS $(json "j['email']")"
check_eq "and nothing says it was masked" "" "$(header Custodia-Masked)"
req GET "/v1/audit?action=customer.read&target=customer:$A&limit=1" -H "$AUTH"
check_eq "the read's record keeps the reason and names the fields revealed" \
    "ticket 4711: address change ['given_name', 'email']" \
    "$(json "j['items'][0]['details']['reason'], j['items'][0]['details']['revealed']")"
req GET "/v1/customers/$V" -H "$OTTO" -H "$WHY"
check_eq "but a VIP's stays masked (a forbid on unmask)" "200 True" "$STATUS $(json "j['masked']")"
req GET "/v1/customers/$V" -H "$AUTH"
check_eq "for the installation's key too: forbids win" "True" "$(json "j['masked']")"
req GET "/v1/customers?email=vera@example.com" -H "$OTTO" -H "$WHY"
check_eq "a search masks the VIP" "True" "$(json "j['items'][0]['masked']")"
req GET "/v1/customers?email=ada@example.com" -H "$OTTO" -H "$WHY"
check_eq "and not the others" "ada@example.com" "$(json "j['items'][0]['email']")"
req GET "/v1/audit?action=customer.search&limit=1" -H "$AUTH"
check_eq "the search's record names the fields revealed, and the reason" \
    "True ['given_name', 'email'] ticket 4711: address change" \
    "$(json "j['items'][0]['details']['unmasked'], j['items'][0]['details']['revealed'], j['items'][0]['details']['reason']")"
req GET "/v1/customers" -H "$OTTO"
check_eq "a list from a region is masked and holds only that region" "3 True" \
    "$(json "len(j['items']), all(i['masked'] for i in j['items'])")"

# The per-staff limit (4 an hour here): Otto has seen 2 customers in full.
req GET "/v1/customers/$A" -H "$OTTO" -H "$WHY"
req GET "/v1/customers/$A" -H "$OTTO" -H "$WHY"
check_eq "up to the limit, reads are in full" "ada@example.com" "$(json "j['email']")"
req GET "/v1/customers/$A" -H "$OTTO" -H "$WHY"
check_eq "past it, the answer is masked" "200 True limit-reached" \
    "$STATUS $(json "j['masked']") $(header Custodia-Masked)"
req GET "/v1/customers?email=ada@example.com" -H "$OTTO" -H "$WHY"
check_eq "searches too" "True limit-reached" "$(json "j['items'][0]['masked']") $(header Custodia-Masked)"
req GET "/v1/audit?action=access.unmask_limit" -H "$AUTH"
check_eq "an alert is audited, once in the hour" "1 $OID 4" \
    "$(json "len(j['items']), j['items'][0]['target'], j['items'][0]['details']['limit_per_hour']")"
req GET "/v1/audit?action=customer.read&target=customer:$A&limit=1" -H "$AUTH"
check_eq "the masked read's record says the limit masked it" "True True" \
    "$(json "j['items'][0]['details']['masked'], j['items'][0]['details']['unmask_limited']")"
check "the log raises the alert" grep -q "\"msg\":\"access.unmask_limit\".*\"staff\":\"$OID\"" "$LOG"
req GET /metrics -H "$AUTH"
check "and the metric counts the customers masked" grep -q '^custodia_unmask_limited_total 2$' "$TMP/body"
req GET "/v1/customers/$A" -H "$AUTH"
check_eq "the installation's keys are not counted" "ada@example.com" "$(json "j['email']")"

# A staff member's API key reads as its owner: a reason needed, the owner's limit charged.
req POST /v1/staff -H "$AUTH" -H "$JSONH" --data '{"email": "olaf@example.com", "name": "Olaf",
    "scopes": ["apikeys.write", "customers.read", "customers.unmask"]}'
LID=$(json "j['id']")
staff_signin "$LID" olaf@example.com 'copper meadow signal 39' || exit 1
req POST /v1/apikeys -H "$STOK" -H "$JSONH" \
    --data '{"name": "olafs", "scopes": ["customers.read", "customers.unmask"]}'
OLAFK="Authorization: Bearer $(json "j['key']")"
req GET "/v1/customers/$A" -H "$OLAFK"
check_eq "a staff member's key reads masked without a reason" "True reason-required" \
    "$(json "j['masked']") $(header Custodia-Masked)"
for i in 1 2 3 4; do req GET "/v1/customers/$A" -H "$OLAFK" -H "$WHY"; done
check_eq "with one, in full up to the owner's limit" "ada@example.com" "$(json "j['email']")"
req GET "/v1/customers/$A" -H "$STOK" -H "$WHY"
check_eq "which the owner's own reads share" "True limit-reached" \
    "$(json "j['masked']") $(header Custodia-Masked)"
req GET "/v1/customers/$A" -H "$OLAFK" -H "$WHY"
check_eq "as the key does" "True limit-reached" "$(json "j['masked']") $(header Custodia-Masked)"
req GET "/v1/audit?action=access.unmask_limit&target=$LID" -H "$AUTH"
check_eq "the alert names the owner" 1 "$(json "len(j['items'])")"

# Changes, decided on the customer as it is and as the change leaves it.
req PATCH "/v1/customers/$A" -H "$RITA" -H "$JSONH" --data '{"city": "Leeds"}'
check_eq "an agent changes a customer of her region" 200 "$STATUS"
check_eq "and the answer is masked, as her read is" "True" "$(json "j['masked']")"
req PATCH "/v1/customers/$B" -H "$RITA" -H "$JSONH" --data '{"city": "Boston"}'
check_eq "not one of another region" 403 "$STATUS"
req PATCH "/v1/customers/$A" -H "$RITA" -H "$JSONH" --data '{"country": "US"}'
check_eq "nor move one out of her region" 403 "$STATUS"
req GET "/v1/customers/$A" -H "$AUTH"
check_eq "which stays where it was" "GB" "$(json "j['country']")"
req PATCH "/v1/customers/$B" -H "$RITA" -H "$JSONH" --data '{"country": "GB"}'
check_eq "nor move one into it" 403 "$STATUS"
req POST /v1/customers -H "$RITA" -H "$JSONH" --data '{"email": "cy@example.com", "country": "CA"}'
check_eq "she cannot create a customer of another region" 403 "$STATUS"
req POST /v1/customers -H "$RITA" -H "$JSONH" --data '{"email": "di@example.com", "given_name": "Di", "country": "DE"}'
check_eq "but can one of hers" 201 "$STATUS"
check_eq "answered masked" "True" "$(json "j['masked']")"
DI=$(json "j['id']")
req PATCH "/v1/customers/$DI" -H "$AUTH" -H "$JSONH" --data '{"status": "suspended"}'
req PATCH "/v1/customers/$DI" -H "$RITA" -H "$JSONH" --data '{"city": "Bonn"}'
check_eq "a condition on the customer's status holds too" 403 "$STATUS"

# Customers' credentials.
req GET "/v1/customers/$A/credentials" -H "$RITA"
check_eq "an agent reads the credentials of a customer of her region" 200 "$STATUS"
req GET "/v1/customers/$B/credentials" -H "$RITA"
check_eq "not of another" 403 "$STATUS"
req PUT "/v1/customers/$B/password" -H "$RITA" -H "$JSONH" --data '{"password": "violet kettle summit 42"}'
check_eq "nor sets their password" 403 "$STATUS"
req PUT "/v1/customers/$A/password" -H "$RITA" -H "$JSONH" --data '{"password": "violet kettle summit 42"}'
check_eq "but sets one of her region's" 204 "$STATUS"
req DELETE "/v1/customers/$B/lockout" -H "$RITA"
check_eq "nor clears another region's lockout" 403 "$STATUS"
req DELETE "/v1/customers/$B/sessions" -H "$RITA"
check_eq "nor ends their sessions" 403 "$STATUS"
req DELETE "/v1/customers/$A/sessions" -H "$RITA"
check_eq "but ends those of her region" 204 "$STATUS"
req GET "/v1/customers/cus_0000000000000000/credentials" -H "$RITA"
check_eq "a customer that does not exist is 404" 404 "$STATUS"

# Erasure.
req DELETE "/v1/customers/$H" -H "$AUTH"
check_eq "a forbid on the customer's tags stops even the installation's key" 403 "$STATUS"
req GET "/v1/customers/$H" -H "$AUTH"
check_eq "and the customer is still there" "active" "$(json "j['status']")"
req DELETE "/v1/customers/$B" -H "$AUTH"
check_eq "a customer without the tag is erased" 200 "$STATUS"

stop_server
"$BIN" audit verify --dir "$D" >/dev/null 2>&1
check_eq "the audit chain verifies" 0 $?
finish
