// NodeClient: the N node side of every KGR procedure (seed 4.4-4.9) and the
// small API an application on a node uses to exchange protected data with a
// peer (node_data_req/ans with the pair's NNSK/NNSKsign, replay-protected).
//
// Asynchronous: each request takes a completion callback, called exactly
// once on the loop thread with the result (OK, or a Status saying why:
// DEADLINE_EXCEEDED when the KS or the peer did not answer in time after
// retries with exponential backoff and jitter, PERMISSION_DENIED when the
// KS refused the pair, ...).
//
// Thread safety: none; call everything from one thread (an EventLoop).
#ifndef KGR_NODE_CLIENT_H_
#define KGR_NODE_CLIENT_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "kgr/clock.h"
#include "kgr/counter_lanes.h"
#include "kgr/credentials.h"
#include "kgr/ed25519.h"
#include "kgr/frame.h"
#include "kgr/group_frame.h"
#include "kgr/group_frames.h"
#include "kgr/metrics.h"
#include "kgr/own_data.h"
#include "kgr/store.h"
#include "kgr/tpm.h"
#include "kgr/transport.h"

namespace kgr {

namespace group {
class GroupMemberKeys;  // libkgr/group/member_keys.h
}  // namespace group

// How much one pair key (NNSK/NNSKsign) may protect (0: no limit). A node
// renews a pair's key by itself when any use reaches `renew_at` of its limit
// (each key draws its own point within ±`jitter` of that, so that many pairs
// do not renew at once); at the limit itself it refuses to send more under
// that key. Frames count every frame this node sealed under the key (data
// and replies); bytes count their payloads.
struct KeyPolicy {
  uint64_t max_age_ms = 0;
  uint64_t max_frames = 0;
  uint64_t max_bytes = 0;
  double renew_at = 0.8;
  double jitter = 0.1;
  bool limited() const { return max_age_ms || max_frames || max_bytes; }
};

// Durable reservations, so that nothing is synced per frame:
// - A frame counter from a peer is accepted only below the pair's durable
//   receive floor (ses_keys rx_counter); accepting one above it first raises
//   the floor to the counter plus kRxReserveMicros (senders' counters follow
//   their clock in µs: about one synced write a second while data flows,
//   for all pairs that need one). After a kill or a power loss the window
//   restarts at the floor: no frame is accepted twice; frames the peer sends
//   within kRxReserveMicros of the last reservation are refused (it sends
//   them again with later counters).
// - The usage of a pair key (frames_sent, bytes_sent) is stored reserved
//   ahead, by min(kUsageReserve*, limit / 16) (at least 1): after a kill or
//   a power loss it reads back above what was used by at most that, never
//   below.
// A clean stop (Shutdown) writes the exact values: a clean restart costs
// nothing.
inline constexpr uint64_t kRxReserveMicros = 1'000'000;
inline constexpr uint64_t kUsageReserveFrames = 1024;
inline constexpr uint64_t kUsageReserveBytes = 1 << 20;

struct NodeClientOptions {
  uint64_t request_timeout_ms = 10'000;  // overall deadline of one request
  uint64_t first_retry_ms = 400;         // then doubled, +-25% jitter
  uint64_t max_retry_ms = 3'000;
  // KeepRegistering() with nobody waiting for the result: registration
  // requests are repeated with the back-off growing up to this.
  uint64_t register_max_retry_ms = 60'000;
  // After a renewal the previous key of a pair is still accepted this long
  // once the peer has shown that it uses the new one.
  uint64_t previous_key_grace_ms = 30'000;
  // A pair whose frames go unanswered or cannot be opened is renewed by
  // itself, at most once per this back-off (doubled per failure up to 64x).
  uint64_t converge_backoff_ms = 5'000;
  // Every frame counter the node sends is above this (see KeyServerOptions).
  uint64_t counter_floor = 0;
  KeyPolicy policy;                           // for every pair...
  std::map<uint32_t, KeyPolicy> pair_policy;  // ...unless overridden here
  // After a group rekey the previous group key is still accepted this long
  // (messages sent just before the rekey, members that apply it late).
  uint64_t group_overlap_ms = 30'000;
  // A registered node with a group store asks the KS "which groups am I
  // in" (group_sync_req with group 0) at start and then about this often
  // (+-25% jitter), so that a lost group_join is repaired; 0: only at start.
  uint64_t group_resync_ms = 60'000;
};

// ---- Groups (docs/protocol.md section 13) ----
// A member of a group and the Ed25519 public key the KS distributed for it
// (empty: none; then its messages in a sender_auth group are refused).
struct GroupMemberKey {
  uint32_t n_id = 0;
  Bytes public_key;
};
// Where a group's frames travel and who signs its rekeys: what the KS sends
// with the membership (group_join, group_sync_ans; docs/protocol.md
// section 14). The node subscribes GroupTopicName(prefix, id, rekey, topic)
// of both.
struct GroupChannel {
  TopicId rekey_topic{};
  TopicId data_topic{};
  std::array<uint8_t, kEd25519PublicSize> ks_sign_public{};
};
// What a group rekey, join or catch-up hands the node (OnGroupKeys).
struct GroupKeyUpdate {
  uint32_t group_id = 0;
  GroupMode mode = GroupMode::kGroupKey;
  uint32_t key_version = 0;
  SecretBytes group_key;  // kGroupKeySize bytes
  // The node's keys on its path in the group's key hierarchy (opaque,
  // stored as they are); empty: unchanged.
  SecretBytes path_keys;
  // The whole membership; nullopt: unchanged.
  std::optional<std::vector<GroupMemberKey>> members;
  // The group's topics and rekey signer; nullopt: unchanged (required for
  // a group the node is not in yet).
  std::optional<GroupChannel> channel;
};
// One accepted group message.
struct GroupMessage {
  uint32_t group_id = 0;
  uint32_t sender = 0;
  uint32_t key_version = 0;
  uint64_t counter = 0;
  GroupMode mode = GroupMode::kGroupKey;  // kSenderAuth: signature verified
  SecretBytes data;
};
using GroupMessageHandler = std::function<void(const GroupMessage&)>;
// A group's new key is in place (after OnGroupKeys changed the version).
using GroupKeyHandler =
    std::function<void(uint32_t group_id, uint32_t key_version)>;
struct GroupInfo {  // for status output: no key material
  uint32_t group_id = 0;
  GroupMode mode = GroupMode::kGroupKey;
  uint32_t key_version = 0;
  uint32_t prev_version = 0;  // 0: no previous key accepted now
  std::vector<uint32_t> members;
};

// What an application's data handler returns: the reply to send back
// (may be empty).
using DataHandler =
    std::function<SecretBytes(uint32_t peer, const SecretBytes& data)>;
// Or, for a daemon whose applications answer later (AnswerData): what a
// data request came with, and its bytes; no reply is sent by itself.
struct DataDelivery {
  uint32_t peer = 0;
  uint32_t key_version = 0;  // of the key that opened the frame
  uint64_t counter = 0;      // the frame's counter
  uint64_t request_id = 0;   // the same for the sender's retransmissions
};
using AsyncDataHandler =
    std::function<void(const DataDelivery& from, SecretBytes data)>;
// The KS withdrew the pair or revoked the peer (the pair's keys are wiped).
enum class PairEnd { kWithdrawn, kPeerRevoked };
using PairEndHandler = std::function<void(uint32_t peer, PairEnd why)>;
using DoneCallback = std::function<void(Status)>;
using ReplyCallback = std::function<void(StatusOr<SecretBytes>)>;
// The PEM chain of a new broker certificate (CertRenewAns).
using CertCallback = std::function<void(StatusOr<std::string>)>;

struct PairInfo {  // for status output: no key material
  uint32_t peer = 0;
  bool has_key = false;
  uint32_t key_version = 0;
  uint64_t ctime_unix_ms = 0;
  uint64_t frames_sent = 0;
  uint64_t bytes_sent = 0;
  double used = 0;  // largest fraction of a policy limit used (0: none)
};

// What the client did since it started (the node's metrics,
// docs/metrics.md). Read on the client's thread.
struct NodeClientStats {
  uint64_t keys_established = 0;      // as requester: step 6 done
  uint64_t keys_received = 0;         // as the peer: a new key stored (step 4)
  uint64_t renewals = 0;              // keys_established that renewed a pair
  uint64_t key_request_failures = 0;  // key requests ended with an error
  uint64_t data_sent = 0;       // data requests and replies sent (not retries)
  uint64_t data_received = 0;   // data requests and replies accepted
  uint64_t group_sent = 0;      // group messages published
  uint64_t group_received = 0;  // group messages accepted
  uint64_t group_rekeys = 0;    // new group key versions taken
  uint64_t frames_dropped = 0;
  // A key request from RequestKey() to step 6 (its own ses_keys written).
  Histogram key_request_seconds;
};

class NodeClient {
 public:
  // References must outlive the client. `own` must be loaded from the TPM.
  NodeClient(OwnData own, Tpm& tpm, Transport& transport, SesKeysStore& ses,
             Clock& clock, NodeClientOptions options = {});

