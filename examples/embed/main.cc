// Embedding sparsetrain in an app: build a graph with the public builder,
// train it on MNIST a step at a time, watch a layer through a hook, evaluate,
// and save a checkpoint.
//   embed_app [DATA_DIR]
#include <cstdio>
#include <exception>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/probes.h"
#include "sparsetrain/trainer.h"

int main(int argc, char** argv) {
  using namespace sparsetrain;
  // No folder given: the places of data_search_places() are searched
  // ($SPARSETRAIN_DATA, ~/.cache/sparsetrain/data, ../shared/data).
  const std::string data_dir = argc > 1 ? argv[1] : "";
  try {
    const Dataset train = load_dataset("mnist", data_dir, Split::kTrain, 12000);
    const Dataset test = load_dataset("mnist", data_dir, Split::kTest, 2000);

    // A small convnet, built node by node.
    Graph g;
    NodeId x = g.input("image", {1, 28, 28});
    x = g.conv2d("conv", x, {.out_channels = 8, .kernel = 3, .stride = 1, .padding = 1});
    x = g.relu("relu", x);
    x = g.maxpool2d("pool", x, {.kernel = 2, .stride = 2});
    x = g.flatten("flat", x);
    x = g.linear("fc", x, {.out_features = 10});
    g.set_output(x);
    g.initialize(/*seed=*/42);

    // A hook: the fraction of ReLU outputs that are zero, on every forward.
    double zero_fraction = 0;
    HookHandle watch = g.add_hook(HookPoint::kAfterForward, "relu", [&](HookEvent& e) {
      int64_t zeros = 0;
      for (int64_t i = 0; i < e.output->numel(); ++i) zeros += (*e.output)[i] == 0.0f;
      zero_fraction = static_cast<double>(zeros) / static_cast<double>(e.output->numel());
    });

    SGD sgd(/*momentum=*/0.9f, /*nesterov=*/false, /*weight_decay=*/5e-4f);
    std::vector<Parameter*> params = g.parameters();
    Loader loader(train, /*batch_size=*/100, /*shuffle=*/true, AugmentOptions{}, /*seed=*/1);
    loader.start_epoch(0);
    Batch batch;
    while (loader.next(batch)) {
      Optimizer::zero_grad(params);
      const Tensor logits = g.forward(batch.images, /*training=*/true);
      Tensor diff = Tensor::empty(logits.shape());
      const LossResult loss = softmax_cross_entropy(logits, batch.labels, &diff);
      g.backward(diff);
      sgd.step(params, /*lr=*/0.05f);
      if (batch.index % 40 == 0) {
        std::printf("step %3lld  loss %.4f  relu zeros %.1f%%\n",
                    static_cast<long long>(batch.index), loss.loss, 100.0 * zero_fraction);
      }
    }
    watch.remove();
    const EvalResult r = evaluate_graph(g, test, 500);
    std::printf("test accuracy %.2f%% on %lld images\n", 100.0 * r.accuracy,
                static_cast<long long>(r.samples));
  } catch (const Error& e) {
    std::fprintf(stderr, "embed_app: %s\n", e.what());
    return 1;
  }
  return 0;
}
