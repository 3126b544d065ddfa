#include "tpm/esapi_tpm.h"

#include <openssl/crypto.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "kgr/crypto.h"
#include "tpm/tpm_files.h"
#include "tpm/tpm_layout.h"
#include "tpm/tss_status.h"

namespace kgr {
namespace {

using tpm_internal::JoinPath;
using tpm_internal::ReadSecretFile;
namespace layout = tpm_layout;

// Attributes of kgr's NV indices: read and written with the index's own
// authValue only (no OWNERREAD/PPREAD: the owner cannot read them), not
// subject to dictionary-attack lockout (the authValue is 256 random bits).
// With the PCR policy, reads need the policy (PCRs + authValue) instead.
constexpr TPMA_NV kNvAttributes =
    TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;
constexpr TPMA_NV kNvPolicyAttributes =
    TPMA_NV_AUTHWRITE | TPMA_NV_POLICYREAD | TPMA_NV_NO_DA;
// Attribute bits the TPM sets at run time; ignored when checking an index.
constexpr TPMA_NV kNvRuntimeBits =
    TPMA_NV_WRITTEN | TPMA_NV_READLOCKED | TPMA_NV_WRITELOCKED;
// GetRandom chunk: every TPM returns at least a SHA-256 digest's worth.
constexpr uint16_t kRandomChunk = 32;
// PCRs the optional read policy binds to: sha256 bank, PCRs 0-7.
constexpr uint8_t kPolicyPcrMask = 0xFF;

std::string HandleHex(uint32_t handle) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", handle);
  return buf;
}

std::string SlotLabel(NvSlot slot) {
  return "NV slot " + std::string(NvSlotName(slot)) + " (" +
         HandleHex(layout::NvHandle(slot)) + ")";
}

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

TPMT_SYM_DEF_OBJECT Aes128Cfb() {
  TPMT_SYM_DEF_OBJECT sym{};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  return sym;
}

TPMT_SYM_DEF_OBJECT NullSym() {
  TPMT_SYM_DEF_OBJECT sym{};
  sym.algorithm = TPM2_ALG_NULL;
  return sym;
}

constexpr TPMA_OBJECT kKeyBaseAttributes =
    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
    TPMA_OBJECT_NODA;

TPM2B_PUBLIC EccTemplate(TPMA_OBJECT extra, TPMT_SYM_DEF_OBJECT sym,
                         TPM2_ALG_ID scheme) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kKeyBaseAttributes | extra;
  p.parameters.eccDetail.symmetric = sym;
  p.parameters.eccDetail.scheme.scheme = scheme;
  if (scheme != TPM2_ALG_NULL) {
    p.parameters.eccDetail.scheme.details.anySig.hashAlg = TPM2_ALG_SHA256;
  }
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return t;  // unique.ecc.x/y empty
}

// The TCG "SRK template" (Provisioning Guidance), ECC NIST P-256 variant.
TPM2B_PUBLIC SrkTemplate() {
  return EccTemplate(TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT, Aes128Cfb(),
                     TPM2_ALG_NULL);
}
// ANK: unrestricted ECDSA-P256-SHA256 signing key.
TPM2B_PUBLIC AnkTemplate() {
  return EccTemplate(TPMA_OBJECT_SIGN_ENCRYPT, NullSym(), TPM2_ALG_ECDSA);
}
// KEDK: unrestricted ECDH-P256 key-exchange (decrypt) key.
TPM2B_PUBLIC KedkTemplate() {
  return EccTemplate(TPMA_OBJECT_DECRYPT, NullSym(), TPM2_ALG_ECDH);
}

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
  StatusOr<ScopedTr> OpenHandle(uint32_t handle);
  StatusOr<EsysPtr<TPM2B_PUBLIC>> ReadPublic(ESYS_TR tr);
  StatusOr<ESYS_TR> Srk();
  Status EnsureChild(uint32_t handle, const TPM2B_PUBLIC& tmpl,
                     std::string_view name);
  StatusOr<ScopedTr> StartSession(TPM2_SE type, bool salted);
  Status SetSessionAttributes(ESYS_TR session, TPMA_SESSION attributes);
  Status ApplyPcrPolicy(ESYS_TR policy_session);
  StatusOr<EsysPtr<TPM2B_DIGEST>> ReadPolicyDigest();
  StatusOr<SecretBytes> LoadNvAuth();
  StatusOr<SecretBytes> LoadOrCreateNvAuth();
  // Opens a kgr NV index; FAILED_PRECONDITION if it is not one of ours or
  // (unless `any_policy`) its read policy differs from options.pcr_policy.
  StatusOr<ScopedTr> OpenNvIndex(NvSlot slot, bool any_policy = false);
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

