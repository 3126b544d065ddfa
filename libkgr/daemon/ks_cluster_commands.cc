// kgr-ks cluster init | join | approve | remove | leave | finish-rotation |
// status (docs/cluster.md "Membership ceremony"; the steps are in
// libkgr/cluster/membership.cc and rotation.cc).
#include <cstdio>
#include <iostream>

#include "daemon/ks_cluster_ops.h"
#include "daemon/ks_state.h"
#include "daemon/wiring.h"
#include "kgr/control.h"
#include "kgr/ks_daemon.h"

namespace kgr {
namespace {

// What a ceremony step on this machine needs: the state directory locked,
// the TPM open, the NK loaded.
struct Local {
  std::unique_ptr<DirLock> lock;
  std::unique_ptr<Tpm> tpm;
  OwnData own;
};

StatusOr<Local> OpenLocal(const KsOptions& o) {
  Local l;
  KGR_ASSIGN_OR_RETURN(l.lock, DirLock::ForStateDir(o.daemon.state_dir));
  KGR_ASSIGN_OR_RETURN(l.tpm, OpenTpmFor(o.daemon));
  KGR_ASSIGN_OR_RETURN(l.own, LoadOwnData(*l.tpm));
  return l;
}

// Removes the files a failed init or join made (nothing left behind).
Status Undo(const std::vector<std::string>& made, Status why) {
  for (const std::string& f : made) (void)DefaultFileSystem()->Remove(f);
  return why;
}

Status ClusterInit(const KsOptions& o) {
  KGR_ASSIGN_OR_RETURN(Local l, OpenLocal(o));
  FileSystem& fs = *DefaultFileSystem();
  const std::string key_path = DomainKeyPath(o.daemon.state_dir);
  const std::string member_path = MemberKeyPath(o.daemon.state_dir);
  std::vector<std::string> made;
  if (!fs.Exists(member_path)) made.push_back(member_path);
  auto key = LoadDomainKey(fs, key_path, l.own.nk);
  if (!key.ok() && key.status().code() == StatusCode::kNotFound) {
    key = NewDomainKey(l.own.identity.n_id);
    if (key.ok()) made.push_back(key_path);
  }
  if (!key.ok()) return key.status();
  auto me = LoadMemberAccess(o, l.own, /*create=*/true);
  if (!me.ok()) return Undo(made, me.status());
  Status st = InitCluster(**me, *key);
  if (st.ok()) st = SaveDomainKey(fs, key_path, *key, l.own.nk);
  if (!st.ok()) return Undo(made, st);
  std::printf(
      "cluster initialized at %s: lane %u (%s), fingerprint %s, domain key "
      "generation %u\n",
      (*me)->prefix.c_str(), (*me)->lane, (*me)->name.c_str(),
      MemberFingerprint((*me)->key.public_key).c_str(), key->generation);
  return OkStatus();
}

Status ClusterJoin(const KsOptions& o, const ClusterCommand& c) {
  KGR_ASSIGN_OR_RETURN(Local l, OpenLocal(o));
  FileSystem& fs = *DefaultFileSystem();
  const std::string key_path = DomainKeyPath(o.daemon.state_dir);
  const std::string member_path = MemberKeyPath(o.daemon.state_dir);
  std::vector<std::string> made;
  if (!fs.Exists(member_path)) made.push_back(member_path);
  auto me = LoadMemberAccess(o, l.own, /*create=*/true);
  if (!me.ok()) return Undo(made, me.status());
  auto fp = RequestJoin(**me);
  if (!fp.ok()) return Undo(made, fp.status());
  std::printf(
      "join request for lane %u: fingerprint %s\n"
      "waiting up to %d s for a member's approval "
      "(kgr-ks cluster approve --fingerprint %s, after comparing it)\n",
      (*me)->lane, fp->c_str(), c.wait_s, fp->c_str());
  std::fflush(stdout);
  auto keys = AwaitJoin(**me, c.wait_s * 1000);
  if (!keys.ok()) return Undo(made, keys.status());
  KGR_RETURN_IF_ERROR(SaveDomainKey(fs, key_path, keys->front(), l.own.nk));
  std::printf("joined: lane %u holds domain key generation %u\n", (*me)->lane,
              keys->front().generation);
  return OkStatus();
}

void PrintCluster(const ClusterView& v, bool as_json) {
  nlohmann::json members = nlohmann::json::array(),
                 joins = nlohmann::json::array();
  for (const ClusterMember& m : v.members) {
    nlohmann::json gens = nlohmann::json::array();
    for (const auto& [g, w] : m.wrapped) gens.push_back(g);
    members.push_back({{"lane", m.lane},
                       {"name", m.name},
                       {"fingerprint", MemberFingerprint(m.public_key)},
                       {"generations", gens}});
  }
  for (const JoinRequest& j : v.joins) {
    joins.push_back(
        {{"lane", j.lane}, {"name", j.name}, {"fingerprint", j.fingerprint}});
  }
  nlohmann::json j = {{"generation", v.generation},
                      {"resealed", v.resealed},
                      {"rotating", v.resealed < v.generation},
                      {"members", members},
                      {"join_requests", joins}};
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "domain key generation " << v.generation
            << (v.resealed < v.generation ? " (rotation under way: records "
                                            "still re-sealed from the one "
                                            "before)"
                                          : "")
            << "\nmembers: " << v.members.size() << "\n";
  for (const auto& m : members) {
    std::cout << "  lane " << m["lane"] << "  " << m["name"].get<std::string>()
              << "  " << m["fingerprint"].get<std::string>() << "  generations "
              << m["generations"].dump() << "\n";
  }
  std::cout << "join requests: " << v.joins.size() << "\n";
  for (const auto& r : joins) {
    std::cout << "  lane " << r["lane"] << "  " << r["name"].get<std::string>()
              << "  " << r["fingerprint"].get<std::string>() << "\n";
  }
}

Status ClusterStatus(const KsOptions& o, bool as_json) {
  KGR_ASSIGN_OR_RETURN(EtcdStateOptions so, EtcdStateOptionsFor(o));
  KGR_ASSIGN_OR_RETURN(ClusterView v, ReadCluster(so.etcd, so.prefix));
  if (v.generation == 0) {
    return NotFoundError("cluster: no cluster at " + so.prefix +
                         " (kgr-ks cluster init)");
  }
  PrintCluster(v, as_json);
  return OkStatus();
}

// approve, remove, leave, finish-rotation: through the running daemon, else
// here with the TPM.
Status ClusterStep(const KsOptions& o, const ClusterCommand& c) {
  nlohmann::json req = {{"cmd", "cluster"}, {"settle_ms", c.settle_ms}};
  if (c.sub == "approve") {
    if (c.fingerprint.empty()) {
      return InvalidArgumentError("approve needs --fingerprint FP");
    }
    req["op"] = "approve";
    req["fingerprint"] = c.fingerprint;
  } else if (c.sub == "remove" || c.sub == "leave") {
    if (c.sub == "remove" && c.lane < 0) {
      return InvalidArgumentError("remove needs --lane N");
    }
    req["op"] = "remove";
    req["lane"] = c.sub == "leave" ? o.key_server.counter_lane : c.lane;
  } else if (c.sub == "finish-rotation") {
    req["op"] = "finish";
  } else {
    return InvalidArgumentError(
        "cluster: unknown subcommand '" + c.sub +
        "' (init, join, approve, remove, leave, finish-rotation, status)");
  }
  auto answer = ControlCall(ControlSocketPath(o.daemon.state_dir), req,
                            4 * c.settle_ms + 30000);
  if (!answer.ok()) {
    if (answer.status().code() != StatusCode::kUnavailable) {
      return answer.status();
    }
    KGR_ASSIGN_OR_RETURN(Local l, OpenLocal(o));
    KGR_ASSIGN_OR_RETURN(auto me, LoadMemberAccess(o, l.own, false));
    answer = RunClusterOp(*me, req);
  }
  if (!answer->value("ok", false)) {
    return Status(static_cast<StatusCode>(answer->value("code", 2)),
                  answer->value("error", "failed"));
  }
  if (req["op"] == "approve") {
    std::printf("approved %s\n", c.fingerprint.c_str());
  } else {
    std::printf("domain key generation %u in force; %zu records re-sealed\n",
                answer->value("generation", 0u),
                answer->value("resealed", size_t{0}));
  }
  return OkStatus();
}

}  // namespace

Status KsCluster(const KsOptions& o, const ClusterCommand& c) {
  if (o.state_url.empty()) {
    return InvalidArgumentError("cluster: needs --state etcd://...");
  }
  if (c.sub == "init") return ClusterInit(o);
  if (c.sub == "join") return ClusterJoin(o, c);
  if (c.sub == "status") return ClusterStatus(o, c.as_json);
  return ClusterStep(o, c);
}

}  // namespace kgr
