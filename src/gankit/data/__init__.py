"""Datasets: one on-disk format (see `dataset.py`) and the sources that write it
(`atari.py`, `folder.py`, `fetch.py`)."""
from gankit.data.dataset import DatasetWriter, ImageDataset, load_dataset, resolve_class, write_dataset

__all__ = ["DatasetWriter", "ImageDataset", "load_dataset", "resolve_class", "write_dataset"]
