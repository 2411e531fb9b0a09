#!/bin/sh
# `make bench`: builds an optimised binary and runs every benchmark under bench/, printing
# each figure. Benchmarks are never part of `make check`.
set -eu
cd "$(dirname "$0")/.."
scripts/build.sh build-bench --buildtype=release -Dtests=false
export CU_BINARY="$PWD/build-bench/custodia"
echo "custodia bench: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, $(uname -m)," \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for b in bench/*.sh; do
    sh "$b"
done
