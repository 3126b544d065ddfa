// Backup and restore of a key server. The file format is a grammar in
// docs/operations.md ("Backup file"); this is its only implementation.
#include <algorithm>
#include <array>

#include "kgr/ks_backup.h"

namespace kgr {
namespace {

constexpr char kMagic[] = "KGRBKUP1";  // 8 bytes, no terminator written
constexpr size_t kMagicSize = 8;
constexpr uint8_t kVersion = 1;
constexpr char kKdfInfo[] = "KGR-BACKUP1 keys";
// magic, version, created_unix_ms, ks n_id, ephemeral public key, iv
constexpr size_t kHeaderSize = kMagicSize + 1 + 8 + 4 + kX25519Size + kIvSize;

// The X25519 base point (u = 9): X25519(private, base) is the public key.
constexpr std::array<uint8_t, kX25519Size> kBasePoint = {9};

StatusOr<SymmetricKeys> BackupKeys(const SecretBytes& shared,
                                   std::span<const uint8_t> ephemeral_public,
                                   std::span<const uint8_t> recovery_public) {
  Bytes salt(ephemeral_public.begin(), ephemeral_public.end());
  salt.insert(salt.end(), recovery_public.begin(), recovery_public.end());
  return DeriveKeys(shared.span(), salt, AsBytes(kKdfInfo));
}

// identity_len:u16 identity nk_enc:32 nk_mac:32 n:u32 (len:u32 record)*
template <typename Nodes>
StatusOr<SecretBytes> EncodePayload(const OwnData& own, const Nodes& nodes) {
  Bytes head;
  ByteWriter w(&head);
  Bytes identity = EncodeIdentity(own.identity);
  w.U16(static_cast<uint16_t>(identity.size()));
  w.Raw(identity);
  SecretBytes out(head);
  // The one place NK leaves the TPM's domain: encrypted to the recovery key.
  out.Append(own.nk.RawEncKeyBytes().span());
  out.Append(own.nk.RawMacKeyBytes().span());
  Bytes records;
  ByteWriter rw(&records);
  uint32_t count = 0;
  Status failed;
  nodes.ForEach([&](const NodeDesc& n) {
    if (!failed.ok()) return;
    auto sealed = EncodeRecord(n, own.nk, own.identity.n_id);
    if (!sealed.ok()) {
      failed = sealed.status();
      return;
    }
    rw.U32(static_cast<uint32_t>(sealed->size()));
    rw.Raw(*sealed);
    ++count;
  });
  KGR_RETURN_IF_ERROR(failed);
  Bytes n;
  ByteWriter(&n).U32(count);
  out.Append(n);
  out.Append(records);
  return out;
}

StatusOr<KsBackup> DecodePayload(std::span<const uint8_t> payload,
                                 uint64_t created_unix_ms, uint32_t n_id) {
  // Authenticated already: a mismatch here is a writer bug or a forgery
  // by the recovery key's holder, reported as such.
  auto bad = [](const char* what) {
    return DataLossError(std::string("backup payload: ") + what);
  };
  ByteReader r(payload);
  KsBackup b;
  b.created_unix_ms = created_unix_ms;
  uint16_t identity_len = 0;
  std::span<const uint8_t> identity;
  if (!r.U16(&identity_len) || !r.View(identity_len, &identity)) {
    return bad("identity cut short");
  }
  auto id = DecodeIdentity(identity);
  if (!id.ok()) return bad("identity malformed");
  b.own.identity = std::move(*id);
  if (b.own.identity.role != Role::kKeyServer || b.own.identity.n_id != n_id) {
    return bad("not this key server's identity");
  }
  std::span<const uint8_t> enc, mac;
  if (!r.View(kKeySize, &enc) || !r.View(kKeySize, &mac)) {
    return bad("NK cut short");
  }
  KGR_ASSIGN_OR_RETURN(b.own.nk, SymmetricKeys::FromBytes(enc, mac));
  uint32_t count = 0;
  if (!r.U32(&count) || count > r.remaining() / 4) return bad("record count");
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    std::span<const uint8_t> sealed;
    if (!r.U32(&len) || !r.View(len, &sealed)) return bad("record cut short");
    auto rec = DecodeRecord<NodeDesc>(sealed, b.own.nk, n_id);
    if (!rec.ok()) return bad("a node_desc record does not verify");
    b.nodes.push_back(std::move(*rec));
  }
  if (!r.done()) return bad("trailing bytes");
  return b;
}

// SealKsBackup over the files (NodeDescStore) or etcd (NodeDescTable).
template <typename Nodes>
StatusOr<Bytes> SealBackupOf(const OwnData& own, const Nodes& nodes,
                             std::span<const uint8_t> recovery_public,
                             uint64_t now_unix_ms) {
  if (own.identity.role != Role::kKeyServer || !own.nk.valid()) {
    return InvalidArgumentError("not a key server's own data");
  }
  if (recovery_public.size() != kX25519Size) {
    return InvalidArgumentError("recovery public key: not 32 bytes");
  }
  if (size_t bad = nodes.corrupt_records().size(); bad > 0) {
    return FailedPreconditionError(
        std::to_string(bad) +
        " node_desc records are corrupt: `kgr-ks repair` first");
  }
  KGR_ASSIGN_OR_RETURN(SecretBytes payload, EncodePayload(own, nodes));
  KGR_ASSIGN_OR_RETURN(X25519KeyPair eph, GenerateX25519());
  KGR_ASSIGN_OR_RETURN(SecretBytes shared,
                       X25519SharedSecret(eph.private_key, recovery_public));
  KGR_ASSIGN_OR_RETURN(SymmetricKeys keys,
                       BackupKeys(shared, eph.public_key, recovery_public));
  Bytes out;
  ByteWriter w(&out);
  w.Raw(AsBytes(std::string_view(kMagic, kMagicSize)));
  w.U8(kVersion);
  w.U64(now_unix_ms);
  w.U32(own.identity.n_id);
  w.Raw(eph.public_key);
  const size_t iv_at = out.size();
  out.resize(out.size() + kIvSize);  // EtmSeal draws the IV into place
  KGR_RETURN_IF_ERROR(EtmSeal(keys, iv_at, payload.span(), &out));
  return out;
}

}  // namespace

