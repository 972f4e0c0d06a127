set(IDF_TARGET esp32s3)

# As the generic S3 board, without sdkconfig.ble (no Bluetooth), with octal PSRAM at 240 MHz.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.spiram_sx
    boards/sdkconfig.spiram_oct
    boards/sdkconfig.240mhz
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)
