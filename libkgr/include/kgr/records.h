// The protected records of the seed's local files (sections 3.5.1, 3.5.2):
// node_desc and gen_keys on the KS, ses_keys on a node.
//
// Each record is sealed on its own with encrypt-then-MAC under the node's
// storage keys NK/NKsign (RecordKeys): the fields the seed leaves in clear
// stay clear but authenticated, the secret fields are AES-256-CTR encrypted
// with NK under a fresh random IV, and HMAC-SHA256 with NKsign covers the
// whole record plus what it must not be moved away from: the record type,
// the owner's N_ID (the node whose file it is) and a check value of NK.
// The byte layout is in docs/storage.md.
//
// Errors of DecodeRecord / VerifyRecord: INVALID_ARGUMENT for a malformed
// record (bad length, trailing bytes, unknown version, other type);
// DATA_LOSS "verification failed" when the MAC does not verify (tampered,
// other owner, other keys) or the authenticated content is inconsistent.
// EncodeRecord: INVALID_ARGUMENT for a field out of bounds (ntag not 32
// bytes, half-set key pair, too many peers, bad state).
//
// All functions are thread-safe. The record structs are move-only because
// they hold SecretBytes; use Clone() for an explicit copy. Each names all
// its fields once, in Fields(), from which Clone() copies them (and tests
// compare them): a new field goes there too.
#ifndef KGR_RECORDS_H_
#define KGR_RECORDS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/crypto.h"
#include "kgr/ed25519.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/topic.h"

namespace kgr {

enum class RecordType : uint8_t {
  kNodeDesc = 1,   // KS file node_desc, key N_ID
  kGenKey = 2,     // KS file gen_keys, key request id
  kSesKey = 3,     // node file ses_keys, key peer N_ID
  kGroupDesc = 4,  // KS file groups, key group id (docs/storage.md 1.6)
  // node file grp_keys (GroupRecord), key group_id:u32 << 32 | member:u32
  kGrpKeys = 6,
};
// "node_desc", "gen_keys", "ses_keys", "grp_keys" (or "unknown").
std::string_view RecordTypeName(RecordType type);

// NK (enc) and NKsign (mac) of the node that owns the file.
using RecordKeys = SymmetricKeys;

namespace records_internal {
// A copy of `r` (a record struct): its Fields() copied, or cloned where
// they hold secrets.
template <typename R>
R CloneFields(const R& r) {
  R c;
  auto to = R::Fields(c);
  const auto from = R::Fields(r);
  auto clone = []<typename T>(const T& v) -> T {
    if constexpr (requires { v.Clone(); }) {
      return v.Clone();
    } else {
      return v;
    }
  };
  std::apply(
      [&](auto&... dst) {
        std::apply([&](const auto&... src) { ((dst = clone(src)), ...); },
                   from);
      },
      to);
  return c;
}
}  // namespace records_internal

inline constexpr uint8_t kRecordVersion = 1;
inline constexpr size_t kRecordNtagSize = 32;
inline constexpr size_t kMaxAllowedPeers = 4096;
// No encoded record is larger (bounds every length read from disk).
inline constexpr size_t kMaxRecordSize = 32 * 1024;

enum class NodeState : uint8_t {
  kAuthorized = 1,  // N_ID and NTAG known: may register
  kRegistered = 2,  // NKSK/NKSKsign and TOPIC2 set
  kRevoked = 3,     // refused from now on
};

// One node description of the KS file node_desc.
struct NodeDesc {
  using Key = uint32_t;
  static constexpr RecordType kType = RecordType::kNodeDesc;

  // Clear (authenticated).
  uint32_t n_id = 0;
  uint16_t entry_no = 0;  // the seed's entry number, input of NTAG
  NodeState state = NodeState::kAuthorized;
  std::vector<uint32_t> allowed_peers;  // at most kMaxAllowedPeers
  uint64_t last_counter = 0;  // highest frame counter accepted from the node
  uint32_t nksk_version = 0;  // version of NKSK/NKSKsign (0: none yet)
  uint64_t registered_unix_ms = 0;  // when the node registered (0: not yet)
  // Every nnsk_key_req of the node with a request id at or below this is
  // finished: answered from its gen_keys record while one is kept, else
  // refused as stale (request ids grow per node). 0 in older records.
  uint64_t request_floor = 0;
  // Secret (encrypted with NK).
  SecretBytes ntag;    // kRecordNtagSize bytes
  SymmetricKeys nksk;  // NKSK, NKSKsign; both empty until registered
  Topic topic2;        // unset until registered
  // During an NKSK rotation: the previous pair (version nksk_version - 1),
  // accepted until the node uses the new one. Empty otherwise.
  SymmetricKeys prev_nksk;
  // Registered, but no frame under the NKSK seen yet: the node may not hold
  // it (the answer was lost), so a repeated registration request (same
  // request id, NTAG and TOPIC2) is answered again with the same NKSK.
  // Cleared by the node's first frame under its NKSK.
  bool nksk_unused = false;

