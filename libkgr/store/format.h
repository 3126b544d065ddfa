// Internal to libkgr/store: the constants of the snapshot and journal
// formats (docs/storage.md) and helpers the store's files share.
#ifndef KGR_STORE_FORMAT_H_
#define KGR_STORE_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kgr/bytes.h"
#include "kgr/store.h"

namespace kgr {

// The store's own copy of NK/NKsign, prepared (AES key schedule and HMAC
// pads once): every record and journal entry uses them.
RecordKeys PreparedCopy(const RecordKeys& keys);

inline constexpr char kSnapshotMagic[] = "KGRS";
inline constexpr char kJournalMagic[] = "KGRL";
inline constexpr uint8_t kFormatVersion = 1;
// MAC domains (8 bytes each).
inline constexpr char kSnapshotHeaderContext[] = "KGR-SHD1";
inline constexpr char kSnapshotIndexContext[] = "KGR-SIX1";
inline constexpr char kJournalHeaderContext[] = "KGR-JHD1";
inline constexpr char kJournalEntryContext[] = "KGR-JNL1";

// magic, version, type, reserved, owner, generation, count
inline constexpr size_t kSnapshotHeaderFields = 4 + 1 + 1 + 2 + 4 + 8 + 4;
inline constexpr size_t kSnapshotHeaderSize = kSnapshotHeaderFields + kTagSize;
inline constexpr size_t kIndexEntrySize = 8;
// magic, version, type, reserved, owner, generation
inline constexpr size_t kJournalHeaderFields = 4 + 1 + 1 + 2 + 4 + 8;
inline constexpr size_t kJournalHeaderSize = kJournalHeaderFields + kTagSize;
// kind, flags, seq, key (then the record, then the tag)
inline constexpr size_t kEntryFixed = 1 + 1 + 8 + 8;
inline constexpr size_t kMinEntryBody = kEntryFixed + kTagSize;
inline constexpr size_t kMaxEntryBody = kMinEntryBody + kMaxRecordSize;

// Bound of StoreOptions::verify_threads.
inline constexpr size_t kMaxVerifyThreads = 64;

inline constexpr uint8_t kEntryPut = 1;
inline constexpr uint8_t kEntryDelete = 2;
inline constexpr uint8_t kEntryCommit = 0x01;

inline std::span<const uint8_t> Label(const char* s) {
  return AsBytes(std::string_view(s, 8));
}

inline Status Failed(const std::string& what) {
  return DataLossError(what + ": " + kVerificationFailed);
}

inline size_t EntrySize(const std::optional<Bytes>& record) {
  return 4 + kMinEntryBody + (record ? record->size() : 0);
}

// The fields both file headers begin with (the snapshot's then holds its
// record count): magic, version, type, reserved, owner, generation.
struct FileHeader {
  std::span<const uint8_t> magic;
  uint8_t version = 0;
  uint8_t type = 0;
  uint16_t reserved = 0;
  uint32_t owner = 0;
  uint64_t generation = 0;
  // Whether it has `magic` (4 bytes), kFormatVersion and reserved 0.
  bool Known(const char* expected_magic) const;
};
// Reads the fields from `r`, which holds at least kJournalHeaderFields bytes.
FileHeader ReadFileHeader(ByteReader& r);
// Writes the fields of a header of this format version.
void WriteFileHeader(ByteWriter& w, const char* magic, RecordType type,
                     uint32_t owner, uint64_t generation);

// The MAC context of the journal entries of `generation`.
Bytes JournalEntryContext(uint32_t owner, RecordType type, uint64_t generation);

// Appends to `buf` the journal entry number `seq` that puts `record` as
// `key` (nullopt: deletes it), MAC'd under `keys` in context `ctx`;
// `commit` marks the last entry of a commit group.
Status AppendJournalEntry(const RecordKeys& keys, std::span<const uint8_t> ctx,
                          uint64_t seq, uint64_t key,
                          const std::optional<Bytes>& record, bool commit,
                          Bytes* buf);

// "<type> record <key>": how errors name a record.
inline std::string RecordNameOf(RecordType type, uint64_t key) {
  return std::string(RecordTypeName(type)) + " record " + std::to_string(key);
}

}  // namespace kgr

#endif  // KGR_STORE_FORMAT_H_
