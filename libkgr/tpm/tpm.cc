// NvSlotName, ResolveTcti and OpenTpm (kgr/tpm.h).
#include "kgr/tpm.h"

#include <cstdlib>
#include <string>

#include "tpm/esapi_tpm.h"
#include "tpm/software_tpm.h"

namespace kgr {

inline constexpr char kDefaultTcti[] = "device:/dev/tpmrm0";

std::string_view NvSlotName(NvSlot slot) {
  switch (slot) {
    case NvSlot::kIdentity:
      return "identity";
    case NvSlot::kNodeKeys:
      return "node-keys";
    case NvSlot::kNtag:
      return "ntag";
    case NvSlot::kKsKeys:
      return "ks-keys";
  }
  return "invalid";
}

std::string ResolveTcti(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("KGR_TCTI");
  if (env != nullptr && *env != '\0') return env;
  return kDefaultTcti;
}

StatusOr<std::unique_ptr<Tpm>> OpenTpm(const TpmOptions& options) {
  if (options.tcti == "none") return OpenSoftwareTpm(options);
  if (options.tcti.empty()) {
    return InvalidArgumentError("empty TCTI (use ResolveTcti)");
  }
  return OpenEsapiTpm(options);
}

}  // namespace kgr
