// CertificateAuthority, MakeNodeCsr and ReadCertificateInfo against a root
// and an intermediate made by the provisioning scripts.
#include "kgr/node_certificate.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

namespace kgr {
namespace {

std::string SourceDir() {
  const char* src = std::getenv("KGR_SOURCE_DIR");
  return src ? src : ".";
}

int Shell(const std::string& cmd) { return std::system(cmd.c_str()); }

class NodeCertificateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/kgr_cert_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string p = SourceDir() + "/provisioning/";
    ASSERT_EQ(Shell("bash " + p + "make-ca.sh " + dir_ + "/root >/dev/null"),
              0);
    ASSERT_EQ(Shell("bash " + p + "make-intermediate.sh " + dir_ + "/root " +
                    dir_ + "/int kgr-ks-ca >/dev/null"),
              0);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static std::string Path(const std::string& name) { return dir_ + "/" + name; }
  static CertificateAuthority Intermediate() {
    auto ca = CertificateAuthority::Load(Path("int/kgr-ks-ca.crt"),
                                         Path("int/kgr-ks-ca.key"));
    EXPECT_TRUE(ca.ok()) << ca.status().ToString();
    return *ca;
  }
  static void Write(const std::string& name, const std::string& text) {
    std::ofstream(Path(name)) << text;
  }

  static std::string dir_;
};
std::string NodeCertificateTest::dir_;

TEST_F(NodeCertificateTest,
       IntermediateSignsTheNodesOwnCsrAndTheChainVerifies) {
  CertificateAuthority ca = Intermediate();
  auto csr = MakeNodeCsr(0x0a1b2c3d);
  ASSERT_TRUE(csr.ok());
  auto chain = ca.SignNodeCsr(0x0a1b2c3d, csr->csr_der, 90);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  // The leaf, then the intermediate (the root stays out).
  EXPECT_NE(chain->find("BEGIN CERTIFICATE"),
            chain->rfind("BEGIN CERTIFICATE"));
  EXPECT_EQ(*chain, chain->substr(0, chain->size() - ca.chain_pem().size()) +
                        ca.chain_pem());
  Write("chain.pem", *chain);
  EXPECT_EQ(
      Shell("openssl verify -CAfile " + Path("root/ca.crt") + " -untrusted " +
            Path("chain.pem") + " " + Path("chain.pem") + " >/dev/null"),
      0);
  auto info = ReadCertificateInfo(*chain);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->subject_cn, "n0a1b2c3d");
  const int64_t now = std::time(nullptr);
  EXPECT_NEAR(info->not_after, now + 90, 5);
  EXPECT_NEAR(info->not_before, now - 60, 5);
  EXPECT_EQ(info->serial_hex.size(), 32u);
  auto match = KeyMatchesCertificate(*chain, csr->key_pem);
  ASSERT_TRUE(match.ok());
  EXPECT_TRUE(*match);
  auto other = MakeNodeCsr(0x0a1b2c3d);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(*KeyMatchesCertificate(*chain, other->key_pem));
}

