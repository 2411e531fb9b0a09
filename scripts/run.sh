#!/bin/sh
# `make run`: initialise the data directory on first use, then serve it.
set -eu
build=$1
dir=$2
cd "$(dirname "$0")/.."
if [ ! -f "$dir/custodia.conf" ]; then
    "$build/custodia" init --dir "$dir"
fi
echo "custodia: serving https://127.0.0.1:8443 (data in $dir; stop with Ctrl-C)" >&2
exec "$build/custodia" serve --dir "$dir"
