// Evaluation of a model on a dataset (sparsetrain/trainer.h).

#include "sparsetrain/data.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {

EvalResult evaluate_graph(Graph& graph, const Dataset& data, int64_t batch_size) {
  EvalResult r;
  r.class_accuracy.assign(data.num_classes, 0.0);
  r.class_count.assign(data.num_classes, 0);
  std::vector<int64_t> class_correct(data.num_classes, 0);
  Loader loader(data, batch_size, /*shuffle=*/false, AugmentOptions{}, /*seed=*/0);
  loader.start_epoch(0);
  Batch batch;
  double loss_sum = 0;
  while (loader.next(batch)) {
    const Tensor logits = graph.forward(batch.images, /*training=*/false);
    const LossResult lr = softmax_cross_entropy(logits, batch.labels, nullptr);
    const int64_t n = static_cast<int64_t>(batch.labels.size());
    loss_sum += static_cast<double>(lr.loss) * static_cast<double>(n);
    const int64_t k = logits.dim(1);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits.data() + i * k;
      int64_t best = 0;
      for (int64_t c = 1; c < k; ++c)
        if (row[c] > row[best]) best = c;
      const int32_t label = batch.labels[i];
      r.class_count[label]++;
      if (best == label) class_correct[label]++;
    }
    r.samples += n;
  }
  graph.release();
  int64_t correct = 0;
  for (int c = 0; c < data.num_classes; ++c) {
    correct += class_correct[c];
    r.class_accuracy[c] =
        r.class_count[c] ? static_cast<double>(class_correct[c]) / r.class_count[c] : 0.0;
  }
  r.loss = r.samples ? loss_sum / r.samples : 0.0;
  r.accuracy = r.samples ? static_cast<double>(correct) / r.samples : 0.0;
  return r;
}

}  // namespace sparsetrain
