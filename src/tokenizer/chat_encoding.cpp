// encode_messages: DeepSeek V4 prompt rendering. Steps follow encoding_dsv4.py: merge tool results
// into user turns, sort them by the preceding assistant's call order, decide which reasoning to drop,
// then render each message and the transition after it. See chat_encoding.h.
#include "tokenizer/chat_encoding.h"

#include <algorithm>

#include "tokenizer/python_json.h"

namespace dsv4 {

using ojson = nlohmann::ordered_json;
namespace ct = chat_tokens;

std::map<std::string, std::string> ChatOptions::default_effort_prefixes() {
    // Text of the original V4 encoder (V4-Flash / V4-Pro release), effort "max".
    return {{"max",
             "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
             "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
             "resolve the "
             "root cause, rigorously stress-testing your logic against all potential paths, edge cases, and "
             "adversarial scenarios.\n"
             "Explicitly write out your entire deliberation process, documenting every intermediate step, "
             "considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
             "unchecked.\n\n"}};
}

namespace {

const char* kToolsHeader =
    "## Tools\n\n"
    "You have access to a set of tools to help answer the user's question. You can invoke tools by writing a "
    "\"<｜DSML｜tool_calls>\" block like the following:\n\n"
    "<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>\n\n"
    "String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers, "
    "booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
    "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside "
    "<think>...</think> BEFORE any tool calls or final response.\n\n"
    "Otherwise, output directly after </think> with tool calls or final response.\n\n"
    "### Available Tool Schemas\n\n";
const char* kToolsFooter =
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";
const char* kResponseFormatHeader =
    "\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

std::string str_or_empty(const ojson& m, const char* key) {
    if (!m.contains(key) || m[key].is_null()) return "";
    if (m[key].is_string()) return m[key].get<std::string>();
    return python_json_dumps(m[key]);
}

std::string role_of(const ojson& m) {
    return m.contains("role") && m["role"].is_string() ? m["role"].get<std::string>() : "";
}
bool has_task(const ojson& m) {
    return m.contains("task") && !m["task"].is_null();
}

// Text of an OpenAI content value: a string, or a list of parts whose text parts are joined by
// "\n\n" and whose other parts become "[Unsupported <type>]".
std::string content_text(const ojson& c) {
    if (c.is_null()) return "";
    if (c.is_string()) return c.get<std::string>();
    if (!c.is_array()) return python_json_dumps(c);
    std::string out;
    for (size_t i = 0; i < c.size(); ++i) {
        if (i) out += "\n\n";
        const ojson& p = c[i];
        const std::string type = p.is_object() ? p.value("type", "") : "";
        if (type == "text") {
            out += p.value("text", "");
        } else if (p.is_string()) {
            out += p.get<std::string>();
        } else {
            out += "[Unsupported " + type + "]";
        }
    }
    return out;
}

Result<std::string> tools_block(const ojson& tools) {
    if (!tools.is_array()) return error("'tools' must be an array, found {}", tools.type_name());
    std::string out = kToolsHeader;
    for (size_t i = 0; i < tools.size(); ++i) {
        const ojson& t = tools[i];
        if (!t.is_object() || !t.contains("function"))
            return error("tools[{}]: expected {{\"type\": \"function\", \"function\": {{...}}}}", i);
        if (i) out += "\n";
        out += python_json_dumps(t["function"]);
    }
    return out + kToolsFooter;
}

// Suffixes of system/developer text: the tools block and the response format.
Result<std::string> system_suffix(const ojson& m) {
    std::string out;
    if (m.contains("tools") && !m["tools"].is_null() && !m["tools"].empty()) {
        auto tb = tools_block(m["tools"]);
        if (!tb) return tb.status();
        out += "\n\n" + tb.value();
    }
    if (m.contains("response_format") && !m["response_format"].is_null())
        out += kResponseFormatHeader + python_json_dumps(m["response_format"]);
    return out;
}

Result<std::string> dsml_parameter(const std::string& name, const ojson& v) {
    const bool is_str = v.is_string();
    return "<｜DSML｜parameter name=\"" + name + "\" string=\"" + (is_str ? "true" : "false") + "\">" +
           (is_str ? v.get<std::string>() : python_json_dumps(v)) + "</｜DSML｜parameter>";
}

Result<std::string> tool_calls_block(const ojson& calls) {
    std::string out = "\n\n<｜DSML｜tool_calls>\n";
    for (size_t i = 0; i < calls.size(); ++i) {
        const ojson& c = calls[i];
        const ojson& f = c.is_object() && c.contains("function") ? c["function"] : c;
        if (!f.is_object() || !f.contains("name") || !f["name"].is_string())
            return error("tool_calls[{}]: missing function name", i);
        ojson args = ojson::object();
        if (f.contains("arguments") && !f["arguments"].is_null()) {
            const ojson& a = f["arguments"];
            if (a.is_string()) {
                // OpenAI sends arguments as a JSON string. (The official encoder mishandles an
                // already-parsed object; we accept both forms, as vLLM does.)
                const std::string& s = a.get_ref<const std::string&>();
                args = s.empty() ? ojson::object() : ojson::parse(s, nullptr, false);
                if (args.is_discarded())
                    return error("tool_calls[{}] ({}): arguments are not valid JSON: {}", i,
                                 f["name"].get<std::string>(), s);
            } else {
                args = a;
            }
            if (!args.is_object())
                return error("tool_calls[{}]: arguments must be a JSON object, found {}", i,
                             args.type_name());
        }
        if (i) out += "\n";
        out += "<｜DSML｜invoke name=\"" + f["name"].get<std::string>() + "\">\n";
        bool first = true;
        for (const auto& [k, v] : args.items()) {
            if (!first) out += "\n";
            first = false;
            auto p = dsml_parameter(k, v);
            if (!p) return p.status();
            out += p.value();
        }
        out += "\n</｜DSML｜invoke>";
    }
    return out + "\n</｜DSML｜tool_calls>";
}

// Step 1 and 2: tool messages become tool_result blocks of user turns, in call order.
Result<std::vector<ojson>> merge_tool_messages(const ojson& messages) {
    std::vector<ojson> out;
    for (size_t i = 0; i < messages.size(); ++i) {
        const ojson& m = messages[i];
        if (!m.is_object()) return error("messages[{}]: expected an object, found {}", i, m.type_name());
        const std::string role = role_of(m);
        const bool prev_has_blocks = !out.empty() && role_of(out.back()) == "user" &&
                                     out.back().contains("content_blocks") && !has_task(out.back());
        if (role == "tool") {
            ojson block = {{"type", "tool_result"},
                           {"tool_use_id", m.contains("tool_call_id") ? m["tool_call_id"] : ojson()},
                           {"content", m.contains("content") ? m["content"] : ojson("")}};
            if (prev_has_blocks) {
                out.back()["content_blocks"].push_back(std::move(block));
            } else {
                out.push_back({{"role", "user"}, {"content_blocks", ojson::array({std::move(block)})}});
            }
        } else if (role == "user" && prev_has_blocks) {
            out.back()["content_blocks"].push_back(
                {{"type", "text"}, {"text", content_text(m.value("content", ojson()))}});
            if (has_task(m)) out.back()["task"] = m["task"];
        } else {
            out.push_back(m);
        }
    }
    // Sort each user turn's tool results by the order of the preceding assistant's tool_calls ids.
    for (size_t i = 1; i < out.size(); ++i) {
        if (!out[i].contains("content_blocks") || role_of(out[i - 1]) != "assistant") continue;
        const ojson& calls = out[i - 1].contains("tool_calls") ? out[i - 1]["tool_calls"] : ojson::array();
        auto order = [&](const ojson& b) -> size_t {
            for (size_t k = 0; k < calls.size(); ++k)
                if (calls[k].is_object() && calls[k].contains("id") && calls[k]["id"] == b["tool_use_id"])
                    return k;
            return calls.size();
        };
        ojson& blocks = out[i]["content_blocks"];
        std::vector<size_t> slots;
        std::vector<ojson> results;
        for (size_t k = 0; k < blocks.size(); ++k)
            if (blocks[k]["type"] == "tool_result") {
                slots.push_back(k);
                results.push_back(blocks[k]);
            }
        std::stable_sort(results.begin(), results.end(),
                         [&](const ojson& a, const ojson& b) { return order(a) < order(b); });
        for (size_t k = 0; k < slots.size(); ++k) blocks[slots[k]] = std::move(results[k]);
    }
    return out;
}

std::string user_body(const ojson& m) {
    if (!m.contains("content_blocks")) return content_text(m.value("content", ojson()));
    std::string out;
    const ojson& blocks = m["content_blocks"];
    for (size_t i = 0; i < blocks.size(); ++i) {
        if (i) out += "\n\n";
        if (blocks[i]["type"] == "tool_result") {
            out += "<tool_result>" + content_text(blocks[i]["content"]) + "</tool_result>";
        } else {
            out += blocks[i].value("text", "");
        }
    }
    return out;
}

Result<std::string> task_token(const ojson& task) {
    static const char* kTasks[] = {"action", "query", "authority", "domain", "title", "read_url"};
    const std::string t = task.is_string() ? task.get<std::string>() : task.dump();
    for (const char* k : kTasks)
        if (t == k) return std::string("<｜") + k + "｜>";
    return error("unknown task '{}' (expected action, query, authority, domain, title or read_url)", t);
}

}  // namespace

Result<std::string> encode_messages(const ojson& messages, const ChatOptions& opts) {
    if (!messages.is_array()) return error("messages: expected an array, found {}", messages.type_name());
    auto merged_r = merge_tool_messages(messages);
    if (!merged_r) return merged_r.status();
    std::vector<ojson> msgs = std::move(merged_r.value());

    bool drop = opts.drop_thinking;
    for (const ojson& m : msgs)
        if (m.contains("tools") && !m["tools"].is_null() && !m["tools"].empty()) drop = false;

    auto last_user_index = [&]() {
        long last = -1;
        for (size_t i = 0; i < msgs.size(); ++i)
            if (role_of(msgs[i]) == "user" || role_of(msgs[i]) == "developer") last = static_cast<long>(i);
        return last;
    };
    if (opts.thinking && drop) {
        // Developer turns (and other roles the model never sees in history) before the last user turn go.
        const long last = last_user_index();
        std::vector<ojson> kept;
        for (size_t i = 0; i < msgs.size(); ++i) {
            const std::string r = role_of(msgs[i]);
            const bool keep = static_cast<long>(i) >= last || r == "user" || r == "system" || r == "tool" ||
                              r == "assistant" || r == "latest_reminder" || r == "direct_search_results";
            if (keep) kept.push_back(std::move(msgs[i]));
        }
        msgs = std::move(kept);
    }
    const long last_user = last_user_index();

    std::string out = opts.add_bos ? ct::kBos : "";
    for (size_t i = 0; i < msgs.size(); ++i) {
        const ojson& m = msgs[i];
        const std::string role = role_of(m);
        const auto ctx = [&](const Status& s) {
            return s.with_context(fmt::format("messages[{}] ({})", i, role));
        };
        if (i == 0 && opts.thinking && !opts.reasoning_effort.empty()) {
            auto it = opts.effort_prefixes.find(opts.reasoning_effort);
            if (it != opts.effort_prefixes.end()) out += it->second;
        }
        if (role == "system" || role == "developer") {
            std::string text = content_text(m.value("content", ojson()));
            if (role == "developer") {
                if (text.empty()) return ctx(error("developer content must not be empty"));
                out += ct::kUser;
            }
            auto suffix = system_suffix(m);
            if (!suffix) return ctx(suffix.status());
            out += text + suffix.value();
        } else if (role == "user") {
            out += ct::kUser + user_body(m);
        } else if (role == "latest_reminder") {
            out += ct::kLatestReminder + content_text(m.value("content", ojson()));
        } else if (role == "assistant") {
            const bool prev_task = i > 0 && has_task(msgs[i - 1]);
            if (opts.thinking && !prev_task && (!drop || static_cast<long>(i) > last_user))
                out += str_or_empty(m, "reasoning_content") + ct::kThinkEnd;
            out += content_text(m.value("content", ojson()));
            if (m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty()) {
                auto block = tool_calls_block(m["tool_calls"]);
                if (!block) return ctx(block.status());
                out += block.value();
            }
            if (!m.value("wo_eos", false)) out += ct::kEos;
        } else {
            return error("messages[{}]: unknown role '{}'", i, role);
        }

        // Transition into the next turn: only before an assistant/latest_reminder turn or at the end.
        const bool last = i + 1 == msgs.size();
        if (!last) {
            const std::string next = role_of(msgs[i + 1]);
            if (next != "assistant" && next != "latest_reminder") continue;
        }
        if (has_task(m)) {
            auto tok = task_token(m["task"]);
            if (!tok) return ctx(tok.status());
            if (m["task"] == "action")
                out += std::string(ct::kAssistant) + (opts.thinking ? ct::kThinkBegin : ct::kThinkEnd);
            out += tok.value();
        } else if (role == "user" || role == "developer") {
            out += ct::kAssistant;
            out += opts.thinking && (!drop || static_cast<long>(i) == last_user) ? ct::kThinkBegin
                                                                                 : ct::kThinkEnd;
        }
    }
    return out;
}

ojson attach_request_tools(ojson messages, const ojson& tools) {
    if (tools.is_null() || (tools.is_array() && tools.empty()) || !messages.is_array()) return messages;
    for (auto& m : messages) {
        const std::string r = role_of(m);
        if (r == "system" || r == "developer") {
            m["tools"] = tools;
            return messages;
        }
    }
    messages.insert(messages.begin(), ojson{{"role", "system"}, {"content", ""}, {"tools", tools}});
    return messages;
}

}  // namespace dsv4
