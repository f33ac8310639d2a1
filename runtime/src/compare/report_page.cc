// The compare report's page: one HTML file with its CSS, Chart.js and the
// script that draws the plots and sorts the tables (runtime/src/compare/).

#include "compare/report_page.h"

#include <cstdio>
#include <string>

namespace sparsetrain::detail {

namespace {

constexpr const char* kStyle = R"css(
body { font: 14px/1.45 sans-serif; margin: 24px auto; max-width: 1200px; color: #1d1d1f; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 36px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: middle; }
th { background: #f4f4f6; cursor: pointer; user-select: none; }
td:first-child, th:first-child { text-align: left; }
th.asc::after { content: " \25B2"; } th.desc::after { content: " \25BC"; }
td.neg { color: #b3261e; } td.pos { color: #1b6e20; }
.explain { color: #555; max-width: 900px; margin: 4px 0 12px; }
.note { color: #555; font-style: italic; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.chart { width: 560px; height: 340px; } .chart.small { width: 370px; height: 260px; } .chart.wide { width: 1140px; }
img.sample { width: 40px; height: 40px; image-rendering: pixelated; margin: 1px; }
img.sample.big { width: 64px; height: 64px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; text-align: center; font-size: 12px; } figure img.sample { width: 72px; height: 72px; }
table.domino td { text-align: left; }
)css";

constexpr const char* kScript = R"js(
(function () {
  const data = JSON.parse(document.getElementById('plot-data').textContent);
  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
                   '#7f7f7f', '#bcbd22', '#17becf'];
  const color = (i) => palette[i % palette.length];
  let charts = 0;
  function chart(parent, cls, config) {
    const box = document.createElement('div');
    box.className = 'chart' + (cls ? ' ' + cls : '');
    const canvas = document.createElement('canvas');
    box.appendChild(canvas);
    document.getElementById(parent).appendChild(box);
    new Chart(canvas, config);
    charts++;
  }
  const axis = (title, extra) => Object.assign({ title: { display: true, text: title } }, extra || {});
  const line = (label, points, i, extra) => Object.assign({ label: label, data: points,
      borderColor: color(i), backgroundColor: color(i), showLine: true, pointRadius: 2 }, extra || {});

  // Reliability diagrams.
  const rel = data.groups.map((g, i) => line(g.name, g.reliability.map((b) => ({ x: b[0], y: b[1] })), i));
  rel.push(line('perfect calibration', [{ x: 0, y: 0 }, { x: 1, y: 1 }], 7,
                { borderDash: [5, 4], pointRadius: 0 }));
  chart('plot-reliability', '', { type: 'scatter', data: { datasets: rel }, options: {
    plugins: { title: { display: true, text: 'Reliability: accuracy against confidence per bin' } },
    scales: { x: axis('confidence', { min: 0, max: 1 }), y: axis('accuracy', { min: 0, max: 1 }) } } });

  // Jaccard histograms.
  if (data.histograms.length) {
    const bins = data.histograms[0].counts.map((_, b) => (b / 20).toFixed(2));
    chart('plot-jaccard', '', { type: 'bar', data: { labels: bins, datasets: data.histograms.map((h, i) =>
      ({ label: h.label, data: h.counts, backgroundColor: color(i + 1) })) }, options: {
      plugins: { title: { display: true, text: 'Per-sample Jaccard of the k-NN sets' } },
      scales: { x: axis('Jaccard (bin start)'), y: axis('samples') } } });
  }
  // PCA scatters, coloured by class.
  for (const p of data.projections) {
    const byClass = data.classes.map((name, c) => ({ label: name, data: [], backgroundColor: color(c),
                                                     pointRadius: 1.5 }));
    p.x.forEach((x, i) => byClass[p.c[i]].data.push({ x: x, y: p.y[i] }));
    chart('plot-pca', 'small', { type: 'scatter', data: { datasets: byClass }, options: {
      plugins: { title: { display: true, text: p.model + ' (PC1 ' + (100 * p.explained[0]).toFixed(1) +
                 '%, PC2 ' + (100 * p.explained[1]).toFixed(1) + '%)' },
                 legend: { labels: { boxWidth: 8, font: { size: 10 } } } },
      scales: { x: axis('PC1'), y: axis('PC2') } } });
  }
  if (data.robust > 0) {
    // Uniform noise.
    chart('plot-noise', '', { type: 'scatter', data: { datasets: data.groups.map((g, i) =>
      line(g.name, g.noise.map((a, l) => ({ x: data.noise[l], y: a })), i)) }, options: {
      plugins: { title: { display: true, text: 'Accuracy under uniform noise' } },
      scales: { x: axis('noise amplitude'), y: axis('accuracy', { min: 0, max: 1 }) } } });
    // Corruptions, one chart each.
    for (const c of data.corruptions) {
      chart('plot-corruptions', 'small', { type: 'scatter', data: { datasets: data.groups.map((g, i) =>
        line(g.name, [{ x: 0, y: g.noise[0] }].concat((g.corruptions[c] || []).map((a, s) =>
          ({ x: s + 1, y: a }))), i)) }, options: {
        plugins: { title: { display: true, text: c } },
        scales: { x: axis('severity', { min: 0, ticks: { stepSize: 1 } }),
                  y: axis('accuracy', { min: 0, max: 1 }) } } });
    }
  }
  if (data.potentials.length) {
    chart('plot-potential', 'wide', { type: 'bar', data: { labels: data.potentials.map((p) => p.d),
      datasets: [{ label: 'prune potential', data: data.potentials.map((p) => p.p),
                   backgroundColor: color(0) }] }, options: {
      plugins: { title: { display: true, text: 'Prune potential per distribution' } },
      scales: { y: axis('sparsity', { min: 0, max: 1 }) } } });
  }

  // Sortable tables: click a header; numbers sort as numbers.
  for (const table of document.querySelectorAll('table.sortable')) {
    table.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
      const body = table.tBodies[0];
      const asc = !th.classList.contains('asc');
      table.querySelectorAll('th').forEach((h) => h.classList.remove('asc', 'desc'));
      th.classList.add(asc ? 'asc' : 'desc');
      const key = (row) => { const t = row.cells[col].textContent.trim(); const v = parseFloat(t);
                             return isNaN(v) ? t : v; };
      const rows = Array.from(body.rows).sort((a, b) => {
        const x = key(a), y = key(b);
        const r = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return asc ? r : -r; });
      rows.forEach((r) => body.appendChild(r));
    }));
  }
  document.body.setAttribute('data-charts', String(charts));
  document.body.setAttribute('data-ready', '1');
})();
)js";

std::string section(const std::string& id, const std::string& title, const std::string& body) {
  return "<section id=\"" + id + "\"><h2>" + title + "</h2>" + body + "</section>\n";
}

}  // namespace

