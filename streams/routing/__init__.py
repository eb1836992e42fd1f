"""Alert routing: incidents to webhooks, chat and e-mail, once per route and again on escalation.

``config`` loads and validates routes, ``messages`` builds the allow-listed summary and renders
it per receiver, ``senders`` makes one delivery attempt, ``router`` decides and retries.
"""
