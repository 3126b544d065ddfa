// The record fields of issue 19's session key rules: node_desc's
// request_floor, gen_keys tombstones and the ses_keys other key. Records
// without them keep the layout of older releases (the golden layouts in
// records_test.cc), and records with them round-trip.
#include <gtest/gtest.h>

#include "codec/record_samples_test.h"
#include "kgr/records.h"

namespace kgr {
namespace {

using record_samples::kOwner;
using record_samples::PatternKeys;

TEST(SessionRecords, NodeDescRequestFloorRoundTripsAndZeroKeepsTheOldLayout) {
  auto nk = PatternKeys(1);
  NodeDesc d;
  d.n_id = 5;
  d.ntag = SecretBytes(kRecordNtagSize);
  d.allowed_peers = {7};
  auto old_layout = EncodeRecord(d, nk, kOwner);
  d.request_floor = 0x0123456789abcdef;
  auto with_floor = EncodeRecord(d, nk, kOwner);
  ASSERT_TRUE(old_layout.ok() && with_floor.ok());
  EXPECT_EQ(with_floor->size(), old_layout->size() + 8);
  auto back = DecodeRecord<NodeDesc>(*with_floor, nk, kOwner);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->request_floor, d.request_floor);
  EXPECT_EQ(back->allowed_peers, d.allowed_peers);
  EXPECT_EQ(DecodeRecord<NodeDesc>(*old_layout, nk, kOwner)->request_floor, 0u);
}

TEST(SessionRecords, GenKeyTombstoneHoldsNoKey) {
  auto nk = PatternKeys(1);
  GenKey t;
  t.n_id1 = 3;
  t.n_id2 = 4;
  t.request_id = 99;
  t.step = kGenKeyTombstone;
  auto rec = EncodeRecord(t, nk, kOwner);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  auto back = DecodeRecord<GenKey>(*rec, nk, kOwner);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->tombstone());
  EXPECT_FALSE(back->nnsk.valid());
  EXPECT_EQ(back->n_id2, 4u);
  t.nnsk = PatternKeys(9);
  EXPECT_EQ(EncodeRecord(t, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  GenKey live = t.Clone();
  live.step = 5;
  live.nnsk = SymmetricKeys{};
  EXPECT_FALSE(EncodeRecord(live, nk, kOwner).ok()) << "a live key needs one";
}

TEST(SessionRecords, SesKeyOtherKeyRoundTripsAndAbsentKeepsTheOldLayout) {
  auto nk = PatternKeys(1);
  SesKey k;
  k.n_id = 8;
  k.key_version = 3;
  k.nnsk = PatternKeys(20);
  k.topic3 = TopicBytes{1};
  k.topic4 = TopicBytes{2};
  auto old_layout = EncodeRecord(k, nk, kOwner);
  k.other_version = 4;
  k.other_rx_counter = 123456;
  k.other_nnsk = PatternKeys(30);
  k.other_topic3 = TopicBytes{3};
  k.other_topic4 = TopicBytes{4};
  auto with_other = EncodeRecord(k, nk, kOwner);
  ASSERT_TRUE(old_layout.ok() && with_other.ok());
  EXPECT_EQ(with_other->size(), old_layout->size() + 4 + 8 + 2 * kKeySize + 20);
  auto back = DecodeRecord<SesKey>(*with_other, nk, kOwner);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->has_next());
  EXPECT_EQ(back->other_version, 4u);
  EXPECT_EQ(back->other_rx_counter, 123456u);
  EXPECT_TRUE(back->other_nnsk.Equals(k.other_nnsk));
  EXPECT_EQ(back->other_topic3, k.other_topic3);
  EXPECT_EQ(back->other_topic4, k.other_topic4);
  auto old = DecodeRecord<SesKey>(*old_layout, nk, kOwner);
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->other_nnsk.valid());
  EXPECT_FALSE(old->has_next() || old->has_previous());
}

}  // namespace
}  // namespace kgr
