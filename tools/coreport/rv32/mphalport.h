// HAL declarations for the 32-bit RISC-V compile check. Atomic sections are
// port functions returning the saved interrupt state, as on ESP32.
#include <stdint.h>

#define mp_hal_pin_obj_t void *  /* keeps extmod/virtpin.h (not in the sdist) out */

uint32_t mp_begin_atomic_section(void);
void mp_end_atomic_section(uint32_t state);
#define MICROPY_BEGIN_ATOMIC_SECTION() mp_begin_atomic_section()
#define MICROPY_END_ATOMIC_SECTION(state) mp_end_atomic_section(state)

static inline void mp_hal_set_interrupt_char(char c) {
    (void)c;
}
