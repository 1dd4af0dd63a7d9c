"""dlbox smoke test, run inside a freshly built image with its own Python (stdlib only).

Settings come from the environment:
    DLBOX_SMOKE_FRAMEWORK  torch | tensorflow | jax
    DLBOX_SMOKE_VERSION    the exact version the lock pinned ("2.13.0+cpu")
    DLBOX_SMOKE_CUDA       CUDA the build must carry ("12.6"), empty for a CPU build
    DLBOX_SMOKE_GPU        1: a GPU is attached, check it (visible, matmul, conv, arch list)
    DLBOX_SMOKE_IMPORTS    comma-separated modules of the project to import
    DLBOX_SMOKE_COMPANIONS the framework's companions (torchvision, ...): imported if installed
    DLBOX_SMOKE_SOURCES    the project's folder: every .py file in it must compile (never run)
    DLBOX_SMOKE_DIST       the project's installed distribution: its top-level modules import
Also runs `pip check` on the image's environment: a package whose requirements are not met
(a missing dependency, or a stale copy of one left beside the pinned version) fails it.
Prints one line `DLBOX_SMOKE {json}` and exits 0 when every check passed, 1 otherwise.
"""

import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback

RESULT: dict = {"python": platform.python_version(), "checks": []}


def check(name, fn):
    start = time.monotonic()
    try:
        detail = fn()
        ok = True
    except BaseException as error:  # noqa: BLE001 - every failure is a result (SystemExit too:
        # a module that exits when imported must not end the script before its result line)
        if isinstance(error, KeyboardInterrupt):
            raise
        detail = f"{type(error).__name__}: {error}".strip()
        last = traceback.extract_tb(error.__traceback__)[-1:]
        # where it failed, in the project's code; a line of this script says nothing
        if last and last[0].filename != check.__code__.co_filename:
            detail += f" ({os.path.basename(last[0].filename)}:{last[0].lineno})"
        ok = False
    RESULT["checks"].append({"name": name, "ok": ok, "detail": str(detail)[:500],
                             "seconds": round(time.monotonic() - start, 3)})
    return ok


