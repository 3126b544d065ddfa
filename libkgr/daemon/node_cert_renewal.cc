#include "daemon/node_cert_renewal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "kgr/filesystem.h"
#include "kgr/node_certificate.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

constexpr uint64_t kMaxBackoffMs = 300'000;

std::string Text(const Bytes& b) { return std::string(b.begin(), b.end()); }

}  // namespace

Status RecoverNodeTlsFiles(const std::string& tls_dir) {
  FileSystem& fs = *DefaultFileSystem();
  const std::string cert = tls_dir + "/cert.pem", key = tls_dir + "/key.pem";
  if (fs.Exists(key + ".new")) {
    // Both were staged before either was renamed: the pair goes in.
    if (!fs.Exists(cert + ".new")) return fs.Remove(key + ".new");
    KGR_RETURN_IF_ERROR(fs.Rename(key + ".new", key));
  }
  if (!fs.Exists(cert + ".new")) return OkStatus();
  KGR_ASSIGN_OR_RETURN(Bytes chain, fs.ReadFile(cert + ".new"));
  KGR_ASSIGN_OR_RETURN(Bytes key_bytes, fs.ReadFile(key));
  SecretBytes key_pem(key_bytes);
  WipeVector(key_bytes);
  auto match = KeyMatchesCertificate(Text(chain), key_pem);
  if (match.ok() && *match) {
    spdlog::info("node: finishing a certificate installation");
    KGR_RETURN_IF_ERROR(fs.Rename(cert + ".new", cert));
  } else {
    KGR_RETURN_IF_ERROR(fs.Remove(cert + ".new"));
  }
  return fs.SyncDir(tls_dir);
}

Status InstallNodeTlsFiles(const std::string& tls_dir,
                           const std::string& chain_pem,
                           const SecretBytes& key_pem) {
  FileSystem& fs = *DefaultFileSystem();
  const std::string cert = tls_dir + "/cert.pem", key = tls_dir + "/key.pem";
  // Staged certificate first: a lone key.pem.new never exists, so recovery
  // can tell a complete pair from an interrupted staging.
  KGR_RETURN_IF_ERROR(
      fs.WriteFileAtomic(cert + ".new", AsBytes(chain_pem), 0644));
  KGR_RETURN_IF_ERROR(fs.WriteFileAtomic(key + ".new", key_pem.span(), 0600));
  KGR_RETURN_IF_ERROR(fs.Rename(key + ".new", key));
  KGR_RETURN_IF_ERROR(fs.Rename(cert + ".new", cert));
  return fs.SyncDir(tls_dir);
}

NodeCertRenewal::NodeCertRenewal(std::string tls_dir, int renew_at_percent,
                                 NodeClient& client, Transport& transport)
    : tls_dir_(std::move(tls_dir)),
      renew_at_percent_(renew_at_percent),
      client_(client),
      transport_(transport) {
  ReadDue();
}

void NodeCertRenewal::ReadDue() {
  due_s_ = 0;
  auto file = DefaultFileSystem()->ReadFile(tls_dir_ + "/cert.pem");
  if (!file.ok()) return;
  auto info = ReadCertificateInfo(Text(*file));
  if (!info.ok()) {
    spdlog::warn("node: broker certificate unreadable: {}",
                 info.status().message());
    return;
  }
  const int64_t span = info->not_after - info->not_before;
  due_s_ = info->not_before + span * renew_at_percent_ / 100;
  spdlog::info(
      "node: broker certificate serial {} valid until {}; renewal at {}",
      info->serial_hex, info->not_after, due_s_);
}

void NodeCertRenewal::Tick(int64_t now_unix_s, uint64_t now_ms) {
  if (renew_at_percent_ == 0 || due_s_ == 0 || in_flight_) return;
  if (now_unix_s < due_s_ || now_ms < next_try_ms_) return;
  if (!client_.registered()) return;
  Start(now_ms);
}

void NodeCertRenewal::Start(uint64_t now_ms) {
  auto csr = MakeNodeCsr(client_.n_id());
  next_try_ms_ = now_ms + backoff_ms_;
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
  if (!csr.ok()) {
    spdlog::error("node: CSR not made: {}", csr.status().ToString());
    return;
  }
  key_pem_ = std::move(csr->key_pem);
  in_flight_ = true;
  spdlog::info("node {}: asking the key server for a new broker certificate",
               FormatNodeId(client_.n_id()));
  client_.RequestCertificate(
      std::move(csr->csr_der),
      [this](StatusOr<std::string> chain) { OnChain(std::move(chain)); });
}

void NodeCertRenewal::OnChain(StatusOr<std::string> chain) {
  in_flight_ = false;
  Status st = chain.ok() ? Install(*chain) : chain.status();
  key_pem_.Clear();
  if (!st.ok()) {
    spdlog::warn("node: certificate renewal failed (retry later): {}",
                 st.ToString());
    return;
  }
  backoff_ms_ = 5000;
  next_try_ms_ = 0;
  ReadDue();
  // The broker sees the new certificate from the next handshake on.
  Status rc = transport_.Reconnect();
  if (!rc.ok()) {
    spdlog::warn(
        "node: the new certificate is used from the next "
        "connection: {}",
        rc.message());
  }
}

Status NodeCertRenewal::Install(const std::string& chain) {
  // Never install what the broker would refuse: the chain must be for our
  // key and our identity.
  KGR_ASSIGN_OR_RETURN(bool match, KeyMatchesCertificate(chain, key_pem_));
  if (!match)
    return PermissionDeniedError("the certificate is not for our key");
  KGR_ASSIGN_OR_RETURN(CertificateInfo info, ReadCertificateInfo(chain));
  if (info.subject_cn != NodeCommonName(client_.n_id())) {
    return PermissionDeniedError("the certificate names " + info.subject_cn);
  }
  KGR_RETURN_IF_ERROR(InstallNodeTlsFiles(tls_dir_, chain, key_pem_));
  spdlog::info("node {}: installed broker certificate serial {}",
               FormatNodeId(client_.n_id()), info.serial_hex);
  return OkStatus();
}

}  // namespace kgr
