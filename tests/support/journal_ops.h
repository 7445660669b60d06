// Journal records for tests that append them by hand.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "rejoin/proto/journal.h"

namespace rejoin::testing {

// A client operation journaled before its first send.
inline JournalOp PreparedOp(std::string payload,
                            std::string service = "billing") {
  JournalOp op;
  op.state = static_cast<std::uint8_t>(ClientOpState::kPrepared);
  op.service = std::move(service);
  op.payload = std::move(payload);
  return op;
}

}  // namespace rejoin::testing
