// kgr-bench --groups (docs/performance.md "Group rekeying"): for each group
// size, one leave and a batch of 1 % leaves, rekeyed
//   * with the logical key hierarchy: GroupKeyTree::Commit, SealGroupRekey
//     (Ed25519-signed parts), published once on the group's rekey topic;
//     the broker's fan-out is a loop handing each published frame (one
//     copy, as a broker keeps one) to every member, each of which opens
//     (signature) and applies it (GroupMemberKeys);
//   * naively: a fresh group key sealed under each remaining member's NKSK
//     (one SealFrame per member, as the KS seals every unicast frame),
//     handed to each member, which opens it. The members' NKSKs come from
//     a pool of kNkskPool keys (the cost of a seal does not depend on which
//     key): 100,000 prepared key pairs alone would take hundreds of MB.
// Memory: each member keeps only its own path (GroupMemberKeys); at 100,000
// members the bench stays well under 1 GB (docs/performance.md).
// KS CPU is the KS thread's CPU time for commit + seal (resp. all the
// unicast seals); member CPU is per member (open + apply), measured on up
// to kMeasuredMembers members; all_members_hold_ms is the time until every
// member holds the new key with each member on its own device: the KS's
// CPU plus the slowest measured member's (resp. the last unicast's open),
// the broker's fan-out not included; in_process_ms is the wall time of
// this process doing everyone's work on one thread.
#include "bench/group_bench.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "group/group_key_tree.h"
#include "group/member_keys.h"
#include "kgr/frame.h"
#include "kgr/group_rekey.h"

namespace kgr::bench {
namespace {

using Json = nlohmann::json;
using group::GroupKeyTree;
using group::GroupMemberKeys;

constexpr char kGroupUsage[] =
    R"(usage: kgr-bench --groups [--sizes N,N,...] [--seed S]

For each group size (default 16,1000,10000,100000): KS CPU, bytes and member
CPU of one leave and of a batch of 1% leaves, with the logical key hierarchy
and with a naive unicast rekey; prints one JSON object.
)";

double ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
double WallMs() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch())
      .count();
}
double R3(double x) { return std::round(x * 1000) / 1000; }

Json Summary(std::vector<double> v) {
  if (v.empty()) return nullptr;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto at = [&](double q) { return R3(v[size_t(q * (v.size() - 1))] * 1e3); };
  return {{"mean_us", R3(sum / v.size() * 1e3)},
          {"p50_us", at(0.5)},
          {"p99_us", at(0.99)},
          {"max_us", at(1.0)}};
}

constexpr size_t kNkskPool = 256;

struct Member {
  uint32_t id = 0;
  std::optional<GroupMemberKeys> keys;
  bool removed = false;
  bool holds_new = false;
  double cpu_ms = 0;
};

struct Group {
  uint32_t group_id = 0;
  GroupKeyTree tree;
  std::vector<Member> members;  // index = id - 1
  Ed25519KeyPair ks_key;
  std::vector<SymmetricKeys> nksk;  // member id's NKSK: nksk[id % kNkskPool]
  const SymmetricKeys& NkskOf(const Member& m) const {
    return nksk[m.id % nksk.size()];
  }
};

StatusOr<Group> MakeGroup(uint32_t n, uint32_t group_id) {
  Group g{
      group_id, GroupKeyTree(group_id, &group::SystemKeySource()), {}, {}, {}};
  KGR_ASSIGN_OR_RETURN(g.ks_key, GenerateEd25519());
  for (uint32_t id = 1; id <= n; ++id) {
    KGR_RETURN_IF_ERROR(g.tree.StageJoin(id));
  }
  KGR_RETURN_IF_ERROR(g.tree.Commit().status());
  g.members.resize(n);
  for (uint32_t id = 1; id <= n; ++id) {
    Member& m = g.members[id - 1];
    m.id = id;
    KGR_ASSIGN_OR_RETURN(GroupPath path, g.tree.PathOf(id));
    KGR_ASSIGN_OR_RETURN(auto keys, GroupMemberKeys::FromPath(std::move(path)));
    m.keys.emplace(std::move(keys));
  }
  for (size_t i = 0; i < std::min<size_t>(n + 1, kNkskPool); ++i) {
    KGR_ASSIGN_OR_RETURN(SymmetricKeys k, SymmetricKeys::Generate());
    KGR_RETURN_IF_ERROR(k.Prepare());
    g.nksk.push_back(std::move(k));
  }
  return g;
}

std::vector<uint32_t> PickLeavers(const Group& g, size_t count,
                                  std::mt19937_64& rng) {
  std::vector<uint32_t> ids;
  for (const Member& m : g.members) {
    if (!m.removed) ids.push_back(m.id);
  }
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(std::min(count, ids.size()));
  return ids;
}