  // Subscribes TOPIC2 and the receive topic of every pair with a key.
  Status Start();
  // Before a clean stop: writes the exact receive counters and usage of
  // every pair (one synced write). The client handles no message after it.
  Status Shutdown();
  void HandleMessage(const std::string& topic, const Bytes& payload);
  // Retransmissions and deadlines. Call periodically (every ~50 ms).
  void Tick();

  bool registered() const { return own_.ks.has_value(); }
  uint32_t n_id() const { return own_.identity.n_id; }
  // The last frame counter sent, for the daemon to persist.
  uint64_t last_counter() const { return counter_.last(); }

  // Registration (4.5). OK at once if already registered. `timeout_ms` (0:
  // the options' request_timeout_ms) bounds this call; a call made while a
  // registration is under way joins it (and makes it send again now).
  // Whenever an answer to our registration request id comes, also after
  // every caller gave up, the node takes it and is registered.
  void Register(DoneCallback done, uint64_t timeout_ms = 0);
  // For a daemon: keeps asking to register until it is registered, for as
  // long as the client lives (back-off growing to register_max_retry_ms, +-25%
  // jitter; one log line per request once the KS is late). Register() calls
  // meanwhile get their own result within their own deadline.
  void KeepRegistering();
  // Adds peers the AC allowed (4.6) as empty ses_keys entries.
  Status LoadPeers(const std::vector<uint32_t>& peers);
  // Session key generation (4.7) or renewal (4.9) for the pair with `peer`.
  void RequestKey(uint32_t peer, bool renewal, DoneCallback done,
                  uint64_t timeout_ms = 0);
  // Data exchange (4.8): sends `data` to `peer`, calls back with its reply.
  void Send(uint32_t peer, SecretBytes data, ReplyCallback done,
            uint64_t timeout_ms = 0);
  void SetDataHandler(DataHandler handler) { handler_ = std::move(handler); }
  // A reload's new key lifetime policy (policy, pair_policy) and request
  // deadline (request_timeout_ms) of `o`; its other fields are ignored.
  // Requests already under way keep their deadline.
  void SetPolicy(const NodeClientOptions& o) {
    options_.policy = o.policy;
    options_.pair_policy = o.pair_policy;
    options_.request_timeout_ms = o.request_timeout_ms;
  }
  // Replaces the DataHandler: requests are answered by AnswerData.
  void SetAsyncDataHandler(AsyncDataHandler handler) {
    async_handler_ = std::move(handler);
  }
  // Answers the data request `request_id` from `peer` under the pair's
  // current key (any number of times: a retransmitted request gets the same
  // answer again). NOT_FOUND if the pair has no key.
  Status AnswerData(uint32_t peer, uint64_t request_id, SecretBytes reply);
  void SetPairEndHandler(PairEndHandler handler) {
    pair_end_handler_ = std::move(handler);
  }
  // Rotates NKSK/NKSKsign with the KS by an ephemeral X25519 exchange under
  // the current NKSK (forward secrecy: a later leak of the old NKSK does not
  // expose the new one). The new pair goes to NV: one NV write.
  void RotateNksk(DoneCallback done, uint64_t timeout_ms = 0);
  // Sends a CSR for a new broker certificate (DER, kMaxCsrSize at most) to
  // the KS under the NKSK; calls back with the signed chain (PEM, not yet
  // checked against the key: the caller holds it) or the KS's refusal
  // (PERMISSION_DENIED). One at a time (ABORTED otherwise).
  void RequestCertificate(Bytes csr_der, CertCallback done,
                          uint64_t timeout_ms = 0);

