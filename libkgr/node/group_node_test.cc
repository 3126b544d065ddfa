// The node's group procedures against the real KS over the fake broker:
// group_join at creation and at a join, group_rekey at leaves, batches and
// revocations, group_sync_req/ans for a member that was offline or missed a
// rekey, the removal seen through a rekey, old rekeys refused, and the
// secrecy of both directions checked with the keys a member really holds.
#include <gtest/gtest.h>

#include "group/member_keys.h"
#include "kgr/group_rekey.h"
#include "ks/group_table.h"
#include "node/group_fixture.h"

namespace kgr::testing {
namespace {

class GroupNodeTest : public GroupKedFixture {
 protected:
  void SetUp() override {
    ks_options_.group_batch_ms = 0;  // every change rekeys at once
    GroupKedFixture::SetUp();
  }
  // The member keys `n` has stored for the group (what a copy of its state
  // directory would hold).
  group::GroupMemberKeys StoredKeys(const KedNode& n, uint32_t group_id) {
    auto rec = StoredGroup(n, group_id);
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    auto path = GroupPath::Parse(rec->path_keys.span());
    EXPECT_TRUE(path.ok()) << path.status().ToString();
    return group::GroupMemberKeys::FromPath(std::move(*path)).value();
  }
  // Does `keys` open the group message `frame`?
  static bool Opens(const group::GroupMemberKeys& keys, uint32_t group_id,
                    const Bytes& frame, uint64_t now_ms) {
    auto h = PeekFrameHeader(frame);
    if (!h.ok()) return false;
    const SymmetricKeys* k = keys.DataKeysFor(h->key_version, now_ms);
    if (k == nullptr) return false;
    FrameHeader opened;
    return OpenGroupData(frame, *k, group_id, GroupMode::kGroupKey, {}, &opened)
        .ok();
  }
  // The KS's rekey frames of the group, in order.
  std::vector<PublishedMessage> RekeyFrames() { return PublishedOn("/rekey/"); }
  Bytes LastDataFrame() { return PublishedOn("/data/").back().payload; }
};

TEST_F(GroupNodeTest, MembersJoinAndTalkOnTheKsDataTopic) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  const uint32_t g = Create("lights", {&a, &b, &c});
  ASSERT_TRUE(Converged(g, {&a, &b, &c}));
  ASSERT_TRUE(SendText(a, g, "on").ok());
  EXPECT_EQ(got_[b.n_id], std::vector<std::string>{"on"});
  EXPECT_EQ(got_[c.n_id], std::vector<std::string>{"on"});
  // The frame went to the data topic the KS chose, not a derived one.
  auto desc = ks_groups_->Get(g).value();
  EXPECT_EQ(PublishedOn("/data/").back().topic,
            GroupTopicName("kgr", g, false, desc.data_topic));
}

TEST_F(GroupNodeTest, ALeaveIsOneRekeyThatTheRemovedMemberCannotOpen) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  const uint32_t g = Create("g", {&a, &b, &c});
  ASSERT_TRUE(Converged(g, {&a, &b, &c}));
  // c's whole state as it was: everything it ever received.
  group::GroupMemberKeys kept = StoredKeys(c, g);
  const size_t rekeys_before = RekeyFrames().size();
  ASSERT_EQ(Change("g", false, {&c}).status, 0);
  ASSERT_TRUE(Converged(g, {&a, &b}));
  EXPECT_EQ(RekeyFrames().size(), rekeys_before + 1);  // published once
  RunFor(500);
  EXPECT_EQ(VersionAt(c, g), 0u);  // c was told and forgot the group
  ASSERT_TRUE(SendText(a, g, "after").ok());
  EXPECT_EQ(got_[b.n_id].back(), "after");
  EXPECT_TRUE(got_[c.n_id].empty());
  // With its kept keys c can neither follow the rekey nor read the message.
  const GroupDesc desc = ks_groups_->Get(g).value();
  const Ed25519KeyPair signer = Ed25519FromSeed(desc.sign_key.span()).value();
  FrameHeader h;
  auto part =
      OpenGroupRekey(RekeyFrames().back().payload, signer.public_key, &h);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(kept.Apply(*part, clock_.NowUnixMillis()).value(),
            group::RekeyOutcome::kCannotOpen);
  EXPECT_FALSE(Opens(kept, g, LastDataFrame(), clock_.NowUnixMillis()));
  EXPECT_TRUE(
      Opens(StoredKeys(b, g), g, LastDataFrame(), clock_.NowUnixMillis()));
}

