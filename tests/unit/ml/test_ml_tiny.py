"""The tiny base model: corpus, tokenizer, chat template, config, and `flywheel model init-tiny`."""

from __future__ import annotations

import json
import re

import pytest

from flywheel.demo import shop
from flywheel.ml.corpus import CHATS_FILE, TEXT_FILE, generate


def test_shipped_corpus_matches_its_generator():
    texts, chats = generate.generate()
    assert TEXT_FILE.read_text(encoding="utf-8") == texts
    assert CHATS_FILE.read_text(encoding="utf-8") == chats
    assert len(texts.encode()) + len(chats.encode()) < 450_000


def test_corpus_never_contains_a_canonical_reply():
    corpus = TEXT_FILE.read_text(encoding="utf-8") + CHATS_FILE.read_text(encoding="utf-8")
    for intent, reply in shop.REPLIES.items():
        pattern = re.escape(reply).replace(re.escape("{n}"), r"\d+")
        assert not re.search(pattern, corpus), intent
        fixed = max(reply.split("{n}"), key=len).strip()
        assert fixed not in corpus, intent


def _template_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template.lower()).replace(re.escape("{n}"), r"\d+")
                      .replace(re.escape("{addr}"), r".+"))


def test_pretraining_never_shows_a_shop_question_template_or_reply():
    """Pre-training samples chats afresh: none holds a task template (training or eval-only)
    or a canonical reply, though the shop's topics are asked about in many other ways."""
    import random

    rng = random.Random(5)
    said = [m["content"].lower() for _ in range(3000)
            for m in generate.sample_chat(rng)["messages"] if m.get("content")]
    said += [generate.sample_text(rng).lower() for _ in range(1000)]
    patterns = [_template_pattern(t) for pair in shop.TEMPLATES.values() for pool in pair
                for t in pool] + [_template_pattern(r) for r in shop.REPLIES.values()]
    for text in said:
        assert not any(p.search(text) for p in patterns), text
    topical = [t for t in said if any(w in t for w in ("shipping", "warranty", "hours"))]
    assert len(topical) > 100


@pytest.mark.ml
def test_tokenizer_splits_digits_and_knows_chat_tokens():
    pytest.importorskip("torch")
    from flywheel.ml.tiny import SPECIAL_TOKENS, train_tokenizer

    tok = train_tokenizer(["Where is my order 4821?", "Hello there"] * 50, vocab_size=300)
    pieces = tok.convert_ids_to_tokens(tok("order 4821")["input_ids"])
    assert pieces[-4:] == ["4", "8", "2", "1"]
    for special in SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(special) != tok.unk_token_id
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>" and tok.bos_token == "<|bos|>"
    assert tok.decode(tok("Order 4821 has shipped.")["input_ids"]) == "Order 4821 has shipped."


@pytest.mark.ml
def test_init_tiny_cli_writes_a_loadable_model_dir(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from flywheel.cli.main import app
    from flywheel.ml.loading import load_model, load_tokenizer
    from flywheel.ml.tiny import CHAT_TEMPLATE

    out = tmp_path / "tiny"
    result = CliRunner().invoke(app, ["model", "init-tiny", "--out", str(out), "--pretrain-steps", "2",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    model, tok = load_model(out), load_tokenizer(out)
    assert 3_000_000 < model.num_parameters() < 5_000_000
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (256, 4, 4)
    assert 900 <= cfg.vocab_size <= 2048 and cfg.max_position_embeddings == 512
    assert tok.chat_template == CHAT_TEMPLATE
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert json.loads((out / "flywheel_tiny.json").read_text())["pretrain"]["steps"] == 2
    again = CliRunner().invoke(app, ["model", "init-tiny", "--out", str(out), "--pretrain-steps", "0"])
    assert again.exit_code == 1


@pytest.mark.ml
def test_pretraining_drills_score_only_the_repeat():
    pytest.importorskip("torch")
    from flywheel.ml.corpus import load_chats, load_texts
    from flywheel.ml.tiny import DocumentSampler, PretrainConfig, train_tokenizer

    chats = load_chats()[:200]
    tok = train_tokenizer(load_texts()[:200] + [m["content"] for c in chats for m in c["messages"]
                                                 if m.get("content")], vocab_size=400)
    cfg = PretrainConfig(steps=3, batch_size=6, block_size=96, drill_share=0.0)
    sampler = DocumentSampler(tok, cfg)
    inputs, labels = sampler.batch(drills_only=True)
    for row, lab in zip(inputs.tolist(), labels.tolist()):
        text = tok.decode(row, skip_special_tokens=True)
        scored = tok.decode([t for t, lb in zip(row, lab) if lb != -100], skip_special_tokens=True)
        head, tail = text.split("Again:")
        assert "Numbers:" not in scored and scored.strip() == tail.strip() == head.split(":")[1].strip()
    inputs, labels = sampler.batch(drills_only=False)  # conversations: every real token scored
    assert ((labels == -100) == (inputs == tok.pad_token_id)).all()
