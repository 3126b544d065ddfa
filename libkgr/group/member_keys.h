// A member's side of the logical key hierarchy (group_key_tree.h): the
// keys on its path, how a rekey changes them, and which group data keys it
// accepts. No TPM call, no I/O: the caller (gnode) stores ToPath() sealed
// with NK after every change and feeds the rekey frames it receives.
//
// Applying a rekey (OpenGroupRekey has checked the KS's signature):
//   * parts: a rekey of several parts is applied when every part of it has
//     been received; the member keeps only the entries on its path.
//   * epoch e + 1 on top of e is applied: walking up from its leaf, for
//     each path node in the rekey it opens the entry wrapped under its own
//     child on the path (a key it holds or has just opened); nodes not in
//     the rekey keep their secret. All or nothing: on any failure the keys
//     are unchanged.
//   * an epoch at or below the member's: kAlreadyHave (a duplicate or a
//     replay of an old rekey: ignored);
//   * an epoch above e + 1: kMissedRekey (it missed one: ask the KS for
//     catch-up, gks's group_catchup_req 0x15; the KS answers with the
//     missed rekeys or with the member's path, 0x16);
//   * a path node in the rekey without a wrap under the member's child, or
//     a wrap that does not open: kCannotOpen (the member was removed, or
//     holds a stale key): ask for catch-up; the KS answers a removed
//     member with a refusal.
//
// Overlap rule: after moving to epoch e + 1 at time t, the member still
// accepts data under the group data key of epoch e until t + overlap_ms
// (default 30 s, like the pair grace period), and never under any older
// epoch; it always sends under the newest epoch it holds. A removed member
// can therefore still inject (not read) frames sealed under epoch e for at
// most overlap_ms after the others moved on (with the group key alone;
// sender authentication also drops a removed sender, docs/protocol.md
// section 12).
//
// Not thread-safe.
#ifndef KGR_GROUP_MEMBER_KEYS_H_
#define KGR_GROUP_MEMBER_KEYS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "kgr/group_rekey.h"
#include "kgr/status.h"

namespace kgr::group {

inline constexpr uint64_t kDefaultGroupOverlapMs = 30'000;

enum class RekeyOutcome {
  kApplied,       // the member moved to the rekey's epoch
  kWaitingParts,  // a part was kept; more parts of this epoch are missing
  kAlreadyHave,   // epoch <= the member's: ignored
  kMissedRekey,   // epoch > member's + 1: ask for catch-up
  kCannotOpen,    // removed, or a stale key: ask for catch-up
};
std::string_view RekeyOutcomeName(RekeyOutcome outcome);

class GroupMemberKeys {
 public:
  // From a path the KS sent (join, catch-up) or the stored one.
  // INVALID_ARGUMENT when its shape is wrong.
  static StatusOr<GroupMemberKeys> FromPath(
      GroupPath path, uint64_t overlap_ms = kDefaultGroupOverlapMs);

  // Applies one verified part of a rekey received at `now_ms`. INVALID_
  // ARGUMENT if it is for another group. See the header comment.
  StatusOr<RekeyOutcome> Apply(const GroupRekeyPart& part, uint64_t now_ms);

  // Replaces the keys by a newer path from the KS (catch-up). A path for
  // another group or leaf position is taken as is (the KS knows best); an
  // older epoch than the member's is refused (FAILED_PRECONDITION). Keeps
  // the current data key as the previous one, as Apply does.
  Status Replace(GroupPath path, uint64_t now_ms);

  uint32_t group_id() const { return path_.group_id; }
  uint32_t epoch() const { return path_.epoch; }
  uint8_t depth() const { return path_.depth; }
  uint32_t leaf_position() const { return path_.leaf_position; }
  const GroupPath& path() const { return path_; }

  // The data keys of the current epoch (what a sender uses).
  const SymmetricKeys& CurrentDataKeys() const { return current_keys_; }
  // The data keys for a frame under `epoch` received at `now_ms`: the
  // current epoch's, or the previous epoch's within the overlap; else null.
  const SymmetricKeys* DataKeysFor(uint32_t epoch, uint64_t now_ms) const;

 private:
  GroupMemberKeys() = default;
  StatusOr<RekeyOutcome> ApplyComplete(uint32_t epoch, uint8_t depth,
                                       uint64_t now_ms);
  Status MoveTo(GroupPath next, uint64_t now_ms);

  GroupPath path_;
  uint64_t overlap_ms_ = kDefaultGroupOverlapMs;
  SymmetricKeys current_keys_;
  SymmetricKeys previous_keys_;  // epoch - 1, while within the overlap
  uint32_t previous_epoch_ = 0;
  uint64_t previous_until_ms_ = 0;
  // The parts of the rekey to epoch + 1 received so far.
  struct Pending {
    uint32_t epoch = 0;
    uint8_t depth = 0;
    uint16_t parts = 0;
    uint16_t seen_count = 0;
    std::vector<bool> seen;
    uint32_t levels_present = 0;      // bit L: the path node at L changes
    std::vector<RekeyEntry> on_path;  // the wraps under the member's child
  };
  std::optional<Pending> pending_;
};

}  // namespace kgr::group

#endif  // KGR_GROUP_MEMBER_KEYS_H_