// A member receives one published rekey frame: opens (signature) and
// applies it.
void Receive(const Group& g, Member& m, const Bytes& frame) {
  double start = ThreadCpuMs();
  FrameHeader h;
  auto part = OpenGroupRekey(frame, g.ks_key.public_key, &h);
  if (part.ok()) {
    auto r = m.keys->Apply(*part, 0);
    if (r.ok() && *r == group::RekeyOutcome::kApplied) m.holds_new = true;
  }
  m.cpu_ms += ThreadCpuMs() - start;
}

// Members whose CPU is measured (every one up to this many; beyond, an
// evenly spread sample of this many): each of them opens (verifies) and
// applies every frame itself; the others apply the part the bench opened
// once (the same bytes, the same signature), so that 100,000 members do
// not take 100,000 signature checks per frame on one thread.
constexpr uint32_t kMeasuredMembers = 2000;
bool Measured(const Group& g, const Member& m) {
  const size_t stride =
      std::max<size_t>(1, g.members.size() / kMeasuredMembers);
  return m.id % stride == 0;
}

// The LKH rekey of `leavers`, published once and handed to every member
// that was in the group (the leavers too: they must not follow).
StatusOr<Json> LkhRekey(Group& g, const std::vector<uint32_t>& leavers) {
  for (Member& m : g.members) m.cpu_ms = 0, m.holds_new = false;

  double wall0 = WallMs(), cpu0 = ThreadCpuMs();
  for (uint32_t id : leavers) KGR_RETURN_IF_ERROR(g.tree.StageLeave(id));
  KGR_ASSIGN_OR_RETURN(GroupRekey rekey, g.tree.Commit());
  uint64_t counter = 0;
  KGR_ASSIGN_OR_RETURN(auto frames,
                       SealGroupRekey(rekey, 1, g.ks_key.private_key,
                                      [&] { return ++counter; }));
  double ks_cpu = ThreadCpuMs() - cpu0;
  size_t bytes = 0;
  for (const Bytes& f : frames) {
    bytes += f.size();
    FrameHeader h;
    KGR_ASSIGN_OR_RETURN(GroupRekeyPart part,
                         OpenGroupRekey(f, g.ks_key.public_key, &h));
    for (Member& m : g.members) {
      if (m.removed) continue;
      if (Measured(g, m)) {
        Receive(g, m, f);
        continue;
      }
      auto r = m.keys->Apply(part, 0);
      if (r.ok() && *r == group::RekeyOutcome::kApplied) m.holds_new = true;
    }
  }
  double in_process_ms = WallMs() - wall0;

  KGR_ASSIGN_OR_RETURN(SymmetricKeys data, g.tree.DataKeys());
  std::vector<double> cpu;
  size_t holding = 0, leaver_holding = 0, remaining = 0;
  for (uint32_t id : leavers) g.members[id - 1].removed = true;
  for (Member& m : g.members) {
    bool has = m.holds_new && m.keys->CurrentDataKeys().Equals(data);
    if (m.removed) {
      leaver_holding += has ? 1 : 0;
      continue;
    }
    ++remaining;
    holding += has ? 1 : 0;
    if (Measured(g, m)) cpu.push_back(m.cpu_ms);
  }
  if (holding != remaining || leaver_holding != 0) {
    return InternalError("LKH rekey did not converge");
  }
  const double slowest =
      cpu.empty() ? 0 : *std::max_element(cpu.begin(), cpu.end());
  return Json{{"ks_cpu_ms", R3(ks_cpu)},
              {"wraps", rekey.entries.size()},
              {"frames", frames.size()},
              {"bytes_published", bytes},
              {"bytes_delivered", bytes * remaining},
              {"member_cpu", Summary(cpu)},
              {"members_measured", cpu.size()},
              {"all_members_hold_ms", R3(ks_cpu + slowest)},
              {"in_process_ms", R3(in_process_ms)}};
}

