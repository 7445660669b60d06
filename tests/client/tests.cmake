# libclient tests, included from tests/CMakeLists.txt. Each test talks to a
# scripted broker (support/fake_broker.h) on its own 127.0.0.1 port.
rejoin_add_test(client_test LABEL unit
  SOURCES client/client_test.cpp
  LIBS rejoin::client rejoin_fake_broker)
rejoin_add_test(rtt_estimator_test LABEL unit
  SOURCES client/rtt_estimator_test.cpp
  LIBS rejoin::client)
target_include_directories(rtt_estimator_test PRIVATE
  ${PROJECT_SOURCE_DIR}/libclient/src)
