"""Contact forms. They parse the request and check the CSRF token; the rules for what a valid
contact is live in ``contacts.create_contact`` / ``update_contact`` alone."""

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TelField

from ..models import ACCOUNT_ROLES



class ContactForm(FlaskForm):
    """Editing a contact. The email cannot change once the contact exists."""

    name = StringField("Name")
    company = StringField("Company")
    phone = TelField("Phone")
    # Plain values (label = value) work across WTForms 3.x without its tuple deprecation;
    # validate_choice=False: the service says which roles exist and why another is refused.
    role = SelectField("Account role", choices=list(ACCOUNT_ROLES), validate_choice=False)

    def values(self) -> dict:
        return {"name": self.name.data or "", "company": self.company.data or "",
                "phone": self.phone.data or "", "role": self.role.data}


class NewContactForm(ContactForm):
    email = EmailField("Email")

    def values(self) -> dict:
        return {**super().values(), "email": self.email.data or ""}
