"""Logging keeps working when whoever owns sys.stderr (pytest, Jupyter) swaps and closes it."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from bigbilbao import logs


def test_records_go_to_the_current_stderr_not_a_closed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    saved_handlers, saved_level = logging.root.handlers[:], logging.root.level
    try:
        first = io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        logs.configure()
        first.close()
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("bigbilbao.example").info("produced %d messages", 182)
        assert "INFO bigbilbao.example: produced 182 messages" in second.getvalue()
        assert logging.getLogger("kafka").getEffectiveLevel() == logging.ERROR
    finally:
        logging.root.handlers[:] = saved_handlers
        logging.root.setLevel(saved_level)
