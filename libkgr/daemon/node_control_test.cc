// The node daemon's control commands (ExecuteNodeCommand) on a KED of
// fakes: a KS and two nodes on a FakeBroker, FakeTpm, FakeFileSystem and
// FakeClock.
#include "daemon/node_control.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kgr/key_server.h"
#include "kgr/topic.h"
#include "testing/fake_clock.h"
#include "testing/fake_filesystem.h"
#include "testing/fake_tpm.h"
#include "testing/fake_transport.h"

namespace kgr {
namespace {

using nlohmann::json;

struct Node {
  testing::FakeFileSystem fs;
  testing::FakeTpm tpm;
  std::unique_ptr<testing::FakeTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
};

class NodeControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:8883", "kgr");
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    const uint32_t ks_id = own->identity.n_id;
    ks_transport_ = broker_.NewTransport("ks");
    ks_transport_->SetHandler(
        [this](const std::string& t, Bytes p) { ks_->HandleMessage(t, p); });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    auto n = NodeDescStore::Open(fs_, "/ks/node_desc", own->nk, ks_id);
    auto g = GenKeysStore::Open(fs_, "/ks/gen_keys", own->nk, ks_id);
    ASSERT_TRUE(n.ok() && g.ok());
    nodes_ = std::move(*n);
    gen_keys_ = std::move(*g);
    ks_ = std::make_unique<KeyServer>(std::move(*own), *ks_tpm_.KedkPublic(),
                                      *ks_transport_, *nodes_, *gen_keys_,
                                      nullptr, clock_, KeyServerOptions());
    ASSERT_TRUE(ks_->Start().ok());
    a_ = AddNode({});
    b_ = AddNode({a_->n_id});
  }

  std::unique_ptr<Node> AddNode(std::vector<uint32_t> peers) {
    AcAuthorizeAns ans;
    EXPECT_TRUE(
        ks_->AuthorizeNode(AcAuthorizeReq{std::move(peers)}, &ans).ok());
    auto n = std::make_unique<Node>();
    n->n_id = ans.n_id;
    Credentials c;
    c.n_id = ans.n_id;
    c.ntag = std::move(ans.ntag);
    c.broker_address = "127.0.0.1:8883";
    c.ks_n_id = ans.ks_n_id;
    auto own = InitNode(n->tpm, c);
    EXPECT_TRUE(own.ok()) << own.status().ToString();
    n->transport = broker_.NewTransport(NodeIdentity(ans.n_id));
    Node* raw = n.get();
    n->transport->SetHandler([raw](const std::string& t, Bytes p) {
      raw->client->HandleMessage(t, p);
    });
    EXPECT_TRUE(n->transport->Connect().ok());
    auto ses = SesKeysStore::Open(n->fs, "/ses", own->nk, n->n_id);
    EXPECT_TRUE(ses.ok());
    n->ses = std::move(*ses);
    n->client = std::make_unique<NodeClient>(std::move(*own), n->tpm,
                                             *n->transport, *n->ses, clock_);
    EXPECT_TRUE(n->client->Start().ok());
    n->client->SetDataHandler([](uint32_t, const SecretBytes& d) {
      return SecretBytes(
          AsBytes("ack:" + std::string(d.span().begin(), d.span().end())));
    });
    return n;
  }

  // Runs `request` on `n` and the KED until it is answered; the answer,
  // after checking that it came exactly once.
  json Run(Node& n, const json& request) {
    int answers = 0;
    json answer;
    ExecuteNodeCommand(*n.client, n.tpm, clock_, request, [&](json r) {
      ++answers;
      answer = std::move(r);
    });
    for (int i = 0; i < 300 && answers == 0; ++i) {
      broker_.Pump();
      if (answers) break;
      clock_.AdvanceMillis(100);
      ks_->Tick();
      a_->client->Tick();
      b_->client->Tick();
    }
    broker_.Pump();
    EXPECT_EQ(answers, 1) << request.dump();
    return answer;
  }

  static void ExpectFailure(const json& r, const char* code,
                            const std::string& error) {
    EXPECT_EQ(r.value("ok", true), false) << r.dump();
    EXPECT_EQ(r.value("code", ""), code) << r.dump();
    EXPECT_EQ(r.value("error", ""), error) << r.dump();
  }

  testing::FakeClock clock_;
  testing::FakeBroker broker_;
  testing::FakeFileSystem fs_;
  testing::FakeTpm ks_tpm_;
  std::unique_ptr<testing::FakeTransport> ks_transport_;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<KeyServer> ks_;
  std::unique_ptr<Node> a_, b_;
};

TEST_F(NodeControlTest, UnknownCommandIsRefused) {
  ExpectFailure(Run(*a_, {{"cmd", "reboot"}}), "INVALID_ARGUMENT",
                "unknown command 'reboot'");
  ExpectFailure(Run(*a_, json::object()), "INVALID_ARGUMENT",
                "unknown command ''");
}

TEST_F(NodeControlTest, StatusOfAFreshNode) {
  json r = Run(*a_, {{"cmd", "status"}});
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["n_id"], FormatNodeId(a_->n_id));
  EXPECT_EQ(r["registered"], false);
  EXPECT_EQ(r["pairs"], json::array());
  EXPECT_EQ(r["pending_requests"], 0);
  EXPECT_EQ(r["nv_writes"], a_->tpm.counters().nv_writes);
  EXPECT_EQ(r["tpm"], "fake");
}

