// StopMatcher: see the header.
#include "runtime/stop_matcher.h"

#include <algorithm>

namespace dsv4 {

std::string StopMatcher::feed(const std::string& text) {
    if (stopped_) return {};
    pending_ += text;
    // earliest match of any stop string wins (a later-starting one may complete first in the stream)
    size_t best = std::string::npos;
    for (const auto& s : stops_) {
        if (s.empty()) continue;
        size_t pos = pending_.find(s);
        if (pos != std::string::npos &&
            (best == std::string::npos || pos < best || (pos == best && s.size() > matched_.size()))) {
            best = pos;
            matched_ = s;
        }
    }
    if (best != std::string::npos) {
        stopped_ = true;
        std::string out = pending_.substr(0, best + (include_stop_ ? matched_.size() : 0));
        pending_.clear();
        return out;
    }
    // hold back the longest suffix that is a proper prefix of some stop string
    size_t hold = 0;
    for (const auto& s : stops_) {
        for (size_t len = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); len > hold; --len) {
            if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    if (!stopped_) out.swap(pending_);
    return out;
}

}  // namespace dsv4
