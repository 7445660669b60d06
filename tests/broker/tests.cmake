# Broker tests, included from tests/CMakeLists.txt: the roster file through
# the broker's private header, and an in-process broker driven by hand-made
# endpoints (support/raw_endpoint.h) on loopback.
rejoin_add_test(broker_roster_test LABEL unit
  SOURCES broker/roster_test.cpp
  LIBS rejoin::broker rejoin::proto rejoin::transport rejoin_e2e_harness)
target_include_directories(broker_roster_test PRIVATE
  ${PROJECT_SOURCE_DIR}/broker/src)
rejoin_add_test(broker_mux_test LABEL unit
  SOURCES broker/broker_mux_test.cpp
  LIBS rejoin::broker rejoin::proto rejoin::transport rejoin_e2e_harness)
# The guard test captures the broker's log lines.
find_package(spdlog REQUIRED)
rejoin_add_test(broker_guard_test LABEL unit
  SOURCES broker/broker_guard_test.cpp
  LIBS rejoin::broker rejoin::client rejoin::server rejoin::proto
    rejoin::transport rejoin_e2e_harness spdlog::spdlog)
rejoin_add_test(broker_bounds_test LABEL unit
  SOURCES broker/broker_bounds_test.cpp
  LIBS rejoin::broker rejoin::client rejoin::server rejoin::proto
    rejoin::transport rejoin_e2e_harness)
# The broker's core driven with decoded messages and a fake clock: no
# sockets, no sleeps.
rejoin_add_test(broker_core_test LABEL unit
  SOURCES broker/broker_core_test.cpp broker/broker_core_access_test.cpp
    broker/idle_shedder_test.cpp
  LIBS rejoin::broker rejoin::proto rejoin::transport)
target_include_directories(broker_core_test PRIVATE
  ${PROJECT_SOURCE_DIR}/broker/src)
rejoin_add_test(broker_forgotten_test LABEL unit
  SOURCES broker/broker_forgotten_test.cpp
  LIBS rejoin::broker rejoin::proto rejoin::transport rejoin_e2e_harness)
# CURVE, principals and authorization (docs/SECURITY.md): a real broker
# with a keys file, real endpoints and hostile hand-made ones.
rejoin_add_test(broker_curve_test LABEL unit
  SOURCES broker/broker_curve_test.cpp broker/broker_principal_test.cpp
  LIBS rejoin::broker rejoin::client rejoin::server rejoin::proto
    rejoin::transport)
rejoin_add_test(access_test LABEL unit
  SOURCES broker/access_test.cpp
  LIBS rejoin::broker rejoin::proto rejoin::transport)
target_include_directories(access_test PRIVATE
  ${PROJECT_SOURCE_DIR}/broker/src)
