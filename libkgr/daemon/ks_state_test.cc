// KsStatusJson and OpenKsStores on fakes.
#include "daemon/ks_state.h"

#include <gtest/gtest.h>

#include "kgr/topic.h"
#include "testing/fake_clock.h"
#include "testing/fake_filesystem.h"
#include "testing/fake_tpm.h"
#include "testing/fake_transport.h"

namespace kgr {
namespace {

TEST(KsStateTest, StatusJsonShowsNodesAndCounters) {
  testing::FakeTpm tpm;
  testing::FakeFileSystem fs;
  testing::FakeClock clock;
  testing::FakeBroker broker;
  auto own = InitKeyServer(tpm, "127.0.0.1:8883", "kgr");
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  const uint32_t ks_id = own->identity.n_id;
  auto nodes = NodeDescStore::Open(fs, "/ks/node_desc", own->nk, ks_id);
  auto gen_keys = GenKeysStore::Open(fs, "/ks/gen_keys", own->nk, ks_id);
  ASSERT_TRUE(nodes.ok() && gen_keys.ok());
  auto transport = broker.NewTransport("ks");
  ASSERT_TRUE(transport->Connect().ok());
  KeyServer ks(std::move(*own), *tpm.KedkPublic(), *transport, **nodes,
               **gen_keys, nullptr, clock, KeyServerOptions());
  ASSERT_TRUE(ks.Start().ok());
  AcAuthorizeAns first, second;
  ASSERT_TRUE(ks.AuthorizeNode(AcAuthorizeReq{{}}, &first).ok());
  ASSERT_TRUE(ks.AuthorizeNode(AcAuthorizeReq{{first.n_id}}, &second).ok());

  TpmCounters counters;
  counters.nv_writes = 3;
  counters.tpm_commands = 11;
  nlohmann::json j = KsStatusJson(&ks, **nodes, **gen_keys, ks_id, counters);
  EXPECT_EQ(j["ks_n_id"], FormatNodeId(ks_id));
  ASSERT_EQ(j["nodes"].size(), 2u);
  for (const auto& n : j["nodes"]) {
    EXPECT_EQ(n["state"], "authorized");
    if (n["n_id"] == FormatNodeId(second.n_id)) {
      EXPECT_EQ(n["peers"], nlohmann::json({FormatNodeId(first.n_id)}));
    } else {
      EXPECT_EQ(n["n_id"], FormatNodeId(first.n_id));
    }
  }
  EXPECT_EQ(j["pending_keys"], nlohmann::json::array());
  EXPECT_EQ(j["corrupt_records"], 0);
  EXPECT_EQ(j["nv_writes"], 3);
  EXPECT_EQ(j["tpm_commands"], 11);
  EXPECT_EQ(j["since_start"]["authorizations"], 2);

  // Without a running KS (kgr-ks status reading the files): no counters
  // since start.
  nlohmann::json offline =
      KsStatusJson(nullptr, **nodes, **gen_keys, ks_id, counters);
  EXPECT_FALSE(offline.contains("since_start"));
  EXPECT_EQ(offline["nodes"], j["nodes"]);
}

}  // namespace
}  // namespace kgr
