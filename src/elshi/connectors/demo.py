"""Demo corpus: generated kk/ru/en posts about a mission's work, for `elshi demo` and tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from elshi.connectors.base import Connector, FetchContext, PostIn, RawRecord, Records
from elshi.plugins import hookimpl

SUBJECTS = {
    "kk": [
        "Қазақстан",
        "Астана",
        "Сыртқы істер министрлігі",
        "Қазақстан елшілігі",
        "ЕАЭО",
        "ШЫҰ",
        "БҰҰ",
        "Түркі мемлекеттері ұйымы",
    ],
    "ru": [
        "Казахстан",
        "Астана",
        "МИД Казахстана",
        "посольство Казахстана",
        "ЕАЭС",
        "ШОС",
        "ООН",
        "Организация тюркских государств",
    ],
    "en": [
        "Kazakhstan",
        "Astana",
        "the Foreign Ministry",
        "the Embassy of Kazakhstan",
        "the EAEU",
        "the SCO",
        "the UN",
        "the Organization of Turkic States",
    ],
}
# Kazakh templates use the genitive/dative/locative forms so search must handle case endings.
TEMPLATES = {
    "kk": [
        "{s} өкілдері {p} қаласында экономикалық ынтымақтастық туралы келіссөз жүргізді.",
        "Қазақстанның сыртқы саясаты: {s} жаңа бастаманы ұсынды.",
        "{p} қаласында Қазақстан мәдениеті күндері өтеді. Барлық отандастарды шақырамыз!",
        "Шетелдегі азаматтар назарына: консулдық есепке тұру енді онлайн қолжетімді.",
        "{s} мен серіктестер арасындағы сауда көлемі {n} пайызға өсті.",
        "Қазақстанға инвестиция салу мүмкіндіктері {p} бизнес форумында талқыланды.",
        "Елшілік {p} қаласындағы төтенше жағдайға байланысты азаматтарға ескерту жариялады.",
        "Қазақстанда өтетін халықаралық көрмеге {n} елден делегация келеді.",
    ],
    "ru": [
        "Представители {s} провели переговоры в {p} об экономическом сотрудничестве.",
        "Внешняя политика Казахстана: {s} выступил с новой инициативой.",
        "В {p} пройдут Дни культуры Казахстана. Приглашаем всех соотечественников!",
        "Вниманию граждан за рубежом: консульский учёт теперь доступен онлайн.",
        "Товарооборот между {s} и партнёрами вырос на {n} процентов.",
        "Инвестиционные возможности Казахстана обсудили на бизнес-форуме в {p}.",
        "Посольство выпустило предупреждение для граждан в связи с ЧС в {p}.",
        "Слухи о закрытии границы Казахстана не соответствуют действительности, заявили в {s}.",
    ],
    "en": [
        "Officials of {s} held talks in {p} on economic cooperation.",
        "Kazakhstan's foreign policy: {s} put forward a new initiative.",
        "Days of Kazakh culture will be held in {p}. All compatriots are welcome!",
        "Citizens abroad: consular registration is now available online.",
        "Trade between {s} and its partners grew by {n} percent.",
        "Investment opportunities in Kazakhstan were discussed at a business forum in {p}.",
        "The Embassy issued a travel advisory for citizens after the emergency in {p}.",
        "Reports that Kazakhstan will close its border are false, {s} said.",
    ],
}
PLACES = {
    "kk": ["Берлин", "Пекин", "Анкара", "Мәскеу", "Вашингтон", "Дубай", "Ташкент"],
    "ru": ["Берлине", "Пекине", "Анкаре", "Москве", "Вашингтоне", "Дубае", "Ташкенте"],
    "en": ["Berlin", "Beijing", "Ankara", "Moscow", "Washington", "Dubai", "Tashkent"],
}
AUTHORS = [
    ("mfa_kz", "MFA Kazakhstan"),
    ("kazembassy_de", "Embassy of Kazakhstan in Germany"),
    ("kazinform", "Kazinform"),
    ("tengri_news", "Tengrinews"),
    ("astana_times", "The Astana Times"),
    ("citizen_aigerim", "Айгерім"),
    ("observer_ivan", "Иван Наблюдатель"),
    ("news_watch", "News Watch"),
]
PLATFORMS = ["telegram", "rss", "mastodon", "bluesky", "twitter"]


class DemoConfig(BaseModel):
    """How many demo posts to generate, and from which seed."""

    count: int = Field(default=3000, ge=1, le=5_000_000, description="Number of posts.")
    seed: int = Field(default=7, description="Random seed; the same seed gives the same corpus.")
    days: int = Field(default=60, ge=1, description="Spread posts over this many past days.")


class DemoConnector(Connector):
    """Generate a reproducible multilingual corpus."""

    slug = "demo"
    title = "Generated demo corpus (kk/ru/en)"
    platform = "demo"
    Config = DemoConfig
    target_field = "count"
    #: Reads no file and no network: a demo source may be polled (it stores duplicates only).
    pollable = True

    def fetch(self, config: Any, cursor: dict[str, Any], ctx: FetchContext) -> Records:
        """Yield generated records."""
        rng = random.Random(config.seed)
        end = datetime(2026, 11, 1, tzinfo=UTC)
        for i in range(config.count):
            lang = rng.choice(["kk", "kk", "ru", "ru", "en"])
            text = rng.choice(TEMPLATES[lang]).format(
                s=rng.choice(SUBJECTS[lang]), p=rng.choice(PLACES[lang]), n=rng.randint(3, 40)
            )
            handle, name = rng.choice(AUTHORS)
            when = end - timedelta(minutes=rng.randint(0, config.days * 24 * 60))
            yield RawRecord(
                payload={
                    "id": f"demo-{config.seed}-{i}",
                    "platform": rng.choice(PLATFORMS),
                    "lang": lang,
                    "text": text,
                    "author": handle,
                    "author_name": name,
                    "time": when.isoformat(),
                    "likes": rng.randint(0, 500),
                    "shares": rng.randint(0, 80),
                },
                location=f"item {i + 1}",
                origin="demo",
                kind="demo",
            )
        cursor["generated"] = config.count

    def to_post(self, raw: RawRecord) -> PostIn:
        """Map a generated record."""
        d = raw.payload
        return PostIn(
            platform=d["platform"],
            external_id=d["id"],
            text=d["text"],
            url=f"https://example.org/demo/{d['id']}",
            author_handle=d["author"],
            author_name=d["author_name"],
            lang=d["lang"],
            published_at=datetime.fromisoformat(d["time"]),
            metrics={"likes": d["likes"], "shares": d["shares"]},
            extra={"demo": True},
        )


@hookimpl
def elshi_connectors() -> list[type[Connector]]:
    """Register the demo connector."""
    return [DemoConnector]
