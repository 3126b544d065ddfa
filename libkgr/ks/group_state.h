// Internal to libkgr/ks: the KS's groups (kgr-ac group, docs/protocol.md
// section 14). The groups themselves are records of the `groups` store
// (KeyServerOptions::groups); this is what the KS keeps beside them: the
// groups loaded from their records (group_table.h), and when the batch
// window of each group's pending joins and leaves closes.
//
// Files: group_admin.cc (the AC's requests: create, add, remove, list,
// delete; the revocation hook), group_rekey.cc (batches, the rekey of the
// key tree, group_join/group_sync unicasts, the lifetime policy),
// group_table.cc (a group's records).
#ifndef KGR_KS_GROUP_STATE_H_
#define KGR_KS_GROUP_STATE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>

#include "kgr/group_frames.h"
#include "ks/context.h"
#include "ks/group_table.h"

namespace kgr::ks {

struct GroupState {
  // Per group with changes since its last rekey: when the batch window
  // closes (monotonic ms). The joins and leaves themselves are the
  // difference between the record's members and the key tree's.
  std::map<uint32_t, uint64_t> batches;
  // Per group: joiners whose group_join could not be sent (not registered
  // yet), tried again once a second.
  std::map<uint32_t, std::set<uint32_t>> unsent_joins;
  uint64_t next_policy_check_ms = 0;
  // Written changes found at the first policy check after start (their
  // batch was lost with the previous process) have been batched again.
  bool restart_batches_queued = false;
  // Groups loaded from the store (the KS is the only writer of its file).
  std::map<uint32_t, std::unique_ptr<LoadedGroup>> loaded;
};

// The context's group state (made on first use); NOT_FOUND-free.
GroupState& Groups(Context& ctx);
// FAILED_PRECONDITION if the KS runs without a groups store.
StatusOr<GroupDescStore*> GroupStoreOf(Context& ctx);
// The group, loaded once (NOT_FOUND for no such group).
StatusOr<LoadedGroup*> GroupOf(Context& ctx, uint32_t group_id);
StatusOr<LoadedGroup*> FindGroupByName(Context& ctx, std::string_view name);
// Forgets the loaded copy (after a failed write: the records are the truth).
void ForgetGroup(Context& ctx, uint32_t group_id);

// ---- group_admin.cc: the AC's group requests (answers carry the reason) ----
AcGroupCreateAns CreateGroup(Context& ctx, const AcGroupCreateReq& req);
AcGroupMembersAns ChangeGroupMembers(Context& ctx,
                                     const AcGroupMembersReq& req);
AcGroupDeleteAns DeleteGroup(Context& ctx, const AcGroupDeleteReq& req);
AcGroupListAns ListGroups(Context& ctx, const AcGroupListReq& req);
// One AC request of a group type (0x28, 0x2A, 0x2C, 0x2E); false if it was
// dropped (malformed: nothing to answer).
bool AnswerGroupAc(Context& ctx, const FrameHeader& h,
                   std::span<const uint8_t> body, Bytes* reply_body,
                   FrameType* reply_type);
// Revocation: the node leaves every group it is in (an immediate rekey of
// each); returns how many.
int RemoveFromAllGroups(Context& ctx, uint32_t n_id);

// ---- group_rekey.cc ----
// The group's pending changes (its header's, written) rekey once the batch
// window (KeyServerOptions::group_batch_ms) closes, or with `now` at once
// (removals, revocations).
void QueueGroupChange(Context& ctx, uint32_t group_id, bool now);
// Applies the group's pending changes and `extra` (not written yet) now, in
// as many commits (rekeys) as the bound of one write batch needs.
Status RekeyGroup(Context& ctx, LoadedGroup& g, std::vector<GroupChange> extra,
                  bool refresh);
// Applies due batches and the lifetime policy (called from Tick and after
// each batch of messages).
void RunGroupRekeys(Context& ctx);
// group_sync_req from a registered member (admission done).
void HandleGroupSync(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                     const GroupSyncReq& req);
// Records member `n_id`'s Ed25519 public key (written at once).
Status RecordSignKey(Context& ctx, LoadedGroup& g, uint32_t n_id,
                     const SignPublic& key);
// Tells `n_id` to forget group `g` (group_join with an empty path).
void SendGroupGone(Context& ctx, const GroupDesc& g, uint32_t n_id);

}  // namespace kgr::ks

#endif  // KGR_KS_GROUP_STATE_H_
