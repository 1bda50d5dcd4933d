// Text that came from a model's files or the command line (model names, tensor names, paths) is
// untrusted. Before it reaches a terminal, a log or a C string, control characters are escaped:
// an escape sequence in a tensor name cannot recolour or rewrite a user's terminal, and a NUL
// cannot cut a name short in one output and not in another.
#pragma once

#include <string>
#include <string_view>

namespace vindex::app {

// C0 controls, DEL and NUL as \xNN; C1 controls (U+0080-U+009F) as \u00NN; bytes that are not
// UTF-8 as \xNN; everything else unchanged (newlines included: callers print one line each).
std::string printable(std::string_view text);

// The same, but newlines and tabs are kept (multi-line messages).
std::string printable_lines(std::string_view text);

}  // namespace vindex::app
