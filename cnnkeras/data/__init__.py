"""Data: sources (digits, npz, keras datasets, image folders), splits and scaling."""

from .dataset import Dataset, load_dataset
from .sources import SOURCES, RawData, load_source

__all__ = ["Dataset", "RawData", "SOURCES", "load_dataset", "load_source"]
