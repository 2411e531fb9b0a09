#!/bin/sh
# The monitoring engine in process on one core: 1,000,000 generated events (10,000 customers,
# bench/gen_events.py, seed 1) through the default rule pack; events/s parsed and decided,
# decided alone, with a shadow set beside, and the state's bytes a customer. Then what the
# pack catches in that file (bench/monitor_report.py, through `custodia rules test`).
set -eu
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 "$(dirname "$0")/gen_events.py" --customers 10000 --events 1000000 --seed 1 "$TMP/events.jsonl"
taskset -c 0 "$(dirname "$CU_BINARY")/bench/monitor_bench" "$TMP/events.jsonl"
"$CU_BINARY" rules test --decisions "$TMP/decisions.jsonl" "$TMP/events.jsonl" | grep -E '^(events|decisions|flagged)'
python3 "$(dirname "$0")/monitor_report.py" "$TMP/events.jsonl" "$TMP/decisions.jsonl"
