"""Markdown for the fan-out results (the JSON holds everything; this is the summary)."""

from __future__ import annotations

import statistics
from typing import Any

from bench import commit_floor
from bench.driver import good


def knee(steps: list[dict[str, Any]], p99_limit_ms: float) -> dict[str, Any] | None:
    """The step with the most deliveries/s among those within the p99 limit."""
    within = [s for s in steps if good(s, p99_limit_ms)]
    return max(within, key=lambda s: s["delivered_per_s"]) if within else None


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def step_line(step: dict[str, Any]) -> str:
    """One line of progress for a step."""
    return (
        f"target {step['target_per_s']:>7,}/s  delivered {step['delivered_per_s']:>9,.0f}/s  "
        f"p50 {_ms(step['p50_ms']):>7} p99 {_ms(step['p99_ms']):>7} ms  "
        f"lost {step['lost']} dup {step.get('out_of_order', 0)}  server {step['server_cpu']:.0%} "
        f"{step['server_us_per_delivery']:.1f} us/delivery  loadgen {step['loadgen_cpu']:.0%}  "
        f"cores busy {step['cores_busy']}"
    )


def render(results: dict[str, Any]) -> str:
    targets: dict[str, dict[str, Any]] = results["targets"]
    plan = results["plan"]
    machine = results["machine"]
    if plan.get("idle_only"):
        return _render_idle_only(results)
    lines = [
        f"# Fan-out benchmark, {results['date']}",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}; "
        f"server on core {results['server_cores']}, load generator on core "
        f"{results['loadgen_core']}. Load average at start {machine['loadavg_start'][0]:.1f}, "
        f"at end {results['loadavg_end'][0]:.1f} (other work on the machine competes for "
        f"both cores when it is above ~0). {plan['connections']} sockets in rooms of 10, one "
        f"sender per room, {plan['size']}-character messages, {plan['step_seconds']:g} s "
        f"steps; each wire measured on its own sockets. Run took {results['seconds']} s"
        f"{' (--quick)' if results['quick'] else ''}.",
        "",
        *_cost(targets, plan.get("fixed_rates", ())),
        "",
        *_rounds(results.get("rounds"), {n: t["label"] for n, t in targets.items()}),
        "",
        *_throughput(targets),
        "",
        *_moderate(targets, plan["moderate"]),
        "",
        *_idle(targets),
        "",
        *_scale_out(targets),
        "",
        *[f"**{name} failed**: {error}" for name, error in results.get("failed", {}).items()],
        "",
        "## Steps",
        "",
        *_sweeps(targets),
    ]
    return "\n".join(lines) + "\n"


def _render_idle_only(results: dict[str, Any]) -> str:
    """``--idle-only``: just the idle-socket table (no sweep was run)."""
    machine = results["machine"]
    lines = [
        f"# Idle sockets, {results['date']}",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}; "
        f"server on core {results['server_cores']}, load generator on core "
        f"{results['loadgen_core']}. Load average at start {machine['loadavg_start'][0]:.1f}, "
        f"at end {results['loadavg_end'][0]:.1f}. Run took {results['seconds']} s.",
        "",
        *_idle(results["targets"]),
        "",
        *_reopen(results["targets"]),
        "",
        *[f"**{name} failed**: {error}" for name, error in results.get("failed", {}).items()],
    ]
    return "\n".join(lines) + "\n"


