// The commands of kgr-ac (daemon layer, see daemon.h): one AC session with
// the KS per command. Each returns the Status the executable turns into
// its exit code; what they print is part of their contract.
#ifndef KGR_AC_TOOL_H_
#define KGR_AC_TOOL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kgr/daemon.h"
#include "kgr/status.h"

namespace kgr {

struct AcOptions {
  BrokerOptions broker;  // ca/cert/key: the AC's TLS and CMS files
  std::string ks_cert_file, ca_key_file, topic_prefix, issued_dir, crl_file;
  // The CA that signs node certificates and the CRL: an intermediate below
  // the root (its certificate chain; ca_key_file is its key). Empty: the
  // root in broker.ca_file signs (its key must then be online).
  std::string issuing_ca_file;
  // Run (sh -c) after the CRL changed, with KGR_CRL_FILE set: makes the
  // broker re-read it (broker-config/reload-crl.sh). With it, revoke also
  // cuts the node's open broker connection, cut_delay_ms after the hook.
  std::string crl_hook;
  int cut_delay_ms = 300;
  int cert_days = 365;
  int64_t cert_seconds = 0;  // node certificate lifetime; 0: cert_days
  std::string IssuingCaFile() const;
  int64_t CertSeconds() const {
    return cert_seconds > 0 ? cert_seconds : int64_t{cert_days} * 86400;
  }
  int timeout_ms = 10000;  // waiting for the KS
};

// The flags of one command (checked by the command that needs them).
struct AcArgs {
  std::optional<std::string> out;
  std::optional<std::vector<uint32_t>> peers;
  std::optional<uint32_t> node;
  bool withdraw = false;
  bool json = false;
  // kgr-ac group ...
  std::optional<std::string> group;              // --name
  std::optional<std::vector<uint32_t>> members;  // --members
  std::string group_mode = "group-key";          // --mode
  uint32_t rekey_every_s = 0;                    // --rekey-every-s
};

// `authorize --out FILE [--peers ...]`: checks everything it can before
// asking the KS; revokes the new node again if a later step fails.
Status AcAuthorize(const AcOptions& o, const AcArgs& a);
// `peers --node ID --peers ... [--withdraw] [--out FILE]`: with --out, a
// failure after the KS changed the list puts it back.
Status AcPeers(const AcOptions& o, const AcArgs& a);
// `revoke --node ID`, with --crl also the node's broker certificate; with
// crl_hook the broker re-reads the CRL and the node's connection is cut.
Status AcRevoke(const AcOptions& o, const AcArgs& a);
// `crl`: writes (or refreshes) the CA's revocation list, runs crl_hook.
Status AcCrl(const AcOptions& o);
// Runs o.crl_hook if set; UNAVAILABLE if it fails.
Status RunCrlHook(const AcOptions& o);
// `list [--json]`: the nodes the KS knows.
Status AcList(const AcOptions& o, bool as_json);
// `group create|add|remove|list|delete` (`what`), daemon/ac_group.cc:
// create --name G [--members ...] [--mode group-key|sender-auth]
// [--rekey-every-s N]; add/remove --name G --members ...; delete --name G;
// list [--json]. A refusal is one line with the KS's reason.
Status AcGroup(const AcOptions& o, const AcArgs& a, std::string_view what);

}  // namespace kgr

#endif  // KGR_AC_TOOL_H_
