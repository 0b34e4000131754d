// Internal: the ordered list of schema migrations (schema.cpp).
#pragma once
#include <string>
#include <vector>

namespace ling::store_detail {
const std::vector<std::string>& migrations();
}
