// Group messages on the node side: keys injected through
// NodeClient::OnGroupKeys (as the rekey, join and catch-up handlers do),
// both modes, a replay window per sender, the previous key's overlap, a
// removed member, restarts, and no TPM command per rekey.
#include <map>

#include "node/ked_fixture.h"

namespace kgr::testing {
namespace {

constexpr uint32_t kGroup = 0x00000042;
constexpr TopicId kRekeyTopic = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
constexpr TopicId kDataTopic = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20};

std::string DataTopic() {
  return GroupTopicName("kgr", kGroup, false, kDataTopic);
}

class GroupMessagesTest : public KedFixture {
 protected:
  void SetUp() override {
    node_options_.group_overlap_ms = 30'000;
    KedFixture::SetUp();
  }
  KedNode& Member() {
    KedNode& n = AddNode();
    OpenWithGroups(n);
    return n;
  }
  // (Re)starts the node's process with its group store.
  void OpenWithGroups(KedNode& n) {
    n.client.reset();
    n.ses.reset();
    groups_[n.n_id].reset();
    auto own = LoadOwnData(n.tpm);
    ASSERT_TRUE(own.ok());
    auto ses = SesKeysStore::Open(n.fs, "/ses", own->nk, n.n_id);
    auto grp = GroupStore::Open(n.fs, "/grp", own->nk, n.n_id);
    ASSERT_TRUE(ses.ok() && grp.ok());
    n.ses = std::move(*ses);
    groups_[n.n_id] = std::move(*grp);
    n.client = std::make_unique<NodeClient>(
        std::move(*own), n.tpm, *n.transport, *n.ses, clock_, node_options_);
    n.client->SetGroupStore(groups_[n.n_id].get());
    n.client->SetGroupMessageHandler(
        [this, id = n.n_id](const GroupMessage& m) {
          got_[id].push_back(
              std::to_string(m.sender) + ":" +
              std::string(m.data.span().begin(), m.data.span().end()));
        });
    ASSERT_TRUE(n.client->Start().ok());
  }
  static SecretBytes Key(uint8_t b) {
    SecretBytes k(kGroupKeySize);
    for (size_t i = 0; i < k.size(); ++i) k.data()[i] = b;
    return k;
  }
  // Hands `to` version `v` of the group key with the membership `members`.
  Status Rekey(KedNode& to, uint32_t v, std::vector<KedNode*> members,
               GroupMode mode = GroupMode::kGroupKey) {
    GroupKeyUpdate u;
    u.group_id = kGroup;
    u.mode = mode;
    u.key_version = v;
    u.group_key = Key(static_cast<uint8_t>(v));
    std::vector<GroupMemberKey> ms;
    for (KedNode* m : members) {
      ms.push_back({m->n_id, m->client->SigningPublicKey().value()});
    }
    u.members = std::move(ms);
    u.channel = GroupChannel{kRekeyTopic, kDataTopic, {}};
    return to.client->OnGroupKeys(std::move(u));
  }
  void RekeyAll(uint32_t v, std::vector<KedNode*> members,
                GroupMode mode = GroupMode::kGroupKey) {
    for (KedNode* m : members) ASSERT_TRUE(Rekey(*m, v, members, mode).ok());
  }
  void SendText(KedNode& n, const std::string& text) {
    ASSERT_TRUE(n.client->SendGroup(kGroup, SecretBytes(AsBytes(text))).ok());
    broker_.Pump();
  }
  // The last group message `n` published.
  Bytes LastFrameOf(KedNode& n) {
    Bytes last;
    for (const PublishedMessage& m : broker_.published()) {
      if (m.sender == NodeIdentity(n.n_id) && m.topic == DataTopic()) {
        last = m.payload;
      }
    }
    return last;
  }
  // Publishes `frame` on the group's topic as an outsider (replay, forgery).
  void Inject(const Bytes& frame) {
    if (!intruder_) {
      intruder_ = broker_.NewTransport("intruder");
      ASSERT_TRUE(intruder_->Connect().ok());
    }
    ASSERT_TRUE(intruder_->Publish(DataTopic(), frame).ok());
    broker_.Pump();
  }
  // A frame that member `forger` seals with the group key it holds but
  // that claims `victim` as its sender.
  Bytes Forge(KedNode& forger, KedNode& victim, uint32_t v, GroupMode mode) {
    FrameHeader h;
    h.type = FrameType::kGroupData;
    h.sender = victim.n_id;
    h.key_version = v;
    h.counter = clock_.NowUnixMicros() + 5'000'000;
    h.request_id = 1;
    SymmetricKeys keys =
        GroupDataKeys(Key(static_cast<uint8_t>(v)), kGroup, v).value();
    // The forger signs with its own key: the only one it has.
    StatusOr<GroupRecord> own = groups_[forger.n_id]->Get(0);
    EXPECT_TRUE(own.ok());
    return SealGroupData(h, kGroup, mode, AsBytes("forged"), keys,
                         &own->private_key)
        .value();
  }

