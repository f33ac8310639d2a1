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
#include "training/trainer_impl.h"
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

}  // namespace

void request_stop() { g_stop_requested.store(true); }
bool stop_requested() { return g_stop_requested.load(); }

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
      detail::load_parameters_sparse(Checkpoint::load(checkpoint_file(m.options.resume_dir)),
                                     m.graph, m.options.sparse_storage == "masked");
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
  DataParallel* ranks = m.ranks.get();
  const float lr = m.schedule->lr(m.step);
  m.graph.set_step(m.step);
  m.sparsity->before_step(m.step);
  m.optimizer->zero_grad(m.params);
  const uint64_t seed = m.rng.next();
  // With several ranks this rank's rows are its share of the global batch
  // (possibly none in a short last batch).
  const bool rows = !labels.empty() || ranks == nullptr;
  Tensor diff;
  LossResult loss;
  if (rows) {
    const Tensor logits = m.graph.forward(images, /*training=*/true, seed);
    diff = Tensor::empty(logits.shape());
    loss = softmax_cross_entropy(logits, labels, &diff);
  }
  int64_t samples = static_cast<int64_t>(labels.size());
  if (ranks) {
    // The global batch's mean loss, correct count and size, and whether any
    // rank was asked to stop; each rank's mean-loss gradient is scaled to
    // its share of the global mean, so the summed gradients are the global
    // batch's.
    double totals[4] = {static_cast<double>(loss.loss) * static_cast<double>(samples),
                        static_cast<double>(loss.correct), static_cast<double>(samples),
                        stop_requested() ? 1.0 : 0.0};
    ranks->sum(totals, "the loss of step " + std::to_string(m.step));
    const auto global = static_cast<int64_t>(totals[2]);
    if (rows && global != samples) {
      const float share = static_cast<float>(samples) / static_cast<float>(global);
      float* d = diff.data();
      for (int64_t i = 0; i < diff.numel(); ++i) d[i] *= share;
    }
    if (global != samples || ranks->ranks() > 1) {
      loss.loss = global > 0 ? static_cast<float>(totals[0] / totals[2]) : 0.0f;
      loss.correct = static_cast<int64_t>(totals[1]);
    }
    samples = global;
    m.any_rank_stopping = totals[3] > 0;
  }
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
  if (ranks) {
    std::vector<Parameter*> reduced;
    for (Parameter* p : m.params)
      if (p->updated() && p->grad.defined()) reduced.push_back(p);
    ranks->begin_gradients(reduced);
    if (rows) {
      m.graph.set_parameter_gradients_callback(
          [ranks](const std::vector<Parameter*>& ps) { ranks->gradients_ready(ps); });
      try {
        m.graph.backward(diff);
      } catch (...) {
        m.graph.set_parameter_gradients_callback({});
        throw;
      }
      m.graph.set_parameter_gradients_callback({});
    }
    ranks->finish_gradients();
  } else {
    m.graph.backward(diff);
  }
  m.sparsity->after_backward(m.step);
  for (Parameter* p : m.params) apply_mask(*p, /*grads=*/true);
  if (m.options.clip_grad_norm > 0) clip_grad_norm(m.params, m.options.clip_grad_norm);
  m.optimizer->step(m.params, lr);
  for (Parameter* p : m.params) apply_mask(*p, /*grads=*/false);
  m.sparsity->after_step(m.step);
  if (ranks && m.sparsity->mask_changes() != m.mask_changes_checked) {
    // Every mask change is computed from identical weights and summed
    // gradients; a mismatch would silently train different models.
    m.mask_changes_checked = m.sparsity->mask_changes();
    ranks->check_equal(mask_fingerprint(m.graph), "the masks after step " + std::to_string(m.step));
  }
  m.graph.fire(HookPoint::kAfterOptimizerStep);
  m.epoch_loss_sum += static_cast<double>(loss.loss) * static_cast<double>(samples);
  m.epoch_correct += loss.correct;
  m.epoch_seen += samples;
  ++m.step;
  for (const TrainerCallbacks& c : m.callbacks)
    if (c.on_step) c.on_step(*this, m.step - 1, loss.loss);
  return loss.loss;
}

void Trainer::set_data_parallel(std::shared_ptr<DataParallel> ranks) {
  Impl& m = *impl_;
  m.ranks = std::move(ranks);
  if (!m.ranks) return;
  if (m.stage) {
    throw Error("data-parallel training does not take --finetune " + m.options.finetune +
                " (its head trains on cached features in one process)");
  }
  // Every rank must start from the same model: same weights, same masks.
  m.ranks->check_equal(parameter_fingerprint(m.graph), "the initial weights");
  m.ranks->check_equal(mask_fingerprint(m.graph), "the initial masks");
  m.mask_changes_checked = m.sparsity->mask_changes();
}