void ScopedTr::Reset() {
  if (tr_ != ESYS_TR_NONE && tpm_ != nullptr) tpm_->Release(tr_, kind_);
  tr_ = ESYS_TR_NONE;
}

StatusOr<bool> EsapiTpm::HandleExists(uint32_t handle) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  Status s =
      Cmd("GetCapability(handles)",
          Esys_GetCapability(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                             TPM2_CAP_HANDLES, handle, 1, &more, &raw));
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (!s.ok()) return s;
  return data->data.handles.count > 0 && data->data.handles.handle[0] == handle;
}

StatusOr<ScopedTr> EsapiTpm::OpenHandle(uint32_t handle) {
  ESYS_TR tr = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(
      Cmd("TR_FromTPMPublic(" + HandleHex(handle) + ")",
          Esys_TR_FromTPMPublic(ctx(), handle, ESYS_TR_NONE, ESYS_TR_NONE,
                                ESYS_TR_NONE, &tr)));
  return ScopedTr(this, tr, ScopedTr::kClose);
}

StatusOr<EsysPtr<TPM2B_PUBLIC>> EsapiTpm::ReadPublic(ESYS_TR tr) {
  TPM2B_PUBLIC* pub = nullptr;
  TPM2B_NAME* name = nullptr;
  TPM2B_NAME* qualified = nullptr;
  Status s =
      Cmd("ReadPublic", Esys_ReadPublic(ctx(), tr, ESYS_TR_NONE, ESYS_TR_NONE,
                                        ESYS_TR_NONE, &pub, &name, &qualified));
  EsysPtr<TPM2B_PUBLIC> out(pub);
  Esys_Free(name);
  Esys_Free(qualified);
  if (!s.ok()) return s;
  return out;
}

StatusOr<ESYS_TR> EsapiTpm::Srk() {
  if (srk_.valid()) return srk_.get();
  KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(layout::kSrkHandle));
  if (exists) {
    KGR_ASSIGN_OR_RETURN(ScopedTr srk, OpenHandle(layout::kSrkHandle));
    KGR_ASSIGN_OR_RETURN(EsysPtr<TPM2B_PUBLIC> pub, ReadPublic(srk.get()));
    const TPMA_OBJECT attrs = pub->publicArea.objectAttributes;
    const TPMA_OBJECT storage = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    if ((attrs & storage) != storage || (attrs & TPMA_OBJECT_SIGN_ENCRYPT)) {
      return FailedPreconditionError(
          "persistent handle " + HandleHex(layout::kSrkHandle) +
          " holds an object that is not a storage key; cannot use it as SRK");
    }
    srk_ = std::move(srk);
    return srk_.get();
  }
  TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_PUBLIC tmpl = SrkTemplate();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  ESYS_TR primary = ESYS_TR_NONE;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  Status s =
      Cmd("CreatePrimary(SRK)",
          Esys_CreatePrimary(ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
                             ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl,
                             &outside, &creation_pcr, &primary, &out_public,
                             &creation_data, &creation_hash, &ticket));
  Esys_Free(out_public);
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  if (!s.ok()) return s;
  ScopedTr transient(this, primary, ScopedTr::kFlush);
  ESYS_TR persistent = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(
      Cmd("EvictControl(SRK -> " + HandleHex(layout::kSrkHandle) + ")",
          Esys_EvictControl(ctx(), ESYS_TR_RH_OWNER, transient.get(),
                            ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                            layout::kSrkHandle, &persistent)));
  srk_ = ScopedTr(this, persistent, ScopedTr::kClose);
  return srk_.get();
}

