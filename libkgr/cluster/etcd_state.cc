// EtcdKsState: the KS state on etcd (kgr/cluster.h): the domain check at
// open, the two tables, and the thread that polls node_desc for changes
// other instances made.
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <thread>

#include "cluster/etcd_client.h"
#include "cluster/etcd_tables.h"
#include "cluster/membership_store.h"
#include "kgr/cluster.h"

namespace kgr {
namespace {

// <prefix>/domain: created with the state; afterwards it must match the
// member's domain key (same domain, same generation, same key).
Status CheckDomain(EtcdClient& client, const std::string& prefix,
                   const Bytes& mine) {
  const std::string name = prefix + "/domain";
  KGR_ASSIGN_OR_RETURN(
      EtcdTxnResult r,
      client.Txn({{name, EtcdCompare::Target::kCreate,
                   EtcdCompare::Result::kEqual, 0}},
                 {EtcdOp::Put(name, mine)}, {EtcdOp::Get(name)}));
  if (r.succeeded) {
    spdlog::info("etcd: new KS state at {}", prefix);
    return OkStatus();
  }
  if (r.ranges.empty() || r.ranges[0].kvs.empty()) {
    return UnavailableError("etcd: " + name + " vanished");
  }
  const Bytes& stored = r.ranges[0].kvs[0].value;
  if (stored != mine) {
    return FailedPreconditionError(
        "etcd state " + prefix +
        " belongs to another domain key (another domain, or a generation "
        "this member does not hold: join or update the member)");
  }
  return OkStatus();
}

StatusOr<std::vector<DomainKey>> PreparedKeys(
    StatusOr<std::vector<DomainKey>> keys) {
  if (!keys.ok()) return keys.status();
  if (keys->empty()) return FailedPreconditionError("etcd state: no key");
  for (DomainKey& k : *keys) KGR_RETURN_IF_ERROR(k.keys.Prepare());
  return keys;
}

class EtcdState final : public EtcdKsState {
 public:
  EtcdState(const EtcdStateOptions& o, DomainKeySource fetch_keys,
            std::vector<DomainKey> keys, std::unique_ptr<EtcdClient> client,
            std::unique_ptr<EtcdClient> poller,
            std::unique_ptr<EtcdClient> writer)
      : options_(o),
        fetch_keys_(std::move(fetch_keys)),
        check_(DomainCheckValue(keys.front())),
        codec_(std::move(keys)),
        client_(std::move(client)),
        poller_(std::move(poller)),
        writer_(std::move(writer)),
        nodes_(*client_, codec_, o.prefix),
        gen_keys_(*client_, *writer_, codec_, o.prefix),
        ac_floor_(*client_, codec_, o.prefix) {}

  ~EtcdState() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    gen_keys_.Stop();  // sends what waits
  }

  Status Start() {
    if (fetch_keys_) {
      KGR_ASSIGN_OR_RETURN(auto epoch,
                           client_->Range(EpochKey(options_.prefix)));
      if (!epoch.kvs.empty()) epoch_revision_ = epoch.kvs[0].mod_revision;
    }
    KGR_RETURN_IF_ERROR(CheckDomain(*client_, options_.prefix, check_));
    KGR_RETURN_IF_ERROR(nodes_.Load());
    thread_ = std::thread([this] { PollLoop(); });
    return OkStatus();
  }

  NodeDescTable& nodes() override { return nodes_; }
  GenKeysTable& gen_keys() override { return gen_keys_; }
  AcFloor* ac_floor() override { return &ac_floor_; }
  uint64_t failovers() const override {
    return client_->failovers() + poller_->failovers() + writer_->failovers();
  }
  std::vector<uint32_t> key_generations() const override {
    if (codec_.generation() == 0) return {};
    return codec_.generations();
  }

