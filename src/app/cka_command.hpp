// `vindex_mpi cka A.h5 B.h5 --out DIR`: cross-model CKA from two pooled captures of the same prompts
// (docs/cross_cka.md). Runs under MPI: the representations of both models are shared out among the
// ranks, each computes its representations' prompt Grams, rank 0 gathers them, forms every table and
// writes cross_cka.h5 and cross_cka.json as one output set.
#pragma once

#include "../mpi/communicator.hpp"

namespace vindex::app {

// argv[0] is "cka". Returns the exit code, the same on every rank.
int run_cka(const mpi::Communicator& comm, int argc, char** argv);

}  // namespace vindex::app
