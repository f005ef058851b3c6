"""Prism guardrails: prompt-injection detection, PII masking and output filtering (issue #7).

See docs/guardrails.md for the design, the policy schema and the evaluation figures.
"""

from gateway.guardrails.engine import Guardrails
from gateway.guardrails.injection import InjectionDetector, InjectionResult
from gateway.guardrails.masking import MaskTable, StreamUnmasker
from gateway.guardrails.output import StreamOutputGuard
from gateway.guardrails.pii import PII_CATEGORIES, PiiDetector, PiiMatch
from gateway.guardrails.verdict import Decision, InputVerdict, OutputVerdict

__all__ = [
    "PII_CATEGORIES",
    "Decision",
    "Guardrails",
    "InjectionDetector",
    "InjectionResult",
    "InputVerdict",
    "MaskTable",
    "OutputVerdict",
    "PiiDetector",
    "PiiMatch",
    "StreamOutputGuard",
    "StreamUnmasker",
]
