// EsapiTpm against a real swtpm: trust structure, NV slots, authorization
// (checked independently with tpm2-tools), restart, counters, and the
// absence of TPM2_EncryptDecrypt from the library.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "daemon/doctor.h"
#include "gtest/gtest.h"
#include "harness/net.h"
#include "harness/swtpm.h"
#include "kgr/bytes.h"
#include "kgr/tpm.h"
#include "tpm/tpm_layout.h"

namespace kgr {
namespace {

namespace layout = tpm_layout;

Bytes Pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed * 31 + i);
  return b;
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// As tpm2_getcap lists handles: "0x1004B00".
std::string CapHex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%X", v);
  return buf;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class TpmItest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = harness::MakeTempDir("tpm-itest");
    ASSERT_FALSE(root_.empty());
    swtpm_ = std::make_unique<harness::Swtpm>(root_ + "/swtpm");
    ASSERT_TRUE(swtpm_->Start()) << swtpm_->error();
  }
  void TearDown() override {
    tpm_.reset();  // disconnect before swtpm goes
    if (swtpm_) swtpm_->Stop();
    harness::RemoveTree(root_);
  }

  TpmOptions Options(bool pcr_policy = false) const {
    TpmOptions options;
    options.tcti = swtpm_->tcti();
    options.state_dir = root_ + "/kgr";
    options.pcr_policy = pcr_policy;
    return options;
  }
  // (Re)connects tpm_.
  void Open(bool pcr_policy = false) {
    tpm_.reset();
    auto tpm = OpenTpm(Options(pcr_policy));
    ASSERT_TRUE(tpm.ok()) << tpm.status().ToString();
    tpm_ = std::move(tpm).value();
    ASSERT_EQ(tpm_->kind(), "esapi");
  }
  // Runs a tpm2-tools command line against the swtpm (our connection must
  // be closed: swtpm serves one client at a time). Returns the exit code.
  int Tool(const std::string& args) {
    return Shell("( " + args + " ) >>'" + root_ + "/tools.log' 2>&1");
  }
  // stdout of a tpm2-tools command (empty on failure).
  std::string ToolOutput(const std::string& args) {
    const std::string out = root_ + "/tool.out";
    if (Shell("( " + args + " ) >'" + out + "' 2>>'" + root_ + "/tools.log'") !=
        0) {
      return "";
    }
    return ReadAll(out);
  }
  int Shell(const std::string& line) {
    tpm_.reset();
    const std::string cmd =
        "export TPM2TOOLS_TCTI='" + swtpm_->tcti() + "'; " + line;
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  std::string NvAuthHex() {
    std::string auth = ReadAll(root_ + "/kgr/" + layout::kNvAuthFile);
    return ToHex(AsBytes(auth));
  }

  std::string root_;
  std::unique_ptr<harness::Swtpm> swtpm_;
  std::unique_ptr<Tpm> tpm_;
};

