// Fuzzes the group key decoders (docs/protocol.md section 12): the signed
// group_rekey frame, its body, group_path, the KS's tree state, and a
// member applying whatever body parses (as if the KS had signed it). Must
// never crash, leak, read out of bounds or allocate without bound.
#include <cstddef>
#include <cstdint>

#include "group/group_key_tree.h"
#include "group/member_keys.h"
#include "kgr/group_rekey.h"

namespace {

// A member of a small group (depth 2) whose keys the fuzzed bodies hit.
kgr::group::GroupMemberKeys FuzzMember() {
  kgr::GroupPath path;
  path.group_id = 7;
  path.epoch = 1;
  path.depth = 2;
  path.leaf_position = 5;
  for (uint32_t level = 0; level <= 2; ++level) {
    kgr::SecretBytes s(kgr::kGroupSecretSize);
    for (auto& b : s.mutable_span()) b = static_cast<uint8_t>(level + 1);
    path.keys.push_back({1, std::move(s)});
  }
  return *kgr::group::GroupMemberKeys::FromPath(std::move(path));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  static const kgr::Bytes ks_public(kgr::kEd25519PublicSize, 0x5a);
  kgr::FrameHeader header;
  auto frame = kgr::OpenGroupRekey(in, ks_public, &header);
  (void)frame;
  auto part = kgr::GroupRekeyPart::Parse(in);
  if (part.ok()) {
    part->group_id = 7;  // so that the member looks at it
    auto member = FuzzMember();
    auto outcome = member.Apply(*part, 0);
    (void)outcome;
  }
  auto path = kgr::GroupPath::Parse(in);
  if (path.ok()) {
    auto member = kgr::group::GroupMemberKeys::FromPath(std::move(*path));
    (void)member;
  }
  auto tree =
      kgr::group::GroupKeyTree::Deserialize(in, &kgr::group::SystemKeySource());
  if (tree.ok() && tree->size() > 0 && tree->size() < 64) {
    (void)tree->StageLeave(tree->Members().front());
    auto rekey = tree->Commit();
    (void)rekey;
  }
  return 0;
}
