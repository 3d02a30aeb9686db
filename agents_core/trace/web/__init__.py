"""A local, read-only trace view of what the data layer holds (extra ``web``).

Usage::

    import uvicorn
    from agents_core.trace.web import create_app

    app = create_app(uri="mongodb://localhost:27017/agents", host="127.0.0.1", port=8000)
    uvicorn.run(app, host="127.0.0.1", port=8000)  # the address create_app was told

or ``agents-core serve`` on the embedded database or ``MONGODB_URI``. The app answers only
requests for the address it is given (``Host``); on any address but loopback it needs a token
(``create_app(..., token=...)``). LangGraph threads are served when a reader of them is given:
``create_app(..., threads=ThreadReader)`` with
``agents_core.integrations.langgraph.threads.ThreadReader``. See ``agents_core.trace.web.app``
for the routes; it needs ``pip install 'agents-core[web]'`` (Starlette, Jinja2, uvicorn).
"""

from agents_core.trace.web._access import check_token, is_loopback
from agents_core.trace.web._threads import ThreadReads, ThreadReadsFactory
from agents_core.trace.web.app import create_app

__all__ = ["ThreadReads", "ThreadReadsFactory", "check_token", "create_app", "is_loopback"]
