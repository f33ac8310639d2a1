// Embedding sparsetrain in an app: build a graph with the public builder,
// train it on MNIST a step at a time, watch a layer through a hook, evaluate,
// take a saliency map in probe mode, then fine-tune the classifier alone
// (the convolution frozen) with the library's Trainer on the app's own graph
// and data.
//   embed_app [DATA_DIR]
#include <cmath>
#include <cstdio>
#include <exception>
#include <sstream>

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

    // Saliency of the first test image: a probe-mode forward (running
    // statistics, nothing updated) and the input gradient of its top logit;
    // no parameter gradient is touched.
    Tensor image({1, 1, 28, 28});
    for (int64_t i = 0; i < 784; ++i) {
      image[i] = (test.pixels[i] / 255.0f - test.mean[0]) / test.stddev[0];
    }
    const Tensor logits = g.forward(image, ExecMode::kProbe);
    int64_t top = 0;
    for (int64_t k = 1; k < 10; ++k) top = logits[k] > logits[top] ? k : top;
    Tensor pick = Tensor::zeros(logits.shape());
    pick[top] = 1.0f;
    const Tensor saliency = g.backward(pick, BackwardOptions{.input_grad = true});
    int64_t strongest = 0;
    for (int64_t i = 1; i < 784; ++i) {
      strongest = std::abs(saliency[i]) > std::abs(saliency[strongest]) ? i : strongest;
    }
    std::printf("saliency: predicted %lld (label %d), strongest pixel at row %lld col %lld\n",
                static_cast<long long>(top), test.labels[0], static_cast<long long>(strongest / 28),
                static_cast<long long>(strongest % 28));

    // Fine-tune only the classifier with the library's training loop: the
    // convolution is frozen (no gradient, no weight-gradient pass, no update).
    g.set_frozen("conv.*");
    TrainOptions o;
    o.model = "embed-convnet";
    o.dataset = "mnist";
    o.epochs = 1;
    o.batch_size = 100;
    o.lr = 0.01f;
    o.progress = false;
    Trainer trainer(std::move(g), train, test, o);
    TrainerCallbacks callbacks;
    callbacks.on_epoch_end = [](Trainer&, const EpochStats& e) {
      std::printf("fine-tuned the head: epoch %lld, test accuracy %.2f%%\n",
                  static_cast<long long>(e.epoch), 100.0 * e.test_accuracy);
    };
    trainer.add_callbacks(callbacks);
    std::ostringstream run_log;  // the per-epoch table, not shown here
    trainer.run(run_log);
  } catch (const Error& e) {
    std::fprintf(stderr, "embed_app: %s\n", e.what());
    return 1;
  }
  return 0;
}
