// The node daemon's control commands (ExecuteNodeCommand) on a KED of
// fakes (node/mini_ked_test.h): a KS and two nodes.
#include "daemon/node_control.h"

#include <gtest/gtest.h>

#include <string>

#include "kgr/topic.h"
#include "node/mini_ked_test.h"

namespace kgr {
namespace {

using nlohmann::json;

using testing::MiniNode;

class NodeControlTest : public testing::MiniKed {
 protected:
  void SetUp() override {
    MiniKed::SetUp();
    a_ = &AddNode();
    b_ = &AddNode({a_->n_id});
  }

  // Runs `request` on `n` and the KED until it is answered; the answer,
  // after checking that it came exactly once.
  json Run(MiniNode& n, const json& request) {
    int answers = 0;
    json answer;
    ExecuteNodeCommand(*n.client, n.tpm, clock_, request, [&](json r) {
      ++answers;
      answer = std::move(r);
    });
    RunUntil([&] { return answers > 0; });
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

  MiniNode* a_ = nullptr;
  MiniNode* b_ = nullptr;
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
  for (MiniNode* n : {a_, b_}) {
    MiniNode* peer = n == a_ ? b_ : a_;
    ASSERT_EQ(Run(*n, {{"cmd", "peers"},
                       {"node", FormatNodeId(n->n_id)},
                       {"peers", {FormatNodeId(peer->n_id)}}})["ok"],
              true);
  }
  const std::string b = FormatNodeId(b_->n_id);
  EXPECT_EQ(Run(*a_, {{"cmd", "request-key"}, {"peer", b}}),
            json({{"ok", true}}));
  json sent = Run(*a_, {{"cmd", "send"}, {"peer", b}, {"data", "hello"}});
  // The fixture's peers answer "ack:" + the data (ked_fixture.h).
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
