"""What a scenario run found: one line per fault and per expectation, and the same as JUnit XML.

A technician reads the text (``PASS``/``FAIL``/``SKIP`` and the figures behind each verdict); CI
reads the JUnit file. The run passes only when no line failed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Outcome = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True, slots=True)
class Line:
    """One checked thing: a fault injected and mended, or an expectation."""

    group: Literal["fault", "expect"]
    name: str
    outcome: Outcome
    detail: str
    """The figures behind the outcome, or why it failed or was skipped."""
    seconds: float = 0.0


@dataclass
class Figures:
    """The run's numbers, for the closing note and the JUnit properties."""

    sent: int = 0
    """Stream seqs the agent issued (its newest status's ``next_seq`` - 1)."""
    received: int = 0
    reported_gaps: int = 0
    lost: int = 0
    duplicates: int = 0
    faults_injected: int = 0
    agent_starts: int = 0
    alarm_latencies_s: dict[str, float] = field(default_factory=dict)
    rss_start_mib: float | None = None
    rss_end_mib: float | None = None
    rss_growth_mib: float | None = None
    wall_s: float = 0.0


@dataclass
class Report:
    scenario: str
    lines: list[Line] = field(default_factory=list)
    figures: Figures = field(default_factory=Figures)

    def add(
        self,
        group: Literal["fault", "expect"],
        name: str,
        outcome: Outcome,
        detail: str,
        seconds: float = 0.0,
    ) -> None:
        self.lines.append(Line(group, name, outcome, detail, seconds))

    @property
    def passed(self) -> bool:
        return bool(self.lines) and all(line.outcome != "FAIL" for line in self.lines)

    def text(self) -> str:
        width = max((len(line.name) for line in self.lines), default=10)
        out = [f"scenario {self.scenario!r}"]
        for line in self.lines:
            label = "FAULT " if line.group == "fault" else "EXPECT"
            out.append(f"{label} {line.name:<{width}}  {line.outcome}  {line.detail}")
        f = self.figures
        rss = "RSS n/a"
        if f.rss_start_mib is not None and f.rss_end_mib is not None:
            rss = f"RSS {f.rss_start_mib:.1f} -> {f.rss_end_mib:.1f} MiB"
        out.append(
            f"FIGURES sent {f.sent}, received {f.received}, reported gaps {f.reported_gaps},"
            f" lost {f.lost}, duplicates {f.duplicates}, faults {f.faults_injected},"
            f" agent starts {f.agent_starts}, {rss}, wall {f.wall_s:.0f} s"
        )
        failed = sum(line.outcome == "FAIL" for line in self.lines)
        verdict = "PASS" if self.passed else "FAIL"
        out.append(f"RESULT {verdict} ({len(self.lines)} checks, {failed} failed)")
        return "\n".join(out)

    def write_junit(self, path: Path) -> None:
        """One ``testsuite``; each line a ``testcase`` (classname fault or expect)."""
        failures = sum(line.outcome == "FAIL" for line in self.lines)
        skipped = sum(line.outcome == "SKIP" for line in self.lines)
        suite = ET.Element(
            "testsuite",
            name=self.scenario,
            tests=str(len(self.lines)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            time=f"{self.figures.wall_s:.1f}",
        )
        properties = ET.SubElement(suite, "properties")
        for key, value in vars(self.figures).items():
            ET.SubElement(properties, "property", name=key, value=str(value))
        for line in self.lines:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"soak.{line.group}",
                name=line.name,
                time=f"{line.seconds:.2f}",
            )
            if line.outcome == "FAIL":
                ET.SubElement(case, "failure", message=line.detail).text = line.detail
            elif line.outcome == "SKIP":
                ET.SubElement(case, "skipped", message=line.detail)
            else:
                ET.SubElement(case, "system-out").text = line.detail
        path.parent.mkdir(parents=True, exist_ok=True)
        root = ET.Element("testsuites")
        root.append(suite)
        tree = ET.ElementTree(root)
        ET.indent(tree)
        tree.write(path, encoding="utf-8", xml_declaration=True)
