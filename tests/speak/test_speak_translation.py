"""The optional machine-translation backend: a local Hugging Face translation model named by
ELSHI_TRANSLATION_HF_MODEL, loaded offline. The test builds and trains a tiny
encoder-decoder model on a few Kazakh-English phrases, so what it must answer is known.
Skipped only where torch is missing on a user's machine; CI (ELSHI_TEST_REQUIRE_SERVICES=1)
installs it and fails instead."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from elshi.db import Database
from elshi.settings import Settings
from elshi.speak import service
from elshi.speak.translation import available
from tests.conftest import service_missing
from tests.speak.platforms import signed_in, staff

PAIRS = {
    "сәлем әлем": "hello world",
    "бейбітшілік": "peace",
    "сәлем": "hello",
    "әлем бейбітшілік": "world peace",
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def tiny_translator(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Train a tiny BERT-to-BERT translation model on PAIRS; return its folder."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        service_missing("torch and transformers (pip install 'elshi[hf]')", exc)
        raise
    root = tmp_path_factory.mktemp("mt")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted({w for pair in PAIRS.items() for t in pair for w in t.split()})
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizer(str(root / "vocab.txt"))
    assert tokenizer.tokenize("сәлем hello") == ["сәлем", "hello"]
    small: dict[str, Any] = {
        "vocab_size": len(vocab),
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
    }
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(
        transformers.BertConfig(**small),
        transformers.BertConfig(**small, is_decoder=True, add_cross_attention=True),
    )
    config.decoder_start_token_id = tokenizer.cls_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.sep_token_id
    torch.manual_seed(0)
    model = transformers.EncoderDecoderModel(config=config)
    sources = list(PAIRS)
    x = tokenizer(sources, padding=True, return_tensors="pt")
    y = tokenizer([PAIRS[s] for s in sources], padding=True, return_tensors="pt").input_ids
    labels = y[:, 1:].clone().contiguous()  # the decoder starts from [CLS] by itself
    labels[labels == tokenizer.pad_token_id] = -100
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    with torch.enable_grad():  # elshi's model loader turns gradients off for the process
        for _ in range(150):
            out = model(input_ids=x.input_ids, attention_mask=x.attention_mask, labels=labels)
            optimiser.zero_grad()
            out.loss.backward()
            optimiser.step()
    model.eval()
    for key in ("decoder_start_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, key, getattr(config, key))
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return str(root)


def _client(settings: Settings, db: Database) -> TestClient:
    client: TestClient = signed_in(settings, db)
    return client


def _statement(db: Database, team: dict[str, Any]) -> int:
    with db.session() as s:
        return service.create_statement(
            db=s,
            actor=team["drafter"],
            mission_id=team["mission_id"],
            title="Peace",
            lang="kk",
            text="сәлем әлем\n\nбейбітшілік",
            headline="сәлем",
        ).id


def _draft(client: TestClient, sid: int, backend: str) -> Any:
    token = CSRF.search(client.get(f"/speak/{sid}").text)
    assert token
    return client.post(
        f"/speak/{sid}/translate",
        data={"csrf_token": token[1], "source": "kk", "target": "en", "backend": backend},
        follow_redirects=False,
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers on training an encoder-decoder
def test_a_local_model_drafts_the_translation_for_review(
    db: Database, settings: Settings, tiny_translator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "translation_hf_model", tiny_translator)
    assert "hf" in available(settings)
    team = staff(db)
    sid = _statement(db, team)
    client = _client(settings, db)
    page = client.get(f"/speak/{sid}").text
    assert f'<option value="hf">Local Hugging Face model: {tiny_translator}</option>' in page
    assert _draft(client, sid, "hf").status_code == 303
    with db.session() as s:
        en = service.versions_of(db=s, statement_id=sid)["en"]
        assert en.text == "hello world\n\npeace"  # paragraph by paragraph
        assert en.headline == "hello"
        assert en.translated_with == "hf" and en.source_lang == "kk"
        assert en.reviewed_at is None  # a person still checks it side by side
    with db.session() as s, pytest.raises(service.SpeakError, match="Mark these translations"):
        service.submit(db=s, actor=team["drafter"], statement_id=sid)


def test_without_a_model_nothing_is_offered_and_a_missing_one_is_explained(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = staff(db)
    sid = _statement(db, team)
    client = _client(settings, db)
    assert available(settings) == {}
    assert 'name="backend"' not in client.get(f"/speak/{sid}").text
    missing = tmp_path / "no-such-model"
    monkeypatch.setattr(settings, "translation_hf_model", str(missing))
    r = _draft(client, sid, "hf")
    assert r.status_code == 400
    assert "Machine translation is not available:" in r.text
    assert "Translate by hand." in r.text
    with db.session() as s:
        assert "en" not in service.versions_of(db=s, statement_id=sid)
