"""Interleaved rounds: every target up at once, each measured in turn at one fixed rate.

On this shared machine the speed drifts by 20% and more within an hour (the same bare
server: 17.4 µs per delivery at 06:30, 21.0 at 07:30, 35 two hours later), so targets
measured one after another compare their hours as much as their code. Here every
deployment is up for the whole phase (an idle one costs nothing), each with its own load
generator and sockets, and each round measures every target once, in an order that
rotates from round to round. A target's ratio to the baseline is taken within each
round (the two steps are seconds apart), and the median round's is reported.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from bench.deploy import TARGETS, Deployment, Options
from bench.driver import LoadGen, measure


async def interleaved(
    names: tuple[str, ...],
    options: Options,
    loadgen_core: int,
    *,
    connections: int,
    wires: tuple[str, ...],
    rounds: int,
    rate: float,
    seconds: float,
    size: int,
    log: Any,
) -> dict[str, Any]:
    """``rounds`` steps of ``seconds`` at ``rate`` for every target on every wire:
    ``{"rate", "seconds", "wires": {wire: {target: [step, ...]}}}``."""
    result: dict[str, Any] = {"rate": rate, "seconds": seconds, "rounds": rounds, "wires": {}}
    async with contextlib.AsyncExitStack() as stack:
        deployments: dict[str, Deployment] = {}
        plans: dict[str, Path] = {}
        loadgens: dict[str, LoadGen] = {}
        for name in names:
            deployment = await stack.enter_async_context(Deployment(TARGETS[name], options))
            plan = options.workdir / f"rounds-{name}.json"
            plans[name] = await deployment.plan(connections, plan)
            deployments[name] = deployment
            loadgens[name] = await stack.enter_async_context(
                LoadGen(loadgen_core, options.workdir / f"rounds-{name}.log")
            )
        for wire in wires:
            steps: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            for name in names:
                await loadgens[name].connect(plans[name], compression=wire == "deflate")
            for turn in range(rounds):
                order = names[turn % len(names) :] + names[: turn % len(names)]
                for name in order:
                    step = await measure(
                        loadgens[name], deployments[name], rate, seconds=seconds, size=size
                    )
                    step["round"] = turn
                    steps[name].append(step)
                    log(
                        f"  round {turn + 1} {name:9} {wire:7} "
                        f"{step['server_us_per_delivery']:.1f} µs + "
                        f"{step['db_us_per_delivery'] + step['broker_us_per_delivery']:.1f}"
                    )
            for name in names:
                await loadgens[name].close()
            result["wires"][wire] = steps
    return result
