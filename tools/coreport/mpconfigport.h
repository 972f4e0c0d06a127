// Core-only host MicroPython for payterm tests: py/ + shared/ from the sdist,
// recqueue compiled in, no extmod. Options are chosen for what host tests
// and the recqueue benchmark need, not for size.
#include <stdint.h>
#include <alloca.h>

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#define MICROPY_ENABLE_GC (1)
#define MICROPY_ENABLE_PYSTACK (0)
#define MICROPY_STACK_CHECK (1)
#define MICROPY_MEM_STATS (1)
#define MICROPY_MALLOC_USES_ALLOCATED_SIZE (1)
#define MICROPY_READER_POSIX (1)
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF (1)
#define MICROPY_EMERGENCY_EXCEPTION_BUF_SIZE (256)
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_DOUBLE)
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_DETAILED)
#define MICROPY_USE_INTERNAL_PRINTF (0)
#define MICROPY_HELPER_REPL (0)
#define MICROPY_ENABLE_COMPILER (1)
#define MICROPY_PERSISTENT_CODE_LOAD (0)
#define MICROPY_EMIT_X64 (0)

// NLR through setjmp/longjmp under ASan: it intercepts longjmp and unpoisons
// the unwound stack, which the hand-written x64 NLR would leave poisoned.
#ifdef PAYTERM_SANITIZE
#define MICROPY_NLR_SETJMP (1)
#define MICROPY_GCREGS_SETJMP (1)
#endif

#define MICROPY_PY_SYS_ARGV (1)
#define MICROPY_PY_SYS_PATH (1)
#define MICROPY_PY_SYS_EXIT (1)
#define MICROPY_PY_SYS_STDFILES (1)
#define MICROPY_PY_SYS_STDIO_BUFFER (1)
#define MICROPY_PY_SYS_PLATFORM "linux"
#define MICROPY_PY_IO (1)
#define MICROPY_PY_BUILTINS_INPUT (0)
#define MICROPY_PY_ARRAY_SLICE_ASSIGN (1)
#define MICROPY_PY_COLLECTIONS_DEQUE (1)
#define MICROPY_PY_COLLECTIONS_DEQUE_ITER (1)
#define MICROPY_PY_COLLECTIONS_DEQUE_SUBSCR (1)
#define MICROPY_PY_MICROPYTHON_RINGIO (1)
#define MICROPY_PY_MICROPYTHON_HEAP_LOCKED (1)
#define MICROPY_PY_GC (1)
#define MICROPY_PY_STRUCT (1)
#define MICROPY_PY_MATH (1)
#define MICROPY_PY_CMATH (0)
#define MICROPY_PY_THREAD (0)

// Everything below lives in extmod/, which the sdist does not ship. `time`
// comes from modtime_core.c and `open` from file_core.c instead.
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
#define MICROPY_PY_ERRNO (1)

#define MICROPY_ALLOC_PATH_MAX (4096)

#define MP_SSIZE_MAX (0x7fffffffffffffffL)
typedef long mp_off_t;

#define MICROPY_HW_BOARD_NAME "host"
#define MICROPY_HW_MCU_NAME "core"
#define MICROPY_BANNER_MACHINE "payterm core-only host"
