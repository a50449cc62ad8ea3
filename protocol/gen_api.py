#!/usr/bin/env python3
"""Generates everything that follows from the API description (protocol/api/*.api).

One description, many outputs, so that no function's encoding is written twice:

  api_ids.h          call ids, names, modes                       (protocol/)
  api_wire.h         request and reply structs of every call      (protocol/)
  guest_remote.h/.cpp vgpu::remote::<call>: encode, call, decode  (shim/)
  guest_stubs.cpp    exported CUDA functions of `stub` calls       (shim/)
  guest_unsupported.cpp every other exported name: cudaErrorNotSupported + one log line
  libcudart.map      the ELF version script (node libcudart.so.13) (shim/)
  host_handler.h     the interface an executor implements          (actors/executor)
  host_dispatch.cpp  call id -> decode -> handler method, the one table

usage: gen_api.py API_FILE EXPORTS_LIST OUT_DIR [DRIVER_API_FILE DRIVER_EXPORTS_LIST]
                  [--library LIB_API_FILE LIB_EXPORTS_LIST]...

With the driver API's description (protocol/api/cuda.api) it also writes
  driver_unsupported.cpp  every libcuda.so.1 name vgpu does not implement: CUDA_ERROR_NOT_SUPPORTED
  libcuda.map             libcuda.so.1's export list (NVIDIA's has no symbol versions)

Each --library (cuBLAS, cuBLASLt, ...) is one more guest library whose calls
share the runtime's id space, wire, host handler and dispatch table. Its .api
file starts with a `library` line (see protocol/api/cublas.api) naming its
soname, version node, status type and values, and how statuses cross the wire.
For a library `<lib>` it writes
  <lib>_remote.h/.cpp      vgpu::remote::<call> returning the library's status type
  <lib>_stubs.cpp          exported functions of its `stub` calls
  <lib>_unsupported.cpp    every other exported name: the unsupported status + one log line
  <lib>.map                the version script (the library's node)
and adds its calls to api_ids.h, api_wire.h, host_handler.h, host_dispatch.cpp.
"""
import os
import re
import sys

# wire type -> (wire C++ type on both sides, default C type in the CUDA signature)
WIRE = {
    "i32": ("int32_t", "int"),
    "u32": ("uint32_t", "unsigned"),
    "u64": ("uint64_t", "unsigned long long"),
    "i64": ("int64_t", "int64_t"),
    "f32": ("float", "float"),
    "f64": ("double", "double"),
    # A host-issued id of a library object (a cuBLAS handle): the guest keeps
    # its own object and sends the id.
    "handle": ("uint64_t", "uint64_t"),
    # A scalar by value as raw bytes (alpha, beta, a reduction's result): its
    # type follows the call (float, double, half, complex, or a device pointer).
    "scalar": ("vgpu::protocol::scalar16", "vgpu::protocol::scalar16"),
    "size": ("uint64_t", "size_t"),
    "devptr": ("uint64_t", "void*"),
    "stream": ("uint64_t", "cudaStream_t"),
    "event": ("uint64_t", "cudaEvent_t"),
    "data": ("vgpu::protocol::data_ref", "vgpu::protocol::data_ref"),
    "blob": (None, "vgpu::protocol::blob"),  # trailing variable-length bytes, inline in the ring
    "raw": (None, None),
}
POINTERISH = {"devptr", "stream", "event"}

# Exported internals whose C return type is not cudaError_t; the unsupported
# stub must still return something a caller survives.
VOID_INTERNALS = {
    "__cudaRegisterFatBinaryEnd", "__cudaRegisterFunction", "__cudaRegisterVar",
    "__cudaRegisterManagedVar", "__cudaRegisterHostVar", "__cudaUnregisterFatBinary",
    "__cudaRegisterUnifiedTable",
}
POINTER_INTERNALS = {"__cudaRegisterFatBinary"}


