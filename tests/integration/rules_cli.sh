#!/bin/sh
# `custodia rules check`: a good rule file is listed rule by rule and exits 0; a bad one
# prints FILE:LINE:COLUMN: what was expected, on stderr, and exits 1; several files are each
# checked; custom event types come with --types; a missing file, an oversize file and misuse
# are clear errors. No data directory is read.
. "$(dirname "$0")/lib.sh"

unset CUSTODIA_DIR
cd "$TMP" || exit 1
cat >good.rules <<'RULES'
# two rules and a list
list risky = ["KP", "IR"]
rule big when event.type == "transfer" and event.amount >= 500000
  then score 40, step_up, reason "a large transfer"
rule risky_country when event.country in risky and count(customer, 1h) > 3
  then hold, reason "a risky country, often"
RULES
printf 'rule a\n  when event.amount >=\n  then reason "r"\n' >bad.rules
printf 'rule a when event.type == "card_swipe" then reason "r"\n' >custom.rules

"$BIN" rules check good.rules >out 2>err
check_eq "a good file exits 0" 0 $?
check "it is reported ok with its counts" grep -qx 'good.rules: ok: 2 rules reading 1 feature' out
check "each rule is listed with its reason" grep -qx '  risky_country: a risky country, often' out
check "nothing on stderr" empty err

"$BIN" rules check bad.rules >out 2>err
check_eq "a bad file exits 1" 1 $?
check "the error names file, line and column" \
    grep -qx "bad.rules:3:3: expected a value, found 'then'" err

"$BIN" rules check good.rules bad.rules >out 2>err
check_eq "one bad file of two exits 1" 1 $?
check "the good one is still reported" grep -q '^good.rules: ok' out
check "the bad one is named" grep -q '^bad.rules:3:3:' err

"$BIN" rules check custom.rules >out 2>err
check_eq "an undeclared custom type is an error" 1 $?
check "it names the type" grep -qF 'custom.rules:1:27: unknown event type "card_swipe"' err
"$BIN" rules check --types card_swipe,chargeback custom.rules >out 2>err
check_eq "declared with --types it compiles" 0 $?
"$BIN" rules check --types Bad custom.rules >out 2>err
check_eq "a bad custom type name is misuse" 2 $?
check "it says what a type name is" grep -q 'a lower-case letter' err

"$BIN" rules check missing.rules >out 2>err
check_eq "a missing file exits 1" 1 $?
check "it says it cannot open it" grep -q 'missing.rules: cannot open' err
head -c 1048577 /dev/zero | tr '\0' ' ' >big.rules
"$BIN" rules check big.rules >out 2>err
check_eq "a file over 1 MiB exits 1" 1 $?
check "it says so" grep -q 'big.rules: longer than 1048576 bytes' err

"$BIN" rules check >out 2>err
check_eq "no file is misuse" 2 $?
"$BIN" rules frobnicate >out 2>err
check_eq "an unknown verb is misuse" 2 $?
"$BIN" rules check --dir /nonexistent good.rules >out 2>err
check_eq "--dir is accepted and not read" 0 $?
finish
