"""Datasets: one on-disk format (see `dataset.py`) and the sources that write it
(`atari.py`, `folder.py`, `fetch.py`), and the held-out split (`split.py`)."""
from gankit.data.dataset import ImageDataset, load_dataset, resolve_class
from gankit.data.split import Split, read_split, split_dataset
from gankit.data.writer import DatasetWriter, write_dataset

__all__ = ["DatasetWriter", "ImageDataset", "Split", "load_dataset", "read_split", "resolve_class", "split_dataset",
           "write_dataset"]
