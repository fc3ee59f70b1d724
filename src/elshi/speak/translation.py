"""Machine-translation backends a translator may draft with: plugins (the elshi_translators
hook) and, when ELSHI_TRANSLATION_HF_MODEL names one, a local Hugging Face model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from elshi.errors import N_
from elshi.settings import Settings


class Translator(ABC):
    """A machine-translation backend (optional; none is built in, none is ever required).

    Plugins provide them through the elshi_translators hook."""

    slug: ClassVar[str]
    title: ClassVar[str]

    @abstractmethod
    def translate(self, text: str, *, source: str, target: str) -> str:
        """Return the text translated from `source` to `target` language."""


class HFTranslator(Translator):
    """A local Hugging Face translation model (Marian, M2M100, NLLB, ...), loaded offline."""

    slug: ClassVar[str] = "hf"
    title: ClassVar[str] = "Local Hugging Face model"

    def __init__(self, model: str) -> None:
        self.model = model

    def translate(self, text: str, *, source: str, target: str) -> str:
        """Translate with the model; a model that cannot be loaded is said plainly."""
        from elshi.nlp import hf
        from elshi.speak.service import SpeakError

        try:
            return hf.translate(self.model, text, source=source, target=target)
        except hf.HFUnavailable as exc:
            raise SpeakError(
                N_("Machine translation is not available: %(why)s. Translate by hand."),
                why=str(exc),
            ) from None


def available(settings: Settings) -> dict[str, tuple[str, Callable[[], Translator]]]:
    """Return each backend a translator may choose: slug -> (title, factory)."""
    from elshi.plugins import translators

    found: dict[str, tuple[str, Callable[[], Translator]]] = {
        slug: (cls.title, cls) for slug, cls in translators().items()
    }
    model = settings.translation_hf_model
    if model:
        found[HFTranslator.slug] = (f"{HFTranslator.title}: {model}", lambda: HFTranslator(model))
    return found
