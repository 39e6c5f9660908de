"""Is one A/B variant's click rate really different from the others', or could it be chance?

Decision (docs/campaigns-and-clicks.md, "A/B figures"): a variant's rate is its human clicks over its banner
image loads. Two variants are compared with the two-proportion z-test (pooled, two-sided); three or more with
the chi-squared test of homogeneity on the variants × (clicked, not clicked) table, k − 1 degrees of freedom
(for two variants it is the same test: χ² = z²). Both rest on a normal approximation that holds when every
cell expects at least 5 (Cochran's rule), so below that the answer is "too few clicks to tell", not a p-value.
Significant means p < 0.05. Image loads are not reads (image proxies load every image, blocked images load
none), so a variant with more human clicks than image loads has no rate to compare.
"""

import math
from dataclasses import dataclass

ALPHA = 0.05
MIN_EXPECTED = 5.0  # Cochran's rule for the normal / chi-squared approximation


@dataclass(frozen=True)
class Arm:
    key: str
    clicks: int  # human clicks
    loads: int  # banner image loads


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "single" | "no_loads" | "too_few" | "significant" | "chance"
    test: str | None = None  # "z" (two variants) | "chi2" (three or more)
    p_value: float | None = None
    leader: str | None = None  # the key of the highest rate
    statistic: float | None = None


def chi2_sf(x: float, df: int) -> float:
    """P(X ≥ x) for a chi-squared variable with integer `df` degrees of freedom (closed forms, no SciPy)."""
    if x <= 0:
        return 1.0
    if df % 2 == 0:  # e^{-x/2} Σ_{i<df/2} (x/2)^i / i!
        term = total = 1.0
        for i in range(1, df // 2):
            term *= (x / 2) / i
            total += term
        return min(1.0, math.exp(-x / 2) * total)
    root = math.sqrt(x)
    p = math.erfc(root / math.sqrt(2))  # df = 1
    term = root * math.exp(-x / 2) * math.sqrt(2 / math.pi)
    for i in range(1, (df + 1) // 2):  # odd df > 1 add 2φ(√x) Σ x^{i-1/2} / (1·3···(2i−1))
        p += term
        term *= x / (2 * i + 1)
    return min(1.0, p)


def compare(arms: list[Arm]) -> Verdict:
    """The verdict on the variants' click rates (see the module docstring)."""
    if len(arms) < 2:
        return Verdict("single")
    if any(a.loads <= 0 or a.clicks > a.loads for a in arms):
        return Verdict("no_loads")
    clicks, loads = sum(a.clicks for a in arms), sum(a.loads for a in arms)
    pooled = clicks / loads
    leader = max(arms, key=lambda a: (a.clicks / a.loads, a.loads)).key
    expected = [(a.loads * pooled, a.loads * (1 - pooled)) for a in arms]
    if min(min(e) for e in expected) < MIN_EXPECTED:
        return Verdict("too_few", leader=leader)
    statistic = sum(
        (a.clicks - e_yes) ** 2 / e_yes + (a.loads - a.clicks - e_no) ** 2 / e_no
        for a, (e_yes, e_no) in zip(arms, expected, strict=True)
    )
    if len(arms) == 2:  # the two-proportion z-test: z² is this statistic, p = erfc(|z|/√2)
        test, p_value = "z", math.erfc(math.sqrt(statistic) / math.sqrt(2))
    else:
        test, p_value = "chi2", chi2_sf(statistic, len(arms) - 1)
    return Verdict("significant" if p_value < ALPHA else "chance", test, p_value, leader, statistic)
