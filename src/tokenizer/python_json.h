// JSON text byte-identical to Python's json.dumps(value, ensure_ascii=False) with the default
// separators (", " and ": "): what the official DeepSeek V4 encoder writes for tool schemas and
// tool-call arguments. Keys keep their order, so pass nlohmann::ordered_json.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dsv4 {

std::string python_json_dumps(const nlohmann::ordered_json& value);
void python_json_dump_to(const nlohmann::ordered_json& value, std::string& out);

// Python repr() of a float: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf" as Infinity.
std::string python_float_repr(double v);

}  // namespace dsv4
