#include "kgr/key_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ks/internal.h"

namespace kgr {

KeyServer::KeyServer(OwnData own, Bytes kedk_public, Transport& transport,
                     NodeDescStore& nodes, GenKeysStore& gen_keys,
                     const CmsEndpoint* cms, Clock& clock,
                     KeyServerOptions options)
    : own_(std::move(own)),
      kedk_public_(std::move(kedk_public)),
      transport_(transport),
      nodes_(nodes),
      gen_keys_(gen_keys),
      cms_(cms),
      clock_(clock),
      options_(options),
      counter_(options.counter_floor),
      node_limiter_(options.node_frames_per_s, options.node_burst),
      registration_limiter_(options.node_frames_per_s, options.node_burst),
      registrations_limiter_(options.registrations_per_s,
                             options.registrations_burst),
      ac_limiter_(options.ac_messages_per_s, options.ac_burst),
      register_topic_(RegisterTopic(own_.identity.topic_prefix)),
      topic1_(TopicName(own_.identity.topic_prefix, kKsIdentity,
                        own_.identity.own_topic)),
      ac_topic_(AcRequestTopic(own_.identity.topic_prefix)) {}

Status KeyServer::Start() {
  const std::string& prefix = own_.identity.topic_prefix;
  KGR_RETURN_IF_ERROR(transport_.Subscribe(RegisterTopic(prefix)));
  KGR_RETURN_IF_ERROR(transport_.Subscribe(topic1()));
  if (cms_ != nullptr) {
    KGR_RETURN_IF_ERROR(transport_.Subscribe(AcRequestTopic(prefix)));
  }
  spdlog::info("ks {}: serving; {} nodes, {} pending keys",
               FormatNodeId(own_.identity.n_id), nodes_.size(),
               gen_keys_.size());
  return OkStatus();
}

void KeyServer::HandleMessage(const std::string& topic, const Bytes& payload) {
  Dispatch(topic, payload);
  CommitStaged();
}

void KeyServer::HandleMessages(std::span<const Message> messages) {
  for (const Message& m : messages) Dispatch(m.topic, m.payload);
  CommitStaged();
}

void KeyServer::Dispatch(const std::string& topic, const Bytes& payload) {
  if (topic == register_topic_ || topic == topic1_) {
    if (payload.size() > kMaxFrameToKs) return Drop(nullptr, "oversized frame");
    if (topic == topic1_) return HandleTopic1(payload);
    HandleRegistration(payload);
  } else if (topic == ac_topic_) {
    if (!ac_limiter_.Allow(0, clock_.NowMonotonicMillis())) {
      ++stats_.rate_limited;
      return Drop(nullptr, "AC channel rate limit");
    }
    HandleAc(payload);
  } else {
    Drop(nullptr, "unexpected topic");
  }
}

void KeyServer::Tick() {
  Status st = FlushCounters();
  if (!st.ok()) {
    spdlog::error("ks: replay counters not persisted: {}", st.ToString());
  }
  PurgeGenKeys();
}

}  // namespace kgr
