#include "tpm/software_tpm.h"

#include <sys/stat.h>

#include <array>
#include <optional>
#include <string>
#include <utility>

#include "kgr/bytes.h"
#include "kgr/crypto.h"
#include "kgr/secret.h"
#include "spdlog/spdlog.h"
#include "tpm/tpm_files.h"
#include "tpm/tpm_layout.h"

namespace kgr {
namespace {

namespace layout = tpm_layout;

constexpr char kMagic[] = "KGRSWTP1";
constexpr size_t kMagicSize = 8;
constexpr size_t kKedkPublicSize = 65;
constexpr uint8_t kFlagStructure = 1;
constexpr uint8_t kFlagKedk = 2;
constexpr size_t kMaxFileSize = kMagicSize + 1 + kKedkPublicSize + 1 +
                                kNvSlotCount * (3 + kNvSlotMaxSize) + 32;

struct State {
  bool structure = false;
  Bytes kedk_public;  // empty when there is no KEDK
  std::array<std::optional<SecretBytes>, kNvSlotCount> slots;

  State Clone() const {
    State s;
    s.structure = structure;
    s.kedk_public = kedk_public;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i]) s.slots[i] = slots[i]->Clone();
    }
    return s;
  }
};

SecretBytes Serialize(const State& state) {
  Bytes out;
  ByteWriter w(&out);
  w.Raw(AsBytes(std::string_view(kMagic, kMagicSize)));
  uint8_t flags = (state.structure ? kFlagStructure : 0) |
                  (state.kedk_public.empty() ? 0 : kFlagKedk);
  w.U8(flags);
  if (!state.kedk_public.empty()) w.Raw(state.kedk_public);
  uint8_t count = 0;
  for (const auto& slot : state.slots) count += slot.has_value() ? 1 : 0;
  w.U8(count);
  for (size_t i = 0; i < state.slots.size(); ++i) {
    if (!state.slots[i]) continue;
    w.U8(static_cast<uint8_t>(i));
    w.U16(static_cast<uint16_t>(state.slots[i]->size()));
    w.Raw(state.slots[i]->span());
  }
  Digest digest = Sha256({out});
  w.Raw(digest);
  SecretBytes secret(out);
  WipeVector(out);
  return secret;
}

StatusOr<State> Parse(const SecretBytes& file, const std::string& path) {
  auto corrupt = [&](const std::string& why) {
    return DataLossError(path + ": corrupt software TPM store (" + why + ")");
  };
  if (file.size() < kMagicSize + 2 + 32) return corrupt("too short");
  std::span<const uint8_t> body = file.span().first(file.size() - 32);
  Digest digest = Sha256({body});
  if (!ConstantTimeEquals(digest, file.span().last(32))) {
    return corrupt("digest mismatch");
  }
  ByteReader r(body);
  std::span<const uint8_t> magic;
  uint8_t flags = 0;
  if (!r.View(kMagicSize, &magic) ||
      !std::equal(magic.begin(), magic.end(), kMagic)) {
    return corrupt("bad magic");
  }
  if (!r.U8(&flags) || (flags & ~(kFlagStructure | kFlagKedk)) != 0) {
    return corrupt("bad flags");
  }
  State state;
  state.structure = (flags & kFlagStructure) != 0;
  if ((flags & kFlagKedk) && !r.Raw(kKedkPublicSize, &state.kedk_public)) {
    return corrupt("short KEDK");
  }
  uint8_t count = 0;
  if (!r.U8(&count) || count > kNvSlotCount) return corrupt("bad slot count");
  for (int i = 0; i < count; ++i) {
    uint8_t id = 0;
    uint16_t len = 0;
    SecretBytes data;
    if (!r.U8(&id) || id >= kNvSlotCount || state.slots[id].has_value() ||
        !r.U16(&len) || len > kNvSlotMaxSize || !r.Secret(len, &data)) {
      return corrupt("bad slot");
    }
    state.slots[id] = std::move(data);
  }
  if (!r.done()) return corrupt("trailing bytes");
  return state;
}

class SoftwareTpm final : public Tpm {
 public:
  SoftwareTpm(FileSystem& fs, std::string path, State state)
      : fs_(fs), path_(std::move(path)), state_(std::move(state)) {}

  Status EnsureTrustStructure(bool with_kedk) override {
    if (state_.structure && (!with_kedk || !state_.kedk_public.empty())) {
      return OkStatus();
    }
    State next = state_.Clone();
    next.structure = true;
    if (with_kedk && next.kedk_public.empty()) {
      next.kedk_public.assign(kKedkPublicSize, 0);
      next.kedk_public[0] = 0x04;  // "uncompressed point" tag
      KGR_RETURN_IF_ERROR(
          RandomBytes(std::span<uint8_t>(next.kedk_public).subspan(1)));
    }
    return Commit(std::move(next));
  }

