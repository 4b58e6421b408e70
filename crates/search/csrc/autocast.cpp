// The dtype of CUDA autocast regions (tch exposes only autocast's on/off switch): float16, as
// libtorch's default, or bfloat16, which needs no loss scaling. The setting is libtorch's
// thread-local autocast state of the calling thread. Every function catches C++ exceptions.

#ifndef ADL_NO_AUTOCAST_DTYPE
#include <ATen/autocast_mode.h>
#endif

extern "C" {

// 0: float16, 1: bfloat16. Returns 0, or 1 when this build or libtorch cannot set it.
int adl_autocast_set_dtype(int code) {
#ifdef ADL_NO_AUTOCAST_DTYPE
  (void)code;
  return 1;
#else
  try {
    at::autocast::set_autocast_dtype(at::kCUDA, code == 1 ? at::kBFloat16 : at::kHalf);
    return 0;
  } catch (...) {
    return 1;
  }
#endif
}

// 0: float16, 1: bfloat16, -1: another dtype, or unreadable in this build.
int adl_autocast_get_dtype() {
#ifdef ADL_NO_AUTOCAST_DTYPE
  return -1;
#else
  try {
    auto dtype = at::autocast::get_autocast_dtype(at::kCUDA);
    return dtype == at::kHalf ? 0 : dtype == at::kBFloat16 ? 1 : -1;
  } catch (...) {
    return -1;
  }
#endif
}

}  // extern "C"
