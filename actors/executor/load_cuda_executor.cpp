// Loads the `cuda` executor at run time. The mediator itself links nothing of
// NVIDIA's, so it starts on a machine without a driver; only this dlopen()
// finds out whether libcuda.so.1 (and a GPU) are there.
#include <dlfcn.h>

#include <memory>
#include <string>
#include <utility>

#include "actors/executor/executor.h"

namespace vgpu::host {

namespace {

void set_why(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
}

std::string last_dl_error(const char* fallback) {
  const char* e = dlerror();
  return e != nullptr ? std::string(e) : std::string(fallback);
}

}  // namespace

std::unique_ptr<executor> load_cuda_executor(const std::string& module_dir, std::string* why) {
  const std::string path = module_dir + "/libvgpu-executor-cuda.so";
  // The handle is never closed, on success or failure: the executor's code
  // (vtables, destructors) lives in the module, and libcuda starts threads
  // that must not have their code unmapped under them once cuInit ran.
  void* module = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (module == nullptr) {
    set_why(why, last_dl_error("dlopen failed"));
    return nullptr;
  }
  dlerror();  // clear, so that a failure below reports its own cause
  void* sym = dlsym(module, kCudaExecutorFactory);
  if (sym == nullptr) {
    set_why(why, path + ": " + last_dl_error("no executor factory in the module"));
    return nullptr;
  }
  const auto factory = reinterpret_cast<cuda_executor_factory>(sym);
  std::string reason;
  std::unique_ptr<executor> exec(factory(&reason));
  if (!exec) {
    set_why(why, reason.empty() ? std::string("the cuda executor refused to start") : reason);
    return nullptr;
  }
  return exec;
}

}  // namespace vgpu::host
