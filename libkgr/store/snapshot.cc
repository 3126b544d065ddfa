// The snapshot file of a RecordFile (docs/storage.md): loading it, with
// the parallel verification of its records, and encoding it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <system_error>
#include <thread>
#include <utility>

#include "kgr/store.h"
#include "store/format.h"
#include "store/record_file.h"

namespace kgr {

Status RecordFileImpl::LoadSnapshot(Bytes file) {
  std::span<const uint8_t> all(file);
  // The header, or its copy at the end of the file.
  auto parse_header =
      [&](size_t at) -> std::optional<std::span<const uint8_t>> {
    if (at + kSnapshotHeaderSize > all.size()) return std::nullopt;
    std::span<const uint8_t> h = all.subspan(at, kSnapshotHeaderSize);
    if (!VerifyHmacSha256(
             keys_,
             {Label(kSnapshotHeaderContext), h.first(kSnapshotHeaderFields)},
             h.subspan(kSnapshotHeaderFields))
             .ok()) {
      return std::nullopt;
    }
    return h.first(kSnapshotHeaderFields);
  };
  auto header = parse_header(0);
  if (!header && all.size() >= kSnapshotHeaderSize) {
    header = parse_header(all.size() - kSnapshotHeaderSize);
    if (header)
      spdlog::warn("store {}: snapshot header damaged, using its copy", path_);
  }
  if (!header) return Failed("snapshot header");
  ByteReader h(*header);
  std::span<const uint8_t> magic;
  uint8_t version, type;
  uint16_t reserved;
  uint32_t owner, count;
  uint64_t generation;
  h.View(4, &magic);
  h.U8(&version);
  h.U8(&type);
  h.U16(&reserved);
  h.U32(&owner);
  h.U64(&generation);
  h.U32(&count);
  if (!std::equal(magic.begin(), magic.end(), kSnapshotMagic) ||
      version != kFormatVersion || reserved != 0) {
    return InvalidArgumentError("snapshot: unknown format");
  }
  if (type != static_cast<uint8_t>(type_)) {
    return InvalidArgumentError(
        "snapshot holds " +
        std::string(RecordTypeName(static_cast<RecordType>(type))) +
        " records, expected " + std::string(RecordTypeName(type_)));
  }
  if (owner != owner_) {
    return InvalidArgumentError("snapshot belongs to node " +
                                std::to_string(owner));
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

  // 1. Locate the records (sequential: the scan depends on each length).
  // loc[i] is where record i is, if verdict[i] is kLocated; records from
  // `lost_from` on cannot be located at all.
  enum : uint8_t { kUnlocated, kLocated, kOk, kBad, kDuplicate };
  std::vector<BaseEntry> loc;
  std::vector<uint8_t> verdict;
  loc.reserve(std::min<uint64_t>(count, all.size() / 4));
  verdict.reserve(loc.capacity());
  size_t scan = records_at;  // sequential position when the index is bad
  bool scan_lost = !index_ok && records_at > all.size();
  std::optional<uint32_t> lost_from;
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
      lost_from = i;  // without index or framing the rest cannot be found
      break;
    }
    // Offsets are kept as u32: snapshots are written below 4 GiB.
    if (rec && rec->first + rec->second > std::numeric_limits<uint32_t>::max())
      rec.reset();
    loc.push_back({0, rec ? static_cast<uint32_t>(rec->first) : 0,
                   rec ? rec->second : 0});
    verdict.push_back(rec ? kLocated : kUnlocated);
  }