  std::vector<PairInfo> Pairs() const;

  // ---- Groups (node/group_*.cc) ----
  // The node's group state (grp_keys), opened by the caller with NK; set
  // before Start(), which loads it, subscribes every group's data and rekey
  // topics and asks the KS for each group's keys (group_sync_req: a member
  // that was offline catches up). Without it the node is in no group
  // (FAILED_PRECONDITION). The KS's group frames are handled by the client
  // itself: group_join and group_sync_ans (group_join.cc), group_rekey on
  // the group's rekey topic (group_rekey.cc), group_sync_req when a rekey
  // cannot be applied or a sender's key is missing (group_sync.cc).
  void SetGroupStore(GroupStore* store) { groups_store_ = store; }
  // Takes a group's new key (and membership, path keys, channel) from a
  // rekey, a join or a catch-up: a newer version makes the current key the
  // previous one, accepted for group_overlap_ms; the same version updates the
  // rest; an older one is refused (FAILED_PRECONDITION). One synced write of
  // grp_keys, no TPM command. Subscribes a new group's data and rekey topics.
  Status OnGroupKeys(GroupKeyUpdate update);
  // The node left or was removed from the group: its keys and windows are
  // wiped, the data and rekey topics unsubscribed.
  Status LeaveGroup(uint32_t group_id);
  // Publishes `data` to the group under its current key (signed in a
  // sender_auth group). NOT_FOUND for a group the node has no key for.
  Status SendGroup(uint32_t group_id, const SecretBytes& data);
  void SetGroupMessageHandler(GroupMessageHandler handler) {
    group_handler_ = std::move(handler);
  }
  void SetGroupKeyHandler(GroupKeyHandler handler) {
    group_key_handler_ = std::move(handler);
  }
  // The node's Ed25519 public key, for the KS (the pair is created and
  // stored sealed in grp_keys on first need; the TPM takes no part).
  StatusOr<Bytes> SigningPublicKey();
  std::vector<GroupInfo> Groups() const;

