// The node's Ed25519 key pair for sender-authenticated group messages.
// Neither the TPM 2.0 specification's algorithms nor the SLB 9670 include
// Ed25519, so the private half is a grp_keys record sealed with NK (the
// storage key the TPM keeps in NV), like every session key: it never leaves
// the node's protected storage in any other form (docs/tpm.md).
#include <spdlog/spdlog.h>

#include "kgr/node_client.h"

namespace kgr {

StatusOr<const Ed25519KeyPair*> NodeClient::SigningKey() {
  if (signing_key_.has_value()) return &*signing_key_;
  if (groups_store_ == nullptr) {
    return FailedPreconditionError("this node keeps no group state");
  }
  StatusOr<GroupRecord> stored = groups_store_->Get(0);
  if (stored.ok()) {
    KGR_ASSIGN_OR_RETURN(Ed25519KeyPair check,
                         Ed25519FromSeed(stored->private_key.span()));
    if (check.public_key != stored->public_key) {
      return DataLossError("grp_keys: the signing key's halves differ");
    }
    signing_key_ = Ed25519KeyPair{std::move(stored->private_key),
                                  std::move(stored->public_key)};
    return &*signing_key_;
  }
  if (stored.status().code() != StatusCode::kNotFound) return stored.status();
  // First need: a new pair, stored (synced) before anyone sees its public
  // half, so that a restart keeps the key the KS was given.
  KGR_ASSIGN_OR_RETURN(Ed25519KeyPair pair, GenerateEd25519());
  GroupRecord r;
  r.public_key = pair.public_key;
  r.private_key = pair.private_key.Clone();
  KGR_RETURN_IF_ERROR(groups_store_->Put(r));
  spdlog::info("node {}: new Ed25519 key pair for group messages",
               FormatNodeId(n_id()));
  signing_key_ = std::move(pair);
  return &*signing_key_;
}

StatusOr<Bytes> NodeClient::SigningPublicKey() {
  KGR_ASSIGN_OR_RETURN(const Ed25519KeyPair* pair, SigningKey());
  return pair->public_key;
}

}  // namespace kgr
