// cert_renew_req/cert_renew_ans between a node and the KS on the fakes: the
// KS signs a CSR for the sender's own identity with its node CA, and
// refuses one for another node's identity or when it has no node CA.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "kgr/node_certificate.h"
#include "node/ked_fixture.h"

namespace kgr {
namespace {

std::string MakeIssuingCa() {
  char tmpl[] = "/tmp/kgr_cert_request_test.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  const char* src = std::getenv("KGR_SOURCE_DIR");
  const std::string p = std::string(src ? src : ".") + "/provisioning/";
  int rc = std::system(
      ("bash " + p + "make-ca.sh " + dir + "/root >/dev/null && bash " + p +
       "make-intermediate.sh " + dir + "/root " + dir + " kgr-ks-ca >/dev/null")
          .c_str());
  EXPECT_EQ(rc, 0);
  return dir;
}

class CertRequestTest : public testing::KedFixture {
 protected:
  // `n` sends a CSR for `csr_for`'s name; the KS's answer.
  StatusOr<std::string> Ask(testing::KedNode& n, uint32_t csr_for,
                            NodeCsr* csr_out = nullptr) {
    auto csr = MakeNodeCsr(csr_for);
    if (!csr.ok()) return csr.status();
    std::optional<StatusOr<std::string>> got;
    n.client->RequestCertificate(csr->csr_der,
                                 [&](StatusOr<std::string> c) { got = c; });
    if (!RunUntil([&] { return got.has_value(); })) {
      return DeadlineExceededError("no answer");
    }
    if (csr_out != nullptr) *csr_out = std::move(*csr);
    return *got;
  }
};

TEST_F(CertRequestTest, KsSignsTheNodesOwnCsrAndRefusesAnotherIdentity) {
  const std::string dir = MakeIssuingCa();
  auto ca = CertificateAuthority::Load(dir + "/kgr-ks-ca.crt",
                                       dir + "/kgr-ks-ca.key");
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  ks_options_.node_ca = *ca;
  ks_options_.node_cert_seconds = 3600;
  RestartKs();
  testing::KedNode& a = AddNode();
  testing::KedNode& b = AddNode();
  ASSERT_TRUE(Register(a).ok());
  ASSERT_TRUE(Register(b).ok());

  NodeCsr csr;
  auto chain = Ask(a, a.n_id, &csr);
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  EXPECT_TRUE(*KeyMatchesCertificate(*chain, csr.key_pem));
  auto info = ReadCertificateInfo(*chain);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->subject_cn, NodeCommonName(a.n_id));
  EXPECT_EQ(ks_->stats().certificates_issued, 1u);

  // a asks for b's name: refused, nothing signed.
  auto other = Ask(a, b.n_id);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ks_->stats().certificates_issued, 1u);
  std::filesystem::remove_all(dir);
}

TEST_F(CertRequestTest, KsWithoutANodeCaRefuses) {
  testing::KedNode& a = AddNode();
  ASSERT_TRUE(Register(a).ok());
  auto chain = Ask(a, a.n_id);
  ASSERT_FALSE(chain.ok());
  EXPECT_EQ(chain.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ks_->stats().certificates_issued, 0u);
}

TEST_F(CertRequestTest, UnregisteredNodeCannotAsk) {
  testing::KedNode& a = AddNode();
  std::optional<StatusOr<std::string>> got;
  a.client->RequestCertificate(Bytes(10, 1),
                               [&](StatusOr<std::string> c) { got = c; });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kgr
