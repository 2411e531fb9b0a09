#!/bin/sh
# `make check`: builds normally and with ASan+UBSan, runs the unit tests under both and under
# valgrind, runs the integration tests against both binaries, and ends with one line
# "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
export CU_VALGRIND=0

scripts/build.sh build || exit 1
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

status=0
logs="unit unit-asan unit-valgrind integration integration-asan"
for l in $logs; do rm -f "build/meson-logs/$l.json" "build-asan/meson-logs/$l.json"; done

# run LABEL LOGBASE MESON-TEST-ARGS...
run() {
    echo "== $1" >&2
    name=$2
    shift 2
    out="build/$name-$(echo "$*" | cksum | cut -d' ' -f1).out"
    meson test --no-rebuild --print-errorlogs --logbase "$name" "$@" >"$out" 2>&1 || status=1
    grep -E '^ *[0-9]+/[0-9]+ ' "$out" | sed 's/^/   /' >&2
    grep -A200 -E 'FAIL|ERROR' "$out" | head -150 >&2 || true
}

run unit unit -C build --suite unit
run unit-asan unit-asan -C build-asan --suite unit
# meson names the results of a wrapped run <logbase>-<wrapper>: unit-valgrind.json.
run unit-valgrind unit -C build --suite unit \
    --wrapper 'valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --child-silent-after-fork=yes --quiet' \
    --timeout-multiplier 4
run integration integration -C build --suite integration
run integration-asan integration-asan -C build-asan --suite integration

python3 - $logs <<'PY'
import json, os, sys
passed = failed = skipped = 0
for name in sys.argv[1:]:
    d = 'build-asan' if name.endswith('-asan') else 'build'
    f = os.path.join(d, 'meson-logs', name + '.json')
    if not os.path.exists(f):
        print('check: the %s run left no results' % name, file=sys.stderr)
        failed += 1
        continue
    for line in open(f):
        t = json.loads(line)
        r = t.get('result')
        if r in ('OK', 'EXPECTEDFAIL'):
            passed += 1
        elif r == 'SKIP':
            skipped += 1
            print('check: %s: %s was skipped' % (name, t.get('name')), file=sys.stderr)
        else:
            failed += 1
print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
sys.exit(1 if failed else 0)
PY
[ $? -eq 0 ] || status=1
exit $status