TEST_F(GroupNodeTest, AJoinerCannotReadWhatWasSentBeforeItJoined) {
  KedNode& a = Member();
  KedNode& b = Member();
  const uint32_t g = Create("g", {&a, &b});
  ASSERT_TRUE(Converged(g, {&a, &b}));
  ASSERT_TRUE(SendText(a, g, "before").ok());
  const Bytes before = LastDataFrame();
  KedNode& d = Member();
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  ASSERT_TRUE(Converged(g, {&a, &b, &d}));
  EXPECT_FALSE(Opens(StoredKeys(d, g), g, before, clock_.NowUnixMillis()));
  // Handed the old frame, d drops it.
  d.client->HandleMessage(PublishedOn("/data/").back().topic, before);
  EXPECT_TRUE(got_[d.n_id].empty());
  // And the members hear the joiner (a sender they learn from its key).
  ASSERT_TRUE(SendText(d, g, "hi").ok());
  EXPECT_EQ(got_[a.n_id], std::vector<std::string>{"hi"});
  EXPECT_EQ(got_[b.n_id].back(), "hi");
}

TEST_F(GroupNodeTest, JoinsAndLeavesInTheWindowAreOneRekey) {
  ks_options_.group_batch_ms = 500;
  RestartKs();
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& d = Member();
  KedNode& e = Member();
  const uint32_t g = Create("g", {&a, &b});
  ASSERT_TRUE(Converged(g, {&a, &b}));
  const uint32_t v0 = KsVersion(g);
  const size_t rekeys_before = RekeyFrames().size();
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  ASSERT_EQ(Change("g", true, {&e}).status, 0);
  ASSERT_TRUE(Converged(g, {&a, &b, &d, &e}));
  EXPECT_EQ(KsVersion(g), v0 + 1);
  EXPECT_EQ(RekeyFrames().size(), rekeys_before + 1);
  ASSERT_TRUE(SendText(e, g, "batch").ok());
  for (KedNode* n : {&a, &b, &d}) {
    EXPECT_EQ(got_[n->n_id], std::vector<std::string>{"batch"});
  }
}

TEST_F(GroupNodeTest, AJoinWhoseBatchDiedWithTheKsIsAppliedAfterRestart) {
  ks_options_.group_batch_ms = 500;
  RestartKs();
  KedNode& a = Member();
  KedNode& d = Member();
  const uint32_t g = Create("g", {&a});
  ASSERT_TRUE(Converged(g, {&a}));
  const uint32_t v0 = KsVersion(g);
  // The join is written; the KS stops inside its batch window.
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  RestartKs();
  ASSERT_TRUE(Converged(g, {&a, &d}));
  EXPECT_EQ(KsVersion(g), v0 + 1);
  ASSERT_TRUE(SendText(a, g, "kept").ok());
  EXPECT_EQ(got_[d.n_id], std::vector<std::string>{"kept"});
}

TEST_F(GroupNodeTest, RevocationRekeysEveryGroupOfTheNode) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  const uint32_t g1 = Create("one", {&a, &b, &c});
  const uint32_t g2 = Create("two", {&a, &c});
  ASSERT_TRUE(Converged(g1, {&a, &b, &c}));
  ASSERT_TRUE(Converged(g2, {&a, &c}));
  group::GroupMemberKeys kept1 = StoredKeys(c, g1);
  group::GroupMemberKeys kept2 = StoredKeys(c, g2);
  const uint32_t v1 = KsVersion(g1), v2 = KsVersion(g2);
  int notified = 0;
  ASSERT_TRUE(ks_->RevokeNode(c.n_id, &notified).ok());
  ASSERT_TRUE(Converged(g1, {&a, &b}));
  ASSERT_TRUE(Converged(g2, {&a}));
  EXPECT_EQ(KsVersion(g1), v1 + 1);
  EXPECT_EQ(KsVersion(g2), v2 + 1);
  ASSERT_TRUE(SendText(a, g1, "one").ok());
  EXPECT_FALSE(Opens(kept1, g1, LastDataFrame(), clock_.NowUnixMillis()));
  ASSERT_TRUE(SendText(a, g2, "two").ok());
  EXPECT_FALSE(Opens(kept2, g2, LastDataFrame(), clock_.NowUnixMillis()));
  EXPECT_EQ(got_[b.n_id], std::vector<std::string>{"one"});
  EXPECT_TRUE(got_[c.n_id].empty());
}

