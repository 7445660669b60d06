# libclient tests, included from tests/CMakeLists.txt. Each test talks to a
# scripted broker (support/fake_broker.h) on its own 127.0.0.1 port.
rejoin_add_test(client_test LABEL unit
  SOURCES client/client_test.cpp
  LIBS rejoin::client rejoin_fake_broker)
# Several sessions on one ClientConnection.
rejoin_add_test(client_connection_test LABEL unit
  SOURCES client/connection_test.cpp
  LIBS rejoin::client rejoin_fake_broker)
# The I/O thread's building blocks, from libclient's private headers.
rejoin_add_test(client_internals_test LABEL unit
  SOURCES client/rtt_estimator_test.cpp client/timer_heap_test.cpp
    client/session_journal_test.cpp client/reorder_slack_test.cpp
    client/seq_set_test.cpp client/precise_timer_test.cpp
  LIBS rejoin::client rejoin::transport)
target_include_directories(client_internals_test PRIVATE
  ${PROJECT_SOURCE_DIR}/libclient/src)
# A session's operation logic alone: no socket, no thread, a fake clock.
rejoin_add_test(session_core_test LABEL unit
  SOURCES client/session_core_test.cpp support/fault_env.cpp
  LIBS rejoin::client)
target_include_directories(session_core_test PRIVATE
  ${PROJECT_SOURCE_DIR}/libclient/src)
