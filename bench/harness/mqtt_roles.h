// The MQTT request/reply baseline (libmosquitto against an unmodified
// mosquitto) at QoS 1 or 2: see roles.h. Built only when libmosquitto was
// found.
#pragma once

#include "roles.h"

namespace rejoin::bench {

int RunMqttWorker(const RoleArgs& a);
int RunMqttClient(const RoleArgs& a);

}  // namespace rejoin::bench
