// Where the group key tree draws its secrets from.
//
// The tree (group_key_tree.h) takes every secret it makes from one
// KeySource, so that a run is a function of the operations and the source:
// the KS uses SystemKeySource() (OpenSSL's DRBG); tests and the
// deterministic simulation use SeededKeySource to replay a run exactly.
// (The IVs of the wraps come from EtmSeal's own DRBG and are not part of
// the tree's state.)
#ifndef KGR_GROUP_KEY_SOURCE_H_
#define KGR_GROUP_KEY_SOURCE_H_

#include <cstdint>
#include <span>

#include "kgr/crypto.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr::group {

class KeySource {
 public:
  virtual ~KeySource() = default;
  // Fills `out` with secret random bytes.
  virtual Status Fill(std::span<uint8_t> out) = 0;
};

// OpenSSL's DRBG (RandomBytes). Thread-safe; lives forever.
KeySource& SystemKeySource();

// Deterministic: block i = SHA-256("kgr/v1 group seeded" || seed || i:u64).
// NOT for production (the output is as secret as the seed). Not
// thread-safe.
class SeededKeySource : public KeySource {
 public:
  explicit SeededKeySource(uint64_t seed);
  Status Fill(std::span<uint8_t> out) override;

 private:
  uint64_t seed_;
  uint64_t block_ = 0;
};

}  // namespace kgr::group

#endif  // KGR_GROUP_KEY_SOURCE_H_
