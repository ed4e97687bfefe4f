"""Platform simulator: contract-format streams, configuration and ground truth.

A small social platform during two staggered election windows, with planted ranking
interventions, confounders and data faults, for tests, benchmarks, calibration and demos::

    from streams.simulator import scenario, simulate, write_simulation

    sim = simulate(scenario("default", seed=1))
    sim.exposures[0], sim.config["windows"], sim.truth["interventions"]
    write_simulation("out/", scenario("hidden_boost"), fmt="jsonl.gz")

A platform that lies in its logs (look-alike ids, holdout tampering, stripped intervention
ids, conflicting duplicates, a log falsified against a panel): :mod:`.adversary`, through
``SimParams.adversaries`` and the scenarios named after them.

Command line: ``python -m streams.simulator --out DIR --scenario NAME --seed N``.
"""

from .params import Intervention, SimParams, WindowSpec
from .scenarios import SCENARIOS, scenario
from .simulation import Simulation, simulate
from .writer import FORMATS, write_simulation

__all__ = [
    "FORMATS",
    "SCENARIOS",
    "Intervention",
    "SimParams",
    "Simulation",
    "WindowSpec",
    "scenario",
    "simulate",
    "write_simulation",
]
