// The commands of kgr-ac (daemon layer, see daemon.h): one AC session with
// the KS per command. Each returns the Status the executable turns into
// its exit code; what they print is part of their contract.
#ifndef KGR_AC_TOOL_H_
#define KGR_AC_TOOL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kgr/daemon.h"
#include "kgr/status.h"

namespace kgr {

struct AcOptions {
  BrokerOptions broker;  // ca/cert/key: the AC's TLS and CMS files
  std::string ks_cert_file, ca_key_file, topic_prefix, issued_dir, crl_file;
  int cert_days = 365;
  int timeout_ms = 10000;  // waiting for the KS
};

// The flags of one command (checked by the command that needs them).
struct AcArgs {
  std::optional<std::string> out;
  std::optional<std::vector<uint32_t>> peers;
  std::optional<uint32_t> node;
  bool withdraw = false;
  bool json = false;
};

// `authorize --out FILE [--peers ...]`: checks everything it can before
// asking the KS; revokes the new node again if a later step fails.
Status AcAuthorize(const AcOptions& o, const AcArgs& a);
// `peers --node ID --peers ... [--withdraw] [--out FILE]`: with --out, a
// failure after the KS changed the list puts it back.
Status AcPeers(const AcOptions& o, const AcArgs& a);
// `revoke --node ID`, with --crl also the node's broker certificate.
Status AcRevoke(const AcOptions& o, const AcArgs& a);
// `crl`: writes (or refreshes) the CA's revocation list.
Status AcCrl(const AcOptions& o);
// `list [--json]`: the nodes the KS knows.
Status AcList(const AcOptions& o, bool as_json);

}  // namespace kgr

#endif  // KGR_AC_TOOL_H_
