#!/bin/sh
# Customer vault: decrypt rate against raw libsodium, and KEK rotation over 100,000 customers.
set -eu
"$(dirname "$CU_BINARY")/bench/vault_bench" 100000
