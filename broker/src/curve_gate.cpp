// The ZAP handler and the keys file's life in the broker (curve_gate.h).
#include "curve_gate.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "core/tables.h"
#include "rejoin/transport/curve.h"

namespace rejoin::broker_internal {
namespace {

// libzmq sends each CURVE handshake of the context to the ZAP handler bound
// here (RFC 27).
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

}  // namespace

Result<std::unique_ptr<CurveGate>> CurveGate::Open(zmq::context_t& context,
                                                   std::string keys_file) {
  auto policy = AccessPolicy::Load(keys_file);
  if (!policy.ok()) return policy.status();
  try {
    return std::unique_ptr<CurveGate>(new CurveGate(
        context, std::move(keys_file),
        std::make_shared<const AccessPolicy>(std::move(*policy))));
  } catch (const zmq::error_t& e) {
    return Status(ErrorCode::kIoError, std::string("ZAP handler: ") + e.what());
  }
}

CurveGate::CurveGate(zmq::context_t& context, std::string keys_file,
                     std::shared_ptr<const AccessPolicy> policy)
    : keys_file_(std::move(keys_file)),
      zap_(context, zmq::socket_type::rep),
      policy_(std::move(policy)) {
  zap_.set(zmq::sockopt::linger, 0);
  zap_.bind(kZapEndpoint);
}

void CurveGate::AnswerZap() {
  try {
    for (;;) {
      // version, request id, domain, address, identity, mechanism, then
      // the mechanism's credentials (CURVE: the client's 32-byte key).
      std::vector<zmq::message_t> request;
      zmq::message_t frame;
      if (!zap_.recv(frame, zmq::recv_flags::dontwait)) return;
      request.push_back(std::move(frame));
      while (request.back().more()) {
        request.emplace_back();
        (void)zap_.recv(request.back(), zmq::recv_flags::none);
      }
      std::string status = "400";
      std::string text = "CURVE required";
      std::string user;
      if (request.size() >= 7 && transport::View(request[0]) == "1.0" &&
          transport::View(request[5]) == "CURVE" && request[6].size() == 32) {
        char z85[transport::kZ85KeyChars + 1] = {};
        zmq_z85_encode(z85, static_cast<const std::uint8_t*>(request[6].data()),
                       32);
        if (policy_->PrincipalOf(z85) != nullptr) {
          status = "200";
          text = "OK";
          user = z85;
        } else {
          text = "key not in the keys file";
          spdlog::warn("rejoin-broker: refused a CURVE key not in {}: {} ({})",
                       keys_file_, z85, Printable(transport::View(request[3])));
        }
      }
      const std::string id =
          request.size() > 1 ? std::string(transport::View(request[1])) : "";
      zap_.send(zmq::buffer(std::string_view("1.0")), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(id), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(status), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(text), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(user), zmq::send_flags::sndmore);
      zap_.send(zmq::buffer(std::string_view()), zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    spdlog::error("rejoin-broker: ZAP handler: {}", e.what());
  }
}

const std::string* CurveGate::PrincipalOf(const transport::Frames& frames) {
  if (last_principal_ != nullptr && frames.route == last_route_ &&
      frames.user_id == last_key_ && frames.source_fd == last_fd_) {
    return last_principal_;
  }
  last_principal_ = nullptr;
  const std::string* principal = policy_->PrincipalOf(frames.user_id);
  if (principal == nullptr) {
    // Admitted under a keys file that listed the key, revoked since.
    revoked_messages_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  Peer& peer = peers_[frames.route];
  peer.key.assign(frames.user_id);
  peer.fd = frames.source_fd;
  last_route_ = frames.route;
  last_key_.assign(frames.user_id);
  last_fd_ = frames.source_fd;
  last_principal_ = principal;
  return principal;
}

void CurveGate::Close(const std::string& route, int fd) {
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  last_principal_ = nullptr;
  peers_.erase(route);
}

void CurveGate::Disconnected(int fd) {
  last_principal_ = nullptr;
  std::erase_if(peers_, [fd](const auto& p) { return p.second.fd == fd; });
}

Status CurveGate::Reload() {
  auto policy = AccessPolicy::Load(keys_file_);
  if (!policy.ok()) {
    spdlog::error(
        "rejoin-broker: keys file not reloaded, the old one stays: {}",
        policy.status().ToString());
    return policy.status();
  }
  {
    std::lock_guard lock(reload_mutex_);
    reloaded_ = std::make_shared<const AccessPolicy>(std::move(*policy));
  }
  reload_waiting_.store(true, std::memory_order_release);
  return Status::Ok();
}

std::vector<std::pair<std::string, int>> CurveGate::TakeReload() {
  std::vector<std::pair<std::string, int>> revoked;
  std::shared_ptr<const AccessPolicy> fresh;
  {
    std::lock_guard lock(reload_mutex_);
    fresh = std::move(reloaded_);
    reload_waiting_.store(false, std::memory_order_relaxed);
  }
  if (!fresh) return revoked;
  policy_ = std::move(fresh);
  last_principal_ = nullptr;  // pointed into the old file
  for (const auto& [route, peer] : peers_) {
    if (policy_->PrincipalOf(peer.key) == nullptr) {
      revoked.emplace_back(route, peer.fd);
    }
  }
  spdlog::info(
      "rejoin-broker: keys file {} reloaded: {} keys, {} "
      "connections closed",
      keys_file_, policy_->keys(), revoked.size());
  return revoked;
}

}  // namespace rejoin::broker_internal
