"""The security matrix: which server specs the session ran, how many tests connected to each, and
which negative cases passing assertions proved (:mod:`.record`); the report and the
``--aegis-require`` gate (:mod:`.report`)."""
