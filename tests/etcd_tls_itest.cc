// The etcd KS state over TLS: a real etcd serving https with client
// certificate authentication (tests/harness/etcd.h, tls = true). The state
// works with the CA and a client certificate; a wrong CA, no client
// certificate, or one from another CA is refused with one line that says
// which option to check.
#include <gtest/gtest.h>

#include "cluster/etcd_client.h"
#include "harness/etcd.h"
#include "harness/mosquitto.h"  // RunProvisioning
#include "harness/net.h"
#include "kgr/cluster.h"

namespace kgr {
namespace {

class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::MakeTempDir("etcd-tls");
    etcd_ = std::make_unique<harness::Etcd>(dir_, 1, /*tls=*/true);
    Status st = etcd_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    // Another CA, with a client certificate of its own.
    other_ = dir_ + "/other";
    st = harness::RunProvisioning("make-ca.sh", {other_});
    ASSERT_TRUE(st.ok()) << st.ToString();
    st = harness::RunProvisioning("issue-cert.sh", {other_, "ks", "ks"});
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void TearDown() override {
    etcd_.reset();
    if (!dir_.empty()) harness::RemoveTree(dir_);
  }
  EtcdStateOptions StateOptions(const EtcdTlsOptions& tls) {
    EtcdStateOptions o{etcd_->ClientOptions(), "/kgr/tls", 50};
    o.etcd.tls = tls;
    return o;
  }
  // The state refused with these TLS options: one line naming `option`.
  void ExpectRefused(const EtcdTlsOptions& tls, const std::string& option) {
    auto s = EtcdKsState::Open(StateOptions(tls), key_);
    ASSERT_FALSE(s.ok());
    const std::string& msg = s.status().message();
    std::printf("refused: %s\n", s.status().ToString().c_str());
    EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find("TLS"), std::string::npos) << msg;
    EXPECT_NE(msg.find(option), std::string::npos) << msg;
  }

  std::string dir_, other_;
  std::unique_ptr<harness::Etcd> etcd_;
  DomainKey key_ = *NewDomainKey(0x71);
};

TEST_F(EtcdTlsTest, StateWorksOverTlsWithAClientCertificate) {
  const EtcdTlsOptions good = etcd_->ClientOptions().tls;
  ASSERT_FALSE(good.ca_file.empty());
  auto s = EtcdKsState::Open(StateOptions(good), key_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  NodeDesc d;
  d.n_id = 0x99;
  d.ntag = SecretBytes(32);
  Status st = (*s)->nodes().Update([&](NodeDescTxn& txn) -> Status {
    txn.Put(d.Clone());
    return OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto again = EtcdKsState::Open(StateOptions(good), key_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE((*again)->nodes().Get(0x99).ok());
  // Plain HTTP to the https port is no etcd answer.
  EtcdTlsOptions none;
  auto plain = EtcdKsState::Open(StateOptions(none), key_);
  EXPECT_FALSE(plain.ok());
}

TEST_F(EtcdTlsTest, AWrongCaIsRefused) {
  EtcdTlsOptions tls = etcd_->ClientOptions().tls;
  tls.ca_file = other_ + "/ca.crt";
  ExpectRefused(tls, "--etcd-ca");
}

TEST_F(EtcdTlsTest, NoClientCertificateIsRefused) {
  EtcdTlsOptions tls = etcd_->ClientOptions().tls;
  tls.cert_file.clear();
  tls.key_file.clear();
  ExpectRefused(tls, "--etcd-cert");
}

TEST_F(EtcdTlsTest, AClientCertificateOfAnotherCaIsRefused) {
  EtcdTlsOptions tls = etcd_->ClientOptions().tls;
  tls.cert_file = other_ + "/ks.crt";
  tls.key_file = other_ + "/ks.key";
  ExpectRefused(tls, "--etcd-cert");
}

}  // namespace
}  // namespace kgr
