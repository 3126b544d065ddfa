#include "rng.h"

// RAND_set_rand_method is deprecated in OpenSSL 3 but still honoured by
// RAND_bytes_ex and RAND_priv_bytes_ex (the providers' key generation).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/rand.h>

#include <cstring>
#include <mutex>

namespace kgr::sim {
namespace {

uint64_t SplitMix(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

std::mutex g_mu;
Rng g_openssl_rng(0);

int Bytes(unsigned char* buf, int num) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (int i = 0; i < num; i += 8) {
    uint64_t v = g_openssl_rng.Next();
    std::memcpy(buf + i, &v, num - i < 8 ? num - i : 8);
  }
  return 1;
}
int Seed(const void*, int) { return 1; }
int Add(const void*, int, double) { return 1; }  // entropy mixing: ignored
int Status() { return 1; }

const RAND_METHOD kMethod = {Seed, Bytes, nullptr, Add, Bytes, Status};

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = SplitMix(&x);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint64_t Rng::Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }

double Rng::Unit() { return (Next() >> 11) * 0x1.0p-53; }

void UseDeterministicOpenSslRandom(uint64_t seed) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_openssl_rng = Rng(seed ^ 0x6b67722d73696d31ULL);  // "kgr-sim1"
  RAND_set_rand_method(&kMethod);
}

}  // namespace kgr::sim
