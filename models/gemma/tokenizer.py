"""``Tokenizer``: Gemma's SentencePiece tokenizer (``tokenizer.model``), its chat format, and a
streaming decoder for generation.

Gemma's tokenizers are SentencePiece BPE models with byte fallback: ``<pad>`` 0, ``<eos>`` 1,
``<bos>`` 2, ``<unk>`` 3, the chat markers ``<start_of_turn>`` / ``<end_of_turn>`` (106 / 107
in the published models), and in Gemma 3 ``<start_of_image>`` / ``<end_of_image>``; the ids
are read from the model file, never assumed. :meth:`Tokenizer.embedded` is a 1,024-piece
tokenizer trained on the embedded text corpus (``assets/tokenizer-1k.model``, built by
:mod:`s4tf_models.gemma.build_tokenizer`) with the same special pieces, for the small presets.

>>> from s4tf_models.gemma import tokenizer as tk
>>> tok = tk.Tokenizer.embedded()
>>> tok.vocab_size, tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id
(1024, 0, 1, 2, 3)
>>> ids = tok.encode("Return the value.")
>>> ids[0] == tok.bos_id, tok.decode(ids)
(True, 'Return the value.')
>>> tok.decode(tok.encode("naïve café 😀"))          # unseen characters: byte fallback
'naïve café 😀'
>>> tok.apply_chat_template([{"role": "user", "content": "Hi!"}])
'<bos><start_of_turn>user\\nHi!<end_of_turn>\\n<start_of_turn>model\\n'

Encoding equals transformers' ``GemmaTokenizer`` built from the same file, chat templates equal
the Gemma 3 chat template's rendering, and decoding equals SentencePiece's (invalid UTF-8 from
byte pieces becomes one U+FFFD per byte); ``tests/models/test_gemma_tokenizer.py`` checks all
three.
"""
from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Tokenizer", "StreamDecoder", "EncodedBatch", "EMBEDDED_TOKENIZER"]

#: the committed 1,024-piece tokenizer trained on the embedded corpus
EMBEDDED_TOKENIZER = Path(__file__).resolve().parent / "assets" / "tokenizer-1k.model"

#: Gemma's named special pieces besides SentencePiece's control and unknown pieces: skipped by
#: ``decode(skip_special=True)`` where the model has them (transformers marks them special)
SPECIAL_PIECES = ("<mask>", "[multimodal]", "<start_of_turn>", "<end_of_turn>",
                  "<start_of_image>", "<end_of_image>", "<image_soft_token>")

_SPACE = "\u2581"                         # SentencePiece's whitespace marker "▁"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>\Z")
_ERRORS = "s4tf_models.sentencepiece_replace"


def _replace_each_byte(exc: UnicodeError):
    """SentencePiece's rule for invalid UTF-8 from byte pieces: one U+FFFD per bad byte."""
    if isinstance(exc, UnicodeDecodeError):
        return "\ufffd" * (exc.end - exc.start), exc.end
    raise exc


codecs.register_error(_ERRORS, _replace_each_byte)


def _sentencepiece():
    try:
        import sentencepiece as spm
    except ImportError as e:
        raise ImportError("s4tf_models.gemma.Tokenizer needs the sentencepiece package "
                          "(pip install sentencepiece)") from e
    return spm


def _id_list(ids, what: str) -> list[int]:
    """ids (list, tuple, numpy array, Tensor, or one int) → a flat list of Python ints."""
    if isinstance(ids, (int, np.integer)):
        return [int(ids)]
    if hasattr(ids, "numpy") and not isinstance(ids, np.ndarray):
        ids = ids.numpy()
    arr = np.asarray(ids)
    if arr.size == 0:
        return []
    if arr.ndim > 1:
        raise ValueError(f"{what}: expected a 1-D sequence of token ids, got shape {arr.shape} "
                         "(decode_batch decodes rows)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what}: token ids must be integers, got dtype {arr.dtype}")
    out = arr.reshape(-1).tolist()
    if min(out) < 0:
        raise ValueError(f"{what}: negative token id {min(out)}")
    return out


class EncodedBatch(NamedTuple):
    """:meth:`Tokenizer.encode_batch`'s result: int32 Tensors ``[batch, length]``."""

    input_ids: Any
    attention_mask: Any


