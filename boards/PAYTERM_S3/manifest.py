# Frozen firmware for the payterm counter terminal.
include("$(PORT_DIR)/boards/manifest.py")
require("ssl")
package("payterm", base_path="$(BOARD_DIR)/../../firmware")
module("main.py", base_path="$(BOARD_DIR)/../../firmware")
module("recqueue.py", base_path="$(BOARD_DIR)/../../firmware")
