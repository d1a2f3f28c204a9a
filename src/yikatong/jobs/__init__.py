"""Long work as jobs (后台任务): a row per job, claimed and run by the worker, never inside a web request."""
