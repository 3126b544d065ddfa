#include "world.h"

#include <algorithm>

#include "checker.h"
#include "kgr/counter_file.h"
#include "kgr/credentials.h"
#include "kgr/topic.h"
#include "process_death.h"

namespace kgr::sim {
namespace {

constexpr char kKsName[] = "ks";
constexpr char kNodeDir[] = "/var/lib/kgr/node";

StoreOptions SimStoreOptions() {
  StoreOptions o;
  o.verify_threads = 1;  // deterministic and cheap
  o.journal_preallocate_bytes = 0;
  return o;
}

}  // namespace

World::World(uint64_t seed, WorldOptions options, Trace& trace,
             Checker& checker)
    : options_(std::move(options)),
      trace_(trace),
      checker_(checker),
      rng_(seed),
      start_mono_ms_(clock_.NowMonotonicMillis()),
      net_(rng_, trace_, [this] { return now_ms(); }),
      ks_(clock_) {
  net_.SetObserver([this](const std::string& from, const std::string& topic,
                          const Bytes& payload) {
    checker_.OnPublish(from, topic, payload);
  });
}

World::~World() {
  for (auto& n : nodes_) {
    n->client.reset();
    n->ses.reset();
    n->grp.reset();
  }
  for (auto& p : peers_) p->server.reset();
  ks_.server.reset();
}

uint64_t World::now_ms() const {
  return const_cast<testing::FakeClock&>(clock_).NowMonotonicMillis() -
         start_mono_ms_;
}

SimNode* World::ByNid(uint32_t n_id) {
  for (auto& n : nodes_)
    if (n->n_id == n_id) return n.get();
  return nullptr;
}

SimNode* World::ByName(const std::string& name) {
  for (auto& n : nodes_)
    if (n->name == name) return n.get();
  return nullptr;
}

std::string World::Outcome(const Status& st) const {
  return st.ok() ? "ok" : std::string(StatusCodeName(st.code()));
}

void World::At(uint64_t at_ms, std::string what, std::function<void()> fn) {
  scheduled_.emplace(at_ms, std::make_pair(std::move(what), std::move(fn)));
}

// ---- the KS process ----

Status World::Init() {
  ks_.tpm = std::make_unique<testing::FakeTpm>(ks_.tpm_state);
  KGR_ASSIGN_OR_RETURN(OwnData own,
                       InitKeyServer(*ks_.tpm, "127.0.0.1:8883", "kgr"));
  ks_.n_id = own.identity.n_id;
  checker_.AddKeys(own.nk, "KS NK");
  KGR_ASSIGN_OR_RETURN(ks_.kedk, ks_.tpm->KedkPublic());
  ks_.transport = net_.NewTransport(kKsName);
  KGR_RETURN_IF_ERROR(ks_.transport->Connect());
  if (clustered()) {
    KGR_ASSIGN_OR_RETURN(
        shared_nodes_, NodeDescStore::Open(store_fs_, "/etcd/node_desc", own.nk,
                                           ks_.n_id, SimStoreOptions()));
    KGR_ASSIGN_OR_RETURN(shared_gen_keys_,
                         GenKeysStore::Open(store_fs_, "/etcd/gen_keys", own.nk,
                                            ks_.n_id, SimStoreOptions()));
    KGR_ASSIGN_OR_RETURN(shared_groups_,
                         GroupDescStore::Open(store_fs_, "/etcd/groups", own.nk,
                                              ks_.n_id, SimStoreOptions()));
    for (int i = 1; i < options_.ks_instances; ++i) {
      auto p = std::make_unique<SimKsPeer>(clock_);
      p->lane = static_cast<uint8_t>(i);
      p->name = "ks-" + std::to_string(i);
      p->transport = net_.NewTransport(p->name);
      KGR_RETURN_IF_ERROR(p->transport->Connect());
      peers_.push_back(std::move(p));
    }
    for (size_t i = 0; i < peers_.size(); ++i) {
      KGR_RETURN_IF_ERROR(StartPeer(static_cast<int>(i)));
    }
  }
  return StartKs();
}

KeyServerOptions World::KsOptionsFor(uint8_t lane, uint64_t floor) const {
  KeyServerOptions o = options_.ks;
  o.counter_floor = floor;
  o.groups = shared_groups_ ? shared_groups_.get() : ks_.groups.get();
  if (clustered()) {
    o.counter_lane = lane;
    o.share_group = "ks";
    o.node_cache_entries = 0;  // the instances share one store object
  }
  return o;
}

Status World::StartKs() {
  ks_.tpm = std::make_unique<testing::FakeTpm>(ks_.tpm_state);
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*ks_.tpm));
  const std::string dir = kKsDir;
  KGR_ASSIGN_OR_RETURN(uint64_t floor,
                       LoadCounterFloor(ks_.fs, dir + "/counter"));
  if (!clustered()) {
    KGR_ASSIGN_OR_RETURN(ks_.nodes,
                         NodeDescStore::Open(ks_.fs, dir + "/node_desc", own.nk,
                                             ks_.n_id, SimStoreOptions()));
    KGR_ASSIGN_OR_RETURN(ks_.gen_keys,
                         GenKeysStore::Open(ks_.fs, dir + "/gen_keys", own.nk,
                                            ks_.n_id, SimStoreOptions()));
    KGR_ASSIGN_OR_RETURN(ks_.groups,
                         GroupDescStore::Open(ks_.fs, dir + "/groups", own.nk,
                                              ks_.n_id, SimStoreOptions()));
  }
  NodeDescStore& nodes = clustered() ? *shared_nodes_ : *ks_.nodes;
  GenKeysStore& gen_keys = clustered() ? *shared_gen_keys_ : *ks_.gen_keys;
  ks_.server = std::make_unique<KeyServer>(
      std::move(own), ks_.kedk, *ks_.transport, nodes, gen_keys, nullptr,
      ks_.clock, KsOptionsFor(0, floor));
  ks_.inbox.clear();
  ks_.transport->SetHandler([this](const std::string& t, Bytes p) {
    ks_.inbox.push_back({t, std::move(p)});
  });
  KGR_RETURN_IF_ERROR(ks_.server->Start());
  ks_.up = true;
  ks_.saved_counter = 0;
  net_.Revive(kKsName);
  Note("KS started");
  return OkStatus();
}

