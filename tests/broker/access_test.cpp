// The keys file (broker/src/access.h) and key files
// (rejoin/transport/curve.h): what parses, what each error names, and what
// the rules allow.
#include "access.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "rejoin/transport/curve.h"
#include "support/temp_dir.h"

namespace rejoin::broker_internal {
namespace {

std::string NewKey() {
  auto pair = transport::GenerateKeyPair();
  EXPECT_TRUE(pair.ok());
  return pair->public_key;
}

TEST(AccessPolicy, RulesAllowOnlyWhatTheySay) {
  const std::string a = NewKey();
  const std::string a2 = NewKey();
  const std::string b = NewKey();
  auto p = AccessPolicy::Parse(
      "# comment\n"
      "principal alice key " +
          a +
          "\n"
          "principal alice key " +
          a2 +
          "   # rotation: both keys work\n"
          "\n"
          "principal billing key " +
          b +
          "\n"
          "allow alice call pay.*\n"
          "allow * call echo\n"
          "allow billing serve pay.*\n",
      "keys");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_NE(p->PrincipalOf(a), nullptr);
  EXPECT_EQ(*p->PrincipalOf(a), "alice");
  EXPECT_EQ(*p->PrincipalOf(a2), "alice");
  EXPECT_EQ(*p->PrincipalOf(b), "billing");
  EXPECT_EQ(p->PrincipalOf(NewKey()), nullptr);
  EXPECT_TRUE(p->MayCall("alice", "pay.charge"));
  EXPECT_TRUE(p->MayCall("alice", "echo"));
  EXPECT_TRUE(p->MayCall("billing", "echo"));
  EXPECT_FALSE(p->MayCall("billing", "pay.charge"));
  EXPECT_FALSE(p->MayServe("alice", "pay.charge"));
  EXPECT_TRUE(p->MayServe("billing", "pay.refund"));
  EXPECT_FALSE(p->MayServe("billing", "echo"));
  EXPECT_FALSE(p->MayCall("alice", "payx"));
}

TEST(AccessPolicy, ErrorsNameTheLine) {
  const std::string k = NewKey();
  struct Case {
    std::string text;
    std::string line;
    std::string why;
  };
  const Case cases[] = {
      {"principal alice key short\n", "keys:1:", "z85"},
      {"\nprincipal al/ice key " + k + "\n", "keys:2:", "name"},
      {"principal alice " + k + "\n", "keys:1:", "expected"},
      {"principal a key " + k + "\nprincipal b key " + k + "\n",
       "keys:2:", "twice"},
      {"allow alice call echo\n", "keys:1:", "no key"},
      {"principal a key " + k + "\nallow a invoke echo\n",
       "keys:2:", "call|serve"},
      {"deny a call echo\n", "keys:1:", "unknown rule"},
  };
  for (const Case& c : cases) {
    auto p = AccessPolicy::Parse(c.text, "keys");
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(c.line), std::string::npos)
        << p.status().message();
    EXPECT_NE(p.status().message().find(c.why), std::string::npos)
        << p.status().message();
  }
}

TEST(AccessPolicy, IdsBelongToThePrincipalNamedInFront) {
  EXPECT_TRUE(IdOwnedBy("alice/s1", "alice"));
  EXPECT_FALSE(IdOwnedBy("alice/s1", "alic"));
  EXPECT_FALSE(IdOwnedBy("alicex/s1", "alice"));
  EXPECT_FALSE(IdOwnedBy("alice/", "alice"));
  EXPECT_FALSE(IdOwnedBy("alice", "alice"));
  EXPECT_FALSE(IdOwnedBy("s1", "alice"));
  EXPECT_TRUE(IdOwnedBy("anything", ""));  // no CURVE: anonymous
}

TEST(KeyFile, WrittenPrivateAndReadBack) {
  testing::TempDir dir;
  auto pair = transport::GenerateKeyPair();
  ASSERT_TRUE(pair.ok());
  const std::string path = dir.Sub("k");
  ASSERT_TRUE(transport::WriteKeyFile(path, *pair, true).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto read = transport::ReadKeyFile(path, true);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->public_key, pair->public_key);
  EXPECT_EQ(read->secret_key, pair->secret_key);
  // Never overwritten.
  EXPECT_FALSE(transport::WriteKeyFile(path, *pair, true).ok());
  // Readable by others: refused as a secret key file.
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  EXPECT_EQ(transport::ReadKeyFile(path, true).status().code(),
            ErrorCode::kInvalidArgument);
  // A public key file is no key pair.
  ASSERT_TRUE(transport::WriteKeyFile(path + ".pub", *pair, false).ok());
  EXPECT_TRUE(transport::ReadKeyFile(path + ".pub", false).ok());
  EXPECT_FALSE(transport::ReadKeyFile(path + ".pub", true).ok());
}

TEST(KeyFile, MismatchedPairAndBadLinesAreRefused) {
  testing::TempDir dir;
  auto a = transport::GenerateKeyPair();
  auto b = transport::GenerateKeyPair();
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string path = dir.Sub("k");
  {
    std::ofstream out(path);
    out << "public-key " << a->public_key << "\nsecret-key " << b->secret_key
        << "\n";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto r = transport::ReadKeyFile(path, true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not belong"), std::string::npos);
  {
    std::ofstream out(path);
    out << "public-key " << a->public_key << "\nsecret " << a->secret_key
        << "\n";
  }
  r = transport::ReadKeyFile(path, true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(":2:"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(transport::ReadKeyFile(dir.Sub("absent"), true).status().code(),
            ErrorCode::kNotFound);
}

TEST(KeyFile, NulBytesDirectoriesAndHugeFilesAreRefused) {
  auto a = transport::GenerateKeyPair();
  ASSERT_TRUE(a.ok());
  // libzmq's decoder stops at a NUL: five valid characters and a NUL would
  // otherwise pass for a 40-character key.
  std::string nul_key = a->public_key;
  nul_key[5] = '\0';
  EXPECT_FALSE(transport::ValidZ85Key(nul_key));
  EXPECT_FALSE(
      transport::ParseKeyFile("public-key " + nul_key + "\n", "k", false).ok());
  std::string text = transport::KeyFileText(*a, true);
  EXPECT_TRUE(transport::ParseKeyFile(text, "k", true).ok());
  text.insert(text.find("secret-key"), std::string("#\0\n", 3));
  auto r = transport::ParseKeyFile(text, "k", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("k:3: a NUL byte"), std::string::npos)
      << r.status().message();

  testing::TempDir dir;
  EXPECT_EQ(transport::ReadKeyFile(dir.path(), false).status().code(),
            ErrorCode::kInvalidArgument);
  const std::string big = dir.Sub("big");
  {
    std::ofstream out(big);
    out << transport::KeyFileText(*a, false)
        << std::string(transport::kMaxKeyFileBytes, '#') << "\n";
  }
  r = transport::ReadKeyFile(big, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a key file"), std::string::npos);
}

}  // namespace
}  // namespace rejoin::broker_internal
