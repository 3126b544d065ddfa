#include "checker.h"

#include <cstring>
#include <memory>
#include <optional>

#include "kgr/frame.h"
#include "kgr/topic.h"
#include "world.h"

namespace kgr::sim {
namespace {

uint64_t Load8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint64_t Fnv1a(std::span<const uint8_t> data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint8_t b : data) h = (h ^ b) * 0x100000001b3ULL;
  return h;
}

std::string KeyString(const SymmetricKeys& k) {
  std::span<const uint8_t> enc = k.RawEncKeyBytes().span();
  return std::string(enc.begin(), enc.end());
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

const std::set<std::string>& Checker::AllInvariants() {
  static const std::set<std::string> all = {"data_accepted_once",
                                            "one_key_per_request",
                                            "forbidden_pair_gets_nothing",
                                            "no_secret_on_wire",
                                            "no_secret_in_logs",
                                            "every_node_registers",
                                            "pairs_converge",
                                            "fresh_pairing_works",
                                            "processes_restart",
                                            "group_backward_secrecy",
                                            "group_forward_secrecy",
                                            "group_one_key_per_epoch",
                                            "group_data_accepted_once",
                                            "groups_converge"};
  return all;
}

void Checker::Fail(const std::string& invariant, const std::string& detail) {
  if (failed()) return;
  if (!only_.empty() && !only_.count(invariant) && invariant != "setup") {
    if (world_ != nullptr && noted_.insert(invariant).second) {
      world_->Note("(not checked) " + invariant + ": " + detail);
    }
    return;
  }
  invariant_ = invariant;
  detail_ = detail;
  if (world_ != nullptr) world_->Note("VIOLATION " + invariant + ": " + detail);
}

// ---- secrets ----

void Checker::AddSecret(std::span<const uint8_t> secret,
                        const std::string& what) {
  if (secret.size() < 8) return;
  auto& bucket = secrets_[Load8(secret.data())];
  for (const auto& [s, w] : bucket) {
    if (s.size() == secret.size() &&
        std::equal(s.begin(), s.end(), secret.begin())) {
      return;
    }
  }
  bucket.emplace_back(Bytes(secret.begin(), secret.end()), what);
}

void Checker::AddKeys(const SymmetricKeys& keys, const std::string& what) {
  if (!keys.valid()) return;
  AddSecret(keys.RawEncKeyBytes().span(), what + " (enc)");
  AddSecret(keys.RawMacKeyBytes().span(), what + " (mac)");
}

const std::string* Checker::FindSecret(std::span<const uint8_t> data) const {
  for (size_t i = 0; i + 8 <= data.size(); ++i) {
    auto it = secrets_.find(Load8(data.data() + i));
    if (it == secrets_.end()) continue;
    for (const auto& [s, what] : it->second) {
      if (i + s.size() <= data.size() &&
          std::memcmp(data.data() + i, s.data(), s.size()) == 0) {
        return &what;
      }
    }
  }
  return nullptr;
}

void Checker::OnLog(std::string_view line) {
  auto bytes = std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(line.data()), line.size());
  if (const std::string* what = FindSecret(bytes)) {
    return Fail("no_secret_in_logs", *what + " in the log line: " +
                                         std::string(line.substr(0, 200)));
  }
  // Runs of hex digits, decoded at both alignments.
  for (size_t i = 0; i < line.size();) {
    size_t j = i;
    while (j < line.size() && HexValue(line[j]) >= 0) ++j;
    if (j - i >= 16) {
      for (size_t start = i; start < i + 2; ++start) {
        Bytes decoded;
        for (size_t k = start; k + 1 < j; k += 2) {
          decoded.push_back(static_cast<uint8_t>(HexValue(line[k]) << 4 |
                                                 HexValue(line[k + 1])));
        }
        if (const std::string* what = FindSecret(decoded)) {
          return Fail("no_secret_in_logs",
                      *what + " (hex) in the log line: " +
                          std::string(line.substr(0, 200)));
        }
      }
    }
    i = j + 1;
  }
}

// ---- the wire ----

void Checker::OnPublish(const std::string& from, const std::string& topic,
                        const Bytes& payload) {
  if (const std::string* what = FindSecret(payload)) {
    return Fail("no_secret_on_wire",
                *what + " in clear in a frame from " + from + " on " + topic);
  }
  // The KS, or another instance of a clustered KS ("ks-<lane>").
  if (from == kKsIdentity || from.starts_with(std::string(kKsIdentity) + "-")) {
    OnKsFrame(topic, payload);
  }
}

void Checker::OnKsFrame(const std::string& topic, const Bytes& payload) {
  // group_rekey is signed, not sealed (PeekFrameHeader refuses it).
  if (payload.size() > 1 &&
      payload[1] == static_cast<uint8_t>(FrameType::kGroupRekey)) {
    world_->Count("wire.group_rekey");
    return oracle_.OnRekeyFrame(payload);
  }
  auto h = PeekFrameHeader(payload);
  // <prefix>/<node identity>/<TOPIC2>
  size_t a = topic.find('/'), b = topic.find('/', a + 1);
  if (a == std::string::npos || b == std::string::npos) return;
  SimNode* node = world_->ByName(topic.substr(a + 1, b - a - 1));
  if (node == nullptr || !h.ok()) return;
  if (h->type == FrameType::kNkskKeyAns) {
    auto keys = RegistrationKeys(node->ntag, node->n_id, h->type);
    FrameHeader opened;
    auto ans = keys.ok() ? OpenBody<NkskKeyAns>(payload, *keys, &opened)
                         : StatusOr<NkskKeyAns>(keys.status());
    if (!ans.ok()) return void(++undecryptable_);
    return AddKeys(ans->nksk, "NKSK of " + node->name);
  }
  NodeDescStore* nodes = world_->node_store();
  if (nodes == nullptr) return void(++undecryptable_);
  auto d = nodes->Get(node->n_id);
  if (!d.ok()) return void(++undecryptable_);
  AddKeys(d->nksk, "NKSK of " + node->name);
  AddKeys(d->prev_nksk, "previous NKSK of " + node->name);
  FrameHeader opened;
  auto plain = OpenFrame(payload, d->nksk, &opened);
  if (!plain.ok() && d->prev_nksk.valid()) {
    plain = OpenFrame(payload, d->prev_nksk, &opened);
  }
  if (!plain.ok()) return void(++undecryptable_);
  if (h->type == FrameType::kGroupJoin || h->type == FrameType::kGroupSyncAns) {
    return OnKsGroupPath(*node, h->type, plain->span());
  }
  if (h->type == FrameType::kNnskKeyAns) {
    auto m = NnskKeyAns::Parse(plain->span());
    if (!m.ok()) return;
    RecordKey({m->n_id1, m->n_id2, m->version, h->request_id}, m->nnsk);
  } else if (h->type == FrameType::kNnskNotReq) {
    auto m = NnskNotReq::Parse(plain->span());
    if (!m.ok()) return;
    RecordKey({m->n_id1, node->n_id, m->version, h->request_id}, m->nnsk);
  }
}

void Checker::RecordKey(const Origin& o, const SymmetricKeys& k) {
  AddKeys(k, "NNSK " + FormatNodeId(o.n_id1) + "-" + FormatNodeId(o.n_id2) +
                 " v" + std::to_string(o.version));
  key_origin_.emplace(KeyString(k), o);
  bool first =
      first_seen_ms_
          .emplace(std::make_pair(o.n_id1, o.request_id), world_->now_ms())
          .second;
  if (first) CheckIssued(o);
}

void Checker::CheckIssued(const Origin& o) {
  auto it = forbidden_ms_.find(PairKey(o.n_id1, o.n_id2));
  if (it == forbidden_ms_.end()) return;
  Fail("forbidden_pair_gets_nothing",
       "the KS issued a new key (request " + Hex64(o.request_id) + ") for " +
           FormatNodeId(o.n_id1) + "-" + FormatNodeId(o.n_id2) +
           " after the pair was withdrawn or a node revoked");
}

void Checker::OnForbidden(uint32_t a, uint32_t b) {
  forbidden_ms_.emplace(PairKey(a, b), world_->now_ms());
}

// ---- the nodes ----

void Checker::AfterNodeDelivery(SimNode& n) {
  if (!n.up || failed()) return;
  CheckNodeGroups(n);
  if (failed()) return;
  for (auto& m : world_->nodes()) {
    if (m.get() == &n) continue;
    auto rec = n.ses->Get(m->n_id);
    if (!rec.ok()) {
      if (world_->Forbidden(n.n_id, m->n_id)) wiped_.insert({n.n_id, m->n_id});
      continue;
    }
    if (!rec->nnsk.valid()) continue;
    if (wiped_.count({n.n_id, m->n_id})) {
      return Fail("forbidden_pair_gets_nothing",
                  n.name + " installed a key (v" +
                      std::to_string(rec->key_version) + ") with " + m->name +
                      " after it wiped the withdrawn/revoked pair");
    }
    if (!rec->topic4.has_value()) continue;
    auto o = key_origin_.find(KeyString(rec->nnsk));
    if (o == key_origin_.end()) continue;
    auto& keys = completed_[{o->second.n_id1, o->second.request_id}];
    keys.insert(o->first);
    if (keys.size() > 1) {
      return Fail("one_key_per_request",
                  "request " + Hex64(o->second.request_id) + " of " +
                      FormatNodeId(o->second.n_id1) + " has " +
                      std::to_string(keys.size()) +
                      " different keys completed; " + n.name + " holds v" +
                      std::to_string(rec->key_version) + " with " + m->name);
    }
  }
}

void Checker::OnData(SimNode& receiver, uint32_t peer, const Bytes* frame) {
  if (frame == nullptr) return;
  SimNode* p = world_->ByNid(peer);
  std::string from = p ? p->name : FormatNodeId(peer);
  if (!accepted_[receiver.n_id].insert(Fnv1a(*frame)).second) {
    return Fail("data_accepted_once", receiver.name +
                                          " accepted a data frame from " +
                                          from + " a second time");
  }
  if (wiped_.count({receiver.n_id, peer})) {
    Fail("forbidden_pair_gets_nothing",
         receiver.name + " accepted data from " + from +
             " after it wiped the withdrawn/revoked pair");
  }
}

// ---- liveness ----

bool Checker::PairChecks(SimNode& a, SimNode& b, std::string* why) {
  auto ra = a.ses->Get(b.n_id);
  auto rb = b.ses->Get(a.n_id);
  bool ka = ra.ok() && ra->nnsk.valid(), kb = rb.ok() && rb->nnsk.valid();
  if (!ka && !kb) return true;
  auto v = [](const StatusOr<SesKey>& r) {
    if (!r.ok()) return std::string("no entry");
    std::string s = "v" + std::to_string(r->key_version);
    if (!r->nnsk.valid()) s += " without key";
    if (!r->topic4.has_value()) s += " without TOPIC4";
    return s;
  };
  *why = a.name + " holds " + v(ra) + ", " + b.name + " holds " + v(rb);
  if (!ka || !kb) return false;
  return ra->key_version == rb->key_version && ra->nnsk.Equals(rb->nnsk) &&
         ra->topic3.has_value() && ra->topic4.has_value() &&
         ra->topic3 == rb->topic4 && ra->topic4 == rb->topic3;
}

void Checker::CheckLiveness() {
  if (failed()) return;
  World& w = *world_;
  std::vector<SimNode*> live;
  for (auto& n : w.nodes()) {
    if (n->revoked) continue;
    auto d = w.node_store()->Get(n->n_id);
    bool ks_says = d.ok() && d->state == NodeState::kRegistered;
    if (!n->up || !n->client->registered()) {
      Fail("every_node_registers",
           n->name + " is not registered after healing (the KS " +
               (ks_says ? "holds it as registered" : "does not") + ")");
      if (failed()) return;
      continue;
    }
    live.push_back(n.get());
  }
  CheckGroupsConverge();
  if (failed()) return;
  std::vector<std::pair<SimNode*, SimNode*>> pairs;
  for (SimNode* a : live) {
    for (SimNode* b : live) {
      if (a->n_id < b->n_id && a->peer_file.count(b->n_id) &&
          !w.Forbidden(a->n_id, b->n_id)) {
        pairs.push_back({a, b});
      }
    }
  }
  for (auto [a, b] : pairs) {
    std::string why;
    Status used = UsePair(*a, *b);
    if (!used.ok()) {
      Fail("pairs_converge", "after healing: " + a->name + " <-> " + b->name +
                                 " cannot exchange data: " + used.ToString());
      if (failed()) return;
      continue;
    }
    if (!PairChecks(*a, *b, &why)) {
      Fail("pairs_converge", "after healing: " + why);
      if (failed()) return;
    }
  }
  for (auto& pair : pairs) {
    SimNode &a = *pair.first, &b = *pair.second;
    Status st = FreshPairing(a, b);
    if (!st.ok()) {
      Fail("fresh_pairing_works",
           a.name + " <-> " + b.name + " after healing: " + st.ToString());
      if (failed()) return;
    }
  }
}

// Waits (simulated time) for the request `start` makes to call back.
Status Checker::Wait(const std::function<void(ResultSlot)>& start) {
  auto r = std::make_shared<std::optional<Status>>();
  start(r);
  for (int i = 0; i < 240 && !r->has_value() && !failed(); ++i) {
    world_->RunFor(250);
  }
  return r->value_or(InternalError("no result"));
}

Status Checker::UsePair(SimNode& a, SimNode& b) {
  for (auto [x, y] : {std::make_pair(&a, &b), std::make_pair(&b, &a)}) {
    SimNode *from = x, *to = y;
    Status st;
    for (int attempt = 0; attempt < 8; ++attempt) {
      world_->Note("liveness: " + from->name + " uses the pair with " +
                   to->name);
      st = Wait([&](ResultSlot r) {
        from->client->Send(to->n_id, SecretBytes(AsBytes(std::string("use"))),
                           [r](StatusOr<SecretBytes> s) { *r = s.status(); });
      });
      if (st.ok()) break;
      if (st.code() == StatusCode::kFailedPrecondition) {  // no key yet
        Status got = Wait([&](ResultSlot r) {
          from->client->RequestKey(to->n_id, false, [r](Status s) { *r = s; });
        });
        if (!got.ok()) world_->RunFor(5'000);
      } else {
        world_->RunFor(5'000);  // the renewal the node started
      }
    }
    if (!st.ok()) return st;
  }
  return OkStatus();
}

Status Checker::FreshPairing(SimNode& a, SimNode& b) {
  world_->Note("liveness: " + a.name + " renews with " + b.name);
  KGR_RETURN_IF_ERROR(Wait([&](ResultSlot r) {
    a.client->RequestKey(b.n_id, true, [r](Status s) { *r = s; });
  }));
  for (auto [x, y] : {std::make_pair(&a, &b), std::make_pair(&b, &a)}) {
    SimNode *from = x, *to = y;
    KGR_RETURN_IF_ERROR(Wait([&](ResultSlot r) {
      from->client->Send(to->n_id, SecretBytes(AsBytes(std::string("probe"))),
                         [r](StatusOr<SecretBytes> s) { *r = s.status(); });
    }));
  }
  // The peer takes the renewed key into use at the first frame under it.
  std::string why;
  if (!PairChecks(a, b, &why)) return InternalError(why);
  return OkStatus();
}

}  // namespace kgr::sim
