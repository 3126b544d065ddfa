// Internal to libkgr/ks: the state every KS procedure shares, and the
// procedures' entry points. KeyServer (key_server.cc) owns one Context and
// dispatches each frame to a procedure after admission (admission.cc).
//
// Files: admission.cc (every frame's checks, drop log, replay counters),
// node_cache.cc (node_desc reads and writes), registration.cc (seed 4.5),
// session_key.cc (4.7 steps 1-7; a renewal, 4.9, is the same procedure
// with kFlagRenewal), rotation.cc (NKSK rotation), revocation.cc (pairs
// allowed/withdrawn, node revoked), ac_admin.cc (the AC channel: 4.3, 4.6),
// cert_renewal.cc and node_crl.cc (broker certificates and their CRL).
// Thread safety: none (the KeyServer's event loop).
#ifndef KGR_KS_CONTEXT_H_
#define KGR_KS_CONTEXT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kgr/key_server.h"
#include "kgr/ks_state.h"
#include "ks/node_crl.h"

namespace kgr::ks {

using NodeRef = std::shared_ptr<const NodeDesc>;
struct GroupState;  // group_state.h

struct Context {
  // `owned_state` (may be null) is kept alive with the context; `state` is
  // it or one the caller keeps.
  Context(OwnData own, Bytes kedk_public, Transport& transport,
          std::unique_ptr<KsState> owned_state, KsState& state,
          const CmsEndpoint* cms, Clock& clock, KeyServerOptions options);

  // Fixed at construction: identity, state (files or etcd: kgr/ks_state.h),
  // transport, clock; the options too but for the limits
  // KeyServer::SetLimits changes (a reload).
  const OwnData own;
  const Bytes kedk_public;
  Transport& transport;
  const std::unique_ptr<KsState> owned_state;
  NodeDescTable& nodes;  // read and written only through node_cache.cc
  GenKeysTable& gen_keys;
  const CmsEndpoint* cms;  // null: no AC channel
  Clock& clock;
  KeyServerOptions options;
  const std::string register_topic, topic1, ac_topic;  // TOPIC0, TOPIC1

  FrameCounter counter;  // every frame the KS sends
  KeyServerStats stats;

  // Admission (admission.cc): per-node replay windows and rate limits.
  std::unordered_map<uint32_t, ReplayWindow> windows;
  RateLimiter node_limiter;           // TOPIC1, per node
  RateLimiter registration_limiter;   // TOPIC0, per node
  RateLimiter registrations_limiter;  // TOPIC0, all nodes (key 0)
  RateLimiter ac_limiter;
  ReplayWindow ac_window;
  std::vector<uint32_t> dirty_counters;  // window or floor advanced
  // Per node: the highest request id with a durable gen_keys record, ahead
  // of node_desc.request_floor until FlushCounters persists it.
  std::unordered_map<uint32_t, uint64_t> request_floors;
  uint64_t log_second = 0;  // drop-log throttle
  int logged_this_second = 0;
  uint64_t unlogged_drops = 0;

  // node_desc cache (node_cache.cc).
  std::unordered_map<uint32_t, NodeRef> node_cache;

  // Session keys (session_key.cc): new keys of the batch being handled.
  struct Staged {
    GenKey key;
    NodeRef n1, n2;
    FrameHeader request;
  };
  std::vector<Staged> staged;

