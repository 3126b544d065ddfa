#include "kgr/ks_backup.h"

#include <gtest/gtest.h>

#include "kgr/key_server.h"
#include "ks/backup_schedule.h"
#include "testing/fake_filesystem.h"
#include "testing/fake_tpm.h"

namespace kgr {
namespace {

using testing::FakeFileSystem;
using testing::FakeTpm;

constexpr uint64_t kNowUs = 1'800'000'000'000'000;  // 2027

NodeDesc Node(uint32_t n_id, NodeState state) {
  NodeDesc n;
  n.n_id = n_id;
  n.entry_no = static_cast<uint16_t>(n_id & 0xff);
  n.state = state;
  n.allowed_peers = {n_id + 1};
  n.last_counter = 1000 + n_id;
  n.request_floor = 77;
  n.ntag = *RandomSecret(kRecordNtagSize);
  if (state == NodeState::kRegistered) {
    n.nksk = *SymmetricKeys::Generate();
    n.nksk_version = 3;
    n.topic2 = Topic(*RandomTopicId());
  }
  return n;
}

class KsBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    own_ = *InitKeyServer(old_tpm_, "127.0.0.1:8883", "kgr");
    nodes_ = *NodeDescStore::Open(fs_, "/old/node_desc", own_.nk,
                                  own_.identity.n_id);
    std::vector<NodeDesc> nodes;
    nodes.push_back(Node(0x11, NodeState::kRegistered));
    nodes.push_back(Node(0x22, NodeState::kAuthorized));
    nodes.push_back(Node(0x33, NodeState::kRevoked));
    ASSERT_TRUE(nodes_->PutAll(nodes).ok());
    key_ = *GenerateRecoveryKey();
    pub_ = *ParseRecoveryPublicKey(AsBytes(key_.public_pem), "pub");
    priv_ = *ParseRecoveryPrivateKey(key_.private_pem.span(), "priv");
  }

  FakeFileSystem fs_;
  FakeTpm old_tpm_;
  OwnData own_;
  std::unique_ptr<NodeDescStore> nodes_;
  RecoveryKeyPem key_;
  Bytes pub_;
  SecretBytes priv_;
};

TEST_F(KsBackupTest, RestoresIdentityNkAndEveryNodeOnANewTpm) {
  auto file = SealKsBackup(own_, *nodes_, pub_, 1234);
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto backup = OpenKsBackup(*file, priv_);
  ASSERT_TRUE(backup.ok()) << backup.status().message();
  EXPECT_EQ(backup->created_unix_ms, 1234u);
  ASSERT_EQ(backup->nodes.size(), 3u);

  FakeTpm new_tpm;  // another machine: another TPM, another KEDK
  ASSERT_TRUE(RestoreKsBackup(new_tpm, fs_, *backup, "/new", kNowUs).ok());
  auto own = LoadOwnData(new_tpm);
  ASSERT_TRUE(own.ok()) << own.status().message();
  EXPECT_EQ(own->identity.n_id, own_.identity.n_id);
  EXPECT_EQ(own->identity.own_topic, own_.identity.own_topic);
  EXPECT_EQ(own->identity.broker_address, "127.0.0.1:8883");
  EXPECT_TRUE(own->nk.Equals(own_.nk));
  auto restored = *NodeDescStore::Open(fs_, "/new/node_desc", own->nk,
                                       own->identity.n_id);
  ASSERT_EQ(restored->size(), 3u);
  NodeDesc a = *restored->Get(0x11);
  NodeDesc old = *nodes_->Get(0x11);
  EXPECT_EQ(a.state, NodeState::kRegistered);
  EXPECT_EQ(a.nksk_version, 3u);
  EXPECT_TRUE(a.nksk.Equals(old.nksk));
  EXPECT_TRUE(a.ntag.Equals(old.ntag));
  EXPECT_EQ(a.allowed_peers, old.allowed_peers);
  // Nothing from before the restore counts again.
  EXPECT_EQ(a.last_counter, kNowUs);
  EXPECT_EQ(a.request_floor, (kNowUs << 12) | 0xfff);
  EXPECT_EQ(restored->Get(0x33)->state, NodeState::kRevoked);
  EXPECT_FALSE(fs_.Exists("/new/node_desc.restoring"));
}

