// A scanner for the module-level declarations of PTX text: kernel entries
// with their parameter lists, and module-scope `.global` / `.const`
// variables. Function bodies are skipped unread: the reference executor
// never runs them.
#pragma once

#include <string>
#include <string_view>

#include "actors/executor/fatbin/module_info.h"

namespace vgpu::fatbin {

// Fills `out` from `text`; false and a one-line reason in `why` when the text
// is not PTX this scanner can vouch for (a guessed layout would marshal
// launches wrongly, so anything unrecognised in a parameter is refused).
bool parse_ptx(std::string_view text, module_info* out, std::string* why);

}  // namespace vgpu::fatbin