class Param:
    def __init__(self, text, where):
        try:
            direction, wire, name = text.split(":")
        except ValueError:
            sys.exit(f"{where}: parameter '{text}' is not dir:wire[=ctype]:name")
        ctype = None
        if "=" in wire:
            wire, ctype = wire.split("=", 1)
        if direction not in ("in", "out"):
            sys.exit(f"{where}: direction must be in or out, not '{direction}'")
        if wire not in WIRE:
            sys.exit(f"{where}: unknown wire type '{wire}'")
        if wire == "raw" and not ctype:
            sys.exit(f"{where}: raw needs a ctype")
        self.nullable = name.endswith("?")  # an out pointer the caller may pass as NULL
        name = name.rstrip("?")
        self.dir, self.wire, self.name = direction, wire, name
        self.ctype = ctype or WIRE[wire][1]
        self.wtype = ctype if wire == "raw" else WIRE[wire][0]
        if wire == "blob" and direction != "in":
            sys.exit(f"{where}: blob parameters are inputs only")

    @property
    def is_out(self):
        return self.dir == "out"

    def c_param(self):
        if self.wire in ("data", "blob"):  # a place in the data area, whichever way the bytes go
            return f"{self.ctype} {self.name}"
        return f"{self.ctype}* {self.name}" if self.is_out else f"{self.ctype} {self.name}"

    def host_param(self):
        if self.wire == "blob":
            return f"vgpu::host::const_bytes {self.name}"
        if self.wire == "data":
            return f"vgpu::host::{'mut' if self.is_out else 'const'}_bytes {self.name}"
        return f"{self.wtype}* {self.name}" if self.is_out else f"{self.wtype} {self.name}"


OPTIONS = {"posted", "syncpoint", "ptsz"}


class Library:
    """A guest library beyond the runtime (cuBLAS, ...): its `library` line.

    library <lib> key=value...
      soname       the file name programs load (libcublas.so.13)
      node         the ELF version node of its exports (NVIDIA's, or `none`)
      header       the header that declares its status type (cublas_api.h)
      status       its status type (cublasStatus_t)
      success      the success value's name
      invalid      the value for a NULL out pointer (bad argument)
      unsupported  NAME:NUMBER, the answer of names vgpu does not implement
                   (numeric too: those stubs are compiled without the headers)
      ids          FIRST-LAST, the call ids this library may use
      wire_base    a failing status s travels as wire status wire_base + s
                   (outside every cudaError_t value), success as 0
      from_wire    guest function mapping a wire status (cudaError_t) back to the
                   status type: its own range, or a transport error
      posted_error the cudaError_t a failed posted call leaves for the next
                   synchronising call (the stream saw a failed library kernel)
    """
    KEYS = {"soname", "node", "header", "status", "success", "invalid", "unsupported", "ids",
            "wire_base", "from_wire", "posted_error"}

    def __init__(self, words, where):
        self.name = words[1]
        kv = {}
        for w in words[2:]:
            if "=" not in w:
                sys.exit(f"{where}: library settings are key=value, not '{w}'")
            k, v = w.split("=", 1)
            kv[k] = v
        missing, unknown = self.KEYS - set(kv), set(kv) - self.KEYS
        if missing or unknown:
            sys.exit(f"{where}: library line missing {sorted(missing)} unknown {sorted(unknown)}")
        self.__dict__.update(kv)
        self.unsupported_name, number = self.unsupported.split(":")
        self.unsupported_value = int(number, 0)
        first, last = self.ids.split("-")
        self.first_id, self.last_id = int(first, 16), int(last, 16)
        self.wire_base_value = int(self.wire_base, 0)
        if self.wire_base_value < 0x10000:
            sys.exit(f"{where}: wire_base must lie above every cudaError_t value")


