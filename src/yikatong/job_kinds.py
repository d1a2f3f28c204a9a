"""Imports every domain's job kinds, so the runner knows them (as yikatong.models lists the tables)."""

from yikatong.interception import jobs as interception_jobs  # noqa: F401
