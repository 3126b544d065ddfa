// MQTT topics of a KED.
//
// The seed's TOPIC1..TOPIC4 are 10 random bytes (TopicId). On the wire they
// travel as those 10 bytes; on the broker a topic is the string
//   <prefix>/<owner>/<base32(id)>
// where <owner> is the broker identity (certificate CN) of the party that
// subscribes to it ("ks", or "n" + 8 hex digits of the node's N_ID), so the
// broker's ACL can let each identity read only its own subtree. TOPIC0 is the
// fixed "<prefix>/register". base32 is RFC 4648 lower-case without padding:
// 10 bytes -> 16 characters, all topic-safe.
#ifndef KGR_TOPIC_H_
#define KGR_TOPIC_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kgr/status.h"

namespace kgr {

inline constexpr size_t kTopicIdSize = 10;
using TopicId = std::array<uint8_t, kTopicIdSize>;
// A topic field that may be unset (the seed's "empty" TOPIC4, say).
using Topic = std::optional<TopicId>;
inline constexpr size_t kTopicSize = kTopicIdSize;
using TopicBytes = TopicId;

inline constexpr char kDefaultTopicPrefix[] = "kgr";
inline constexpr char kKsIdentity[] = "ks";
inline constexpr char kAcIdentity[] = "ac";

StatusOr<TopicId> RandomTopicId();

// An N_ID as 8 lower-case hex digits (logs, files, command lines).
std::string FormatNodeId(uint32_t n_id);
// "n" + FormatNodeId(n_id): the node's broker identity.
std::string NodeIdentity(uint32_t n_id);

// RFC 4648 base32, lower case, no padding (16 chars for a TopicId).
std::string Base32(const TopicId& id);

// <prefix>/<owner>/<base32(id)>.
std::string TopicName(std::string_view prefix, std::string_view owner,
                      const TopicId& id);
// <prefix>/register (TOPIC0).
std::string RegisterTopic(std::string_view prefix);
// <prefix>/ks/ac: where the AC sends its CMS-protected requests to the KS.
std::string AcRequestTopic(std::string_view prefix);

// Checks a prefix: 1..64 chars of [A-Za-z0-9_-] separated by single '/',
// no wildcards, no leading/trailing '/'.
Status ValidateTopicPrefix(std::string_view prefix);

}  // namespace kgr

#endif  // KGR_TOPIC_H_
