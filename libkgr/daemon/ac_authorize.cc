// kgr-ac authorize: the KS authorizes a new node, the AC writes its
// credential file (and undoes the authorization if it cannot).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "daemon/ac_session.h"
#include "kgr/cli.h"
#include "kgr/credentials.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Undoes an authorization that cannot be completed: revokes the fresh
// N_ID, so that nothing stays authorized; says so after `why`.
Status RevokeAfter(AcSession& session, uint32_t n_id, const Status& why) {
  auto r = session.Call<StatusOr<AcRevokeAns>>(
      [n_id](AcClient& c, auto done) { c.Revoke(n_id, done); });
  const std::string id = FormatNodeId(n_id);
  if (r.ok()) {
    return Status(why.code(),
                  why.message() + "; the new node " + id +
                      " was revoked at the KS again (nothing left authorized)");
  }
  return Status(why.code(), why.message() + "; revoking the new node " + id +
                                " failed too (" + r.status().message() +
                                "): run `kgr-ac revoke --node " + id + "`");
}

// After the KS authorized `ans`: the certificate, its copy, the file.
Status FinishAuthorize(const AcOptions& o, AcSession& session,
                       const AcAuthorizeAns& ans, const std::string& ca_pem,
                       StagedFile& out) {
  KGR_ASSIGN_OR_RETURN(IssuedCertificate cert,
                       IssueNodeCertificate(o.IssuingCaFile(), o.ca_key_file,
                                            ans.n_id, o.CertSeconds()));
  Credentials c;
  c.n_id = ans.n_id;
  c.ntag = ans.ntag.Clone();
  c.broker_address = o.broker.address;
  c.topic_prefix = o.topic_prefix;
  c.ks_n_id = ans.ks_n_id;
  c.ca_pem = ca_pem;
  c.cert_pem = cert.cert_pem;
  c.key_pem = std::move(cert.key_pem);
  KGR_ASSIGN_OR_RETURN(SecretBytes file,
                       EncodeCredentialFile(c, session.cms()));
  if (!o.issued_dir.empty()) {
    KGR_RETURN_IF_ERROR(DefaultFileSystem()->WriteFileAtomic(
        o.issued_dir + "/n" + FormatNodeId(c.n_id) + ".crt",
        AsBytes(c.cert_pem), 0644));
  }
  return out.Commit(file.span());
}

}  // namespace

// Everything that can be checked is checked before the KS is asked; what
// fails after it authorized the node is undone (RevokeAfter).
Status AcAuthorize(const AcOptions& o, const AcArgs& a) {
  if (!a.out) return InvalidArgumentError("authorize needs --out FILE");
  if (o.ca_key_file.empty()) {
    return InvalidArgumentError("authorize needs --ca-key");
  }
  KGR_ASSIGN_OR_RETURN(std::string ca_pem, ReadText(o.broker.ca_file));
  // A throwaway certificate: the CA files and --cert-days work.
  KGR_RETURN_IF_ERROR(
      IssueNodeCertificate(o.IssuingCaFile(), o.ca_key_file, 0, o.CertSeconds())
          .status());
  FileSystem& fs = *DefaultFileSystem();
  std::unique_ptr<StagedFile> probe;
  if (!o.issued_dir.empty()) {
    KGR_RETURN_IF_ERROR(fs.CreateDir(o.issued_dir, 0755));
    KGR_ASSIGN_OR_RETURN(
        probe, StagedFile::Stage(fs, o.issued_dir + "/probe", 0644, 4096));
  }
  KGR_ASSIGN_OR_RETURN(auto out,
                       StagedFile::Stage(fs, *a.out, 0600, 2 * 16384));
  KGR_ASSIGN_OR_RETURN(auto session, AcSession::Open(o));
  const std::vector<uint32_t> peers = a.peers.value_or(std::vector<uint32_t>{});
  auto ans = session->Call<StatusOr<AcAuthorizeAns>>(
      [&peers](AcClient& client, auto done) { client.Authorize(peers, done); });
  if (!ans.ok()) return ans.status();
  Status st = FinishAuthorize(o, *session, *ans, ca_pem, *out);
  if (!st.ok()) return RevokeAfter(*session, ans->n_id, st);
  std::printf("authorized node %s (entry %u); credentials in %s\n",
              FormatNodeId(ans->n_id).c_str(), ans->entry_no, a.out->c_str());
  return OkStatus();
}

}  // namespace kgr
