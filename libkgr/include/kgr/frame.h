// The kgr wire format: every packet of the seed (section 4) as a compact,
// versioned binary frame, sealed with encrypt-then-MAC. docs/protocol.md is
// the normative description; this header is its implementation.
//
//   frame  = header ciphertext tag
//   header = version:u8 type:u8 flags:u8 sender:u32 key_version:u32
//            counter:u64 request_id:u64 iv:16 body_len:u32      (47 bytes)
//   ciphertext = AES-256-CTR(K.enc, iv, body)          (body_len bytes)
//   tag    = HMAC-SHA256(K.mac, header || ciphertext)  (32 bytes)
//
// The header is clear but authenticated: it carries what the receiver needs
// before it can pick a key (type, sender N_ID, key version) and the freshness
// fields (counter, request_id). The MAC is checked, in constant time, before
// anything is decrypted or parsed.
//
// AC<->KS messages (types >= 0x20) use the same header and body encodings
// but are carried as "clear frames" (no encryption, no tag) inside a CMS
// envelope that signs and encrypts them (see cms.h).
//
// All functions are thread-safe (no shared state).
#ifndef KGR_FRAME_H_
#define KGR_FRAME_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/crypto.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/topic.h"

namespace kgr {

inline constexpr uint8_t kFrameVersion = 1;
inline constexpr size_t kFrameHeaderSize = 47;
inline constexpr size_t kFrameOverhead = kFrameHeaderSize + kTagSize;
inline constexpr size_t kNtagSize = 32;
// Largest application payload of one node_data frame.
inline constexpr size_t kMaxDataSize = 60 * 1024;
// Largest body of any frame (the AC's node list is the biggest).
inline constexpr size_t kMaxBodySize = 4 * 1024 * 1024;
inline constexpr size_t kMaxPeers = 4096;

enum class FrameType : uint8_t {
  // Registration (4.5). Keys derived from NTAG (RegistrationKeys).
  kNkskKeyReq = 0x01,  // N  -> KS on TOPIC0
  kNkskKeyAns = 0x02,  // KS -> N  on TOPIC2
  // Session key generation and renewal (4.7, 4.9). Keys: NKSK of the node.
  kNnskKeyReq = 0x03,   // N1 -> KS on TOPIC1
  kNnskKeyAns = 0x04,   // KS -> N1 on TOPIC2(N1)
  kNnskNotReq = 0x05,   // KS -> N2 on TOPIC2(N2)
  kNnskNotAns = 0x06,   // N2 -> KS on TOPIC1
  kNnskConfReq = 0x07,  // KS -> N1 on TOPIC2(N1)
  kNnskConfAns = 0x08,  // N1 -> KS on TOPIC1
  kKsError = 0x09,      // KS -> N  on TOPIC2: the request was refused
  kPairRevoked = 0x0A,  // KS -> N  on TOPIC2: forget the pair with a peer
  // Rotation of NKSK/NKSKsign by ephemeral X25519, under the current NKSK.
  kNkskRotReq = 0x0B,  // N  -> KS on TOPIC1
  kNkskRotAns = 0x0C,  // KS -> N  on TOPIC2
  kNkskRotSig = 0x0D,  // KS -> N  on TOPIC2: the KS asks the node to rotate
  // Renewal of the node's broker certificate, under the current NKSK.
  kCertRenewReq = 0x0E,  // N  -> KS on TOPIC1: a CSR for the node's own name
  kCertRenewAns = 0x0F,  // KS -> N  on TOPIC2: the signed certificate chain
  // Data exchange (4.8). Keys: NNSK of the pair.
  kNodeDataReq = 0x10,  // N1 -> N2 on TOPIC4 (subscribed by N2)
  kNodeDataAns = 0x11,  // N2 -> N1 on TOPIC3 (subscribed by N1)
  // Group rekey (kgr/group_rekey.h): KS -> members on the group's rekey
  // topic; a clear frame followed by the KS's Ed25519 signature.
  kGroupRekey = 0x12,
  // Group data (kgr/group_frame.h): a member to every member, on the
  // group's data topic. Keys: derived from the group key.
  kGroupData = 0x14,
  // AC <-> KS (4.3, 4.6), clear frames inside CMS.
  kAcAuthorizeReq = 0x20,
  kAcAuthorizeAns = 0x21,
  kAcPeersReq = 0x22,
  kAcPeersAns = 0x23,
  kAcListReq = 0x24,
  kAcListAns = 0x25,
  kAcRevokeReq = 0x26,
  kAcRevokeAns = 0x27,
  // Groups, KS side (kgr/group_frames.h): unicast to one member under its
  // NKSK, and the AC's group administration (clear frames inside CMS).
  kGroupJoin = 0x13,     // KS -> N on TOPIC2: leaf and path keys, members
  kGroupSyncReq = 0x15,  // N  -> KS on TOPIC1: send me my path again
  kGroupSyncAns = 0x16,  // KS -> N on TOPIC2: the same body as group_join
  kAcGroupCreateReq = 0x28,
  kAcGroupCreateAns = 0x29,
  kAcGroupMembersReq = 0x2A,
  kAcGroupMembersAns = 0x2B,
  kAcGroupListReq = 0x2C,
  kAcGroupListAns = 0x2D,
  kAcGroupDeleteReq = 0x2E,
  kAcGroupDeleteAns = 0x2F,
};

std::string_view FrameTypeName(FrameType type);
bool IsKnownFrameType(uint8_t type);
inline bool IsAcFrameType(FrameType t) {
  return static_cast<uint8_t>(t) >= 0x20;
}

// Header flags. Unknown bits must be zero.
inline constexpr uint8_t kFlagRenewal = 0x01;  // nnsk_* frames of a renewal
inline constexpr uint8_t kKnownFlags = kFlagRenewal;

struct FrameHeader {
  FrameType type = FrameType::kNkskKeyReq;
  uint8_t flags = 0;
  uint32_t sender = 0;       // N_ID of the sender (the KS has one too)
  uint32_t key_version = 0;  // version of the key pair protecting the frame
  uint64_t counter = 0;      // per-sender, strictly increasing
  // Answers echo it. Random per request, except nnsk_key_req: the node's
  // frame counter when the request was made (grows per node, see
  // docs/protocol.md section 3).
  uint64_t request_id = 0;
  Iv iv{};                // filled by SealFrame (random)
  uint32_t body_len = 0;  // filled by SealFrame
};

// Parses and validates the clear header only: version, known type, known
// flags, body_len bound, exact total length. No crypto: cheap enough to run
// on every received message before any key lookup.
StatusOr<FrameHeader> PeekFrameHeader(std::span<const uint8_t> frame);

// Seals `body` under `keys` with a fresh random IV (EtmSeal draws it).
// `header.iv` and `header.body_len` are ignored and set from the arguments.
StatusOr<Bytes> SealFrame(FrameHeader header, std::span<const uint8_t> body,
                          const SymmetricKeys& keys);

// Verifies the tag (UNAUTHENTICATED "verification failed" on any mismatch)
// and then decrypts. Returns the body; `header` receives the parsed header.
StatusOr<SecretBytes> OpenFrame(std::span<const uint8_t> frame,
                                const SymmetricKeys& keys, FrameHeader* header);

// Clear frames (AC<->KS, inside CMS; group_rekey before its signature):
// header with a zero IV, then the body.
StatusOr<Bytes> EncodeClearFrame(FrameHeader header,
                                 std::span<const uint8_t> body);
// Returns the body (a view into `frame`).
StatusOr<std::span<const uint8_t>> DecodeClearFrame(
    std::span<const uint8_t> frame, FrameHeader* header);

// Registration keys from NTAG, one pair per direction:
//   HKDF-SHA256(ikm = NTAG, salt = "kgr/v1 registration",
//               info = ("nksk_key_req" | "nksk_key_ans") || N_ID:u32)
StatusOr<SymmetricKeys> RegistrationKeys(const SecretBytes& ntag, uint32_t n_id,
                                         FrameType direction);

// The request id of a node's registration: the first 8 bytes (big-endian)
// of SHA-256("kgr/v1 registration request" || NTAG). Fixed per NTAG, so a
// node that restarts mid-registration asks again with the same id and the
// KS can answer idempotently (see NodeDesc::nksk_unused).
uint64_t RegistrationRequestId(const SecretBytes& ntag);

// NTAG = SHA-256(N_ID:u32 || KEDK_pub || entry_no:u16 || salt) — the
// seed's inputs (3.5.1) plus 32 fresh random bytes `salt` from the KS, so
// that an NTAG cannot be recomputed by whoever learns the KEDK public key.
inline constexpr size_t kNtagSaltSize = 32;
SecretBytes ComputeNtag(uint32_t n_id, std::span<const uint8_t> kedk_public,
                        uint16_t entry_no, std::span<const uint8_t> salt);

// Per-sender frame counter: strictly increasing, and at least the current
// time in microseconds, so a restarted sender never reuses a counter without
// persisting one (as long as its clock does not step back past `floor`).
// A KS instance of a cluster sends in its own lane (kgr/counter_lanes.h):
// the top 8 bits are the lane, the low 56 the sequence above. Lane 0 (every
// node, the AC, a single KS) is the plain counter. Not thread-safe.
class FrameCounter {
 public:
  static constexpr unsigned kLaneShift = 56;
  static constexpr uint64_t kSequenceMask = (uint64_t{1} << kLaneShift) - 1;
  explicit FrameCounter(uint64_t floor = 0, uint8_t lane = 0)
      : lane_bits_(uint64_t{lane} << kLaneShift),
        last_(floor & kSequenceMask) {}
  uint64_t Next(uint64_t now_us) {
    now_us &= kSequenceMask;
    last_ = now_us > last_ ? now_us : last_ + 1;
    return lane_bits_ | last_;
  }
  uint64_t last() const { return lane_bits_ | last_; }

