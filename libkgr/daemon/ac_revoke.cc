// kgr-ac revoke: the KS revokes the node; with --crl the node's broker
// certificate goes into the CRL, the crl_hook makes the broker re-read it,
// and the node's open MQTT connection is cut (docs/operations.md,
// "Revoke a node").
#include <chrono>
#include <cstdio>
#include <thread>

#include "daemon/ac_session.h"
#include "daemon/crl_hook.h"
#include "daemon/wiring.h"
#include "kgr/cli.h"
#include "kgr/credentials.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// MQTT session takeover (MQTT 3.1.1 section 3.1.4): a CONNECT with the
// node's client id makes the broker close the node's connection. The
// broker has re-read the CRL by then (crl_hook), so the node's reconnect
// is refused in the TLS handshake. The takeover session is clean, so the
// revoked node's queued messages go too.
Status CutNodeConnection(const AcOptions& o, uint32_t node) {
  // The broker handles the hook's reload in its main loop: give it a moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(o.cut_delay_ms));
  KGR_ASSIGN_OR_RETURN(auto transport,
                       OpenTransport(o.broker, NodeIdentity(node)));
  transport->SetHandler([](const std::string&, Bytes) {});
  KGR_RETURN_IF_ERROR(transport->Connect());
  return transport->Disconnect();
}

}  // namespace

std::string AcOptions::IssuingCaFile() const {
  return issuing_ca_file.empty() ? broker.ca_file : issuing_ca_file;
}

Status RunCrlHook(const AcOptions& o) {
  if (o.crl_hook.empty()) return OkStatus();
  // The hook sees the CRL's path in KGR_CRL_FILE (e.g. copies it to the
  // broker and sends the broker SIGHUP: broker-config/reload-crl.sh).
  return RunCrlHookCommand(o.crl_hook, o.crl_file);
}

Status AcRevoke(const AcOptions& o, const AcArgs& a) {
  if (!a.node) return InvalidArgumentError("revoke needs --node ID");
  const uint32_t node = *a.node;
  std::string cert = o.issued_dir + "/n" + FormatNodeId(node) + ".crt";
  if (!o.crl_file.empty() &&
      (o.issued_dir.empty() || !DefaultFileSystem()->Exists(cert))) {
    return NotFoundError(
        "no issued certificate of the node in --issued-dir for --crl; "
        "nothing revoked");
  }
  KGR_ASSIGN_OR_RETURN(auto session, AcSession::Open(o));
  auto result = session->Call<StatusOr<AcRevokeAns>>(
      [node](AcClient& client, auto done) { client.Revoke(node, done); });
  if (!result.ok()) return result.status();
  std::printf("revoked %s; %u peer(s) told to wipe their pair\n",
              FormatNodeId(node).c_str(), result->peers_notified);
  if (o.crl_file.empty()) {
    std::printf("no --crl: the broker still accepts the node's certificate\n");
    return OkStatus();
  }
  KGR_RETURN_IF_ERROR(UpdateCrl(o.IssuingCaFile(), o.ca_key_file, o.crl_file,
                                cert, o.cert_days));
  if (o.crl_hook.empty()) {
    std::printf("certificate added to %s: send SIGHUP to the broker to apply\n",
                o.crl_file.c_str());
    return OkStatus();
  }
  KGR_RETURN_IF_ERROR(RunCrlHook(o));
  std::printf("certificate added to %s; crl_hook ran\n", o.crl_file.c_str());
  Status cut = CutNodeConnection(o, node);
  if (!cut.ok()) {
    return cut.Annotate("cutting the node's open connection");
  }
  std::printf("the node's open broker connection was cut\n");
  return OkStatus();
}

}  // namespace kgr
