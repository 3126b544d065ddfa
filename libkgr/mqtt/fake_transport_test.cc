#include "testing/fake_transport.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace kgr::testing {
namespace {

Bytes B(const std::string& s) { return Bytes(s.begin(), s.end()); }

struct Received {
  std::vector<std::pair<std::string, std::string>> messages;
  Transport::Handler Handler() {
    return [this](const std::string& topic, Bytes p) {
      messages.emplace_back(topic, std::string(p.begin(), p.end()));
    };
  }
};

TEST(TopicMatchesTest, ExactAndWildcards) {
  EXPECT_TRUE(TopicMatches("kgr/register", "kgr/register"));
  EXPECT_FALSE(TopicMatches("kgr/register", "kgr/register/x"));
  EXPECT_FALSE(TopicMatches("kgr/register/x", "kgr/register"));
  EXPECT_TRUE(TopicMatches("kgr/+/x", "kgr/ks/x"));
  EXPECT_FALSE(TopicMatches("kgr/+/x", "kgr/ks/y"));
  EXPECT_FALSE(TopicMatches("kgr/+", "kgr/ks/x"));
  EXPECT_TRUE(TopicMatches("kgr/+", "kgr/"));  // empty level
  EXPECT_TRUE(TopicMatches("kgr/#", "kgr/ks/x/y"));
  EXPECT_TRUE(TopicMatches("kgr/#", "kgr"));  // '#' includes the parent
  EXPECT_FALSE(TopicMatches("kgr/#", "kgrx/a"));
  EXPECT_TRUE(TopicMatches("#", "a/b"));
  EXPECT_FALSE(TopicMatches("#", "$SYS/x"));
  EXPECT_FALSE(TopicMatches("+/x", "$SYS/x"));
}

TEST(FakeBrokerTest, QueuedDeliveryOnlyOnPump) {
  FakeBroker broker;
  auto ks = broker.NewTransport("ks");
  auto node = broker.NewTransport("n0a1b2c3d");
  Received got;
  ks->SetHandler(got.Handler());
  ASSERT_TRUE(ks->Connect().ok());
  ASSERT_TRUE(node->Connect().ok());
  ASSERT_TRUE(ks->Subscribe("kgr/register").ok());
  ASSERT_TRUE(node->Publish("kgr/register", B("one")).ok());
  ASSERT_TRUE(node->Publish("kgr/other", B("nobody")).ok());
  ASSERT_TRUE(node->Publish("kgr/register", B("two")).ok());
  EXPECT_TRUE(got.messages.empty());
  EXPECT_EQ(broker.queued(), 3u);
  EXPECT_TRUE(broker.PumpOne());
  ASSERT_EQ(got.messages.size(), 1u);
  EXPECT_EQ(got.messages[0].second, "one");
  EXPECT_EQ(broker.Pump(), 2u);
  ASSERT_EQ(got.messages.size(), 2u);
  EXPECT_EQ(got.messages[1].second, "two");
  EXPECT_FALSE(broker.PumpOne());

  auto pub = broker.published();
  ASSERT_EQ(pub.size(), 3u);
  EXPECT_EQ(pub[1].sender, "n0a1b2c3d");
  EXPECT_EQ(pub[1].topic, "kgr/other");
  EXPECT_EQ(pub[1].payload, B("nobody"));
  broker.ClearPublished();
  EXPECT_TRUE(broker.published().empty());
}

TEST(FakeBrokerTest, HandlerPublishingDoesNotReenter) {
  FakeBroker broker;
  auto a = broker.NewTransport("a");
  auto b = broker.NewTransport("b");
  std::vector<std::string> log;
  a->SetHandler([&](const std::string&, Bytes p) {
    log.push_back("a:" + std::string(p.begin(), p.end()));
  });
  b->SetHandler([&](const std::string&, Bytes p) {
    log.push_back("b:" + std::string(p.begin(), p.end()));
    EXPECT_FALSE(broker.PumpOne());  // no nested delivery
    ASSERT_TRUE(b->Publish("t/a", B("pong")).ok());
    log.push_back("b:after-publish");
  });
  ASSERT_TRUE(a->Connect().ok());
  ASSERT_TRUE(b->Connect().ok());
  ASSERT_TRUE(a->Subscribe("t/a").ok());
  ASSERT_TRUE(b->Subscribe("t/b").ok());
  ASSERT_TRUE(a->Publish("t/b", B("ping")).ok());
  EXPECT_EQ(broker.Pump(), 2u);
  EXPECT_EQ(log,
            (std::vector<std::string>{"b:ping", "b:after-publish", "a:pong"}));
}

TEST(FakeBrokerTest, ImmediateDelivery) {
  FakeBroker broker(FakeBroker::Delivery::kImmediate);
  auto a = broker.NewTransport("a");
  Received got;
  a->SetHandler(got.Handler());
  ASSERT_TRUE(a->Connect().ok());
  ASSERT_TRUE(a->Subscribe("x/#").ok());
  ASSERT_TRUE(a->Publish("x/y", B("now")).ok());
  ASSERT_EQ(got.messages.size(), 1u);
  EXPECT_EQ(got.messages[0].first, "x/y");
  EXPECT_EQ(broker.queued(), 0u);
}

TEST(FakeBrokerTest, OverlappingFiltersDeliverOnce) {
  FakeBroker broker;
  auto a = broker.NewTransport("a");
  Received got;
  a->SetHandler(got.Handler());
  ASSERT_TRUE(a->Connect().ok());
  ASSERT_TRUE(a->Subscribe("x/#").ok());
  ASSERT_TRUE(a->Subscribe("x/+").ok());
  ASSERT_TRUE(a->Publish("x/y", B("m")).ok());
  broker.Pump();
  EXPECT_EQ(got.messages.size(), 1u);
}

TEST(FakeBrokerTest, NothingIsRetained) {
  FakeBroker broker;
  auto a = broker.NewTransport("a");
  Received got;
  a->SetHandler(got.Handler());
  ASSERT_TRUE(a->Connect().ok());
  ASSERT_TRUE(a->Publish("x", B("early")).ok());
  broker.Pump();
  ASSERT_TRUE(a->Subscribe("x").ok());
  broker.Pump();
  EXPECT_TRUE(got.messages.empty());
  ASSERT_TRUE(a->Unsubscribe("x").ok());
  ASSERT_TRUE(a->Publish("x", B("late")).ok());
  broker.Pump();
  EXPECT_TRUE(got.messages.empty());
}

TEST(FakeBrokerTest, DropNext) {
  FakeBroker broker;
  auto a = broker.NewTransport("a");
  Received got;
  a->SetHandler(got.Handler());
  ASSERT_TRUE(a->Connect().ok());
  ASSERT_TRUE(a->Subscribe("x").ok());
  broker.DropNext(2);
  for (const char* p : {"1", "2", "3"}) ASSERT_TRUE(a->Publish("x", B(p)).ok());
  broker.Pump();
  ASSERT_EQ(got.messages.size(), 1u);
  EXPECT_EQ(got.messages[0].second, "3");
  EXPECT_EQ(broker.published().size(), 3u);  // recorded, though dropped
}

TEST(FakeBrokerTest, AclRefusesSubscription) {
  FakeBroker broker;
  broker.SetAcl([](const std::string& name, const std::string& filter) {
    return filter.rfind("kgr/" + name + "/", 0) == 0;
  });
  auto a = broker.NewTransport("n11111111");
  ASSERT_TRUE(a->Connect().ok());
  EXPECT_TRUE(a->Subscribe("kgr/n11111111/x").ok());
  EXPECT_EQ(a->Subscribe("kgr/#").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(a->Subscribe("kgr/n22222222/x").code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(a->subscriptions(), std::vector<std::string>{"kgr/n11111111/x"});
}

TEST(FakeTransportTest, ErrorsAndKnobs) {
  FakeBroker broker;
  auto a = broker.NewTransport("a");
  EXPECT_EQ(a->Publish("x", B("m")).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->Subscribe("x").code(), StatusCode::kFailedPrecondition);
  a->FailNextConnect(UnavailableError("down"));
  EXPECT_EQ(a->Connect().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(a->Connect().ok());
  EXPECT_EQ(a->Publish("x/+", B("m")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a->Publish("", B("m")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a->Subscribe("x/#/y").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a->Subscribe("x/a+").code(), StatusCode::kInvalidArgument);
  a->FailNextPublish(ResourceExhaustedError("full"));
  EXPECT_EQ(a->Publish("x", B("m")).code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(a->Publish("x", B("m")).ok());
  ASSERT_TRUE(a->Disconnect().ok());
  EXPECT_FALSE(a->connected());
}

TEST(FakeTransportTest, SimulatedDisconnectHoldsAndBuffers) {
  FakeBroker broker;
  auto ks = broker.NewTransport("ks");
  auto node = broker.NewTransport("node");
  Received ks_got, node_got;
  ks->SetHandler(ks_got.Handler());
  node->SetHandler(node_got.Handler());
  ASSERT_TRUE(ks->Connect().ok());
  ASSERT_TRUE(node->Connect().ok());
  ASSERT_TRUE(ks->Subscribe("to/ks").ok());
  ASSERT_TRUE(node->Subscribe("to/node").ok());

  node->SimulateDisconnect();
  EXPECT_FALSE(node->connected());
  EXPECT_EQ(node->Subscribe("to/other").code(), StatusCode::kUnavailable);
  ASSERT_TRUE(ks->Publish("to/node", B("held")).ok());
  ASSERT_TRUE(node->Publish("to/ks", B("buffered")).ok());
  broker.Pump();
  EXPECT_TRUE(node_got.messages.empty());
  EXPECT_TRUE(ks_got.messages.empty());
  EXPECT_EQ(broker.published().size(), 1u);  // the buffered one not yet sent

  node->SimulateReconnect();
  EXPECT_TRUE(node->connected());
  broker.Pump();
  ASSERT_EQ(node_got.messages.size(), 1u);
  EXPECT_EQ(node_got.messages[0].second, "held");
  ASSERT_EQ(ks_got.messages.size(), 1u);
  EXPECT_EQ(ks_got.messages[0].second, "buffered");
}

TEST(FakeTransportTest, DestroyInAnyOrder) {
  auto broker = std::make_unique<FakeBroker>();
  auto a = broker->NewTransport("a");
  auto b = broker->NewTransport("b");
  ASSERT_TRUE(a->Connect().ok());
  ASSERT_TRUE(a->Subscribe("x").ok());
  ASSERT_TRUE(b->Connect().ok());
  ASSERT_TRUE(b->Publish("x", B("m")).ok());
  a.reset();       // a queued message for a destroyed transport
  broker->Pump();  // is dropped without touching it
  broker.reset();
  EXPECT_TRUE(b->Publish("x", B("m")).ok());  // broker state outlives it
}

}  // namespace
}  // namespace kgr::testing
