/*
 * recqueue: MicroPython binding for rq_core (fixed-size record queues).
 *
 * One file builds two ways: as a user C module compiled into the firmware
 * (USER_C_MODULES) and as a natmod (.mpy, MICROPY_ENABLE_DYNRUNTIME). The
 * binding validates every argument before the core touches the queue, takes
 * storage from the heap once in the constructor, and wraps each core call in
 * an atomic section so an IRQ handler may push while the main loop pops.
 * Semantics are pinned by docs/recqueue.md and mirrored by firmware/recqueue.py.
 */
#if defined(MICROPY_ENABLE_DYNRUNTIME)
#include "py/dynruntime.h"
#else
#include "py/runtime.h"
#include "py/mphal.h"
#include "py/objarray.h"
#include "py/objstr.h"
#endif

#include <string.h>
#include "py/smallint.h"

#if defined(MICROPY_ENABLE_DYNRUNTIME)
/* A natmod is linked with no libc, and the compiler turns variable-size
 * copies and fills into calls to these three. They go to the firmware's own
 * through mp_fun_table, which has memmove and memset but no memcpy. memcpy
 * calls memmove by name rather than repeating its body: gcc's identical code
 * folding would otherwise turn memmove into memcpy, which it then inlines as
 * a forward copy (x86-64 -Os), breaking the overlapping DeadlineQueue shift.
 * Firmware builds use the libc's. */
void *memmove(void *dst, const void *src, size_t n) {
    return mp_fun_table.memmove_(dst, src, n);
}
void *memcpy(void *dst, const void *src, size_t n) {
    return memmove(dst, src, n);
}
void *memset(void *s, int c, size_t n) {
    return mp_fun_table.memset_(s, c, n);
}
#endif
/* The core is compiled into this translation unit so push/pop inline into
 * the method bodies: for 16-byte records the call overhead is as large as
 * the work. rq_core.c still builds on its own (RISC-V check, other hosts). */
#include "rq_core.c"

#if defined(MICROPY_ENABLE_DYNRUNTIME)
/* The dynamic runtime has no atomic-section hook: a natmod queue is safe for
 * the main loop and asyncio tasks, not for hard IRQ handlers. */
#define RQ_ATOMIC_BEGIN() (0)
#define RQ_ATOMIC_END(s) ((void)(s))
#else
#define RQ_ATOMIC_BEGIN() MICROPY_BEGIN_ATOMIC_SECTION()
#define RQ_ATOMIC_END(s) MICROPY_END_ATOMIC_SECTION(s)
#endif

/* Guard bytes around storage let test builds catch writes past the end of
 * the queue's storage, which ASan cannot see inside the GC heap. */
#ifndef RECQUEUE_GUARDS
#define RECQUEUE_GUARDS (0)
#endif
#if RECQUEUE_GUARDS
#define RQ_GUARD (16)
#else
#define RQ_GUARD (0)
#endif
#define RQ_GUARD_BYTE (0xa5)

/* Upper bound on storage so capacity * item_size can never overflow. */
#define RQ_MAX_BYTES ((size_t)1 << 24)

#define RQ_TICKS_MASK ((rq_tick_t)(MICROPY_PY_TIME_TICKS_PERIOD - 1))

typedef struct _rq_ring_obj_t {
    mp_obj_base_t base;
    uint8_t *mem;
    size_t mem_len;
    rq_ring_t q;
} rq_ring_obj_t;

typedef struct _rq_dl_obj_t {
    mp_obj_base_t base;
    uint8_t *mem;
    size_t mem_len;
    rq_dl_t q;
} rq_dl_obj_t;

/* ---------------------------------------------------------------- argument checks */

/* msg is an MP_ERROR_TEXT() made at the call site: with ROM text
 * compression MP_ERROR_TEXT() must see the string literal, or it compiles to
 * a strcmp() against every compressed message of the firmware. */
static mp_int_t rq_get_int(mp_obj_t o, mp_rom_error_text_t msg) {
    if (!mp_obj_is_int(o)) {
        mp_raise_TypeError(msg);
    }
    return mp_obj_get_int(o);
}

static size_t rq_get_count(mp_obj_t o) {
    mp_int_t n = rq_get_int(o, MP_ERROR_TEXT("n must be an int"));
    if (n < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("n must be >= 0"));
    }
    return (size_t)n;
}

