#include "subcommand.hpp"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "printable.hpp"
#include "vindex/base/errors.hpp"

namespace vindex::app {

int run_subcommand(CLI::App& app, const std::string& name, int argc, char** argv, const std::function<int()>& body) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}\n", app.help());
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    fmt::print(stderr, "{}: error: {} (see --help)\n", name, printable(what));
    return static_cast<int>(ExitCode::usage);
  }
  try {
    return body();
  } catch (const Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "{}: error: {}\n", name, printable(e.what()));
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "{}: error: {}\n", name, printable(e.what()));
    return static_cast<int>(ExitCode::internal);
  }
}

}  // namespace vindex::app
