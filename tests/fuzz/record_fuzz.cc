// Fuzzes the record decoders (node_desc, gen_keys, ses_keys) with fixed
// NK/NKsign, the record-key peek, and the record file loader on an
// in-memory file system (snapshot and journal from the input).
#include <cstddef>
#include <cstdint>

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
