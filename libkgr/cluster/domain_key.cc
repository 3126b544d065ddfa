// The domain key in a member's state directory, sealed under its NK
// (docs/cluster.md "The domain key"):
//   file := "KGRD" version:u8 = 1 reserved:u8*3 = 0 domain_id:u32
//           generation:u32 iv:bytes[16] CTR(NK, iv, enc:32 mac:32)
//           HMAC(NKsign, everything before)
#include <array>

#include "kgr/cluster.h"

namespace kgr {
namespace {

constexpr size_t kHeaderSize = 16;
constexpr size_t kIvAt = kHeaderSize;
constexpr size_t kCiphertextAt = kIvAt + kIvSize;
constexpr size_t kFileSize = kCiphertextAt + 2 * kKeySize + 32;
constexpr std::array<uint8_t, 4> kMagic = {'K', 'G', 'R', 'D'};

void AppendU32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(v >> shift));
  }
}

uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

std::string DomainKeyPath(const std::string& state_dir) {
  return state_dir + "/domain_key";
}

StatusOr<DomainKey> NewDomainKey(uint32_t domain_id) {
  KGR_ASSIGN_OR_RETURN(RecordKeys keys, SymmetricKeys::Generate());
  return DomainKey{domain_id, 1, std::move(keys)};
}

Status SaveDomainKey(FileSystem& fs, const std::string& path,
                     const DomainKey& key, const RecordKeys& member_nk) {
  if (!key.keys.valid()) return InvalidArgumentError("domain key: no key");
  Bytes out(kMagic.begin(), kMagic.end());
  out.insert(out.end(), {1, 0, 0, 0});
  AppendU32(out, key.domain_id);
  AppendU32(out, key.generation);
  out.resize(kCiphertextAt, 0);  // the IV, drawn by EtmSeal
  SecretBytes plain(key.keys.RawEncKeyBytes().span());
  plain.Append(key.keys.RawMacKeyBytes().span());
  KGR_RETURN_IF_ERROR(EtmSeal(member_nk, kIvAt, plain.span(), &out));
  return fs.WriteFileAtomic(path, out, 0600);
}

StatusOr<DomainKey> LoadDomainKey(FileSystem& fs, const std::string& path,
                                  const RecordKeys& member_nk) {
  if (!fs.Exists(path)) return NotFoundError("no domain key: " + path);
  KGR_ASSIGN_OR_RETURN(Bytes file, fs.ReadFile(path));
  if (file.size() != kFileSize ||
      !std::equal(kMagic.begin(), kMagic.end(), file.begin()) || file[4] != 1) {
    return DataLossError(path + ": not a domain key file (version 1)");
  }
  std::span<const uint8_t> all(file);
  auto plain = EtmOpen(member_nk, all.first(kFileSize - 32), kIvAt,
                       kCiphertextAt, all.last(32));
  if (!plain.ok()) {
    return DataLossError(path +
                         ": verification failed (another member's file, or "
                         "damaged)");
  }
  DomainKey key;
  key.domain_id = ReadU32(&file[8]);
  key.generation = ReadU32(&file[12]);
  KGR_ASSIGN_OR_RETURN(key.keys,
                       SymmetricKeys::FromBytes(plain->span().first(kKeySize),
                                                plain->span().last(kKeySize)));
  return key;
}

Bytes DomainCheckValue(const DomainKey& key) {
  Bytes out;
  AppendU32(out, key.domain_id);
  AppendU32(out, key.generation);
  static constexpr std::string_view kLabel = "KGR-DOMAIN-CHECK1";
  auto tag = HmacSha256(
      key.keys,
      {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kLabel.data()),
                                kLabel.size()),
       std::span<const uint8_t>(out)});
  if (tag.ok()) out.insert(out.end(), tag->begin(), tag->end());
  return out;
}

bool IsEtcdStateUrl(const std::string& text) {
  return text.rfind("etcd://", 0) == 0;
}

StatusOr<EtcdStateUrl> ParseEtcdStateUrl(const std::string& url) {
  if (!IsEtcdStateUrl(url)) {
    return InvalidArgumentError("state: expected etcd://host:port/prefix: " +
                                url);
  }
  std::string rest = url.substr(7);
  size_t slash = rest.find('/');
  if (slash == std::string::npos || slash + 1 >= rest.size() ||
      rest.back() == '/') {
    return InvalidArgumentError(
        "state: no prefix (etcd://host:port[,host:port]/prefix): " + url);
  }
  EtcdStateUrl out;
  out.prefix = rest.substr(slash);
  std::string hosts = rest.substr(0, slash);
  size_t start = 0;
  while (start <= hosts.size()) {
    size_t comma = hosts.find(',', start);
    std::string one = hosts.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t colon = one.rfind(':');
    if (one.empty() || colon == std::string::npos || colon == 0 ||
        colon + 1 == one.size() ||
        one.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
      return InvalidArgumentError("state: bad endpoint '" + one +
                                  "' (host:port) in " + url);
    }
    out.endpoints.push_back(one);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace kgr