class Call:
    def __init__(self, cid, name, guest, options, params, where, lib=None):
        self.id, self.name, self.guest, self.params = cid, name, guest, params
        self.lib = lib
        self.posted = "posted" in options
        self.syncpoint = "syncpoint" in options
        # Also export <name>_ptsz, what programs built with per-thread default
        # streams call: stream 0 there means cudaStreamPerThread.
        self.ptsz = "ptsz" in options
        if self.ptsz and guest != "stub":
            sys.exit(f"{where}: ptsz variants are generated for stub calls only")
        if self.ptsz and not any(p.wire == "stream" and not p.is_out for p in params):
            sys.exit(f"{where}: ptsz needs an input stream parameter")
        if guest not in ("stub", "custom"):
            sys.exit(f"{where}: guest must be stub or custom")
        if self.posted and (self.outs or any(p.wire == "data" for p in params)):
            sys.exit(f"{where}: a posted call has no outputs and no data-area bytes (the guest does not wait)")
        blobs = [i for i, p in enumerate(params) if p.wire == "blob"]
        if blobs and blobs != [len(params) - 1]:
            sys.exit(f"{where}: a blob must be the last parameter, and only one")
        if guest == "stub" and any(p.wire == "data" for p in params):
            sys.exit(f"{where}: data parameters need a custom guest function")

    @property
    def blob(self):
        return self.params[-1] if self.params and self.params[-1].wire == "blob" else None

    @property
    def ins(self):
        """Fields of the fixed request struct (a blob follows it, outside the struct)."""
        return [p for p in self.params if (not p.is_out or p.wire == "data") and p.wire != "blob"]

    @property
    def outs(self):
        return [p for p in self.params if p.is_out and p.wire != "data"]


def parse(path, want_library=False):
    calls, local = [], []
    ids, names = set(), set()
    lib = None
    for n, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{n}"
        words = line.split()
        if words[0] == "library":
            if not want_library or lib or calls or local:
                sys.exit(f"{where}: a library line comes first, once, in a --library description")
            lib = Library(words, where)
            continue
        if want_library and not lib:
            sys.exit(f"{where}: a --library description starts with its library line")
        if words[0] == "local" and len(words) == 2:
            local.append(words[1])
            name = words[1]
        elif words[0] == "call" and len(words) >= 4:
            cid = int(words[1], 16)
            if cid in ids or not 0 < cid < 0xFFFF:
                sys.exit(f"{where}: call id {words[1]} reused or out of range")
            ids.add(cid)
            if lib and not lib.first_id <= cid <= lib.last_id:
                sys.exit(f"{where}: call id {words[1]} outside {lib.name}'s range {lib.ids}")
            name = words[2]
            rest = words[4:]
            options = [w for w in rest if ":" not in w]
            unknown = set(options) - OPTIONS
            if unknown:
                sys.exit(f"{where}: unknown option(s) {sorted(unknown)}")
            params = [Param(p, where) for p in rest if ":" in p]
            calls.append(Call(cid, name, words[3], options, params, where, lib))
        else:
            sys.exit(f"{where}: cannot parse '{line}'")
        if name in names:
            sys.exit(f"{where}: {name} described twice")
        names.add(name)
    if want_library:
        return calls, local, lib
    return calls, local


def struct_fields(params, out):
    return [(p.wtype, p.name) for p in params] if params else []


def write(out_dir, name, text):
    path = os.path.join(out_dir, name)
    old = open(path).read() if os.path.exists(path) else None
    if old != text:  # keep timestamps stable so the build does not redo work
        with open(path, "w") as f:
            f.write(text)


HEADER = "// Generated by protocol/gen_api.py from protocol/api/*.api. Do not edit.\n"