TEST_F(GroupNodeTest, AMemberThatWasOfflineCatchesUpAtStart) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& c = Member();
  KedNode& d = Member();
  const uint32_t g = Create("g", {&a, &b, &c});
  ASSERT_TRUE(Converged(g, {&a, &b, &c}));
  // b is down and its broker session is lost while two rekeys happen.
  b.client.reset();
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  ASSERT_EQ(Change("g", false, {&c}).status, 0);
  RunFor(500);
  broker_.DropQueuedFor(b.transport->name());
  const uint32_t missed_from = StoredGroup(b, g)->key_version;
  ASSERT_GE(KsVersion(g), missed_from + 2);
  OpenWithGroups(b);  // asks for its path at start
  ASSERT_TRUE(Converged(g, {&a, &b, &d}));
  ASSERT_TRUE(SendText(a, g, "welcome back").ok());
  EXPECT_EQ(got_[b.n_id], std::vector<std::string>{"welcome back"});
}

TEST_F(GroupNodeTest, AMissedRekeyIsBridgedBySync) {
  KedNode& a = Member();
  KedNode& b = Member();
  const uint32_t g = Create("g", {&a, &b});
  ASSERT_TRUE(Converged(g, {&a, &b}));
  KedNode& d = Member();
  KedNode& e = Member();
  // b's copy of the next rekey is lost; then it sees a rekey two ahead.
  b.transport->SimulateDisconnect();
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  broker_.Pump();
  broker_.DropQueuedFor(b.transport->name());
  b.transport->SimulateReconnect();
  ASSERT_EQ(Change("g", true, {&e}).status, 0);
  ASSERT_TRUE(Converged(g, {&a, &b, &d, &e}));
  ASSERT_TRUE(SendText(e, g, "x").ok());
  EXPECT_EQ(got_[b.n_id], std::vector<std::string>{"x"});
}