Status EsapiTpm::EnsureChild(uint32_t handle, const TPM2B_PUBLIC& tmpl,
                             std::string_view name) {
  KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(handle));
  if (exists) {
    // Reuse, after checking it is the kind of key we would have made.
    KGR_ASSIGN_OR_RETURN(ScopedTr obj, OpenHandle(handle));
    KGR_ASSIGN_OR_RETURN(EsysPtr<TPM2B_PUBLIC> pub, ReadPublic(obj.get()));
    const TPMT_PUBLIC& want = tmpl.publicArea;
    const TPMT_PUBLIC& got = pub->publicArea;
    if (got.type != want.type ||
        got.objectAttributes != want.objectAttributes ||
        got.parameters.eccDetail.curveID != want.parameters.eccDetail.curveID) {
      return FailedPreconditionError("persistent handle " + HandleHex(handle) +
                                     " holds an object that is "
                                     "not kgr's " +
                                     std::string(name) +
                                     "; evict it or free the handle");
    }
    return OkStatus();
  }
  KGR_ASSIGN_OR_RETURN(ESYS_TR srk, Srk());
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  TPM2B_PRIVATE* priv_raw = nullptr;
  TPM2B_PUBLIC* pub_raw = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  Status s =
      Cmd("Create(" + std::string(name) + ")",
          Esys_Create(ctx(), srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                      &sensitive, &tmpl, &outside, &creation_pcr, &priv_raw,
                      &pub_raw, &creation_data, &creation_hash, &ticket));
  EsysPtr<TPM2B_PRIVATE> priv(priv_raw);  // wrapped by the SRK; not secret
  EsysPtr<TPM2B_PUBLIC> pub(pub_raw);
  Esys_Free(creation_data);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  if (!s.ok()) return s;
  ESYS_TR loaded = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(
      Cmd("Load(" + std::string(name) + ")",
          Esys_Load(ctx(), srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                    priv.get(), pub.get(), &loaded)));
  ScopedTr transient(this, loaded, ScopedTr::kFlush);
  ESYS_TR persistent = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(Cmd(
      "EvictControl(" + std::string(name) + " -> " + HandleHex(handle) + ")",
      Esys_EvictControl(ctx(), ESYS_TR_RH_OWNER, transient.get(),
                        ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, handle,
                        &persistent)));
  ScopedTr closer(this, persistent, ScopedTr::kClose);
  return OkStatus();
}

Status EsapiTpm::EnsureTrustStructure(bool with_kedk) {
  KGR_ASSIGN_OR_RETURN(ESYS_TR srk, Srk());
  (void)srk;
  KGR_RETURN_IF_ERROR(EnsureChild(layout::kAnkHandle, AnkTemplate(), "ANK"));
  if (with_kedk) {
    KGR_RETURN_IF_ERROR(
        EnsureChild(layout::kKedkHandle, KedkTemplate(), "KEDK"));
  }
  return OkStatus();
}

StatusOr<Bytes> EsapiTpm::KedkPublic() {
  KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(layout::kKedkHandle));
  if (!exists) {
    return FailedPreconditionError(
        "no KEDK at " + HandleHex(layout::kKedkHandle) +
        ": EnsureTrustStructure(with_kedk=true) was never run");
  }
  KGR_ASSIGN_OR_RETURN(ScopedTr kedk, OpenHandle(layout::kKedkHandle));
  KGR_ASSIGN_OR_RETURN(EsysPtr<TPM2B_PUBLIC> pub, ReadPublic(kedk.get()));
  Bytes out(sizeof(TPM2B_PUBLIC));
  size_t offset = 0;
  KGR_RETURN_IF_ERROR(TssStatus(
      Tss2_MU_TPM2B_PUBLIC_Marshal(pub.get(), out.data(), out.size(), &offset),
      "Tss2_MU_TPM2B_PUBLIC_Marshal"));
  out.resize(offset);
  return out;
}

