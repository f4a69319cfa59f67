"""The ceiling the serving benchmark divides by: a bare Flask hello-world (benchmarks/serving.py
serves it with the same gunicorn settings as the portal)."""
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"
