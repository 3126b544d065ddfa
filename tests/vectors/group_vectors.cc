// The group key vectors of docs/test-vectors.json ("group_rekey"): the
// derivations, one wrap, one signed group_rekey frame (member 2 of three
// leaves) with what member 1 holds before and after, and a group_path
// (docs/protocol.md section 12). Deterministic: a seeded key source, fixed
// IVs, an Ed25519 key from a fixed seed (RFC 8032 signatures are
// deterministic).
#include "vectors/group_vectors.h"

#include <cstdio>
#include <cstdlib>

#include "group/group_key_tree.h"
#include "kgr/ed25519.h"
#include "kgr/group_rekey.h"
#include "testing/crypto_testing.h"
#include "vectors/hex.h"

namespace kgr {
namespace {

using nlohmann::ordered_json;

SecretBytes Filled(uint8_t start, size_t n) {
  SecretBytes s(n);
  for (size_t i = 0; i < n; ++i) s.data()[i] = static_cast<uint8_t>(start + i);
  return s;
}
template <typename T>
T Must(StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "group vectors: %s: %s\n", what,
                 v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

ordered_json PathJson(const GroupPath& p) {
  ordered_json keys = ordered_json::array();
  for (const auto& k : p.keys) {
    keys.push_back(
        {{"version", k.version}, {"secret", vectors::Hex(k.secret.span())}});
  }
  Bytes encoded;
  p.EncodeTo(&encoded);
  ordered_json j = {
      {"group_id", p.group_id}, {"epoch", p.epoch},
      {"depth", p.depth},       {"leaf_position", p.leaf_position},
      {"keys", keys},           {"encoded", vectors::Hex(encoded)}};
  WipeVector(encoded);
  return j;
}

ordered_json Derivations() {
  SecretBytes secret = Filled(0x10, kGroupSecretSize);
  auto kek = Must(GroupNodeKek(secret, 7, 1, 3, 9), "kek");
  auto data = Must(GroupDataKeys(secret, 7, 12), "data keys");
  return {{{"name", "group_kek"},
           {"secret", vectors::Hex(secret.span())},
           {"group_id", 7},
           {"level", 1},
           {"position", 3},
           {"version", 9},
           {"keys", vectors::HexKeys(kek)}},
          {{"name", "group_data_keys"},
           {"root_secret", vectors::Hex(secret.span())},
           {"group_id", 7},
           {"epoch", 12},
           {"keys", vectors::HexKeys(data)}}};
}

ordered_json Wrap() {
  SecretBytes child = Filled(0x20, kGroupSecretSize);
  SecretBytes secret = Filled(0x40, kGroupSecretSize);
  auto kek = Must(GroupNodeKek(child, 7, 0, 5, 2), "kek");
  WrapPlace place{7, 12, 1, 1, 4, 1, 2};
  Iv iv;
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<uint8_t>(0xb0 + i);
  crypto_testing::FixedIvScope fixed(iv);
  auto wrapped = Must(WrapGroupSecret(kek, place, secret), "wrap");
  return {{"child_secret", vectors::Hex(child.span())},
          {"group_id", 7},
          {"epoch", 12},
          {"level", 1},
          {"position", 1},
          {"version", 4},
          {"child_slot", 1},
          {"child_position", 5},
          {"child_version", 2},
          {"secret", vectors::Hex(secret.span())},
          {"iv", vectors::Hex(iv)},
          {"wrapped", vectors::Hex(wrapped)}};
}

ordered_json Rekey() {
  group::SeededKeySource keys(1);
  group::GroupKeyTree tree(7, &keys);
  for (uint32_t m : {1u, 2u, 3u}) (void)tree.StageJoin(m);
  Must(tree.Commit(), "commit");
  GroupPath before = Must(tree.PathOf(1), "path");
  (void)tree.StageLeave(2);
  Iv iv;
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<uint8_t>(0xc0 + i);
  GroupRekey rekey;
  {
    crypto_testing::FixedIvScope fixed(iv);
    rekey = Must(tree.Commit(), "commit");
  }
  auto ks =
      Must(Ed25519FromSeed(Filled(0x70, kEd25519PrivateSize).span()), "ks key");
  uint64_t counter = 1700000000000000;
  auto frames = Must(SealGroupRekey(rekey, 0x11223344, ks.private_key,
                                    [&] { return counter++; }),
                     "seal");
  ordered_json entries = ordered_json::array();
  for (const RekeyEntry& e : rekey.entries) {
    entries.push_back({{"level", e.level},
                       {"position", e.position},
                       {"version", e.version},
                       {"child_slot", e.child_slot},
                       {"wrapped", vectors::Hex(e.wrapped)}});
  }
  GroupPath after = Must(tree.PathOf(1), "path");
  auto data = Must(tree.DataKeys(), "data keys");
  return {{"name", "group_rekey"},
          {"ks_signing_seed", vectors::Hex(ks.private_key.span())},
          {"ks_public", vectors::Hex(ks.public_key)},
          {"header",
           {{"type", 0x12},
            {"flags", 0},
            {"sender", "11223344"},
            {"key_version", rekey.epoch},
            {"counter", 1700000000000000},
            {"request_id", 0}}},
          {"fields",
           {{"group_id", rekey.group_id},
            {"epoch", rekey.epoch},
            {"depth", rekey.depth},
            {"part", 0},
            {"parts", 1},
            {"entries", entries}}},
          {"frame", vectors::Hex(frames.at(0))},
          {"member_1_before", PathJson(before)},
          {"member_1_after", PathJson(after)},
          {"data_keys_after", vectors::HexKeys(data)}};
}

}  // namespace

ordered_json GroupRekeyVectors() {
  return {{"derivations", Derivations()}, {"wrap", Wrap()}, {"rekey", Rekey()}};
}

}  // namespace kgr
