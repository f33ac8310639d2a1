#include <oneapi/tbb/version.h>

#include <Eigen/Core>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <oneapi/dnnl/dnnl.hpp>
#include <thread>

#include "commands.h"
#include "kernels/common/cpu.h"
#include "kernels/common/threads.h"
#include "kernels/conv_sparse/conv_sparse.h"
#include "kernels/linear_sparse/linear_sparse.h"
#include "nodes/nodes.h"

namespace sparsetrain::cli {

CLI::App* add_info(CLI::App& app, InfoCommand& cmd) {
  CLI::App* sub =
      app.add_subcommand("info", "CPU, ISA features, kernel choices, threads and library versions");
  sub->add_option("--threads", cmd.threads, "Thread count to report (0: all cores)")
      ->capture_default_str();
  sub->add_flag("--json", cmd.json, "Print one JSON object");
  return sub;
}

int run_info(InfoCommand& cmd) {
  using kernels::Isa;
  kernels::set_num_threads(cmd.threads);
  const kernels::CpuInfo& cpu = kernels::cpu_info();
  const Isa active = kernels::active_isa();  // throws on a bad SPARSETRAIN_ISA
  const dnnl_version_t* dv = dnnl_version();
  char dnnl_ver[64];
  std::snprintf(dnnl_ver, sizeof dnnl_ver, "%d.%d.%d", dv->major, dv->minor, dv->patch);
  char eigen_ver[32];
  std::snprintf(eigen_ver, sizeof eigen_ver, "%d.%d.%d", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
                EIGEN_MINOR_VERSION);
  const std::string present = kernels::cpu_feature_names(cpu);
  const std::string conv_layout = layout_name(nodes::dense_conv_layout());
  const int threads = kernels::num_threads();
  const kernels::LinearSparseKernels sparse = kernels::linear_sparse_kernels(active);
  const kernels::ConvSparseKernelNames conv_sparse = kernels::conv_sparse_kernel_names(active);

  if (cmd.json) {
    nlohmann::json j = {{"cpu", cpu.model},
                        {"vendor", cpu.vendor},
                        {"features", present},
                        {"cpu_isa", kernels::isa_name(kernels::cpu_isa(cpu))},
                        {"active_isa", kernels::isa_name(active)},
                        {"dense_kernels", "oneDNN"},
                        {"dense_conv_layout", conv_layout},
                        {"sparse_linear_kernels",
                         {{"fwd", sparse.fwd->name},
                          {"bwd_data", sparse.bwd_data->name},
                          {"bwd_weights", sparse.bwd_weights->name}}},
                        {"sparse_conv_kernels",
                         {{"fwd", conv_sparse.fwd},
                          {"bwd_data", conv_sparse.bwd_data},
                          {"bwd_weights", conv_sparse.bwd_weights}}},
                        {"threads", threads},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"versions",
                         {{"sparsetrain", SPARSETRAIN_VERSION_STRING},
                          {"oneDNN", dnnl_ver},
                          {"TBB", TBB_VERSION_STRING},
                          {"Eigen", eigen_ver},
                          {"compiler", __VERSION__}}}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("sparsetrain %s\n\n", SPARSETRAIN_VERSION_STRING);
  std::printf("CPU               %s (%s)\n", cpu.model.c_str(), cpu.vendor.c_str());
  std::printf("ISA features      %s\n", present.c_str());
  std::printf(
      "kernel ISA        %s (best this CPU runs: %s; SPARSETRAIN_ISA=ref|avx2|avx512 caps it)\n",
      kernels::isa_name(active), kernels::isa_name(kernels::cpu_isa(cpu)));
  std::printf("dense kernels     oneDNN (conv activations in %s)\n", conv_layout.c_str());
  std::printf("sparse linear     %s, %s, %s\n", sparse.fwd->name, sparse.bwd_data->name,
              sparse.bwd_weights->name);
  std::printf("sparse conv       %s, %s, %s\n", conv_sparse.fwd, conv_sparse.bwd_data,
              conv_sparse.bwd_weights);
  std::printf("threads           %d (hardware: %u; TBB and OpenMP kept equal)\n", threads,
              std::thread::hardware_concurrency());
  std::printf("libraries         oneDNN %s, TBB %s, Eigen %s, compiler %s\n", dnnl_ver,
              TBB_VERSION_STRING, eigen_ver, __VERSION__);
  return 0;
}

}  // namespace sparsetrain::cli