  std::map<uint32_t, std::unique_ptr<GroupStore>> groups_;
  std::map<uint32_t, std::vector<std::string>> got_;
  std::unique_ptr<FakeTransport> intruder_;
};

TEST_F(GroupMessagesTest, EveryOtherMemberGetsEachMessageOnce) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  RekeyAll(1, {&a, &b, &c});
  SendText(a, "one");
  SendText(b, "two");
  EXPECT_EQ(got_[a.n_id],
            std::vector<std::string>{std::to_string(b.n_id) + ":two"});
  EXPECT_EQ(got_[b.n_id],
            std::vector<std::string>{std::to_string(a.n_id) + ":one"});
  EXPECT_EQ(got_[c.n_id].size(), 2u);
  ASSERT_EQ(a.client->Groups().size(), 1u);
  EXPECT_EQ(a.client->Groups()[0].key_version, 1u);
  EXPECT_EQ(a.client->Groups()[0].members.size(), 3u);
}

TEST_F(GroupMessagesTest, AReplayIsRefusedPerSenderAlsoAfterARestart) {
  KedNode& a = Member();
  KedNode& b = Member();
  RekeyAll(1, {&a, &b});
  SendText(a, "pay 10");
  Bytes frame = LastFrameOf(a);
  Inject(frame);
  EXPECT_EQ(got_[b.n_id].size(), 1u);
  OpenWithGroups(b);  // restart: the window comes back from grp_keys
  Inject(frame);
  EXPECT_EQ(got_[b.n_id].size(), 1u);
  clock_.AdvanceMillis(2000);
  SendText(a, "after");
  EXPECT_EQ(got_[b.n_id].size(), 2u);
}

TEST_F(GroupMessagesTest, GroupKeyModeLetsAMemberForgeAnotherSender) {
  // The documented weakness of the fast mode: c, a member, holds the group
  // key and can claim to be a.
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  RekeyAll(1, {&a, &b, &c});
  Inject(Forge(c, a, 1, GroupMode::kGroupKey));
  ASSERT_EQ(got_[b.n_id].size(), 1u);
  EXPECT_EQ(got_[b.n_id][0], std::to_string(a.n_id) + ":forged");
}

TEST_F(GroupMessagesTest, SenderAuthRefusesAForgedSender) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  RekeyAll(1, {&a, &b, &c}, GroupMode::kSenderAuth);
  Inject(Forge(c, a, 1, GroupMode::kSenderAuth));
  EXPECT_TRUE(got_[b.n_id].empty());
  // An unsigned frame (group-key mode) is refused in a sender_auth group.
  Inject(Forge(c, c, 1, GroupMode::kGroupKey));
  EXPECT_TRUE(got_[b.n_id].empty());
  SendText(a, "signed");
  EXPECT_EQ(got_[b.n_id],
            std::vector<std::string>{std::to_string(a.n_id) + ":signed"});
  // c's own signed messages pass.
  SendText(c, "mine");
  EXPECT_EQ(got_[b.n_id].size(), 2u);
}

