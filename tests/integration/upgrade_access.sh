#!/bin/sh
# An upgrade keeps access exactly: a database written before roles, conditions and key owners
# existed (tests/data/fixtures/envelope-6eaab65, schema version 5) is migrated by the server of
# today, and under the default policy each staff member it holds may do exactly what its stored
# scopes said, nothing more and nothing less, permission by permission.
. "$(dirname "$0")/lib.sh"
sqlite_only "the fixture is an embedded installation of an older version (PostgreSQL has no older schema)"
FIX="${CU_TEST_DATA:?}/fixtures/envelope-6eaab65"
D="$TMP/data"
init_dir "$D" || exit 1
rm -f "$D"/custodia.db*
sqlite3 "$D/custodia.db" ".read $FIX/custodia.sql" || { not_ok "the fixture loads"; finish; exit 1; }
cp "$FIX/root.key" "$D/root.key"
chmod 600 "$D/custodia.db" "$D/root.key"
start_server "$D" || exit 1
check "the server migrated the old database" contains "$LOG" '"msg":"store.migrated","from":5'
stop_server

ALL="apikeys.read apikeys.write metrics.read audit.read customers.read customers.write
customers.unmask customers.erase customers.credentials staff.read staff.write access.read
access.write accounts.read accounts.write accounts.freeze accounts.unfreeze transfers.read
transfers.write transfers.approve ledger.read"
# stf_... and the scopes the old code stored for it
for who in "stf_cba068c215e4dc08 apikeys.read apikeys.write metrics.read" \
    "stf_e675ea7a307842b8 apikeys.read"; do
    set -- $who
    id=$1
    shift
    for perm in $ALL; do
        want=3
        for had in "$@"; do
            [ "$had" = "$perm" ] && want=0
        done
        "$BIN" access explain --dir "$D" --principal "$id" --permission "$perm" \
            >"$TMP/explain" 2>"$TMP/explain.err"
        check_eq "$id: $perm is $( [ $want = 0 ] && echo allowed || echo denied) as before" \
            "$want" "$?"
    done
done
finish
