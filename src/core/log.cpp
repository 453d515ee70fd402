// Logging: one line per message on stderr, serialised by a mutex.
#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace dsv4 {

namespace {
LogLevel level_from_env() {
    const char* e = std::getenv("DSV4_LOG");
    if (!e) return LogLevel::info;
    if (!std::strcmp(e, "error")) return LogLevel::error;
    if (!std::strcmp(e, "warn")) return LogLevel::warn;
    if (!std::strcmp(e, "debug")) return LogLevel::debug;
    return LogLevel::info;
}
std::atomic<int> g_level{int(level_from_env())};
std::mutex g_mu;
}  // namespace

LogLevel log_level() {
    return LogLevel(g_level.load(std::memory_order_relaxed));
}
void set_log_level(LogLevel level) {
    g_level.store(int(level));
}

void log_write(LogLevel level, const std::string& msg) {
    static const char* names[] = {"error", "warn", "info", "debug"};
    std::lock_guard<std::mutex> lock(g_mu);
    std::fprintf(stderr, "dsv4 %s: %s\n", names[int(level)], msg.c_str());
}

}  // namespace dsv4
