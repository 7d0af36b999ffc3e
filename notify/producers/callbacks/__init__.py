"""Status callbacks to producers, in the Standard Webhooks convention.

``endpoints``: the endpoints a key registers (URL rules, secrets and their rotation);
``events``: the outbox, written in the transaction of each change an endpoint asked for;
``signing``: the ``webhook-*`` headers; ``delivery``: sending what is due, with retries, on
the callbacks lane, so a slow receiver never delays mail.
"""