// The naive rekey: a new group key sealed to each remaining member alone.
StatusOr<Json> UnicastRekey(Group& g, uint32_t epoch) {
  double wall0 = WallMs(), cpu0 = ThreadCpuMs();
  KGR_ASSIGN_OR_RETURN(SymmetricKeys group_key, SymmetricKeys::Generate());
  Bytes body;
  ByteWriter w(&body);
  w.U32(g.group_id);
  w.U32(epoch);
  w.Raw(group_key.RawEncKeyBytes().span());
  w.Raw(group_key.RawMacKeyBytes().span());
  std::vector<std::pair<Member*, Bytes>> frames;
  uint64_t counter = 0;
  for (Member& m : g.members) {
    if (m.removed) continue;
    FrameHeader h;
    h.type = FrameType::kNodeDataReq;  // a stand-in type of the same shape
    h.sender = 1;
    h.key_version = 1;
    h.counter = ++counter;
    KGR_ASSIGN_OR_RETURN(Bytes f, SealFrame(h, body, g.NkskOf(m)));
    frames.emplace_back(&m, std::move(f));
  }
  double ks_cpu = ThreadCpuMs() - cpu0;
  WipeVector(body);
  size_t bytes = 0;
  std::vector<double> cpu;
  for (auto& [m, f] : frames) {
    bytes += f.size();
    double start = ThreadCpuMs();
    FrameHeader h;
    auto opened = OpenFrame(f, g.NkskOf(*m), &h);
    if (!opened.ok()) return InternalError("unicast rekey did not open");
    cpu.push_back(ThreadCpuMs() - start);
  }
  double in_process_ms = WallMs() - wall0;
  // The last member's frame is sealed last: it holds the key after all of
  // the KS's work plus its own open.
  const double last = cpu.empty() ? 0 : cpu.back();
  return Json{{"ks_cpu_ms", R3(ks_cpu)},
              {"frames", frames.size()},
              {"bytes_published", bytes},
              {"bytes_delivered", bytes},
              {"member_cpu", Summary(cpu)},
              {"all_members_hold_ms", R3(ks_cpu + last)},
              {"in_process_ms", R3(in_process_ms)}};
}

StatusOr<Json> Scenario(Group& g, size_t leaves, std::mt19937_64& rng) {
  std::vector<uint32_t> leavers = PickLeavers(g, leaves, rng);
  // The unicast baseline first, for the same remaining members.
  for (uint32_t id : leavers) g.members[id - 1].removed = true;
  auto unicast = UnicastRekey(g, g.tree.epoch() + 1);
  for (uint32_t id : leavers) g.members[id - 1].removed = false;
  KGR_RETURN_IF_ERROR(unicast.status());
  KGR_ASSIGN_OR_RETURN(Json lkh, LkhRekey(g, leavers));
  Json out{{"leaves", leavers.size()}, {"lkh", lkh}, {"unicast", *unicast}};
  double lb = lkh["bytes_published"].get<double>();
  double ub = (*unicast)["bytes_published"].get<double>();
  out["bytes_ratio_unicast_over_lkh"] = R3(ub / lb);
  out["ks_cpu_ratio_unicast_over_lkh"] =
      R3((*unicast)["ks_cpu_ms"].get<double>() /
         std::max(1e-3, lkh["ks_cpu_ms"].get<double>()));
  return out;
}

StatusOr<Json> OneSize(uint32_t n, std::mt19937_64& rng) {
  double wall0 = WallMs();
  KGR_ASSIGN_OR_RETURN(Group g, MakeGroup(n, n));
  Json out{{"members", n}, {"depth", g.tree.depth()}};
  out["setup_ms"] = R3(WallMs() - wall0);
  auto state = g.tree.Serialize();
  if (state.ok()) out["tree_state_bytes"] = state->size();
  KGR_ASSIGN_OR_RETURN(out["one_leave"], Scenario(g, 1, rng));
  KGR_ASSIGN_OR_RETURN(out["batch_1pct_leaves"],
                       Scenario(g, std::max<size_t>(1, n / 100), rng));
  return out;
}

bool ParseSizes(const std::string& s, std::vector<uint32_t>* sizes) {
  sizes->clear();
  size_t at = 0;
  while (at <= s.size()) {
    size_t comma = s.find(',', at);
    std::string item = s.substr(at, comma - at);
    char* end = nullptr;
    unsigned long v = std::strtoul(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 2 || v > 1'000'000) return false;
    sizes->push_back(static_cast<uint32_t>(v));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return !sizes->empty();
}

}  // namespace

int RunGroupBench(int argc, char** argv) {
  std::vector<uint32_t> sizes = {16, 1000, 10000, 100000};
  uint64_t seed = 1;
  std::string command = "kgr-bench";
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    command += " " + f;
    if (f == "--groups") continue;
    if (f == "--help") {
      std::fputs(kGroupUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc || (f != "--sizes" && f != "--seed")) {
      std::fprintf(stderr, "kgr-bench: unknown or incomplete flag %s\n\n%s",
                   f.c_str(), kGroupUsage);
      return 2;
    }
    std::string v = argv[++i];
    command += " " + v;
    if (f == "--sizes" && !ParseSizes(v, &sizes)) {
      std::fprintf(stderr, "kgr-bench: --sizes wants N,N,... (2..1000000)\n");
      return 2;
    }
    if (f == "--seed") seed = std::strtoull(v.c_str(), nullptr, 10);
  }
  std::mt19937_64 rng(seed);
  Json out{{"command", command}, {"arity", kGroupTreeArity}};
  for (uint32_t n : sizes) {
    auto r = OneSize(n, rng);
    if (!r.ok()) {
      std::fprintf(stderr, "kgr-bench: group of %u: %s\n", n,
                   r.status().ToString().c_str());
      return 1;
    }
    out["groups"].push_back(*std::move(r));
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace kgr::bench
