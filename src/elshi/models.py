"""Import every domain's tables so Base.metadata is complete (migrations, tests)."""

from elshi.accounts import models as accounts_models
from elshi.actors import models as actors_models
from elshi.alerts import models as alerts_models
from elshi.consulate import models as consulate_models
from elshi.coordination import models as coordination_models
from elshi.crisis import models as crisis_models
from elshi.db import Base
from elshi.digest import models as digest_models
from elshi.listen import models as listen_models
from elshi.missions import models as missions_models
from elshi.nlp import models as nlp_models
from elshi.notify import models as notify_models
from elshi.speak import models as speak_models
from elshi.watch import models as watch_models

__all__ = [
    "Base",
    "accounts_models",
    "actors_models",
    "alerts_models",
    "consulate_models",
    "coordination_models",
    "crisis_models",
    "digest_models",
    "listen_models",
    "missions_models",
    "nlp_models",
    "notify_models",
    "speak_models",
    "watch_models",
]