  StatusOr<Bytes> KedkPublic() override {
    if (state_.kedk_public.empty()) {
      return FailedPreconditionError(
          "no KEDK: EnsureTrustStructure(with_kedk=true) was never run");
    }
    return state_.kedk_public;
  }

  StatusOr<SecretBytes> GetRandom(size_t n) override { return RandomSecret(n); }

  Status NvWrite(NvSlot slot, std::span<const uint8_t> data) override {
    if (!layout::ValidSlot(slot)) return InvalidArgumentError("bad NV slot");
    if (data.size() > kNvSlotMaxSize) {
      return InvalidArgumentError(
          std::string(NvSlotName(slot)) + ": " + std::to_string(data.size()) +
          " bytes exceed the NV slot size " + std::to_string(kNvSlotMaxSize));
    }
    const size_t i = static_cast<size_t>(slot);
    // Counted as EsapiTpm does: NV_DefineSpace for a new slot, NV_Write.
    counters_.nv_writes += state_.slots[i].has_value() ? 1 : 2;
    State next = state_.Clone();
    next.slots[i] = SecretBytes(data);
    return Commit(std::move(next));
  }

  StatusOr<SecretBytes> NvRead(NvSlot slot) override {
    if (!layout::ValidSlot(slot)) return InvalidArgumentError("bad NV slot");
    const auto& value = state_.slots[static_cast<size_t>(slot)];
    if (!value) {
      return NotFoundError("NV slot " + std::string(NvSlotName(slot)) +
                           " is not defined");
    }
    return value->Clone();
  }

  Status NvErase(NvSlot slot) override {
    if (!layout::ValidSlot(slot)) return InvalidArgumentError("bad NV slot");
    if (!state_.slots[static_cast<size_t>(slot)]) return OkStatus();
    State next = state_.Clone();
    next.slots[static_cast<size_t>(slot)].reset();
    return Commit(std::move(next));
  }

  Status RemoveKeys() override {
    if (!state_.structure && state_.kedk_public.empty()) return OkStatus();
    State next = state_.Clone();
    next.structure = false;
    next.kedk_public.clear();
    return Commit(std::move(next));
  }

  // No TPM: nothing to ask; doctor says so.
  StatusOr<TpmCapabilities> Capabilities() override {
    TpmCapabilities caps;
    caps.is_tpm = false;
    caps.manufacturer = "none";
    for (const auto& slot : state_.slots) caps.kgr_nv_slots += slot ? 1 : 0;
    caps.kgr_persistent =
        (state_.structure ? 2 : 0) + (state_.kedk_public.empty() ? 0 : 1);
    return caps;
  }

  TpmCounters counters() const override { return counters_; }
  std::string_view kind() const override { return "software"; }

 private:
  // Makes `next` durable, then current. On failure nothing changes.
  Status Commit(State next) {
    SecretBytes file = Serialize(next);
    KGR_RETURN_IF_ERROR(fs_.WriteFileAtomic(path_, file.span(), 0600));
    state_ = std::move(next);
    return OkStatus();
  }

  FileSystem& fs_;
  std::string path_;
  State state_;
  TpmCounters counters_;
};

}  // namespace

StatusOr<std::unique_ptr<Tpm>> OpenSoftwareTpm(const TpmOptions& options) {
  if (options.state_dir.empty()) {
    return InvalidArgumentError("TPM state_dir is empty");
  }
  if (options.pcr_policy) {
    return FailedPreconditionError(
        "pcr_policy needs a TPM; the software store (tcti none) has no PCRs");
  }
  FileSystem& fs = tpm_internal::FilesOf(options);
  KGR_RETURN_IF_ERROR(fs.CreateDir(options.state_dir, 0700));
  const std::string path =
      tpm_internal::JoinPath(options.state_dir, layout::kSoftwareStoreFile);
  spdlog::warn(
      "no TPM (tcti \"none\"): node secrets are kept in {} protected only by "
      "file permissions; anyone who can read or copy this disk gets them",
      path);
  StatusOr<SecretBytes> file =
      tpm_internal::ReadSecretFile(fs, path, kMaxFileSize);
  if (!file.ok()) {
    if (file.status().code() != StatusCode::kNotFound) return file.status();
    return std::unique_ptr<Tpm>(new SoftwareTpm(fs, path, State()));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    spdlog::warn("{} is accessible to group/others (mode {:o}); expected 0600",
                 path, st.st_mode & 0777);
  }
  KGR_ASSIGN_OR_RETURN(State state, Parse(*file, path));
  return std::unique_ptr<Tpm>(new SoftwareTpm(fs, path, std::move(state)));
}

}  // namespace kgr