TEST_F(GroupMessagesTest, ThePreviousKeyIsAcceptedDuringTheOverlapOnly) {
  KedNode& a = Member();
  KedNode& b = Member();
  RekeyAll(1, {&a, &b});
  ASSERT_TRUE(Rekey(b, 2, {&a, &b}).ok());  // a has not applied it yet
  SendText(a, "late");                      // under version 1
  EXPECT_EQ(got_[b.n_id].size(), 1u);
  EXPECT_EQ(b.client->Groups()[0].prev_version, 1u);
  RunFor(31'000, 1000);  // past group_overlap_ms
  EXPECT_EQ(b.client->Groups()[0].prev_version, 0u);
  SendText(a, "too late");
  EXPECT_EQ(got_[b.n_id].size(), 1u);
  ASSERT_TRUE(Rekey(a, 2, {&a, &b}).ok());
  SendText(a, "new key");
  EXPECT_EQ(got_[b.n_id].size(), 2u);
}

TEST_F(GroupMessagesTest, ARemovedMemberNeitherReadsNorIsHeard) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  RekeyAll(1, {&a, &b, &c});
  RekeyAll(2, {&a, &b});  // c removed: it keeps version 1
  SendText(a, "secret");
  EXPECT_TRUE(got_[c.n_id].empty());  // c holds no version 2
  EXPECT_EQ(got_[b.n_id].size(), 1u);
  SendText(c, "still here");           // under version 1, within the overlap
  EXPECT_EQ(got_[b.n_id].size(), 1u);  // c is no member any more
  // Even a frame c forges as a under the old key fails after the overlap.
  RunFor(31'000, 1000);
  Inject(Forge(c, a, 1, GroupMode::kGroupKey));
  EXPECT_EQ(got_[b.n_id].size(), 1u);
}

TEST_F(GroupMessagesTest, OlderOrConflictingKeysAreRefused) {
  KedNode& a = Member();
  RekeyAll(3, {&a});
  EXPECT_EQ(Rekey(a, 2, {&a}).code(), StatusCode::kFailedPrecondition);
  GroupKeyUpdate u;
  u.group_id = kGroup;
  u.key_version = 3;
  u.group_key = Key(9);  // another key under the same version
  EXPECT_EQ(a.client->OnGroupKeys(std::move(u)).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.client->SendGroup(kGroup + 1, SecretBytes(AsBytes("x"))).code(),
            StatusCode::kNotFound);
}

TEST_F(GroupMessagesTest, RekeysCostNoTpmCommandAndNoNvWrite) {
  KedNode& a = Member();
  KedNode& b = Member();
  RekeyAll(1, {&a, &b}, GroupMode::kSenderAuth);
  SendText(a, "warm");  // the signing key exists now
  const TpmCounters before = b.tpm.counters();
  for (uint32_t v = 2; v <= 50; ++v) {
    ASSERT_TRUE(Rekey(b, v, {&a, &b}, GroupMode::kSenderAuth).ok());
    ASSERT_TRUE(Rekey(a, v, {&a, &b}, GroupMode::kSenderAuth).ok());
    SendText(a, "m" + std::to_string(v));
  }
  const TpmCounters after = b.tpm.counters();
  EXPECT_EQ(after.tpm_commands, before.tpm_commands);
  EXPECT_EQ(after.nv_writes, before.nv_writes);
  EXPECT_EQ(got_[b.n_id].size(), 50u);
}

TEST_F(GroupMessagesTest, GroupStateAndSigningKeySurviveARestart) {
  KedNode& a = Member();
  KedNode& b = Member();
  RekeyAll(1, {&a, &b}, GroupMode::kSenderAuth);
  RekeyAll(2, {&a, &b}, GroupMode::kSenderAuth);
  Bytes pub = b.client->SigningPublicKey().value();
  OpenWithGroups(b);
  EXPECT_EQ(b.client->SigningPublicKey().value(), pub);
  ASSERT_EQ(b.client->Groups().size(), 1u);
  EXPECT_EQ(b.client->Groups()[0].key_version, 2u);
  EXPECT_EQ(b.client->Groups()[0].prev_version, 1u);
  SendText(a, "hello");
  SendText(b, "back");
  EXPECT_EQ(got_[b.n_id].size(), 1u);
  EXPECT_EQ(got_[a.n_id].size(), 1u);  // a verified b's signature
  ASSERT_TRUE(b.client->LeaveGroup(kGroup).ok());
  OpenWithGroups(b);
  EXPECT_TRUE(b.client->Groups().empty());
}

}  // namespace
}  // namespace kgr::testing
