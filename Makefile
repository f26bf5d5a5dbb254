# Custos: `make run` serves a demo on 127.0.0.1:8080; `make test` runs every suite.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
PYTHON ?= /usr/bin/python3
CUSTOS = $(BUILD)/custos

.PHONY: all deps build run test unit integration crash-test bench clean

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

# Unit tests, the crash test (a small count) and the black-box integration suite.
test: build
	@echo "== unit tests"
	@$(BUILD)/custos_unit_tests --gtest_brief=1
	@echo "== crash test"
	@bash scripts/crash-test --binary $(CUSTOS) --rounds 3
	@echo "== integration tests (sqlite)"
	@CUSTOS_BINARY=$(abspath $(CUSTOS)) $(PYTHON) -m pytest -q tests/integration

bench: build
	@bash bench/run $(BUILD)

clean:
	rm -rf $(BUILD)
