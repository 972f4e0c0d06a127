/*
 * recqueue core algorithms; see rq_core.h. No allocation and no libc headers
 * (memcpy/memmove come from compiler builtins), so it builds
 * freestanding, e.g. with a bare rv32imc cross compiler.
 */
#include "rq_core.h"

#ifndef memcpy
#define memcpy __builtin_memcpy
#endif
#ifndef memmove
#define memmove __builtin_memmove
#endif

/* find() compares short keys; a loop avoids needing memcmp from any libc. */
static int rq_equal(const uint8_t *a, const uint8_t *b, size_t n) {
    while (n--) {
        if (*a++ != *b++) {
            return 0;
        }
    }
    return 1;
}

/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32): a 16-entry nibble table is
 * a fair trade of 64 bytes of flash against 8x fewer shift rounds. */
static const uint32_t rq_crc_tab[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu,
    0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
    0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
    0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
};

uint32_t rq_crc32(uint32_t crc, const uint8_t *buf, size_t len) {
    crc = ~crc;
    while (len--) {
        crc ^= *buf++;
        crc = (crc >> 4) ^ rq_crc_tab[crc & 15];
        crc = (crc >> 4) ^ rq_crc_tab[crc & 15];
    }
    return ~crc;
}

/* Same arithmetic as time.ticks_diff(a, b) for a power-of-two period. */
intptr_t rq_ticks_diff(rq_tick_t a, rq_tick_t b, rq_tick_t period_mask) {
    rq_tick_t half = (period_mask >> 1) + 1;
    return (intptr_t)((a - b + half) & period_mask) - (intptr_t)half;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Due times go out as 8 bytes whatever the word size, so a snapshot made
 * on the host restores on a 32-bit device (after masking to its period). */
static void put_due(uint8_t *p, rq_tick_t v) {
    for (size_t i = 0; i < RQ_DUE_BYTES; i++) {
        p[i] = i < sizeof(v) ? (uint8_t)(v >> (8 * i)) : 0;
    }
}

static rq_tick_t get_due(const uint8_t *p) {
    rq_tick_t v = 0;
    for (size_t i = 0; i < RQ_DUE_BYTES && i < sizeof(v); i++) {
        v |= (rq_tick_t)p[i] << (8 * i);
    }
    return v;
}

static void stats_grow(rq_stats_t *st, size_t count) {
    if (count > st->hw) {
        st->hw = count;
    }
}

static void snap_header(uint8_t *out, int kind, size_t isz, size_t count, size_t cap) {
    out[0] = 'R';
    out[1] = 'Q';
    out[2] = RQ_SNAP_VERSION;
    out[3] = (uint8_t)kind;
    put_u32(out + 4, (uint32_t)isz);
    put_u32(out + 8, (uint32_t)count);
    put_u32(out + 12, (uint32_t)cap);
}

/* Checks a snapshot without touching any queue; *count gets its record count. */
static int snap_check(const uint8_t *in, size_t in_len, int kind, size_t isz, size_t rec, size_t cap, size_t *count) {
    if (in_len < RQ_SNAP_HEADER + RQ_SNAP_TRAILER) {
        return RQ_E_TRUNCATED;
    }
    if (rq_crc32(0, in, in_len - RQ_SNAP_TRAILER) != get_u32(in + in_len - RQ_SNAP_TRAILER)) {
        return RQ_E_CRC;
    }
    if (in[0] != 'R' || in[1] != 'Q' || in[2] != RQ_SNAP_VERSION || in[3] != kind) {
        return RQ_E_FORMAT;
    }
    if (get_u32(in + 4) != isz) {
        return RQ_E_ITEM_SIZE;
    }
    size_t n = get_u32(in + 8);
    if ((in_len - RQ_SNAP_HEADER - RQ_SNAP_TRAILER) / rec != n
        || (in_len - RQ_SNAP_HEADER - RQ_SNAP_TRAILER) % rec != 0) {
        return RQ_E_LENGTH;
    }
    if (n > cap) {
        return RQ_E_CAPACITY;
    }
    *count = n;
    return RQ_OK;
}

/* ---------------------------------------------------------------- ring */

void rq_ring_init(rq_ring_t *q, uint8_t *data, size_t cap, size_t isz, int overwrite) {
    q->data = data;
    q->cap = cap;
    q->isz = isz;
    q->head = 0;
    q->count = 0;
    q->overwrite = overwrite;
    q->st.hw = 0;
    q->st.pushes = 0;
    q->st.drops = 0;
}

static inline size_t ring_slot(const rq_ring_t *q, size_t i) {
    size_t s = q->head + i;
    return s >= q->cap ? s - q->cap : s;
}

/* One record. Common record sizes (1 for key codes, 8 to 32) get a
 * constant-size copy, which compilers turn into a few loads and stores
 * instead of a call to memcpy: for 16-byte records the call costs more than
 * the copy. */
static inline void rq_copy_rec(uint8_t *dst, const uint8_t *src, size_t isz) {
    if (isz == 16) {
        memcpy(dst, src, 16);
    } else if (isz == 8) {
        memcpy(dst, src, 8);
    } else if (isz == 1) {
        *dst = *src;
    } else if (isz == 32) {
        memcpy(dst, src, 32);
    } else {
        memcpy(dst, src, isz);
    }
}

/* The single-record hot paths are static inline so that the binding, which
 * includes this file, compiles them into its method bodies; the exported
 * rq_ring_push/pop/peek below are the same code for other callers. */
static inline int rq_ring_push_one(rq_ring_t *q, const uint8_t *src) {
    size_t count = q->count;
    if (count == q->cap) {
        q->st.drops++;
        if (!q->overwrite) {
            return 0;
        }
        q->head = ring_slot(q, 1);
        count--;
    }
    size_t tail = q->head + count;
    if (tail >= q->cap) {
        tail -= q->cap;
    }
    rq_copy_rec(q->data + tail * q->isz, src, q->isz);
    count++;
    q->count = count;
    q->st.pushes++;
    if (count > q->st.hw) {
        q->st.hw = count;
    }
    return 1;
}

static inline int rq_ring_peek_one(const rq_ring_t *q, uint8_t *dst) {
    if (q->count == 0) {
        return 0;
    }
    rq_copy_rec(dst, q->data + q->head * q->isz, q->isz);
    return 1;
}

static inline int rq_ring_pop_one(rq_ring_t *q, uint8_t *dst) {
    size_t head = q->head;
    if (q->count == 0) {
        return 0;
    }
    rq_copy_rec(dst, q->data + head * q->isz, q->isz);
    head++;
    q->head = head == q->cap ? 0 : head;
    q->count--;
    return 1;
}

int rq_ring_push(rq_ring_t *q, const uint8_t *src) {
    return rq_ring_push_one(q, src);
}

int rq_ring_peek(const rq_ring_t *q, uint8_t *dst) {
    return rq_ring_peek_one(q, dst);
}

int rq_ring_pop(rq_ring_t *q, uint8_t *dst) {
    return rq_ring_pop_one(q, dst);
}

size_t rq_ring_push_many(rq_ring_t *q, const uint8_t *src, size_t n) {
    size_t done = 0;
    /* Records beyond capacity in overwrite mode would be overwritten within
     * this call: count them as drops and copy only the last `cap`. */
    if (q->overwrite && n > q->cap) {
        size_t skip = n - q->cap;
        q->st.drops += skip;
        q->st.pushes += skip;
        src += skip * q->isz;
        done = skip;
        n = q->cap;
    }
    while (n) {
        if (q->count == q->cap) {
            if (!q->overwrite) {
                q->st.drops += n;
                break;
            }
            size_t k = n < q->count ? n : q->count;
            q->head = ring_slot(q, k);
            q->count -= k;
            q->st.drops += k;
        }
        size_t tail = ring_slot(q, q->count);
        size_t room = q->cap - q->count;
        size_t run = q->cap - tail; /* contiguous slots before wrap */
        size_t k = n;
        if (k > room) {
            k = room;
        }
        if (k > run) {
            k = run;
        }
        memcpy(q->data + tail * q->isz, src, k * q->isz);
        src += k * q->isz;
        q->count += k;
        q->st.pushes += k;
        done += k;
        n -= k;
    }
    stats_grow(&q->st, q->count);
    return done;
}

size_t rq_ring_pop_many(rq_ring_t *q, uint8_t *dst, size_t max_n) {
    size_t n = max_n < q->count ? max_n : q->count;
    size_t first = q->cap - q->head;
    if (first > n) {
        first = n;
    }
    memcpy(dst, q->data + q->head * q->isz, first * q->isz);
    memcpy(dst + first * q->isz, q->data, (n - first) * q->isz);
    q->head = ring_slot(q, n);
    q->count -= n;
    return n;
}

intptr_t rq_ring_find(const rq_ring_t *q, size_t offset, const uint8_t *key, size_t klen) {
    for (size_t i = 0; i < q->count; i++) {
        if (rq_equal(q->data + ring_slot(q, i) * q->isz + offset, key, klen)) {
            return (intptr_t)i;
        }
    }
    return -1;
}

void rq_ring_clear(rq_ring_t *q) {
    q->head = 0;
    q->count = 0;
}

size_t rq_ring_snapshot_size(const rq_ring_t *q) {
    return RQ_SNAP_HEADER + q->count * q->isz + RQ_SNAP_TRAILER;
}

size_t rq_ring_snapshot(const rq_ring_t *q, uint8_t *out, size_t out_len) {
    size_t n = rq_ring_snapshot_size(q);
    if (out_len < n) {
        return 0;
    }
    snap_header(out, RQ_KIND_RING, q->isz, q->count, q->cap);
    uint8_t *p = out + RQ_SNAP_HEADER;
    for (size_t i = 0; i < q->count; i++) {
        memcpy(p, q->data + ring_slot(q, i) * q->isz, q->isz);
        p += q->isz;
    }
    put_u32(p, rq_crc32(0, out, n - RQ_SNAP_TRAILER));
    return n;
}

int rq_ring_restore(rq_ring_t *q, const uint8_t *in, size_t in_len) {
    size_t n = 0;
    int err = snap_check(in, in_len, RQ_KIND_RING, q->isz, q->isz, q->cap, &n);
    if (err != RQ_OK) {
        return err;
    }
    memcpy(q->data, in + RQ_SNAP_HEADER, n * q->isz);
    q->head = 0;
    q->count = n;
    stats_grow(&q->st, n);
    return RQ_OK;
}

/* ---------------------------------------------------------------- deadline */

void rq_dl_init(rq_dl_t *q, uint8_t *data, rq_tick_t *due, size_t cap, size_t isz, rq_tick_t period_mask) {
    q->data = data;
    q->due = due;
    q->cap = cap;
    q->isz = isz;
    q->count = 0;
    q->period_mask = period_mask;
    q->st.hw = 0;
    q->st.pushes = 0;
    q->st.drops = 0;
}

/* Entries are kept latest-first: index count-1 is the next to pop. A new
 * entry goes after every entry due no later than it (FIFO among equals). */
static void dl_insert(rq_dl_t *q, rq_tick_t due, const uint8_t *src) {
    size_t lo = 0, hi = q->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rq_ticks_diff(q->due[mid], due, q->period_mask) > 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t move = q->count - lo;
    memmove(q->data + (lo + 1) * q->isz, q->data + lo * q->isz, move * q->isz);
    memmove(q->due + lo + 1, q->due + lo, move * sizeof(rq_tick_t));
    memcpy(q->data + lo * q->isz, src, q->isz);
    q->due[lo] = due;
    q->count++;
}

int rq_dl_push(rq_dl_t *q, rq_tick_t due, const uint8_t *src) {
    if (q->count == q->cap) {
        q->st.drops++;
        return 0;
    }
    dl_insert(q, due & q->period_mask, src);
    q->st.pushes++;
    stats_grow(&q->st, q->count);
    return 1;
}

int rq_dl_pop_due(rq_dl_t *q, rq_tick_t now, uint8_t *dst) {
    if (q->count == 0) {
        return 0;
    }
    size_t last = q->count - 1;
    if (rq_ticks_diff(q->due[last], now & q->period_mask, q->period_mask) > 0) {
        return 0;
    }
    memcpy(dst, q->data + last * q->isz, q->isz);
    q->count = last;
    return 1;
}

int rq_dl_next_due(const rq_dl_t *q, rq_tick_t *out) {
    if (q->count == 0) {
        return 0;
    }
    *out = q->due[q->count - 1];
    return 1;
}

void rq_dl_clear(rq_dl_t *q) {
    q->count = 0;
}

size_t rq_dl_snapshot_size(const rq_dl_t *q) {
    return RQ_SNAP_HEADER + q->count * (RQ_DUE_BYTES + q->isz) + RQ_SNAP_TRAILER;
}

size_t rq_dl_snapshot(const rq_dl_t *q, uint8_t *out, size_t out_len) {
    size_t n = rq_dl_snapshot_size(q);
    if (out_len < n) {
        return 0;
    }
    snap_header(out, RQ_KIND_DEADLINE, q->isz, q->count, q->cap);
    uint8_t *p = out + RQ_SNAP_HEADER;
    /* Pop order (earliest first), so the file reads naturally. */
    for (size_t i = q->count; i-- > 0;) {
        put_due(p, q->due[i]);
        memcpy(p + RQ_DUE_BYTES, q->data + i * q->isz, q->isz);
        p += RQ_DUE_BYTES + q->isz;
    }
    put_u32(p, rq_crc32(0, out, n - RQ_SNAP_TRAILER));
    return n;
}

int rq_dl_restore(rq_dl_t *q, const uint8_t *in, size_t in_len) {
    size_t n = 0;
    int err = snap_check(in, in_len, RQ_KIND_DEADLINE, q->isz, RQ_DUE_BYTES + q->isz, q->cap, &n);
    if (err != RQ_OK) {
        return err;
    }
    q->count = 0;
    const uint8_t *p = in + RQ_SNAP_HEADER;
    for (size_t i = 0; i < n; i++) {
        dl_insert(q, get_due(p) & q->period_mask, p + RQ_DUE_BYTES);
        p += RQ_DUE_BYTES + q->isz;
    }
    stats_grow(&q->st, q->count);
    return RQ_OK;
}