def busiest(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The knee step, or without one the step that delivered the most."""
    return knee(steps, 50) or max(steps, key=lambda s: s["delivered_per_s"], default=None)


def capacity(step: dict[str, Any] | None) -> float | None:
    """Deliveries per CPU-second (server, PostgreSQL, Redis): what one free core would sustain."""
    if step is None or total_us(step) <= 0:
        return None
    return 1e6 / total_us(step)


WIRES = ("plain", "deflate")


def _wire(result: dict[str, Any], wire: str) -> dict[str, Any] | None:
    wire_result: dict[str, Any] | None = result.get("wires", {}).get(wire)
    return wire_result


def _steps(result: dict[str, Any], wire: str) -> list[dict[str, Any]]:
    """Every step measured on a wire: the fixed rates and the sweep."""
    measured = _wire(result, wire)
    if measured is None:
        return []
    return [*measured.get("fixed", []), *measured.get("sweep", [])]


def total_us(step: dict[str, Any]) -> float:
    """CPU per delivery of everything serving it: server, PostgreSQL backends, Redis."""
    return float(
        step["server_us_per_delivery"] + step["db_us_per_delivery"] + step["broker_us_per_delivery"]
    )


def _cost(targets: dict[str, dict[str, Any]], rates: Any) -> list[str]:
    """The primary figure: CPU per delivery at fixed rates, against the baseline's."""
    rates = [float(r) for r in rates]
    if not rates:
        return []
    head = " | ".join(f"{r:,.0f}/s" for r in rates)
    rows = [
        "## CPU per delivery at fixed rates (µs; server + PostgreSQL + Redis)",
        "",
        f"| target | wire | {head} | x baseline at {rates[-1]:,.0f}/s |",
        "|---|---|" + "---:|" * (len(rates) + 1),
    ]
    for wire in WIRES:
        base = targets.get("baseline")
        base_fixed = (_wire(base, wire) or {}).get("fixed", []) if base else []
        base_last = total_us(base_fixed[-1]) if base_fixed else None
        for result in targets.values():
            fixed = (_wire(result, wire) or {}).get("fixed")
            if not fixed:
                continue
            cells = [_cost_cell(step) for step in fixed]
            ratio = "-" if not base_last else f"{total_us(fixed[-1]) / base_last:.2f}"
            rows.append(f"| {result['label']} | {wire} | {' | '.join(cells)} | {ratio} |")
    rows += [
        "",
        "Server CPU (user + system of its process tree, from /proc) over the step, "
        "divided by the deliveries; PostgreSQL's backends and Redis are added after the "
        "`+`. A step the server could not keep up with (p99 over 50 ms or anything lost) "
        "is marked `*`. Robust on a shared machine: another process's work does not "
        "count here, it only delays.",
    ]
    return rows


def _cost_cell(step: dict[str, Any]) -> str:
    extra = step["db_us_per_delivery"] + step["broker_us_per_delivery"]
    cell = f"{step['server_us_per_delivery']:.1f}"
    if extra >= 0.05:
        cell += f" + {extra:.1f}"
    return cell + ("" if good(step, 50) else " *")


def _throughput(targets: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "## Capacity",
        "",
        "| target | wire | deliveries/s at p99 < 50 ms | x baseline | deliveries/s at "
        "p99 < 100 ms | µs/delivery there (+ DB, broker) | deliveries per CPU-second "
        "| x baseline | server core | loadgen core |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    duplicates: list[str] = []
    for wire in WIRES:
        base = targets.get("baseline")
        base_steps = _steps(base, wire) if base else []
        base_knee = knee(base_steps, 50)
        base_capacity = capacity(busiest(base_steps)) if base_steps else None
        for result in targets.values():
            steps = _steps(result, wire)
            if not steps:
                continue
            at50, at100 = knee(steps, 50), knee(steps, 100)
            cost = busiest(steps)
            per_cpu = capacity(cost)
            if any(step.get("out_of_order", 0) for step in steps):
                duplicates.append(f"{result['label']} ({wire})")
            rows.append(
                f"| {result['label']} | {wire} | {_rate(at50)} | {_ratio(at50, base_knee)} "
                f"| {_rate(at100)} | {_cpu(cost, 'server_us_per_delivery')} ({_extra(cost)}) "
                f"| {_n(per_cpu)} | {_div(per_cpu, base_capacity)} "
                f"| {_pct(cost, 'server_cpu')} | {_pct(cost, 'loadgen_cpu')} |"
            )
    rows += [
        "",
        "Over every step of the wire (fixed rates and sweep). CPU columns come from the "
        "knee step (the most deliveries/s with p99 < 50 ms and nothing lost) or, where no "
        "step was that good, from the step that delivered the most. Deliveries per "
        "CPU-second = 10^6 / µs per delivery (server, PostgreSQL and Redis together): the "
        "rate one whole core would carry. A loadgen core near 100% would mean the load "
        "generator, not the server, was the limit.",
    ]
    if duplicates:
        rows += [
            "",
            f"**Duplicate deliveries** (a socket got a message twice or out of order) in: "
            f"{', '.join(duplicates)}; see the dup column of the steps. They are not "
            "counted as deliveries.",
        ]
    return rows


def _ratio(step: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    if step is None or base is None:
        return "-"
    return _div(step["delivered_per_s"], base["delivered_per_s"])


def _div(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.2f}"


def _rate(step: dict[str, Any] | None) -> str:
    return "-" if step is None else f"{step['delivered_per_s']:,.0f}"


def _cpu(step: dict[str, Any] | None, key: str) -> str:
    return "-" if step is None else f"{step[key]:.1f}"


def _extra(step: dict[str, Any] | None) -> str:
    if step is None:
        return "-"
    return f"{step['db_us_per_delivery'] + step['broker_us_per_delivery']:.1f}"


def _pct(step: dict[str, Any] | None, key: str) -> str:
    return "-" if step is None else f"{step[key]:.0%}"


def _moderate(targets: dict[str, dict[str, Any]], rate: float) -> list[str]:
    rows = [
        f"## Latency at a moderate load ({rate:,.0f} deliveries/s)",
        "",
        "| target | plain p50 / p99 / max ms | server µs/delivery "
        "| deflate p50 / p99 / max ms | server µs/delivery | a lone commit p50 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in targets.values():
        cells = []
        for wire in WIRES:
            step = (_wire(result, wire) or {}).get("moderate")
            if step is None:
                cells += ["-", "-"]
                continue
            cells.append(
                f"{_ms(step['p50_ms'])} / {_ms(step['p99_ms'])} / {_ms(step['max_ms'])}"
                + (f" ({step['lost']} lost)" if step["lost"] else "")
            )
            cells.append(f"{step['server_us_per_delivery']:.1f}")
        floor = result.get("commit_floor")
        cells.append("-" if floor is None else f"{_ms(floor['p50_ms'])} / {_ms(floor['p99_ms'])}")
        rows.append(f"| {result['label']} | " + " | ".join(cells) + " |")
    rows += [
        "",
        "A lone commit: one row of a message's shape inserted and committed on the "
        f"deployment's database and disk, {commit_floor.COUNT} times "
        f"{commit_floor.GAP_SECONDS * 1000:.0f} ms apart, before any load "
        "(`bench/commit_floor.py`). At this rate every message is a batch of its own, "
        "so this is the database's share of the latency over the bare server's.",
    ]
    return rows


def _idle(targets: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "## Idle sockets (a fresh server, permessage-deflate)",
        "",
        "| target | sockets open | KB per socket (RSS) | time to open them | opened/s "
        "| server CPU per open | failed | not tried (time budget) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in targets.values():
        idle = result.get("idle")
        if idle is None:
            continue
        rows.append(
            f"| {result['label']} | {idle['connections']:,} | {idle['kb_per_connection']:.1f} "
            f"| {idle['open_seconds']:.1f} s | {_n(idle['opened_per_s'])} "
            f"| {_ms(idle.get('server_cpu_ms_per_open'))} | {idle['failed']} "
            f"| {idle['skipped']:,} |"
        )
    rows += [
        "",
        "KB per socket: RSS growth while opening all but the first 100 sockets (opened "
        "first, to warm the server up), divided by their number; the time is for those "
        "sockets, 50 handshakes in flight. Server CPU per open: the server's CPU time "
        "(user + system, all threads) over that time, divided by the sockets opened.",
    ]
    return rows


def _reopen(targets: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "## The same sockets reopened (every user already a member)",
        "",
        "| target | sockets | opened/s | server CPU per open | failed |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in targets.values():
        again = result.get("reopen")
        if again is not None:
            rows.append(
                f"| {result['label']} | {again['opened']:,} | {_n(again['opened_per_s'])} "
                f"| {_ms(again['server_cpu_ms_per_open'])} | {again['failed']} |"
            )
    return rows


def _ms(value: float | None) -> str:
    # Results from before the CPU was measured have none.
    return "-" if value is None else f"{value:.1f} ms"


def _scale_out(targets: dict[str, dict[str, Any]]) -> list[str]:
    two = targets.get("redis2")
    if two is None:
        return []
    rows = [
        "## Two instances behind Redis",
        "",
        "Compared with one instance measured in the same run. Both instances run on the "
        "server core(s) given by --server-cores (default: both on core 0, the same CPU "
        "budget as one instance). Per CPU-second counts PostgreSQL and Redis too.",
        "",
    ]
    for wire in WIRES:
        mine = _steps(two, wire)
        for name in ("postgres", "redis1"):
            other = targets.get(name)
            if other is None or not mine:
                continue
            theirs = _steps(other, wire)
            a, b = knee(mine, 50), knee(theirs, 50)
            ca, cb = capacity(busiest(mine)), capacity(busiest(theirs))
            rows.append(
                f"- {wire}, vs {other['label']}: deliveries/s at p99 < 50 ms {_rate(a)} / "
                f"{_rate(b)} = {_ratio(a, b)}x; deliveries per CPU-second "
                f"{_n(ca)} / {_n(cb)} = {_div(ca, cb)}x"
            )
    return rows


def _sweeps(targets: dict[str, dict[str, Any]]) -> list[str]:
    rows: list[str] = []
    for result in targets.values():
        for wire in WIRES:
            steps = _steps(result, wire)
            if not steps:
                continue
            rows += [
                f"### {result['label']}, {wire}",
                "",
                "| target/s | delivered/s | p50 ms | p99 ms | max ms | lost | dup "
                "| server core | µs/delivery | DB+broker µs | loadgen core "
                "| cores busy (all work) |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            ]
            for step in sorted(steps, key=lambda s: s["target_per_s"]):
                rows.append(
                    f"| {step['target_per_s']:,} | {step['delivered_per_s']:,.0f} "
                    f"| {_ms(step['p50_ms'])} | {_ms(step['p99_ms'])} | {_ms(step['max_ms'])} "
                    f"| {step['lost']} | {step.get('out_of_order', 0)} "
                    f"| {step['server_cpu']:.0%} "
                    f"| {step['server_us_per_delivery']:.1f} | {_extra(step)} "
                    f"| {step['loadgen_cpu']:.0%} "
                    f"| {' / '.join(f'{b:.0%}' for b in step['cores_busy'])} |"
                )
            rows.append("")
    return rows


def median_ratio(mine: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> float | None:
    """The median over rounds of my total CPU per delivery over theirs in the same round."""
    by_round = {step["round"]: total_us(step) for step in theirs}
    ratios = [
        total_us(step) / by_round[step["round"]]
        for step in mine
        if by_round.get(step["round"], 0) > 0
    ]
    return statistics.median(ratios) if ratios else None


def _rounds(rounds: dict[str, Any] | None, labels: dict[str, str]) -> list[str]:
    """The rounds' table: median CPU per delivery and the median per-round ratios."""
    if not rounds or not rounds.get("wires"):
        return []
    lines = [
        f"## Interleaved rounds at {rounds['rate']:,.0f} deliveries/s",
        "",
        f"Every target up at once, {rounds['rounds']} rounds of one {rounds['seconds']:g} s "
        "step each, the order rotating each round; ratios are taken within a round (steps "
        "seconds apart) and the median round's is shown. CPU: server + PostgreSQL + Redis, "
        "µs per delivery (median of the rounds).",
        "",
        "| target | wire | µs per delivery (+ DB, broker) | each round | x baseline "
        "(median round) | deliveries per CPU-second x baseline |",
        "|---|---|---:|---|---:|---:|",
    ]
    for wire, steps in rounds["wires"].items():
        baseline = steps.get("baseline", [])
        for name, mine in steps.items():
            if not mine:
                continue
            server = statistics.median(s["server_us_per_delivery"] for s in mine)
            others = statistics.median(
                s["db_us_per_delivery"] + s["broker_us_per_delivery"] for s in mine
            )
            each = ", ".join(f"{total_us(s):.1f}" for s in mine)
            ratio = median_ratio(mine, baseline) if name != "baseline" and baseline else None
            cost = "-" if ratio is None else f"{ratio:.2f}"
            per_cpu = "-" if ratio is None else f"{1 / ratio:.2f}"
            lines.append(
                f"| {labels.get(name, name)} | {wire} | {server:.1f} + {others:.1f} | {each} "
                f"| {cost} | {per_cpu} |"
            )
        two = steps.get("redis2")
        # Against one instance as it runs alone (no Redis), and as it runs in the cluster.
        for one_name, one_label in (("postgres", "PostgreSQL"), ("redis1", "PostgreSQL + Redis")):
            one = steps.get(one_name)
            ratio = median_ratio(one, two) if one and two else None
            if ratio is not None:
                lines.append(
                    f"\n{wire}: two instances against one ({one_label}), deliveries per "
                    f"CPU-second, median round: **{ratio:.2f}x**\n"
                )
    return lines
