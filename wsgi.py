"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``. A missing production
setting stops the start with one line naming it (exit status 1, no traceback)."""

from onboarding_app import create_app
from onboarding_app.config import ConfigError, refuse_to_start

try:
    app = create_app()
except ConfigError as exc:
    refuse_to_start(exc)
