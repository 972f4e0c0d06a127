// HAL for the core-only host port: stdio on fds 0/1, monotonic clock.
#include <unistd.h>

#define mp_hal_pin_obj_t void *  /* no pins on the host; keeps extmod/virtpin.h out */

static inline void mp_hal_set_interrupt_char(char c) {
    (void)c;
}
