// kgr-group-reader (tests only): what a member that keeps everything it ever
// received can read. Opens a node's state directory (its TPM for NK, then
// grp_keys) and reads captured MQTT messages, one "topic hex" line each
// (mosquitto_sub -F '%t %x', tests/e2e/ked.bash ked_observe), in order:
// every group_rekey of a group it holds it tries to apply to its path keys
// (signature checked; a rekey it cannot open is skipped, as a member that
// ignores being removed would), and every group message it tries to open
// with every group key it holds or ever derived this way, whatever the
// overlap rules say. Prints one line per rekey it could verify and one per
// group message:
//   rekey <group> v<epoch>: applied | missed a rekey | cannot open | ...
//   opened <group> v<key_version> <text>   |   sealed <group> v<key_version>
//
//   kgr-group-reader --state-dir DIR --tcti TCTI --observed FILE
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "daemon/wiring.h"
#include "group/member_keys.h"
#include "kgr/control.h"
#include "kgr/filesystem.h"
#include "kgr/group_frame.h"
#include "kgr/group_rekey.h"
#include "kgr/records.h"
#include "kgr/store.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

struct Held {
  GroupRecord record;
  std::unique_ptr<group::GroupMemberKeys> path;
  std::map<uint32_t, SymmetricKeys> keys;  // every epoch it could derive
};

void Remember(Held& h, uint32_t epoch, const SecretBytes& root) {
  auto k = GroupDataKeys(root, h.record.group_id, epoch);
  if (k.ok()) h.keys.emplace(epoch, std::move(*k));
}

StatusOr<std::map<uint32_t, Held>> LoadHeld(const DaemonOptions& d) {
  std::unique_ptr<DirLock> lock;
  std::unique_ptr<Tpm> tpm;
  KGR_ASSIGN_OR_RETURN(OwnData own, OpenOwnData(d, Role::kNode, lock, tpm));
  KGR_ASSIGN_OR_RETURN(
      auto store,
      GroupStore::Open(*DefaultFileSystem(), d.state_dir + "/grp_keys", own.nk,
                       own.identity.n_id, StoreOptions{}));
  std::map<uint32_t, Held> held;
  store->ForEach([&](const GroupRecord& r) {
    if (r.kind() != GroupRecord::Kind::kGroup) return;
    Held& h = held[r.group_id];
    h.record = r.Clone();
    if (!r.group_key.empty()) Remember(h, r.key_version, r.group_key);
    if (!r.prev_group_key.empty())
      Remember(h, r.prev_version, r.prev_group_key);
    auto path = GroupPath::Parse(r.path_keys.span());
    if (!path.ok()) return;
    auto keys = group::GroupMemberKeys::FromPath(std::move(*path));
    if (keys.ok()) {
      h.path = std::make_unique<group::GroupMemberKeys>(std::move(*keys));
    }
  });
  return held;
}

void ApplyRekey(Held& g, const Bytes& frame) {
  FrameHeader opened;
  auto part = OpenGroupRekey(frame, g.record.ks_sign_public, &opened);
  if (!part.ok() || !g.path) return;
  auto outcome = g.path->Apply(*part, 0);
  if (!outcome.ok()) return;
  std::printf("rekey %s v%u: %s\n", FormatNodeId(g.record.group_id).c_str(),
              part->epoch,
              std::string(group::RekeyOutcomeName(*outcome)).c_str());
  if (*outcome == group::RekeyOutcome::kApplied) {
    Remember(g, g.path->epoch(), g.path->path().keys.back().secret);
  }
}

void OpenData(Held& g, const Bytes& frame) {
  auto h = PeekFrameHeader(frame);
  if (!h.ok() || h->type != FrameType::kGroupData) return;
  const uint32_t id = g.record.group_id;
  auto k = g.keys.find(h->key_version);
  FrameHeader opened;
  StatusOr<GroupData> body = NotFoundError("no key of that version");
  if (k != g.keys.end()) {  // group_key groups (the e2e test's)
    body =
        OpenGroupData(frame, k->second, id, GroupMode::kGroupKey, {}, &opened);
  }
  if (body.ok()) {
    std::printf("opened %s v%u %.*s\n", FormatNodeId(id).c_str(),
                h->key_version, static_cast<int>(body->data.size()),
                reinterpret_cast<const char*>(body->data.data()));
  } else {
    std::printf("sealed %s v%u\n", FormatNodeId(id).c_str(), h->key_version);
  }
}

void ReadOne(std::map<uint32_t, Held>& held, const std::string& topic,
             const Bytes& frame) {
  for (auto& [id, g] : held) {
    const std::string subtree = "/g" + FormatNodeId(id) + "/";
    if (topic.find(subtree + "rekey/") != std::string::npos) {
      ApplyRekey(g, frame);
    } else if (topic.find(subtree + "data/") != std::string::npos) {
      OpenData(g, frame);
    }
  }
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) {
  std::string state_dir, tcti, observed;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--state-dir") state_dir = argv[i + 1];
    if (flag == "--tcti") tcti = argv[i + 1];
    if (flag == "--observed") observed = argv[i + 1];
  }
  if (state_dir.empty() || tcti.empty() || observed.empty()) {
    std::fprintf(stderr,
                 "usage: kgr-group-reader --state-dir DIR --tcti TCTI "
                 "--observed FILE\n");
    return 2;
  }
  kgr::DaemonOptions d;
  d.state_dir = state_dir;
  d.tcti = tcti;
  auto held = kgr::LoadHeld(d);
  if (!held.ok()) {
    std::fprintf(stderr, "kgr-group-reader: %s\n",
                 held.status().ToString().c_str());
    return 1;
  }
  std::ifstream in(observed);
  std::string topic, hex;
  while (in >> topic >> hex) {
    kgr::Bytes frame;
    if (!kgr::FromHex(hex, &frame)) continue;
    kgr::ReadOne(*held, topic, frame);
  }
  return 0;
}
