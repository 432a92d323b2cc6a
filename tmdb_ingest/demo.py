"""Placeholder replaced below."""


def run_demo() -> int:
    """Run the demo."""
    return 0
