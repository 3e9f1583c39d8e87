"""LightningModules and the networks they wrap."""
from factory.models.cnn import SmallCNN
from factory.models.module import SupervisedModel
from factory.models.tabm import TabM
from factory.models.tabular_mlp import TabularMLP
from factory.models.wide_mlp import WideMLP

__all__ = ["SmallCNN", "SupervisedModel", "TabM", "TabularMLP", "WideMLP"]