def gen_ids(calls):
    enum = "\n".join(f"  {c.name} = 0x{c.id:04x}," for c in calls)
    cases = "\n".join(f'    case 0x{c.id:04x}: return "{c.name}";' for c in calls)
    b = lambda v: "true" if v else "false"
    traits = "\n".join(f"    case 0x{c.id:04x}: return {{true, {b(c.posted)}, {b(c.syncpoint)}}};" for c in calls)
    to_guest = "\n".join(f"    case 0x{c.id:04x}:" for c in calls
                          if any(p.is_out and p.wire == "data" for p in c.params))
    return f"""{HEADER}#pragma once
#include <cstdint>

namespace vgpu::protocol {{

enum class call_id : uint16_t {{
{enum}
}};

// How the host treats a call: a posted call gets no reply (an error it causes
// is kept and reported by the next syncpoint call of the channel, as CUDA
// reports asynchronous errors at the next synchronising call).
struct call_traits {{
  bool known;
  bool posted;
  bool syncpoint;
}};

inline call_traits traits_of(uint16_t id) {{
  switch (id) {{
{traits}
    default: return {{false, false, false}};
  }}
}}

// The name of a call id, or nullptr for an id this build does not know.
inline const char* call_name(uint16_t id) {{
  switch (id) {{
{cases}
    default: return nullptr;
  }}
}}

// Whether a call's data-area bytes (msg_header::data_len) flow to the guest
// (it has an out:data parameter) rather than from it: metrics count bytes each way.
inline bool data_to_guest(uint16_t id) {{
  switch (id) {{
{to_guest}
      return true;
    default: return false;
  }}
}}

}}  // namespace vgpu::protocol
"""


def gen_wire(calls):
    parts = []
    for c in calls:
        for kind, params in (("req", c.ins), ("rep", c.outs)):
            fields = "".join(f"  {t} {n};\n" for t, n in struct_fields(params, kind == "rep"))
            parts.append(
                f"struct {c.name}_{kind} {{\n{fields}"
                f"  static constexpr uint32_t wire_size();\n}};\n"
                f"constexpr uint32_t {c.name}_{kind}::wire_size() {{ return {('sizeof(' + c.name + '_' + kind + ')') if params else '0'}; }}\n"
                f"static_assert(std::is_trivially_copyable_v<{c.name}_{kind}>);\n")
    body = "\n".join(parts)
    return f"""{HEADER}#pragma once
#include <cstdint>
#include <type_traits>

#include <driver_types.h>

#include "protocol/message.h"
#include "protocol/device_status.h"  // raw struct of vgpuDeviceStatus (0x00F0)
#include "protocol/wire_types.h"

// One request and one reply struct per call, in description order. Both sides
// are built by the same compiler for x86-64; the structs are copied as bytes.
namespace vgpu::wire {{

{body}
}}  // namespace vgpu::wire
"""


def status_type(c):
    return c.lib.status if c.lib else "cudaError_t"


def remote_signature(c):
    params = ", ".join(p.c_param() for p in c.params)
    return f"{status_type(c)} {c.name}({params})"


def from_wire_decl(lib):
    """Declares the library's hand-written wire-status mapping for generated code."""
    ns, fn = lib.from_wire.rsplit("::", 1)
    return f"namespace {ns} {{\n{lib.status} {fn}(cudaError_t wire_status);\n}}  // namespace {ns}\n"