StatusOr<Bytes> SealKsBackup(const OwnData& own, const NodeDescStore& nodes,
                             std::span<const uint8_t> recovery_public,
                             uint64_t now_unix_ms) {
  return SealBackupOf(own, nodes, recovery_public, now_unix_ms);
}

StatusOr<Bytes> SealKsBackup(const OwnData& own, const NodeDescTable& nodes,
                             std::span<const uint8_t> recovery_public,
                             uint64_t now_unix_ms) {
  return SealBackupOf(own, nodes, recovery_public, now_unix_ms);
}

StatusOr<KsBackup> OpenKsBackup(std::span<const uint8_t> file,
                                const SecretBytes& recovery_private) {
  if (file.size() < kHeaderSize + kTagSize ||
      !std::equal(file.begin(), file.begin() + kMagicSize, kMagic)) {
    return InvalidArgumentError("not a kgr key server backup");
  }
  if (file.size() > kMaxBackupSize) {
    return InvalidArgumentError("backup larger than 1 GiB");
  }
  ByteReader r(file.subspan(kMagicSize));
  uint8_t version = 0;
  uint64_t created = 0;
  uint32_t n_id = 0;
  std::span<const uint8_t> eph_public;
  r.U8(&version);
  if (version != kVersion) {
    return InvalidArgumentError("backup version " + std::to_string(version) +
                                " (this kgr-ks reads version 1)");
  }
  r.U64(&created);
  r.U32(&n_id);
  r.View(kX25519Size, &eph_public);
  KGR_ASSIGN_OR_RETURN(SecretBytes recovery_public,
                       X25519SharedSecret(recovery_private, kBasePoint));
  auto shared = X25519SharedSecret(recovery_private, eph_public);
  if (!shared.ok()) return UnauthenticatedError(kVerificationFailed);
  KGR_ASSIGN_OR_RETURN(SymmetricKeys keys,
                       BackupKeys(*shared, eph_public, recovery_public.span()));
  const size_t tag_at = file.size() - kTagSize;
  KGR_ASSIGN_OR_RETURN(
      SecretBytes payload,
      EtmOpen(keys, file.subspan(0, tag_at), kHeaderSize - kIvSize, kHeaderSize,
              file.subspan(tag_at)));
  return DecodePayload(payload.span(), created, n_id);
}

std::vector<NodeDesc> RestoredNodes(const KsBackup& backup,
                                    uint64_t now_unix_us) {
  // Nothing recorded before now may count again; request ids embed the
  // node's counter shifted by 12 bits (node/session_keys.cc).
  const uint64_t request_floor = (now_unix_us << 12) | 0xfff;
  std::vector<NodeDesc> nodes;
  nodes.reserve(backup.nodes.size());
  for (const NodeDesc& n : backup.nodes) {
    NodeDesc raised = n.Clone();
    raised.last_counter = std::max(n.last_counter, now_unix_us);
    raised.request_floor = std::max(n.request_floor, request_floor);
    nodes.push_back(std::move(raised));
  }
  return nodes;
}

Status PrepareTpmForRestore(Tpm& tpm) {
  KGR_RETURN_IF_ERROR(tpm.EnsureTrustStructure(/*with_kedk=*/true));
  auto existing = LoadOwnData(tpm);
  if (existing.ok()) {
    return FailedPreconditionError("this TPM already holds a kgr identity (" +
                                   FormatNodeId(existing->identity.n_id) + ")");
  }
  if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  return OkStatus();
}

Status RestoreKsBackup(Tpm& tpm, FileSystem& fs, const KsBackup& backup,
                       const std::string& state_dir, uint64_t now_unix_us) {
  const std::string path = state_dir + "/node_desc";
  const std::string staged = state_dir + "/node_desc.restoring";
  if (fs.Exists(path) || fs.Exists(path + ".log")) {
    return FailedPreconditionError(
        path + " exists: restore only into a new state directory");
  }
  KGR_RETURN_IF_ERROR(PrepareTpmForRestore(tpm));
  std::vector<NodeDesc> nodes = RestoredNodes(backup, now_unix_us);
  const uint32_t owner = backup.own.identity.n_id;
  for (const std::string& f : {staged, staged + ".log"}) {
    if (fs.Exists(f)) KGR_RETURN_IF_ERROR(fs.Remove(f));
  }
  Status st = [&]() -> Status {
    KGR_ASSIGN_OR_RETURN(auto store,
                         NodeDescStore::Open(fs, staged, backup.own.nk, owner));
    if (!nodes.empty()) KGR_RETURN_IF_ERROR(store->PutAll(nodes));
    KGR_RETURN_IF_ERROR(store->file().Compact());
    return OkStatus();
  }();
  if (st.ok() && fs.Exists(staged + ".log")) st = fs.Remove(staged + ".log");
  if (st.ok()) st = fs.Rename(staged, path);
  if (st.ok()) st = fs.SyncDir(state_dir);
  if (st.ok()) st = SaveInitialOwnData(tpm, backup.own);
  if (!st.ok()) {
    for (const std::string& f : {staged, staged + ".log", path}) {
      if (fs.Exists(f)) (void)fs.Remove(f);
    }
  }
  return st;
}

}  // namespace kgr
