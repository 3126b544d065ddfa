// EsapiTpm's internals, shared by esapi_tpm.cc (handles, sessions, random
// and the command choke point), esapi_keys.cc (SRK, ANK, KEDK) and
// esapi_nv.cc (NV indices and their authValue). Internal to libkgr/tpm.
#ifndef KGR_TPM_ESAPI_INTERNAL_H_
#define KGR_TPM_ESAPI_INTERNAL_H_

#include <openssl/crypto.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "kgr/status.h"
#include "kgr/tpm.h"
#include "tpm/tpm_files.h"
#include "tpm/tpm_layout.h"
#include "tpm/tss_status.h"

namespace kgr::tpm_internal {

namespace layout = tpm_layout;

// Attributes of kgr's NV indices: read and written with the index's own
// authValue only (no OWNERREAD/PPREAD: the owner cannot read them), not
// subject to dictionary-attack lockout (the authValue is 256 random bits).
// With the PCR policy, reads need the policy (PCRs + authValue) instead.
constexpr TPMA_NV kNvAttributes =
    TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;
constexpr TPMA_NV kNvPolicyAttributes =
    TPMA_NV_AUTHWRITE | TPMA_NV_POLICYREAD | TPMA_NV_NO_DA;

// "0x81000001".
std::string HandleHex(uint32_t handle);
// "NV slot <name> (0x01......)".
std::string SlotLabel(NvSlot slot);

// Wipes a local object holding secrets when the scope ends.
class ScopedWipe {
 public:
  ScopedWipe(void* p, size_t n) : p_(p), n_(n) {}
  ~ScopedWipe() { OPENSSL_cleanse(p_, n_); }
  ScopedWipe(const ScopedWipe&) = delete;
  ScopedWipe& operator=(const ScopedWipe&) = delete;

 private:
  void* p_;
  size_t n_;
};

// Owners of buffers ESAPI allocates for its outputs.
struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;
// Same, for outputs that carry secrets: wiped before being freed.
template <typename T>
struct EsysWipeFree {
  void operator()(T* p) const {
    if (p == nullptr) return;
    OPENSSL_cleanse(p, sizeof(T));
    Esys_Free(p);
  }
};
template <typename T>
using EsysSecretPtr = std::unique_ptr<T, EsysWipeFree<T>>;

struct TctiDeleter {
  void operator()(TSS2_TCTI_CONTEXT* c) const { Tss2_TctiLdr_Finalize(&c); }
};
struct EsysDeleter {
  void operator()(ESYS_CONTEXT* c) const { Esys_Finalize(&c); }
};

class EsapiTpm;

// Owns one ESYS_TR. Transient objects and sessions are flushed from the TPM
// (FlushContext, a counted command); persistent objects and NV indices only
// have their ESAPI metadata released (Esys_TR_Close).
class ScopedTr {
 public:
  enum Kind { kFlush, kClose };
  ScopedTr() = default;
  ScopedTr(EsapiTpm* tpm, ESYS_TR tr, Kind kind)
      : tpm_(tpm), tr_(tr), kind_(kind) {}
  ~ScopedTr() { Reset(); }
  ScopedTr(ScopedTr&& o) noexcept
      : tpm_(o.tpm_), tr_(std::exchange(o.tr_, ESYS_TR_NONE)), kind_(o.kind_) {}
  ScopedTr& operator=(ScopedTr&& o) noexcept {
    if (this != &o) {
      Reset();
      tpm_ = o.tpm_;
      tr_ = std::exchange(o.tr_, ESYS_TR_NONE);
      kind_ = o.kind_;
    }
    return *this;
  }
  ScopedTr(const ScopedTr&) = delete;
  ScopedTr& operator=(const ScopedTr&) = delete;

  ESYS_TR get() const { return tr_; }
  bool valid() const { return tr_ != ESYS_TR_NONE; }
  // Forgets the handle without releasing it (ESAPI already did).
  void Forget() { tr_ = ESYS_TR_NONE; }
  void Reset();

 private:
  EsapiTpm* tpm_ = nullptr;
  ESYS_TR tr_ = ESYS_TR_NONE;
  Kind kind_ = kClose;
};

class EsapiTpm final : public Tpm {
 public:
  EsapiTpm(const TpmOptions& options, TSS2_TCTI_CONTEXT* tcti,
           ESYS_CONTEXT* esys)
      : options_(options), tcti_(tcti), esys_(esys) {}
  ~EsapiTpm() override {
    srk_.Reset();  // before the contexts go
  }

