#!/bin/sh
# `make fuzz`: builds the fuzz targets with clang, libFuzzer, ASan and UBSan (build-fuzz), and
# runs each for FUZZ_SECONDS (default 60) over a copy of its seed corpus. What a run finds
# (crash-*, leak-*) is left in build-fuzz/findings/<target>/; inputs worth keeping go into
# fuzz/corpus/<target>/, which every `make check` replays.
set -eu
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
if [ ! -d build-fuzz ]; then
    CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false -Db_sanitize=address,undefined \
        -Db_lundef=false -Dwerror=false >/dev/null
fi
ninja -C build-fuzz >/dev/null
for t in build-fuzz/fuzz/fuzz_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=${t##*/fuzz_}
    work=build-fuzz/findings/$name
    mkdir -p "$work/corpus"
    cp -n fuzz/corpus/"$name"/* "$work/corpus/" 2>/dev/null || true
    echo "fuzz: $name for ${secs}s"
    (cd "$work" && "../../fuzz/fuzz_$name" -max_total_time="$secs" -max_len=4096 corpus \
        >fuzz.log 2>&1) || { echo "fuzz: $name found a problem: see $work/fuzz.log" >&2; exit 1; }
    tail -1 "$work/fuzz.log"
done
