# rejoin-sim, the deterministic simulation of the whole system
# (docs/SIMULATION.md), included from tests/CMakeLists.txt. The library
# rejoin_sim runs the real broker core, server core, client session core,
# journal, codec, endpoint machine and decision table; rejoin-sim is its program.
# rejoin-sim-defects is a test-only build whose broker core and decision
# table are compiled with REJOIN_SIM_DEFECTS, so the checker's tests can
# switch seeded defects on; no product target is built with it.
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)

set(rejoin_sim_sources
  sim/sim_broker.cpp sim/sim_checker.cpp sim/sim_client.cpp
  sim/sim_config.cpp sim/sim_endpoint.cpp sim/sim_server.cpp
  sim/sim_trace.cpp sim/sim_world.cpp support/fault_env.cpp)

add_library(rejoin_sim STATIC ${rejoin_sim_sources})
target_include_directories(rejoin_sim PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}
  ${CMAKE_CURRENT_SOURCE_DIR}/sim ${PROJECT_SOURCE_DIR}/broker/src
  ${PROJECT_SOURCE_DIR}/libserver/src ${PROJECT_SOURCE_DIR}/libclient/src)
target_link_libraries(rejoin_sim PUBLIC rejoin::broker rejoin::server
  rejoin::client rejoin::proto spdlog::spdlog)
rejoin_target_warnings(rejoin_sim)

add_executable(rejoin-sim sim/main.cpp)
target_link_libraries(rejoin-sim PRIVATE rejoin_sim CLI11::CLI11)
rejoin_target_warnings(rejoin-sim)

rejoin_add_test(sim_test LABEL unit
  SOURCES sim/sim_test.cpp LIBS rejoin_sim)

# Many seeds of a short storm, in the default run (label sim; scripts/test.sh
# runs every label but soak): at least 40,000 crash-restarts and 350,000
# lost, duplicated or reordered messages, or the test fails. Bugs have
# first shown between seeds 1,600 and 6,000; the run takes about 10 s of CPU.
add_test(NAME sim_storm_seeds
  COMMAND rejoin-sim --seed 1 --seeds 6000 --fault-seconds 2 --calls 50
          --quiet --expect-crashes 40000 --expect-net-faults 350000)
set_tests_properties(sim_storm_seeds PROPERTIES LABELS sim TIMEOUT 300)
# Fewer seeds of the default storm with more parties (8 clients, 4 servers):
# crowded servers and longer fault periods (about 8 s of CPU).
add_test(NAME sim_storm_crowded
  COMMAND rejoin-sim --seed 200000 --seeds 500 --clients 8 --servers 4
          --quiet --expect-crashes 30000 --expect-net-faults 250000)
set_tests_properties(sim_storm_crowded PROPERTIES LABELS sim TIMEOUT 300)
# The long run (label soak): fresh seeds, the default storm; about an hour
# of one core here (2,900 messages and 20 restarts a seed, about 210 seeds
# a CPU-second). REJOIN_SIM_SOAK_SEEDS at configure time changes it.
set(REJOIN_SIM_SOAK_SEEDS 750000 CACHE STRING
    "seeds of the sim_soak test (label soak)")
add_test(NAME sim_soak
  COMMAND rejoin-sim --seed 1000000 --seeds ${REJOIN_SIM_SOAK_SEEDS} --quiet)
set_tests_properties(sim_soak PROPERTIES LABELS soak TIMEOUT 14400)

# The test-only build with seeded defects: the broker core and the decision
# table compiled again with REJOIN_SIM_DEFECTS (libproto/src/sim_defects.h).
# Its objects come first on the link line, so they take the place of the
# product's copies in librejoin_broker.a and librejoin_proto.a.
set(rejoin_defect_core_sources
  ${PROJECT_SOURCE_DIR}/broker/src/core/access_checks.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/admission.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/bounds.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/broker_core.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/operations.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/roster_keeper.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/status.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/timers.cpp
  ${PROJECT_SOURCE_DIR}/broker/src/core/tracking.cpp
  ${PROJECT_SOURCE_DIR}/libproto/src/breakpoint.cpp
  sim/sim_defects.cpp)
add_library(rejoin_sim_defect_cores OBJECT ${rejoin_defect_core_sources})
target_compile_definitions(rejoin_sim_defect_cores PRIVATE REJOIN_SIM_DEFECTS)
target_include_directories(rejoin_sim_defect_cores PRIVATE
  ${PROJECT_SOURCE_DIR}/broker/src ${PROJECT_SOURCE_DIR}/libproto/src)
target_link_libraries(rejoin_sim_defect_cores PRIVATE rejoin::broker
  rejoin::transport spdlog::spdlog)
rejoin_target_warnings(rejoin_sim_defect_cores)

add_executable(rejoin-sim-defects sim/main.cpp
  $<TARGET_OBJECTS:rejoin_sim_defect_cores>)
target_compile_definitions(rejoin-sim-defects PRIVATE REJOIN_SIM_DEFECTS)
target_include_directories(rejoin-sim-defects PRIVATE
  ${PROJECT_SOURCE_DIR}/libproto/src)
target_link_libraries(rejoin-sim-defects PRIVATE rejoin_sim CLI11::CLI11)
rejoin_target_warnings(rejoin-sim-defects)

# Each seeded defect must be found within the default budget.
rejoin_add_test(sim_defects_test LABEL unit
  SOURCES sim/sim_defects_test.cpp $<TARGET_OBJECTS:rejoin_sim_defect_cores>
  LIBS rejoin_sim)
target_compile_definitions(sim_defects_test PRIVATE REJOIN_SIM_DEFECTS)
target_include_directories(sim_defects_test PRIVATE
  ${PROJECT_SOURCE_DIR}/libproto/src)
