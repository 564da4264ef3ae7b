"""magflow's eMAG marketplace emulator: a real HTTP server speaking the eMAG API, quirks included."""

from magflow.sandbox.faults import FAULT_KINDS, FaultInjector
from magflow.sandbox.hostile import DEFAULT_HOSTILE_KINDS, HOSTILE_KINDS
from magflow.sandbox.platforms import PLATFORMS
from magflow.sandbox.quirks import Quirks
from magflow.sandbox.ratelimit import RateModel
from magflow.sandbox.schedule import ScheduledAction
from magflow.sandbox.server import SandboxServer, run_cli
from magflow.sandbox.state import SANDBOX_ACCOUNTS, SandboxState
from magflow.sandbox.switches import Switches
from magflow.sandbox.wire import Wire

__all__ = [
    "DEFAULT_HOSTILE_KINDS", "FAULT_KINDS", "HOSTILE_KINDS", "PLATFORMS", "SANDBOX_ACCOUNTS", "FaultInjector", "Quirks",
    "RateModel", "SandboxServer", "SandboxState", "ScheduledAction", "Switches", "Wire", "run_cli",
]  # fmt: skip
