// DiagnoseTpm on FakeTpm's profiles: swtpm-like, Infineon SLB 9670 and a
// TPM without P-256; and what changes once kgr's own state is in the TPM.
#include "daemon/doctor.h"

#include <cstdio>

#include "gtest/gtest.h"
#include "testing/fake_tpm.h"

namespace kgr {
namespace {

using testing::FakeTpm;
using testing::FakeTpmProfile;

DoctorReport Diagnose(FakeTpm& tpm, bool key_server) {
  auto caps = tpm.Capabilities();
  EXPECT_TRUE(caps.ok()) << caps.status().ToString();
  return DiagnoseTpm(*caps, key_server);
}

bool Says(const DoctorReport& r, DoctorFinding::Level level,
          const std::string& part) {
  for (const auto& f : r.findings) {
    if (f.level == level && f.text.find(part) != std::string::npos) return true;
  }
  return false;
}

TEST(Doctor, SwtpmProfileCanRunKgr) {
  FakeTpm tpm;
  for (bool ks : {false, true}) {
    const DoctorReport r = Diagnose(tpm, ks);
    EXPECT_TRUE(r.CanRunKgr()) << r.Text();
    EXPECT_NE(r.Text().find("verdict: this TPM can run kgr"),
              std::string::npos);
    EXPECT_TRUE(Says(r, DoctorFinding::kOk, "ECC curve NIST P-256"));
    EXPECT_TRUE(
        Says(r, DoctorFinding::kOk, "TPM2_EncryptDecrypt(2): implemented"));
    EXPECT_TRUE(
        Says(r, DoctorFinding::kNote, "PCRs 0-7 (sha256) are all zero"));
  }
}

TEST(Doctor, Slb9670CanRunKgrWithinItsNvAndHandles) {
  FakeTpm tpm;
  tpm.UseProfile(FakeTpmProfile::kSlb9670);
  const DoctorReport r = Diagnose(tpm, /*key_server=*/false);
  EXPECT_TRUE(r.CanRunKgr()) << r.Text();
  EXPECT_TRUE(Says(r, DoctorFinding::kOk, "manufacturer IFX"));
  EXPECT_TRUE(
      Says(r, DoctorFinding::kOk, "TPM2_EncryptDecrypt(2): not implemented"));
  EXPECT_TRUE(Says(r, DoctorFinding::kOk, "NV buffer: 768 bytes"));
  EXPECT_TRUE(Says(r, DoctorFinding::kOk, "free NV about 6962 bytes"));
  EXPECT_TRUE(Says(r, DoctorFinding::kOk, "kgr needs 4 more (1032 bytes"));
  EXPECT_TRUE(Says(r, DoctorFinding::kOk, "persistent handles: 7 free"));
  std::printf("%s", r.Text().c_str());  // the report docs/tpm.md shows
}

TEST(Doctor, WithoutP256CannotRunKgr) {
  FakeTpm tpm;
  tpm.UseProfile(FakeTpmProfile::kWithoutP256);
  const DoctorReport r = Diagnose(tpm, /*key_server=*/true);
  EXPECT_FALSE(r.CanRunKgr());
  EXPECT_TRUE(Says(r, DoctorFinding::kMissing, "ECC curve NIST P-256"));
  EXPECT_NE(r.Text().find("verdict: this TPM cannot run kgr: ECC curve NIST "
                          "P-256"),
            std::string::npos)
      << r.Text();
}

TEST(Doctor, KgrsOwnStateCountsAsPresentNotAsMissing) {
  FakeTpm tpm;
  tpm.UseProfile(FakeTpmProfile::kSlb9670);
  ASSERT_TRUE(tpm.EnsureTrustStructure(/*with_kedk=*/false).ok());
  const uint8_t data[3] = {1, 2, 3};
  ASSERT_TRUE(tpm.NvWrite(NvSlot::kIdentity, data).ok());
  const DoctorReport r = Diagnose(tpm, /*key_server=*/false);
  EXPECT_TRUE(r.CanRunKgr()) << r.Text();
  EXPECT_TRUE(Says(r, DoctorFinding::kOk, "kgr needs 3 more (774 bytes"));
  EXPECT_TRUE(Says(r, DoctorFinding::kOk, "free NV about 6704 bytes"));
  EXPECT_TRUE(Says(r, DoctorFinding::kOk,
                   "persistent handles: 5 free; kgr "
                   "needs 0 more (2 of its 2 present)"));
}

TEST(Doctor, EachLimitMissingIsNamed) {
  struct Case {
    void (*spoil)(TpmCapabilities&);
    const char* missing;
  } cases[] = {
      {[](TpmCapabilities& c) { c.nv_buffer_max = 256; }, "NV buffer: 256"},
      {[](TpmCapabilities& c) { c.nv_index_max = 128; }, "NV index size"},
      {[](TpmCapabilities& c) { c.persistent_avail = 1; },
       "persistent handles: 1 free, kgr needs 2"},
      {[](TpmCapabilities& c) { c.owner_auth_set = true; },
       "owner hierarchy has a password"},
      {[](TpmCapabilities& c) { c.algorithms.erase(tpm_ids::kAlgEcdh); },
       "algorithm ECDH"},
      {[](TpmCapabilities& c) { c.commands.erase(tpm_ids::kCcNvWrite); },
       "command TPM2_NV_Write"},
      {[](TpmCapabilities& c) { c.nv_bytes_defined = 6500; },
       "NV room: kgr needs 4 more (1032 bytes"},
  };
  for (const Case& c : cases) {
    TpmCapabilities caps =
        testing::FakeTpmProfileCapabilities(FakeTpmProfile::kSlb9670);
    c.spoil(caps);
    const DoctorReport r = DiagnoseTpm(caps, /*key_server=*/false);
    EXPECT_FALSE(r.CanRunKgr()) << c.missing;
    EXPECT_TRUE(Says(r, DoctorFinding::kMissing, c.missing)) << r.Text();
  }
}

TEST(Doctor, LockoutIsANoteNotAFailure) {
  TpmCapabilities caps =
      testing::FakeTpmProfileCapabilities(FakeTpmProfile::kSwtpm);
  caps.in_lockout = true;
  caps.lockout_counter = 3;
  const DoctorReport r = DiagnoseTpm(caps, /*key_server=*/false);
  EXPECT_TRUE(r.CanRunKgr());
  EXPECT_TRUE(Says(r, DoctorFinding::kNote, "lockout: ACTIVE (3 of 3"));
}

TEST(Doctor, SoftwareStoreIsSaidToBeNoTpm) {
  TpmCapabilities caps;
  caps.is_tpm = false;
  const DoctorReport r = DiagnoseTpm(caps, /*key_server=*/false);
  EXPECT_TRUE(r.CanRunKgr());
  EXPECT_TRUE(Says(r, DoctorFinding::kNote, "no TPM (tcti none)"));
}

}  // namespace
}  // namespace kgr
