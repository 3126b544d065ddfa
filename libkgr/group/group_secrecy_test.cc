// Forward and backward secrecy of the group key tree, checked by an
// adversary that holds every secret some members ever held and every rekey
// ever published, and opens every wrap it can (the real unwrap, to a fixed
// point).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "group/group_key_tree.h"

namespace kgr::group {
namespace {

constexpr uint32_t kSecrecyGroup = 5;

// What an adversary knows: per node, the secrets it holds (any version).
class Knowledge {
 public:
  void AddPath(const GroupPath& p) {
    uint32_t node = p.leaf_position;
    for (uint8_t level = 0; level <= p.depth; ++level) {
      Add(level, node, p.keys[level].version, p.keys[level].secret);
      node /= kGroupTreeArity;
    }
  }
  void Add(uint8_t level, uint32_t node, uint32_t version,
           const SecretBytes& secret) {
    auto& slot = known_[{level, node}];
    if (!slot.contains(version)) slot.emplace(version, secret.Clone());
  }
  bool KnowsSecret(const SecretBytes& s) const {
    for (const auto& [node, versions] : known_) {
      for (const auto& [v, secret] : versions) {
        if (secret.Equals(s)) return true;
      }
    }
    return false;
  }
  // Opens every wrap of `rekeys` it can, until nothing new opens.
  void Close(const std::vector<GroupRekey>& rekeys) {
    bool grew = true;
    while (grew) {
      grew = false;
      for (const GroupRekey& r : rekeys) {
        for (const RekeyEntry& e : r.entries) grew |= TryOpen(r, e);
      }
    }
  }

 private:
  bool TryOpen(const GroupRekey& r, const RekeyEntry& e) {
    auto have = known_.find({e.level, e.position});
    if (have != known_.end() && have->second.contains(e.version)) return false;
    uint32_t child = e.position * kGroupTreeArity + e.child_slot;
    auto it = known_.find({static_cast<uint8_t>(e.level - 1), child});
    if (it == known_.end()) return false;
    for (const auto& [v, secret] : it->second) {
      auto kek = GroupNodeKek(secret, r.group_id,
                              static_cast<uint8_t>(e.level - 1), child, v);
      WrapPlace place{r.group_id, r.epoch,      e.level, e.position,
                      e.version,  e.child_slot, v};
      auto opened = UnwrapGroupSecret(*kek, place, e.wrapped);
      if (opened.ok()) {
        Add(e.level, e.position, e.version, *opened);
        return true;
      }
    }
    return false;
  }

  std::map<std::pair<uint8_t, uint32_t>, std::map<uint32_t, SecretBytes>>
      known_;
};

// A random history: per epoch, who was a member, every member's path and
// the root secret.
struct History {
  std::vector<GroupRekey> rekeys;           // rekeys[i]: to epoch i + 1
  std::vector<std::set<uint32_t>> members;  // members[e]
  std::vector<std::map<uint32_t, GroupPath>> paths;  // paths[e][member]
  std::vector<SecretBytes> roots;                    // roots[e]
};

History RandomHistory(uint64_t seed, int epochs) {
  SeededKeySource keys(seed);
  std::mt19937_64 rng(seed);
  GroupKeyTree tree(kSecrecyGroup, &keys);
  History h;
  h.members.emplace_back();
  h.paths.emplace_back();
  h.roots.emplace_back(kGroupSecretSize);
  uint32_t next_id = 1;
  for (int e = 1; e <= epochs; ++e) {
    std::vector<uint32_t> current = tree.Members();
    int joins = (e == 1) ? 24 : static_cast<int>(rng() % 4);
    for (int j = 0; j < joins; ++j) EXPECT_TRUE(tree.StageJoin(next_id++).ok());
    int leaves = current.empty() ? 0 : static_cast<int>(rng() % 4);
    std::shuffle(current.begin(), current.end(), rng);
    for (int l = 0; l < leaves && l < static_cast<int>(current.size()); ++l) {
      EXPECT_TRUE(tree.StageLeave(current[l]).ok());
    }
    if (rng() % 5 == 0) tree.StageRefresh();
    if (!tree.HasStaged()) tree.StageRefresh();
    h.rekeys.push_back(*tree.Commit());
    auto members = tree.Members();
    h.members.emplace_back(members.begin(), members.end());
    h.paths.emplace_back();
    for (uint32_t m : members) h.paths.back().emplace(m, *tree.PathOf(m));
    h.roots.push_back(
        h.paths.back().empty()
            ? SecretBytes(kGroupSecretSize)
            : h.paths.back().begin()->second.keys.back().secret.Clone());
  }
  return h;
}

// For each epoch E: everyone who was not a member at E, pooling every
// secret they ever held and every rekey, cannot learn the root of E nor
// any secret of a member's path at E. This is forward secrecy (members
// removed before E), backward secrecy (members that joined after E) and
// collusion of both at once.
void CheckOutsidersLearnNothing(const History& h) {
  int epochs = static_cast<int>(h.rekeys.size());
  for (int e = 1; e <= epochs; ++e) {
    Knowledge outsiders;
    for (int other = 1; other <= epochs; ++other) {
      for (const auto& [m, path] : h.paths[other]) {
        if (!h.members[e].contains(m)) outsiders.AddPath(path);
      }
    }
    outsiders.Close(h.rekeys);
    if (h.members[e].empty()) continue;
    EXPECT_FALSE(outsiders.KnowsSecret(h.roots[e])) << "epoch " << e;
    for (const auto& [m, path] : h.paths[e]) {
      for (uint8_t level = 1; level <= path.depth; ++level) {
        EXPECT_FALSE(outsiders.KnowsSecret(path.keys[level].secret))
            << "epoch " << e << " member " << m << " level " << int(level);
      }
    }
  }
}

TEST(GroupSecrecyTest, OutsidersOfAnEpochLearnNothingOfIt) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    CheckOutsidersLearnNothing(RandomHistory(seed, 30));
  }
}

