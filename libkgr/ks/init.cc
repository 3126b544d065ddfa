#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/internal.h"

namespace kgr {

// ---- init (4.2) ----

StatusOr<OwnData> InitKeyServer(Tpm& tpm, const std::string& broker_address,
                                const std::string& topic_prefix) {
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(topic_prefix));
  KGR_RETURN_IF_ERROR(tpm.EnsureTrustStructure(/*with_kedk=*/true));
  auto existing = LoadOwnData(tpm);
  if (existing.ok()) {
    if (existing->identity.role != Role::kKeyServer) {
      return FailedPreconditionError("this TPM holds an N node's identity");
    }
    spdlog::info("ks: already initialized as {}",
                 FormatNodeId(existing->identity.n_id));
    return existing;
  }
  if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  KGR_RETURN_IF_ERROR(MixTpmEntropy(tpm));
  OwnData d;
  d.identity.role = Role::kKeyServer;
  KGR_ASSIGN_OR_RETURN(d.identity.n_id, RandomU32());
  d.identity.broker_address = broker_address;
  d.identity.topic_prefix = topic_prefix;
  KGR_ASSIGN_OR_RETURN(d.identity.own_topic, RandomTopicId());
  KGR_ASSIGN_OR_RETURN(d.nk, SymmetricKeys::Generate());
  KGR_RETURN_IF_ERROR(SaveInitialOwnData(tpm, d));
  spdlog::info("ks: initialized as {}", FormatNodeId(d.identity.n_id));
  return d;
}

}  // namespace kgr
