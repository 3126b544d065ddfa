// The snapshot file of a RecordFile (docs/storage.md): loading it, with
// the parallel verification of its records, and encoding it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "kgr/store.h"
#include "store/format.h"
#include "store/record_file.h"

namespace kgr {

namespace {

// What step 1 of loading found out about each record of the file.
enum Verdict : uint8_t { kUnlocated, kLocated, kOk, kBad, kDuplicate };

// The records of a snapshot as located: loc[i] is where record i is, if
// verdict[i] is kLocated (after verification: its key too, if kOk);
// records from `lost_from` on cannot be located at all.
struct Located {
  std::vector<RecordFileImpl::BaseEntry> loc;
  std::vector<uint8_t> verdict;
  std::optional<uint32_t> lost_from;
};

struct Failure {
  size_t index;
  Status status;
};

// The verified header fields at `at` of the file, if they verify.
std::optional<std::span<const uint8_t>> HeaderAt(const RecordKeys& keys,
                                                 std::span<const uint8_t> all,
                                                 size_t at) {
  if (at + kSnapshotHeaderSize > all.size()) return std::nullopt;
  std::span<const uint8_t> h = all.subspan(at, kSnapshotHeaderSize);
  if (!VerifyHmacSha256(
           keys,
           {Label(kSnapshotHeaderContext), h.first(kSnapshotHeaderFields)},
           h.subspan(kSnapshotHeaderFields))
           .ok()) {
    return std::nullopt;
  }
  return h.first(kSnapshotHeaderFields);
}

// 1. Locates the `count` records (sequential: a scan depends on each
// length): through the index if `index_ok`, else by their framing.
Located LocateRecords(std::span<const uint8_t> all, uint32_t count,
                      size_t index_at, uint64_t records_at, bool index_ok) {
  Located l;
  l.loc.reserve(std::min<uint64_t>(count, all.size() / 4));
  l.verdict.reserve(l.loc.capacity());
  size_t scan = records_at;  // sequential position when the index is bad
  bool scan_lost = !index_ok && records_at > all.size();
  for (uint32_t i = 0; i < count; ++i) {
    std::optional<std::pair<uint64_t, uint32_t>> rec;  // offset, length
    if (index_ok) {
      ByteReader ir(
          all.subspan(index_at + size_t{i} * kIndexEntrySize, kIndexEntrySize));
      uint32_t off, n, inline_len;
      ir.U32(&off);
      ir.U32(&n);
      ByteReader lr(all.subspan(std::min<size_t>(off, all.size())));
      if (n <= kMaxRecordSize && uint64_t{off} + 4 + n <= all.size() &&
          lr.U32(&inline_len) && inline_len == n) {
        rec.emplace(uint64_t{off} + 4, n);
      }
    } else if (!scan_lost) {
      ByteReader lr(all.subspan(scan));
      uint32_t n;
      if (lr.U32(&n) && n <= kMaxRecordSize && scan + 4 + n <= all.size()) {
        rec.emplace(scan + 4, n);
        scan += 4 + size_t{n};
      } else {
        scan_lost = true;  // no way to find the following records
      }
    }
    if (!rec && scan_lost) {
      l.lost_from = i;  // without index or framing the rest cannot be found
      break;
    }
    // Offsets are kept as u32: snapshots are written below 4 GiB.
    if (rec && rec->first + rec->second > std::numeric_limits<uint32_t>::max())
      rec.reset();
    l.loc.push_back({0, rec ? static_cast<uint32_t>(rec->first) : 0,
                     rec ? rec->second : 0});
    l.verdict.push_back(rec ? kLocated : kUnlocated);
  }
  return l;
}

// How many threads verify `n` records.
unsigned VerifyThreads(const StoreOptions& options, size_t n) {
  unsigned threads = options.verify_threads;
  if (threads == 0)
    threads = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
  if (n < std::max<size_t>(options.parallel_verify_min_records, 2)) threads = 1;
  threads =
      static_cast<unsigned>(std::min<size_t>({threads, kMaxVerifyThreads, n}));
  return std::max(threads, 1u);
}

// 2. Verifies every located record on `threads` threads, the caller's
// included: fills in the keys of those that verify and returns the others,
// in file order. Worker t handles loc[begin_t, end_t), with its own
// prepared copy of the keys (HMAC pads set up once; one prepared pair
// serves one caller at a time), released and wiped when it is done.
std::vector<Failure> VerifyRecords(const RecordKeys& keys, uint32_t owner,
                                   RecordType type, unsigned threads,
                                   const std::string& path,
                                   std::span<const uint8_t> all, Located* l) {
  std::vector<std::vector<Failure>> failures(threads);
  auto verify = [&](unsigned t) {
    size_t begin = l->loc.size() * t / threads;
    size_t end = l->loc.size() * (t + 1) / threads;
    if (begin == end) return;
    RecordKeys own = keys.Clone();
    (void)own.Prepare();  // if it fails: slower, same result
    const RecordCodec codec(own, owner);
    for (size_t i = begin; i < end; ++i) {
      if (l->verdict[i] != kLocated) continue;
      RecordFileImpl::BaseEntry& e = l->loc[i];
      StatusOr<uint64_t> key =
          codec.Verify(type, all.subspan(e.offset, e.size));
      if (key.ok()) {
        e.key = *key;
        l->verdict[i] = kOk;
      } else {
        l->verdict[i] = kBad;
        failures[t].push_back({i, key.status()});
      }
    }
  };
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) {
    try {
      workers.emplace_back(verify, t);
    } catch (const std::system_error& e) {  // no thread: do it here
      spdlog::warn("store {}: verifying on one thread: {}", path, e.what());
      verify(t);
    }
  }
  verify(0);
  for (std::thread& w : workers) w.join();
  std::vector<Failure> failed;
  for (auto& f : failures) {
    for (auto& x : f) failed.push_back(std::move(x));
  }
  return failed;
}

// 3. Keys are ascending and unique in a snapshot we wrote. Otherwise the
// first record of a key (in file order) wins and the others are marked
// kDuplicate. Returns whether they were ascending.
bool MarkDuplicates(Located* l) {
  bool ascending = true;
  const RecordFileImpl::BaseEntry* prev = nullptr;
  for (size_t i = 0; i < l->loc.size() && ascending; ++i) {
    if (l->verdict[i] != kOk) continue;
    ascending = prev == nullptr || l->loc[i].key > prev->key;
    prev = &l->loc[i];
  }
  if (ascending) return true;
  std::vector<std::pair<uint64_t, size_t>> order;
  for (size_t i = 0; i < l->loc.size(); ++i) {
    if (l->verdict[i] == kOk) order.emplace_back(l->loc[i].key, i);
  }
  std::sort(order.begin(), order.end());  // by key, then file order
  for (size_t j = 1; j < order.size(); ++j) {
    if (order[j].first == order[j - 1].first)
      l->verdict[order[j].second] = kDuplicate;
  }
  return false;
}

// 4. The reports of the records that are not kOk, in file order (with
// `failed`, VerifyRecords' result), and one for those lost; keeps only
// the readable records in l->loc, sorted by key.
std::vector<RecordFileImpl::CorruptEntry> SortOut(RecordType type,
                                                  uint32_t count,
                                                  const std::string& path,
                                                  std::span<const uint8_t> all,
                                                  std::vector<Failure> failed,
                                                  bool ascending, Located* l) {
  std::vector<RecordFileImpl::CorruptEntry> corrupt;
  auto next_failure = failed.begin();
  size_t n_ok = 0;
  for (size_t i = 0; i < l->loc.size(); ++i) {
    if (l->verdict[i] == kOk) {
      l->loc[n_ok++] = l->loc[i];
      continue;
    }
    Status s = InvalidArgumentError("unreadable framing");
    std::optional<std::span<const uint8_t>> rec;
    if (l->verdict[i] != kUnlocated)
      rec = all.subspan(l->loc[i].offset, l->loc[i].size);
    if (l->verdict[i] == kDuplicate) s = InvalidArgumentError("duplicate key");
    if (l->verdict[i] == kBad) {
      s = std::move(next_failure->status);  // failures are in file order
      ++next_failure;
    }
    RecordFileImpl::CorruptEntry c;
    c.info.source = CorruptRecord::Source::kSnapshot;
    c.info.index = i;
    if (rec) c.info.claimed_key = PeekRecordKey(*rec);
    c.info.status = DataLossError(
        (c.info.claimed_key ? RecordNameOf(type, *c.info.claimed_key)
                            : std::string(RecordTypeName(type)) + " record") +
        " (snapshot #" + std::to_string(i) + "): " + kVerificationFailed +
        " (" + s.message() + ")");
    if (rec) c.raw.assign(rec->begin(), rec->end());
    spdlog::error("store {}: {}", path, c.info.status.message());
    corrupt.push_back(std::move(c));
  }
  if (l->lost_from) {
    // Without index or framing the rest cannot be located: one report.
    RecordFileImpl::CorruptEntry c;
    c.info.index = *l->lost_from;
    c.info.status = DataLossError(std::string(RecordTypeName(type)) +
                                  " records #" + std::to_string(*l->lost_from) +
                                  ".." + std::to_string(count - 1) +
                                  " of the snapshot: unreadable");
    spdlog::error("store {}: {}", path, c.info.status.message());
    corrupt.push_back(std::move(c));
  }
  l->loc.resize(n_ok);
  l->loc.shrink_to_fit();
  if (!ascending) {
    std::sort(l->loc.begin(), l->loc.end(),
              [](const RecordFileImpl::BaseEntry& a,
                 const RecordFileImpl::BaseEntry& b) { return a.key < b.key; });
  }
  return corrupt;
}

}  // namespace