// The adversary is not blind: from a member's path at one epoch and the
// rekeys alone it learns the next epochs' roots while the member stays.
TEST(GroupSecrecyTest, TheAdversaryOpensWhatAMemberCan) {
  History h = RandomHistory(9, 12);
  uint32_t stayer = *h.members[1].begin();
  ASSERT_TRUE(h.members[12].contains(stayer));
  Knowledge k;
  k.AddPath(h.paths[1].at(stayer));
  k.Close(h.rekeys);
  for (int e = 1; e <= 12; ++e) EXPECT_TRUE(k.KnowsSecret(h.roots[e])) << e;
}

TEST(GroupSecrecyTest, ARemovedMemberLearnsNothingNew) {
  History h = RandomHistory(7, 20);
  // The first member removed, with everything it held while a member.
  uint32_t removed = 0;
  int removed_at = 0;
  for (int e = 1; e < 20 && removed == 0; ++e) {
    for (uint32_t m : h.members[e]) {
      if (!h.members[e + 1].contains(m)) {
        removed = m;
        removed_at = e + 1;
        break;
      }
    }
  }
  ASSERT_NE(removed, 0u);
  Knowledge k;
  for (int e = 1; e < removed_at; ++e) k.AddPath(h.paths[e].at(removed));
  k.Close(h.rekeys);
  // It still knows what it had (the check can fail) ...
  EXPECT_TRUE(k.KnowsSecret(h.roots[removed_at - 1]));
  // ... and nothing from its removal on.
  for (size_t e = removed_at; e < h.roots.size(); ++e) {
    EXPECT_FALSE(k.KnowsSecret(h.roots[e])) << e;
  }
}

TEST(GroupSecrecyTest, AJoinerLearnsNothingOfEarlierEpochs) {
  History h = RandomHistory(8, 20);
  uint32_t joiner = 0;
  int joined_at = 0;
  for (int e = 2; e <= 20 && joiner == 0; ++e) {
    for (uint32_t m : h.members[e]) {
      if (!h.members[e - 1].contains(m)) {
        joiner = m;
        joined_at = e;
        break;
      }
    }
  }
  ASSERT_NE(joiner, 0u);
  Knowledge k;
  for (int e = joined_at; e <= 20 && h.members[e].contains(joiner); ++e) {
    k.AddPath(h.paths[e].at(joiner));
  }
  k.Close(h.rekeys);
  EXPECT_TRUE(k.KnowsSecret(h.roots[joined_at]));
  for (int e = 1; e < joined_at; ++e) {
    EXPECT_FALSE(k.KnowsSecret(h.roots[e])) << e;
  }
}

}  // namespace
}  // namespace kgr::group
