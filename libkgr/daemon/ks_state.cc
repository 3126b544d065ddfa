#include "daemon/ks_state.h"

#include <cstdio>

#include "daemon/wiring.h"
#include "kgr/cluster.h"
#include "kgr/cluster_membership.h"
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
  st.state = FileKsState(*st.nodes, *st.gen_keys);
  KGR_ASSIGN_OR_RETURN(
      st.groups,
      GroupDescStore::Open(*DefaultFileSystem(), o.state_dir + "/groups",
                           own.nk, own.identity.n_id, so));
  return st;
}

namespace {

// The member's domain key; with none, a new one (domain id = this KS's
// N_ID) if etcd holds no state at the prefix yet.
StatusOr<std::unique_ptr<EtcdKsState>> OpenEtcdState(const KsOptions& o,
                                                     const EtcdStateOptions& so,
                                                     const OwnData& own) {
  FileSystem& fs = *DefaultFileSystem();
  const std::string path = DomainKeyPath(o.daemon.state_dir);
  auto key = LoadDomainKey(fs, path, own.nk);
  if (key.ok()) return EtcdKsState::Open(so, *key);
  if (key.status().code() != StatusCode::kNotFound) return key.status();
  KGR_ASSIGN_OR_RETURN(DomainKey fresh, NewDomainKey(own.identity.n_id));
  // Kept before etcd names it, so that a crash cannot lose the key of a
  // state etcd holds.
  KGR_RETURN_IF_ERROR(SaveDomainKey(fs, path, fresh, own.nk));
  auto state = EtcdKsState::Open(so, fresh);
  if (!state.ok()) {
    (void)fs.Remove(path);
    if (state.status().code() == StatusCode::kFailedPrecondition) {
      return FailedPreconditionError(
          "etcd state " + so.prefix +
          " exists and this member holds no domain key for it: join the "
          "cluster through a member (kgr-ks cluster join)");
    }
  }
  return state;
}

}  // namespace

StatusOr<EtcdStateOptions> EtcdStateOptionsFor(const KsOptions& o) {
  KGR_ASSIGN_OR_RETURN(EtcdStateUrl url, ParseEtcdStateUrl(o.state_url));
  EtcdStateOptions so;
  so.etcd.endpoints = url.endpoints;
  so.etcd.tls = {o.etcd_ca_file, o.etcd_cert_file, o.etcd_key_file};
  so.prefix = url.prefix;
  return so;
}

StatusOr<std::shared_ptr<MemberAccess>> LoadMemberAccess(const KsOptions& o,
                                                         const OwnData& own,
                                                         bool create) {
  KGR_ASSIGN_OR_RETURN(EtcdStateOptions so, EtcdStateOptionsFor(o));
  auto m = std::make_shared<MemberAccess>();
  m->etcd = so.etcd;
  m->prefix = so.prefix;
  m->lane = o.key_server.counter_lane;
  m->name = "ks-" + std::to_string(m->lane);
  KGR_ASSIGN_OR_RETURN(
      m->key, LoadMemberKey(*DefaultFileSystem(),
                            MemberKeyPath(o.daemon.state_dir), own.nk, create));
  return m;
}

StatusOr<KsStores> OpenKsState(const KsOptions& o, const OwnData& own) {
  if (o.state_url.empty()) return OpenKsStores(o.daemon, own);
  KGR_ASSIGN_OR_RETURN(EtcdStateOptions so, EtcdStateOptionsFor(o));
  KsStores st;
  FileSystem& fs = *DefaultFileSystem();
  if (fs.Exists(MemberKeyPath(o.daemon.state_dir))) {
    // A member of a cluster: its keys come from etcd (wrapped to its member
    // key); the newest is kept in domain_key too.
    KGR_ASSIGN_OR_RETURN(st.member, LoadMemberAccess(o, own, false));
    DomainKeySource keys =
        [member = st.member, path = DomainKeyPath(o.daemon.state_dir),
         nk = std::make_shared<SymmetricKeys>(
             own.nk.Clone())]() -> StatusOr<std::vector<DomainKey>> {
      KGR_ASSIGN_OR_RETURN(std::vector<DomainKey> keys,
                           MemberDomainKeys(*member));
      KGR_RETURN_IF_ERROR(
          SaveDomainKey(*DefaultFileSystem(), path, keys.front(), *nk));
      return keys;
    };
    KGR_ASSIGN_OR_RETURN(st.state, EtcdKsState::Open(so, std::move(keys)));
    return st;
  }
  KGR_ASSIGN_OR_RETURN(st.state, OpenEtcdState(o, so, own));
  return st;
}

nlohmann::json KsStatusJson(const KeyServer* ks, const NodeDescTable& nodes,
                            const GenKeysTable& gen_keys, uint32_t n_id,
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
