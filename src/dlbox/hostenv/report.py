"""Render doctor results: a rich table of facts, then findings with fixes; or JSON data."""

from __future__ import annotations

import shlex
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dlbox import __version__
from dlbox.errors import DlboxError
from dlbox.hostenv.facts import HostFacts
from dlbox.hostenv.resolve import (
    SUPPORTED_FRAMEWORKS,
    ResolvedBuild,
    resolve_build,
    target_from_host,
)
from dlbox.hostenv.rules import Finding, broken_driver_error, mib_text

_STYLE = {"error": "bold red", "warn": "yellow", "ok": "green"}
_LABEL = {"error": "ERROR", "warn": "WARN", "ok": "OK"}


def fact_rows(facts: HostFacts) -> list[tuple[str, str]]:
    """(label, value) rows for the host table."""
    s = facts.system
    rows = [
        ("OS", f"{s.os or '?'} ({s.machine or '?'}), kernel {s.kernel or '?'}"
         + (", in a container" if s.in_container else "")),
        ("Python", s.python or "?"),
        ("CPU", f"{s.cpu_model or '?'} x {s.cpu_count or '?'}"),
        ("RAM", mib_text(s.ram_total_mib)),
        ("Disk free", f"{mib_text(s.disk_free_mib)} on {s.disk_path or '?'}"),
        ("/dev/shm", mib_text(s.shm_total_mib)),
    ]
    n = facts.nvidia
    if n.error:
        rows.append(("NVIDIA", f"probe failed: {n.error}"))
    elif n.driver_version:
        cuda = f", CUDA <= {n.cuda_driver_version}" if n.cuda_driver_version else ""
        rows.append(("NVIDIA driver", f"{n.driver_version}{cuda} (via {n.source})"))
        for gpu in n.gpus:
            cc = f"sm_{(gpu.compute_capability or '?').replace('.', '')}"
            rows.append((f"GPU {gpu.index}",
                         f"{gpu.name}, {cc}, {mib_text(gpu.memory_total_mib)}"))
    else:
        rows.append(("NVIDIA", "no driver / no GPU"))
    for fw in facts.frameworks:
        if not fw.installed:
            rows.append((fw.name, "not installed"))
            continue
        parts = [fw.version or "?"]
        parts.append(f"CUDA {fw.cuda}" if fw.cuda else "CPU-only build")
        if fw.cudnn:
            parts.append(f"cuDNN {fw.cudnn}")
        if fw.cudnn_installed:
            parts.append(f"nvidia-cudnn {fw.cudnn_installed}")
        parts += [f"{name} {version}" for name, version in fw.companions.items()]
        if fw.gpu_available is not None:
            parts.append(f"GPU available: {'yes' if fw.gpu_available else 'no'}")
        if fw.arch_list:
            parts.append("archs " + " ".join(fw.arch_list))
        if fw.error:
            parts.append(f"probe failed: {fw.error}")
        rows.append((fw.name, ", ".join(parts)))
    d = facts.docker
    if d.reachable:
        support = "no GPU support"
        if d.nvidia_runtime:
            support = "nvidia runtime"
        elif d.cdi_nvidia:
            support = "CDI"
        elif d.nvidia_hook:
            support = "--gpus (nvidia-container-runtime-hook)"
        rows.append(("Docker", f"{d.server_version}, {support}, "
                               f"default shm {mib_text(d.default_shm_mib)}"))
    else:  # the probe's "Docker engine not reachable: why" is said once
        error = d.error or "?"
        said = error.removeprefix("Docker engine not reachable")
        rows.append(("Docker", f"not reachable{said}" if said != error
                     else f"not reachable: {error}"))
    return rows


def render_text(facts: HostFacts, findings: list[Finding], console: Console) -> None:
    table = Table(title="dlbox doctor", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for label, value in fact_rows(facts):
        table.add_row(label, Text(value))
    console.print(table)
    console.print()
    for finding in findings:
        head = Text(f"{_LABEL[finding.level]:<5} ", style=_STYLE[finding.level])
        head.append(finding.what)
        console.print(head, soft_wrap=True)
        if finding.why:
            console.print(Text(f"      why: {finding.why}"), soft_wrap=True)
        if finding.fix:
            console.print(Text(f"      fix: {finding.fix}"), soft_wrap=True)
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    console.print()
    console.print(Text(f"{errors} error(s), {warnings} warning(s)",
                       style="bold red" if errors else "bold"), soft_wrap=True)


def recommended_builds(facts: HostFacts) -> dict[str, Any]:
    """The resolver's pick for this host per framework (or why there is none)."""
    target = target_from_host(facts)
    out: dict[str, Any] = {}
    for name in SUPPORTED_FRAMEWORKS:
        broken = broken_driver_error(facts, name)
        if broken is not None:
            out[name] = {"error": broken.message, "hint": broken.hint}
            continue
        try:
            out[name] = resolve_build(name, target).to_dict()
        except DlboxError as error:
            out[name] = {"error": error.message, "hint": error.hint}
    return out


def report_dict(facts: HostFacts, findings: list[Finding]) -> dict[str, Any]:
    return {
        "dlbox_version": __version__,
        "facts": facts.to_dict(),
        "findings": [f.to_dict() for f in findings],
        "summary": {
            "errors": sum(f.level == "error" for f in findings),
            "warnings": sum(f.level == "warn" for f in findings),
            "ok": sum(f.level == "ok" for f in findings),
        },
        "recommended": recommended_builds(facts),
    }


def render_build(build: ResolvedBuild, console: Console) -> None:
    console.print(Text(f"{build.framework} {build.version} ({build.variant})", style="bold"),
                  soft_wrap=True)
    rows = [
        ("CUDA", build.cuda or "none (CPU)"),
        ("cuDNN", build.cudnn or "-"),
        ("min driver", build.min_driver or "-"),
        ("GA driver", build.ga_driver or "-"),
        # Python 3 only: dlbox refuses --python 2.7 (TensorFlow 1.x's data lists it too)
        ("Python", ", ".join(v for v in build.python_versions if not v.startswith("2."))),
        ("wheel index", build.wheel_index or "PyPI"),
        # quoted: zsh takes tensorflow[and-cuda]==2.21.0 for a glob (review)
        ("install", "pip install " + " ".join(shlex.quote(line) for line in build.requirements)
         + (f" --index-url {build.wheel_index}" if build.wheel_index else "")),
    ]
    for label, value in rows:
        console.print(Text(f"  {label:<12} {value}"), soft_wrap=True)
    console.print(Text("why:"), soft_wrap=True)
    for reason in build.reasons:
        console.print(Text(f"  - {reason}"), soft_wrap=True)
    for warning in build.warnings:
        console.print(Text(f"  warning: {warning}", style="yellow"), soft_wrap=True)
    for source in build.sources:
        console.print(Text(f"source: {source} (checked {build.checked})"), soft_wrap=True)
