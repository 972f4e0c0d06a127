/*
 * Entry point of the core-only host MicroPython: `micropython-core SCRIPT
 * [ARGS...]` with MICROPYPATH giving sys.path. Exit status follows the unix
 * port: sys.exit(n) -> n, uncaught exception -> traceback on stderr and 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "py/builtin.h"
#include "py/compile.h"
#include "py/cstack.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/runtime/gchelper.h"

#define HEAP_SIZE (16 * 1024 * 1024)
#define STACK_LIMIT (1024 * 1024)

static void stderr_print_strn(void *env, const char *str, size_t len) {
    (void)env;
    ssize_t r = write(STDERR_FILENO, str, len);
    (void)r;
}

static const mp_print_t stderr_print = {NULL, stderr_print_strn};

/* ---------------------------------------------------------------- HAL */

int mp_hal_stdin_rx_chr(void) {
    unsigned char c;
    ssize_t n = read(STDIN_FILENO, &c, 1);
    return n == 1 ? c : -1;
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(STDOUT_FILENO, str + done, len - done);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        done += (size_t)n;
    }
    return done;
}

void mp_hal_stdout_tx_strn_cooked(const char *str, size_t len) {
    mp_hal_stdout_tx_strn(str, len);
}

void mp_hal_stdout_tx_str(const char *str) {
    mp_hal_stdout_tx_strn(str, strlen(str));
}

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    (void)poll_flags;
    return 0;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

mp_uint_t mp_hal_ticks_ms(void) {
    return (mp_uint_t)(mono_ns() / 1000000u);
}

mp_uint_t mp_hal_ticks_us(void) {
    return (mp_uint_t)(mono_ns() / 1000u);
}

mp_uint_t mp_hal_ticks_cpu(void) {
    return (mp_uint_t)mono_ns();
}

uint64_t mp_hal_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mp_hal_delay_us(mp_uint_t us) {
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void mp_hal_delay_ms(mp_uint_t ms) {
    mp_hal_delay_us(ms * 1000u);
}

/* ---------------------------------------------------------------- runtime hooks */

void gc_collect(void) {
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    gc_collect_end();
}

mp_import_stat_t mp_import_stat(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) {
        return S_ISDIR(st.st_mode) ? MP_IMPORT_STAT_DIR : MP_IMPORT_STAT_FILE;
    }
    return MP_IMPORT_STAT_NO_EXIST;
}

void nlr_jump_fail(void *val) {
    fprintf(stderr, "FATAL: uncaught NLR %p\n", val);
    exit(1);
}

MP_NORETURN void __fatal_error(const char *msg) {
    fprintf(stderr, "FATAL: %s\n", msg);
    exit(1);
}

#ifndef NDEBUG
void MP_WEAK __assert_func(const char *file, int line, const char *func, const char *expr) {
    fprintf(stderr, "Assertion '%s' failed, at file %s:%d\n", expr, file, line);
    __fatal_error("assertion failed");
}
#endif

/* ---------------------------------------------------------------- main */

static int handle_uncaught(mp_obj_base_t *exc) {
    if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(exc->type), MP_OBJ_FROM_PTR(&mp_type_SystemExit))) {
        mp_obj_t val = mp_obj_exception_get_value(MP_OBJ_FROM_PTR(exc));
        mp_int_t code = 0;
        if (val == mp_const_none) {
            return 0;
        }
        if (mp_obj_get_int_maybe(val, &code)) {
            return (int)(code & 0xff);
        }
        mp_obj_print_helper(&stderr_print, val, PRINT_STR);
        stderr_print_strn(NULL, "\n", 1);
        return 1;
    }
    mp_obj_print_exception(&stderr_print, MP_OBJ_FROM_PTR(exc));
    return 1;
}

static void init_path(const char *script) {
    mp_obj_list_init(MP_OBJ_TO_PTR(mp_sys_path), 0);
    /* sys.path[0] is the script's directory, as in CPython and the unix port. */
    const char *slash = strrchr(script, '/');
    mp_obj_list_append(mp_sys_path, slash
        ? mp_obj_new_str_via_qstr(script, slash - script)
        : MP_OBJ_NEW_QSTR(MP_QSTR_));
    const char *p = getenv("MICROPYPATH");
    while (p && *p) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        mp_obj_list_append(mp_sys_path, mp_obj_new_str_via_qstr(p, n));
        if (!end) {
            break;
        }
        p = end + 1;
    }
}

int main(int argc, char **argv) {
    mp_cstack_init_with_sp_here(STACK_LIMIT);
    char *heap = malloc(HEAP_SIZE);
    if (heap == NULL) {
        fprintf(stderr, "cannot allocate heap\n");
        return 1;
    }
    gc_init(heap, heap + HEAP_SIZE);
    mp_init();

    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    init_path(argv[1]);
    mp_obj_list_init(MP_OBJ_TO_PTR(mp_sys_argv), 0);
    for (int i = 1; i < argc; i++) {
        mp_obj_list_append(mp_sys_argv, mp_obj_new_str_via_qstr(argv[i], strlen(argv[i])));
    }

    int status = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_lexer_t *lex = mp_lexer_new_from_file(qstr_from_str(argv[1]));
        qstr source_name = lex->source_name;
        mp_parse_tree_t pt = mp_parse(lex, MP_PARSE_FILE_INPUT);
        mp_obj_t fun = mp_compile(&pt, source_name, false);
        mp_call_function_0(fun);
        nlr_pop();
    } else {
        status = handle_uncaught((mp_obj_base_t *)nlr.ret_val);
    }
    mp_deinit();
    free(heap);
    return status;
}
