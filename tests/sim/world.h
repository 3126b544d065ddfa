// The world of one simulation run: a KS, nodes and the AC's requests, each
// node and the KS a "process" over its own FakeTpm (NV survives restarts),
// FakeFileSystem (unsynced writes lost at a power loss) and wall clock
// (which can jump), all on one simulated time and one SimNet. The library
// objects are the real ones: KeyServer, NodeClient, the typed stores, the
// codecs; the daemons' loops around them (ticks, counter files, the node's
// registration retries) are modelled here as kgr-ks/kgr-node run them.
// Single-threaded; everything random comes from the run's seed.
#ifndef KGR_TESTS_SIM_WORLD_H_
#define KGR_TESTS_SIM_WORLD_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kgr/key_server.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "net.h"
#include "rng.h"
#include "testing/fake_clock.h"
#include "testing/fake_filesystem.h"
#include "testing/fake_tpm.h"
#include "trace.h"

namespace kgr::sim {

class Checker;

// A pair of nodes as a map key, in either order.
inline std::pair<uint32_t, uint32_t> PairKey(uint32_t a, uint32_t b) {
  return {std::min(a, b), std::max(a, b)};
}

// A machine's wall clock: the shared simulated time plus its own offset
// (a clock jump moves it); monotonic time is the shared one.
class SkewClock : public Clock {
 public:
  explicit SkewClock(testing::FakeClock& base) : base_(base) {}
  uint64_t NowUnixMicros() override { return base_.NowUnixMicros() + skew_; }
  uint64_t NowMonotonicMillis() override { return base_.NowMonotonicMillis(); }
  void Jump(int64_t us) { skew_ += static_cast<uint64_t>(us); }

 private:
  testing::FakeClock& base_;
  uint64_t skew_ = 0;  // two's complement: may be "negative"
};

struct WorldOptions {
  uint64_t tick_ms = 100;  // the daemons' loop tick
  // The node daemon's registration: one attempt with this deadline, then,
  // after a failure, again after a back-off doubling up to the cap.
  uint64_t reg_backoff_cap_ms = 60'000;
  KeyServerOptions ks;
  NodeClientOptions node;
  // KS instances (docs/cluster.md): 1 is the single KS. With more, the
  // instances share one simulated store (etcd's stand-in: it survives
  // every instance's death), each has its own lane and broker session,
  // and the broker spreads TOPIC0/TOPIC1 over them (shared subscription).
  int ks_instances = 1;
  // Test-only bug (kgr-sim --bug ks-keeps-removed, never in libkgr): the
  // AC's group removals do not reach the KS, which keeps the member in
  // the group and its key tree, while the AC (and the checker's oracle)
  // take the removal as done. The forward-secrecy invariant must catch it.
  bool bug_ks_keeps_removed = false;
};

// A group as the AC defined it (kgr-ac group): its members by N_ID.
struct SimGroup {
  uint32_t id = 0;
  std::string name;
  GroupMode mode = GroupMode::kGroupKey;
  std::set<uint32_t> members;
  bool deleted = false;
};

enum class Stop { kClean, kKill, kPowerLoss };

// What a machine keeps across restarts of its process (TPM NV, files,
// clock, its broker session) and the state of the process.
struct SimMachine {
  explicit SimMachine(testing::FakeClock& base) : clock(base) {}
  std::shared_ptr<testing::FakeTpm::State> tpm_state =
      std::make_shared<testing::FakeTpm::State>();
  std::unique_ptr<testing::FakeTpm> tpm;  // of the running process
  testing::FakeFileSystem fs;
  SkewClock clock;
  std::unique_ptr<Transport> transport;
  bool up = false;
  uint64_t saved_counter = 0;  // last value written to the counter file
};

struct SimNode : SimMachine {
  using SimMachine::SimMachine;
  int index = 0;
  uint32_t n_id = 0;
  std::string name;  // its broker identity
  SecretBytes ntag;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<GroupStore> grp;  // grp_keys
  std::unique_ptr<NodeClient> client;
  bool revoked = false;
  uint64_t incarnation = 0;  // callbacks of a dead process are ignored
  // The daemon's registration loop.
  uint64_t reg_started = 0;  // incarnation that called KeepRegistering
  // Peer files the operator gave it (loaded at each start).
  std::set<uint32_t> peer_file;
};

struct SimKs : SimMachine {
  using SimMachine::SimMachine;
  uint32_t n_id = 0;
  Bytes kedk;
  std::unique_ptr<NodeDescStore> nodes;
  std::unique_ptr<GenKeysStore> gen_keys;
  std::unique_ptr<GroupDescStore> groups;
  std::unique_ptr<KeyServer> server;
  std::vector<KeyServer::Message> inbox;  // delivered this instant
};

// Another instance of a clustered KS (lane >= 1): the KS's identity
// (the primary's TPM state), its own process, counter file and broker
// session, the shared stores. A stalled one (a process that hangs, its
// connection up) gets frames from the broker and handles them when it
// comes back.
struct SimKsPeer : SimMachine {
  using SimMachine::SimMachine;
  uint8_t lane = 1;
  std::string name;  // its broker session "ks-<lane>"
  std::unique_ptr<KeyServer> server;
  std::vector<KeyServer::Message> inbox;
  bool stalled = false;
  uint64_t last_tick_ms = 0;
};

class World {
 public:
  World(uint64_t seed, WorldOptions options, Trace& trace, Checker& checker);
  ~World();
  Status Init();  // KS init and start

