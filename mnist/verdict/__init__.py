"""Verdicts: what a drawing is. One digit, an unsure digit, several digits, or not a digit (and why).

Every drawing gets exactly one verdict, in the app and in `python -m mnist predict` alike:

- ``"digit"``: one digit, read with confidence (top probability >= CONFIDENT, 60%, the Sketch page's bar);
- ``"unsure"``: one digit, under CONFIDENT; `Reading.top_two` holds the model's first and second choice;
- ``"several_digits"``: two or more digits, read left to right in `Reading.digits`; each group has its
  own verdict, so a digit the model is unsure of is marked (`GroupReading.verdict == "unsure"`);
- ``"not_a_digit"``: `Reading.reason` says why, one of `REASONS`: ``"empty"`` (nothing drawn),
  ``"too_little_ink"``, ``"dot"``, ``"line"``, ``"blob"``, ``"scribble"``, ``"unlike_any_digit"``.

API. All pure (no state, no I/O but `calibration_for`, `load_calibration`, `save_calibration`)::

    calibration = calibration_for(checkpoint)     # once per model: stored, computed from MNIST, or FALLBACK
    reading = read_drawing(model, array, calibration)   # per stroke: a few ms on a CPU
    reading.verdict       # "digit" | "unsure" | "several_digits" | "not_a_digit"
    reading.digit         # int when one group was read (its best guess when unsure), else None
    reading.digits        # tuple of ints left to right: (7,), (1, 2, 3), () when not a digit
    reading.confidence    # probability of that reading (product over groups); None for not_a_digit
    reading.probabilities # the ten probabilities when the drawing is one group, else None
    reading.reason        # not_a_digit only: a key of REASONS (REASONS[reason] is its text)
    reading.top_two       # unsure only: (Choice(digit, probability), Choice(...)): first and second choice
    reading.message       # one line for people: "7 (98.1%)", "unsure: 4 (55.0%) or 9 (40.2%)", ...
    reading.groups        # GroupReading per group of ink, left to right:
        group.box         #   Box(left, top, right, bottom) in canvas pixels (right, bottom exclusive)
        group.pixels      #   (28, 28) float32 in [0, 1]: what the model saw (CanvasImage(group.pixels)
                          #   gives predict.saliency_map its input)
        group.verdict, group.digit, group.confidence, group.probabilities, group.reason
        group.distance    #   the model's evidence (below); group.ink: InkStats, the shape statistics
    reading.to_dict()     # JSON-ready; `python -m mnist predict --json` prints it with "path"

How a drawing is read:

1. **Groups.** The ink (`preprocess.ink_map`, normalised and thresholded like `preprocess_canvas`) is
   reduced to a mask of at most SEGMENT_SIDE cells a side and split into 8-connected components (by
   scipy.ndimage.label). Components with under SPECK_SHARE of the largest one's ink are
   specks and are dropped. Pieces that `belong_together` (x-extents overlapping by MERGE_OVERLAP of the
   narrower, as in a crossed 7 or a two-stroke 4; stacked pieces, like a 5's flag above its body; or
   a small piece right beside a big one) are merged, repeatedly.
2. **Each group** is cropped (other groups' ink masked out), padded and read through
   `preprocess_canvas`, like a single drawing: a one-group drawing gives exactly `predict_canvas`'s
   pixels and probabilities. All groups go through the model in one batch.
   **Touching digits** ("17" written fast) are one component. A group at least SPLIT_MIN_ASPECT as wide
   as tall (WEAK_SPLIT_MIN_ASPECT when it is read whole as unsure: "11" is narrow), unless read
   whole as a sure and typical digit (`worth_cutting`), is also cut in two along valleys (`valley`: the
   least inked top-to-bottom path around a column; columns every SPLIT_STEP of its width), each
   distinct cut's pieces read in a second batch. A cut counts when both pieces are confident digits
   (SPLIT_CONFIDENT) nearly as tall as the group (SPLIT_MIN_HEIGHT), or, for a group the model cannot
   place (unsure, or refused as unlike any digit; never one an ink rule refused, like a blob), when
   both pieces are digits near the digits in the model's features, one of them possibly unsure
   (`loose_pair`, LOOSE_*). Among the cuts that count, the best (`cut_score`: the pieces'
   probabilities and their typicality) replaces the whole if it beats it (`best_reading`): each piece
   more typical than the whole, and surer, unless the whole is atypical. A wide 0 stays a 0.
3. **Ink rules** (`InkStats`, measured on the group's 28x28 image and its box on the canvas;
   thresholds chosen on MNIST's training set): too little ink (the group spans under MIN_EXTENT of
   the canvas' longest side); a line (elongated, LINE_ELONGATION, and tilted LINE_MIN_TILT or more from
   vertical: a steeper stroke is a 1).
4. **The model's own evidence**: the squared Mahalanobis distance of the model's penultimate features
   (the input of its last Linear layer) to the nearest class mean, with one covariance shared by the
   classes (Lee et al., 2018). Beyond `Calibration.max_distance` a group is unlike any digit ("a
   scribble" when its ink closes BUSY_HOLES or more loops). Logits alone miss these: a star reads "4"
   at 85%, but its features are far from every digit's.
5. **Suspect ink**, where ink and model decide together: a filled patch (`InkStats.filled`: a thick
   core, no loop, nearly convex; a dot when small on the canvas, else a blob) or SCRIBBLE_HOLES or more
   loops (a scribble) is rejected unless the model is confident and within SUSPECT_DISTANCE_SHARE of
   max_distance. Very bold digits look filled, and the model still knows them.
6. **Confidence**: a group not rejected is a digit at top probability >= CONFIDENT, else unsure.

The drawing's verdict: no ink -> not_a_digit ("empty"); one group -> its verdict; several -> not_a_digit
if any group is not a digit (with the first such group's reason), else several_digits.

Calibration, per model: class means and a whitening matrix of the penultimate features fitted on
CALIBRATION_FIT_SAMPLES MNIST training digits, and `max_distance`, the (1 - REJECT_QUANTILE) quantile
of the distances of CALIBRATION_THRESHOLD_SAMPLES other training digits (each digit through
`preprocess_canvas` like a drawing). The test set is never used, so the share of test digits
rejected (bench/verdicts.py) is a measurement, not a fit. The bundled model's calibration is stored
beside it (CALIBRATION_FILE, a mnist.store file keyed by the model's weights digest): rebuild it with
``python -m mnist.verdict calibrate [RUN_DIR]`` after retraining. `calibration_for(checkpoint)` uses a
stored calibration that matches the weights; else computes one when MNIST is on disk (20,000 forward
passes: about 20 s for cnn-bn on 2 cores, 50 s for an ensemble of three) and stores it in the run
folder (mnist.store.load_or_compute; `save_calibration` stores one anywhere); else returns FALLBACK,
without feature statistics: suspect ink is then rejected on the ink alone and a group whose top
probability is under FALLBACK_MIN_CONFIDENCE is unlike any digit. A stored calibration is looked up by the
model's digest only (no data digest): it must serve where MNIST is not on disk.

An ensemble (mnist.ensemble): its probabilities are the ensemble's and its features are all its members'
penultimate features side by side, (B, D_1 + ... + D_K): one Gaussian per class over the joint vector,
with one shared covariance, fitted like a single model's. The members' feature spaces differ (even two
seeds of one architecture), so they cannot be averaged; side by side, every member has its say, and the
covariance weighs how much they agree. A single member's distance is noisier: a 1 with a wide base sat at
0.92-1.09 of each member's own threshold. A stored calibration belongs to the ensemble's own weights.

Modules, one job each (what other packages use is importable from mnist.verdict itself):
`reading` (verdicts, reasons and the Box, InkStats, GroupReading and Reading results), `calibration` (what
digit-like means for one model, stored beside it), `segment` (groups of ink), `shape` (the ink rules and
the model's evidence), `cuts` (touching digits), `read` (read_drawing: one verdict per drawing), `cli`
(``python -m mnist.verdict calibrate``).
"""

