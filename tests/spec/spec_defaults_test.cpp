// FLOWS.md §1 against the code: every default the table states is the
// default the code has. The table is read from the document itself, so a
// change on either side without the other fails here.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "client_impl.h"
#include "rejoin/broker/broker.h"
#include "rejoin/client/client.h"
#include "rejoin/proto/endpoint.h"
#include "rejoin/server/server.h"

namespace rejoin {
namespace {

using std::chrono::milliseconds;

// name column -> default column of the table under "## 1.".
std::map<std::string, std::string> DefaultsTable() {
  std::ifstream in(std::string(REJOIN_SOURCE_DIR) + "/libproto/FLOWS.md");
  EXPECT_TRUE(in.good()) << "cannot read FLOWS.md";
  std::map<std::string, std::string> rows;
  std::string line;
  bool in_section = false;
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      in_section = line.rfind("## 1. ", 0) == 0;
      continue;
    }
    if (!in_section) continue;
    if (line.rfind("|", 0) != 0) {
      if (in_table) break;  // the first table of the section only
      continue;
    }
    in_table = true;
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(1));
    std::string cell;
    while (std::getline(ss, cell, '|')) {
      const auto first = cell.find_first_not_of(' ');
      const auto last = cell.find_last_not_of(' ');
      cells.push_back(first == std::string::npos
                          ? std::string()
                          : cell.substr(first, last - first + 1));
    }
    if (cells.size() < 2 || cells[0] == "name" ||
        cells[0].rfind("---", 0) == 0) {
      continue;
    }
    rows[cells[0]] = cells[1];
  }
  return rows;
}

// "200 ms", "2 s", "7 days", "10 min": the first duration in the cell.
std::optional<milliseconds> Duration(const std::string& cell) {
  static const std::regex re(R"(^([0-9][0-9,]*)\s*(ms|s|min|days?)\b)");
  std::smatch m;
  if (!std::regex_search(cell, m, re)) return std::nullopt;
  std::string digits = m[1];
  digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
  const std::int64_t n = std::stoll(digits);
  const std::string unit = m[2];
  if (unit == "ms") return milliseconds(n);
  if (unit == "s") return milliseconds(n * 1000);
  if (unit == "min") return milliseconds(n * 60 * 1000);
  return milliseconds(n * 24 * 3600 * 1000);
}

std::optional<std::uint64_t> Count(const std::string& cell) {
  static const std::regex re(R"(^([0-9][0-9,]*)\s*$)");
  std::smatch m;
  if (!std::regex_search(cell, m, re)) return std::nullopt;
  std::string digits = m[1];
  digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
  return std::stoull(digits);
}

TEST(SpecDefaults, ParsesTheCellForms) {
  EXPECT_EQ(Duration("200 ms"), milliseconds(200));
  EXPECT_EQ(Duration("2 s"), milliseconds(2000));
  EXPECT_EQ(Duration("7 days"), milliseconds(7LL * 24 * 3600 * 1000));
  EXPECT_EQ(Duration("1 s (client), 100 ms (server)"), milliseconds(1000));
  EXPECT_EQ(Duration("3 × `H`"), std::nullopt);
  EXPECT_EQ(Count("1,024"), 1024u);
  EXPECT_EQ(Count("20 ms"), std::nullopt);
}

TEST(SpecDefaults, FlowsTableMatchesTheCode) {
  const std::map<std::string, std::string> rows = DefaultsTable();
  ASSERT_FALSE(rows.empty());
  const BrokerOptions broker;
  const ClientOptions client;
  const ServerOptions server;
  std::set<std::string> checked;
  auto duration = [&](const std::string& name) -> milliseconds {
    checked.insert(name);
    auto row = rows.find(name);
    EXPECT_NE(row, rows.end()) << "FLOWS.md §1 has no row '" << name << "'";
    if (row == rows.end()) return milliseconds(-1);
    std::optional<milliseconds> d = Duration(row->second);
    EXPECT_TRUE(d) << "row '" << name << "': no duration in '" << row->second
                   << "'";
    return d.value_or(milliseconds(-1));
  };
  auto count = [&](const std::string& name) -> std::uint64_t {
    checked.insert(name);
    auto row = rows.find(name);
    EXPECT_NE(row, rows.end()) << "FLOWS.md §1 has no row '" << name << "'";
    if (row == rows.end()) return 0;
    std::optional<std::uint64_t> n = Count(row->second);
    EXPECT_TRUE(n) << "row '" << name << "': no count in '" << row->second
                   << "'";
    return n.value_or(0);
  };

  const milliseconds h = duration("heartbeat interval `H`");
  EXPECT_EQ(h, broker.heartbeat);
  EXPECT_EQ(h, client.heartbeat);
  EXPECT_EQ(h, server.heartbeat);
  EXPECT_EQ(duration("probe delay `P`"), broker.probe);
  EXPECT_EQ(duration("client resend delay `R`"), client.resend_delay);
  EXPECT_EQ(duration("client resend backoff limit `R_max`"),
            client_internal::kMaxResendDelay);
  EXPECT_EQ(duration("ack delay"), client_internal::kAckDelay);
  EXPECT_EQ(count("ack batch"), client_internal::kAckBatch);
  // One connection life cycle for both endpoints (rejoin/proto/endpoint.h).
  const EndpointTimers endpoint;
  EXPECT_EQ(duration("handshake retry"), endpoint.handshake_retry);
  EXPECT_EQ(duration("refused retry"), endpoint.first_refused_retry);
  EXPECT_EQ(duration("fenced retry"), endpoint.fenced_retry);
  EXPECT_EQ(duration("relink delay"), endpoint.relink_delay);
  EXPECT_EQ(duration("lease"), broker.lease);
  EXPECT_EQ(duration("grace period `G`"), broker.grace);
  EXPECT_EQ(duration("server session expiry"), server.session_expiry);

  // Rows stated as multiples of another, or as per-party rules, are read
  // by people; a new row must be added to one list or the other.
  const std::set<std::string> not_numeric = {"peer timeout", "probe forgotten",
                                             "HELLO wait"};
  for (const auto& [name, value] : rows) {
    EXPECT_TRUE(checked.count(name) != 0 || not_numeric.count(name) != 0)
        << "FLOWS.md §1 row '" << name << "' (" << value
        << ") is not checked against the code";
  }
}

}  // namespace
}  // namespace rejoin
