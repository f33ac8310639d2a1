#include "sparsetrain/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/json_text.h"
#include "base/stats.h"
#include "kernels/common/log.h"
#include "kernels/common/threads.h"
#include "sparsetrain/checkpoint.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"
#include "sparsetrain/kernel_choices.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/probes.h"
#include "sparsetrain/recipe.h"
#include "sparsetrain/schedule.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/transfer.h"
#include "training/retrain.h"
#include "training/trainer_report.h"
#include "transfer/linear_probe.h"
#include "transfer/sparse_head.h"

namespace sparsetrain {
namespace {

using namespace report;  // the run log and metrics (trainer_report.h)

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop_requested{false};

std::unique_ptr<Optimizer> optimizer_for(const TrainOptions& o) {
  OptimizerOptions oo;
  oo.kind = o.optimizer;
  oo.momentum = o.momentum;
  oo.nesterov = o.nesterov;
  oo.weight_decay = o.weight_decay;
  oo.beta1 = o.beta1;
  oo.beta2 = o.beta2;
  oo.eps = o.adam_eps;
  return make_optimizer(oo);
}

// Seeds for per-step randomness (dropout) come from one generator whose
// state is checkpointed, so a resumed run draws the same numbers.
uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Prunable weights in checkpoints keep their state (checkpoint.h, format 2):
// compressed ones as their stored values plus a bitmask, masked ones dense
// plus a bitmask.
void save_parameters_dense(Checkpoint& ck, const std::vector<Parameter*>& params) {
  save_parameters(ck, params);
}

// `masked`: saved masks become masks of dense weights (masked state) even
// where they were saved compressed; otherwise every weight comes back in
// the state it was saved in (format-1 files: compressed).
void load_parameters_sparse(const Checkpoint& ck, Graph& graph, bool masked) {
  load_graph_parameters(ck, graph, masked ? SparseLoad::kMasked : SparseLoad::kAsSaved);
}

}  // namespace

void request_stop() { g_stop_requested.store(true); }
bool stop_requested() { return g_stop_requested.load(); }

struct Trainer::Impl {
  TrainOptions options;
  GraphFactory factory;
  Dataset train;
  Dataset test;
  Graph graph;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<LrSchedule> schedule;
  std::vector<Parameter*> params;
  Rng rng;
  int64_t steps_per_epoch = 0;
  // Applies the sparsity schedule around every step (sparsity.h).
  std::unique_ptr<SparsityController> sparsity;

  // Position in the run (what a checkpoint restores).
  int64_t step = 0;
  int64_t epoch = 0;           // 0-based epoch in progress
  int64_t batch_in_epoch = 0;  // batches already done in that epoch
  double epoch_loss_sum = 0;
  int64_t epoch_correct = 0;
  int64_t epoch_seen = 0;
  double epoch_seconds = 0;  // time spent on the epoch in progress before a resume
  std::vector<EpochStats> history;
  std::string init_note;     // what init_from / retrain did, for the run log
  std::string choices_note;  // kernel choices replayed, for the run log
  std::vector<TrainerCallbacks> callbacks;
  // linear-probe and sparse-head: the whole model, while `graph` is its head
  // over cached features and `train` and `test` are those features.
  std::unique_ptr<detail::FeatureStage> stage;

  // Everything after the graph and the data are in place.
  void start(Trainer& self);
};

namespace {

// The position in the run as a checkpoint's "state" (fields_to_json).
constexpr auto kPositionFields = [](auto& m, auto&& f) {
  f("step", m.step);
  f("epoch", m.epoch);
  f("batch_in_epoch", m.batch_in_epoch);
  f("epoch_loss_sum", m.epoch_loss_sum);
  f("epoch_correct", m.epoch_correct);
  f("epoch_seen", m.epoch_seen);
  f("epoch_seconds", m.epoch_seconds);
};

}  // namespace

Trainer::Trainer(TrainOptions options, GraphFactory factory) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  validate(options);
  m.options = std::move(options);
  m.factory = std::move(factory);
  kernels::set_num_threads(m.options.threads);
  m.train = load_dataset(m.options.dataset, m.options.data_dir, Split::kTrain,
                         m.options.train_limit, m.options.classes);
  m.test = load_dataset(m.options.dataset, m.options.data_dir, Split::kTest, m.options.test_limit,
                        m.options.classes);
  m.graph = m.factory(m.options.model, m.train.channels, m.train.height, m.train.width,
                      m.train.num_classes);
  m.graph.initialize(m.options.seed);
  m.start(*this);
}

