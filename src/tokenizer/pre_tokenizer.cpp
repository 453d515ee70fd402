// Split pre-tokenizer on Oniguruma; see pre_tokenizer.h. Matches and the gaps between them both
// become pieces (behavior "Isolated"); each regex sees one piece as its whole subject string, so
// `\s+(?!\S)` treats the end of a piece as the end of the text, exactly as HF does.
#include "tokenizer/pre_tokenizer.h"

#include <mutex>

#include <nlohmann/json.hpp>
#include <oniguruma.h>

namespace dsv4 {

namespace {

void init_oniguruma() {
    static std::once_flag once;
    std::call_once(once, [] {
        OnigEncoding encs[] = {ONIG_ENCODING_UTF8};
        onig_initialize(encs, 1);
    });
}

struct RegexDeleter {
    void operator()(OnigRegex r) const { onig_free(r); }
};
using RegexPtr = std::unique_ptr<std::remove_pointer_t<OnigRegex>, RegexDeleter>;

struct RegionDeleter {
    void operator()(OnigRegion* r) const { onig_region_free(r, 1); }
};

Result<RegexPtr> compile(const std::string& pattern) {
    init_oniguruma();
    OnigRegex reg = nullptr;
    OnigErrorInfo einfo;
    const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
    // ONIG_SYNTAX_DEFAULT is what the Rust `onig` crate (used by HF tokenizers) passes.
    int rc = onig_new(&reg, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT,
                      &einfo);
    if (rc != ONIG_NORMAL) {
        OnigUChar buf[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(buf, rc, &einfo);
        return error("regex '{}' does not compile: {}", pattern, reinterpret_cast<char*>(buf));
    }
    return RegexPtr(reg);
}

}  // namespace

struct PreTokenizer::Impl {
    std::vector<RegexPtr> regexes;  // applied in order, each to every piece of the previous one
};

PreTokenizer::PreTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;
size_t PreTokenizer::num_regexes() const {
    return impl_->regexes.size();
}

Result<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& j) {
    auto impl = std::make_unique<Impl>();
    if (j.is_null()) return PreTokenizer(std::move(impl));
    std::vector<nlohmann::json> steps;
    const std::string type = j.value("type", "");
    if (type == "Sequence") {
        if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
            return error("pre_tokenizer: Sequence without a 'pretokenizers' array");
        for (const auto& s : j["pretokenizers"]) steps.push_back(s);
    } else {
        steps.push_back(j);
    }
    for (size_t i = 0; i < steps.size(); ++i) {
        const auto& s = steps[i];
        const std::string t = s.value("type", "");
        if (t == "Split") {
            const std::string behavior = s.value("behavior", "");
            if (behavior != "Isolated")
                return error(
                    "pre_tokenizer step {}: Split behavior '{}' is not supported (supported: Isolated)", i,
                    behavior);
            if (s.value("invert", false))
                return error("pre_tokenizer step {}: Split with invert=true is not supported", i);
            const auto& pat = s.contains("pattern") ? s["pattern"] : nlohmann::json();
            if (!pat.is_object() || !pat.contains("Regex") || !pat["Regex"].is_string())
                return error("pre_tokenizer step {}: Split needs a {{\"Regex\": ...}} pattern, found {}", i,
                             pat.dump());
            auto reg = compile(pat["Regex"].get<std::string>());
            if (!reg) return reg.status().with_context(fmt::format("pre_tokenizer step {}", i));
            impl->regexes.push_back(std::move(reg.value()));
        } else if (t == "ByteLevel") {
            if (s.value("use_regex", true) || s.value("add_prefix_space", false))
                return error(
                    "pre_tokenizer step {}: ByteLevel needs use_regex=false and add_prefix_space=false "
                    "(the DeepSeek layout); other settings are not supported",
                    i);
            if (i + 1 != steps.size())
                return error("pre_tokenizer step {}: ByteLevel must be the last step", i);
        } else {
            return error("pre_tokenizer step {}: type '{}' is not supported (supported: Split, ByteLevel)", i,
                         t);
        }
    }
    return PreTokenizer(std::move(impl));
}

void PreTokenizer::split(std::string_view text, std::vector<PieceSpan>& out) const {
    // Ping-pong between two piece lists, one pass per regex; thread_local to avoid allocations.
    thread_local std::vector<PieceSpan> cur, next;
    thread_local std::unique_ptr<OnigRegion, RegionDeleter> region(onig_region_new());
    cur.clear();
    if (text.empty()) return;
    cur.push_back({0, text.size()});
    const auto* base = reinterpret_cast<const OnigUChar*>(text.data());
    for (const auto& reg : impl_->regexes) {
        next.clear();
        for (const PieceSpan& p : cur) {
            const OnigUChar* str = base + p.begin;
            const OnigUChar* end = base + p.end;
            size_t gap = 0, pos = 0;  // offsets in the piece: start of the pending gap, search start
            const size_t len = p.end - p.begin;
            while (pos < len) {
                const int r =
                    onig_search(reg.get(), str, end, str + pos, end, region.get(), ONIG_OPTION_NONE);
                if (r < 0) break;  // ONIG_MISMATCH (or an error: the rest stays one gap)
                const size_t mb = static_cast<size_t>(region->beg[0]),
                             me = static_cast<size_t>(region->end[0]);
                if (me == mb) {
                    // An empty match splits nothing (HF drops empty pieces): search on from the next char.
                    pos = mb + 1;
                    while (pos < len && (str[pos] & 0xC0) == 0x80) ++pos;
                    continue;
                }
                if (mb > gap) next.push_back({p.begin + gap, p.begin + mb});
                next.push_back({p.begin + mb, p.begin + me});
                gap = pos = me;
            }
            if (gap < len) next.push_back({p.begin + gap, p.end});
        }
        std::swap(cur, next);
    }
    out.insert(out.end(), cur.begin(), cur.end());
}

}  // namespace dsv4
