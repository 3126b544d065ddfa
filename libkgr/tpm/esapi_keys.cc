// EsapiTpm's keys: the SRK (created or reused at a persistent handle), and
// the ANK and KEDK beneath it.
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>

#include <string>
#include <utility>

#include "tpm/esapi_internal.h"
#include "tpm/tss_status.h"

namespace kgr::tpm_internal {
namespace {

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

// Whether a persistent object is of the kind kgr makes from `tmpl`.
bool MatchesTemplate(const TPMT_PUBLIC& got, const TPM2B_PUBLIC& tmpl) {
  const TPMT_PUBLIC& want = tmpl.publicArea;
  return got.type == want.type &&
         got.objectAttributes == want.objectAttributes &&
         got.parameters.eccDetail.curveID == want.parameters.eccDetail.curveID;
}

}  // namespace

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
    if (!MatchesTemplate(pub->publicArea, tmpl)) {
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
  KGR_RETURN_IF_ERROR(CheckPcrPolicyUsable());
  KGR_ASSIGN_OR_RETURN(ESYS_TR srk, Srk());
  (void)srk;
  KGR_RETURN_IF_ERROR(EnsureChild(layout::kAnkHandle, AnkTemplate(), "ANK"));
  if (with_kedk) {
    KGR_RETURN_IF_ERROR(
        EnsureChild(layout::kKedkHandle, KedkTemplate(), "KEDK"));
  }
  return OkStatus();
}

Status EsapiTpm::EvictIfOurs(uint32_t handle, const TPM2B_PUBLIC& tmpl,
                             std::string_view name) {
  KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(handle));
  if (!exists) return OkStatus();
  KGR_ASSIGN_OR_RETURN(ScopedTr obj, OpenHandle(handle));
  KGR_ASSIGN_OR_RETURN(EsysPtr<TPM2B_PUBLIC> pub, ReadPublic(obj.get()));
  if (!MatchesTemplate(pub->publicArea, tmpl)) {
    return FailedPreconditionError("persistent handle " + HandleHex(handle) +
                                   " holds an object that is not kgr's " +
                                   std::string(name) + "; left in place");
  }
  ESYS_TR none = ESYS_TR_NONE;
  return Cmd(
      "EvictControl(" + std::string(name) + " at " + HandleHex(handle) +
          ", evict)",
      Esys_EvictControl(ctx(), ESYS_TR_RH_OWNER, obj.get(), ESYS_TR_PASSWORD,
                        ESYS_TR_NONE, ESYS_TR_NONE, handle, &none));
}

Status EsapiTpm::RemoveKeys() {
  KGR_RETURN_IF_ERROR(EvictIfOurs(layout::kKedkHandle, KedkTemplate(), "KEDK"));
  return EvictIfOurs(layout::kAnkHandle, AnkTemplate(), "ANK");
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

}  // namespace kgr::tpm_internal
