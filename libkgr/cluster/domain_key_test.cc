// The domain key file and the --state URL.
#include <gtest/gtest.h>

#include "kgr/cluster.h"
#include "testing/fake_filesystem.h"

namespace kgr {
namespace {

RecordKeys MemberNk() { return *SymmetricKeys::Generate(); }

TEST(DomainKey, SealedUnderTheMembersNkAndReadBack) {
  testing::FakeFileSystem fs;
  RecordKeys nk = MemberNk();
  DomainKey key = *NewDomainKey(0x0a0b0c0d);
  key.generation = 3;
  ASSERT_TRUE(SaveDomainKey(fs, "/s/domain_key", key, nk).ok());
  auto file = fs.ReadFile("/s/domain_key");
  ASSERT_TRUE(file.ok());
  // The key bytes are not in the file.
  const Bytes enc(key.keys.RawEncKeyBytes().span().begin(),
                  key.keys.RawEncKeyBytes().span().end());
  EXPECT_EQ(std::search(file->begin(), file->end(), enc.begin(), enc.end()),
            file->end());
  auto back = LoadDomainKey(fs, "/s/domain_key", nk);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->domain_id, 0x0a0b0c0du);
  EXPECT_EQ(back->generation, 3u);
  EXPECT_TRUE(back->keys.Equals(key.keys));
  EXPECT_EQ(DomainCheckValue(*back), DomainCheckValue(key));
}

TEST(DomainKey, AnotherMembersNkOrADamagedFileIsRefused) {
  testing::FakeFileSystem fs;
  RecordKeys nk = MemberNk();
  DomainKey key = *NewDomainKey(7);
  ASSERT_TRUE(SaveDomainKey(fs, "/s/domain_key", key, nk).ok());
  EXPECT_EQ(LoadDomainKey(fs, "/s/domain_key", MemberNk()).status().code(),
            StatusCode::kDataLoss);
  Bytes file = *fs.ReadFile("/s/domain_key");
  for (size_t i = 0; i < file.size(); ++i) {
    Bytes bad = file;
    bad[i] ^= 0x01;
    ASSERT_TRUE(fs.WriteFileAtomic("/s/domain_key", bad, 0600).ok());
    EXPECT_EQ(LoadDomainKey(fs, "/s/domain_key", nk).status().code(),
              StatusCode::kDataLoss)
        << "byte " << i;
  }
  EXPECT_EQ(LoadDomainKey(fs, "/s/none", nk).status().code(),
            StatusCode::kNotFound);
}

TEST(DomainKey, CheckValueDiffersPerKeyAndGeneration) {
  DomainKey a = *NewDomainKey(7);
  DomainKey b = *NewDomainKey(7);
  EXPECT_NE(DomainCheckValue(a), DomainCheckValue(b));
  DomainKey a2 = a.Clone();
  a2.generation = 2;
  EXPECT_NE(DomainCheckValue(a), DomainCheckValue(a2));
}

TEST(EtcdStateUrl, ParsesEndpointsAndPrefix) {
  auto u = ParseEtcdStateUrl("etcd://127.0.0.1:2379,10.0.0.2:2379/kgr/ked1");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->endpoints,
            (std::vector<std::string>{"127.0.0.1:2379", "10.0.0.2:2379"}));
  EXPECT_EQ(u->prefix, "/kgr/ked1");
  EXPECT_TRUE(IsEtcdStateUrl("etcd://h:1/p"));
  EXPECT_FALSE(IsEtcdStateUrl("/var/lib/kgr"));
}

TEST(EtcdStateUrl, RefusesWhatIsNotOne) {
  for (const char* bad :
       {"etcd://", "etcd://h:1", "etcd://h:1/", "etcd://h/p", "etcd://:1/p",
        "etcd://h:x/p", "etcd://h:1,/p", "http://h:1/p", "etcd://h:1/p/"}) {
    auto u = ParseEtcdStateUrl(bad);
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace kgr