TEST_F(GroupNodeTest, ALostJoinIsRepairedByAskingForAllGroups) {
  node_options_.group_resync_ms = 10'000;
  KedNode& a = Member();
  KedNode& d = Member();
  const uint32_t g = Create("g", {&a});
  ASSERT_TRUE(Converged(g, {&a}));
  RunFor(1'000);  // d asked at start: in no group then
  // d's group_join is lost with its broker session.
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  EXPECT_EQ(broker_.DropQueuedFor(d.transport->name()), 1u);
  RunFor(2'000);
  EXPECT_EQ(VersionAt(d, g), 0u);
  // Its next "which groups am I in" (group 0) brings the path.
  ASSERT_TRUE(Converged(g, {&a, &d}));
  ASSERT_TRUE(SendText(a, g, "found").ok());
  EXPECT_EQ(got_[d.n_id], std::vector<std::string>{"found"});
}

TEST_F(GroupNodeTest, AMemberBehindAsksOnAMessageUnderANewerKey) {
  node_options_.group_resync_ms = 0;  // only the message can tell it
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& d = Member();
  const uint32_t g = Create("g", {&a, &b});
  ASSERT_TRUE(Converged(g, {&a, &b}));
  RunFor(3'000);  // every request of the start answered
  // b misses the rekey of d's join, and no later rekey comes.
  b.transport->SimulateDisconnect();
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  broker_.Pump();
  broker_.DropQueuedFor(b.transport->name());
  b.transport->SimulateReconnect();
  ASSERT_TRUE(Converged(g, {&a, &d}));
  RunFor(5'000);
  ASSERT_EQ(VersionAt(b, g), KsVersion(g) - 1);
  // A message under the newer key makes b ask (its answer: the new path).
  ASSERT_TRUE(SendText(a, g, "newer").ok());
  ASSERT_TRUE(Converged(g, {&a, &b, &d}));
  ASSERT_TRUE(SendText(d, g, "again").ok());
  EXPECT_EQ(got_[b.n_id], std::vector<std::string>{"again"});
}

TEST_F(GroupNodeTest, ARekeyThatRemovesTheNodeMakesItLeave) {
  KedNode& a = Member();
  KedNode& c = Member();
  const uint32_t g = Create("g", {&a, &c});
  ASSERT_TRUE(Converged(g, {&a, &c}));
  // c misses its "gone" message; only the rekey reaches it.
  c.transport->SimulateDisconnect();
  ASSERT_EQ(Change("g", false, {&c}).status, 0);
  broker_.Pump();
  broker_.DropQueuedFor(c.transport->name());
  c.transport->SimulateReconnect();
  const PublishedMessage rekey = RekeyFrames().back();
  c.client->HandleMessage(rekey.topic, rekey.payload);
  EXPECT_EQ(VersionAt(c, g), KsVersion(g) - 1);  // it could not apply it
  ASSERT_TRUE(RunUntil([&] { return VersionAt(c, g) == 0; }));
  EXPECT_FALSE(StoredGroup(c, g).ok());  // grp_keys forgot the group
}

TEST_F(GroupNodeTest, OldAndReplayedRekeysAreRefused) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& d = Member();
  const uint32_t g = Create("g", {&a, &b});
  ASSERT_TRUE(Converged(g, {&a, &b}));
  ASSERT_EQ(Change("g", true, {&d}).status, 0);
  ASSERT_EQ(Change("g", false, {&d}).status, 0);
  ASSERT_TRUE(Converged(g, {&a, &b}));
  const uint32_t v = VersionAt(b, g);
  const uint64_t dropped = b.client->stats().frames_dropped;
  for (const PublishedMessage& m : RekeyFrames()) {
    b.client->HandleMessage(m.topic, m.payload);
  }
  EXPECT_EQ(VersionAt(b, g), v);
  EXPECT_GT(b.client->stats().frames_dropped, dropped);
  ASSERT_TRUE(SendText(a, g, "same").ok());
  EXPECT_EQ(got_[b.n_id], std::vector<std::string>{"same"});
}

TEST_F(GroupNodeTest, RekeysCostNoTpmCommand) {
  KedNode& a = Member();
  KedNode& b = Member();
  KedNode& d = Member();
  const uint32_t g = Create("g", {&a, &b});
  ASSERT_TRUE(Converged(g, {&a, &b}));
  const TpmCounters before = b.tpm.counters();
  const uint32_t v0 = VersionAt(b, g);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Change("g", true, {&d}).status, 0);
    ASSERT_TRUE(Converged(g, {&a, &b, &d}));
    ASSERT_EQ(Change("g", false, {&d}).status, 0);
    ASSERT_TRUE(Converged(g, {&a, &b}));
  }
  EXPECT_EQ(VersionAt(b, g), v0 + 10);
  const TpmCounters after = b.tpm.counters();
  EXPECT_EQ(after.tpm_commands, before.tpm_commands);
  EXPECT_EQ(after.nv_writes, before.nv_writes);
}

TEST_F(GroupNodeTest, SenderAuthMembersLearnEachOthersKeys) {
  KedNode& a = Member();
  KedNode& b = Member();
  const uint32_t g = Create("signed", {&a, &b}, GroupMode::kSenderAuth);
  ASSERT_TRUE(Converged(g, {&a, &b}));
  // Each sends its key (group_sync_req) and learns the other's.
  ASSERT_TRUE(RunUntil([&] {
    // The header record holds no members: they live in member pieces.
    auto loaded = ks::LoadGroupRecords(*ks_groups_, g);
    if (!loaded.ok() || loaded->Members().size() != 2) return false;
    for (const GroupMember& m : loaded->Members()) {
      if (m.sign_public == std::array<uint8_t, 32>{}) return false;
    }
    return true;
  }));
  RunFor(5'000);
  ASSERT_TRUE(SendText(a, g, "signed").ok());
  RunFor(5'000);
  ASSERT_TRUE(SendText(a, g, "signed").ok());
  ASSERT_FALSE(got_[b.n_id].empty());
  EXPECT_EQ(got_[b.n_id].back(), "signed");
}

}  // namespace
}  // namespace kgr::testing
