"""Read by gunicorn when started from this directory: check the settings in the master,
before any worker boots, so a missing production setting stops gunicorn with one line naming
it and exit status 1 (a worker failing to boot would be retried or reported with a traceback)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from onboarding_app.config import ConfigError, check_environment, refuse_to_start  # noqa: E402

try:
    check_environment()
except ConfigError as exc:
    refuse_to_start(exc)
