// GPU memory as libtorch's caching allocator counts it (the figures behind PyTorch's
// torch.cuda.memory_allocated / max_memory_reserved), through c10's device-allocator interface:
// only c10's headers are needed, no CUDA headers. NVML cannot always see a process's memory (in a
// container its process table holds the host's pids), the allocator always can. Every function
// catches C++ exceptions and writes their message into the caller's buffer, never aborting.

#ifndef ADL_NO_ALLOCATOR_STATS
#include <c10/core/CachingDeviceAllocator.h>
#endif

#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

namespace {

void write_message(const std::string& message, char* error, size_t len) {
  if (error == nullptr || len == 0) return;
  std::strncpy(error, message.c_str(), len - 1);
  error[len - 1] = '\0';
}

template <typename F>
int guarded(char* error, size_t len, F body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    write_message(e.what(), error, len);
  } catch (...) {
    write_message("unknown C++ exception", error, len);
  }
  return 1;
}

}  // namespace

extern "C" {

// out[0..4]: allocated bytes now, their peak, reserved bytes now, their peak (aggregate pools).
int adl_cuda_memory(int device, int64_t* out, char* error, size_t len) {
#ifdef ADL_NO_ALLOCATOR_STATS
  write_message("the allocator statistics did not compile against this libtorch", error, len);
  return 1;
#else
  return guarded(error, len, [&] {
    auto* allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    auto stats = allocator->getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out[0] = stats.allocated_bytes[all].current;
    out[1] = stats.allocated_bytes[all].peak;
    out[2] = stats.reserved_bytes[all].current;
    out[3] = stats.reserved_bytes[all].peak;
  });
#endif
}

}  // extern "C"
