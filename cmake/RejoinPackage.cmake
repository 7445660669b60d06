# Debian packages through CPack (`cpack -G DEB` in the build directory):
#   rejoin      the broker, rejoin-call, rejoin-ctl, the shared libraries, the
#               systemd unit and /etc/rejoin/broker.toml (a conffile);
#   rejoin-dev  headers, static libraries, the CMake package and pkg-config
#               files; depends on the exact rejoin version.
# Shared-library dependencies of the runtime package come from
# dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME rejoin)
set(CPACK_PACKAGE_VENDOR "rejoin")
set(CPACK_PACKAGE_CONTACT "rejoin maintainers <maintainers@rejoin.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "recovery middleware on ZeroMQ: no request lost, none executed twice")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)  # so /etc/rejoin lands at /etc, not /usr/etc
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME rejoin)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/broker/dist/conffiles)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
"recovery middleware on ZeroMQ: broker, tools and libraries
 rejoin carries request/response calls between client and server processes
 through a broker. Clients and servers journal every operation, and after any
 failure a state exchange decides who retransmits what: no operation is lost,
 none executed twice, none answered twice. This package holds rejoin-broker
 (with a hardened systemd unit, disabled until enabled), rejoin-call,
 rejoin-ctl (journal inspection and salvage, broker status) and the shared
 client and server libraries.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME rejoin-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "rejoin (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "libzmq3-dev, libspdlog-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION
"recovery middleware on ZeroMQ: development files
 Headers, static libraries, the CMake package (find_package(rejoin CONFIG))
 and pkg-config files (rejoin-client, rejoin-server) for programs that link
 rejoin's client and server libraries. The static libraries also need
 libzmq3-dev and libspdlog-dev.")

include(CPack)
