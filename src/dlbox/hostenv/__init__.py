"""What this host can run: probe (facts), pure rules (findings), versioned matrix, resolver.

    from dlbox.hostenv import probe_host, evaluate, resolve_build, target_from_host, Target
    facts = probe_host()                       # read-only, quick, never raises
    findings = evaluate(facts)                 # errors first
    build = resolve_build("torch", target_from_host(facts))
"""

from __future__ import annotations

from dlbox.hostenv.facts import HostFacts
from dlbox.hostenv.probe import probe_host
from dlbox.hostenv.resolve import ResolvedBuild, Target, resolve_build, target_from_host
from dlbox.hostenv.rules import Finding, evaluate, has_errors

__all__ = [
    "Finding",
    "HostFacts",
    "ResolvedBuild",
    "Target",
    "evaluate",
    "has_errors",
    "probe_host",
    "resolve_build",
    "target_from_host",
]
