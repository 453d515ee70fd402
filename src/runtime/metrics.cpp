// Histogram::observe: linear scan; bucket lists are short.
#include "runtime/metrics.h"

namespace dsv4 {

void Histogram::observe(double v) {
    size_t i = 0;
    while (i < bounds.size() && v > bounds[i]) i++;
    counts[i]++;
    sum += v;
    count++;
}

}  // namespace dsv4
