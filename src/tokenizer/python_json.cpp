// python_json_dumps; see python_json.h. Strings reuse nlohmann's escaping, which matches Python's
// ensure_ascii=False set (\" \\ \b \f \n \r \t, other controls as \u00xx, everything else raw).
#include "tokenizer/python_json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dsv4 {

std::string python_float_repr(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
    // Shortest digits that round-trip, like Python's repr (David Gay's algorithm): try %.1e..%.17e.
    char buf[40];
    int prec = 1;
    for (; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    // buf = [-]d[.ddd]e[+-]XX; split mantissa digits and exponent.
    std::string s(buf);
    const bool neg = s[0] == '-';
    if (neg) s.erase(0, 1);
    const size_t e = s.find('e');
    std::string digits = s.substr(0, 1);
    if (e > 2) digits.append(s, 2, e - 2);
    const int exp10 = std::atoi(s.c_str() + e + 1);
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    std::string out = neg ? "-" : "";
    const int n = static_cast<int>(digits.size());
    if (exp10 < -4 || exp10 >= 16) {  // Python's repr switches to exponent form outside [1e-4, 1e16)
        out += digits.substr(0, 1);
        if (n > 1) {
            out += '.';
            out.append(digits, 1);
        }
        char eb[16];
        std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
        out += eb;
    } else if (exp10 < 0) {
        out += "0.";
        out.append(static_cast<size_t>(-exp10 - 1), '0');
        out += digits;
    } else if (n <= exp10 + 1) {
        out += digits;
        out.append(static_cast<size_t>(exp10 + 1 - n), '0');
        out += ".0";
    } else {
        out.append(digits, 0, static_cast<size_t>(exp10) + 1);
        out += '.';
        out.append(digits, static_cast<size_t>(exp10) + 1);
    }
    return out;
}

void python_json_dump_to(const nlohmann::ordered_json& v, std::string& out) {
    using T = nlohmann::ordered_json::value_t;
    switch (v.type()) {
        case T::object: {
            out += '{';
            bool first = true;
            for (const auto& [k, item] : v.items()) {
                if (!first) out += ", ";
                first = false;
                out +=
                    nlohmann::ordered_json(k).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                out += ": ";
                python_json_dump_to(item, out);
            }
            out += '}';
            break;
        }
        case T::array: {
            out += '[';
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) out += ", ";
                python_json_dump_to(v[i], out);
            }
            out += ']';
            break;
        }
        case T::number_float:
            out += python_float_repr(v.get<double>());
            break;
        case T::boolean:
            out += v.get<bool>() ? "true" : "false";
            break;
        case T::null:
        case T::discarded:
            out += "null";
            break;
        default:  // strings, integers
            out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            break;
    }
}

std::string python_json_dumps(const nlohmann::ordered_json& value) {
    std::string out;
    python_json_dump_to(value, out);
    return out;
}

}  // namespace dsv4
