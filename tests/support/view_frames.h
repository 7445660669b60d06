// The frames of one message handed to the broker core in tests and the
// simulator: views of bytes the caller owns, which must outlive the object.
// What the core takes is copied into zmq messages.
#pragma once

#include <string_view>
#include <zmq.hpp>

#include "core/broker_core.h"

namespace rejoin::testing {

class ViewFrames final : public broker_internal::InFrames {
 public:
  ViewFrames(std::string_view header, std::string_view payload)
      : header_(header), payload_(payload) {}
  std::string_view header() const override { return header_; }
  std::string_view payload() const override { return payload_; }
  zmq::message_t TakeHeader() override {
    return zmq::message_t(header_.data(), header_.size());
  }
  zmq::message_t TakePayload() override {
    return zmq::message_t(payload_.data(), payload_.size());
  }

 private:
  std::string_view header_;
  std::string_view payload_;
};

}  // namespace rejoin::testing
