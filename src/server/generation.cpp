// Generation: see the header.
#include "server/generation.h"

namespace dsv4 {

using ojson = nlohmann::ordered_json;

std::string token_text(const Tokenizer& tok, int32_t id) {
    std::string_view b = tok.token_bytes(id);
    // dump() with replace handles invalid UTF-8 when serialized; keep raw bytes here
    return std::string(b);
}

Generation::Generation(ServerContext& ctx, RequestStream rs, int n_prompt, bool chat, bool thinking,
                       std::vector<std::string> stop, bool include_stop, bool want_logprobs)
    : ctx_(ctx),
      rs_(std::move(rs)),
      chat_(chat),
      decoder_(ctx.tok, /*skip_special=*/true),
      parser_(chat && thinking),
      stop_(std::move(stop), include_stop),
      want_logprobs_(want_logprobs),
      n_prompt_(n_prompt) {}

Generation::~Generation() {
    if (!finished_) abort();
}

void Generation::abort() {
    if (aborted_) return;
    aborted_ = true;
    ctx_.engine.abort(rs_.id);
}

ojson Generation::logprob_entry(int32_t token, float lp, const std::vector<TokenLogprob>& top) const {
    auto one = [&](int32_t id, float v) {
        ojson e;
        std::string t = token_text(ctx_.tok, id);
        e["token"] = t;
        e["logprob"] = v;
        ojson bytes = ojson::array();
        for (unsigned char c : t) bytes.push_back(int(c));
        e["bytes"] = bytes;
        return e;
    };
    ojson e = one(token, lp);
    ojson tops = ojson::array();
    for (auto& t : top) tops.push_back(one(t.token, t.logprob));
    e["top_logprobs"] = tops;
    return e;
}

void Generation::on_text(const std::string& text, GenerationOutput& out, bool final) {
    std::vector<ParsedDelta> deltas;
    if (chat_) {
        deltas = parser_.feed(text);
        if (final) {
            auto tail = parser_.finish();
            deltas.insert(deltas.end(), tail.begin(), tail.end());
        }
    } else {
        ParsedDelta d;
        d.kind = ParsedDelta::Kind::content;
        d.text = text;
        deltas.push_back(std::move(d));
    }
    // stop strings apply to content only, never inside reasoning (serving-design §5)
    for (auto& d : deltas) {
        if (stop_.stopped()) break;
        if (d.kind == ParsedDelta::Kind::content) {
            d.text = stop_.feed(d.text);
            if (stop_.stopped()) {
                finish_ = FinishReason::stop;
                finished_ = true;
                abort();  // the engine keeps generating otherwise
            }
            if (!d.text.empty()) out.deltas.push_back(std::move(d));
        } else {
            if (d.kind == ParsedDelta::Kind::tool_begin) {
                std::string held = stop_.flush();
                if (!held.empty())
                    out.deltas.push_back(ParsedDelta{ParsedDelta::Kind::content, held, -1, {}});
            }
            out.deltas.push_back(std::move(d));
        }
    }
    if (final && !stop_.stopped()) {
        std::string held = stop_.flush();
        if (!held.empty()) out.deltas.push_back(ParsedDelta{ParsedDelta::Kind::content, held, -1, {}});
    }
}

bool Generation::poll(std::chrono::milliseconds timeout, GenerationOutput& out) {
    if (finished_) return out.finished = true;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool got_any = false;
    while (!finished_) {
        auto now = std::chrono::steady_clock::now();
        std::optional<TokenEvent> ev;
        if (got_any) {
            ev = rs_.events->try_pop();  // drain what is there, do not wait once something arrived
        } else {
            if (now >= deadline) break;
            ev = rs_.events->pop_for(deadline - now);
        }
        if (!ev) {
            if (rs_.events->closed() && rs_.events->size() == 0 && !finished_) {
                // closed without a final event: only when the engine shut down
                finish_ = FinishReason::abort;
                finished_ = true;
                on_text(decoder_.finish(), out, true);
            }
            break;
        }
        got_any = true;
        if (ev->has_token) {
            n_tokens_++;
            if (want_logprobs_)
                out.logprobs.push_back(logprob_entry(ev->token, ev->logprob, ev->top_logprobs));
            std::string text = decoder_.push(ev->token);
            on_text(text, out, false);
            if (chat_ && parser_.in_reasoning()) n_reasoning_tokens_++;
        }
        if (ev->finish != FinishReason::none && !finished_) {
            finish_ = ev->finish;
            error_ = ev->error;
            n_cached_ = ev->n_cached;
            finished_ = true;
            on_text(decoder_.finish(), out, true);
        }
    }
    out.finished = finished_;
    return finished_;
}

std::string Generation::finish_reason() const {
    switch (finish_) {
        case FinishReason::stop:
            return parser_.n_tool_calls() > 0 ? "tool_calls" : "stop";
        case FinishReason::length:
            return "length";
        case FinishReason::abort:
            return "abort";
        case FinishReason::error:
            return "error";
        case FinishReason::none:
            break;
    }
    return "stop";
}

}  // namespace dsv4
