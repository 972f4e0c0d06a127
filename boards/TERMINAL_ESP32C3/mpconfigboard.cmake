set(IDF_TARGET esp32c3)

# As the generic C3 board, without sdkconfig.ble (no Bluetooth: more RAM for the heap and TLS).
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.riscv
    boards/ESP32_GENERIC_C3/sdkconfig.c3usb
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)
