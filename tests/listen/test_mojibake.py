"""Text read in the wrong encoding (UTF-8 decoded as Windows-1252) is repaired on import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from elshi.db import Database
from elshi.listen.models import Post
from elshi.listen.text import fix_mojibake
from elshi.nlp.language import detect

TEXTS = [
    "Министр иностранных дел провёл переговоры в Астане",
    "Қазақстан Республикасының Сыртқы істер министрлігі",
    "今天天气很好，我们去公园",
    "Café crème — “naïve” déjà vu",
    "السفارة تعلن عن مواعيد جديدة",
]


def as_windows(data: bytes) -> str:
    """Decode bytes as Windows does for code page 1252 (undefined bytes become controls)."""
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in data)


@pytest.mark.parametrize("text", TEXTS)
def test_mojibake_is_repaired(text: str) -> None:
    assert fix_mojibake(as_windows(text.encode("utf-8"))) == text
    assert fix_mojibake(text.encode("utf-8").decode("latin-1")) == text


@pytest.mark.parametrize(
    "text",
    [*TEXTS, "", "plain ascii", "Ã la carte", "Ð¾Ðº and Привет mixed", "Âge ©2024"],
)
def test_correct_text_is_left_alone(text: str) -> None:
    assert fix_mojibake(text) == text


def test_import_repairs_text_and_keeps_the_raw_record(
    cli: Any, db: Database, tmp_path: Path
) -> None:
    ru = "Министр иностранных дел провёл переговоры в Астане о сотрудничестве"
    broken = ru.encode("utf-8").decode("latin-1")
    path = tmp_path / "old-export.csv"
    path.write_text(f"id,text\n1,{broken}\n2,ok text\n", encoding="utf-8")
    assert detect(broken).lang != "ru"
    result = cli("ingest", "tabular", str(path), "--no-progress")
    assert result.exit_code == 0, result.output
    with db.session() as s:
        stored = {p.external_id: (p.text, p.raw) for p in s.scalars(select(Post))}
    assert stored["1"][0] == ru
    assert stored["1"][1]["text"] == broken  # nothing read is lost
    assert stored["2"][0] == "ok text"
    assert detect(stored["1"][0]).lang == "ru"