TEST_F(KsBackupTest, AWrongKeyOrAnyFlippedBitIsVerificationFailed) {
  Bytes file = *SealKsBackup(own_, *nodes_, pub_, 1);
  RecoveryKeyPem other = *GenerateRecoveryKey();
  auto wrong = OpenKsBackup(
      file, *ParseRecoveryPrivateKey(other.private_pem.span(), "other"));
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated);
  // Every byte after the magic and version (a flipped version is refused as
  // unknown before any crypto).
  for (size_t i = 9; i < file.size(); i += 7) {
    Bytes bad = file;
    bad[i] ^= 0x20;
    auto r = OpenKsBackup(bad, priv_);
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << "byte " << i;
  }
  Bytes cut(file.begin(), file.end() - 1);
  EXPECT_FALSE(OpenKsBackup(cut, priv_).ok());
  Bytes not_backup = file;
  not_backup[0] = 'X';
  EXPECT_EQ(OpenKsBackup(not_backup, priv_).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(KsBackupTest, RestoreRefusesAnOccupiedTpmOrStateDirAndLeavesNothing) {
  KsBackup backup = *OpenKsBackup(*SealKsBackup(own_, *nodes_, pub_, 1), priv_);
  // The old TPM holds an identity.
  Status st = RestoreKsBackup(old_tpm_, fs_, backup, "/again", kNowUs);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.message();
  EXPECT_FALSE(fs_.Exists("/again/node_desc"));
  // The state directory holds a store.
  FakeTpm fresh;
  st = RestoreKsBackup(fresh, fs_, backup, "/old", kNowUs);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.message();
  EXPECT_EQ(LoadOwnData(fresh).status().code(), StatusCode::kNotFound);
  // The TPM write fails: the restored store goes again.
  fresh.FailAllNvWrites(UnavailableError("NV worn out"));
  st = RestoreKsBackup(fresh, fs_, backup, "/new", kNowUs);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.message();
  EXPECT_FALSE(fs_.Exists("/new/node_desc"));
  EXPECT_FALSE(fs_.Exists("/new/node_desc.log"));
  EXPECT_FALSE(fs_.Exists("/new/node_desc.restoring"));
  fresh.FailAllNvWrites(std::nullopt);
  EXPECT_TRUE(RestoreKsBackup(fresh, fs_, backup, "/new", kNowUs).ok());
}

TEST_F(KsBackupTest, ScheduleWritesAfterChangesAtMostOncePerIntervalAndPrunes) {
  BackupSchedule schedule(fs_, {.dir = "/bk", .recovery_public = pub_,
                                .interval_ms = 1000, .keep = 2});
  auto files = [&] { return *fs_.ListDir("/bk"); };
  // The first call writes whatever the count.
  ASSERT_TRUE(schedule.Tick(own_, *nodes_, 5, 10'000).ok());
  EXPECT_EQ(files(), std::vector<std::string>{BackupFileName(10'000)});
  EXPECT_EQ(*schedule.last_path(), "/bk/" + BackupFileName(10'000));
  // No change: nothing; a change within the interval: not yet.
  ASSERT_TRUE(schedule.Tick(own_, *nodes_, 5, 10'200).ok());
  ASSERT_TRUE(schedule.Tick(own_, *nodes_, 6, 10'500).ok());
  EXPECT_EQ(files().size(), 1u);
  // The interval has passed since the last backup: now.
  ASSERT_TRUE(schedule.Tick(own_, *nodes_, 6, 11'000).ok());
  EXPECT_EQ(files().size(), 2u);
  // A failed write is retried at the next call; the old files stay.
  fs_.FailNth(FakeFileSystem::Op::kRename, 1, UnavailableError("disk"));
  EXPECT_FALSE(schedule.Tick(own_, *nodes_, 7, 30'000).ok());
  EXPECT_EQ(files().size(), 2u);
  ASSERT_TRUE(schedule.Tick(own_, *nodes_, 7, 30'001).ok());
  // keep = 2: the oldest went; the newest reads back with the new node.
  EXPECT_EQ(files(), (std::vector<std::string>{BackupFileName(11'000),
                                                BackupFileName(30'001)}));
  auto b = OpenKsBackup(*fs_.ReadFile("/bk/" + BackupFileName(30'001)), priv_);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->created_unix_ms, 30'001u);
  EXPECT_EQ(b->nodes.size(), 3u);
}

TEST(RecoveryKeyTest, PemRoundTripsAndOtherKeysAreRefusedByName) {
  RecoveryKeyPem k = *GenerateRecoveryKey();
  EXPECT_NE(k.public_pem.find("-----BEGIN PUBLIC KEY-----"), std::string::npos);
  auto pub = ParseRecoveryPublicKey(AsBytes(k.public_pem), "recovery.pub");
  ASSERT_TRUE(pub.ok()) << pub.status().message();
  auto priv = ParseRecoveryPrivateKey(k.private_pem.span(), "recovery.key");
  ASSERT_TRUE(priv.ok()) << priv.status().message();
  // The public key is the private key's.
  X25519KeyPair probe = *GenerateX25519();
  EXPECT_TRUE(X25519SharedSecret(*priv, probe.public_key)->span().size() ==
              kX25519Size);
  auto a = X25519SharedSecret(*priv, probe.public_key);
  auto b = X25519SharedSecret(probe.private_key, *pub);
  EXPECT_TRUE(std::equal(a->span().begin(), a->span().end(),
                         b->span().begin()));
  // A public key where the private one belongs, and garbage.
  auto wrong = ParseRecoveryPrivateKey(AsBytes(k.public_pem), "recovery.pub");
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("recovery.pub"), std::string::npos);
  EXPECT_FALSE(ParseRecoveryPublicKey(AsBytes("hello"), "x").ok());
}

}  // namespace
}  // namespace kgr
