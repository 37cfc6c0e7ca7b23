"""The suites convbench ships, one module per family; each registers its suites on import.

- :mod:`~convbench.cases.catalogue.conv2d`: conv2d ``edge`` and ``quick``
- :mod:`~convbench.cases.catalogue.models`: conv2d ``models``, ``resnet50`` and ``scaling``
- :mod:`~convbench.cases.catalogue.random_conv2d`: conv2d ``random``
- :mod:`~convbench.cases.catalogue.conv1d_pool`: every suite of conv1d, max_pool2d, avg_pool2d
"""
from __future__ import annotations

from convbench.cases.catalogue import conv1d_pool, conv2d, models, random_conv2d

__all__ = ["conv1d_pool", "conv2d", "models", "random_conv2d"]