TEST_F(TpmItest, TrustStructureIsCreatedOnceAndReused) {
  Open();
  EXPECT_EQ(tpm_->KedkPublic().status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(tpm_->EnsureTrustStructure(false).ok());
  EXPECT_EQ(tpm_->KedkPublic().status().code(),
            StatusCode::kFailedPrecondition);
  Status s = tpm_->EnsureTrustStructure(true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto kedk = tpm_->KedkPublic();
  ASSERT_TRUE(kedk.ok()) << kedk.status().ToString();
  EXPECT_GT(kedk->size(), 64u);  // TPM2B_PUBLIC with a P-256 point
  ASSERT_TRUE(tpm_->EnsureTrustStructure(true).ok());
  EXPECT_EQ(*tpm_->KedkPublic(), *kedk);
  EXPECT_EQ(tpm_->counters().nv_writes, 0u);
  EXPECT_GT(tpm_->counters().tpm_commands, 0u);

  Open();  // a new process: same identity
  ASSERT_TRUE(tpm_->EnsureTrustStructure(true).ok());
  EXPECT_EQ(*tpm_->KedkPublic(), *kedk);

  const std::string handles = ToolOutput("tpm2_getcap handles-persistent");
  EXPECT_NE(handles.find(CapHex(layout::kSrkHandle)), std::string::npos)
      << handles;
  EXPECT_NE(handles.find(CapHex(layout::kAnkHandle)), std::string::npos);
  EXPECT_NE(handles.find(CapHex(layout::kKedkHandle)), std::string::npos);
}

TEST_F(TpmItest, ReusesAForeignSrkAtTheSrkHandle) {
  // A storage primary made by someone else (tpm2-tools' default template).
  ASSERT_EQ(Tool("tpm2_createprimary -C o -G ecc -c '" + root_ +
                 "/p.ctx' && tpm2_evictcontrol -C o -c '" + root_ + "/p.ctx' " +
                 Hex32(layout::kSrkHandle) +
                 " && tpm2_flushcontext -t"),  // no resource manager here
            0);
  Open();
  Status s = tpm_->EnsureTrustStructure(true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kNtag, Pattern(32, 1)).ok());
  EXPECT_TRUE(tpm_->NvRead(NvSlot::kNtag).ok());
}

TEST_F(TpmItest, EverySlotRoundTripsAndWritesAreCounted) {
  Open();
  ASSERT_TRUE(tpm_->EnsureTrustStructure(true).ok());
  for (int i = 0; i < kNvSlotCount; ++i) {
    auto slot = static_cast<NvSlot>(i);
    EXPECT_EQ(tpm_->NvRead(slot).status().code(), StatusCode::kNotFound);
    Status s = tpm_->NvWrite(slot, Pattern(i == 0 ? kNvSlotMaxSize : 64, i));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(tpm_->counters().nv_writes, 2u * kNvSlotCount);  // define+write
  for (int i = 0; i < kNvSlotCount; ++i) {
    auto got = tpm_->NvRead(static_cast<NvSlot>(i));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(ConstantTimeEquals(got->span(),
                                   Pattern(i == 0 ? kNvSlotMaxSize : 64, i)));
  }
  // Rewrite shorter: one NV write; the old tail is gone.
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kIdentity, Pattern(10, 9)).ok());
  EXPECT_EQ(tpm_->counters().nv_writes, 2u * kNvSlotCount + 1);
  auto got = tpm_->NvRead(NvSlot::kIdentity);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(ConstantTimeEquals(got->span(), Pattern(10, 9)));
  // Empty blob is a valid value.
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kNtag, Bytes()).ok());
  EXPECT_EQ(tpm_->NvRead(NvSlot::kNtag)->size(), 0u);

  EXPECT_EQ(
      tpm_->NvWrite(NvSlot::kIdentity, Pattern(kNvSlotMaxSize + 1, 0)).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(tpm_->counters().nv_writes, 2u * kNvSlotCount + 2);
}

TEST_F(TpmItest, NvIsReadableOnlyWithTheAuthValue) {
  Open();
  ASSERT_TRUE(tpm_->EnsureTrustStructure(false).ok());
  const Bytes secret = Pattern(64, 3);
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kNodeKeys, secret).ok());
  const std::string index = Hex32(layout::NvHandle(NvSlot::kNodeKeys));

  // The auth file: 32 bytes, mode 0600.
  struct stat st;
  const std::string auth_path = root_ + "/kgr/" + layout::kNvAuthFile;
  ASSERT_EQ(::stat(auth_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(layout::kNvAuthSize));

  EXPECT_NE(Tool("tpm2_nvread " + index), 0);       // empty auth
  EXPECT_NE(Tool("tpm2_nvread -C o " + index), 0);  // owner: no OWNERREAD
  EXPECT_NE(Tool("tpm2_nvread -P hex:" + std::string(64, '0') + " " + index),
            0);  // wrong auth
  const std::string out = root_ + "/nv.bin";
  ASSERT_EQ(
      Tool("tpm2_nvread -P hex:" + NvAuthHex() + " -o '" + out + "' " + index),
      0);
  const std::string raw = ReadAll(out);
  ASSERT_EQ(raw.size(), layout::kNvIndexSize);
  EXPECT_EQ(static_cast<uint8_t>(raw[0]), 0);
  EXPECT_EQ(static_cast<uint8_t>(raw[1]), 64);
  EXPECT_EQ(raw.substr(2, 64), std::string(secret.begin(), secret.end()));
  EXPECT_EQ(raw.substr(66), std::string(layout::kNvIndexSize - 66, '\0'));

  const std::string pub = ToolOutput("tpm2_nvreadpublic " + index);
  EXPECT_NE(pub.find("authread"), std::string::npos) << pub;
  EXPECT_NE(pub.find("no_da"), std::string::npos) << pub;
  EXPECT_EQ(pub.find("ownerread"), std::string::npos) << pub;
  EXPECT_EQ(pub.find("ppread"), std::string::npos) << pub;
  EXPECT_NE(pub.find("size: 258"), std::string::npos) << pub;
}

