# rejoin-sim, the deterministic simulation of the whole system
# (docs/SIMULATION.md), included from tests/CMakeLists.txt. The library
# rejoin_sim runs the real broker core, journal, codec, endpoint machine and
# decision table; rejoin-sim is its program. rejoin-sim-defects is a
# test-only build whose broker core and decision table are compiled with
# REJOIN_SIM_DEFECTS, so the checker's tests can switch seeded defects on;
# no product target is built with it.
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)

set(rejoin_sim_sources
  sim/sim_broker.cpp sim/sim_checker.cpp sim/sim_client.cpp
  sim/sim_config.cpp sim/sim_endpoint.cpp sim/sim_server.cpp
  sim/sim_trace.cpp sim/sim_world.cpp support/fault_env.cpp)

add_library(rejoin_sim STATIC ${rejoin_sim_sources})
target_include_directories(rejoin_sim PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}
  ${CMAKE_CURRENT_SOURCE_DIR}/sim ${PROJECT_SOURCE_DIR}/broker/src)
target_link_libraries(rejoin_sim PUBLIC rejoin::broker rejoin::proto
  spdlog::spdlog)
rejoin_target_warnings(rejoin_sim)

add_executable(rejoin-sim sim/main.cpp)
target_link_libraries(rejoin-sim PRIVATE rejoin_sim CLI11::CLI11)
rejoin_target_warnings(rejoin-sim)

rejoin_add_test(sim_test LABEL unit
  SOURCES sim/sim_test.cpp LIBS rejoin_sim)
