"""Rendering of `envdoctor gpus`: a rich table, or one JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from envdoctor.facts import GpuFacts, to_dict
from envdoctor.gpus.nogpu import no_gpu_line
from envdoctor.gpus.visible import VisibleResolution, resolve_visible_devices
from envdoctor.report.console import printable


def _resolve(gpus: list[GpuFacts], env: Mapping[str, str]) -> VisibleResolution:
    return resolve_visible_devices(env.get("CUDA_VISIBLE_DEVICES"), gpus, env.get("CUDA_DEVICE_ORDER"))


def _ordinals(res: VisibleResolution) -> dict[str, int]:
    """CUDA ordinal by device UUID (a GPU's own UUID maps to its first enumerated device)."""
    out: dict[str, int] = {}
    for d in res.devices:
        out.setdefault(d.gpu.uuid, d.ordinal)
        if d.mig:
            out[d.mig.uuid] = d.ordinal
    return out


def to_json(gpus: list[GpuFacts], env: Mapping[str, str], why: str | None) -> str:
    res = _resolve(gpus, env)
    ordinals = _ordinals(res)
    rows = []
    for g in gpus:
        row = to_dict(g)
        row["cuda_ordinal"] = ordinals.get(g.uuid)
        for m in row["mig_devices"]:
            m["cuda_ordinal"] = ordinals.get(m["uuid"])
        rows.append(row)
    doc = {
        "cuda_device_order": env.get("CUDA_DEVICE_ORDER"),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "effective_order": res.order,
        "order_exact": res.order_exact,
        "problems": res.problems,
        "no_gpu_reason": None if gpus else why,
        "gpus": rows,
    }
    return json.dumps(doc, indent=2)


def mib(n: int | None) -> str:
    """Bytes as whole MiB, as nvidia-smi shows memory; "?" when NVML did not say."""
    return "?" if n is None else f"{n // (1 << 20)}"


def _memory(g: GpuFacts) -> str:
    return f"{mib(g.memory_used_bytes)} / {mib(g.memory_total_bytes)} MiB"


def _ordinal_cell(uuid: str, ordinals: dict[str, int], exact: bool) -> str:
    if uuid not in ordinals:
        return "hidden"
    return str(ordinals[uuid]) if exact else f"~{ordinals[uuid]}"


def _processes(g: GpuFacts) -> str:
    parts = [
        f"{p.pid}"
        + (f" {p.name}" if p.name else "")
        + (f" ({mib(p.used_memory_bytes)} MiB)" if p.used_memory_bytes is not None else "")
        for p in g.processes
    ]
    return ", ".join(parts) or "-"


COLUMNS = ("nvidia-smi", "PCI bus id", "UUID", "CUDA", "name", "CC", "memory used/total", "util", "processes")
_WHOLE = ("PCI bus id", "UUID")  # users copy these into --gpus and scripts: never folded mid-string


def _rows(gpus: list[GpuFacts], res: VisibleResolution) -> list[tuple[str, ...]]:
    """One row of COLUMNS per GPU, then one per MIG device of that GPU."""
    ordinals = _ordinals(res)
    rows: list[tuple[str, ...]] = []
    for g in sorted(gpus, key=lambda g: g.index):
        util = "?" if g.utilization_gpu is None else f"{g.utilization_gpu}%"
        rows.append(
            (
                str(g.index),
                g.pci_bus_id,
                g.uuid,
                _ordinal_cell(g.uuid, ordinals, res.order_exact),
                g.name + (" [MIG]" if g.mig_enabled else ""),
                g.compute_capability or "?",
                _memory(g),
                util,
                _processes(g),
            )
        )
        for m in g.mig_devices:
            rows.append(
                (
                    f"{g.index}:{m.index}",
                    "",
                    m.uuid,
                    _ordinal_cell(m.uuid, ordinals, res.order_exact),
                    m.name or "MIG device",
                    "",
                    f"- / {mib(m.memory_total_bytes)} MiB",
                    "",
                    "",
                )
            )
    return rows


def _table(title: str, rows: list[tuple[str, ...]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, no_wrap=col in _WHOLE, overflow="fold")
    for row in rows:
        table.add_row(*(printable(cell) for cell in row))
    return table


def _print_cards(console: Any, title: str, rows: list[tuple[str, ...]]) -> None:
    """The narrow-terminal layout: one "column: value" line per cell, so no UUID is cut to fit a table."""
    console.print(title, highlight=False, soft_wrap=True)
    width = max(len(c) for c in COLUMNS)
    for row in rows:
        console.print()
        for col, cell in zip(COLUMNS, row, strict=True):
            if cell:
                console.print(f"{col:<{width}}  {printable(cell)}", highlight=False, soft_wrap=True)


def print_table(gpus: list[GpuFacts], env: Mapping[str, str], why: str | None) -> None:
    from envdoctor.report.console import make_console

    console = make_console(markup=False)  # names, UUIDs and variables from a snapshot are text, never markup
    if not gpus:
        console.print(no_gpu_line(why), highlight=False)
        return
    res = _resolve(gpus, env)
    cvd, order = env.get("CUDA_VISIBLE_DEVICES"), env.get("CUDA_DEVICE_ORDER")
    shown_order = f"{res.order} (unset)" if order is None else repr(order)  # an invalid value shows as given
    title = printable(
        f"CUDA_DEVICE_ORDER={shown_order}, CUDA_VISIBLE_DEVICES={'(unset)' if cvd is None else repr(cvd)}"
    )
    rows = _rows(gpus, res)
    table = _table(title, rows)
    if table.__rich_measure__(console, console.options).minimum <= console.width:
        console.print(table)
    else:  # too narrow for the whole UUIDs and readable other columns
        _print_cards(console, title, rows)
    if not res.order_exact:
        console.print(
            "~ CUDA's FASTEST_FIRST order is a guess for mixed GPU models: "
            "export CUDA_DEVICE_ORDER=PCI_BUS_ID to make CUDA's numbers nvidia-smi's.",
            highlight=False,
        )
    for p in res.problems:
        console.print(printable(f"! {p}"), highlight=False)