StatusOr<SecretBytes> EsapiTpm::GetRandom(size_t n) {
  SecretBytes out;
  while (out.size() < n) {
    const uint16_t want =
        static_cast<uint16_t>(std::min<size_t>(kRandomChunk, n - out.size()));
    TPM2B_DIGEST* raw = nullptr;
    Status s =
        Cmd("GetRandom", Esys_GetRandom(ctx(), ESYS_TR_NONE, ESYS_TR_NONE,
                                        ESYS_TR_NONE, want, &raw));
    EsysSecretPtr<TPM2B_DIGEST> chunk(raw);
    if (!s.ok()) return s;
    if (chunk->size == 0 || chunk->size > want) {
      return InternalError("GetRandom: TPM returned " +
                           std::to_string(chunk->size) + " bytes for " +
                           std::to_string(want));
    }
    out.Append({chunk->buffer, chunk->size});
  }
  return out;
}

StatusOr<ScopedTr> EsapiTpm::StartSession(TPM2_SE type, bool salted) {
  ESYS_TR tpm_key = ESYS_TR_NONE;
  if (salted) {
    KGR_ASSIGN_OR_RETURN(tpm_key, Srk());
  }
  TPMT_SYM_DEF sym{};
  if (type == TPM2_SE_TRIAL) {
    sym.algorithm = TPM2_ALG_NULL;
  } else {
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
  }
  ESYS_TR session = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(
      Cmd("StartAuthSession",
          Esys_StartAuthSession(ctx(), tpm_key, ESYS_TR_NONE, ESYS_TR_NONE,
                                ESYS_TR_NONE, ESYS_TR_NONE, nullptr, type, &sym,
                                TPM2_ALG_SHA256, &session)));
  ScopedTr out(this, session, ScopedTr::kFlush);
  KGR_RETURN_IF_ERROR(
      SetSessionAttributes(out.get(), TPMA_SESSION_CONTINUESESSION));
  return out;
}

Status EsapiTpm::SetSessionAttributes(ESYS_TR session,
                                      TPMA_SESSION attributes) {
  return TssStatus(
      Esys_TRSess_SetAttributes(
          ctx(), session, attributes | TPMA_SESSION_CONTINUESESSION, 0xFF),
      "TRSess_SetAttributes");
}

Status EsapiTpm::ApplyPcrPolicy(ESYS_TR policy_session) {
  TPML_PCR_SELECTION pcrs{};
  pcrs.count = 1;
  pcrs.pcrSelections[0].hash = TPM2_ALG_SHA256;
  pcrs.pcrSelections[0].sizeofSelect = 3;
  pcrs.pcrSelections[0].pcrSelect[0] = kPolicyPcrMask;
  TPM2B_DIGEST current{};  // empty: the TPM uses the PCRs' current values
  KGR_RETURN_IF_ERROR(
      Cmd("PolicyPCR",
          Esys_PolicyPCR(ctx(), policy_session, ESYS_TR_NONE, ESYS_TR_NONE,
                         ESYS_TR_NONE, &current, &pcrs)));
  return Cmd("PolicyAuthValue",
             Esys_PolicyAuthValue(ctx(), policy_session, ESYS_TR_NONE,
                                  ESYS_TR_NONE, ESYS_TR_NONE));
}

StatusOr<EsysPtr<TPM2B_DIGEST>> EsapiTpm::ReadPolicyDigest() {
  KGR_ASSIGN_OR_RETURN(ScopedTr trial, StartSession(TPM2_SE_TRIAL, false));
  KGR_RETURN_IF_ERROR(ApplyPcrPolicy(trial.get()));
  TPM2B_DIGEST* raw = nullptr;
  Status s = Cmd("PolicyGetDigest",
                 Esys_PolicyGetDigest(ctx(), trial.get(), ESYS_TR_NONE,
                                      ESYS_TR_NONE, ESYS_TR_NONE, &raw));
  EsysPtr<TPM2B_DIGEST> digest(raw);
  if (!s.ok()) return s;
  return digest;
}