def gen_guest_remote(calls, lib=None, base="guest_remote"):
    decls = "\n".join(f"{remote_signature(c)};" for c in calls)
    lib_include = f"#include <{lib.header}>\n" if lib else ""
    lib_decl = ("\n// Maps a wire status to the library's status (hand-written in shim/).\n" + from_wire_decl(lib)) if lib else ""
    h = f"""{HEADER}#pragma once
#include <cuda_runtime_api.h>
{lib_include}
#include "protocol/message.h"
#include "protocol/device_status.h"  // raw struct of vgpuDeviceStatus (0x00F0)
#include "protocol/wire_types.h"
{lib_decl}
// vgpu::remote::<call>: encodes the arguments, sends the call through the
// guest transport, waits for the reply and decodes it. The exported CUDA
// functions (generated stubs or the hand-written ones) call these.
namespace vgpu::remote {{

{decls}

}}  // namespace vgpu::remote
"""
    # A library's statuses: its own values travel above wire_base; anything
    # else is a cudaError_t of the transport or host, mapped by from_wire.
    invalid = lib.invalid if lib else "cudaErrorInvalidValue"
    conv = (lambda e: f"{lib.from_wire}({e})") if lib else (lambda e: e)
    defs = []
    for c in calls:
        lines = [f"{remote_signature(c)} {{"]
        for p in c.outs:
            if not p.nullable:
                lines.append(f"  if ({p.name} == nullptr) return {invalid};")
        lines.append(f"  wire::{c.name}_req req{{}};")
        data_len = []
        for p in c.ins:
            if p.wire == "data":
                lines.append(f"  req.{p.name} = {p.name};")
                data_len.append(f"{p.name}.length")
            elif p.wire in POINTERISH:
                lines.append(f"  req.{p.name} = reinterpret_cast<uint64_t>({p.name});")
            elif p.wire == "scalar":
                lines.append(f"  req.{p.name} = {p.name};")
            else:
                lines.append(f"  req.{p.name} = static_cast<{p.wtype}>({p.name});")
        dl = " + ".join(data_len) if data_len else "0"
        tail = f"{c.blob.name}.data, {c.blob.name}.size" if c.blob else "nullptr, 0"
        if c.posted:
            lines.append(f"  return {conv(f'shim::guest_post(0x{c.id:04x}, &req, wire::{c.name}_req::wire_size(), {tail})')};")
            lines.append("}")
            defs.append("\n".join(lines))
            continue
        lines.append(f"  wire::{c.name}_rep rep{{}};")
        lines.append(f"  const cudaError_t st = shim::guest_call(0x{c.id:04x}, &req, wire::{c.name}_req::wire_size(),")
        lines.append(f"                                          &rep, wire::{c.name}_rep::wire_size(), {dl}, {tail});")
        if c.outs:
            lines.append(f"  if (st != cudaSuccess) return {conv('st')};")
            for p in c.outs:
                guard = f"if ({p.name}) " if p.nullable else ""
                if p.wire in POINTERISH:
                    lines.append(f"  {guard}*{p.name} = reinterpret_cast<{p.ctype}>(static_cast<uintptr_t>(rep.{p.name}));")
                elif p.wire == "scalar":
                    lines.append(f"  {guard}*{p.name} = rep.{p.name};")
                else:
                    lines.append(f"  {guard}*{p.name} = static_cast<{p.ctype}>(rep.{p.name});")
        lines.append(f"  return {conv('st')};")
        lines.append("}")
        defs.append("\n".join(lines))
    checks = ""
    if lib:
        checks = (f"// The number the unsupported stubs return (compiled without the headers) is this value.\n"
                  f"static_assert(static_cast<int>({lib.unsupported_name}) == {lib.unsupported_value});\n\n")
    cpp = f"""{HEADER}#include "{base}.h"

#include <cstdint>

#include "api_wire.h"
#include "shim/transport/guest_call.h"

{checks}namespace vgpu::remote {{

{chr(10).join(d + chr(10) for d in defs)}
}}  // namespace vgpu::remote
"""
    return h, cpp


def gen_guest_stubs(calls):
    fns = []
    for c in calls:
        if c.guest != "stub":
            continue
        args = ", ".join(p.name for p in c.params)
        fns.append(f'extern "C" {remote_signature(c)} {{\n'
                   f"  return vgpu::shim::finish(vgpu::remote::{c.name}({args}));\n}}\n")
        if c.ptsz:
            pargs = ", ".join(f"{p.name} ? {p.name} : cudaStreamPerThread" if p.wire == "stream" and not p.is_out
                              else p.name for p in c.params)
            params = ", ".join(p.c_param() for p in c.params)
            fns.append(f'extern "C" cudaError_t {c.name}_ptsz({params}) {{\n'
                       f"  return vgpu::shim::finish(vgpu::remote::{c.name}({pargs}));\n}}\n")
    return f"""{HEADER}// The exported CUDA functions whose whole job is to remote one call. They are
// compiled against NVIDIA's own declarations, so a signature that drifts from
// the header is a compile error.
#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cudart/last_error.h"

{chr(10).join(fns)}"""


