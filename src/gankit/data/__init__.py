"""Datasets: one on-disk format (see `dataset.py`) and the sources that write it
(`atari.py`, `folder.py`, `fetch.py`)."""
from gankit.data.dataset import ImageDataset, load_dataset, resolve_class
from gankit.data.writer import DatasetWriter, write_dataset

__all__ = ["DatasetWriter", "ImageDataset", "load_dataset", "resolve_class", "write_dataset"]