  size_t pending_requests() const { return pending_.size(); }
  const NodeClientStats& stats() const { return stats_; }

 private:
  // Session key generation or renewal (4.7, 4.9), as the requester.
  struct KeyRequest {
    uint32_t peer = 0;
    bool renewal = false;
    uint32_t version = 0;
    TopicId topic3{};
    bool got_key = false;
    SymmetricKeys nnsk;      // the new key from step 3 until step 6
    int restarts = 0;        // asked again under a new id (stale)
    bool automatic = false;  // started by the node (policy, Converge)
    DoneCallback done;
  };
  // A data request (4.8).
  struct DataRequest {
    uint32_t peer = 0;
    SecretBytes data;  // the payload, for retransmission
    ReplyCallback reply;
  };
  // An NKSK rotation.
  struct RotationRequest {
    X25519KeyPair ephemeral;  // ours, the same for retransmissions
    DoneCallback done;
  };
  // A broker certificate renewal.
  struct CertRequest {
    Bytes csr_der;  // the same for retransmissions
    CertCallback done;
  };
  // A request under way: what it is, and its retransmission schedule.
  struct Pending {
    std::variant<KeyRequest, DataRequest, RotationRequest, CertRequest> request;
    uint64_t deadline_ms = 0;
    uint64_t next_retry_ms = 0;
    uint64_t backoff_ms = 0;
    int attempts = 0;
    uint64_t timeout_ms = 0;
  };
  // The peer a request concerns; none for an NKSK rotation.
  static std::optional<uint32_t> PeerOf(const Pending& p);
  // The key request for `peer` under way, or nullptr.
  KeyRequest* KeyRequestFor(uint32_t peer);
  // The request of `kind` under `request_id`, or nullptr.
  template <typename Request>
  Request* Find(uint64_t request_id) {
    auto it = pending_.find(request_id);
    return it == pending_.end() ? nullptr
                                : std::get_if<Request>(&it->second.request);
  }
  struct PairState {
    // Wall-clock end of the previous key (ses_keys other slot); 0 while the
    // peer has not shown that it uses the current one.
    uint64_t previous_until_ms = 0;
    std::map<uint32_t, ReplayWindow> windows;  // per key version
    // The durable receive floor of key `rx_version` as last written by us
    // (0: none written since the start).
    uint32_t rx_version = 0;
    uint64_t rx_floor = 0;
    // What the key of `usage_version`/`usage_ctime` really sealed (the
    // stored frames_sent/bytes_sent are reserved ahead of it).
    bool has_usage = false;
    uint32_t usage_version = 0;
    uint64_t usage_ctime = 0;
    uint64_t frames = 0, bytes = 0;
    double renew_point = 0;  // drawn per key version (policy)
    uint32_t renew_point_version = 0;
    uint64_t next_auto_renew_ms = 0;  // back-off after a failed renewal
    std::vector<std::string> routes;  // our topics routed to the peer
    // Convergence renewals (Converge): when the next may start, back-off.
    uint64_t next_converge_ms = 0;
    uint64_t converge_backoff_ms = 0;
    // Highest key version seen in a frame header from the peer that we
    // could not open (a hint for the version our next request asks).
    uint32_t seen_version = 0;
  };

