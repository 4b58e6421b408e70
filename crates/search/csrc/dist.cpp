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
#include <torch/csrc/autograd/custom_function.h>
#else
#include <ATen/ATen.h>
#endif
#ifdef ADL_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
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
// `device`: this rank's CUDA device for NCCL (made the current device and bound to the group,
// as torch.cuda.set_device and init_process_group(device_id=...) do); ignored by Gloo.
void* adl_dist_init(const char* backend, const char* addr, int port, int rank, int size, int device,
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
      auto index = static_cast<c10::DeviceIndex>(device);
      c10::cuda::set_device(index);
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, nccl);
      pg->setBoundDeviceId(at::Device(at::kCUDA, index));
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

// Sets `key` to `value` in the group's store (progress records of the ranks).
int adl_dist_store_set(void* g, const char* key, const char* value, char** error) {
#ifdef ADL_NO_C10D
  *error = copy_message(NO_C10D);
  return 1;
#else
  return guarded(error, [&] {
    auto group = static_cast<Group*>(g);
    std::string v(value);
    group->store->set(std::string(key), std::vector<uint8_t>(v.begin(), v.end()));
  });
#endif
}

// The value of `key` in the group's store, or null (without error) when it is not there.
char* adl_dist_store_get(void* g, const char* key, char** error) {
#ifdef ADL_NO_C10D
  *error = copy_message(NO_C10D);
  return nullptr;
#else
  char* out = nullptr;
  guarded(error, [&] {
    auto group = static_cast<Group*>(g);
    std::string k(key);
    if (!group->store->check({k})) return;
    auto bytes = group->store->get(k);
    out = copy_message(std::string(bytes.begin(), bytes.end()));
  });
  return out;
#endif
}

#ifndef ADL_NO_C10D
}  // extern "C"

namespace {

// Synchronised batch norm in training mode: the batch statistics of every rank's batch together
// (all-reduced sums), the running statistics updated with them, and the backward pass
// all-reducing the sums it needs, as torch.nn.SyncBatchNorm does. The weight and bias
// gradients stay local sums, which the gradient averaging of the step then averages.
struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var, double momentum,
                            double eps, int64_t group_address) {
    auto group = reinterpret_cast<Group*>(group_address);
    std::vector<int64_t> dims{0, 2, 3};
    // Sums in double precision: E[x^2] - E[x]^2 loses digits in single precision.
    auto xf = x.to(at::kFloat);
    auto xd = x.to(at::kDouble);
    auto c = x.size(1);
    double local = static_cast<double>(x.numel() / c);
    auto stats = at::cat({xd.sum(dims), (xd * xd).sum(dims), at::full({1}, local, xd.options())});
    std::vector<at::Tensor> ts{stats};
    group->backend->allreduce(ts)->wait(group->timeout);
    auto sum = stats.narrow(0, 0, c), sumsq = stats.narrow(0, c, c);
    double total = stats[2 * c].item<double>();
    auto mean = (sum / total);
    auto var = (sumsq / total - mean * mean).clamp_min(0);
    auto invstd = (var + eps).rsqrt().to(at::kFloat);
    auto meanf = mean.to(at::kFloat);
    {
      at::NoGradGuard guard;
      running_mean.mul_(1 - momentum).add_(meanf.to(running_mean.dtype()), momentum);
      double unbias = total > 1 ? total / (total - 1) : 1.0;
      running_var.mul_(1 - momentum).add_((var * unbias).to(running_var.dtype()), momentum);
    }
    auto shape = std::vector<int64_t>{1, c, 1, 1};
    auto xhat = (xf - meanf.view(shape)) * invstd.view(shape);
    auto y = xhat;
    if (weight.defined()) y = y * weight.to(at::kFloat).view(shape);
    if (bias.defined()) y = y + bias.to(at::kFloat).view(shape);
    ctx->save_for_backward({xhat, invstd, weight});
    ctx->saved_data["total"] = total;
    ctx->saved_data["group"] = group_address;
    ctx->saved_data["has_bias"] = bias.defined();
    return y.to(x.dtype());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto xhat = saved[0], invstd = saved[1], weight = saved[2];
    double total = ctx->saved_data["total"].toDouble();
    auto group = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    std::vector<int64_t> dims{0, 2, 3};
    auto dy = grads[0].to(at::kFloat);
    auto c = xhat.size(1);
    auto local_dy = dy.sum(dims), local_dy_xhat = (dy * xhat).sum(dims);
    auto sums = at::cat({dy.to(at::kDouble).sum(dims), (dy.to(at::kDouble) * xhat.to(at::kDouble)).sum(dims)});
    std::vector<at::Tensor> ts{sums};
    group->backend->allreduce(ts)->wait(group->timeout);
    auto shape = std::vector<int64_t>{1, c, 1, 1};
    auto scale = invstd;
    if (weight.defined()) scale = scale * weight.to(at::kFloat);
    auto mean_dy = (sums.narrow(0, 0, c) / total).to(at::kFloat);
    auto mean_dy_xhat = (sums.narrow(0, c, c) / total).to(at::kFloat);
    auto dx = scale.view(shape) * (dy - mean_dy.view(shape) - xhat * mean_dy_xhat.view(shape));
    at::Tensor dweight, dbias;
    if (weight.defined()) dweight = local_dy_xhat.to(weight.dtype());
    if (ctx->saved_data["has_bias"].toBool()) dbias = local_dy.to(grads[0].dtype());
    return {dx.to(grads[0].dtype()), dweight, dbias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

extern "C" {

// Synchronised batch norm of x ([N, C, H, W]) across the group (training mode); weight and bias
// may be null. Returns a new tensor, or null with *error set.
at::Tensor* adl_dist_sync_batch_norm(void* g, at::Tensor* x, at::Tensor* weight, at::Tensor* bias,
                                     at::Tensor* running_mean, at::Tensor* running_var, double momentum, double eps,
                                     char** error) {
  at::Tensor* out = nullptr;
  guarded(error, [&] {
    auto w = weight ? *weight : at::Tensor();
    auto b = bias ? *bias : at::Tensor();
    auto y = SyncBatchNorm::apply(*x, w, b, *running_mean, *running_var, momentum, eps,
                                  reinterpret_cast<int64_t>(g));
    out = new at::Tensor(y);
  });
  return out;
}
#else
at::Tensor* adl_dist_sync_batch_norm(void*, at::Tensor*, at::Tensor*, at::Tensor*, at::Tensor*, at::Tensor*, double,
                                     double, char** error) {
  *error = copy_message(NO_C10D);
  return nullptr;
}
#endif

void adl_dist_free_string(char* s) { std::free(s); }

}  // extern "C"
