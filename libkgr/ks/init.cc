#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/internal.h"

namespace kgr {

// ---- init (4.2) ----

StatusOr<OwnData> InitKeyServer(Tpm& tpm, const std::string& broker_address,
                                const std::string& topic_prefix) {
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(topic_prefix));
  OwnData fresh;  // N_ID: drawn at random
  fresh.identity.role = Role::kKeyServer;
  fresh.identity.broker_address = broker_address;
  fresh.identity.topic_prefix = topic_prefix;
  bool created = false;
  KGR_ASSIGN_OR_RETURN(OwnData d,
                       LoadOrCreateOwnData(
                           tpm, std::move(fresh),
                           [](const IdentityBlob& existing) {
                             if (existing.role != Role::kKeyServer) {
                               return FailedPreconditionError(
                                   "this TPM holds an N node's identity");
                             }
                             return OkStatus();
                           },
                           &created));
  spdlog::info("ks: {} as {}", created ? "initialized" : "already initialized",
               FormatNodeId(d.identity.n_id));
  return d;
}

}  // namespace kgr