  Key key() const { return n_id; }
  // Every field, as references into `d` (const or not).
  template <typename Self>
  static auto Fields(Self& d) {
    return std::tie(d.n_id, d.entry_no, d.state, d.allowed_peers,
                    d.last_counter, d.nksk_version, d.registered_unix_ms,
                    d.request_floor, d.ntag, d.nksk, d.topic2, d.prev_nksk,
                    d.nksk_unused);
  }
  NodeDesc Clone() const { return records_internal::CloneFields(*this); }
};

// One key of the KS file gen_keys: pending from step 2 to step 5 of 4.7;
// at step 7 (or when purged) a key-less tombstone that remembers the
// request id was served, until the node's request_floor covers it.
inline constexpr uint8_t kGenKeyTombstone = 7;
struct GenKey {
  using Key = uint64_t;
  static constexpr RecordType kType = RecordType::kGenKey;

  // Clear (authenticated).
  uint32_t n_id1 = 0;
  uint64_t request_id = 0;
  uint64_t ctime_unix_ms = 0;
  uint8_t step = 2;  // 2 created, 5 nnsk_not_ans received, 7 tombstone
  bool renewal = false;
  uint32_t version = 0;  // version the pair key carries (requester's + 1)
  // Secret (encrypted with NK; the seed encrypts N_ID2 too).
  uint32_t n_id2 = 0;
  SymmetricKeys nnsk;  // NNSK, NNSKsign; set unless a tombstone
  Topic topic3;
  Topic topic4;  // unset until step 5

  Key key() const { return request_id; }
  bool tombstone() const { return step == kGenKeyTombstone; }
  template <typename Self>
  static auto Fields(Self& g) {
    return std::tie(g.n_id1, g.request_id, g.ctime_unix_ms, g.step, g.renewal,
                    g.version, g.n_id2, g.nnsk, g.topic3, g.topic4);
  }
  GenKey Clone() const { return records_internal::CloneFields(*this); }
};

// One session key description of a node's file ses_keys.
struct SesKey {
  using Key = uint32_t;
  static constexpr RecordType kType = RecordType::kSesKey;

  // Clear (authenticated).
  uint32_t n_id = 0;           // the peer
  uint64_t ctime_unix_ms = 0;  // 0: no key yet, or expired
  uint32_t key_version = 0;
  // Usage of the key (frames and bytes sealed), reserved ahead: never below
  // the real usage (see NodeClient, kUsageReserveFrames).
  uint64_t frames_sent = 0;
  uint64_t bytes_sent = 0;
  // Receive floor: every frame counter accepted from the peer under
  // key_version is at or below it; the replay window restarts from it
  // (reserved ahead, exact after a clean stop: see kRxReserveMicros).
  uint64_t rx_counter = 0;
  // Secret (encrypted with NK).
  SymmetricKeys nnsk;  // NNSK, NNSKsign; both empty or both set
  Topic topic3;        // subscribed by this node to hear from the peer
  Topic topic4;        // subscribed by the peer to hear from this node
  // The other key of a renewal under way (empty if none), with its own
  // version and topics. Newer than the current one (`next`): received at
  // step 4, used once the peer has shown it holds it. Older (`previous`):
  // the key the requester replaced at step 6, still accepted until the peer
  // has shown it uses the new one.
  uint32_t other_version = 0;
  // The receive floor of the other key, like rx_counter (0 for a next key:
  // it becomes the current key with its own floor at its first frame).
  uint64_t other_rx_counter = 0;
  SymmetricKeys other_nnsk;
  Topic other_topic3;
  Topic other_topic4;

  Key key() const { return n_id; }
  bool has_next() const {
    return other_nnsk.valid() && other_version > key_version;
  }
  bool has_previous() const {
    return other_nnsk.valid() && other_version < key_version;
  }
  template <typename Self>
  static auto Fields(Self& k) {
    return std::tie(k.n_id, k.ctime_unix_ms, k.key_version, k.frames_sent,
                    k.bytes_sent, k.rx_counter, k.nnsk, k.topic3, k.topic4,
                    k.other_version, k.other_rx_counter, k.other_nnsk,
                    k.other_topic3, k.other_topic4);
  }
  SesKey Clone() const { return records_internal::CloneFields(*this); }
};

// One record of a node's file grp_keys: the node's group state. Its key
// says what it holds:
//  * 0 (group 0, member 0): the node's own Ed25519 key pair (kSigningKey);
//  * group G, member 0: group G's keys and mode (kGroup);
//  * group G, member M: member M of group G: its Ed25519 public key and the
//    receive floor of its messages (kMember).
inline constexpr size_t kGroupKeySize = 32;
inline constexpr size_t kMaxGroupPathBytes = 4096;
struct GroupRecord {
  using Key = uint64_t;
  static constexpr RecordType kType = RecordType::kGrpKeys;
  enum class Kind : uint8_t { kSigningKey = 1, kGroup = 2, kMember = 3 };

