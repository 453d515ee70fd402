// `dsv4 serve`: the OpenAI-compatible HTTP server (docs/server.md). Loads the model, sizes the state
// pools from --max-seqs / --ctx-size / --memory-budget-mib, starts the engine thread and the HTTP
// workers, and shuts both down cleanly on SIGINT/SIGTERM.
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <numeric>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "tokenizer/model_dir.h"
#include "core/log.h"
#include "runtime/engine.h"
#include "runtime/model_runner_cpu.h"
#include "runtime/state_geometry.h"
#include "server/http_server.h"

namespace dsv4::cli {

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) {
    g_stop = true;
}
}  // namespace

void add_cmd_serve(CLI::App& app) {
    struct Opts {
        std::string model, host = "127.0.0.1", backend = "cpu", name;
        int port = 8080, max_seqs = 8, max_batched_tokens = 512, page_tokens = 256, snapshots = 16,
            threads = 0;
        int64_t ctx_size = 4096, memory_budget_mib = 0;
        bool no_thinking = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "serve", "OpenAI-compatible HTTP server (chat/completions, completions, models, metrics)");
    cmd->add_option("-m,--model", o->model, "checkpoint directory (default: the built-in tiny model)");
    cmd->add_option("--host", o->host, "address to listen on");
    cmd->add_option("--port", o->port, "TCP port (0 = any free port)")->check(CLI::Range(0, 65535));
    cmd->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
    cmd->add_option("--max-seqs", o->max_seqs, "sequences decoded together (state slots)")
        ->check(CLI::Range(1, 4096));
    cmd->add_option("--ctx-size", o->ctx_size, "tokens per sequence, prompt + output")
        ->check(CLI::Range(int64_t(2), int64_t(1) << 24));
    cmd->add_option("--max-batched-tokens", o->max_batched_tokens, "token budget of one engine step")
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--memory-budget-mib", o->memory_budget_mib,
                    "bytes for sequence state, MiB (0 = max-seqs x ctx-size)")
        ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
    cmd->add_option("--page-tokens", o->page_tokens, "state page = prefix-cache block, tokens")
        ->check(CLI::Range(1, 1 << 16));
    cmd->add_option("--prefix-snapshots", o->snapshots, "prefix-cache snapshots kept (0 = off)")
        ->check(CLI::Range(0, 1 << 16));
    cmd->add_option("--served-model-name", o->name,
                    "model id reported and accepted by the API (default: directory name)");
    cmd->add_option("--http-threads", o->threads, "HTTP worker threads (0 = 2 x max-seqs + 64)")
        ->check(CLI::Range(0, 4096));
    cmd->add_flag("--no-thinking-default", o->no_thinking,
                  "chat requests default to chat mode instead of thinking");
    cmd->callback([o] {
        if (o->max_batched_tokens < o->max_seqs)
            return fail("serve",
                        fmt::format("--max-batched-tokens ({}) must be >= --max-seqs ({})",
                                    o->max_batched_tokens, o->max_seqs),
                        2);
        auto lm = load_model(o->model, o->backend);
        if (!lm.is_ok()) return fail("serve", lm.message());
        std::optional<Tokenizer> tok = lm->tokenizer;
        if (!tok) {
            auto t = Tokenizer::load(bundled_tokenizer_path());
            if (!t.is_ok())
                return fail("serve", fmt::format("{} has no tokenizer.json and the shipped one failed: {}",
                                                 lm->dir, t.message()));
            tok = std::move(t).value();
        }
        const Dsv4Config cfg = lm->model->config();
        // a prefix snapshot must sit where no compression window is open: pages are whole windows of
        // every compressed layer (serving-design §2.3)
        int64_t window_lcm = 1;
        for (int m : cfg.compress_ratios)
            if (m > 0) window_lcm = std::lcm(window_lcm, int64_t(m));
        if (o->page_tokens % window_lcm != 0)
            return fail(
                "serve",
                fmt::format("--page-tokens {} is not a multiple of {} (the lcm of the model's compress "
                            "ratios); hint: use {}",
                            o->page_tokens, window_lcm,
                            ((o->page_tokens + window_lcm - 1) / window_lcm) * window_lcm),
                2);
        EngineOptions eo;
        eo.max_seqs = o->max_seqs;
        eo.ctx_size = o->ctx_size;
        eo.max_batched_tokens = o->max_batched_tokens;
        eo.long_prefill_tokens = std::max(1, o->max_batched_tokens / 2);
        eo.page_tokens = o->page_tokens;
        eo.max_snapshots = o->snapshots;
        eo.memory_budget = o->memory_budget_mib << 20;
        eo.eos_id = cfg.eos_token_id;
        eo.geometry = state_geometry(cfg);
        std::shared_ptr<const Model> model(std::move(lm->model));
        auto engine = Engine::create(std::make_unique<ModelRunnerCpu>(model, o->ctx_size), eo);
        if (!engine.is_ok()) return fail("serve", engine.message(), 2);
        PoolUsage u = (*engine)->pool_usage();
        log_info("state pools: {} slots x {} B, {} pages x {} B ({} tokens each), {} snapshots",
                 u.slots_total, u.slot_bytes, u.pages_total, u.page_bytes, o->page_tokens, u.snapshots_total);
        (*engine)->start();

        ServerOptions so;
        so.host = o->host;
        so.port = o->port;
        so.model_name = o->name.empty() ? std::filesystem::path(lm->dir).filename().string() : o->name;
        if (so.model_name.empty()) so.model_name = "dsv4";
        so.threads = o->threads;
        so.default_thinking = !o->no_thinking;
        HttpServer server(**engine, *tok, so);
        Status st = server.start();
        if (!st.is_ok()) return fail("serve", st.message());
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        log_info("shutting down");
        server.set_ready(false);
        (*engine)->stop();  // pending requests end with finish_reason "abort"
        server.stop();
    });
}

}  // namespace dsv4::cli