TEST_F(NodeCertificateTest, CsrForAnotherNodesIdentityIsRefused) {
  auto csr = MakeNodeCsr(0x00000002);
  ASSERT_TRUE(csr.ok());
  auto chain = Intermediate().SignNodeCsr(0x00000001, csr->csr_der, 90);
  ASSERT_FALSE(chain.ok());
  EXPECT_EQ(chain.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(chain.status().message().find("CN=n00000001"), std::string::npos)
      << chain.status().message();
}

TEST_F(NodeCertificateTest, CsrWhoseSignatureDoesNotVerifyIsRefused) {
  auto csr = MakeNodeCsr(7);
  ASSERT_TRUE(csr.ok());
  // The last bytes are the signature's s value.
  csr->csr_der[csr->csr_der.size() - 2] ^= 0x01;
  auto chain = Intermediate().SignNodeCsr(7, csr->csr_der, 90);
  ASSERT_FALSE(chain.ok());
  EXPECT_EQ(chain.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(NodeCertificateTest, MalformedCsrIsRefused) {
  auto csr = MakeNodeCsr(7);
  ASSERT_TRUE(csr.ok());
  CertificateAuthority ca = Intermediate();
  Bytes cut(csr->csr_der.begin(), csr->csr_der.end() - 1);
  EXPECT_EQ(ca.SignNodeCsr(7, cut, 90).status().code(),
            StatusCode::kInvalidArgument);
  Bytes longer = csr->csr_der;
  longer.push_back(0);
  EXPECT_EQ(ca.SignNodeCsr(7, longer, 90).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ca.SignNodeCsr(7, Bytes{}, 90).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(NodeCertificateTest, RootSignsWithoutAChain) {
  auto ca =
      CertificateAuthority::Load(Path("root/ca.crt"), Path("root/ca.key"));
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  EXPECT_TRUE(ca->chain_pem().empty());
  auto csr = MakeNodeCsr(9);
  auto chain = ca->SignNodeCsr(9, csr->csr_der, 3600);
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(chain->find("BEGIN CERTIFICATE"),
            chain->rfind("BEGIN CERTIFICATE"));
}

TEST_F(NodeCertificateTest, LoadRefusesANonCaAndAKeyOfAnotherCertificate) {
  auto csr = MakeNodeCsr(5);
  auto chain = Intermediate().SignNodeCsr(5, csr->csr_der, 3600);
  ASSERT_TRUE(chain.ok());
  Write("leaf.pem", *chain);
  Write("leaf.key",
        std::string(reinterpret_cast<const char*>(csr->key_pem.data()),
                    csr->key_pem.size()));
  auto leaf = CertificateAuthority::Load(Path("leaf.pem"), Path("leaf.key"));
  ASSERT_FALSE(leaf.ok());
  EXPECT_NE(leaf.status().message().find("not a CA"), std::string::npos);
  auto mixed = CertificateAuthority::Load(Path("int/kgr-ks-ca.crt"),
                                          Path("root/ca.key"));
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("does not match"), std::string::npos);
  EXPECT_EQ(CertificateAuthority::Load(Path("none.crt"), Path("root/ca.key"))
                .status()
                .code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace kgr

namespace kgr {
namespace {

// The CRL the KS publishes for its node CA: `openssl verify -crl_check`
// refuses the listed certificate and accepts another one of the same CA,
// also with the CRL of a second CA (the root's) in the same file, as the
// broker's crlfile holds them.
TEST_F(NodeCertificateTest, CrlRevokesTheListedSerialsOnly) {
  CertificateAuthority ca = Intermediate();
  auto sign = [&](const std::string& name) {
    auto csr = MakeNodeCsr(0x01020304);
    EXPECT_TRUE(csr.ok());
    auto chain = ca.SignNodeCsr(0x01020304, csr->csr_der, 3600);
    EXPECT_TRUE(chain.ok());
    Write(name, *chain);
    return ReadCertificateInfo(*chain)->serial_hex;
  };
  const std::string revoked = sign("revoked.pem");
  sign("kept.pem");
  const CertificateAuthority::Revoked list[] = {{revoked, 1'700'000'000}};
  auto crl = ca.SignCrl(list, 86400, 7);
  ASSERT_TRUE(crl.ok()) << crl.status().ToString();
  std::ifstream root_crl(Path("root/ca.crl"));
  std::string both((std::istreambuf_iterator<char>(root_crl)), {});
  Write("crls.pem", both + *crl);
  auto verify = [&](const std::string& leaf) {
    return Shell("openssl verify -crl_check -CRLfile " + Path("crls.pem") +
                 " -CAfile " + Path("root/ca.crt") + " -untrusted " +
                 Path(leaf) + " " + Path(leaf) + " >/dev/null 2>&1");
  };
  EXPECT_NE(verify("revoked.pem"), 0);
  EXPECT_EQ(verify("kept.pem"), 0);
  Write("ks.crl", *crl);
  EXPECT_EQ(Shell("openssl crl -in " + Path("ks.crl") +
                  " -noout -crlnumber | grep -qx 'crlNumber=0x07'"),
            0);
  const CertificateAuthority::Revoked bad[] = {{"12XZ", 0}};
  EXPECT_EQ(ca.SignCrl(bad, 86400, 8).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kgr
