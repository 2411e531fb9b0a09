#!/bin/sh
# pgtest.sh start DIR | stop DIR: a private PostgreSQL cluster for the tests, on 127.0.0.1 and
# a free port, under DIR (made by start, removed by stop).
#
# start makes the cluster with Debian's initdb (the postgresql package; scripts/deps.sh
# installs it), as the user who runs it, or as "nobody" when that is root (PostgreSQL refuses
# to run as root), starts it, makes a role "custodia" that may create databases, and prints
# the URL to hand the tests as CU_TEST_PG, postgresql://custodia@127.0.0.1:PORT. Connections
# are trusted from 127.0.0.1 alone, and the cluster is tuned for tests, not for durability
# (fsync off; PGTEST_DURABLE=1 keeps PostgreSQL's durable defaults, for the benchmarks): the
# tests kill custodia, never PostgreSQL. A test makes its own database.
set -eu

cmd=${1:?usage: pgtest.sh start DIR | stop DIR}
dir=${2:?usage: pgtest.sh start DIR | stop DIR}

bindir=
for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && bindir=$d
done
[ -n "$bindir" ] || { echo "pgtest: no PostgreSQL server found (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u nobody -- "$@"
    else
        "$@"
    fi
}

case $cmd in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown nobody "$dir"
    chmod 0700 "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 128MB
log_min_messages = warning
EOF
    # PGTEST_DURABLE=1 (the benchmarks): PostgreSQL's defaults, every commit on disk
    if [ -z "${PGTEST_DURABLE:-}" ]; then
        printf 'fsync = off\nfull_page_writes = off\n' >>"$dir/data/postgresql.conf"
    fi
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    "$bindir/psql" -q -X -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE custodia LOGIN CREATEDB" >/dev/null
    echo "postgresql://custodia@127.0.0.1:$port"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: pgtest.sh start DIR | stop DIR" >&2
    exit 2
    ;;
esac
