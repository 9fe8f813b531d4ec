"""Objectives: one class per kind, registered under its config ``type`` (``base`` says what an
objective is). A new objective is one module here plus its line below."""

from policies.objectives.base import OBJECTIVES, Choice, Context, ObjectiveKind
from policies.objectives.best_under import BestUnder
from policies.objectives.cascade import Cascade, CascadeSpec
from policies.objectives.cheapest_above import CheapestAbove
from policies.objectives.fixed import Fixed
from policies.objectives.gain import Gain
from policies.objectives.margin import Margin
from policies.objectives.split import Arm, Split
from policies.objectives.utility import Utility

for _kind in (CheapestAbove, BestUnder, Utility, Gain, Margin, Cascade, Split, Fixed):
    OBJECTIVES.register(_kind)

__all__ = [
    "OBJECTIVES",
    "Arm",
    "BestUnder",
    "Cascade",
    "CascadeSpec",
    "CheapestAbove",
    "Choice",
    "Context",
    "Fixed",
    "Gain",
    "Margin",
    "ObjectiveKind",
    "Split",
    "Utility",
]
