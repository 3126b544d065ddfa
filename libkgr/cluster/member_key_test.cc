// The member key file and the wrapping of the domain key to a member.
#include <gtest/gtest.h>

#include <regex>

#include "kgr/cluster_membership.h"
#include "testing/fake_filesystem.h"

namespace kgr {
namespace {

TEST(MemberKey, MadeOnceSealedUnderTheNkAndReadBack) {
  testing::FakeFileSystem fs;
  RecordKeys nk = *SymmetricKeys::Generate();
  EXPECT_EQ(LoadMemberKey(fs, "/s/member_key", nk, false).status().code(),
            StatusCode::kNotFound);
  auto made = LoadMemberKey(fs, "/s/member_key", nk, true);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto again = LoadMemberKey(fs, "/s/member_key", nk, true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->public_key, made->public_key);
  EXPECT_EQ(again->private_key.span().size(), kX25519Size);
  Bytes file = *fs.ReadFile("/s/member_key");
  const auto priv = made->private_key.span();
  EXPECT_EQ(std::search(file.begin(), file.end(), priv.begin(), priv.end()),
            file.end());
  // Another NK (another machine's) or a flipped bit: refused.
  EXPECT_EQ(
      LoadMemberKey(fs, "/s/member_key", *SymmetricKeys::Generate(), false)
          .status()
          .code(),
      StatusCode::kDataLoss);
  file[10] ^= 1;
  ASSERT_TRUE(fs.WriteFileAtomic("/s/member_key", file, 0600).ok());
  EXPECT_EQ(LoadMemberKey(fs, "/s/member_key", nk, false).status().code(),
            StatusCode::kDataLoss);
  EXPECT_TRUE(std::regex_match(MemberFingerprint(made->public_key),
                               std::regex("([0-9a-f]{4}-){7}[0-9a-f]{4}")));
}

TEST(MemberKey, WrappedDomainKeyOpensOnlyForItsMemberLaneAndGeneration) {
  X25519KeyPair member = *GenerateX25519(), other = *GenerateX25519();
  DomainKey key = *NewDomainKey(0x51);
  key.generation = 4;
  auto wrapped = WrapDomainKey(key, 2, member.public_key);
  ASSERT_TRUE(wrapped.ok());
  auto back = UnwrapDomainKey(*wrapped, 0x51, 4, 2, member);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->keys.Equals(key.keys));
  EXPECT_EQ(back->generation, 4u);
  EXPECT_FALSE(UnwrapDomainKey(*wrapped, 0x51, 4, 2, other).ok());
  EXPECT_FALSE(UnwrapDomainKey(*wrapped, 0x51, 4, 3, member).ok());
  EXPECT_FALSE(UnwrapDomainKey(*wrapped, 0x51, 5, 2, member).ok());
  EXPECT_FALSE(UnwrapDomainKey(*wrapped, 0x52, 4, 2, member).ok());
  Bytes bad = *wrapped;
  bad.back() ^= 1;
  EXPECT_EQ(UnwrapDomainKey(bad, 0x51, 4, 2, member).status().code(),
            StatusCode::kDataLoss);
  EXPECT_FALSE(WrapDomainKey(key, 2, Bytes(5, 1)).ok());
}

}  // namespace
}  // namespace kgr
