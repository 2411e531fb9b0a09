#!/bin/sh
# Every curl example in docs/api.md runs against a real server and answers as documented.
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
start_server "$D" || exit 1
python3 "$SRC/tests/integration/docs_examples.py" "$SRC/docs/api.md" "$URL" "$CA" "$KEY"
check_eq "every example in docs/api.md answers as documented" 0 $?
stop_server
check_eq "serve exits 0" 0 "$STOP_STATUS"
finish
