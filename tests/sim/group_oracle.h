// The checker's model of groups (docs/simulation.md, "Groups"): which node
// was a member of which group for which key epochs, as the AC decided, and
// what each node could know of each group's keys, as an eavesdropper that
// keeps everything.
//
// Membership: the AC adds a node to a group at epoch E (the group's key
// version at the KS just before the request) and removes it at epoch R;
// the node may hold group keys of the epochs in (E, R] only, for each such
// interval (a node can be removed and added again). A key of an epoch at
// or before E is a breach of backward secrecy; one after R (and before a
// later add) a breach of forward secrecy.
//
// Knowledge: every group_rekey frame the KS publishes is kept, for every
// node (anyone on the broker can capture them), and every path the KS
// sends a node (group_join, group_sync_ans, decrypted by the simulator
// with the node's NKSK) is added to that node's keys. A node's keys are
// then closed under the rekeys: each wrapped secret whose child key it
// holds (any version of the child it knows) is opened and added, until
// nothing changes. The epochs whose root secret it then holds are the
// group keys it could compute; each must lie in one of its intervals.
// A node keeps everything it ever learned, so a removed member's old path
// keys are tried against every later rekey.
//
// Also: no two different root secrets for one epoch of a group (the KS
// never commits an epoch twice).
#ifndef KGR_TESTS_SIM_GROUP_ORACLE_H_
#define KGR_TESTS_SIM_GROUP_ORACLE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/group_rekey.h"

namespace kgr::sim {

class GroupOracle {
 public:
  // Called with (invariant, detail) at each violation.
  using FailFn = std::function<void(const std::string&, const std::string&)>;
  using NameFn = std::function<std::string(uint32_t n_id)>;
  GroupOracle(FailFn fail, NameFn name)
      : fail_(std::move(fail)), name_(std::move(name)) {}

  // ---- the AC ----
  void Joined(uint32_t group, uint32_t n_id, uint32_t epoch_before);
  void Left(uint32_t group, uint32_t n_id, uint32_t epoch_before);
  bool IsMember(uint32_t group, uint32_t n_id) const;
  bool WasMember(uint32_t group, uint32_t n_id) const;

  // ---- the wire ----
  // A group_rekey frame the KS published (not verified: it is the KS's).
  void OnRekeyFrame(const Bytes& frame);
  // A path the KS sent to `n_id`.
  void OnPath(uint32_t n_id, const GroupPath& path);

  // May `n_id` hold group `group`'s key of `epoch`? If not, a violation
  // of group_backward_secrecy or group_forward_secrecy naming `how`.
  void CheckHeld(uint32_t group, uint32_t n_id, uint32_t epoch,
                 const std::string& how);

  // Could `n_id` compute the key of `epoch` from what it received?
  bool Knows(uint32_t group, uint32_t n_id, uint32_t epoch) const;

  // Around an AC request: the KS sends keys inside the call, before the
  // AC's change is known here; checks wait until Resume().
  void Defer() { ++deferred_; }
  void Resume();

  uint64_t rekey_frames() const { return rekey_frames_; }
  uint64_t unwraps() const { return unwraps_; }

 private:
  using NodeName = std::tuple<uint8_t, uint32_t, uint32_t>;  // level, pos, ver
  struct Knowledge {
    std::map<NodeName, SecretBytes> secrets;
    std::set<uint32_t> epochs;  // whose root secret it holds
  };
  struct Interval {
    uint32_t after = 0;           // the epoch before the add
    uint32_t until = UINT32_MAX;  // the epoch before the removal
  };
  struct Group {
    std::map<uint32_t, std::vector<Interval>> members;
    std::map<uint32_t, std::vector<GroupRekeyPart>> rekeys;  // by epoch
    std::set<Bytes> frames;                                  // seen
    std::map<uint32_t, Knowledge> known;                     // by node
    std::map<uint32_t, Bytes> root_of_epoch;                 // fingerprint
  };

  // Opens what `n_id` can open of the group's rekeys; checks every epoch
  // it learned.
  void Close(uint32_t group, Group& g, uint32_t n_id);
  bool TryOpen(uint32_t group, Knowledge& k, uint32_t epoch, uint8_t depth,
               const RekeyEntry& e);
  void LearnRoot(uint32_t group, Group& g, uint32_t n_id, uint32_t epoch,
                 const SecretBytes& root);

  FailFn fail_;
  NameFn name_;
  std::map<uint32_t, Group> groups_;
  uint64_t rekey_frames_ = 0, unwraps_ = 0;
  int deferred_ = 0;
  struct Held {
    uint32_t group, n_id, epoch;
    std::string how;
  };
  std::vector<Held> pending_;
};

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_GROUP_ORACLE_H_