Trainer::Trainer(Graph graph, Dataset train, Dataset test, TrainOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  validate(options);
  m.options = std::move(options);
  kernels::set_num_threads(m.options.threads);
  for (const Dataset* d : {&train, &test}) {
    if (d->size() == 0)
      throw Error("trainer: the " + std::string(d == &train ? "training" : "test") +
                  " set is empty");
    const bool floats = !d->values.empty();
    if (floats ? static_cast<int64_t>(d->values.size()) != d->size() * d->image_numel()
               : static_cast<int64_t>(d->pixels.size()) != d->size() * d->image_numel() ||
                     d->mean.size() != static_cast<size_t>(d->channels) ||
                     d->stddev.size() != static_cast<size_t>(d->channels)) {
      throw Error("trainer: dataset '" + d->name +
                  "' is inconsistent (its pixels, float values, mean or " +
                  "stddev do not match its size and channels)");
    }
  }
  const Shape sample = {train.channels, train.height, train.width};
  if (graph.input_shape() != sample || Shape{test.channels, test.height, test.width} != sample) {
    throw Error("trainer: the graph's input " + shape_to_string(graph.input_shape()) +
                " does not take the samples of the data (train " + shape_to_string(sample) +
                ", test " + shape_to_string({test.channels, test.height, test.width}) + ")");
  }
  m.train = std::move(train);
  m.test = std::move(test);
  m.graph = std::move(graph);
  m.start(*this);
}

void Trainer::add_callbacks(TrainerCallbacks callbacks) {
  impl_->callbacks.push_back(std::move(callbacks));
}

void Trainer::Impl::start(Trainer& self) {
  Impl& m = *this;
  m.graph.set_sparse_kernels(m.options.kernels);
  if (!m.options.kernel_choices.empty()) {
    const std::string file = kernel_choices_file(m.options.kernel_choices);
    const std::vector<KernelChoice> recorded = read_kernel_choices(file);
    m.graph.replay_kernel_choices(recorded, "--kernel-choices " + file);
    m.choices_note =
        "kernel choices: replaying " + std::to_string(recorded.size()) + " from " + file + "\n";
  }
  if (!m.options.init_from.empty() && m.options.resume_dir.empty()) {
    // Weights and fixed masks of a checkpoint (retrain.h); a resumed run has
    // its own and its options already resolved.
    const int64_t steps_per_epoch =
        (m.train.size() + m.options.batch_size - 1) / m.options.batch_size;
    m.init_note = detail::apply_init_from(m.options, m.graph, steps_per_epoch);
    validate(m.options);
  }
  if (detail::trains_on_features(m.options)) {
    // The backbone is the upstream's (or the resumed run's): features of
    // the head's input, then the head alone trains on them.
    if (!m.options.resume_dir.empty()) {
      load_parameters_sparse(Checkpoint::load(checkpoint_file(m.options.resume_dir)), m.graph,
                             m.options.sparse_storage == "masked");
    }
    m.stage =
        std::make_unique<detail::FeatureStage>(std::move(m.graph), m.options, m.train, m.test);
    m.graph = m.stage->head_graph();
    m.graph.set_sparse_kernels(m.options.kernels);
    m.train = std::move(m.stage->train());
    m.test = std::move(m.stage->test());
    m.init_note += (m.init_note.empty() ? "" : "\n") + m.stage->note();
  }
  apply_freeze(m.options, m.graph);
  m.params = m.graph.parameters();
  m.optimizer = optimizer_for(m.options);
  m.steps_per_epoch = (m.train.size() + m.options.batch_size - 1) / m.options.batch_size;
  m.sparsity = std::make_unique<SparsityController>(
      make_sparsity_schedule(m.options, m.steps_per_epoch), m.graph, m.optimizer.get());
  m.sparsity->start();
  m.schedule = detail::make_run_lr_schedule(m.options, m.steps_per_epoch);
  m.rng.reseed(mix(m.options.seed, 0x5eed));
  if (!m.options.resume_dir.empty()) {
    self.load_checkpoint(checkpoint_file(m.options.resume_dir));
  }
}

