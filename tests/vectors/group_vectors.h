// The group key part of docs/test-vectors.json (group_vectors.cc).
#ifndef KGR_TESTS_VECTORS_GROUP_VECTORS_H_
#define KGR_TESTS_VECTORS_GROUP_VECTORS_H_

#include <nlohmann/json.hpp>

namespace kgr {

nlohmann::ordered_json GroupRekeyVectors();

}  // namespace kgr

#endif  // KGR_TESTS_VECTORS_GROUP_VECTORS_H_
