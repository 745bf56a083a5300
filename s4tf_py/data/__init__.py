"""``s4.data``: data sets and S4TF's Epochs API.

* Epochs (S4TF's ``TrainingEpochs``, ``Sampling``, ``Slices``): :class:`TrainingEpochs` gives
  shuffled, seeded, batched and collated epochs over a dataset, produced ahead on a background
  thread (:func:`prefetch`); :class:`InferenceBatches` the in-order batches for validation.
* Datasets: :class:`ArrayDataset` over in-memory arrays (a tuple or dict of them), anything
  with ``len`` and indexing, :class:`ImageFolder` over image files; :func:`collate`,
  :func:`to_tensors`, :func:`train_validation_split`.
* Loaders for original file formats: :func:`load_mnist` / :func:`read_idx` (MNIST IDX, also
  gzip), :func:`load_cifar10` / :func:`load_cifar100` (binary batches), :class:`ImageFolder`
  (JPEG/PNG class folders), :func:`load_csv`, :func:`load_tsv`, :func:`read_text`. A bad file
  raises :class:`DataFormatError` naming the file and what is wrong with it.
* Embedded real data (no downloads): :func:`digits`, :func:`diabetes` (scikit-learn) and
  :func:`text_corpus` (Python's standard-library documentation, built once and cached).
* Text: :func:`encode_bytes` / :func:`decode_bytes`, :class:`CharVocabulary`,
  :class:`LanguageModelWindows`, :func:`language_model_batches`.

>>> import s4tf_py.data as data
>>> images, labels = data.digits()
>>> (x_train, y_train), (x_valid, y_valid) = data.train_validation_split(
...     (images, labels), validation_fraction=0.2, seed=0)
>>> epochs = data.TrainingEpochs((x_train, y_train), batch_size=64, seed=0)
>>> for epoch in epochs.prefix(1):
...     for x, y in epoch:
...         pass                       # one training step on (x, y)
>>> x.shape, y.shape, len(epoch)
((64, 8, 8), (64,), 22)
"""
from .cifar import (load_cifar10, load_cifar100, read_cifar10_batch, read_cifar100_batch,
                    read_label_names)
from .collation import collate, map_structure, to_tensors
from .corpus import (STDLIB_CORPUS_MODULES, build_stdlib_corpus, corpus_cache_path,
                     text_corpus)
from .datasets import ArrayDataset, Sampling, Slices, as_dataset
from .embedded import DIABETES_FEATURES, Diabetes, Digits, diabetes, digits
from .epochs import Epoch, InferenceBatches, TrainingEpochs, epoch_order
from .errors import DataFormatError
from .images import IMAGE_EXTENSIONS, ImageFolder, load_image, resize_images
from .mnist import load_mnist, read_idx
from .prefetching import Prefetcher, prefetch
from .split import split_indices, train_validation_split
from .tabular import load_csv, load_delimited, load_tsv
from .text import (CharVocabulary, LanguageModelWindows, decode_bytes, encode_bytes,
                   language_model_batches, read_text, text_files)

__all__ = [
    # epochs and datasets
    "TrainingEpochs", "Epoch", "InferenceBatches", "epoch_order", "Sampling", "Slices",
    "ArrayDataset", "as_dataset", "collate", "map_structure", "to_tensors", "Prefetcher",
    "prefetch", "split_indices", "train_validation_split",
    # file formats
    "DataFormatError", "read_idx", "load_mnist", "read_cifar10_batch", "read_cifar100_batch",
    "load_cifar10", "load_cifar100", "read_label_names", "ImageFolder", "load_image",
    "resize_images", "IMAGE_EXTENSIONS", "load_csv", "load_tsv", "load_delimited",
    "read_text", "text_files",
    # embedded data
    "digits", "diabetes", "Digits", "Diabetes", "DIABETES_FEATURES", "text_corpus",
    "build_stdlib_corpus", "corpus_cache_path", "STDLIB_CORPUS_MODULES",
    # text
    "encode_bytes", "decode_bytes", "CharVocabulary", "LanguageModelWindows",
    "language_model_batches",
]
