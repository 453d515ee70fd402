// StopMatcher: stop strings on streamed text. It holds back the longest tail that could still begin a
// stop string (vLLM's stop_buffer_length rule, serving-design §5), so text after a stop is never emitted.
// The caller aborts the engine sequence when a stop matches. Tested in tests/unit/test_sampler.cpp.
#pragma once

#include <string>
#include <vector>

namespace dsv4 {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops = {}, bool include_stop = false)
        : stops_(std::move(stops)), include_stop_(include_stop) {}

    // Appends text; returns what is now safe to emit. After a match, stopped() is true and the returned
    // text ends right before the stop string (or after it, with include_stop).
    std::string feed(const std::string& text);
    // End of stream: whatever was held back.
    std::string flush();
    bool stopped() const { return stopped_; }
    const std::string& matched() const { return matched_; }

private:
    std::vector<std::string> stops_;
    bool include_stop_ = false;
    std::string pending_;
    bool stopped_ = false;
    std::string matched_;
};

}  // namespace dsv4
