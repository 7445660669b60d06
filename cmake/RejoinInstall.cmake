# What `cmake --install` puts where: the broker and the tools in bin/, the
# public headers under include/rejoin/, the libraries both shared (with a
# SONAME) and static, a CMake package (find_package(rejoin CONFIG) with
# rejoin::client and rejoin::server) and pkg-config files. Two components:
# "runtime" (programs, shared libraries, service unit, default configuration)
# and "dev" (headers, static libraries, CMake package, pkg-config files), the
# two Debian packages of cmake/RejoinPackage.cmake.
#
# The libraries users link are built from the in-tree objects: librejoin-core
# (the protocol core and its ZeroMQ transport), librejoin-client and
# librejoin-server. Implementation dependencies (libzmq, spdlog, msgpack) stay
# private: a user's program needs only rejoin's headers and libraries, plus
# C++20.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
find_package(cppzmq REQUIRED)
find_package(spdlog REQUIRED)

set(REJOIN_SOVERSION "${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}")
set(REJOIN_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/rejoin")

# rejoin_install_library(name OBJECTS objlib... [PUBLIC dep...] [PRIVATE dep...])
# makes rejoin_<name>_shared and rejoin_<name>_static from the given object
# libraries; both are installed as librejoin-<name>.
function(rejoin_install_library name)
  cmake_parse_arguments(L "" "" "OBJECTS;SHARED_PUBLIC;STATIC_PUBLIC;PRIVATE"
                        ${ARGN})
  set(objects)
  foreach(o IN LISTS L_OBJECTS)
    list(APPEND objects $<TARGET_OBJECTS:${o}>)
  endforeach()
  foreach(kind shared static)
    string(TOUPPER ${kind} KIND)
    set(t rejoin_${name}_${kind})
    add_library(${t} ${KIND} ${objects})
    set_target_properties(${t} PROPERTIES OUTPUT_NAME rejoin-${name})
    target_include_directories(${t} INTERFACE
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    target_compile_features(${t} INTERFACE cxx_std_20)
    target_link_libraries(${t} PUBLIC ${L_${KIND}_PUBLIC})
    if(kind STREQUAL shared)
      set_target_properties(${t} PROPERTIES EXPORT_NAME ${name}
        VERSION ${PROJECT_VERSION} SOVERSION ${REJOIN_SOVERSION})
      target_link_libraries(${t} PRIVATE ${L_PRIVATE})
    else()
      # A static library's dependencies are its users' link dependencies.
      set_target_properties(${t} PROPERTIES EXPORT_NAME ${name}_static)
      foreach(d IN LISTS L_PRIVATE)
        target_link_libraries(${t} INTERFACE $<LINK_ONLY:${d}>)
      endforeach()
    endif()
  endforeach()
  install(TARGETS rejoin_${name}_shared EXPORT rejoinTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
      NAMELINK_COMPONENT dev)
  install(TARGETS rejoin_${name}_static EXPORT rejoinStaticTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
endfunction()

rejoin_install_library(core
  OBJECTS rejoin_proto_objects rejoin_transport_objects
  PRIVATE cppzmq Threads::Threads)
rejoin_install_library(client
  OBJECTS rejoin_client_objects
  SHARED_PUBLIC rejoin_core_shared STATIC_PUBLIC rejoin_core_static
  PRIVATE spdlog::spdlog cppzmq Threads::Threads)
rejoin_install_library(server
  OBJECTS rejoin_server_objects
  SHARED_PUBLIC rejoin_core_shared STATIC_PUBLIC rejoin_core_static
  PRIVATE spdlog::spdlog cppzmq Threads::Threads)

# Public headers. rejoin/transport and rejoin/broker are internal.
foreach(dir libproto libclient libserver)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/include/rejoin
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/libproto/include/rejoin/proto/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/rejoin/proto COMPONENT dev)

install(TARGETS rejoin-broker rejoin-call rejoin-ctl rejoin-keygen
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

install(EXPORT rejoinTargets NAMESPACE rejoin:: DESTINATION ${REJOIN_CMAKE_DIR}
  FILE rejoinTargets.cmake COMPONENT dev)
install(EXPORT rejoinStaticTargets NAMESPACE rejoin::
  DESTINATION ${REJOIN_CMAKE_DIR} FILE rejoinStaticTargets.cmake COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/rejoinConfig.cmake.in
  ${PROJECT_BINARY_DIR}/rejoinConfig.cmake INSTALL_DESTINATION ${REJOIN_CMAKE_DIR})
# 0.x: a new minor version may change the interface.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rejoinConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/rejoinConfig.cmake
  ${PROJECT_BINARY_DIR}/rejoinConfigVersion.cmake
  DESTINATION ${REJOIN_CMAKE_DIR} COMPONENT dev)

# The .pc files find their prefix from where they lie (${pcfiledir}), so an
# installed tree can be moved, and `cmake --install --prefix` works.
file(RELATIVE_PATH REJOIN_PC_TO_PREFIX
  "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
foreach(pc rejoin-core rejoin-client rejoin-server)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in
    ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endforeach()

# The broker as a service: a hardened systemd unit and its configuration.
install(FILES ${PROJECT_SOURCE_DIR}/broker/dist/rejoin-broker.service
  DESTINATION lib/systemd/system COMPONENT runtime)
# The configuration goes to /etc/rejoin for the /usr prefix (the packages)
# and to PREFIX/etc/rejoin for any other, decided when installing so that
# `cmake --install --prefix` never writes outside its prefix.
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(rejoin_etc /etc/rejoin)
  else()
    set(rejoin_etc \"\${CMAKE_INSTALL_PREFIX}/etc/rejoin\")
  endif()
  file(INSTALL \"${PROJECT_SOURCE_DIR}/broker/dist/broker.toml\"
       DESTINATION \"\${rejoin_etc}\")
" COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/README.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
