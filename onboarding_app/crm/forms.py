"""Contact forms: they read the request, check the CSRF token and render the fields. What a
valid contact is comes from ``schemas.py`` (``ContactCreate``/``ContactUpdate``, the models the
API and the services use), run by ``SchemaForm.validate``."""

from wtforms import EmailField, SelectField, StringField, TelField

from ..form_rules import SchemaForm, html_limits
from ..models import ACCOUNT_ROLES
from ..schemas import ContactCreate, ContactUpdate


class ContactForm(SchemaForm):
    """Editing a contact. The email field is shown only while no account is linked; a form
    without it posts the contact's current address, which changes nothing."""

    schema = ContactUpdate

    name = StringField("Name", render_kw=html_limits(ContactCreate, "name"))
    email = EmailField("Email", render_kw=html_limits(ContactCreate, "email"))
    company = StringField("Company", render_kw=html_limits(ContactCreate, "company"))
    phone = TelField("Phone", render_kw=html_limits(ContactCreate, "phone"))
    # Plain values (label = value) work across WTForms 3.x without its tuple deprecation;
    # validate_choice=False: the schema says which roles exist and why another is refused.
    role = SelectField("Account role", choices=list(ACCOUNT_ROLES), validate_choice=False)


class NewContactForm(ContactForm):
    schema = ContactCreate
