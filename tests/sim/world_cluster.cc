// The other KS instances of a cluster (kgr-sim --ks-instances K > 1,
// docs/simulation.md): started, stopped, stalled, ticked and fed as
// kgr-ks run does for each instance.
#include "checker.h"
#include "kgr/counter_file.h"
#include "process_death.h"
#include "world.h"

namespace kgr::sim {

Status World::StartPeer(int i) {
  SimKsPeer& p = *peers_[i];
  p.tpm = std::make_unique<testing::FakeTpm>(ks_.tpm_state);
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*p.tpm));
  KGR_ASSIGN_OR_RETURN(
      uint64_t floor, LoadCounterFloor(p.fs, std::string(kKsDir) + "/counter"));
  p.server = std::make_unique<KeyServer>(
      std::move(own), ks_.kedk, *p.transport, *shared_nodes_, *shared_gen_keys_,
      nullptr, p.clock, KsOptionsFor(p.lane, floor));
  p.inbox.clear();
  SimKsPeer* raw = &p;
  p.transport->SetHandler([raw](const std::string& t, Bytes b) {
    raw->inbox.push_back({t, std::move(b)});
  });
  KGR_RETURN_IF_ERROR(p.server->Start());
  p.up = true;
  p.stalled = false;
  p.saved_counter = 0;
  net_.Revive(p.name);
  Note(p.name + " started");
  return OkStatus();
}

void World::StopPeer(int i, Stop how) {
  SimKsPeer& p = *peers_[i];
  if (!p.up) return;
  Note(p.name + " " + NamesOf(how).note);
  Count(std::string("fault.peer_") + NamesOf(how).counter);
  net_.Kill(p.name);
  if (how == Stop::kClean && !p.stalled) {
    (void)p.server->FlushCounters();
    (void)SaveCounter(p.fs, std::string(kKsDir) + "/counter",
                      p.server->last_counter());
  }
  DieOn(p.fs, how);
  p.server.reset();
  p.inbox.clear();
  AfterDeath(p.fs, how, rng_);
  p.up = false;
  p.stalled = false;
}

void World::StallPeer(int i, bool stalled) {
  SimKsPeer& p = *peers_[i];
  if (!p.up || p.stalled == stalled) return;
  p.stalled = stalled;
  if (stalled) Count("fault.peer_stall");
  Note(p.name + (stalled ? " stalls (its connection stays up)"
                         : " comes back from a stall"));
}

void World::TickPeers(uint64_t now) {
  for (auto& p : peers_) {
    if (!p->up || p->stalled || now - p->last_tick_ms < 1000) continue;
    p->last_tick_ms = now;
    p->server->Tick();
    if (p->server->last_counter() != p->saved_counter &&
        SaveCounter(p->fs, std::string(kKsDir) + "/counter",
                    p->server->last_counter())
            .ok()) {
      p->saved_counter = p->server->last_counter();
    }
  }
}

void World::HandlePeerInboxes() {
  for (auto& p : peers_) {
    if (!p->up || p->stalled || p->inbox.empty()) continue;
    std::vector<KeyServer::Message> batch = std::move(p->inbox);
    p->inbox.clear();
    Count("cluster.batches_at_other_instances");
    p->server->HandleMessages(batch);
  }
}

}  // namespace kgr::sim
