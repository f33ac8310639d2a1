# Warnings for every project target, sanitizers on request, and per-file ISA
# flags: a file named *_avx2.cc or *_avx512.cc is compiled for that ISA only,
# the rest of the library for baseline x86-64, and the dispatcher picks a path
# at run time from CPUID.
# -Wno-restrict: GCC 12 reports false overlaps in std::string concatenation at -O3
# (GCC bug 105329).
set(SPARSETRAIN_WARNINGS -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND SPARSETRAIN_WARNINGS -Wno-restrict)
endif()
if(SPARSETRAIN_WERROR)
  list(APPEND SPARSETRAIN_WARNINGS -Werror)
endif()

if(SPARSETRAIN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Fuzzing: every object carries libFuzzer's coverage counters; the targets
# link the fuzzer's main (tests/fuzz).
if(SPARSETRAIN_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

set(SPARSETRAIN_AVX2_FLAGS -mavx2 -mfma -mf16c -mbmi2)
set(SPARSETRAIN_AVX512_FLAGS -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512cd -mavx2 -mfma -mf16c -mbmi2)

# The fuzz targets read files; no input of theirs reaches the SIMD kernels,
# whose large unrolled functions take clang many minutes each to compile
# under the sanitizers and coverage. So in the fuzz build they are compiled
# plainly (the scalar paths and everything else stay instrumented).
if(SPARSETRAIN_FUZZ)
  list(APPEND SPARSETRAIN_AVX2_FLAGS -fno-sanitize=all)
  list(APPEND SPARSETRAIN_AVX512_FLAGS -fno-sanitize=all)
endif()

# Under the address and UB sanitizers (the asan preset), GCC takes minutes
# on each large AVX-512 kernel file at -O2 (conv_sparse_avx512.cc: over 500 s
# against 14 s uninstrumented); at -O1 with line tables only, 21 s. The
# kernels stay instrumented, at the lower optimisation. The asan preset
# compiles everything else at -O1 -g1 too (CMakePresets.json): half the time
# of -O2 -g (runtime/src/training/trainer.cc 45 -> 20 s, test_trainer.cc
# 12.5 -> 6 s), which keeps the README's test command under 40 minutes.
if(SPARSETRAIN_SANITIZE AND NOT SPARSETRAIN_FUZZ)
  list(APPEND SPARSETRAIN_AVX2_FLAGS -O1 -g1)
  list(APPEND SPARSETRAIN_AVX512_FLAGS -O1 -g1)
endif()

function(sparsetrain_isa_flags)
  foreach(src IN LISTS ARGN)
    if(src MATCHES "_avx512\\.cc$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${SPARSETRAIN_AVX512_FLAGS}")
    elseif(src MATCHES "_avx2\\.cc$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${SPARSETRAIN_AVX2_FLAGS}")
    endif()
  endforeach()
endfunction()

function(sparsetrain_target_defaults target)
  target_compile_options(${target} PRIVATE ${SPARSETRAIN_WARNINGS})
endfunction()

# No code here reads errno after a math call; without this GCC will not
# vectorize loops that call sqrt (AdamW, BatchNorm).
add_compile_options(-fno-math-errno)
