/*
 * recqueue core: fixed-size record queues over caller-provided storage.
 *
 * Plain C with no MicroPython includes so the same code builds as a user C
 * module, as a natmod and for the RISC-V cross-compile check. Nothing here
 * allocates: the binding hands in storage once, at construction.
 */
#ifndef RQ_CORE_H
#define RQ_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef uintptr_t rq_tick_t;

/* Snapshot layout (little-endian), see docs/recqueue.md "Snapshot format". */
#define RQ_SNAP_HEADER (16)
#define RQ_SNAP_TRAILER (4)
#define RQ_SNAP_VERSION (1)
#define RQ_KIND_RING (0)
#define RQ_KIND_DEADLINE (1)
#define RQ_DUE_BYTES (8)

/* restore() results; the binding maps each to one ValueError message. */
enum {
    RQ_OK = 0,
    RQ_E_TRUNCATED,
    RQ_E_CRC,
    RQ_E_FORMAT,
    RQ_E_ITEM_SIZE,
    RQ_E_LENGTH,
    RQ_E_CAPACITY,
};

typedef struct {
    size_t hw;      /* high-water mark of len() */
    size_t pushes;  /* records accepted */
    size_t drops;   /* records rejected (full) or overwritten (oldest) */
} rq_stats_t;

typedef struct {
    uint8_t *data;
    size_t cap;
    size_t isz;
    size_t head;
    size_t count;
    int overwrite;
    rq_stats_t st;
} rq_ring_t;

typedef struct {
    uint8_t *data;  /* cap * isz, kept latest-first so the earliest pops from the end */
    rq_tick_t *due; /* cap due times, same order as data */
    size_t cap;
    size_t isz;
    size_t count;
    rq_tick_t period_mask; /* ticks period - 1 (a power of two minus one) */
    rq_stats_t st;
} rq_dl_t;

uint32_t rq_crc32(uint32_t crc, const uint8_t *buf, size_t len);
intptr_t rq_ticks_diff(rq_tick_t a, rq_tick_t b, rq_tick_t period_mask);

void rq_ring_init(rq_ring_t *q, uint8_t *data, size_t cap, size_t isz, int overwrite);
int rq_ring_push(rq_ring_t *q, const uint8_t *src);
int rq_ring_pop(rq_ring_t *q, uint8_t *dst);
int rq_ring_peek(const rq_ring_t *q, uint8_t *dst);
size_t rq_ring_push_many(rq_ring_t *q, const uint8_t *src, size_t n);
size_t rq_ring_pop_many(rq_ring_t *q, uint8_t *dst, size_t max_n);
intptr_t rq_ring_find(const rq_ring_t *q, size_t offset, const uint8_t *key, size_t klen);
void rq_ring_clear(rq_ring_t *q);
size_t rq_ring_snapshot_size(const rq_ring_t *q);
size_t rq_ring_snapshot(const rq_ring_t *q, uint8_t *out, size_t out_len);
int rq_ring_restore(rq_ring_t *q, const uint8_t *in, size_t in_len);

void rq_dl_init(rq_dl_t *q, uint8_t *data, rq_tick_t *due, size_t cap, size_t isz, rq_tick_t period_mask);
int rq_dl_push(rq_dl_t *q, rq_tick_t due, const uint8_t *src);
int rq_dl_pop_due(rq_dl_t *q, rq_tick_t now, uint8_t *dst);
int rq_dl_next_due(const rq_dl_t *q, rq_tick_t *out);
void rq_dl_clear(rq_dl_t *q);
size_t rq_dl_snapshot_size(const rq_dl_t *q);
size_t rq_dl_snapshot(const rq_dl_t *q, uint8_t *out, size_t out_len);
int rq_dl_restore(rq_dl_t *q, const uint8_t *in, size_t in_len);

#endif