TEST_F(TpmItest, WrongOrMissingAuthFileIsRefused) {
  Open();
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kNtag, Pattern(32, 4)).ok());
  const std::string auth_path = root_ + "/kgr/" + layout::kNvAuthFile;
  {
    std::ofstream f(auth_path, std::ios::binary | std::ios::trunc);
    f << std::string(layout::kNvAuthSize, 'x');
  }
  auto read = tpm_->NvRead(NvSlot::kNtag);
  EXPECT_EQ(read.status().code(), StatusCode::kPermissionDenied)
      << read.status().ToString();
  ASSERT_EQ(std::remove(auth_path.c_str()), 0);
  EXPECT_EQ(tpm_->NvRead(NvSlot::kNtag).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(tpm_->NvWrite(NvSlot::kNtag, Pattern(32, 5)).code(),
            StatusCode::kFailedPrecondition);
  // Decommissioning needs no auth file.
  EXPECT_TRUE(tpm_->NvErase(NvSlot::kNtag).ok());
}

TEST_F(TpmItest, EverythingSurvivesASwtpmRestart) {
  Open();
  ASSERT_TRUE(tpm_->EnsureTrustStructure(true).ok());
  const Bytes kedk = *tpm_->KedkPublic();
  for (int i = 0; i < kNvSlotCount; ++i) {
    ASSERT_TRUE(tpm_->NvWrite(static_cast<NvSlot>(i), Pattern(40 + i, i)).ok());
  }
  tpm_.reset();
  ASSERT_TRUE(swtpm_->Restart()) << swtpm_->error();
  Open();
  for (int i = 0; i < kNvSlotCount; ++i) {
    auto got = tpm_->NvRead(static_cast<NvSlot>(i));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(ConstantTimeEquals(got->span(), Pattern(40 + i, i)));
  }
  ASSERT_TRUE(tpm_->EnsureTrustStructure(true).ok());
  EXPECT_EQ(*tpm_->KedkPublic(), kedk);
  // Existing index: exactly one NV write, no define.
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kKsKeys, Pattern(64, 8)).ok());
  EXPECT_EQ(tpm_->counters().nv_writes, 1u);
}

TEST_F(TpmItest, EraseUndefinesTheIndex) {
  Open();
  EXPECT_TRUE(tpm_->NvErase(NvSlot::kKsKeys).ok());  // absent: OK
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kKsKeys, Pattern(64, 2)).ok());
  const std::string index = CapHex(layout::NvHandle(NvSlot::kKsKeys));
  EXPECT_NE(ToolOutput("tpm2_getcap handles-nv-index").find(index),
            std::string::npos);
  Open();
  ASSERT_TRUE(tpm_->NvErase(NvSlot::kKsKeys).ok());
  EXPECT_EQ(tpm_->NvRead(NvSlot::kKsKeys).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(ToolOutput("tpm2_getcap handles-nv-index").find(index),
            std::string::npos);
}