Trainer::~Trainer() = default;

const TrainOptions& Trainer::options() const { return impl_->options; }
float Trainer::lr_at(int64_t step) const { return impl_->schedule->lr(step); }
int64_t Trainer::steps_done() const { return impl_->step; }
Graph& Trainer::graph() { return impl_->graph; }
Graph& Trainer::model() {
  Impl& m = *impl_;
  if (!m.stage) return m.graph;
  m.stage->store_head(m.params);
  return m.stage->model();
}
const Dataset& Trainer::train_data() const { return impl_->train; }
const Dataset& Trainer::test_data() const { return impl_->test; }
std::vector<KernelChoice> Trainer::kernel_choices() const { return impl_->graph.kernel_choices(); }

float Trainer::step(const Tensor& images, const std::vector<int32_t>& labels) {
  Impl& m = *impl_;
  const float lr = m.schedule->lr(m.step);
  m.graph.set_step(m.step);
  m.sparsity->before_step(m.step);
  m.optimizer->zero_grad(m.params);
  const uint64_t seed = m.rng.next();
  const Tensor logits = m.graph.forward(images, /*training=*/true, seed);
  Tensor diff = Tensor::empty(logits.shape());
  const LossResult loss = softmax_cross_entropy(logits, labels, &diff);
  if (!std::isfinite(loss.loss)) {
    m.graph.release();
    std::ostringstream os;
    os << "step " << m.step << " (epoch " << m.epoch + 1 << ", batch " << m.batch_in_epoch + 1
       << "): the loss is " << (std::isnan(loss.loss) ? "NaN" : "infinite")
       << "; training diverged: lower --lr (now " << lr << ") or set --clip-grad-norm";
    if (!m.options.out_dir.empty())
      os << "; the last checkpoint in " << m.options.out_dir << " is kept as it was";
    throw Error(os.str());
  }
  m.graph.backward(diff);
  m.sparsity->after_backward(m.step);
  for (Parameter* p : m.params) apply_mask(*p, /*grads=*/true);
  if (m.options.clip_grad_norm > 0) clip_grad_norm(m.params, m.options.clip_grad_norm);
  m.optimizer->step(m.params, lr);
  for (Parameter* p : m.params) apply_mask(*p, /*grads=*/false);
  m.sparsity->after_step(m.step);
  m.graph.fire(HookPoint::kAfterOptimizerStep);
  m.epoch_loss_sum += static_cast<double>(loss.loss) * static_cast<double>(labels.size());
  m.epoch_correct += loss.correct;
  m.epoch_seen += static_cast<int64_t>(labels.size());
  ++m.step;
  for (const TrainerCallbacks& c : m.callbacks)
    if (c.on_step) c.on_step(*this, m.step - 1, loss.loss);
  return loss.loss;
}

EvalResult Trainer::evaluate(const Dataset& data) {
  // Images, in a run whose graph is a head over features: the whole model.
  Graph& g = impl_->stage && data.values.empty() ? model() : impl_->graph;
  return evaluate_graph(g, data, impl_->options.eval_batch_size);
}

void Trainer::save_checkpoint(const std::string& path) const {
  const Impl& m = *impl_;
  Checkpoint ck;
  // A head over features saves the whole model it belongs to.
  if (m.stage) m.stage->store_head(m.params);
  save_parameters_dense(ck, m.stage ? m.stage->model().parameters() : m.params);
  save_optimizer_state(ck, *m.optimizer, m.params);
  save_rng(ck, "rng/trainer", m.rng);
  const json state = fields_to_json(m, kPositionFields);
  json history = json::array();
  for (const auto& e : m.history) history.push_back(epoch_to_json(e));
  auto& meta = ck.metadata();
  meta["format"] = "sparsetrain-checkpoint-2";
  meta["options"] = options_to_json(m.options);
  meta["state"] = state.dump();
  meta["history"] = history.dump();
  meta["sample_shape"] = m.stage ? json(m.stage->model().input_shape()).dump()
                                 : json({m.train.channels, m.train.height, m.train.width}).dump();
  meta["num_classes"] = std::to_string(m.train.num_classes);
  // Replayed by --resume, so the resumed run takes the same kernels.
  meta["kernel_choices"] = kernel_choices_to_json(m.graph.kernel_choices());
  // For people reading the file (the options above are exact).
  meta["recipe"] = detail::utf8_lossy(recipe_to_yaml(m.options));
  ck.save(path);
}

