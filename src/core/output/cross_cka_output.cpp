// cross_cka.json, cross_cka.h5 and the terminal table (see vindex/output/cross_cka_output.hpp).
#include "vindex/output/cross_cka_output.hpp"

#include <hdf5.h>

#include <fmt/format.h>

#include "../base/hdf5_handle.hpp"
#include "../base/hdf5_write.hpp"

namespace vindex {
namespace {

using ojson = nlohmann::ordered_json;
using hdf5::Handle;

const char* model_key(std::size_t m) { return m == 0 ? "a" : "b"; }

ojson best_json(const std::vector<BestMatch>& matches) {
  ojson out = ojson::array();
  for (const BestMatch& m : matches)
    out.push_back({{"layer", m.layer}, {"depth", m.depth}, {"match", m.match}, {"match_depth", m.match_depth}, {"cka", m.cka}});
  return out;
}

ojson table_json(const CkaTable& t, std::size_t cols) {
  ojson matrix = ojson::array();
  for (std::size_t i = 0; i < t.matrix.size(); i += cols)
    matrix.push_back(std::vector<double>(t.matrix.begin() + static_cast<std::ptrdiff_t>(i),
                                         t.matrix.begin() + static_cast<std::ptrdiff_t>(i + cols)));
  ojson matched = ojson::array();
  for (const MatchedDepth& m : t.matched)
    matched.push_back({{"depth", m.depth}, {"layer_a", m.layer_a}, {"layer_b", m.layer_b}, {"cka", m.cka}});
  ojson j;
  j["matrix"] = std::move(matrix);
  j["best_match_a"] = best_json(t.best_a);
  j["best_match_b"] = best_json(t.best_b);
  j["matched_depth"] = std::move(matched);
  return j;
}

void write_best(hid_t group, const char* name, const std::vector<BestMatch>& matches) {
  std::vector<long long> index;
  std::vector<double> cka;
  for (const BestMatch& m : matches) {
    index.push_back(m.match);
    cka.push_back(m.cka);
  }
  hdf5::write_dataset(group, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, index, {index.size()});
  hdf5::write_dataset(group, (std::string(name) + "_cka").c_str(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, cka, {cka.size()});
}

}  // namespace

ojson cross_cka_json(const CrossCkaResults& r, const ojson& provenance) {
  ojson j;
  j["format"] = kCrossCkaFormatName;
  j["version"] = 1;  // kCrossCkaFormatVersion
  j["default_estimator"] = estimator_name(r.default_estimator);
  j["prompts"] = r.prompts;
  j["prompt_set_sha256"] = r.prompt_set_sha256;
  j["models"] = ojson::array();
  for (const CrossCkaModel& m : r.models)
    j["models"].push_back({{"model", m.info.model},
                           {"model_type", m.info.model_type},
                           {"engine", m.info.engine},
                           {"capture", m.info.path},
                           {"layers", m.depth.size()},
                           {"hidden_size", m.info.hidden_size},
                           {"depth", m.depth}});
  ojson poolings;
  for (const Pooling p : kPoolings)
    for (const CkaEstimator e : kEstimators)
      poolings[pooling_name(p)][estimator_name(e)] = table_json(r.tables[table_index(p, e)], r.models[1].depth.size());
  j["poolings"] = std::move(poolings);
  j["provenance"] = provenance;
  return j;
}

std::vector<std::byte> cross_cka_h5_image(const CrossCkaResults& r, const std::string& run_id, const std::string& tool,
                                          const std::string& provenance_json) {
  const std::string name = fmt::format("cross-cka-image-{}.h5", run_id);
  Handle file = hdf5::create_memory_file(name);
  const hid_t f = file.get();
  hdf5::write_string_attribute(f, "format", kCrossCkaFormatName);
  hdf5::write_string_attribute(f, "format_version", kCrossCkaFormatVersion);
  hdf5::write_string_attribute(f, "run_id", run_id);
  hdf5::write_string_attribute(f, "tool", tool);
  hdf5::write_string_attribute(f, "provenance", provenance_json);
  hdf5::write_string_attribute(f, "default_estimator", estimator_name(r.default_estimator));
  hdf5::write_string_attribute(f, "prompt_set_sha256", r.prompt_set_sha256);
  hdf5::write_int_attribute(f, "prompts", {static_cast<long long>(r.prompts)});
  {
    const Handle models(H5Gcreate2(f, "models", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, "H5Gcreate2", "models");
    for (std::size_t m = 0; m < 2; ++m) {
      const CrossCkaModel& model = r.models[m];
      const Handle g(H5Gcreate2(models.get(), model_key(m), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                     "H5Gcreate2", model_key(m));
      hdf5::write_string_attribute(g.get(), "model", model.info.model);
      hdf5::write_string_attribute(g.get(), "model_type", model.info.model_type);
      hdf5::write_string_attribute(g.get(), "engine", model.info.engine);
      hdf5::write_string_attribute(g.get(), "capture", model.info.path);
      hdf5::write_int_attribute(g.get(), "hidden_size", {static_cast<long long>(model.info.hidden_size)});
      hdf5::write_dataset(g.get(), "depth", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, model.depth, {model.depth.size()});
    }
  }
  const hsize_t ra = r.models[0].depth.size(), rb = r.models[1].depth.size();
  for (const Pooling p : kPoolings) {
    const Handle pg(H5Gcreate2(f, pooling_name(p), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, "H5Gcreate2",
                    pooling_name(p));
    for (const CkaEstimator e : kEstimators) {
      const CkaTable& t = r.tables[table_index(p, e)];
      const Handle g(H5Gcreate2(pg.get(), estimator_name(e), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                     "H5Gcreate2", estimator_name(e));
      hdf5::write_dataset(g.get(), "matrix", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, t.matrix, {ra, rb});
      write_best(g.get(), "best_match_a", t.best_a);
      write_best(g.get(), "best_match_b", t.best_b);
      std::vector<long long> matched;
      for (const MatchedDepth& m : t.matched) matched.push_back(m.layer_b);
      hdf5::write_dataset(g.get(), "matched_layer_b", H5T_STD_I64LE, H5T_NATIVE_LLONG, matched, {matched.size()});
    }
  }
  return hdf5::close_to_image(file, name);
}

std::string format_cross_cka_table(const CrossCkaResults& r) {
  const auto& a = r.models[0].info;
  const auto& b = r.models[1].info;
  std::string out = fmt::format("CKA ({}) of {} against {} over {} prompts, at matched normalised depth:\n",
                                estimator_name(r.default_estimator), a.model, b.model, r.prompts);
  out += fmt::format("{:>7} {:>7} {:>7} {:>10} {:>10}\n", "depth", "layer_a", "layer_b", "CKA(mean)", "CKA(last)");
  const CkaTable& mean = r.tables[table_index(Pooling::mean, r.default_estimator)];
  const CkaTable& last = r.tables[table_index(Pooling::last, r.default_estimator)];
  for (std::size_t i = 0; i < mean.matched.size(); ++i)
    out += fmt::format("{:>7.3f} {:>7} {:>7} {:>10.4f} {:>10.4f}\n", mean.matched[i].depth, mean.matched[i].layer_a,
                       mean.matched[i].layer_b, mean.matched[i].cka, last.matched[i].cka);
  return out;
}

}  // namespace vindex
