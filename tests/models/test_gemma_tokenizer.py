"""s4tf_models.gemma.Tokenizer against SentencePiece and transformers' GemmaTokenizer built
offline from the same tokenizer.model, the Gemma 3 chat template, streaming decode, and the
embedded tokenizer's deterministic build."""
from __future__ import annotations

import doctest
import hashlib
import importlib
import io
import shutil

import numpy as np
import pytest
import sentencepiece as spm

import s4tf_py as s4
from s4tf_models.gemma import GemmaConfig
from s4tf_models.gemma import build_tokenizer as bt
from s4tf_models.gemma.tokenizer import EMBEDDED_TOKENIZER, StreamDecoder, Tokenizer

#: Gemma 3's chat template as google/gemma-3-*-it's tokenizer_config.json carries it (the
#: tokenizer.model alone has none)
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]"
    "['content'] is string -%}\n        {%- set first_user_prefix = messages[0]['content'] + "
    "'\n\n' -%}\n    {%- else -%}\n        {%- set first_user_prefix = messages[0]['content']"
    "[0]['text'] + '\n\n' -%}\n    {%- endif -%}\n    {%- set loop_messages = messages[1:] -%}"
    "\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = "
    "messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n    {%- if (message["
    "'role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"Conversation"
    " roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%- "
    "if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- "
    "else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ "
    "'<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n    {%- "
    "if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    {%- elif"
    " message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n    "
    "        {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n    "
    "        {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n  "
    "          {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ "
    "raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}"
    "\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- "
    "endif -%}\n")

GEMMA3_SPECIALS = ["<mask>", "[multimodal]", "<start_of_turn>", "<end_of_turn>",
                   "<start_of_image>", "<end_of_image>"]

UNICODE = [
    "", " ", "  ", "\n", "\n\n\n", "\t\tindented\ttabs", "trailing spaces   ", "   leading",
    "CRLF line\r\nends\r\n", "naïve café résumé", "Straße ẞ", "日本語のテキスト", "中文，标点。",
    "한국어 텍스트", "Ελληνικά", "русский текст", "עברית ومعها العربية", "हिन्दी",
    "emoji 😀🎉🚀", "family 👨\u200d👩\u200d👧\u200d👦 flag 🇺🇸 skin 👍🏽",
    "combining e\u0301 a\u0308", "math ∀x∈ℝ: x² ≥ 0 — ∑ ∫", "NUL \x00 and \x7f DEL",
    "zero width\u200b space", "\U0010ffff\U00010000 planes", "tokens <bos> and <eos> text",
    "<start_of_turn>user\nhi<end_of_turn>\n", "digits 1234567890 3.14159", "mixed 😀a😀b😀",
]


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok():
    return Tokenizer.embedded()


@pytest.fixture(scope="module")
def sp():
    return spm.SentencePieceProcessor(model_file=str(EMBEDDED_TOKENIZER))


def _hf_tokenizer(folder, model_file, specials):
    # transformers reads a bare tokenizer.model through SentencePiece's protobuf schema
    import google.protobuf  # noqa: F401  (a test requirement: protobuf)
    from transformers import GemmaTokenizer
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_file, folder / "tokenizer.model")
    return GemmaTokenizer.from_pretrained(str(folder), add_bos_token=True,
                                          additional_special_tokens=specials)


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """transformers' GemmaTokenizer from the embedded tokenizer.model, offline."""
    return _hf_tokenizer(tmp_path_factory.mktemp("hf-embedded"), EMBEDDED_TOKENIZER,
                         ["<start_of_turn>", "<end_of_turn>"])


@pytest.fixture(scope="module")
def corpus():
    from s4tf_py.data import text_corpus
    return text_corpus()


@pytest.fixture(scope="module")
def gemma3_model(tmp_path_factory):
    """A small Gemma-3-like model (image markers too) trained with the embedded recipe."""
    from s4tf_py.data import text_corpus
    text = text_corpus(modules=["bisect", "heapq", "json", "textwrap"])
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text.splitlines()), model_writer=out,
                                   vocab_size=400, **dict(bt.TRAINER_OPTIONS,
                                                          user_defined_symbols=GEMMA3_SPECIALS))
    path = tmp_path_factory.mktemp("gemma3-like") / "tokenizer.model"
    path.write_bytes(out.getvalue())
    return path


def _corpus_samples(corpus, n=40, size=2000, seed=0):
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(corpus) - size, n)
    return [corpus[s:s + size] for s in starts]


