// A client of etcd's v3 API through its JSON gateway (HTTP/1.1 + JSON,
// keys and values base64; etcd 3.4: /v3/kv/range, put, deleterange, txn),
// over libcurl. Only libkgr/cluster/ links libcurl. Why the gateway and not
// gRPC: docs/cluster.md.
//
// Endpoints and failover: requests go to the current endpoint; when it
// cannot be reached, times out, or answers that it has no leader or is
// unavailable, the same request goes to the next one, each endpoint tried
// once per request. A Txn retried after a timeout may already have been
// applied by the first endpoint: callers make their txns safe to repeat
// (compares on revisions do that: a repeated create-only txn fails and
// reads back the record it wrote).
//
// Thread safety: thread-safe; requests of one client are serialized (one
// connection, kept alive). Use one client per thread for parallel calls.
#ifndef KGR_CLUSTER_ETCD_CLIENT_H_
#define KGR_CLUSTER_ETCD_CLIENT_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/cluster.h"
#include "kgr/status.h"

namespace kgr {

struct EtcdKeyValue {
  std::string key;
  Bytes value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
};

struct EtcdRange {
  std::vector<EtcdKeyValue> kvs;
  bool more = false;
  int64_t count = 0;
  int64_t revision = 0;  // of the store when read
};

// One comparison of a txn: the key's create or mod revision against
// `revision` (create_revision 0: the key does not exist).
struct EtcdCompare {
  enum class Target { kCreate, kMod };
  enum class Result { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kMod;
  Result result = Result::kEqual;
  int64_t revision = 0;
};

// One operation of a txn branch.
struct EtcdOp {
  enum class Kind { kPut, kRange, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  Bytes value;            // kPut
  std::string range_end;  // kRange/kDelete: empty for one key
  static EtcdOp Put(std::string key, Bytes value) {
    return {Kind::kPut, std::move(key), std::move(value), {}};
  }
  static EtcdOp Get(std::string key) {
    return {Kind::kRange, std::move(key), {}, {}};
  }
  static EtcdOp Delete(std::string key) {
    return {Kind::kDelete, std::move(key), {}, {}};
  }
};

struct EtcdTxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // of the store after the txn
  // One per kRange op of the branch taken, in order.
  std::vector<EtcdRange> ranges;
};

// The end of the range of every key starting with `prefix`.
std::string EtcdPrefixEnd(const std::string& prefix);

class EtcdClient {
 public:
  static StatusOr<std::unique_ptr<EtcdClient>> Create(
      const EtcdOptions& options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // Keys in [key, range_end) (range_end empty: `key` only), at most
  // `limit` (0: all), only those modified at or after `min_mod_revision`.
  StatusOr<EtcdRange> Range(const std::string& key,
                            const std::string& range_end = "",
                            int64_t limit = 0, int64_t min_mod_revision = 0);
  // The new revision.
  StatusOr<int64_t> Put(const std::string& key, const Bytes& value);
  // Number of keys deleted.
  StatusOr<int64_t> Delete(const std::string& key,
                           const std::string& range_end = "");
  StatusOr<EtcdTxnResult> Txn(const std::vector<EtcdCompare>& compares,
                              const std::vector<EtcdOp>& success,
                              const std::vector<EtcdOp>& failure);

  // The endpoint requests go to now (host:port).
  std::string current_endpoint() const;
  // Requests that went to another endpoint after a failure, since start.
  uint64_t failovers() const;

 private:
  struct Impl;
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kgr

#endif  // KGR_CLUSTER_ETCD_CLIENT_H_