TEST_F(NodeControlTest, PeerListMustBeForThisNode) {
  const std::string other = FormatNodeId(b_->n_id);
  ExpectFailure(Run(*a_, {{"cmd", "peers"}, {"node", other}, {"peers", {}}}),
                "INVALID_ARGUMENT",
                "the peer list is for node " + other + ", this is node " +
                    FormatNodeId(a_->n_id));
  ExpectFailure(
      Run(*a_, {{"cmd", "peers"}}), "INVALID_ARGUMENT",
      "the peer list is for node ?, this is node " + FormatNodeId(a_->n_id));
  json bad = Run(*a_, {{"cmd", "peers"},
                       {"node", FormatNodeId(a_->n_id)},
                       {"peers", {other, 7}}});
  EXPECT_EQ(bad["ok"], false);
  EXPECT_EQ(bad["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(a_->client->Pairs().size(), 0u);  // nothing loaded
}

TEST_F(NodeControlTest, PeersThenStatusListsThePair) {
  json r = Run(*a_, {{"cmd", "peers"},
                     {"node", FormatNodeId(a_->n_id)},
                     {"peers", {FormatNodeId(b_->n_id)}}});
  EXPECT_EQ(r, json({{"ok", true}}));
  json s = Run(*a_, {{"cmd", "status"}});
  ASSERT_EQ(s["pairs"].size(), 1u);
  EXPECT_EQ(s["pairs"][0]["peer"], FormatNodeId(b_->n_id));
  EXPECT_EQ(s["pairs"][0]["has_key"], false);
}

TEST_F(NodeControlTest, PeerMustBeAnNid) {
  for (const char* cmd : {"request-key", "renew", "send"}) {
    json r = Run(*a_, {{"cmd", cmd}, {"peer", "xyz"}});
    EXPECT_EQ(r["ok"], false) << cmd;
    EXPECT_EQ(r["code"], "INVALID_ARGUMENT") << cmd;
  }
}

TEST_F(NodeControlTest, RequestKeyBeforeRegisteringIsRefused) {
  json r = Run(*a_, {{"cmd", "request-key"},
                     {"peer", FormatNodeId(b_->n_id)},
                     {"timeout_ms", 2000}});
  EXPECT_EQ(r["ok"], false);
  EXPECT_NE(r["code"], "OK");
  EXPECT_FALSE(r.value("error", "").empty());
}

TEST_F(NodeControlTest, RegisterRequestKeySendAndStatus) {
  EXPECT_EQ(Run(*a_, {{"cmd", "register"}}), json({{"ok", true}}));
  EXPECT_EQ(Run(*b_, {{"cmd", "register"}}), json({{"ok", true}}));
  for (Node* n : {a_.get(), b_.get()}) {
    Node* peer = n == a_.get() ? b_.get() : a_.get();
    ASSERT_EQ(Run(*n, {{"cmd", "peers"},
                       {"node", FormatNodeId(n->n_id)},
                       {"peers", {FormatNodeId(peer->n_id)}}})["ok"],
              true);
  }
  const std::string b = FormatNodeId(b_->n_id);
  EXPECT_EQ(Run(*a_, {{"cmd", "request-key"}, {"peer", b}}),
            json({{"ok", true}}));
  json sent = Run(*a_, {{"cmd", "send"}, {"peer", b}, {"data", "hello"}});
  EXPECT_EQ(sent, json({{"ok", true}, {"reply", "ack:hello"}}));
  clock_.AdvanceMillis(5000);
  json s = Run(*a_, {{"cmd", "status"}});
  EXPECT_EQ(s["registered"], true);
  ASSERT_EQ(s["pairs"].size(), 1u);
  EXPECT_EQ(s["pairs"][0]["has_key"], true);
  EXPECT_GE(s["pairs"][0]["key_version"].get<int>(), 1);
  EXPECT_EQ(s["pairs"][0]["frames_sent"], 1);
  EXPECT_EQ(s["pairs"][0]["bytes_sent"], 5);
  EXPECT_GE(s["pairs"][0]["age_s"].get<int>(), 5);
  EXPECT_EQ(s["nv_writes"], a_->tpm.counters().nv_writes);
}

TEST_F(NodeControlTest, RegisterTimesOutWithoutKs) {
  ks_transport_.reset();  // the KS is away
  json r = Run(*a_, {{"cmd", "register"}, {"timeout_ms", 3000}});
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["code"], "DEADLINE_EXCEEDED");
  EXPECT_FALSE(r.value("error", "").empty());
}

TEST(NodeControlAnswerTest, FailureAnswerRoundTripsEveryCode) {
  for (int c = 1; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    Status st(static_cast<StatusCode>(c), "why " + std::to_string(c));
    json answer = FailureAnswer(st);
    EXPECT_EQ(answer["ok"], false);
    EXPECT_EQ(answer["code"], std::string(StatusCodeName(st.code())));
    Status back = StatusFromAnswer(answer);
    EXPECT_EQ(back.code(), st.code()) << answer.dump();
    EXPECT_EQ(back.message(), st.message());
  }
}

TEST(NodeControlAnswerTest, AnswersWithoutACodeOrWithAnUnknownOne) {
  EXPECT_TRUE(StatusFromAnswer({{"ok", true}}).ok());
  Status unknown =
      StatusFromAnswer({{"ok", false}, {"code", "NOPE"}, {"error", "x"}});
  EXPECT_EQ(unknown.code(), StatusCode::kInternal);
  EXPECT_EQ(unknown.message(), "x");
  // The KS's answers carry no code: {"ok": false, "error": ...}.
  Status bare = StatusFromAnswer({{"ok", false}});
  EXPECT_EQ(bare.code(), StatusCode::kInternal);
  EXPECT_EQ(bare.message(), "failed");
}

}  // namespace
}  // namespace kgr
