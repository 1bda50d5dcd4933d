// What the MPI-free subcommands (inspect, merge) share: parse with CLI11, run, and turn every
// outcome into one message on stderr and the documented exit code.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace vindex::app {

// Parses argv with `app` (help: exit 0; bad arguments: exit 2), then returns body()'s code; a
// vindex::Error thrown by body is printed as "<name>: error: ..." and exits with its code, any
// other exception with 4.
int run_subcommand(CLI::App& app, const std::string& name, int argc, char** argv, const std::function<int()>& body);

}  // namespace vindex::app
