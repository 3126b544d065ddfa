// N init (4.4).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"

namespace kgr {

StatusOr<OwnData> InitNode(Tpm& tpm, const Credentials& c) {
  if (c.ntag.size() != kNtagSize) return InvalidArgumentError("NTAG size");
  if (c.n_id == 0) return InvalidArgumentError("N_ID 0 is reserved");
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(c.topic_prefix));
  OwnData fresh;
  fresh.identity.role = Role::kNode;
  fresh.identity.n_id = c.n_id;
  fresh.identity.broker_address = c.broker_address;
  fresh.identity.topic_prefix = c.topic_prefix;
  fresh.identity.ks_n_id = c.ks_n_id;
  fresh.ntag = c.ntag.Clone();
  bool created = false;
  KGR_ASSIGN_OR_RETURN(
      OwnData d,
      LoadOrCreateOwnData(
          tpm, std::move(fresh),
          [&c](const IdentityBlob& existing) {
            if (existing.role != Role::kNode || existing.n_id != c.n_id) {
              return FailedPreconditionError(
                  "this TPM already holds the identity of " +
                  FormatNodeId(existing.n_id));
            }
            return OkStatus();
          },
          &created));
  if (created) spdlog::info("node {}: initialized", FormatNodeId(c.n_id));
  return d;
}

}  // namespace kgr