  // Rotation (rotation.cc): the answer of each rotation not yet completed,
  // so that a retransmitted request (same id, same node key) gets the same
  // agreement again.
  struct Rotation {
    uint64_t request_id = 0;
    Bytes node_public, ks_public;
    uint32_t version = 0;
  };
  std::unordered_map<uint32_t, Rotation> rotations;
  // Certificate renewal (cert_renewal.cc): the last certificate signed per
  // node, so that a retransmitted request gets the same one.
  struct CertRenewal {
    uint64_t request_id = 0;
    Bytes csr_der;
    std::string chain_pem;
  };
  std::unordered_map<uint32_t, CertRenewal> cert_renewals;
  // The node CA's issued serials and CRL (node_crl.cc).
  NodeCrlState node_crl;
  // Groups (group_state.h): batches of joins and leaves; null until used.
  std::shared_ptr<GroupState> groups;
};

// ---- admission.cc ----
// Counts, and logs (at most 20 lines a second), a dropped frame.
void Drop(Context& ctx, const FrameHeader* h, DropReason why,
          std::string_view detail);
// Cheap check before any crypto: a known sender.
bool Admit(Context& ctx, const FrameHeader& h);
// After the frame's MAC verified: spends a token of the sender's bucket in
// `limiter` (and of `global`, if given); false (dropped, counted) if empty.
bool Charge(Context& ctx, const FrameHeader& h, RateLimiter& limiter,
            RateLimiter* global = nullptr);
ReplayWindow& WindowFor(Context& ctx, const NodeDesc& n);
// A TOPIC1 frame: admitted (header, sender registered, key version, replay
// window, MAC, rate limit), then handed to its procedure.
void HandleTopic1(Context& ctx, const Bytes& frame);
// Persists the advanced replay counters and request floors (one write).
Status FlushCounters(Context& ctx);

// ---- node_cache.cc: every node_desc read and write goes through these ----
// The node's entry, shared with the cache (immutable: a write replaces the
// cache's entry, never changes one), so a frame costs no copy of it.
StatusOr<NodeRef> FindNode(Context& ctx, uint32_t n_id);
// A copy of it, to change and write back.
StatusOr<NodeDesc> GetNode(Context& ctx, uint32_t n_id);
// Every node_desc change: a read-modify-write of the records `change`
// reads through its txn (NodeDescTable::Update, kgr/ks_state.h), never a
// write of a copy read earlier (another instance may have changed the
// record since). The records written are cached (and returned in
// `written`); on an error the entries found changed are dropped. Every
// change but the replay counters' counts in stats.node_desc_changes.
Status UpdateNodes(Context& ctx, const NodeDescChange& change,
                   std::vector<NodeDesc>* written = nullptr,
                   bool counters_only = false);
void CacheNode(Context& ctx, const NodeDesc& d);
// Drops the cached entries of nodes another instance changed (etcd state;
// nothing on the files). Called before each batch of frames.
void SyncNodeCache(Context& ctx);

// ---- registration.cc (4.5): a TOPIC0 frame ----
void HandleRegistration(Context& ctx, const Bytes& frame);
void SendRegistrationAnswer(Context& ctx, const NodeDesc& node,
                            uint64_t request_id);

// ---- session_key.cc (4.7, 4.9) ----
void HandleKeyReq(Context& ctx, const FrameHeader& h, const NodeRef& n1,
                  const NnskKeyReq& req);
// Writes the staged gen_keys records (one sync), then sends their keys.
void CommitStaged(Context& ctx);
void HandleNotAns(Context& ctx, const FrameHeader& h, const NodeDesc& n2,
                  const NnskNotAns& ans);
void HandleConfAns(Context& ctx, const FrameHeader& h, const NodeDesc& n1,
                   const NnskConfAns& ans);
// Turns expired keys into tombstones and drops the tombstones that the
// persisted request floors cover.
void PurgeGenKeys(Context& ctx);
Status SendKeyAndNotification(Context& ctx, const GenKey& g, const NodeDesc& n1,
                              const NodeDesc& n2);
Status SendConfReq(Context& ctx, const GenKey& g, const NodeDesc& n1);
void SendError(Context& ctx, const FrameHeader& h, const NodeDesc& n,
               KsErrorCode code);

// ---- rotation.cc ----
void HandleRotation(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                    bool under_prev, const NkskRotReq& req);
Status RequestRotation(Context& ctx, uint32_t n_id);
// The node sent a frame under its new NKSK: the previous pair is dropped
// (node_desc written) and the rotation forgotten. Returns the node's entry.
NodeRef CompleteRotation(Context& ctx, NodeRef node);

// ---- cert_renewal.cc ----
void HandleCertRenewal(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                       const CertRenewReq& req);

// ---- revocation.cc (4.6 withdrawal, revocation) ----
Status SetPeers(Context& ctx, const AcPeersReq& req);
Status RevokeNode(Context& ctx, uint32_t n_id, int* notified);
// Tells `node` (if registered) to wipe its pair with `peer`.
bool NotifyPairRevoked(Context& ctx, uint32_t node, uint32_t peer,
                       RevokeReason reason);

// ---- ac_admin.cc (4.3, 4.6) ----
Status AuthorizeNode(Context& ctx, const AcAuthorizeReq& req,
                     AcAuthorizeAns* ans);
AcListAns ListNodes(const Context& ctx, uint32_t after);
// A message on the AC topic (CMS envelope).
void HandleAc(Context& ctx, const Bytes& message);

}  // namespace kgr::ks

#endif  // KGR_KS_CONTEXT_H_
