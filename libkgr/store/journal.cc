// The journal file of a RecordFile (docs/storage.md): replaying it on
// open, and appending at its end.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kgr/store.h"
#include "store/format.h"
#include "store/record_file.h"

namespace kgr {

namespace {

// One entry of the journal as read: `ok` if it verified, and then `record`
// is its record (nullopt: a delete).
struct Parsed {
  size_t end = 0;
  bool ok = false;
  bool commit = false;
  uint64_t seq = 0;
  uint64_t key = 0;
  std::optional<Bytes> record;
  std::optional<uint64_t> claimed_key;
  Status status;
};

// The entries of the journal `all` (MAC context `ctx`) up to the first
// that cannot be framed; each verified (keys, record) or not.
std::vector<Parsed> ParseEntries(std::span<const uint8_t> all,
                                 std::span<const uint8_t> ctx,
                                 const RecordKeys& keys,
                                 const RecordCodec& codec, RecordType type) {
  std::vector<Parsed> entries;
  size_t pos = kJournalHeaderSize;
  while (pos < all.size()) {
    ByteReader r(all.subspan(pos));
    uint32_t len;
    if (!r.U32(&len) || len < kMinEntryBody || len > kMaxEntryBody ||
        r.remaining() < len) {
      break;  // unframeable: nothing after this point can be read
    }
    std::span<const uint8_t> body = all.subspan(pos + 4, len);
    Parsed p;
    p.end = pos + 4 + len;
    ByteReader b(body);
    uint8_t kind, flags;
    b.U8(&kind);
    b.U8(&flags);
    b.U64(&p.seq);
    b.U64(&p.key);
    p.claimed_key = p.key;
    std::span<const uint8_t> record =
        body.subspan(kEntryFixed, len - kMinEntryBody);
    p.status = VerifyHmacSha256(keys, {ctx, body.first(len - kTagSize)},
                                body.last(kTagSize));
    if (p.status.ok() && (flags & ~kEntryCommit) == 0 &&
        (kind == kEntryPut || (kind == kEntryDelete && record.empty()))) {
      p.commit = (flags & kEntryCommit) != 0;
      if (kind == kEntryPut) {
        StatusOr<uint64_t> key = codec.Verify(type, record);
        if (key.ok() && *key == p.key) {
          p.record = Bytes(record.begin(), record.end());
          p.ok = true;
        } else {
          p.status =
              key.ok() ? InvalidArgumentError("key mismatch") : key.status();
        }
      } else {
        p.ok = true;
      }
    } else if (p.status.ok()) {
      p.status = InvalidArgumentError("bad entry kind or flags");
    }
    entries.push_back(std::move(p));
    pos += 4 + len;
  }
  return entries;
}

// The committed prefix of the journal: its number of entries, where it
// ends, and the bytes after it (but preallocated zeros).
struct Committed {
  size_t entries = 0;
  size_t end = 0;
  size_t tail = 0;
};

// DATA_LOSS if more bytes follow the committed prefix than one torn write
// can leave.
StatusOr<Committed> FindCommitted(std::span<const uint8_t> all,
                                  const std::vector<Parsed>& entries) {
  // Entries after the last valid commit marker belong to a group whose
  // append did not complete (crash): drop them. Bad entries before it were
  // committed and then damaged: report them.
  size_t committed = 0;  // number of entries in the committed prefix
  for (size_t i = entries.size(); i > 0; --i) {
    if (entries[i - 1].ok && entries[i - 1].commit) {
      committed = i;
      break;
    }
  }
  size_t committed_end =
      committed > 0 ? entries[committed - 1].end : kJournalHeaderSize;
  // Zeros at the end are preallocated space, not data.
  size_t data_end = all.size();
  while (data_end > committed_end && all[data_end - 1] == 0) --data_end;
  size_t tail = data_end - committed_end;
  // One write holds at most the waiting unsynced entries and one group.
  if (tail > kMaxUnsyncedBytes + kMaxCommitGroupBytes + 4 + kMaxEntryBody) {
    return DataLossError("journal: " + std::to_string(tail) +
                         " unreadable bytes, more than one commit group");
  }
  return Committed{committed, committed_end, tail};
}

}  // namespace

Status RecordFileImpl::ReplayJournal(const Bytes& file, bool* rewrite) {
  std::span<const uint8_t> all(file);
  *rewrite = false;
  if (all.size() < kJournalHeaderSize ||
      !VerifyHmacSha256(
           keys_,
           {Label(kJournalHeaderContext), all.first(kJournalHeaderFields)},
           all.subspan(kJournalHeaderFields, kTagSize))
           .ok()) {
    // Journals are created atomically, so this is damage, not a crash.
    return Failed("journal header");
  }
  ByteReader h(all.first(kJournalHeaderFields));
  const FileHeader header = ReadFileHeader(h);
  if (!header.Known(kJournalMagic) ||
      header.type != static_cast<uint8_t>(type_) || header.owner != owner_) {
    return InvalidArgumentError("journal: unknown format, type or owner");
  }
  const uint64_t generation = header.generation;
  if (generation < generation_) {
    // A crash came between writing a new snapshot and its journal: every
    // entry of this journal is already in the snapshot.
    spdlog::info("store {}: ignoring stale journal (generation {} < {})", path_,
                 generation, generation_);
    *rewrite = true;
    return OkStatus();
  }
  if (generation > generation_)
    return DataLossError("journal newer than snapshot");

  std::vector<Parsed> entries =
      ParseEntries(all, JournalEntryContext(owner_, type_, generation_), keys_,
                   codec_, type_);
  KGR_ASSIGN_OR_RETURN(const Committed done, FindCommitted(all, entries));
  const size_t committed = done.entries;
  if (done.tail > 0) {
    spdlog::warn(
        "store {}: discarding {} bytes of an incomplete journal append", path_,
        done.tail);
    *rewrite = true;
  }
  uint64_t expected = 1;
  std::lock_guard<std::mutex> l(mu_);
  std::vector<size_t> pending;
  for (size_t i = 0; i < committed; ++i) {
    const Parsed& p = entries[i];
    if (p.ok && p.seq != expected) {
      return DataLossError("journal entry " + std::to_string(i) +
                           ": out of sequence");
    }
    ++expected;
    pending.push_back(i);
    if (!(p.ok && p.commit)) continue;
    for (size_t j : pending) {
      Parsed& q = entries[j];
      if (q.ok) {
        ApplyOpLocked(q.key, std::move(q.record));
        continue;
      }
      // Fail closed: the key's latest state is unknown.
      SetLocked(*q.claimed_key, std::nullopt);
      CorruptEntry c;
      c.info.source = CorruptRecord::Source::kJournal;
      c.info.index = j;
      c.info.claimed_key = q.claimed_key;
      c.info.status = DataLossError(
          RecordName(*q.claimed_key) + " (journal #" + std::to_string(j) +
          "): " + kVerificationFailed + " (" + q.status.message() + ")");
      spdlog::error("store {}: {}", path_, c.info.status.message());
      corrupt_.push_back(std::move(c));
    }
    pending.clear();
  }
  next_seq_ = expected;
  journal_entries_ = committed;
  journal_bytes_ = done.end;
  journal_size_ = all.size();
  return OkStatus();
}

Status AppendJournalEntry(const RecordKeys& keys, std::span<const uint8_t> ctx,
                          uint64_t seq, uint64_t key,
                          const std::optional<Bytes>& record, bool commit,
                          Bytes* buf) {
  size_t at = buf->size();
  ByteWriter w(buf);
  w.U32(0);  // length, patched below
  w.U8(record ? kEntryPut : kEntryDelete);
  w.U8(commit ? kEntryCommit : 0);
  w.U64(seq);
  w.U64(key);
  if (record) w.Raw(*record);
  KGR_ASSIGN_OR_RETURN(
      Tag tag,
      HmacSha256(keys, {ctx, std::span<const uint8_t>(*buf).subspan(at + 4)}));
  w.Raw(tag);
  uint32_t len = static_cast<uint32_t>(buf->size() - at - 4);
  for (int i = 0; i < 4; ++i)
    (*buf)[at + i] = static_cast<uint8_t>(len >> (24 - 8 * i));
  return OkStatus();
}

Bytes RecordFileImpl::Preallocation() const {
  return Bytes(
      std::min(options_.journal_preallocate_bytes, kMaxCommitGroupBytes), 0);
}

Histogram& StoreFsyncSeconds() {
  static Histogram fsyncs;
  return fsyncs;
}

Status RecordFileImpl::WriteJournal(std::span<const uint8_t> buf, bool sync) {
  const uint64_t at = journal_bytes_;
  KGR_RETURN_IF_ERROR(journal_->WriteAt(at, buf));
  if (at + buf.size() > journal_size_) {
    // The preallocated space is used up: add more. Not needed for the
    // entries, so a failure (a full disk) only costs the speed-up.
    journal_size_ = at + buf.size();
    Bytes zeros = Preallocation();
    if (!zeros.empty()) {
      Status z = journal_->WriteAt(journal_size_, zeros);
      if (z.ok()) {
        journal_size_ += zeros.size();
      } else {
        spdlog::debug("store {}: no journal preallocation: {}", path_,
                      z.ToString());
      }
    }
  }
  if (sync) {
    auto start = std::chrono::steady_clock::now();
    Status synced = journal_->Sync();
    StoreFsyncSeconds().Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
    KGR_RETURN_IF_ERROR(synced);
  }
  journal_bytes_ = at + buf.size();
  return OkStatus();
}

}  // namespace kgr