TEST_F(TpmItest, RefusesAForeignIndexAtAKgrHandle) {
  const std::string index = Hex32(layout::NvHandle(NvSlot::kNtag));
  ASSERT_EQ(Tool("tpm2_nvdefine -C o -s 16 -a 'ownerread|ownerwrite' " + index),
            0);
  Open();
  EXPECT_EQ(tpm_->NvWrite(NvSlot::kNtag, Pattern(32, 1)).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(tpm_->NvErase(NvSlot::kNtag).code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(TpmItest, GetRandomLoopsOverChunks) {
  Open();
  auto a = tpm_->GetRandom(100);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size(), 100u);
  EXPECT_GE(tpm_->counters().tpm_commands, 4u);
  auto b = tpm_->GetRandom(100);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(a->Equals(*b));
  EXPECT_EQ(tpm_->GetRandom(0)->size(), 0u);
}

TEST_F(TpmItest, PcrPolicyBindsReadsToPcrs) {
  // Something measured into PCRs 0-7, as a measuring firmware would.
  ASSERT_EQ(Tool("tpm2_pcrextend 0:sha256=" + std::string(64, 'b')), 0);
  Open(/*pcr_policy=*/true);
  ASSERT_TRUE(tpm_->EnsureTrustStructure(false).ok());
  Status s = tpm_->NvWrite(NvSlot::kNodeKeys, Pattern(64, 6));
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto got = tpm_->NvRead(NvSlot::kNodeKeys);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(ConstantTimeEquals(got->span(), Pattern(64, 6)));

  Open(/*pcr_policy=*/false);  // configuration mismatch is explicit
  EXPECT_EQ(tpm_->NvRead(NvSlot::kNodeKeys).status().code(),
            StatusCode::kFailedPrecondition);

  ASSERT_EQ(Tool("tpm2_pcrextend 7:sha256=" + std::string(64, 'a')), 0);
  Open(/*pcr_policy=*/true);
  auto after = tpm_->NvRead(NvSlot::kNodeKeys);
  EXPECT_EQ(after.status().code(), StatusCode::kPermissionDenied)
      << after.status().ToString();
  // Writes need only the authValue; erase needs only the owner.
  EXPECT_TRUE(tpm_->NvWrite(NvSlot::kNodeKeys, Pattern(64, 7)).ok());
  EXPECT_TRUE(tpm_->NvErase(NvSlot::kNodeKeys).ok());
}

// swtpm, like a Raspberry Pi's firmware, measures nothing into PCRs 0-7: a
// policy on them would hold for any boot, so it is refused before anything
// is made (no key, no index, no auth file).
TEST_F(TpmItest, PcrPolicyIsRefusedWhileBootPcrsAreZero) {
  Open(/*pcr_policy=*/true);
  Status s = tpm_->EnsureTrustStructure(false);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("PCRs 0-7 (sha256) are all zero"),
            std::string::npos)
      << s.ToString();
  s = tpm_->NvWrite(NvSlot::kIdentity, Pattern(10, 1));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  struct stat st;
  EXPECT_NE(::stat((root_ + "/kgr/" + layout::kNvAuthFile).c_str(), &st), 0);
  Open(/*pcr_policy=*/false);
  auto caps = tpm_->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.status().ToString();
  EXPECT_EQ(caps->kgr_persistent, 0);
  EXPECT_EQ(caps->kgr_nv_slots, 0);
  EXPECT_EQ(caps->boot_pcrs_zero, std::optional<bool>(true));
}

TEST_F(TpmItest, CapabilitiesOfSwtpmSayItCanRunKgr) {
  Open();
  auto caps = tpm_->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.status().ToString();
  EXPECT_EQ(caps->manufacturer, "IBM");
  EXPECT_TRUE(caps->algorithms.count(tpm_ids::kAlgEcc));
  EXPECT_TRUE(caps->ecc_curves.count(tpm_ids::kCurveNistP256));
  EXPECT_TRUE(caps->commands.count(tpm_ids::kCcNvDefineSpace));
  EXPECT_TRUE(caps->commands.count(tpm_ids::kCcEncryptDecrypt));
  EXPECT_GE(caps->nv_buffer_max, kNvIndexBytes);
  EXPECT_GE(caps->persistent_avail, 3u);
  EXPECT_EQ(caps->nv_indices, 0u);
  EXPECT_FALSE(caps->owner_auth_set);
  EXPECT_TRUE(caps->owner_hierarchy_enabled);
  EXPECT_FALSE(caps->in_lockout);
  EXPECT_EQ(caps->max_auth_fail, 3u);  // tpm2_getcap properties-variable
  const DoctorReport report = DiagnoseTpm(*caps, /*key_server=*/true);
  EXPECT_TRUE(report.CanRunKgr()) << report.Text();

  ASSERT_TRUE(tpm_->EnsureTrustStructure(true).ok());
  ASSERT_TRUE(tpm_->NvWrite(NvSlot::kNtag, Pattern(32, 2)).ok());
  auto after = tpm_->Capabilities();
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->kgr_persistent, 3);
  EXPECT_EQ(after->kgr_nv_slots, 1);
  EXPECT_EQ(after->nv_indices, 1u);
  EXPECT_EQ(after->nv_bytes_defined, kNvIndexBytes);
  // An estimate: the NV index took room too.
  EXPECT_LE(after->persistent_avail, caps->persistent_avail - 3);
}

