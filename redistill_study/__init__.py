"""redistill-study: does one fixed power-divergence λ generalise across distillation pairs?

Packages, in the order data flows through them:
``config`` → ``data`` + ``models`` → ``training`` (teachers, cohorts) with ``noise`` and
``losses`` → ``study`` (Optuna) + ``tracking`` (MLflow) → ``analysis``.
"""

__version__ = "0.1.0"