  Status EnsureTrustStructure(bool with_kedk) override;
  StatusOr<Bytes> KedkPublic() override;
  StatusOr<SecretBytes> GetRandom(size_t n) override;
  Status NvWrite(NvSlot slot, std::span<const uint8_t> data) override;
  StatusOr<SecretBytes> NvRead(NvSlot slot) override;
  Status NvErase(NvSlot slot) override;
  Status RemoveKeys() override;
  StatusOr<TpmCapabilities> Capabilities() override;
  TpmCounters counters() const override { return counters_; }
  std::string_view kind() const override { return "esapi"; }

  // Releases `tr` (see ScopedTr). Errors are ignored: nothing to do.
  void Release(ESYS_TR tr, ScopedTr::Kind kind) {
    if (kind == ScopedTr::kFlush) {
      (void)Cmd("FlushContext", Esys_FlushContext(ctx(), tr));
    } else {
      (void)Esys_TR_Close(ctx(), &tr);
    }
  }

 private:
  ESYS_CONTEXT* ctx() { return esys_.get(); }

  // Every TPM command's result goes through here: counts it and turns the
  // return code into a Status.
  Status Cmd(std::string_view what, TSS2_RC rc, bool nv_write = false) {
    ++counters_.tpm_commands;
    if (nv_write) ++counters_.nv_writes;
    return TssStatus(rc, what);
  }

  StatusOr<bool> HandleExists(uint32_t handle);
  // Pages through GetCapability(cap) from `first` while the TPM has more
  // and `take` (given each page, returning the next property) moves on
  // and stays <= `last`.
  Status ForEachCapability(
      TPM2_CAP cap, uint32_t first, uint32_t last,
      const std::function<uint32_t(const TPMU_CAPABILITIES&)>& take);
  Status ReadCapabilityLists(TpmCapabilities& caps);
  Status ReadCapabilityProperties(TpmCapabilities& caps);
  StatusOr<uint32_t> NvIndexSize(uint32_t handle);
  // sha256 PCRs 0-7 all zero; empty without a sha256 bank.
  StatusOr<std::optional<bool>> BootPcrsZero();
  // Evicts the persistent object at `handle` if it is kgr's `name` key
  // made from `tmpl`.
  Status EvictIfOurs(uint32_t handle, const TPM2B_PUBLIC& tmpl,
                     std::string_view name);
  StatusOr<ScopedTr> OpenHandle(uint32_t handle);
  StatusOr<EsysPtr<TPM2B_PUBLIC>> ReadPublic(ESYS_TR tr);
  // TPM2_NV_ReadPublic of the opened NV index `nv`.
  StatusOr<EsysPtr<TPM2B_NV_PUBLIC>> ReadNvPublic(ESYS_TR nv);
  StatusOr<ESYS_TR> Srk();
  Status EnsureChild(uint32_t handle, const TPM2B_PUBLIC& tmpl,
                     std::string_view name);
  StatusOr<ScopedTr> StartSession(TPM2_SE type, bool salted);
  Status SetSessionAttributes(ESYS_TR session, TPMA_SESSION attributes);
  Status ApplyPcrPolicy(ESYS_TR policy_session);
  // With options.pcr_policy: FAILED_PRECONDITION while PCRs 0-7 are all
  // zero (nothing measured: the policy would protect nothing).
  Status CheckPcrPolicyUsable();
  StatusOr<EsysPtr<TPM2B_DIGEST>> ReadPolicyDigest();
  StatusOr<SecretBytes> LoadNvAuth();
  StatusOr<SecretBytes> LoadOrCreateNvAuth();
  // Opens a kgr NV index; FAILED_PRECONDITION if it is not one of ours or
  // (unless `any_policy`) its read policy differs from options.pcr_policy.
  StatusOr<ScopedTr> OpenNvIndex(NvSlot slot, bool any_policy = false);
  // Tells ESAPI the authValue of the NV index `nv` (wiped after use).
  Status SetIndexAuth(ESYS_TR nv, const SecretBytes& auth);
  StatusOr<ScopedTr> DefineNvIndex(NvSlot slot, const SecretBytes& auth,
                                   ESYS_TR session);
  std::string NvAuthPath() const {
    return JoinPath(options_.state_dir, layout::kNvAuthFile);
  }
  TPMA_NV WantedNvAttributes() const {
    return options_.pcr_policy ? kNvPolicyAttributes : kNvAttributes;
  }

  TpmOptions options_;
  std::unique_ptr<TSS2_TCTI_CONTEXT, TctiDeleter> tcti_;
  std::unique_ptr<ESYS_CONTEXT, EsysDeleter> esys_;
  ScopedTr srk_;  // cached persistent SRK, once known
  TpmCounters counters_;
};

}  // namespace kgr::tpm_internal

#endif  // KGR_TPM_ESAPI_INTERNAL_H_
