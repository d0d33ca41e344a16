"""JSON API for scripts. (Placeholder until the API issue.)"""

from flask import Blueprint

bp = Blueprint("api", __name__)
