"""Import every domain's tables so Base.metadata is complete (migrations, tests)."""

from elshi.accounts import models as accounts_models
from elshi.consulate import models as consulate_models
from elshi.db import Base
from elshi.listen import models as listen_models
from elshi.missions import models as missions_models
from elshi.nlp import models as nlp_models

__all__ = [
    "Base",
    "accounts_models",
    "consulate_models",
    "listen_models",
    "missions_models",
    "nlp_models",
]