class Tokenizer:
    """A SentencePiece ``tokenizer.model`` in Gemma's format.

    ``Tokenizer(path)`` reads the file (or a folder holding ``tokenizer.model``);
    :meth:`from_folder` reads a Hugging Face checkpoint folder; :meth:`embedded` is the
    committed 1,024-piece tokenizer.

    >>> tok = Tokenizer.embedded()
    >>> tok.start_of_turn_id, tok.end_of_turn_id, tok.start_of_image_id
    (5, 6, None)
    >>> tok.stop_ids
    (1, 6)
    """

    def __init__(self, path: str | os.PathLike):
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.model"
        if not p.is_file():
            raise FileNotFoundError(f"Gemma tokenizer: no SentencePiece model at {p}")
        spm = _sentencepiece()
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=p.read_bytes())
        except (RuntimeError, OSError) as e:
            raise ValueError(f"Gemma tokenizer: {p} is not a SentencePiece model ({e})") from e
        self.path: Path = p
        sp = self._sp
        n = sp.get_piece_size()
        self._n = n
        ctrl = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
        named = {name: self.piece_to_id(name) for name in SPECIAL_PIECES}
        self._named = {k: v for k, v in named.items() if v is not None}
        self._special = frozenset(ctrl) | frozenset(self._named.values())
        # pieces SentencePiece never reads from text (user-defined ones it does): split them
        # out of the text first, as transformers' added tokens are
        parsed = sorted({sp.id_to_piece(i) for i in ctrl} - {""}, key=len, reverse=True)
        self._parse = {sp.id_to_piece(i): i for i in ctrl}
        self._parse_re = (re.compile("(" + "|".join(map(re.escape, parsed)) + ")")
                          if parsed else None)
        self._surface: dict[int, bytes] = {}
        self._strip_leading_space = self._probe_dummy_prefix()

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "Tokenizer":
        """The ``tokenizer.model`` of a Hugging Face checkpoint folder.

        >>> Tokenizer.from_folder("/no/such/folder")
        Traceback (most recent call last):
        ...
        FileNotFoundError: Gemma tokenizer: no folder /no/such/folder
        """
        d = Path(folder)
        if not d.is_dir():
            raise FileNotFoundError(f"Gemma tokenizer: no folder {d}")
        p = d / "tokenizer.model"
        if not p.is_file():
            extra = (" (it has a tokenizer.json; only the SentencePiece tokenizer.model is "
                     "read)" if (d / "tokenizer.json").is_file() else "")
            raise FileNotFoundError(f"Gemma tokenizer: no SentencePiece model at {p}{extra}")
        return cls(p)

    @classmethod
    def embedded(cls) -> "Tokenizer":
        """The committed 1,024-piece tokenizer trained on the embedded text corpus (the
        ``gemma3-tiny`` preset's vocabulary)."""
        return cls(EMBEDDED_TOKENIZER)

    def _probe_dummy_prefix(self) -> bool:
        """Whether SentencePiece drops the ``▁`` that starts a decoded text (models with
        ``add_dummy_prefix``, not Gemma's): decode one ``▁``-led piece and look."""
        sp = self._sp
        for i in range(self._n):
            piece = sp.id_to_piece(i)
            if (len(piece) > 1 and piece.startswith(_SPACE) and i not in self._special
                    and not sp.is_byte(i) and not sp.is_unused(i)):
                return not sp.decode([i]).startswith(" ")
        return False

    def __repr__(self) -> str:
        return f"Tokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"

    # ---- vocabulary ------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """The number of pieces in the model."""
        return self._n

    def __len__(self) -> int:
        return self._n

    def _id_or_none(self, i: int) -> int | None:
        return None if i < 0 else int(i)

    @property
    def pad_id(self) -> int | None:
        """``<pad>`` (0 in Gemma)."""
        return self._id_or_none(self._sp.pad_id())

    @property
    def eos_id(self) -> int | None:
        """``<eos>`` (1 in Gemma)."""
        return self._id_or_none(self._sp.eos_id())

    @property
    def bos_id(self) -> int | None:
        """``<bos>`` (2 in Gemma)."""
        return self._id_or_none(self._sp.bos_id())

    @property
    def unk_id(self) -> int | None:
        """``<unk>`` (3 in Gemma; byte fallback means encoding never produces it)."""
        return self._id_or_none(self._sp.unk_id())

    @property
    def mask_id(self) -> int | None:
        """``<mask>`` where the model has it."""
        return self._named.get("<mask>")

    @property
    def start_of_turn_id(self) -> int | None:
        """``<start_of_turn>`` (106 in the published models)."""
        return self._named.get("<start_of_turn>")

    @property
    def end_of_turn_id(self) -> int | None:
        """``<end_of_turn>`` (107 in the published models): where a chat reply ends."""
        return self._named.get("<end_of_turn>")

    @property
    def start_of_image_id(self) -> int | None:
        """Gemma 3's ``<start_of_image>``, None where the model lacks it."""
        return self._named.get("<start_of_image>")

    @property
    def end_of_image_id(self) -> int | None:
        """Gemma 3's ``<end_of_image>``, None where the model lacks it."""
        return self._named.get("<end_of_image>")

    @property
    def special_ids(self) -> frozenset:
        """Ids that ``decode(skip_special=True)`` drops: the control pieces (pad, eos, bos),
        ``<unk>`` and the model's pieces among :data:`SPECIAL_PIECES`."""
        return self._special

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Where generation stops: ``<eos>`` and, in chat models, ``<end_of_turn>``."""
        return tuple(i for i in (self.eos_id, self.end_of_turn_id) if i is not None)

    def id_to_piece(self, i: int) -> str:
        """The piece of id ``i`` (``"▁the"``, ``"<0x0A>"``, ``"<bos>"``)."""
        if not 0 <= int(i) < self._n:
            raise ValueError(f"id_to_piece: id {i} is outside the vocabulary (0..{self._n - 1})")
        return self._sp.id_to_piece(int(i))

    def piece_to_id(self, piece: str) -> int | None:
        """The id of ``piece``, or None where the vocabulary lacks it."""
        i = self._sp.piece_to_id(piece)
        return i if self._sp.id_to_piece(i) == piece else None

    # ---- encoding --------------------------------------------------------------------------

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = False, *,
               parse_special: bool = True) -> list[int]:
        """Token ids of ``text``, with ``<bos>`` first and ``<eos>`` last as asked.

        ``parse_special``: the text of a control piece (``"<bos>"``, ``"<eos>"``, ``"<pad>"``,
        ``"<unk>"``) becomes that id, as transformers does (so an encoded chat template starts
        with the bos id); with False such text is spelled out. User-defined pieces
        (``<start_of_turn>``, ``<end_of_turn>``) are always one id, as SentencePiece does.

        >>> tok = Tokenizer.embedded()
        >>> tok.encode("<start_of_turn>", add_bos=False)
        [5]
        >>> tok.encode("<bos>x", add_bos=False)[0]
        2
        """
        if not isinstance(text, str):
            raise TypeError(f"encode: expected a str, got {type(text).__name__} (encode_batch "
                            "encodes a list)")
        ids: list[int] = []
        if add_bos:
            ids.append(self._required(self.bos_id, "<bos>"))
        if parse_special and self._parse_re is not None:
            for k, part in enumerate(self._parse_re.split(text)):
                if k % 2:
                    ids.append(self._parse[part])
                elif part:
                    ids.extend(self._sp.encode(part))
        elif text:
            ids.extend(self._sp.encode(text))
        if add_eos:
            ids.append(self._required(self.eos_id, "<eos>"))
        return ids

    def _required(self, i: int | None, name: str) -> int:
        if i is None:
            raise ValueError(f"{self.path} has no {name} piece")
        return i

    def encode_batch(self, texts: Sequence[str], add_bos: bool = True, add_eos: bool = False,
                     *, padding_side: str = "left", max_length: int | None = None,
                     parse_special: bool = True) -> EncodedBatch:
        """Encode several texts into ``(input_ids, attention_mask)``, int32 Tensors
        ``[len(texts), longest]``, padded with ``pad_id`` (mask 0 there, 1 on tokens).

        ``padding_side``: ``"left"`` (the default, as transformers' Gemma tokenizer: what
        batched generation wants) or ``"right"`` (training). ``max_length`` keeps each text's
        first ``max_length`` ids.

        >>> tok = Tokenizer.embedded()
        >>> ids, mask = tok.encode_batch(["a", "a b c"], padding_side="right")
        >>> mask.numpy().tolist()
        [[1, 1, 0, 0], [1, 1, 1, 1]]
        >>> ids.numpy()[0, 2:].tolist() == [tok.pad_id] * 2
        True
        """
        import s4tf_py as s4

        if isinstance(texts, str):
            raise TypeError("encode_batch: expected a list of texts, got one str (use encode)")
        texts = list(texts)
        if not texts:
            raise ValueError("encode_batch: no texts")
        if padding_side not in ("left", "right"):
            raise ValueError(f"encode_batch: padding_side must be 'left' or 'right', got "
                             f"{padding_side!r}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"encode_batch: max_length must be positive, got {max_length}")
        rows = [self.encode(t, add_bos, add_eos, parse_special=parse_special) for t in texts]
        if max_length is not None:
            rows = [r[:max_length] for r in rows]
        width = max(1, max(len(r) for r in rows))
        pad = self.pad_id if self.pad_id is not None else 0
        ids = np.full((len(rows), width), pad, np.int32)
        mask = np.zeros((len(rows), width), np.int32)
        for b, r in enumerate(rows):
            sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
            ids[b, sl] = r
            mask[b, sl] = 1
        return EncodedBatch(s4.Tensor(ids), s4.Tensor(mask))

    # ---- decoding --------------------------------------------------------------------------

    def _piece_surface(self, i: int) -> bytes:
        """The bytes piece ``i`` stands for (specials: their own text)."""
        b = self._surface.get(i)
        if b is None:
            piece = self._sp.id_to_piece(i)
            m = _BYTE_PIECE.match(piece) if self._sp.is_byte(i) else None
            b = bytes([int(m.group(1), 16)]) if m else piece.replace(_SPACE, " ").encode()
            self._surface[i] = b
        return b

    def decode(self, ids, skip_special: bool = True) -> str:
        """The text of ``ids`` (a list, array or 1-D Tensor).

        ``skip_special``: drop :attr:`special_ids` (bos, eos, pad, unk, the chat markers);
        with False they appear as their text (``"<bos>"``), as transformers shows them. Byte
        pieces join into UTF-8; a byte that makes no character becomes U+FFFD, as in
        SentencePiece. Ids past the vocabulary (rows a model's embedding pads on) decode to
        nothing, as in transformers.

        >>> tok = Tokenizer.embedded()
        >>> ids = tok.encode("x = 1", add_eos=True)
        >>> tok.decode(ids), tok.decode(ids, skip_special=False)
        ('x = 1', '<bos>x = 1<eos>')
        """
        dec = StreamDecoder(self, skip_special)
        return dec.add(_id_list(ids, "decode")) + dec.flush()

    def decode_batch(self, ids, skip_special: bool = True) -> list[str]:
        """:meth:`decode` of each row of ``ids`` (a 2-D array, Tensor or list of lists);
        padding is a special id, dropped unless ``skip_special`` is False."""
        if hasattr(ids, "numpy") and not isinstance(ids, np.ndarray):
            ids = ids.numpy()
        return [self.decode(row, skip_special) for row in ids]

    def stream_decoder(self, skip_special: bool = True) -> "StreamDecoder":
        """A :class:`StreamDecoder`: text as ids arrive during generation."""
        return StreamDecoder(self, skip_special)

    # ---- chat ------------------------------------------------------------------------------

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]],
                            add_generation_prompt: bool = True, tokenize: bool = False):
        """Gemma's chat format, character for character what transformers renders with the
        Gemma 3 chat template (for Gemma 2's conversations, which have no system turn, the
        same text as Gemma 2's template).

        ``messages``: dicts with ``role`` (``user``, ``assistant`` (written ``model``), or a
        first ``system`` message, which the template folds into the first user turn followed
        by a blank line) and ``content`` (a string, trimmed; or a list of ``{"type": "text",
        "text": ...}`` / ``{"type": "image"}`` items). Roles must alternate user / assistant.
        ``tokenize``: return the ids (``encode(text, add_bos=False)``) instead of the text.

        >>> tok = Tokenizer.embedded()
        >>> print(tok.apply_chat_template([
        ...     {"role": "system", "content": "Be brief."},
        ...     {"role": "user", "content": "What is 2+2? "},
        ...     {"role": "assistant", "content": "4"}], add_generation_prompt=False))
        <bos><start_of_turn>user
        Be brief.
        <BLANKLINE>
        What is 2+2?<end_of_turn>
        <start_of_turn>model
        4<end_of_turn>
        <BLANKLINE>
        """
        msgs = list(messages)
        if not msgs:
            raise ValueError("apply_chat_template: no messages")
        sot = self._chat_piece("<start_of_turn>")
        eot = self._chat_piece("<end_of_turn>")
        bos = self._sp.id_to_piece(self._required(self.bos_id, "<bos>"))
        if msgs[0]["role"] == "system":
            content = msgs[0]["content"]
            first_user_prefix = (content if isinstance(content, str)
                                 else content[0]["text"]) + "\n\n"
            loop = msgs[1:]
        else:
            first_user_prefix = ""
            loop = msgs
        out = [bos]
        for k, m in enumerate(loop):
            if (m["role"] == "user") != (k % 2 == 0):
                raise ValueError("apply_chat_template: Conversation roles must alternate "
                                 "user/assistant/user/assistant/...")
            role = "model" if m["role"] == "assistant" else m["role"]
            out.append(sot + role + "\n" + (first_user_prefix if k == 0 else ""))
            content = m["content"]
            if isinstance(content, str):
                out.append(content.strip())
            elif isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
                for item in content:
                    if item.get("type") == "image":
                        out.append(self._chat_piece("<start_of_image>"))
                    elif item.get("type") == "text":
                        out.append(item["text"].strip())
            else:
                raise ValueError(f"apply_chat_template: Invalid content type "
                                 f"{type(content).__name__} (a str or a list of items)")
            out.append(eot + "\n")
        if add_generation_prompt:
            out.append(sot + "model\n")
        text = "".join(out)
        return self.encode(text, add_bos=False) if tokenize else text

    def _chat_piece(self, name: str) -> str:
        if name not in self._named:
            raise ValueError(f"apply_chat_template: {self.path} has no {name} piece (not a "
                             "Gemma chat tokenizer)")
        return name


class StreamDecoder:
    """Incremental text of a growing id sequence: :meth:`add` the new ids (or
    :meth:`update` with the whole sequence so far) and get the text they complete;
    :meth:`flush` at the end. The pieces concatenate exactly to ``decode(all ids)``: nothing is
    re-decoded, a character split across byte-fallback pieces waits for its last byte, and a
    ``▁`` (space) stays with its word.

    >>> tok = Tokenizer.embedded()
    >>> ids = tok.encode("héllo 😀!", add_bos=False)
    >>> dec = tok.stream_decoder()
    >>> parts = [dec.add(i) for i in ids]
    >>> parts[-3:], "".join(parts) + dec.flush()
    (['', '😀', '!'], 'héllo 😀!')
    """

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True):
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors=_ERRORS)
        self._ids: list[int] = []
        self._started = False             # whether any bytes went out (the dummy-prefix rule)
        self._text: list[str] = []

    @property
    def ids(self) -> list[int]:
        """Every id added so far."""
        return list(self._ids)

    @property
    def text(self) -> str:
        """Every piece of text returned so far."""
        return "".join(self._text)

    def add(self, ids) -> str:
        """Add one id or several (an int, list, array or Tensor); return the new text."""
        new = _id_list(ids, "StreamDecoder.add")
        tok = self.tokenizer
        chunks = []
        for i in new:
            if i >= tok._n:
                continue                                   # padded embedding rows
            if i in tok._special and self.skip_special:
                continue
            b = tok._piece_surface(i)
            if (not self._started and tok._strip_leading_space and b.startswith(b" ")
                    and i not in tok._special and not tok._sp.is_byte(i)):
                b = b[1:]
            if b:
                self._started = True
                chunks.append(b)
        self._ids.extend(new)
        s = self._utf8.decode(b"".join(chunks)) if chunks else ""
        self._text.append(s)
        return s

    def update(self, all_ids) -> str:
        """Give the whole sequence so far (it must extend the previous one); return the text
        of the ids it adds."""
        seq = _id_list(all_ids, "StreamDecoder.update")
        n = len(self._ids)
        if len(seq) < n or (n and seq[n - 1] != self._ids[-1]):
            raise ValueError(f"StreamDecoder.update: the sequence ({len(seq)} ids) does not "
                             f"extend the {n} ids decoded so far")
        return self.add(seq[n:])

    def flush(self) -> str:
        """The end of the stream: the text still held (a byte sequence cut short becomes
        U+FFFD)."""
        s = self._utf8.decode(b"", final=True)
        self._text.append(s)
        return s
