// `dsv4 quantize`: a bf16/f32 V4 checkpoint (released or HF names) -> the released FP8/FP4 layout
// (spec §3.1, §10), or with --dequantize the exact f32 values of a quantized one.
#include "cli/commands.h"
#include "cli/common.h"
#include "model/quantize.h"

namespace dsv4::cli {

void add_cmd_quantize(CLI::App& app) {
    struct Opts {
        std::string in, out, experts = "fp4";
        double shard_gb = 4.0;
        bool dequantize = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("quantize", "convert a checkpoint to the released FP8 + FP4 layout");
    cmd->add_option("--in", o->in, "input checkpoint directory (bf16/f32, released or HF names)")->required();
    cmd->add_option("--out", o->out, "output directory")->required();
    cmd->add_option("--experts", o->experts, "routed experts: fp4 (as released) or fp8 (lossless conversion)")
        ->check(CLI::IsMember({"fp4", "fp8"}));
    cmd->add_option("--shard-gb", o->shard_gb, "largest shard in GB")->check(CLI::Range(0.001, 1000.0));
    cmd->add_flag("--dequantize", o->dequantize,
                  "instead write the exact f32 values of a quantized checkpoint");
    cmd->callback([o] {
        if (o->dequantize) {
            Status s = dequantize_checkpoint(o->in, o->out);
            if (!s.is_ok()) return fail("quantize", s.message());
            std::printf("wrote the dequantized (f32) checkpoint to %s\n", o->out.c_str());
            return;
        }
        QuantizeOptions q;
        q.experts = o->experts;
        q.shard_bytes = int64_t(o->shard_gb * 1e9);
        q.verbose = true;
        auto r = quantize_checkpoint(o->in, o->out, q);
        if (!r.is_ok()) return fail("quantize", r.message());
        std::printf("wrote %lld tensors (%.1f MB) in %lld shard(s) to %s", (long long)r->n_tensors,
                    double(r->bytes) / 1e6, (long long)r->n_shards, o->out.c_str());
        if (o->experts == "fp8")
            std::printf("; FP4 -> FP8 inexact elements: %lld", (long long)r->fp4_to_fp8_inexact);
        std::printf("\n");
    });
}

}  // namespace dsv4::cli