Status RecordFileImpl::LoadSnapshot(Bytes file) {
  std::span<const uint8_t> all(file);
  // The header, or its copy at the end of the file.
  auto header = HeaderAt(keys_, all, 0);
  if (!header && all.size() >= kSnapshotHeaderSize) {
    header = HeaderAt(keys_, all, all.size() - kSnapshotHeaderSize);
    if (header)
      spdlog::warn("store {}: snapshot header damaged, using its copy", path_);
  }
  if (!header) return Failed("snapshot header");
  ByteReader h(*header);
  const FileHeader fields = ReadFileHeader(h);
  uint32_t count;
  h.U32(&count);
  if (!fields.Known(kSnapshotMagic)) {
    return InvalidArgumentError("snapshot: unknown format");
  }
  if (fields.type != static_cast<uint8_t>(type_)) {
    return InvalidArgumentError(
        "snapshot holds " +
        std::string(RecordTypeName(static_cast<RecordType>(fields.type))) +
        " records, expected " + std::string(RecordTypeName(type_)));
  }
  if (fields.owner != owner_) {
    return InvalidArgumentError("snapshot belongs to node " +
                                std::to_string(fields.owner));
  }

  const size_t index_at = kSnapshotHeaderSize;
  const uint64_t index_size = uint64_t{count} * kIndexEntrySize;
  const uint64_t records_at = index_at + index_size + kTagSize;
  bool index_ok = records_at <= all.size();
  if (index_ok) {
    std::span<const uint8_t> index = all.subspan(index_at, index_size);
    index_ok =
        VerifyHmacSha256(keys_, {Label(kSnapshotIndexContext), *header, index},
                         all.subspan(index_at + index_size, kTagSize))
            .ok();
  }
  if (!index_ok)
    spdlog::warn("store {}: snapshot index damaged, scanning records", path_);

  Located l = LocateRecords(all, count, index_at, records_at, index_ok);
  std::vector<Failure> failed =
      VerifyRecords(keys_, owner_, type_, VerifyThreads(options_, l.loc.size()),
                    path_, all, &l);
  const bool ascending = MarkDuplicates(&l);
  std::vector<CorruptEntry> corrupt =
      SortOut(type_, count, path_, all, std::move(failed), ascending, &l);
  for (CorruptEntry& c : corrupt) corrupt_.push_back(std::move(c));
  std::lock_guard<std::mutex> lock(mu_);
  base_buf_ = std::move(file);
  base_ = std::move(l.loc);
  changes_.clear();
  count_ = base_.size();
  generation_ = fields.generation;
  return OkStatus();
}

