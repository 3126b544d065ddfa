// KeyServer: the KS side of every KGR procedure (seed 4.2, 4.3, 4.5, 4.7,
// 4.9) over a Transport, with node_desc and gen_keys as protected record
// files.
//
//   TOPIC0 (<prefix>/register)   nksk_key_req            -> nksk_key_ans
//   TOPIC1 (<prefix>/ks/<id>)    nnsk_key_req            -> nnsk_key_ans +
//   nnsk_not_req
//                                nnsk_not_ans            -> nnsk_conf_req
//                                nnsk_conf_ans           -> (gen_keys record
//                                deleted)
//   <prefix>/ks/ac (CMS)         ac_authorize/peers/list -> <prefix>/ac/replies
//
// Every frame is checked in this order, cheapest first: size and header,
// sender known and in a state that may send this type, replay window, MAC
// (constant time), body. A frame that fails any check is dropped and logged
// (type, sender, reason: never key material), as the seed says.
//
// Thread safety: none. Construct, Start() and call HandleMessage()/Tick()
// from one thread (an EventLoop). Transport::Publish is thread-safe.
// While it runs, the KeyServer must be the only writer of node_desc (it
// caches decoded entries).
#ifndef KGR_KEY_SERVER_H_
#define KGR_KEY_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/clock.h"
#include "kgr/cms.h"
#include "kgr/event_loop.h"
#include "kgr/frame.h"
#include "kgr/group_frames.h"
#include "kgr/metrics.h"
#include "kgr/node_certificate.h"
#include "kgr/own_data.h"
#include "kgr/rate_limiter.h"
#include "kgr/store.h"
#include "kgr/tpm.h"
#include "kgr/transport.h"

