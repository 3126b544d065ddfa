// The TPM of a daemon and its own data in it, from the daemon options.
#include "daemon/wiring.h"

namespace kgr {

StatusOr<std::unique_ptr<Tpm>> OpenTpmFor(const DaemonOptions& o) {
  TpmOptions t;
  t.tcti = o.tcti;
  t.state_dir = o.state_dir;
  t.pcr_policy = o.pcr_policy;
  return OpenTpm(t);
}

StatusOr<OwnData> OpenOwnData(const DaemonOptions& o, Role role,
                              std::unique_ptr<DirLock>& lock,
                              std::unique_ptr<Tpm>& tpm) {
  const bool ks = role == Role::kKeyServer;
  KGR_ASSIGN_OR_RETURN(lock, DirLock::ForStateDir(o.state_dir));
  KGR_ASSIGN_OR_RETURN(tpm, OpenTpmFor(o));
  auto own = LoadOwnData(*tpm);
  if (!own.ok()) {
    return own.status().Annotate(ks ? "run `kgr-ks init` first"
                                    : "run `kgr-node init` first");
  }
  if (own->identity.role != role) {
    return FailedPreconditionError(ks ? "the TPM holds an N node identity"
                                      : "the TPM holds the KS identity");
  }
  return own;
}

StoreOptions StoreOptionsFor(const DaemonOptions& o) {
  StoreOptions s;
  s.journal_preallocate_bytes = o.journal_prealloc_kb << 10;
  return s;
}

}  // namespace kgr
