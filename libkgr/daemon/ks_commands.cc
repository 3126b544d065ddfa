// kgr-ks init, status and rotate (run: ks_service.cc).
#include <cstdio>
#include <iostream>

#include "daemon/ks_state.h"
#include "daemon/wiring.h"
#include "kgr/control.h"
#include "kgr/ks_daemon.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

void PrintStatus(const nlohmann::json& j, bool as_json) {
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "key server " << j["ks_n_id"].get<std::string>() << "\n";
  std::cout << "nodes: " << j["nodes"].size() << "\n";
  for (const auto& n : j["nodes"]) {
    std::cout << "  " << n["n_id"].get<std::string>() << "  "
              << n["state"].get<std::string>() << "  peers:";
    for (const auto& p : n["peers"]) std::cout << " " << p.get<std::string>();
    std::cout << "\n";
  }
  std::cout << "pending keys (gen_keys): " << j["pending_keys"].size() << "\n";
  for (const auto& g : j["pending_keys"]) {
    std::cout << "  " << g["n_id1"].get<std::string>() << " -> "
              << g["n_id2"].get<std::string>() << "  step "
              << g["step"].get<int>() << "\n";
  }
  std::cout << "corrupt records: " << j["corrupt_records"] << "\n";
  std::cout << "NV writes (this process): " << j["nv_writes"] << "\n";
  if (j.contains("since_start")) {
    std::cout << "since start: " << j["since_start"].dump() << "\n";
  }
}

}  // namespace

Status KsRotate(const KsOptions& o, uint32_t node_id) {
  const std::string node = FormatNodeId(node_id);
  KGR_ASSIGN_OR_RETURN(nlohmann::json r,
                       ControlCall(ControlSocketPath(o.daemon.state_dir),
                                   {{"cmd", "rotate"}, {"node", node}}, 5000));
  if (!r.value("ok", false)) return InternalError(r.value("error", "failed"));
  std::printf("asked node %s to rotate its NKSK\n", node.c_str());
  return OkStatus();
}

Status KsInit(const KsOptions& o) {
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(o.daemon.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(o.daemon));
  KGR_ASSIGN_OR_RETURN(OwnData own, InitKeyServer(*tpm, o.daemon.broker.address,
                                                  o.topic_prefix));
  std::printf("ks initialized: n_id=%s nv_writes=%llu\n",
              FormatNodeId(own.identity.n_id).c_str(),
              static_cast<unsigned long long>(tpm->counters().nv_writes));
  return OkStatus();
}

Status KsStatus(const KsOptions& o, bool as_json) {
  auto remote = ControlCall(ControlSocketPath(o.daemon.state_dir),
                            {{"cmd", "status"}}, 5000);
  if (remote.ok()) {
    PrintStatus(*remote, as_json);
    return OkStatus();
  }
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(o.daemon.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(o.daemon));
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*tpm));
  KGR_ASSIGN_OR_RETURN(KsStores st, OpenKsState(o, own));
  PrintStatus(KsStatusJson(nullptr, st.state->nodes(), st.state->gen_keys(),
                           own.identity.n_id, tpm->counters()),
              as_json);
  return OkStatus();
}

}  // namespace kgr