namespace kgr {

struct KeyServerOptions {
  // A gen_keys record not confirmed within this time is purged (logged).
  uint64_t gen_key_ttl_ms = 60'000;
  // At most this many unconfirmed session keys at once (KS_ERROR busy).
  size_t max_pending = 100'000;
  // Frames a node may make the KS work on, per second (token bucket), and
  // the burst; beyond that its frames are dropped. A frame is charged to
  // the node in its header only once its MAC verified (an HMAC, before any
  // decryption or work), so frames that carry a node's N_ID without its
  // keys never spend its budget. Registration (TOPIC0) has buckets of its
  // own of the same size, so TOPIC1 traffic cannot drain them. A rate of
  // 0: no limit.
  double node_frames_per_s = 100;
  double node_burst = 200;
  // All registrations together (after their NTAG verified), per second and
  // burst: bounds the node_desc syncs of a mass registration.
  double registrations_per_s = 500;
  double registrations_burst = 1000;
  // The same for the AC channel (CMS costs an ECDH and a signature check).
  double ac_messages_per_s = 20;
  double ac_burst = 40;
  // Every frame counter the KS sends is above this (the last counter of a
  // previous run, persisted by the daemon, plus a margin).
  uint64_t counter_floor = 0;
  // The frame-counter lane of this instance (kgr/counter_lanes.h): 0 for a
  // single KS; each instance of a cluster has its own (docs/cluster.md).
  uint8_t counter_lane = 0;
  // Clustered: the KS subscribes to TOPIC0, TOPIC1 and the AC topic as
  // MQTT shared subscriptions "$share/<share_group>/<topic>", so the broker
  // hands each frame to one instance of the group. Empty: plain ones.
  std::string share_group;
  // AC requests with a counter at or below this are replays (the highest
  // accepted by a previous run). With `persist_ac_counter` set, the KS
  // calls it with each AC request's counter before it acts on the request
  // and drops the request if it fails, so that no restart (or crash) lets
  // a captured AC request count again.
  uint64_t ac_counter_floor = 0;
  std::function<Status(uint64_t)> persist_ac_counter;
  // The floor is shared with other instances (KsState::ac_floor): they may
  // have accepted counters this instance never saw, so persist_ac_counter
  // is called for every AC request (not only those above this instance's
  // highest) and refuses any at or below the shared floor.
  bool ac_counter_shared = false;
  // Decoded node_desc entries kept in memory, so that a frame costs no
  // record decryption (0: none). An entry holds the node's NKSK/NKSKsign in
  // the clear (wiped on eviction), as every request does briefly anyway.
  size_t node_cache_entries = 4096;
  // Encoded size of one page of the AC's node list (ac_list_ans body): well
  // below the broker's max_packet_size (64 KiB) with the CMS envelope, and
  // above the largest entry (a node with kMaxPeers peers, 16 KiB).
  size_t ac_list_page_bytes = 32 << 10;
  // Signs node broker certificates on cert_renew_req (docs/broker.md,
  // "Renewal"): an issuing CA the AC delegated (pathlen 0, short-lived).
  // None: every certificate request is refused.
  std::optional<CertificateAuthority> node_ca;
  int64_t node_cert_seconds = 7 * 86400;
  // Revocation of what node_ca signed (docs/operations.md, "Revoke a
  // node"). Each certificate's serial is appended to `node_certs_file` and
  // synced before it goes out ("": not recorded). With `node_crl_file`, the
  // KS writes node_ca's CRL there (atomically, PEM, 0644), listing every
  // serial it issued to a node now revoked: at start, on each
  // ac_revoke_req and daily; then it calls `node_crl_written` with the
  // path (the daemon runs node_ca.crl_hook), before answering the AC.
  // `node_files` null: the POSIX file system.
  std::string node_certs_file;
  std::string node_crl_file;
  std::function<Status(const std::string& crl_file)> node_crl_written;
  FileSystem* node_files = nullptr;
  // The groups store (kgr-ac group, docs/protocol.md section 14); null: the
  // KS refuses group requests. Must outlive the KeyServer.
  GroupDescStore* groups = nullptr;
  // Joins and leaves of a group within this window make one rekey.
  uint32_t group_batch_ms = 200;
};

// Largest frame a node sends to the KS (nksk_key_req is 161 bytes).
inline constexpr size_t kMaxFrameToKs = 512;

// Why the KS dropped a frame (KeyServerStats::drops, the metric
// kgr_ks_frames_dropped_total{reason}; docs/metrics.md). The log line says
// more.
enum class DropReason : uint8_t {
  kMalformed,          // header or body does not parse
  kOversized,          // larger than kMaxFrameToKs
  kUnexpected,         // a frame type or topic the KS does not take there
  kUnknownNode,        // sender N_ID not in node_desc
  kNotRegistered,      // TOPIC1 frame from a node not registered
  kRevoked,            // from a revoked node
  kAlreadyRegistered,  // registration with an NTAG already used
  kStaleKeyVersion,    // NKSK version neither current nor previous
  kReplay,             // counter or request id already seen
  kBadMac,             // MAC, decryption, NTAG or CMS check failed
  kRateLimited,        // the sender's (or the AC channel's) bucket is empty
  kNoPendingKey,       // an answer for a key the KS does not hold
  kMismatch,           // an answer that does not match the pending key
  kInternal,           // the KS could not do its part (CSPRNG, disk)
  kCount
};
const char* DropReasonName(DropReason reason);
// KS_ERROR codes (KsErrorCode 1..6) by index; 0 unused.
inline constexpr size_t kKsErrorCodes =
    static_cast<size_t>(KsErrorCode::kCertificateRefused) + 1;

struct KeyServerStats {
  uint64_t registrations = 0;
  uint64_t keys_issued = 0;
  uint64_t keys_confirmed = 0;
  uint64_t keys_purged = 0;
  uint64_t dropped_frames = 0;
  uint64_t refused_requests = 0;
  uint64_t authorizations = 0;
  uint64_t rate_limited = 0;
  uint64_t certificates_issued = 0;  // cert_renew_req signed
  // node_desc writes other than replay counters and request floors
  // (authorizations, registrations, rotations, revocations, peer lists):
  // a backup written before the last one lacks something.
  uint64_t node_desc_changes = 0;
  // dropped_frames by reason; refused_requests by KS_ERROR code.
  uint64_t drops[static_cast<size_t>(DropReason::kCount)] = {};
  uint64_t refusals[kKsErrorCodes] = {};
  // Session key establishment, nnsk_key_req to nnsk_conf_ans (ms
  // resolution: the gen_keys record's ctime), and the gen_keys group
  // commit (records written and synced) before keys go out.
  Histogram establishment_seconds;
  Histogram commit_seconds;
};

class KsState;  // kgr/ks_state.h

namespace ks {
struct Context;  // the state the procedures share (libkgr/ks/)
}

// The KS's entry points; each procedure lives in a file of libkgr/ks/.
class KeyServer {
 public:
  // References must outlive the KeyServer. `cms` may be null (then AC
  // requests are ignored). `kedk_public` enters every new NTAG.
  KeyServer(OwnData own, Bytes kedk_public, Transport& transport,
            NodeDescStore& nodes, GenKeysStore& gen_keys,
            const CmsEndpoint* cms, Clock& clock, KeyServerOptions options);
  // The same on any state backend (kgr/ks_state.h: the files, or etcd).
  KeyServer(OwnData own, Bytes kedk_public, Transport& transport,
            KsState& state, const CmsEndpoint* cms, Clock& clock,
            KeyServerOptions options);
  ~KeyServer();
  KeyServer(const KeyServer&) = delete;
  KeyServer& operator=(const KeyServer&) = delete;

