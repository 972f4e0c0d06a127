// payterm terminal on an ESP32-WROVER-E (N8R8): only what differs from the generic ESP32 board.
#define MICROPY_HW_BOARD_NAME               "payterm TERMINAL_ESP32"
#define MICROPY_HW_MCU_NAME                 "ESP32"

// No native USB on this chip: the REPL and the technician console share UART0 (GPIO1/3,
// through the board's USB-serial bridge), as on the generic board.

// A payment terminal needs neither Bluetooth nor ESP-NOW: less code, less to attack.
#define MICROPY_PY_BLUETOOTH                (0)
#define MICROPY_PY_ESPNOW                   (0)
