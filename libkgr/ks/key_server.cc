#include "kgr/key_server.h"

#include <spdlog/spdlog.h>

#include "ks/context.h"
#include "ks/group_state.h"

namespace kgr {
namespace ks {

Context::Context(OwnData own_data, Bytes kedk, Transport& transport_ref,
                 std::unique_ptr<KsState> owned, KsState& state,
                 const CmsEndpoint* cms_endpoint, Clock& clock_ref,
                 KeyServerOptions opts)
    : own(std::move(own_data)),
      kedk_public(std::move(kedk)),
      transport(transport_ref),
      owned_state(std::move(owned)),
      nodes(state.nodes()),
      gen_keys(state.gen_keys()),
      cms(cms_endpoint),
      clock(clock_ref),
      options(opts),
      register_topic(RegisterTopic(own.identity.topic_prefix)),
      topic1(TopicName(own.identity.topic_prefix, kKsIdentity,
                       own.identity.own_topic)),
      ac_topic(AcRequestTopic(own.identity.topic_prefix)),
      counter(opts.counter_floor, opts.counter_lane),
      node_limiter(opts.node_frames_per_s, opts.node_burst),
      registration_limiter(opts.node_frames_per_s, opts.node_burst),
      registrations_limiter(opts.registrations_per_s, opts.registrations_burst),
      ac_limiter(opts.ac_messages_per_s, opts.ac_burst),
      ac_window(opts.ac_counter_floor) {}

namespace {

// The filter the KS subscribes to for `topic`: shared within `group` when
// clustered (the broker delivers the message it receives under the plain
// topic name, which Dispatch compares).
std::string SharedFilter(const std::string& group, std::string topic) {
  if (group.empty()) return topic;
  return "$share/" + group + "/" + topic;
}

// Hands one message to the procedure its topic serves.
void Dispatch(Context& ctx, const std::string& topic, const Bytes& payload) {
  if (topic == ctx.register_topic || topic == ctx.topic1) {
    if (payload.size() > kMaxFrameToKs) {
      return Drop(ctx, nullptr, DropReason::kOversized, "oversized frame");
    }
    if (topic == ctx.topic1) return HandleTopic1(ctx, payload);
    HandleRegistration(ctx, payload);
  } else if (topic == ctx.ac_topic && ctx.cms != nullptr) {
    if (!ctx.ac_limiter.Allow(0, ctx.clock.NowMonotonicMillis())) {
      ++ctx.stats.rate_limited;
      return Drop(ctx, nullptr, DropReason::kRateLimited,
                  "AC channel rate limit");
    }
    HandleAc(ctx, payload);
  } else {
    Drop(ctx, nullptr, DropReason::kUnexpected, "unexpected topic");
  }
}

}  // namespace
}  // namespace ks

KeyServer::KeyServer(OwnData own, Bytes kedk_public, Transport& transport,
                     NodeDescStore& nodes, GenKeysStore& gen_keys,
                     const CmsEndpoint* cms, Clock& clock,
                     KeyServerOptions options) {
  std::unique_ptr<KsState> files = FileKsState(nodes, gen_keys);
  KsState& state = *files;
  ctx_ = std::make_unique<ks::Context>(std::move(own), std::move(kedk_public),
                                       transport, std::move(files), state, cms,
                                       clock, options);
}

KeyServer::KeyServer(OwnData own, Bytes kedk_public, Transport& transport,
                     KsState& state, const CmsEndpoint* cms, Clock& clock,
                     KeyServerOptions options)
    : ctx_(std::make_unique<ks::Context>(std::move(own), std::move(kedk_public),
                                         transport, nullptr, state, cms, clock,
                                         options)) {}

KeyServer::~KeyServer() = default;

Status KeyServer::Start() {
  ks::Context& ctx = *ctx_;
  const std::string& prefix = ctx.own.identity.topic_prefix;
  const std::string& group = ctx.options.share_group;
  KGR_RETURN_IF_ERROR(
      ctx.transport.Subscribe(ks::SharedFilter(group, RegisterTopic(prefix))));
  KGR_RETURN_IF_ERROR(
      ctx.transport.Subscribe(ks::SharedFilter(group, topic1())));
  if (ctx.cms != nullptr) {
    KGR_RETURN_IF_ERROR(ctx.transport.Subscribe(
        ks::SharedFilter(group, AcRequestTopic(prefix))));
  }
  spdlog::info("ks {}: serving; {} nodes, {} pending keys",
               FormatNodeId(ctx.own.identity.n_id), ctx.nodes.size(),
               ctx.gen_keys.size());
  return OkStatus();
}

void KeyServer::HandleMessage(const std::string& topic, const Bytes& payload) {
  ks::SyncNodeCache(*ctx_);
  ks::Dispatch(*ctx_, topic, payload);
  ks::CommitStaged(*ctx_);
}

void KeyServer::HandleMessages(std::span<const Message> messages) {
  ks::SyncNodeCache(*ctx_);
  for (const Message& m : messages) ks::Dispatch(*ctx_, m.topic, m.payload);
  ks::CommitStaged(*ctx_);
  ks::RunGroupRekeys(*ctx_);  // batches whose window closed
}

void KeyServer::Tick() {
  Status st = FlushCounters();
  if (!st.ok()) {
    spdlog::error("ks: replay counters not persisted: {}", st.ToString());
  }
  ks::PurgeGenKeys(*ctx_);
  ks::RefreshNodeCrl(*ctx_);
  ks::RunGroupRekeys(*ctx_);  // batch windows, lifetime policy
}

Status KeyServer::FlushCounters() { return ks::FlushCounters(*ctx_); }

const KeyServerStats& KeyServer::stats() const { return ctx_->stats; }
uint32_t KeyServer::n_id() const { return ctx_->own.identity.n_id; }
uint64_t KeyServer::last_counter() const { return ctx_->counter.last(); }
const std::string& KeyServer::topic1() const { return ctx_->topic1; }
const std::string& KeyServer::register_topic() const {
  return ctx_->register_topic;
}
const std::string& KeyServer::ac_topic() const { return ctx_->ac_topic; }

AcListAns KeyServer::ListNodes(uint32_t after) const {
  return ks::ListNodes(*ctx_, after);
}

Status KeyServer::AuthorizeNode(const AcAuthorizeReq& req,
                                AcAuthorizeAns* ans) {
  return ks::AuthorizeNode(*ctx_, req, ans);
}

Status KeyServer::SetPeers(const AcPeersReq& req) {
  return ks::SetPeers(*ctx_, req);
}

Status KeyServer::RevokeNode(uint32_t n_id, int* notified) {
  return ks::RevokeNode(*ctx_, n_id, notified);
}

Status KeyServer::RequestRotation(uint32_t n_id) {
  return ks::RequestRotation(*ctx_, n_id);
}

void KeyServer::SetLimits(const KeyServerOptions& limits) {
  ks::Context& ctx = *ctx_;
  ctx.options.gen_key_ttl_ms = limits.gen_key_ttl_ms;
  ctx.options.max_pending = limits.max_pending;
  ctx.options.node_frames_per_s = limits.node_frames_per_s;
  ctx.options.node_burst = limits.node_burst;
  ctx.node_limiter = RateLimiter(limits.node_frames_per_s, limits.node_burst);
  ctx.registration_limiter =
      RateLimiter(limits.node_frames_per_s, limits.node_burst);
}

}  // namespace kgr
