// rejoin roles (rejoin::Server, rejoin::Client, idle sessions): see roles.h.
#pragma once

#include "roles.h"

namespace rejoin::bench {

int RunRejoinServer(const RoleArgs& a);
int RunRejoinClient(const RoleArgs& a);
int RunIdleSessions(const RoleArgs& a);

}  // namespace rejoin::bench
