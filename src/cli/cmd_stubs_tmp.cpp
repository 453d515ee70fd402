// Temporary: subcommands not yet written.
#include "cli/commands.h"
namespace dsv4::cli {
void add_cmd_info(CLI::App&) {}
}  // namespace dsv4::cli
