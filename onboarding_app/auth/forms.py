"""Sign-in and password forms. Sign-in looks the address up as typed (lower-cased), so it
checks only the length that ``schemas.Email`` allows; new passwords are judged by the service."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from ..schemas import MAX_EMAIL_LENGTH


def no_nul(form, field) -> None:
    """No field takes a NUL character (PostgreSQL cannot even compare with one)."""
    if field.data and "\x00" in field.data:
        raise ValidationError("Contains a character that is not allowed.")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=MAX_EMAIL_LENGTH), no_nul])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256), no_nul])
    submit = SubmitField("Sign in")


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=256), no_nul])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=256), no_nul])
    confirm_password = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new_password", message="The two new passwords differ.")],
    )
    submit = SubmitField("Set password")


class ForgotForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), no_nul])
    submit = SubmitField("Email me a link")


class NewPasswordForm(FlaskForm):
    """The form behind a reset or welcome link: the new password twice."""

    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=256), no_nul])
    confirm_password = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new_password", message="The two new passwords differ.")],
    )
    submit = SubmitField("Set password")
