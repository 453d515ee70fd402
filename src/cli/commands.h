// The subcommands of the one `dsv4` binary. Each lives in cmd_<name>.cpp and registers itself on the
// app; its callback stores the exit code (0 ok, 1 runtime failure, 2 bad arguments).
#pragma once

#include <CLI/CLI.hpp>

namespace dsv4::cli {

// Set by a subcommand's callback; main() returns it.
int& exit_code();

void add_cmd_make_tiny(CLI::App& app);
void add_cmd_logits(CLI::App& app);
void add_cmd_generate(CLI::App& app);
void add_cmd_info(CLI::App& app);
void add_cmd_quantize(CLI::App& app);
void add_cmd_tokenize(CLI::App& app);
void add_cmd_serve(CLI::App& app);
void add_cmd_chat(CLI::App& app);
void add_cmd_bench(CLI::App& app);

}  // namespace dsv4::cli
