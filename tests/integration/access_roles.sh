#!/bin/sh
# Roles and attributes stored with staff members, decided by the access policy: a staff member
# with no scope but a role reads customers, masked, while the permit's condition on their
# region and address holds; a role the policy does not know is refused; an attribute grant
# (department and training) gives a built-in role; changing the region through the API takes
# effect on the next request; giving a role needs its permissions, as giving scopes does; keys
# carry roles too.
. "$(dirname "$0")/lib.sh"
command -v oathtool >/dev/null || { not_ok "oathtool is installed (scripts/deps.sh)"; finish; exit 1; }

D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/access.policy" <<'POLICY'
version 1
network office 127.0.0.0/8 ::1
role regional
permit regional customers.read masked when staff.region == "emea" and ip in office
grant auditor to staff when staff.department == "audit" and staff.training_valid_until > now
POLICY
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"email": "ada@example.com", "given_name": "Ada"}'
CID=$(json "j['id']")

req POST /v1/staff -H "$AUTH" -H "$JSONH" \
    --data '{"email": "rita@example.com", "name": "Rita", "roles": ["nope"]}'
check_eq "a role the policy does not know is refused" 400 "$STATUS"
check "and named" grep -q "the access policy has no role 'nope'" "$TMP/body"
req POST /v1/staff -H "$AUTH" -H "$JSONH" \
    --data '{"email": "rita@example.com", "name": "Rita", "roles": ["regional"], "region": "emea"}'
check_eq "a staff member with a role and no scope is added" 201 "$STATUS"
SID=$(json "j['id']")
check_eq "with the role" "['regional']" "$(json "j['roles']")"
check_eq "and the region" "emea" "$(json "j['region']")"
check_eq "and no scope" "[]" "$(json "j['scopes']")"

# Rita signs in with a password and TOTP (aal2).
staff_signin "$SID" rita@example.com 'quiet lantern orchard 58' || exit 1
ok "she signs in with her second factor"

req GET "/v1/customers/$CID" -H "$STOK"
check_eq "her role's permit holds: she reads a customer" 200 "$STATUS"
check_eq "masked, as the permit says" "True" "$(json "j['email'] != 'ada@example.com'")"
req GET "/v1/audit" -H "$STOK"
check_eq "the role gives nothing it does not list" 403 "$STATUS"

req PATCH "/v1/staff/$SID" -H "$AUTH" -H "$JSONH" --data '{"region": "amer"}'
check_eq "her region is changed" 200 "$STATUS"
req GET "/v1/customers/$CID" -H "$STOK"
check_eq "and on her next request the permit no longer holds" 403 "$STATUS"
DETAIL=$(json "j['detail']")
check_eq "the answer names the failed condition and the value seen" "customers.read denied by role regional, permit at access.policy:4: staff.region == \"emea\" (access.policy:4:44): staff.region is \"amer\"" "$DETAIL"

req PATCH "/v1/staff/$SID" -H "$AUTH" -H "$JSONH" \
    --data '{"department": "audit", "training_valid_until": "2099-01-01T00:00:00Z"}'
check_eq "her department and training are set" 200 "$STATUS"
req GET "/v1/audit?limit=1" -H "$STOK"
check_eq "the policy's grant gives her the auditor role" 200 "$STATUS"
req PATCH "/v1/staff/$SID" -H "$AUTH" -H "$JSONH" --data '{"training_valid_until": "2001-01-01T00:00:00Z"}'
req GET "/v1/audit?limit=1" -H "$STOK"
check_eq "once her training has lapsed, it does not" 403 "$STATUS"
req GET "/v1/staff/$SID" -H "$AUTH"
check_eq "a PATCH changes only the fields it names" "amer audit ['regional']" \
    "$(json "j['region'] + ' ' + j['department'] + ' ' + str(j['roles'])")"

# Least privilege: a key with staff.write alone cannot give a role with more.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "hr", "scopes": ["staff.write"]}'
HR="Authorization: Bearer $(json "j['key']")"
req POST /v1/staff -H "$HR" -H "$JSONH" \
    --data '{"email": "eve@example.com", "name": "Eve", "roles": ["admin"]}'
check_eq "a role's permissions count as given" 403 "$STATUS"

# Roles stored with API keys: a key of role service and no scope reads customers.
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "billing", "roles": ["service"]}'
check_eq "a key is made with a role and no scope" 201 "$STATUS"
check_eq "its record shows the role" "['service']" "$(json "j['roles']")"
SVC="Authorization: Bearer $(json "j['key']")"
req GET "/v1/customers/$CID" -H "$SVC"
check_eq "the role's permission holds for the key" 200 "$STATUS"
req GET "/v1/audit?limit=1" -H "$SVC"
check_eq "and only what the role lists" 403 "$STATUS"
req POST /v1/apikeys -H "$AUTH" -H "$JSONH" --data '{"name": "x", "roles": ["nope"]}'
check_eq "a key's unknown role is refused" 400 "$STATUS"
req POST /v1/apikeys -H "$HR" -H "$JSONH" --data '{"name": "y", "roles": ["service"]}'
check_eq "a key's role must be within what its maker holds" 403 "$STATUS"
stop_server
"$BIN" audit verify --dir "$D" >/dev/null 2>&1
check_eq "the audit chain verifies" 0 $?
finish
