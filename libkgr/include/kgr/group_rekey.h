// Group keys on the wire: the group_rekey frame (type 0x12), a member's
// path of keys (group_path, carried inside gks's unicast frames and kept
// by members), the key derivations of the logical key hierarchy and the
// wrap of one node secret under another node's key. docs/protocol.md
// section 12 is the normative description; this header implements it.
//
// The tree (libkgr/group/group_key_tree.h) is 4-ary with every member at a
// leaf at level 0 and the root at level `depth`; a node is named by
// (level, position), its parent is (level + 1, position / 4), its child in
// slot s is (level - 1, 4 * position + s). Every node holds a 32-byte secret
// and a version that grows each time the secret changes. The secret is
// never used directly as a key:
//
//   KEK of a node  = HKDF-SHA256(ikm = secret, salt = "kgr/v1 group kek",
//                      info = group_id:u32 level:u8 position:u32 version:u32)
//   group data key = HKDF-SHA256(ikm = root secret, salt = "kgr/v1 group data",
//                      info = group_id:u32 epoch:u32)
//   (64 bytes each: enc = first 32, mac = last 32, like DeriveKeys.)
//
// The group data key of epoch e protects the group's data frames (0x14,
// key_version = e). A rekey moves a group from epoch e to e + 1; its root
// secret always changes.
//
// group_rekey frame (published once per part on the group's rekey topic):
//
//   frame     = clear_header body signature
//   clear_header: the frame header of frame.h with type 0x12, flags 0,
//               sender = the KS's N_ID, key_version = epoch (the new one),
//               counter = the KS's frame counter, request_id = 0,
//               iv = 16 zero bytes, body_len
//   body      = group_id:u32 epoch:u32 depth:u8 part:u16 parts:u16
//               count:u16 entry{count}
//   entry     = level:u8 position:u32 version:u32 child_slot:u8
//               wrapped:bytes[80]
//   signature = Ed25519(KS group signing key,
//                       "kgr/v1 group_rekey" || clear_header || body)
//
// An entry gives node (level, position) its new secret at `version`,
// wrapped under the KEK of its child in `child_slot` (the child's version
// is the one it has after this rekey: new if the child is in the same
// rekey, else unchanged):
//
//   wrapped = iv:bytes[16] AES-256-CTR(KEK.enc, iv, secret:bytes[32])
//             tag:bytes[32]
//   tag     = HMAC-SHA256(KEK.mac, aad || iv || ciphertext)
//   aad     = "kgr/v1 group wrap" group_id:u32 epoch:u32 level:u8
//             position:u32 version:u32 child_slot:u8 child_version:u32
//
// (the aad is not sent; it binds a wrap to its place, version and epoch).
// Entries are sorted by (level, position, child_slot), levels >= 1; a rekey
// too big for one frame is split into `parts` frames (part 0..parts-1),
// each with at most kMaxRekeyEntriesPerPart entries and signed on its own.
// A member applies a rekey once it has every part (it keeps only the
// entries on its path).
//
// Thread-safe (no shared state).
#ifndef KGR_GROUP_REKEY_H_
#define KGR_GROUP_REKEY_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/crypto.h"
#include "kgr/ed25519.h"
#include "kgr/frame.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

inline constexpr uint32_t kGroupTreeArity = 4;
// Positions are u32: 4^16 = 2^32 leaves at most.
inline constexpr uint8_t kMaxGroupTreeDepth = 16;
inline constexpr size_t kGroupSecretSize = 32;
inline constexpr size_t kWrappedSecretSize =
    kIvSize + kGroupSecretSize + kTagSize;  // 80
inline constexpr size_t kRekeyEntrySize = 1 + 4 + 4 + 1 + kWrappedSecretSize;
inline constexpr size_t kRekeyBodyFixedSize = 4 + 4 + 1 + 2 + 2 + 2;
// A part stays under the broker's 64 KiB packet limit (docs/broker.md):
// 47 + 15 + 700 * 90 + 64 = 63,126 bytes.
inline constexpr size_t kMaxRekeyEntriesPerPart = 700;
inline constexpr uint16_t kMaxRekeyParts = 4096;

// One wrapped node secret of a rekey.
struct RekeyEntry {
  uint8_t level = 0;  // >= 1
  uint32_t position = 0;
  uint32_t version = 0;    // the node's new version
  uint8_t child_slot = 0;  // 0..3: whose KEK wraps it
  std::array<uint8_t, kWrappedSecretSize> wrapped{};
};

