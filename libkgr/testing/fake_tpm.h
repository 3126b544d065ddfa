// FakeTpm: an in-memory kgr::Tpm for unit tests, with failure injection and
// counters. Behaves like EsapiTpm at the interface: size limit, NOT_FOUND
// for unwritten slots, FAILED_PRECONDITION for KedkPublic without a KEDK,
// nv_writes counted the same way (2 for the first write of a slot: define +
// write; 1 afterwards). tpm_commands counts one per call.
//
// To simulate a restart of the process owning the TPM, build a second
// FakeTpm on the same shared State: the "NV" and keys survive.
//
// Not thread-safe (like every Tpm).
#ifndef KGR_TESTING_FAKE_TPM_H_
#define KGR_TESTING_FAKE_TPM_H_

#include <array>
#include <functional>
#include <memory>
#include <optional>

#include "kgr/bytes.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/tpm.h"

namespace kgr::testing {

// What the fake reports from Capabilities() (docs/tpm.md, "doctor").
enum class FakeTpmProfile {
  kSwtpm,       // what swtpm 0.7 (IBM's reference code) reports
  kSlb9670,     // an Infineon SLB 9670 per its data sheet
  kWithoutP256  // swtpm-like, but without the NIST P-256 curve
};
// The static part of a profile: no kgr slot or key counted yet.
TpmCapabilities FakeTpmProfileCapabilities(FakeTpmProfile profile);

class FakeTpm : public Tpm {
 public:
  // What a TPM would keep across restarts, plus the test knobs.
  struct State {
    bool has_structure = false;
    Bytes kedk_public;  // empty: no KEDK
    std::array<std::optional<SecretBytes>, kNvSlotCount> slots;
    TpmCounters counters;  // summed over every FakeTpm on this State
    int ensure_calls = 0;

    // One-shot failures: the next call of that kind returns the Status
    // (and changes nothing), then the knob clears itself.
    std::optional<Status> fail_next_ensure;
    std::optional<Status> fail_next_kedk_public;
    std::optional<Status> fail_next_get_random;
    std::optional<Status> fail_next_nv_write;
    std::optional<Status> fail_next_nv_read;
    std::optional<Status> fail_next_nv_erase;
    // Sticky failure of every NvWrite until reset (e.g. a worn-out NV).
    std::optional<Status> fail_all_nv_writes;
    // Source of GetRandom bytes; default: OpenSSL's DRBG.
    std::function<SecretBytes(size_t)> random;
    // What Capabilities() reports, before kgr's own slots and keys are
    // added to it (each slot: one index of tpm_layout::kNvIndexSize
    // bytes; each key: one persistent handle fewer available).
    TpmCapabilities capabilities =
        FakeTpmProfileCapabilities(FakeTpmProfile::kSwtpm);
  };

  FakeTpm() : FakeTpm(std::make_shared<State>()) {}
  explicit FakeTpm(std::shared_ptr<State> state) : state_(std::move(state)) {}

  // Tpm
  Status EnsureTrustStructure(bool with_kedk) override;
  StatusOr<Bytes> KedkPublic() override;
  StatusOr<SecretBytes> GetRandom(size_t n) override;
  Status NvWrite(NvSlot slot, std::span<const uint8_t> data) override;
  StatusOr<SecretBytes> NvRead(NvSlot slot) override;
  Status NvErase(NvSlot slot) override;
  Status RemoveKeys() override;
  StatusOr<TpmCapabilities> Capabilities() override;
  TpmCounters counters() const override { return state_->counters; }
  std::string_view kind() const override { return "fake"; }

  // Knobs (shortcuts into state()).
  void FailNextNvWrite(Status s) { state_->fail_next_nv_write = std::move(s); }
  void FailNextNvRead(Status s) { state_->fail_next_nv_read = std::move(s); }
  void FailNextNvErase(Status s) { state_->fail_next_nv_erase = std::move(s); }
  void FailNextEnsure(Status s) { state_->fail_next_ensure = std::move(s); }
  void FailNextGetRandom(Status s) {
    state_->fail_next_get_random = std::move(s);
  }
  void FailNextKedkPublic(Status s) {
    state_->fail_next_kedk_public = std::move(s);
  }
  void UseProfile(FakeTpmProfile profile) {
    state_->capabilities = FakeTpmProfileCapabilities(profile);
  }
  void FailAllNvWrites(std::optional<Status> s) {
    state_->fail_all_nv_writes = std::move(s);
  }
  // GetRandom returns `seed`, `seed`+1, ... (mod 256), for reproducible
  // tests.
  void UseCountingRandom(uint8_t seed);

  // Inspection / setup without touching the counters.
  bool HasSlot(NvSlot slot) const;
  // Copy of the slot; empty if unwritten.
  SecretBytes SlotData(NvSlot slot) const;
  void SetSlot(NvSlot slot, std::span<const uint8_t> data);
  bool has_structure() const { return state_->has_structure; }
  bool has_kedk() const { return !state_->kedk_public.empty(); }

  const std::shared_ptr<State>& state() const { return state_; }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace kgr::testing

#endif  // KGR_TESTING_FAKE_TPM_H_
