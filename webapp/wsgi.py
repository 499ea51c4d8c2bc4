"""The WSGI entry point for a production server: ``gunicorn 'webapp.wsgi:app'``.

Settings come from the environment (``VROEGSIGNAAL_*``) or ``VROEGSIGNAAL_CONFIG``, read
once per worker. The scheduler is a separate process (``vroegsignaal scheduler``), never a
web worker: see docs/deployment.md.
"""

from webapp import create_app

app = create_app()