  uint32_t group_id = 0;
  uint32_t member = 0;
  // kGroup. Clear (authenticated).
  uint8_t mode = 0;           // GroupMode (kgr/group_frame.h)
  uint32_t key_version = 0;   // of group_key (0: none yet)
  uint32_t prev_version = 0;  // of prev_group_key (0: none)
  // The previous key is accepted until then (wall clock).
  uint64_t prev_until_unix_ms = 0;
  // Where the group's frames travel and who signs its rekeys, as the KS
  // sent them with the membership (group_join, group_sync_ans).
  TopicId rekey_topic{};
  TopicId data_topic{};
  std::array<uint8_t, kEd25519PublicSize> ks_sign_public{};
  // Secret (encrypted with NK).
  SecretBytes group_key;       // kGroupKeySize bytes or empty
  SecretBytes prev_group_key;  // kGroupKeySize bytes or empty
  // The member's keys on its path in the group's key hierarchy, as the
  // hierarchy encodes them (opaque here; at most kMaxGroupPathBytes).
  SecretBytes path_keys;
  // kMember and kSigningKey. Clear: the Ed25519 public key (32 bytes; empty
  // for a member whose key the KS did not send).
  Bytes public_key;
  // kMember. Clear: every counter accepted from the member in this group
  // is at or below it (reserved ahead, like SesKey::rx_counter).
  uint64_t rx_counter = 0;
  // kSigningKey. Secret: the Ed25519 private key (32 bytes).
  SecretBytes private_key;

  Key key() const { return (uint64_t{group_id} << 32) | member; }
  Kind kind() const {
    return group_id == 0 ? Kind::kSigningKey
                         : (member == 0 ? Kind::kGroup : Kind::kMember);
  }
  template <typename Self>
  static auto Fields(Self& g) {
    return std::tie(g.group_id, g.member, g.mode, g.key_version, g.prev_version,
                    g.prev_until_unix_ms, g.rekey_topic, g.data_topic,
                    g.ks_sign_public, g.group_key, g.prev_group_key,
                    g.path_keys, g.public_key, g.rx_counter, g.private_key);
  }
  GroupRecord Clone() const { return records_internal::CloneFields(*this); }
};

// ---- groups (KS file `groups`; kgr-ac group, docs/storage.md 1.6) ----
enum class GroupMode : uint8_t {
  kGroupKey = 0,   // the group key alone: any member could forge another's
  kSenderAuth = 1  // and each member signs with its own Ed25519 key
};
inline constexpr size_t kMaxGroupNameSize = 64;
// One group is one record (<= kMaxRecordSize): members and the key tree's
// state together stay well below it.
inline constexpr size_t kMaxGroupMembers = 256;
inline constexpr size_t kMaxGroupTreeState = 20 * 1024;

struct GroupMember {
  uint32_t n_id = 0;
  // The member's Ed25519 public key (sender authentication), all zero until
  // the node sent it (group_sync_req).
  std::array<uint8_t, kEd25519PublicSize> sign_public{};
  bool operator==(const GroupMember&) const = default;
};

// One group of the KS file `groups`.
struct GroupDesc {
  using Key = uint32_t;
  static constexpr RecordType kType = RecordType::kGroupDesc;

  // Clear (authenticated).
  uint32_t group_id = 0;
  std::string name;  // 1..kMaxGroupNameSize of [A-Za-z0-9_.-]
  GroupMode mode = GroupMode::kGroupKey;
  uint32_t lifetime_s = 0;       // rekey the root at least this often; 0: never
  uint32_t key_version = 0;      // epoch of the group key, +1 per rekey
  uint64_t rekeyed_unix_ms = 0;  // when the group key last changed
  std::vector<GroupMember> members;  // ascending n_id, <= kMaxGroupMembers
  // Secret (encrypted with NK).
  TopicId rekey_topic{};  // the KS publishes group_rekey there
  TopicId data_topic{};   // members publish group_data there
  // The KS's Ed25519 key that signs this group's group_rekey frames (the
  // 32-byte private seed; empty until the first rekey).
  SecretBytes sign_key;
  SecretBytes tree;  // the key tree serialized, <= kMaxGroupTreeState

