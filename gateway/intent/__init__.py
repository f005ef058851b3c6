"""Smart-routing intent classifier: label, confidence, complexity and language for a prompt."""

from gateway.intent.classifier import DEFAULT_INTENT_TIERS, IntentClassifier, IntentResult, decide_tier

__all__ = ["DEFAULT_INTENT_TIERS", "IntentClassifier", "IntentResult", "decide_tier"]
