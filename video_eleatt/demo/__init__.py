"""The offline demo: a generated action dataset of real encoded videos (``synth``) and the
``make-demo-data`` command (``cli``). Nothing is imported here."""