void World::StopKs(Stop how) {
  if (!ks_.up) return;
  Note(std::string("KS ") + NamesOf(how).note);
  Count(std::string("fault.ks_") + NamesOf(how).counter);
  net_.Kill(kKsName);
  if (how == Stop::kClean) {
    (void)ks_.server->FlushCounters();
    (void)SaveCounter(ks_.fs, std::string(kKsDir) + "/counter",
                      ks_.server->last_counter());
  }
  DieOn(ks_.fs, how);
  ks_.server.reset();
  ks_.gen_keys.reset();  // null when clustered: the stores are shared
  ks_.groups.reset();
  ks_.nodes.reset();
  ks_.inbox.clear();
  AfterDeath(ks_.fs, how, rng_);
  ks_.up = false;
}

// ---- node processes ----

Status World::StartNode(int i) {
  SimNode& n = *nodes_[i];
  if (n.up) return OkStatus();
  n.tpm = std::make_unique<testing::FakeTpm>(n.tpm_state);
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*n.tpm));
  const std::string dir = kNodeDir;
  KGR_ASSIGN_OR_RETURN(uint64_t floor,
                       LoadCounterFloor(n.fs, dir + "/counter"));
  KGR_ASSIGN_OR_RETURN(
      n.ses, SesKeysStore::Open(n.fs, dir + "/ses_keys", own.nk, n.n_id,
                                SimStoreOptions()));
  KGR_ASSIGN_OR_RETURN(n.grp, GroupStore::Open(n.fs, dir + "/grp_keys", own.nk,
                                               n.n_id, SimStoreOptions()));
  NodeClientOptions o = options_.node;
  o.counter_floor = floor;
  o.register_max_retry_ms = options_.reg_backoff_cap_ms;
  n.client = std::make_unique<NodeClient>(std::move(own), *n.tpm, *n.transport,
                                          *n.ses, n.clock, o);
  SimNode* raw = &n;
  n.transport->SetHandler([this, raw](const std::string& t, Bytes p) {
    OnNodeMessage(*raw, t, std::move(p));
  });
  n.client->SetDataHandler([this, raw](uint32_t peer, const SecretBytes&) {
    checker_.OnData(*raw, peer, current_frame_);
    return SecretBytes(AsBytes(std::string("ack")));
  });
  n.client->SetGroupStore(n.grp.get());
  n.client->SetGroupMessageHandler([this, raw](const GroupMessage& m) {
    checker_.OnGroupData(*raw, m, current_frame_);
  });
  KGR_RETURN_IF_ERROR(n.client->Start());
  ++n.incarnation;
  n.up = true;
  n.saved_counter = 0;
  ReloadPeers(n);
  net_.Revive(n.name);
  Note("node " + n.name + " started" +
       (n.client->registered() ? "" : " (not registered)"));
  return OkStatus();
}

