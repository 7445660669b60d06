# Support code shared by the endpoint test suites: the scripted broker
# (support/fake_broker.h) and the temporary directory (support/temp_dir.h,
# header only). Included by tests/CMakeLists.txt before the suites that use
# it; paths are relative to tests/.
add_library(rejoin_fake_broker STATIC support/fake_broker.cpp)
target_include_directories(rejoin_fake_broker PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(rejoin_fake_broker PUBLIC rejoin::transport GTest::gtest)
rejoin_target_warnings(rejoin_fake_broker)
