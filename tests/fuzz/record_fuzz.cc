// Fuzzes the record decoders (node_desc, gen_keys, ses_keys, groups,
// grp_keys) with fixed NK/NKsign, the record-key peek, and the record file
// loader on an in-memory file system (snapshot and journal from the input).
// The group records also get the input sealed under the fixed keys (its
// first byte splits clear from secret), so that their content decoders run
// behind a valid MAC: a groups record of each kind (header, key tree piece,
// member piece) and a grp_keys record of each kind.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "codec/record_envelope.h"
#include "kgr/records.h"
#include "kgr/store.h"
#include "testing/fake_filesystem.h"

namespace {

const kgr::RecordKeys& Keys() {
  static kgr::RecordKeys* keys = [] {
    kgr::SecretBytes enc(kgr::kKeySize), mac(kgr::kKeySize);
    for (size_t i = 0; i < kgr::kKeySize; ++i) {
      enc.data()[i] = static_cast<uint8_t>(3 * i);
      mac.data()[i] = static_cast<uint8_t>(5 * i + 1);
    }
    return new kgr::RecordKeys{std::move(enc), std::move(mac)};
  }();
  return *keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  (void)kgr::DecodeRecord<kgr::NodeDesc>(in, Keys(), 7);
  (void)kgr::DecodeRecord<kgr::GenKey>(in, Keys(), 7);
  (void)kgr::DecodeRecord<kgr::SesKey>(in, Keys(), 7);
  (void)kgr::VerifyRecord(in, kgr::RecordType::kSesKey, Keys(), 7);
  (void)kgr::PeekRecordKey(in);
  const kgr::RecordCodec codec(Keys(), 7);
  (void)codec.Decode<kgr::GroupDesc>(in);
  (void)codec.Decode<kgr::GroupRecord>(in);
  if (size > 0) {
    const size_t split = std::min<size_t>(data[0], size - 1);
    const auto clear = in.subspan(1, split), secret = in.subspan(1 + split);
    using Kind = kgr::GroupDesc::Kind;
    const std::pair<kgr::RecordType, uint64_t> sealed[] = {
        {kgr::RecordType::kGroupDesc, kgr::GroupRecordKey(Kind::kHeader, 9)},
        {kgr::RecordType::kGroupDesc,
         kgr::GroupRecordKey(Kind::kTreePiece, 9, 2, 5)},
        {kgr::RecordType::kGroupDesc,
         kgr::GroupRecordKey(Kind::kMemberPiece, 9, 0, 5)},
        {kgr::RecordType::kGrpKeys, 0},
        {kgr::RecordType::kGrpKeys, uint64_t{9} << 32},
        {kgr::RecordType::kGrpKeys, uint64_t{9} << 32 | 11}};
    for (const auto& [type, key] : sealed) {
      auto record =
          kgr::records_internal::SealParts(type, key, clear, secret, Keys(), 7);
      if (!record.ok()) continue;
      if (type == kgr::RecordType::kGroupDesc) {
        (void)codec.Decode<kgr::GroupDesc>(*record);
      } else {
        (void)codec.Decode<kgr::GroupRecord>(*record);
      }
    }
  }
  // The same bytes as a snapshot file, and as a journal.
  for (int as_journal = 0; as_journal < 2; ++as_journal) {
    kgr::testing::FakeFileSystem fs;
    fs.SetContents(as_journal ? "/d/ses_keys.log" : "/d/ses_keys",
                   kgr::Bytes(in.begin(), in.end()));
    auto store = kgr::SesKeysStore::Open(fs, "/d/ses_keys", Keys(), 7);
    if (store.ok()) (*store)->ForEach([](const kgr::SesKey&) {});
  }
  return 0;
}
