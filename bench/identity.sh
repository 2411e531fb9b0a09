#!/bin/sh
# Session-token validations per second in-process over 1,000 sessions, one thread per core
# (bench/identity_bench.c). Password sign-ins over HTTPS are bench/http_login.sh.
set -eu
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT
"$(dirname "$CU_BINARY")/bench/identity_bench" sessions 1000 5 2>"$ERR" ||
    { cat "$ERR" >&2; exit 1; }
