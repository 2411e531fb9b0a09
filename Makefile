# custodia - the two commands first: `make run` and `make check`.
#
#   make run     install what is missing, build, init ./var on first use, serve on :8443
#   make check   install what is missing, build (normal and ASan+UBSan), run every test
#   make bench   run the benchmarks and print their figures
#   make fmt     format the C sources with clang-format
#   make lint    clang-format check, clang-tidy and cppcheck; fails on findings
#   make fuzz    run each libFuzzer target for FUZZ_SECONDS (default 60) with clang

BUILD ?= build
DIR ?= var

.PHONY: all deps build run check bench fmt lint fuzz clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@scripts/build.sh $(BUILD)

run: build
	@scripts/run.sh $(BUILD) $(DIR)

check: deps
	@scripts/check.sh

bench: deps
	@scripts/bench.sh

fuzz: deps
	@scripts/fuzz.sh

fmt:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

lint: build
	@scripts/lint.sh $(BUILD)

clean:
	rm -rf build build-asan build-bench