def gen_unsupported(names):
    fns = []
    for n in names:
        if n in VOID_INTERNALS:
            fns.append(f'extern "C" void {n}() {{ vgpu::shim::not_supported("{n}"); }}')
        elif n in POINTER_INTERNALS:
            fns.append(f'extern "C" void** {n}() {{ vgpu::shim::not_supported("{n}"); '
                       f"return vgpu::shim::unsupported_handle(); }}")
        else:
            fns.append(f'extern "C" int {n}() {{ return vgpu::shim::not_supported("{n}"); }}')
    return f"""{HEADER}// Every name NVIDIA's libcudart.so.13 exports that vgpu does not implement yet.
// Each returns cudaErrorNotSupported (internals that return void or a handle
// return nothing or a dummy handle) and logs its name once: never a crash,
// never a fake success. Deliberately compiled without the CUDA headers: these
// definitions do not claim NVIDIA's signatures, they only answer the symbol.
#include "shim/cudart/unsupported.h"

{chr(10).join(fns)}
"""


def gen_lib_stubs(calls, lib):
    fns = []
    for c in calls:
        if c.guest != "stub":
            continue
        args = ", ".join(p.name for p in c.params)
        fns.append(f'extern "C" {remote_signature(c)} {{\n  return vgpu::remote::{c.name}({args});\n}}\n')
    return f"""{HEADER}// The exported {lib.name} functions whose whole job is to remote one call,
// compiled against NVIDIA's declarations ({lib.header}).
#include <{lib.header}>

#include "{lib.name}_remote.h"

{chr(10).join(fns)}"""


def gen_lib_unsupported(names, lib):
    fns = "\n".join(f'extern "C" int {n}() {{ return vgpu::shim::library_not_supported("{lib.name}", "{n}", '
                    f"{lib.unsupported_value}); }}" for n in names)
    return f"""{HEADER}// Every name NVIDIA's {lib.soname} exports that vgpu does not implement yet:
// {lib.unsupported_name} ({lib.unsupported_value}) and one log line, never a crash or a fake success.
// Compiled without the CUDA headers: these do not claim NVIDIA's signatures.
#include "shim/transport/library_unsupported.h"

{fns}
"""


def gen_version_script(exports, extra, node="libcudart.so.13"):
    names = "\n".join(f"    {n};" for n in sorted(set(exports) | set(extra)))
    if node == "none":
        return f"""/* {HEADER.strip()[3:]} */
{{
  global:
{names}
  local:
    *;
}};
"""
    return f"""/* {HEADER.strip()[3:]} */
{node} {{
  global:
{names}
  local:
    *;
}};
"""


def gen_host_handler(calls):
    methods = []
    for c in calls:
        params = ", ".join(["call_context& ctx"] + [p.host_param() for p in c.params])
        methods.append(f"  virtual {status_type(c)} on_{c.name}({params}) = 0;")
    overrides = " \\\n".join(
        "  {} on_{}({}) override;".format(status_type(c), c.name, ", ".join(["call_context& ctx"] + [p.host_param() for p in c.params]))
        for c in calls)
    headers = sorted({c.lib.header for c in calls if c.lib})
    lib_includes = "".join(f"#include <{h}>\n" for h in headers)
    return f"""{HEADER}#pragma once
#include <cstdint>

#include <driver_types.h>
{lib_includes}
#include "actors/executor/call_context.h"
#include "protocol/device_status.h"  // raw struct of vgpuDeviceStatus (0x00F0)
#include "protocol/wire_types.h"

// Every handler method, for an executor session's class body: adding a call
// to the description declares it in each executor, and the linker then asks
// for its definition.
#define VGPU_API_HANDLER_OVERRIDES \\
{overrides}

namespace vgpu::host {{

// What an executor session implements: one method per remoted call, taking the
// decoded wire values (handles are host-issued ids, data are bounds-checked
// spans of the channel data area). Returns a cudaError_t for the guest, or
// the library's own status for a library's call (cuBLAS: cublasStatus_t).
class api_handler {{
 public:
  virtual ~api_handler() = default;
  // Device memory this session holds (its allocation ledger), for vgpuctl and
  // the metrics; read on the worker thread after each call.
  virtual uint64_t device_bytes() const {{ return 0; }}
{chr(10).join(methods)}
}};

}}  // namespace vgpu::host
"""


