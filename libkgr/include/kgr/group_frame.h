// Group data messages (frame type 0x14, docs/protocol.md section 13): a
// member publishes on the group's data topic under keys derived from the
// group key; the header's sender is its N_ID, key_version the group key's
// version, counter its own frame counter (receivers keep a replay window
// per sender per group).
//
// Two modes per group:
//  * kGroupKey: encrypt-then-MAC under the group key only. Fast, but every
//    member holds the key: any member can forge a message that claims
//    another member as its sender.
//  * kSenderAuth: the body also carries an Ed25519 signature by the
//    sender's own key over the header's fields, the group id, the mode and
//    the data; receivers check it against the public key the KS distributed
//    with the membership. A member cannot forge another's message.
//
//   body      = group_id:u32 mode:u8 [signature:bytes[64] if mode = 1]
//               data:bytes[rest]                         (rest <= 61440)
//   signed    = "kgr/v1 group_data" || version:u8 type:u8 flags:u8
//               sender:u32 key_version:u32 counter:u64 request_id:u64 ||
//               group_id:u32 mode:u8 || data
//   keys      = GroupDataKeys (kgr/group_rekey.h): HKDF-SHA256(ikm = the
//               group key, i.e. the key tree's root secret of epoch
//               key_version, salt = "kgr/v1 group data",
//               info = group_id:u32 || key_version:u32, L = 64)
//
// Thread-safe (no shared state).
#ifndef KGR_GROUP_FRAME_H_
#define KGR_GROUP_FRAME_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "kgr/bytes.h"
#include "kgr/crypto.h"
#include "kgr/ed25519.h"
#include "kgr/frame.h"
#include "kgr/group_rekey.h"  // GroupDataKeys
#include "kgr/records.h"      // GroupMode
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

// GroupMode (kgr/records.h): kGroupKey, the group key alone (members can
// forge each other); kSenderAuth, plus an Ed25519 signature by the sender.
bool IsKnownGroupMode(uint8_t mode);
std::string_view GroupModeName(GroupMode mode);  // "group_key", "sender_auth"

// The topic of a group's messages is the data topic the KS sends with the
// membership (GroupTopicName of kgr/group_frames.h).

// Largest application payload of one group message.
inline constexpr size_t kMaxGroupDataSize = 60 * 1024;

struct GroupData {
  static constexpr FrameType kType = FrameType::kGroupData;
  uint32_t group_id = 0;
  GroupMode mode = GroupMode::kGroupKey;
  Bytes signature;  // kEd25519SignatureSize bytes in kSenderAuth, else empty
  SecretBytes data;
  // Appends the body to `out` (which then holds the data: wipe it).
  void EncodeTo(Bytes* out) const;
  // Strict: known mode, signature present exactly in kSenderAuth, data
  // within kMaxGroupDataSize.
  static StatusOr<GroupData> Parse(std::span<const uint8_t> in);
};

// The bytes an Ed25519 signature of a group message covers (`signed` above).
Bytes GroupSignedBytes(const FrameHeader& header, uint32_t group_id,
                       GroupMode mode, std::span<const uint8_t> data);

// Seals a group message under `keys` (GroupDataKeys). `header.type` must be
// kGroupData; its iv and body_len are set here. In kSenderAuth the body is
// first signed with `signing_key` (an Ed25519 private key; unused otherwise).
StatusOr<Bytes> SealGroupData(const FrameHeader& header, uint32_t group_id,
                              GroupMode mode, std::span<const uint8_t> data,
                              const SymmetricKeys& keys,
                              const SecretBytes* signing_key);

// Opens a group message of group `group_id` in `mode`: the MAC under `keys`
// (UNAUTHENTICATED "verification failed"), the body, the group id and mode
// (a message of another group or mode: INVALID_ARGUMENT), and in kSenderAuth
// the signature under `sender_public` (UNAUTHENTICATED). `header` receives
// the header.
StatusOr<GroupData> OpenGroupData(std::span<const uint8_t> frame,
                                  const SymmetricKeys& keys, uint32_t group_id,
                                  GroupMode mode,
                                  std::span<const uint8_t> sender_public,
                                  FrameHeader* header);

}  // namespace kgr

#endif  // KGR_GROUP_FRAME_H_
