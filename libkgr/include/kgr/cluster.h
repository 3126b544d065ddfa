// The KS's state on etcd (libkgr/cluster/, docs/cluster.md): where etcd
// is, the domain key every member holds sealed in its state directory, and
// the etcd backend of kgr/ks_state.h.
//
// Layout in etcd under <prefix>:
//   <prefix>/domain                  domain id, key generation, check value
//                                    (an HMAC under the domain key: no secret)
//   <prefix>/node_desc/<8 hex n_id>  EncodeRecord(NodeDesc) under the domain
//   key <prefix>/gen_keys/<16 hex id>    EncodeRecord(GenKey) under the domain
//   key
// Records are sealed exactly as in the KS's files (docs/storage.md
// section 1), with owner = the domain id and NK/NKsign = the domain key.
#ifndef KGR_CLUSTER_H_
#define KGR_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kgr/crypto.h"
#include "kgr/filesystem.h"
#include "kgr/ks_state.h"
#include "kgr/records.h"
#include "kgr/status.h"

namespace kgr {

struct EtcdTlsOptions {
  std::string ca_file;    // non-empty: https, peer verified against it
  std::string cert_file;  // client certificate (with key_file), optional
  std::string key_file;
};

struct EtcdOptions {
  std::vector<std::string> endpoints;  // host:port, tried in order
  EtcdTlsOptions tls;
  int connect_timeout_ms = 1000;
  int request_timeout_ms = 3000;
};

// `etcd://host:port[,host:port...]/prefix` (https with tls.ca_file set).
// The prefix is one or more path segments without a trailing slash.
struct EtcdStateUrl {
  std::vector<std::string> endpoints;
  std::string prefix;  // "/kgr/ked1"
};
StatusOr<EtcdStateUrl> ParseEtcdStateUrl(const std::string& url);
bool IsEtcdStateUrl(const std::string& text);

// The domain key: the NK/NKsign of the state on etcd, the same on every
// member. Held by a member only in <state_dir>/domain_key, sealed under the
// member's NK (which only its TPM holds); never written to etcd in clear.
struct DomainKey {
  uint32_t domain_id = 0;   // the records' owner (the first member's N_ID)
  uint32_t generation = 1;  // grows by one per rotation
  RecordKeys keys;
  DomainKey Clone() const { return {domain_id, generation, keys.Clone()}; }
};

std::string DomainKeyPath(const std::string& state_dir);
// A fresh random key of generation 1.
StatusOr<DomainKey> NewDomainKey(uint32_t domain_id);
// The key sealed under `member_nk` (EtM, its own format, docs/cluster.md),
// replacing the file atomically (mode 0600).
Status SaveDomainKey(FileSystem& fs, const std::string& path,
                     const DomainKey& key, const RecordKeys& member_nk);
// NOT_FOUND if there is no file; DATA_LOSS if it does not verify under
// `member_nk`.
StatusOr<DomainKey> LoadDomainKey(FileSystem& fs, const std::string& path,
                                  const RecordKeys& member_nk);
// The value of <prefix>/domain for `key` (no secret: an HMAC under it).
Bytes DomainCheckValue(const DomainKey& key);

// The etcd backend of the KS state. Thread-safe. It keeps in memory the
// sealed node_desc records (loaded at open, then refreshed by a thread that
// polls etcd every `poll_ms` for records changed by other instances) and
// the gen_keys records it created or read.
// Clustered (kgr-ks cluster init/join, kgr/cluster_membership.h): the
// domain keys this member holds in etcd now, newest first (two during a
// rotation): MemberDomainKeys.
using DomainKeySource = std::function<StatusOr<std::vector<DomainKey>>()>;

struct EtcdStateOptions {
  EtcdOptions etcd;
  std::string prefix;
  int poll_ms = 200;
};

class EtcdKsState : public KsState {
 public:
  // Opens the state at options.prefix under `key`. Creates <prefix>/domain
  // if it is absent (a new state); fails with FAILED_PRECONDITION if it
  // holds another domain or key generation.
  static StatusOr<std::unique_ptr<EtcdKsState>> Open(
      const EtcdStateOptions& options, const DomainKey& key);
  // A cluster member's state: `member_keys` is called at open and by the
  // polling thread whenever <prefix>/cluster/epoch changes; on an error
  // (NOT_FOUND: this member was removed) the state refuses every write
  // until a later call succeeds.
  static StatusOr<std::unique_ptr<EtcdKsState>> Open(
      const EtcdStateOptions& options, DomainKeySource member_keys);
  // The etcd requests that failed over to another endpoint, since open.
  virtual uint64_t failovers() const = 0;
  // The domain key generations held, newest first (empty: writes stopped).
  virtual std::vector<uint32_t> key_generations() const = 0;
};

// Whether etcd holds anything under options.prefix + "/" (a KS state).
StatusOr<bool> EtcdKsStateProbe(const EtcdStateOptions& options);
// Deletes everything under options.prefix + "/" (a failed restore's
// leftovers; the recovery drill's "etcd lost").
Status EtcdKsStateErase(const EtcdStateOptions& options);

}  // namespace kgr

#endif  // KGR_CLUSTER_H_
