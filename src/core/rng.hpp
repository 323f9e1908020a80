// Counter-based random numbers: value i of stream `key` is a pure function of (seed, key, i), so
// weights and inputs do not depend on creation order (a model's embedding is the same tensor in
// every architecture built with the same seed).
#pragma once
#include <cmath>
#include <cstdint>
#include <string_view>

namespace bsbr {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t hash_name(std::string_view s) {  // FNV-1a
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t key) : base_(splitmix64(seed ^ splitmix64(key))) {}
  uint64_t bits(uint64_t i) const { return splitmix64(base_ + i * 0xD1B54A32D192ED03ull); }
  // Uniform in (0, 1).
  double uniform(uint64_t i) const { return (static_cast<double>(bits(i) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  // Standard normal (Box-Muller on two independent uniforms).
  double normal(uint64_t i) const {
    double u1 = uniform(2 * i), u2 = uniform(2 * i + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t base_;
};

}  // namespace bsbr
