#include "kgr/group_rekey.h"

#include <gtest/gtest.h>

namespace kgr {
namespace {

SecretBytes Filled(uint8_t v) {
  SecretBytes s(kGroupSecretSize);
  for (auto& b : s.mutable_span()) b = v;
  return s;
}

GroupRekey SampleRekey(size_t entries) {
  GroupRekey r;
  r.group_id = 9;
  r.epoch = 4;
  r.depth = 8;
  for (size_t i = 0; i < entries; ++i) {
    RekeyEntry e;
    e.level = 1;
    e.position = static_cast<uint32_t>(i / 4);
    e.child_slot = static_cast<uint8_t>(i % 4);
    e.version = 3;
    e.wrapped.fill(static_cast<uint8_t>(i));
    r.entries.push_back(e);
  }
  return r;
}

struct Signer {
  Ed25519KeyPair pair = *GenerateEd25519();
  uint64_t counter = 100;
  StatusOr<std::vector<Bytes>> Seal(const GroupRekey& r) {
    return SealGroupRekey(r, 77, pair.private_key, [&] { return counter++; });
  }
};

TEST(GroupRekeyCodecTest, SealOpenRoundTrip) {
  Signer ks;
  auto frames = ks.Seal(SampleRekey(6));
  ASSERT_TRUE(frames.ok());
  ASSERT_EQ(frames->size(), 1u);
  const Bytes& f = (*frames)[0];
  EXPECT_EQ(f.size(), kFrameHeaderSize + kRekeyBodyFixedSize +
                          6 * kRekeyEntrySize + kEd25519SignatureSize);
  FrameHeader h;
  auto part = OpenGroupRekey(f, ks.pair.public_key, &h);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(h.type, FrameType::kGroupRekey);
  EXPECT_EQ(h.sender, 77u);
  EXPECT_EQ(h.key_version, 4u);
  EXPECT_EQ(h.counter, 100u);
  EXPECT_EQ(part->entries.size(), 6u);
  EXPECT_EQ(part->entries[5].child_slot, 1);
  EXPECT_EQ(part->entries[5].wrapped[0], 5);
}

TEST(GroupRekeyCodecTest, EveryFlippedBitIsRefused) {
  Signer ks;
  Bytes f = (*ks.Seal(SampleRekey(2)))[0];
  for (size_t i = 0; i < f.size(); ++i) {
    Bytes bad = f;
    bad[i] ^= 0x01;
    FrameHeader h;
    EXPECT_FALSE(OpenGroupRekey(bad, ks.pair.public_key, &h).ok()) << i;
  }
  Signer other;
  FrameHeader h;
  auto wrong = OpenGroupRekey(f, other.pair.public_key, &h);
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated);
}

TEST(GroupRekeyCodecTest, LargeRekeysComeInParts) {
  Signer ks;
  GroupRekey r = SampleRekey(2 * kMaxRekeyEntriesPerPart + 1);
  for (size_t i = 0; i < r.entries.size(); ++i) {
    r.entries[i].level = 1;
    r.entries[i].position = static_cast<uint32_t>(i / 4);
  }
  auto frames = ks.Seal(r);
  ASSERT_TRUE(frames.ok());
  ASSERT_EQ(frames->size(), 3u);
  size_t total = 0;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_LE((*frames)[i].size(), 65535u);
    FrameHeader h;
    auto part = OpenGroupRekey((*frames)[i], ks.pair.public_key, &h);
    ASSERT_TRUE(part.ok());
    EXPECT_EQ(part->part, i);
    EXPECT_EQ(part->parts, 3);
    total += part->entries.size();
  }
  EXPECT_EQ(total, r.entries.size());
}

