// The ceremony's etcd keys and values (cluster/membership_store.h).
#include "cluster/membership_store.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace kgr {
namespace {

using Json = nlohmann::json;

Bytes ClusterJsonBytes(const Json& j) {
  std::string s = j.dump();
  return Bytes(s.begin(), s.end());
}

StatusOr<Json> ParseClusterJson(const EtcdKeyValue& kv) {
  Json j = Json::parse(kv.value.begin(), kv.value.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return DataLossError("etcd " + kv.key + ": not a JSON object");
  }
  return j;
}

StatusOr<Bytes> ClusterHexField(const Json& j, const char* name) {
  Bytes out;
  if (!j.contains(name) || !j[name].is_string() ||
      !FromHex(j[name].get<std::string>(), &out)) {
    return DataLossError(std::string("cluster record: bad ") + name);
  }
  return out;
}

StatusOr<ClusterMember> DecodeMember(const EtcdKeyValue& kv) {
  KGR_ASSIGN_OR_RETURN(Json j, ParseClusterJson(kv));
  ClusterMember m;
  m.lane = static_cast<uint8_t>(j.value("lane", 0));
  m.name = j.value("name", "");
  KGR_ASSIGN_OR_RETURN(m.public_key, ClusterHexField(j, "public"));
  if (j.contains("keys") && j["keys"].is_object()) {
    for (const auto& [gen, hex] : j["keys"].items()) {
      Bytes w;
      char* end = nullptr;
      const unsigned long g = std::strtoul(gen.c_str(), &end, 10);
      if (gen.empty() || *end != '\0' || g == 0 || g > UINT32_MAX ||
          !hex.is_string() || !FromHex(hex.get<std::string>(), &w)) {
        return DataLossError("etcd " + kv.key + ": bad wrapped key");
      }
      m.wrapped[static_cast<uint32_t>(g)] = std::move(w);
    }
  }
  return m;
}

Status TakeKv(const std::string& prefix, const EtcdKeyValue& kv,
              ClusterSnapshot* s) {
  const std::string base = prefix + "/cluster/";
  const std::string name = kv.key.substr(base.size());
  if (name == "epoch") {
    KGR_ASSIGN_OR_RETURN(Json j, ParseClusterJson(kv));
    s->view.domain_id = j.value("domain_id", 0u);
    s->view.generation = j.value("generation", 0u);
    s->view.resealed = j.value("resealed", 0u);
    s->epoch_mod_revision = kv.mod_revision;
  } else if (name.rfind("members/", 0) == 0) {
    KGR_ASSIGN_OR_RETURN(ClusterMember m, DecodeMember(kv));
    s->member_mod_revisions[m.lane] = kv.mod_revision;
    s->view.members.push_back(std::move(m));
  } else if (name.rfind("join/", 0) == 0) {
    KGR_ASSIGN_OR_RETURN(Json j, ParseClusterJson(kv));
    JoinRequest r;
    r.lane = static_cast<uint8_t>(j.value("lane", 0));
    r.name = j.value("name", "");
    KGR_ASSIGN_OR_RETURN(r.public_key, ClusterHexField(j, "public"));
    r.fingerprint = MemberFingerprint(r.public_key);
    s->view.joins.push_back(std::move(r));
  }
  return OkStatus();
}

}  // namespace

std::string EpochKey(const std::string& prefix) {
  return prefix + "/cluster/epoch";
}

std::string MemberKeyName(const std::string& prefix, uint8_t lane) {
  char buf[4];
  std::snprintf(buf, sizeof buf, "%03u", static_cast<unsigned>(lane));
  return prefix + "/cluster/members/" + buf;
}

std::string JoinKeyName(const std::string& prefix,
                        const std::string& fingerprint) {
  return prefix + "/cluster/join/" + fingerprint;
}

std::string DomainCheckKey(const std::string& prefix) {
  return prefix + "/domain";
}

Bytes EncodeEpoch(uint32_t domain_id, uint32_t generation, uint32_t resealed) {
  return ClusterJsonBytes({{"domain_id", domain_id},
                           {"generation", generation},
                           {"resealed", resealed}});
}

Bytes EncodeMember(const ClusterMember& m) {
  Json keys = Json::object();
  for (const auto& [gen, w] : m.wrapped) keys[std::to_string(gen)] = ToHex(w);
  return ClusterJsonBytes({{"lane", m.lane},
                           {"name", m.name},
                           {"public", ToHex(m.public_key)},
                           {"keys", keys}});
}

Bytes EncodeJoin(const JoinRequest& j) {
  return ClusterJsonBytes(
      {{"lane", j.lane}, {"name", j.name}, {"public", ToHex(j.public_key)}});
}

const ClusterMember* ClusterSnapshot::Member(uint8_t lane) const {
  for (const ClusterMember& m : view.members) {
    if (m.lane == lane) return &m;
  }
  return nullptr;
}

StatusOr<ClusterSnapshot> ReadClusterSnapshot(EtcdClient& client,
                                              const std::string& prefix) {
  const std::string base = prefix + "/cluster/";
  EtcdOp all{EtcdOp::Kind::kRange, base, {}, EtcdPrefixEnd(base)};
  KGR_ASSIGN_OR_RETURN(
      EtcdTxnResult r,
      client.Txn({}, {EtcdOp::Get(DomainCheckKey(prefix)), all}, {}));
  if (r.ranges.size() != 2) return InternalError("etcd: short txn answer");
  ClusterSnapshot s;
  if (!r.ranges[0].kvs.empty()) {
    s.domain_check = r.ranges[0].kvs[0].value;
    s.domain_mod_revision = r.ranges[0].kvs[0].mod_revision;
  }
  for (const EtcdKeyValue& kv : r.ranges[1].kvs) {
    KGR_RETURN_IF_ERROR(TakeKv(prefix, kv, &s));
  }
  return s;
}

StatusOr<std::vector<DomainKey>> UnwrapMemberKeys(const ClusterSnapshot& s,
                                                  const ClusterMember& m,
                                                  const X25519KeyPair& key) {
  if (m.public_key != key.public_key) {
    return PermissionDeniedError(
        "lane " + std::to_string(m.lane) +
        " is held by another member key (fingerprint " +
        MemberFingerprint(m.public_key) + ")");
  }
  std::vector<DomainKey> out;
  std::vector<uint32_t> gens = {s.view.generation};
  if (s.view.resealed < s.view.generation && s.view.generation > 1) {
    gens.push_back(s.view.generation - 1);  // a rotation under way
  }
  for (uint32_t gen : gens) {
    auto it = m.wrapped.find(gen);
    if (it == m.wrapped.end()) {
      return DataLossError("cluster: no domain key of generation " +
                           std::to_string(gen) + " for lane " +
                           std::to_string(m.lane));
    }
    KGR_ASSIGN_OR_RETURN(
        DomainKey k,
        UnwrapDomainKey(it->second, s.view.domain_id, gen, m.lane, key));
    out.push_back(std::move(k));
  }
  if (out.empty() || DomainCheckValue(out.front()) != s.domain_check) {
    return DataLossError("cluster: the unwrapped domain key does not match " +
                         DomainCheckKey("<prefix>") +
                         " (a forged member record?)");
  }
  return out;
}

}  // namespace kgr
