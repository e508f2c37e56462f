"""The live attestation dashboard: one page on 127.0.0.1 that shows what the parties prove.

Two sources feed it through one in-process :class:`~ecash_tpm.dashboard.bus.EventBus`:

- ``ecash-tpm demo --web``: :class:`~ecash_tpm.dashboard.feed.StoryFeed` hears the story
  (``StoryContext.events``) and turns its steps, facts and structured facts into timeline events
  and cards;
- ``ecash-tpm dashboard --config FILE``: :class:`~ecash_tpm.dashboard.deployment.DeploymentWatch`
  polls a running deployment's public endpoints (read-only, no secrets) and says in the page
  what cannot be seen from outside.

:func:`~ecash_tpm.dashboard.app.create_app` serves the page, its assets (package data: no CDN,
no external fonts) and ``/events``, a server-sent-event stream that replays the history first,
so a page opened late or reconnecting misses nothing. Cards are a small display model built in
Python (:mod:`ecash_tpm.dashboard.view`); the page's script only draws them, with
``textContent``, never HTML from the stream.

Nothing heavy is imported here: ``import ecash_tpm.dashboard`` loads no web framework.
"""
