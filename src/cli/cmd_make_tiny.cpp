// `dsv4 make-tiny`: writes a random-weight V4 checkpoint (spec §15 recipe), by default in the released
// FP8/FP4 layout (--format), of the tiny test config, the
// built-in default model, or any config.json (e.g. the real Flash dimensions with fewer layers).
#include <filesystem>

#include "cli/commands.h"
#include "cli/common.h"
#include "tokenizer/model_dir.h"
#include "model/tiny.h"

namespace dsv4::cli {

void add_cmd_make_tiny(CLI::App& app) {
    struct Opts {
        std::string out, config, tokenizer, format = "released";
        double shard_gb = 4.0;
        int vocab = 0, layers = 0;
        uint64_t seed = 1234;
        bool hf_names = false, with_tokenizer = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("make-tiny", "write a random-weight DeepSeek V4 checkpoint");
    cmd->add_option("--out", o->out, "output directory")->required();
    cmd->add_option("--config", o->config, "config.json to use (default: the tiny test config of spec §15)");
    cmd->add_option("--vocab", o->vocab, "override vocab_size")->check(CLI::Range(2, 1 << 22));
    cmd->add_option("--layers", o->layers, "keep only the first N layers")->check(CLI::Range(1, 1000));
    cmd->add_option("--seed", o->seed, "random seed");
    cmd->add_option("--format", o->format,
                    "released: FP8 e4m3 128x128 + FP4 experts with UE8M0 scales, as published (default); "
                    "bf16: released names in bf16; hf: HF save_pretrained names in bf16")
        ->check(CLI::IsMember({"released", "bf16", "hf"}));
    cmd->add_option("--shard-gb", o->shard_gb, "released format: largest shard in GB")
        ->check(CLI::Range(0.001, 1000.0));
    cmd->add_flag("--hf-names", o->hf_names, "same as --format hf");
    cmd->add_flag("--with-tokenizer", o->with_tokenizer,
                  "copy the DeepSeek V4 tokenizer.json (needs vocab_size 129280)");
    cmd->callback([o] {
        Dsv4Config cfg = tiny_config();
        if (!o->config.empty()) {
            auto c = load_config(o->config);
            if (!c.is_ok()) return fail("make-tiny", c.message());
            cfg = c.value();
        }
        if (o->vocab) cfg.vocab_size = o->vocab;
        if (o->layers && o->layers < cfg.num_hidden_layers) {
            cfg.num_hidden_layers = o->layers;
            cfg.compress_ratios.resize(size_t(o->layers));
            cfg.mlp_layer_types.resize(size_t(o->layers));
            cfg.num_hash_layers = std::min(cfg.num_hash_layers, o->layers);
        }
        if (o->with_tokenizer && cfg.vocab_size < 129280)
            return fail("make-tiny",
                        fmt::format("--with-tokenizer needs --vocab 129280 (have {})", cfg.vocab_size), 2);
        TinyOptions t;
        t.seed = o->seed;
        t.hf_names = o->hf_names || o->format == "hf";
        t.quantized = !t.hf_names && o->format == "released";
        t.shard_bytes = int64_t(o->shard_gb * 1e9);
        t.verbose = true;
        Status s = write_random_checkpoint(o->out, cfg, t);
        if (!s.is_ok()) return fail("make-tiny", s.message());
        if (o->with_tokenizer) {
            std::error_code ec;
            std::filesystem::copy_file(bundled_tokenizer_path(), o->out + "/tokenizer.json",
                                       std::filesystem::copy_options::overwrite_existing, ec);
            if (ec) return fail("make-tiny", fmt::format("cannot copy the tokenizer: {}", ec.message()));
        }
    });
}

}  // namespace dsv4::cli
