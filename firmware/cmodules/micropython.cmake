# Entry point for USER_C_MODULES=firmware/cmodules/micropython.cmake (ESP32 builds).
include(${CMAKE_CURRENT_LIST_DIR}/recqueue/micropython.cmake)
