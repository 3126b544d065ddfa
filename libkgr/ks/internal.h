// Internal to libkgr/ks: helpers shared by the KeyServer's files.
#ifndef KGR_KS_INTERNAL_H_
#define KGR_KS_INTERNAL_H_

#include <algorithm>
#include <vector>

#include "kgr/key_server.h"
#include "ks/context.h"

namespace kgr::ks {

inline constexpr uint32_t kAcSender = 0;  // the AC has no N_ID

inline bool Contains(const std::vector<uint32_t>& v, uint32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// What gen_keys keeps of a key after step 7 or its purge: that its request
// id was served (no key, no topics).
inline GenKey Tombstone(const GenKey& g) {
  GenKey t;
  t.n_id1 = g.n_id1;
  t.request_id = g.request_id;
  t.ctime_unix_ms = g.ctime_unix_ms;
  t.step = kGenKeyTombstone;
  t.renewal = g.renewal;
  t.version = g.version;
  t.n_id2 = g.n_id2;
  return t;
}

// Seals `body` for `node` and publishes it on its TOPIC2. During a rotation
// (prev_nksk set) the frame goes out twice, under the new and under the
// previous pair: the node opens the one it can.
template <typename Body>
Status SendToNode(Context& ctx, const NodeDesc& node, uint64_t request_id,
                  uint8_t flags, const Body& body) {
  if (!node.topic2.has_value()) {
    return FailedPreconditionError("node has no TOPIC2");
  }
  // During an NKSK rotation, until the node has used the new pair, we
  // cannot know which pair it holds: its answer may be lost, it may have
  // given up the rotation, or restarted with only the new pair in NV. Each
  // frame goes under both; the header's key version tells the node which
  // copy it can open (it drops the other unopened).
  const std::string topic = TopicName(ctx.own.identity.topic_prefix,
                                      NodeIdentity(node.n_id), *node.topic2);
  FrameHeader h;
  h.flags = flags;
  h.sender = ctx.own.identity.n_id;
  h.request_id = request_id;
  if (node.prev_nksk.valid()) {
    h.key_version = node.nksk_version - 1;
    h.counter = ctx.counter.Next(ctx.clock.NowUnixMicros());
    KGR_ASSIGN_OR_RETURN(Bytes old, SealBody(h, body, node.prev_nksk));
    KGR_RETURN_IF_ERROR(ctx.transport.Publish(topic, old));
  }
  h.key_version = node.nksk_version;
  h.counter = ctx.counter.Next(ctx.clock.NowUnixMicros());
  KGR_ASSIGN_OR_RETURN(Bytes frame, SealBody(h, body, node.nksk));
  return ctx.transport.Publish(topic, frame);
}

}  // namespace kgr::ks

#endif  // KGR_KS_INTERNAL_H_
