#!/bin/sh
# Lists and snoozes managed by API: an address block added to a managed list is matched by the
# rules from the next event on, and no longer once removed; an item with an expiry lapses by
# itself; a value the list's kind refuses, an unknown list or rule, each a clear error; a rule
# snoozed for one customer (by the company's reference) does not run for that customer's
# events until it ends, and runs for the others; the decision names what was snoozed; lists and
# snoozes come back after a restart; every change is audited without the value in clear.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/lists.rules" <<'EOF2'
list blocked_networks managed addresses
list blocked_payees managed

rule blocked_network
  when event.ip in blocked_networks
  then deny, reason "an address of a blocked network"

rule blocked_payee
  when event.payee in blocked_payees
  then hold, reason "a blocked payee"

rule foreign_sign_in
  when event.type == "login_succeeded" and event.country == "FR"
  then step_up, reason "a sign-in from France"
EOF2
start_server "$D" CUSTODIA_MONITOR_RULES=lists.rules || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
later() { date -u -d "@$(( $(date +%s) + $1 ))" +%Y-%m-%dT%H:%M:%SZ; }
event() {
    req POST /v1/events -H "$AUTH" -H "$JSONH" --data "{\"type\": \"$1\", \"time\": \"$(now)\", \"customer\": \"$2\"$3}"
}

req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com", "external_ref": "crm-ada"}'
ADA=$(json "j['id']")

req GET /v1/monitor/lists -H "$AUTH"
check_eq "the managed lists the rules declare, empty" "200 blocked_networks:addresses:0 blocked_payees:values:0" \
    "$STATUS $(json "' '.join('%s:%s:%d' % (l['name'], l['kind'], l['items']) for l in j['items'])")"
event login_succeeded c-1 ', "ip": "198.51.100.7"'
check_eq "an address no list holds" "201 allow" "$STATUS $(json "j['decision']")"
req POST /v1/monitor/lists/blocked_networks/items -H "$AUTH" -H "$JSONH" \
    --data '{"value": "198.51.100.0/24", "note": "ticket 4711"}'
check_eq "a block is added to a managed list" "201 198.51.100.0/24" "$STATUS $(json "j['value']")"
event login_succeeded c-1 ', "ip": "198.51.100.7"'
check_eq "the next event from it is decided with it" "201 deny blocked_network" \
    "$STATUS $(json "j['decision']") $(json "j['rules'][0]['name']")"
event login_succeeded c-1 ', "ip": "203.0.113.9"'
check_eq "another network is not" "201 allow" "$STATUS $(json "j['decision']")"
req GET /v1/monitor/lists/blocked_networks -H "$AUTH"
check_eq "the list shows its item, who added it and the note" "200 198.51.100.0/24 apikey ticket 4711 None" \
    "$STATUS $(json "j['items'][0]['value']") $(json "j['items'][0]['added_by'].split(':')[0]") $(json "j['items'][0]['note']") $(json "j['items'][0]['expires_at']")"
check_eq "its change is audited, the value only as a keyed hash" "1 0" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.list_add' AND target = 'list:blocked_networks' AND details LIKE '%\"value\":\"h:%'") $("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE details LIKE '%198.51.100%'")"

req POST /v1/monitor/lists/blocked_networks/items -H "$AUTH" -H "$JSONH" --data '{"value": "not an address"}'
check_eq "a value that is no address, in a list of addresses" 400 "$STATUS"
req POST /v1/monitor/lists/nonesuch/items -H "$AUTH" -H "$JSONH" --data '{"value": "x"}'
check_eq "a list no rule set declares" "404 urn:custodia:problem:unknown_list" "$STATUS $(json "j['type']")"
req POST /v1/monitor/lists/blocked_payees/items -H "$AUTH" -H "$JSONH" --data '{"value": "p-1", "colour": "red"}'
check_eq "an unknown field" 400 "$STATUS"
req POST /v1/monitor/lists/blocked_payees/items -H "$AUTH" -H "$JSONH" --data "{\"value\": \"p-1\", \"expires_at\": \"$(now)\"}"
check_eq "an expiry in the past" 400 "$STATUS"

# an item that lapses by itself
req POST /v1/monitor/lists/blocked_payees/items -H "$AUTH" -H "$JSONH" \
    --data "{\"value\": \"p-mule\", \"expires_at\": \"$(later 2)\"}"
check_eq "a payee blocked for two seconds" 201 "$STATUS"
event transfer c-2 ', "amount": 100, "currency": "EUR", "payee": "p-mule"'
check_eq "is held meanwhile" "201 hold" "$STATUS $(json "j['decision']")"
i=0
while [ $i -lt 120 ]; do
    event transfer c-2 ', "amount": 100, "currency": "EUR", "payee": "p-mule"'
    [ "$(json "j['decision']")" = allow ] && break
    sleep 0.1; i=$((i + 1))
done
check_eq "and lapses by itself (within the housekeeping's five seconds)" allow "$(json "j['decision']")"
check "its end is audited" sh -c "[ \"\$('$DBQ' '$D' \"SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.expired'\")\" -ge 1 ]"

# snoozes
event login_succeeded crm-ada ', "country": "FR"'
check_eq "a sign-in from France steps up" "201 step_up" "$STATUS $(json "j['decision']")"
req POST /v1/monitor/snoozes -H "$AUTH" -H "$JSONH" \
    --data "{\"customer\": \"crm-ada\", \"rule\": \"foreign_sign_in\", \"until\": \"$(later 3600)\", \"reason\": \"on holiday in Lyon\"}"
