"""The opt-in to what a config file may not do alone (see :mod:`neuroenc.pipeline.trust`):
``neuroenc run --allow-code``, ``allow_code=True`` in Python, or ``NEUROENC_ALLOW_CODE=1``."""
from __future__ import annotations

import os

#: The environment variable that opts in, as ``--allow-code`` does.
ALLOW_CODE_ENV = "NEUROENC_ALLOW_CODE"
#: How to opt in, for messages.
OPT_IN = f"pass --allow-code to `neuroenc run` (allow_code=True in Python) or set {ALLOW_CODE_ENV}=1"


def code_allowed(allow_code: bool | None = None) -> bool:
    """Whether the opt-in is given: ``allow_code``, else the ``NEUROENC_ALLOW_CODE`` variable
    (``1``, ``true``, ``yes`` or ``on``)."""
    if allow_code:
        return True
    return os.environ.get(ALLOW_CODE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


__all__ = ["ALLOW_CODE_ENV", "OPT_IN", "code_allowed"]