void World::StopNode(int i, Stop how) {
  SimNode& n = *nodes_[i];
  if (!n.up) return;
  Note("node " + n.name + " " + NamesOf(how).note);
  Count(std::string("fault.node_") + NamesOf(how).counter);
  net_.Kill(n.name);
  if (how == Stop::kClean) {
    (void)SaveCounter(n.fs, std::string(kNodeDir) + "/counter",
                      n.client->last_counter());
  }
  DieOn(n.fs, how);
  n.client.reset();
  n.ses.reset();
  n.grp.reset();
  AfterDeath(n.fs, how, rng_);
  n.up = false;
}

void World::ReloadPeers(SimNode& n) {
  if (!n.up || n.peer_file.empty()) return;
  std::vector<uint32_t> peers(n.peer_file.begin(), n.peer_file.end());
  Status st = n.client->LoadPeers(peers);
  if (!st.ok()) Note("node " + n.name + ": peers not loaded: " + st.ToString());
}

// The daemon's registration loop: n-node/main.cc calls KeepRegistering()
// at start, which keeps asking (capped back-off) until the node is
// registered.
void World::DriveRegistration(SimNode& n) {
  if (!n.up || n.client->registered() || n.reg_started == n.incarnation) {
    return;
  }
  n.reg_started = n.incarnation;
  Count("op.register");
  Note("node " + n.name + " registers");
  n.client->KeepRegistering();
}

void World::OnNodeMessage(SimNode& n, const std::string& topic, Bytes payload) {
  if (!n.up) return;
  current_frame_ = &payload;
  n.client->HandleMessage(topic, payload);
  current_frame_ = nullptr;
  checker_.AfterNodeDelivery(n);
}

// ---- the AC ----

StatusOr<int> World::Authorize(const std::vector<int>& peers) {
  if (!ks_.up) return UnavailableError("the KS is down");
  AcAuthorizeReq req;
  for (int p : peers) req.peers.push_back(nodes_[p]->n_id);
  AcAuthorizeAns ans;
  KGR_RETURN_IF_ERROR(ks_.server->AuthorizeNode(req, &ans));
  auto n = std::make_unique<SimNode>(clock_);
  n->index = static_cast<int>(nodes_.size());
  n->n_id = ans.n_id;
  n->name = NodeIdentity(ans.n_id);
  n->ntag = ans.ntag.Clone();
  checker_.AddSecret(n->ntag.span(), "NTAG of " + n->name);
  Credentials c;
  c.n_id = ans.n_id;
  c.ntag = std::move(ans.ntag);
  c.broker_address = "127.0.0.1:8883";
  c.ks_n_id = ans.ks_n_id;
  n->tpm = std::make_unique<testing::FakeTpm>(n->tpm_state);
  KGR_ASSIGN_OR_RETURN(OwnData own, InitNode(*n->tpm, c));
  checker_.AddKeys(own.nk, "NK of " + n->name);
  n->transport = net_.NewTransport(n->name);
  KGR_RETURN_IF_ERROR(n->transport->Connect());
  for (int p : peers) {
    n->peer_file.insert(nodes_[p]->n_id);
    nodes_[p]->peer_file.insert(n->n_id);
    ReloadPeers(*nodes_[p]);
  }
  nodes_.push_back(std::move(n));
  int i = static_cast<int>(nodes_.size()) - 1;
  Note("AC authorized " + nodes_[i]->name + " with " +
       std::to_string(peers.size()) + " peers");
  KGR_RETURN_IF_ERROR(StartNode(i));
  return i;
}