def gen_host_dispatch(calls):
    cases = []
    for c in calls:
        lines = [f"    case 0x{c.id:04x}: {{  // {c.name}"]
        if c.blob:
            lines.append(f"      if (m.arg_len < wire::{c.name}_req::wire_size()) return malformed(m);")
            lines.append(f"      const const_bytes {c.blob.name}_bytes{{args + wire::{c.name}_req::wire_size(), m.arg_len - wire::{c.name}_req::wire_size()}};")
        else:
            lines.append(f"      if (m.arg_len != wire::{c.name}_req::wire_size()) return malformed(m);")
        lines.append(f"      wire::{c.name}_req req{{}};")
        lines.append(f"      std::memcpy(static_cast<void*>(&req), args, wire::{c.name}_req::wire_size());")
        lines.append(f"      wire::{c.name}_rep rep;")
        lines.append("      std::memset(static_cast<void*>(&rep), 0, sizeof rep);  // no host bytes leak through padding")
        for p in c.params:
            if p.wire == "data":
                kind = "mut" if p.is_out else "const"
                lines.append(f"      {kind}_bytes {p.name}_span;")
                lines.append(f"      if (!data.resolve_{kind}(req.{p.name}, &{p.name}_span)) return bad_data_ref(m);")
        args = ["ctx"]
        for p in c.params:
            if p.wire == "blob":
                args.append(f"{p.name}_bytes")
            elif p.wire == "data":
                args.append(f"{p.name}_span")
            elif p.is_out:
                args.append(f"&rep.{p.name}")
            else:
                args.append(f"req.{p.name}")
        if c.lib:
            # The library's status crosses the wire above its wire_base; a posted
            # call's failure is kept as a CUDA error for the next synchronising call.
            lines.append(f"      const {c.lib.status} lst = h.on_{c.name}({', '.join(args)});")
            fail = c.lib.posted_error if c.posted else f"static_cast<cudaError_t>({c.lib.wire_base} + static_cast<int>(lst))"
            lines.append(f"      const cudaError_t st = lst == {c.lib.success} ? cudaSuccess : {fail};")
        else:
            lines.append(f"      const cudaError_t st = h.on_{c.name}({', '.join(args)});")
        lines.append(f"      static_assert(wire::{c.name}_rep::wire_size() <= kMaxReplyBytes);")
        lines.append(f"      std::memcpy(reply, static_cast<const void*>(&rep), wire::{c.name}_rep::wire_size());")
        lines.append(f"      *reply_len = wire::{c.name}_rep::wire_size();")
        lines.append("      return st;")
        lines.append("    }")
        cases.append("\n".join(lines))
    return f"""{HEADER}// The one table from each call id to its handler: decode (the arguments were
// already copied out of the shared ring), check sizes and data references,
// call the executor session, encode the reply.
#include "actors/executor/dispatch.h"

#include <cstring>

#include "api_wire.h"

namespace vgpu::host {{

namespace {{
cudaError_t malformed(const protocol::msg_header&) {{ return cudaErrorInvalidValue; }}
cudaError_t bad_data_ref(const protocol::msg_header&) {{ return cudaErrorInvalidValue; }}
}}  // namespace

cudaError_t dispatch(api_handler& h, call_context& ctx, const protocol::msg_header& m,
                     const uint8_t* args, const data_area& data, uint8_t* reply,
                     uint32_t* reply_len) {{
  *reply_len = 0;
  switch (m.call_id) {{
{chr(10).join(cases)}
    default:
      return cudaErrorNotSupported;
  }}
}}

}}  // namespace vgpu::host
"""


