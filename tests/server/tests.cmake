# Server tests against a scripted broker (support/fake_broker.h), and tests of
# the bank and echo example servers. Included by tests/CMakeLists.txt; paths
# are relative to tests/.
rejoin_add_test(server_test LABEL unit
  SOURCES server/server_request_test.cpp server/server_recovery_test.cpp
          server/server_connection_test.cpp
  LIBS rejoin::server rejoin_fake_broker)

# The server's operation logic alone: no socket, no thread, a fake clock.
rejoin_add_test(server_core_test LABEL unit
  SOURCES server/server_core_test.cpp support/fault_env.cpp
  LIBS rejoin::server)
target_include_directories(server_core_test PRIVATE
  ${PROJECT_SOURCE_DIR}/libserver/src)

if(TARGET bank_server)
  rejoin_add_test(bank_example_test LABEL unit
    SOURCES server/bank_ledger_test.cpp server/bank_server_test.cpp
            server/echo_server_test.cpp
    LIBS rejoin::server rejoin_bank_ledger rejoin_fake_broker)
  target_compile_definitions(bank_example_test PRIVATE
    BANK_SERVER_BIN="$<TARGET_FILE:bank_server>"
    ECHO_SERVER_BIN="$<TARGET_FILE:echo_server>")
  add_dependencies(bank_example_test bank_server echo_server)
endif()