StatusOr<SecretBytes> EsapiTpm::LoadNvAuth() {
  KGR_ASSIGN_OR_RETURN(SecretBytes auth,
                       ReadSecretFile(tpm_internal::FilesOf(options_),
                                      NvAuthPath(), layout::kNvAuthSize));
  if (auth.size() != layout::kNvAuthSize) {
    return DataLossError(NvAuthPath() + ": not " +
                         std::to_string(layout::kNvAuthSize) + " bytes");
  }
  return auth;
}

StatusOr<SecretBytes> EsapiTpm::LoadOrCreateNvAuth() {
  StatusOr<SecretBytes> existing = LoadNvAuth();
  if (existing.ok() || existing.status().code() != StatusCode::kNotFound) {
    return existing;
  }
  // OpenSSL's DRBG XOR the TPM's RNG: as strong as the better of the two.
  KGR_ASSIGN_OR_RETURN(SecretBytes auth, RandomSecret(layout::kNvAuthSize));
  KGR_ASSIGN_OR_RETURN(SecretBytes tpm_random, GetRandom(layout::kNvAuthSize));
  for (size_t i = 0; i < auth.size(); ++i)
    auth.data()[i] ^= tpm_random.data()[i];
  // Durable before any index uses it, so that a crash never leaves an index
  // whose authValue is nowhere.
  KGR_RETURN_IF_ERROR(tpm_internal::FilesOf(options_).WriteFileAtomic(
      NvAuthPath(), auth.span(), 0600));
  return auth;
}

StatusOr<ScopedTr> EsapiTpm::OpenNvIndex(NvSlot slot, bool any_policy) {
  const uint32_t handle = layout::NvHandle(slot);
  KGR_ASSIGN_OR_RETURN(ScopedTr nv, OpenHandle(handle));
  TPM2B_NV_PUBLIC* pub_raw = nullptr;
  TPM2B_NAME* name = nullptr;
  Status s = Cmd("NV_ReadPublic",
                 Esys_NV_ReadPublic(ctx(), nv.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &pub_raw, &name));
  EsysPtr<TPM2B_NV_PUBLIC> pub(pub_raw);
  Esys_Free(name);
  if (!s.ok()) return s;
  const TPMA_NV attrs = pub->nvPublic.attributes & ~kNvRuntimeBits;
  if (pub->nvPublic.dataSize != layout::kNvIndexSize ||
      (attrs != kNvAttributes && attrs != kNvPolicyAttributes)) {
    return FailedPreconditionError(
        SlotLabel(slot) +
        " exists with a size or attributes kgr never "
        "uses; refusing to touch it");
  }
  if (!any_policy && attrs != WantedNvAttributes()) {
    return FailedPreconditionError(
        SlotLabel(slot) +
        (options_.pcr_policy
             ? " was defined without the PCR read policy"
             : " was defined with the PCR read policy (enable pcr_policy)"));
  }
  return nv;
}

StatusOr<ScopedTr> EsapiTpm::DefineNvIndex(NvSlot slot, const SecretBytes& auth,
                                           ESYS_TR session) {
  TPM2B_NV_PUBLIC pub{};
  pub.nvPublic.nvIndex = layout::NvHandle(slot);
  pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
  pub.nvPublic.attributes = WantedNvAttributes();  // TPM2_NT_ORDINARY
  pub.nvPublic.dataSize = layout::kNvIndexSize;
  if (options_.pcr_policy) {
    KGR_ASSIGN_OR_RETURN(EsysPtr<TPM2B_DIGEST> digest, ReadPolicyDigest());
    pub.nvPublic.authPolicy = *digest;
  }
  TPM2B_AUTH tpm_auth{};
  ScopedWipe wipe(&tpm_auth, sizeof tpm_auth);
  tpm_auth.size = static_cast<uint16_t>(auth.size());
  std::memcpy(tpm_auth.buffer, auth.data(), auth.size());
  // The session encrypts `auth` on its way to the TPM.
  KGR_RETURN_IF_ERROR(SetSessionAttributes(session, TPMA_SESSION_DECRYPT));
  ESYS_TR nv = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(
      Cmd("NV_DefineSpace(" + SlotLabel(slot) + ")",
          Esys_NV_DefineSpace(ctx(), ESYS_TR_RH_OWNER, session, ESYS_TR_NONE,
                              ESYS_TR_NONE, &tpm_auth, &pub, &nv),
          /*nv_write=*/true));
  return ScopedTr(this, nv, ScopedTr::kClose);
}