// One commit of the tree: every entry of the rekey from epoch - 1 to epoch.
struct GroupRekey {
  uint32_t group_id = 0;
  uint32_t epoch = 0;
  uint8_t depth = 0;  // root level after this rekey
  std::vector<RekeyEntry> entries;
};

// One part of a rekey as it travels (the body of a group_rekey frame).
struct GroupRekeyPart {
  static constexpr FrameType kType = FrameType::kGroupRekey;
  uint32_t group_id = 0;
  uint32_t epoch = 0;
  uint8_t depth = 0;
  uint16_t part = 0;
  uint16_t parts = 1;
  std::vector<RekeyEntry> entries;  // <= kMaxRekeyEntriesPerPart
  void EncodeTo(Bytes* out) const;
  // Strict: bounds (depth 1..16, part < parts <= kMaxRekeyParts, levels
  // 1..depth, slots < 4, a position below 4^(depth - level)), order of
  // entries, exact length.
  static StatusOr<GroupRekeyPart> Parse(std::span<const uint8_t> in);
};

// Splits `rekey` into parts and signs each: the frames to publish, in
// order. `counter` gives each frame's header counter (the KS's
// FrameCounter); `ks_n_id` is the header's sender.
StatusOr<std::vector<Bytes>> SealGroupRekey(
    const GroupRekey& rekey, uint32_t ks_n_id, const SecretBytes& signing_key,
    const std::function<uint64_t()>& counter);

// Checks length and header (type 0x12, zero IV), then the signature with
// `ks_public` (UNAUTHENTICATED "verification failed"), then parses the body
// and checks that header.key_version equals the body's epoch. `header`
// receives the header.
StatusOr<GroupRekeyPart> OpenGroupRekey(std::span<const uint8_t> frame,
                                        std::span<const uint8_t> ks_public,
                                        FrameHeader* header);

// A member's keys: its leaf and every node above it up to the root.
//
//   group_path = group_id:u32 epoch:u32 depth:u8 leaf_position:u32
//                (version:u32 secret:bytes[32]){depth + 1}
//                -- level 0 (the leaf) first, the root last
//
// gks sends it under the member's NKSK when the member joins (the path at
// the epoch of the commit that added it) and when a member too far behind
// asks for it; the member stores it sealed with NK.
struct GroupPathKey {
  uint32_t version = 0;
  SecretBytes secret;  // kGroupSecretSize
};
struct GroupPath {
  uint32_t group_id = 0;
  uint32_t epoch = 0;
  uint8_t depth = 0;
  uint32_t leaf_position = 0;
  std::vector<GroupPathKey> keys;  // depth + 1, index = level
  GroupPath Clone() const;
  // Encodes into a buffer the caller must wipe (it holds secrets).
  void EncodeTo(Bytes* out) const;
  static StatusOr<GroupPath> Parse(std::span<const uint8_t> in);
};

// The KEK and the group data key of the derivations above.
StatusOr<SymmetricKeys> GroupNodeKek(const SecretBytes& secret,
                                     uint32_t group_id, uint8_t level,
                                     uint32_t position, uint32_t version);
StatusOr<SymmetricKeys> GroupDataKeys(const SecretBytes& root_secret,
                                      uint32_t group_id, uint32_t epoch);

// Where a wrap sits: the aad of the grammar above.
struct WrapPlace {
  uint32_t group_id = 0;
  uint32_t epoch = 0;
  uint8_t level = 0;
  uint32_t position = 0;
  uint32_t version = 0;
  uint8_t child_slot = 0;
  uint32_t child_version = 0;
};
// Wraps `secret` (32 bytes) under `child_kek` (fresh IV from EtmSeal).
StatusOr<std::array<uint8_t, kWrappedSecretSize>> WrapGroupSecret(
    const SymmetricKeys& child_kek, const WrapPlace& place,
    const SecretBytes& secret);
// UNAUTHENTICATED(kVerificationFailed) unless `wrapped` was made by
// WrapGroupSecret with the same KEK and place.
StatusOr<SecretBytes> UnwrapGroupSecret(
    const SymmetricKeys& child_kek, const WrapPlace& place,
    std::span<const uint8_t, kWrappedSecretSize> wrapped);

}  // namespace kgr

#endif  // KGR_GROUP_REKEY_H_