from ..features import features_and_logits, member_features_and_logits
from ..store import CALIBRATION_FILE
from .calibration import (
    FALLBACK,
    Calibration,
    all_features,
    calibrate,
    calibration_for,
    distances,
    load_calibration,
    preprocessed_digits,
    save_calibration,
)
from .cuts import best_reading
from .read import combine, read_drawing, read_group, score_batch
from .reading import CONFIDENT, REASONS, VERDICTS, Box, GroupReading, InkStats, Reading, digit_text
from .segment import belong_together, count_components, normalized_ink, split_groups
from .shape import count_holes, ink_reason, model_reason

__all__ = [
    "Box",
    "CALIBRATION_FILE",
    "CONFIDENT",
    "Calibration",
    "FALLBACK",
    "GroupReading",
    "InkStats",
    "REASONS",
    "Reading",
    "VERDICTS",
    "all_features",
    "belong_together",
    "best_reading",
    "calibrate",
    "calibration_for",
    "combine",
    "count_components",
    "count_holes",
    "digit_text",
    "distances",
    "features_and_logits",
    "ink_reason",
    "load_calibration",
    "member_features_and_logits",
    "model_reason",
    "normalized_ink",
    "preprocessed_digits",
    "read_drawing",
    "read_group",
    "save_calibration",
    "score_batch",
    "split_groups",
]
