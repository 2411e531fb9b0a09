#!/bin/sh
# Every curl example in docs/api.md runs against a real server and answers as documented, value
# for value but for those the page marks as varying (docs_examples.py says how they are read).
. "$(dirname "$0")/lib.sh"

D="$TMP/data"
init_dir "$D" || exit 1
# The examples show a fresh server's audit log, whose latest checkpoint is the one init signed
# (tree size 2): a run slower than [audit] checkpoint_seconds (a sanitizer build on a busy
# machine) must not sign another before they read it.
start_server "$D" CUSTODIA_AUDIT_CHECKPOINT_SECONDS=86400 || exit 1
python3 "$SRC/tests/integration/docs_examples.py" "$SRC/docs/api.md" "$URL" "$CA" "$KEY"
check_eq "every example in docs/api.md answers as documented" 0 $?
stop_server
check_eq "serve exits 0" 0 "$STOP_STATUS"
finish
