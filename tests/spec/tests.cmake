# The specs against the code: FLOWS.md §1's defaults table.
rejoin_add_test(spec_defaults_test LABEL unit
  SOURCES spec/spec_defaults_test.cpp
  LIBS rejoin::broker rejoin::client rejoin::server rejoin::transport)
target_include_directories(spec_defaults_test PRIVATE
  ${PROJECT_SOURCE_DIR}/libclient/src)
target_compile_definitions(spec_defaults_test PRIVATE
  REJOIN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
