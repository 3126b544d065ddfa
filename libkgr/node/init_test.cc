// Init of the KS (4.2) and of a node (4.4): the first start creates the own
// data, a restart loads it unchanged without an NV write, another role or
// identity in the TPM is refused, and a failed first start leaves nothing
// that a retry would take for a complete init.
#include <gtest/gtest.h>

#include <memory>

#include "kgr/key_server.h"
#include "kgr/node_client.h"
#include "testing/fake_tpm.h"

namespace kgr {
namespace {

using testing::FakeTpm;

Credentials NodeCredentials(uint32_t n_id) {
  Credentials c;
  c.n_id = n_id;
  c.ntag = SecretBytes(kNtagSize);
  c.ntag.data()[0] = 7;
  c.broker_address = "127.0.0.1:8883";
  c.topic_prefix = "kgr";
  c.ks_n_id = 0x0badcafe;
  return c;
}

void ExpectSameOwnData(const OwnData& a, const OwnData& b) {
  EXPECT_EQ(a.identity.role, b.identity.role);
  EXPECT_EQ(a.identity.n_id, b.identity.n_id);
  EXPECT_EQ(a.identity.broker_address, b.identity.broker_address);
  EXPECT_EQ(a.identity.topic_prefix, b.identity.topic_prefix);
  EXPECT_EQ(a.identity.own_topic, b.identity.own_topic);
  EXPECT_EQ(a.identity.ks_n_id, b.identity.ks_n_id);
  EXPECT_TRUE(a.nk.Equals(b.nk));
  EXPECT_TRUE(a.ntag.Equals(b.ntag));
}

TEST(Init, KeyServerFirstStartCreatesAndRestartLoadsWithoutNvWrites) {
  auto state = std::make_shared<FakeTpm::State>();
  FakeTpm tpm(state);
  auto first = InitKeyServer(tpm, "broker:8883", "kgr");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->identity.role, Role::kKeyServer);
  EXPECT_NE(first->identity.n_id, 0u);
  EXPECT_EQ(first->identity.broker_address, "broker:8883");
  EXPECT_TRUE(first->nk.valid());
  EXPECT_TRUE(first->ntag.empty());
  EXPECT_FALSE(state->kedk_public.empty()) << "the KS's TPM holds a KEDK";
  const uint64_t writes = state->counters.nv_writes;
  FakeTpm restarted(state);
  auto again = InitKeyServer(restarted, "other:1", "kgr");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectSameOwnData(*first, *again);
  EXPECT_EQ(state->counters.nv_writes, writes);
}

TEST(Init, NodeFirstStartCreatesAndRestartLoadsWithoutNvWrites) {
  auto state = std::make_shared<FakeTpm::State>();
  FakeTpm tpm(state);
  const Credentials c = NodeCredentials(42);
  auto first = InitNode(tpm, c);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->identity.role, Role::kNode);
  EXPECT_EQ(first->identity.n_id, 42u);
  EXPECT_EQ(first->identity.ks_n_id, c.ks_n_id);
  EXPECT_TRUE(first->ntag.Equals(c.ntag));
  EXPECT_TRUE(first->nk.valid());
  EXPECT_TRUE(state->kedk_public.empty()) << "a node's TPM holds no KEDK";
  const uint64_t writes = state->counters.nv_writes;
  FakeTpm restarted(state);
  auto again = InitNode(restarted, c);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectSameOwnData(*first, *again);
  EXPECT_EQ(state->counters.nv_writes, writes);
}

TEST(Init, AnotherRoleOrIdentityInTheTpmIsRefused) {
  FakeTpm node_tpm;
  ASSERT_TRUE(InitNode(node_tpm, NodeCredentials(42)).ok());
  auto ks = InitKeyServer(node_tpm, "b:1", "kgr");
  EXPECT_EQ(ks.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ks.status().message(), "this TPM holds an N node's identity");
  auto other = InitNode(node_tpm, NodeCredentials(43));
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(other.status().message(),
            "this TPM already holds the identity of " + FormatNodeId(42));

  FakeTpm ks_tpm;
  auto own = InitKeyServer(ks_tpm, "b:1", "kgr");
  ASSERT_TRUE(own.ok());
  auto node = InitNode(ks_tpm, NodeCredentials(own->identity.n_id));
  EXPECT_EQ(node.status().code(), StatusCode::kFailedPrecondition);
}

TEST(Init, BadCredentialsAreRefusedBeforeTheTpmIsTouched) {
  FakeTpm tpm;
  Credentials c = NodeCredentials(42);
  c.ntag = SecretBytes(3);
  EXPECT_EQ(InitNode(tpm, c).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(InitNode(tpm, NodeCredentials(0)).status().code(),
            StatusCode::kInvalidArgument);
  c = NodeCredentials(42);
  c.topic_prefix = "bad//prefix+";
  EXPECT_FALSE(InitNode(tpm, c).ok());
  EXPECT_FALSE(InitKeyServer(tpm, "b:1", "bad//prefix+").ok());
  EXPECT_EQ(tpm.counters().nv_writes, 0u);
}

// Each step of a first start failing once: the error is returned, and the
// retry makes a complete init (the identity, written last, marks one).
TEST(Init, AFailedFirstStartLeavesNothingARetryWouldTakeForAnInit) {
  for (int step = 0; step < 5; ++step) {
    for (bool ks : {false, true}) {
      SCOPED_TRACE(std::to_string(step) + (ks ? " ks" : " node"));
      auto state = std::make_shared<FakeTpm::State>();
      FakeTpm tpm(state);
      const Status fault = UnavailableError("injected");
      switch (step) {
        case 0:
          tpm.FailNextEnsure(fault);
          break;
        case 1:
          tpm.FailNextNvRead(fault);
          break;
        case 2:
          tpm.FailNextGetRandom(fault);
          break;
        case 3:
          tpm.FailNextNvWrite(fault);
          break;  // NK
        case 4:
          tpm.FailAllNvWrites(fault);
          break;  // every slot
      }
      auto init = [&] {
        return ks ? InitKeyServer(tpm, "b:1", "kgr")
                  : InitNode(tpm, NodeCredentials(42));
      };
      auto failed = init();
      ASSERT_FALSE(failed.ok());
      EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
      EXPECT_EQ(LoadOwnData(tpm).status().code(), StatusCode::kNotFound);
      tpm.FailAllNvWrites(std::nullopt);
      auto retried = init();
      ASSERT_TRUE(retried.ok()) << retried.status().ToString();
      auto loaded = LoadOwnData(tpm);
      ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
      ExpectSameOwnData(*retried, *loaded);
    }
  }
}

}  // namespace
}  // namespace kgr
