"""Hostile-input fuzzing: strategies, the properties they must satisfy, and a long runner.

``fuzz.strategies`` generates hostile records, files, Kafka messages and configurations;
``fuzz.properties`` states what must hold for any of them (an event or a one-line reason,
never a crash); ``tests/*/test_*hostile*.py`` and ``test_config_fuzz.py`` run them briefly
in ``make test``, ``fuzz/run.py`` runs them for minutes (see ``fuzz/README.md``).
"""
