#include "cli/device_tensors.hpp"

namespace fusedmoe::cli {

Tensor copy_to(const Tensor& tensor, Device device) {
  if (!tensor.defined() || tensor.device() == device) return tensor;
  Tensor copy = Tensor::empty(tensor.dtype(), tensor.shape(), device);
  copy_tensor(tensor, copy);
  return copy;
}

MoeWeights weights_on(MoeWeights weights, Device device) {
  for (Tensor* tensor : {&weights.w13, &weights.w2, &weights.shared_w13, &weights.shared_w2}) {
    *tensor = copy_to(*tensor, device);
  }
  return weights;
}

DeviceWait::DeviceWait(Device device) {
  if (device.is_cuda()) {
    probe_ = Tensor::zeros(DType::uint8, {1}, device);
    host_probe_ = Tensor::empty(DType::uint8, {1});
  }
}

void DeviceWait::operator()(const ExecContext& context) const {
  if (probe_.defined()) copy_tensor(probe_, host_probe_, context);
}

}  // namespace fusedmoe::cli
