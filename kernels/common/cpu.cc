#include "kernels/common/cpu.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>

#include "kernels/common/log.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

constexpr const char* kIsaEnv = "SPARSETRAIN_ISA";

// Each feature: its name, the CPUID register and bit (Intel SDM vol. 2A,
// CPUID: leaf 1 ECX, leaf 7 subleaf 0 EBX/ECX/EDX, leaf 7 subleaf 1 EAX),
// and the register state the OS must save for it (none for the scalar ones).
enum class Reg { kL1Ecx, kL7Ebx, kL7Ecx, kL7Edx, kL7s1Eax };
enum class Os { kNone, kYmm, kZmm, kTiles };
struct Feature {
  const char* name;
  bool CpuInfo::*flag;
  Reg reg;
  int bit;
  Os os;
};
constexpr Feature kFeatures[] = {
    {"sse4.2", &CpuInfo::sse42, Reg::kL1Ecx, 20, Os::kNone},
    {"avx", &CpuInfo::avx, Reg::kL1Ecx, 28, Os::kYmm},
    {"avx2", &CpuInfo::avx2, Reg::kL7Ebx, 5, Os::kYmm},
    {"fma", &CpuInfo::fma, Reg::kL1Ecx, 12, Os::kYmm},
    {"f16c", &CpuInfo::f16c, Reg::kL1Ecx, 29, Os::kYmm},
    {"bmi2", &CpuInfo::bmi2, Reg::kL7Ebx, 8, Os::kNone},
    {"avx512f", &CpuInfo::avx512f, Reg::kL7Ebx, 16, Os::kZmm},
    {"avx512cd", &CpuInfo::avx512cd, Reg::kL7Ebx, 28, Os::kZmm},
    {"avx512bw", &CpuInfo::avx512bw, Reg::kL7Ebx, 30, Os::kZmm},
    {"avx512dq", &CpuInfo::avx512dq, Reg::kL7Ebx, 17, Os::kZmm},
    {"avx512vl", &CpuInfo::avx512vl, Reg::kL7Ebx, 31, Os::kZmm},
    {"avx512_vnni", &CpuInfo::avx512_vnni, Reg::kL7Ecx, 11, Os::kZmm},
    {"avx512_bf16", &CpuInfo::avx512_bf16, Reg::kL7s1Eax, 5, Os::kZmm},
    {"avx512_vbmi2", &CpuInfo::avx512_vbmi2, Reg::kL7Ecx, 6, Os::kZmm},
    {"amx_tile", &CpuInfo::amx_tile, Reg::kL7Edx, 24, Os::kTiles},
    {"amx_bf16", &CpuInfo::amx_bf16, Reg::kL7Edx, 22, Os::kTiles},
    {"amx_int8", &CpuInfo::amx_int8, Reg::kL7Edx, 25, Os::kTiles},
};

struct Regs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// CPUID leaf/subleaf; all zero when the leaf is beyond the CPU's maximum.
Regs cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return Regs{};
  return r;
}

bool bit(uint32_t word, int b) { return ((word >> b) & 1u) != 0; }

// XCR0: which register states the OS saves on a context switch. Inline asm so
// this file needs no -mxsave (it is built for baseline x86-64).
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// XCR0 bits (Intel SDM vol. 1, 13.3).
constexpr uint64_t kXcr0Sse = 1u << 1;
constexpr uint64_t kXcr0Avx = 1u << 2;
constexpr uint64_t kXcr0Opmask = 1u << 5;
constexpr uint64_t kXcr0ZmmHi256 = 1u << 6;
constexpr uint64_t kXcr0Hi16Zmm = 1u << 7;
constexpr uint64_t kXcr0TileCfg = 1u << 17;
constexpr uint64_t kXcr0TileData = 1u << 18;

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(' ');
  return s.substr(first, last - first + 1);
}

