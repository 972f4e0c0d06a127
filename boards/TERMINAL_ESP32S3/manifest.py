# TERMINAL_ESP32S3 image: the port's standard frozen modules, then the payterm firmware.
include("$(PORT_DIR)/boards/manifest.py")
include("$(BOARD_DIR)/../payterm_manifest.py")
