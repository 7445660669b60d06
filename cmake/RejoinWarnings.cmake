# rejoin_target_warnings(target): the warning set for rejoin's own targets,
# errors unless REJOIN_WERROR is off. Third-party headers come in as SYSTEM.
function(rejoin_target_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Woverloaded-virtual -Wconversion -Wsign-conversion
    -Wimplicit-fallthrough -Wswitch -Werror=switch)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports false positives through std::variant and std::optional
    # at -O2; clang's -Wsometimes-uninitialized still covers our own code.
    # At -O3 it also reports impossible overlaps inside std::string's
    # operator+ (-Wrestrict), which would break Release builds.
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized
      -Wno-restrict)
  endif()
  if(REJOIN_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