  // Registration requests: whoever waits, and when to send next.
  struct Registration {
    struct Waiter {  // a Register() call
      DoneCallback done;
      uint64_t deadline_ms = 0;
      uint64_t timeout_ms = 0;
      int sent_before = 0;  // `sent` when it joined
    };
    bool keep_trying = false;  // KeepRegistering()
    std::vector<Waiter> waiters;
    uint64_t next_send_ms = 0;
    uint64_t backoff_ms = 0;
    int sent = 0;  // requests sent so far
  };

  Status Transmit(uint64_t request_id, Pending& p);
  // Sends a registration request now and schedules the next one.
  void SendRegistrationRequest(uint64_t now);
  // Sends registration requests when due; ends waiters past their deadline.
  void TickRegistration(uint64_t now);
  // Ends every waiting Register() call with `status`.
  void FinishRegistration(const Status& status);
  // Deadline and first retry of a new request.
  void Schedule(Pending& p, uint64_t timeout_ms);
  template <typename Body>
  Status SendToKs(uint64_t request_id, uint8_t flags, const Body& body);
  void HandleFromKs(const Bytes& frame);
  void HandleData(uint32_t peer, const Bytes& frame);
  // An opened and accepted data frame: an answer completes its Send(), a
  // request goes to the (async) data handler.
  void DeliverData(uint32_t peer, const SesKey& rec, const FrameHeader& h,
                   const SecretBytes& plain);
  // The key of `rec` that opens a frame under `h.key_version`: the current
  // one once confirmed, the next one, or the previous one in its grace
  // period. nullptr, with `*why`, for none.
  const SymmetricKeys* ReceiveKey(const FrameHeader& h, const SesKey& rec,
                                  PairState& ps, const char** why);
  void OnRegistered(const FrameHeader& h, const Bytes& frame);
  void OnKeyAns(const FrameHeader& h, const NnskKeyAns& ans);
  void OnConfReq(const FrameHeader& h, const NnskConfReq& req);
  void OnNotReq(const FrameHeader& h, const NnskNotReq& req);
  // A key notification for the pair with `peer` under request `their_id`
  // crossed our own key request for it: true if ours wins, else ours is
  // abandoned.
  bool OurRequestWins(uint32_t peer, uint64_t their_id);
  void OnKsError(const FrameHeader& h, const KsError& err);
  // Prepares own_.ks->nksk for repeated use (see SymmetricKeys::Prepare).
  void PrepareNksk();
  void OnPairRevoked(const FrameHeader& h, const PairRevoked& m);
  void OnRotAns(const FrameHeader& h, const NkskRotAns& m);
  void OnCertAns(const FrameHeader& h, CertRenewAns m);
  void Finish(uint64_t request_id, Status status);
  // A key slot of a ses_keys entry: the current key, or the other slot
  // while it holds the previous key.
  enum class KeySlot { kCurrent, kPrevious };
  // The one durable path for receive floors: raises the floor of `slot` of
  // the peer's entry `rec` above `counter`, with those of other pairs' current
  // keys close to theirs, in one synced write. `rec` holds the new floor
  // after it.
  Status ReserveRx(SesKey& rec, KeySlot slot, uint64_t counter);
  // The pair's usage state for the key in `k` (initialized from k).
  PairState& UsageFor(const SesKey& k);
  // (frames, bytes) the key in `k` really sealed.
  std::pair<uint64_t, uint64_t> ActualUsage(const SesKey& k) const;
  // Routes our topics for `peer`: those of its ses_keys entry `rec` (may be
  // null) and of our key request under way.
  void RefreshRoutes(uint32_t peer, const SesKey* rec);
  // A valid frame under the next key shows the peer holds it: it becomes
  // the current key (synced, its receive floor above `counter`, the frame's),
  // the current one the previous.
  StatusOr<SesKey> Promote(const SesKey& rec, uint64_t counter);
  // Drops previous keys past their grace period.
  void ExpirePrevious();
  // The pair's nodes may hold different keys: renew (bounded, back-off).
  void Converge(uint32_t peer, std::string_view why);
  // A new nnsk_key_req id: above every earlier one of this node.
  uint64_t NewKeyRequestId();
  // Answers a data request from `peer` under the current key.
  void ReplyData(uint32_t peer, const SesKey& rec, const FrameHeader& h,
                 SecretBytes reply);
  const KeyPolicy& PolicyFor(uint32_t peer) const;
  // Largest fraction of a policy limit the pair key in `k` has used.
  double Used(const SesKey& k) const;
  // Counts one frame of `bytes` sealed under the pair's key; reserves more
  // usage durably when the stored reservation is used up (then an error
  // means: do not send).
  Status CountUse(uint32_t peer, size_t bytes);
  // Starts renewals of pair keys past their renewal point.
  void RenewByPolicy();
  std::string MyTopic(const TopicId& id) const;
  std::string PeerTopic(uint32_t peer, const TopicId& id) const;
  void Log(std::string_view what, const FrameHeader* h, std::string_view why);

