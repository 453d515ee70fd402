// Temporary: subcommands not yet written.
#include "cli/commands.h"
namespace dsv4::cli {
void add_cmd_make_tiny(CLI::App&) {}
void add_cmd_logits(CLI::App&) {}
void add_cmd_generate(CLI::App&) {}
void add_cmd_info(CLI::App&) {}
}  // namespace dsv4::cli