/* GCC and clang, which every MicroPython port builds with. */
#define RQ_NOINLINE __attribute__((noinline))
#define RQ_NORETURN __attribute__((noreturn))

/* bytes and bytearray are read directly: going through the type's buffer
 * slot costs as much as the copy for small records, and these two types are
 * what firmware passes on hot paths. */
#if !defined(MICROPY_ENABLE_DYNRUNTIME)
static inline bool rq_fast_buf(mp_obj_t o, mp_buffer_info_t *bi, bool write) {
    if (!mp_obj_is_obj(o)) {
        return false;
    }
    const mp_obj_type_t *t = ((mp_obj_base_t *)MP_OBJ_TO_PTR(o))->type;
    if (!write && t == &mp_type_bytes) {
        /* a bytes object (interned ones are qstrs, not objects) */
        mp_obj_str_t *b = MP_OBJ_TO_PTR(o);
        bi->buf = (void *)b->data;
        bi->len = b->len;
        return true;
    }
    if (t == &mp_type_bytearray) {
        mp_obj_array_t *a = MP_OBJ_TO_PTR(o);
        bi->buf = a->items;
        bi->len = a->len;
        return true;
    }
    return false;
}
#else
#define rq_fast_buf(o, bi, write) (false)
#endif

static RQ_NOINLINE void rq_read_buf(mp_obj_t o, mp_buffer_info_t *bi) {
    if (rq_fast_buf(o, bi, false)) {
        return;
    }
    if (!mp_get_buffer(o, bi, MP_BUFFER_READ)) {
        mp_raise_TypeError(MP_ERROR_TEXT("object with buffer protocol required"));
    }
}

static RQ_NOINLINE void rq_write_buf(mp_obj_t o, mp_buffer_info_t *bi) {
    if (rq_fast_buf(o, bi, true)) {
        return;
    }
    if (!mp_get_buffer(o, bi, MP_BUFFER_WRITE)) {
        if (mp_get_buffer(o, bi, MP_BUFFER_READ)) {
            mp_raise_TypeError(MP_ERROR_TEXT("buffer is read-only"));
        }
        mp_raise_TypeError(MP_ERROR_TEXT("object with buffer protocol required"));
    }
}

static RQ_NORETURN RQ_NOINLINE void rq_size_mismatch(void) {
    mp_raise_ValueError(MP_ERROR_TEXT("record size mismatch"));
}

static inline void rq_exact(const mp_buffer_info_t *bi, size_t isz) {
    if (bi->len != isz) {
        rq_size_mismatch();
    }
}

/* One record of exactly item_size bytes, to read (write=false) or to fill.
 * The bytes/bytearray case is inlined into the per-record methods with the
 * size check folded in, so the pointer stays in a register; anything else
 * takes the buffer protocol, out of line. Errors and their order are the
 * same on both paths. */
static RQ_NOINLINE void *rq_record_slow(mp_obj_t o, size_t isz, bool write) {
    mp_buffer_info_t bi;
    if (write) {
        rq_write_buf(o, &bi);
    } else {
        rq_read_buf(o, &bi);
    }
    rq_exact(&bi, isz);
    return bi.buf;
}

static inline void *rq_record(mp_obj_t o, size_t isz, bool write) {
    mp_buffer_info_t bi;
    if (rq_fast_buf(o, &bi, write)) {
        rq_exact(&bi, isz);
        return bi.buf;
    }
    return rq_record_slow(o, isz, write);
}

static void rq_at_least(const mp_buffer_info_t *bi, size_t n, size_t isz) {
    if (n > bi->len / isz) {
        mp_raise_ValueError(MP_ERROR_TEXT("buffer too small"));
    }
}

static void rq_shape(mp_obj_t cap_in, mp_obj_t isz_in, size_t *cap, size_t *isz) {
    mp_int_t c = rq_get_int(cap_in, MP_ERROR_TEXT("capacity must be an int"));
    mp_int_t s = rq_get_int(isz_in, MP_ERROR_TEXT("item_size must be an int"));
    if (c <= 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("capacity must be > 0"));
    }
    if (s <= 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("item_size must be > 0"));
    }
    if ((size_t)c > RQ_MAX_BYTES / (size_t)s) {
        mp_raise_ValueError(MP_ERROR_TEXT("queue too large"));
    }
    *cap = (size_t)c;
    *isz = (size_t)s;
}

