"""Staff pages for CRM contacts. (Placeholder until the UI issue.)"""

from flask import Blueprint, render_template

from ..auth.decorators import staff_required

bp = Blueprint("crm", __name__)


@bp.get("/contacts")
@staff_required
def contacts():
    return render_template("crm/contacts.html")
