"""Languages: which locale a person gets, the message catalogues, and formatting by locale.

``locales`` picks a language along the locale chain; ``catalogues`` loads the compiled gettext
catalogues; ``formatting`` writes dates, times, numbers and lists for a locale and time zone;
``jinja`` adds all of it to a Jinja environment. Pure: no database, Celery or web imports.
"""