TEST(GroupRekeyCodecTest, ParseChecksBoundsAndOrder) {
  GroupRekeyPart p;
  p.group_id = 1;
  p.epoch = 2;
  p.depth = 2;
  p.entries.resize(2);
  p.entries[0].level = 1;
  p.entries[1].level = 2;
  Bytes ok;
  p.EncodeTo(&ok);
  EXPECT_TRUE(GroupRekeyPart::Parse(ok).ok());
  auto refused = [](GroupRekeyPart q) {
    Bytes b;
    q.EncodeTo(&b);
    return !GroupRekeyPart::Parse(b).ok();
  };
  GroupRekeyPart q = p;
  q.entries[1].level = 3;  // above the root
  EXPECT_TRUE(refused(q));
  q = p;
  q.entries[1].position = 1;  // the root is (2, 0)
  EXPECT_TRUE(refused(q));
  q = p;
  std::swap(q.entries[0], q.entries[1]);
  EXPECT_TRUE(refused(q));
  q = p;
  q.entries[0].child_slot = 4;
  EXPECT_TRUE(refused(q));
  q = p;
  q.part = 1;  // of 1
  EXPECT_TRUE(refused(q));
  q = p;
  q.depth = 17;
  EXPECT_TRUE(refused(q));
  q = p;
  q.entries[0].level = 0;
  EXPECT_TRUE(refused(q));
  Bytes longer = ok;
  longer.push_back(0);
  EXPECT_FALSE(GroupRekeyPart::Parse(longer).ok());
  EXPECT_FALSE(
      GroupRekeyPart::Parse(std::span<const uint8_t>(ok).first(ok.size() - 1))
          .ok());
}

TEST(GroupRekeyCodecTest, PathRoundTripAndBounds) {
  GroupPath p;
  p.group_id = 3;
  p.epoch = 8;
  p.depth = 2;
  p.leaf_position = 15;
  for (uint8_t i = 0; i < 3; ++i) p.keys.push_back({i + 1u, Filled(i)});
  Bytes b;
  p.EncodeTo(&b);
  EXPECT_EQ(b.size(), 13u + 3 * 36);
  auto back = GroupPath::Parse(b);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->leaf_position, 15u);
  EXPECT_TRUE(back->keys[2].secret.Equals(p.keys[2].secret));
  EXPECT_EQ(back->keys[2].version, 3u);
  b[12] = 16;  // leaf position 16 of a depth-2 tree
  EXPECT_FALSE(GroupPath::Parse(b).ok());
  WipeVector(b);
}

TEST(GroupRekeyCodecTest, WrapOpensOnlyInItsPlace) {
  SecretBytes child = Filled(1);
  auto kek = GroupNodeKek(child, 3, 0, 5, 1);
  ASSERT_TRUE(kek.ok());
  WrapPlace place{3, 8, 1, 1, 4, 1, 1};
  SecretBytes secret = Filled(9);
  auto wrapped = WrapGroupSecret(*kek, place, secret);
  ASSERT_TRUE(wrapped.ok());
  auto opened = UnwrapGroupSecret(*kek, place, *wrapped);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(opened->Equals(secret));
  for (int field = 0; field < 7; ++field) {
    WrapPlace moved = place;
    uint32_t* fields[] = {&moved.group_id,     &moved.epoch,   nullptr,
                          &moved.position,     &moved.version, nullptr,
                          &moved.child_version};
    if (field == 2)
      moved.level = 2;
    else if (field == 5)
      moved.child_slot = 2;
    else
      ++*fields[field];
    EXPECT_EQ(UnwrapGroupSecret(*kek, moved, *wrapped).status().code(),
              StatusCode::kUnauthenticated)
        << field;
  }
  auto other = GroupNodeKek(child, 3, 0, 5, 2);  // another version
  EXPECT_FALSE(UnwrapGroupSecret(*other, place, *wrapped).ok());
}

TEST(GroupRekeyCodecTest, PlainFramesOfTypeGroupRekeyAreRefused) {
  FrameHeader h;
  h.type = FrameType::kGroupRekey;
  SymmetricKeys keys = *SymmetricKeys::Generate();
  EXPECT_FALSE(SealFrame(h, Bytes{1}, keys).ok());
  EXPECT_EQ(FrameTypeName(FrameType::kGroupRekey), "group_rekey");
}

}  // namespace
}  // namespace kgr
