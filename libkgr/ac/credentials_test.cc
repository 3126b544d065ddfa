// The signed credential file and peer list (credentials.h): written by an
// AC endpoint, accepted intact, refused after any truncation or edit and
// when signed by anyone but an AC of the CA in question.
//
// testdata/: EC P-256 certificates valid until 2125, made with the openssl
// CLI: ca.pem (the KED CA), ac.pem/ac.key (OU kgr-ac, CN ac), ks.pem/ks.key
// (OU kgr-ks), other_ca.pem and other_ac.pem/other_ac.key (an AC of
// another CA).
#include "kgr/credentials.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "testing/fake_filesystem.h"

namespace kgr {
namespace {

std::string TestData(const std::string& name) {
  const char* src = std::getenv("KGR_SOURCE_DIR");
  std::filesystem::path dir =
      src != nullptr ? std::filesystem::path(src) / "libkgr/ac"
                     : std::filesystem::path(__FILE__).parent_path();
  return (dir / "testdata" / name).string();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<CmsEndpoint> Endpoint(const std::string& ca,
                                      const std::string& me) {
  auto e = CmsEndpoint::Load(TestData(ca + ".pem"), TestData(me + ".pem"),
                             TestData(me + ".key"));
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? std::move(*e) : nullptr;
}

Credentials Sample(const std::string& ca_pem) {
  Credentials c;
  c.n_id = 0x0a0b0c0d;
  c.ks_n_id = 0x11223344;
  c.ntag = SecretBytes(Bytes(32, 0xab));
  c.broker_address = "127.0.0.1:8883";
  c.topic_prefix = "kgr/site-1";
  c.ca_pem = ca_pem;
  c.cert_pem = "-----BEGIN CERTIFICATE-----\nnode\n-----END CERTIFICATE-----\n";
  c.key_pem = SecretBytes(AsBytes("-----BEGIN PRIVATE KEY-----\nk\n"));
  return c;
}

Bytes Plain(const SecretBytes& s) {
  return Bytes(s.span().begin(), s.span().end());
}

class CredentialFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_pem_ = ReadText(TestData("ca.pem"));
    ASSERT_FALSE(ca_pem_.empty());
    ac_ = Endpoint("ca", "ac");
    ASSERT_NE(ac_, nullptr);
    auto file = EncodeCredentialFile(Sample(ca_pem_), *ac_);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    file_ = Plain(*file);
  }
  std::string ca_pem_;
  std::unique_ptr<CmsEndpoint> ac_;
  Bytes file_;
};

TEST_F(CredentialFileTest, IntactFileReadsBackEveryField) {
  auto c = ParseCredentialFile(file_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Credentials want = Sample(ca_pem_);
  EXPECT_EQ(c->n_id, want.n_id);
  EXPECT_EQ(c->ks_n_id, want.ks_n_id);
  EXPECT_TRUE(c->ntag.Equals(want.ntag));
  EXPECT_EQ(c->broker_address, want.broker_address);
  EXPECT_EQ(c->topic_prefix, want.topic_prefix);
  EXPECT_EQ(c->ca_pem, want.ca_pem);
  EXPECT_EQ(c->cert_pem, want.cert_pem);
  EXPECT_TRUE(c->key_pem.Equals(want.key_pem));
}

TEST_F(CredentialFileTest, EveryTruncationIsRefused) {
  for (size_t n = 0; n < file_.size(); ++n) {
    auto c = ParseCredentialFile(std::span<const uint8_t>(file_).first(n));
    ASSERT_FALSE(c.ok()) << "cut at " << n;
    EXPECT_EQ(c.status().message().find('\n'), std::string::npos);
  }
  auto cut = ParseCredentialFile(std::span<const uint8_t>(file_).first(300));
  EXPECT_NE(cut.status().message().find("no signature line"), std::string::npos)
      << cut.status().ToString();
}

TEST_F(CredentialFileTest, EveryFlippedBitOrCaseIsRefused) {
  for (size_t i = 0; i < file_.size(); ++i) {
    for (uint8_t mask : {0x01, 0x20, 0x80}) {
      Bytes b = file_;
      b[i] ^= mask;
      ASSERT_FALSE(ParseCredentialFile(b).ok())
          << "byte " << i << " ^ " << int{mask};
    }
  }
}

TEST_F(CredentialFileTest, AnythingAddedIsRefused) {
  Bytes more = file_;
  for (char ch : std::string("n_id 00000001\n")) more.push_back(ch);
  EXPECT_FALSE(ParseCredentialFile(more).ok());
  Bytes twice = file_;
  twice.insert(twice.end(), file_.begin(), file_.end());
  EXPECT_FALSE(ParseCredentialFile(twice).ok());
}

TEST_F(CredentialFileTest, SignedByNonAcOrAnotherCaIsRefused) {
  auto ks = Endpoint("ca", "ks");
  auto ks_file = EncodeCredentialFile(Sample(ca_pem_), *ks);
  ASSERT_TRUE(ks_file.ok());
  auto r = ParseCredentialFile(ks_file->span());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("not by the AC"), std::string::npos);

  // An AC of another CA, the KED CA in the file: refused.
  auto other = Endpoint("other_ca", "other_ac");
  auto other_file = EncodeCredentialFile(Sample(ca_pem_), *other);
  ASSERT_TRUE(other_file.ok());
  EXPECT_EQ(ParseCredentialFile(other_file->span()).status().code(),
            StatusCode::kUnauthenticated);
}

TEST_F(CredentialFileTest, UnsignedVersionOneFileIsRefusedClearly) {
  std::string v1 = "kgr-credentials 1\nn_id 0a0b0c0d\nks_n_id 11223344\nntag " +
                   std::string(64, 'a') + "\nbroker 127.0.0.1:8883\n";
  auto r = ParseCredentialFile(AsBytes(v1));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no signature line"), std::string::npos);
  // Even with a valid signature of the AC, version 1 is not read.
  std::string body = v1 + "ac_cert " + ToHex(ac_->certificate_der()) + "\n";
  auto sig = ac_->SignDetached(AsBytes(body));
  ASSERT_TRUE(sig.ok());
  std::string signed_v1 = body + "signature " + ToHex(*sig) + "\n";
  r = ParseCredentialFile(AsBytes(signed_v1));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version 1"), std::string::npos);
}

TEST_F(CredentialFileTest, RepeatedFieldIsRefusedEvenWhenSigned) {
  std::string text(file_.begin(), file_.end());
  std::string body = text.substr(0, text.find("ac_cert "));
  body += "ntag " + std::string(64, 'c') + "\n";
  body += "ac_cert " + ToHex(ac_->certificate_der()) + "\n";
  auto sig = ac_->SignDetached(AsBytes(body));
  ASSERT_TRUE(sig.ok());
  auto r =
      ParseCredentialFile(AsBytes(body + "signature " + ToHex(*sig) + "\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("repeated"), std::string::npos);
}

TEST_F(CredentialFileTest, WriteAndReadThroughTheFileSystem) {
  testing::FakeFileSystem fs;
  ASSERT_TRUE(WriteCredentialFile(fs, "/n.cred", Sample(ca_pem_), *ac_).ok());
  EXPECT_EQ(fs.FileMode("/n.cred"), 0600);
  EXPECT_TRUE(ReadCredentialFile(fs, "/n.cred").ok());
  auto missing = ReadCredentialFile(fs, "/none");
  EXPECT_NE(missing.status().message().find("/none"), std::string::npos);
}

TEST_F(CredentialFileTest, PeerListIsSignedAndBoundToItsNode) {
  PeerList list{0x0a0b0c0d, {0x01020304, 0x05060708}};
  auto file = EncodePeerList(list, *ac_);
  ASSERT_TRUE(file.ok());
  auto back = ParsePeerList(*file, ca_pem_);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->node, list.node);
  EXPECT_EQ(back->peers, list.peers);
  for (size_t n = 0; n < file->size(); ++n) {
    ASSERT_FALSE(
        ParsePeerList(std::span<const uint8_t>(*file).first(n), ca_pem_).ok())
        << "cut at " << n;
  }
  for (size_t i = 0; i < file->size(); ++i) {
    Bytes b = *file;
    b[i] ^= 0x01;
    ASSERT_FALSE(ParsePeerList(b, ca_pem_).ok()) << "byte " << i;
  }
  // Checked against the node's CA: an AC of another CA is refused.
  auto other = Endpoint("other_ca", "other_ac");
  auto foreign = EncodePeerList(list, *other);
  ASSERT_TRUE(foreign.ok());
  EXPECT_FALSE(ParsePeerList(*foreign, ca_pem_).ok());
  EXPECT_TRUE(ParsePeerList(*foreign, ReadText(TestData("other_ca.pem"))).ok());
  // An empty list is a list.
  auto empty = EncodePeerList({0x0a0b0c0d, {}}, *ac_);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(ParsePeerList(*empty, ca_pem_).ok());
}

// The fuzzer's seeds (tests/fuzz/corpus/credentials_fuzz, signed with the
// openssl CLI by testdata/ac.key) stay valid, so that mutations start from
// files that get through to the signature check.
TEST(CredentialFuzzCorpus, SeedsAreValidSignedFiles) {
  std::filesystem::path corpus =
      std::filesystem::path(TestData("")).parent_path().parent_path() /
      "../../tests/fuzz/corpus/credentials_fuzz";
  std::string cred = ReadText((corpus / "cred").string());
  std::string peers = ReadText((corpus / "peers").string());
  auto c = ParseCredentialFile(AsBytes(cred));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  auto p = ParsePeerList(AsBytes(peers), ReadText(TestData("ca.pem")));
  EXPECT_TRUE(p.ok()) << p.status().ToString();
}

}  // namespace
}  // namespace kgr
