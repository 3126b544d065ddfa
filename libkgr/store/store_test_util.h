// Shared helpers of the store tests (libkgr/store/*_test.cc): a SesKeysStore
// on a FakeFileSystem at kPath, records whose value is their ctime.
#ifndef KGR_STORE_STORE_TEST_UTIL_H_
#define KGR_STORE_STORE_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "kgr/store.h"
#include "testing/fake_filesystem.h"

namespace kgr::store_test {

using ::kgr::testing::FakeFileSystem;
using Op = FakeFileSystem::Op;

constexpr uint32_t kOwner = 0x00c0ffee;
constexpr char kPath[] = "state/ses_keys";
constexpr char kLog[] = "state/ses_keys.log";

inline SymmetricKeys Keys(uint8_t base = 1) {
  SecretBytes enc(kKeySize), mac(kKeySize);
  for (size_t i = 0; i < kKeySize; ++i) {
    enc.data()[i] = static_cast<uint8_t>(base + i);
    mac.data()[i] = static_cast<uint8_t>(base + 0x80 + i);
  }
  return {std::move(enc), std::move(mac)};
}

// A ses_keys record whose "value" is its ctime (and key_version).
inline SesKey Ses(uint32_t peer, uint64_t value) {
  SesKey k;
  k.n_id = peer;
  k.ctime_unix_ms = value;
  k.key_version = static_cast<uint32_t>(value);
  k.nnsk = Keys(static_cast<uint8_t>(value));
  TopicBytes t{};
  t[0] = static_cast<uint8_t>(peer);
  k.topic3 = t;
  return k;
}

using State = std::map<uint32_t, uint64_t>;  // peer -> value

inline State StateOf(const SesKeysStore& s) {
  State st;
  s.ForEach([&](const SesKey& k) { st[k.n_id] = k.ctime_unix_ms; });
  return st;
}

inline std::unique_ptr<SesKeysStore> OpenOrDie(FileSystem& fs,
                                               const StoreOptions& o = {}) {
  auto s = SesKeysStore::Open(fs, kPath, Keys(), kOwner, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// A journal without preallocated space: appends at the file's end, so tests
// that edit journal bytes can find entries by file size.
inline StoreOptions Plain() {
  StoreOptions o;
  o.journal_preallocate_bytes = 0;
  return o;
}

inline Bytes Read(FakeFileSystem& fs, const std::string& path) {
  auto b = fs.ReadFile(path);
  EXPECT_TRUE(b.ok());
  return b.ok() ? *b : Bytes();
}

}  // namespace kgr::store_test

#endif  // KGR_STORE_STORE_TEST_UTIL_H_
