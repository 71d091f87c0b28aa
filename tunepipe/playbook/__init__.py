"""The playbook's stages. Sanity: the before-you-tune checks (P1, P2, P4, P5), docs/sanity.md."""

from tunepipe.playbook.result import Check, LRRange, SanityResult

__all__ = ["Check", "LRRange", "SanityResult"]
