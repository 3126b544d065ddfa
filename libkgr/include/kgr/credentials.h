// The files the AC hands to a node (seed 3.5.3, 4.3, 4.6):
//
// * the credential file: N_ID, NTAG, BA, plus what the node needs to reach
//   the broker (CA certificate, its own client certificate and key). It is
//   a secret (mode 0600) and should be deleted after `kgr-node init`.
//   Format (text, one field per line, "name value"; PEMs hex-encoded so that
//   every value is one token):
//
//     kgr-credentials 1
//     n_id <8 hex>
//     ks_n_id <8 hex>
//     ntag <64 hex>
//     broker <host:port>
//     topic_prefix <prefix>
//     ca_pem <hex>
//     cert_pem <hex>
//     key_pem <hex>
//
// * the peer list: one N_ID (8 hex digits) per line; '#' starts a comment.
//
// Secrets (NTAG, the key PEM) are parsed straight into SecretBytes.
#ifndef KGR_CREDENTIALS_H_
#define KGR_CREDENTIALS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "kgr/filesystem.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/topic.h"

namespace kgr {

struct Credentials {
  uint32_t n_id = 0;
  SecretBytes ntag;  // 32 bytes
  std::string broker_address;
  std::string topic_prefix = kDefaultTopicPrefix;
  uint32_t ks_n_id = 0;
  std::string ca_pem;
  std::string cert_pem;
  SecretBytes key_pem;
};

// Written atomically with mode 0600.
Status WriteCredentialFile(FileSystem& fs, const std::string& path,
                           const Credentials& c);
// INVALID_ARGUMENT naming the line for anything malformed or missing.
StatusOr<Credentials> ReadCredentialFile(FileSystem& fs,
                                         const std::string& path);

Status WritePeerList(FileSystem& fs, const std::string& path,
                     const std::vector<uint32_t>& peers);
StatusOr<std::vector<uint32_t>> ReadPeerList(FileSystem& fs,
                                             const std::string& path);

// "0a1b2c3d" -> 0x0a1b2c3d; INVALID_ARGUMENT otherwise. The inverse of
// FormatNodeId (topic.h).
StatusOr<uint32_t> ParseNodeId(std::string_view text);

}  // namespace kgr

#endif  // KGR_CREDENTIALS_H_