def gen_driver(api, exports_path, out):
    calls, local = parse(api)
    if calls:
        sys.exit(f"{api}: driver calls reuse the runtime's wire calls for now; only 'local' lines")
    exports = [l.strip() for l in open(exports_path) if l.strip()]
    for n in local:
        if n not in exports:
            sys.exit(f"{api}: {n} is not a name libcuda.so.1 exports (typo?)")
    rest = [n for n in exports if n not in set(local)]
    fns = "\n".join(f'extern "C" int {n}() {{ return vgpu::shim::driver_not_supported("{n}"); }}' for n in rest)
    write(out, "driver_unsupported.cpp", f"""{HEADER}// Every name NVIDIA's libcuda.so.1 exports that vgpu does not implement yet:
// CUDA_ERROR_NOT_SUPPORTED and one log line, never a crash or a fake success.
// Compiled without the CUDA headers: these do not claim NVIDIA's signatures.
#include "shim/cuda/driver_unsupported.h"

{fns}
""")
    names = "\n".join(f"    {n};" for n in sorted(set(exports)))
    write(out, "libcuda.map", f"""/* {HEADER.strip()[3:]} */
{{
  global:
{names}
    extern "C++" {{
      vgpu::*;
    }};
  local:
    *;
}};
""")


def gen_library(api, exports_path, out, taken_ids):
    """One --library: its guest files; returns its calls for the shared host tables."""
    calls, local, lib = parse(api, want_library=True)
    for c in calls:
        if c.id in taken_ids:
            sys.exit(f"{api}: call id 0x{c.id:04x} ({c.name}) is taken by another description")
        taken_ids.add(c.id)
    exports = [l.strip() for l in open(exports_path) if l.strip()]
    exported = set(exports)
    guest_defined = {c.name for c in calls if c.guest == "stub"} | set(local)
    for n in sorted(guest_defined):
        if n not in exported:
            sys.exit(f"{api}: {n} is not a name {lib.soname} exports (typo?)")
    h, cpp = gen_guest_remote(calls, lib, f"{lib.name}_remote")
    write(out, f"{lib.name}_remote.h", h)
    write(out, f"{lib.name}_remote.cpp", cpp)
    write(out, f"{lib.name}_stubs.cpp", gen_lib_stubs(calls, lib))
    write(out, f"{lib.name}_unsupported.cpp", gen_lib_unsupported([n for n in exports if n not in guest_defined], lib))
    write(out, f"{lib.name}.map", gen_version_script(exports, [], lib.node))
    return calls


def main():
    libraries = []
    while "--library" in sys.argv:
        i = sys.argv.index("--library")
        if len(sys.argv) < i + 3:
            sys.exit(__doc__)
        libraries.append((sys.argv[i + 1], sys.argv[i + 2]))
        del sys.argv[i:i + 3]
    if len(sys.argv) == 6:
        os.makedirs(sys.argv[3], exist_ok=True)
        gen_driver(sys.argv[4], sys.argv[5], sys.argv[3])
        sys.argv = sys.argv[:4]
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    api, exports_path, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    calls, local = parse(api)
    runtime_calls = list(calls)
    taken = {c.id for c in calls}
    for lib_api, lib_exports in libraries:
        calls += gen_library(lib_api, lib_exports, out, taken)
    calls.sort(key=lambda c: c.id)
    exports = [l.strip() for l in open(exports_path) if l.strip()]
    exported = set(exports)
    guest_defined = {c.name for c in runtime_calls if c.name.startswith("cuda")} | set(local)
    guest_defined |= {c.name + "_ptsz" for c in runtime_calls if c.ptsz}
    for n in sorted(guest_defined):
        if n not in exported:
            sys.exit(f"{api}: {n} is not a name libcudart.so.13 exports (typo?)")
    os.makedirs(out, exist_ok=True)
    write(out, "api_ids.h", gen_ids(calls))
    write(out, "api_wire.h", gen_wire(calls))
    h, cpp = gen_guest_remote(runtime_calls)
    write(out, "guest_remote.h", h)
    write(out, "guest_remote.cpp", cpp)
    write(out, "guest_stubs.cpp", gen_guest_stubs(runtime_calls))
    write(out, "guest_unsupported.cpp", gen_unsupported([n for n in exports if n not in guest_defined]))
    write(out, "libcudart.map", gen_version_script(exports, ["vgpuShimInfo", "vgpuDebugLaunchRecord"]))
    write(out, "host_handler.h", gen_host_handler(calls))
    write(out, "host_dispatch.cpp", gen_host_dispatch(calls))


if __name__ == "__main__":
    main()
