// The KS's node CRL (ks/node_crl.cc) on the fakes: every certificate the
// node CA signs is recorded durably before it goes out, and revoking a node
// publishes the node CA's CRL with its KS-signed serials (and no other
// node's), then runs the hook.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "kgr/node_certificate.h"
#include "node/ked_fixture.h"

namespace kgr {
namespace {

class KsNodeCrlTest : public testing::KedFixture {
 protected:
  void SetUp() override {
    KedFixture::SetUp();
    char tmpl[] = "/tmp/kgr_ks_node_crl_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    const char* src = std::getenv("KGR_SOURCE_DIR");
    const std::string p = std::string(src ? src : ".") + "/provisioning/";
    ASSERT_EQ(
        std::system(("bash " + p + "make-ca.sh " + dir_ +
                     "/root >/dev/null && bash " + p + "make-intermediate.sh " +
                     dir_ + "/root " + dir_ + " kgr-ks-ca >/dev/null")
                        .c_str()),
        0);
    auto ca = CertificateAuthority::Load(dir_ + "/kgr-ks-ca.crt",
                                         dir_ + "/kgr-ks-ca.key");
    ASSERT_TRUE(ca.ok()) << ca.status().ToString();
    ks_options_.node_ca = *ca;
    ks_options_.node_cert_seconds = 3600;
    ks_options_.node_certs_file = "/ks/node_certs";
    ks_options_.node_crl_file = "/ks/node.crl";
    ks_options_.node_files = &fs_;
    ks_options_.node_crl_written = [this](const std::string& path) {
      EXPECT_EQ(path, "/ks/node.crl");
      ++hooks_;
      return hook_result_;
    };
    RestartKs();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `n` renews its certificate through the KS: the new serial.
  std::string Renew(testing::KedNode& n) {
    auto csr = MakeNodeCsr(n.n_id);
    EXPECT_TRUE(csr.ok());
    std::optional<StatusOr<std::string>> got;
    n.client->RequestCertificate(csr->csr_der,
                                 [&](StatusOr<std::string> c) { got = c; });
    EXPECT_TRUE(RunUntil([&] { return got.has_value(); }));
    if (!got || !got->ok()) return "";
    return ReadCertificateInfo(**got)->serial_hex;
  }

  // The serials of the CRL the KS wrote, as `openssl crl -text` lists them
  // (after checking its signature with the node CA's certificate).
  std::string CrlText() {
    auto crl = fs_.ReadFile("/ks/node.crl");
    EXPECT_TRUE(crl.ok());
    if (!crl.ok()) return "";
    std::ofstream(dir_ + "/node.crl") << std::string(crl->begin(), crl->end());
    const std::string cmd = "openssl crl -in " + dir_ + "/node.crl -CAfile " +
                            dir_ + "/kgr-ks-ca.crt -noout -text 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    for (char buf[256]; fgets(buf, sizeof buf, p) != nullptr;) out += buf;
    pclose(p);
    EXPECT_NE(out.find("verify OK"), std::string::npos) << out;
    return out;
  }

  std::string dir_;
  int hooks_ = 0;
  Status hook_result_;
};

TEST_F(KsNodeCrlTest, RevocationListsTheNodesKsSignedSerialsAndRunsTheHook) {
  testing::KedNode& a = AddNode();
  testing::KedNode& b = AddNode();
  ASSERT_TRUE(Register(a).ok());
  ASSERT_TRUE(Register(b).ok());
  const std::string a1 = Renew(a), a2 = Renew(a), b1 = Renew(b);
  ASSERT_FALSE(a1.empty() || a2.empty() || b1.empty());
  // The first Tick publishes the CRL, empty: nobody is revoked.
  ks_->Tick();
  EXPECT_EQ(hooks_, 1);
  EXPECT_EQ(CrlText().find("Serial Number"), std::string::npos);

  int notified = 0;
  ASSERT_TRUE(ks_->RevokeNode(a.n_id, &notified).ok());
  EXPECT_EQ(hooks_, 2);
  const std::string text = CrlText();
  EXPECT_NE(text.find(a1), std::string::npos) << text;
  EXPECT_NE(text.find(a2), std::string::npos) << text;
  EXPECT_EQ(text.find(b1), std::string::npos) << text;
  // Not again before the day is over.
  ks_->Tick();
  EXPECT_EQ(hooks_, 2);
  clock_.AdvanceMillis(86'400'000);
  ks_->Tick();
  EXPECT_EQ(hooks_, 3);
}

TEST_F(KsNodeCrlTest, SerialsSurviveAPowerLossAndATornLastLine) {
  testing::KedNode& a = AddNode();
  ASSERT_TRUE(Register(a).ok());
  const std::string a1 = Renew(a);
  ASSERT_FALSE(a1.empty());
  RestartKs(false, /*power_loss=*/true);
  // A crash in the middle of the next line: its certificate never went out.
  auto file = fs_.ReadFile("/ks/node_certs");
  ASSERT_TRUE(file.ok());
  const std::string torn = "cert " + FormatNodeId(a.n_id) + " 0A";
  file->insert(file->end(), torn.begin(), torn.end());
  fs_.SetContents("/ks/node_certs", *file);
  int notified = 0;
  ASSERT_TRUE(ks_->RevokeNode(a.n_id, &notified).ok());
  const std::string text = CrlText();
  EXPECT_NE(text.find(a1), std::string::npos) << text;
  auto after = fs_.ReadFile("/ks/node_certs");
  ASSERT_TRUE(after.ok());
  const std::string lines(after->begin(), after->end());
  EXPECT_EQ(lines.find(" 0A\n"), std::string::npos) << lines;
  EXPECT_EQ(lines.back(), '\n');
}

TEST_F(KsNodeCrlTest, ACertificateThatCannotBeRecordedIsNotSent) {
  testing::KedNode& a = AddNode();
  ASSERT_TRUE(Register(a).ok());
  fs_.FailNth(testing::FakeFileSystem::Op::kSync, 1, InternalError("disk"));
  EXPECT_EQ(Renew(a), "");
  EXPECT_EQ(ks_->stats().certificates_issued, 0u);
  EXPECT_FALSE(Renew(a).empty());
}

TEST_F(KsNodeCrlTest, HookFailureFailsTheRevocationAndARepeatPublishes) {
  testing::KedNode& a = AddNode();
  ASSERT_TRUE(Register(a).ok());
  const std::string a1 = Renew(a);
  hook_result_ = UnavailableError("broker away");
  int notified = 0;
  Status st = ks_->RevokeNode(a.n_id, &notified);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_NE(CrlText().find(a1), std::string::npos);
  // The node is revoked all the same; the AC asks again and the CRL goes
  // out again.
  hook_result_ = OkStatus();
  const int before = hooks_;
  EXPECT_TRUE(ks_->RevokeNode(a.n_id, &notified).ok());
  EXPECT_EQ(hooks_, before + 1);
}

}  // namespace
}  // namespace kgr