  // ---- Groups ----
  struct GroupMemberState {
    Bytes public_key;
    ReplayWindow window;  // restored from the durable floor
    uint64_t rx_floor = 0;
  };
  struct GroupState {
    GroupRecord record;       // as stored (kind kGroup)
    SymmetricKeys keys;       // data keys of record.key_version
    SymmetricKeys prev_keys;  // of record.prev_version, while accepted
    std::map<uint32_t, GroupMemberState> members;
    std::string topic;  // data topic
    std::string rekey_topic;
    // Both topics subscribed (the broker's ACL may refuse them until the
    // operator ran group-acl.sh: then tried again from Tick).
    bool routed = false;
    uint64_t next_route_ms = 0;
    // The path keys of record.path_keys, which rekeys are applied to (null
    // without path keys: then the node asks for its path).
    std::shared_ptr<group::GroupMemberKeys> path;
    // group_sync_req: wanted, next one due (monotonic ms), back-off.
    bool sync_wanted = false;
    uint64_t next_sync_ms = 0;
    uint64_t sync_backoff_ms = 0;
  };
  Status LoadGroups();
  // Next "which groups am I in" (monotonic ms; 0: at once, once
  // registered); UINT64_MAX: done and not periodic.
  uint64_t next_all_groups_sync_ms_ = 0;
  void HandleGroupData(uint32_t group_id, const Bytes& frame);
  // group_join.cc: group_join / group_sync_ans (the same body) from the KS,
  // opened under the NKSK.
  void OnGroupPathFrame(const FrameHeader& h, std::span<const uint8_t> plain);
  void OnGroupPath(const FrameHeader& h, GroupJoin body);
  // group_rekey.cc: a group_rekey part on the group's rekey topic.
  void HandleGroupRekey(uint32_t group_id, const Bytes& frame);
  // group_sync.cc: ask the KS for the group's keys and membership (sent
  // from Tick, with back-off, until a group_sync_ans or group_join comes).
  void WantGroupSync(uint32_t group_id, std::string_view why);
  void TickGroupSync(uint64_t now_ms);
  // group_sync_req with group 0, at start and every group_resync_ms.
  void TickAllGroupsSync(uint64_t now_ms);
  void GroupSyncDone(GroupState& g);
  // Subscribes (or re-routes) the group's topics for its record's channel;
  // a refusal is logged and tried again from Tick.
  void RouteGroup(uint32_t group_id, GroupState& g);
  // Rebuilds g.path from g.record.path_keys.
  void LoadGroupPath(GroupState& g);
  // The data keys that open a frame of version `v` now, or nullptr.
  const SymmetricKeys* GroupReceiveKey(GroupState& g, uint32_t v);
  // Raises a member's durable floor above `counter` (synced: about once a
  // second per member while it sends).
  Status ReserveGroupRx(uint32_t group_id, uint32_t member, GroupMemberState& m,
                        uint64_t counter);
  // Drops previous group keys past their overlap.
  void ExpireGroupKeys();
  StatusOr<const Ed25519KeyPair*> SigningKey();

