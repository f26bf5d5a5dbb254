# Custos: `make run` serves a demo on 127.0.0.1:8080; `make test` runs every suite.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
PYTHON ?= /usr/bin/python3
CUSTOS = $(BUILD)/custos

.PHONY: all deps build run test test-steps unit integration integration-pg crash-test bench clean \
	test-asan test-tsan fuzz-smoke coverage lint format

all: build

deps:
	@bash scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run-demo $(CUSTOS) data 127.0.0.1:8080

unit: build
	@$(BUILD)/custos_unit_tests --gtest_brief=1

crash-test: build
	@bash scripts/crash-test --binary $(CUSTOS) --rounds 3

integration: build
	@CUSTOS_BINARY=$(abspath $(CUSTOS)) $(PYTHON) -m pytest -q tests/integration

# The integration suite on PostgreSQL: a throwaway server (scripts/with-postgres), one database
# per custos data directory on it.
integration-pg: build
	@CUSTOS_BACKEND=postgresql CUSTOS_BINARY=$(abspath $(CUSTOS)) \
	  bash scripts/with-postgres $(PYTHON) -m pytest -q tests/integration

# Unit tests, the crash test (a small count) and the black-box integration suite on both
# backends. One throwaway PostgreSQL (scripts/with-postgres) serves the PostgreSQL store unit
# tests and the PostgreSQL integration run; it is removed afterwards whatever happens.
test: build
	@bash scripts/with-postgres $(MAKE) --no-print-directory test-steps

# The steps of `make test`; the PostgreSQL tests need CUSTOS_PG_DSN (scripts/with-postgres).
test-steps:
	@echo "== unit tests"
	@$(BUILD)/custos_unit_tests --gtest_brief=1
	@echo "== crash test"
	@bash scripts/crash-test --binary $(CUSTOS) --rounds 3
	@echo "== unit and integration tests under ASan+UBSan"
	@$(MAKE) --no-print-directory test-asan
	@echo "== fuzz targets: seed and crash replay, then $(FUZZ_SMOKE_SECONDS) s each"
	@$(MAKE) --no-print-directory fuzz-smoke
	@echo "== integration tests (sqlite)"
	@CUSTOS_BINARY=$(abspath $(CUSTOS)) $(PYTHON) -m pytest -q tests/integration
	@echo "== integration tests (postgresql)"
	@CUSTOS_BACKEND=postgresql CUSTOS_BINARY=$(abspath $(CUSTOS)) \
	  $(PYTHON) -m pytest -q tests/integration

# The unit and integration suites under AddressSanitizer+UndefinedBehaviorSanitizer (no
# recovery: the first report fails the run) and under ThreadSanitizer.
SAN_SUITES = $(BUILD)-$(1)/custos_unit_tests --gtest_brief=1 && \
	CUSTOS_BINARY=$(abspath $(BUILD)-$(1)/custos) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

test-asan: deps
	@cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=asan >/dev/null
	@ninja -C $(BUILD)-asan -j $(JOBS) custos custos_unit_tests
	@$(call SAN_SUITES,asan)

test-tsan: deps
	@cmake -S . -B $(BUILD)-tsan -G Ninja -DCMAKE_BUILD_TYPE=tsan >/dev/null
	@ninja -C $(BUILD)-tsan -j $(JOBS) custos custos_unit_tests
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" $(call SAN_SUITES,tsan)

# Every libFuzzer target of tests/fuzz (scripts/fuzz; clang, build-fuzz/): replays the seeds and
# the kept crash reproducers, then fuzzes each target for FUZZ_SMOKE_SECONDS.
FUZZ_SMOKE_SECONDS ?= 10
fuzz-smoke:
	@bash scripts/fuzz --replay
	@for t in $$(bash scripts/fuzz --list); do \
	  bash scripts/fuzz $$t $(FUZZ_SMOKE_SECONDS) || exit 1; \
	done

# Line and branch coverage of src/ by the unit and integration suites (SQLite backend, plus the
# PostgreSQL store tests when CUSTOS_PG_DSN is set): HTML in $(BUILD)-coverage/coverage-html/.
coverage: deps
	@bash scripts/coverage $(BUILD)-coverage

# clang-tidy (.clang-tidy) on every src/**/*.cc, and clang-format (.clang-format) on the C++ of
# src/ tests/unit tests/fuzz bench; fails on any finding. Uses $(BUILD)/compile_commands.json.
LINT_FORMAT_FILES = $(shell git ls-files 'src/*.cc' 'src/*.h' 'src/*.cpp' 'tests/unit/*.cc' \
	'tests/unit/*.h' 'tests/fuzz/*.cc' 'tests/fuzz/*.h' 'bench/*.cc' 'bench/*.h')
lint: build
	@bash scripts/lint $(BUILD)
	@clang-format --dry-run --Werror $(LINT_FORMAT_FILES)

# Rewrites those files in the house style (.clang-format).
format:
	@clang-format -i $(LINT_FORMAT_FILES)

bench: build
	@bash bench/run $(BUILD)
	@bash bench/run-postgres $(BUILD)

clean:
	rm -rf $(BUILD)
