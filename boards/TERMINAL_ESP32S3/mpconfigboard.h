// payterm counter terminal on an ESP32-S3-WROOM-1-N8R8: only what differs from the generic S3 board.
#define MICROPY_HW_BOARD_NAME               "payterm TERMINAL_ESP32S3"
#define MICROPY_HW_MCU_NAME                 "ESP32S3"

// REPL and technician console on the native USB serial/JTAG port (GPIO19/20), so all three
// UARTs are free for the card readers and the printer: no TinyUSB CDC, no UART REPL.
#define MICROPY_HW_ENABLE_USBDEV            (0)
#define MICROPY_HW_USB_CDC                  (0)
#define MICROPY_HW_ESP_USB_SERIAL_JTAG      (1)
#define MICROPY_HW_ENABLE_UART_REPL         (0)

// A payment terminal needs neither Bluetooth nor ESP-NOW: less code, less to attack.
#define MICROPY_PY_BLUETOOTH                (0)
#define MICROPY_PY_ESPNOW                   (0)

// Panel I2C bus (display): hardware.json buses.i2c.panel
#define MICROPY_HW_I2C0_SCL                 (9)
#define MICROPY_HW_I2C0_SDA                 (8)
