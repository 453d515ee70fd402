// dsv4: one binary, thin subcommands (style.md §1). Exit codes: 0 ok, 1 runtime failure, 2 bad arguments.
#include <cstdio>

#include "cli/commands.h"

namespace dsv4::cli {
int& exit_code() {
    static int code = 0;
    return code;
}
}  // namespace dsv4::cli

int main(int argc, char** argv) {
    CLI::App app{"dsv4: DeepSeek V4 inference engine (CPU reference and Hopper CUDA backends)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "dsv4 0.1.0");
    dsv4::cli::add_cmd_make_tiny(app);
    dsv4::cli::add_cmd_logits(app);
    dsv4::cli::add_cmd_generate(app);
    dsv4::cli::add_cmd_info(app);
    dsv4::cli::add_cmd_quantize(app);
    dsv4::cli::add_cmd_tokenize(app);
    dsv4::cli::add_cmd_serve(app);
    dsv4::cli::add_cmd_chat(app);
    dsv4::cli::add_cmd_bench(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    return dsv4::cli::exit_code();
}
