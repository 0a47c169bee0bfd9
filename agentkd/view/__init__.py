"""The trajectory viewer: a read-only web app over the experience store, the static ``episodes.html``
that ``agentkd eval`` writes, and the terminal transcript of ``agentkd store show``.

* :mod:`agentkd.view.summary` — a trajectory's row, its steps' facts, where two runs diverge;
* :mod:`agentkd.view.render` — the HTML pages (Jinja2 templates in ``templates/``);
* :mod:`agentkd.view.app` — the Starlette app and ``serve`` (uvicorn);
* :mod:`agentkd.view.terminal` — the transcript with rich.

Importing this package loads nothing; Jinja2, Starlette and uvicorn load when a page is rendered or served.
"""
