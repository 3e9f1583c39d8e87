"""LightningModules and the networks they wrap."""
from factory.models.cnn import SmallCNN
from factory.models.module import SupervisedModel
from factory.models.tabular_mlp import TabularMLP

__all__ = ["SmallCNN", "SupervisedModel", "TabularMLP"]
