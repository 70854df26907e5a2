// Building a single CPU stage for tests through the backend factory, as the trainer does.
#pragma once
#include <memory>

#include "model/backend.h"

namespace lt::test {

struct TestStage {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Stage> stage;
  Stage* operator->() const { return stage.get(); }
};

inline TestStage make_cpu_stage(const ParamLayout& layout, const StageOptions& opt, TensorParallelOps* tp = nullptr,
                                int dp = 1) {
  TestStage t;
  t.backend = make_backend(Device::cpu, {1, 0});
  StageGeometry g;
  g.config = layout.config();
  g.shard = layout.shard();
  g.options = opt;
  g.dp = dp;
  g.zero1 = dp > 1;
  t.stage = t.backend->make_stage(layout, g, tp);
  return t;
}

}  // namespace lt::test
