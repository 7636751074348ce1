"""Compile a loaded workflow into a plan: agents built, the DAG ordered, the batch source found."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from dataclasses import dataclass

from relayflow.agents.base import Agent, BuildContext, SourceAgent
from relayflow.schema.file import AgentConfig
from relayflow.schema.workflow import Workflow


@dataclass(frozen=True, slots=True)
class Node:
    """One agent in the plan with its place in the graph (indices into ``Plan.nodes``)."""

    index: int
    name: str
    agent_type: str
    agent: Agent
    config: AgentConfig
    deps: tuple[int, ...]
    dependents: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """The compiled workflow. ``order`` is topological; ``levels`` group independent nodes;
    ``linear`` is true when the graph is a single chain (the runner's fast path)."""

    nodes: tuple[Node, ...]
    order: tuple[int, ...]
    levels: tuple[tuple[int, ...], ...]
    source: int | None
    sinks: tuple[int, ...]
    linear: bool

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def topological_levels(deps: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Group names into levels: each level depends only on earlier ones. Keeps file order."""
    position = {name: i for i, name in enumerate(deps)}
    sorter = graphlib.TopologicalSorter({n: set(d) for n, d in deps.items()})
    sorter.prepare()
    levels: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        levels.append(ready)
        sorter.done(*ready)
    return levels


def reviewers_downstream(
    agents: tuple[AgentConfig, ...], deps: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """For each agent, the ``human_review`` agents that (transitively) depend on it."""
    dependents: dict[str, list[str]] = {a.name: [] for a in agents}
    for name, ds in deps.items():
        for d in ds:
            dependents[d].append(name)
    kinds = {a.name: a.type for a in agents}
    result: dict[str, tuple[str, ...]] = {}
    for agent in agents:
        seen: list[str] = []
        stack = list(dependents[agent.name])
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.append(current)
            stack.extend(dependents[current])
        result[agent.name] = tuple(n for n in seen if kinds[n] == "human_review")
    return result


def build_plan(loaded: Workflow, ctx: BuildContext) -> Plan:
    """Instantiate every agent (nothing heavy: ``prepare`` loads) and order the graph."""
    from relayflow.agents.registry import agent_class

    names = [a.name for a in loaded.agents]
    index = {name: i for i, name in enumerate(names)}
    dependents: dict[str, list[int]] = {n: [] for n in names}
    for name in names:
        for dep in loaded.depends_on[name]:
            dependents[dep].append(index[name])
    nodes = []
    for i, config in enumerate(loaded.agents):
        agent = agent_class(config.type)(config, ctx)
        nodes.append(
            Node(
                index=i,
                name=config.name,
                agent_type=config.type,
                agent=agent,
                config=config,
                deps=tuple(index[d] for d in loaded.depends_on[config.name]),
                dependents=tuple(dependents[config.name]),
            )
        )
    levels = [tuple(index[n] for n in level) for level in topological_levels(loaded.depends_on)]
    order = tuple(i for level in levels for i in level)
    first = nodes[order[0]]
    source = (
        first.index
        # a source agent (retrieval, or a plugin's) first and alone at the top starts batches
        if isinstance(first.agent, SourceAgent)
        and not first.deps
        and sum(1 for n in nodes if not n.deps) == 1
        else None
    )
    linear = all(len(level) == 1 for level in levels) and all(len(n.deps) <= 1 for n in nodes)
    sinks = tuple(n.index for n in nodes if not n.dependents)
    return Plan(tuple(nodes), order, tuple(levels), source, sinks, linear)
