// Where a stage computes (the backend) and at what precision.
#pragma once
#include <span>

#include "core/enum_names.h"

namespace lt {

// train.device: the backend that holds a stage's memory and runs its kernels (model/backend.h).
enum class Device { cpu, cuda };
constexpr EnumName<Device> kDeviceNames[] = {{Device::cpu, "cpu"}, {Device::cuda, "cuda"}};
constexpr std::span<const EnumName<Device>> enum_names(Device) { return kDeviceNames; }

// train.precision: fp32, or bf16 mixed precision (bf16 GEMM operands, fp32 accumulation, fp32
// master weights, gradients, optimizer state, norms and loss).
enum class Precision { fp32, bf16 };
constexpr EnumName<Precision> kPrecisionNames[] = {{Precision::fp32, "fp32"}, {Precision::bf16, "bf16"}};
constexpr std::span<const EnumName<Precision>> enum_names(Precision) { return kPrecisionNames; }

}  // namespace lt
