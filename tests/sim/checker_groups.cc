// The checker's group invariants (docs/simulation.md, "Groups"): what the
// KS sends on the wire feeds the oracle (group_oracle.h); what the nodes
// hold and accept is checked against it; after healing, every current
// member converges and a probe reaches each of them exactly once.
#include <tuple>

#include "checker.h"
#include "kgr/group_frames.h"
#include "kgr/node_client.h"
#include "kgr/topic.h"
#include "world.h"

namespace kgr::sim {
namespace {

constexpr int kConvergeRounds = 8;
constexpr uint64_t kRoundMs = 10'000;
constexpr int kProbeAttempts = 3;

}  // namespace

Checker::Checker()
    : oracle_([this](const std::string& inv,
                     const std::string& detail) { Fail(inv, detail); },
              [this](uint32_t n_id) {
                SimNode* n = world_ ? world_->ByNid(n_id) : nullptr;
                return n ? n->name : FormatNodeId(n_id);
              }) {}

void Checker::OnGroupJoin(uint32_t group, uint32_t n_id, uint32_t before) {
  oracle_.Joined(group, n_id, before);
}

void Checker::OnGroupLeave(uint32_t group, uint32_t n_id, uint32_t before) {
  oracle_.Left(group, n_id, before);
}

void Checker::OnKsGroupPath(SimNode& node, FrameType type,
                            std::span<const uint8_t> plain) {
  auto join = type == FrameType::kGroupJoin
                  ? GroupJoin::Parse(plain)
                  : StatusOr<GroupJoin>(NotFoundError(""));
  auto sync = type == FrameType::kGroupSyncAns
                  ? GroupSyncAns::Parse(plain)
                  : StatusOr<GroupSyncAns>(NotFoundError(""));
  const SecretBytes* path_bytes = join.ok()   ? &join->path
                                  : sync.ok() ? &sync->path
                                              : nullptr;
  if (path_bytes == nullptr) return void(++undecryptable_);
  world_->Count(std::string("wire.") +
                (join.ok() ? "group_join" : "group_sync_ans") +
                (path_bytes->empty() ? "_gone" : ""));
  if (path_bytes->empty()) return;  // "forget the group"
  auto path = GroupPath::Parse(path_bytes->span());
  if (!path.ok()) return void(++undecryptable_);
  for (const GroupPathKey& k : path->keys) {
    AddSecret(k.secret.span(), "group " + FormatNodeId(path->group_id) +
                                   " path secret of " + node.name);
  }
  oracle_.OnPath(node.n_id, *path);
}

void Checker::CheckNodeGroups(SimNode& n) {
  for (const GroupInfo& g : n.client->Groups()) {
    if (g.key_version != 0)
      oracle_.CheckHeld(g.group_id, n.n_id, g.key_version, "holds");
    if (g.prev_version != 0)
      oracle_.CheckHeld(g.group_id, n.n_id, g.prev_version,
                        "holds (as its previous key)");
    if (failed()) return;
  }
}

void Checker::OnGroupData(SimNode& receiver, const GroupMessage& m,
                          const Bytes* frame) {
  (void)frame;
  SimNode* s = world_->ByNid(m.sender);
  const std::string from = s ? s->name : FormatNodeId(m.sender);
  if (!group_accepted_
           .insert(
               std::make_tuple(receiver.n_id, m.group_id, m.sender, m.counter))
           .second) {
    return Fail("group_data_accepted_once",
                receiver.name + " accepted the group message of " + from +
                    " with counter " + std::to_string(m.counter) +
                    " in group " + FormatNodeId(m.group_id) + " again");
  }
  oracle_.CheckHeld(m.group_id, receiver.n_id, m.key_version,
                    "accepted a message from " + from + " under");
  std::string payload(m.data.span().begin(), m.data.span().end());
  if (payload.starts_with("probe#")) ++probes_[{receiver.n_id, payload}];
}

// ---- liveness ----

std::string Checker::GroupLaggards(int gi, uint32_t epoch_at_start) {
  World& w = *world_;
  const SimGroup& g = w.groups()[gi];
  std::string lag;
  bool ks_short = false;  // a member the KS never gave the current key
  uint32_t epoch = epoch_at_start;
  for (int round = 0; round <= kConvergeRounds && !failed(); ++round) {
    epoch = w.GroupEpoch(g.id);  // the lifetime policy may move it on
    lag.clear();
    ks_short = false;
    int ahead = -1;  // a member holding the current key
    for (uint32_t m : g.members) {
      SimNode* n = w.ByNid(m);
      uint32_t held = 0;
      for (const GroupInfo& i : n->client->Groups())
        if (i.group_id == g.id) held = i.key_version;
      const bool sent = oracle_.Knows(g.id, m, epoch);
      if (held == epoch && sent) {
        ahead = n->index;
        continue;
      }
      ks_short = ks_short || !sent;
      lag += " " + n->name + " holds " +
             (held ? "v" + std::to_string(held) : std::string("nothing")) +
             (sent ? "" : " (and was never sent it)");
    }
    if (lag.empty() || round == kConvergeRounds) break;
    // A member that is up to date sends (laggards may catch up on seeing
    // a newer key version), then time passes.
    if (ahead >= 0) {
      w.Note("liveness: group " + g.name + " lags:" + lag);
      w.SendGroup(ahead, g.id, "nudge#" + std::to_string(round));
    }
    w.RunFor(kRoundMs);
  }
  if (lag.empty()) return "";
  return "group " + g.name + " (" + FormatNodeId(g.id) + ") at v" +
         std::to_string(epoch) + " after healing:" + lag +
         (ks_short ? "; the KS's messages never gave some member that key"
                   : "");
}

// The KS's side of group `gi` after healing: it lists the AC's members.
bool Checker::KsGroupConverged(int gi) {
  World& w = *world_;
  const SimGroup& g = w.groups()[gi];
  auto listed = w.KsGroup(g.id);
  if (!listed) {
    Fail("groups_converge", "the KS does not list group " + g.name);
    return false;
  }
  std::set<uint32_t> at_ks(listed->members.begin(), listed->members.end());
  if (at_ks == g.members) return true;
  Fail("groups_converge",
       "group " + g.name + ": the KS lists " + std::to_string(at_ks.size()) +
           " members, the AC made " + std::to_string(g.members.size()));
  return false;
}

void Checker::CheckGroupsConverge() {
  World& w = *world_;
  std::vector<int> live;
  for (size_t gi = 0; gi < w.groups().size() && !failed(); ++gi) {
    if (w.groups()[gi].deleted) continue;
    if (KsGroupConverged(static_cast<int>(gi)))
      live.push_back(static_cast<int>(gi));
  }
  for (int gi : live) {
    if (failed() || w.groups()[gi].members.empty()) continue;
    std::string lag = GroupLaggards(gi, w.GroupEpoch(w.groups()[gi].id));
    if (!lag.empty()) {
      Fail("groups_converge", lag);
      continue;
    }
    CheckGroupProbe(gi);
  }
}

// A member sends a probe; every other current member's application gets it
// exactly once, no one else's. A few attempts (a sender_auth member may
// first have to fetch the sender's public key).
void Checker::CheckGroupProbe(int gi) {
  World& w = *world_;
  const SimGroup& g = w.groups()[gi];
  SimNode* sender = w.ByNid(*g.members.begin());
  std::string missing;
  for (int attempt = 0; attempt < kProbeAttempts && !failed(); ++attempt) {
    const std::string payload =
        "probe#" + g.name + "#" + std::to_string(attempt);
    w.SendGroup(sender->index, g.id, payload);
    w.RunFor(5'000);
    missing.clear();
    for (auto& n : w.nodes()) {
      const int got = probes_[{n->n_id, payload}];
      const bool member = g.members.count(n->n_id) > 0;
      if (n.get() == sender) continue;
      if (member && got > 1) {
        return Fail("groups_converge", n->name + " got the probe of group " +
                                           g.name + " " + std::to_string(got) +
                                           " times");
      }
      if (!member && got > 0) {
        return Fail("groups_converge", n->name + " (not a member) got the " +
                                           "probe of group " + g.name);
      }
      if (member && got == 0) missing += " " + n->name;
    }
    if (missing.empty()) return;
  }
  Fail("groups_converge", "group " + g.name + ": a message from " +
                              sender->name + " after healing never reached" +
                              missing + " (" + std::to_string(kProbeAttempts) +
                              " tries)");
}

}  // namespace kgr::sim