Status World::AllowPair(int a, int b) {
  if (!ks_.up) return UnavailableError("the KS is down");
  SimNode &x = *nodes_[a], &y = *nodes_[b];
  KGR_RETURN_IF_ERROR(ks_.server->SetPeers(AcPeersReq{x.n_id, 1, {y.n_id}}));
  x.peer_file.insert(y.n_id);
  y.peer_file.insert(x.n_id);
  ReloadPeers(x);
  ReloadPeers(y);
  Note("AC allowed " + x.name + " <-> " + y.name);
  return OkStatus();
}

Status World::WithdrawPair(int a, int b) {
  if (!ks_.up) return UnavailableError("the KS is down");
  SimNode &x = *nodes_[a], &y = *nodes_[b];
  KGR_RETURN_IF_ERROR(ks_.server->SetPeers(AcPeersReq{x.n_id, 0, {y.n_id}}));
  x.peer_file.erase(y.n_id);
  y.peer_file.erase(x.n_id);
  withdrawn_.insert(PairKey(x.n_id, y.n_id));
  checker_.OnForbidden(x.n_id, y.n_id);
  Note("AC withdrew " + x.name + " <-> " + y.name);
  return OkStatus();
}

Status World::Revoke(int a) {
  if (!ks_.up) return UnavailableError("the KS is down");
  SimNode& x = *nodes_[a];
  int notified = 0;
  std::vector<std::pair<SimGroup*, uint32_t>> in_groups;  // epoch before
  for (SimGroup& g : groups_) {
    if (!g.deleted && g.members.count(x.n_id))
      in_groups.push_back({&g, GroupEpoch(g.id)});
  }
  checker_.oracle().Defer();
  Status st = ks_.server->RevokeNode(x.n_id, &notified);
  for (auto [g, epoch] : in_groups) {  // the KS removed it from each
    if (!st.ok()) break;
    g->members.erase(x.n_id);
    checker_.OnGroupLeave(g->id, x.n_id, epoch);
  }
  checker_.oracle().Resume();
  KGR_RETURN_IF_ERROR(st);
  x.revoked = true;
  for (auto& n : nodes_) {
    if (n.get() == &x) continue;
    n->peer_file.erase(x.n_id);
    checker_.OnForbidden(x.n_id, n->n_id);
  }
  Note("AC revoked " + x.name + " (" + std::to_string(notified) +
       " peers told)");
  return OkStatus();
}

Status World::KsAsksRotation(int a) {
  if (!ks_.up) return UnavailableError("the KS is down");
  Note("KS asks " + nodes_[a]->name + " to rotate its NKSK");
  return ks_.server->RequestRotation(nodes_[a]->n_id);
}

bool World::Forbidden(uint32_t a, uint32_t b) const {
  if (withdrawn_.count(PairKey(a, b))) return true;
  for (const auto& n : nodes_) {
    if ((n->n_id == a || n->n_id == b) && n->revoked) return true;
  }
  return false;
}

// ---- node operations ----

void World::RequestKey(int a, int b, bool renewal) {
  SimNode &x = *nodes_[a], &y = *nodes_[b];
  if (!x.up) return;
  std::string op = renewal ? "op.renew" : "op.request_key";
  Count(op);
  Note(x.name + (renewal ? " renews with " : " requests a key with ") + y.name);
  SimNode* raw = &x;
  uint64_t inc = x.incarnation;
  std::string peer = y.name;
  x.client->RequestKey(y.n_id, renewal, [this, raw, inc, op, peer](Status st) {
    if (raw->incarnation != inc) return;
    Count(op + "." + Outcome(st));
    Note(raw->name + " key with " + peer + ": " +
         (st.ok() ? "ok" : st.ToString()));
  });
}

void World::Send(int a, int b) {
  SimNode &x = *nodes_[a], &y = *nodes_[b];
  if (!x.up) return;
  Count("op.send");
  std::string id = "data#" + std::to_string(++data_seq_);
  Note(x.name + " sends " + id + " to " + y.name);
  SimNode* raw = &x;
  uint64_t inc = x.incarnation;
  x.client->Send(y.n_id, SecretBytes(AsBytes(id)),
                 [this, raw, inc, id](StatusOr<SecretBytes> r) {
                   if (raw->incarnation != inc) return;
                   Count("op.send." + Outcome(r.status()));
                   Note(raw->name + " " + id + ": " +
                        (r.ok() ? "answered" : r.status().ToString()));
                 });
}

