// A node's own data (seed 3.5.1, 3.5.2), held in TPM NVRAM through the Tpm
// interface, one blob per NvSlot (formats in docs/protocol.md, "NV blobs"):
//
//   kIdentity: N_ID, role, BA, topic prefix, TOPIC1 (KS) or TOPIC2 (N)
//   kNodeKeys: NK || NKsign
//   kNtag:     NTAG                                   (N nodes)
//   kKsKeys:   NKSK || NKSKsign, version, TOPIC1, KS N_ID (N, registered)
//
// NV write budget: init writes kIdentity, kNodeKeys (and kNtag on N nodes);
// registration and each NKSK rotation write kKsKeys once. Nothing else.
#ifndef KGR_OWN_DATA_H_
#define KGR_OWN_DATA_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "kgr/crypto.h"
#include "kgr/status.h"
#include "kgr/topic.h"
#include "kgr/tpm.h"

namespace kgr {

enum class Role : uint8_t { kKeyServer = 1, kNode = 2 };

struct IdentityBlob {
  Role role = Role::kNode;
  uint32_t n_id = 0;
  std::string broker_address;  // BA, "host:port" (<= 128 chars)
  std::string topic_prefix = kDefaultTopicPrefix;
  TopicId own_topic{};   // KS: TOPIC1; N: TOPIC2
  uint32_t ks_n_id = 0;  // N: the KS's N_ID from the credential file
};

struct KsKeysBlob {
  SymmetricKeys nksk;  // NKSK, NKSKsign
  uint32_t version = 0;
  TopicId ks_topic1{};
  uint32_t ks_n_id = 0;
};

Bytes EncodeIdentity(const IdentityBlob& b);
StatusOr<IdentityBlob> DecodeIdentity(std::span<const uint8_t> in);
// Encoded into SecretBytes: the blob holds keys.
SecretBytes EncodeKsKeys(const KsKeysBlob& b);
StatusOr<KsKeysBlob> DecodeKsKeys(std::span<const uint8_t> in);

// Everything a node or the KS holds in NV, loaded at start-up.
struct OwnData {
  IdentityBlob identity;
  SymmetricKeys nk;              // NK, NKsign
  SecretBytes ntag;              // N nodes only
  std::optional<KsKeysBlob> ks;  // N nodes after registration
};

// Reads every slot present. NOT_FOUND if the node was never initialized.
StatusOr<OwnData> LoadOwnData(Tpm& tpm);

// Writes the identity and NK slots (and NTAG if non-empty): used by init.
Status SaveInitialOwnData(Tpm& tpm, const OwnData& data);

// The load-or-create step of init (4.2, 4.4). Ensures the TPM's trust
// structure (with the KEDK for the KS), then loads the own data: if there
// is some, returns it when `accept` does (else accept's error). If the TPM
// was never initialized (NOT_FOUND), mixes TPM entropy, completes `fresh`
// (role, BA, prefix, KS N_ID and NTAG set by the caller) with a random N_ID
// if it has none, a random own topic and a new NK pair, saves it and
// returns it. *created tells which happened.
StatusOr<OwnData> LoadOrCreateOwnData(
    Tpm& tpm, OwnData fresh,
    const std::function<Status(const IdentityBlob&)>& accept, bool* created);

// Writes the kKsKeys slot (one NV write): at registration and at each NKSK
// rotation. The encoded blob is wiped after the write.
Status SaveKsKeys(Tpm& tpm, const KsKeysBlob& blob);

// Fresh random bytes from OpenSSL's DRBG after mixing in `n` bytes of TPM
// randomness (the seed's "keys from the TPM's generator" without putting the
// TPM on the per-key path).
Status MixTpmEntropy(Tpm& tpm, size_t n = 32);

}  // namespace kgr

#endif  // KGR_OWN_DATA_H_
