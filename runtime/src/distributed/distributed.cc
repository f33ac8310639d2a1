// The parts of data-parallel training that do not need MPI (distributed.h):
// fingerprints of masks and weights, and the launcher's environment.
#include "sparsetrain/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace sparsetrain {
namespace {

// FNV-1a over bytes, then a final mix: cheap and order-sensitive.
struct Hasher {
  uint64_t h = 0xcbf29ce484222325ULL;
  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  void word(uint64_t v) { bytes(&v, sizeof v); }
  uint64_t done() const {
    uint64_t z = h;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

}  // namespace

uint64_t mask_fingerprint(Graph& graph) {
  Hasher h;
  for (Parameter* p : graph.parameters()) {
    if (!p->prunable()) continue;
    h.bytes(p->name.data(), p->name.size());
    if (p->compressed()) {
      h.word(1);
      h.bytes(p->dense_index.data(), p->dense_index.size() * sizeof(int64_t));
    } else if (p->masked()) {
      h.word(2);
      const float* m = p->mask.data();
      uint64_t bits = 0;
      for (int64_t i = 0; i < p->mask.numel(); ++i) {
        bits = (bits << 1) | (m[i] != 0.0f ? 1U : 0U);
        if (i % 64 == 63) h.word(bits), bits = 0;
      }
      h.word(bits);
    } else {
      h.word(3);
      h.word(static_cast<uint64_t>(p->value.numel()));
    }
  }
  return h.done();
}

uint64_t parameter_fingerprint(Graph& graph) {
  Hasher h;
  for (Parameter* p : graph.parameters()) {
    h.bytes(p->name.data(), p->name.size());
    h.bytes(p->value.data(), static_cast<std::size_t>(p->value.numel()) * sizeof(float));
  }
  return h.done();
}

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (const char* v = std::getenv(name); v != nullptr && std::strlen(v) > 0) return true;
  return false;
}

int mpi_local_threads() {
  int local = 1;
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}) {
    if (const char* v = std::getenv(name); v != nullptr) {
      try {
        local = std::max(1, std::stoi(v));
      } catch (const std::exception&) {
        continue;  // not a number: the next, or 1
      }
      break;
    }
  }
  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  return std::max(1, cores / local);
}

}  // namespace sparsetrain
