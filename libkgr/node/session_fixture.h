// The KED fixture (ked_fixture.h) for the session key tests
// (renewal_faults_test.cc, request_id_test.cc): renewal requests, and the
// keys the KS handed out per request id.
#ifndef KGR_NODE_SESSION_FIXTURE_H_
#define KGR_NODE_SESSION_FIXTURE_H_

#include <map>
#include <optional>
#include <set>
#include <string>

#include "node/ked_fixture.h"

namespace kgr::testing {

class SessionKeyTest : public KedFixture {
 protected:
  // A renewal request (the flag set also for a first key).
  Status RequestKey(KedNode& a, KedNode& b, uint64_t timeout_ms = 0) {
    return KedFixture::RequestKey(a, b, /*renew=*/true, timeout_ms);
  }

  // Every key the KS sent in an nnsk_key_ans or nnsk_not_req so far, per
  // request id (the frames are opened with the receivers' NKSKs).
  std::map<uint64_t, std::set<std::string>> KeysPerRequest() {
    std::map<uint64_t, std::set<std::string>> keys;
    for (const auto& m : broker_.published()) {
      if (m.sender != "ks") continue;
      auto h = PeekFrameHeader(m.payload);
      if (!h.ok() || (h->type != FrameType::kNnskKeyAns &&
                      h->type != FrameType::kNnskNotReq)) {
        continue;
      }
      for (auto& n : all_) {
        if (m.topic.find(NodeIdentity(n->n_id)) == std::string::npos) continue;
        auto own = LoadOwnData(n->tpm);
        if (!own.ok() || !own->ks.has_value()) continue;
        FrameHeader opened;
        auto plain = OpenFrame(m.payload, own->ks->nksk, &opened);
        if (!plain.ok()) continue;
        const SecretBytes* enc = nullptr;
        std::optional<NnskKeyAns> ans;
        std::optional<NnskNotReq> not_req;
        if (h->type == FrameType::kNnskKeyAns) {
          if (auto x = NnskKeyAns::Parse(plain->span()); x.ok()) {
            ans = std::move(*x);
            enc = &ans->nnsk.RawEncKeyBytes();
          }
        } else if (auto x = NnskNotReq::Parse(plain->span()); x.ok()) {
          not_req = std::move(*x);
          enc = &not_req->nnsk.RawEncKeyBytes();
        }
        if (enc != nullptr) {
          keys[h->request_id].insert(
              std::string(enc->span().begin(), enc->span().end()));
        }
      }
    }
    return keys;
  }

  void ExpectAtMostOneKeyPerRequest() {
    for (const auto& [id, keys] : KeysPerRequest()) {
      EXPECT_LE(keys.size(), 1u)
          << "request " << std::hex << id << " got " << keys.size() << " keys";
    }
  }
};

}  // namespace kgr::testing

#endif  // KGR_NODE_SESSION_FIXTURE_H_
