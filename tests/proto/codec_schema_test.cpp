// The wire schema (libproto/src/schema.h) against PROTOCOL.md: every
// message's and nested struct's fields, in order, as the spec's tables list
// them. The codec encodes, decodes and names fields from the schema alone, so
// this is the check that the code speaks the documented protocol field by
// field (the golden files check the bytes).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "schema.h"

namespace rejoin::codec_internal {
namespace {

// Table titles in PROTOCOL.md -> the field names of the table that follows.
// A title is a message heading ("### 4.3 REQUEST (3)" -> "REQUEST") or a
// nested struct ("**ServiceSpec** (nested array of 4):" or
// "### 5.1 ClientVector (nested array of 7)" -> the struct's name).
std::map<std::string, std::vector<std::string>> SpecTables() {
  std::ifstream in(REJOIN_PROTOCOL_MD);
  EXPECT_TRUE(in.good()) << REJOIN_PROTOCOL_MD;
  std::map<std::string, std::vector<std::string>> tables;
  std::string line, title;
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("### 4.", 0) == 0 || line.rfind("### 5.", 0) == 0) {
      std::istringstream words(line);
      std::string hashes, number, name;
      words >> hashes >> number >> name;
      title = name;
      in_table = false;
      continue;
    }
    if (line.rfind("**", 0) == 0 &&
        line.find("(nested array of") != std::string::npos) {
      title = line.substr(2, line.find("**", 2) - 2);
      in_table = false;
      continue;
    }
    if (title.empty()) continue;
    if (line.rfind("| # |", 0) == 0) {
      in_table = true;
      tables[title].clear();
      continue;
    }
    if (in_table && line.rfind("|---", 0) == 0) continue;
    if (in_table && line.rfind("| ", 0) == 0) {
      // "| 2 | seq | uint64 | ..." -> "seq"
      std::istringstream cells(line);
      std::string bar, index, bar2, field;
      cells >> bar >> index >> bar2 >> field;
      tables[title].push_back(field);
      continue;
    }
    if (in_table) {
      in_table = false;
      title.clear();
    }
  }
  return tables;
}

template <typename S>
std::vector<std::string> SchemaFields() {
  return {kFieldNames<S>.begin(), kFieldNames<S>.end()};
}

TEST(CodecSchema, EveryMessageHasTheFieldsOfItsTableInPROTOCOL) {
  const auto spec = SpecTables();
  EXPECT_EQ(spec.at("HELLO"), SchemaFields<Hello>());
  EXPECT_EQ(spec.at("WELCOME"), SchemaFields<Welcome>());
  EXPECT_EQ(spec.at("REQUEST"), SchemaFields<Request>());
  EXPECT_EQ(spec.at("RESPONSE"), SchemaFields<Response>());
  EXPECT_EQ(spec.at("ACK"), SchemaFields<Ack>());
  EXPECT_EQ(spec.at("HEARTBEAT"), SchemaFields<Heartbeat>());
  EXPECT_EQ(spec.at("STATE_EXCHANGE"), SchemaFields<StateExchange>());
  EXPECT_EQ(spec.at("RECOVER"), SchemaFields<Recover>());
  EXPECT_EQ(spec.at("PROBE"), SchemaFields<Probe>());
  EXPECT_EQ(spec.at("PROBE_REPLY"), SchemaFields<ProbeReply>());
  EXPECT_EQ(spec.at("ERROR"), SchemaFields<Error>());
  EXPECT_EQ(spec.at("GOODBYE"), SchemaFields<Goodbye>());
}

TEST(CodecSchema, EveryNestedStructHasTheFieldsOfItsTableInPROTOCOL) {
  const auto spec = SpecTables();
  EXPECT_EQ(spec.at("ServiceSpec"), SchemaFields<ServiceSpec>());
  EXPECT_EQ(spec.at("RecoverSession"), SchemaFields<RecoverSession>());
  EXPECT_EQ(spec.at("OpDecision"), SchemaFields<OpDecision>());
  EXPECT_EQ(spec.at("ClientVector"), SchemaFields<ClientVector>());
  EXPECT_EQ(spec.at("ServerVector"), SchemaFields<ServerVector>());
  EXPECT_EQ(spec.at("HeldOp"), SchemaFields<HeldOp>());
}

// Field positions and names as the semantic checks use them.
TEST(CodecSchema, MembersMapToTheirWirePositions) {
  static_assert(kIndex<&Request::session> == 0);
  static_assert(kIndex<&Request::flags> == 5);
  static_assert(kIndex<&Hello::services> == 5);
  static_assert(kName<&RecoverSession::release_below> == "release_below");
  EXPECT_EQ(kArity<Request>, 6u);
  EXPECT_EQ(kArity<ClientVector>, 7u);
}

}  // namespace
}  // namespace rejoin::codec_internal
