#!/bin/sh
# custodia access check: a good policy is summarised with its digest and exits 0; a bad one is
# named FILE:LINE:COLUMN with the reason and exits 1; an unreadable file and misuse are clear.
# The example policy of docs/access.md must pass the check, so the reference stays true.
. "$(dirname "$0")/lib.sh"

P="$TMP/access.policy"
cat >"$P" <<'POLICY'
version 1
network office 10.20.0.0/16 2001:db8:1::/48
hours working mon-fri 08:00-18:00 Europe/London
region emea GB IE
role regional
permit regional customers.read masked
    when customer.region == staff.region and ip in office and time in working
grant regional to staff when staff.department == "support"
forbid customers.unmask when session.aal < 2
approve customers.erase by 2 within 24h
POLICY
"$BIN" access check "$P" >"$TMP/out" 2>&1
check_eq "a good policy exits 0" 0 $?
check "it is summarised" grep -q "^ok: 11 roles (10 built in, 0 redefined), 1 permits, 1 grants, 1 forbids, 1 approvals; sha256 " "$TMP/out"
check_eq "with the SHA-256 of the file" "$(sha256sum "$P" | cut -d' ' -f1)" "$(sed 's/.*sha256 //' "$TMP/out")"

printf 'version 1\nrole r\npermit r customers.read\n    when session.aal == "two"\n' >"$TMP/bad.policy"
"$BIN" access check "$TMP/bad.policy" >"$TMP/out" 2>"$TMP/err"
check_eq "a bad policy exits 1" 1 $?
check_eq "it is named with line and column" "$TMP/bad.policy:4:10: compares a number with a string" "$(cat "$TMP/err")"
check_eq "and nothing on stdout" "" "$(cat "$TMP/out")"

printf 'version 1\nhours h mon-fri 08:00-18:00 Mars/Olympus_Mons\n' >"$TMP/tz.policy"
"$BIN" access check "$TMP/tz.policy" 2>"$TMP/err"
check_eq "an unknown time zone exits 1" 1 $?
check_eq "and is named" "$TMP/tz.policy:2:29: no such time zone" "$(cat "$TMP/err")"

"$BIN" access check "$TMP/none.policy" 2>"$TMP/err"
check_eq "a missing file exits 1" 1 $?
check "and says it cannot be read" grep -q "none.policy: cannot read the file" "$TMP/err"

"$BIN" access 2>"$TMP/err"
check_eq "misuse exits 2" 2 $?
check "with the usage" grep -q "usage: custodia access check FILE" "$TMP/err"

# The example in docs/access.md, with its placeholder id, passes.
sed -n '/^## The policy file/,/^### Statements/p' "$SRC/docs/access.md" |
    awk '/^```/ {n++; next} n == 1 {print}' >"$TMP/doc.policy"
check "the documented example is there" grep -q "^version 1" "$TMP/doc.policy"
"$BIN" access check "$TMP/doc.policy" >"$TMP/out" 2>&1
check_eq "the documented example passes the check" 0 $?

# `custodia access explain` on a data directory, beside a running server.
D="$TMP/data"
init_dir "$D" || exit 1
cat >"$D/access.policy" <<'POLICY'
version 1
region emea GB FR
network office 10.0.0.0/8
role agent
permit agent customers.read masked when customer.region == staff.region and ip in office
POLICY
start_server "$D" || exit 1
AUTH="Authorization: Bearer $KEY"
JSONH='Content-Type: application/json'
req POST /v1/customers -H "$AUTH" -H "$JSONH" --data '{"given_name": "Ada", "country": "GB"}'
CID=$(json "j['id']")
req POST /v1/staff -H "$AUTH" -H "$JSONH" \
    --data '{"email": "rita@example.com", "name": "Rita", "roles": ["agent"], "region": "emea"}'
SID=$(json "j['id']")
"$BIN" access explain --dir "$D" --principal "$SID" --permission customers.read \
    --customer "$CID" --ip 10.1.2.3 >"$TMP/out" 2>"$TMP/err"
check_eq "explain exits 0 when the policy allows" 0 $?
check_eq "and says how" "allow_masked role agent, permit at access.policy:5" \
    "$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['effect'], j['decided_by'])" "$TMP/out")"
check "with nothing on stderr (no start-up lines of the service)" empty "$TMP/err"
"$BIN" access explain --dir "$D" --principal "$SID" --permission customers.read \
    --customer "$CID" --ip 192.0.2.1 >"$TMP/out" 2>"$TMP/err"
check_eq "explain exits 3 when it denies" 3 $?
check "naming the condition that failed" grep -q 'ip in office' "$TMP/out"
"$BIN" access explain --dir "$D" --principal "$SID" --permission customers.read \
    --ip 10.1.2.3 >"$TMP/out" 2>"$TMP/err"
check_eq "without a customer, a permit on the customer does not hold" 3 $?
"$BIN" access explain --dir "$D" --principal stf_0000000000000000 --permission audit.read \
    >"$TMP/out" 2>"$TMP/err"
check_eq "an unknown principal exits 1" 1 $?
check "and says so" grep -q "^custodia: no principal has this id$" "$TMP/err"
"$BIN" access explain --dir "$D" --principal "$SID" --permission nope 2>"$TMP/err"
check_eq "an unknown permission is misuse" 2 $?
"$BIN" access explain --dir "$D" --principal "$SID" --permission audit.read --ip 300.1.1.1 2>"$TMP/err"
check_eq "so is an address that is not one" 2 $?
stop_server

# Roles from the shell: --role on staff add and apikey create, checked against the policy.
printf '%s\n' 'sturdy copper meadow 19' |
    "$BIN" staff add --dir "$D" --email otto@example.com --name Otto --role agent --role auditor \
        --password-stdin >"$TMP/out" 2>"$TMP/err"
check_eq "staff add takes roles instead of scopes" 0 $?
OID=$(cat "$TMP/out")
"$BIN" access explain --dir "$D" --principal "$OID" --permission audit.read >"$TMP/out" 2>/dev/null
check_eq "and the staff member holds them" "0 role auditor (built in)" \
    "$? $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['decided_by'])" "$TMP/out")"
"$BIN" staff add --dir "$D" --email eve@example.com --name Eve --role nope --password-stdin \
    </dev/null 2>"$TMP/err"
check_eq "a role the policy does not know is misuse" 2 $?
check "and named" grep -q "has no role 'nope'" "$TMP/err"
"$BIN" staff add --dir "$D" --email eve@example.com --name Eve --role 'Bad Name' \
    --password-stdin </dev/null 2>"$TMP/err"
check_eq "so is a name that is not one" 2 $?
"$BIN" apikey create --dir "$D" --name reports --role auditor >"$TMP/out" 2>"$TMP/err"
check_eq "apikey create takes a role" 0 $?
check "and says so" grep -q "with scopes: (none); roles: auditor" "$TMP/err"
AK=$(sed -n 's/.*made API key \(ak_[0-9a-f]*\) .*/\1/p' "$TMP/err")
"$BIN" access explain --dir "$D" --principal "$AK" --permission audit.read >/dev/null 2>&1
check_eq "the key holds the role" 0 $?
"$BIN" access explain --dir "$D" --principal "$AK" --permission customers.write >/dev/null 2>&1
check_eq "and nothing the role does not list" 3 $?
finish
