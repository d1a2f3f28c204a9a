"""Imports every domain's job kinds, so the runner knows them (as yikatong.models lists the tables)."""

from yikatong.disbursement import jobs as disbursement_jobs  # noqa: F401
from yikatong.imports import jobs as imports_jobs  # noqa: F401
from yikatong.interception import jobs as interception_jobs  # noqa: F401
from yikatong.sharing import jobs as sharing_jobs  # noqa: F401
