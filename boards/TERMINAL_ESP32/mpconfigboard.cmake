set(IDF_TARGET esp32)

# As the generic board's SPIRAM variant, without sdkconfig.ble (no Bluetooth).
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.spiram
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)
