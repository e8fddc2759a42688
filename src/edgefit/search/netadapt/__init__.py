"""NetAdapt: adapt a network to latency, energy, memory and MAC budgets, one block per iteration.

>>> from edgefit.search.netadapt import NetAdaptConfig
>>> NetAdaptConfig(budgets=("latency=50%", "macs=10M")).budgets[1].value
10000000.0
"""

from edgefit.search.netadapt.adapter import (
    ConvnetAdapter,
    FidelityAdapter,
    NetworkAdapter,
    Proposal,
    calibrate_batchnorm_,
    candidate_widths,
)
from edgefit.search.netadapt.algorithm import AdaptResult, NetAdaptConfig, load_member, netadapt
from edgefit.search.netadapt.budgets import RESOURCES, Budget, parse_budget
from edgefit.search.netadapt.channels import channel_importance, find_blocks, shrink
from edgefit.search.netadapt.family import family_markdown, write_family
from edgefit.search.netadapt.journal import FINAL, Journal, Member
from edgefit.search.netadapt.resources import ResourceMeter
from edgefit.search.netadapt.schedule import reduction, targets

__all__ = [
    "FINAL",
    "RESOURCES",
    "AdaptResult",
    "Budget",
    "ConvnetAdapter",
    "FidelityAdapter",
    "Journal",
    "Member",
    "NetAdaptConfig",
    "NetworkAdapter",
    "Proposal",
    "ResourceMeter",
    "calibrate_batchnorm_",
    "candidate_widths",
    "channel_importance",
    "family_markdown",
    "find_blocks",
    "load_member",
    "netadapt",
    "parse_budget",
    "reduction",
    "shrink",
    "targets",
    "write_family",
]