def _ids(x):
    return x["input_ids"] if not isinstance(x, list) else x


# ---- the embedded tokenizer ----------------------------------------------------------------

def test_embedded_vocabulary_and_special_ids(tok, sp):
    assert EMBEDDED_TOKENIZER.stat().st_size < 300_000
    assert tok.vocab_size == len(tok) == GemmaConfig.preset("gemma3-tiny").vocab_size == 1024
    assert (tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id) == (0, 1, 2, 3)
    assert (tok.mask_id, tok.start_of_turn_id, tok.end_of_turn_id) == (4, 5, 6)
    assert tok.start_of_image_id is None and tok.end_of_image_id is None
    assert tok.special_ids == frozenset(range(7))
    assert tok.stop_ids == (1, 6)
    assert [tok.id_to_piece(i) for i in range(7)] == [
        "<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    assert [tok.id_to_piece(7 + b) for b in (0, 10, 255)] == ["<0x00>", "<0x0A>", "<0xFF>"]
    assert all(sp.is_byte(7 + b) for b in range(256))
    assert all(sp.is_control(i) for i in (0, 1, 2)) and sp.is_unknown(3)
    assert tok.piece_to_id("<end_of_turn>") == 6 and tok.piece_to_id("no such piece") is None
    cfg = GemmaConfig.preset("gemma3-tiny")
    assert (cfg.pad_token_id, cfg.eos_token_id, cfg.bos_token_id) == (0, 1, 2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.id_to_piece(1024)


def test_encode_adds_bos_and_eos(tok):
    body = tok.encode("Return the value.", add_bos=False)
    assert tok.encode("Return the value.") == [2] + body
    assert tok.encode("Return the value.", add_eos=True) == [2] + body + [1]
    assert tok.encode("") == [2] and tok.encode("", add_bos=False) == []
    assert tok.encode("<start_of_turn>model\n", add_bos=False)[0] == tok.start_of_turn_id
    # control pieces' text: one id, as transformers does; spelled out without parse_special
    assert tok.encode("a<eos>b<pad>", add_bos=False).count(1) == 1
    spelled = tok.encode("<bos>", add_bos=False, parse_special=False)
    assert 2 not in spelled and tok.decode(spelled) == "<bos>"
    with pytest.raises(TypeError, match="encode_batch"):
        tok.encode(["a list"])


def test_round_trip_on_corpus_text(tok, corpus):
    for text in _corpus_samples(corpus):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert tok.unk_id not in ids
    # the corpus compresses (bytes per token): a trained vocabulary, not just byte fallback
    sample = corpus[:200_000]
    assert len(sample.encode()) / len(tok.encode(sample)) > 2.5


def test_round_trip_unicode_through_byte_fallback(tok):
    for text in UNICODE:
        ids = tok.encode(text, add_bos=False)
        assert tok.unk_id not in ids
        if "<bos>" in text or "<eos>" in text or "<start_of_turn>" in text:
            assert tok.decode(ids, skip_special=False) == text
        else:
            assert tok.decode(ids) == text, text
    emoji = tok.encode("😀", add_bos=False)
    assert [tok.id_to_piece(i) for i in emoji] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]


# ---- against transformers and SentencePiece ------------------------------------------------

def test_encode_ids_equal_transformers(tok, hf, corpus):
    texts = UNICODE + _corpus_samples(corpus, n=25, size=600, seed=1) + [
        "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
        "x<unk>y <pad> z", "    def f(x):\n        return x ** 2\n"]
    for text in texts:
        assert tok.encode(text) == hf(text).input_ids, text
        assert tok.encode(text, add_bos=False) == hf(text, add_special_tokens=False).input_ids


def test_decode_equals_sentencepiece_and_transformers(tok, sp, hf, corpus):
    rng = np.random.default_rng(0)
    # random ids over the whole vocabulary but the specials: invalid UTF-8 from byte pieces
    # included (one U+FFFD per bad byte, as SentencePiece)
    for _ in range(200):
        ids = rng.integers(7, tok.vocab_size, rng.integers(1, 40)).tolist()
        assert tok.decode(ids) == sp.decode(ids)
    # with control ids mixed in (SentencePiece drops them too)
    for _ in range(50):
        ids = rng.integers(0, tok.vocab_size, 30).tolist()
        ids = [i for i in ids if i not in (3, 4, 5, 6)]
        assert tok.decode(ids) == sp.decode(ids)
    for text in UNICODE + _corpus_samples(corpus, n=10, size=500, seed=2):
        ids = hf(text).input_ids
        assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=True)
        assert tok.decode(ids, skip_special=False) == hf.decode(ids)
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=True)
    assert tok.decode(chat) == hf.decode(chat, skip_special_tokens=True) == "user\nHi\nmodel\n"
    assert tok.decode(chat, skip_special=False) == hf.decode(chat)


