#include "kgr/ac_client.h"

#include <spdlog/spdlog.h>

namespace kgr {
namespace {

Status FromAnswerStatus(uint8_t code, std::string_view what) {
  if (code == 0) return OkStatus();
  return Status(static_cast<StatusCode>(code),
                "the key server refused the " + std::string(what));
}

// A group answer's status, with the KS's reason when it gives one.
template <typename Ans>
Status FromGroupAnswer(const Ans& ans, std::string_view what) {
  if constexpr (requires { ans.message; }) {
    if (ans.status != 0 && !ans.message.empty()) {
      return Status(static_cast<StatusCode>(ans.status),
                    "the key server refused the " + std::string(what) + ": " +
                        ans.message);
    }
  }
  return FromAnswerStatus(ans.status, what);
}

}  // namespace

AcClient::AcClient(Transport& transport, const CmsEndpoint& me,
                   Bytes ks_cert_der, Clock& clock, std::string topic_prefix)
    : transport_(transport),
      me_(me),
      ks_cert_der_(std::move(ks_cert_der)),
      clock_(clock),
      prefix_(std::move(topic_prefix)) {}

Status AcClient::Start() {
  return transport_.Subscribe(prefix_ + "/ac/replies");
}

void AcClient::Send(FrameType type, const Bytes& body, Raw done) {
  auto id = RandomU64();
  if (!id.ok()) return done(id.status());
  FrameHeader h;
  h.type = type;
  h.sender = 0;
  h.counter = counter_.Next(clock_.NowUnixMicros());
  h.request_id = *id;
  auto clear = EncodeClearFrame(h, body);
  if (!clear.ok()) return done(clear.status());
  auto sealed = me_.SignAndEncrypt(*clear, ks_cert_der_);
  if (!sealed.ok()) return done(sealed.status());
  pending_.emplace(*id, std::move(done));
  Status st = transport_.Publish(AcRequestTopic(prefix_), *sealed);
  if (!st.ok()) {
    auto cb = std::move(pending_.at(*id));
    pending_.erase(*id);
    cb(st);
  }
}

void AcClient::HandleMessage(const std::string& topic, const Bytes& payload) {
  if (topic != prefix_ + "/ac/replies") return;
  auto opened = me_.DecryptAndVerify(payload);
  if (!opened.ok()) {
    spdlog::warn("ac: dropped reply: {}", opened.status().message());
    return;
  }
  if (opened->second.organizational_unit != "kgr-ks") {
    spdlog::warn("ac: dropped reply signed by {} (not the KS)",
                 opened->second.common_name);
    return;
  }
  FrameHeader h;
  auto body = DecodeClearFrame(opened->first.span(), &h);
  if (!body.ok()) return;
  if (!ks_window_.IsFresh(h.counter)) {
    spdlog::warn("ac: dropped replayed reply");
    return;
  }
  ks_window_.Accept(h.counter);
  auto it = pending_.find(h.request_id);
  if (it == pending_.end()) return;  // another AC process's answer
  Raw cb = std::move(it->second);
  pending_.erase(it);
  cb(std::make_pair(h.type, SecretBytes(*body)));
}

template <typename Ans, typename Req>
void AcClient::Ask(const Req& req, const char* what,
                   std::function<void(StatusOr<Ans>)> done) {
  Bytes body;
  req.EncodeTo(&body);
  Send(Req::kType, body,
       [what, done](StatusOr<std::pair<FrameType, SecretBytes>> r) {
         if (!r.ok()) return done(r.status());
         if (r->first != Ans::kType) {
           return done(InternalError("unexpected answer type"));
         }
         auto ans = Ans::Parse(r->second.span());
         if (!ans.ok()) return done(ans.status());
         Status st = FromGroupAnswer(*ans, what);
         if (!st.ok()) return done(st);
         done(std::move(*ans));
       });
}

void AcClient::Authorize(std::vector<uint32_t> peers,
                         std::function<void(StatusOr<AcAuthorizeAns>)> done) {
  Ask<AcAuthorizeAns>(AcAuthorizeReq{std::move(peers)}, "authorization",
                      std::move(done));
}

void AcClient::SetPeers(uint32_t n_id, bool allow, std::vector<uint32_t> peers,
                        std::function<void(Status)> done) {
  Ask<AcPeersAns>(
      AcPeersReq{n_id, static_cast<uint8_t>(allow ? 1 : 0), std::move(peers)},
      "peer list", [done](StatusOr<AcPeersAns> ans) { done(ans.status()); });
}

void AcClient::List(std::function<void(StatusOr<AcListAns>)> done) {
  ListFrom(0, std::make_shared<AcListAns>(), std::move(done));
}

void AcClient::GetNode(uint32_t n_id,
                       std::function<void(StatusOr<AcListAns::Entry>)> done) {
  if (n_id == 0) return done(InvalidArgumentError("N_ID 0"));
  ListPage(n_id - 1, [n_id, done](StatusOr<AcListAns> page) {
    if (!page.ok()) return done(page.status());
    if (page->nodes.empty() || page->nodes.front().n_id != n_id) {
      return done(
          NotFoundError("the key server has no node " + FormatNodeId(n_id)));
    }
    done(std::move(page->nodes.front()));
  });
}

void AcClient::ListFrom(uint32_t after, std::shared_ptr<AcListAns> all,
                        std::function<void(StatusOr<AcListAns>)> done) {
  ListPage(after, [this, after, all, done](StatusOr<AcListAns> page) {
    if (!page.ok()) return done(page.status());
    for (auto& e : page->nodes) {
      if (e.n_id <= after ||
          (!all->nodes.empty() && e.n_id <= all->nodes.back().n_id)) {
        return done(DataLossError("node list page out of order"));
      }
      all->nodes.push_back(std::move(e));
    }
    if (page->more) {
      if (page->nodes.empty()) {
        return done(DataLossError("empty node list page with more"));
      }
      return ListFrom(all->nodes.back().n_id, all, done);
    }
    done(std::move(*all));
  });
}

void AcClient::ListPage(uint32_t after,
                        std::function<void(StatusOr<AcListAns>)> done) {
  Ask<AcListAns>(AcListReq{after}, "node list", std::move(done));
}

void AcClient::Revoke(uint32_t n_id,
                      std::function<void(StatusOr<AcRevokeAns>)> done) {
  Ask<AcRevokeAns>(AcRevokeReq{n_id}, "revocation", std::move(done));
}

void AcClient::GroupCreate(
    AcGroupCreateReq req,
    std::function<void(StatusOr<AcGroupCreateAns>)> done) {
  Ask<AcGroupCreateAns>(req, "group creation", std::move(done));
}

void AcClient::GroupMembers(
    AcGroupMembersReq req,
    std::function<void(StatusOr<AcGroupMembersAns>)> done) {
  Ask<AcGroupMembersAns>(req, req.add ? "group join" : "group removal",
                         std::move(done));
}

void AcClient::GroupDelete(
    std::string name, std::function<void(StatusOr<AcGroupDeleteAns>)> done) {
  Ask<AcGroupDeleteAns>(AcGroupDeleteReq{std::move(name)}, "group deletion",
                        std::move(done));
}

void AcClient::GroupList(std::function<void(StatusOr<AcGroupListAns>)> done) {
  GroupListFrom(AcGroupListReq{}, std::make_shared<AcGroupListAns>(),
                std::move(done));
}

void AcClient::GroupListFrom(
    AcGroupListReq from, std::shared_ptr<AcGroupListAns> all,
    std::function<void(StatusOr<AcGroupListAns>)> done) {
  Ask<AcGroupListAns>(
      from, "group list",
      [this, from, all, done](StatusOr<AcGroupListAns> page) {
        if (!page.ok()) return done(page.status());
        for (auto& g : page->groups) {
          // The rest of a group whose members went on from the last page.
          const bool rest = from.member_after != 0 && !all->groups.empty() &&
                            g.group_id == from.after &&
                            all->groups.back().group_id == from.after;
          if (rest && !g.members.empty() &&
              g.members.front() > from.member_after) {
            auto& members = all->groups.back().members;
            members.insert(members.end(), g.members.begin(), g.members.end());
            continue;
          }
          if (g.group_id <= from.after) {
            return done(DataLossError("group list page out of order"));
          }
          all->groups.push_back(std::move(g));
        }
        if (page->more != 0 && !all->groups.empty()) {
          AcGroupListReq next{all->groups.back().group_id, 0};
          if (page->more == 2) {
            if (all->groups.back().members.empty())
              return done(DataLossError("group list page out of order"));
            next.member_after = all->groups.back().members.back();
          }
          return GroupListFrom(next, all, done);
        }
        done(std::move(*all));
      });
}

}  // namespace kgr
