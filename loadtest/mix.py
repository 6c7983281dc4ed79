"""The mix of directions a load test sends: `--mix horse2zebra=3 summer2winter=1`.

Without a mix every direction the server offers is sent alike. With one, only the named
directions are sent, each in proportion to its weight; a name the server does not offer is
an error, so a typo never turns into a load test of the wrong thing.
"""

from __future__ import annotations


class MixError(ValueError):
    """A mix that cannot be used; the message says why."""


def parse_mix(text: str) -> dict[str, float]:
    """ "horse2zebra=3,summer2winter=1" (or space-separated) as {direction: weight}."""
    weights: dict[str, float] = {}
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not name or not weight >= 0 or weight == float("inf"):
            raise MixError(f"{item!r}: expected DIRECTION=WEIGHT with a weight of 0 or more")
        weights[name] = weight
    if weights and not sum(weights.values()) > 0:
        raise MixError("every weight of the mix is 0: nothing would be sent")
    return weights


def choose_weights(offered: list[str], mix: dict[str, float]) -> tuple[list[str], list[float]]:
    """(directions, weights) to draw from: the mix's, or every offered direction alike."""
    if not mix:
        return sorted(offered), [1.0] * len(offered)
    unknown = sorted(set(mix) - set(offered))
    if unknown:
        raise MixError(
            f"the mix names {', '.join(unknown)}, which the server does not offer "
            f"(it has: {', '.join(sorted(offered))})"
        )
    names = sorted(name for name, weight in mix.items() if weight > 0)
    return names, [mix[name] for name in names]
