// `dsv4 logits`: one forward pass over a prompt (text or ids); prints the top-k logits per position,
// or writes all logits as raw little-endian f32 [n, vocab] with --out.
#include <algorithm>
#include <fstream>
#include <numeric>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"

namespace dsv4::cli {

namespace {
Result<std::vector<int32_t>> parse_ids(const std::string& s) {
    std::vector<int32_t> ids;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t used = 0;
            long v = std::stol(item, &used);
            if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
            ids.push_back(int32_t(v));
        } catch (const std::exception&) {
            return error("--ids: '{}' is not a token id (expected comma-separated non-negative integers)",
                         item);
        }
    }
    return ids;
}
}  // namespace

void add_cmd_logits(CLI::App& app) {
    struct Opts {
        std::string model, prompt, ids, out, backend = "cpu";
        int top = 5;
        bool all = false;
        std::string numerics;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("logits", "run one forward pass and print the logits");
    cmd->add_option("-m,--model", o->model, "checkpoint directory (default: the built-in model)");
    auto* p = cmd->add_option("-p,--prompt", o->prompt, "prompt text (needs the model's tokenizer.json)");
    cmd->add_option("--ids", o->ids, "comma-separated token ids")->excludes(p);
    cmd->add_option("--top", o->top, "how many of the largest logits to print per position")
        ->check(CLI::Range(1, 100));
    cmd->add_flag("--all", o->all, "every position (default: the last)");
    cmd->add_option("--out", o->out, "write raw f32 logits [n, vocab] to this file");
    cmd->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
    add_numerics_option(cmd, o->numerics);
    cmd->callback([o] {
        if (o->prompt.empty() && o->ids.empty())
            return fail("logits", "give --prompt TEXT or --ids 1,2,3", 2);
        auto lm = load_model(o->model, o->backend, true, parse_numerics(o->numerics));
        if (!lm.is_ok()) return fail("logits", lm.message());
        std::vector<int32_t> ids;
        if (!o->ids.empty()) {
            auto r = parse_ids(o->ids);
            if (!r.is_ok()) return fail("logits", r.message(), 2);
            ids = r.value();
        } else {
            if (!lm->tokenizer)
                return fail("logits", fmt::format("{} has no tokenizer.json; use --ids", lm->dir));
            ids = lm->tokenizer->encode(o->prompt, false);
        }
        if (ids.empty()) return fail("logits", "no tokens to run", 2);
        auto st = lm->model->new_state();
        std::vector<float> logits;
        Status s = lm->model->forward(*st, ids, logits, o->all || !o->out.empty());
        if (!s.is_ok()) return fail("logits", s.message());
        const int64_t V = lm->model->config().vocab_size, rows = int64_t(logits.size()) / V;
        if (!o->out.empty()) {
            std::ofstream f(o->out, std::ios::binary);
            f.write(reinterpret_cast<const char*>(logits.data()),
                    std::streamsize(logits.size() * sizeof(float)));
            if (!f) return fail("logits", fmt::format("cannot write '{}'", o->out));
            std::printf("wrote %lld x %lld f32 logits to %s\n", (long long)rows, (long long)V,
                        o->out.c_str());
            return;
        }
        for (int64_t r = 0; r < rows; ++r) {
            const float* row = logits.data() + r * V;
            std::vector<int32_t> order(static_cast<size_t>(V));
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + o->top, order.end(),
                              [&](int32_t a, int32_t b) { return row[a] > row[b]; });
            const int64_t pos = int64_t(ids.size()) - rows + r;
            std::printf("pos %lld (id %d):", (long long)pos, ids[size_t(pos)]);
            for (int k = 0; k < o->top; ++k)
                std::printf("  %d:%.5f", order[size_t(k)], row[order[size_t(k)]]);
            std::printf("\n");
        }
    });
}

}  // namespace dsv4::cli