static uint8_t *rq_alloc(size_t payload, size_t *mem_len) {
    *mem_len = payload + 2 * RQ_GUARD;
    uint8_t *mem = m_malloc(*mem_len);
    memset(mem, RQ_GUARD_BYTE, *mem_len);
    memset(mem + RQ_GUARD, 0, payload);
    return mem;
}

#if RECQUEUE_GUARDS
static mp_obj_t rq_guard_check(const uint8_t *mem, size_t mem_len) {
    for (size_t i = 0; i < RQ_GUARD; i++) {
        if (mem[i] != RQ_GUARD_BYTE || mem[mem_len - 1 - i] != RQ_GUARD_BYTE) {
            return mp_const_false;
        }
    }
    return mp_const_true;
}
#endif

static void rq_raise_restore(int err) {
    switch (err) {
        case RQ_E_TRUNCATED:
            mp_raise_ValueError(MP_ERROR_TEXT("snapshot truncated"));
        case RQ_E_CRC:
            mp_raise_ValueError(MP_ERROR_TEXT("snapshot CRC mismatch"));
        case RQ_E_FORMAT:
            mp_raise_ValueError(MP_ERROR_TEXT("not a recqueue snapshot"));
        case RQ_E_ITEM_SIZE:
            mp_raise_ValueError(MP_ERROR_TEXT("snapshot item_size mismatch"));
        case RQ_E_LENGTH:
            mp_raise_ValueError(MP_ERROR_TEXT("snapshot length mismatch"));
        default:
            mp_raise_ValueError(MP_ERROR_TEXT("snapshot larger than queue"));
    }
}

static mp_obj_t rq_stats_tuple(const rq_stats_t *st) {
    mp_obj_t items[3] = {
        mp_obj_new_int_from_uint(st->hw),
        mp_obj_new_int_from_uint(st->pushes),
        mp_obj_new_int_from_uint(st->drops),
    };
    return mp_obj_new_tuple(3, items);
}

/* ---------------------------------------------------------------- RecordQueue */

#if defined(MICROPY_ENABLE_DYNRUNTIME)
/* Filled in by mpy_init(). Not static: mpy_ld refuses static BSS. */
mp_obj_full_type_t rq_ring_type;
mp_obj_full_type_t rq_dl_type;
#define RQ_RING_TYPE ((mp_obj_type_t *)&rq_ring_type)
#define RQ_DL_TYPE ((mp_obj_type_t *)&rq_dl_type)
#else
extern const mp_obj_type_t recqueue_RecordQueue_type;
extern const mp_obj_type_t recqueue_DeadlineQueue_type;
#define RQ_RING_TYPE (&recqueue_RecordQueue_type)
#define RQ_DL_TYPE (&recqueue_DeadlineQueue_type)
#endif

/* Method objects for the per-record hot paths. In firmware builds each is an
 * object of its own small callable type (flagged like MicroPython's built-in
 * functions, so binding, type-checking of self on class access and error
 * messages are the same) whose call slot checks the argument count inline and
 * runs the method body directly. A standard MP_DEFINE_CONST_FUN_OBJ_N object
 * costs an out-of-line argument check plus a second indirect call on every
 * push/pop: about 30 instructions, a third of the work for a 16-byte record.
 * The natmod build keeps the standard objects. */
