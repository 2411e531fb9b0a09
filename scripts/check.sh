#!/bin/sh
# `make check`: builds normally and with ASan+UBSan, starts a private PostgreSQL server
# (scripts/pgtest.sh, stopped at the end), runs the unit tests under both builds and under
# valgrind (the store contract's on PostgreSQL too), runs the integration tests against both
# binaries on SQLite and against the normal one on PostgreSQL, and ends with one line
# "N passed, N failed, N skipped", counting meson tests over the six runs; when some were
# skipped, the line goes on to name them and the runs they were skipped in.
#
# Skips are never counted as passes. A unit test skips a case with cmocka's skip() (as
# test_seal does on a CPU without AES-NI); tests/unit/cu_test.h makes such a program exit 77
# when no case failed, and meson records exit status 77 as SKIP (a failure still wins, exit 1).
# For each SKIP this script prints, on stderr, the cases skipped, read from the
# "[  SKIPPED ] name" lines cmocka writes on the program's stdout (kept in meson's JSON log).
# Any other result than OK, EXPECTEDFAIL or SKIP is a failure, and so is a run that left no
# results.
set -u
cd "$(dirname "$0")/.."
export CU_VALGRIND=0

scripts/build.sh build || exit 1
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The PostgreSQL server every run may use (CU_TEST_PG); the integration tests use it only when
# CU_TEST_BACKEND=postgres.
PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/cu-pg-XXXXXX")
trap 'scripts/pgtest.sh stop "$PGDIR"' EXIT
CU_TEST_PG=$(scripts/pgtest.sh start "$PGDIR") || exit 1
export CU_TEST_PG

status=0
logs="unit unit-asan unit-valgrind integration integration-asan integration-pg"
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
export CU_TEST_BACKEND=postgres
run integration-pg integration-pg -C build --suite integration --no-suite pg-direct \
    --no-suite store-free
unset CU_TEST_BACKEND

python3 - $logs <<'PY'
import json, os, re, sys
passed = failed = skipped = 0
# test name -> the runs it was skipped in, in order
skips = {}
# cmocka's line for one skipped case (not its "N test(s), listed below:" summary)
case_re = re.compile(r'^\[  SKIPPED \] (\S+)$', re.M)
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
        # meson names a test "project:suite / name"
        test = t.get('name', '?').split(' / ', 1)[-1]
        if r in ('OK', 'EXPECTEDFAIL'):
            passed += 1
        elif r == 'SKIP':
            skipped += 1
            skips.setdefault(test, []).append(name)
            cases = sorted(set(case_re.findall(t.get('stdout') or '')))
            print('check: %s: %s was skipped (%s)' %
                  (name, test, ', '.join(cases) if cases else 'no case named'), file=sys.stderr)
        else:
            failed += 1
summary = '%d passed, %d failed, %d skipped' % (passed, failed, skipped)
if skips:
    summary += ': ' + ', '.join('%s (%s)' % (k, ' '.join(v)) for k, v in skips.items())
print(summary)
sys.exit(1 if failed else 0)
PY
[ $? -eq 0 ] || status=1
exit $status
