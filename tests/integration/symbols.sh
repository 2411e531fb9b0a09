#!/bin/sh
# Every global symbol the library defines carries the cu_ prefix (STYLE.md, "Names"): a helper
# shared by two files of a module is cu_<module>_…, everything else is static. Fails on any
# other name, and when nm finds no symbol at all (a wrong path must not pass).
set -u
lib=${CU_LIBRARY:?CU_LIBRARY names libcustodia.a}
command -v nm >/dev/null || { echo "symbols: nm is missing" >&2; exit 1; }
[ -f "$lib" ] || { echo "symbols: $lib is missing" >&2; exit 1; }
# AddressSanitizer adds a "__odr_asan.<name>" for each global it instruments: the name
# checked is <name>.
all=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $2 ~ /^[TDBRCVGS]$/ { print $3 }' |
    sed 's/^__odr_asan[.]//' | sort -u)
count=$(printf '%s\n' "$all" | grep -c .)
if [ "$count" -lt 100 ]; then
    echo "symbols: nm found only $count global symbols in $lib" >&2
    exit 1
fi
bad=$(printf '%s\n' "$all" | grep -v '^cu_' || true)
if [ -n "$bad" ]; then
    echo "symbols: globals without the cu_ prefix in $lib:" >&2
    printf '  %s\n' $bad >&2
    exit 1
fi
echo "symbols: $count globals, all cu_"
