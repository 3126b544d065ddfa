// The files the AC hands to a node (seed 3.5.3, 4.3, 4.6), both signed by
// the AC (docs/protocol.md section 10):
//
// * the credential file: N_ID, NTAG, BA, plus what the node needs to reach
//   the broker (CA certificate, its own client certificate and key). It is
//   a secret (mode 0600) and should be deleted after `kgr-node init`.
// * the peer list: the N_IDs one node may pair with.
//
// Format (text, one field per line, "name value"; PEMs and DER hex-encoded
// so that every value is one token; '#' starts a comment line):
//
//     kgr-credentials 2          |   kgr-peers 2
//     n_id <8 hex>               |   node <8 hex>     the list's node
//     ks_n_id <8 hex>            |   peer <8 hex>     zero or more
//     ntag <64 hex>              |   ac_cert <hex>
//     broker <host:port>         |   signature <hex>
//     topic_prefix <prefix>      |
//     ca_pem <hex>               |
//     cert_pem <hex>             |
//     key_pem <hex>              |
//     ac_cert <hex>              |
//     signature <hex>            |
//
// ac_cert is the AC's certificate (DER); signature (lowercase hex, the last
// line, ending with '\n') is its key's ECDSA/SHA-256 signature (DER) over
// every byte of the file before the "signature" line. A reader accepts the
// file only if that signature verifies, ac_cert chains to the KED CA and
// its OU is "kgr-ac": a file cut short, corrupted or edited by anyone without
// the AC's key is refused before anything is done with it. For the
// credential file the CA is the one in the file (the node has no other yet):
// this proves integrity and that whoever holds that CA's AC key wrote it,
// not that the CA is the right one; the file must still come from the AC
// over a trusted path. The peer list is checked against the CA the node
// installed at init. Every field appears exactly once (peer: any number).
//
// Secrets (NTAG, the key PEM) are parsed straight into SecretBytes.
#ifndef KGR_CREDENTIALS_H_
#define KGR_CREDENTIALS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kgr/cms.h"
#include "kgr/filesystem.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/topic.h"

namespace kgr {

// Largest credential file or peer list a reader looks at.
inline constexpr size_t kMaxCredentialFile = 64 * 1024;

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

struct PeerList {
  uint32_t node = 0;  // the node the list is for
  std::vector<uint32_t> peers;
};

// The signed file's bytes; `ac` is the AC's endpoint (its key signs).
// INVALID_ARGUMENT for a field that cannot be written as one token.
StatusOr<SecretBytes> EncodeCredentialFile(const Credentials& c,
                                           const CmsEndpoint& ac);
StatusOr<Bytes> EncodePeerList(const PeerList& list, const CmsEndpoint& ac);

// Parses and verifies (see above). INVALID_ARGUMENT naming the line for
// anything malformed, missing or repeated; UNAUTHENTICATED if the
// signature does not verify or the signer is not the AC.
StatusOr<Credentials> ParseCredentialFile(std::span<const uint8_t> file);
// `ca_pem`: the KED CA the node trusts (installed at init).
StatusOr<PeerList> ParsePeerList(std::span<const uint8_t> file,
                                 std::string_view ca_pem);

// Written atomically, mode 0600 (credentials) or 0644 (peer list).
Status WriteCredentialFile(FileSystem& fs, const std::string& path,
                           const Credentials& c, const CmsEndpoint& ac);
Status WritePeerList(FileSystem& fs, const std::string& path,
                     const PeerList& list, const CmsEndpoint& ac);
// Read and Parse*; errors are prefixed with `path`.
StatusOr<Credentials> ReadCredentialFile(FileSystem& fs,
                                         const std::string& path);
StatusOr<PeerList> ReadPeerList(FileSystem& fs, const std::string& path,
                                std::string_view ca_pem);

// "0a1b2c3d" -> 0x0a1b2c3d; INVALID_ARGUMENT otherwise. The inverse of
// FormatNodeId (topic.h).
StatusOr<uint32_t> ParseNodeId(std::string_view text);

}  // namespace kgr

#endif  // KGR_CREDENTIALS_H_