  GroupStore* groups_store_ = nullptr;
  std::map<uint32_t, GroupState> groups_;
  std::unordered_map<std::string, uint32_t> topic_to_group_;
  std::unordered_map<std::string, uint32_t> rekey_topic_to_group_;
  std::optional<Ed25519KeyPair> signing_key_;
  GroupMessageHandler group_handler_;
  GroupKeyHandler group_key_handler_;

  OwnData own_;
  const std::string topic2_;  // MyTopic(own_.identity.own_topic)
  Tpm& tpm_;
  Transport& transport_;
  SesKeysStore& ses_;
  Clock& clock_;
  NodeClientOptions options_;
  FrameCounter counter_;
  LaneReplayWindows ks_window_;  // one window per KS instance's lane
  DataHandler handler_;
  AsyncDataHandler async_handler_;
  PairEndHandler pair_end_handler_;
  std::map<uint64_t, Pending> pending_;
  Registration registration_;
  std::unordered_map<uint32_t, PairState> pairs_;
  std::unordered_map<std::string, uint32_t> topic_to_peer_;
  bool stopped_ = false;  // Shutdown() was called
  NodeClientStats stats_;
};

// N init (4.4): local trust structure (SRK, ANK), N_ID and NTAG from the
// credentials, fresh NK/NKsign and TOPIC2, BA. Idempotent for the same
// N_ID; FAILED_PRECONDITION if the TPM already holds another identity.
StatusOr<OwnData> InitNode(Tpm& tpm, const Credentials& credentials);

}  // namespace kgr

#endif  // KGR_NODE_CLIENT_H_
