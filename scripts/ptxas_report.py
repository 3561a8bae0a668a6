#!/usr/bin/env python3
"""Registers, spills and wgmma serialization of every hand-written CUDA kernel configuration,
without a GPU: each source is compiled the way CubeCL's CUDA runtime compiles it (NVRTC,
`--gpu-architecture=sm_90a -lineinfo`, the CUDA include folder), then assembled by `ptxas -v`
(the driver does the same at load time, silently: its warnings never reach us).

Usage:
  GPU_CHECK_ONLY=dump_sources GPU_CHECK_DUMP_DIR=/tmp/ks target/release/examples/gpu_check
  python3 scripts/ptxas_report.py /tmp/ks [entry-substring ...] > report.jsonl

Needs libnvrtc (NVRTC_LIB, else found by name), `ptxas` (PTXAS, else on PATH) and the CUDA
headers (CUDA_INCLUDE). On the GPU machine the toolkit has all three; on a machine without one
the pip wheels nvidia-cuda-nvrtc, nvidia-cuda-nvcc and nvidia-cuda-runtime hold them. Take the
GPU machine's version (`pip download --no-deps 'nvidia-cuda-nvrtc==13.0.*'
'nvidia-cuda-nvcc==13.0.*'`, then unzip the wheels): a newer NVRTC accepts code 13.0 rejects
(session 8 lost a GPU run to a generic lambda that 13.5 took).
PTXAS_KEEP=<folder> keeps the cubins (disassemble with `cuobjdump -sass`).
Prints one JSON line per kernel: registers, spill bytes, stack frame, shared memory, and any
"C7515"-style message (ptxas serializing wgmma, which would stall every k-step), then a summary.
"""
import concurrent.futures
import ctypes
import ctypes.util
import json
import os
import re
import subprocess
import sys
import tempfile

ARCH = os.environ.get("PTXAS_ARCH", "sm_90a")


def first_existing(*paths):
    return next((p for p in paths if p and os.path.exists(p)), None)


def load_nvrtc():
    name = (os.environ.get("NVRTC_LIB") or ctypes.util.find_library("nvrtc")
            or first_existing("/usr/local/cuda/lib64/libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so.13")
            or "libnvrtc.so")
    lib = ctypes.CDLL(name)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def nvrtc_ptx(lib, source, name, include):
    """PTX of `source` (bytes), or raises with NVRTC's log."""
    prog = ctypes.c_void_p()

    def check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: {lib.nvrtcGetErrorString(rc).decode()}")

    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source, name.encode(), 0, None, None), "create")
    opts = [f"--gpu-architecture={ARCH}".encode(), f"--include-path={include}".encode(), b"-lineinfo"]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
    if rc != 0:
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        raise RuntimeError("NVRTC: " + log.value.decode(errors="replace")[-2000:])
    size = ctypes.c_size_t()
    check(lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "ptx size")
    ptx = ctypes.create_string_buffer(size.value)
    check(lib.nvrtcGetPTX(prog, ptx), "ptx")
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value


def report(lib, ptxas, include, path):
    entry = os.path.basename(path)[:-3]
    line = {"entry": entry}
    try:
        ptx = nvrtc_ptx(lib, open(path, "rb").read(), entry + ".cu", include)
    except RuntimeError as e:
        line["error"] = str(e)
        return line
    with tempfile.TemporaryDirectory() as d:
        ptx_path = os.path.join(d, "k.ptx")
        with open(ptx_path, "wb") as f:
            f.write(ptx)
        # PTXAS_KEEP=<folder>: keep each cubin there (for `cuobjdump -sass`).
        keep = os.environ.get("PTXAS_KEEP")
        cubin = os.path.join(keep, entry + ".cubin") if keep else os.path.join(d, "k.cubin")
        out = subprocess.run([ptxas, f"-arch={ARCH}", "-v", "--warn-on-spills", ptx_path, "-o",
                              cubin], capture_output=True, text=True)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        line["error"] = "ptxas: " + text[-2000:]
        return line
    num = lambda pattern: int(m.group(1)) if (m := re.search(pattern, text)) else None
    line.update({
        "registers": num(r"Used (\d+) registers"),
        "spill_stores": num(r"(\d+) bytes spill stores"),
        "spill_loads": num(r"(\d+) bytes spill loads"),
        "stack": num(r"(\d+) bytes stack frame"),
        "smem": num(r"(\d+) bytes smem"),
    })
    # Performance remarks (C7511, C7512, C7515: wgmma serialized, and why).
    remarks = re.findall(r"\(C\d{4}\)[^\n]*", text)
    if remarks:
        line["remarks"] = remarks[:4]
    return line


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder, wanted = sys.argv[1], sys.argv[2:]
    include = os.environ.get("CUDA_INCLUDE", "/usr/local/cuda/include")
    ptxas = os.environ.get("PTXAS") or first_existing("/usr/local/cuda/bin/ptxas") or "ptxas"
    lib = load_nvrtc()
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".cu")
                   and (not wanted or any(w in f for w in wanted)))
    bad = 0
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        for line in pool.map(lambda p: report(lib, ptxas, include, p), files):
            print(json.dumps(line), flush=True)
            bad += bool(line.get("error") or line.get("remarks") or line.get("spill_stores"))
    print(json.dumps({"summary": f"{len(files)} kernels, {bad} with an error, a remark or spills"}))


if __name__ == "__main__":
    main()
