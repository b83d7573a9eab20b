"""Expand-and-Cluster: recover a network's weights and layer widths from input/output pairs."""

from expand_and_cluster.activations import ACTIVATIONS, Symmetry, get_activation
from expand_and_cluster.errors import InputError
from expand_and_cluster.export import to_torch
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.network import MLP
from expand_and_cluster.reconstruct import Recovery, RecoverySettings, expand, reconstruct, recover
from expand_and_cluster.students import TrainSettings

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "FinetuneSettings",
    "InputError",
    "Recovery",
    "RecoverySettings",
    "Symmetry",
    "TrainSettings",
    "expand",
    "get_activation",
    "reconstruct",
    "recover",
    "to_torch",
]
__version__ = "0.1.0"