  // 2. Verify every located record, on several threads for a large file.
  // Worker t handles loc[begin_t, end_t): it fills in the keys of the
  // records that verify and lists the others (in order) in failures[t].
  // Each worker has its own prepared copy of the keys (HMAC pads set up
  // once; one prepared pair serves one caller at a time), released and
  // wiped when it is done.
  struct Failure {
    size_t index;
    Status status;
  };
  unsigned threads = options_.verify_threads;
  if (threads == 0)
    threads = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
  if (loc.size() < std::max<size_t>(options_.parallel_verify_min_records, 2))
    threads = 1;
  threads = static_cast<unsigned>(
      std::min<size_t>({threads, kMaxVerifyThreads, loc.size()}));
  threads = std::max(threads, 1u);
  std::vector<std::vector<Failure>> failures(threads);
  auto verify = [&](unsigned t) {
    size_t begin = loc.size() * t / threads;
    size_t end = loc.size() * (t + 1) / threads;
    if (begin == end) return;
    RecordKeys keys = keys_.Clone();
    if (!keys.Prepare().ok()) keys.prepared.reset();  // slower, same result
    const RecordCodec codec(keys, owner_);
    for (size_t i = begin; i < end; ++i) {
      if (verdict[i] != kLocated) continue;
      BaseEntry& e = loc[i];
      StatusOr<uint64_t> key =
          codec.Verify(type_, all.subspan(e.offset, e.size));
      if (key.ok()) {
        e.key = *key;
        verdict[i] = kOk;
      } else {
        verdict[i] = kBad;
        failures[t].push_back({i, key.status()});
      }
    }
  };
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) {
    try {
      workers.emplace_back(verify, t);
    } catch (const std::system_error& e) {  // no thread: do it here
      spdlog::warn("store {}: verifying on one thread: {}", path_, e.what());
      verify(t);
    }
  }
  verify(0);
  for (std::thread& w : workers) w.join();

  // 3. Keys: ascending and unique in a snapshot we wrote. Otherwise the
  // first record of a key (in file order) wins and the others are corrupt.
  bool ascending = true;
  {
    const BaseEntry* prev = nullptr;
    for (size_t i = 0; i < loc.size() && ascending; ++i) {
      if (verdict[i] != kOk) continue;
      ascending = prev == nullptr || loc[i].key > prev->key;
      prev = &loc[i];
    }
  }
  if (!ascending) {
    std::vector<std::pair<uint64_t, size_t>> order;
    for (size_t i = 0; i < loc.size(); ++i) {
      if (verdict[i] == kOk) order.emplace_back(loc[i].key, i);
    }
    std::sort(order.begin(), order.end());  // by key, then file order
    for (size_t j = 1; j < order.size(); ++j) {
      if (order[j].first == order[j - 1].first)
        verdict[order[j].second] = kDuplicate;
    }
  }

  // 4. Report the others in file order; the readable ones become the base.
  std::vector<Failure> failed;
  for (auto& f : failures) {
    for (auto& x : f) failed.push_back(std::move(x));
  }
  auto next_failure = failed.begin();
  size_t n_ok = 0;
  for (size_t i = 0; i < loc.size(); ++i) {
    if (verdict[i] == kOk) {
      loc[n_ok++] = loc[i];
      continue;
    }
    Status s = InvalidArgumentError("unreadable framing");
    std::optional<std::span<const uint8_t>> rec;
    if (verdict[i] != kUnlocated) rec = all.subspan(loc[i].offset, loc[i].size);
    if (verdict[i] == kDuplicate) s = InvalidArgumentError("duplicate key");
    if (verdict[i] == kBad) {
      s = std::move(next_failure->status);  // failures are in file order
      ++next_failure;
    }
    CorruptEntry c;
    c.info.source = CorruptRecord::Source::kSnapshot;
    c.info.index = i;
    if (rec) c.info.claimed_key = PeekRecordKey(*rec);
    c.info.status = DataLossError(
        (c.info.claimed_key ? RecordName(*c.info.claimed_key)
                            : std::string(RecordTypeName(type_)) + " record") +
        " (snapshot #" + std::to_string(i) + "): " + kVerificationFailed +
        " (" + s.message() + ")");
    if (rec) c.raw.assign(rec->begin(), rec->end());
    spdlog::error("store {}: {}", path_, c.info.status.message());
    corrupt_.push_back(std::move(c));
  }
  if (lost_from) {
    // Without index or framing the rest cannot be located: one report.
    CorruptEntry c;
    c.info.index = *lost_from;
    c.info.status = DataLossError(std::string(RecordTypeName(type_)) +
                                  " records #" + std::to_string(*lost_from) +
                                  ".." + std::to_string(count - 1) +
                                  " of the snapshot: unreadable");
    spdlog::error("store {}: {}", path_, c.info.status.message());
    corrupt_.push_back(std::move(c));
  }
  loc.resize(n_ok);
  loc.shrink_to_fit();
  if (!ascending) {
    std::sort(
        loc.begin(), loc.end(),
        [](const BaseEntry& a, const BaseEntry& b) { return a.key < b.key; });
  }
  std::lock_guard<std::mutex> l(mu_);
  base_buf_ = std::move(file);
  base_ = std::move(loc);
  changes_.clear();
  count_ = base_.size();
  generation_ = generation;
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
  w.Str(std::string_view(kSnapshotMagic, 4));
  w.U8(kFormatVersion);
  w.U8(static_cast<uint8_t>(type_));
  w.U16(0);
  w.U32(owner_);
  w.U64(generation);
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
