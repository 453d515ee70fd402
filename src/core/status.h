// Status / Result<T>: how everything that reads outside input reports failure (style.md §6).
// DSV4_ASSERT is for programmer errors only: it stays on in release builds and aborts with file:line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace dsv4 {

class Status {
public:
    Status() = default;
    static Status ok() { return Status(); }
    static Status error(std::string msg) {
        Status s;
        s.failed_ = true;
        s.msg_ = std::move(msg);
        return s;
    }
    bool is_ok() const { return !failed_; }
    explicit operator bool() const { return !failed_; }
    const std::string& message() const { return msg_; }
    // Prefixes the message with where it happened ("model-00001.safetensors: ...").
    Status with_context(const std::string& ctx) const { return failed_ ? error(ctx + ": " + msg_) : *this; }

private:
    bool failed_ = false;
    std::string msg_;
};

template <typename... Args>
Status error(fmt::format_string<Args...> f, Args&&... args) {
    return Status::error(fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit on purpose
    Result(Status status) : v_(std::move(status)) {}  // NOLINT: must be an error
    bool is_ok() const { return v_.index() == 0; }
    explicit operator bool() const { return is_ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return std::get<0>(v_); }
    Status status() const { return is_ok() ? Status::ok() : std::get<1>(v_); }
    const std::string& message() const {
        static const std::string empty;
        return is_ok() ? empty : std::get<1>(v_).message();
    }

private:
    std::variant<T, Status> v_;
};

[[noreturn]] inline void assert_fail(const char* file, int line, const char* cond, const std::string& msg) {
    std::fprintf(stderr, "dsv4: internal error at %s:%d: assertion '%s' failed: %s\n", file, line, cond,
                 msg.c_str());
    std::abort();
}

}  // namespace dsv4

#define DSV4_ASSERT(cond, ...)                                                                 \
    do {                                                                                       \
        if (!(cond)) ::dsv4::assert_fail(__FILE__, __LINE__, #cond, fmt::format(__VA_ARGS__)); \
    } while (0)

#define DSV4_CONCAT_INNER(a, b) a##b
#define DSV4_CONCAT(a, b) DSV4_CONCAT_INNER(a, b)

// Returns from the enclosing function when a Status fails.
#define DSV4_TRY(expr)                                \
    do {                                              \
        ::dsv4::Status dsv4_try_s_ = (expr);          \
        if (!dsv4_try_s_.is_ok()) return dsv4_try_s_; \
    } while (0)

// auto x = DSV4_TRY_ASSIGN(result-expr): moves the value out or returns the error.
#define DSV4_TRY_ASSIGN(lhs, expr)                                                               \
    auto DSV4_CONCAT(dsv4_r_, __LINE__) = (expr);                                                \
    if (!DSV4_CONCAT(dsv4_r_, __LINE__).is_ok()) return DSV4_CONCAT(dsv4_r_, __LINE__).status(); \
    lhs = std::move(DSV4_CONCAT(dsv4_r_, __LINE__)).value()
