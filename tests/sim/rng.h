// Seeded randomness for the simulation: one xoshiro256** stream decides
// every fault and operation, and OpenSSL's RAND (keys, IVs, request ids,
// topics, X25519) is routed to a second deterministic stream, so that a
// seed replays exactly. Not cryptographic: for the simulation only.
#ifndef KGR_TESTS_SIM_RNG_H_
#define KGR_TESTS_SIM_RNG_H_

#include <cstdint>

namespace kgr::sim {

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, n); 0 if n == 0.
  uint64_t Below(uint64_t n);
  // Uniform in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }
  double Unit();  // [0, 1)
  bool Chance(double p) { return p > 0 && Unit() < p; }

 private:
  uint64_t s_[4];
};

// Makes OpenSSL's RAND_bytes/RAND_priv_bytes (and everything built on them)
// return a stream derived from `seed`, for this process, from now on. Call
// at the start of every seed, on a fresh thread: libkgr keeps a per-thread
// pool of public random bytes (RandomPublicBytes), which a new thread starts
// empty.
void UseDeterministicOpenSslRandom(uint64_t seed);

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_RNG_H_
