"""The checklist editor (``/crm/checklists/<role>``): staff look, admins add a task, move one
up or down and retire or bring one back. Each view calls one function of ``checklists`` and
answers htmx with the editor (``crm/_checklist.html``), a plain post with a redirect."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import checklists, documents
from ..auth.decorators import admin_required, staff_required
from ..errors import DomainError, NotFound, ValidationFailed
from ..extensions import db
from ..http_errors import status_for
from ..models import ACCOUNT_ROLES, TASK_KIND_NAMES
from ..web import respond
from .views import bp

EMPTY = {"slug": "", "title": "", "kind": "manual", "required": True, "description": "", "action_url": "", "document": ""}


def _context(role: str, **context) -> dict:
    try:
        found = checklists.get_checklist(db.session, role)
    except NotFound:
        abort(404)
    context.setdefault("values", EMPTY)
    context.setdefault("field_errors", {})
    return {"checklist": found, "task_kinds": TASK_KIND_NAMES, "account_roles": ACCOUNT_ROLES,
            "can_edit": current_user.role == "admin", **context}


def _answer(role: str, *, status: int = 200, notice: str | None = None, error: str | None = None,
            focus: str | None = None, **context):
    return respond(
        "crm/_checklist.html", redirect_to=url_for(".checklist_editor", role=role), status=status,
        message=(error, "error") if error else (notice, "success") if notice else None,
        announce=error or notice, focus=focus, **_context(role, notice=notice, error=error, **context),
    )


@bp.get("/checklists/<role>")
@staff_required
def checklist_editor(role: str):
    return render_template("crm/checklist.html", **_context(role, documents=_documents(role)))


@bp.post("/checklists/<role>/tasks")
@admin_required
def add_checklist_task(role: str):
    form = request.form
    values = {"slug": form.get("slug", ""), "title": form.get("title", ""), "kind": form.get("kind", ""),
              "required": form.get("required") == "on", "description": form.get("description", ""),
              "action_url": form.get("action_url", ""), "document": form.get("document", "")}
    try:
        task = checklists.add_task(db.session, role, values, actor_id=current_user.id)
    except ValidationFailed as exc:
        if role not in ACCOUNT_ROLES:
            abort(404)
        first = next(iter(exc.fields), "title")
        return _answer(role, status=422, error=" ".join(exc.fields.values()), values=values,
                       field_errors=exc.fields, focus=f"#task-{first}")
    except DomainError as exc:  # SlugTaken, NotFound
        if role not in ACCOUNT_ROLES:
            abort(404)
        return _answer(role, status=status_for(exc), error=exc.message, values=values,
                       field_errors={"slug": exc.message}, focus="#task-slug")
    return _answer(role, status=201, notice=f"Added “{task.title}” at position {task.position}.",
                   focus="#checklist-tasks")


def _change(role: str, slug: str, change: dict, notice) -> object:
    try:
        task = checklists.update_task(db.session, role, slug, change, actor_id=current_user.id)
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _answer(role, status=status_for(exc), error=" ".join(getattr(exc, "fields", {}).values()) or exc.message,
                       focus="#checklist-tasks")
    return _answer(role, notice=notice(task), focus=f"#task-row-{task.slug}")


@bp.post("/checklists/<role>/tasks/<slug>/move")
@admin_required
def move_checklist_task(role: str, slug: str):
    position = request.form.get("position", "")
    return _change(role, slug, {"position": int(position) if position.isascii() and position.isdigit() else position},
                   lambda task: f"“{task.title}” is now at position {task.position}.")


@bp.post("/checklists/<role>/tasks/<slug>/retire")
@admin_required
def retire_checklist_task(role: str, slug: str):
    retired = request.form.get("retired") != "false"
    return _change(role, slug, {"retired": retired},
                   lambda task: f"“{task.title}” is {'retired' if retired else 'back in the checklist'}.")


@bp.route("/checklists/<role>/tasks/<slug>/edit", methods=["GET", "POST"])
@admin_required
def edit_checklist_task(role: str, slug: str):
    """Edit a task's title, description, required flag and action URL (the same rules as
    the API's PATCH); refusals next to their fields, a save goes back to the editor."""
    try:
        task = next(t for t in checklists.get_checklist(db.session, role).tasks if t.slug == slug)
    except (NotFound, StopIteration):
        abort(404)
    values = {"title": task.title, "description": task.description, "required": task.required,
              "action_url": task.action_url or ""}
    field_errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        values = {"title": form.get("title", ""), "description": form.get("description", ""),
                  "required": form.get("required") == "on", "action_url": form.get("action_url", "")}
        try:
            saved = checklists.update_task(db.session, role, slug, values, actor_id=current_user.id)
        except ValidationFailed as exc:
            field_errors = exc.fields
        else:
            flash(f"“{saved.title}” was saved.", "success")
            return redirect(url_for(".checklist_editor", role=role) + f"#task-row-{slug}")
    return render_template("crm/checklist_task_form.html", role=role, task=task, values=values,
                           field_errors=field_errors), 422 if field_errors else 200


# --- documents the checklist's terms tasks point to: publish a new version, previewed first ---


def _documents(role: str) -> list:
    """The current version of each document a task of ``role`` names."""
    keys = sorted({t.document_key for t in checklists.get_checklist(db.session, role).tasks if t.document_key})
    return [documents.current(db.session, key) for key in keys]


@bp.get("/checklists/<role>/documents/<key>")
@admin_required
def document_form(role: str, key: str):
    """The publish form of one document, filled with its current version."""
    current = documents.current(db.session, key)
    return render_template("crm/document_form.html", role=role, document=current,
                           values={"title": current.title, "body_markdown": current.body_markdown},
                           field_errors={}, preview=None)


@bp.post("/checklists/<role>/documents/<key>")
@admin_required
def publish_document(role: str, key: str):
    """"Preview" renders the markdown as users will see it (sanitized) and publishes nothing;
    "Publish" makes it the next version. Refusals are shown next to their fields."""
    current = documents.current(db.session, key)
    values = {"title": request.form.get("title", ""), "body_markdown": request.form.get("body_markdown", "")}
    if request.form.get("action") == "preview":
        return render_template("crm/document_form.html", role=role, document=current, values=values,
                               field_errors={}, preview=documents.render(values["body_markdown"]))
    try:
        published = documents.publish(db.session, key, values, actor_id=current_user.id)
    except ValidationFailed as exc:
        return render_template("crm/document_form.html", role=role, document=current, values=values,
                               field_errors=exc.fields, preview=None), 422
    flash(f"{published.title}: version {published.version} is published; users who have not accepted yet "
          "will be asked to accept it.", "success")
    return redirect(url_for(".checklist_editor", role=role))
