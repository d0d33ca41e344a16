"""Where WTForms meets ``schemas.py``: HTML forms check their input with the same models as
the API and the services, and show each rule's sentence next to its field."""

from __future__ import annotations

from typing import Any, ClassVar

from flask_wtf import FlaskForm
from pydantic import BaseModel

from .errors import ValidationFailed
from .schemas import check


def html_limits(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The HTML attributes that tell the browser a field's limits, read from the model (for a
    field's ``render_kw``), so a page never states a limit of its own."""
    field = model.model_json_schema()["properties"][name]
    return {"maxlength": field["maxLength"]} if "maxLength" in field else {}


class SchemaForm(FlaskForm):
    """A form whose submission is checked by ``schema`` (a model of ``schemas.py``). After
    ``validate()`` (which also checks the CSRF token), ``values()`` is the checked model; a
    refusal puts each field's sentence in that field's ``errors``."""

    schema: ClassVar[type[BaseModel]]

    def submitted(self) -> dict[str, Any]:
        """What was posted, field by field (the CSRF token aside)."""
        return {name: field.data for name, field in self._fields.items() if name != "csrf_token"}

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        try:
            self._checked = check(self.schema, self.submitted())
        except ValidationFailed as exc:
            for name, sentence in exc.fields.items():
                (self[name].errors if name in self else self.form_errors).append(sentence)
            return False
        return valid

    def values(self) -> BaseModel:
        """The submission as the schema read it; only after ``validate()`` returned True."""
        return self._checked