#if !defined(MICROPY_ENABLE_DYNRUNTIME)
#define RQ_HOT_METHOD(obj, fn, n, ...) \
    static mp_obj_t obj##_call(mp_obj_t self_in, size_t n_args, size_t n_kw, const mp_obj_t *args) { \
        if (n_args != n || n_kw != 0) { \
            mp_arg_check_num(n_args, n_kw, n, n, false); \
        } \
        return fn(__VA_ARGS__); \
    } \
    static MP_DEFINE_CONST_OBJ_TYPE(obj##_type, MP_QSTR_function, \
    MP_TYPE_FLAG_BINDS_SELF | MP_TYPE_FLAG_BUILTIN_FUN, call, obj##_call); \
    static const mp_obj_base_t obj = { &obj##_type }
#define RQ_HOT_METHOD_2(obj, fn) RQ_HOT_METHOD(obj, fn, 2, args[0], args[1])
#define RQ_HOT_METHOD_3(obj, fn) RQ_HOT_METHOD(obj, fn, 3, args[0], args[1], args[2])
#else
#define RQ_HOT_METHOD_2(obj, fn) static MP_DEFINE_CONST_FUN_OBJ_2(obj, fn)
#define RQ_HOT_METHOD_3(obj, fn) static MP_DEFINE_CONST_FUN_OBJ_3(obj, fn)
#endif

static mp_obj_t py_ring_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 2, 3, true);
    size_t cap, isz;
    rq_shape(args[0], args[1], &cap, &isz);
    int overwrite = n_args > 2 ? mp_obj_is_true(args[2]) : 0;
    for (size_t i = 0; i < n_kw; i++) {
        if (args[n_args + 2 * i] != MP_OBJ_NEW_QSTR(MP_QSTR_overwrite)) {
            mp_raise_TypeError(MP_ERROR_TEXT("unexpected keyword argument"));
        }
        overwrite = mp_obj_is_true(args[n_args + 2 * i + 1]);
    }
    rq_ring_obj_t *self = mp_obj_malloc(rq_ring_obj_t, type);
    self->mem = rq_alloc(cap * isz, &self->mem_len);
    rq_ring_init(&self->q, self->mem + RQ_GUARD, cap, isz, overwrite);
    return MP_OBJ_FROM_PTR(self);
}

static mp_obj_t py_ring_push(mp_obj_t self_in, mp_obj_t buf_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const uint8_t *rec = rq_record(buf_in, self->q.isz, false);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int ok = rq_ring_push_one(&self->q, rec);
    RQ_ATOMIC_END(s);
    return mp_obj_new_bool(ok);
}
RQ_HOT_METHOD_2(py_ring_push_obj, py_ring_push);

static mp_obj_t py_ring_pop_into(mp_obj_t self_in, mp_obj_t buf_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    uint8_t *rec = rq_record(buf_in, self->q.isz, true);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int ok = rq_ring_pop_one(&self->q, rec);
    RQ_ATOMIC_END(s);
    return mp_obj_new_bool(ok);
}
RQ_HOT_METHOD_2(py_ring_pop_into_obj, py_ring_pop_into);

static mp_obj_t py_ring_peek_into(mp_obj_t self_in, mp_obj_t buf_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    uint8_t *rec = rq_record(buf_in, self->q.isz, true);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int ok = rq_ring_peek_one(&self->q, rec);
    RQ_ATOMIC_END(s);
    return mp_obj_new_bool(ok);
}
RQ_HOT_METHOD_2(py_ring_peek_into_obj, py_ring_peek_into);

static mp_obj_t py_ring_push_many(mp_obj_t self_in, mp_obj_t buf_in, mp_obj_t n_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    rq_read_buf(buf_in, &bi);
    size_t n = rq_get_count(n_in);
    rq_at_least(&bi, n, self->q.isz);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    size_t done = rq_ring_push_many(&self->q, bi.buf, n);
    RQ_ATOMIC_END(s);
    return mp_obj_new_int_from_uint(done);
}
static MP_DEFINE_CONST_FUN_OBJ_3(py_ring_push_many_obj, py_ring_push_many);

static mp_obj_t py_ring_pop_many_into(mp_obj_t self_in, mp_obj_t buf_in, mp_obj_t n_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    rq_write_buf(buf_in, &bi);
    size_t n = rq_get_count(n_in);
    rq_at_least(&bi, n, self->q.isz);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    size_t done = rq_ring_pop_many(&self->q, bi.buf, n);
    RQ_ATOMIC_END(s);
    return mp_obj_new_int_from_uint(done);
}
static MP_DEFINE_CONST_FUN_OBJ_3(py_ring_pop_many_into_obj, py_ring_pop_many_into);

static mp_obj_t py_ring_find(mp_obj_t self_in, mp_obj_t off_in, mp_obj_t key_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_int_t off = rq_get_int(off_in, MP_ERROR_TEXT("offset must be an int"));
    mp_buffer_info_t bi;
    rq_read_buf(key_in, &bi);
    if (off < 0 || (size_t)off > self->q.isz || bi.len > self->q.isz - (size_t)off) {
        mp_raise_ValueError(MP_ERROR_TEXT("key outside record"));
    }
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    intptr_t i = rq_ring_find(&self->q, (size_t)off, bi.buf, bi.len);
    RQ_ATOMIC_END(s);
    return mp_obj_new_int(i);
}
static MP_DEFINE_CONST_FUN_OBJ_3(py_ring_find_obj, py_ring_find);

