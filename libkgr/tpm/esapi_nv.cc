// EsapiTpm's NV indices: their authValue file, the optional PCR read
// policy, and NvWrite/NvRead/NvErase.
#include <tss2/tss2_esys.h>

#include <cstring>
#include <string>
#include <utility>

#include "kgr/crypto.h"
#include "tpm/esapi_internal.h"
#include "tpm/tpm_files.h"
#include "tpm/tss_status.h"

namespace kgr::tpm_internal {
namespace {

// Attribute bits the TPM sets at run time; ignored when checking an index.
constexpr TPMA_NV kNvRuntimeBits =
    TPMA_NV_WRITTEN | TPMA_NV_READLOCKED | TPMA_NV_WRITELOCKED;
// PCRs the optional read policy binds to: sha256 bank, PCRs 0-7.
constexpr uint8_t kPolicyPcrMask = 0xFF;

}  // namespace

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

Status EsapiTpm::CheckPcrPolicyUsable() {
  if (!options_.pcr_policy) return OkStatus();
  KGR_ASSIGN_OR_RETURN(std::optional<bool> zero, BootPcrsZero());
  if (!zero.has_value()) {
    return FailedPreconditionError(
        "pcr_policy: this TPM has no sha256 PCR bank; turn pcr_policy off");
  }
  if (*zero) {
    return FailedPreconditionError(
        "pcr_policy: PCRs 0-7 (sha256) are all zero: this platform's "
        "firmware measures nothing into them (a Raspberry Pi's does not), so "
        "a PCR policy would protect nothing; turn pcr_policy off "
        "(docs/tpm.md)");
  }
  return OkStatus();
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

StatusOr<EsysPtr<TPM2B_NV_PUBLIC>> EsapiTpm::ReadNvPublic(ESYS_TR nv) {
  TPM2B_NV_PUBLIC* pub_raw = nullptr;
  TPM2B_NAME* name = nullptr;
  Status s = Cmd("NV_ReadPublic",
                 Esys_NV_ReadPublic(ctx(), nv, ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &pub_raw, &name));
  EsysPtr<TPM2B_NV_PUBLIC> pub(pub_raw);
  Esys_Free(name);
  if (!s.ok()) return s;
  return pub;
}

StatusOr<ScopedTr> EsapiTpm::OpenNvIndex(NvSlot slot, bool any_policy) {
  const uint32_t handle = layout::NvHandle(slot);
  KGR_ASSIGN_OR_RETURN(ScopedTr nv, OpenHandle(handle));
  KGR_ASSIGN_OR_RETURN(EsysPtr<TPM2B_NV_PUBLIC> pub, ReadNvPublic(nv.get()));
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

Status EsapiTpm::SetIndexAuth(ESYS_TR nv, const SecretBytes& auth) {
  TPM2B_AUTH tpm_auth{};
  ScopedWipe wipe_auth(&tpm_auth, sizeof tpm_auth);
  tpm_auth.size = static_cast<uint16_t>(auth.size());
  std::memcpy(tpm_auth.buffer, auth.data(), auth.size());
  return TssStatus(Esys_TR_SetAuth(ctx(), nv, &tpm_auth), "TR_SetAuth");
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
    // Before anything is made: no auth file, no index for a policy that
    // would protect nothing.
    KGR_RETURN_IF_ERROR(CheckPcrPolicyUsable());
    KGR_ASSIGN_OR_RETURN(auth, LoadOrCreateNvAuth());
  }
  KGR_ASSIGN_OR_RETURN(ScopedTr session, StartSession(TPM2_SE_HMAC, true));
  ScopedTr nv;
  if (exists) {
    KGR_ASSIGN_OR_RETURN(nv, OpenNvIndex(slot));
  } else {
    KGR_ASSIGN_OR_RETURN(nv, DefineNvIndex(slot, auth, session.get()));
  }
  KGR_RETURN_IF_ERROR(SetIndexAuth(nv.get(), auth));

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
  KGR_RETURN_IF_ERROR(SetIndexAuth(nv.get(), auth));

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

}  // namespace kgr::tpm_internal
