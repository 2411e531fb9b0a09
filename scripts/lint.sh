#!/bin/sh
# `make lint`: clang-format in check mode, clang-tidy and cppcheck over the C sources; fails
# on any finding.
set -u
build=${1:-build}
cd "$(dirname "$0")/.."
status=0

files=$(git ls-files '*.c' '*.h')
echo "== clang-format" >&2
clang-format --dry-run --Werror $files || status=1

echo "== clang-tidy" >&2
srcs=$(git ls-files 'src/*.c')
clang-tidy --quiet -p "$build" $srcs >"$build/clang-tidy.out" 2>&1
if grep -qE '(warning|error):' "$build/clang-tidy.out"; then
    grep -E -A3 '(warning|error):' "$build/clang-tidy.out" >&2
    status=1
fi

echo "== cppcheck" >&2
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
    --std=c11 --inline-suppr -D__GNUC__ -I src -I "$build" \
    --suppress=missingIncludeSystem $(git ls-files 'src/*.c') || status=1

[ $status -eq 0 ] && echo "lint: clean" >&2
exit $status
