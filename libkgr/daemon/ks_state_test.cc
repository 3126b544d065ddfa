// KsStatusJson on a KS of fakes (node/mini_ked_test.h).
#include "daemon/ks_state.h"

#include <gtest/gtest.h>

#include "kgr/topic.h"
#include "node/mini_ked_test.h"

namespace kgr {
namespace {

class KsStateTest : public testing::MiniKed {
 protected:
  nlohmann::json StatusOf(const KeyServer* ks, const TpmCounters& counters) {
    std::unique_ptr<KsState> files = FileKsState(*nodes_, *gen_keys_);
    return KsStatusJson(ks, files->nodes(), files->gen_keys(), ks_n_id_,
                        counters);
  }
};

TEST_F(KsStateTest, StatusJsonShowsNodesAndCounters) {
  AcAuthorizeAns first, second;
  ASSERT_TRUE(ks_->AuthorizeNode(AcAuthorizeReq{{}}, &first).ok());
  ASSERT_TRUE(ks_->AuthorizeNode(AcAuthorizeReq{{first.n_id}}, &second).ok());

  TpmCounters counters;
  counters.nv_writes = 3;
  counters.tpm_commands = 11;
  nlohmann::json j = StatusOf(ks_.get(), counters);
  EXPECT_EQ(j["ks_n_id"], FormatNodeId(ks_n_id_));
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
  nlohmann::json offline = StatusOf(nullptr, counters);
  EXPECT_FALSE(offline.contains("since_start"));
  EXPECT_EQ(offline["nodes"], j["nodes"]);
}

TEST_F(KsStateTest, PendingKeysAndRegisteredNodes) {
  Pair();  // two nodes registered, one key issued and confirmed
  nlohmann::json j = StatusOf(ks_.get(), {});
  for (const auto& n : j["nodes"]) EXPECT_EQ(n["state"], "registered");
  // Step 7 turned the key's record into a tombstone: nothing pending.
  EXPECT_EQ(j["pending_keys"].size(), 0u);
  EXPECT_EQ(j["since_start"]["keys_issued"], 1);
  EXPECT_EQ(j["since_start"]["registrations"], 2);
}

}  // namespace
}  // namespace kgr
