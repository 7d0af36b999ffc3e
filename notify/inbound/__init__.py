"""Mail that comes back: delivery status notifications (bounces), feedback reports
(complaints) and mails to the ``List-Unsubscribe`` mailto address, received by
``notify inbound`` on the addresses of :mod:`notify.message.return_addresses`.

``reports`` reads a message (pure); ``handling`` applies what it says to the database;
``server`` is the SMTP receiver.
"""
