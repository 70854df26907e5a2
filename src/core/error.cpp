#include "core/error.h"

namespace lt {

void rethrow_with_context(const std::exception& e, const std::string& context) {
  throw Error(context + ": " + e.what());
}

}  // namespace lt
