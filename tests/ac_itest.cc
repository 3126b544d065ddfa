// The AC's exchanges with a running KS over a real TLS Mosquitto (with the
// project's broker configuration, max_packet_size 64 KiB included), CMS
// signed and encrypted both ways.
#include <gtest/gtest.h>

#include <future>
#include <string>
#include <vector>
#include <memory>
#include <optional>
#include <thread>

#include "harness/mosquitto.h"
#include "harness/net.h"
#include "kgr/ac_client.h"
#include "kgr/cms.h"
#include "kgr/event_loop.h"
#include "kgr/key_server.h"
#include "kgr/mqtt.h"
#include "kgr/store.h"
#include "testing/fake_tpm.h"

namespace kgr {
namespace {

class AcITest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::MakeTempDir("ac");
    ASSERT_FALSE(dir_.empty());
    broker_ = std::make_unique<harness::Mosquitto>(dir_);  // chmods dir_
    Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    auto ks_cert = broker_->IssueClient("ks", "ks");
    auto ac_cert = broker_->IssueClient("ac", "ac");
    ASSERT_TRUE(ks_cert.ok() && ac_cert.ok());
    auto ks_cms = CmsEndpoint::Load(broker_->ca_file(), ks_cert->cert_file,
                                    ks_cert->key_file);
    auto ac_cms = CmsEndpoint::Load(broker_->ca_file(), ac_cert->cert_file,
                                    ac_cert->key_file);
    ASSERT_TRUE(ks_cms.ok()) << ks_cms.status().ToString();
    ASSERT_TRUE(ac_cms.ok()) << ac_cms.status().ToString();
    ks_cms_ = std::move(*ks_cms);
    ac_cms_ = std::move(*ac_cms);

    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:1", "kgr");
    ASSERT_TRUE(own.ok());
    ks_n_id_ = own->identity.n_id;
    nodes_ = *NodeDescStore::Open(*DefaultFileSystem(), dir_ + "/ks/node_desc",
                                  own->nk, ks_n_id_);
    gen_keys_ = *GenKeysStore::Open(*DefaultFileSystem(), dir_ + "/ks/gen_keys",
                                    own->nk, ks_n_id_);
    groups_ = *GroupDescStore::Open(*DefaultFileSystem(), dir_ + "/ks/groups",
                                own->nk, ks_n_id_);
    ks_transport_ = Connect("ks", "ks");
    KeyServerOptions ko;
    ko.groups = groups_.get();
    ks_ = std::make_unique<KeyServer>(
        std::move(*own), *ks_tpm_.KedkPublic(), *ks_transport_, *nodes_,
        *gen_keys_, ks_cms_.get(), *SystemClock(), ko);
    ks_transport_->SetHandler([this](const std::string& t, Bytes p) {
      ks_loop_.Post([this, t, p = std::move(p)] { ks_->HandleMessage(t, p); });
    });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    ASSERT_TRUE(ks_->Start().ok());
    ks_thread_ = std::thread([this] { ks_loop_.Run(nullptr); });

    auto ks_der = LoadCertificateDer(ks_cert->cert_file);
    ASSERT_TRUE(ks_der.ok());
    ac_transport_ = Connect("ac", "ac");
    ac_ = std::make_unique<AcClient>(*ac_transport_, *ac_cms_,
                                     std::move(*ks_der), *SystemClock(), "kgr");
    ac_transport_->SetHandler([this](const std::string& t, Bytes p) {
      ac_loop_.Post([this, t, p = std::move(p)] { ac_->HandleMessage(t, p); });
    });
    ASSERT_TRUE(ac_transport_->Connect().ok());
    ASSERT_TRUE(ac_->Start().ok());
  }

  void TearDown() override {
    ks_loop_.Stop();
    if (ks_thread_.joinable()) ks_thread_.join();
    if (ac_transport_) (void)ac_transport_->Disconnect();
    if (ks_transport_) (void)ks_transport_->Disconnect();
    if (HasFailure() && broker_) {
      std::fprintf(stderr, "broker log: %s\n", broker_->log_file().c_str());
    }
    broker_.reset();
    if (!HasFailure()) harness::RemoveTree(dir_);
  }