check_eq "a rule snoozed for a customer, by the company's reference" "201 $ADA" "$STATUS $(json "j['customer']")"
event login_succeeded crm-ada ', "country": "FR"'
check_eq "does not run for that customer's events, and the decision says so" "201 allow ['foreign_sign_in']" \
    "$STATUS $(json "j['decision']") $(json "j.get('snoozed')")"
event login_succeeded c-3 ', "country": "FR"'
check_eq "it runs for the others" "201 step_up" "$STATUS $(json "j['decision']")"
req GET "/v1/monitor/snoozes?customer=crm-ada" -H "$AUTH"
check_eq "the customer's snoozes" "200 1 foreign_sign_in on holiday in Lyon" \
    "$STATUS $(json "len(j['items'])") $(json "j['items'][0]['rule']") $(json "j['items'][0]['reason']")"
req POST /v1/monitor/snoozes -H "$AUTH" -H "$JSONH" \
    --data "{\"customer\": \"crm-ada\", \"rule\": \"no_such_rule\", \"until\": \"$(later 60)\", \"reason\": \"x\"}"
check_eq "a rule no set in force has" "404 urn:custodia:problem:unknown_rule" "$STATUS $(json "j['type']")"
req POST /v1/monitor/snoozes -H "$AUTH" -H "$JSONH" \
    --data "{\"customer\": \"crm-ada\", \"rule\": \"foreign_sign_in\", \"until\": \"$(later 40000000)\", \"reason\": \"x\"}"
check_eq "a snooze of more than a year" 400 "$STATUS"
check_eq "snoozes are audited, the reason by its length" "1" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM audit_log WHERE action = 'monitor.snooze' AND target = 'rule:foreign_sign_in' AND details LIKE '%\"customer\":\"$ADA\"%' AND details LIKE '%\"reason_length\":18%'")"

# after a restart, lists and snoozes are as the store holds them
stop_server
start_server "$D" CUSTODIA_MONITOR_RULES=lists.rules || exit 1
event login_succeeded c-1 ', "ip": "198.51.100.8"'
check_eq "the list is back after a restart" "201 deny" "$STATUS $(json "j['decision']")"
event login_succeeded crm-ada ', "country": "FR"'
check_eq "and the snooze" "201 allow" "$STATUS $(json "j['decision']")"

req POST /v1/monitor/snoozes/remove -H "$AUTH" -H "$JSONH" --data '{"customer": "crm-ada", "rule": "foreign_sign_in"}'
check_eq "a snooze is ended" 200 "$STATUS"
event login_succeeded crm-ada ', "country": "FR"'
check_eq "and the rule runs again for the customer" "201 step_up" "$STATUS $(json "j['decision']")"
req POST /v1/monitor/lists/blocked_networks/remove -H "$AUTH" -H "$JSONH" --data '{"value": "198.51.100.0/24"}'
check_eq "an item is removed" 200 "$STATUS"
event login_succeeded c-1 ', "ip": "198.51.100.7"'
check_eq "and the rules no longer see it" "201 allow" "$STATUS $(json "j['decision']")"
req POST /v1/monitor/lists/blocked_networks/remove -H "$AUTH" -H "$JSONH" --data '{"value": "198.51.100.0/24"}'
check_eq "removing what is not there" "404 urn:custodia:problem:unknown_item" "$STATUS $(json "j['type']")"

# events posted under a reference before it was a vault customer's are made anonymous too
event login_succeeded crm-zed ', "device": "d-secret-zed", "ip": "192.0.2.78"'
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "zed@example.com", "external_ref": "crm-zed"}'
ZED=$(json "j['id']")
req DELETE "/v1/customers/$ZED" -H "$AUTH"
check_eq "erasing a customer strips the events posted under its reference, and keys them by its id" "200 0 1" \
    "$STATUS $("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = 'crm-zed' OR body LIKE '%secret-zed%'") $("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = '$ZED'")"

# an erased customer: monitoring keeps no more of where, on what, to whom
req POST /v1/monitor/snoozes -H "$AUTH" -H "$JSONH" \
    --data "{\"customer\": \"crm-ada\", \"rule\": \"foreign_sign_in\", \"until\": \"$(later 3600)\", \"reason\": \"travelling\"}"
event login_succeeded crm-ada ', "ip": "192.0.2.77", "device": "d-secret-77", "lat": 45.76, "lon": 4.84'
event transfer crm-ada ', "amount": 4200, "currency": "EUR", "payee": "p-secret-77"'
DEC=$(json "j['id']")
req DELETE "/v1/customers/$ADA" -H "$AUTH"
check_eq "a customer is erased" 200 "$STATUS"
check_eq "its stored events keep type, time and amount, and lose device, place, payee and country" "0 0 0 0 2" \
    "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = '$ADA' AND body LIKE '%secret%'") $("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = '$ADA' AND body LIKE '%\"FR\"%'") $("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = '$ADA' AND body LIKE '%\"ip\"%'") $("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = '$ADA' AND body LIKE '%\"lat\"%'") $("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_events WHERE customer = '$ADA' AND body LIKE '%\"amount\":4200%' OR (customer = '$ADA' AND body LIKE '%login_succeeded%' AND seq = (SELECT MAX(seq) FROM monitor_events WHERE customer = '$ADA' AND type = 'login_succeeded'))")"
check_eq "and its snoozes are gone" 0 "$("$DBQ" "$D" "SELECT COUNT(*) FROM monitor_snoozes WHERE customer = '$ADA'")"
req GET "/v1/decisions/$DEC" -H "$AUTH"
check_eq "its decisions show the event so stripped" "200 4200 None" "$STATUS $(json "j['event']['amount']") $(json "j['event'].get('payee')")"
finish