EvalResult Trainer::evaluate(const Dataset& data) {
  // Images, in a run whose graph is a head over features: the whole model.
  Graph& g = impl_->stage && data.values.empty() ? model() : impl_->graph;
  return evaluate_graph(g, data, impl_->options.eval_batch_size);
}

TrainResult Trainer::run(std::ostream& log_stream) {
  Impl& m = *impl_;
  namespace fs = std::filesystem;
  const TrainOptions& o = m.options;
  g_stop_requested.store(false);
  TrainResult result;
  // Data-parallel: rank 0 writes the log, metrics and checkpoints and
  // evaluates; the other ranks only train.
  const bool writer = !m.ranks || m.ranks->rank() == 0;
  std::ostringstream discarded;
  std::ostream& log = writer ? log_stream : discarded;

  std::ofstream metrics;
  if (!o.metrics_path.empty() && writer) {
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
  if (!o.out_dir.empty() && writer) {
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
    if (!writer ||
        std::find(o.save_epochs.begin(), o.save_epochs.end(), epoch) == o.save_epochs.end())
      return;
    const std::string path = detail::snapshot_path(o.out_dir, epoch);
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    if (ec) throw Error("--save-epochs: cannot create '" + path + "': " + ec.message());
    save_checkpoint(path);
    emit({{"event", "snapshot"}, {"epoch", epoch}, {"step", m.step}, {"path", path}});
  };

  std::vector<std::unique_ptr<Probe>> probes;  // watch the final evaluation
  if (writer)
    for (const std::string& name : o.probes) probes.push_back(make_probe(name));

  AugmentOptions aug;
  // Float samples (features) are never augmented.
  const bool augment =
      m.train.values.empty() && (o.augment < 0 ? m.train.name == "cifar10" : o.augment == 1);
  aug.random_crop = augment;
  aug.hflip = augment;
  Loader loader(m.train, o.batch_size, /*shuffle=*/true, aug, o.seed);
  if (m.ranks) loader.set_shard(m.ranks->rank(), m.ranks->ranks());

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
  if (m.ranks) {
    log << "data-parallel over " << m.ranks->ranks() << " MPI ranks of " << kernels::num_threads()
        << " thread(s) each: " << o.batch_size / m.ranks->ranks() << "-"
        << (o.batch_size + m.ranks->ranks() - 1) / m.ranks->ranks()
        << " samples of every batch per rank, gradients summed in buckets during backward\n";
  }
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
    Progress progress(log, o.progress && writer, tty, m.epoch + 1, loader.batches_per_epoch(),
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
      // Ranks stop together: at the step where any of them was asked to.
      const bool stop_now = m.ranks ? m.any_rank_stopping : g_stop_requested.load();
      if (stop_now || (o.max_steps >= 0 && m.step >= o.max_steps)) {
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
    const EvalResult ev = writer ? evaluate(m.test) : EvalResult{};
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
    if (m.ranks) {
      const DataParallelStats ds = m.ranks->stats();
      ej["ranks"] = m.ranks->ranks();
      ej["allreduce_floats_per_step"] = ds.values_last_step;
      ej["allreduce_dense_floats_per_step"] = ds.dense_values_last_step;
      ej["allreduce_buckets_per_step"] = ds.buckets_last_step;
      ej["allreduce_wait_seconds_total"] = ds.wait_seconds_total;
    }
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
  if (m.ranks) {
    end["ranks"] = m.ranks->ranks();
    end["allreduce_floats_per_step"] = m.ranks->stats().values_last_step;
  }
  emit(end);
  log << "final test accuracy: " << std::fixed << std::setprecision(2)
      << 100.0 * result.test_accuracy << "% (" << m.test.size() << " images";
  if (o.dataset == "cifar10") log << ", " << m.test.files;
  log << ")\n";
  if (m.ranks) {
    const DataParallelStats ds = m.ranks->stats();
    log << "all-reduced per step (last step): " << ds.values_last_step << " floats ("
        << ds.bytes_last_step << " bytes) in " << ds.buckets_last_step << " bucket(s), against "
        << ds.dense_values_last_step << " for dense gradients\n";
  }
  if (!ck_path.empty()) log << "checkpoint: " << ck_path.string() << "\n";
  return result;
}

}  // namespace sparsetrain
