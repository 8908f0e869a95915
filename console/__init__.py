"""The operator console: server-rendered pages at /console for operators, purchasing and admins.

Pages are Jinja2 templates (console/templates/) with one stylesheet and one script of our own
(console/static/), all served by the API itself: no build step, nothing fetched from elsewhere.
A person signs in with an API key (console.auth), which the guard then reads from the session
cookie on every request (console.session, api.guard); a role sees only what it may do, and a
form it may not send is refused (403) whatever the browser posts.

How a page joins the console (the dashboard pages do so):

1. A module in this package with an `APIRouter(prefix=PREFIX + "/<resource>")` whose routes ask
   for the signed-in person with a dependency of console.layout (`Viewer`, `Operator`,
   `Purchaser`) and answer `render(request, "<page>.html", viewer, **figures)`; forms that change
   something also depend on `CsrfChecked`.
2. A template `templates/<page>.html` that begins `{% extends "base.html" %}` and fills
   `{% block title %}` and `{% block content %}` (and `{% block head %}` for a stylesheet of its
   own); every form posting carries `{{ csrf_field() }}`.
3. An entry in console.layout.NAV (label, path, the roles that see it, its `g` shortcut), and
   the router in console.app.ROUTERS; a page not every staff role may open also puts its path in
   console.session.RESTRICTED, so that sign-in never lands a role there.
"""
