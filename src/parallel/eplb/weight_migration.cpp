#include "parallel/eplb/weight_migration.hpp"

#include <cstring>
#include <map>

#include "core/check.hpp"

namespace fusedmoe {

Tensor migrate_expert_weights(Communicator& communicator,
                              const std::vector<std::int32_t>& old_physical_to_logical,
                              const std::vector<std::int32_t>& new_physical_to_logical, const Tensor& local) {
  const int ranks = communicator.size(), rank = communicator.rank();
  const std::int64_t physical = static_cast<std::int64_t>(old_physical_to_logical.size());
  FUSEDMOE_CHECK(new_physical_to_logical.size() == old_physical_to_logical.size(),
                 "[eplb] old and new placements ", "have ", physical, " and ", new_physical_to_logical.size(),
                 " physical experts");
  FUSEDMOE_CHECK(physical % ranks == 0, "[eplb] ", physical, " physical experts do not split evenly over ",
                 ranks, " ranks");
  const std::int64_t slots = physical / ranks;
  FUSEDMOE_CHECK(local.defined() && local.device().is_cpu() && local.size(0) == slots,
                 "[eplb] local weights: ", "expected a CPU stack of ", slots, " experts, got ",
                 local.describe());
  const std::size_t block = local.nbytes() / static_cast<std::size_t>(slots);

  // Who serves each logical expert: the lowest rank that holds it in the old placement (and its slot).
  std::map<std::int32_t, std::pair<int, std::int64_t>> source;
  for (std::int64_t slot = physical - 1; slot >= 0; --slot)
    source[old_physical_to_logical[slot]] = {slot / slots, slot};
  // Every rank checks the whole new placement (the same tables everywhere) before any exchange, so a bad one
  // fails every rank here and none waits for a peer that threw.
  for (std::int64_t slot = 0; slot < physical; ++slot) {
    FUSEDMOE_CHECK(source.count(new_physical_to_logical[slot]), "[eplb] new placement: physical slot ", slot,
                   " (rank ", slot / slots, ") holds logical expert ", new_physical_to_logical[slot],
                   ", which no rank holds in the old placement");
  }
  auto held_here = [&](std::int32_t logical) -> std::int64_t {
    for (std::int64_t slot = 0; slot < slots; ++slot) {
      if (old_physical_to_logical[rank * slots + slot] == logical) return slot;
    }
    return -1;
  };

  Tensor result = Tensor::empty(local.dtype(), local.shape());
  auto* out = result.data_as<char>();
  const auto* in = local.data_as<const char>();
  for (std::int64_t slot = 0; slot < slots; ++slot) {
    const std::int32_t logical = new_physical_to_logical[rank * slots + slot];
    const std::int64_t here = held_here(logical);
    if (here >= 0) std::memcpy(out + slot * block, in + here * block, block);
  }
  // What rank `to` needs from rank `from`: new slots of `to` whose logical expert `to` lacks and `from`
  // serves.
  auto transfers = [&](int from, int to) {
    std::vector<std::pair<std::int64_t, std::int64_t>>
        list;  // (source slot on `from`, destination slot on `to`)
    for (std::int64_t slot = 0; slot < slots; ++slot) {
      const std::int32_t logical = new_physical_to_logical[to * slots + slot];
      bool to_has = false;
      for (std::int64_t s = 0; s < slots && !to_has; ++s)
        to_has = old_physical_to_logical[to * slots + s] == logical;
      if (to_has) continue;
      const auto& [owner, owner_slot] = source.at(logical);
      if (owner == from) list.emplace_back(owner_slot - from * slots, slot);
    }
    return list;
  };
  std::vector<char> send_buffer, receive_buffer;
  for (int distance = 1; distance < ranks; ++distance) {
    const int destination = (rank + distance) % ranks, origin = (rank - distance + ranks) % ranks;
    const auto outgoing = transfers(rank, destination), incoming = transfers(origin, rank);
    send_buffer.resize(outgoing.size() * block);
    receive_buffer.resize(incoming.size() * block);
    for (std::size_t i = 0; i < outgoing.size(); ++i) {
      std::memcpy(send_buffer.data() + i * block, in + outgoing[i].first * block, block);
    }
    communicator.send_receive_bytes(send_buffer.data(), send_buffer.size(), destination,
                                    receive_buffer.data(), receive_buffer.size(), origin, /*tag=*/distance);
    for (std::size_t i = 0; i < incoming.size(); ++i) {
      std::memcpy(out + incoming[i].second * block, receive_buffer.data() + i * block, block);
    }
  }
  return result;
}

}  // namespace fusedmoe
