// What this CPU can run, and which instruction set the kernels use.
//
// Every op ships a scalar reference, an AVX2 and an AVX-512 variant (files
// named *_avx2.cc / *_avx512.cc are compiled for that ISA only; the library
// itself targets baseline x86-64). The dispatcher picks the best variant the
// CPU and the OS support; the environment variable SPARSETRAIN_ISA=ref|avx2|
// avx512 caps that choice (like oneDNN's DNNL_MAX_CPU_ISA), e.g. to compare
// variants or to reproduce a result on a lesser machine.
//
// A feature counts as present only when CPUID reports it AND the OS saves the
// register state it needs (XCR0, read with XGETBV): YMM state for AVX2, opmask
// and ZMM state for AVX-512, tile state for AMX.
#pragma once

#include <string>
#include <string_view>

namespace sparsetrain::kernels {

struct CpuInfo {
  std::string vendor;  // "AuthenticAMD", "GenuineIntel", ...
  std::string model;   // the brand string, e.g. "AMD EPYC 9B45"
  bool sse42 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool bmi2 = false;
  bool avx512f = false;
  bool avx512cd = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx512_vbmi2 = false;
  bool amx_tile = false;
  bool amx_bf16 = false;
  bool amx_int8 = false;
};

// Detected once (CPUID + XGETBV) and cached for the life of the process.
const CpuInfo& cpu_info();

// The features `cpu` has, space-separated, by their usual names ("sse4.2 avx
// avx2 fma ..."; avx512_vnni, amx_tile).
std::string cpu_feature_names(const CpuInfo& cpu);

// Ordered: a higher value runs everything a lower one runs.
enum class Isa { kRef = 0, kAvx2 = 1, kAvx512 = 2 };

// "ref", "avx2", "avx512": the spelling SPARSETRAIN_ISA accepts.
const char* isa_name(Isa isa);

// Whether `cpu` can run code of `isa`: kAvx2 needs AVX2+FMA+F16C+BMI2 (the
// flags *_avx2.cc files are built with), kAvx512 additionally F, CD, BW, DQ
// and VL.
bool isa_supported(Isa isa, const CpuInfo& cpu);
bool isa_supported(Isa isa);

// The best ISA `cpu` supports, ignoring SPARSETRAIN_ISA.
Isa cpu_isa(const CpuInfo& cpu);

// The ISA the kernels use given the value of SPARSETRAIN_ISA (`env_value`,
// null or empty when unset) on `cpu`: the CPU's best when unset, else the
// requested one. Throws sparsetrain::Error naming SPARSETRAIN_ISA when the
// value is not one of ref|avx2|avx512, or when it asks for an ISA the CPU (or
// the OS) does not support. Pure: tests call it with made-up CPUs.
Isa resolve_isa(const char* env_value, const CpuInfo& cpu);

// resolve_isa(getenv("SPARSETRAIN_ISA"), cpu_info()): throws on a bad value.
// Front ends (the CLI, Graph construction) call this once so a typo in the
// variable is reported instead of silently ignored.
Isa active_isa();

// Never throws: the same as active_isa() for a valid SPARSETRAIN_ISA; for an
// invalid one, logs the error once as a warning (kernels/common/log.h) and
// uses the CPU's best. The
// kernels' dispatchers call this (kernels never throw).
Isa best_isa();

}  // namespace sparsetrain::kernels