def arch_coverage(arch_list, capability):
    """'sass' when the build has kernels for `capability` ("8.6"), 'ptx' when a PTX target
    at or below it can be JIT-compiled, None when the device is not covered."""
    major, minor = (int(part) for part in capability.split(".")[:2])
    wanted = major * 10 + minor
    ptx = []
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        digits = "".join(ch for ch in number if ch.isdigit())
        if not digits:
            continue
        value = int(digits)
        if kind == "sm" and (value == wanted or (
                value // 10 == major and value % 10 <= minor and digits == number)):
            # SASS runs on the same major at an equal or higher minor (sm_80 on 8.6); an
            # arch-specific target (sm_90a) only on its own capability.
            return "sass"
        if kind == "compute":
            ptx.append(value)
    if any(value <= wanted for value in ptx):
        return "ptx"
    return None


def expect_version(actual):
    wanted = os.environ.get("DLBOX_SMOKE_VERSION", "")
    if wanted and actual != wanted and actual.split("+")[0] != wanted:
        raise AssertionError(f"found version {actual}, the lock pins {wanted}")
    return actual


def smoke_torch(gpu):
    import torch

    RESULT["version"] = torch.__version__
    RESULT["cuda"] = torch.version.cuda
    check("version", lambda: expect_version(torch.__version__))
    wanted_cuda = os.environ.get("DLBOX_SMOKE_CUDA", "")

    def build_kind():
        if wanted_cuda and not (torch.version.cuda or "").startswith(wanted_cuda):
            raise AssertionError(f"built with CUDA {torch.version.cuda}, expected {wanted_cuda}")
        if not wanted_cuda and torch.version.cuda:
            raise AssertionError(f"a CUDA build ({torch.version.cuda}) in a CPU image")
        return f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"

    check("build", build_kind)

    def forward(device):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(8, 10),
        ).to(device)
        with torch.no_grad():
            out = net(torch.randn(4, 3, 32, 32, device=device))
        if tuple(out.shape) != (4, 10) or not torch.isfinite(out).all():
            raise AssertionError(f"bad output {tuple(out.shape)}")
        return f"conv net forward on {device}: output {tuple(out.shape)}"

    check("forward_cpu", lambda: forward("cpu"))
    if not gpu:
        return

    def visible():
        if not torch.cuda.is_available():
            raise AssertionError("torch.cuda.is_available() is False")
        RESULT["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return ", ".join(RESULT["gpus"])

    if not check("gpu_visible", visible):
        return

    def matmul():
        a = torch.randn(256, 256)
        b = torch.randn(256, 256)
        got = (a.cuda() @ b.cuda()).cpu()
        if not torch.allclose(got, a @ b, rtol=1e-2, atol=1e-2):
            raise AssertionError("GPU matmul differs from CPU")
        return "256x256 matmul matches the CPU"

    def conv():
        x = torch.randn(2, 3, 32, 32)
        conv = torch.nn.Conv2d(3, 8, 3)
        want = conv(x)
        got = conv.cuda()(x.cuda()).cpu()
        if not torch.allclose(got, want, rtol=1e-2, atol=1e-2):
            raise AssertionError("GPU conv differs from CPU")
        return "conv2d matches the CPU (cuDNN %s)" % torch.backends.cudnn.version()  # noqa: UP031 - runs on old Pythons too

    def archs():
        arch_list = torch.cuda.get_arch_list()
        RESULT["arch_list"] = arch_list
        found = []
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            how = arch_coverage(arch_list, f"{major}.{minor}")
            if how is None:
                raise AssertionError(f"sm_{major}{minor} is not in the build's arch list "
                                     f"{' '.join(arch_list)}")
            found.append(f"sm_{major}{minor}: {how}")
        return ", ".join(found)

    check("gpu_matmul", matmul)
    check("gpu_conv", conv)
    check("gpu_arch_list", archs)


def smoke_tensorflow(gpu):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    RESULT["version"] = tf.__version__
    info = tf.sysconfig.get_build_info()
    RESULT["cuda"] = info.get("cuda_version")
    check("version", lambda: expect_version(tf.__version__))

    def forward(device):
        with tf.device(device):
            x = tf.random.normal((4, 32, 32, 3), seed=0)
            y = tf.keras.layers.Conv2D(8, 3, padding="same")(x)
            y = tf.reduce_mean(y, axis=(1, 2))
            out = tf.matmul(y, tf.random.normal((8, 10), seed=1))
        if tuple(out.shape) != (4, 10) or not bool(tf.reduce_all(tf.math.is_finite(out))):
            raise AssertionError(f"bad output {tuple(out.shape)}")
        return f"conv + matmul on {device}: output {tuple(out.shape)}"

    check("forward_cpu", lambda: forward("/CPU:0"))
    if not gpu:
        return

    def visible():
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise AssertionError("tf.config.list_physical_devices('GPU') is empty")
        RESULT["gpus"] = [g.name for g in gpus]
        return ", ".join(RESULT["gpus"])

    if not check("gpu_visible", visible):
        return
    check("gpu_matmul_conv", lambda: forward("/GPU:0"))

    def archs():
        arch_list = list(info.get("cuda_compute_capabilities") or [])
        RESULT["arch_list"] = arch_list
        found = []
        for device in tf.config.list_physical_devices("GPU"):
            cc = tf.config.experimental.get_device_details(device).get("compute_capability")
            if not cc:
                continue
            how = arch_coverage(arch_list, f"{cc[0]}.{cc[1]}")
            if how is None:
                raise AssertionError(f"sm_{cc[0]}{cc[1]} is not in {' '.join(arch_list)}")
            found.append(f"sm_{cc[0]}{cc[1]}: {how}")
        return ", ".join(found) or "no compute capability reported"

    check("gpu_arch_list", archs)


def smoke_jax(gpu):
    import jax
    import jax.numpy as jnp

    RESULT["version"] = jax.__version__
    check("version", lambda: expect_version(jax.__version__))

    def forward(device):
        key = jax.random.PRNGKey(0)
        x = jax.device_put(jax.random.normal(key, (4, 3, 32, 32)), device)
        w = jax.device_put(jax.random.normal(key, (8, 3, 3, 3)), device)
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME")
        out = jnp.mean(y, axis=(2, 3)) @ jax.device_put(jnp.ones((8, 10)), device)
        if out.shape != (4, 10) or not bool(jnp.isfinite(out).all()):
            raise AssertionError(f"bad output {out.shape}")
        return f"conv + matmul on {device.platform}: output {tuple(out.shape)}"

    check("forward_cpu", lambda: forward(jax.devices("cpu")[0]))
    if not gpu:
        return

    def visible():
        gpus = jax.devices("gpu")
        RESULT["gpus"] = [str(d) for d in gpus]
        return ", ".join(RESULT["gpus"])

    if not check("gpu_visible", visible):
        return
    # jaxlib has no arch list to read; kernels that ran on the device are the proof.
    check("gpu_matmul_conv", lambda: forward(jax.devices("gpu")[0]))


def pip_check():
    """`python -m pip check` of the environment this Python runs in; its report, one line."""
    run = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                         text=True, timeout=180, check=False)
    output = " ".join((run.stdout + run.stderr).split())
    if run.returncode and "No module named pip" in output:
        return "pip is not in the image: not checked"
    if run.returncode:
        raise AssertionError(output or f"pip check exited with {run.returncode}")
    return output or "no broken requirements"


def compile_sources(root):
    """Compile (never run, never write bytecode) every .py file under `root`: a syntax error
    in the project's code fails the build, not the user's first run of the image."""
    count = skipped = 0
    for folder, subfolders, files in os.walk(root):
        # runs/ is where `dlbox image run` mounts the host's runs folder: not the project's code
        subfolders[:] = sorted(name for name in subfolders
                               if not (folder == root and name == "runs"))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            try:  # a link whose target stayed outside the context, an unreadable file: not
                with open(path, "rb") as handle:  # a syntax error, and not ours to judge
                    source = handle.read()
            except OSError:
                skipped += 1
                continue
            try:
                compile(source, path, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as error:
                line = getattr(error, "lineno", None)
                where = os.path.relpath(path, root) + (f":{line}" if line else "")
                raise AssertionError(f"{where}: {getattr(error, 'msg', error)}") from None
            count += 1
    return f"{count} Python files compile" + (f" ({skipped} unreadable, skipped)"
                                              if skipped else "")


def dist_modules(dist_name):
    """The top-level packages (folders with an __init__.py) an installed distribution
    provides, so the smoke test can import the project as its users will. Single-file
    modules are left out: a project's `train.py`, installed as module `train`, is a script,
    and importing it would run it."""
    from importlib import metadata

    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:  # installed under another name: nothing to import
        return []
    names = set()
    for item in dist.files or ():
        parts = item.parts
        if len(parts) == 2 and parts[1] == "__init__.py" and parts[0] not in ("..", "__pycache__") \
                and not parts[0].endswith((".dist-info", ".data")):
            names.add(parts[0])
    return sorted(name for name in names if name.isidentifier() and not name.startswith("_"))


def installed(modules):
    """Those of `modules` that are installed (found without importing them)."""
    return [name for name in modules if name and importlib.util.find_spec(name) is not None]


def entry_point_modules(dist_name):
    """Whether the module of each command the distribution installs (console_scripts,
    gui_scripts) is there, found without running it. Review: a .dockerignore that left out
    the package folder built an image whose `mytrain` failed with ModuleNotFoundError."""
    from importlib import metadata

    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return "no distribution"
    missing: list = []
    found: list = []
    for point in dist.entry_points:
        if point.group not in ("console_scripts", "gui_scripts"):
            continue
        module = point.value.split(":", 1)[0].strip()
        try:
            there = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError as error:  # the module or a parent package not there;
            # another name missing is a dependency its parent imports: the import check's
            gone = error.name or ""
            there = not (module == gone or module.startswith(gone + "."))
        except Exception:  # noqa: BLE001 - the parent is there but fails to import: its
            there = True  # own import check says why
        (found if there else missing).append(f"{point.name} ({module})")
    if missing:
        raise ModuleNotFoundError(f"the commands {', '.join(missing)} name modules the image "
                                  "does not have (left out by .dockerignore, or not packaged)")
    return ", ".join(found) or "no commands"


def main():
    framework = os.environ.get("DLBOX_SMOKE_FRAMEWORK", "torch")
    gpu = os.environ.get("DLBOX_SMOKE_GPU") == "1"
    RESULT["framework"] = framework
    RESULT["gpu"] = gpu
    sources = os.environ.get("DLBOX_SMOKE_SOURCES", "")
    if sources and os.path.isdir(sources):
        check("project_sources", lambda: compile_sources(sources))
    modules = list(filter(None, os.environ.get("DLBOX_SMOKE_IMPORTS", "").split(",")))
    dist = os.environ.get("DLBOX_SMOKE_DIST", "")
    if dist:
        found = []

        def find():
            found.extend(dist_modules(dist))
            return ", ".join(found) or "no modules"

        if check(f"modules of {dist}", find):
            modules += [module for module in found if module not in modules]
        check(f"commands of {dist}", lambda: entry_point_modules(dist))
    for module in modules:
        check(f"import {module}", lambda m=module: getattr(importlib.import_module(m),
                                                           "__version__", "ok"))
    runner = {"torch": smoke_torch, "tensorflow": smoke_tensorflow, "jax": smoke_jax}[framework]
    check(f"import {framework}", lambda: runner(gpu) or "ok")
    for companion in installed(os.environ.get("DLBOX_SMOKE_COMPANIONS", "").split(",")):
        if companion not in modules:
            check(f"import {companion}", lambda m=companion: getattr(
                importlib.import_module(m), "__version__", "ok"))
    check("pip_check", pip_check)
    RESULT["ok"] = all(item["ok"] for item in RESULT["checks"])
    print("DLBOX_SMOKE " + json.dumps(RESULT), flush=True)
    return 0 if RESULT["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