  // Simulated milliseconds since the run began.
  uint64_t now_ms() const;
  void Note(std::string what) { trace_.Add(now_ms(), std::move(what)); }
  void Count(const std::string& what) { ++coverage_[what]; }
  const std::map<std::string, uint64_t>& coverage() const { return coverage_; }
  Rng& rng() { return rng_; }
  SimNet& net() { return net_; }
  SimKs& ks() { return ks_; }
  // The KS's node_desc: the primary's, or the shared one of a cluster.
  NodeDescStore* node_store() {
    return shared_nodes_ ? shared_nodes_.get() : ks_.nodes.get();
  }
  std::vector<std::unique_ptr<SimKsPeer>>& ks_peers() { return peers_; }
  std::vector<std::unique_ptr<SimNode>>& nodes() { return nodes_; }
  SimNode* ByNid(uint32_t n_id);
  SimNode* ByName(const std::string& name);
  const WorldOptions& options() const { return options_; }

  // ---- the AC (direct calls on the KS; it must be up) ----
  // A new node allowed to pair with `peers` (indexes): authorized, its
  // TPM initialized from the credentials, its daemon started.
  StatusOr<int> Authorize(const std::vector<int>& peers);
  Status AllowPair(int a, int b);
  Status WithdrawPair(int a, int b);
  Status Revoke(int a);
  Status KsAsksRotation(int a);
  bool Forbidden(uint32_t a, uint32_t b) const;

  // ---- groups (world_groups.cc): the AC's kgr-ac group, direct calls ----
  // A new group of `members` (node indexes): its index in groups().
  StatusOr<int> CreateGroup(const std::vector<int>& members, GroupMode mode,
                            uint32_t lifetime_s);
  Status ChangeGroup(int g, bool add, const std::vector<int>& nodes);
  Status DeleteGroup(int g);
  std::vector<SimGroup>& groups() { return groups_; }
  // A group as the KS lists it to the AC (kgr-ac group list; nullopt: no
  // such group, or the KS is down), and its key version (0: none).
  std::optional<AcGroupListAns::Entry> KsGroup(uint32_t group_id);
  uint32_t GroupEpoch(uint32_t group_id);
  // A node publishes a group message (a unique payload "g#<n>").
  void SendGroup(int a, uint32_t group_id, const std::string& payload = "");

  // ---- node operations (asynchronous; outcomes are counted) ----
  void RequestKey(int a, int b, bool renewal);
  void Send(int a, int b);
  void Rotate(int a);

  // ---- processes ----
  void StopKs(Stop how);
  Status StartKs();
  // The cluster's other instances (index into ks_peers()).
  void StopPeer(int i, Stop how);
  Status StartPeer(int i);
  void StallPeer(int i, bool stalled);
  void StopNode(int i, Stop how);
  Status StartNode(int i);
  // Runs `fn` at simulated time `at_ms` (a fault's end).
  void At(uint64_t at_ms, std::string what, std::function<void()> fn);
  // Ends every fault now: runs the scheduled ends, every process up, every
  // link and the broker up, no more message faults.
  void Heal();

  // Advances simulated time by `ms`: deliveries, daemon ticks, fault ends.
  void RunFor(uint64_t ms);

  // The frame being delivered to a node (for the checker's data hook).
  const Bytes* current_frame() const { return current_frame_; }

 private:
  void OnNodeMessage(SimNode& n, const std::string& topic, Bytes payload);
  void TickAll();
  void TickPeers(uint64_t now);
  void HandlePeerInboxes();
  bool clustered() const { return options_.ks_instances > 1; }
  KeyServerOptions KsOptionsFor(uint8_t lane, uint64_t floor) const;
  void DriveRegistration(SimNode& n);
  void ReloadPeers(SimNode& n);
  std::string Outcome(const Status& st) const;

  WorldOptions options_;
  Trace& trace_;
  Checker& checker_;
  Rng rng_;
  testing::FakeClock clock_;
  uint64_t start_mono_ms_;
  SimNet net_;
  SimKs ks_;
  std::vector<std::unique_ptr<SimKsPeer>> peers_;
  testing::FakeFileSystem store_fs_;  // the shared store's (never crashes)
  std::unique_ptr<NodeDescStore> shared_nodes_;
  std::unique_ptr<GenKeysStore> shared_gen_keys_;
  std::unique_ptr<GroupDescStore> shared_groups_;
  std::vector<SimGroup> groups_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::set<std::pair<uint32_t, uint32_t>> withdrawn_;  // (low, high)
  std::multimap<uint64_t, std::pair<std::string, std::function<void()>>>
      scheduled_;
  uint64_t next_tick_ms_ = 0;
  uint64_t last_ks_tick_ms_ = 0;
  uint64_t data_seq_ = 0;
  const Bytes* current_frame_ = nullptr;
  std::map<std::string, uint64_t> coverage_;
};

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_WORLD_H_
