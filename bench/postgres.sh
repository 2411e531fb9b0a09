#!/bin/sh
# The same figures on PostgreSQL, beside the SQLite ones `make bench` prints before them:
# audited writes (http_writes.sh), single and batched transfers (ledger.sh) and posted events
# (http_events.sh), each on a fresh database of a private PostgreSQL server on 127.0.0.1
# (scripts/pgtest.sh with PostgreSQL's durable defaults: fsync on, synchronous_commit on),
# one node. The server shares the two cores with custodia and wrk.
set -eu
BIN=${CU_BINARY:?}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/cu-benchpg-XXXXXX")
trap '"$SRC/scripts/pgtest.sh" stop "$PGDIR"' EXIT
PG=$(PGTEST_DURABLE=1 "$SRC/scripts/pgtest.sh" start "$PGDIR")
VERSION=$(psql -X -A -t "$PG/postgres" -c 'SHOW server_version' | cut -d' ' -f1)
n=0
for b in ${CU_BENCH_PG_ONLY:-http_writes ledger http_events}; do
    n=$((n + 1))
    psql -q -X "$PG/postgres" -c "CREATE DATABASE bench_$n" >/dev/null
    echo "== $b on PostgreSQL $VERSION, one node"
    CU_BENCH_PG_DB="$PG/bench_$n" CU_BINARY="$BIN" sh "$SRC/bench/$b.sh"
done
