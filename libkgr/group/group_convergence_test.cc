// Convergence: through random sequences of joins, leaves, refreshes and
// batches, with rekey parts lost at random and catch-ups answered late,
// every current member ends on the KS's group key, a member never holds a
// wrong key for an epoch, and a removed member never moves on.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "group/group_key_tree.h"
#include "group/member_keys.h"

namespace kgr::group {
namespace {

constexpr uint32_t kConvergenceGroup = 77;

struct World {
  explicit World(uint64_t seed)
      : keys(seed), rng(seed), tree(kConvergenceGroup, &keys), ks(*GenerateEd25519()) {}

  SeededKeySource keys;
  std::mt19937_64 rng;
  GroupKeyTree tree;
  Ed25519KeyPair ks;
  uint64_t counter = 0;
  uint64_t now_ms = 0;
  uint32_t next_id = 1;
  std::map<uint32_t, GroupMemberKeys> members;  // current and removed
  std::map<uint32_t, bool> wants_catch_up;
  std::map<uint32_t, SymmetricKeys> data_keys;  // per epoch, the KS's
  std::set<uint32_t> members_before;            // before the staged batch
  std::map<RekeyOutcome, int> outcomes;         // the test is not vacuous

  bool Chance(double p) {
    return std::uniform_real_distribution<>(0, 1)(rng) < p;
  }

  void StageRandomBatch() {
    std::vector<uint32_t> current = tree.Members();
    members_before = std::set<uint32_t>(current.begin(), current.end());
    std::shuffle(current.begin(), current.end(), rng);
    int leaves = static_cast<int>(rng() % 6);
    for (int i = 0; i < leaves && i < static_cast<int>(current.size()); ++i) {
      ASSERT_TRUE(tree.StageLeave(current[i]).ok());
    }
    int joins = static_cast<int>(rng() % 7);
    for (int i = 0; i < joins; ++i) ASSERT_TRUE(tree.StageJoin(next_id++).ok());
    // A member that left may come back in a later batch.
    if (!members.empty() && Chance(0.1)) {
      auto it = members.begin();
      std::advance(it, rng() % members.size());
      if (!tree.Contains(it->first)) {
        ASSERT_TRUE(tree.StageJoin(it->first).ok());
      }
    }
    if (!tree.HasStaged() || Chance(0.1)) tree.StageRefresh();
  }

  // The KS's side of gks: commit, publish; joiners get their path.
  std::vector<GroupRekeyPart> CommitAndPublish() {
    auto rekey = tree.Commit();
    EXPECT_TRUE(rekey.ok());
    if (tree.size() > 0) {
      data_keys.emplace(tree.epoch(), *tree.DataKeys());
    }
    auto frames =
        SealGroupRekey(*rekey, 1, ks.private_key, [&] { return ++counter; });
    EXPECT_TRUE(frames.ok());
    std::vector<GroupRekeyPart> parts;
    for (const Bytes& f : *frames) {
      FrameHeader h;
      parts.push_back(*OpenGroupRekey(f, ks.public_key, &h));
    }
    // Joiners (new, or back after a leave) get their path by unicast.
    for (uint32_t m : tree.Members()) {
      if (members_before.contains(m)) continue;
      members.erase(m);
      members.emplace(m, *GroupMemberKeys::FromPath(*tree.PathOf(m)));
      wants_catch_up[m] = false;
    }
    return parts;
  }

  // Every member (current or removed) gets each part with some chance.
  void Deliver(const std::vector<GroupRekeyPart>& parts) {
    for (auto& [id, m] : members) {
      for (const auto& part : parts) {
        if (!Chance(0.85)) continue;
        auto before = m.epoch();
        auto r = m.Apply(part, now_ms);
        ASSERT_TRUE(r.ok());
        ++outcomes[*r];
        if (*r == RekeyOutcome::kApplied) {
          // Only a member can move on, and only to the KS's key.
          ASSERT_TRUE(tree.Contains(id)) << id;
          ASSERT_EQ(m.epoch(), before + 1);
          ASSERT_TRUE(m.CurrentDataKeys().Equals(data_keys.at(m.epoch())));
        }
        if (*r == RekeyOutcome::kMissedRekey ||
            *r == RekeyOutcome::kCannotOpen) {
          wants_catch_up[id] = true;
        }
      }
    }
  }

  // gks's catch-up: answered for some now, the others later.
  void AnswerCatchUps(double chance) {
    for (auto& [id, wants] : wants_catch_up) {
      if (!wants || !Chance(chance)) continue;
      wants = false;
      if (!tree.Contains(id)) continue;  // refused: not a member
      ASSERT_TRUE(members.at(id).Replace(*tree.PathOf(id), now_ms).ok());
    }
  }
};

void RunOnce(uint64_t seed) {
  World w(seed);
  for (uint32_t i = 0; i < 40; ++i)
    ASSERT_TRUE(w.tree.StageJoin(w.next_id++).ok());
  w.CommitAndPublish();
  for (int round = 0; round < 80; ++round) {
    w.now_ms += 1000;
    w.StageRandomBatch();
    auto parts = w.CommitAndPublish();
    w.Deliver(parts);
    w.AnswerCatchUps(0.5);
  }
  // Everyone who still lags asks (a member notices at the next rekey or at
  // a data frame under a newer epoch) and is answered.
  for (uint32_t id : w.tree.Members()) {
    if (w.members.at(id).epoch() != w.tree.epoch()) w.wants_catch_up[id] = true;
  }
  w.AnswerCatchUps(1.0);
  auto data = w.tree.DataKeys();
  ASSERT_TRUE(data.ok());
  for (uint32_t id : w.tree.Members()) {
    const auto& m = w.members.at(id);
    EXPECT_EQ(m.epoch(), w.tree.epoch()) << id;
    EXPECT_TRUE(m.CurrentDataKeys().Equals(*data)) << id;
  }
  EXPECT_GT(w.outcomes[RekeyOutcome::kApplied], 1000);
  EXPECT_GT(w.outcomes[RekeyOutcome::kMissedRekey], 10);
  EXPECT_GT(w.outcomes[RekeyOutcome::kCannotOpen], 10);
  EXPECT_GT(w.outcomes[RekeyOutcome::kAlreadyHave], 10);
  for (auto& [id, m] : w.members) {
    if (!w.tree.Contains(id)) {
      EXPECT_LT(m.epoch(), w.tree.epoch()) << id;
    }
  }
}

TEST(GroupConvergenceTest, EveryCurrentMemberConverges) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(seed);
    RunOnce(seed);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace kgr::group
