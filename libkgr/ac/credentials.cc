#include "kgr/credentials.h"

#include <cstdio>

#include "kgr/bytes.h"

namespace kgr {
namespace {

constexpr size_t kMaxCredentialFile = 64 * 1024;

void AppendLine(SecretBytes& out, std::string_view name,
                std::span<const uint8_t> value) {
  out.Append(AsBytes(name));
  out.Append(AsBytes(" "));
  out.Append(value);
  out.Append(AsBytes("\n"));
}

// Hex-encodes into a SecretBytes (the input may be secret).
SecretBytes HexSecret(std::span<const uint8_t> in) {
  static const char kDigits[] = "0123456789abcdef";
  SecretBytes out(in.size() * 2);
  for (size_t i = 0; i < in.size(); ++i) {
    out.data()[2 * i] = static_cast<uint8_t>(kDigits[in[i] >> 4]);
    out.data()[2 * i + 1] = static_cast<uint8_t>(kDigits[in[i] & 15]);
  }
  return out;
}

int HexVal(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool UnhexSecret(std::span<const uint8_t> hex, SecretBytes* out) {
  if (hex.size() % 2 != 0) return false;
  SecretBytes r(hex.size() / 2);
  for (size_t i = 0; i < r.size(); ++i) {
    int hi = HexVal(hex[2 * i]), lo = HexVal(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    r.data()[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *out = std::move(r);
  return true;
}

std::string_view AsText(std::span<const uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

}  // namespace

StatusOr<uint32_t> ParseNodeId(std::string_view text) {
  if (text.size() != 8) {
    return InvalidArgumentError("N_ID must be 8 hex digits: '" +
                                std::string(text) + "'");
  }
  Bytes b;
  if (!FromHex(text, &b)) {
    return InvalidArgumentError("N_ID is not hex: '" + std::string(text) + "'");
  }
  return static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 |
         static_cast<uint32_t>(b[2]) << 8 | b[3];
}

Status WriteCredentialFile(FileSystem& fs, const std::string& path,
                           const Credentials& c) {
  if (c.ntag.size() != 32) return InvalidArgumentError("NTAG must be 32 bytes");
  SecretBytes out;
  out.Append(AsBytes(
      "# kgr node credentials: SECRET. Import with `kgr-node init`, then "
      "delete this file.\n"));
  AppendLine(out, "kgr-credentials", AsBytes("1"));
  AppendLine(out, "n_id", AsBytes(FormatNodeId(c.n_id)));
  AppendLine(out, "ks_n_id", AsBytes(FormatNodeId(c.ks_n_id)));
  AppendLine(out, "ntag", HexSecret(c.ntag.span()).span());
  AppendLine(out, "broker", AsBytes(c.broker_address));
  AppendLine(out, "topic_prefix", AsBytes(c.topic_prefix));
  AppendLine(out, "ca_pem", AsBytes(ToHex(AsBytes(c.ca_pem))));
  AppendLine(out, "cert_pem", AsBytes(ToHex(AsBytes(c.cert_pem))));
  AppendLine(out, "key_pem", HexSecret(c.key_pem.span()).span());
  return fs.WriteFileAtomic(path, out.span(), 0600);
}

StatusOr<Credentials> ReadCredentialFile(FileSystem& fs,
                                         const std::string& path) {
  auto raw = fs.ReadFile(path);
  if (!raw.ok()) return raw.status().Annotate(path);
  SecretBytes file(*raw);
  WipeVector(*raw);
  if (file.size() > kMaxCredentialFile) {
    return InvalidArgumentError(path + ": larger than a credential file");
  }
  Credentials c;
  bool have_version = false, have_id = false, have_ks = false;
  std::span<const uint8_t> rest = file.span();
  int line_no = 0;
  auto bad = [&](std::string_view what) {
    return InvalidArgumentError(path + ":" + std::to_string(line_no) + ": " +
                                std::string(what));
  };
  while (!rest.empty()) {
    ++line_no;
    size_t nl = 0;
    while (nl < rest.size() && rest[nl] != '\n') ++nl;
    std::span<const uint8_t> line = rest.first(nl);
    rest = rest.subspan(nl < rest.size() ? nl + 1 : nl);
    if (line.empty() || line[0] == '#') continue;
    size_t sp = 0;
    while (sp < line.size() && line[sp] != ' ') ++sp;
    if (sp == line.size()) return bad("expected 'name value'");
    std::string_view name = AsText(line.first(sp));
    std::span<const uint8_t> value = line.subspan(sp + 1);
    if (name == "kgr-credentials") {
      if (AsText(value) != "1") return bad("unsupported credential version");
      have_version = true;
    } else if (name == "n_id") {
      auto id = ParseNodeId(AsText(value));
      if (!id.ok() || *id == 0) return bad("bad n_id");
      c.n_id = *id;
      have_id = true;
    } else if (name == "ks_n_id") {
      auto id = ParseNodeId(AsText(value));
      if (!id.ok()) return bad("bad ks_n_id");
      c.ks_n_id = *id;
      have_ks = true;
    } else if (name == "ntag") {
      if (!UnhexSecret(value, &c.ntag) || c.ntag.size() != 32) {
        return bad("ntag must be 64 hex digits");
      }
    } else if (name == "broker") {
      c.broker_address = std::string(AsText(value));
    } else if (name == "topic_prefix") {
      c.topic_prefix = std::string(AsText(value));
      KGR_RETURN_IF_ERROR(ValidateTopicPrefix(c.topic_prefix));
    } else if (name == "ca_pem" || name == "cert_pem") {
      Bytes pem;
      if (!FromHex(AsText(value), &pem)) return bad("PEM not hex-encoded");
      (name == "ca_pem" ? c.ca_pem : c.cert_pem).assign(pem.begin(), pem.end());
    } else if (name == "key_pem") {
      if (!UnhexSecret(value, &c.key_pem)) return bad("PEM not hex-encoded");
    } else {
      return bad("unknown field '" + std::string(name) + "'");
    }
  }
  if (!have_version)
    return InvalidArgumentError(path + ": not a kgr credential file");
  if (!have_id || !have_ks || c.ntag.empty() || c.broker_address.empty() ||
      c.ca_pem.empty() || c.cert_pem.empty() || c.key_pem.empty()) {
    return InvalidArgumentError(path + ": a required field is missing");
  }
  return c;
}

Status WritePeerList(FileSystem& fs, const std::string& path,
                     const std::vector<uint32_t>& peers) {
  std::string out = "# kgr peer list: N_IDs this node may pair with\n";
  for (uint32_t p : peers) out += FormatNodeId(p) + "\n";
  return fs.WriteFileAtomic(path, AsBytes(out), 0644);
}

StatusOr<std::vector<uint32_t>> ReadPeerList(FileSystem& fs,
                                             const std::string& path) {
  KGR_ASSIGN_OR_RETURN(Bytes raw, fs.ReadFile(path));
  std::string_view text = AsText(raw);
  std::vector<uint32_t> peers;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? "" : text.substr(nl + 1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    if (line.empty() || line[0] == '#') continue;
    auto id = ParseNodeId(line);
    if (!id.ok()) {
      return InvalidArgumentError(path + ":" + std::to_string(line_no) + ": " +
                                  id.status().message());
    }
    peers.push_back(*id);
  }
  return peers;
}

}  // namespace kgr