void Trainer::load_checkpoint(const std::string& path) {
  Impl& m = *impl_;
  const Checkpoint ck = Checkpoint::load(path);
  auto field = [&](const char* key) -> const std::string& {
    return detail::checkpoint_meta(ck, key, path + ": not a sparsetrain training checkpoint");
  };
  const TrainOptions saved = options_from_json(field("options"));
  if (saved.model != m.options.model) {
    throw Error(path + ": the checkpoint holds model '" + saved.model + "', not '" +
                m.options.model + "'");
  }
  if (m.stage) {
    // The whole model; the head graph takes its head.
    load_parameters_sparse(ck, m.stage->model(), m.options.sparse_storage == "masked");
    m.stage->load_head(m.graph);
  } else {
    load_parameters_sparse(ck, m.graph, m.options.sparse_storage == "masked");
  }
  m.params = m.graph.parameters();
  load_optimizer_state(ck, *m.optimizer, m.params);
  load_rng(ck, "rng/trainer", m.rng);
  try {
    fields_from_json(json::parse(field("state")), m, kPositionFields);
    m.history.clear();
    for (const auto& e : json::parse(field("history"))) m.history.push_back(epoch_from_json(e));
  } catch (const json::exception& e) {
    throw Error(path + ": bad training state in the checkpoint metadata: " + e.what());
  }
  if (const auto it = ck.metadata().find("kernel_choices"); it != ck.metadata().end()) {
    const std::string where = path + ": metadata 'kernel_choices'";
    const std::vector<KernelChoice> recorded = kernel_choices_from_json(it->second, where);
    m.graph.replay_kernel_choices(recorded, where);
    m.choices_note +=
        "kernel choices: replaying " + std::to_string(recorded.size()) + " from the checkpoint\n";
  }
  // The masks came back with the parameters; the phase follows from the step.
  m.sparsity->resume(m.step);
}

