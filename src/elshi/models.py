"""Import every domain's tables so Base.metadata is complete (migrations, tests)."""

from elshi.accounts import models as accounts_models
from elshi.db import Base
from elshi.listen import models as listen_models
from elshi.missions import models as missions_models
from elshi.speak import models as speak_models

__all__ = ["Base", "accounts_models", "listen_models", "missions_models", "speak_models"]