void World::Rotate(int a) {
  SimNode& x = *nodes_[a];
  if (!x.up) return;
  Count("op.rotate");
  Note(x.name + " rotates its NKSK");
  SimNode* raw = &x;
  uint64_t inc = x.incarnation;
  x.client->RotateNksk([this, raw, inc](Status st) {
    if (raw->incarnation != inc) return;
    Count("op.rotate." + Outcome(st));
    Note(raw->name + " rotation: " + (st.ok() ? "ok" : st.ToString()));
  });
}

// ---- time ----

void World::TickAll() {
  uint64_t now = now_ms();
  if (ks_.up && now - last_ks_tick_ms_ >= 1000) {  // kgr-ks: every second
    last_ks_tick_ms_ = now;
    ks_.server->Tick();
    if (ks_.server->last_counter() != ks_.saved_counter &&
        SaveCounter(ks_.fs, std::string(kKsDir) + "/counter",
                    ks_.server->last_counter())
            .ok()) {
      ks_.saved_counter = ks_.server->last_counter();
    }
  }
  TickPeers(now);
  for (auto& n : nodes_) {
    if (!n->up) continue;
    n->client->Tick();
    if (!n->up) continue;
    DriveRegistration(*n);
    if (now % 1000 < options_.tick_ms &&
        n->client->last_counter() != n->saved_counter &&
        SaveCounter(n->fs, std::string(kNodeDir) + "/counter",
                    n->client->last_counter())
            .ok()) {
      n->saved_counter = n->client->last_counter();
    }
  }
}

void World::RunFor(uint64_t ms) {
  const uint64_t end = now_ms() + ms;
  while (!checker_.failed()) {
    uint64_t now = now_ms();
    uint64_t next = std::min({end, next_tick_ms_, net_.NextDeliveryMs()});
    if (!scheduled_.empty()) next = std::min(next, scheduled_.begin()->first);
    if (next > now) clock_.AdvanceMillis(next - now);
    now = now_ms();
    while (!scheduled_.empty() && scheduled_.begin()->first <= now) {
      auto item = std::move(scheduled_.begin()->second);
      scheduled_.erase(scheduled_.begin());
      Note("fault ends: " + item.first);
      item.second();
    }
    net_.DeliverDue();
    if (ks_.up && !ks_.inbox.empty()) {
      std::vector<KeyServer::Message> batch = std::move(ks_.inbox);
      ks_.inbox.clear();
      ks_.server->HandleMessages(batch);
    }
    HandlePeerInboxes();
    if (now >= next_tick_ms_) {
      TickAll();
      next_tick_ms_ = now + options_.tick_ms;
    }
    if (now >= end) break;
  }
}

void World::Heal() {
  Note("heal: faults stop");
  while (!scheduled_.empty()) {
    auto item = std::move(scheduled_.begin()->second);
    scheduled_.erase(scheduled_.begin());
    Note("fault ends: " + item.first);
    item.second();
  }
  net_.faults = NetFaults{};
  if (!net_.broker_up()) net_.SetBrokerUp(true);
  if (!ks_.up) {
    Status st = StartKs();
    if (!st.ok()) checker_.Fail("processes_restart", "KS: " + st.ToString());
  }
  net_.SetLinkUp(kKsName, true);
  for (size_t i = 0; i < peers_.size(); ++i) {
    StallPeer(static_cast<int>(i), false);
    if (!peers_[i]->up) {
      Status st = StartPeer(static_cast<int>(i));
      if (!st.ok()) checker_.Fail("processes_restart", st.ToString());
    }
  }
  for (auto& n : nodes_) {
    net_.SetLinkUp(n->name, true);
    if (!n->up) {
      Status st = StartNode(n->index);
      if (!st.ok())
        checker_.Fail("processes_restart", n->name + ": " + st.ToString());
    }
  }
}

}  // namespace kgr::sim
