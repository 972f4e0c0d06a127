// payterm low-cost terminal on an ESP32-C3-MINI-1 (4 MiB flash, no PSRAM): only what differs
// from the generic C3 board.
#define MICROPY_HW_BOARD_NAME               "payterm TERMINAL_ESP32C3"
#define MICROPY_HW_MCU_NAME                 "ESP32C3"

// REPL and technician console on the USB serial/JTAG port (GPIO18/19) only, so both UARTs
// are free for the card readers (the generic C3 board also keeps a REPL on UART0).
#define MICROPY_HW_ESP_USB_SERIAL_JTAG      (1)
#define MICROPY_HW_ENABLE_UART_REPL         (0)

// A payment terminal needs neither Bluetooth nor ESP-NOW; without them the heap is larger.
#define MICROPY_PY_BLUETOOTH                (0)
#define MICROPY_PY_ESPNOW                   (0)
