// 32-bit RISC-V configuration for `make riscv-check`: the C module is
// compiled (not linked or run) the way an ESP32-C3 firmware build compiles
// it: ilp32, 32-bit mp_int_t, object representation A, ticks period 2**30,
// setjmp NLR, single-precision float, MPZ long ints, normal error reporting,
// atomic sections through port functions, ROM text compression as the
// Makefile asks. Only py/ is configured: the sdist ships no extmod/.
#include <stdint.h>

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#define MICROPY_OBJ_REPR (MICROPY_OBJ_REPR_A)
#define MICROPY_NLR_SETJMP (1)
#define MICROPY_GCREGS_SETJMP (1)
#define MICROPY_ENABLE_GC (1)
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_NORMAL)
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF (1)
#define MICROPY_EMERGENCY_EXCEPTION_BUF_SIZE (256)
#define MICROPY_HELPER_REPL (0)
#define MICROPY_PY_THREAD (0)
#define MICROPY_PY_MICROPYTHON_HEAP_LOCKED (1)
#define MICROPY_PY_SYS_PLATFORM "esp32"

// extmod/ (not in the sdist)
#define MICROPY_PY_TIME (0)
#define MICROPY_PY_OS (0)
#define MICROPY_PY_SELECT (0)
#define MICROPY_PY_ASYNCIO (0)
#define MICROPY_PY_BINASCII (0)
#define MICROPY_PY_JSON (0)
#define MICROPY_PY_RE (0)
#define MICROPY_PY_HEAPQ (0)
#define MICROPY_PY_HASHLIB (0)
#define MICROPY_PY_RANDOM (0)
#define MICROPY_PY_DEFLATE (0)
#define MICROPY_PY_PLATFORM (0)
#define MICROPY_PY_MACHINE (0)
#define MICROPY_PY_NETWORK (0)
#define MICROPY_PY_SOCKET (0)
#define MICROPY_PY_FRAMEBUF (0)
#define MICROPY_PY_UCTYPES (0)
#define MICROPY_PY_VFS (0)
#define MICROPY_VFS (0)

#define MICROPY_HW_BOARD_NAME "rv32-check"
#define MICROPY_HW_MCU_NAME "rv32imc"

#define MP_SSIZE_MAX (0x7fffffff)
typedef long mp_off_t;
#include <sys/types.h>

// 32-bit: a C module that assumes a 64-bit mp_int_t or pointer fails here.
_Static_assert(sizeof(void *) == 4, "rv32 config needs an ilp32 compiler");
