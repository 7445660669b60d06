// A TCP relay on loopback that records every byte it passes, both ways: what
// an eavesdropper on the path (a loopback sniffer) would see. Endpoints
// connect to endpoint() instead of the target; the tap connects onward for
// each connection. One thread; stops and closes everything when destroyed.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rejoin::testing {

class TcpTap {
 public:
  // `target_port` on 127.0.0.1.
  explicit TcpTap(int target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd_ < 0 ||
        ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) !=
            0 ||
        ::listen(listen_fd_, 16) != 0) {
      std::abort();
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~TcpTap() {
    stop_ = true;
    thread_.join();
    for (auto [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    ::close(listen_fd_);
  }
  TcpTap(const TcpTap&) = delete;
  TcpTap& operator=(const TcpTap&) = delete;

  std::string endpoint() const {
    return "tcp://127.0.0.1:" + std::to_string(port_);
  }
  // Everything relayed so far, both directions.
  std::string seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  void Run() {
    char buf[64 * 1024];
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (auto [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) Accept();
      std::vector<bool> dead(pairs_.size(), false);
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const auto& pair = pairs_[(i - 1) / 2];
        const int to = fds[i].fd == pair.first ? pair.second : pair.first;
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          dead[(i - 1) / 2] = true;
          continue;
        }
        {
          std::lock_guard lock(mutex_);
          seen_.append(buf, static_cast<std::size_t>(n));
        }
        for (ssize_t off = 0; off < n;) {
          const ssize_t w =
              ::write(to, buf + off, static_cast<std::size_t>(n - off));
          if (w <= 0) break;
          off += w;
        }
      }
      // A connection closed on one side is closed on the other.
      for (std::size_t p = dead.size(); p-- > 0;) {
        if (!dead[p]) continue;
        ::close(pairs_[p].first);
        ::close(pairs_[p].second);
        pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(p));
      }
    }
  }
  void Accept() {
    const int in = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (in < 0) return;
    const int out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(target_port_));
    if (out < 0 ||
        ::connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(in);
      if (out >= 0) ::close(out);
      return;
    }
    pairs_.emplace_back(in, out);
  }

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::pair<int, int>> pairs_;  // the thread's
  mutable std::mutex mutex_;
  std::string seen_;
  std::thread thread_;
};

}  // namespace rejoin::testing
