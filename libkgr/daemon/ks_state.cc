#include "daemon/ks_state.h"

#include <cstdio>

#include "daemon/wiring.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

const char* StateName(uint8_t s) {
  switch (s) {
    case 1:
      return "authorized";
    case 2:
      return "registered";
    case 3:
      return "revoked";
  }
  return "unknown";
}

}  // namespace

std::string AcCounterPath(const std::string& state_dir) {
  return state_dir + "/ac_counter";
}

StatusOr<KsStores> OpenKsStores(const DaemonOptions& o, const OwnData& own) {
  KsStores st;
  StoreOptions so = StoreOptionsFor(o);
  StoreOptions nodes_o = so;
  nodes_o.decoded_records = 0;  // the KeyServer caches its node entries
  KGR_ASSIGN_OR_RETURN(
      st.nodes,
      NodeDescStore::Open(*DefaultFileSystem(), o.state_dir + "/node_desc",
                          own.nk, own.identity.n_id, nodes_o));
  KGR_ASSIGN_OR_RETURN(
      st.gen_keys,
      GenKeysStore::Open(*DefaultFileSystem(), o.state_dir + "/gen_keys",
                         own.nk, own.identity.n_id, so));
  KGR_ASSIGN_OR_RETURN(
      st.groups, GroupDescStore::Open(*DefaultFileSystem(), o.state_dir + "/groups",
                                  own.nk, own.identity.n_id, so));
  return st;
}

nlohmann::json KsStatusJson(const KeyServer* ks, const NodeDescStore& nodes,
                            const GenKeysStore& gen_keys, uint32_t n_id,
                            const TpmCounters& tpm) {
  nlohmann::json j;
  j["ks_n_id"] = FormatNodeId(n_id);
  nlohmann::json list = nlohmann::json::array();
  nodes.ForEach([&](const NodeDesc& d) {
    nlohmann::json peers = nlohmann::json::array();
    for (uint32_t p : d.allowed_peers) peers.push_back(FormatNodeId(p));
    list.push_back({{"n_id", FormatNodeId(d.n_id)},
                    {"state", StateName(static_cast<uint8_t>(d.state))},
                    {"entry", d.entry_no},
                    {"peers", peers}});
  });
  j["nodes"] = list;
  nlohmann::json pending = nlohmann::json::array();
  gen_keys.ForEach([&](const GenKey& g) {
    if (g.tombstone()) return;  // a served request id, no key
    char id[17];
    std::snprintf(id, sizeof id, "%016llx",
                  static_cast<unsigned long long>(g.request_id));
    pending.push_back({{"request_id", id},
                       {"n_id1", FormatNodeId(g.n_id1)},
                       {"n_id2", FormatNodeId(g.n_id2)},
                       {"step", g.step},
                       {"renewal", g.renewal},
                       {"ctime_unix_ms", g.ctime_unix_ms}});
  });
  j["pending_keys"] = pending;
  j["corrupt_records"] =
      nodes.corrupt_records().size() + gen_keys.corrupt_records().size();
  j["nv_writes"] = tpm.nv_writes;
  j["tpm_commands"] = tpm.tpm_commands;
  if (ks != nullptr) {
    const KeyServerStats& s = ks->stats();
    j["since_start"] = {{"registrations", s.registrations},
                        {"keys_issued", s.keys_issued},
                        {"keys_confirmed", s.keys_confirmed},
                        {"keys_purged", s.keys_purged},
                        {"refused_requests", s.refused_requests},
                        {"certificates_issued", s.certificates_issued},
                        {"dropped_frames", s.dropped_frames},
                        {"authorizations", s.authorizations},
                        {"rate_limited", s.rate_limited}};
  }
  return j;
}

}  // namespace kgr
