// Backup and restore of a key server (docs/operations.md, "Backup and
// restore"). A backup holds everything a KS needs to serve its domain again
// on another machine with another TPM: its identity (N_ID, TOPIC1, broker,
// topic prefix), NK/NKsign and every node_desc record. It is encrypted to an
// offline recovery key (X25519; the server holds only its public half) and
// authenticated; only the holder of the recovery private key can read it or
// make one that restores.
#ifndef KGR_KS_BACKUP_H_
#define KGR_KS_BACKUP_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kgr/crypto.h"
#include "kgr/filesystem.h"
#include "kgr/ks_state.h"
#include "kgr/own_data.h"
#include "kgr/records.h"
#include "kgr/status.h"
#include "kgr/store.h"
#include "kgr/tpm.h"

namespace kgr {

// A recovery key as PEM text: PKCS#8 "PRIVATE KEY" (unencrypted; it belongs
// offline) and SubjectPublicKeyInfo "PUBLIC KEY", the formats of
// `openssl genpkey -algorithm X25519` and `openssl pkey -pubout`.
struct RecoveryKeyPem {
  SecretBytes private_pem;
  std::string public_pem;
};
StatusOr<RecoveryKeyPem> GenerateRecoveryKey();
// The raw 32-byte X25519 key in a PEM text; INVALID_ARGUMENT (naming `what`)
// if it is not an X25519 key of that kind.
StatusOr<Bytes> ParseRecoveryPublicKey(std::span<const uint8_t> pem,
                                       const std::string& what);
StatusOr<SecretBytes> ParseRecoveryPrivateKey(std::span<const uint8_t> pem,
                                              const std::string& what);

// What a backup carries, decrypted.
struct KsBackup {
  uint64_t created_unix_ms = 0;
  OwnData own;                  // role kKeyServer: identity and NK
  std::vector<NodeDesc> nodes;  // every readable node_desc record
};

inline constexpr size_t kMaxBackupSize = size_t{1} << 30;

// The backup file of `own` and every record of `nodes`, encrypted to
// `recovery_public` (32 raw bytes). Corrupt node_desc records are not
// carried (FAILED_PRECONDITION if there are any: repair first).
StatusOr<Bytes> SealKsBackup(const OwnData& own, const NodeDescStore& nodes,
                             std::span<const uint8_t> recovery_public,
                             uint64_t now_unix_ms);
// The same from the KS state's node table (on etcd: read and opened with the
// domain key, then sealed for the recovery key like the files).
StatusOr<Bytes> SealKsBackup(const OwnData& own, const NodeDescTable& nodes,
                             std::span<const uint8_t> recovery_public,
                             uint64_t now_unix_ms);

// Decrypts and checks a backup file: INVALID_ARGUMENT for a file that is not
// a kgr backup (or of an unknown version), UNAUTHENTICATED "verification
// failed" for a wrong recovery key or a modified file.
StatusOr<KsBackup> OpenKsBackup(std::span<const uint8_t> file,
                                const SecretBytes& recovery_private);

// Restores `backup` onto this machine: the store `state_dir`/node_desc
// (which must not exist) and the TPM (which must hold no kgr identity; its
// trust structure, KEDK included, is created if missing). Every node's
// frame floor is raised to `now_unix_us` and its request floor to the
// request ids of that instant, so nothing sent before the restore is
// accepted again and no request id made before it gets a (second) key.
// On failure nothing is left behind: no store, no NV write.
Status RestoreKsBackup(Tpm& tpm, FileSystem& fs, const KsBackup& backup,
                       const std::string& state_dir, uint64_t now_unix_us);

// A restore's TPM step: the trust structure (KEDK included) is created if
// missing; FAILED_PRECONDITION if the TPM already holds a kgr identity.
Status PrepareTpmForRestore(Tpm& tpm);

// The backup's node_desc records with the floors raised as above (a
// restore into etcd writes these: ks_restore_etcd.cc).
std::vector<NodeDesc> RestoredNodes(const KsBackup& backup,
                                    uint64_t now_unix_us);

}  // namespace kgr

#endif  // KGR_KS_BACKUP_H_
