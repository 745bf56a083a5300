"""Build the embedded tokenizer, ``models/gemma/assets/tokenizer-1k.model``, deterministically.

A SentencePiece BPE model of 1,024 pieces (the ``gemma3-tiny`` preset's ``vocab_size``) trained
on the embedded text corpus (:func:`s4tf_py.data.text_corpus`), laid out as Gemma's tokenizers
are: ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, then the user-defined symbols
``<mask>`` 4, ``<start_of_turn>`` 5, ``<end_of_turn>`` 6, then the 256 byte pieces
``<0x00>`` … ``<0xFF>`` (byte fallback: no text is ever unknown), then the learned merges and
characters. Like Gemma's own model it normalizes nothing (``identity``), adds no dummy prefix,
keeps every space (runs of spaces become pieces: code indentation is cheap) and splits digits.

Commands, from the repository root (each takes a few seconds)::

    python -m s4tf_models.gemma.build_tokenizer            # rewrite the committed asset
    python -m s4tf_models.gemma.build_tokenizer --check    # rebuild in memory, compare bytes
    python -m s4tf_models.gemma.build_tokenizer --data my_text/ --vocab-size 4096 \\
        --output my-tokenizer.model                        # the same recipe on your own text

The same corpus gives the same bytes: training reads every line in order on one thread, with
no sampling (the tests rebuild the asset and compare). The corpus is rendered from the running
Python's standard library, so another Python version renders other text and trains another
model; :data:`CORPUS_SHA256` records the corpus the committed file was built from (CPython
3.11), and ``--check`` says when the corpus differs rather than reporting a false mismatch.
The bytes also depend on the SentencePiece version (:data:`SENTENCEPIECE_VERSION` built it).

>>> import sentencepiece as spm
>>> proto = train_tokenizer("the cat sat on the mat\\n" * 50 + "dogs and cats\\n" * 20,
...                         vocab_size=300)
>>> sp = spm.SentencePieceProcessor(model_proto=proto)
>>> [sp.id_to_piece(i) for i in range(7)]
['<pad>', '<eos>', '<bos>', '<unk>', '<mask>', '<start_of_turn>', '<end_of_turn>']
>>> proto == train_tokenizer("the cat sat on the mat\\n" * 50 + "dogs and cats\\n" * 20,
...                          vocab_size=300)
True
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from pathlib import Path

#: the committed asset
ASSET = Path(__file__).resolve().parent / "assets" / "tokenizer-1k.model"

#: SHA-256 of the UTF-8 corpus (``text_corpus()``) the committed asset was trained on
CORPUS_SHA256 = "e2a97800e4a5dd89e37e41a767b774d42c83f0e4e0b164b524a1e0ea0c49e2b2"

#: the SentencePiece release that wrote the committed asset
SENTENCEPIECE_VERSION = "0.2.3"

#: Gemma's special pieces, in id order from 0 (the first four are SentencePiece's own ids)
CONTROL_PIECES = {"pad": "<pad>", "eos": "<eos>", "bos": "<bos>", "unk": "<unk>"}
USER_DEFINED_PIECES = ("<mask>", "<start_of_turn>", "<end_of_turn>")

#: the training recipe (``SentencePieceTrainer.train`` keywords) besides vocab_size
TRAINER_OPTIONS: dict = dict(
    model_type="bpe",
    pad_id=0, eos_id=1, bos_id=2, unk_id=3,
    pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
    user_defined_symbols=list(USER_DEFINED_PIECES),
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="identity",
    add_dummy_prefix=False,
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    # characters seen less than once in 10,000 go to byte fallback: a few more merges
    character_coverage=0.9999,
    max_sentence_length=1 << 16,          # keep long lines of a user's text (default: 4,192 B)
    input_sentence_size=0,                # every line, no sampling
    shuffle_input_sentence=False,
    num_threads=1,                        # one thread: the same bytes on every machine
    minloglevel=2,
)


def _sentencepiece():
    try:
        import sentencepiece as spm
    except ImportError as e:  # pragma: no cover - an install requirement
        raise ImportError("building a Gemma tokenizer needs the sentencepiece package "
                          "(pip install sentencepiece)") from e
    return spm


def corpus_sha256(text: str) -> str:
    """SHA-256 (hex) of ``text`` as UTF-8: the identity of a training corpus."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def train_tokenizer(text: str, vocab_size: int = 1024) -> bytes:
    """The serialized SentencePiece model (``.model`` bytes) trained on ``text``'s lines with
    :data:`TRAINER_OPTIONS`. Deterministic: the same text gives the same bytes."""
    spm = _sentencepiece()
    lines = [line for line in text.splitlines() if line]
    if not lines:
        raise ValueError("train_tokenizer: the text is empty")
    reserved = len(CONTROL_PIECES) + len(USER_DEFINED_PIECES) + 256
    if vocab_size <= reserved:
        raise ValueError(f"train_tokenizer: vocab_size must exceed the {reserved} special and "
                         f"byte pieces, got {vocab_size}")
    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=out,
                                       vocab_size=vocab_size, **TRAINER_OPTIONS)
    except RuntimeError as e:
        raise ValueError(f"train_tokenizer: SentencePiece could not train a {vocab_size}-piece "
                         f"model on this text ({e})") from e
    return out.getvalue()


def build(output: str | os.PathLike | None = ASSET, data: str | os.PathLike | None = None,
          vocab_size: int = 1024) -> bytes:
    """Train on the embedded corpus (or the UTF-8 file / folder ``data``) and write the model
    to ``output`` (None: write nothing). Returns the model's bytes."""
    from s4tf_py.data import text_corpus
    proto = train_tokenizer(text_corpus(data), vocab_size)
    if output is not None:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(proto)
        os.replace(tmp, path)
    return proto


def check() -> tuple[bool, str]:
    """Rebuild the committed asset in memory: (whether the bytes are equal, a message)."""
    from s4tf_py.data import text_corpus
    spm = _sentencepiece()
    text = text_corpus()
    digest = corpus_sha256(text)
    if digest != CORPUS_SHA256:
        return False, (f"the corpus of this Python ({sys.version.split()[0]}) differs from the "
                       f"one the asset was built from (sha256 {digest[:12]}… vs "
                       f"{CORPUS_SHA256[:12]}…): a rebuild here cannot reproduce {ASSET.name}")
    proto = train_tokenizer(text)
    if not ASSET.is_file():
        return False, f"{ASSET} is missing; build it with --output or without --check"
    if proto == ASSET.read_bytes():
        return True, f"{ASSET.name}: rebuilt byte for byte ({len(proto):,} bytes)"
    return False, (f"{ASSET.name} differs from a rebuild (sentencepiece {spm.__version__}; the "
                   f"asset was written by {SENTENCEPIECE_VERSION})")


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m s4tf_models.gemma.build_tokenizer",
                                 description="Train the embedded Gemma SentencePiece tokenizer.")
    ap.add_argument("--output", default=None,
                    help=f"where to write the model (default: the committed asset {ASSET})")
    ap.add_argument("--data", default=None,
                    help="a UTF-8 text file or folder to train on instead of the embedded corpus")
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--check", action="store_true",
                    help="rebuild the committed asset in memory and compare bytes")
    args = ap.parse_args(argv)
    if args.check:
        if args.output or args.data or args.vocab_size != 1024:
            ap.error("--check takes no other option")
        ok, msg = check()
        print(msg)
        return 0 if ok else 1
    output = Path(args.output) if args.output else ASSET
    proto = build(output, args.data, args.vocab_size)
    print(f"wrote {output} ({len(proto):,} bytes, {args.vocab_size} pieces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
