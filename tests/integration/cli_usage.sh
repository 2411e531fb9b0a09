#!/bin/sh
# The CLI's usage: asked for (--help, -h, help) it goes to standard output and exits 0, for
# every command and every verb; misuse (an unknown flag, a missing argument) prints it on
# standard error and exits 2. Neither touches a data directory.
. "$(dirname "$0")/lib.sh"

unset CUSTODIA_DIR
D="$TMP/data"
init_dir "$D" || exit 1
# Every run below starts in an empty directory, where the default data directory ./var is not.
W="$TMP/cwd"
mkdir "$W"
sums() { (cd "$D" && sha256sum root.key custodia.conf) && db_digest "$D"; }
before=$(sums)

# run NAME ARGS...: runs the binary in $W; stdout in $TMP/NAME.out, stderr in $TMP/NAME.err,
# exit status in RC.
run() {
    name=$1
    shift
    (cd "$W" && "$BIN" "$@") >"$TMP/$name.out" 2>"$TMP/$name.err"
    RC=$?
}

# Every command and verb: the words before the options.
commands="init
serve
apikey
apikey create
apikey list
apikey revoke
audit
audit verify
audit export
audit tail
audit hash
audit checkpoint
keys
keys status
keys rotate
keys retire
keys rotate-dek
staff
staff add
staff list
staff disable
staff unlock
rules
rules check
store
store copy
case
case list
case show
case export
case stage
case note
playbooks
playbooks check
drill
drill run"

# asked LABEL COMMAND ARGS...: usage of COMMAND on stdout, nothing on stderr, exit 0.
asked() {
    label=$1
    first=$2
    shift 2
    run help "$@"
    check_eq "$label exits 0" 0 "$RC"
    check "$label prints the usage on stdout" grep -q "^usage: custodia $first" "$TMP/help.out"
    check "$label prints nothing on stderr" empty "$TMP/help.err"
}

asked "custodia --help" "" --help
asked "custodia -h" "" -h
asked "custodia help" "" help
echo "$commands" | while read -r cmd; do
    first=${cmd%% *}
    # shellcheck disable=SC2086 # the words of $cmd are separate arguments
    for flag in --help -h; do
        asked "custodia $cmd $flag" "$first" $cmd $flag
        asked "custodia $cmd --dir DIR $flag" "$first" $cmd --dir "$D" $flag
    done
    case $cmd in
    init | serve) asked "custodia help $cmd" "$first" help $cmd ;;
    apikey | audit | keys | staff)
        asked "custodia help $cmd" "$first" help $cmd
        asked "custodia $cmd help" "$first" $cmd help
        ;;
    esac
done >"$TMP/asked.tap"
cat "$TMP/asked.tap"
PASS=$((PASS + $(grep -c '^ok' "$TMP/asked.tap")))
FAIL=$((FAIL + $(grep -c '^not ok' "$TMP/asked.tap")))
check "the loop over the commands ran" test "$(grep -c 'ok - ' "$TMP/asked.tap")" -ge 290

# Misuse: usage on stderr, nothing on stdout, exit 2.
misused() {
    label=$1
    shift
    run misuse "$@"
    check_eq "$label exits 2" 2 "$RC"
    check "$label prints the usage on stderr" grep -q "^usage: custodia" "$TMP/misuse.err"
    check "$label prints nothing on stdout" empty "$TMP/misuse.out"
}

misused "custodia with no command"
misused "an unknown command" frobnicate
misused "help on an unknown command" help frobnicate
echo "$commands" | while read -r cmd; do
    # shellcheck disable=SC2086
    misused "custodia $cmd with an unknown flag" $cmd --no-such-flag
    # shellcheck disable=SC2086
    misused "custodia $cmd with --dir and no value" $cmd --dir
done >"$TMP/misused.tap"
cat "$TMP/misused.tap"
PASS=$((PASS + $(grep -c '^ok' "$TMP/misused.tap")))
FAIL=$((FAIL + $(grep -c '^not ok' "$TMP/misused.tap")))
misused "apikey with no verb" apikey
misused "apikey with an unknown verb" apikey frob
misused "apikey create without --name" apikey create --scope all
misused "apikey create without --scope" apikey create --name x
misused "apikey revoke without an id" apikey revoke
misused "apikey list with an argument" apikey list extra
misused "audit with no verb" audit
misused "audit hash without --kind" audit hash 203.0.113.9
misused "audit hash without a value" audit hash --kind ip
misused "audit tail -n without a value" audit tail -n
misused "audit verify with an argument" audit verify extra
misused "keys with no verb" keys
misused "keys retire without a version" keys retire
misused "keys rotate-dek without a customer" keys rotate-dek
misused "keys status with an argument" keys status extra
misused "staff with no verb" staff
misused "staff add without --email" staff add --name x --scope all
misused "staff disable without an id" staff disable
misused "staff unlock without an id" staff unlock
misused "init with an argument" init extra
misused "serve with an argument" serve extra

check "no run made a data directory" test ! -e "$W/var"
check_eq "no run changed the data directory" "$before" "$(sums)"
finish
