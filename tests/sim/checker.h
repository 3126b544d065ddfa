// The invariants, checked while the world runs (safety) and after its
// faults stopped and it had time to heal (liveness). The first violation
// is kept; the driver then prints the trace.
//
// Safety:
//  * no data frame accepted twice by a node (the same bytes reaching its
//    application's data handler again);
//  * one request id, at most one key: the session keys the KS sends are
//    decrypted on the wire (the simulator knows every NKSK), and whenever a
//    node holds a completed key (with TOPIC4) it is traced back to its
//    (requester, request id); two different keys completed for one request
//    id is a violation;
//  * a withdrawn pair or revoked node gets nothing: no new key issued by
//    the KS for it after the AC's request returned, and once a node wiped
//    the pair, no key for it installed and no data from it accepted;
//  * no secret in clear on the wire or in a log line: every NTAG, NK,
//    NKSK and session key is looked for in every published payload and in
//    every log line (raw, or as hex).
// Groups (checker_groups.cc, group_oracle.h): backward and forward secrecy
// of every group key a node holds, could compute from what it received
// (eavesdropping every rekey), or accepted a message under; one root key
// per epoch; no group message accepted twice.
// Liveness (after healing): every authorized node that is not revoked is
// registered; every current member of every group holds the group's
// current key, and a message sent then reaches each member exactly once
// and no former member; every allowed pair where either side holds a key holds
// the same key version, key and topics on both sides; a fresh renewal between
// every allowed pair succeeds and data then flows both ways.
#ifndef KGR_TESTS_SIM_CHECKER_H_
#define KGR_TESTS_SIM_CHECKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "group_oracle.h"
#include "kgr/bytes.h"
#include "kgr/crypto.h"
#include "kgr/frame.h"
#include "kgr/status.h"

namespace kgr {
struct GroupMessage;
}

namespace kgr::sim {

class World;
struct SimNode;

class Checker {
 public:
  Checker();
  void Attach(World* world) { world_ = world; }
  // Only these invariants are checked (empty: all); a violation of another
  // is noted in the trace and the run goes on.
  void Only(std::set<std::string> invariants) { only_ = std::move(invariants); }
  static const std::set<std::string>& AllInvariants();

  // Secrets to look for from now on.
  void AddSecret(std::span<const uint8_t> secret, const std::string& what);
  void AddKeys(const SymmetricKeys& keys, const std::string& what);

  // Hooks.
  void OnPublish(const std::string& from, const std::string& topic,
                 const Bytes& payload);
  void OnLog(std::string_view line);
  void AfterNodeDelivery(SimNode& n);
  void OnData(SimNode& receiver, uint32_t peer, const Bytes* frame);
  void OnForbidden(uint32_t a, uint32_t b);
  // Groups: the AC's changes (the group's key version just before), a
  // group message a node's application got.
  void OnGroupJoin(uint32_t group, uint32_t n_id, uint32_t epoch_before);
  void OnGroupLeave(uint32_t group, uint32_t n_id, uint32_t epoch_before);
  void OnGroupData(SimNode& receiver, const GroupMessage& m,
                   const Bytes* frame);
  GroupOracle& oracle() { return oracle_; }

  // Liveness, after World::Heal() and enough time.
  void CheckLiveness();

  void Fail(const std::string& invariant, const std::string& detail);
  bool failed() const { return !invariant_.empty(); }
  const std::string& invariant() const { return invariant_; }
  const std::string& detail() const { return detail_; }
  uint64_t undecryptable() const { return undecryptable_; }

 private:
  struct Origin {
    uint32_t n_id1 = 0, n_id2 = 0, version = 0;
    uint64_t request_id = 0;
  };
  // The first secret found in `data`, or nullptr.
  const std::string* FindSecret(std::span<const uint8_t> data) const;
  void OnKsFrame(const std::string& topic, const Bytes& payload);
  // group_join / group_sync_ans the KS sent `node` (opened).
  void OnKsGroupPath(SimNode& node, FrameType type,
                     std::span<const uint8_t> plain);
  // The group keys `n` holds, against its membership.
  void CheckNodeGroups(SimNode& n);
  void CheckGroupsConverge();
  // Every current member of group `gi` holds its current key (bounded
  // rounds of waiting, a member sending meanwhile); empty, or who lags.
  std::string GroupLaggards(int gi, uint32_t epoch);
  void CheckGroupProbe(int gi);
  bool KsGroupConverged(int gi);
  void RecordKey(const Origin& o, const SymmetricKeys& k);
  // A new session key issued for a pair that was forbidden before.
  void CheckIssued(const Origin& o);
  bool PairChecks(SimNode& a, SimNode& b, std::string* why);
  // What an application does with a pair once healed: each side sends
  // until a send succeeds (an unanswered send makes the node renew; a node
  // without a key asks for one), a bounded number of times.
  Status UsePair(SimNode& a, SimNode& b);
  // A renewal from a to b, then data both ways, once healed.
  Status FreshPairing(SimNode& a, SimNode& b);
  using ResultSlot = std::shared_ptr<std::optional<Status>>;
  Status Wait(const std::function<void(ResultSlot)>& start);

  World* world_ = nullptr;
  std::set<std::string> only_;
  std::set<std::string> noted_;  // ignored violations, noted once
  std::string invariant_, detail_;
  // Secrets by their first 8 bytes.
  std::unordered_map<uint64_t, std::vector<std::pair<Bytes, std::string>>>
      secrets_;
  std::map<std::string, Origin> key_origin_;  // NNSK enc key -> request
  std::map<std::pair<uint32_t, uint64_t>, std::set<std::string>> completed_;
  std::map<std::pair<uint32_t, uint64_t>, uint64_t> first_seen_ms_;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> forbidden_ms_;
  std::set<std::pair<uint32_t, uint32_t>> wiped_;  // (node, peer)
  std::unordered_map<uint32_t, std::unordered_set<uint64_t>> accepted_;
  uint64_t undecryptable_ = 0;
  GroupOracle oracle_;
  // Group messages accepted: (receiver, group, sender, counter).
  std::set<std::tuple<uint32_t, uint32_t, uint32_t, uint64_t>> group_accepted_;
  // Liveness probes: (receiver, payload) -> times its application got it.
  std::map<std::pair<uint32_t, std::string>, int> probes_;
};

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_CHECKER_H_
