// The TPM of a daemon, from its options.
#include "daemon/wiring.h"

namespace kgr {

StatusOr<std::unique_ptr<Tpm>> OpenTpmFor(const DaemonOptions& o) {
  TpmOptions t;
  t.tcti = o.tcti;
  t.state_dir = o.state_dir;
  t.pcr_policy = o.pcr_policy;
  return OpenTpm(t);
}

StoreOptions StoreOptionsFor(const DaemonOptions& o) {
  StoreOptions s;
  s.journal_preallocate_bytes = o.journal_prealloc_kb << 10;
  return s;
}

}  // namespace kgr
