"""Imports every table so SQLAlchemy and Alembic see the whole schema."""

from yikatong.catalog import models as catalog_models  # noqa: F401
from yikatong.core.db import Base
from yikatong.disbursement import models as disbursement_models  # noqa: F401
from yikatong.interception import models as interception_models  # noqa: F401
from yikatong.jobs import models as jobs_models  # noqa: F401
from yikatong.notify import models as notify_models  # noqa: F401
from yikatong.registry import models as registry_models  # noqa: F401
from yikatong.security import models as security_models  # noqa: F401
from yikatong.sharing import models as sharing_models  # noqa: F401
from yikatong.workflow import models as workflow_models  # noqa: F401

metadata = Base.metadata