static mp_obj_t py_ring_free(mp_obj_t self_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_int_from_uint(self->q.cap - self->q.count);
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_ring_free_obj, py_ring_free);

static mp_obj_t py_ring_clear(mp_obj_t self_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    rq_ring_clear(&self->q);
    RQ_ATOMIC_END(s);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_ring_clear_obj, py_ring_clear);

static mp_obj_t py_ring_stats(mp_obj_t self_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    rq_stats_t st = self->q.st;
    return rq_stats_tuple(&st);
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_ring_stats_obj, py_ring_stats);

static mp_obj_t py_ring_snapshot_size(mp_obj_t self_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_int_from_uint(rq_ring_snapshot_size(&self->q));
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_ring_snapshot_size_obj, py_ring_snapshot_size);

static mp_obj_t py_ring_snapshot_into(mp_obj_t self_in, mp_obj_t buf_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    rq_write_buf(buf_in, &bi);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    size_t n = rq_ring_snapshot(&self->q, bi.buf, bi.len);
    RQ_ATOMIC_END(s);
    if (n == 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("buffer too small"));
    }
    return mp_obj_new_int_from_uint(n);
}
static MP_DEFINE_CONST_FUN_OBJ_2(py_ring_snapshot_into_obj, py_ring_snapshot_into);

static mp_obj_t py_ring_restore(mp_obj_t self_in, mp_obj_t buf_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    rq_read_buf(buf_in, &bi);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int err = rq_ring_restore(&self->q, bi.buf, bi.len);
    RQ_ATOMIC_END(s);
    if (err != RQ_OK) {
        rq_raise_restore(err);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(py_ring_restore_obj, py_ring_restore);

static mp_obj_t py_ring_unary_op(mp_unary_op_t op, mp_obj_t self_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    switch (op) {
        case MP_UNARY_OP_BOOL:
            return mp_obj_new_bool(self->q.count != 0);
        case MP_UNARY_OP_LEN:
            return MP_OBJ_NEW_SMALL_INT(self->q.count);
        default:
            return MP_OBJ_NULL;
    }
}

#if RECQUEUE_GUARDS
static mp_obj_t py_ring_guard_ok(mp_obj_t self_in) {
    rq_ring_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return rq_guard_check(self->mem, self->mem_len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_ring_guard_ok_obj, py_ring_guard_ok);
#endif

/* ---------------------------------------------------------------- DeadlineQueue */

static mp_obj_t py_dl_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 2, 2, false);
    size_t cap, isz;
    rq_shape(args[0], args[1], &cap, &isz);
    rq_dl_obj_t *self = mp_obj_malloc(rq_dl_obj_t, type);
    /* Due times first so they stay word-aligned whatever item_size is. */
    size_t due_bytes = cap * sizeof(rq_tick_t);
    self->mem = rq_alloc(due_bytes + cap * isz + RQ_GUARD, &self->mem_len);
    /* With guards on, RQ_GUARD extra bytes separate the two arrays. */
    uint8_t *base = self->mem + RQ_GUARD;
    rq_dl_init(&self->q, base + due_bytes + RQ_GUARD, (rq_tick_t *)(void *)base, cap, isz, RQ_TICKS_MASK);
    #if RECQUEUE_GUARDS
    memset(base + due_bytes, RQ_GUARD_BYTE, RQ_GUARD);
    #endif
    return MP_OBJ_FROM_PTR(self);
}

static mp_obj_t py_dl_push(mp_obj_t self_in, mp_obj_t due_in, mp_obj_t buf_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (!mp_obj_is_int(due_in)) {
        mp_raise_TypeError(MP_ERROR_TEXT("due must be an int"));
    }
    rq_tick_t due = (rq_tick_t)mp_obj_get_int_truncated(due_in);
    const uint8_t *rec = rq_record(buf_in, self->q.isz, false);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int ok = rq_dl_push(&self->q, due, rec);
    RQ_ATOMIC_END(s);
    return mp_obj_new_bool(ok);
}
RQ_HOT_METHOD_3(py_dl_push_obj, py_dl_push);

static mp_obj_t py_dl_pop_due_into(mp_obj_t self_in, mp_obj_t now_in, mp_obj_t buf_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (!mp_obj_is_int(now_in)) {
        mp_raise_TypeError(MP_ERROR_TEXT("now must be an int"));
    }
    rq_tick_t now = (rq_tick_t)mp_obj_get_int_truncated(now_in);
    uint8_t *rec = rq_record(buf_in, self->q.isz, true);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int ok = rq_dl_pop_due(&self->q, now, rec);
    RQ_ATOMIC_END(s);
    return mp_obj_new_bool(ok);
}
RQ_HOT_METHOD_3(py_dl_pop_due_into_obj, py_dl_pop_due_into);

static mp_obj_t py_dl_next_due(mp_obj_t self_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    rq_tick_t due;
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int ok = rq_dl_next_due(&self->q, &due);
    RQ_ATOMIC_END(s);
    return ok ? mp_obj_new_int_from_uint(due) : mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_dl_next_due_obj, py_dl_next_due);

static mp_obj_t py_dl_free(mp_obj_t self_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_int_from_uint(self->q.cap - self->q.count);
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_dl_free_obj, py_dl_free);

static mp_obj_t py_dl_clear(mp_obj_t self_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    rq_dl_clear(&self->q);
    RQ_ATOMIC_END(s);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_dl_clear_obj, py_dl_clear);

static mp_obj_t py_dl_stats(mp_obj_t self_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    rq_stats_t st = self->q.st;
    return rq_stats_tuple(&st);
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_dl_stats_obj, py_dl_stats);

static mp_obj_t py_dl_snapshot_size(mp_obj_t self_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_int_from_uint(rq_dl_snapshot_size(&self->q));
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_dl_snapshot_size_obj, py_dl_snapshot_size);

static mp_obj_t py_dl_snapshot_into(mp_obj_t self_in, mp_obj_t buf_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    rq_write_buf(buf_in, &bi);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    size_t n = rq_dl_snapshot(&self->q, bi.buf, bi.len);
    RQ_ATOMIC_END(s);
    if (n == 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("buffer too small"));
    }
    return mp_obj_new_int_from_uint(n);
}
static MP_DEFINE_CONST_FUN_OBJ_2(py_dl_snapshot_into_obj, py_dl_snapshot_into);

