#include <gtest/gtest.h>

#include "kgr/records.h"

namespace kgr {
namespace {

SecretBytes RecordPattern(uint8_t start, size_t n) {
  SecretBytes s(n);
  for (size_t i = 0; i < n; ++i) s.data()[i] = static_cast<uint8_t>(start + i);
  return s;
}

class GroupRecordTest : public ::testing::Test {
 protected:
  RecordKeys keys_{RecordPattern(1, 32), RecordPattern(2, 32)};
  RecordCodec codec_{keys_, 0x0a0b0c0d};
};

TEST_F(GroupRecordTest, GroupRoundTrip) {
  GroupRecord g;
  g.group_id = 5;
  g.mode = 1;
  g.key_version = 9;
  g.prev_version = 8;
  g.prev_until_unix_ms = 1234;
  g.group_key = RecordPattern(3, 32);
  g.prev_group_key = RecordPattern(4, 32);
  g.path_keys = RecordPattern(5, 100);
  g.rekey_topic[0] = 0x31;
  g.data_topic[9] = 0x32;
  g.ks_sign_public[31] = 0x33;
  Bytes sealed = codec_.Encode(g).value();
  GroupRecord back = codec_.Decode<GroupRecord>(sealed).value();
  EXPECT_EQ(back.key(), uint64_t{5} << 32);
  EXPECT_EQ(back.kind(), GroupRecord::Kind::kGroup);
  EXPECT_EQ(back.key_version, 9u);
  EXPECT_EQ(back.prev_version, 8u);
  EXPECT_EQ(back.prev_until_unix_ms, 1234u);
  EXPECT_TRUE(back.group_key.Equals(g.group_key));
  EXPECT_TRUE(back.prev_group_key.Equals(g.prev_group_key));
  EXPECT_TRUE(back.path_keys.Equals(g.path_keys));
  EXPECT_EQ(back.rekey_topic, g.rekey_topic);
  EXPECT_EQ(back.data_topic, g.data_topic);
  EXPECT_EQ(back.ks_sign_public, g.ks_sign_public);
}

TEST_F(GroupRecordTest, MemberAndSigningKeyRoundTrip) {
  GroupRecord m;
  m.group_id = 5;
  m.member = 7;
  m.rx_counter = 42;
  m.public_key = Bytes(32, 0xab);
  GroupRecord back =
      codec_.Decode<GroupRecord>(codec_.Encode(m).value()).value();
  EXPECT_EQ(back.kind(), GroupRecord::Kind::kMember);
  EXPECT_EQ(back.rx_counter, 42u);
  EXPECT_EQ(back.public_key, m.public_key);

  GroupRecord k;
  k.public_key = Bytes(32, 0xcd);
  k.private_key = RecordPattern(9, 32);
  back = codec_.Decode<GroupRecord>(codec_.Encode(k).value()).value();
  EXPECT_EQ(back.kind(), GroupRecord::Kind::kSigningKey);
  EXPECT_TRUE(back.private_key.Equals(k.private_key));
}

TEST_F(GroupRecordTest, RefusesBadFieldsAndOtherOwners) {
  GroupRecord g;
  g.group_id = 5;
  g.group_key = RecordPattern(3, 31);
  EXPECT_FALSE(codec_.Encode(g).ok());
  g.group_key = RecordPattern(3, 32);
  g.prev_group_key = RecordPattern(4, 32);  // without prev_version
  EXPECT_FALSE(codec_.Encode(g).ok());
  g.prev_version = 1;
  Bytes sealed = codec_.Encode(g).value();
  RecordCodec other(keys_, 0x0a0b0c0e);
  EXPECT_EQ(other.Decode<GroupRecord>(sealed).status().code(),
            StatusCode::kDataLoss);
  sealed[sealed.size() / 2] ^= 1;
  EXPECT_EQ(codec_.Decode<GroupRecord>(sealed).status().code(),
            StatusCode::kDataLoss);
  // Another record type's bytes are not a grp_keys record.
  SesKey s;
  s.n_id = 5;
  EXPECT_FALSE(codec_.Decode<GroupRecord>(codec_.Encode(s).value()).ok());
}

}  // namespace
}  // namespace kgr