Status EsapiTpm::NvWrite(NvSlot slot, std::span<const uint8_t> data) {
  if (!layout::ValidSlot(slot)) return InvalidArgumentError("bad NV slot");
  if (data.size() > kNvSlotMaxSize) {
    return InvalidArgumentError(
        std::string(NvSlotName(slot)) + ": " + std::to_string(data.size()) +
        " bytes exceed the NV slot size " + std::to_string(kNvSlotMaxSize));
  }
  KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(layout::NvHandle(slot)));
  SecretBytes auth;
  if (exists) {
    StatusOr<SecretBytes> loaded = LoadNvAuth();
    if (!loaded.ok() && loaded.status().code() == StatusCode::kNotFound) {
      return FailedPreconditionError(
          SlotLabel(slot) + " exists but " + NvAuthPath() +
          " is missing: its authValue is lost (NvErase and re-provision)");
    }
    KGR_ASSIGN_OR_RETURN(auth, std::move(loaded));
  } else {
    KGR_ASSIGN_OR_RETURN(auth, LoadOrCreateNvAuth());
  }
  KGR_ASSIGN_OR_RETURN(ScopedTr session, StartSession(TPM2_SE_HMAC, true));
  ScopedTr nv;
  if (exists) {
    KGR_ASSIGN_OR_RETURN(nv, OpenNvIndex(slot));
  } else {
    KGR_ASSIGN_OR_RETURN(nv, DefineNvIndex(slot, auth, session.get()));
  }
  TPM2B_AUTH tpm_auth{};
  ScopedWipe wipe_auth(&tpm_auth, sizeof tpm_auth);
  tpm_auth.size = static_cast<uint16_t>(auth.size());
  std::memcpy(tpm_auth.buffer, auth.data(), auth.size());
  KGR_RETURN_IF_ERROR(
      TssStatus(Esys_TR_SetAuth(ctx(), nv.get(), &tpm_auth), "TR_SetAuth"));

  // length (u16 BE) || data || zeros: the whole index, so no residue of a
  // longer earlier value stays behind.
  TPM2B_MAX_NV_BUFFER buf{};
  ScopedWipe wipe_buf(&buf, sizeof buf);
  static_assert(layout::kNvIndexSize <= sizeof buf.buffer);
  buf.size = layout::kNvIndexSize;
  buf.buffer[0] = static_cast<uint8_t>(data.size() >> 8);
  buf.buffer[1] = static_cast<uint8_t>(data.size());
  if (!data.empty()) {
    std::memcpy(buf.buffer + layout::kNvLengthPrefix, data.data(), data.size());
  }
  KGR_RETURN_IF_ERROR(
      SetSessionAttributes(session.get(), TPMA_SESSION_DECRYPT));
  return Cmd("NV_Write(" + SlotLabel(slot) + ")",
             Esys_NV_Write(ctx(), nv.get(), nv.get(), session.get(),
                           ESYS_TR_NONE, ESYS_TR_NONE, &buf, 0),
             /*nv_write=*/true);
}

