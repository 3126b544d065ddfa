// kgr-vectors: writes docs/test-vectors.json (every frame type and record
// type with its keys, IV, counter, fields and exact bytes) from the library,
// or with --check FILE verifies that FILE is exactly what the library makes.
// Everything is deterministic: fixed keys, IVs and field values.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kgr/frame.h"
#include "kgr/group_frame.h"
#include "kgr/group_frames.h"
#include "kgr/records.h"
#include "testing/crypto_testing.h"
#include "vectors/group_vectors.h"
#include "vectors/hex.h"

namespace kgr {
namespace {

using nlohmann::ordered_json;

SecretBytes Pattern(uint8_t start, size_t n) {
  SecretBytes s(n);
  for (size_t i = 0; i < n; ++i) s.data()[i] = static_cast<uint8_t>(start + i);
  return s;
}
SymmetricKeys Keys(uint8_t a, uint8_t b) {
  return {Pattern(a, kKeySize), Pattern(b, kKeySize)};
}
TopicId T(uint8_t start) {
  TopicId t;
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint8_t>(start + i);
  return t;
}
Iv FixedIv(uint8_t start) {
  Iv iv;
  for (size_t i = 0; i < iv.size(); ++i)
    iv[i] = static_cast<uint8_t>(start + i);
  return iv;
}
// What `seal` returns when every EtmSeal in it uses `iv` (test-only).
template <typename F>
auto WithIv(const Iv& iv, F seal) {
  crypto_testing::FixedIvScope fixed(iv);
  return seal();
}
using vectors::Hex;
using vectors::Hex32;
using vectors::HexKeys;

// Broker certificate renewal (docs/protocol.md section 11): a real CSR of
// node 0a0b0c0d (P-256, made once with openssl; ECDSA signatures are not
// deterministic) and the certificate an issuing CA signed on it.
constexpr char kCsrHex[] =
    "3081ef3081970201003035310c300a060355040a0c036b67723111300f060355"
    "040b0c086b67722d6e6f64653112301006035504030c096e3061306230633064"
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004354003988d"
    "2f2714e2ded030b070a72f90b85995f09eed2a2693ddefcfc982088258095f8d"
    "2b449f7d6b4a37938821b160da3e1e8a28487b714f7efa6efb8863a000300a06"
    "082a8648ce3d04030203470030440220397ca6be66c25c72274ce83e910bb2c9"
    "9aa6e5b5b436458d1a584f33777d17a902206400138f4e9e72390d84bb2c91bd"
    "f119f42a52d6bc764471725f65524a0902a7";
constexpr char kChainPem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBYDCCAQUCEAEjRWeJq83vASNFZ4mrze8wCgYIKoZIzj0EAwIwMzEMMAoGA1UE\n"
    "CgwDa2dyMQ8wDQYDVQQLDAZrZ3ItY2ExEjAQBgNVBAMMCWtnci1rcy1jYTAeFw0y\n"
    "NjEyMDYyMzM4MzRaFw0yNjEyMTMyMzM4MzRaMDUxDDAKBgNVBAoMA2tncjERMA8G\n"
    "A1UECwwIa2dyLW5vZGUxEjAQBgNVBAMMCW4wYTBiMGMwZDBZMBMGByqGSM49AgEG\n"
    "CCqGSM49AwEHA0IABDVAA5iNLycU4t7QMLBwpy+QuFmV8J7tKiaT3e/PyYIIglgJ\n"
    "X40rRJ99a0o3k4ghsWDaPh6KKEh7cU9++m77iGMwCgYIKoZIzj0EAwIDSQAwRgIh\n"
    "AOADhtuvglQUGNH0+36hbnTA16EAE2Y43vDtmbTc1k2zAiEA5BXWDoZvcv49J/wx\n"
    "kvO+3nPdSLXJWUqjYi4VGFLb4kk=\n"
    "-----END CERTIFICATE-----\n";

ordered_json HeaderJson(const FrameHeader& h) {
  return {{"type", static_cast<int>(h.type)},
          {"flags", h.flags},
          {"sender", Hex32(h.sender)},
          {"key_version", h.key_version},
          {"counter", h.counter},
          {"request_id", h.request_id}};
}

template <typename Body>
ordered_json Frame(const std::string& name, FrameHeader h, const Body& body,
                   const SymmetricKeys& keys, const Iv& iv,
                   ordered_json fields) {
  h.type = Body::kType;
  Bytes plain;
  body.EncodeTo(&plain);
  auto frame = WithIv(iv, [&] { return SealFrame(h, plain, keys); });
  if (!frame.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(),
                 frame.status().ToString().c_str());
    std::exit(1);
  }
  return {{"name", name},
          {"enc_key", Hex(keys.RawEncKeyBytes().span())},
          {"mac_key", Hex(keys.RawMacKeyBytes().span())},
          {"header", HeaderJson(h)},
          {"iv", Hex(iv)},
          {"fields", std::move(fields)},
          {"body", Hex(plain)},
          {"frame", Hex(*frame)}};
}

// group_join, group_sync_req, group_sync_ans (0x13, 0x15, 0x16; docs/
// protocol.md section 14) under the member's NKSK.
void AddGroupFrames(const FrameHeader& member, const FrameHeader& from_ks,
                    const SymmetricKeys& nksk, ordered_json* frames) {
  GroupJoin join;
  join.group_id = 0x00c0ffee;
  join.key_version = 3;
  join.mode = GroupMode::kSenderAuth;
  join.rekey_topic = T(0xa0);
  join.data_topic = T(0xb0);
  for (size_t i = 0; i < join.ks_sign_public.size(); ++i)
    join.ks_sign_public[i] = static_cast<uint8_t>(0xd0 + i);
  join.path = Pattern(0x01, 40);  // opaque here (section 12: group_path)
  join.members = {{0x0a0b0c0d, {}}, {0x0e0f1011, {}}};
  join.members[1].sign_public.fill(0x5a);
  ordered_json members = ordered_json::array();
  for (const GroupMember& m : join.members) {
    members.push_back(
        {{"n_id", Hex32(m.n_id)}, {"sign_public", Hex(m.sign_public)}});
  }
  ordered_json fields = {{"group_id", Hex32(join.group_id)},
                         {"key_version", join.key_version},
                         {"mode", 1},
                         {"rekey_topic", Hex(join.rekey_topic)},
                         {"data_topic", Hex(join.data_topic)},
                         {"ks_sign_public", Hex(join.ks_sign_public)},
                         {"path", Hex(join.path.span())},
                         {"members", members}};
  frames->push_back(
      Frame("group_join", from_ks, join, nksk, FixedIv(0xa8), fields));
  GroupSyncAns ans;
  ans.group_id = join.group_id;
  ans.key_version = join.key_version;
  ans.mode = join.mode;
  ans.rekey_topic = join.rekey_topic;
  ans.data_topic = join.data_topic;
  ans.ks_sign_public = join.ks_sign_public;
  ans.path = join.path.Clone();
  ans.members = join.members;
  frames->push_back(
      Frame("group_sync_ans", from_ks, ans, nksk, FixedIv(0xa9), fields));
  GroupJoin gone;  // no path: the node is not (or no longer) a member
  gone.group_id = join.group_id;
  gone.key_version = 4;
  frames->push_back(Frame("group_join (gone)", from_ks, gone, nksk,
                          FixedIv(0xaa),
                          {{"group_id", Hex32(gone.group_id)},
                           {"key_version", 4},
                           {"mode", 0},
                           {"rekey_topic", Hex(gone.rekey_topic)},
                           {"data_topic", Hex(gone.data_topic)},
                           {"ks_sign_public", Hex(gone.ks_sign_public)},
                           {"path", ""},
                           {"members", ordered_json::array()}}));
  GroupSyncReq req;
  req.group_id = join.group_id;
  req.have_version = 2;
  req.sign_public.fill(0x5a);
  frames->push_back(Frame("group_sync_req", member, req, nksk, FixedIv(0xab),
                          {{"group_id", Hex32(req.group_id)},
                           {"have_version", 2},
                           {"sign_public", Hex(req.sign_public)}}));
}

// The AC's group frames (0x28..0x2F), clear inside CMS.
template <typename AddClear>
void AddGroupClearFrames(AddClear add) {
  auto body = [](const auto& m) {
    Bytes b;
    m.EncodeTo(&b);
    return b;
  };
  const uint32_t a = 0x0a0b0c0d, b = 0x0e0f1011, g = 0x00c0ffee;
  add("ac_group_create_req", FrameType::kAcGroupCreateReq,
      body(AcGroupCreateReq{
          "hall-lights", GroupMode::kSenderAuth, 86400, {a, b}}),
      {{"name", "hall-lights"},
       {"mode", 1},
       {"lifetime_s", 86400},
       {"members", {Hex32(a), Hex32(b)}}});
  add("ac_group_create_ans", FrameType::kAcGroupCreateAns,
      body(AcGroupCreateAns{0, g, 1, ""}),
      {{"status", 0},
       {"group_id", Hex32(g)},
       {"key_version", 1},
       {"message", ""}});
  add("ac_group_members_req", FrameType::kAcGroupMembersReq,
      body(AcGroupMembersReq{"hall-lights", 0, {b}}),
      {{"name", "hall-lights"}, {"add", 0}, {"members", {Hex32(b)}}});
  const std::string refused = "node 0e0f1011 is not a member of 'hall-lights'";
  add("ac_group_members_ans (refused)", FrameType::kAcGroupMembersAns,
      body(AcGroupMembersAns{5, 0, 0, refused}),
      {{"status", 5},
       {"group_id", Hex32(0)},
       {"key_version", 0},
       {"message", refused}});
  add("ac_group_list_req", FrameType::kAcGroupListReq,
      body(AcGroupListReq{g, a}),
      {{"after", Hex32(g)}, {"member_after", Hex32(a)}});
  AcGroupListAns list;
  list.more = 2;
  list.groups.push_back(
      {g, "hall-lights", GroupMode::kSenderAuth, 86400, 2, {b}});
  add("ac_group_list_ans", FrameType::kAcGroupListAns, body(list),
      {{"status", 0},
       {"more", 2},
       {"groups",
        {{{"group_id", Hex32(g)},
          {"name", "hall-lights"},
          {"mode", 1},
          {"lifetime_s", 86400},
          {"key_version", 2},
          {"members", {Hex32(b)}}}}}});
  add("ac_group_delete_req", FrameType::kAcGroupDeleteReq,
      body(AcGroupDeleteReq{"hall-lights"}), {{"name", "hall-lights"}});
  add("ac_group_delete_ans", FrameType::kAcGroupDeleteAns,
      body(AcGroupDeleteAns{0, g, 2, ""}),
      {{"status", 0},
       {"group_id", Hex32(g)},
       {"key_version", 2},
       {"message", ""}});
}

// group_data (0x14, docs/protocol.md section 13): one frame per mode, with
// the group key, the derived K and (mode 1) the Ed25519 key and signature.
ordered_json GroupDataVectors() {
  ordered_json out = ordered_json::array();
  const uint32_t group = 0x00c0ffee;
  const SecretBytes group_key = Pattern(0xc0, kGroupKeySize);
  const SecretBytes signer = Pattern(0xe0, kEd25519PrivateSize);
  for (GroupMode mode : {GroupMode::kGroupKey, GroupMode::kSenderAuth}) {
    FrameHeader h;
    h.type = FrameType::kGroupData;
    h.sender = 0x0a0b0c0d;
    h.key_version = 4;
    h.counter = 1700000000000009;
    h.request_id = 0x1122334455667788;
    SymmetricKeys keys = *GroupDataKeys(group_key, group, h.key_version);
    const Bytes data = {'t', 'e', 'm', 'p', ' ', '2', '1'};
    const Iv iv = FixedIv(0xd0);
    auto frame = WithIv(
        iv, [&] { return SealGroupData(h, group, mode, data, keys, &signer); });
    if (!frame.ok()) {
      std::fprintf(stderr, "group_data: %s\n",
                   frame.status().ToString().c_str());
      std::exit(1);
    }
    ordered_json v = {
        {"name", std::string("group_data_") + std::string(GroupModeName(mode))},
        {"group_id", Hex32(group)},
        {"mode", static_cast<int>(mode)},
        {"group_key", Hex(group_key.span())},
        {"enc_key", Hex(keys.RawEncKeyBytes().span())},
        {"mac_key", Hex(keys.RawMacKeyBytes().span())},
        {"header", HeaderJson(h)},
        {"iv", Hex(iv)},
        {"data", Hex(data)}};
    if (mode == GroupMode::kSenderAuth) {
      v["ed25519_private"] = Hex(signer.span());
      v["ed25519_public"] = Hex(Ed25519FromSeed(signer.span())->public_key);
      Bytes to_sign = GroupSignedBytes(h, group, mode, data);
      v["signed"] = Hex(to_sign);
      v["signature"] = Hex(*Ed25519Sign(signer, {to_sign}));
    }
    v["frame"] = Hex(*frame);
    out.push_back(std::move(v));
  }
  return out;
}

ordered_json Build() {
  ordered_json out;
  out["description"] =
      "kgr test vectors, generated by tests/vectors/gen_vectors.cc; see "
      "docs/protocol.md. Hex strings are lower case; integers are decimal.";
  out["version"] = kFrameVersion;

  // Registration keys and NTAG.
  SecretBytes ntag = Pattern(0xa0, kNtagSize);
  const uint32_t n1 = 0x0a0b0c0d, n2 = 0x01020304, ks = 0x11223344;
  auto req_keys = *RegistrationKeys(ntag, n1, FrameType::kNkskKeyReq);
  auto ans_keys = *RegistrationKeys(ntag, n1, FrameType::kNkskKeyAns);
  Bytes kedk = {0x00, 0x04, 0xde, 0xad, 0xbe, 0xef};
  SecretBytes salt = Pattern(0x55, kNtagSaltSize);
  out["derivations"] = {
      {{"name", "registration_keys"},
       {"ntag", Hex(ntag.span())},
       {"n_id", Hex32(n1)},
       {"nksk_key_req",
        {{"enc_key", Hex(req_keys.RawEncKeyBytes().span())},
         {"mac_key", Hex(req_keys.RawMacKeyBytes().span())}}},
       {"nksk_key_ans",
        {{"enc_key", Hex(ans_keys.RawEncKeyBytes().span())},
         {"mac_key", Hex(ans_keys.RawMacKeyBytes().span())}}}},
      {{"name", "registration_request_id"},
       {"ntag", Hex(ntag.span())},
       {"request_id", RegistrationRequestId(ntag)}},
      {{"name", "rotation_keys"},
       {"shared", Hex(Pattern(0x33, 32).span())},
       {"n_id", Hex32(n1)},
       {"version", 2},
       {"node_public", Hex(Pattern(0x20, 32).span())},
       {"ks_public", Hex(Pattern(0x60, 32).span())},
       {"keys", HexKeys(*RotationKeys(Pattern(0x33, 32), n1, 2,
                                      Pattern(0x20, 32).span(),
                                      Pattern(0x60, 32).span()))}},
      {{"name", "ntag"},
       {"n_id", Hex32(n1)},
       {"kedk_public", Hex(kedk)},
       {"entry_no", 7},
       {"salt", Hex(salt.span())},
       {"ntag", Hex(ComputeNtag(n1, kedk, 7, salt.span()).span())}}};

  FrameHeader h;
  h.sender = n1;
  h.key_version = 1;
  h.counter = 1700000000000001;
  h.request_id = 0x0123456789abcdef;
  FrameHeader from_ks = h;
  from_ks.sender = ks;
  SymmetricKeys nksk1 = Keys(0x10, 0x30), nksk2 = Keys(0x50, 0x70);
  SymmetricKeys nnsk = Keys(0x90, 0xb0);
  FrameHeader reg = h;
  reg.key_version = 0;
  FrameHeader reg_ans = from_ks;
  reg_ans.key_version = 0;
  FrameHeader n2h = h;
  n2h.sender = n2;
  FrameHeader renew = h;
  renew.flags = kFlagRenewal;

  ordered_json frames = ordered_json::array();
  frames.push_back(Frame("nksk_key_req", reg,
                         NkskKeyReq{n1, ntag.Clone(), T(0x20)}, req_keys,
                         FixedIv(0x00),
                         {{"n_id", Hex32(n1)},
                          {"ntag", Hex(ntag.span())},
                          {"topic2", Hex(T(0x20))}}));
  frames.push_back(Frame(
      "nksk_key_ans", reg_ans, NkskKeyAns{nksk1.Clone(), T(0x40)}, ans_keys,
      FixedIv(0x10), {{"nksk", HexKeys(nksk1)}, {"topic1", Hex(T(0x40))}}));
  frames.push_back(
      Frame("nnsk_key_req", h, NnskKeyReq{n2, 1, T(0x60)}, nksk1, FixedIv(0x20),
            {{"n_id2", Hex32(n2)}, {"version", 1}, {"topic3", Hex(T(0x60))}}));
  frames.push_back(
      Frame("nnsk_key_req (renewal)", renew, NnskKeyReq{n2, 2, T(0x61)}, nksk1,
            FixedIv(0x21),
            {{"n_id2", Hex32(n2)}, {"version", 2}, {"topic3", Hex(T(0x61))}}));
  frames.push_back(Frame("nnsk_key_ans", from_ks,
                         NnskKeyAns{n1, n2, 1, nnsk.Clone()}, nksk1,
                         FixedIv(0x30),
                         {{"n_id1", Hex32(n1)},
                          {"n_id2", Hex32(n2)},
                          {"version", 1},
                          {"nnsk", HexKeys(nnsk)}}));
  frames.push_back(Frame("nnsk_not_req", from_ks,
                         NnskNotReq{n1, 1, nnsk.Clone(), T(0x60)}, nksk2,
                         FixedIv(0x40),
                         {{"n_id1", Hex32(n1)},
                          {"version", 1},
                          {"nnsk", HexKeys(nnsk)},
                          {"topic3", Hex(T(0x60))}}));
  frames.push_back(Frame(
      "nnsk_not_ans", n2h, NnskNotAns{n1, n2, T(0x70)}, nksk2, FixedIv(0x50),
      {{"n_id1", Hex32(n1)}, {"n_id2", Hex32(n2)}, {"topic4", Hex(T(0x70))}}));
  frames.push_back(Frame(
      "nnsk_conf_req", from_ks, NnskConfReq{n1, n2, T(0x70)}, nksk1,
      FixedIv(0x60),
      {{"n_id1", Hex32(n1)}, {"n_id2", Hex32(n2)}, {"topic4", Hex(T(0x70))}}));
  frames.push_back(Frame("nnsk_conf_ans", h, NnskConfAns{n2}, nksk1,
                         FixedIv(0x70), {{"n_id2", Hex32(n2)}}));
  frames.push_back(
      Frame("ks_error", from_ks,
            KsError{FrameType::kNnskKeyReq, KsErrorCode::kPairNotAllowed},
            nksk1, FixedIv(0x80), {{"refused_type", 3}, {"code", 1}}));
  frames.push_back(Frame("pair_revoked", from_ks,
                         PairRevoked{n2, RevokeReason::kPeerRevoked}, nksk1,
                         FixedIv(0x88), {{"peer", Hex32(n2)}, {"reason", 1}}));
  Bytes node_pub(32), ks_pub(32);
  for (int i = 0; i < 32; ++i) {
    node_pub[i] = static_cast<uint8_t>(0x20 + i);
    ks_pub[i] = static_cast<uint8_t>(0x60 + i);
  }
  frames.push_back(Frame("nksk_rot_req", h, NkskRotReq{node_pub}, nksk1,
                         FixedIv(0x8a), {{"node_public", Hex(node_pub)}}));
  frames.push_back(Frame("nksk_rot_ans", from_ks, NkskRotAns{ks_pub, 2}, nksk1,
                         FixedIv(0x8b),
                         {{"ks_public", Hex(ks_pub)}, {"version", 2}}));
  frames.push_back(Frame("nksk_rot_sig", from_ks, NkskRotSig{}, nksk1,
                         FixedIv(0x8c), ordered_json::object()));
  Bytes csr;
  if (!FromHex(kCsrHex, &csr)) std::exit(1);
  frames.push_back(Frame("cert_renew_req", h, CertRenewReq{csr}, nksk1,
                         FixedIv(0x8d), {{"csr", Hex(csr)}}));
  frames.push_back(Frame("cert_renew_ans", from_ks, CertRenewAns{kChainPem},
                         nksk1, FixedIv(0x8e), {{"chain", kChainPem}}));
  frames.push_back(
      Frame("ks_error (certificate refused)", from_ks,
            KsError{FrameType::kCertRenewReq, KsErrorCode::kCertificateRefused},
            nksk1, FixedIv(0x8f), {{"refused_type", 14}, {"code", 6}}));
  frames.push_back(Frame(
      "node_data_req", h, NodeDataReq{n2, SecretBytes(AsBytes("hello bravo!"))},
      nnsk, FixedIv(0x90),
      {{"n_id2", Hex32(n2)}, {"data", Hex(AsBytes("hello bravo!"))}}));
  frames.push_back(Frame(
      "node_data_ans", n2h, NodeDataAns{n2, SecretBytes(AsBytes("ack"))}, nnsk,
      FixedIv(0xa0), {{"n_id2", Hex32(n2)}, {"data", Hex(AsBytes("ack"))}}));
  AddGroupFrames(h, from_ks, nksk1, &frames);
  out["frames"] = frames;

  // AC clear frames (carried inside CMS).
  ordered_json clear = ordered_json::array();
  auto add_clear = [&](const std::string& name, FrameType type,
                       const Bytes& body, ordered_json fields) {
    FrameHeader ch;
    ch.type = type;
    ch.sender = type == FrameType::kAcAuthorizeAns ? ks : 0;
    ch.counter = 1700000000000002;
    ch.request_id = 0xfedcba9876543210;
    auto f = EncodeClearFrame(ch, body);
    clear.push_back({{"name", name},
                     {"header", HeaderJson(ch)},
                     {"fields", std::move(fields)},
                     {"body", Hex(body)},
                     {"frame", Hex(*f)}});
  };
  Bytes b;
  AcAuthorizeReq{{n2}}.EncodeTo(&b);
  add_clear("ac_authorize_req", FrameType::kAcAuthorizeReq, b,
            {{"peers", {Hex32(n2)}}});
  b.clear();
  AcAuthorizeAns aa;
  aa.n_id = n1;
  aa.entry_no = 7;
  aa.ntag = ntag.Clone();
  aa.ks_topic1 = T(0x40);
  aa.ks_n_id = ks;
  aa.EncodeTo(&b);
  add_clear("ac_authorize_ans", FrameType::kAcAuthorizeAns, b,
            {{"status", 0},
             {"n_id", Hex32(n1)},
             {"entry_no", 7},
             {"ntag", Hex(ntag.span())},
             {"ks_topic1", Hex(T(0x40))},
             {"ks_n_id", Hex32(ks)}});
  b.clear();
  AcPeersReq{n1, 1, {n2}}.EncodeTo(&b);
  add_clear("ac_peers_req", FrameType::kAcPeersReq, b,
            {{"n_id", Hex32(n1)}, {"allow", 1}, {"peers", {Hex32(n2)}}});
  b.clear();
  AcRevokeReq{n2}.EncodeTo(&b);
  add_clear("ac_revoke_req", FrameType::kAcRevokeReq, b, {{"n_id", Hex32(n2)}});
  AddGroupClearFrames(add_clear);
  out["clear_frames"] = clear;

  // Records.
  SymmetricKeys nk = Keys(0xc0, 0xe0);
  const uint32_t owner = ks;
  ordered_json records = ordered_json::array();
  NodeDesc d;
  d.n_id = n1;
  d.entry_no = 7;
  d.state = NodeState::kRegistered;
  d.allowed_peers = {n2};
  d.last_counter = 1700000000000001;
  d.nksk_version = 1;
  d.registered_unix_ms = 1700000000000;
  d.ntag = ntag.Clone();
  d.nksk = nksk1.Clone();
  d.topic2 = T(0x20);
  records.push_back({{"name", "node_desc"},
                     {"nk", Hex(nk.RawEncKeyBytes().span())},
                     {"nksign", Hex(nk.RawMacKeyBytes().span())},
                     {"owner_n_id", Hex32(owner)},
                     {"iv", Hex(FixedIv(0xd0))},
                     {"fields",
                      {{"n_id", Hex32(n1)},
                       {"entry_no", 7},
                       {"state", 2},
                       {"allowed_peers", {Hex32(n2)}},
                       {"last_counter", d.last_counter},
                       {"nksk_version", 1},
                       {"registered_unix_ms", d.registered_unix_ms},
                       {"ntag", Hex(ntag.span())},
                       {"nksk", HexKeys(nksk1)},
                       {"topic2", Hex(T(0x20))}}},
                     {"record", Hex(*WithIv(FixedIv(0xd0), [&] {
                        return EncodeRecord(d, nk, owner);
                      }))}});
  GenKey g;
  g.n_id1 = n1;
  g.request_id = h.request_id;
  g.ctime_unix_ms = 1700000000000;
  g.step = 5;
  g.version = 1;
  g.n_id2 = n2;
  g.nnsk = nnsk.Clone();
  g.topic3 = T(0x60);
  g.topic4 = T(0x70);
  records.push_back({{"name", "gen_keys"},
                     {"nk", Hex(nk.RawEncKeyBytes().span())},
                     {"nksign", Hex(nk.RawMacKeyBytes().span())},
                     {"owner_n_id", Hex32(owner)},
                     {"iv", Hex(FixedIv(0xd1))},
                     {"fields",
                      {{"n_id1", Hex32(n1)},
                       {"request_id", g.request_id},
                       {"ctime_unix_ms", g.ctime_unix_ms},
                       {"step", 5},
                       {"renewal", 0},
                       {"version", 1},
                       {"n_id2", Hex32(n2)},
                       {"nnsk", HexKeys(nnsk)},
                       {"topic3", Hex(T(0x60))},
                       {"topic4", Hex(T(0x70))}}},
                     {"record", Hex(*WithIv(FixedIv(0xd1), [&] {
                        return EncodeRecord(g, nk, owner);
                      }))}});
  SesKey k;
  k.n_id = n2;
  k.ctime_unix_ms = 1700000000000;
  k.key_version = 1;
  k.frames_sent = 3;
  k.bytes_sent = 36;
  k.rx_counter = 1700000000000009;
  k.nnsk = nnsk.Clone();
  k.topic3 = T(0x60);
  k.topic4 = T(0x70);
  records.push_back({{"name", "ses_keys"},
                     {"nk", Hex(nk.RawEncKeyBytes().span())},
                     {"nksign", Hex(nk.RawMacKeyBytes().span())},
                     {"owner_n_id", Hex32(n1)},
                     {"iv", Hex(FixedIv(0xd2))},
                     {"fields",
                      {{"n_id", Hex32(n2)},
                       {"ctime_unix_ms", k.ctime_unix_ms},
                       {"key_version", 1},
                       {"frames_sent", 3},
                       {"bytes_sent", 36},
                       {"rx_counter", k.rx_counter},
                       {"nnsk", HexKeys(nnsk)},
                       {"topic3", Hex(T(0x60))},
                       {"topic4", Hex(T(0x70))}}},
                     {"record", Hex(*WithIv(FixedIv(0xd2), [&] {
                        return EncodeRecord(k, nk, n1);
                      }))}});
  out["records"] = records;
  out["group_rekey"] = GroupRekeyVectors();
  out["group_data"] = GroupDataVectors();
  return out;
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) {
  std::string text = kgr::Build().dump(2) + "\n";
  if (argc == 3 && std::string(argv[1]) == "--check") {
    std::ifstream in(argv[2]);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str() != text) {
      std::fprintf(stderr,
                   "%s differs from what the library produces; regenerate "
                   "with kgr-vectors > %s and review the diff\n",
                   argv[2], argv[2]);
      return 1;
    }
    std::printf("%s: all vectors reproduced\n", argv[2]);
    return 0;
  }
  if (argc != 1) {
    std::fprintf(stderr, "usage: kgr-vectors [--check FILE]\n");
    return 2;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}