  std::unique_ptr<Transport> Connect(const std::string& cn,
                                     const std::string& role) {
    auto o = broker_->ClientOptions(cn, role);
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    auto t = NewMqttTransport(*o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return std::move(*t);
  }

  // Runs the AC's list on its loop (this thread) until it answers.
  StatusOr<AcListAns> List() {
    std::optional<StatusOr<AcListAns>> got;
    ac_->List([&](StatusOr<AcListAns> r) { got = std::move(r); });
    if (!ac_loop_.RunUntil([&] { return got.has_value(); }, nullptr, 30000)) {
      return DeadlineExceededError("no answer to the list");
    }
    return std::move(*got);
  }

  // Runs one AC request on its loop (this thread) until it answers.
  template <typename T, typename Ask>
  StatusOr<T> Call(Ask ask) {
    std::optional<StatusOr<T>> got;
    ask([&](StatusOr<T> r) { got = std::move(r); });
    if (!ac_loop_.RunUntil([&] { return got.has_value(); }, nullptr, 30000)) {
      return DeadlineExceededError("no answer");
    }
    return std::move(*got);
  }
  // Authorizes a node on the KS's loop.
  uint32_t Authorize() {
    std::promise<uint32_t> id;
    ks_loop_.Post([&] {
      AcAuthorizeAns ans;
      Status st = ks_->AuthorizeNode(AcAuthorizeReq{}, &ans);
      id.set_value(st.ok() ? ans.n_id : 0);
    });
    return id.get_future().get();
  }

  std::string dir_;
  std::unique_ptr<harness::Mosquitto> broker_;
  std::unique_ptr<CmsEndpoint> ks_cms_, ac_cms_;
  testing::FakeTpm ks_tpm_;
  uint32_t ks_n_id_ = 0;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<GroupDescStore> groups_;
  std::unique_ptr<Transport> ks_transport_, ac_transport_;
  std::unique_ptr<KeyServer> ks_;
  std::unique_ptr<AcClient> ac_;
  EventLoop ks_loop_, ac_loop_;
  std::thread ks_thread_;
};

TEST_F(AcITest, ListOfManyNodesComesInPagesBelowTheBrokersPacketLimit) {
  // 6,000 nodes with 4 peers each: about 150 KB of list, more than twice
  // the broker's 64 KiB packet limit. Written through the library (as if
  // authorized one by one) before the KS reads them.
  constexpr uint32_t kNodes = 6000;
  std::vector<NodeDesc> batch;
  for (uint32_t i = 0; i < kNodes; ++i) {
    NodeDesc d;
    d.n_id = 0x10000000 + 7 * i;
    d.entry_no = static_cast<uint16_t>(i + 1);
    d.state = i % 3 ? NodeState::kAuthorized : NodeState::kRegistered;
    for (uint32_t p = 1; p <= 4; ++p) d.allowed_peers.push_back(d.n_id + p);
    auto ntag = RandomSecret(kRecordNtagSize);
    ASSERT_TRUE(ntag.ok());
    d.ntag = std::move(*ntag);
    if (d.state == NodeState::kRegistered) {
      auto k = SymmetricKeys::Generate();
      auto t2 = RandomTopicId();
      ASSERT_TRUE(k.ok() && t2.ok());
      d.nksk = std::move(*k);
      d.nksk_version = 1;
      d.topic2 = *t2;
    }
    batch.push_back(std::move(d));
  }
  std::promise<Status> written;
  ks_loop_.Post([&] { written.set_value(nodes_->PutAll(batch)); });
  ASSERT_TRUE(written.get_future().get().ok());

  auto list = List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->nodes.size(), kNodes);
  for (uint32_t i = 0; i < kNodes; ++i) {
    const auto& e = list->nodes[i];
    ASSERT_EQ(e.n_id, 0x10000000 + 7 * i);
    EXPECT_EQ(e.entry_no, i + 1);
    EXPECT_EQ(e.state, static_cast<uint8_t>(i % 3 ? NodeState::kAuthorized
                                                  : NodeState::kRegistered));
    EXPECT_EQ(e.peers, (std::vector<uint32_t>{e.n_id + 1, e.n_id + 2,
                                              e.n_id + 3, e.n_id + 4}));
  }
  // One node's entry, with one request, and a node the KS does not have.
  std::optional<StatusOr<AcListAns::Entry>> one, none;
  ac_->GetNode(0x10000000 + 7 * 4321,
               [&](StatusOr<AcListAns::Entry> r) { one = std::move(r); });
  ac_->GetNode(0x10000000 + 7 * 4321 + 1,
               [&](StatusOr<AcListAns::Entry> r) { none = std::move(r); });
  ASSERT_TRUE(ac_loop_.RunUntil(
      [&] { return one.has_value() && none.has_value(); }, nullptr, 30000));
  ASSERT_TRUE(one->ok()) << one->status().ToString();
  EXPECT_EQ((*one)->entry_no, 4322);
  EXPECT_EQ((*one)->peers.size(), 4u);
  EXPECT_EQ(none->status().code(), StatusCode::kNotFound);
  // The KS kept its connection (a packet over the limit makes the broker
  // drop the client that sent it): a second list works as well.
  auto again = List();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->nodes.size(), kNodes);
}

// kgr-ac group's requests over the CMS channel: each answer comes back, a
// refusal with the KS's reason, and a refused request changes nothing.
TEST_F(AcITest, GroupRequestsOverCms) {
  const uint32_t a = Authorize(), b = Authorize();
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, 0u);
  auto created = Call<AcGroupCreateAns>([&](auto done) {
    ac_->GroupCreate({"lights", GroupMode::kSenderAuth, 60, {a, b}}, done);
  });
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_NE(created->group_id, 0u);
  EXPECT_GE(created->key_version, 1u);

  auto dup = Call<AcGroupCreateAns>([&](auto done) {
    ac_->GroupCreate({"lights", GroupMode::kGroupKey, 0, {a}}, done);
  });
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(dup.status().message(),
            "the key server refused the group creation: a group 'lights' "
            "exists already");
  auto stranger = Call<AcGroupMembersAns>([&](auto done) {
    ac_->GroupMembers({"lights", 1, {0x0BADBAD0}}, done);
  });
  EXPECT_EQ(stranger.status().message(),
            "the key server refused the group join: node 0badbad0 is not "
            "authorized");

  auto removed = Call<AcGroupMembersAns>(
      [&](auto done) { ac_->GroupMembers({"lights", 0, {b}}, done); });
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_GT(removed->key_version, created->key_version);

  auto list =
      Call<AcGroupListAns>([&](auto done) { ac_->GroupList(done); });
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->groups.size(), 1u);
  EXPECT_EQ(list->groups[0].name, "lights");
  EXPECT_EQ(list->groups[0].mode, GroupMode::kSenderAuth);
  EXPECT_EQ(list->groups[0].lifetime_s, 60u);
  EXPECT_EQ(list->groups[0].members, std::vector<uint32_t>{a});

  auto deleted = Call<AcGroupDeleteAns>(
      [&](auto done) { ac_->GroupDelete("lights", done); });
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  auto gone = Call<AcGroupDeleteAns>(
      [&](auto done) { ac_->GroupDelete("lights", done); });
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(gone.status().message(),
            "the key server refused the group deletion: unknown group "
            "'lights'");
}

}  // namespace
}  // namespace kgr
