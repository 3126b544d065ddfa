// `doctor`: DiagnoseTpm turns a TPM's capabilities into findings and a
// verdict; TpmDoctor opens the TPM, asks it and prints them.
#include "daemon/doctor.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "daemon/wiring.h"

namespace kgr {
namespace {

namespace ids = tpm_ids;

struct Need {
  uint32_t id;
  const char* name;
  const char* why;
};

constexpr Need kAlgorithms[] = {
    {ids::kAlgEcc, "ECC", "SRK, ANK and KEDK are ECC keys"},
    {ids::kAlgSha256, "SHA-256", "key names, sessions, policies"},
    {ids::kAlgAes, "AES", "SRK and session parameter encryption"},
    {ids::kAlgCfb, "CFB mode", "session parameter encryption"},
    {ids::kAlgEcdsa, "ECDSA", "the ANK's signing scheme"},
    {ids::kAlgEcdh, "ECDH", "the KEDK and the SRK-salted sessions"},
};

constexpr Need kCommands[] = {
    {ids::kCcCreatePrimary, "TPM2_CreatePrimary", "SRK"},
    {ids::kCcCreate, "TPM2_Create", "ANK, KEDK"},
    {ids::kCcLoad, "TPM2_Load", "ANK, KEDK"},
    {ids::kCcEvictControl, "TPM2_EvictControl", "persistent keys"},
    {ids::kCcReadPublic, "TPM2_ReadPublic", "keys"},
    {ids::kCcGetRandom, "TPM2_GetRandom", "NV authValue"},
    {ids::kCcGetCapability, "TPM2_GetCapability", "handles"},
    {ids::kCcStartAuthSession, "TPM2_StartAuthSession", "sessions"},
    {ids::kCcFlushContext, "TPM2_FlushContext", "sessions"},
    {ids::kCcNvDefineSpace, "TPM2_NV_DefineSpace", "NV indices"},
    {ids::kCcNvUndefineSpace, "TPM2_NV_UndefineSpace", "wipe"},
    {ids::kCcNvWrite, "TPM2_NV_Write", "NV indices"},
    {ids::kCcNvRead, "TPM2_NV_Read", "NV indices"},
    {ids::kCcNvReadPublic, "TPM2_NV_ReadPublic", "NV indices"},
};

// Only for the optional PCR policy.
constexpr Need kPolicyCommands[] = {
    {ids::kCcPcrRead, "TPM2_PCR_Read", ""},
    {ids::kCcPolicyPcr, "TPM2_PolicyPCR", ""},
    {ids::kCcPolicyAuthValue, "TPM2_PolicyAuthValue", ""},
    {ids::kCcPolicyGetDigest, "TPM2_PolicyGetDigest", ""},
};

std::string Num(uint64_t n) { return std::to_string(n); }

class Findings {
 public:
  void Ok(std::string t) { Add(DoctorFinding::kOk, std::move(t)); }
  void Note(std::string t) { Add(DoctorFinding::kNote, std::move(t)); }
  void Missing(std::string t) { Add(DoctorFinding::kMissing, std::move(t)); }
  void Check(bool ok, std::string ok_text, std::string missing_text) {
    if (ok) {
      Ok(std::move(ok_text));
    } else {
      Missing(std::move(missing_text));
    }
  }
  DoctorReport Take() { return std::move(report_); }

