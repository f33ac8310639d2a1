// write_compare_report (sparsetrain/compare.h): DIR/compare.json and one
// self-contained DIR/report.html. The tables are written here, the plots
// drawn in the page by Chart.js (inlined, compare/chartjs.h) from a compact
// JSON of the results, and sample images inlined as PNG data URIs.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/canvas.h"
#include "compare/chartjs.h"
#include "compare/report_page.h"
#include "sparsetrain/compare.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"

namespace sparsetrain {

namespace {

using nlohmann::json;

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v =
        (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

// <img> of sample `i` (its pixels as a PNG data URI), titled.
std::string image_tag(const Dataset& data, int64_t i, const std::string& title,
                      const std::string& cls = "") {
  const int64_t plane = data.height * data.width;
  std::vector<uint8_t> rgb(static_cast<std::size_t>(plane * 3));
  const uint8_t* src = data.pixels.data() + i * data.image_numel();
  for (int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < 3; ++c) rgb[p * 3 + c] = src[(data.channels == 3 ? c : 0) * plane + p];
  const std::string png = detail::encode_png(rgb.data(), static_cast<int>(data.width),
                                             static_cast<int>(data.height), "compare report image");
  return "<img class=\"sample" + (cls.empty() ? "" : " " + cls) + "\" alt=\"sample " +
         std::to_string(i) + "\" title=\"" + escape(title) + "\" src=\"data:image/png;base64," +
         base64(png) + "\">";
}

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", 100.0 * v);
  return b;
}
std::string num(double v, const char* fmt = "%.4f") {
  char b[32];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

std::string class_name(const CompareResult& r, int32_t c) {
  return c >= 0 && static_cast<std::size_t>(c) < r.class_names.size() ? r.class_names[c]
                                                                      : std::to_string(c);
}

std::string models_table(const CompareResult& r) {
  std::string h =
      "<table class=\"sortable\"><thead><tr><th>group</th><th>model</th><th>accuracy %</th>"
      "<th>NLL</th><th>ECE</th><th>mean confidence</th><th>uncertain %</th><th>sparsity %</th>"
      "<th>nonzero weights</th></tr></thead><tbody>";
  for (const ModelStats& s : r.models) {
    h += "<tr><td>" + escape(s.group) + "</td><td title=\"" + escape(s.path) + "\">" +
         escape(s.label) + "</td><td>" + pct(s.accuracy) + "</td><td>" + num(s.nll) + "</td><td>" +
         num(s.ece) + "</td><td>" + num(s.mean_confidence) + "</td><td>" +
         pct(s.uncertain_fraction) + "</td><td>" + pct(s.sparsity) + "</td><td>" +
         std::to_string(s.nonzeros) + " / " + std::to_string(s.weights) + "</td></tr>";
  }
  return h + "</tbody></table>";
}

std::string groups_table(const CompareResult& r) {
  std::string h =
      "<table class=\"sortable\"><thead><tr><th>group</th><th>models</th><th>sparsity %</th>"
      "<th>accuracy %</th><th>&plusmn; std</th><th>ECE</th><th>uncertain %</th>"
      "<th>disagreement %</th><th>right&rarr;wrong %</th><th>wrong&rarr;right %</th>"
      "<th>error correlation</th><th>PIEs</th></tr></thead><tbody>";
  for (std::size_t gi = 0; gi < r.groups.size(); ++gi) {
    const GroupStats& g = r.groups[gi];
    h +=
        "<tr><td>" + escape(g.name) + (gi == 0 ? " (reference)" : "") + "</td><td>" +
        std::to_string(g.models) + "</td><td>" + pct(g.sparsity) + "</td><td>" + pct(g.accuracy) +
        "</td><td>" + pct(g.accuracy_std) + "</td><td>" + num(g.ece) + "</td><td>" +
        pct(g.uncertain_fraction) + "</td><td>" + pct(g.disagreement) + "</td><td>" +
        pct(g.right_to_wrong) + "</td><td>" + pct(g.wrong_to_right) + "</td><td>" +
        num(g.error_correlation, "%.3f") + "</td><td>" +
        (g.has_pies ? std::to_string(g.pie_count) + " (" + pct(g.pie_fraction) + "%)" : "&ndash;") +
        "</td></tr>";
  }
  return h + "</tbody></table>";
}

std::string classes_table(const CompareResult& r) {
  std::string h = "<table class=\"sortable\"><thead><tr><th>class</th>";
  for (std::size_t gi = 0; gi < r.groups.size(); ++gi) {
    h += "<th>" + escape(r.groups[gi].name) + " %</th>";
    if (gi > 0) h += "<th>change (points)</th>";
  }
  h += "</tr></thead><tbody>";
  for (std::size_t c = 0; c < r.class_names.size(); ++c) {
    h += "<tr><td>" + escape(r.class_names[c]) + "</td>";
    for (std::size_t gi = 0; gi < r.groups.size(); ++gi) {
      const GroupStats& g = r.groups[gi];
      h += "<td>" + pct(g.class_accuracy[c]) + "</td>";
      if (gi > 0) {
        const double d = 100.0 * g.class_accuracy_change[c];
        h += std::string("<td class=\"") + (d < 0 ? "neg" : "pos") + "\">" + num(d, "%+.2f") +
             "</td>";
      }
    }
    h += "</tr>";
  }
  return h + "</tbody></table>";
}

std::string pies_section(const CompareResult& r, const Dataset& data) {
  std::string h;
  bool any = false;
  for (const GroupStats& g : r.groups) {
    if (!g.has_pies) continue;
    any = true;
    h += "<h3>" + escape(g.name) + ": " + std::to_string(g.pie_count) + " PIEs (" +
         pct(g.pie_fraction) + "% of the samples)</h3><p>The reference group is right on " +
         pct(g.reference_accuracy_on_pies) + "% of them (on average over its models), against " +
         pct(g.reference_accuracy_off_pies) + "% on the other samples.</p><div class=\"grid\">";
    for (const Pie& p : g.top_pies) {
      const std::string caption = "#" + std::to_string(p.sample) + " " + class_name(r, p.label) +
                                  "<br>ref: " + class_name(r, p.reference_mode) + " (" +
                                  num(100 * p.reference_share, "%.0f") + "%)<br>" + escape(g.name) +
                                  ": " + class_name(r, p.group_mode) + " (" +
                                  num(100 * p.group_share, "%.0f") + "%)";
      h += "<figure>" + image_tag(data, p.sample, "PIE " + std::to_string(p.sample)) +
           "<figcaption>" + caption + "</figcaption></figure>";
    }
    h += "</div>";
  }
  if (!any) {
    h = "<p class=\"note\">PIEs need two models or more in the reference group and in another "
        "group (several seeds: <code>--model-group NAME=RUN,RUN</code>).</p>";
  }
  return h;
}

std::string dominoes(const CompareResult& r, const Dataset& data) {
  std::string h;
  std::vector<std::string> seen;
  for (const EmbeddingPair& e : r.embeddings) {
    // One pair per group: the group's first model against the reference.
    const auto it = std::find_if(r.models.begin(), r.models.end(),
                                 [&](const ModelStats& m) { return m.label == e.model; });
    if (it == r.models.end() || std::find(seen.begin(), seen.end(), it->group) != seen.end())
      continue;
    seen.push_back(it->group);
    const std::size_t top = e.least.size();
    for (int part = 0; part < 2; ++part) {
      h += "<h3>" + escape(e.model) + " against " + escape(e.reference) + ": the " +
           std::to_string(top) + (part == 0 ? " least" : " most") + " similar neighbourhoods</h3>";
      h += "<table class=\"domino\"><thead><tr><th>sample</th><th>Jaccard</th><th>neighbours in " +
           escape(e.model) + "</th><th>neighbours in " + escape(e.reference) +
           "</th></tr></thead><tbody>";
      const auto& list = part == 0 ? e.least : e.most;
      for (std::size_t j = 0; j < list.size(); ++j) {
        const int64_t s = list[j];
        const std::size_t row = part * top + j;
        h += "<tr><td>" + image_tag(data, s, class_name(r, r.labels[s]), "big") + "<br>#" +
             std::to_string(s) + " " + escape(class_name(r, r.labels[s])) + "</td><td>" +
             num(e.jaccard[s], "%.3f") + "</td><td>";
        for (int64_t nb : e.model_neighbours[row])
          h += image_tag(data, nb, "#" + std::to_string(nb) + " " + class_name(r, r.labels[nb]));
        h += "</td><td>";
        for (int64_t nb : e.reference_neighbours[row])
          h += image_tag(data, nb, "#" + std::to_string(nb) + " " + class_name(r, r.labels[nb]));
        h += "</td></tr>";
      }
      h += "</tbody></table>";
    }
  }
  return h;
}

std::string potentials_table(const CompareResult& r) {
  if (r.potentials.empty()) return "<p class=\"note\">The prune potential needs two groups.</p>";
  std::string h = "<table class=\"sortable\"><thead><tr><th>distribution</th>";
  for (const GroupStats& g : r.groups)
    h += "<th>" + escape(g.name) + " (" + pct(g.sparsity) + "% sparse) %</th>";
  h += "<th>prune potential %</th></tr></thead><tbody>";
  for (const PrunePotential& p : r.potentials) {
    h += "<tr><td>" + escape(p.distribution) + "</td>";
    for (double a : p.group_accuracy) h += "<td>" + pct(a) + "</td>";
    h += "<td>" + pct(p.potential) + "</td></tr>";
  }
  return h + "</tbody></table>";
}

// What the page's script plots.
json plot_data(const CompareResult& r) {
  json groups = json::array();
  for (const GroupStats& g : r.groups) {
    json rel = json::array();
    for (const ReliabilityBin& b : g.reliability)
      if (b.count > 0) rel.push_back({b.confidence, b.accuracy, b.count});
    groups.push_back({{"name", g.name},
                      {"sparsity", g.sparsity},
                      {"reliability", rel},
                      {"noise", g.noise_accuracy},
                      {"corruptions", g.corruption_accuracy}});
  }
  json hist = json::array();
  for (const EmbeddingPair& e : r.embeddings)
    hist.push_back({{"label", e.model + " vs " + e.reference}, {"counts", e.histogram}});
  json proj = json::array();
  for (const Projection& p : r.projections) {
    json classes = json::array();
    for (std::size_t i = 0; i < p.samples.size(); ++i) classes.push_back(r.labels[p.samples[i]]);
    proj.push_back({{"model", p.model},
                    {"explained", {p.explained[0], p.explained[1]}},
                    {"x", p.x},
                    {"y", p.y},
                    {"c", classes}});
  }
  json pot = json::array();
  for (const PrunePotential& p : r.potentials)
    pot.push_back({{"d", p.distribution}, {"p", p.potential}, {"ref", p.reference_accuracy}});
  return {{"groups", groups},
          {"noise", r.noise_levels},
          {"histograms", hist},
          {"projections", proj},
          {"potentials", pot},
          {"classes", r.class_names},
          {"corruptions", r.options.corruptions},
          {"robust", r.robust_samples}};
}

}  // namespace

std::vector<std::string> write_compare_report(const std::string& dir, const CompareResult& r,
                                              const Dataset& data) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create the report folder " + dir + ": " + ec.message());
  if (data.pixels.empty() || data.size() != r.samples)
    throw Error("write_compare_report: the dataset is not the one compared");
  detail::ReportParts parts;
  parts.title = "sparsetrain compare: " + r.dataset;
  parts.models = models_table(r);
  parts.groups = groups_table(r);
  parts.classes = classes_table(r);
  parts.pies = pies_section(r, data);
  parts.dominoes = dominoes(r, data);
  parts.potentials = potentials_table(r);
  std::string js = plot_data(r).dump(-1, ' ', false, json::error_handler_t::replace);
  // Inside <script>: no "</" may close it early.
  for (std::size_t at = js.find("</"); at != std::string::npos; at = js.find("</", at + 2))
    js.replace(at, 2, "<\\/");
  parts.data_json = js;
  parts.summary = "<p>" + std::to_string(r.samples) + " images of " + escape(r.dataset) + " (" +
                  escape(r.files) + "); " + std::to_string(r.models.size()) + " models in " +
                  std::to_string(r.groups.size()) + " groups, the first (<b>" +
                  escape(r.groups.front().name) + "</b>) the reference. Embeddings at <code>" +
                  escape(r.layer) + "</code> (" + std::to_string(r.embedding_dim) + " values), " +
                  std::to_string(r.options.k) + " nearest neighbours by " + r.options.metric +
                  ". Robustness on the first " + std::to_string(r.robust_samples) +
                  " images. Took " +
                  num(r.seconds.count("total") ? r.seconds.at("total") : 0, "%.1f") + " s.</p>";
  parts.uncertain_below = r.options.uncertain_below;
  parts.bins = r.options.bins;
  parts.tolerance = r.options.potential_tolerance;
  const std::string html = detail::report_page(parts, detail::kChartJs);
  const std::string json_path = dir + "/compare.json";
  const std::string html_path = dir + "/report.html";
  write_file_atomic(json_path, compare_json(r), json_path);
  write_file_atomic(html_path, html, html_path);
  return {json_path, html_path};
}

}  // namespace sparsetrain
