// Temporary: subcommands not yet written.
#include "cli/commands.h"
namespace dsv4::cli {}  // namespace dsv4::cli