// The executable, as an operator runs it: exit 0 and the verdict.
TEST_F(TpmItest, DoctorCommandAgainstSwtpm) {
  // Under qemu-user (the arm64 cross-build) the arm64 executable runs
  // through the same emulator as this test.
  const std::string wrapper = KGR_EXEC_WRAPPER;
  const std::string bin = (wrapper.empty() ? "" : wrapper + " ") +
                          KGR_BINARY_DIR + "/n-node/kgr-node";
  const std::string out = ToolOutput(bin + " doctor --tcti '" + swtpm_->tcti() +
                                     "' --state-dir '" + root_ + "/kgr'");
  EXPECT_NE(out.find("ok       ECC curve NIST P-256"), std::string::npos)
      << out;
  EXPECT_NE(out.find("verdict: this TPM can run kgr"), std::string::npos)
      << out;
}

TEST_F(TpmItest, RemoveKeysEvictsAnkAndKedkOnly) {
  Open();
  ASSERT_TRUE(tpm_->EnsureTrustStructure(true).ok());
  ASSERT_TRUE(tpm_->RemoveKeys().ok());
  ASSERT_TRUE(tpm_->RemoveKeys().ok());  // absent is OK
  const std::string handles = ToolOutput("tpm2_getcap handles-persistent");
  EXPECT_NE(handles.find(CapHex(layout::kSrkHandle)), std::string::npos);
  EXPECT_EQ(handles.find(CapHex(layout::kAnkHandle)), std::string::npos)
      << handles;
  EXPECT_EQ(handles.find(CapHex(layout::kKedkHandle)), std::string::npos);
  // A key that is not kgr's kind at a kgr handle is left in place.
  ASSERT_EQ(Tool("tpm2_createprimary -C o -G rsa2048 -c " + root_ +
                 "/p.ctx && tpm2_evictcontrol -C o -c " + root_ + "/p.ctx " +
                 Hex32(layout::kAnkHandle)),
            0);
  Open();
  EXPECT_EQ(tpm_->RemoveKeys().code(), StatusCode::kFailedPrecondition);
}

TEST_F(TpmItest, StoppedTpmIsUnavailable) {
  Open();
  swtpm_->Stop();
  auto r = tpm_->GetRandom(8);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable)
      << r.status().ToString();
  tpm_.reset();
  auto tpm = OpenTpm(Options());
  EXPECT_EQ(tpm.status().code(), StatusCode::kUnavailable);
}

// The Infineon SLB 9670 lacks TPM2_EncryptDecrypt(2): kgr must never send
// it. The library must not even reference the ESAPI functions.
TEST(TpmLibrary, NeverReferencesEncryptDecrypt) {
  const std::string lib = std::string(KGR_BINARY_DIR) + "/libkgr_tpm.a";
  const std::string cmd = "nm -u '" + lib + "' 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string symbols;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) symbols.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << "nm failed on " << lib;
  // The check is live: the library does use ESAPI.
  EXPECT_NE(symbols.find("Esys_NV_Write"), std::string::npos);
  EXPECT_EQ(symbols.find("EncryptDecrypt"), std::string::npos);
}

}  // namespace
}  // namespace kgr
