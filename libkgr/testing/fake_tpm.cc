#include "testing/fake_tpm.h"

#include <algorithm>
#include <string>
#include <utility>

#include "kgr/crypto.h"
#include "tpm/tpm_layout.h"

namespace kgr::testing {
namespace {

// Consumes a one-shot failure knob.
std::optional<Status> Take(std::optional<Status>& knob) {
  std::optional<Status> out = std::move(knob);
  knob.reset();
  return out;
}

bool Valid(NvSlot slot) { return static_cast<uint8_t>(slot) < kNvSlotCount; }

std::string Label(NvSlot slot) {
  return "fake NV slot " + std::to_string(static_cast<int>(slot));
}

}  // namespace

Status FakeTpm::EnsureTrustStructure(bool with_kedk) {
  ++state_->counters.tpm_commands;
  ++state_->ensure_calls;
  if (auto s = Take(state_->fail_next_ensure)) return *s;
  state_->has_structure = true;
  if (with_kedk && state_->kedk_public.empty()) {
    Bytes pub(65);
    pub[0] = 0x04;
    KGR_RETURN_IF_ERROR(RandomBytes(std::span<uint8_t>(pub).subspan(1)));
    state_->kedk_public = std::move(pub);
  }
  return OkStatus();
}

StatusOr<Bytes> FakeTpm::KedkPublic() {
  ++state_->counters.tpm_commands;
  if (auto s = Take(state_->fail_next_kedk_public)) return *s;
  if (state_->kedk_public.empty()) {
    return FailedPreconditionError("fake TPM has no KEDK");
  }
  return state_->kedk_public;
}

StatusOr<SecretBytes> FakeTpm::GetRandom(size_t n) {
  ++state_->counters.tpm_commands;
  if (auto s = Take(state_->fail_next_get_random)) return *s;
  if (state_->random) return state_->random(n);
  return RandomSecret(n);
}

void FakeTpm::UseCountingRandom(uint8_t seed) {
  auto next = std::make_shared<uint8_t>(seed);
  state_->random = [next](size_t n) {
    SecretBytes out(n);
    for (size_t i = 0; i < n; ++i) out.data()[i] = (*next)++;
    return out;
  };
}

Status FakeTpm::NvWrite(NvSlot slot, std::span<const uint8_t> data) {
  ++state_->counters.tpm_commands;
  if (!Valid(slot)) return InvalidArgumentError("bad NV slot");
  if (data.size() > kNvSlotMaxSize) {
    return InvalidArgumentError(Label(slot) + ": " +
                                std::to_string(data.size()) +
                                " bytes exceed the NV slot size");
  }
  if (auto s = Take(state_->fail_next_nv_write)) return *s;
  if (state_->fail_all_nv_writes) return *state_->fail_all_nv_writes;
  auto& value = state_->slots[static_cast<size_t>(slot)];
  state_->counters.nv_writes += value.has_value() ? 1 : 2;
  value = SecretBytes(data);
  return OkStatus();
}

StatusOr<SecretBytes> FakeTpm::NvRead(NvSlot slot) {
  ++state_->counters.tpm_commands;
  if (!Valid(slot)) return InvalidArgumentError("bad NV slot");
  if (auto s = Take(state_->fail_next_nv_read)) return *s;
  const auto& value = state_->slots[static_cast<size_t>(slot)];
  if (!value) return NotFoundError(Label(slot) + " is not defined");
  return value->Clone();
}

Status FakeTpm::NvErase(NvSlot slot) {
  ++state_->counters.tpm_commands;
  if (!Valid(slot)) return InvalidArgumentError("bad NV slot");
  if (auto s = Take(state_->fail_next_nv_erase)) return *s;
  state_->slots[static_cast<size_t>(slot)].reset();
  return OkStatus();
}

Status FakeTpm::RemoveKeys() {
  ++state_->counters.tpm_commands;
  state_->has_structure = false;
  state_->kedk_public.clear();
  return OkStatus();
}

StatusOr<TpmCapabilities> FakeTpm::Capabilities() {
  ++state_->counters.tpm_commands;
  TpmCapabilities caps = state_->capabilities;
  for (const auto& slot : state_->slots) {
    if (!slot) continue;
    ++caps.kgr_nv_slots;
    ++caps.nv_indices;
    caps.nv_bytes_defined += tpm_layout::kNvIndexSize;
  }
  caps.kgr_persistent = (state_->has_structure ? 2 : 0) + (has_kedk() ? 1 : 0);
  caps.persistent_avail -=
      std::min<uint32_t>(caps.persistent_avail, caps.kgr_persistent);
  return caps;
}

bool FakeTpm::HasSlot(NvSlot slot) const {
  return Valid(slot) && state_->slots[static_cast<size_t>(slot)].has_value();
}

SecretBytes FakeTpm::SlotData(NvSlot slot) const {
  if (!HasSlot(slot)) return SecretBytes();
  return state_->slots[static_cast<size_t>(slot)]->Clone();
}

void FakeTpm::SetSlot(NvSlot slot, std::span<const uint8_t> data) {
  if (!Valid(slot)) return;
  state_->slots[static_cast<size_t>(slot)] = SecretBytes(data);
}

}  // namespace kgr::testing
