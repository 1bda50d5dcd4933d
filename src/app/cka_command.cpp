// The cka subcommand (see cka_command.hpp).
#include "cka_command.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "../cpu/row_gram.hpp"
#include "../mpi/gather.hpp"
#include "printable.hpp"
#include "run_context.hpp"
#include "spectra_outputs.hpp"
#include "stage_agreement.hpp"
#include "vindex/base/errors.hpp"
#include "vindex/compare/cross_cka.hpp"
#include "vindex/output/cross_cka_output.hpp"
#include "vindex/output/hdf5_output.hpp"
#include "vindex/output/output_files.hpp"
#include "vindex/phase3/statistics.hpp"
#include "vindex/run/run_identity.hpp"

namespace vindex::app {
namespace {

struct CkaOptions {
  std::filesystem::path a, b, out;
  std::string estimator = "debiased";
  bool overwrite = false;
  std::string command_line;
};

// Every Gram of one representation of one capture.
RepresentationGrams representation_grams(const PooledCapture& capture, int model, int index) {
  RepresentationGrams g;
  g.model = model;
  g.index = index;
  const std::size_t p = capture.info().n_prompts, h = capture.info().hidden_size;
  for (const Pooling pooling : kPoolings) {
    std::vector<double> x = capture.representation(pooling, static_cast<std::uint64_t>(index));
    center_columns(x, p, h);
    std::vector<double> k = cpu::row_gram(x, p, h);
    for (const double v : k)
      if (!std::isfinite(v))
        throw InputError(capture.info().path, "",
                         fmt::format("/pooled/{}: representation {}: its prompt Gram overflows float64 (values near "
                                     "1e154 or beyond)",
                                     pooling_name(pooling), index));
    estimator_grams(std::move(k), p, g.grams[table_index(pooling, CkaEstimator::plain)],
                    g.grams[table_index(pooling, CkaEstimator::debiased)]);
  }
  return g;
}

// Every rank's Grams, gathered; rank 0 forms the tables and writes the output set. Returns the
// agreed exit code.
int compute_and_write(const mpi::Communicator& comm, const CkaOptions& o, const PooledCapture& a, const PooledCapture& b,
                      CkaEstimator estimator, std::chrono::steady_clock::time_point started,
                      const std::string& started_utc) {
  const std::array<const PooledCapture*, 2> captures{&a, &b};
  if (comm.is_root())
    fmt::print(stderr, "vindex_mpi cka: {} ({} representations) against {} ({}), {} prompts, on {} rank(s)\n",
               printable(a.info().model), a.info().n_representations, printable(b.info().model),
               b.info().n_representations, a.info().n_prompts, comm.size());
  // Representation t of the list (a's, then b's) goes to rank t mod size.
  std::vector<RepresentationGrams> mine;
  if (auto code = run_stage(comm, [&] {
        std::size_t t = 0;
        for (int m = 0; m < 2; ++m)
          for (std::uint64_t r = 0; r < captures[static_cast<std::size_t>(m)]->info().n_representations; ++r, ++t) {
            if (t % static_cast<std::size_t>(comm.size()) != static_cast<std::size_t>(comm.rank())) continue;
            mine.push_back(representation_grams(*captures[static_cast<std::size_t>(m)], m, static_cast<int>(r)));
            if (comm.is_root())
              fmt::print(stderr, "[cka] {} representation {} done, {:.1f} s\n", m == 0 ? "a" : "b", r,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
          }
      }))
    return *code;
  std::vector<std::byte> encoded;
  encode_grams(mine, encoded);
  mine.clear();
  std::vector<std::vector<std::byte>> buffers = mpi::gather_bytes(comm, encoded);
  encoded = {};
  if (auto code = run_stage(comm, [&] {
        if (!comm.is_root()) return;
        std::vector<RepresentationGrams> all;
        for (auto& buffer : buffers) {  // each freed once decoded: rank 0 holds the Grams about once
          for (RepresentationGrams& g : decode_grams(buffer)) all.push_back(std::move(g));
          buffer = {};
        }
        const CrossCkaResults results =
            cross_cka({a.info(), b.info()}, all, estimator, prompt_set_sha256(a.prompt_digests()));
        const std::string run_id = new_run_id();
        nlohmann::ordered_json provenance;
        provenance["command_line"] = o.command_line;
        provenance["tool"] = tool_name();
        provenance["hdf5"] = hdf5_library_version();
        provenance["captures"] = {absolute_path(o.a), absolute_path(o.b)};
        provenance["ranks"] = comm.size();
        provenance["host"] = host_name();
        provenance["started_utc"] = started_utc;
        provenance["elapsed_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        OutputSet set(o.out, run_id);
        set.add("cross_cka.h5", cross_cka_h5_image(results, run_id, tool_name(), provenance.dump()));
        set.add("cross_cka.json", output_json(run_id, cross_cka_json(results, provenance)));
        set.commit();
        fmt::print("\n{}Wrote {}, {} (run {}, {})\n", format_cross_cka_table(results),
                   (o.out / "cross_cka.h5").string(), (o.out / "cross_cka.json").string(), run_id, kManifestFileName);
        std::fflush(stdout);
      }))
    return *code;
  return 0;
}

int cka(const mpi::Communicator& comm, const CkaOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  const std::string started_utc = utc_now_iso8601();
  const CkaEstimator estimator = o.estimator == "plain" ? CkaEstimator::plain : CkaEstimator::debiased;
  // Every rank opens both captures and reaches the same verdict on them.
  std::optional<PooledCapture> a, b;
  if (auto code = run_stage(comm, [&] {
        a.emplace(PooledCapture::open(o.a));
        b.emplace(PooledCapture::open(o.b));
        require_same_prompts(*a, *b);
        if (a->info().n_prompts < kMinCkaPrompts)
          throw InputError(o.a.string(), "", fmt::format("holds {} prompts; the debiased CKA needs at least {}",
                                                         a->info().n_prompts, kMinCkaPrompts));
        const std::uint64_t bytes =
            gram_bytes(a->info().n_representations + b->info().n_representations, a->info().n_prompts);
        if (bytes > kMaxGramBytes)
          throw InputError(o.a.string(), "",
                           fmt::format("{} prompts and {} representations in all need {:.1f} GiB of prompt Grams on rank "
                                       "0, more than the {} GiB allowed: capture fewer prompts (--max-prompts)",
                                       a->info().n_prompts, a->info().n_representations + b->info().n_representations,
                                       static_cast<double>(bytes) / (1 << 30), kMaxGramBytes >> 30));
      }))
    return *code;
  // Then rank 0 takes --out (held for the whole run): a refused capture leaves no directory behind.
  std::optional<OutputLock> lock;
  bool created = false;  // rank 0: --out did not exist before
  if (auto code = run_stage(comm, [&] {
        if (!comm.is_root()) return;
        std::error_code ec;
        created = !std::filesystem::exists(std::filesystem::symlink_status(o.out, ec));
        std::string note;
        lock.emplace(prepare_output_directory(o.out, o.overwrite ? OutputMode::overwrite : OutputMode::fresh, {}, &note));
        if (!note.empty()) fmt::print(stderr, "vindex_mpi cka: note: --out {}: {}\n", printable(o.out.string()), note);
      }))
    return *code;
  const int code = compute_and_write(comm, o, *a, *b, estimator, started, started_utc);
  // A failed run leaves no directory it created (it stays when it held anything before).
  if (code != 0 && created) {
    lock.reset();
    std::error_code ignored;
    std::filesystem::remove(o.out, ignored);  // removes an empty directory only
  }
  return code;
}

}  // namespace

int run_cka(const mpi::Communicator& comm, int argc, char** argv) {
  CkaOptions o;
  o.command_line = "vindex_mpi";
  for (int i = 0; i < argc; ++i) o.command_line += std::string(" ") + argv[i];
  CLI::App app{"vindex_mpi cka: cross-model CKA of two pooled captures of the same prompts (written by\n"
               "tools/capture/capture.py --pooled), every representation of A against every representation of B,\n"
               "mean-pooled and last-token, debiased and plain (docs/cross_cka.md).",
               "vindex_mpi cka"};
  app.add_option("a", o.a, "Pooled capture of model A")->required();
  app.add_option("b", o.b, "Pooled capture of model B (the same prompts; may be A itself)")->required();
  app.add_option("--out", o.out, "Output directory (cross_cka.h5, cross_cka.json)")->required();
  app.add_option("--estimator", o.estimator, "The estimator of the terminal summary and the outputs' default_estimator "
                                             "(both are computed and written)")
      ->check(CLI::IsMember({"debiased", "plain"}))
      ->capture_default_str();
  app.add_flag("--overwrite", o.overwrite, "Allow a non-empty output directory (its vindex output set, whichever run "
                                          "wrote it, is replaced)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    if (comm.is_root()) fmt::print("{}", app.help());
    return 0;
  } catch (const CLI::ParseError& e) {
    if (comm.is_root()) fmt::print(stderr, "vindex_mpi cka: error: {} (see --help)\n", printable(e.what()));
    return static_cast<int>(ExitCode::usage);
  }
  return cka(comm, o);
}

}  // namespace vindex::app
