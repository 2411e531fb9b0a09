#!/bin/sh
# `custodia rules test`: a generated file of labelled traffic (bench/gen_events.py) replayed
# through the built-in default pack: one decision line per input line, in order, each naming
# its line; the summary with the decisions, the rules fired, the confusion matrix, precision
# and recall; the default pack detecting the generated attacks while leaving legitimate
# traffic alone; a refused line reported with its number, a decision line for it, exit 1;
# --rules with a file of one's own; the same input giving the same decisions twice.
. "$(dirname "$0")/lib.sh"

cd "$TMP" || exit 1
python3 "$SRC/bench/gen_events.py" --customers 300 --events 30000 --seed 7 events.jsonl >gen.out
check "the generator wrote its file" grep -q '^wrote ' gen.out

"$BIN" rules test --decisions d.jsonl events.jsonl >out 2>err
check_eq "a clean replay exits 0" 0 $?
check_eq "one decision line per input line" "$(wc -l <events.jsonl)" "$(wc -l <d.jsonl)"
check_eq "in order, each naming its line" "$(wc -l <events.jsonl)" \
    "$(awk -F'"line":' '{split($2, a, ","); if (a[1] == NR) n++} END {print n}' d.jsonl)"
check "the summary counts the events" grep -q "^events: $(wc -l <events.jsonl) read, 0 refused" out
check "it counts each decision" grep -q '^decisions: allow [0-9]* review [0-9]* step_up' out
check "it lists each rule with its count" grep -q '^  failed_sign_ins_per_account  *[1-9]' out
check "it prints the confusion matrix" grep -q '^  attack  *[0-9]' out
check "and precision and recall" grep -q '^flagged (step_up, hold or deny): precision 0\.[0-9]*, recall 0\.[0-9]*$' out
python3 "$SRC/bench/monitor_report.py" events.jsonl d.jsonl >report
cat report | sed 's/^/# /'
detected=$(awk -F'|' '$2 ~ /^ all / {split($4, a, "("); sub(/ %\).*/, "", a[2]); print a[2]}' report)
legit=$(sed -n 's/^legitimate: .* events decided step_up, hold or deny (\([0-9.]*\) %).*/\1/p' report)
check "the default pack detects at least 90 % of the attacks (detected: $detected %)" \
    awk -v d="$detected" 'BEGIN {exit !(d >= 90)}'
check "it flags under 1 % of legitimate events (flagged: $legit %)" \
    awk -v l="$legit" 'BEGIN {exit !(l < 1)}'

"$BIN" rules test --decisions d2.jsonl events.jsonl >out2 2>err2
check "the same input gives the same decisions" cmp -s d.jsonl d2.jsonl

# a refused line: reported, a decision line for it, the rest replayed, exit 1
{ head -3 events.jsonl; echo '{"type": "teleport", "time": "2026-01-05T00:00:00Z", "customer": "c"}'; \
  sed -n 4,5p events.jsonl; } >mixed.jsonl
"$BIN" rules test --decisions dm.jsonl mixed.jsonl >out 2>err
check_eq "a file with a bad line exits 1" 1 $?
check "stderr names the line and the field" grep -q "^line 4: field 'type' names no known event type" err
check_eq "every line still has its decision line" 6 "$(wc -l <dm.jsonl)"
check "the bad line's is an error" grep -q '^{"line":4,"error":' dm.jsonl

# rules of one's own
printf 'rule everything when event.type == "login_failed" then deny, reason "no failures"\n' >own.rules
"$BIN" rules test --rules own.rules --decisions do.jsonl events.jsonl >out 2>err
check_eq "--rules replays with that file" 0 $?
check_eq "every login_failed denied, nothing else" "$(grep -c '"type":"login_failed"' events.jsonl)" \
    "$(grep -c '"decision":"deny"' do.jsonl)"
printf 'rule broken when then reason "x"\n' >broken.rules
"$BIN" rules test --rules broken.rules events.jsonl >out 2>err
check_eq "a rule file that does not compile exits 1" 1 $?
check "with its position" grep -q '^broken.rules:1:18: expected a value' err
"$BIN" rules test missing.jsonl >out 2>err
check_eq "a missing event file exits 1" 1 $?
finish
