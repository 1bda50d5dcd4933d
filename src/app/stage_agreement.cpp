// Failure agreement after a stage (see stage_agreement.hpp).
#include "stage_agreement.hpp"

#include <cstdio>

#include <fmt/format.h>

#include "../mpi/agreement.hpp"
#include "printable.hpp"
#include "vindex/base/errors.hpp"

namespace vindex::app {
namespace {

void report_failure(const RunContext& ctx, const std::exception_ptr& error) {
  // The lowest failing rank speaks for the job and names itself and its host (a multi-node job's
  // log interleaves nodes); what the message quotes from the model's files is escaped.
  fmt::print(stderr, "vindex_mpi: error (rank {} of {} on {}): {}\n", ctx.comm.rank(), ctx.comm.size(),
             printable(host_name()), printable(mpi::message_of(error)));
  std::fflush(stderr);
}

}  // namespace

std::optional<int> agree(const RunContext& ctx, const std::exception_ptr& local, bool* input_changed) {
  if (local) {
    try {
      std::rethrow_exception(local);
    } catch (const MpiError&) {
      throw;
    } catch (const CollectiveError&) {
      throw;
    } catch (...) {
    }
  }
  const auto failure = mpi::agree_on_failure(ctx.comm, local);
  if (!failure) return std::nullopt;
  if (failure->rank == ctx.comm.rank()) report_failure(ctx, local);
  if (input_changed) *input_changed = failure->input_changed;
  return static_cast<int>(failure->code);
}

std::optional<int> run_stage(const RunContext& ctx, const std::function<void()>& stage) {
  std::exception_ptr error;
  try {
    stage();
  } catch (...) {
    error = std::current_exception();
  }
  return agree(ctx, error);
}

}  // namespace vindex::app
