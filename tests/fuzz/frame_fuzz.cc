// Fuzzes the frame decoders: header peek, open with a fixed key, every body
// parser, clear (AC) frames. Must never crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>

#include "kgr/frame.h"
#include "kgr/group_frame.h"

namespace {

const kgr::SymmetricKeys& FuzzKeys() {
  static kgr::SymmetricKeys* keys = [] {
    kgr::SecretBytes enc(kgr::kKeySize), mac(kgr::kKeySize);
    for (size_t i = 0; i < kgr::kKeySize; ++i) {
      enc.data()[i] = static_cast<uint8_t>(i);
      mac.data()[i] = static_cast<uint8_t>(0x40 + i);
    }
    return new kgr::SymmetricKeys{std::move(enc), std::move(mac)};
  }();
  return *keys;
}

template <typename Body>
void ParseAs(std::span<const uint8_t> in) {
  auto r = Body::Parse(in);
  (void)r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  auto h = kgr::PeekFrameHeader(in);
  kgr::FrameHeader header;
  auto opened = kgr::OpenFrame(in, FuzzKeys(), &header);
  (void)h;
  (void)opened;
  auto clear = kgr::DecodeClearFrame(in, &header);
  (void)clear;
  // Every body parser on the raw input (bodies are what a frame decrypts to).
  ParseAs<kgr::NkskKeyReq>(in);
  ParseAs<kgr::NkskKeyAns>(in);
  ParseAs<kgr::NnskKeyReq>(in);
  ParseAs<kgr::NnskKeyAns>(in);
  ParseAs<kgr::NnskNotReq>(in);
  ParseAs<kgr::NnskNotAns>(in);
  ParseAs<kgr::NnskConfReq>(in);
  ParseAs<kgr::NnskConfAns>(in);
  ParseAs<kgr::KsError>(in);
  ParseAs<kgr::PairRevoked>(in);
  ParseAs<kgr::NkskRotReq>(in);
  ParseAs<kgr::NkskRotAns>(in);
  ParseAs<kgr::NkskRotSig>(in);
  ParseAs<kgr::CertRenewReq>(in);
  ParseAs<kgr::CertRenewAns>(in);
  ParseAs<kgr::AcRevokeReq>(in);
  ParseAs<kgr::AcRevokeAns>(in);
  ParseAs<kgr::NodeDataReq>(in);
  ParseAs<kgr::NodeDataAns>(in);
  ParseAs<kgr::AcAuthorizeReq>(in);
  ParseAs<kgr::AcAuthorizeAns>(in);
  ParseAs<kgr::AcPeersReq>(in);
  ParseAs<kgr::AcPeersAns>(in);
  ParseAs<kgr::AcListReq>(in);
  ParseAs<kgr::AcListAns>(in);
  // group_data (0x14): the body parser, and the whole decoder in both modes
  // (a fixed public key: the signature check runs on every opened frame).
  ParseAs<kgr::GroupData>(in);
  static const kgr::Bytes kPublic(kgr::kEd25519PublicSize, 0x42);
  for (auto mode : {kgr::GroupMode::kGroupKey, kgr::GroupMode::kSenderAuth}) {
    auto g = kgr::OpenGroupData(in, FuzzKeys(), 1, mode, kPublic, &header);
    (void)g;
  }
  return 0;
}
