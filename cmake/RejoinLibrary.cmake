# rejoin_add_library(name SOURCES src...): one of rejoin's libraries, compiled
# once. Its objects form the OBJECT library `name_objects`, which carries the
# include directories, dependencies and warnings; the in-tree static library
# `name` is made of them and passes their usage requirements on. The installed
# shared and static libraries (cmake/RejoinInstall.cmake) reuse the same
# objects, so installing costs a link, not a second compilation.
function(rejoin_add_library name)
  cmake_parse_arguments(L "" "" "SOURCES" ${ARGN})
  add_library(${name}_objects OBJECT ${L_SOURCES})
  set_target_properties(${name}_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
  rejoin_target_warnings(${name}_objects)
  add_library(${name} STATIC)
  target_link_libraries(${name} PUBLIC ${name}_objects)
endfunction()