  Key key() const { return group_id; }
  template <typename Self>
  static auto Fields(Self& g) {
    return std::tie(g.group_id, g.name, g.mode, g.lifetime_s, g.key_version,
                    g.rekeyed_unix_ms, g.members, g.rekey_topic, g.data_topic,
                    g.sign_key, g.tree);
  }
  GroupDesc Clone() const { return records_internal::CloneFields(*this); }
};
// INVALID_ARGUMENT naming what is wrong with a group name.
Status ValidateGroupName(std::string_view name);

// Seals `record` for the file of node `owner_n_id` with a random IV.
StatusOr<Bytes> EncodeRecord(const NodeDesc& record, const RecordKeys& keys,
                             uint32_t owner_n_id);
StatusOr<Bytes> EncodeRecord(const GenKey& record, const RecordKeys& keys,
                             uint32_t owner_n_id);
StatusOr<Bytes> EncodeRecord(const SesKey& record, const RecordKeys& keys,
                             uint32_t owner_n_id);
StatusOr<Bytes> EncodeRecord(const GroupDesc& record, const RecordKeys& keys,
                             uint32_t owner_n_id);

// Verifies and opens a record of type R::kType: DecodeRecord<NodeDesc>(...).
template <typename R>
StatusOr<R> DecodeRecord(std::span<const uint8_t> record,
                         const RecordKeys& keys, uint32_t owner_n_id);
template <>
StatusOr<NodeDesc> DecodeRecord<NodeDesc>(std::span<const uint8_t> record,
                                          const RecordKeys& keys,
                                          uint32_t owner_n_id);
template <>
StatusOr<GenKey> DecodeRecord<GenKey>(std::span<const uint8_t> record,
                                      const RecordKeys& keys,
                                      uint32_t owner_n_id);
template <>
StatusOr<SesKey> DecodeRecord<SesKey>(std::span<const uint8_t> record,
                                      const RecordKeys& keys,
                                      uint32_t owner_n_id);
template <>
StatusOr<GroupDesc> DecodeRecord<GroupDesc>(std::span<const uint8_t> record,
                                            const RecordKeys& keys,
                                            uint32_t owner_n_id);

// Checks the envelope and the MAC of a record of `type` without decrypting;
// returns its key (N_ID or request id).
StatusOr<uint64_t> VerifyRecord(std::span<const uint8_t> record,
                                RecordType type, const RecordKeys& keys,
                                uint32_t owner_n_id);

// The records of one file: those of node `owner_n_id`, sealed under `keys`.
// Gives the same results as the functions above, but computes the MAC
// context every tag binds (the owner and a check value of NK, a SHA-256 of
// NK) once instead of per record: for stores, and for threads that serve
// the files of many nodes. Keeps a reference to `keys`, which must outlive
// it. Thread-safe.
class RecordCodec {
 public:
  RecordCodec(const RecordKeys& keys, uint32_t owner_n_id);

  // EncodeRecord(record, keys, owner_n_id): a random IV.
  StatusOr<Bytes> Encode(const NodeDesc& record) const;
  StatusOr<Bytes> Encode(const GenKey& record) const;
  StatusOr<Bytes> Encode(const SesKey& record) const;
  StatusOr<Bytes> Encode(const GroupRecord& record) const;  // group_records.cc
  StatusOr<Bytes> Encode(const GroupDesc& record) const;
  // DecodeRecord<R>(record, keys, owner_n_id); R is NodeDesc, GenKey or
  // SesKey.
  template <typename R>
  StatusOr<R> Decode(std::span<const uint8_t> record) const;
  // VerifyRecord(record, type, keys, owner_n_id).
  StatusOr<uint64_t> Verify(RecordType type,
                            std::span<const uint8_t> record) const;

 private:
  const RecordKeys& keys_;
  Bytes context_;  // empty if `keys` are not valid
};
template <>
StatusOr<NodeDesc> RecordCodec::Decode<NodeDesc>(
    std::span<const uint8_t> record) const;
template <>
StatusOr<GenKey> RecordCodec::Decode<GenKey>(
    std::span<const uint8_t> record) const;
template <>
StatusOr<SesKey> RecordCodec::Decode<SesKey>(
    std::span<const uint8_t> record) const;
template <>
StatusOr<GroupRecord> RecordCodec::Decode<GroupRecord>(
    std::span<const uint8_t> record) const;
template <>
StatusOr<GroupDesc> RecordCodec::Decode<GroupDesc>(
    std::span<const uint8_t> record) const;

// The clear and secret parts of a group record and back (codec/
// group_record.cc; records.cc adds the envelope). Decode: false if the
// authenticated content is inconsistent.
void EncodeGroupParts(const GroupDesc& g, Bytes* clear, SecretBytes* secret);
bool DecodeGroupParts(uint64_t key, std::span<const uint8_t> clear,
                      std::span<const uint8_t> secret, GroupDesc* g);

// The key a record claims, WITHOUT verification (for reporting corrupt
// records only). nullopt if too short to hold one.
std::optional<uint64_t> PeekRecordKey(std::span<const uint8_t> record);

}  // namespace kgr

#endif  // KGR_RECORDS_H_
