# The linearizability checker's unit test; included by tests/sim/CMakeLists.txt.
bftkv_test(lincheck_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_lincheck.c ${CMAKE_CURRENT_SOURCE_DIR}/lincheck.c
           LIBS bftkv_common LABELS unit)