  // Subscribes TOPIC0, TOPIC1 and the AC topic.
  Status Start();
  // One received MQTT message.
  void HandleMessage(const std::string& topic, const Bytes& payload);
  // Several messages that arrived together: the gen_keys records of all new
  // key requests among them are made durable with one fdatasync (group
  // commit) before any of their keys is sent.
  struct Message {
    std::string topic;
    Bytes payload;
  };
  void HandleMessages(std::span<const Message> messages);
  // Purges expired gen_keys records and persists the replay counters that
  // advanced (one durable write for all). Call about once a second.
  void Tick();
  // Persists the advanced replay counters now (also done by Tick); call
  // before a clean shutdown.
  Status FlushCounters();

  const KeyServerStats& stats() const;
  uint32_t n_id() const;
  // The last frame counter sent, for the daemon to persist.
  uint64_t last_counter() const;
  const std::string& topic1() const;
  const std::string& register_topic() const;
  const std::string& ac_topic() const;

  // One page of the AC's list, without secrets: the nodes with an N_ID
  // above `after`, ascending, as many as fit in options.ac_list_page_bytes
  // of encoded body (at least one); `more` says whether nodes follow.
  AcListAns ListNodes(uint32_t after) const;

  // The AC's requests once their CMS envelope is verified (seed 4.3, 4.6):
  // authorize a new node (draws N_ID, computes NTAG, adds node_desc), and
  // allow or withdraw pairs (symmetric).
  Status AuthorizeNode(const AcAuthorizeReq& req, AcAuthorizeAns* ans);
  // Withdrawing a pair also tells both nodes to wipe its keys.
  Status SetPeers(const AcPeersReq& req);
  // Revokes a node for good: node_desc state revoked (NKSK wiped), its
  // pending keys dropped, its frames refused from now on, and each peer it
  // was allowed to pair with told to wipe the pair (pair_revoked). It can
  // come back only through a new authorization (new N_ID and NTAG).
  // `notified` receives the number of peers told.
  Status RevokeNode(uint32_t n_id, int* notified);
  // The AC's group requests (kgr-ac group; ks/group_admin.cc): the answer
  // carries the status and, on a refusal, the reason.
  AcGroupCreateAns CreateGroup(const AcGroupCreateReq& req);
  AcGroupMembersAns ChangeGroupMembers(const AcGroupMembersReq& req);
  AcGroupDeleteAns DeleteGroup(const AcGroupDeleteReq& req);
  AcGroupListAns ListGroups(uint32_t after, uint32_t member_after = 0);

  // Asks a node to rotate its NKSK/NKSKsign (nksk_rot_sig); the node then
  // runs the ephemeral X25519 exchange (nksk_rot_req / nksk_rot_ans).
  Status RequestRotation(uint32_t n_id);

  // A reload's new limits: gen_key_ttl_ms, max_pending, node_frames_per_s
  // and node_burst of `limits` replace the current ones (the per-node
  // buckets start full again); its other fields are ignored.
  void SetLimits(const KeyServerOptions& limits);

 private:
  std::unique_ptr<ks::Context> ctx_;  // libkgr/ks/context.h
};

// Hands messages from the transport's thread to a KeyServer on its
// EventLoop in batches (see KeyServer::HandleMessages). One lane per traffic
// class (AC requests, registrations on TOPIC0, everything else: TOPIC1),
// each bounded by `max_messages` and `max_bytes` (so at most three times
// that waits): beyond its lane's bound Push() drops, and a flood of one
// class never pushes out another. A drain handles the AC lane, then
// registrations, then TOPIC1. Push is thread-safe; the KeyServer and loop
// must outlive the inbox's queued work.
class KeyServerInbox {
 public:
  KeyServerInbox(KeyServer& ks, EventLoop& loop, size_t max_messages = 16384,
                 size_t max_bytes = 16 << 20)
      : ks_(ks),
        loop_(loop),
        max_messages_(max_messages),
        max_bytes_(max_bytes) {}
  // False if the message was dropped (its lane full or loop stopped).
  bool Push(const std::string& topic, Bytes payload);
  uint64_t TakeDropped() { return dropped_.exchange(0); }

 private:
  struct Lane {
    std::vector<KeyServer::Message> messages;
    size_t bytes = 0;
  };
  enum { kAcLane, kRegisterLane, kTopic1Lane, kLanes };
  void Drain();

  KeyServer& ks_;
  EventLoop& loop_;
  const size_t max_messages_, max_bytes_;
  std::mutex mu_;
  Lane lanes_[kLanes];   // guarded by mu_
  bool posted_ = false;  // a Drain is queued on the loop; guarded by mu_
  std::atomic<uint64_t> dropped_{0};
};

// KS init (seed 4.2): creates the local trust structure (SRK, ANK, KEDK) and
// the KS's own data (N_ID, NK/NKsign, BA, TOPIC1) in the TPM. Idempotent:
// an initialized KS is left as it is (ALREADY_EXISTS is not returned; the
// existing data is loaded and returned).
StatusOr<OwnData> InitKeyServer(Tpm& tpm, const std::string& broker_address,
                                const std::string& topic_prefix);

}  // namespace kgr

#endif  // KGR_KEY_SERVER_H_