StatusOr<Bytes> RecordFileImpl::EncodeSnapshot(
    uint64_t generation, bool drop_corrupt,
    std::vector<BaseEntry>* entries) const {
  std::vector<std::pair<uint64_t, std::span<const uint8_t>>> recs;
  recs.reserve(count_ + corrupt_.size());
  ForEachLocked([&](uint64_t key, std::span<const uint8_t> rec) {
    recs.emplace_back(key, rec);
  });
  const size_t readable = recs.size();
  if (!drop_corrupt) {
    for (const CorruptEntry& c : corrupt_) {
      if (c.info.source == CorruptRecord::Source::kSnapshot)
        recs.emplace_back(0, std::span<const uint8_t>(c.raw));
    }
  }
  Bytes out;
  ByteWriter w(&out);
  WriteFileHeader(w, kSnapshotMagic, type_, owner_, generation);
  w.U32(static_cast<uint32_t>(recs.size()));
  Bytes header_fields = out;
  KGR_ASSIGN_OR_RETURN(
      Tag tag,
      HmacSha256(keys_, {Label(kSnapshotHeaderContext), header_fields}));
  w.Raw(tag);
  size_t index_at = out.size();
  size_t off = index_at + recs.size() * kIndexEntrySize + kTagSize;
  uint64_t total = off + kSnapshotHeaderSize;
  for (const auto& [key, r] : recs) total += 4 + r.size();
  if (total > std::numeric_limits<uint32_t>::max()) {
    return ResourceExhaustedError("store larger than 4 GiB");
  }
  out.reserve(total);
  entries->clear();
  entries->reserve(readable);
  for (size_t i = 0; i < recs.size(); ++i) {
    const std::span<const uint8_t> r = recs[i].second;
    w.U32(static_cast<uint32_t>(off));
    w.U32(static_cast<uint32_t>(r.size()));
    if (i < readable) {
      entries->push_back({recs[i].first, static_cast<uint32_t>(off + 4),
                          static_cast<uint32_t>(r.size())});
    }
    off += 4 + r.size();
  }
  KGR_ASSIGN_OR_RETURN(
      Tag index_tag,
      HmacSha256(keys_, {Label(kSnapshotIndexContext), header_fields,
                         std::span<const uint8_t>(out).subspan(index_at)}));
  w.Raw(index_tag);
  for (const auto& [key, r] : recs) {
    w.U32(static_cast<uint32_t>(r.size()));
    w.Raw(r);
  }
  w.Raw(header_fields);
  w.Raw(tag);
  return out;
}

}  // namespace kgr
