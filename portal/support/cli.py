"""`flask --app wsgi staff ...`."""
import click
from flask.cli import AppGroup

staff_group = AppGroup("staff", help="Create and disable support staff accounts.")
