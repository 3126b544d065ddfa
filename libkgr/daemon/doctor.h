// `doctor`: whether a TPM can run kgr, from what it reports about itself
// (Tpm::Capabilities), in plain words. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_DOCTOR_H_
#define KGR_DAEMON_DOCTOR_H_

#include <string>
#include <vector>

#include "kgr/tpm.h"

namespace kgr {

struct DoctorFinding {
  enum Level { kOk, kNote, kMissing };
  Level level = kOk;
  std::string text;
};

struct DoctorReport {
  std::vector<DoctorFinding> findings;
  // No finding is kMissing.
  bool CanRunKgr() const;
  // The kMissing findings' texts, "; "-joined.
  std::string Missing() const;
  // One line per finding ("  ok       ...", "  note     ...",
  // "  MISSING  ...") and the verdict line.
  std::string Text() const;
};

// Free user NV of an Infineon SLB 9670 as shipped, per its data sheet
// (docs/tpm.md): "Minimum of 6962 bytes free NV memory".
inline constexpr uint32_t kSlb9670FreeNvBytes = 6962;

// What `caps` means for kgr's Key Server (`key_server`: also the KEDK) or
// an N node.
DoctorReport DiagnoseTpm(const TpmCapabilities& caps, bool key_server);

}  // namespace kgr

#endif  // KGR_DAEMON_DOCTOR_H_