TrainResult Trainer::run(std::ostream& log) {
  Impl& m = *impl_;
  namespace fs = std::filesystem;
  const TrainOptions& o = m.options;
  g_stop_requested.store(false);
  TrainResult result;

  std::ofstream metrics;
  if (!o.metrics_path.empty()) {
    const fs::path mp(o.metrics_path);
    if (mp.has_parent_path()) fs::create_directories(mp.parent_path());
    metrics.open(o.metrics_path, o.resume_dir.empty() ? std::ios::trunc : std::ios::app);
    if (!metrics) throw Error("--metrics: cannot open '" + o.metrics_path + "' for writing");
  }
  auto emit = [&metrics](const json& j) {
    // Log lines: a non-UTF-8 path in an event is written with U+FFFD, not
    // refused (the options themselves are stored losslessly).
    if (metrics.is_open())
      metrics << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n' << std::flush;
  };
  fs::path ck_path, choices_path;
  if (!o.out_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.out_dir, ec);
    if (ec) throw Error("--out: cannot create directory '" + o.out_dir + "': " + ec.message());
    ck_path = checkpoint_file(o.out_dir);  // the folder exists now
    // What a run killed in the middle of a write left behind.
    if (const int stale = remove_stale_temporaries(o.out_dir); stale > 0)
      kernels::log(kernels::LogLevel::kInfo, "removed " + std::to_string(stale) +
                                                 " unfinished temporary file(s) in " + o.out_dir);
    // A run resuming itself writes over its own checkpoint; any other run
    // may not replace one (unless --force), nor the one it starts from.
    const bool resuming_here =
        !o.resume_dir.empty() && fs::equivalent(checkpoint_file(o.resume_dir), ck_path, ec);
    if (!resuming_here) check_checkpoint_target(ck_path.string(), "--out", {o.init_from}, o.force);
    choices_path = fs::path(o.out_dir) / "kernel_choices.json";
    // The resolved recipe: `train --recipe <out>/recipe.yaml` repeats the run.
    const fs::path recipe_path = fs::path(o.out_dir) / "recipe.yaml";
    write_file_atomic(recipe_path.string(), recipe_to_yaml(o), "--out " + recipe_path.string());
  }
  // The checkpoint and the kernel choices so far (replayed by --resume and
  // --kernel-choices).
  auto save_run = [&] {
    if (ck_path.empty()) return;
    save_checkpoint(ck_path.string());
    write_kernel_choices(choices_path.string(), m.graph.kernel_choices());
  };
  // Each new kernel choice (training or evaluation batches) in the metrics.
  std::size_t choices_emitted = 0;
  auto emit_choices = [&] {
    const std::vector<KernelChoice> made = m.graph.kernel_choices();
    for (; choices_emitted < made.size(); ++choices_emitted)
      emit(kernel_choice_event(made[choices_emitted]));
  };
  // Snapshots for weight rewinding: the state after `epoch` epochs.
  auto save_snapshot = [&](int64_t epoch) {
    if (std::find(o.save_epochs.begin(), o.save_epochs.end(), epoch) == o.save_epochs.end()) return;
    const std::string path = detail::snapshot_path(o.out_dir, epoch);
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    if (ec) throw Error("--save-epochs: cannot create '" + path + "': " + ec.message());
    save_checkpoint(path);
    emit({{"event", "snapshot"}, {"epoch", epoch}, {"step", m.step}, {"path", path}});
  };

  std::vector<std::unique_ptr<Probe>> probes;  // watch the final evaluation
  for (const std::string& name : o.probes) probes.push_back(make_probe(name));

  AugmentOptions aug;
  // Float samples (features) are never augmented.
  const bool augment =
      m.train.values.empty() && (o.augment < 0 ? m.train.name == "cifar10" : o.augment == 1);
  aug.random_crop = augment;
  aug.hflip = augment;
  Loader loader(m.train, o.batch_size, /*shuffle=*/true, aug, o.seed);

  const int64_t params_total =
      m.stage ? m.stage->model().parameter_count() : m.graph.parameter_count();
  emit({{"event", "start"},
        {"options", json::parse(options_to_json(o))},
        {"train_samples", m.train.size()},
        {"test_samples", m.test.size()},
        {"data_folder", m.train.folder},
        {"train_files", m.train.files},
        {"test_files", m.test.files},
        {"steps_per_epoch", m.steps_per_epoch},
        {"params_total", params_total},
        {"resumed_at_step", m.step},
        {"sparsity_schedule",
         m.sparsity->schedule().active() ? m.sparsity->schedule().describe() : "dense"},
        {"pruned_layers", pruned_layer_names(*m.sparsity)}});
  log << "model " << o.model << " (" << params_total << " parameters), dataset " << o.dataset;
  if (!o.classes.empty()) {
    log << " classes " << o.classes << " (";
    for (size_t c = 0; c < m.train.class_names.size(); ++c)
      log << (c ? ", " : "") << m.train.class_names[c];
    log << ")";
  }
  log << " from " << m.train.folder << " (" << m.train.size() << " train / " << m.test.size()
      << " test images";
  if (o.dataset == "cifar10") log << "; test set " << m.test.files;
  log << "), batch " << o.batch_size << ", " << o.optimizer << " lr " << o.lr << " ("
      << o.lr_schedule << "), " << kernels::num_threads() << " threads\n";
  if (!m.init_note.empty()) log << m.init_note << "\n";
  log << m.choices_note;
  log_sparsity_header(log, *m.sparsity, m.graph, o.kernels);
  for (const SparsityEvent& ev : m.sparsity->take_events())
    emit(sparsity_event_json(ev, *m.sparsity, m.steps_per_epoch));
  if (m.step > 0)
    log << "resumed at step " << m.step << " (epoch " << m.epoch + 1 << ", batch "
        << m.batch_in_epoch << ")\n";
  // The model's side of an epoch's row (the whole model when the head
  // trains over features).
  auto describe_model = [&](EpochStats& e) {
    Graph& g = model();
    e.sparse_layers = g.sparse_layer_count();
    e.prunable_layers = g.prunable_layer_count();
    e.sparse_layer_names = g.sparse_layer_names();
    e.phase = shown_phase(m.sparsity->phase(), g);
    e.sparsity = sparsity_report(g).prunable_sparsity();
    e.param_bytes = parameter_memory_bytes(g, m.optimizer.get());
  };
  if (m.stage && o.finetune == "sparse-head" && m.epoch < o.epochs) {
    // One solve along the regularisation path stands for the epochs.
    EpochStats e = detail::fit_sparse_head(o, m.train, m.test, m.graph, m.stage->head(),
                                           m.stage->feature_node(), log, emit)
                       .stats;
    describe_model(e);
    const EvalResult ev = evaluate(m.test);
    e.test_accuracy = ev.accuracy;
    e.test_loss = ev.loss;
    m.history.push_back(e);
    json ej = epoch_to_json(e);
    ej["event"] = "epoch";
    emit(ej);
    m.epoch = o.epochs;
    save_run();
  }
  log << table_header();
  for (const TrainerCallbacks& c : m.callbacks)
    if (c.on_start) c.on_start(*this);
  for (std::size_t i = 0; i < m.history.size(); ++i)
    log << table_row(m.history[i])
        << sparse_layers_note(i ? &m.history[i - 1] : nullptr, m.history[i]);
  log << std::flush;
  const bool tty = o.progress && ::isatty(STDOUT_FILENO) && &log == &std::cout;
  if (m.step == 0) save_snapshot(0);

  while (m.epoch < o.epochs) {
    loader.start_epoch(m.epoch);
    if (m.batch_in_epoch > 0) loader.skip_to(m.batch_in_epoch);
    Progress progress(log, o.progress, tty, m.epoch + 1, loader.batches_per_epoch(),
                      m.batch_in_epoch);
    const auto t0 = Clock::now();
    reset_peak_memory();
    int64_t peak = 0;
    Batch batch;
    bool stopped = false;
    std::vector<double> step_ms;
    double data_s = 0;
    for (;;) {
      const auto wait0 = Clock::now();
      if (!loader.next(batch)) break;
      const auto step0 = Clock::now();
      data_s += std::chrono::duration<double>(step0 - wait0).count();
      const float lr = m.schedule->lr(m.step);
      const float loss = step(batch.images, batch.labels);
      step_ms.push_back(1e3 * seconds_since(step0));
      emit_choices();
      peak = std::max(peak, m.graph.last_peak_bytes());
      ++m.batch_in_epoch;
      result.step_losses.push_back(loss);
      progress.update(static_cast<int64_t>(batch.labels.size()), loss);
      for (const SparsityEvent& ev : m.sparsity->take_events()) {
        emit(sparsity_event_json(ev, *m.sparsity, m.steps_per_epoch));
        if (ev.kind != "phase") continue;
        if (tty) progress.finish();
        log << sparsity_event_line(ev, *m.sparsity, m.steps_per_epoch) << std::flush;
        for (const TrainerCallbacks& c : m.callbacks)
          if (c.on_phase_change) c.on_phase_change(*this, phase_name(ev.phase));
      }
      if (o.log_every > 0 && (m.step - 1) % o.log_every == 0) {
        emit({{"event", "step"},
              {"step", m.step - 1},
              {"epoch", m.epoch + 1},
              {"loss", loss},
              {"lr", lr},
              {"ms", step_ms.back()}});
      }
      if (g_stop_requested.load() || (o.max_steps >= 0 && m.step >= o.max_steps)) {
        stopped = m.batch_in_epoch < loader.batches_per_epoch() || m.epoch + 1 < o.epochs;
        if (stopped) break;
      }
    }
    progress.finish();
    if (stopped) {
      m.epoch_seconds += seconds_since(t0);
      save_run();
      result.interrupted = true;
      log << "stopped at step " << m.step << " (epoch " << m.epoch + 1 << ", batch "
          << m.batch_in_epoch << ")";
      if (!ck_path.empty()) log << "; resume with --resume " << o.out_dir;
      log << "\n";
      emit({{"event", "stopped"},
            {"step", m.step},
            {"epoch", m.epoch + 1},
            {"batch", m.batch_in_epoch}});
      break;
    }
    EpochStats e;
    e.epoch = m.epoch + 1;
    e.seconds = m.epoch_seconds + seconds_since(t0);
    e.loss = m.epoch_seen ? m.epoch_loss_sum / m.epoch_seen : 0.0;
    e.train_accuracy = m.epoch_seen ? static_cast<double>(m.epoch_correct) / m.epoch_seen : 0.0;
    e.samples_per_second = e.seconds > 0 ? m.epoch_seen / e.seconds : 0.0;
    e.step_ms_median = detail::median_of(std::move(step_ms));
    e.data_seconds = data_s;
    e.lr = m.schedule->lr(m.step - 1);
    e.peak_bytes = peak;
    describe_model(e);
    const bool last_epoch = m.epoch + 1 == o.epochs;
    std::vector<HookHandle> probe_hooks;
    if (last_epoch)
      for (auto& probe : probes) probe->attach(m.graph, "*");
    const EvalResult ev = evaluate(m.test);
    for (auto& probe : probes) probe->detach();
    e.test_accuracy = ev.accuracy;
    e.test_loss = ev.loss;
    emit_choices();
    log << table_row(e) << sparse_layers_note(m.history.empty() ? nullptr : &m.history.back(), e)
        << std::flush;
    m.history.push_back(e);
    for (const TrainerCallbacks& c : m.callbacks)
      if (c.on_epoch_end) c.on_epoch_end(*this, e);
    json ej = epoch_to_json(e);
    ej["event"] = "epoch";
    emit(ej);
    ++m.epoch;
    m.batch_in_epoch = 0;
    m.epoch_loss_sum = 0;
    m.epoch_correct = 0;
    m.epoch_seen = 0;
    m.epoch_seconds = 0;
    save_run();
    save_snapshot(m.epoch);
  }
  result.epochs = m.history;
  result.steps = m.step;
  if (result.interrupted) return result;

  result.test_accuracy = m.history.empty() ? 0.0 : m.history.back().test_accuracy;
  Graph& whole = model();
  int64_t nonzero = 0;
  for (Parameter* p : whole.parameters()) {
    if (!p->trainable()) continue;
    for (int64_t i = 0; i < p->value.numel(); ++i) nonzero += p->value[i] != 0.0f;
  }
  json seconds = json::array();
  int64_t peak_bytes = 0;
  for (const auto& e : m.history) {
    seconds.push_back(e.seconds);
    peak_bytes = std::max(peak_bytes, e.peak_bytes);
  }
  json end = {{"event", "end"},
              {"test_accuracy", result.test_accuracy},
              {"test_loss", m.history.empty() ? 0.0 : m.history.back().test_loss},
              {"epoch_seconds", seconds},
              {"params_total", params_total},
              {"params_nonzero", nonzero},
              {"sparsity", sparsity_report(whole).prunable_sparsity()},
              {"params_sparsity", sparsity_report(whole).params_sparsity()},
              {"phase", shown_phase(m.sparsity->phase(), whole)},
              {"param_memory_bytes", parameter_memory_bytes(whole, m.optimizer.get())},
              {"steps", m.step},
              {"peak_memory_bytes", peak_bytes},
              {"model", o.model},
              {"dataset", o.dataset},
              {"test_files", m.test.files}};
  for (const auto& probe : probes) {
    const std::string out = probe->write(o.out_dir);
    std::string key = probe->name();
    std::replace(key.begin(), key.end(), '-', '_');
    end[key] = out;
    log << probe->name() << " written to " << out << "\n";
  }
  emit(end);
  log << "final test accuracy: " << std::fixed << std::setprecision(2)
      << 100.0 * result.test_accuracy << "% (" << m.test.size() << " images";
  if (o.dataset == "cifar10") log << ", " << m.test.files;
  log << ")\n";
  if (!ck_path.empty()) log << "checkpoint: " << ck_path.string() << "\n";
  return result;
}

}  // namespace sparsetrain
