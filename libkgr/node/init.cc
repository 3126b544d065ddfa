// N init (4.4).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"

namespace kgr {

StatusOr<OwnData> InitNode(Tpm& tpm, const Credentials& c) {
  if (c.ntag.size() != kNtagSize) return InvalidArgumentError("NTAG size");
  if (c.n_id == 0) return InvalidArgumentError("N_ID 0 is reserved");
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(c.topic_prefix));
  KGR_RETURN_IF_ERROR(tpm.EnsureTrustStructure(/*with_kedk=*/false));
  auto existing = LoadOwnData(tpm);
  if (existing.ok()) {
    if (existing->identity.role != Role::kNode ||
        existing->identity.n_id != c.n_id) {
      return FailedPreconditionError("this TPM already holds the identity of " +
                                     FormatNodeId(existing->identity.n_id));
    }
    return existing;
  }
  if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  KGR_RETURN_IF_ERROR(MixTpmEntropy(tpm));
  OwnData d;
  d.identity.role = Role::kNode;
  d.identity.n_id = c.n_id;
  d.identity.broker_address = c.broker_address;
  d.identity.topic_prefix = c.topic_prefix;
  d.identity.ks_n_id = c.ks_n_id;
  KGR_ASSIGN_OR_RETURN(d.identity.own_topic, RandomTopicId());
  KGR_ASSIGN_OR_RETURN(d.nk, SymmetricKeys::Generate());
  d.ntag = c.ntag.Clone();
  KGR_RETURN_IF_ERROR(SaveInitialOwnData(tpm, d));
  spdlog::info("node {}: initialized", FormatNodeId(c.n_id));
  return d;
}

}  // namespace kgr
