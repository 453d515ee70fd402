// Channel<T>: a typed, thread-safe FIFO (mutex + condition variable) between the HTTP workers and the
// engine thread (style.md §2). Multi-producer, multi-consumer; close() wakes every waiter.
// Tested by test_engine.cpp (requests in, token events out) and the server loopback tests.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace dsv4 {

template <typename T>
class Channel {
public:
    // Returns false when the channel is closed (the item is dropped).
    bool push(T item) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (closed_) return false;
            items_.push_back(std::move(item));
        }
        cv_.notify_one();
        return true;
    }

    // Waits up to `timeout` for an item; nullopt on timeout or when closed and drained.
    template <typename Rep, typename Period>
    std::optional<T> pop_for(std::chrono::duration<Rep, Period> timeout) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
        return take_locked();
    }

    std::optional<T> try_pop() {
        std::lock_guard<std::mutex> lock(mu_);
        return take_locked();
    }

    void close() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            closed_ = true;
        }
        cv_.notify_all();
    }

    bool closed() const {
        std::lock_guard<std::mutex> lock(mu_);
        return closed_;
    }

    size_t size() const {
        std::lock_guard<std::mutex> lock(mu_);
        return items_.size();
    }

private:
    std::optional<T> take_locked() {
        if (items_.empty()) return std::nullopt;
        T item = std::move(items_.front());
        items_.pop_front();
        return item;
    }

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<T> items_;
    bool closed_ = false;
};

}  // namespace dsv4
