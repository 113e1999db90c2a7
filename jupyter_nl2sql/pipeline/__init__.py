"""The pipeline stages, in the order a question passes through them.

``schema`` (introspect, fingerprint, render) → ``values`` / ``examples`` (context the question needs) →
``prompting`` (the prompt) → the model (``jupyter_nl2sql.models``) → ``sqlcheck`` (parse and check) and ``namefix``
(deterministic repairs) → ``execution`` (pooled, read-only, bounded) → ``stats`` (time and memory of each stage).
``assistant`` drives them: :meth:`~jupyter_nl2sql.pipeline.assistant.Assistant.ask` is the one entry point.
"""
