"""What a reading is: the verdicts and reasons, the boxes, ink statistics and readings of groups and drawings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Verdict = Literal["digit", "unsure", "not_a_digit", "several_digits"]
GroupVerdict = Literal["digit", "unsure", "not_a_digit"]
Reason = Literal["empty", "too_little_ink", "dot", "line", "blob", "scribble", "unlike_any_digit"]
VERDICTS: tuple[Verdict, ...] = ("digit", "unsure", "not_a_digit", "several_digits")
REASONS: dict[Reason, str] = {
    "empty": "nothing drawn",
    "too_little_ink": "too little ink",
    "dot": "a dot",
    "line": "a line",
    "blob": "a blob",
    "scribble": "a scribble",
    "unlike_any_digit": "a shape unlike any digit",
}

CONFIDENT = 0.60  # top probability from which a digit is read as sure (the Sketch page's 60%)
FILLED_DEPTH = 4  # erosions (3x3) of the 28x28 ink that still leave ink: a solid core, not a stroke
FILLED_SOLIDITY = 0.85  # and ink covering this share of its convex hull: a patch, not a bold digit's strokes


@dataclass(frozen=True)
class Box:
    """A rectangle in canvas pixels: columns left..right-1, rows top..bottom-1."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def to_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]


@dataclass(frozen=True)
class InkStats:
    """Shape statistics of one group: its box on the canvas and its 28x28 image (ink = pixels >= 0.5).

    On MNIST's 60,000 training digits, each through preprocess_canvas: depth <= 4 (39 digits at 4);
    3 pass the line rule; 4 are `filled` and 123 (0.2%) close SCRIBBLE_HOLES or more loops, so filled
    and many-looped ink is only suspect: the model's evidence decides.
    """

    extent: float  # the group's longest side / the canvas' longest side
    elongation: float  # major / minor standard deviation of the 28x28 ink (1 = round)
    tilt: float  # degrees between the major axis and the vertical, 0..90
    depth: int  # 3x3 erosions of the 28x28 ink (>= STATS_INK_LEVEL) that still leave ink: 0 for 1-px strokes
    holes: int  # background regions enclosed by the 28x28 ink: 0 has 1, 8 has 2
    solidity: float  # the 28x28 ink's area / the area of its convex hull (1 = convex and filled)

    @property
    def filled(self) -> bool:
        """A solid patch of ink (a tap, a blob), not strokes: a thick core, no loops, nearly convex."""
        return self.depth >= FILLED_DEPTH and self.holes == 0 and self.solidity >= FILLED_SOLIDITY


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class GroupReading:
    """One digit-sized group of ink and what it reads as."""

    box: Box  # the group's ink in canvas pixels
    pixels: np.ndarray  # (28, 28) float32 in [0, 1]: what the model saw (before normalisation)
    verdict: GroupVerdict
    digit: int | None  # the model's top digit; None when not_a_digit
    confidence: float  # probability of the model's top digit
    probabilities: tuple[float, ...]  # the model's ten probabilities, whatever the verdict
    distance: float | None  # the model's evidence: squared Mahalanobis distance; None uncalibrated
    reason: Reason | None  # why not_a_digit; None otherwise
    ink: InkStats

    @property
    def runner_up(self) -> tuple[int, float]:
        """The model's second choice: (digit, probability)."""
        order = np.argsort(self.probabilities)
        return int(order[-2]), float(self.probabilities[order[-2]])


@dataclass(frozen=True)
class Choice:
    """One of the model's choices for a digit."""

    digit: int
    probability: float


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Reading:
    """The drawing's one verdict and what backs it.

    digit: the digit read when the drawing is one digit (its best guess when unsure), else None.
    digits: the digits read left to right; (digit,) for one digit; () for not_a_digit. In several_digits,
        a group may be unsure (its verdict says so): its digit is its best guess.
    confidence: the probability of that reading (a product over groups); None for not_a_digit.
    probabilities: the ten probabilities when the drawing is one group, else None.
    top_two: for unsure, the model's first and second choice.
    """

    verdict: Verdict
    digit: int | None
    digits: tuple[int, ...]
    confidence: float | None
    probabilities: tuple[float, ...] | None
    reason: Reason | None
    groups: tuple[GroupReading, ...]
    top_two: tuple[Choice, Choice] | None = None

    @property
    def empty(self) -> bool:
        return self.reason == "empty"

    @property
    def message(self) -> str:
        """One line for people: "7 (98.1%)", "unsure: 4 (55.0%) or 9 (40.2%)", "not a digit: a dot",
        "123 (91.0%)"."""
        if self.verdict == "not_a_digit":
            return f"not a digit: {REASONS[self.reason]}"
        if self.verdict == "unsure":
            best, second = self.top_two
            return f"unsure: {best.digit} ({best.probability:.1%}) or {second.digit} ({second.probability:.1%})"
        return f"{digit_text(self.digits)} ({self.confidence:.1%})"

    def to_dict(self) -> dict:
        """JSON-ready: verdict, digit, digits, confidence, probabilities, reason, top_two, groups."""
        return {
            "verdict": self.verdict,
            "digit": self.digit,
            "digits": list(self.digits),
            "confidence": self.confidence,
            "probabilities": None if self.probabilities is None else list(self.probabilities),
            "reason": self.reason,
            "message": self.message,
            "top_two": None
            if self.top_two is None
            else [{"digit": c.digit, "probability": c.probability} for c in self.top_two],
            "groups": [
                {
                    "box": g.box.to_list(),
                    "verdict": g.verdict,
                    "digit": g.digit,
                    "confidence": g.confidence,
                    "reason": g.reason,
                }
                for g in self.groups
            ],
        }


def digit_text(digits: tuple[int, ...]) -> str:
    return "".join(str(d) for d in digits)
