#!/bin/sh
# Access decisions in process (bench/access_bench.c): the default policy, and a policy of 1,000
# grants with conditions over 10,000 principals with the latency of single decisions.
set -eu
"$(dirname "$CU_BINARY")/bench/access_bench" 5000000