def test_decode_inputs(tok):
    ids = tok.encode("abc def")
    assert tok.decode(np.asarray(ids)) == tok.decode(s4.Tensor(np.asarray(ids, np.int32))) \
        == tok.decode(tuple(ids)) == "abc def"
    assert tok.decode([]) == "" and tok.decode(np.zeros(0, np.int64)) == ""
    assert tok.decode(ids + [5000, 262_000]) == "abc def"       # padded embedding rows
    assert tok.decode(tok.encode("x", add_bos=False)[0]) == "x"  # one int
    with pytest.raises(ValueError, match="negative"):
        tok.decode([5, -1])
    with pytest.raises(ValueError, match="decode_batch"):
        tok.decode([[2, 5], [2, 6]])
    with pytest.raises(TypeError, match="integers"):
        tok.decode([1.5])
    batch = tok.encode_batch(["one", "two three"])
    assert tok.decode_batch(batch.input_ids) == ["one", "two three"]
    assert tok.decode_batch([[2, 5], [2, 6]], skip_special=False) == [
        "<bos><start_of_turn>", "<bos><end_of_turn>"]


# ---- chat template -------------------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "user", "content": "  padded with spaces \n"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "system", "content": "You are terse. "}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Sys"}, {"role": "user", "content": "a"},
     {"role": "assistant", "content": " b "}, {"role": "user", "content": "c"},
     {"role": "assistant", "content": "d"}],
    [{"role": "system", "content": [{"type": "text", "text": "Listed system"}]},
     {"role": "user", "content": [{"type": "text", "text": " part one "},
                                  {"type": "text", "text": "part two"}]}],
    [{"role": "user", "content": "multi\nline\n\ncontent ✓ 😀"}],
    [{"role": "system", "content": "only a system message"}],
    [{"role": "user", "content": "x"}, {"role": "model", "content": "y"}],
]


@pytest.mark.parametrize("gen_prompt", [True, False])
@pytest.mark.parametrize("k", range(len(CONVERSATIONS)))
def test_chat_template_equals_transformers(tok, hf, k, gen_prompt):
    msgs = CONVERSATIONS[k]
    want = hf.apply_chat_template(msgs, chat_template=GEMMA3_CHAT_TEMPLATE, tokenize=False,
                                  add_generation_prompt=gen_prompt)
    got = tok.apply_chat_template(msgs, add_generation_prompt=gen_prompt)
    assert got == want
    want_ids = _ids(hf.apply_chat_template(msgs, chat_template=GEMMA3_CHAT_TEMPLATE,
                                           tokenize=True, add_generation_prompt=gen_prompt))
    assert tok.apply_chat_template(msgs, gen_prompt, tokenize=True) == want_ids
    assert want_ids[0] == tok.bos_id and want_ids.count(tok.bos_id) == 1


def test_chat_template_literal_and_errors(tok, hf):
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}]) == (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    assert tok.apply_chat_template([{"role": "system", "content": "S"},
                                    {"role": "user", "content": "Hi"}]) == (
        "<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n")
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(ValueError, match="alternate"):
        tok.apply_chat_template(bad)
    with pytest.raises(Exception, match="alternate"):
        hf.apply_chat_template(bad, chat_template=GEMMA3_CHAT_TEMPLATE, tokenize=False)
    with pytest.raises(ValueError, match="alternate"):
        tok.apply_chat_template([{"role": "assistant", "content": "a"}])
    with pytest.raises(ValueError, match="content type"):
        tok.apply_chat_template([{"role": "user", "content": None}])
    with pytest.raises(ValueError, match="no messages"):
        tok.apply_chat_template([])
    with pytest.raises(ValueError, match="<start_of_image>"):       # not in the 1k model
        tok.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}])


