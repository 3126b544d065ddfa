// DomainCodec: seals under the newest generation, opens under any held.
#include "cluster/domain_codec.h"

#include <gtest/gtest.h>

namespace kgr {
namespace {

DomainKey Key(uint32_t generation) {
  DomainKey k = *NewDomainKey(0x77);
  k.generation = generation;
  EXPECT_TRUE(k.keys.Prepare().ok());
  return k;
}

std::vector<DomainKey> Ring(const DomainKey& a) {
  std::vector<DomainKey> v;
  v.push_back(a.Clone());
  return v;
}

NodeDesc Node() {
  NodeDesc d;
  d.n_id = 9;
  d.ntag = SecretBytes(32);
  return d;
}

TEST(DomainCodec, SealsUnderTheNewestAndOpensUnderEveryGenerationHeld) {
  DomainKey g1 = Key(1), g2 = Key(2);
  DomainCodec old_only(Ring(g1));
  Bytes under_g1 = *old_only.Encode(Node());

  std::vector<DomainKey> both;
  both.push_back(g2.Clone());
  both.push_back(g1.Clone());
  DomainCodec rotating(std::move(both));
  EXPECT_EQ(rotating.generation(), 2u);
  EXPECT_EQ(rotating.generations(), (std::vector<uint32_t>{2, 1}));
  Bytes under_g2 = *rotating.Encode(Node());
  EXPECT_TRUE(rotating.Decode<NodeDesc>(under_g1).ok());
  EXPECT_TRUE(rotating.Decode<NodeDesc>(under_g2).ok());
  EXPECT_TRUE(rotating.Verify(RecordType::kNodeDesc, under_g1).ok());
  // The old generation alone opens nothing sealed under the new one.
  EXPECT_FALSE(old_only.Decode<NodeDesc>(under_g2).ok());

  // Retired: only the newest.
  rotating.Set(Ring(g2));
  EXPECT_FALSE(rotating.Decode<NodeDesc>(under_g1).ok());
  EXPECT_TRUE(rotating.Decode<NodeDesc>(under_g2).ok());
}

TEST(DomainCodec, StoppedWritesAreRefusedUntilTheNextSet) {
  DomainKey g1 = Key(1);
  DomainCodec codec(Ring(g1));
  Bytes sealed = *codec.Encode(Node());
  codec.StopWrites("removed");
  EXPECT_EQ(codec.Encode(Node()).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(codec.generation(), 0u);
  EXPECT_TRUE(codec.Decode<NodeDesc>(sealed).ok());  // reads still work
  codec.Set(Ring(g1));
  EXPECT_TRUE(codec.Encode(Node()).ok());
}

}  // namespace
}  // namespace kgr
