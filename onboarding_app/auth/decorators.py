"""Route guards. Staff routes answer 403 to a signed-in user of another role."""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required


def staff_required(view):
    @wraps(view)
    @login_required
    def guarded(*args, **kwargs):
        if not current_user.is_staff:
            abort(403, description="This page is for staff only.")
        return view(*args, **kwargs)

    return guarded


def admin_required(view):
    @wraps(view)
    @login_required
    def guarded(*args, **kwargs):
        if current_user.role != "admin":
            abort(403, description="This page is for admins only.")
        return view(*args, **kwargs)

    return guarded