def test_gemma3_like_model_with_image_markers(gemma3_model, tmp_path):
    tok = Tokenizer(gemma3_model)
    assert (tok.mask_id, tok.start_of_turn_id, tok.end_of_turn_id, tok.start_of_image_id,
            tok.end_of_image_id) == (4, 6, 7, 8, 9)
    assert tok.special_ids == frozenset(range(10))
    hf = _hf_tokenizer(tmp_path / "hf", gemma3_model, GEMMA3_SPECIALS[1:])
    msgs = [{"role": "system", "content": "Describe."},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What? "}]}]
    want = hf.apply_chat_template(msgs, chat_template=GEMMA3_CHAT_TEMPLATE, tokenize=False,
                                  add_generation_prompt=True)
    assert tok.apply_chat_template(msgs) == want
    assert "<start_of_image>What?" in want
    ids = tok.apply_chat_template(msgs, tokenize=True)
    assert tok.start_of_image_id in ids
    assert ids == _ids(hf.apply_chat_template(msgs, chat_template=GEMMA3_CHAT_TEMPLATE,
                                              tokenize=True, add_generation_prompt=True))
    for text in UNICODE:
        assert tok.encode(text) == hf(text).input_ids
        assert tok.decode(tok.encode(text, add_bos=False), skip_special=False) == text


# ---- batches -------------------------------------------------------------------------------

def test_encode_batch_padding_and_masks(tok):
    texts = ["short", "a somewhat longer text", ""]
    rows = [tok.encode(t) for t in texts]
    width = max(map(len, rows))
    for side in ("left", "right"):
        ids, mask = tok.encode_batch(texts, padding_side=side)
        assert isinstance(ids, s4.Tensor) and isinstance(mask, s4.Tensor)
        assert ids.dtype == s4.int32 and mask.dtype == s4.int32
        ids, mask = ids.numpy(), mask.numpy()
        assert ids.shape == mask.shape == (3, width)
        for r, row in enumerate(rows):
            assert mask[r].sum() == len(row)
            kept = ids[r][mask[r] == 1].tolist()
            assert kept == row
            assert (ids[r][mask[r] == 0] == tok.pad_id).all()
            if side == "left":
                assert mask[r, width - len(row):].all()
            else:
                assert mask[r, :len(row)].all()
    ids, mask = tok.encode_batch(texts, add_eos=True, padding_side="right", max_length=3)
    assert ids.numpy().shape == (3, 3)
    assert ids.numpy()[0].tolist() == (rows[0] + [1])[:3]
    assert mask.numpy()[2].tolist() == [1, 1, 0]                  # "" → bos, eos
    with pytest.raises(ValueError, match="padding_side"):
        tok.encode_batch(texts, padding_side="middle")
    with pytest.raises(ValueError, match="no texts"):
        tok.encode_batch([])
    with pytest.raises(TypeError, match="one str"):
        tok.encode_batch("one text")


def test_encode_batch_matches_transformers_padding(tok, hf):
    texts = ["hello there", "hi", "a longer sentence of several words"]
    for side in ("left", "right"):
        hf.padding_side = side
        want = hf(texts, padding=True)
        ids, mask = tok.encode_batch(texts, padding_side=side)
        assert ids.numpy().tolist() == want["input_ids"]
        assert mask.numpy().tolist() == want["attention_mask"]


# ---- streaming -----------------------------------------------------------------------------

def _stream(tok, ids, rng, skip_special=True):
    dec = tok.stream_decoder(skip_special)
    parts, i = [], 0
    while i < len(ids):
        n = int(rng.integers(1, 4))
        parts.append(dec.add(ids[i:i + n]))
        i += n
    parts.append(dec.flush())
    return parts, dec


def test_streaming_decode_equals_full_decode(tok, corpus):
    rng = np.random.default_rng(0)
    texts = UNICODE + _corpus_samples(corpus, n=10, size=1500, seed=3)
    for text in texts:
        ids = tok.encode(text, add_eos=True)
        for skip in (True, False):
            parts, dec = _stream(tok, ids, rng, skip)
            assert "".join(parts) == tok.decode(ids, skip) == dec.text
            assert dec.ids == ids
            if skip and "<" not in text:
                assert "".join(parts) == text
                assert not any("\ufffd" in p for p in parts)   # no half characters shown
    for _ in range(100):                                       # invalid UTF-8 too
        ids = rng.integers(0, tok.vocab_size, 25).tolist()
        parts, _ = _stream(tok, ids, rng)
        assert "".join(parts) == tok.decode(ids)


def test_streaming_one_token_at_a_time_and_update(tok):
    text = " leading space, then 日本 and 😀 end"
    ids = tok.encode(text)
    dec = StreamDecoder(tok)
    parts = [dec.add(i) for i in ids]
    assert "".join(parts) + dec.flush() == text
    # each multi-byte character appears whole, once its last byte piece arrived
    byte_run = [p for i, p in zip(ids, parts) if tok.id_to_piece(i).startswith("<0x")]
    assert "".join(byte_run) == "日本😀"
    assert set(byte_run) <= {"", "日", "本", "😀"}
    dec = tok.stream_decoder()
    grown = []
    for n in range(1, len(ids) + 1):                            # a growing list of ids
        grown.append(dec.update(ids[:n]))
    assert "".join(grown) + dec.flush() == text
    with pytest.raises(ValueError, match="does not extend"):
        dec.update(ids[:3])
    # a generation step's tokens arrive as an array of the batch
    dec = tok.stream_decoder()
    assert "".join(dec.add(np.asarray([i])) for i in ids) == text


def test_stream_of_truncated_character_flushes_replacement(tok):
    ids = tok.encode("😀", add_bos=False)[:2]
    dec = tok.stream_decoder()
    assert dec.add(ids) == ""
    assert dec.flush() == "\ufffd\ufffd" == tok.decode(ids)


def test_dummy_prefix_model_matches_sentencepiece(tmp_path):
    """A Llama-style model (dummy prefix, whitespace folding): decode drops the ▁ that starts
    the text, as SentencePiece does, in full and streaming decode alike."""
    text = "\n".join(["the quick brown fox jumps over the lazy dog"] * 30 +
                     ["pack my box with five dozen liquor jugs"] * 30)
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text.splitlines()), model_writer=out,
                                   model_type="bpe", vocab_size=300, byte_fallback=True,
                                   minloglevel=2, num_threads=1)
    path = tmp_path / "llama-like.model"
    path.write_bytes(out.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(path))
    tok = Tokenizer(path)
    rng = np.random.default_rng(0)
    for s in ["the fox", " the fox", "jumps  over", "dog 😀 é", "x"]:
        ids = tok.encode(s)
        assert tok.decode(ids) == sp.decode(ids) == sp.decode(sp.encode(s))
        parts, _ = _stream(tok, ids, rng)
        assert "".join(parts) == sp.decode(ids)
    for _ in range(50):
        ids = rng.integers(0, tok.vocab_size, 12).tolist()
        assert tok.decode(ids) == sp.decode([i for i in ids if i != tok.unk_id])