 private:
  void PollLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    bool failing = false;
    while (!cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms),
                         [this] { return stop_; })) {
      lock.unlock();
      if (fetch_keys_) FollowEpoch();
      Status st = nodes_.Poll(*poller_);
      if (!st.ok() && !failing) {
        spdlog::warn("etcd: node_desc changes not read: {}", st.ToString());
      }
      failing = !st.ok();
      lock.lock();
    }
  }

  // On the polling thread: a new <prefix>/cluster/epoch (a rotation began
  // or ended, or this member was removed) brings the member's keys anew.
  void FollowEpoch() {
    auto epoch = poller_->Range(EpochKey(options_.prefix));
    if (!epoch.ok() || epoch->kvs.empty() ||
        epoch->kvs[0].mod_revision == epoch_revision_) {
      return;
    }
    auto keys = PreparedKeys(fetch_keys_());
    if (!keys.ok()) {
      spdlog::error(
          "etcd: the cluster's domain key changed and this member "
          "cannot take it ({}): writes stopped",
          keys.status().ToString());
      codec_.StopWrites("this member holds no current domain key: " +
                        keys.status().message());
      epoch_revision_ = epoch->kvs[0].mod_revision;
      return;
    }
    spdlog::info("etcd: domain key generation {} ({} held)",
                 keys->front().generation, keys->size());
    codec_.Set(std::move(*keys));
    epoch_revision_ = epoch->kvs[0].mod_revision;
  }

  const EtcdStateOptions options_;
  const DomainKeySource fetch_keys_;  // empty: one key, never changed
  const Bytes check_;
  DomainCodec codec_;
  int64_t epoch_revision_ = 0;
  std::unique_ptr<EtcdClient> client_;  // the KS's calls
  std::unique_ptr<EtcdClient> poller_;  // the polling thread's
  std::unique_ptr<EtcdClient> writer_;  // gen_keys' writer thread's
  EtcdNodeDescTable nodes_;
  EtcdGenKeysTable gen_keys_;
  EtcdAcFloor ac_floor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

namespace {

StatusOr<std::unique_ptr<EtcdKsState>> OpenWith(
    const EtcdStateOptions& options, DomainKeySource fetch_keys,
    StatusOr<std::vector<DomainKey>> first) {
  if (options.prefix.empty() || options.prefix[0] != '/') {
    return InvalidArgumentError("etcd state: prefix must start with '/'");
  }
  KGR_ASSIGN_OR_RETURN(std::vector<DomainKey> keys,
                       PreparedKeys(std::move(first)));
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(options.etcd));
  KGR_ASSIGN_OR_RETURN(auto poller, EtcdClient::Create(options.etcd));
  KGR_ASSIGN_OR_RETURN(auto writer, EtcdClient::Create(options.etcd));
  auto state = std::make_unique<EtcdState>(
      options, std::move(fetch_keys), std::move(keys), std::move(client),
      std::move(poller), std::move(writer));
  KGR_RETURN_IF_ERROR(state->Start());
  return std::unique_ptr<EtcdKsState>(std::move(state));
}

}  // namespace

StatusOr<std::unique_ptr<EtcdKsState>> EtcdKsState::Open(
    const EtcdStateOptions& options, const DomainKey& key) {
  if (!key.keys.valid()) return InvalidArgumentError("etcd state: no key");
  std::vector<DomainKey> one;
  one.push_back(key.Clone());
  return OpenWith(options, nullptr, std::move(one));
}

StatusOr<std::unique_ptr<EtcdKsState>> EtcdKsState::Open(
    const EtcdStateOptions& options, DomainKeySource member_keys) {
  if (!member_keys) return InvalidArgumentError("etcd state: no key source");
  auto first = member_keys();
  return OpenWith(options, std::move(member_keys), std::move(first));
}

StatusOr<bool> EtcdKsStateProbe(const EtcdStateOptions& options) {
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(options.etcd));
  const std::string base = options.prefix + "/";
  KGR_ASSIGN_OR_RETURN(EtcdRange r,
                       client->Range(base, EtcdPrefixEnd(base), 1));
  return !r.kvs.empty();
}

Status EtcdKsStateErase(const EtcdStateOptions& options) {
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(options.etcd));
  const std::string base = options.prefix + "/";
  return client->Delete(base, EtcdPrefixEnd(base)).status();
}

}  // namespace kgr