std::string report_page(const ReportParts& p, const char* chartjs) {
  char uncertain[128], tolerance[64];
  std::snprintf(uncertain, sizeof uncertain, "%.2f", p.uncertain_below);
  std::snprintf(tolerance, sizeof tolerance, "%.1f", 100.0 * p.tolerance);
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" +
                  p.title + "</title><style>" + kStyle + "</style></head><body>\n<h1>" + p.title +
                  "</h1>" + p.summary +
                  "<nav><a href=\"#models\">models</a><a href=\"#reference\">against the "
                  "reference</a><a href=\"#classes\">classes</a><a href=\"#pies\">PIEs</a><a "
                  "href=\"#embeddings\">embeddings</a><a href=\"#robustness\">robustness</a><a "
                  "href=\"#potential\">prune potential</a></nav>\n";
  h +=
      section("models", "Models",
              p.models +
                  "<p class=\"explain\">NLL: mean negative log-likelihood of the label. ECE: "
                  "expected calibration error over " +
                  std::to_string(p.bins) +
                  " equal-width confidence bins. Uncertain: the share of predictions whose largest "
                  "softmax probability (Hendrycks &amp; Gimpel 2017) is below " +
                  uncertain +
                  ". Sparsity counts the conv and linear weights. Click a header to sort.</p>"
                  "<div class=\"charts\" id=\"plot-reliability\"></div><p class=\"explain\">Each "
                  "group's predictions pooled into the bins: a point below the diagonal is a bin "
                  "where the models are more confident than they are right (overconfidence).</p>");
  h += section(
      "reference", "Against the reference group",
      p.groups +
          "<p class=\"explain\">Means over every pair of a model of the group and a "
          "model of the reference; for the reference itself, over its own pairs: the "
          "seed-to-seed baseline. Error correlation: Pearson correlation of the two models' "
          "0/1 error vectors (Iofinova et al. 2023 find it grows with sparsity).</p>");
  h += section("classes", "Per-class accuracy",
               p.classes +
                   "<p class=\"explain\">Mean accuracy of each group's models per class, and "
                   "its change against the reference in percentage points.</p>");
  h += section("pies", "Pruning-identified exemplars",
               "<p class=\"explain\">Samples whose modal prediction over a group's models differs "
               "from the reference group's (Hooker et al. 2019), the most agreed-upon "
               "disagreements first: each caption gives the label, the two modal predictions and "
               "the share of each population behind them.</p>" +
                   p.pies);
  h += section("embeddings", "Embedding comparison",
               "<div class=\"charts\" id=\"plot-jaccard\"></div><p class=\"explain\">For every "
               "sample, the Jaccard overlap of its k nearest neighbours in a model's embedding and "
               "in the reference model's (Boggust et al. 2022): 1 when the neighbourhoods agree. "
               "Two seeds of the same recipe give the baseline.</p><div class=\"charts\" "
               "id=\"plot-pca\"></div><p class=\"explain\">The first two principal components of "
               "each group's first model, a seeded subset of samples coloured by label.</p>"
               "<h3>Neighbourhood dominoes</h3><p class=\"explain\">A sample, then its nearest "
               "neighbours in each embedding.</p>" +
                   p.dominoes);
  h += section("robustness", "Robustness",
               "<div class=\"charts\" id=\"plot-noise\"></div><p class=\"explain\">Accuracy when "
               "uniform noise of the given amplitude is added to the input (in the units of the "
               "normalised input: 1 is one standard deviation of the dataset's channel) and the "
               "pixels clipped to their range (Liebenwein et al. 2021), mean over each group's "
               "models.</p>"
               "<div class=\"charts\" id=\"plot-corruptions\"></div><p class=\"explain\">The "
               "CIFAR-10-C corruptions of Hendrycks &amp; Dietterich 2019 at severities 1-5 "
               "(severity 0: the clean images), seeded.</p>");
  h += section("potential", "Prune potential",
               "<div class=\"charts\" id=\"plot-potential\"></div>" + p.potentials +
                   "<p class=\"explain\">The largest group sparsity whose accuracy stays within " +
                   tolerance +
                   " points of the reference group's on each distribution (Liebenwein et "
                   "al. 2021); corruptions averaged over their severities.</p>");
  h += "<script id=\"plot-data\" type=\"application/json\">" + p.data_json + "</script>\n<script>";
  h += chartjs;
  h += "</script>\n<script>";
  h += kScript;
  h += "</script>\n</body></html>\n";
  return h;
}

}  // namespace sparsetrain::detail
