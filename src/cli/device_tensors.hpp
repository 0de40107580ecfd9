// Moving a command's host tensors to the layer's device and back (check, run).
#pragma once

#include "fusedmoe/layer.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cli {

// `tensor` on `device`: itself when it is there already, else a copy.
Tensor copy_to(const Tensor& tensor, Device device);

// The expert weights on the layer's device (router and shared gates stay on the CPU, as set_weights wants).
MoeWeights weights_on(MoeWeights weights, Device device);

// Waits until the work queued on `context`'s stream of `device` is done (a one-byte copy back; nothing on a
// CPU), so host clocks time what ran there.
class DeviceWait {
 public:
  explicit DeviceWait(Device device);
  void operator()(const ExecContext& context) const;

 private:
  Tensor probe_, host_probe_;
};

}  // namespace fusedmoe::cli