 private:
  uint64_t lane_bits_;
  uint64_t last_;  // the sequence, below the lane
};

// ---- Bodies (plaintext of each frame type) ----
// Each has kType, EncodeTo (appends to `out`) and Parse (strict: exact
// length, no trailing bytes). Bodies holding keys encode into a buffer the
// caller must wipe (SealBody does it).

struct NkskKeyReq {
  static constexpr FrameType kType = FrameType::kNkskKeyReq;
  uint32_t n_id = 0;
  SecretBytes ntag;  // 32 bytes: proves knowledge of the one-time NTAG
  TopicId topic2{};
  void EncodeTo(Bytes* out) const;
  static StatusOr<NkskKeyReq> Parse(std::span<const uint8_t> in);
};

struct NkskKeyAns {
  static constexpr FrameType kType = FrameType::kNkskKeyAns;
  SymmetricKeys nksk;  // NKSK, NKSKsign
  TopicId topic1{};
  void EncodeTo(Bytes* out) const;
  static StatusOr<NkskKeyAns> Parse(std::span<const uint8_t> in);
};

struct NnskKeyReq {
  static constexpr FrameType kType = FrameType::kNnskKeyReq;
  uint32_t n_id2 = 0;
  uint32_t version = 0;  // version the new key will carry
  TopicId topic3{};      // subscribed by N1 for data from N2
  void EncodeTo(Bytes* out) const;
  static StatusOr<NnskKeyReq> Parse(std::span<const uint8_t> in);
};

struct NnskKeyAns {
  static constexpr FrameType kType = FrameType::kNnskKeyAns;
  uint32_t n_id1 = 0;
  uint32_t n_id2 = 0;
  uint32_t version = 0;
  SymmetricKeys nnsk;  // NNSK, NNSKsign
  void EncodeTo(Bytes* out) const;
  static StatusOr<NnskKeyAns> Parse(std::span<const uint8_t> in);
};

struct NnskNotReq {
  static constexpr FrameType kType = FrameType::kNnskNotReq;
  uint32_t n_id1 = 0;  // the requesting peer
  uint32_t version = 0;
  SymmetricKeys nnsk;
  TopicId topic3{};
  void EncodeTo(Bytes* out) const;
  static StatusOr<NnskNotReq> Parse(std::span<const uint8_t> in);
};

struct NnskNotAns {
  static constexpr FrameType kType = FrameType::kNnskNotAns;
  uint32_t n_id1 = 0;
  uint32_t n_id2 = 0;
  TopicId topic4{};  // subscribed by N2 for data from N1
  void EncodeTo(Bytes* out) const;
  static StatusOr<NnskNotAns> Parse(std::span<const uint8_t> in);
};

struct NnskConfReq {
  static constexpr FrameType kType = FrameType::kNnskConfReq;
  uint32_t n_id1 = 0;
  uint32_t n_id2 = 0;
  TopicId topic4{};
  void EncodeTo(Bytes* out) const;
  static StatusOr<NnskConfReq> Parse(std::span<const uint8_t> in);
};

struct NnskConfAns {
  static constexpr FrameType kType = FrameType::kNnskConfAns;
  uint32_t n_id2 = 0;
  void EncodeTo(Bytes* out) const;
  static StatusOr<NnskConfAns> Parse(std::span<const uint8_t> in);
};

// Why the KS refused a request (kKsError).
enum class KsErrorCode : uint8_t {
  kPairNotAllowed = 1,
  kPeerUnknown = 2,  // peer not authorized or not registered
  kBusy = 3,         // too many pending requests; retry later
  kInternal = 4,
  // nnsk_key_req: the request id is at or below the node's floor (every
  // such request is finished); the node asks again under a new id.
  kStaleRequest = 5,
  // cert_renew_req: the KS signs no certificates (no node CA configured) or
  // refused the CSR (not the node's own subject, bad signature or key).
  kCertificateRefused = 6,
};
std::string_view KsErrorCodeName(KsErrorCode code);

struct KsError {
  static constexpr FrameType kType = FrameType::kKsError;
  FrameType refused_type = FrameType::kNnskKeyReq;
  KsErrorCode code = KsErrorCode::kInternal;
  void EncodeTo(Bytes* out) const;
  static StatusOr<KsError> Parse(std::span<const uint8_t> in);
};

// Why a pair was revoked (kPairRevoked).
enum class RevokeReason : uint8_t {
  kPeerRevoked = 1,    // the peer node was revoked by the AC
  kPairWithdrawn = 2,  // the AC withdrew the pair's permission
};

struct PairRevoked {
  static constexpr FrameType kType = FrameType::kPairRevoked;
  uint32_t peer = 0;
  RevokeReason reason = RevokeReason::kPeerRevoked;
  void EncodeTo(Bytes* out) const;
  static StatusOr<PairRevoked> Parse(std::span<const uint8_t> in);
};

struct NkskRotReq {
  static constexpr FrameType kType = FrameType::kNkskRotReq;
  Bytes node_public;  // X25519, 32 bytes, fresh per rotation
  void EncodeTo(Bytes* out) const;
  static StatusOr<NkskRotReq> Parse(std::span<const uint8_t> in);
};

struct NkskRotAns {
  static constexpr FrameType kType = FrameType::kNkskRotAns;
  Bytes ks_public;       // X25519, 32 bytes, fresh per answer
  uint32_t version = 0;  // the new NKSK's version
  void EncodeTo(Bytes* out) const;
  static StatusOr<NkskRotAns> Parse(std::span<const uint8_t> in);
};

struct NkskRotSig {
  static constexpr FrameType kType = FrameType::kNkskRotSig;
  void EncodeTo(Bytes* out) const;
  static StatusOr<NkskRotSig> Parse(std::span<const uint8_t> in);
};

// Bounds of the certificate renewal bodies. A P-256 CSR for the node's
// subject is about 240 bytes; the KS reads frames of at most 512 bytes
// (kMaxFrameToKs), so a CSR is at most 512 - kFrameOverhead.
inline constexpr size_t kMaxCsrSize = 512 - kFrameOverhead;
inline constexpr size_t kMaxCertChainSize = 16384;

struct CertRenewReq {
  static constexpr FrameType kType = FrameType::kCertRenewReq;
  Bytes csr_der;  // PKCS#10, DER, 1..kMaxCsrSize bytes
  void EncodeTo(Bytes* out) const;
  static StatusOr<CertRenewReq> Parse(std::span<const uint8_t> in);
};

struct CertRenewAns {
  static constexpr FrameType kType = FrameType::kCertRenewAns;
  std::string chain_pem;  // the new certificate, then its issuers below
                          // the root; 1..kMaxCertChainSize bytes
  void EncodeTo(Bytes* out) const;
  static StatusOr<CertRenewAns> Parse(std::span<const uint8_t> in);
};

// The rotated NKSK/NKSKsign:
//   HKDF-SHA256(ikm = X25519(shared), salt = "kgr/v1 nksk rotation",
//               info = N_ID:u32 || version:u32 || node_public || ks_public)
// Forward secrecy: knowing the old NKSK reveals only the public values.
StatusOr<SymmetricKeys> RotationKeys(const SecretBytes& shared, uint32_t n_id,
                                     uint32_t version,
                                     std::span<const uint8_t> node_public,
                                     std::span<const uint8_t> ks_public);

struct NodeDataReq {
  static constexpr FrameType kType = FrameType::kNodeDataReq;
  uint32_t n_id2 = 0;  // destination
  SecretBytes data;    // <= kMaxDataSize
  void EncodeTo(Bytes* out) const;
  static StatusOr<NodeDataReq> Parse(std::span<const uint8_t> in);
};

struct NodeDataAns {
  static constexpr FrameType kType = FrameType::kNodeDataAns;
  uint32_t n_id2 = 0;  // the answering node
  SecretBytes data;    // optional reply, <= kMaxDataSize
  void EncodeTo(Bytes* out) const;
  static StatusOr<NodeDataAns> Parse(std::span<const uint8_t> in);
};

// AC -> KS: authorize one new node that may pair with `peers`.
struct AcAuthorizeReq {
  static constexpr FrameType kType = FrameType::kAcAuthorizeReq;
  std::vector<uint32_t> peers;  // <= kMaxPeers
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcAuthorizeReq> Parse(std::span<const uint8_t> in);
};

// Result of an AC request; 0 = OK, else a StatusCode value.
struct AcAuthorizeAns {
  static constexpr FrameType kType = FrameType::kAcAuthorizeAns;
  uint8_t status = 0;
  uint32_t n_id = 0;
  uint16_t entry_no = 0;
  SecretBytes ntag;  // 32 bytes when status == 0, else empty
  TopicId ks_topic1{};
  uint32_t ks_n_id = 0;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcAuthorizeAns> Parse(std::span<const uint8_t> in);
};

// AC -> KS: allow (or, with allow = 0, withdraw) pairing of n_id with peers.
struct AcPeersReq {
  static constexpr FrameType kType = FrameType::kAcPeersReq;
  uint32_t n_id = 0;
  uint8_t allow = 1;
  std::vector<uint32_t> peers;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcPeersReq> Parse(std::span<const uint8_t> in);
};

struct AcPeersAns {
  static constexpr FrameType kType = FrameType::kAcPeersAns;
  uint8_t status = 0;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcPeersAns> Parse(std::span<const uint8_t> in);
};

// AC -> KS: one page of the node list, the nodes with an N_ID above
// `after` (0: from the first), ascending.
struct AcListReq {
  static constexpr FrameType kType = FrameType::kAcListReq;
  uint32_t after = 0;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcListReq> Parse(std::span<const uint8_t> in);
};

struct AcListAns {
  static constexpr FrameType kType = FrameType::kAcListAns;
  struct Entry {
    uint32_t n_id = 0;
    uint8_t state = 0;  // NodeState of records.h
    uint16_t entry_no = 0;
    std::vector<uint32_t> peers;
  };
  uint8_t status = 0;
  uint8_t more = 0;  // 1: nodes follow the last entry (ask again after it)
  std::vector<Entry> nodes;
  // Encoded size of a page holding nothing, and of one entry.
  static constexpr size_t kHeaderSize = 6;
  static size_t EntrySize(const Entry& e) { return 9 + 4 * e.peers.size(); }
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcListAns> Parse(std::span<const uint8_t> in);
};

// AC -> KS: revoke a node for good (it may come back only as a new node).
struct AcRevokeReq {
  static constexpr FrameType kType = FrameType::kAcRevokeReq;
  uint32_t n_id = 0;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcRevokeReq> Parse(std::span<const uint8_t> in);
};

struct AcRevokeAns {
  static constexpr FrameType kType = FrameType::kAcRevokeAns;
  uint8_t status = 0;
  uint16_t peers_notified = 0;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcRevokeAns> Parse(std::span<const uint8_t> in);
};

// Encodes `body`, seals it under `keys` and wipes the plaintext buffer.
// Sets header.type from Body::kType.
template <typename Body>
StatusOr<Bytes> SealBody(FrameHeader header, const Body& body,
                         const SymmetricKeys& keys) {
  header.type = Body::kType;
  Bytes plain;
  body.EncodeTo(&plain);
  auto sealed = SealFrame(header, plain, keys);
  WipeVector(plain);
  return sealed;
}

// Opens `frame` and parses its body as Body; INVALID_ARGUMENT if the frame
// is of another type.
template <typename Body>
StatusOr<Body> OpenBody(std::span<const uint8_t> frame,
                        const SymmetricKeys& keys, FrameHeader* header) {
  KGR_ASSIGN_OR_RETURN(SecretBytes plain, OpenFrame(frame, keys, header));
  if (header->type != Body::kType) {
    return InvalidArgumentError("unexpected frame type");
  }
  return Body::Parse(plain.span());
}

// Sliding anti-replay window over one sender's counters (after ISO/IEC
// 24767-2 8.1.5 and the IPsec window): a counter is fresh if it is above the
// highest seen, or within the last 64 below it and not seen yet. Check()
// before the work, Accept() after the frame's MAC verified.
// Not thread-safe.
class ReplayWindow {
 public:
  // Everything at or below `highest` counts as seen (a restored window).
  explicit ReplayWindow(uint64_t highest = 0) : highest_(highest) {}
  bool IsFresh(uint64_t counter) const;
  // Precondition: IsFresh(counter).
  void Accept(uint64_t counter);
  uint64_t highest() const { return highest_; }

 private:
  static constexpr uint64_t kWidth = 64;
  uint64_t highest_;
  uint64_t seen_ = ~uint64_t{0};  // bit i set: highest_ - i was accepted
};

}  // namespace kgr

#endif  // KGR_FRAME_H_
