# recqueue as a user C module (CMake-based ports: esp32, rp2).
add_library(usermod_recqueue INTERFACE)

# recqueue.c includes rq_core.c (one translation unit, so hot paths inline).
target_sources(usermod_recqueue INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/recqueue.c
)

target_include_directories(usermod_recqueue INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_recqueue)
