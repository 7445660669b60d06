// The NATS request/reply baseline (libnats against an unmodified
// nats-server): see roles.h. Built only when libnats was found.
#pragma once

#include "roles.h"

namespace rejoin::bench {

int RunNatsWorker(const RoleArgs& a);
int RunNatsClient(const RoleArgs& a);

}  // namespace rejoin::bench
