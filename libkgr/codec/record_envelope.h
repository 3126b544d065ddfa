// The record envelope (docs/storage.md section 1.1) for the record codecs
// outside records.cc (codec/group_records.cc). Private to libkgr.
#ifndef KGR_CODEC_RECORD_ENVELOPE_H_
#define KGR_CODEC_RECORD_ENVELOPE_H_

#include <cstdint>
#include <span>

#include "kgr/records.h"

namespace kgr::records_internal {

struct Opened {
  uint64_t key = 0;
  std::span<const uint8_t> clear;  // into the caller's record
  SecretBytes secret;
};

// Seals `clear` and `secret` as a record of `type` under `key`; `context`
// is the MAC context of RecordCodec (owner, NK check).
StatusOr<Bytes> Seal(RecordType type, uint64_t key,
                     std::span<const uint8_t> clear,
                     std::span<const uint8_t> secret, const RecordKeys& keys,
                     std::span<const uint8_t> context);
// Seal with the context of node `owner_n_id`'s file (for fuzzers: any
// content behind a valid MAC).
StatusOr<Bytes> SealParts(RecordType type, uint64_t key,
                          std::span<const uint8_t> clear,
                          std::span<const uint8_t> secret,
                          const RecordKeys& keys, uint32_t owner_n_id);
// A groups record's fields within their bounds (codec/group_record.cc):
// INVALID_ARGUMENT naming the one that is not.
Status CheckGroupParts(const GroupDesc& g);
// Verifies (DATA_LOSS "verification failed") and opens a record of `type`.
StatusOr<Opened> Open(std::span<const uint8_t> record, RecordType type,
                      const RecordKeys& keys, std::span<const uint8_t> context);

}  // namespace kgr::records_internal

#endif  // KGR_CODEC_RECORD_ENVELOPE_H_
