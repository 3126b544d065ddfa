// AcClient: the Authorization Centre's side of its exchanges with the KS
// (seed 4.3, 4.6): authorize a node, allow or withdraw pairs, list nodes.
// Requests are clear frames signed by the AC's certificate and encrypted to
// the KS's certificate (CMS, see cms.h), over MQTT: the broker never sees an
// NTAG. Answers come back the same way on <prefix>/ac/replies.
//
// Thread safety: none; call from one thread (an EventLoop).
#ifndef KGR_AC_CLIENT_H_
#define KGR_AC_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "kgr/clock.h"
#include "kgr/cms.h"
#include "kgr/counter_lanes.h"
#include "kgr/frame.h"
#include "kgr/group_frames.h"
#include "kgr/transport.h"

namespace kgr {

class AcClient {
 public:
  // References must outlive the client.
  AcClient(Transport& transport, const CmsEndpoint& me, Bytes ks_cert_der,
           Clock& clock, std::string topic_prefix);

  Status Start();  // subscribes <prefix>/ac/replies
  void HandleMessage(const std::string& topic, const Bytes& payload);

  // Each callback runs once, with the KS's answer (status field checked:
  // a refusal comes back as a Status).
  void Authorize(std::vector<uint32_t> peers,
                 std::function<void(StatusOr<AcAuthorizeAns>)> done);
  void SetPeers(uint32_t n_id, bool allow, std::vector<uint32_t> peers,
                std::function<void(Status)> done);
  // Every node the KS knows, ascending by N_ID: asks page after page (each
  // fits the broker's packet limit) and answers once, with all of them.
  void List(std::function<void(StatusOr<AcListAns>)> done);
  // One node's entry (one page request); NOT_FOUND if the KS has no node
  // `n_id`.
  void GetNode(uint32_t n_id,
               std::function<void(StatusOr<AcListAns::Entry>)> done);
  // Revokes a node; the answer says how many of its peers were told.
  void Revoke(uint32_t n_id, std::function<void(StatusOr<AcRevokeAns>)> done);

  // Groups (kgr/group_frames.h). A refusal comes back as a Status with the
  // KS's reason ("unknown group 'x'", "node 0000abcd is not authorized").
  void GroupCreate(AcGroupCreateReq req,
                   std::function<void(StatusOr<AcGroupCreateAns>)> done);
  void GroupMembers(AcGroupMembersReq req,
                    std::function<void(StatusOr<AcGroupMembersAns>)> done);
  void GroupDelete(std::string name,
                   std::function<void(StatusOr<AcGroupDeleteAns>)> done);
  // Every group, ascending by id (page after page).
  void GroupList(std::function<void(StatusOr<AcGroupListAns>)> done);

  size_t pending() const { return pending_.size(); }

 private:
  using Raw = std::function<void(StatusOr<std::pair<FrameType, SecretBytes>>)>;
  void Send(FrameType type, const Bytes& body, Raw done);
  // Sends `req` and answers with the KS's answer of type Ans, parsed and
  // its status field checked (a refusal of the `what` comes back as a
  // Status).
  template <typename Ans, typename Req>
  void Ask(const Req& req, const char* what,
           std::function<void(StatusOr<Ans>)> done);
  // One page of the list (status checked).
  void ListPage(uint32_t after, std::function<void(StatusOr<AcListAns>)> done);
  // The pages after `after`, appended to `*all`.
  void ListFrom(uint32_t after, std::shared_ptr<AcListAns> all,
                std::function<void(StatusOr<AcListAns>)> done);
  void GroupListFrom(AcGroupListReq from, std::shared_ptr<AcGroupListAns> all,
                     std::function<void(StatusOr<AcGroupListAns>)> done);

  Transport& transport_;
  const CmsEndpoint& me_;
  Bytes ks_cert_der_;
  Clock& clock_;
  std::string prefix_;
  FrameCounter counter_;
  LaneReplayWindows ks_window_;  // one window per KS instance's lane
  std::map<uint64_t, Raw> pending_;
};

// A node's broker client certificate: CN "n<8 hex>", OU kgr-node,
// clientAuth, EC P-256, signed by the KED CA or an intermediate of it.
struct IssuedCertificate {
  std::string cert_pem;
  SecretBytes key_pem;
};
// Rewrites the CA's certificate revocation list `crl_file` (PEM, mode 0644,
// atomically): the entries it had, plus the serial of the certificate in
// `revoke_cert_file` if that is non-empty; valid for `days`. The broker reads
// it (broker-config `--crlfile`) and re-reads it on SIGHUP, after which it
// refuses TLS connections with a revoked certificate.
Status UpdateCrl(const std::string& ca_cert_file,
                 const std::string& ca_key_file, const std::string& crl_file,
                 const std::string& revoke_cert_file, int days);

// Signed by the issuing CA in `ca_cert_file` (an intermediate's certificate
// chain, or the root itself); `cert_pem` is the chain below the root.
StatusOr<IssuedCertificate> IssueNodeCertificate(
    const std::string& ca_cert_file, const std::string& ca_key_file,
    uint32_t n_id, int64_t seconds);

}  // namespace kgr

#endif  // KGR_AC_CLIENT_H_