CpuInfo detect() {
  CpuInfo info;
  const Regs leaf0 = cpuid(0);
  const uint32_t max_leaf = leaf0.eax;
  char vendor[13] = {};
  std::memcpy(vendor + 0, &leaf0.ebx, 4);
  std::memcpy(vendor + 4, &leaf0.edx, 4);
  std::memcpy(vendor + 8, &leaf0.ecx, 4);
  info.vendor = vendor;

  if (cpuid(0x80000000u).eax >= 0x80000004u) {
    char brand[49] = {};
    for (uint32_t i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i + 0, &r.eax, 4);
      std::memcpy(brand + 16 * i + 4, &r.ebx, 4);
      std::memcpy(brand + 16 * i + 8, &r.ecx, 4);
      std::memcpy(brand + 16 * i + 12, &r.edx, 4);
    }
    info.model = trim(brand);
  }
  if (max_leaf < 1) return info;

  // Leaf 1 and leaf 7 feature bits (Intel SDM vol. 2A, CPUID).
  const Regs l1 = cpuid(1);
  const bool osxsave = bit(l1.ecx, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & (kXcr0Sse | kXcr0Avx)) == (kXcr0Sse | kXcr0Avx);
  const uint64_t zmm_mask = kXcr0Opmask | kXcr0ZmmHi256 | kXcr0Hi16Zmm;
  const bool os_zmm = os_ymm && (xcr0 & zmm_mask) == zmm_mask;
  const bool os_tiles = (xcr0 & (kXcr0TileCfg | kXcr0TileData)) == (kXcr0TileCfg | kXcr0TileData);

  // Leaf 7 only where the CPU has it: its registers read as zero otherwise.
  const Regs l7 = max_leaf >= 7 ? cpuid(7, 0) : Regs{};
  const Regs l7s1 = max_leaf >= 7 && l7.eax >= 1 ? cpuid(7, 1) : Regs{};
  const uint32_t regs[] = {l1.ecx, l7.ebx, l7.ecx, l7.edx, l7s1.eax};  // indexed by Reg
  for (const Feature& f : kFeatures) {
    const bool os = f.os == Os::kNone || (f.os == Os::kYmm && os_ymm) ||
                    (f.os == Os::kZmm && os_zmm) || (f.os == Os::kTiles && os_tiles);
    info.*f.flag = bit(regs[static_cast<int>(f.reg)], f.bit) && os;
  }
  return info;
}

}  // namespace

const CpuInfo& cpu_info() {
  static const CpuInfo info = detect();
  return info;
}

std::string cpu_feature_names(const CpuInfo& cpu) {
  std::string names;
  for (const Feature& f : kFeatures)
    if (cpu.*f.flag) names += (names.empty() ? "" : " ") + std::string(f.name);
  return names;
}

const char* isa_name(Isa isa) {
  // Indexed by the enumerator, in declaration order.
  constexpr const char* kNames[] = {"ref", "avx2", "avx512"};
  return kNames[static_cast<int>(isa)];
}

bool isa_supported(Isa isa, const CpuInfo& cpu) {
  const bool avx2 = cpu.avx && cpu.avx2 && cpu.fma && cpu.f16c && cpu.bmi2;
  switch (isa) {
    case Isa::kRef:
      return true;
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvx512:
      return avx2 && cpu.avx512f && cpu.avx512cd && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl;
  }
  return false;
}

bool isa_supported(Isa isa) { return isa_supported(isa, cpu_info()); }

Isa cpu_isa(const CpuInfo& cpu) {
  if (isa_supported(Isa::kAvx512, cpu)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2, cpu)) return Isa::kAvx2;
  return Isa::kRef;
}

namespace {

// The ISA for SPARSETRAIN_ISA=env_value on `cpu`, or an empty result and the
// message explaining why the value cannot be used.
std::optional<Isa> parse_isa(const char* env_value, const CpuInfo& cpu, std::string* error) {
  const Isa best = cpu_isa(cpu);
  if (env_value == nullptr || *env_value == '\0') return best;
  const std::string value = env_value;
  Isa requested;
  if (value == "ref") {
    requested = Isa::kRef;
  } else if (value == "avx2") {
    requested = Isa::kAvx2;
  } else if (value == "avx512") {
    requested = Isa::kAvx512;
  } else {
    *error = std::string(kIsaEnv) + "='" + value +
             "' is not an instruction set the kernels know; use one of ref, avx2, avx512, "
             "or unset it to use the best this CPU supports (" +
             isa_name(best) + ")";
    return std::nullopt;
  }
  if (!isa_supported(requested, cpu)) {
    const std::string model =
        cpu.model.empty() ? std::string("this CPU") : "this CPU (" + cpu.model + ")";
    *error = std::string(kIsaEnv) + "=" + value + " asks for " + isa_name(requested) +
             " kernels, but " + model + " or its OS supports at most " + isa_name(best) + "; set " +
             kIsaEnv + " to " + isa_name(best) + " or lower, or unset it";
    return std::nullopt;
  }
  return requested;
}

}  // namespace

Isa resolve_isa(const char* env_value, const CpuInfo& cpu) {
  std::string error;
  const std::optional<Isa> isa = parse_isa(env_value, cpu, &error);
  if (!isa) throw Error(error);
  return *isa;
}

Isa active_isa() { return resolve_isa(std::getenv(kIsaEnv), cpu_info()); }

Isa best_isa() {
  std::string error;
  const std::optional<Isa> isa = parse_isa(std::getenv(kIsaEnv), cpu_info(), &error);
  if (isa) return *isa;
  static std::once_flag reported;
  std::call_once(reported, [&] {
    log(LogLevel::kWarning, error + " (using " + isa_name(cpu_isa(cpu_info())) + ")");
  });
  return cpu_isa(cpu_info());
}

}  // namespace sparsetrain::kernels
