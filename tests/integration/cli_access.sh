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
check "it is summarised" grep -q "^ok: 7 roles (6 built in, 0 redefined), 1 permits, 1 grants, 1 forbids, 1 approvals; sha256 " "$TMP/out"
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
finish
