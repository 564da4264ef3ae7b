"""magflow's eMAG marketplace emulator: a real HTTP server speaking the eMAG API, quirks included."""

from magflow.sandbox.faults import FAULT_KINDS, FaultInjector
from magflow.sandbox.server import SandboxServer, run_cli
from magflow.sandbox.state import SANDBOX_ACCOUNTS, SandboxState

__all__ = ["FAULT_KINDS", "SANDBOX_ACCOUNTS", "FaultInjector", "SandboxServer", "SandboxState", "run_cli"]
