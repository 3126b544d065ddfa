// Internal to libkgr/node: NodeClient::SendToKs, the one way a node sends
// a frame to the KS (sealed under its current NKSK, on TOPIC1).
#ifndef KGR_LIBKGR_NODE_SEND_TO_KS_H_
#define KGR_LIBKGR_NODE_SEND_TO_KS_H_

#include "kgr/node_client.h"
#include "kgr/topic.h"

namespace kgr {

template <typename Body>
Status NodeClient::SendToKs(uint64_t request_id, uint8_t flags,
                            const Body& body) {
  if (!own_.ks.has_value()) return FailedPreconditionError("not registered");
  FrameHeader h;
  h.flags = flags;
  h.sender = n_id();
  h.key_version = own_.ks->version;
  h.counter = counter_.Next(clock_.NowUnixMicros());
  h.request_id = request_id;
  KGR_ASSIGN_OR_RETURN(Bytes frame, SealBody(h, body, own_.ks->nksk));
  return transport_.Publish(
      TopicName(own_.identity.topic_prefix, kKsIdentity, own_.ks->ks_topic1),
      frame);
}

}  // namespace kgr

#endif  // KGR_LIBKGR_NODE_SEND_TO_KS_H_
