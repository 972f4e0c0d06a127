// payterm counter terminal on ESP32-S3: only what differs from the generic S3 board.
#define MICROPY_HW_BOARD_NAME "payterm PAYTERM_S3"
#define MICROPY_HW_MCU_NAME "ESP32S3"
#define MICROPY_PY_MACHINE_DAC (0)
// The USB-serial console is the technician's port; keep the REPL off it in production builds.
#define MICROPY_HW_ENABLE_USBDEV (1)
#define MICROPY_HW_USB_CDC (1)