# ---- files ---------------------------------------------------------------------------------

def test_loading_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.model"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        Tokenizer(missing)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "tokenizer.model")):
        Tokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        Tokenizer.from_folder(tmp_path / "absent")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a sentencepiece model")
    with pytest.raises(ValueError, match=str(junk)):
        Tokenizer(junk)


def test_from_folder(tmp_path, tok):
    shutil.copy(EMBEDDED_TOKENIZER, tmp_path / "tokenizer.model")
    for t in (Tokenizer.from_folder(tmp_path), Tokenizer(tmp_path),
              Tokenizer(str(tmp_path / "tokenizer.model"))):
        assert t.vocab_size == 1024 and t.encode("same ids") == tok.encode("same ids")
    assert "tokenizer.model" in repr(t)


def test_build_script_is_deterministic_and_reproduces_the_asset(tmp_path, corpus):
    first = bt.build(tmp_path / "a.model")
    assert bt.main(["--output", str(tmp_path / "b.model")]) == 0
    second = (tmp_path / "b.model").read_bytes()
    assert first == second == (tmp_path / "a.model").read_bytes()
    assert Tokenizer(tmp_path / "b.model").vocab_size == 1024
    if bt.corpus_sha256(corpus) == bt.CORPUS_SHA256 and spm.__version__ == \
            bt.SENTENCEPIECE_VERSION:
        # the committed asset is this corpus's build, byte for byte
        assert first == EMBEDDED_TOKENIZER.read_bytes(), (
            "models/gemma/assets/tokenizer-1k.model is stale: run "
            "python -m s4tf_models.gemma.build_tokenizer")
        ok, msg = bt.check()
        assert ok, msg
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_build_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        bt.train_tokenizer("\n\n")
    with pytest.raises(ValueError, match="vocab_size"):
        bt.train_tokenizer("some text", vocab_size=100)


@pytest.mark.parametrize("name", ["s4tf_models.gemma.tokenizer",
                                  "s4tf_models.gemma.build_tokenizer"])
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in finder.find(mod, name):
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.attempted > 0 and res.failed == 0