static mp_obj_t py_dl_restore(mp_obj_t self_in, mp_obj_t buf_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    rq_read_buf(buf_in, &bi);
    mp_uint_t s = RQ_ATOMIC_BEGIN();
    int err = rq_dl_restore(&self->q, bi.buf, bi.len);
    RQ_ATOMIC_END(s);
    if (err != RQ_OK) {
        rq_raise_restore(err);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(py_dl_restore_obj, py_dl_restore);

static mp_obj_t py_dl_unary_op(mp_unary_op_t op, mp_obj_t self_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    switch (op) {
        case MP_UNARY_OP_BOOL:
            return mp_obj_new_bool(self->q.count != 0);
        case MP_UNARY_OP_LEN:
            return MP_OBJ_NEW_SMALL_INT(self->q.count);
        default:
            return MP_OBJ_NULL;
    }
}

#if RECQUEUE_GUARDS
static mp_obj_t py_dl_guard_ok(mp_obj_t self_in) {
    rq_dl_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t due_bytes = self->q.cap * sizeof(rq_tick_t);
    const uint8_t *mid = self->mem + RQ_GUARD + due_bytes;
    for (size_t i = 0; i < RQ_GUARD; i++) {
        if (mid[i] != RQ_GUARD_BYTE) {
            return mp_const_false;
        }
    }
    return rq_guard_check(self->mem, self->mem_len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(py_dl_guard_ok_obj, py_dl_guard_ok);
#endif

/* ---------------------------------------------------------------- hot method lookup */

#if !defined(MICROPY_ENABLE_DYNRUNTIME)
/* `q.push(rec)` looks `push` up on every call. The locals dict lookup (hash
 * and map cache probe) plus the generic member conversion cost about as many
 * instructions as pushing a 16-byte record, so the per-record methods are
 * answered here first, by qstr compare, with exactly what the locals dict
 * lookup gives: the method object and self. Every other name, and every
 * store or delete, goes on to the locals dict and the default handling. */
static void py_ring_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest) {
    if (dest[0] == MP_OBJ_NULL) {
        if (attr == MP_QSTR_push) {
            dest[0] = MP_OBJ_FROM_PTR(&py_ring_push_obj);
            dest[1] = self_in;
            return;
        }
        if (attr == MP_QSTR_pop_into) {
            dest[0] = MP_OBJ_FROM_PTR(&py_ring_pop_into_obj);
            dest[1] = self_in;
            return;
        }
        dest[1] = MP_OBJ_SENTINEL; /* not handled: continue in locals_dict */
    }
}

static void py_dl_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest) {
    if (dest[0] == MP_OBJ_NULL) {
        if (attr == MP_QSTR_push) {
            dest[0] = MP_OBJ_FROM_PTR(&py_dl_push_obj);
            dest[1] = self_in;
            return;
        }
        if (attr == MP_QSTR_pop_due_into) {
            dest[0] = MP_OBJ_FROM_PTR(&py_dl_pop_due_into_obj);
            dest[1] = self_in;
            return;
        }
        dest[1] = MP_OBJ_SENTINEL;
    }
}
#endif

/* ---------------------------------------------------------------- registration */

/* X-macros so the static (firmware) and runtime-built (natmod) tables list
 * the same methods. Each entry spells its MP_QSTR_ name out in full: the
 * natmod build finds qstrs by scanning the source text (mpy_ld), and a name
 * pasted together with ## would be invisible to it. */
#if RECQUEUE_GUARDS
#define RQ_RING_GUARD_METHOD(X) X(MP_QSTR__guard_ok, py_ring_guard_ok_obj)
#define RQ_DL_GUARD_METHOD(X) X(MP_QSTR__guard_ok, py_dl_guard_ok_obj)
#else
#define RQ_RING_GUARD_METHOD(X)
#define RQ_DL_GUARD_METHOD(X)
#endif

#define RQ_RING_METHODS(X) \
    X(MP_QSTR_push, py_ring_push_obj) \
    X(MP_QSTR_pop_into, py_ring_pop_into_obj) \
    X(MP_QSTR_peek_into, py_ring_peek_into_obj) \
    X(MP_QSTR_push_many, py_ring_push_many_obj) \
    X(MP_QSTR_pop_many_into, py_ring_pop_many_into_obj) \
    X(MP_QSTR_find, py_ring_find_obj) \
    X(MP_QSTR_free, py_ring_free_obj) \
    X(MP_QSTR_clear, py_ring_clear_obj) \
    X(MP_QSTR_stats, py_ring_stats_obj) \
    X(MP_QSTR_snapshot_size, py_ring_snapshot_size_obj) \
    X(MP_QSTR_snapshot_into, py_ring_snapshot_into_obj) \
    X(MP_QSTR_restore, py_ring_restore_obj) \
    RQ_RING_GUARD_METHOD(X)

#define RQ_DL_METHODS(X) \
    X(MP_QSTR_push, py_dl_push_obj) \
    X(MP_QSTR_pop_due_into, py_dl_pop_due_into_obj) \
    X(MP_QSTR_next_due, py_dl_next_due_obj) \
    X(MP_QSTR_free, py_dl_free_obj) \
    X(MP_QSTR_clear, py_dl_clear_obj) \
    X(MP_QSTR_stats, py_dl_stats_obj) \
    X(MP_QSTR_snapshot_size, py_dl_snapshot_size_obj) \
    X(MP_QSTR_snapshot_into, py_dl_snapshot_into_obj) \
    X(MP_QSTR_restore, py_dl_restore_obj) \
    RQ_DL_GUARD_METHOD(X)

#if !defined(MICROPY_ENABLE_DYNRUNTIME)

#define RQ_ROM_ENTRY(name, obj) { MP_ROM_QSTR(name), MP_ROM_PTR(&obj) },

static const mp_rom_map_elem_t rq_ring_locals_table[] = {
    RQ_RING_METHODS(RQ_ROM_ENTRY)
};
static MP_DEFINE_CONST_DICT(rq_ring_locals, rq_ring_locals_table);

static const mp_rom_map_elem_t rq_dl_locals_table[] = {
    RQ_DL_METHODS(RQ_ROM_ENTRY)
};
static MP_DEFINE_CONST_DICT(rq_dl_locals, rq_dl_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(
    recqueue_RecordQueue_type,
    MP_QSTR_RecordQueue,
    MP_TYPE_FLAG_NONE,
    make_new, py_ring_make_new,
    unary_op, py_ring_unary_op,
    attr, py_ring_attr,
    locals_dict, &rq_ring_locals
    );

MP_DEFINE_CONST_OBJ_TYPE(
    recqueue_DeadlineQueue_type,
    MP_QSTR_DeadlineQueue,
    MP_TYPE_FLAG_NONE,
    make_new, py_dl_make_new,
    unary_op, py_dl_unary_op,
    attr, py_dl_attr,
    locals_dict, &rq_dl_locals
    );

static const mp_rom_map_elem_t recqueue_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_recqueue) },
    { MP_ROM_QSTR(MP_QSTR_RecordQueue), MP_ROM_PTR(&recqueue_RecordQueue_type) },
    { MP_ROM_QSTR(MP_QSTR_DeadlineQueue), MP_ROM_PTR(&recqueue_DeadlineQueue_type) },
    { MP_ROM_QSTR(MP_QSTR_IMPL), MP_ROM_QSTR(MP_QSTR_c) },
};
static MP_DEFINE_CONST_DICT(recqueue_globals, recqueue_globals_table);

