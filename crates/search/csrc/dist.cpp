// The collective engine of distributed runs (docs/distributed.md): libtorch's own c10d process
// groups, reached from Rust through this C interface. Rendezvous through c10d's TCPStore (the
// MASTER_ADDR / MASTER_PORT of torchrun); Gloo on the CPU and NCCL on CUDA, both as built into
// libtorch. Every function catches C++ exceptions and returns their message, so that a failure
// (a peer that died, a timeout) becomes a Rust error naming it, never an abort.

#ifndef ADL_NO_C10D
#ifdef ADL_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#else
#include <ATen/ATen.h>
#endif
#ifdef ADL_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace {

#ifndef ADL_NO_C10D
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};
#else
struct Group {};
const char* NO_C10D =
    "distributed runs are unavailable in this build: the c10d shim did not compile against this libtorch "
    "(see the build warnings of the search crate)";
#endif

char* copy_message(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  std::memcpy(out, message.c_str(), message.size() + 1);
  return out;
}

template <typename F>
int guarded(char** error, F body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    *error = copy_message(e.what());
  } catch (...) {
    *error = copy_message("unknown C++ exception");
  }
  return 1;
}

std::vector<at::Tensor> tensors_of(at::Tensor** tensors, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(*tensors[i]);
  return out;
}

}  // namespace

extern "C" {

// Whether this build can run NCCL.
int adl_dist_has_nccl() {
#ifdef ADL_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}

// Joins the group of `size` ranks whose store rank 0 serves at addr:port. backend: "gloo" or
// "nccl". Returns the group, or null with *error set.
void* adl_dist_init(const char* backend, const char* addr, int port, int rank, int size,
                    int64_t timeout_ms, char** error) {
  Group* group = nullptr;
#ifdef ADL_NO_C10D
  *error = copy_message(NO_C10D);
  return nullptr;
#else
  int failed = guarded(error, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(port);
    options.isServer = rank == 0;
    options.numWorkers = size;
    options.waitWorkers = true;
    options.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), options);
    c10::intrusive_ptr<c10d::Backend> pg;
    if (std::string(backend) == "gloo") {
#ifdef ADL_WITH_GLOO
      auto gloo = c10d::ProcessGroupGloo::Options::create();
      gloo->timeout = timeout;
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo);
#else
      throw std::runtime_error(
          "this build of search has no Gloo (its headers were missing at build time: run scripts/setup.sh, "
          "which installs libgloo-dev, then rebuild)");
#endif
    } else if (std::string(backend) == "nccl") {
#ifdef ADL_WITH_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, nccl);
#else
      throw std::runtime_error("this build of search has no NCCL (built against a libtorch without CUDA)");
#endif
    } else {
      throw std::runtime_error("unknown backend " + std::string(backend));
    }
    group = new Group{store, pg, timeout};
  });
  return failed ? nullptr : group;
#endif
}

// Sums `tensors` across ranks, in place.
int adl_dist_allreduce_sum(void* g, at::Tensor** tensors, int n, char** error) {
#ifdef ADL_NO_C10D
  *error = copy_message(NO_C10D);
  return 1;
#else
  return guarded(error, [&] {
    auto group = static_cast<Group*>(g);
    auto ts = tensors_of(tensors, n);
    group->backend->allreduce(ts)->wait(group->timeout);
  });
#endif
}

// Copies rank `root`'s `tensors` to every rank.
int adl_dist_broadcast(void* g, at::Tensor** tensors, int n, int root, char** error) {
#ifdef ADL_NO_C10D
  *error = copy_message(NO_C10D);
  return 1;
#else
  return guarded(error, [&] {
    auto group = static_cast<Group*>(g);
    auto ts = tensors_of(tensors, n);
    c10d::BroadcastOptions options;
    options.rootRank = root;
    group->backend->broadcast(ts, options)->wait(group->timeout);
  });
#endif
}

// Waits until every rank has called it.
int adl_dist_barrier(void* g, char** error) {
#ifdef ADL_NO_C10D
  *error = copy_message(NO_C10D);
  return 1;
#else
  return guarded(error, [&] {
    auto group = static_cast<Group*>(g);
    group->backend->barrier()->wait(group->timeout);
  });
#endif
}

void adl_dist_free(void* g) { delete static_cast<Group*>(g); }

void adl_dist_free_string(char* s) { std::free(s); }

}  // extern "C"