StatusOr<SecretBytes> EsapiTpm::NvRead(NvSlot slot) {
  if (!layout::ValidSlot(slot)) return InvalidArgumentError("bad NV slot");
  KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(layout::NvHandle(slot)));
  if (!exists) return NotFoundError(SlotLabel(slot) + " is not defined");
  StatusOr<SecretBytes> loaded = LoadNvAuth();
  if (!loaded.ok() && loaded.status().code() == StatusCode::kNotFound) {
    return FailedPreconditionError(SlotLabel(slot) + " exists but " +
                                   NvAuthPath() + " is missing");
  }
  KGR_ASSIGN_OR_RETURN(SecretBytes auth, std::move(loaded));
  KGR_ASSIGN_OR_RETURN(ScopedTr nv, OpenNvIndex(slot));
  TPM2B_AUTH tpm_auth{};
  ScopedWipe wipe_auth(&tpm_auth, sizeof tpm_auth);
  tpm_auth.size = static_cast<uint16_t>(auth.size());
  std::memcpy(tpm_auth.buffer, auth.data(), auth.size());
  KGR_RETURN_IF_ERROR(
      TssStatus(Esys_TR_SetAuth(ctx(), nv.get(), &tpm_auth), "TR_SetAuth"));

  ScopedTr session;
  if (options_.pcr_policy) {
    KGR_ASSIGN_OR_RETURN(session, StartSession(TPM2_SE_POLICY, true));
    KGR_RETURN_IF_ERROR(ApplyPcrPolicy(session.get()));
  } else {
    KGR_ASSIGN_OR_RETURN(session, StartSession(TPM2_SE_HMAC, true));
  }
  // The session encrypts the data on its way back from the TPM.
  KGR_RETURN_IF_ERROR(
      SetSessionAttributes(session.get(), TPMA_SESSION_ENCRYPT));
  TPM2B_MAX_NV_BUFFER* raw = nullptr;
  Status s =
      Cmd("NV_Read(" + SlotLabel(slot) + ")",
          Esys_NV_Read(ctx(), nv.get(), nv.get(), session.get(), ESYS_TR_NONE,
                       ESYS_TR_NONE, layout::kNvIndexSize, 0, &raw));
  EsysSecretPtr<TPM2B_MAX_NV_BUFFER> buf(raw);
  if (!s.ok()) return s;
  if (buf->size != layout::kNvIndexSize) {
    return DataLossError(SlotLabel(slot) + ": short read");
  }
  const size_t len = (size_t{buf->buffer[0]} << 8) | buf->buffer[1];
  if (len > kNvSlotMaxSize) {
    return DataLossError(SlotLabel(slot) + ": bad length prefix");
  }
  return SecretBytes(
      std::span<const uint8_t>(buf->buffer + layout::kNvLengthPrefix, len));
}

Status EsapiTpm::NvErase(NvSlot slot) {
  if (!layout::ValidSlot(slot)) return InvalidArgumentError("bad NV slot");
  KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(layout::NvHandle(slot)));
  if (!exists) return OkStatus();
  // Refuses to undefine an index that is not kgr's.
  KGR_ASSIGN_OR_RETURN(ScopedTr nv, OpenNvIndex(slot, /*any_policy=*/true));
  KGR_RETURN_IF_ERROR(
      Cmd("NV_UndefineSpace(" + SlotLabel(slot) + ")",
          Esys_NV_UndefineSpace(ctx(), ESYS_TR_RH_OWNER, nv.get(),
                                ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE)));
  nv.Forget();  // ESAPI released the ESYS_TR with the index
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Tpm>> OpenEsapiTpm(const TpmOptions& options) {
  if (options.state_dir.empty()) {
    return InvalidArgumentError("TPM state_dir is empty");
  }
  KGR_RETURN_IF_ERROR(
      tpm_internal::FilesOf(options).CreateDir(options.state_dir, 0700));
  TSS2_TCTI_CONTEXT* tcti_raw = nullptr;
  KGR_RETURN_IF_ERROR(
      TssStatus(Tss2_TctiLdr_Initialize(options.tcti.c_str(), &tcti_raw),
                "Tss2_TctiLdr_Initialize(\"" + options.tcti + "\")"));
  std::unique_ptr<TSS2_TCTI_CONTEXT, TctiDeleter> tcti(tcti_raw);
  ESYS_CONTEXT* esys_raw = nullptr;
  KGR_RETURN_IF_ERROR(TssStatus(Esys_Initialize(&esys_raw, tcti.get(), nullptr),
                                "Esys_Initialize"));
  return std::unique_ptr<Tpm>(new EsapiTpm(options, tcti.release(), esys_raw));
}

}  // namespace kgr
