#include "kgr/credentials.h"

#include <functional>
#include <set>

#include "kgr/bytes.h"
#include "kgr/cli.h"

namespace kgr {
namespace {

constexpr char kAcUnit[] = "kgr-ac";
constexpr std::string_view kSignatureField = "signature ";

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
  return -1;  // lowercase only: one spelling per value
}

// Lowercase hex, non-empty, into `out`.
bool UnhexSecret(std::span<const uint8_t> hex, SecretBytes* out) {
  if (hex.empty() || hex.size() % 2 != 0) return false;
  SecretBytes r(hex.size() / 2);
  for (size_t i = 0; i < r.size(); ++i) {
    int hi = HexVal(hex[2 * i]), lo = HexVal(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    r.data()[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *out = std::move(r);
  return true;
}

bool Unhex(std::span<const uint8_t> hex, Bytes* out) {
  SecretBytes s;
  if (!UnhexSecret(hex, &s)) return false;
  out->assign(s.span().begin(), s.span().end());
  return true;
}

std::string_view AsText(std::span<const uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

// A value written as one token: non-empty, no space or control character.
bool IsToken(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

// Appends the AC's certificate and its signature over everything before.
Status AppendSignature(SecretBytes& out, const CmsEndpoint& ac) {
  AppendLine(out, "ac_cert", AsBytes(ToHex(ac.certificate_der())));
  KGR_ASSIGN_OR_RETURN(Bytes sig, ac.SignDetached(out.span()));
  AppendLine(out, "signature", AsBytes(ToHex(sig)));
  return OkStatus();
}

// A signed file taken apart: the signed body and the signature.
struct Signed {
  std::span<const uint8_t> body;
  Bytes signature;
};

// The last line must be "signature <hex>" and end the file with '\n'.
StatusOr<Signed> SplitSignature(std::span<const uint8_t> file,
                                std::string_view kind) {
  if (file.size() > kMaxCredentialFile) {
    return InvalidArgumentError("larger than any " + std::string(kind));
  }
  const std::string missing =
      "not signed by the AC: no signature line at the "
      "end (cut short?); ask the AC for a new " +
      std::string(kind);
  if (file.empty() || file.back() != '\n') return InvalidArgumentError(missing);
  size_t start = file.size() - 1;
  while (start > 0 && file[start - 1] != '\n') --start;
  std::span<const uint8_t> last = file.subspan(start, file.size() - 1 - start);
  if (AsText(last).substr(0, kSignatureField.size()) != kSignatureField) {
    return InvalidArgumentError(missing);
  }
  Signed s;
  s.body = file.first(start);
  if (!Unhex(last.subspan(kSignatureField.size()), &s.signature)) {
    return InvalidArgumentError("signature line: not lowercase hex");
  }
  return s;
}

Status UnknownField(std::string_view name) {
  return InvalidArgumentError("unknown field '" + std::string(name) + "'");
}

// Calls `field(name, value)` for each "name value" line of `body`
// (comments and empty lines skipped) but ac_cert, which goes to `*ac_cert`;
// stops at the first error. Every name but those in `repeatable` may
// appear once; each of `required` and ac_cert must.
Status ForEachField(
    std::span<const uint8_t> body, const std::set<std::string_view>& repeatable,
    std::initializer_list<std::string_view> required, Bytes* ac_cert,
    const std::function<Status(std::string_view, std::span<const uint8_t>)>&
        field) {
  std::set<std::string> seen;
  int line_no = 0;
  while (!body.empty()) {
    ++line_no;
    size_t nl = 0;
    while (nl < body.size() && body[nl] != '\n') ++nl;
    std::span<const uint8_t> line = body.first(nl);
    body = body.subspan(nl < body.size() ? nl + 1 : nl);
    if (line.empty() || line[0] == '#') continue;
    auto bad = [line_no](std::string_view what) {
      return InvalidArgumentError("line " + std::to_string(line_no) + ": " +
                                  std::string(what));
    };
    size_t sp = 0;
    while (sp < line.size() && line[sp] != ' ') ++sp;
    if (sp == line.size()) return bad("expected 'name value'");
    std::string_view name = AsText(line.first(sp));
    if (!repeatable.count(name) && !seen.insert(std::string(name)).second) {
      return bad("field '" + std::string(name) + "' repeated");
    }
    std::span<const uint8_t> value = line.subspan(sp + 1);
    if (name == "ac_cert") {
      if (!Unhex(value, ac_cert)) return bad("ac_cert not hex");
      continue;
    }
    Status st = field(name, value);
    if (!st.ok()) return bad(st.message());
  }
  if (ac_cert->empty())
    return InvalidArgumentError("field 'ac_cert' is missing");
  for (std::string_view need : required) {
    if (!seen.count(std::string(need))) {
      return InvalidArgumentError("field '" + std::string(need) +
                                  "' is missing");
    }
  }
  return OkStatus();
}

// Verifies the signature of `s` by `ac_cert` under `ca_pem`, and that the
// signer is the AC.
Status VerifyAcSignature(const Signed& s, const Bytes& ac_cert,
                         std::string_view ca_pem, std::string_view kind) {
  auto peer = VerifyDetached(s.body, s.signature, ac_cert, ca_pem);
  if (!peer.ok()) {
    if (peer.status().code() == StatusCode::kInvalidArgument) {
      return InvalidArgumentError("no CA certificate to check the " +
                                  std::string(kind) + " against");
    }
    return UnauthenticatedError(
        "the AC's signature does not verify: the " + std::string(kind) +
        " was changed or cut short, or not written by this KED's AC");
  }
  if (peer->organizational_unit != kAcUnit) {
    return UnauthenticatedError("signed by '" + peer->common_name + "' (OU " +
                                peer->organizational_unit + "), not by the AC");
  }
  return OkStatus();
}

StatusOr<uint32_t> NodeIdField(std::span<const uint8_t> value,
                               std::string_view name, bool zero_ok) {
  auto id = ParseNodeId(AsText(value));
  if (!id.ok() || (*id == 0 && !zero_ok)) {
    return InvalidArgumentError(std::string(name) + " must be 8 hex digits" +
                                (zero_ok ? "" : ", not 00000000"));
  }
  return *id;
}

}  // namespace

StatusOr<uint32_t> ParseNodeId(std::string_view text) {
  if (text.size() != 8) {
    return InvalidArgumentError("N_ID must be 8 hex digits: '" +
                                std::string(text.substr(0, 16)) + "'");
  }
  Bytes b;
  if (!FromHex(text, &b)) {
    return InvalidArgumentError("N_ID is not hex: '" + std::string(text) + "'");
  }
  return static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 |
         static_cast<uint32_t>(b[2]) << 8 | b[3];
}

StatusOr<SecretBytes> EncodeCredentialFile(const Credentials& c,
                                           const CmsEndpoint& ac) {
  if (c.ntag.size() != 32) return InvalidArgumentError("NTAG must be 32 bytes");
  if (!IsToken(c.broker_address)) {
    return InvalidArgumentError("broker address is not one token");
  }
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(c.topic_prefix));
  SecretBytes out;
  out.Append(AsBytes(
      "# kgr node credentials: SECRET. Import with `kgr-node init`, then "
      "delete this file.\n"));
  AppendLine(out, "kgr-credentials", AsBytes("2"));
  AppendLine(out, "n_id", AsBytes(FormatNodeId(c.n_id)));
  AppendLine(out, "ks_n_id", AsBytes(FormatNodeId(c.ks_n_id)));
  AppendLine(out, "ntag", HexSecret(c.ntag.span()).span());
  AppendLine(out, "broker", AsBytes(c.broker_address));
  AppendLine(out, "topic_prefix", AsBytes(c.topic_prefix));
  AppendLine(out, "ca_pem", AsBytes(ToHex(AsBytes(c.ca_pem))));
  AppendLine(out, "cert_pem", AsBytes(ToHex(AsBytes(c.cert_pem))));
  AppendLine(out, "key_pem", HexSecret(c.key_pem.span()).span());
  KGR_RETURN_IF_ERROR(AppendSignature(out, ac));
  return out;
}

StatusOr<Credentials> ParseCredentialFile(std::span<const uint8_t> file) {
  KGR_ASSIGN_OR_RETURN(Signed s, SplitSignature(file, "credential file"));
  Credentials c;
  Bytes ac_cert;
  Status st = ForEachField(
      s.body, {},
      {"kgr-credentials", "n_id", "ks_n_id", "ntag", "broker", "topic_prefix",
       "ca_pem", "cert_pem", "key_pem"},
      &ac_cert,
      [&](std::string_view name, std::span<const uint8_t> value) -> Status {
        if (name == "kgr-credentials") {
          if (AsText(value) == "1") {
            return InvalidArgumentError(
                "an unsigned version 1 credential file: ask the AC for a new "
                "one");
          }
          if (AsText(value) != "2") {
            return InvalidArgumentError("unsupported credential version");
          }
        } else if (name == "n_id" || name == "ks_n_id") {
          KGR_ASSIGN_OR_RETURN(uint32_t id,
                               NodeIdField(value, name, name == "ks_n_id"));
          (name == "n_id" ? c.n_id : c.ks_n_id) = id;
        } else if (name == "ntag") {
          if (!UnhexSecret(value, &c.ntag) || c.ntag.size() != 32) {
            return InvalidArgumentError("ntag must be 64 hex digits");
          }
        } else if (name == "broker") {
          c.broker_address = std::string(AsText(value));
          std::string host;
          int port = 0;
          KGR_RETURN_IF_ERROR(SplitHostPort(c.broker_address, &host, &port));
        } else if (name == "topic_prefix") {
          c.topic_prefix = std::string(AsText(value));
          KGR_RETURN_IF_ERROR(ValidateTopicPrefix(c.topic_prefix));
        } else if (name == "ca_pem" || name == "cert_pem") {
          Bytes pem;
          if (!Unhex(value, &pem)) return InvalidArgumentError("PEM not hex");
          (name == "ca_pem" ? c.ca_pem : c.cert_pem)
              .assign(pem.begin(), pem.end());
        } else if (name == "key_pem") {
          if (!UnhexSecret(value, &c.key_pem)) {
            return InvalidArgumentError("PEM not hex");
          }
        } else {
          return UnknownField(name);
        }
        return OkStatus();
      });
  KGR_RETURN_IF_ERROR(st);
  KGR_RETURN_IF_ERROR(
      VerifyAcSignature(s, ac_cert, c.ca_pem, "credential file"));
  return c;
}

StatusOr<Bytes> EncodePeerList(const PeerList& list, const CmsEndpoint& ac) {
  SecretBytes out;  // not secret; shares the signing code
  out.Append(AsBytes("# kgr peer list: N_IDs node " + FormatNodeId(list.node) +
                     " may pair with. Load with `kgr-node peers --file`.\n"));
  AppendLine(out, "kgr-peers", AsBytes("2"));
  AppendLine(out, "node", AsBytes(FormatNodeId(list.node)));
  for (uint32_t p : list.peers) {
    AppendLine(out, "peer", AsBytes(FormatNodeId(p)));
  }
  KGR_RETURN_IF_ERROR(AppendSignature(out, ac));
  return Bytes(out.span().begin(), out.span().end());
}

StatusOr<PeerList> ParsePeerList(std::span<const uint8_t> file,
                                 std::string_view ca_pem) {
  KGR_ASSIGN_OR_RETURN(Signed s, SplitSignature(file, "peer list"));
  PeerList list;
  Bytes ac_cert;
  Status st = ForEachField(
      s.body, {"peer"}, {"kgr-peers", "node"}, &ac_cert,
      [&](std::string_view name, std::span<const uint8_t> value) -> Status {
        if (name == "kgr-peers") {
          if (AsText(value) != "2") {
            return InvalidArgumentError("unsupported peer list version");
          }
        } else if (name == "node") {
          KGR_ASSIGN_OR_RETURN(list.node, NodeIdField(value, name, false));
        } else if (name == "peer") {
          KGR_ASSIGN_OR_RETURN(uint32_t id, NodeIdField(value, name, false));
          list.peers.push_back(id);
        } else {
          return UnknownField(name);
        }
        return OkStatus();
      });
  KGR_RETURN_IF_ERROR(st);
  KGR_RETURN_IF_ERROR(VerifyAcSignature(s, ac_cert, ca_pem, "peer list"));
  return list;
}

Status WriteCredentialFile(FileSystem& fs, const std::string& path,
                           const Credentials& c, const CmsEndpoint& ac) {
  KGR_ASSIGN_OR_RETURN(SecretBytes out, EncodeCredentialFile(c, ac));
  return fs.WriteFileAtomic(path, out.span(), 0600);
}

Status WritePeerList(FileSystem& fs, const std::string& path,
                     const PeerList& list, const CmsEndpoint& ac) {
  KGR_ASSIGN_OR_RETURN(Bytes out, EncodePeerList(list, ac));
  return fs.WriteFileAtomic(path, out, 0644);
}

StatusOr<Credentials> ReadCredentialFile(FileSystem& fs,
                                         const std::string& path) {
  auto raw = fs.ReadFile(path);
  if (!raw.ok()) return raw.status().Annotate(path);
  SecretBytes file(*raw);
  WipeVector(*raw);
  auto c = ParseCredentialFile(file.span());
  if (!c.ok()) return c.status().Annotate(path);
  return c;
}

StatusOr<PeerList> ReadPeerList(FileSystem& fs, const std::string& path,
                                std::string_view ca_pem) {
  auto raw = fs.ReadFile(path);
  if (!raw.ok()) return raw.status().Annotate(path);
  auto list = ParsePeerList(*raw, ca_pem);
  if (!list.ok()) return list.status().Annotate(path);
  return list;
}

}  // namespace kgr