const mp_obj_module_t recqueue_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&recqueue_globals,
};

MP_REGISTER_MODULE(MP_QSTR_recqueue, recqueue_user_cmodule);

#else /* natmod */

#define RQ_COUNT(name, obj) +1
#define RQ_DYN_ENTRY(name, obj) table[i++] = (mp_map_elem_t) { MP_OBJ_NEW_QSTR(name), MP_OBJ_FROM_PTR(&obj) };

/* Filled in by mpy_init(); not static (BSS), as the types above. */
mp_map_elem_t rq_ring_locals_table[0 RQ_RING_METHODS(RQ_COUNT)];
static MP_DEFINE_CONST_DICT(rq_ring_locals, rq_ring_locals_table);
mp_map_elem_t rq_dl_locals_table[0 RQ_DL_METHODS(RQ_COUNT)];
static MP_DEFINE_CONST_DICT(rq_dl_locals, rq_dl_locals_table);

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY

    size_t i = 0;
    mp_map_elem_t *table = rq_ring_locals_table;
    RQ_RING_METHODS(RQ_DYN_ENTRY)
    rq_ring_type.base.type = (void *)&mp_type_type;
    rq_ring_type.flags = MP_TYPE_FLAG_NONE;
    rq_ring_type.name = MP_QSTR_RecordQueue;
    MP_OBJ_TYPE_SET_SLOT(&rq_ring_type, make_new, py_ring_make_new, 0);
    MP_OBJ_TYPE_SET_SLOT(&rq_ring_type, unary_op, py_ring_unary_op, 1);
    MP_OBJ_TYPE_SET_SLOT(&rq_ring_type, locals_dict, (void *)&rq_ring_locals, 2);
    mp_store_global(MP_QSTR_RecordQueue, MP_OBJ_FROM_PTR(&rq_ring_type));

    i = 0;
    table = rq_dl_locals_table;
    RQ_DL_METHODS(RQ_DYN_ENTRY)
    rq_dl_type.base.type = (void *)&mp_type_type;
    rq_dl_type.flags = MP_TYPE_FLAG_NONE;
    rq_dl_type.name = MP_QSTR_DeadlineQueue;
    MP_OBJ_TYPE_SET_SLOT(&rq_dl_type, make_new, py_dl_make_new, 0);
    MP_OBJ_TYPE_SET_SLOT(&rq_dl_type, unary_op, py_dl_unary_op, 1);
    MP_OBJ_TYPE_SET_SLOT(&rq_dl_type, locals_dict, (void *)&rq_dl_locals, 2);
    mp_store_global(MP_QSTR_DeadlineQueue, MP_OBJ_FROM_PTR(&rq_dl_type));

    mp_store_global(MP_QSTR_IMPL, MP_OBJ_NEW_QSTR(MP_QSTR_c));

    MP_DYNRUNTIME_INIT_EXIT
}

#endif
