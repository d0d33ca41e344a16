"""The dashboard: a user's onboarding checklist, or the staff overview. (Placeholder until the UI issue.)"""

from flask import Blueprint, render_template
from flask_login import login_required

bp = Blueprint("onboarding", __name__)


@bp.get("/dashboard")
@login_required
def dashboard():
    return render_template("onboarding/dashboard.html")