 private:
  void Add(DoctorFinding::Level l, std::string t) {
    report_.findings.push_back({l, std::move(t)});
  }
  DoctorReport report_;
};

void CheckAlgorithms(const TpmCapabilities& caps, Findings& f) {
  std::string have;
  for (const Need& n : kAlgorithms) {
    if (caps.algorithms.count(static_cast<uint16_t>(n.id)) == 0) {
      f.Missing(std::string("algorithm ") + n.name + " (" + n.why + ")");
    } else {
      have += std::string(have.empty() ? "" : ", ") + n.name;
    }
  }
  if (!have.empty()) f.Ok("algorithms: " + have);
  f.Check(caps.ecc_curves.count(ids::kCurveNistP256) > 0,
          "ECC curve NIST P-256 (every kgr key)",
          "ECC curve NIST P-256 (every kgr key is a P-256 key)");
}

void CheckCommands(const TpmCapabilities& caps, Findings& f) {
  int have = 0;
  for (const Need& n : kCommands) {
    if (caps.commands.count(n.id) == 0) {
      f.Missing(std::string("command ") + n.name + " (" + n.why + ")");
    } else {
      ++have;
    }
  }
  if (have > 0)
    f.Ok("commands: " + Num(have) + " of the " + Num(std::size(kCommands)) +
         " kgr sends");
  for (const Need& n : kPolicyCommands) {
    if (caps.commands.count(n.id) == 0) {
      f.Note(std::string("command ") + n.name +
             " not implemented: pcr_policy cannot be used");
    }
  }
  const bool encrypt_decrypt = caps.commands.count(ids::kCcEncryptDecrypt) ||
                               caps.commands.count(ids::kCcEncryptDecrypt2);
  f.Ok(std::string("TPM2_EncryptDecrypt(2): ") +
       (encrypt_decrypt ? "implemented" : "not implemented") +
       "; kgr never uses it (AES runs in OpenSSL)");
}

// Free NV as far as it can be known: TPM 2.0 does not report it.
void CheckNvRoom(const TpmCapabilities& caps, bool key_server, Findings& f) {
  const int slots = key_server ? 2 : kNvSlotCount;
  const int missing = std::max(0, slots - caps.kgr_nv_slots);
  const uint32_t need = missing * static_cast<uint32_t>(kNvIndexBytes);
  const std::string defined = Num(caps.nv_indices) + " NV indices defined (" +
                              Num(caps.nv_bytes_defined) + " bytes, " +
                              Num(caps.kgr_nv_slots) + " of them kgr's)";
  const std::string wants = "kgr needs " + Num(missing) + " more (" +
                            Num(need) + " bytes of " + Num(slots) + " x " +
                            Num(kNvIndexBytes) + ")";
  const bool slb9670 =
      caps.manufacturer == "IFX" && caps.firmware.rfind("7.", 0) == 0;
  if (!slb9670) {
    f.Ok(defined + "; " + wants +
         "; free NV: not reported by TPM 2.0 (init fails with "
         "RESOURCE_EXHAUSTED if it runs out)");
    return;
  }
  const uint32_t free_nv = caps.nv_bytes_defined >= kSlb9670FreeNvBytes
                               ? 0
                               : kSlb9670FreeNvBytes - caps.nv_bytes_defined;
  f.Check(free_nv >= need,
          defined + "; " + wants + "; free NV about " + Num(free_nv) +
              " bytes (SLB 9670 data sheet: 6962 free as shipped)",
          "NV room: " + wants + " but only about " + Num(free_nv) +
              " bytes are free (" + defined + ")");
}

void CheckNv(const TpmCapabilities& caps, bool key_server, Findings& f) {
  const uint32_t index = kNvIndexBytes;
  f.Check(caps.nv_buffer_max >= index,
          "NV buffer: " + Num(caps.nv_buffer_max) +
              " bytes per NV_Write/NV_Read; kgr moves " + Num(index) +
              " per command",
          "NV buffer: " + Num(caps.nv_buffer_max) +
              " bytes per NV_Write, kgr writes " + Num(index) +
              " bytes in one command");
  f.Check(caps.nv_index_max >= index,
          "NV index size: up to " + Num(caps.nv_index_max) +
              " bytes; kgr's are " + Num(index),
          "NV index size: at most " + Num(caps.nv_index_max) +
              " bytes, kgr's indices are " + Num(index));
  CheckNvRoom(caps, key_server, f);
}

void CheckHierarchy(const TpmCapabilities& caps, bool key_server, Findings& f) {
  const int keys = key_server ? 3 : 2;  // SRK, ANK (, KEDK)
  const int need = std::max(0, keys - caps.kgr_persistent);
  f.Check(caps.persistent_avail >= static_cast<uint32_t>(need),
          "persistent handles: " + Num(caps.persistent_avail) +
              " free; kgr needs " + Num(need) + " more (" +
              Num(caps.kgr_persistent) + " of its " + Num(keys) + " present)",
          "persistent handles: " + Num(caps.persistent_avail) +
              " free, kgr needs " + Num(need) + " (SRK, ANK" +
              (key_server ? ", KEDK" : "") + ")");
  f.Check(!caps.owner_auth_set, "owner authorization: empty (kgr's default)",
          "owner authorization: the owner hierarchy has a password; kgr "
          "needs it empty (tpm2_changeauth -c owner -p OLD)");
  f.Check(caps.owner_hierarchy_enabled, "owner (storage) hierarchy: enabled",
          "owner (storage) hierarchy: disabled (shEnable clear)");
  if (caps.in_lockout) {
    f.Note("dictionary-attack lockout: ACTIVE (" + Num(caps.lockout_counter) +
           " of " + Num(caps.max_auth_fail) +
           " failures); kgr's keys and indices are NO_DA and still work; "
           "other DA-protected objects do not");
  } else {
    f.Ok("dictionary-attack lockout: not in lockout (" +
         Num(caps.lockout_counter) + " of " + Num(caps.max_auth_fail) +
         " failures)");
  }
}

void CheckPcrs(const TpmCapabilities& caps, Findings& f) {
  if (!caps.boot_pcrs_zero.has_value()) {
    f.Note("PCRs: no sha256 bank; pcr_policy cannot be used");
  } else if (*caps.boot_pcrs_zero) {
    f.Note(
        "PCRs 0-7 (sha256) are all zero: the firmware measured nothing "
        "(a Raspberry Pi's does not); pcr_policy is refused here");
  } else {
    f.Ok("PCRs 0-7 (sha256) hold measurements; pcr_policy can be used");
  }
}

}  // namespace

bool DoctorReport::CanRunKgr() const { return Missing().empty(); }

std::string DoctorReport::Missing() const {
  std::string out;
  for (const DoctorFinding& f : findings) {
    if (f.level != DoctorFinding::kMissing) continue;
    out += (out.empty() ? "" : "; ") + f.text;
  }
  return out;
}

std::string DoctorReport::Text() const {
  std::string out;
  for (const DoctorFinding& f : findings) {
    const char* tag = f.level == DoctorFinding::kOk     ? "ok     "
                      : f.level == DoctorFinding::kNote ? "note   "
                                                        : "MISSING";
    out += std::string("  ") + tag + "  " + f.text + "\n";
  }
  out += CanRunKgr() ? "verdict: this TPM can run kgr\n"
                     : "verdict: this TPM cannot run kgr: " + Missing() + "\n";
  return out;
}

DoctorReport DiagnoseTpm(const TpmCapabilities& caps, bool key_server) {
  Findings f;
  if (!caps.is_tpm) {
    f.Note(
        "no TPM (tcti none): the software store keeps the secrets in a file "
        "protected only by its permissions; for testing only");
    f.Ok("kgr's state here: " + Num(caps.kgr_nv_slots) + " NV slots, " +
         (caps.kgr_persistent > 0 ? "trust structure made" : "no keys"));
    return f.Take();
  }
  f.Ok("TPM: manufacturer " + caps.manufacturer + ", firmware " +
       caps.firmware);
  CheckAlgorithms(caps, f);
  CheckCommands(caps, f);
  CheckNv(caps, key_server, f);
  CheckHierarchy(caps, key_server, f);
  CheckPcrs(caps, f);
  return f.Take();
}

Status TpmDoctor(const DaemonOptions& o, bool key_server) {
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(o));
  KGR_ASSIGN_OR_RETURN(TpmCapabilities caps, tpm->Capabilities());
  const DoctorReport report = DiagnoseTpm(caps, key_server);
  std::printf("%s doctor (%s, tcti %s)\n%s", key_server ? "kgr-ks" : "kgr-node",
              key_server ? "Key Server" : "N node", o.tcti.c_str(),
              report.Text().c_str());
  std::fflush(stdout);
  if (!report.CanRunKgr()) {
    return InternalError("this TPM cannot run kgr: " + report.Missing());
  }
  return OkStatus();
}

}  // namespace kgr
