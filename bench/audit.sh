#!/bin/sh
# Audit log append and verify rates (bench/audit_bench.c).
set -eu
"$(dirname "$CU_BINARY")/bench/audit_bench" 200000
